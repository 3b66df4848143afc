//! Fault injection for the storage layer: make chosen writes or fsyncs
//! fail on demand, so tests can prove that nothing whose write or fsync
//! failed is ever confirmed, and that recovery loses nothing that was.
//!
//! Every file operation of the store and the definitions journal passes
//! through [`check`]. Disarmed (always, unless a test or a broker started
//! with `WARREN_FAULT_INJECTION=1` arms it), that is one relaxed atomic
//! load.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// The kind of file operation a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// Handing buffered bytes to the kernel (pwrite / write).
    Write,
    /// fsync / fdatasync.
    Sync,
}

impl FileOp {
    pub fn parse(s: &str) -> Option<FileOp> {
        match s {
            "write" => Some(FileOp::Write),
            "fsync" | "sync" => Some(FileOp::Sync),
            _ => None,
        }
    }
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// ENOSPC: the disk is full.
    NoSpace,
    /// EIO: the device failed.
    Io,
    /// Not an error: the operation takes 2 ms longer (a slow disk), which
    /// widens race windows in tests.
    Stall,
}

impl FaultError {
    pub fn parse(s: &str) -> Option<FaultError> {
        match s {
            "enospc" | "nospace" => Some(FaultError::NoSpace),
            "eio" | "io" => Some(FaultError::Io),
            "stall" => Some(FaultError::Stall),
            _ => None,
        }
    }

    fn to_io(self) -> Option<io::Error> {
        match self {
            FaultError::NoSpace => Some(io::Error::from_raw_os_error(libc::ENOSPC)),
            FaultError::Io => Some(io::Error::from_raw_os_error(libc::EIO)),
            FaultError::Stall => None,
        }
    }
}

/// One rule: the next `count` operations `op` on files whose path contains
/// `path_contains` fail with `error`, after `skip` of them succeed.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: FileOp,
    pub path_contains: String,
    pub skip: u32,
    pub count: u32,
    pub error: FaultError,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static RULES: Mutex<Vec<Fault>> = Mutex::new(Vec::new());

/// Adds a rule (and arms the injector).
pub fn inject(f: Fault) {
    let mut r = RULES.lock();
    r.push(f);
    ARMED.store(true, Ordering::Release);
}

/// Removes every rule. Rules are process-wide: tests scope theirs with a
/// `path_contains` only their own files match, and never clear.
pub fn clear() {
    let mut r = RULES.lock();
    r.clear();
    ARMED.store(false, Ordering::Release);
}

/// Rules not yet used up.
pub fn pending() -> usize {
    RULES.lock().iter().filter(|f| f.count > 0).count()
}

/// Fails if a rule says this operation on `path` must fail.
#[inline]
pub fn check(path: &Path, op: FileOp) -> io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    check_slow(path, op)
}

#[cold]
fn check_slow(path: &Path, op: FileOp) -> io::Result<()> {
    let text = path.to_string_lossy();
    let mut rules = RULES.lock();
    for f in rules.iter_mut() {
        if f.op != op || f.count == 0 || !text.contains(f.path_contains.as_str()) {
            continue;
        }
        if f.skip > 0 {
            f.skip -= 1;
            continue;
        }
        f.count -= 1;
        match f.error.to_io() {
            Some(e) => {
                tracing::warn!("injected fault: {op:?} of {} fails", path.display());
                return Err(e);
            }
            None => {
                drop(rules);
                std::thread::sleep(std::time::Duration::from_millis(2));
                return Ok(());
            }
        }
    }
    Ok(())
}
