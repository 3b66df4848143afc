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
//!
//! Each log file starts with a header line naming its id, and the snapshot
//! names the id of the log that continues it. Writing a new base creates
//! the new log file first, then the snapshot, then renames the log into
//! place: a crash (or a failure) at any step leaves either the old
//! snapshot with the old log, or the new snapshot with a log it names; a
//! log older than the snapshot is already contained in it and is ignored.

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

const HEADER: &str = "# warren definitions log ";

fn header_line(id: u64) -> String {
    format!("{HEADER}{id}\n")
}

/// Reads the snapshot and replays the log. `Ok(None)` on a first start.
pub fn load(dir: &Path) -> Result<Option<DefinitionsState>, String> {
    load_with_ids(dir).map(|o| o.map(|(state, _)| state))
}

/// As [`load`], with the id of the log in use (the next base takes the
/// one after it).
fn load_with_ids(dir: &Path) -> Result<Option<(DefinitionsState, u64)>, String> {
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
    let snapshot_log_id = snapshot.as_ref().map_or(0, |s| s.log_id);
    let mut state = snapshot.map(DefinitionsState::from_snapshot);
    let log = log_path(dir);
    let f = match File::open(&log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(state.map(|s| (s, snapshot_log_id)))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", log.display())),
    };
    let st = state.get_or_insert_with(DefinitionsState::default);
    let mut reader = BufReader::new(f);
    let mut line = Vec::new();
    let mut n = 0;
    // A log without a header (format 1 as first written) counts as id 0.
    let mut log_id = 0;
    if reader
        .fill_buf()
        .map_err(|e| e.to_string())?
        .starts_with(HEADER.as_bytes())
    {
        reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read {}: {e}", log.display()))?;
        n += 1;
        log_id = std::str::from_utf8(&line[HEADER.len()..])
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
    }
    if log_id < snapshot_log_id {
        // Left over from a base write that didn't finish: the snapshot
        // already holds everything in it.
        warn!(
            "{}: log {log_id} predates the snapshot (log {snapshot_log_id}); ignoring it",
            log.display()
        );
        return Ok(Some((std::mem::take(st), snapshot_log_id)));
    }
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
    Ok(state.map(|s| (s, log_id)))
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
    /// The id in the current log's header (or of the newest snapshot, once
    /// a base write got that far).
    log_id: u64,
    /// How many bases (snapshot + fresh log) were written.
    generation: u64,
    state: DefinitionsState,
}

/// The definitions journal of a running broker.
#[derive(Debug)]
pub struct DefinitionsLog {
    inner: Mutex<Inner>,
}

/// How far writing a new base got before it failed.
#[derive(Debug)]
struct BaseError {
    /// The new snapshot is in place: the old log must not take appends.
    snapshot_replaced: bool,
    error: io::Error,
}

