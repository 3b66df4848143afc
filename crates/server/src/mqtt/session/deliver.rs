//! The consuming side: deliveries from the subscription queues become
//! PUBLISH packets; PUBACKs settle them; what is left at the end goes
//! back to its queue (a persistent session gets it again, as DUP).

use std::collections::VecDeque;
use std::time::Instant;

use warren_broker::session::{ConnectionEvent, Delivery, EventReceiver};
use warren_broker::Message;
use warren_protocol::mqtt::{Properties, Publish, LEVEL_5};
use warren_protocol::{FieldValue, ShortStr};

use super::{topic, Session};

/// The QoS a message was published with: MQTT's header, else AMQP's
/// delivery mode (persistent is QoS 1), as RabbitMQ maps them.
/// Whether `client_id` published `m` (for no-local).
fn published_by(m: &Message, client_id: &str) -> bool {
    matches!(
        m.headers.as_deref().and_then(|h| h.get("x-mqtt-client-id")),
        Some(FieldValue::LongStr(b)) if b.as_ref() == client_id.as_bytes()
    )
}

/// Whether `m` was published with RETAIN (for retain-as-published).
fn published_retained(m: &Message) -> bool {
    matches!(
        m.headers.as_deref().and_then(|h| h.get("x-mqtt-retain")),
        Some(FieldValue::Bool(true))
    )
}

fn published_qos(m: &Message) -> u8 {
    match m
        .headers
        .as_deref()
        .and_then(|h| h.get("x-mqtt-publish-qos"))
    {
        Some(v) => u8::try_from(v.as_i64().unwrap_or(0).clamp(0, 2)).unwrap_or(0),
        None => u8::from(m.is_persistent()),
    }
}

impl Session {
    /// One broker event (deliveries, commits, a deleted queue).
    pub(in crate::mqtt) fn event(&mut self, ev: ConnectionEvent) -> Result<(), String> {
        match ev {
            ConnectionEvent::Deliver(d) => self.deliver(d),
            ConnectionEvent::Committed(t) => self.committed(t),
            ConnectionEvent::ConsumerCancelled { .. } => {
                self.disconnect(0x98, "a subscription queue was deleted".into());
                Err("a subscription queue was deleted".into())
            }
            ConnectionEvent::Close(e) => Err(e.reply_text()),
        }
    }

    /// After a batch of events: returns transit credit to the queues.
    pub(in crate::mqtt) fn flush_consumers(&mut self) {
        self.consumers.flush(&self.vhost);
    }

    /// A packet id no message in flight has. The window keeps far fewer
    /// than 65,535 in flight, so one is found within a few steps; the
    /// search is bounded all the same (`None`: every id is taken).
    /// QoS 1 and retained messages take ids below [`super::qos2::QOS2_IDS`]
    /// in turn; QoS 2 deliveries take theirs from their queue position
    /// above it (`qos2.rs`).
    fn next_packet_id(&mut self) -> Option<u16> {
        for _ in 0..super::qos2::QOS2_IDS {
            self.next_id = self.next_id % (super::qos2::QOS2_IDS - 1) + 1;
            if !self.inflight.contains_key(&self.next_id) {
                return Some(self.next_id);
            }
        }
        None
    }

