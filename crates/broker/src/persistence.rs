//! Ties the data directory together: definitions, the group committer,
//! and each vhost's message store and queue directories.
//!
//! Layout:
//! ```text
//! <data>/VERSION                    storage format version ("1")
//! <data>/definitions.json, .log     see `definitions`
//! <data>/vhosts/<hash>/name         the vhost's name
//! <data>/vhosts/<hash>/msgs/        the message store
//! <data>/vhosts/<hash>/queues/<id>/ durable queue indexes
//! <data>/vhosts/<hash>/transient/   paged-out transient queues; wiped at start
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::definitions::DefinitionsLog;
use crate::store::files::{create_dir_private, write_atomic};
use crate::store::StorageHandle;
use crate::store::{Committer, MessageStore};

pub const STORAGE_VERSION: &str = "1";

/// The file a clean shutdown leaves in the data directory.
const CLEAN_SHUTDOWN: &str = "clean_shutdown";

#[derive(Debug)]
pub struct Persistence {
    pub data_dir: PathBuf,
    pub defs: DefinitionsLog,
    pub committer: Arc<Committer>,
    next_queue_id: AtomicU64,
    /// Ids for transient queues' directories (never reused while running).
    next_transient_id: AtomicU64,
    /// Held (flock) while the broker runs.
    _lock: std::fs::File,
    /// The last run did not end with a clean shutdown.
    pub unclean_start: bool,
    /// Set once the node runs in a cluster: topology changes are refused
    /// until the cluster replicates them (see `crate::cluster`).
    pub clustered: std::sync::atomic::AtomicBool,
}

impl Persistence {
    pub fn new(
        data_dir: &Path,
        defs: DefinitionsLog,
        committer: Arc<Committer>,
        next_queue_id: u64,
        lock: std::fs::File,
    ) -> Self {
        // A clean shutdown leaves a marker; this run removes it, so a crash
        // from now on is recognised at the next start.
        let marker = data_dir.join(CLEAN_SHUTDOWN);
        let clean = marker.exists();
        if clean {
            if let Err(e) = std::fs::remove_file(&marker) {
                tracing::warn!("cannot remove {}: {e}", marker.display());
            }
            let _ = crate::store::files::fsync_dir(data_dir);
        }
        Persistence {
            data_dir: data_dir.to_path_buf(),
            defs,
            committer,
            next_queue_id: AtomicU64::new(next_queue_id),
            next_transient_id: AtomicU64::new(0),
            _lock: lock,
            unclean_start: !clean,
            clustered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records a clean shutdown (everything synced before).
    pub fn mark_clean_shutdown(&self) {
        let marker = self.data_dir.join(CLEAN_SHUTDOWN);
        if let Err(e) = crate::store::files::write_atomic(&marker, b"clean\n") {
            tracing::warn!("cannot write {}: {e}", marker.display());
        }
    }

    pub fn next_queue_id(&self) -> u64 {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn vhost_dir(&self, vhost: &str) -> PathBuf {
        let hash = Sha256::digest(vhost.as_bytes());
        let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.data_dir.join("vhosts").join(hex)
    }
}

/// A vhost's piece of the data directory.
#[derive(Debug)]
pub struct VhostStorage {
    pub dir: PathBuf,
    pub store: Arc<MessageStore>,
    pub persistence: Arc<Persistence>,
}

impl VhostStorage {
    pub fn open(persistence: Arc<Persistence>, vhost: &str) -> std::io::Result<VhostStorage> {
        let dir = persistence.vhost_dir(vhost);
        create_dir_private(&dir)?;
        let name = dir.join("name");
        if std::fs::read(&name).ok().as_deref() != Some(vhost.as_bytes()) {
            write_atomic(&name, vhost.as_bytes())?;
        }
        // Transient queues don't survive a restart; neither does their paging.
        let transient = dir.join("transient");
        if transient.exists() {
            std::fs::remove_dir_all(&transient)?;
        }
        let store = Arc::new(MessageStore::open(
            &dir.join("msgs"),
            persistence.committer.clone(),
        )?);
        store.set_unclean_start(persistence.unclean_start);
        Ok(VhostStorage {
            dir,
            store,
            persistence,
        })
    }

    /// Where a delayed exchange holds its messages: a durable one's under
    /// `delayed/` (named by a hash of the exchange name), a transient
    /// one's under `transient/` (wiped at start).
    pub fn delayed_handle(&self, exchange: &str, durable: bool) -> StorageHandle {
        let dir = if durable {
            let hash = Sha256::digest(exchange.as_bytes());
            let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
            self.dir.join("delayed").join(hex)
        } else {
            let n = self
                .persistence
                .next_transient_id
                .fetch_add(1, Ordering::Relaxed);
            self.dir.join("transient").join(format!("delayed-{n}"))
        };
        StorageHandle {
            store: self.store.clone(),
            dir,
        }
    }

    /// Where a queue's index lives.
    pub fn queue_handle(&self, id: u64, durable: bool) -> StorageHandle {
        let dir = if durable {
            self.dir.join("queues").join(id.to_string())
        } else {
            let n = self
                .persistence
                .next_transient_id
                .fetch_add(1, Ordering::Relaxed);
            self.dir.join("transient").join(n.to_string())
        };
        StorageHandle {
            store: self.store.clone(),
            dir,
        }
    }
}
