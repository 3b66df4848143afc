//! SUBSCRIBE and UNSUBSCRIBE: bindings from `amq.topic` to the client's
//! queue for the granted QoS, with the permissions a queue declare, bind
//! and consume need; then the retained messages that match.

use std::sync::Arc;

use warren_broker::access::{Operation, Resource};
use warren_broker::session::{Consumer, ConsumerFlow};
use warren_broker::vhost::QueueSpec;
use warren_broker::Queue;
use warren_protocol::mqtt::{Packet, SubAck, Subscribe, Unsubscribe, LEVEL_5};
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::{
    legacy_shared_queue_name, member, plain_filter, queue_name, shared_queue_name, topic, Session,
    Shared, Sub, OWNER,
};

/// Whether a queue belongs to the session's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owned {
    Yes,
    No,
}

/// Where a subscription's messages go: the session's own queue for its
/// QoS, or a shared group's queue.
struct Target {
    queue: ShortStr,
    filter: String,
    shared: bool,
    /// A shared subscription's group.
    group: Option<String>,
}

impl Session {
    fn target(&self, filter: &str, qos: u8) -> Result<Target, &'static str> {
        if let Some(rest) = filter.strip_prefix("$share/") {
            let Some((group, f)) = rest.split_once('/') else {
                return Err("shared subscription without a filter");
            };
            if group.is_empty() || group.contains(['+', '#']) {
                return Err("bad share name");
            }
            topic::check_filter(f)?;
            if "mqtt-shared--".len() + group.len() + f.len() > topic::MAX_LEN {
                return Err("shared subscription's queue name would pass 255 bytes");
            }
            return Ok(Target {
                queue: self.shared_queue(group, f),
                filter: f.to_string(),
                shared: true,
                group: Some(group.to_string()),
            });
        }
        topic::check_filter(filter)?;
        Ok(Target {
            queue: queue_name(&self.client_id, qos),
            filter: filter.to_string(),
            shared: false,
            group: None,
        })
    }

    /// A shared group's queue: its own name, or the one an earlier
    /// release gave it if that queue exists, is durable and is bound only
    /// by this group's members for this filter (a legacy name two groups
    /// could share is not taken over).
    fn shared_queue(&self, group: &str, filter: &str) -> ShortStr {
        let name = shared_queue_name(group, filter);
        if self.vhost.queue(&name).is_ok() {
            return name;
        }
        let legacy = legacy_shared_queue_name(group, filter);
        if self.vhost.queue(&legacy).is_err() {
            return name;
        }
        let key = topic::to_amqp(filter);
        let bindings = self
            .exchange
            .bindings_where(|b| b.destination.name() == &legacy);
        let ours = bindings.iter().all(|b| {
            member(&b.arguments).is_some()
                && b.routing_key.as_str() == key.as_str()
                && matches!(b.arguments.get("x-mqtt-shared-group"),
                    Some(FieldValue::LongStr(g)) if g.as_ref() == group.as_bytes())
        });
        if !bindings.is_empty() && ours {
            legacy
        } else {
            name
        }
    }

    /// A session queue's arguments: its owner (the session's own queues,
    /// not a shared group's) and its expiry.
    pub(super) fn queue_arguments(&self, owned: Owned) -> FieldTable {
        let mut arguments = FieldTable::new();
        if owned == Owned::Yes {
            arguments.insert(OWNER, FieldValue::LongStr(self.user.clone()));
        }
        if let Some(ms) = self.expires_ms {
            arguments.insert(
                "x-expires",
                FieldValue::I64(i64::try_from(ms).unwrap_or(i64::MAX)),
            );
        }
        arguments
    }

    /// Declares (or finds) a subscription queue and consumes from it.
    fn queue_for(&mut self, t: &Target, qos: u8) -> Result<Arc<Queue>, String> {
        if let Some((q, _)) = self.queues.get(&t.queue) {
            return Ok(q.clone());
        }
        // The session's own queue belongs to its user; a group's, to none.
        let owned = if t.shared { Owned::No } else { Owned::Yes };
        let arguments = self.queue_arguments(owned);
        let spec = QueueSpec {
            name: t.queue.clone(),
            server_named: false,
            passive: false,
            durable: self.persistent,
            // A shared group's queue outlives any one member, and goes
            // with the last (unless a persistent session keeps it).
            exclusive: !self.persistent && !t.shared,
            auto_delete: t.shared && !self.persistent,
            arguments,
        };
        let q = match self.vhost.declare_queue(&spec, self.id) {
            Ok((q, _)) => q,
            // Made by an earlier connection (or another group member)
            // with other arguments: use it as it is.
            Err(_) if self.persistent || t.shared => {
                self.vhost.queue(&t.queue).map_err(|e| e.reply_text())?
            }
            Err(e) => return Err(e.reply_text()),
        };
        self.consume(qos, q.clone())?;
        Ok(q)
    }

    pub(super) fn consume(&mut self, qos: u8, q: Arc<Queue>) -> Result<(), String> {
        let no_ack = qos == 0;
        let tag = ShortStr::from(format!("mqtt-{}", q.name));
        let flow = Arc::new(ConsumerFlow::new(
            if no_ack { 0 } else { self.prefetch },
            self.delivery.flow().clone(),
        ));
        let key = self.consumers.next_key();
        let dead = q
            .add_consumer(Consumer {
                tag: tag.clone(),
                session: 0,
                key,
                connection_id: self.id,
                no_ack,
                exclusive: false,
                priority: 0,
                flow: flow.clone(),
                sink: self.events.clone(),
            })
            .map_err(|e| e.reply_text())?;
        self.vhost.dead_letter(dead);
        let added = self
            .consumers
            .add(0, tag.clone(), Some(q.clone()), flow, no_ack);
        debug_assert_eq!(added, key);
        self.delivery.add_consumer(tag, key);
        self.granted.insert(key, qos);
        self.queues.insert(q.name.clone(), (q, key));
        Ok(())
    }

    /// Cancels this session's consumer on `queue`; what was sent to it
    /// and not acknowledged goes back when the session ends.
    pub(super) fn stop_consuming(&mut self, queue: &ShortStr) {
        if let Some((q, key)) = self.queues.remove(queue) {
            self.delivery
                .remove_consumer(&ShortStr::from(format!("mqtt-{}", q.name)));
            let (gone, dead) = q.remove_consumer(self.id, key);
            self.vhost.dead_letter(dead);
            self.consumers.retire(key);
            if gone {
                if let Err(e) = self.vhost.remove_queue(&q) {
                    tracing::warn!("cannot auto-delete {}: {e}", q.describe());
                }
            }
        }
    }

    /// Permission to declare, bind to and consume from the queue, and to
    /// read `key` from amq.topic (topic permissions included).
    fn check_subscribe(&mut self, queue: &str, key: &str) -> Result<(), String> {
        let a = &mut self.access;
        a.check(Operation::Configure, Resource::Queue, queue)
            .and_then(|_| a.check(Operation::Write, Resource::Queue, queue))
            .and_then(|_| a.check(Operation::Read, Resource::Queue, queue))
            .and_then(|_| a.check(Operation::Read, Resource::Exchange, "amq.topic"))
            .and_then(|_| a.check_topic(Operation::Read, &self.exchange, key))
            .map_err(|e| e.reply_text())
    }

    pub(super) async fn subscribe(&mut self, s: Subscribe) -> Result<(), String> {
        let v5 = self.level == LEVEL_5;
        let id = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        for (filter, opts) in &s.filters {
            let qos = opts.qos.min(2);
            let t = match self.target(filter, qos) {
                Ok(t) => t,
                Err(why) => {
                    tracing::debug!("MQTT {}: filter '{filter}': {why}", self.client_id);
                    codes.push(if v5 { 0x8f } else { 0x80 });
                    continue;
                }
            };
            if t.shared && opts.no_local {
                // MQTT-3.8.3-4: a protocol error.
                self.disconnect(0x82, "no local on a shared subscription".into());
                return Err("no local on a shared subscription".into());
            }
            let key = topic::to_amqp(&t.filter);
            if let Err(e) = self.check_subscribe(&t.queue.as_str(), &key) {
                tracing::warn!(
                    "MQTT {}: subscribe to '{filter}' refused: {e}",
                    self.client_id
                );
                codes.push(if v5 { 0x87 } else { 0x80 });
                continue;
            }
            let sub = Sub {
                no_local: opts.no_local,
                rap: opts.retain_as_published,
                id,
                queue: t.queue.clone(),
                shared: t.group.clone().map(|group| Shared {
                    group,
                    qos,
                    owner: Some(self.user.clone()),
                }),
            };
            let bound = self.queue_for(&t, qos).and_then(|q| {
                self.vhost
                    .bind(
                        &self.exchange.name,
                        &q.name,
                        true,
                        ShortStr::from(key.as_str()),
                        sub.arguments(&self.client_id),
                        self.id,
                    )
                    .map_err(|e| e.reply_text())
            });
            if let Err(e) = bound {
                tracing::warn!(
                    "MQTT {}: subscribe to '{filter}' failed: {e}",
                    self.client_id
                );
                codes.push(0x80);
                continue;
            }
            self.sub_extras |= sub.has_extras();
            let existed = self.subs.insert(filter.clone(), sub.clone());
            if let Some(old) = existed.as_ref() {
                if old.queue != sub.queue
                    || old.arguments(&self.client_id) != sub.arguments(&self.client_id)
                {
                    // The same filter with other options replaces the old binding.
                    self.unbind(&t.filter, old);
                }
            }
            codes.push(qos);
            let send = !t.shared
                && match opts.retain_handling {
                    0 => true,
                    1 => existed.is_none(),
                    _ => false,
                };
            if send {
                retained.push((t.filter, qos, id));
            }
        }
        self.out(Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Default::default(),
            codes,
        }));
        // Index entries first, then their payloads read off the disk on
        // the blocking pool, a bounded batch at a time (retained.rs), as
        // the window lets them go (deliver.rs).
        for (filter, qos, id) in retained {
            self.queue_retained(filter, qos, id);
        }
        self.pump_retained().await;
        Ok(())
    }

    /// Removes the binding of `sub` (`filter` without any `$share/` part).
    pub(super) fn unbind(&mut self, filter: &str, sub: &Sub) {
        let key = ShortStr::from(topic::to_amqp(filter));
        if let Err(e) = self.vhost.unbind(
            &self.exchange.name,
            &sub.queue,
            true,
            key,
            sub.arguments(&self.client_id),
            self.id,
        ) {
            tracing::warn!(
                "MQTT {}: unbind '{filter}': {}",
                self.client_id,
                e.reply_text()
            );
        }
    }

    pub(super) fn unsubscribe(&mut self, u: Unsubscribe) -> Result<(), String> {
        let mut codes = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            match self.subs.remove(f) {
                Some(sub) => {
                    let plain = plain_filter(f);
                    self.unbind(plain, &sub);
                    // A shared group: only this member's binding went (the
                    // group's queue keeps the others'); its consumer goes too.
                    let shared = plain.len() != f.len();
                    if shared && !self.subs.values().any(|s| s.queue == sub.queue) {
                        self.stop_consuming(&sub.queue);
                    }
                    codes.push(0x00);
                }
                None => codes.push(0x11),
            }
        }
        self.out(Packet::UnsubAck(SubAck {
            packet_id: u.packet_id,
            properties: Default::default(),
            codes,
        }));
        Ok(())
    }
}
