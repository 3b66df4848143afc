//! What a channel needs from its connection: who is connected, where, and
//! where to write.

use std::sync::Arc;

use warren_broker::access::Access;
use warren_broker::auth::User;
use warren_broker::connections::ConnectionEntry;
use warren_broker::session::EventSender;
use warren_broker::{Broker, VirtualHost};

use crate::outbound::Outbound;
use warren_broker::session::Consumers;

/// Capabilities the client announced in connection.start-ok.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCapabilities {
    pub consumer_cancel_notify: bool,
    pub connection_blocked: bool,
    pub authentication_failure_close: bool,
}

/// One AMQP connection's context, lent to its channels: who is connected
/// to which vhost, the output buffer, the event sender its consumers get,
/// the negotiated limits, the connection-wide consumer registry and the
/// permission cache. It keeps no delivery or confirm bookkeeping: that is
/// each channel's `warren_broker::session::Session` and `Deferred`.
pub struct ConnContext {
    pub id: u64,
    pub broker: Arc<Broker>,
    pub vhost: Arc<VirtualHost>,
    pub user: Arc<User>,
    pub out: Outbound,
    /// Given to consumers so queues can push deliveries to this connection.
    pub events: EventSender,
    pub frame_max: u32,
    pub caps: ClientCapabilities,
    pub max_message_size: u64,
    /// Consumers one channel may have (`None`: no limit).
    pub consumer_max_per_channel: Option<u64>,
    pub consumers: Consumers,
    /// The user's permissions in this vhost (refreshed when they change).
    pub access: Access,
    /// This connection in the broker's registry (listings, counters).
    pub entry: Arc<ConnectionEntry>,
}
