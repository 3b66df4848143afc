//! The definitions journal: the snapshot file plus a log of changes, each
//! fsynced before it takes effect.
//!
//! Failure semantics:
//! - A change whose append or fsync fails is refused (the caller answers
//!   541 or the CLI's error, never `-ok`), and the in-memory definitions
//!   don't change.
//! - A failed append is cut off again (the log is truncated back to its
//!   last good length), so later good entries never sit behind garbage.
//! - After a failed fsync the log file is not trusted again: the next
//!   change first writes a fresh snapshot (atomically) and starts a new log
//!   file. If even that fails, every change is refused until it succeeds.
//! - Recovery skips only what is actually corrupt: a line that fails its
//!   checksum is logged and skipped, and the lines after it are replayed.
//!
//! Compaction: once the log is larger than the snapshot (and at least
//! [`COMPACT_MIN`]), the current definitions are written as the new
//! snapshot and the log starts empty.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use tracing::warn;

use super::{Change, DefinitionsState, Snapshot, FORMAT_VERSION};
use crate::store::faults::{self, FileOp};
use crate::store::files::{create_dir_private, fsync_dir, write_atomic};

/// The log is compacted into the snapshot once it is at least this large
/// and larger than the snapshot.
pub const COMPACT_MIN: u64 = 1 << 20;

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("definitions.json")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("definitions.log")
}

fn checksum_line(json: &str) -> String {
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()))
}

fn parse_line(line: &[u8]) -> Option<Change> {
    let line = std::str::from_utf8(line).ok()?;
    let (crc, json) = line.split_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(json.as_bytes()) {
        return None;
    }
    serde_json::from_str::<Change>(json).ok()
}

/// Reads the snapshot and replays the log. `Ok(None)` on a first start.
pub fn load(dir: &Path) -> Result<Option<DefinitionsState>, String> {
    let snap_path = snapshot_path(dir);
    let snapshot = match fs::read(&snap_path) {
        Ok(raw) => Some(
            serde_json::from_slice::<Snapshot>(&raw)
                .map_err(|e| format!("{} is unreadable: {e}", snap_path.display()))?,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", snap_path.display())),
    };
    if let Some(s) = &snapshot {
        if s.version > FORMAT_VERSION {
            return Err(format!(
                "{} has format version {}, newer than this Warren ({FORMAT_VERSION})",
                snap_path.display(),
                s.version
            ));
        }
    }
    let mut state = snapshot.map(DefinitionsState::from_snapshot);
    let log = log_path(dir);
    let f = match File::open(&log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
        Err(e) => return Err(format!("cannot read {}: {e}", log.display())),
    };
    let st = state.get_or_insert_with(DefinitionsState::default);
    let mut reader = BufReader::new(f);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read {}: {e}", log.display())),
        }
        n += 1;
        let complete = line.last() == Some(&b'\n');
        let body = if complete {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        match parse_line(body) {
            Some(c) => st.apply(c),
            None if !complete => {
                warn!(
                    "{}: line {n} is torn (a crash mid-append); ignoring it",
                    log.display()
                );
            }
            None => {
                warn!(
                    "{}: line {n} is corrupt (checksum); skipping it and replaying the rest",
                    log.display()
                );
            }
        }
    }
    Ok(state)
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    log: File,
    /// Bytes of good entries in the log; the next one goes here.
    len: u64,
    snapshot_len: u64,
    /// A write or fsync failed and could not be undone: the log is not
    /// trusted until a fresh snapshot and log have been written.
    broken: bool,
    /// How many bases (snapshot + fresh log) were written.
    generation: u64,
    state: DefinitionsState,
}

/// The definitions journal of a running broker.
#[derive(Debug)]
pub struct DefinitionsLog {
    inner: Mutex<Inner>,
}

/// Writes `state` as the snapshot, then an empty log (a new file, renamed
/// into place, so a log whose fsync failed is never reused). Returns the
/// new log and the snapshot's size.
fn write_base(dir: &Path, state: &DefinitionsState) -> io::Result<(File, u64)> {
    let json = serde_json::to_vec_pretty(&state.to_snapshot()).map_err(io::Error::other)?;
    write_atomic(&snapshot_path(dir), &json)?;
    let tmp = dir.join("definitions.log.tmp");
    let log = {
        let f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .read(true)
            .mode_private()
            .open(&tmp)?;
        faults::check(&tmp, FileOp::Sync)?;
        f.sync_all()?;
        f
    };
    fs::rename(&tmp, log_path(dir))?;
    fsync_dir(dir)?;
    Ok((log, json.len() as u64))
}