    fn deliver(&mut self, d: Delivery) -> Result<(), String> {
        let topic = topic::from_amqp(&d.message.routing_key.as_str());
        let mut ids = Vec::new();
        let mut rap = false;
        // Section 4.7.2: a wildcard at the start of a filter matches no
        // `$` topic (AMQP's `#` would); MQTT 5 options need the matching
        // subscriptions too.
        let wanted = if topic.starts_with('$') || self.sub_extras {
            let queue = self
                .consumers
                .get(d.consumer)
                .and_then(|e| e.queue.as_ref().map(|q| q.name.clone()));
            let from_self = self.sub_extras && published_by(&d.message, &self.client_id);
            let mut wanted = false;
            for (filter, sub) in &self.subs {
                let on_queue = queue.as_ref() == Some(&sub.queue);
                let plain = super::plain_filter(filter);
                if on_queue && topic::matches(plain, &topic) && !(sub.no_local && from_self) {
                    wanted = true;
                    ids.extend(sub.id);
                    rap |= sub.rap;
                }
            }
            wanted
        } else {
            true
        };
        let Some((out, d)) = self
            .delivery
            .deliver(&mut self.consumers, &self.vhost, d, true)
            .map(|(out, d)| ((out.tag, out.no_ack), d))
        else {
            return Ok(());
        };
        let (tag, no_ack) = out;
        let granted = self.granted.get(&d.consumer).copied().unwrap_or(1);
        let qos = if no_ack {
            0
        } else {
            published_qos(&d.message).min(granted)
        };
        // The queue's name, for QoS 2's packet ids and markers only.
        let from = (qos == 2)
            .then(|| {
                self.consumers
                    .get(d.consumer)
                    .and_then(|e| e.queue.as_ref().map(|q| q.name.clone()))
            })
            .flatten();
        if qos == 2 {
            if let Some(q) = &from {
                if self.released_keys.remove(&(q.clone(), d.seq)) {
                    // The client has it (its PUBREC came before a restart):
                    // settled, not sent again.
                    self.settle(tag);
                    return Ok(());
                }
            }
        }
        if !wanted || (!no_ack && qos == 0) {
            // Settled here: not for the client, or sent at QoS 0 from a QoS 1 queue.
            if !no_ack {
                self.settle(tag);
            }
            if !wanted {
                return Ok(());
            }
        }
        let packet_id = if qos > 0 {
            let queue = from.unwrap_or_default();
            let id = if qos == 2 {
                self.qos2_packet_id(&queue, d.seq)
            } else {
                self.next_packet_id()
            };
            let Some(id) = id else {
                // Unreachable while the window holds (see WINDOW): the
                // message goes back to its queue rather than spin.
                self.requeue_one(tag);
                return Ok(());
            };
            let entry = if qos == 2 {
                super::Inflight::Received {
                    tag,
                    queue,
                    seq: d.seq,
                }
            } else {
                super::Inflight::Acked(tag)
            };
            self.inflight.insert(id, entry);
            Some(id)
        } else {
            None
        };
        let mut p = self.to_mqtt(&d.message, topic, qos, packet_id, d.redelivered);
        p.retain = rap && published_retained(&d.message);
        if let (LEVEL_5, Some(at)) = (self.level, d.expires_at) {
            // MQTT 5 (3.3.2.3.3): the expiry interval less the time it waited.
            let left = at.saturating_duration_since(Instant::now());
            let secs = left.as_millis().div_ceil(1000).max(1);
            p.properties.message_expiry_interval = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        }
        if self.level == LEVEL_5 {
            ids.sort_unstable();
            ids.dedup();
            p.properties.subscription_identifiers = ids;
        }
        if !self.fits_client(&p) {
            // Larger than the client takes: dropped as if sent.
            if let Some(id) = packet_id {
                self.dropped(id);
            }
            return Ok(());
        }
        self.alias_out(&mut p);
        self.out_publish(&p);
        Ok(())
    }

