//! Consumers, basic.get, deliveries, acks, rejects and requeues.

use super::*;
use warren_broker::stats::Metric;

impl Channel {
    pub(super) fn basic_qos(&mut self, s: &mut ConnContext, m: BasicQos) -> Result<()> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!(
                "prefetch_size!=0 ({})",
                m.prefetch_size
            )));
        }
        if m.global {
            self.delivery
                .flow()
                .set_prefetch(u32::from(m.prefetch_count));
            self.stats.set_global_prefetch(u32::from(m.prefetch_count));
            self.kick_queues(s);
        } else {
            self.consumer_prefetch = u32::from(m.prefetch_count);
            self.stats.set_prefetch(u32::from(m.prefetch_count));
        }
        s.out.method(self.id, &BasicQosOk {}.into());
        Ok(())
    }

    pub(super) fn basic_consume(&mut self, s: &mut ConnContext, m: BasicConsume) -> Result<()> {
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::consumer_tag())
        } else {
            m.consumer_tag.clone()
        };
        if self.delivery.has_consumer(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        // RabbitMQ's (3.12+) `consumer_max_per_channel`.
        if let Some(max) = s.consumer_max_per_channel {
            if self.delivery.consumer_count() as u64 >= max {
                return Err(AmqpError::not_allowed(format!(
                    "reached maximum ({max}) of consumers per channel"
                )));
            }
        }
        let flow = Arc::new(ConsumerFlow::new(
            self.consumer_prefetch,
            self.delivery.flow().clone(),
        ));
        if m.queue == DIRECT_REPLY_TO {
            return self.consume_direct_reply(s, m, tag, flow);
        }
        let q = self.readable_queue(s, m.queue)?;
        let key = s.consumers.next_key();
        let dead = q.add_consumer(Consumer {
            tag: tag.clone(),
            session: self.id,
            key,
            connection_id: s.id,
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority: m
                .arguments
                .get("x-priority")
                .and_then(|v| v.as_i64())
                .map(|p| p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
                .unwrap_or(0),
            flow: flow.clone(),
            sink: s.events.clone(),
        })?;
        s.vhost.dead_letter(dead);
        // Deliveries go through the event queue, so consume-ok written now
        // still precedes the first basic.deliver.
        self.consume_ok(s, m.nowait, &tag);
        let added = s
            .consumers
            .add(self.id, tag.clone(), Some(q), flow, m.no_ack);
        debug_assert_eq!(added, key);
        self.delivery.add_consumer(tag, key);
        self.note_consumers();
        Ok(())
    }

    fn consume_ok(&self, s: &mut ConnContext, nowait: bool, tag: &ShortStr) {
        if !nowait {
            s.out.method(
                self.id,
                &BasicConsumeOk {
                    consumer_tag: tag.clone(),
                }
                .into(),
            );
        }
    }

    pub(super) fn consume_direct_reply(
        &mut self,
        s: &mut ConnContext,
        m: BasicConsume,
        tag: ShortStr,
        flow: Arc<ConsumerFlow>,
    ) -> Result<()> {
        if !m.no_ack {
            return Err(AmqpError::precondition_failed(
                "reply consumer cannot acknowledge",
            ));
        }
        if self.reply_to.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let address = ShortStr::from(names::reply_to_address());
        let key = s
            .consumers
            .add(self.id, tag.clone(), None, flow.clone(), true);
        s.broker.add_reply_route(
            address.clone(),
            ReplyRoute {
                sink: s.events.clone(),
                consumer: key,
                flow,
            },
        );
        self.consume_ok(s, m.nowait, &tag);
        self.reply_to = Some(DirectReply { address });
        self.delivery.add_consumer(tag, key);
        self.note_consumers();
        Ok(())
    }

    /// Removes a consumer (client cancel or channel close).
    pub(super) fn cancel_consumer(&mut self, s: &mut ConnContext, tag: &ShortStr) {
        let Some(key) = self.delivery.remove_consumer(tag) else {
            return;
        };
        self.note_consumers();
        let queue = s.consumers.get(key).and_then(|e| e.queue.clone());
        // Stop the source first: once the queue (or reply route) can't send
        // to this consumer any more, retiring it can't race a new delivery.
        let mut delete = None;
        match &queue {
            Some(q) => {
                let (gone, dead) = q.remove_consumer(s.id, key);
                s.vhost.dead_letter(dead);
                if gone {
                    delete = Some(q.clone());
                }
            }
            None => {
                if let Some(r) = self.reply_to.take() {
                    s.broker.remove_reply_route(&r.address);
                }
            }
        }
        s.consumers.retire(key);
        if let Some(q) = delete {
            // An auto-delete queue lost its last consumer. If a durable
            // one's deletion can't be journaled it stays: logged, and the
            // client's cancel still succeeds (RabbitMQ deletes it the same
            // way, behind the client's back).
            if let Err(e) = s.vhost.remove_queue(&q) {
                tracing::error!("cannot auto-delete {}: {e}", q.describe());
            }
        }
    }

    /// The queue went away: forget the consumer and tell the client.
    pub fn consumer_cancelled_by_server(&mut self, s: &mut ConnContext, tag: ShortStr) {
        let Some(key) = self.delivery.remove_consumer(&tag) else {
            return;
        };
        self.note_consumers();
        s.consumers.retire(key);
        if self.state == ChannelState::Open && s.caps.consumer_cancel_notify {
            s.out.method(
                self.id,
                &BasicCancel {
                    consumer_tag: tag,
                    nowait: true,
                }
                .into(),
            );
        }
    }

    pub(super) fn basic_get(&mut self, s: &mut ConnContext, m: BasicGet) -> Result<()> {
        let q = self.readable_queue(s, m.queue)?;
        q.check_get()?;
        let (got, dead) = q.get(m.no_ack);
        s.vhost.dead_letter(dead);
        let Some((qm, remaining)) = got else {
            self.count(Metric::GetEmpty);
            s.out.method(
                self.id,
                &BasicGetEmpty {
                    cluster_id: ShortStr::default(),
                }
                .into(),
            );
            return Ok(());
        };
        self.count(if m.no_ack {
            Metric::GetNoAck
        } else {
            Metric::Get
        });
        if qm.redelivered {
            self.count(Metric::Redeliver);
        }
        let tag = self.delivery.got(q.clone(), &qm, m.no_ack);
        s.out.method(
            self.id,
            &BasicGetOk {
                delivery_tag: tag,
                redelivered: qm.redelivered,
                exchange: qm.message.exchange.clone(),
                routing_key: qm.message.routing_key.clone(),
                message_count: remaining,
            }
            .into(),
        );
        s.out.content(
            self.id,
            &qm.message.raw_properties,
            &qm.message.body,
            s.frame_max,
        );
        if !m.no_ack {
            self.note_unacked();
        }
        Ok(())
    }

    pub(super) fn take_unacked(&mut self, tag: u64, multiple: bool) -> Result<Vec<Unacked>> {
        let taken = self
            .delivery
            .take(tag, multiple)
            .ok_or_else(|| AmqpError::precondition_failed(format!("unknown delivery tag {tag}")));
        self.note_unacked();
        taken
    }

    /// Acked (or dropped) deliveries: tell their queues, free credit.
    pub(super) fn settle(&mut self, s: &ConnContext, items: Vec<Unacked>) {
        self.stats.counters.bump_by(Metric::Ack, items.len() as u64);
        self.delivery.ack(&s.consumers, &s.vhost, items);
    }

    pub(super) fn reject(&mut self, s: &ConnContext, items: Vec<Unacked>, requeue: bool) {
        if let Some(tx) = &mut self.tx {
            tx.rejects.extend(items.into_iter().map(|u| (u, requeue)));
            return;
        }
        if requeue {
            self.requeue(s, items);
        } else {
            self.discard(s, items);
        }
    }

    /// Rejected without requeue: settled and, where configured, dead-lettered.
    pub(super) fn discard(&mut self, s: &ConnContext, items: Vec<Unacked>) {
        self.delivery.discard(&s.consumers, &s.vhost, items);
    }

    pub(super) fn requeue(&mut self, s: &ConnContext, items: Vec<Unacked>) {
        self.delivery.requeue(&s.consumers, &s.vhost, items);
    }

    pub(super) fn recover(&mut self, s: &ConnContext, requeue: bool) -> Result<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let all = self.delivery.take_all();
        self.note_unacked();
        self.requeue(s, all);
        Ok(())
    }

    pub(super) fn kick_queues(&self, s: &ConnContext) {
        self.delivery.kick_queues(&s.consumers, &s.vhost);
    }

    /// Writes a delivery pushed by a queue, or hands it back if its consumer
    /// is gone or the channel is closing.
    pub fn deliver(&mut self, s: &mut ConnContext, d: Delivery) {
        let open = self.state == ChannelState::Open;
        let Some((out, d)) = self.delivery.deliver(&mut s.consumers, &s.vhost, d, open) else {
            return;
        };
        self.count(if out.no_ack {
            Metric::DeliverNoAck
        } else {
            Metric::Deliver
        });
        if d.redelivered {
            self.count(Metric::Redeliver);
        }
        s.out.deliver(
            self.id,
            out.consumer_tag.as_bytes(),
            out.tag,
            d.redelivered,
            d.message.exchange.as_bytes(),
            d.message.routing_key.as_bytes(),
        );
        if !out.no_ack {
            self.note_unacked();
        }
        s.out.content(
            self.id,
            &d.message.raw_properties,
            &d.message.body,
            s.frame_max,
        );
    }
}
