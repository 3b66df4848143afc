//! The publishing side: PUBLISH (aliases, topic checks, QoS 2 dedup,
//! permissions, retained) through `VirtualHost::publish`, and PUBACK or
//! PUBREC only once the message is durable, in order.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_broker::queue::Durability;
use warren_broker::session::PublishChecks;
use warren_broker::stats::Metric;
use warren_broker::store::Ticket;
use warren_broker::vhost::Origin;
use warren_broker::Message;
use warren_protocol::mqtt::{Ack, Packet, Publish, LEVEL_5};
use warren_protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

use super::super::retained::RetainError;
use super::{topic, Session, TOPIC_ALIAS_MAX};

impl Session {
    /// A publish refused by a check: MQTT 5 gets `reason` in its
    /// acknowledgement; QoS 0, and 3.1.1 (which cannot say no), are
    /// disconnected so nothing unstored is ever acknowledged.
    fn refuse(&mut self, p: &Publish, reason: u8, why: String) -> Result<(), String> {
        match (self.level == LEVEL_5, p.qos, p.packet_id) {
            (true, 1, Some(id)) => {
                let mut a = Ack::new(id, reason);
                a.properties.reason_string = Some(why);
                self.out(Packet::PubAck(a));
                Ok(())
            }
            (true, 2, Some(id)) => {
                // A refused QoS 2 flow ends at this PUBREC.
                self.inbound = self.inbound.saturating_sub(1);
                let mut a = Ack::new(id, reason);
                a.properties.reason_string = Some(why);
                self.out(Packet::PubRec(a));
                Ok(())
            }
            _ => {
                self.disconnect(reason, why.clone());
                Err(why)
            }
        }
    }

