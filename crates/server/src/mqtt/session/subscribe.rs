//! SUBSCRIBE and UNSUBSCRIBE: bindings from `amq.topic` to the client's
//! queue for the granted QoS, with the permissions a queue declare, bind
//! and consume need; then the retained messages that match.

use std::sync::Arc;

use warren_broker::access::{Operation, Resource};
use warren_broker::consumer::{Consumer, ConsumerFlow};
use warren_broker::vhost::QueueSpec;
use warren_broker::Queue;
use warren_protocol::mqtt::{Packet, SubAck, Subscribe, Unsubscribe, LEVEL_5};
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::{queue_name, topic, Session};

impl Session {
    /// Declares (or finds) the queue for `qos` and consumes from it.
    fn queue_for(&mut self, qos: u8) -> Result<Arc<Queue>, String> {
        if let Some((q, _)) = &self.queues[usize::from(qos)] {
            return Ok(q.clone());
        }
        let name = queue_name(&self.client_id, qos);
        let mut arguments = FieldTable::new();
        if let Some(ms) = self.expires_ms {
            arguments.insert(
                "x-expires",
                FieldValue::I64(i64::try_from(ms).unwrap_or(i64::MAX)),
            );
        }
        let spec = QueueSpec {
            name: name.clone(),
            server_named: false,
            passive: false,
            durable: self.persistent,
            exclusive: !self.persistent,
            auto_delete: false,
            arguments,
        };
        let q = match self.vhost.declare_queue(&spec, self.id) {
            Ok((q, _)) => q,
            // A persistent session's queue from an earlier connection with
            // other arguments: use it as it is.
            Err(_) if self.persistent => self.vhost.queue(&name).map_err(|e| e.reply_text())?,
            Err(e) => return Err(e.reply_text()),
        };
        self.consume(qos, q.clone())?;
        Ok(q)
    }

    pub(super) fn consume(&mut self, qos: u8, q: Arc<Queue>) -> Result<(), String> {
        let no_ack = qos == 0;
        let tag = ShortStr::from(format!("mqtt-qos{qos}"));
        let flow = Arc::new(ConsumerFlow::new(
            if no_ack { 0 } else { self.prefetch },
            self.flow.clone(),
        ));
        let key = self.consumers.next_key();
        let dead = q
            .add_consumer(Consumer {
                tag: tag.clone(),
                channel: 0,
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
        let added = self.consumers.add(tag, Some(q.clone()), flow, no_ack);
        debug_assert_eq!(added, key);
        self.queues[usize::from(qos)] = Some((q, key));
        Ok(())
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

    pub(super) fn subscribe(&mut self, s: Subscribe) -> Result<(), String> {
        let v5 = self.level == LEVEL_5;
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        for (filter, opts) in &s.filters {
            if filter.starts_with("$share/") {
                codes.push(if v5 { 0x9e } else { 0x80 });
                continue;
            }
            if let Err(why) = topic::check_filter(filter) {
                tracing::debug!("MQTT {}: filter '{filter}': {why}", self.client_id);
                codes.push(if v5 { 0x8f } else { 0x80 });
                continue;
            }
            let qos = opts.qos.min(1);
            let key = topic::to_amqp(filter);
            let name = queue_name(&self.client_id, qos);
            if let Err(e) = self.check_subscribe(&name.as_str(), &key) {
                tracing::warn!(
                    "MQTT {}: subscribe to '{filter}' refused: {e}",
                    self.client_id
                );
                codes.push(if v5 { 0x87 } else { 0x80 });
                continue;
            }
            let bound = self.queue_for(qos).and_then(|q| {
                self.vhost
                    .bind(
                        &self.exchange.name,
                        &q.name,
                        true,
                        ShortStr::from(key.as_str()),
                        FieldTable::new(),
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
            let existed = self.subs.insert(filter.clone(), qos);
            if let Some(old) = existed.filter(|old| *old != qos) {
                // The same filter at another QoS replaces the old binding.
                self.unbind(filter, old);
            }
            codes.push(qos);
            let send = match opts.retain_handling {
                0 => true,
                1 => existed.is_none(),
                _ => false,
            };
            if send {
                retained.push((filter.clone(), qos));
            }
        }
        self.out(Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Default::default(),
            codes,
        }));
        for (filter, qos) in retained {
            for p in self.retained.matching(&filter) {
                let q = p.qos.min(qos);
                self.send_retained(&p, q);
            }
        }
        Ok(())
    }

    fn unbind(&mut self, filter: &str, qos: u8) {
        let name = queue_name(&self.client_id, qos);
        let key = ShortStr::from(topic::to_amqp(filter));
        if let Err(e) = self.vhost.unbind(
            &self.exchange.name,
            &name,
            true,
            key,
            FieldTable::new(),
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
                Some(qos) => {
                    self.unbind(f, qos);
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
