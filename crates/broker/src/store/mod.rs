//! Message storage: what makes persistent messages survive restarts and
//! crashes, and what keeps large backlogs out of memory.
//!
//! Per vhost (directory `vhosts/<hash>/` in the data directory):
//! - a shared **message store** (`msgs/*.seg`): append-only segments of
//!   checksummed message records. A message routed to several queues is
//!   written once. A segment is deleted when no queue references it.
//! - a **queue index** per queue that needs one (`queues/<id>/*.idx` for
//!   durable queues, `transient/<id>/` for paged-out transient queues):
//!   fixed-size checksummed entries `(seq, message location)` in queue
//!   order, plus an `.acks` file per index segment recording deliveries and
//!   acknowledgements. An index segment whose entries are all acked is
//!   deleted with its `.acks` file.
//!
//! Durability: every write goes to a buffer; the **group commit** thread
//! writes and fsyncs all dirty files, then publishes the ticket it covered.
//! Publisher confirms and tx.commit wait for a ticket, so one fsync
//! confirms every message that arrived while the previous one ran.
//!
//! See `docs/storage.md` for the byte layouts.

pub mod commit;
pub mod faults;
pub mod files;
pub mod index;
pub mod msgstore;

pub use commit::{CommitSink, Committer, Ticket};
pub use index::QueueIndex;
pub use msgstore::{Location, MessageStore};

/// How a queue (or a delayed exchange) reaches the message store, and
/// where its index goes.
#[derive(Debug, Clone)]
pub struct StorageHandle {
    pub store: std::sync::Arc<MessageStore>,
    /// The index directory (created on first use).
    pub dir: std::path::PathBuf,
}