/// `OpenOptions::mode(0o600)` without importing the trait everywhere.
trait ModePrivate {
    fn mode_private(&mut self) -> &mut Self;
}

impl ModePrivate for fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(crate::store::files::FILE_MODE)
    }
}

/// Opens the existing log to append after its last complete line (a torn
/// tail is cut off, which needs no free space).
fn reuse_log(dir: &Path) -> io::Result<(File, u64)> {
    let path = log_path(dir);
    let raw = fs::read(&path)?;
    let end = raw.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
    let log = crate::store::files::open_rw(&path)?;
    if end < raw.len() as u64 {
        log.set_len(end)?;
        log.sync_all()?;
    }
    Ok((log, end))
}

impl DefinitionsLog {
    /// Writes `state` (loaded from `dir`, or a first start's) as the new
    /// base and starts an empty log. If the base can't be written (a full
    /// disk) but a snapshot and log exist, they stay in use: a broker must
    /// start on a full disk to let consumers drain it.
    pub fn open(dir: &Path, state: DefinitionsState) -> io::Result<Self> {
        create_dir_private(dir)?;
        let (log, len, snapshot_len) = match write_base(dir, &state) {
            Ok((log, snapshot_len)) => (log, 0, snapshot_len),
            Err(e) if snapshot_path(dir).exists() || log_path(dir).exists() => {
                warn!("cannot compact the definitions at startup ({e}); appending to the existing journal");
                let snapshot_len = fs::metadata(snapshot_path(dir)).map_or(0, |m| m.len());
                let (log, len) = reuse_log(dir)?;
                (log, len, snapshot_len)
            }
            Err(e) => return Err(e),
        };
        Ok(DefinitionsLog {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                log,
                len,
                snapshot_len,
                broken: false,
                generation: 1,
                state,
            }),
        })
    }

    /// Appends a change and makes it durable before returning; only then
    /// does it count. On error nothing changed, on disk or in memory.
    pub fn record(&self, change: &Change) -> io::Result<()> {
        let json = serde_json::to_string(change).map_err(io::Error::other)?;
        let line = checksum_line(&json);
        let mut g = self.inner.lock();
        if g.broken {
            compact(&mut g)?;
        }
        let path = log_path(&g.dir);
        let at = g.len;
        let written = faults::check(&path, FileOp::Write)
            .and_then(|_| g.log.write_all_at(line.as_bytes(), at));
        if let Err(e) = written {
            // Cut the partial line off again; if that fails too, the next
            // change starts a fresh log.
            if g.log.set_len(at).is_err() {
                g.broken = true;
            }
            return Err(e);
        }
        let synced = faults::check(&path, FileOp::Sync).and_then(|_| g.log.sync_data());
        if let Err(e) = synced {
            // The file's state after a failed fsync is unknown: best effort
            // to take the line back, and never append to this file again.
            let _ = g.log.set_len(at);
            g.broken = true;
            return Err(e);
        }
        g.len = at + line.len() as u64;
        g.state.apply(change.clone());
        if g.len >= COMPACT_MIN && g.len > g.snapshot_len {
            if let Err(e) = compact(&mut g) {
                // The log is still good; compaction is retried later.
                warn!("cannot compact the definitions journal: {e}");
                g.broken = false;
            }
        }
        Ok(())
    }

    /// The definitions as they are on disk now.
    pub fn state(&self) -> DefinitionsState {
        self.inner.lock().state.clone()
    }

    /// Bytes in the log since the last snapshot.
    pub fn log_len(&self) -> u64 {
        self.inner.lock().len
    }

    /// Counts the snapshots written (at open and by each compaction).
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }
}

/// Writes the current definitions as the snapshot and starts a new log.
fn compact(g: &mut Inner) -> io::Result<()> {
    match write_base(&g.dir, &g.state) {
        Ok((log, snapshot_len)) => {
            g.log = log;
            g.len = 0;
            g.snapshot_len = snapshot_len;
            g.broken = false;
            g.generation += 1;
            Ok(())
        }
        Err(e) => {
            g.broken = true;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