    /// The PUBLISH a stored message becomes (for MQTT 5, its properties
    /// mapped back from AMQP's).
    pub(super) fn to_mqtt(
        &self,
        m: &Message,
        topic: String,
        qos: u8,
        packet_id: Option<u16>,
        dup: bool,
    ) -> Publish {
        let mut properties = Properties::default();
        if self.level == LEVEL_5 {
            let p = m.properties();
            if let Some(FieldValue::U8(f)) = p
                .headers
                .as_ref()
                .and_then(|h| h.get("x-mqtt-payload-format"))
            {
                properties.payload_format_indicator = Some(*f);
            }
            properties.content_type = p.content_type.map(|c| c.to_string());
            properties.correlation_data = p
                .correlation_id
                .map(|c| bytes::Bytes::copy_from_slice(c.as_bytes()));
            properties.response_topic = p.reply_to.map(|r| topic::from_amqp(&r.as_str()));
            if let Some(h) = p.headers {
                for (k, v) in h.iter() {
                    if k.starts_with("x-") {
                        continue;
                    }
                    if let FieldValue::LongStr(b) = v {
                        if let Ok(s) = std::str::from_utf8(b) {
                            properties
                                .user_properties
                                .push((k.to_string(), s.to_string()));
                        }
                    }
                }
            }
        }
        Publish {
            dup: dup && qos > 0,
            qos,
            retain: false,
            topic,
            packet_id,
            properties,
            payload: m.body.clone(),
        }
    }

    /// PUBACK (or PUBCOMP): the message is settled in its queue (a
    /// retained one just frees its place in the window).
    pub(super) fn acked(&mut self, id: u16) {
        match self.inflight.remove(&id) {
            Some(super::Inflight::Acked(tag)) => self.settle(tag),
            Some(super::Inflight::Retained) => {
                self.delivery.free_place(&self.consumers, &self.vhost)
            }
            // A PUBACK for a QoS 2 message is a client's mistake: kept.
            Some(other) => {
                self.inflight.insert(id, other);
            }
            None => {}
        }
    }

    /// Puts one delivery back in its queue.
    fn requeue_one(&mut self, tag: u64) {
        if let Some(items) = self.delivery.take(tag, false) {
            self.delivery.requeue(&self.consumers, &self.vhost, items);
        }
    }

    /// Acknowledges one delivery in its queue.
    pub(super) fn settle(&mut self, tag: u64) {
        if let Some(items) = self.delivery.take(tag, false) {
            self.delivery.ack(&self.consumers, &self.vhost, items);
        }
    }

    /// Queues the retained messages matching a subscription's filter:
    /// they go out as the window and the output allow
    /// ([`Session::pump_retained`]). Subscribing to the same filter again
    /// replaces what still waits for it.
    pub(super) fn queue_retained(&mut self, filter: String, qos: u8, id: Option<u32>) {
        let batch = super::RetainedBatch {
            qos,
            id,
            entries: None,
            loaded: VecDeque::new(),
        };
        if self
            .retained_waiting
            .insert(filter.clone(), batch)
            .is_none()
        {
            self.retained_order.push_back(filter);
        }
    }

    /// Whether retained messages wait and the next could go out now (or
    /// needs matching or reading first).
    pub(in crate::mqtt) fn retained_ready(&self) -> bool {
        self.pending_out() < super::OUT_HIGH_WATER
            && self.retained_order.front().is_some_and(|f| {
                self.retained_waiting.get(f).is_none_or(|b| {
                    b.loaded.front().is_none_or(|p| {
                        p.qos.min(b.qos) == 0
                            || self.delivery.flow().in_window() < self.delivery.flow().window()
                    })
                })
            })
    }

