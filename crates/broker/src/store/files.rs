//! A file written through a buffer that the group commit flushes and
//! fsyncs, and reads that see buffered data.
//!
//! Failure semantics (see `docs/storage.md`):
//! - A failed *write* (ENOSPC, EIO) leaves the buffer as it was: nothing
//!   is lost from memory, and the next sync writes it again at the same
//!   offset. An append whose write-through fails is taken back out of the
//!   buffer, so the caller's error means "not stored".
//! - A failed *fsync* poisons the file: after it the kernel may have
//!   dropped dirty pages, so what the file holds past its last good sync
//!   is unknown. A poisoned file takes no more appends (the owners roll
//!   over to a new file) and is never synced again; what was durable
//!   before stays readable.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::faults::{self, FileOp};

/// Buffered bytes beyond which an append writes through (no fsync).
const WRITE_THROUGH: usize = 1 << 20;

/// Mode of every file Warren creates: the data holds password hashes and
/// message bodies, readable by the broker's user only.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory Warren creates.
pub const DIR_MODE: u32 = 0o700;

#[derive(Debug)]
struct Inner {
    file: File,
    buf: Vec<u8>,
    /// Bytes handed to the kernel (written), buffered bytes come after.
    written: u64,
    /// Written but not yet fsynced.
    unsynced: bool,
    /// An fsync failed: see the module comment.
    poisoned: bool,
}

#[derive(Debug)]
pub struct SyncFile {
    pub path: PathBuf,
    inner: Mutex<Inner>,
}

/// The error an append to a poisoned file gets.
pub fn poisoned_error(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} failed to sync earlier and takes no more writes",
        path.display()
    ))
}

/// Opens (creating with [`FILE_MODE`]) a file for reading and writing.
pub fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

impl SyncFile {
    /// Opens for appending at `len` (the valid length; anything after it,
    /// such as a torn tail, is cut off).
    pub fn open(path: &Path, len: u64) -> io::Result<SyncFile> {
        let file = open_rw(path)?;
        if file.metadata()?.len() != len {
            file.set_len(len)?;
        }
        Ok(SyncFile {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                // Allocated on first append: most files are idle most of the time.
                buf: Vec::new(),
                written: len,
                unsynced: false,
                poisoned: false,
            }),
        })
    }

    /// Appends `data`; returns the offset it starts at. On error nothing
    /// of `data` stays buffered.
    pub fn append(&self, data: &[u8]) -> io::Result<u64> {
        let mut g = self.inner.lock();
        if g.poisoned {
            return Err(poisoned_error(&self.path));
        }
        let at = g.written + g.buf.len() as u64;
        let before = g.buf.len();
        g.buf.extend_from_slice(data);
        if g.buf.len() >= WRITE_THROUGH {
            if let Err(e) = write_out(&self.path, &mut g) {
                g.buf.truncate(before);
                return Err(e);
            }
        }
        Ok(at)
    }

    /// The logical length, buffered bytes included.
    pub fn len(&self) -> u64 {
        let g = self.inner.lock();
        g.written + g.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an fsync of this file failed.
    pub fn is_poisoned(&self) -> bool {
        self.inner.lock().poisoned
    }

    /// Reads `buf.len()` bytes at `offset`, seeing buffered data. Never
    /// writes: a read must work while the disk refuses writes.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let g = self.inner.lock();
        let end = offset + buf.len() as u64;
        if end > g.written + g.buf.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read past the end of {}", self.path.display()),
            ));
        }
        // The part already handed to the kernel, then the buffered part.
        let on_disk = g.written.saturating_sub(offset).min(buf.len() as u64) as usize;
        if on_disk > 0 {
            g.file.read_exact_at(&mut buf[..on_disk], offset)?;
        }
        if on_disk < buf.len() {
            let from = (offset + on_disk as u64 - g.written) as usize;
            let n = buf.len() - on_disk;
            buf[on_disk..].copy_from_slice(&g.buf[from..from + n]);
        }
        Ok(())
    }

    /// Writes buffered data and fsyncs if anything is unsynced. A failed
    /// write keeps the buffer (retried by the next sync); a failed fsync
    /// poisons the file.
    pub fn sync(&self) -> io::Result<()> {
        let mut g = self.inner.lock();
        if g.poisoned {
            return Err(poisoned_error(&self.path));
        }
        write_out(&self.path, &mut g)?;
        // Hundreds of files can be open (one per segment); an idle one
        // must not keep a buffer. The next append allocates again.
        g.buf = Vec::new();
        if g.unsynced {
            let r = faults::check(&self.path, FileOp::Sync).and_then(|_| g.file.sync_data());
            if let Err(e) = r {
                g.poisoned = true;
                return Err(e);
            }
            g.unsynced = false;
        }
        Ok(())
    }
}

