//! Publishing: permission, routing, enqueueing, confirms, transactions.

use super::content::{compact, encode_properties};
use super::*;
use warren_broker::session::PublishChecks;
use warren_broker::stats::Metric;
use warren_broker::vhost::{Origin, Published, Routed};

impl Channel {
    /// Queues a reply behind everything already waiting.
    pub(super) fn defer(&mut self, ticket: Ticket, what: Reply) {
        self.deferred.push(ticket, what);
    }

    /// The highest ticket a deferred reply waits for, if any.
    pub fn awaited_ticket(&self) -> Option<Ticket> {
        self.deferred.awaited()
    }

    /// Sends the deferred replies whose ticket is committed; consecutive
    /// confirms collapse into one basic.ack(multiple). A reply whose
    /// commit failed turns into a nack; a transaction whose commit failed
    /// ends the connection with 541 (its commit-ok must never be sent).
    pub fn flush_confirms(&mut self, s: &mut ConnContext, committed: Ticket) -> Result<()> {
        let mut ack_upto = None;
        while let Some((t, what)) = self.deferred.pop_ready(committed) {
            let what = match what {
                Reply::Ack(tag) if s.vhost.ticket_failed(t) => Reply::Nack(tag),
                Reply::TxCommitOk if s.vhost.ticket_failed(t) => {
                    if let Some(upto) = ack_upto.take() {
                        s.out.method(self.id, &ack_multiple(upto));
                    }
                    self.deferred.clear();
                    return Err(store_failure());
                }
                other => other,
            };
            match what {
                Reply::Ack(tag) => {
                    self.count(Metric::Confirm);
                    ack_upto = Some(tag);
                }
                other => {
                    if let Some(upto) = ack_upto.take() {
                        s.out.method(self.id, &ack_multiple(upto));
                    }
                    match other {
                        Reply::Nack(tag) => s.out.method(
                            self.id,
                            &BasicNack {
                                delivery_tag: tag,
                                multiple: false,
                                requeue: false,
                            }
                            .into(),
                        ),
                        _ => s.out.method(self.id, &TxCommitOk {}.into()),
                    }
                }
            }
        }
        if let Some(upto) = ack_upto {
            s.out.method(self.id, &ack_multiple(upto));
        }
        Ok(())
    }

    pub(super) fn exchange(&mut self, s: &ConnContext, name: &ShortStr) -> Result<Arc<Exchange>> {
        if let Some(x) = self.exchanges.get(name) {
            if !x.is_deleted() {
                return Ok(x.clone());
            }
        }
        let x = s.vhost.exchange(name)?;
        if self.exchanges.len() >= EXCHANGE_CACHE_MAX {
            self.exchanges.clear();
        }
        self.exchanges.insert(name.clone(), x.clone());
        Ok(x)
    }

    pub(super) fn publish(
        &mut self,
        s: &mut ConnContext,
        publish: BasicPublish,
        raw_properties: Bytes,
        body: Bytes,
    ) -> Result<()> {
        self.checks.write(&mut s.access, &publish.exchange)?;
        let exchange = self.exchange(s, &publish.exchange)?;
        PublishChecks::exchange(&exchange)?;
        let mut raw_properties = raw_properties;
        let mut properties = BasicProperties::decode(&mut Decoder::new(raw_properties.clone()))
            .map_err(|e| AmqpError::new(reply::FRAME_ERROR, format!("bad content header: {e}")))?;
        PublishChecks::properties(&properties, &s.user.name)?;
        if properties
            .reply_to
            .as_ref()
            .is_some_and(|r| *r == DIRECT_REPLY_TO)
        {
            let Some(r) = &self.reply_to else {
                return Err(AmqpError::precondition_failed(
                    "fast reply consumer does not exist",
                ));
            };
            properties.reply_to = Some(r.address.clone());
            raw_properties = encode_properties(&properties);
        }
        PublishChecks::topic(&mut s.access, &exchange, &publish.routing_key.as_str())?;
        let (exchange_name, routing_key, raw_properties, body) =
            compact(publish.exchange, publish.routing_key, raw_properties, body);
        let message = Arc::new(Message::new(
            exchange_name,
            routing_key,
            properties,
            raw_properties,
            body,
        ));
        if let Some(tx) = &mut self.tx {
            tx.publishes.push((message, publish.mandatory));
            return Ok(());
        }
        let durability = if self.confirm_seq.is_some() {
            Durability::Required
        } else {
            Durability::BestEffort
        };
        self.route(s, &exchange, message, publish.mandatory, durability);
        Ok(())
    }

