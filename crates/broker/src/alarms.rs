//! Resource alarms, as RabbitMQ's: when memory use crosses the high
//! watermark or free disk falls below the limit, connections that publish
//! are blocked (connection.blocked, and their sockets are no longer read)
//! until the condition clears (connection.unblocked).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{info, warn};

/// Which alarms are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmState {
    pub memory: bool,
    pub disk: bool,
}

impl AlarmState {
    pub fn any(&self) -> bool {
        self.memory || self.disk
    }

    /// The reason RabbitMQ gives in connection.blocked.
    pub fn reason(&self) -> &'static str {
        if self.memory {
            "low on memory"
        } else {
            "low on disk"
        }
    }
}

/// The memory high watermark: a fraction of total RAM or an absolute size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Watermark {
    Relative(f64),
    Absolute(u64),
}

impl Watermark {
    pub fn bytes(&self, total_memory: u64) -> u64 {
        match *self {
            Watermark::Relative(f) => (total_memory as f64 * f) as u64,
            Watermark::Absolute(b) => b,
        }
    }
}

#[derive(Debug)]
pub struct Alarms {
    watermark: Mutex<Watermark>,
    disk_free_limit: AtomicU64,
    memory_on: AtomicBool,
    disk_on: AtomicBool,
    /// A store write or fsync failed: the disk alarm stays on until a
    /// probe write to the data directory succeeds ([`probe_disk`]).
    store_failed: AtomicBool,
    /// Alarms on other cluster members (RabbitMQ blocks publishers on
    /// every node while any node has an alarm).
    remote_memory: AtomicBool,
    remote_disk: AtomicBool,
    /// What blocks publishers here: this node's alarms or another member's.
    tx: watch::Sender<AlarmState>,
}

impl Alarms {
    pub fn new(watermark: Watermark, disk_free_limit: u64) -> Self {
        let (tx, _) = watch::channel(AlarmState::default());
        Alarms {
            watermark: Mutex::new(watermark),
            disk_free_limit: AtomicU64::new(disk_free_limit),
            memory_on: AtomicBool::new(false),
            disk_on: AtomicBool::new(false),
            store_failed: AtomicBool::new(false),
            remote_memory: AtomicBool::new(false),
            remote_disk: AtomicBool::new(false),
            tx,
        }
    }

    /// What blocks publishers: this node's alarms, or another member's.
    fn blocking(&self) -> AlarmState {
        let local = self.state();
        AlarmState {
            memory: local.memory || self.remote_memory.load(Ordering::Acquire),
            disk: local.disk || self.remote_disk.load(Ordering::Acquire),
        }
    }

    fn publish(&self) {
        let state = self.blocking();
        self.tx.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// Alarms on other cluster members (`on`: the nodes and their alarm,
    /// for the log): publishers here are blocked while any is on.
    pub fn set_remote(&self, memory: bool, disk: bool, on: &str) {
        let was = (
            self.remote_memory.swap(memory, Ordering::AcqRel),
            self.remote_disk.swap(disk, Ordering::AcqRel),
        );
        if was != (memory, disk) {
            if memory || disk {
                warn!("resource alarm on another cluster node ({on}); blocking publishers on this node too");
            } else {
                info!("no resource alarm on other cluster nodes any more");
            }
        }
        self.publish();
    }

    pub fn subscribe(&self) -> watch::Receiver<AlarmState> {
        self.tx.subscribe()
    }

    pub fn state(&self) -> AlarmState {
        AlarmState {
            memory: self.memory_on.load(Ordering::Acquire),
            disk: self.disk_on.load(Ordering::Acquire),
        }
    }

    pub fn set_watermark(&self, w: Watermark) {
        *self.watermark.lock() = w;
    }

    pub fn watermark(&self) -> Watermark {
        *self.watermark.lock()
    }

    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.disk_free_limit.store(bytes, Ordering::Release);
    }

    pub fn disk_free_limit(&self) -> u64 {
        self.disk_free_limit.load(Ordering::Acquire)
    }