fn write_out(path: &Path, g: &mut Inner) -> io::Result<()> {
    if g.buf.is_empty() {
        return Ok(());
    }
    faults::check(path, FileOp::Write)?;
    let at = g.written;
    g.file.write_all_at(&g.buf, at)?;
    g.written += g.buf.len() as u64;
    g.buf.clear();
    g.unsynced = true;
    Ok(())
}

/// Reads a whole file, or an empty vector if it doesn't exist.
pub fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and its parents, with [`DIR_MODE`]).
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Creates `dir` and fsyncs its parent so the entry survives a crash.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    create_dir_private(dir)?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// fsyncs a directory (its entries: created, renamed, removed files).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    faults::check(dir, FileOp::Sync)?;
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `data` atomically and durably: a temporary file,
/// fsynced, renamed over the old one, then the directory fsynced. A crash
/// leaves the old or the new content, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        faults::check(&tmp, FileOp::Write)?;
        f.write_all(data)?;
        faults::check(&tmp, FileOp::Sync)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::faults::{Fault, FaultError};

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warren-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        create_dir_private(&d).unwrap();
        d
    }

    #[test]
    fn reads_see_buffered_bytes_without_writing() {
        let d = tmp("read");
        let f = SyncFile::open(&d.join("a"), 0).unwrap();
        f.append(b"hello ").unwrap();
        f.sync().unwrap();
        f.append(b"world").unwrap();
        // Writes fail now: the buffered half must still be readable.
        faults::inject(Fault {
            op: FileOp::Write,
            path_contains: d.to_string_lossy().into_owned(),
            skip: 0,
            count: 1,
            error: FaultError::NoSpace,
        });
        let mut buf = [0u8; 11];
        f.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"hello world");
        let mut tail = [0u8; 3];
        f.read_at(7, &mut tail).unwrap();
        assert_eq!(&tail, b"orl");
        assert!(f.read_at(9, &mut [0u8; 3]).is_err());
        // The failed write keeps the buffer; the retry lands it.
        assert!(f.sync().is_err());
        f.sync().unwrap();
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"hello world");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_fsync_poisons_the_file() {
        let d = tmp("poison");
        let f = SyncFile::open(&d.join("a"), 0).unwrap();
        f.append(b"x").unwrap();
        faults::inject(Fault {
            op: FileOp::Sync,
            path_contains: d.to_string_lossy().into_owned(),
            skip: 0,
            count: 1,
            error: FaultError::Io,
        });
        assert!(f.sync().is_err());
        assert!(f.is_poisoned());
        assert!(f.append(b"y").is_err());
        assert!(
            f.sync().is_err(),
            "a poisoned file never reports a good sync"
        );
        let mut b = [0u8; 1];
        f.read_at(0, &mut b).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_and_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp("modes");
        let sub = d.join("x/y");
        create_dir_durable(&sub).unwrap();
        SyncFile::open(&sub.join("f"), 0).unwrap();
        write_atomic(&sub.join("g"), b"secret").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.join("x")), 0o700);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&sub.join("f")), 0o600);
        assert_eq!(mode(&sub.join("g")), 0o600);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
