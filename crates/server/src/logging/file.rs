//! The log file: lines go through a bounded queue to a writer thread, so
//! logging never blocks an async worker on disk. When the writer falls
//! behind and the queue is full, lines are dropped and counted (the count
//! is written to the file as soon as it catches up) rather than held in
//! memory without limit.
//!
//! Rotation as RabbitMQ 3.10's (Erlang logger_std_h's): `warren.log` is
//! renamed `warren.log.0`, `.0` becomes `.1`, …, keeping `count` rotated
//! files (`count` 0: the file is truncated instead). By size
//! (`log.file.rotation.size`), daily (`log.file.rotation.date = $D0`, at
//! local midnight; `$D<hour>` at that hour), or now (`warrenctl
//! rotate_logs`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Rotation;

/// Lines the queue holds (a few MB at most).
const QUEUE_LINES: usize = 16 * 1024;

enum Msg {
    Line(Vec<u8>),
    Rotate(SyncSender<Result<(), String>>),
    Flush(SyncSender<()>),
}

/// The sending side, cloned into every `make_writer` call.
#[derive(Clone)]
pub(crate) struct FileWriter {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    path: PathBuf,
}

impl FileWriter {
    /// Opens (creates) the file and starts its writer thread.
    pub(crate) fn open(path: &Path, rotation: Rotation) -> anyhow::Result<FileWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create log directory {}: {e}", dir.display())
            })?;
        }
        let file = open_append(path)
            .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut w = Writer {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            size,
            rotation,
            next_daily: None,
            dropped: dropped.clone(),
            reported: 0,
            failing: false,
        };
        w.next_daily = w.rotation.daily_hour.map(next_at_hour);
        std::thread::Builder::new()
            .name("warren-log-file".into())
            .spawn(move || w.run(rx))?;
        Ok(FileWriter {
            tx,
            dropped,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Lines dropped because the writer fell behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Rotates now; waits for the writer (a few seconds at most).
    pub(crate) fn rotate(&self) -> Result<(), String> {
        let (tx, rx) = sync_channel(1);
        self.tx
            .send(Msg::Rotate(tx))
            .map_err(|_| "the log file writer has stopped".to_string())?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the log file writer did not answer".to_string())?
    }

    /// Writes out what is queued (at shutdown).
    pub(crate) fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.tx.try_send(Msg::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for FileWriter {
    type Writer = FileWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o640);
    }
    o.open(path)
}

/// The next local time at `hour`:00 (libc's localtime/mktime: the
/// machine's time zone, as RabbitMQ's date rotation).
fn next_at_hour(hour: u8) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as libc::time_t;
    // SAFETY: localtime_r and mktime read/write only the tm we own.
    let at = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm.tm_hour = i32::from(hour);
        tm.tm_min = 0;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        let mut t = libc::mktime(&mut tm);
        if t <= now {
            tm.tm_mday += 1;
            tm.tm_isdst = -1;
            t = libc::mktime(&mut tm);
        }
        t
    };
    SystemTime::UNIX_EPOCH + Duration::from_secs(at.max(0) as u64)
}

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    rotation: Rotation,
    next_daily: Option<SystemTime>,
    dropped: Arc<AtomicU64>,
    reported: u64,
    /// A write or flush failed (a full disk, say) and has not succeeded
    /// since: said once on stderr (the journal under systemd), and the
    /// lines lost meanwhile are counted with the dropped ones.
    failing: bool,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(msg) => {
                    self.handle(msg);
                    // Drain what is queued, then flush once.
                    for _ in 0..QUEUE_LINES {
                        match rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                    }
                    self.flush();
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.report_dropped();
                    self.check_daily();
                    self.flush();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.out.flush();
                    return;
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Line(bytes) => {
                self.check_daily();
                self.report_dropped();
                self.write(&bytes);
                if self.rotation.size > 0 && self.size >= self.rotation.size {
                    let _ = self.rotate();
                }
            }
            Msg::Rotate(reply) => {
                let _ = reply.send(self.rotate());
            }
            Msg::Flush(reply) => {
                self.flush();
                let _ = reply.send(());
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match self.out.write_all(bytes) {
            Ok(()) => self.size += bytes.len() as u64,
            Err(e) => self.failed(&e),
        }
    }

    /// Flushes; a failure is reported as a failed write.
    fn flush(&mut self) {
        match self.out.flush() {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    eprintln!(
                        "warren: the log file {} can be written again",
                        self.path.display()
                    );
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.failing {
            self.failing = true;
            eprintln!(
                "warren: cannot write the log file {}: {e}; lines are lost (and counted) until it can be written again",
                self.path.display()
            );
        }
    }

    fn report_dropped(&mut self) {
        if self.failing {
            return;
        }
        let n = self.dropped.load(Ordering::Relaxed);
        if n > self.reported {
            let line = format!(
                "{} [warning] {} log line(s) dropped: the log file writer fell behind or could not write\n",
                super::format::now(),
                n - self.reported
            );
            self.reported = n;
            self.write(line.as_bytes());
        }
    }

    fn check_daily(&mut self) {
        if let Some(at) = self.next_daily {
            if SystemTime::now() >= at {
                let _ = self.rotate();
                self.next_daily = self.rotation.daily_hour.map(next_at_hour);
            }
        }
    }

    fn rotate(&mut self) -> Result<(), String> {
        let _ = self.out.flush();
        let name = |i: u32| {
            let mut s = self.path.clone().into_os_string();
            s.push(format!(".{i}"));
            PathBuf::from(s)
        };
        let count = self.rotation.count;
        let file = if count == 0 {
            OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)
                .and_then(|_| open_append(&self.path))
        } else {
            for i in (0..count - 1).rev() {
                let from = name(i);
                if from.exists() {
                    let _ = std::fs::rename(&from, name(i + 1));
                }
            }
            std::fs::rename(&self.path, name(0))
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .and_then(|_| open_append(&self.path))
        };
        match file {
            Ok(f) => {
                self.out = BufWriter::new(f);
                self.size = 0;
                Ok(())
            }
            Err(e) => Err(format!("cannot rotate {}: {e}", self.path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warren-logfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rotates_by_size_keeping_count() {
        let d = dir("size");
        let path = d.join("w.log");
        let rotation = Rotation {
            size: 100,
            count: 2,
            daily_hour: None,
        };
        let mut w = FileWriter::open(&path, rotation).unwrap();
        for i in 0..41 {
            w.write_all(format!("line {i:02} of the test, 30 bytes\n").as_bytes())
                .unwrap();
        }
        w.flush();
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, vec!["w.log", "w.log.0", "w.log.1"]);
        let newest = std::fs::read_to_string(d.join("w.log.0")).unwrap();
        let older = std::fs::read_to_string(d.join("w.log.1")).unwrap();
        assert!(newest.len() >= 100 && older.len() >= 100);
        assert!(older < newest, "{older} / {newest}");
        assert!(std::fs::read_to_string(&path).unwrap().contains("line 40"));
        assert_eq!(w.dropped(), 0);
    }

    #[test]
    fn count_zero_truncates_and_rotate_now() {
        let d = dir("zero");
        let path = d.join("w.log");
        let mut w = FileWriter::open(&path, Rotation::default()).unwrap();
        w.write_all(b"before\n").unwrap();
        w.rotate().unwrap();
        w.write_all(b"after\n").unwrap();
        w.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        assert!(!d.join("w.log.0").exists());
    }

    #[test]
    fn daily_rotation_is_within_a_day() {
        let at = next_at_hour(0);
        let now = SystemTime::now();
        assert!(at > now);
        assert!(at <= now + Duration::from_secs(25 * 3600));
    }
}
