//! A file written through a buffer that the group commit flushes and
//! fsyncs, and reads that see buffered data.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// Buffered bytes beyond which an append writes through (no fsync).
const WRITE_THROUGH: usize = 1 << 20;

#[derive(Debug)]
struct Inner {
    file: File,
    buf: Vec<u8>,
    /// Bytes handed to the kernel (written), buffered bytes come after.
    written: u64,
    /// Written but not yet fsynced.
    unsynced: bool,
}

#[derive(Debug)]
pub struct SyncFile {
    pub path: PathBuf,
    inner: Mutex<Inner>,
}

impl SyncFile {
    /// Opens for appending at `len` (the valid length; anything after it,
    /// such as a torn tail, is cut off).
    pub fn open(path: &Path, len: u64) -> io::Result<SyncFile> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
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
            }),
        })
    }

    /// Appends `data`; returns the offset it starts at.
    pub fn append(&self, data: &[u8]) -> io::Result<u64> {
        let mut g = self.inner.lock();
        let at = g.written + g.buf.len() as u64;
        g.buf.extend_from_slice(data);
        if g.buf.len() >= WRITE_THROUGH {
            write_out(&mut g)?;
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

    /// Reads `buf.len()` bytes at `offset`, seeing buffered data.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut g = self.inner.lock();
        if offset + buf.len() as u64 > g.written {
            write_out(&mut g)?;
        }
        g.file.read_exact_at(buf, offset)
    }

    /// Writes buffered data and fsyncs if anything is unsynced.
    pub fn sync(&self) -> io::Result<()> {
        let mut g = self.inner.lock();
        write_out(&mut g)?;
        // Hundreds of files can be open (one per segment); an idle one
        // must not keep a buffer. The next append allocates again.
        g.buf = Vec::new();
        if g.unsynced {
            g.file.sync_data()?;
            g.unsynced = false;
        }
        Ok(())
    }
}

fn write_out(g: &mut Inner) -> io::Result<()> {
    if g.buf.is_empty() {
        return Ok(());
    }
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

/// Creates `dir` and fsyncs its parent so the entry survives a crash.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}
