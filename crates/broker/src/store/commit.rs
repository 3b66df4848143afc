//! Group commit: one thread writes and fsyncs every dirty file, then
//! publishes the highest ticket its fsync covered.
//!
//! A writer appends (to buffers), marks the files dirty, and only then
//! takes a ticket. The committer reads the ticket counter *before* taking
//! the dirty list, so every append made for a ticket it publishes was in
//! the buffers it synced.
//!
//! A commit whose writes or fsyncs fail still ends its tickets, as
//! *failed*: [`Committer::ticket_failed`] tells the waiting channels to
//! nack what they would have confirmed. Files whose write failed stay
//! dirty and are retried with the next commit; files whose fsync failed
//! are poisoned (see `files.rs`) and never trusted again.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing::{debug, error, info};

use super::files::SyncFile;

/// A position in the commit sequence; committed once `committed() >= t`.
pub type Ticket = u64;

/// Who is told that a ticket is durable. The store knows nothing of
/// connections: a connection's event channel implements this
/// (`consumer.rs`), as does anything else that waits for a commit.
pub trait CommitSink: Send + Sync + 'static {
    /// Everything up to `ticket` is durable. Returns false when nobody
    /// listens any more.
    fn committed(&self, ticket: Ticket) -> bool;
}

/// Acks and delivery marks need no client reply, so they are synced on
/// this period even when no confirm waits.
const IDLE_SYNC: Duration = Duration::from_millis(200);
/// Quiet time that ends a burst, and the longest a commit waits for one.
const GATHER_STEP: Duration = Duration::from_micros(30);
const GATHER_MAX: Duration = Duration::from_micros(500);
/// Failed ticket ranges remembered; channels look a ticket up within
/// milliseconds of its commit, so old ranges can go.
const MAX_FAILED_RANGES: usize = 1024;

/// Called on every storage failure (the broker raises the disk alarm).
pub type FailureHook = Box<dyn Fn(&io::Error) + Send + Sync>;

#[derive(Debug)]
pub struct DirtyFile {
    pub file: Arc<SyncFile>,
    queued: AtomicBool,
    /// The last sync failed: a retry that fails again (every commit, while
    /// a disk stays full) is logged at debug, not once more as an error.
    failing: AtomicBool,
}

impl DirtyFile {
    pub fn new(file: Arc<SyncFile>) -> Arc<DirtyFile> {
        Arc::new(DirtyFile {
            file,
            queued: AtomicBool::new(false),
            failing: AtomicBool::new(false),
        })
    }
}

