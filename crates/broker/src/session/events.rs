//! What queues, the reply-to router, the committer and operators tell a
//! connection: events on its unbounded channel (bounded in practice by
//! transit credit). They name consumers by key, never by a protocol's
//! channel number.

use std::sync::Arc;

use crate::message::Message;

/// What a queue (or the direct reply-to router) tells a connection.
#[derive(Debug)]
pub enum ConnectionEvent {
    Deliver(Delivery),
    /// The queue went away: tell the client with basic.cancel.
    ConsumerCancelled {
        /// The consumer's key in its connection.
        consumer: u64,
    },
    /// Everything up to this commit ticket is on disk: send the confirms
    /// and tx.commit-oks that waited for it.
    Committed(u64),
    /// Close the connection with this error (an operator closed it, or
    /// its user or vhost was deleted).
    Close(crate::error::AmqpError),
}

pub type EventSender = tokio::sync::mpsc::UnboundedSender<ConnectionEvent>;

/// A connection hears of durable commits as `Committed` events.
impl crate::store::CommitSink for EventSender {
    fn committed(&self, ticket: crate::store::Ticket) -> bool {
        self.send(ConnectionEvent::Committed(ticket)).is_ok()
    }
}
pub type EventReceiver = tokio::sync::mpsc::UnboundedReceiver<ConnectionEvent>;

/// One message for one consumer. Deliberately small: the consumer is
/// named by the key its connection gave it, so no reference counts (queue,
/// flow, tag) are touched per message on two cores.
#[derive(Debug)]
pub struct Delivery {
    /// The consumer's key within its connection (which finds the
    /// session, an AMQP channel or an MQTT connection, it belongs to).
    pub consumer: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// The message's position in its queue (for requeueing in place).
    pub seq: u64,
    /// Its index entry, to be acked on disk when the client acks.
    pub disk: Option<crate::store::index::DiskRef>,
    /// When it would have expired in its queue (MQTT 5 tells subscribers
    /// the time left).
    pub expires_at: Option<std::time::Instant>,
}