    pub(super) async fn publish(&mut self, mut p: Publish) -> Result<(), String> {
        if !p.properties.subscription_identifiers.is_empty() {
            // MQTT-3.3.4-6: only the server sends subscription identifiers.
            self.disconnect(
                0x82,
                "a PUBLISH from a client carries a subscription identifier".into(),
            );
            return Err("subscription identifier in a client PUBLISH".into());
        }
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias == 0 || alias > TOPIC_ALIAS_MAX {
                self.disconnect(0x94, format!("topic alias {alias} is out of range"));
                return Err("topic alias out of range".into());
            }
            if p.topic.is_empty() {
                match self.aliases.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        self.disconnect(0x82, format!("unknown topic alias {alias}"));
                        return Err("unknown topic alias".into());
                    }
                }
            } else {
                self.aliases.insert(alias, p.topic.clone());
            }
        }
        if let Err(why) = topic::check_name(&p.topic) {
            self.disconnect(0x90, why.to_string());
            return Err(format!("topic name '{}': {why}", p.topic));
        }
        if p.qos == 2 {
            if let Some(id) = p.packet_id.filter(|id| self.qos2.contains(id)) {
                // A resend of one we took (its PUBREL has not come):
                // acknowledge, don't publish twice, and not before the
                // original's own PUBREC (which waits for its commit).
                self.ack_after(0, Packet::PubRec(Ack::new(id, 0)));
                return Ok(());
            }
        }
        if p.payload.len() as u64 > self.max_message_size {
            // As AMQP refuses a body over max_message_size (the packet
            // limit leaves room for the headers, not for a larger body).
            let why = format!(
                "message size {} is larger than configured max size {}",
                p.payload.len(),
                self.max_message_size
            );
            self.disconnect(0x95, why.clone());
            return Err(why);
        }
        if p.qos > 0 {
            self.inbound_taken()?;
        }
        let key = topic::to_amqp(&p.topic);
        if let Err(e) = self.check_write(&key) {
            return self.refuse(&p, 0x87, e);
        }
        if p.retain {
            // Waits for the retained store's fsync (on its own thread).
            match self.retained.stored(p.clone()).await {
                Ok(()) => {}
                // Over the retained bounds: MQTT 5 can say so (and the
                // message is not routed either); QoS 0 and 3.1.1 can't,
                // so it is routed, not retained (see retained.rs).
                Err(RetainError::Quota(why)) if self.level == LEVEL_5 && p.qos > 0 => {
                    return self.refuse(&p, 0x97, why);
                }
                Err(RetainError::Quota(why)) => {
                    tracing::warn!("MQTT {}: not retained: {why}", self.client_id);
                }
                Err(e) => return self.refuse(&p, 0x80, format!("cannot retain: {e}")),
            }
        }
        let message = Arc::new(self.to_amqp(&p, key));
        let routed = self.route(&message, p.qos)?;
        let Some(id) = p.packet_id else {
            return Ok(());
        };
        let ticket = match routed {
            Ok(ticket) => ticket,
            Err(why) => return self.refuse(&p, 0x97, why),
        };
        let ack = if p.qos == 2 {
            // Taken: from now on the id names this message until PUBREL
            // (a refused one above was never recorded, so the client may
            // use the id again for a new message).
            self.qos2.insert(id);
            Packet::PubRec(Ack::new(id, 0))
        } else {
            Packet::PubAck(Ack::new(id, 0))
        };
        self.ack_after(ticket, ack);
        Ok(())
    }

    /// Publishes to amq.topic: the commit ticket to wait for (0: none),
    /// or why a queue refused it; `Err` ends the connection.
    fn route(&mut self, message: &Arc<Message>, qos: u8) -> Result<Result<Ticket, String>, String> {
        let durability = if qos > 0 {
            Durability::Required
        } else {
            Durability::BestEffort
        };
        let out = self.vhost.publish(
            &self.exchange,
            message,
            Origin::Client,
            durability,
            &mut self.routes,
        );
        self.exchange.counters.add(Metric::PublishIn, 1);
        self.published = true;
        if out.congested.is_some() {
            self.congested = out.congested.clone();
        }
        if out.is_routed() {
            self.exchange.counters.add(Metric::PublishOut, 1);
        }
        if out.failed {
            // Never acknowledge what is not on disk.
            self.disconnect(0x80, "the message store failed".into());
            return Err("the message store failed to write a QoS 1 message".into());
        }
        if out.rejected {
            return Ok(Err("a queue refused the message (its length limit)".into()));
        }
        Ok(Ok(if out.needs_sync {
            self.vhost.issue_ticket()
        } else {
            0
        }))
    }

    /// Sends `ack` once `ticket` and everything acknowledged before it
    /// are durable (acks leave in order).
    fn ack_after(&mut self, ticket: Ticket, ack: Packet) {
        if ticket == 0 && self.acks.is_empty() {
            self.out(ack);
            return;
        }
        let ticket = self.acks.push(ticket, ack);
        if ticket > self.watching {
            self.watching = ticket;
            self.vhost.notify_commit(ticket, self.events.clone());
        } else if ticket <= self.vhost.committed() {
            // Behind replies whose commit is already done (or nothing to
            // wait for): out now, in order.
            self.committed(self.vhost.committed()).ok();
        }
    }

    pub(super) fn committed(&mut self, upto: Ticket) -> Result<(), String> {
        while let Some((t, ack)) = self.acks.pop_ready(upto) {
            if t > 0 && self.vhost.ticket_failed(t) {
                self.disconnect(0x80, "the message store failed".into());
                return Err("the message store failed to commit".into());
            }
            self.out(ack);
        }
        self.release_committed(upto)
    }

    pub(super) fn check_write(&mut self, key: &str) -> Result<(), String> {
        let name = self.exchange.name.clone();
        self.checks
            .write(&mut self.access, &name)
            .and_then(|_| PublishChecks::topic(&mut self.access, &self.exchange, key))
            .map_err(|e| e.reply_text())
    }

    /// The AMQP message an MQTT publish becomes (RabbitMQ's mapping).
    pub(super) fn to_amqp(&self, p: &Publish, key: String) -> Message {
        let mut headers = FieldTable::new();
        headers.insert("x-mqtt-publish-qos", FieldValue::U8(p.qos.min(2)));
        headers.insert("x-mqtt-dup", FieldValue::Bool(p.dup));
        if p.retain {
            // For subscriptions with retain-as-published.
            headers.insert("x-mqtt-retain", FieldValue::Bool(true));
        }
        if let Some(f) = p.properties.payload_format_indicator {
            headers.insert("x-mqtt-payload-format", FieldValue::U8(f));
        }
        // For subscribers' no-local option.
        headers.insert(
            "x-mqtt-client-id",
            FieldValue::LongStr(self.client_id_header.clone()),
        );
        let pr = &p.properties;
        for (k, v) in &pr.user_properties {
            headers.insert(k.as_str(), FieldValue::LongStr(Bytes::from(v.clone())));
        }
        let props = BasicProperties {
            delivery_mode: Some(if p.qos > 0 { 2 } else { 1 }),
            headers: Some(headers),
            content_type: pr.content_type.as_ref().map(|c| ShortStr::from(c.as_str())),
            correlation_id: pr
                .correlation_data
                .as_ref()
                .and_then(|c| std::str::from_utf8(c).ok())
                .map(ShortStr::from),
            reply_to: pr
                .response_topic
                .as_ref()
                .map(|t| ShortStr::from(topic::to_amqp(t))),
            expiration: pr
                .message_expiry_interval
                .map(|s| ShortStr::from((u64::from(s) * 1000).to_string())),
            ..BasicProperties::default()
        };
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        Message::new(
            self.exchange.name.clone(),
            ShortStr::from(key),
            props,
            raw.freeze(),
            p.payload.clone(),
        )
    }
}
