//! QoS 2 to subscribers, exactly once: PUBLISH → PUBREC → PUBREL →
//! PUBCOMP (MQTT 4.3.3).
//!
//! - Until PUBREC the message stays unacknowledged in its queue: a lost
//!   connection or a restart sends it again, with DUP and the **same
//!   packet id**, which comes from its queue and position (both durable),
//!   so a client that had it recognises it.
//! - On PUBREC the client has the message. A persistent session first
//!   writes a *released marker* (packet id, queue, position) to its own
//!   durable queue, `mqtt-released-<client id>`; once the marker is
//!   committed the message is acknowledged in its queue and PUBREL goes
//!   out. So after any crash either the message is still there (sent
//!   again as above) or the marker is (PUBREL sent again on resume, and
//!   the message, if its acknowledgement was lost, is settled unsent).
//! - On PUBCOMP the marker is acknowledged and the place in the window
//!   freed. A session that ends with its connection keeps no markers:
//!   its PUBREL goes at once.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use warren_broker::queue::Durability;
use warren_broker::vhost::QueueSpec;
use warren_broker::Message;
use warren_protocol::mqtt::{Ack, Packet, LEVEL_5};
use warren_protocol::{BasicProperties, ShortStr};

use super::{released_queue_name, Inflight, Session, StartError};

/// Packet ids from this one up are QoS 2 deliveries'; below, QoS 1's and
/// retained messages'.
pub(super) const QOS2_IDS: u16 = 32_768;
/// Markers read back when a session resumes, at most (each stands for a
/// place in a window of at most [`super::WINDOW`]; more are left for the
/// next resume).
const MARKERS_MAX: usize = 4 * super::WINDOW as usize;