#[derive(Default)]
pub struct Committer {
    issued: AtomicU64,
    committed: AtomicU64,
    dirty: Mutex<Vec<Arc<DirtyFile>>>,
    wake: Condvar,
    waiters: Mutex<Vec<(Ticket, Box<dyn CommitSink>)>>,
    /// The thread is (about to be) asleep on `wake`; set under `dirty`'s
    /// lock, so `issue` only locks when a wakeup is actually needed.
    sleeping: AtomicBool,
    lazy: Mutex<Vec<Arc<DirtyFile>>>,
    /// Clean shutdown: sync the lazy files with the next commit.
    flush_lazy: AtomicBool,
    /// Ticket ranges `(after, upto]` whose commit failed, oldest first.
    failed: Mutex<std::collections::VecDeque<(Ticket, Ticket)>>,
    any_failed: AtomicBool,
    on_failure: OnceLock<FailureHook>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("issued", &self.issued)
            .field("committed", &self.committed)
            .field("any_failed", &self.any_failed)
            .finish_non_exhaustive()
    }
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

    /// Syncs `files`; returns the first error. A file whose write failed
    /// (not poisoned) goes back on `retry`, to be written again.
    fn sync_files(
        &self,
        files: &[Arc<DirtyFile>],
        retry: &Mutex<Vec<Arc<DirtyFile>>>,
    ) -> Option<io::Error> {
        let mut first = None;
        for f in files {
            f.queued.store(false, Ordering::Release);
            if let Err(e) = f.file.sync() {
                if f.failing.swap(true, Ordering::AcqRel) {
                    debug!("sync of {} failed again: {e}", f.file.path.display());
                } else {
                    error!("sync of {} failed: {e}", f.file.path.display());
                }
                self.report_failure(&e);
                if !f.file.is_poisoned() && !f.queued.swap(true, Ordering::AcqRel) {
                    retry.lock().push(f.clone());
                }
                first.get_or_insert(e);
            } else if f.failing.swap(false, Ordering::AcqRel) {
                info!("sync of {} succeeded again", f.file.path.display());
            }
        }
        first
    }

    /// Sets what happens on a storage failure (once; later calls are
    /// ignored).
    pub fn set_failure_hook(&self, hook: FailureHook) {
        let _ = self.on_failure.set(hook);
    }

    /// A write or fsync failed somewhere in the store.
    pub fn report_failure(&self, e: &io::Error) {
        if let Some(h) = self.on_failure.get() {
            h(e);
        }
    }

    /// Whether the commit that ended `ticket` failed: what it covered is
    /// not known to be on disk and must not be confirmed.
    pub fn ticket_failed(&self, ticket: Ticket) -> bool {
        if !self.any_failed.load(Ordering::Acquire) || ticket == 0 {
            return false;
        }
        self.failed
            .lock()
            .iter()
            .any(|&(after, upto)| ticket > after && ticket <= upto)
    }

    fn record_failure(&self, after: Ticket, upto: Ticket) {
        let mut f = self.failed.lock();
        match f.back_mut() {
            Some(last) if last.1 == after => last.1 = upto,
            _ => f.push_back((after, upto)),
        }
        while f.len() > MAX_FAILED_RANGES {
            f.pop_front();
        }
        self.any_failed.store(true, Ordering::Release);
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

    /// A ticket that, once committed, also covers the ack and delivery
    /// marks written so far (synced with the next commit rather than on
    /// the [`IDLE_SYNC`] period): for an operator who is told messages are
    /// gone (the HTTP API's get, move and purge). The commit that ends it
    /// reads the flag after this store, so it, or an earlier commit that
    /// saw the flag, synced the marks files.
    pub fn issue_with_marks(&self) -> Ticket {
        self.flush_lazy.store(true, Ordering::SeqCst);
        self.issue()
    }

    /// Tells `sink` once `ticket` is durable.
    pub fn notify(&self, ticket: Ticket, sink: Box<dyn CommitSink>) {
        let mut w = self.waiters.lock();
        // Checked under the lock the committer takes to notify, so a commit
        // can't slip between the check and the push.
        if self.committed() >= ticket {
            drop(w);
            sink.committed(self.committed());
            return;
        }
        w.push((ticket, sink));
    }

    /// Syncs every dirty file on the calling thread (tests, tools);
    /// returns the first error.
    pub fn sync_once(&self) -> io::Result<()> {
        let mut files = std::mem::take(&mut *self.dirty.lock());
        files.append(&mut self.lazy.lock());
        match self.sync_files(&files, &self.dirty) {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
            let files = std::mem::take(&mut *self.dirty.lock());
            let t0 = std::time::Instant::now();
            let failed = self.sync_files(&files, &self.dirty);
            // Marks files hold no confirmed data: their failure costs a
            // redelivery at worst, and never fails a ticket.
            if last_lazy.elapsed() >= IDLE_SYNC || self.flush_lazy.swap(false, Ordering::SeqCst) {
                let lazy = std::mem::take(&mut *self.lazy.lock());
                self.sync_files(&lazy, &self.lazy);
                last_lazy = std::time::Instant::now();
            }
            tracing::trace!(
                "commit: {} ticket(s), {} file(s), {:?}",
                target.saturating_sub(self.committed()),
                files.len(),
                t0.elapsed()
            );
            let prev = self.committed();
            if target > prev {
                if failed.is_some() {
                    self.record_failure(prev, target);
                }
                self.committed.store(target, Ordering::Release);
                let mut w = self.waiters.lock();
                w.retain(|(t, sink)| {
                    if *t <= target {
                        sink.committed(target);
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
}