/// Writes `state` as the snapshot continued by a new, empty log `log_id`:
/// the log file is prepared first, then the snapshot replaced, then the
/// log renamed into place (see the module comment). Returns the new log
/// (positioned after its header) and the snapshot's size.
fn write_base(
    dir: &Path,
    state: &DefinitionsState,
    log_id: u64,
) -> Result<(File, u64, u64), BaseError> {
    let early = |error| BaseError {
        snapshot_replaced: false,
        error,
    };
    let tmp = dir.join("definitions.next");
    let header = header_line(log_id);
    let log = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .read(true)
        .mode_private()
        .open(&tmp)
        .map_err(early)?;
    faults::check(&tmp, FileOp::Write)
        .and_then(|_| log.write_all_at(header.as_bytes(), 0))
        .and_then(|_| faults::check(&tmp, FileOp::Sync))
        .and_then(|_| log.sync_all())
        .map_err(early)?;
    let mut snapshot = state.to_snapshot();
    snapshot.log_id = log_id;
    let json = serde_json::to_vec_pretty(&snapshot)
        .map_err(io::Error::other)
        .map_err(early)?;
    write_atomic(&snapshot_path(dir), &json).map_err(|error| BaseError {
        // The rename may have happened before the failure: assume so.
        snapshot_replaced: true,
        error,
    })?;
    let late = |error| BaseError {
        snapshot_replaced: true,
        error,
    };
    fs::rename(&tmp, log_path(dir)).map_err(late)?;
    fsync_dir(dir).map_err(late)?;
    Ok((log, header.len() as u64, json.len() as u64))
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
        Self::open_at(dir, state, 0)
    }

    /// Loads the definitions in `dir` (`None` on a first start), then
    /// opens the journal on them.
    pub fn load_and_open(
        dir: &Path,
        first_start: impl FnOnce() -> DefinitionsState,
    ) -> Result<(Self, DefinitionsState, bool), String> {
        let (state, log_id, first) = match load_with_ids(dir)? {
            Some((s, id)) => (s, id, false),
            None => (first_start(), 0, true),
        };
        let log = Self::open_at(dir, state.clone(), log_id)
            .map_err(|e| format!("cannot write definitions in {}: {e}", dir.display()))?;
        Ok((log, state, first))
    }

    /// Writes `state` as a new base after log `log_id`. If that fails on a
    /// full disk before the snapshot was replaced, the existing snapshot
    /// and log stay in use (a broker must start on a full disk so
    /// consumers can drain it); if it failed later, changes are refused
    /// until a base can be written.
    fn open_at(dir: &Path, state: DefinitionsState, log_id: u64) -> io::Result<Self> {
        create_dir_private(dir)?;
        let next = log_id + 1;
        let (log, len, snapshot_len, broken, in_use) = match write_base(dir, &state, next) {
            Ok((log, len, snapshot_len)) => (log, len, snapshot_len, false, next),
            Err(BaseError {
                snapshot_replaced: false,
                error,
            }) if snapshot_path(dir).exists() || log_path(dir).exists() => {
                warn!("cannot compact the definitions at startup ({error}); appending to the existing journal");
                let snapshot_len = fs::metadata(snapshot_path(dir)).map_or(0, |m| m.len());
                let (log, len) = reuse_log(dir)?;
                (log, len, snapshot_len, false, log_id)
            }
            Err(BaseError {
                snapshot_replaced: true,
                error,
            }) if log_path(dir).exists() => {
                warn!("cannot finish writing the definitions at startup ({error}); changes are refused until it succeeds");
                (File::open(log_path(dir))?, 0, 0, true, next)
            }
            Err(e) => return Err(e.error),
        };
        Ok(DefinitionsLog {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                log,
                len,
                snapshot_len,
                broken,
                log_id: in_use,
                generation: 1,
                state,
            }),
        })
    }

    /// Appends a change and makes it durable before returning; only then
    /// does it count. On error nothing changed, on disk or in memory.
    pub fn record(&self, change: &Change) -> io::Result<()> {
        // An fsync: on a runtime worker, tell the runtime first, so the
        // worker's other connections move to another thread meanwhile.
        crate::blocking::run(|| self.record_now(change))
    }

    fn record_now(&self, change: &Change) -> io::Result<()> {
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
                // Unless the snapshot was already replaced (then the next
                // change retries first), the log is still good and the
                // compaction is retried later.
                warn!("cannot compact the definitions journal: {e}");
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
    let id = g.log_id + 1;
    match write_base(&g.dir, &g.state, id) {
        Ok((log, len, snapshot_len)) => {
            g.log = log;
            g.len = len;
            g.log_id = id;
            g.snapshot_len = snapshot_len;
            g.broken = false;
            g.generation += 1;
            Ok(())
        }
        Err(e) => {
            if e.snapshot_replaced {
                // The snapshot now names log `id`: the old log is stale.
                g.log_id = id;
                g.broken = true;
            }
            Err(e.error)
        }
    }
}

#[cfg(test)]
mod tests;