    /// The store could not write or fsync: raise the disk alarm now, not
    /// at the next sample, so publishers stop before more is refused.
    pub fn storage_failed(&self, e: &std::io::Error) {
        if !self.store_failed.swap(true, Ordering::AcqRel) {
            warn!("disk resource limit alarm set: the message store failed to write ({e}); blocking publishers");
        }
        if !self.disk_on.swap(true, Ordering::AcqRel) {
            self.publish();
        }
    }

    /// Whether a store failure holds the disk alarm on.
    pub fn storage_failure_pending(&self) -> bool {
        self.store_failed.load(Ordering::Acquire)
    }

    /// A probe write succeeded after a store failure: the disk alarm
    /// follows free space again.
    pub fn storage_recovered(&self) {
        if self.store_failed.swap(false, Ordering::AcqRel) {
            info!("the data directory takes writes again");
        }
    }

    /// Re-evaluates both alarms from fresh measurements.
    pub fn check(&self, used_memory: u64, total_memory: u64, disk_free: u64) {
        let limit = self.watermark().bytes(total_memory);
        let memory = used_memory > limit;
        if memory != self.memory_on.swap(memory, Ordering::AcqRel) {
            if memory {
                warn!("memory resource limit alarm set: memory used {used_memory} > allowed {limit}; blocking publishers");
            } else {
                info!("memory resource limit alarm cleared: memory used {used_memory} <= allowed {limit}");
            }
        }
        let disk_limit = self.disk_free_limit();
        let disk = disk_free < disk_limit || self.store_failed.load(Ordering::Acquire);
        if disk != self.disk_on.swap(disk, Ordering::AcqRel) {
            if disk {
                warn!("disk resource limit alarm set: free disk {disk_free} < limit {disk_limit}; blocking publishers");
            } else {
                info!("disk resource limit alarm cleared: free disk {disk_free} >= limit {disk_limit}");
            }
        }
        self.publish();
    }
}

/// Sizes as RabbitMQ writes them (`50MB`, `512MiB`, `1024M`): one
/// parser for the configuration and the CLI's `set_disk_free_limit` /
/// `set_vm_memory_high_watermark absolute`, so a unit means the same in
/// both.
pub use warren_config::parse_size;

/// Resident memory of this process, from /proc.
pub fn process_rss() -> u64 {
    let page = page_size();
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// Total RAM (or the cgroup limit when lower), in bytes.
pub fn total_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match cgroup {
        Some(c) if c > 0 && (meminfo == 0 || c < meminfo) => c,
        _ => meminfo,
    }
}

/// After a store failure: can the data directory take a write and an
/// fsync again? Writes (and removes) a 1 MiB probe file, so a disk with a
/// few bytes free doesn't count as recovered.
pub fn probe_disk(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(".probe");
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        crate::store::faults::check(&path, crate::store::faults::FileOp::Write)?;
        f.write_all(&vec![0u8; 1 << 20])?;
        crate::store::faults::check(&path, crate::store::faults::FileOp::Sync)?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    r
}

/// Free bytes on the filesystem holding `path`.
pub fn disk_free(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Returns freed heap memory to the OS (glibc's `malloc_trim`): after a
/// burst, RSS goes back down instead of staying at its peak.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_rabbitmq() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("50MB"), Some(50_000_000));
        assert_eq!(parse_size("50MiB"), Some(50 * 1024 * 1024));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("1.5kB"), Some(1500));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn alarms_trip_and_clear() {
        let a = Alarms::new(Watermark::Relative(0.5), 100);
        let mut rx = a.subscribe();
        a.check(40, 100, 1000);
        assert!(!a.state().any());
        a.check(60, 100, 1000);
        assert!(a.state().memory);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().reason(), "low on memory");
        a.check(10, 100, 50);
        assert_eq!(
            a.state(),
            AlarmState {
                memory: false,
                disk: true
            }
        );
        a.set_watermark(Watermark::Absolute(5));
        a.check(10, 100, 1000);
        assert!(a.state().memory && !a.state().disk);
        assert!(process_rss() > 0);
        assert!(total_memory() > 0);
        assert!(disk_free(std::path::Path::new("/")).is_some());
    }
}