    /// Routes and enqueues one message, returns it if unroutable and
    /// mandatory, and records its confirm. Returns false when a durable
    /// write failed (the message is then not in the queues that failed).
    pub(super) fn route(
        &mut self,
        s: &mut ConnContext,
        exchange: &Arc<Exchange>,
        message: Arc<Message>,
        mandatory: bool,
        durability: Durability,
    ) -> bool {
        let mut out =
            if exchange.is_default() && message.routing_key.starts_with("amq.rabbitmq.reply-to.") {
                // Direct reply-to: straight to the requester's connection.
                let routed = s
                    .broker
                    .deliver_reply(&message.routing_key, message.clone());
                Published {
                    routed: if routed {
                        Routed::Queues
                    } else {
                        Routed::Unroutable
                    },
                    ..Published::default()
                }
            } else {
                s.vhost.publish(
                    exchange,
                    &message,
                    Origin::Client,
                    durability,
                    &mut self.routes,
                )
            };
        if let Some(q) = out.congested.take() {
            self.congested = Some(q);
        }
        let routed = out.is_routed();
        // Held by a delayed exchange: it goes out (publish_out) when it
        // fires, not now; a mandatory one is not returned, as nothing is
        // known of its route yet.
        let held_back = out.routed == Routed::Held;
        self.count(Metric::Publish);
        self.tally.count(exchange, routed && !held_back);
        if !routed {
            self.count(if mandatory {
                Metric::ReturnUnroutable
            } else {
                Metric::DropUnroutable
            });
        }
        if !routed && mandatory {
            s.out.method(
                self.id,
                &BasicReturn {
                    reply_code: reply::NO_ROUTE,
                    reply_text: ShortStr::from_static("NO_ROUTE"),
                    exchange: message.exchange.clone(),
                    routing_key: message.routing_key.clone(),
                }
                .into(),
            );
            s.out
                .content(self.id, &message.raw_properties, &message.body, s.frame_max);
        }
        // A persistent message in a durable queue is confirmed only once
        // the group commit has it on disk.
        let ticket = if out.needs_sync {
            s.vhost.issue_ticket()
        } else {
            0
        };
        self.pending_ticket = self.pending_ticket.max(ticket);
        if let Some(seq) = self.confirm_seq.as_mut() {
            let tag = *seq;
            *seq += 1;
            let what = if out.rejected || out.failed {
                Reply::Nack(tag)
            } else {
                Reply::Ack(tag)
            };
            self.defer(ticket, what);
        }
        !out.failed
    }

    pub(super) fn tx_commit(&mut self, s: &mut ConnContext) -> Result<()> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(AmqpError::precondition_failed(
                "channel is not transactional",
            ));
        };
        let tx = std::mem::take(tx);
        let mut stored = true;
        for (message, mandatory) in tx.publishes {
            // The exchange may have gone since the publish; RabbitMQ drops
            // such messages at commit.
            if let Ok(x) = self.exchange(s, &message.exchange) {
                stored &= self.route(s, &x, message, mandatory, Durability::Required);
            }
        }
        if !stored {
            // commit-ok would vouch for messages that are not on disk. The
            // transaction's acks and rejects roll back: the connection
            // closes, and its cleanup requeues them with the rest.
            let mut back = tx.acks;
            back.extend(tx.rejects.into_iter().map(|(u, _)| u));
            self.delivery.restore(back);
            self.note_unacked();
            return Err(store_failure());
        }
        self.settle(s, tx.acks);
        let (requeue, drop): (Vec<_>, Vec<_>) = tx.rejects.into_iter().partition(|(_, r)| *r);
        self.requeue(s, requeue.into_iter().map(|(u, _)| u).collect());
        self.discard(s, drop.into_iter().map(|(u, _)| u).collect());
        // commit-ok once the transaction's persistent messages are on disk.
        let ticket = std::mem::take(&mut self.pending_ticket);
        self.defer(ticket, Reply::TxCommitOk);
        let _ = s;
        Ok(())
    }
}

/// The connection error for a transaction the store could not make
/// durable (RabbitMQ's store failures end the connection too).
pub(super) fn store_failure() -> AmqpError {
    AmqpError::internal("the message store failed to write the transaction's messages")
}

pub(super) fn ack_multiple(upto: u64) -> Method {
    Method::BasicAck(BasicAck {
        delivery_tag: upto,
        multiple: true,
    })
}

/// A reply that waits for the group commit.
pub(super) enum Reply {
    Ack(u64),
    Nack(u64),
    TxCommitOk,
}