impl Session {
    /// The packet id of a QoS 2 delivery: from its queue and position, so
    /// that it is the same when the message is sent again (after a lost
    /// connection or a restart); the next free one if another message in
    /// flight has it.
    pub(super) fn qos2_packet_id(&self, queue: &ShortStr, seq: u64) -> Option<u16> {
        let h = queue.as_bytes().iter().fold(seq, |h, b| {
            h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(*b))
        });
        let span = u64::from(u16::MAX - QOS2_IDS) + 1;
        let start = h % span;
        (0..span)
            .map(|k| QOS2_IDS + u16::try_from((start + k) % span).unwrap_or(0))
            .find(|id| !self.inflight.contains_key(id))
    }

    /// PUBREC from the client for a message this session sent at QoS 2.
    pub(super) fn pubrec(&mut self, id: u16, reason: u8) -> Result<(), String> {
        match self.inflight.remove(&id) {
            Some(Inflight::Received { tag, queue, seq }) => {
                if reason >= 0x80 {
                    // The client refused it: done with, no PUBREL.
                    self.settle(tag);
                    return Ok(());
                }
                self.release(id, tag, &queue, seq)
            }
            Some(Inflight::Retained) => {
                self.inflight
                    .insert(id, Inflight::Released { marker: None });
                if reason < 0x80 {
                    self.out(Packet::PubRel(Ack::new(id, 0)));
                } else {
                    self.pubcomp(id);
                }
                Ok(())
            }
            Some(released @ Inflight::Released { .. }) => {
                // PUBREC again: PUBREL again.
                self.inflight.insert(id, released);
                self.out(Packet::PubRel(Ack::new(id, 0)));
                Ok(())
            }
            Some(other) => {
                self.inflight.insert(id, other);
                Ok(())
            }
            None => {
                let reason = if self.level == LEVEL_5 { 0x92 } else { 0 };
                self.out(Packet::PubRel(Ack::new(id, reason)));
                Ok(())
            }
        }
    }

    /// The client has message `tag`: settle it and send PUBREL, after its
    /// marker is durable when the session outlives the connection. The
    /// place in the window stays taken until PUBCOMP.
    fn release(&mut self, id: u16, tag: u64, queue: &ShortStr, seq: u64) -> Result<(), String> {
        self.delivery.flow().hold();
        if !self.persistent {
            self.settle(tag);
            self.inflight
                .insert(id, Inflight::Released { marker: None });
            self.out(Packet::PubRel(Ack::new(id, 0)));
            return Ok(());
        }
        let q = match self.released_queue() {
            Ok(q) => q,
            Err(e) => {
                self.disconnect(0x80, "cannot keep QoS 2 state".into());
                return Err(e);
            }
        };
        let body = Bytes::from(format!("{id} {seq} {queue}"));
        let props = BasicProperties {
            delivery_mode: Some(2),
            ..BasicProperties::default()
        };
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        let message = std::sync::Arc::new(Message::new(
            ShortStr::from_static(""),
            q.name.clone(),
            props,
            raw.freeze(),
            body,
        ));
        let out = self.vhost.enqueue(&q, &message, Durability::Required);
        if out.failed || out.rejected {
            self.disconnect(0x80, "the message store failed".into());
            return Err("cannot store a QoS 2 released marker".into());
        }
        let ticket = if out.needs_sync {
            self.vhost.issue_ticket()
        } else {
            0
        };
        // Taken back at once (the queue holds no other ready marker: a
        // resume takes them all), to be acknowledged at PUBCOMP.
        let (got, dead) = q.get(false);
        self.vhost.dead_letter(dead);
        let marker = got.map(|(m, _)| self.delivery.got(q.clone(), &m, false));
        self.inflight.insert(id, Inflight::Released { marker });
        self.releases.push_back((ticket, id, tag));
        if ticket > self.watching {
            self.watching = ticket;
            self.vhost.notify_commit(ticket, self.events.clone());
        } else {
            self.release_committed(self.vhost.committed())?;
        }
        Ok(())
    }

    /// Sends the PUBRELs whose markers are committed (up to `upto`) and
    /// settles their messages.
    pub(super) fn release_committed(&mut self, upto: u64) -> Result<(), String> {
        while let Some(&(t, id, tag)) = self.releases.front() {
            if t > upto {
                break;
            }
            self.releases.pop_front();
            if t > 0 && self.vhost.ticket_failed(t) {
                self.disconnect(0x80, "the message store failed".into());
                return Err("the message store failed to commit a QoS 2 marker".into());
            }
            self.settle(tag);
            self.out(Packet::PubRel(Ack::new(id, 0)));
        }
        Ok(())
    }

    /// PUBCOMP: the QoS 2 exchange is over; its marker goes and its place
    /// in the window is free.
    pub(super) fn pubcomp(&mut self, id: u16) {
        match self.inflight.remove(&id) {
            Some(Inflight::Released { marker }) => {
                if let Some(m) = marker {
                    self.settle(m);
                }
                self.delivery.free_place(&self.consumers, &self.vhost);
            }
            Some(other) => {
                self.inflight.insert(id, other);
            }
            None => {}
        }
    }

    /// A delivery dropped as if sent (larger than the client takes).
    pub(super) fn dropped(&mut self, id: u16) {
        match self.inflight.remove(&id) {
            Some(Inflight::Acked(tag)) | Some(Inflight::Received { tag, .. }) => self.settle(tag),
            Some(Inflight::Released { marker }) => {
                if let Some(m) = marker {
                    self.settle(m);
                }
                self.delivery.free_place(&self.consumers, &self.vhost);
            }
            Some(Inflight::Retained) => self.delivery.free_place(&self.consumers, &self.vhost),
            None => {}
        }
    }

    /// The session's released queue, declared on first use.
    fn released_queue(&mut self) -> Result<std::sync::Arc<warren_broker::Queue>, String> {
        if let Some(q) = &self.released {
            return Ok(q.clone());
        }
        let arguments = self.queue_arguments(super::subscribe::Owned::Yes);
        let spec = QueueSpec {
            name: released_queue_name(&self.client_id),
            server_named: false,
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            arguments,
        };
        let q = match self.vhost.declare_queue(&spec, self.id) {
            Ok((q, _)) => q,
            Err(_) => self.vhost.queue(&spec.name).map_err(|e| e.reply_text())?,
        };
        self.released = Some(q.clone());
        Ok(q)
    }

    /// A resumed session takes its released markers back: PUBREL is owed
    /// for each (sent after CONNACK), and the messages they name are
    /// settled, not sent, if their queue still has them.
    pub(super) fn resume_released(&mut self) -> Result<(), StartError> {
        let name = released_queue_name(&self.client_id);
        let Ok(q) = self.vhost.queue(&name) else {
            return Ok(());
        };
        self.may(warren_broker::access::Operation::Read, &name)?;
        let mut seen = HashSet::new();
        for _ in 0..MARKERS_MAX {
            let (got, dead) = q.get(false);
            self.vhost.dead_letter(dead);
            let Some((m, _)) = got else {
                break;
            };
            let tag = self.delivery.got(q.clone(), &m, false);
            let parsed = std::str::from_utf8(&m.message.body).ok().and_then(|t| {
                let mut it = t.splitn(3, ' ');
                let id = it.next()?.parse::<u16>().ok()?;
                let seq = it.next()?.parse::<u64>().ok()?;
                Some((id, seq, ShortStr::from(it.next()?)))
            });
            match parsed {
                Some((id, seq, queue)) if seen.insert(id) => {
                    self.delivery.flow().hold();
                    self.inflight
                        .insert(id, Inflight::Released { marker: Some(tag) });
                    self.released_keys.insert((queue, seq));
                    self.owed_releases.push(id);
                }
                _ => {
                    // Damaged, or a second marker for an id: not needed.
                    self.settle(tag);
                }
            }
        }
        self.session_present |= !self.owed_releases.is_empty();
        self.released = Some(q);
        Ok(())
    }

    /// PUBRELs owed from before, after CONNACK (MQTT 4.4).
    pub(in crate::mqtt) fn resend_releases(&mut self) {
        for id in std::mem::take(&mut self.owed_releases) {
            self.out(Packet::PubRel(Ack::new(id, 0)));
        }
    }

    /// A clean start: the old session's markers go with it.
    pub(super) fn discard_released(&mut self) -> Result<(), StartError> {
        let name = released_queue_name(&self.client_id);
        if self.vhost.queue(&name).is_err() {
            return Ok(());
        }
        self.may(warren_broker::access::Operation::Configure, &name)?;
        self.vhost
            .delete_queue(&name, false, false, self.id)
            .map_err(|e| StartError::Failed(e.reply_text()))?;
        Ok(())
    }
}