    /// Sends waiting retained messages while the window has room and the
    /// output is below its high-water mark; per call at most one filter
    /// is matched and one batch of payloads read (on the blocking pool).
    pub(in crate::mqtt) async fn pump_retained(&mut self) {
        let mut worked = false;
        while self.pending_out() < super::OUT_HIGH_WATER {
            let Some(filter) = self.retained_order.front().cloned() else {
                return;
            };
            let Some(batch) = self.retained_waiting.get_mut(&filter) else {
                self.retained_order.pop_front();
                continue;
            };
            if batch.loaded.is_empty() {
                if worked {
                    return;
                }
                worked = true;
                if batch.entries.is_none() {
                    let found = self.retained.matching(&filter).await;
                    if let Some(b) = self.retained_waiting.get_mut(&filter) {
                        b.entries = Some(found.into());
                    }
                    continue;
                }
                let Some(entries) = batch.entries.as_mut().filter(|e| !e.is_empty()) else {
                    self.retained_waiting.remove(&filter);
                    self.retained_order.pop_front();
                    continue;
                };
                let n = super::super::retained::batches(entries.make_contiguous())
                    .next()
                    .map_or(0, <[_]>::len);
                let chunk: Vec<_> = entries.drain(..n).collect();
                let read = self.retained.read(&chunk).await;
                if let Some(b) = self.retained_waiting.get_mut(&filter) {
                    b.loaded = read.into();
                }
                continue;
            }
            let (qos, id) = (batch.qos, batch.id);
            let Some(q) = batch.loaded.front().map(|p| p.qos.min(qos)) else {
                continue;
            };
            if q > 0 && !self.delivery.flow().try_take() {
                return;
            }
            let Some(p) = batch.loaded.pop_front() else {
                continue;
            };
            self.send_retained(&p, q, id);
        }
    }

    /// Publishes `p` for a retained match at `qos` (a QoS 1 one holds the
    /// place in the window its caller took).
    fn send_retained(&mut self, p: &Publish, qos: u8, id: Option<u32>) {
        let packet_id = if qos > 0 {
            let Some(packet_id) = self.next_packet_id() else {
                self.delivery.free_place(&self.consumers, &self.vhost);
                return;
            };
            self.inflight.insert(packet_id, super::Inflight::Retained);
            Some(packet_id)
        } else {
            None
        };
        let mut out = p.clone();
        out.qos = qos;
        out.packet_id = packet_id;
        out.retain = true;
        out.dup = false;
        if self.level == LEVEL_5 {
            out.properties.subscription_identifiers = id.into_iter().collect();
        } else {
            out.properties = Properties::default();
        }
        if !self.fits_client(&out) {
            if let Some(packet_id) = packet_id {
                self.dropped(packet_id);
            }
            return;
        }
        self.alias_out(&mut out);
        self.out_publish(&out);
    }

    /// The connection is over: consumers stop, unacknowledged messages go
    /// back to their queues, a non-persistent session's queues go; returns
    /// the will to publish if the client left uncleanly.
    pub(in crate::mqtt) fn finish(
        &mut self,
        events: &mut EventReceiver,
        will: bool,
    ) -> Option<super::will::PendingWill> {
        if !self.persistent {
            // The session ends here: it leaves its shared groups.
            let shared: Vec<(String, super::Sub)> = self
                .subs
                .iter()
                .filter(|(_, s)| s.shared.is_some())
                .map(|(f, s)| (super::plain_filter(f).to_string(), s.clone()))
                .collect();
            for (plain, sub) in shared {
                self.unbind(&plain, &sub);
            }
        }
        let queues: Vec<ShortStr> = self.queues.keys().cloned().collect();
        for q in queues {
            self.stop_consuming(&q);
        }
        while let Ok(ev) = events.try_recv() {
            if let ConnectionEvent::Deliver(d) = ev {
                self.consumers.return_delivery(d, &self.vhost);
            }
        }
        self.consumers.flush(&self.vhost);
        self.inflight.clear();
        self.retained_waiting.clear();
        self.retained_order.clear();
        let all = self.delivery.take_all();
        self.delivery.requeue(&self.consumers, &self.vhost, all);
        if !self.persistent {
            let names = (0..3)
                .map(|qos| super::queue_name(&self.client_id, qos))
                .chain([super::released_queue_name(&self.client_id)]);
            for name in names {
                if self.vhost.queue(&name).is_err() {
                    continue;
                }
                if let Err(e) = self.vhost.delete_queue(&name, false, false, self.id) {
                    tracing::warn!("cannot delete {name}: {}", e.reply_text());
                }
            }
        }
        self.take_will(will)
    }
}
