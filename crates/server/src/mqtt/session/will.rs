//! The last will: checked and built when the connection ends, published
//! then, or after MQTT 5's will delay interval unless the client comes
//! back first (`Mqtt::schedule_will` keeps it, a reconnect with the same
//! client id cancels it).

use std::sync::Arc;
use std::time::Duration;

use warren_broker::access::{Access, Operation, Resource};
use warren_broker::exchange::Exchange;
use warren_broker::queue::Durability;
use warren_broker::vhost::{Origin, RouteCache};
use warren_broker::{Message, VirtualHost};
use warren_protocol::mqtt::{Publish, LEVEL_5};

use super::super::retained::RetainedStore;
use super::{topic, Session};

/// A will ready to publish: the AMQP message it becomes, and the retained
/// copy if it asked to be retained.
pub(in crate::mqtt) struct PendingWill {
    pub delay: Duration,
    client_id: String,
    vhost: Arc<VirtualHost>,
    exchange: Arc<Exchange>,
    message: Arc<Message>,
    retain: Option<(Arc<RetainedStore>, Publish)>,
    /// The session's user, checked again when the will goes: a will
    /// whose user was deleted, or lost its permission, while it waited
    /// is not published.
    access: Access,
}

impl PendingWill {
    /// Publishes the will to `amq.topic` (and retains it if asked).
    pub(in crate::mqtt) fn publish(mut self) {
        let key = self.message.routing_key.as_str();
        let allowed = self
            .access
            .check(
                Operation::Write,
                Resource::Exchange,
                &self.exchange.name.as_str(),
            )
            .and_then(|_| {
                self.access
                    .check_topic(Operation::Write, &self.exchange, &key)
            });
        if let Err(e) = allowed {
            tracing::info!(
                "MQTT {}: will not published: {}",
                self.client_id,
                e.reply_text()
            );
            return;
        }
        if let Some((store, p)) = self.retain {
            if let Err(e) = store.retain(p) {
                tracing::warn!("cannot retain the will of '{}': {e}", self.client_id);
            }
        }
        let _ = self.vhost.publish(
            &self.exchange,
            &self.message,
            Origin::Client,
            Durability::BestEffort,
            &mut RouteCache::default(),
        );
    }
}

impl Session {
    /// The will, if the client left uncleanly, had one, and may publish
    /// to its topic. Its delay is MQTT 5's will delay interval, cut to the
    /// session's expiry (a session that ends with the connection sends
    /// its will at once).
    pub(super) fn take_will(&mut self, unclean: bool) -> Option<PendingWill> {
        let w = self.will.take().filter(|_| unclean)?;
        let key = topic::to_amqp(&w.topic);
        if topic::check_name(&w.topic).is_err() || self.check_write(&key).is_err() {
            tracing::info!(
                "MQTT {}: will to '{}' not published (bad topic or no permission)",
                self.client_id,
                w.topic
            );
            return None;
        }
        let mut properties = w.properties.clone();
        let delay_secs = properties.will_delay_interval.take().unwrap_or(0);
        let delay = match (self.level == LEVEL_5, self.persistent) {
            (true, true) => {
                let session_ms = self.expires_ms.unwrap_or(u64::MAX);
                Duration::from_millis((u64::from(delay_secs) * 1000).min(session_ms))
            }
            _ => Duration::ZERO,
        };
        let p = Publish {
            dup: false,
            qos: w.qos,
            retain: w.retain,
            topic: w.topic.clone(),
            packet_id: None,
            properties,
            payload: w.payload.clone(),
        };
        let message = Arc::new(self.to_amqp(&p, key));
        Some(PendingWill {
            delay,
            client_id: self.client_id.clone(),
            vhost: self.vhost.clone(),
            exchange: self.exchange.clone(),
            message,
            retain: w.retain.then(|| (self.retained.clone(), p)),
            access: self.access.renewed(),
        })
    }
}
