//! Group commit: one thread writes and fsyncs every dirty file, then
//! publishes the highest ticket its fsync covered.
//!
//! A writer appends (to buffers), marks the files dirty, and only then
//! takes a ticket. The committer reads the ticket counter *before* taking
//! the dirty list, so every append made for a ticket it publishes was in
//! the buffers it synced.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing::error;

use super::files::SyncFile;
use crate::consumer::{ConnectionEvent, EventSender};

/// A position in the commit sequence; committed once `committed() >= t`.
pub type Ticket = u64;

/// Acks and delivery marks need no client reply, so they are synced on
/// this period even when no confirm waits.
const IDLE_SYNC: Duration = Duration::from_millis(200);
/// Quiet time that ends a burst, and the longest a commit waits for one.
const GATHER_STEP: Duration = Duration::from_micros(30);
const GATHER_MAX: Duration = Duration::from_micros(500);

#[derive(Debug)]
pub struct DirtyFile {
    pub file: Arc<SyncFile>,
    queued: AtomicBool,
}

impl DirtyFile {
    pub fn new(file: Arc<SyncFile>) -> Arc<DirtyFile> {
        Arc::new(DirtyFile {
            file,
            queued: AtomicBool::new(false),
        })
    }
}

#[derive(Debug, Default)]
pub struct Committer {
    issued: AtomicU64,
    committed: AtomicU64,
    dirty: Mutex<Vec<Arc<DirtyFile>>>,
    wake: Condvar,
    waiters: Mutex<Vec<(Ticket, EventSender)>>,
    /// The thread is (about to be) asleep on `wake`; set under `dirty`'s
    /// lock, so `issue` only locks when a wakeup is actually needed.
    sleeping: AtomicBool,
    lazy: Mutex<Vec<Arc<DirtyFile>>>,
    /// Clean shutdown: sync the lazy files with the next commit.
    flush_lazy: AtomicBool,
}

impl Committer {
    pub fn start() -> Arc<Committer> {
        let c = Arc::new(Committer::default());
        let runner = c.clone();
        // A plain thread: fsync blocks, and must not stall the async runtime.
        let spawned = std::thread::Builder::new()
            .name("warren-commit".into())
            .spawn(move || runner.run());
        if let Err(e) = spawned {
            error!("cannot start the commit thread: {e}");
        }
        c
    }

    /// Records that `f` has buffered data to sync.
    pub fn mark_dirty(&self, f: &Arc<DirtyFile>) {
        if !f.queued.swap(true, Ordering::AcqRel) {
            self.dirty.lock().push(f.clone());
        }
    }

    /// Records that `f` has buffered data no client waits for (ack and
    /// delivery marks): synced every [`IDLE_SYNC`], not on each commit, so
    /// a confirm costs one fsync per message file, not one more per marks
    /// file. Losing such data in a crash means a redelivery, never a loss.
    pub fn mark_lazy(&self, f: &Arc<DirtyFile>) {
        if !f.queued.swap(true, Ordering::AcqRel) {
            self.lazy.lock().push(f.clone());
        }
    }

    fn sync_files(files: &[Arc<DirtyFile>]) {
        for f in files {
            f.queued.store(false, Ordering::Release);
            if let Err(e) = f.file.sync() {
                // Nothing sensible is left to do with a disk that fails
                // fsync; log loudly, as RabbitMQ would crash here.
                error!("fsync of {} failed: {e}", f.file.path.display());
            }
        }
    }

    /// A ticket covering everything appended (and marked dirty) so far.
    pub fn issue(&self) -> Ticket {
        let t = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        if self.sleeping.load(Ordering::SeqCst) {
            // Taking the lock waits until the thread is inside `wait`, so
            // the notification can't be lost.
            let _guard = self.dirty.lock();
            self.wake.notify_one();
        }
        t
    }

    pub fn committed(&self) -> Ticket {
        self.committed.load(Ordering::Acquire)
    }

    /// Sends `ConnectionEvent::Committed` to `sink` once `ticket` is durable.
    pub fn notify(&self, ticket: Ticket, sink: EventSender) {
        let mut w = self.waiters.lock();
        // Checked under the lock the committer takes to notify, so a commit
        // can't slip between the check and the push.
        if self.committed() >= ticket {
            drop(w);
            let _ = sink.send(ConnectionEvent::Committed(self.committed()));
            return;
        }
        w.push((ticket, sink));
    }

    /// Syncs every dirty file on the calling thread (tests, tools).
    pub fn sync_once(&self) {
        let mut files = std::mem::take(&mut *self.dirty.lock());
        files.append(&mut self.lazy.lock());
        Self::sync_files(&files);
    }

    /// Syncs everything now (clean shutdown).
    pub fn sync_now(&self) {
        self.flush_lazy.store(true, Ordering::SeqCst);
        let t = self.issue();
        while self.committed() < t {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Lets a burst finish arriving before syncing: while tickets keep
    /// coming, wait a little (at most [`GATHER_MAX`]). Without this, a
    /// publisher with a window of unconfirmed messages settles into many
    /// tiny commits, one fsync each.
    fn gather(&self) {
        let start = std::time::Instant::now();
        let mut seen = self.issued.load(Ordering::Acquire);
        while start.elapsed() < GATHER_MAX {
            // Yield rather than sleep: a sleep is a timer and two context
            // switches, and its slack is longer than the step.
            let step = std::time::Instant::now();
            while step.elapsed() < GATHER_STEP {
                std::thread::yield_now();
            }
            let now = self.issued.load(Ordering::Acquire);
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    fn run(&self) {
        let mut last_lazy = std::time::Instant::now();
        loop {
            {
                let mut d = self.dirty.lock();
                self.sleeping.store(true, Ordering::SeqCst);
                if self.issued.load(Ordering::SeqCst) <= self.committed() {
                    let _ = self.wake.wait_for(&mut d, IDLE_SYNC);
                }
                self.sleeping.store(false, Ordering::SeqCst);
            }
            self.gather();
            let target = self.issued.load(Ordering::Acquire);
            let mut files = std::mem::take(&mut *self.dirty.lock());
            if last_lazy.elapsed() >= IDLE_SYNC || self.flush_lazy.swap(false, Ordering::SeqCst) {
                files.append(&mut self.lazy.lock());
                last_lazy = std::time::Instant::now();
            }
            let t0 = std::time::Instant::now();
            Self::sync_files(&files);
            tracing::trace!(
                "commit: {} ticket(s), {} file(s), {:?}",
                target - self.committed(),
                files.len(),
                t0.elapsed()
            );
            if target > self.committed() {
                self.committed.store(target, Ordering::Release);
                let mut w = self.waiters.lock();
                w.retain(|(t, sink)| {
                    if *t <= target {
                        let _ = sink.send(ConnectionEvent::Committed(target));
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
}
