//! One AMQP channel: its method handlers, content assembly, consumers,
//! unacked deliveries, confirms and transactions.
//!
//! Handlers return `Err(AmqpError)`; the connection turns a soft error into
//! channel.close and a hard one into connection.close, with the class and
//! method ids of the method that failed.

use std::collections::VecDeque;
use std::sync::Arc;

use ahash::AHashMap;
use bytes::{Bytes, BytesMut};
use warren_broker::consumer::{ChannelFlow, Consumer, ConsumerFlow, Delivery};
use warren_broker::error::{AmqpError, Result};
use warren_broker::exchange::Exchange;
use warren_broker::names::{self, DIRECT_REPLY_TO};
use warren_broker::queue::{parse_expiration, Durability, PublishOutcome};
use warren_broker::store::Ticket;
use warren_broker::vhost::{ExchangeSpec, QueueSpec};
use warren_broker::{broker::ReplyRoute, Message, Queue};
use warren_protocol::constants::reply;
use warren_protocol::methods::*;
use warren_protocol::{BasicProperties, ContentHeader, Decoder, Method, ShortStr};

use crate::session::Session;
use crate::unacked::{Unacked, UnackedList};

/// Exchanges (and default-exchange queues) looked up by name are remembered
/// per channel so publishing doesn't touch the vhost's maps; bounded so a
/// client can't grow them forever.
const EXCHANGE_CACHE_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent channel.close and wait for close-ok; frames are dropped.
    Closing,
}

// One per channel, so its size is irrelevant; boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
enum Content {
    Idle,
    /// basic.publish seen; its content header is next.
    Header(BasicPublish),
    Body {
        publish: BasicPublish,
        /// Properties stay encoded until the message is complete.
        raw_properties: Bytes,
        body_size: u64,
        body: BodyParts,
    },
}

/// Body frames seen so far. One frame (the usual case) is kept as the
/// slice of the read buffer it arrived in: no copy.
enum BodyParts {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl BodyParts {
    fn len(&self) -> usize {
        match self {
            BodyParts::Empty => 0,
            BodyParts::One(b) => b.len(),
            BodyParts::Many(b) => b.len(),
        }
    }

    /// Adds a body frame. Memory follows the bytes actually received,
    /// never the size the header claims: a peer that announces 128 MiB and
    /// sends two bytes holds two bytes (growth is amortised doubling, so at
    /// most twice what arrived, and never beyond `expected`).
    fn push(&mut self, part: Bytes, expected: usize) {
        *self = match std::mem::replace(self, BodyParts::Empty) {
            BodyParts::Empty => BodyParts::One(part),
            BodyParts::One(first) => {
                let have = first.len() + part.len();
                let mut all =
                    BytesMut::with_capacity(have.saturating_mul(2).min(expected).max(have));
                all.extend_from_slice(&first);
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
            BodyParts::Many(mut all) => {
                let need = all.len() + part.len();
                if need > all.capacity() {
                    // Double, but never past the declared size.
                    let target = need
                        .max(all.capacity().saturating_mul(2))
                        .min(expected.max(need));
                    all.reserve(target - all.len());
                }
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            BodyParts::Empty => Bytes::new(),
            BodyParts::One(b) => b,
            BodyParts::Many(b) => b.freeze(),
        }
    }
}

#[derive(Default)]
struct Transaction {
    publishes: Vec<(Arc<Message>, bool)>,
    acks: Vec<Unacked>,
    /// Rejected/nacked deliveries, with their requeue flag.
    rejects: Vec<(Unacked, bool)>,
}

struct DirectReply {
    address: ShortStr,
}

pub struct Channel {
    pub id: u16,
    pub state: ChannelState,
    content: Content,
    /// Consumer tag → key in the connection's consumer registry.
    consumers: AHashMap<ShortStr, u64>,
    unacked: UnackedList,
    next_delivery_tag: u64,
    /// basic.qos global=false: the limit for consumers created from now on.
    consumer_prefetch: u32,
    flow: Arc<ChannelFlow>,
    /// Publisher confirms: the next publish sequence number.
    confirm_seq: Option<u64>,
    /// Replies that wait for a commit ticket (confirms, tx.commit-ok), in
    /// the order they must go out. Tickets never decrease along the queue.
    deferred: VecDeque<(Ticket, Deferred)>,
    tx: Option<Transaction>,
    /// RabbitMQ lets an empty queue name mean "the last one declared here".
    last_queue: Option<ShortStr>,
    reply_to: Option<DirectReply>,
    /// Highest ticket issued for this channel's publishes since the last
    /// tx.commit.
    pending_ticket: Ticket,
    /// A queue this channel published to that asked publishers to pause.
    pub congested: Option<Arc<Queue>>,
    exchanges: AHashMap<ShortStr, Arc<Exchange>>,
    /// Queues by name, for publishes to the default exchange.
    default_routes: AHashMap<ShortStr, Arc<Queue>>,
    route_buf: Vec<Arc<Queue>>,
}

impl Channel {
    pub fn new(id: u16) -> Self {
        Channel {
            id,
            state: ChannelState::Open,
            content: Content::Idle,
            consumers: AHashMap::new(),
            unacked: UnackedList::default(),
            next_delivery_tag: 1,
            consumer_prefetch: 0,
            flow: Arc::new(ChannelFlow::default()),
            confirm_seq: None,
            deferred: VecDeque::new(),
            tx: None,
            last_queue: None,
            reply_to: None,
            pending_ticket: 0,
            congested: None,
            exchanges: AHashMap::new(),
            default_routes: AHashMap::new(),
            route_buf: Vec::new(),
        }
    }

    /// Queues a reply behind everything already waiting.
    fn defer(&mut self, ticket: Ticket, what: Deferred) {
        let ticket = self.deferred.back().map_or(ticket, |(t, _)| ticket.max(*t));
        self.deferred.push_back((ticket, what));
    }

    /// The highest ticket a deferred reply waits for, if any.
    pub fn awaited_ticket(&self) -> Option<Ticket> {
        self.deferred.back().map(|(t, _)| *t)
    }

    /// Sends the deferred replies whose ticket is committed; consecutive
    /// confirms collapse into one basic.ack(multiple). A reply whose
    /// commit failed turns into a nack; a transaction whose commit failed
    /// ends the connection with 541 (its commit-ok must never be sent).
    pub fn flush_confirms(&mut self, s: &mut Session, committed: Ticket) -> Result<()> {
        let mut ack_upto = None;
        while let Some((t, _)) = self.deferred.front() {
            if *t > committed {
                break;
            }
            let Some((t, what)) = self.deferred.pop_front() else {
                break;
            };
            let what = match what {
                Deferred::Ack(tag) if s.vhost.ticket_failed(t) => Deferred::Nack(tag),
                Deferred::TxCommitOk if s.vhost.ticket_failed(t) => {
                    if let Some(upto) = ack_upto.take() {
                        s.out.method(self.id, &ack_multiple(upto));
                    }
                    self.deferred.clear();
                    return Err(store_failure());
                }
                other => other,
            };
            match what {
                Deferred::Ack(tag) => ack_upto = Some(tag),
                other => {
                    if let Some(upto) = ack_upto.take() {
                        s.out.method(self.id, &ack_multiple(upto));
                    }
                    match other {
                        Deferred::Nack(tag) => s.out.method(
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

    /// The 505 for a frame of the wrong kind in the middle of a message,
    /// or `None` if the channel isn't receiving a message.
    pub fn content_violation(&self) -> Option<AmqpError> {
        let text = match self.content {
            Content::Idle => return None,
            Content::Header(_) => {
                "expected content header for class 60, got non content header frame instead"
            }
            Content::Body { .. } => "expected content body, got non content body frame instead",
        };
        Some(AmqpError::new(reply::UNEXPECTED_FRAME, text))
    }

    pub fn is_receiving_content(&self) -> bool {
        !matches!(self.content, Content::Idle)
    }

    pub fn on_method(&mut self, s: &mut Session, method: Method) -> Result<()> {
        if let Some(e) = self.content_violation() {
            return Err(e);
        }
        match method {
            Method::ChannelFlow(m) => {
                if !m.active {
                    return Err(AmqpError::not_implemented("active=false"));
                }
                s.out
                    .method(self.id, &ChannelFlowOk { active: true }.into());
            }
            Method::AccessRequest(_) => {
                s.out.method(self.id, &AccessRequestOk { ticket: 1 }.into());
            }
            Method::ExchangeDeclare(m) => self.exchange_declare(s, m)?,
            Method::ExchangeDelete(m) => {
                s.vhost.delete_exchange(&m.exchange, m.if_unused)?;
                self.exchanges.remove(&m.exchange);
                if !m.nowait {
                    s.out.method(self.id, &ExchangeDeleteOk {}.into());
                }
            }
            Method::ExchangeBind(m) => {
                s.vhost.bind(
                    &m.source,
                    &m.destination,
                    false,
                    m.routing_key,
                    m.arguments,
                    s.id,
                )?;
                if !m.nowait {
                    s.out.method(self.id, &ExchangeBindOk {}.into());
                }
            }
            Method::ExchangeUnbind(m) => {
                s.vhost.unbind(
                    &m.source,
                    &m.destination,
                    false,
                    m.routing_key,
                    m.arguments,
                    s.id,
                )?;
                if !m.nowait {
                    s.out.method(self.id, &ExchangeUnbindOk {}.into());
                }
            }
            Method::QueueDeclare(m) => self.queue_declare(s, m)?,
            Method::QueueBind(m) => {
                let queue = self.queue_name(m.queue)?;
                let key = self.routing_key_or_last(m.routing_key, &queue);
                s.vhost
                    .bind(&m.exchange, &queue, true, key, m.arguments, s.id)?;
                if !m.nowait {
                    s.out.method(self.id, &QueueBindOk {}.into());
                }
            }
            Method::QueueUnbind(m) => {
                let queue = self.queue_name(m.queue)?;
                let key = self.routing_key_or_last(m.routing_key, &queue);
                s.vhost
                    .unbind(&m.exchange, &queue, true, key, m.arguments, s.id)?;
                s.out.method(self.id, &QueueUnbindOk {}.into());
            }
            Method::QueuePurge(m) => {
                let q = self.queue(s, m.queue)?;
                let n = q.purge();
                if !m.nowait {
                    s.out
                        .method(self.id, &QueuePurgeOk { message_count: n }.into());
                }
            }
            Method::QueueDelete(m) => {
                let name = self.queue_name(m.queue)?;
                let n = s.vhost.delete_queue(&name, m.if_unused, m.if_empty, s.id)?;
                if !m.nowait {
                    s.out
                        .method(self.id, &QueueDeleteOk { message_count: n }.into());
                }
            }
            Method::BasicQos(m) => self.basic_qos(s, m)?,
            Method::BasicConsume(m) => self.basic_consume(s, m)?,
            Method::BasicCancel(m) => {
                self.cancel_consumer(s, &m.consumer_tag);
                if !m.nowait {
                    s.out.method(
                        self.id,
                        &BasicCancelOk {
                            consumer_tag: m.consumer_tag,
                        }
                        .into(),
                    );
                }
            }
            Method::BasicPublish(m) => {
                if m.immediate {
                    return Err(AmqpError::not_implemented("immediate=true"));
                }
                self.content = Content::Header(m);
            }
            Method::BasicGet(m) => self.basic_get(s, m)?,
            Method::BasicAck(m) => {
                let items = self.take_unacked(m.delivery_tag, m.multiple)?;
                match &mut self.tx {
                    Some(tx) => tx.acks.extend(items),
                    None => self.settle(s, items),
                }
            }
            Method::BasicReject(m) => {
                let items = self.take_unacked(m.delivery_tag, false)?;
                self.reject(s, items, m.requeue);
            }
            Method::BasicNack(m) => {
                let items = self.take_unacked(m.delivery_tag, m.multiple)?;
                self.reject(s, items, m.requeue);
            }
            Method::BasicRecoverAsync(m) => self.recover(s, m.requeue)?,
            Method::BasicRecover(m) => {
                self.recover(s, m.requeue)?;
                s.out.method(self.id, &BasicRecoverOk {}.into());
            }
            Method::ConfirmSelect(m) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                self.confirm_seq.get_or_insert(1);
                if !m.nowait {
                    s.out.method(self.id, &ConfirmSelectOk {}.into());
                }
            }
            Method::TxSelect(_) => {
                if self.confirm_seq.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.tx.get_or_insert_with(Transaction::default);
                s.out.method(self.id, &TxSelectOk {}.into());
            }
            Method::TxCommit(_) => self.tx_commit(s)?,
            Method::TxRollback(_) => {
                let Some(tx) = self.tx.as_mut() else {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                };
                let tx = std::mem::take(tx);
                let mut back = tx.acks;
                back.extend(tx.rejects.into_iter().map(|(u, _)| u));
                self.unacked.restore(back);
                s.out.method(self.id, &TxRollbackOk {}.into());
            }
            other => {
                return Err(AmqpError::command_invalid(format!(
                    "unexpected method {} on channel {}",
                    other.name(),
                    self.id
                )))
            }
        }
        Ok(())
    }

    pub fn on_header(&mut self, s: &mut Session, payload: Bytes) -> Result<()> {
        if !matches!(self.content, Content::Header(_)) {
            return Err(self.content_violation().unwrap_or_else(unexpected_content));
        }
        if payload.len() >= 2 {
            let class_id = u16::from_be_bytes([payload[0], payload[1]]);
            if class_id != warren_protocol::constants::class::BASIC {
                return Err(AmqpError::new(
                    reply::UNEXPECTED_FRAME,
                    format!("expected content header for class 60, got one for class {class_id} instead"),
                ));
            }
        }
        let Content::Header(publish) = std::mem::replace(&mut self.content, Content::Idle) else {
            unreachable!("checked above")
        };
        let (_, body_size, raw_properties) = ContentHeader::peek(payload)
            .map_err(|e| AmqpError::new(reply::FRAME_ERROR, format!("bad content header: {e}")))?;
        if body_size > s.max_message_size {
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {}",
                body_size, s.max_message_size
            )));
        }
        if body_size == 0 {
            return self.publish(s, publish, raw_properties, Bytes::new());
        }
        self.content = Content::Body {
            publish,
            raw_properties,
            body_size,
            body: BodyParts::Empty,
        };
        Ok(())
    }

    pub fn on_body(&mut self, s: &mut Session, payload: Bytes) -> Result<()> {
        let Content::Body {
            body_size, body, ..
        } = &mut self.content
        else {
            return Err(self.content_violation().unwrap_or_else(unexpected_content));
        };
        let expected = *body_size as usize;
        if body.len() + payload.len() > expected {
            return Err(AmqpError::new(
                reply::FRAME_ERROR,
                "content body larger than its header declared",
            ));
        }
        body.push(payload, expected);
        if body.len() < expected {
            return Ok(());
        }
        let Content::Body {
            publish,
            raw_properties,
            body,
            ..
        } = std::mem::replace(&mut self.content, Content::Idle)
        else {
            unreachable!("matched above")
        };
        self.publish(s, publish, raw_properties, body.into_bytes())
    }

    fn exchange_declare(&mut self, s: &mut Session, m: ExchangeDeclare) -> Result<()> {
        s.vhost.declare_exchange(&ExchangeSpec {
            name: m.exchange,
            kind: m.kind,
            passive: m.passive,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments,
        })?;
        if !m.nowait {
            s.out.method(self.id, &ExchangeDeclareOk {}.into());
        }
        Ok(())
    }

    fn queue_declare(&mut self, s: &mut Session, m: QueueDeclare) -> Result<()> {
        if m.passive && m.queue == DIRECT_REPLY_TO {
            // RabbitMQ reports the pseudo-queue as existing, with a consumer.
            if !m.nowait {
                s.out.method(
                    self.id,
                    &QueueDeclareOk {
                        queue: m.queue,
                        message_count: 0,
                        consumer_count: 1,
                    }
                    .into(),
                );
            }
            return Ok(());
        }
        let (q, counts) = s.vhost.declare_queue(
            &QueueSpec {
                name: m.queue,
                passive: m.passive,
                durable: m.durable,
                exclusive: m.exclusive,
                auto_delete: m.auto_delete,
                arguments: m.arguments,
            },
            s.id,
        )?;
        self.last_queue = Some(q.name.clone());
        if !m.nowait {
            s.out.method(
                self.id,
                &QueueDeclareOk {
                    queue: q.name.clone(),
                    message_count: counts.message_count,
                    consumer_count: counts.consumer_count,
                }
                .into(),
            );
        }
        Ok(())
    }

    /// Expands RabbitMQ's empty-name shortcut to the last declared queue.
    fn queue_name(&self, name: ShortStr) -> Result<ShortStr> {
        if !name.is_empty() {
            return Ok(name);
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    fn routing_key_or_last(&self, key: ShortStr, queue: &ShortStr) -> ShortStr {
        if key.is_empty() && self.last_queue.as_ref() == Some(queue) {
            queue.clone()
        } else {
            key
        }
    }

    fn queue(&self, s: &Session, name: ShortStr) -> Result<Arc<Queue>> {
        let name = self.queue_name(name)?;
        let q = s.vhost.queue(&name)?;
        s.vhost.check_exclusive(&q, s.id)?;
        Ok(q)
    }

    fn basic_qos(&mut self, s: &mut Session, m: BasicQos) -> Result<()> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!(
                "prefetch_size!=0 ({})",
                m.prefetch_size
            )));
        }
        if m.global {
            self.flow.prefetch.store(
                u32::from(m.prefetch_count),
                std::sync::atomic::Ordering::Relaxed,
            );
            self.kick_queues(s);
        } else {
            self.consumer_prefetch = u32::from(m.prefetch_count);
        }
        s.out.method(self.id, &BasicQosOk {}.into());
        Ok(())
    }

    fn basic_consume(&mut self, s: &mut Session, m: BasicConsume) -> Result<()> {
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::consumer_tag())
        } else {
            m.consumer_tag.clone()
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let flow = Arc::new(ConsumerFlow::new(self.consumer_prefetch, self.flow.clone()));
        if m.queue == DIRECT_REPLY_TO {
            return self.consume_direct_reply(s, m, tag, flow);
        }
        let q = self.queue(s, m.queue)?;
        let key = s.consumers.next_key();
        q.add_consumer(Consumer {
            tag: tag.clone(),
            channel: self.id,
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
        // Deliveries go through the event queue, so consume-ok written now
        // still precedes the first basic.deliver.
        if !m.nowait {
            s.out.method(
                self.id,
                &BasicConsumeOk {
                    consumer_tag: tag.clone(),
                }
                .into(),
            );
        }
        let added = s.consumers.add(tag.clone(), Some(q), flow, m.no_ack);
        debug_assert_eq!(added, key);
        self.consumers.insert(tag, key);
        Ok(())
    }

    fn consume_direct_reply(
        &mut self,
        s: &mut Session,
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
        let key = s.consumers.add(tag.clone(), None, flow.clone(), true);
        s.broker.add_reply_route(
            address.clone(),
            ReplyRoute {
                sink: s.events.clone(),
                channel: self.id,
                consumer: key,
                flow,
            },
        );
        if !m.nowait {
            s.out.method(
                self.id,
                &BasicConsumeOk {
                    consumer_tag: tag.clone(),
                }
                .into(),
            );
        }
        self.reply_to = Some(DirectReply { address });
        self.consumers.insert(tag, key);
        Ok(())
    }

    /// Removes a consumer (client cancel or channel close).
    fn cancel_consumer(&mut self, s: &mut Session, tag: &ShortStr) {
        let Some(key) = self.consumers.remove(tag) else {
            return;
        };
        let queue = s.consumers.get(key).and_then(|e| e.queue.clone());
        // Stop the source first: once the queue (or reply route) can't send
        // to this consumer any more, retiring it can't race a new delivery.
        let mut delete = None;
        match &queue {
            Some(q) => {
                if q.remove_consumer(s.id, self.id, tag) {
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
    pub fn consumer_cancelled_by_server(&mut self, s: &mut Session, tag: ShortStr) {
        let Some(key) = self.consumers.remove(&tag) else {
            return;
        };
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

    fn basic_get(&mut self, s: &mut Session, m: BasicGet) -> Result<()> {
        let q = self.queue(s, m.queue)?;
        let Some((qm, remaining)) = q.get(m.no_ack) else {
            s.out.method(
                self.id,
                &BasicGetEmpty {
                    cluster_id: ShortStr::default(),
                }
                .into(),
            );
            return Ok(());
        };
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
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
            self.unacked.push(Unacked {
                tag,
                queue: q,
                seq: qm.seq,
                message: qm.message,
                flow: None,
                disk: qm.disk,
            });
        }
        Ok(())
    }

    fn take_unacked(&mut self, tag: u64, multiple: bool) -> Result<Vec<Unacked>> {
        self.unacked
            .take(tag, multiple)
            .ok_or_else(|| AmqpError::precondition_failed(format!("unknown delivery tag {tag}")))
    }

    /// Acked (or dropped) deliveries: tell their queues, free credit.
    fn settle(&mut self, s: &Session, items: Vec<Unacked>) {
        for u in &items {
            if let Some(f) = &u.flow {
                f.on_settled(1);
            }
        }
        for (q, group) in group_by_queue(items) {
            let disks: Vec<_> = group.iter().map(|u| u.disk).collect();
            q.settle(&disks);
        }
        self.kick_if_global(s);
    }

    fn reject(&mut self, s: &Session, items: Vec<Unacked>, requeue: bool) {
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
    fn discard(&mut self, s: &Session, items: Vec<Unacked>) {
        for u in &items {
            if let Some(f) = &u.flow {
                f.on_settled(1);
            }
        }
        for (q, group) in group_by_queue(items) {
            q.discard(group.into_iter().map(|u| (u.message, u.disk)).collect());
        }
        self.kick_if_global(s);
    }

    fn requeue(&mut self, s: &Session, items: Vec<Unacked>) {
        for u in &items {
            if let Some(f) = &u.flow {
                f.on_settled(1);
            }
        }
        for (q, group) in group_by_queue(items) {
            q.requeue(
                group
                    .into_iter()
                    .map(|u| (u.seq, u.message, u.disk))
                    .collect(),
            );
        }
        self.kick_if_global(s);
    }

    fn recover(&mut self, s: &Session, requeue: bool) -> Result<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let all = self.unacked.take_all();
        self.requeue(s, all);
        Ok(())
    }

    /// With a channel-wide prefetch, credit freed by one queue's ack may
    /// let another queue deliver.
    fn kick_if_global(&self, s: &Session) {
        if self
            .flow
            .prefetch
            .load(std::sync::atomic::Ordering::Relaxed)
            != 0
        {
            self.kick_queues(s);
        }
    }

    fn kick_queues(&self, s: &Session) {
        for key in self.consumers.values() {
            if let Some(q) = s.consumers.get(*key).and_then(|e| e.queue.as_ref()) {
                q.dispatch();
            }
        }
    }

    /// The queue named `name` (default-exchange routing), cached.
    fn default_route<'a>(
        routes: &'a mut AHashMap<ShortStr, Arc<Queue>>,
        s: &Session,
        name: &ShortStr,
    ) -> Option<&'a Arc<Queue>> {
        let fresh = routes.get(name).is_some_and(|q| !q.is_deleted());
        if !fresh {
            let q = s.vhost.queue(name).ok()?;
            if routes.len() >= EXCHANGE_CACHE_MAX {
                routes.clear();
            }
            routes.insert(name.clone(), q);
        }
        routes.get(name)
    }

    fn exchange(&mut self, s: &Session, name: &ShortStr) -> Result<Arc<Exchange>> {
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

    fn publish(
        &mut self,
        s: &mut Session,
        publish: BasicPublish,
        raw_properties: Bytes,
        body: Bytes,
    ) -> Result<()> {
        let exchange = self.exchange(s, &publish.exchange)?;
        if exchange.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal {}",
                exchange.describe()
            )));
        }
        let mut raw_properties = raw_properties;
        let mut properties = BasicProperties::decode(&mut Decoder::new(raw_properties.clone()))
            .map_err(|e| AmqpError::new(reply::FRAME_ERROR, format!("bad content header: {e}")))?;
        if let Some(uid) = &properties.user_id {
            if uid.as_bytes() != s.user.name.as_bytes() {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{uid}' but authenticated user was '{}'",
                    s.user.name
                )));
            }
        }
        if let Some(exp) = &properties.expiration {
            if parse_expiration(exp.as_bytes()).is_none() {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid expiration '{exp}': no_integer"
                )));
            }
        }
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
    fn route(
        &mut self,
        s: &mut Session,
        exchange: &Arc<Exchange>,
        message: Arc<Message>,
        mandatory: bool,
        durability: Durability,
    ) -> bool {
        let mut out = Enqueued::default();
        let routed =
            if exchange.is_default() && message.routing_key.starts_with("amq.rabbitmq.reply-to.") {
                s.broker
                    .deliver_reply(&message.routing_key, message.clone())
            } else if exchange.is_default() {
                // The default exchange routes by queue name: resolved from
                // this channel's cache, not the vhost's shared map.
                match Self::default_route(&mut self.default_routes, s, &message.routing_key) {
                    Some(q) => {
                        out.enqueue(q, &message, durability, &mut self.congested);
                        true
                    }
                    None => false,
                }
            } else {
                let mut queues = std::mem::take(&mut self.route_buf);
                s.vhost.route(exchange, &message, &mut queues);
                let routed = !queues.is_empty();
                for q in queues.drain(..) {
                    out.enqueue(&q, &message, durability, &mut self.congested);
                }
                self.route_buf = queues;
                routed
            };
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
                Deferred::Nack(tag)
            } else {
                Deferred::Ack(tag)
            };
            self.defer(ticket, what);
        }
        !out.failed
    }

    fn tx_commit(&mut self, s: &mut Session) -> Result<()> {
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
            self.unacked.restore(back);
            return Err(store_failure());
        }
        self.settle(s, tx.acks);
        let (requeue, drop): (Vec<_>, Vec<_>) = tx.rejects.into_iter().partition(|(_, r)| *r);
        self.requeue(s, requeue.into_iter().map(|(u, _)| u).collect());
        self.discard(s, drop.into_iter().map(|(u, _)| u).collect());
        // commit-ok once the transaction's persistent messages are on disk.
        let ticket = std::mem::take(&mut self.pending_ticket);
        self.defer(ticket, Deferred::TxCommitOk);
        let _ = s;
        Ok(())
    }

    /// Writes a delivery pushed by a queue, or hands it back if its consumer
    /// is gone or the channel is closing.
    pub fn deliver(&mut self, s: &mut Session, d: Delivery) {
        let open = self.state == ChannelState::Open;
        let Some(e) = s.consumers.handled(d.consumer) else {
            return;
        };
        if !open || e.retired {
            e.give_back(d);
            return;
        }
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        s.out.deliver(
            self.id,
            e.tag.as_bytes(),
            tag,
            d.redelivered,
            d.message.exchange.as_bytes(),
            d.message.routing_key.as_bytes(),
        );
        if !e.no_ack {
            if let Some(q) = &e.queue {
                self.unacked.push(Unacked {
                    tag,
                    queue: q.clone(),
                    seq: d.seq,
                    message: d.message.clone(),
                    flow: Some(e.flow.clone()),
                    disk: d.disk,
                });
            }
        }
        s.out.content(
            self.id,
            &d.message.raw_properties,
            &d.message.body,
            s.frame_max,
        );
    }

    /// Releases everything the channel holds: consumers are cancelled and
    /// unacked messages go back to their queues.
    pub fn cleanup(&mut self, s: &mut Session) {
        let tags: Vec<ShortStr> = self.consumers.keys().cloned().collect();
        for tag in tags {
            self.cancel_consumer(s, &tag);
        }
        if let Some(tx) = self.tx.take() {
            let mut back = tx.acks;
            back.extend(tx.rejects.into_iter().map(|(u, _)| u));
            self.unacked.restore(back);
        }
        let all = self.unacked.take_all();
        self.requeue(s, all);
        self.content = Content::Idle;
        self.deferred.clear();
    }
}

/// A content frame on a channel that isn't receiving a message.
pub fn unexpected_content() -> AmqpError {
    AmqpError::new(
        reply::UNEXPECTED_FRAME,
        "expected method frame, got non method frame instead",
    )
}

/// What happened to one message across the queues it was routed to.
#[derive(Default)]
struct Enqueued {
    /// Some queue refused it (`x-overflow: reject-publish`).
    rejected: bool,
    /// Some queue wrote it for durability: a confirm waits for the commit.
    needs_sync: bool,
    /// Some queue could not write it (the store failed).
    failed: bool,
}

impl Enqueued {
    /// Publishes to one queue and folds in its outcome.
    fn enqueue(
        &mut self,
        q: &Arc<Queue>,
        message: &Arc<Message>,
        durability: Durability,
        congested: &mut Option<Arc<Queue>>,
    ) {
        match q.publish(message.clone(), durability) {
            PublishOutcome::Rejected => self.rejected = true,
            PublishOutcome::Failed => self.failed = true,
            PublishOutcome::Enqueued {
                needs_sync,
                congested: c,
            } => {
                self.needs_sync |= needs_sync;
                if c {
                    *congested = Some(q.clone());
                }
            }
        }
    }
}

/// The connection error for a transaction the store could not make
/// durable (RabbitMQ's store failures end the connection too).
fn store_failure() -> AmqpError {
    AmqpError::internal("the message store failed to write the transaction's messages")
}

fn ack_multiple(upto: u64) -> Method {
    Method::BasicAck(BasicAck {
        delivery_tag: upto,
        multiple: true,
    })
}

/// A reply that waits for the group commit.
enum Deferred {
    Ack(u64),
    Nack(u64),
    TxCommitOk,
}

fn group_by_queue(items: Vec<Unacked>) -> Vec<(Arc<Queue>, Vec<Unacked>)> {
    let mut groups: Vec<(Arc<Queue>, Vec<Unacked>)> = Vec::new();
    for u in items {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, g)) => g.push(u),
            None => groups.push((u.queue.clone(), vec![u])),
        }
    }
    groups
}

/// Bodies up to this size are copied once, at ingress, into a buffer of
/// their own (together with exchange, routing key and properties).
const INLINE_BODY_MAX: usize = 1024;

/// A small message's fields are slices of the connection's 64 KiB read
/// buffer, which hundreds of messages share: every clone and drop of any
/// of them, on the publisher's core and on each consumer's, hits that
/// buffer's one reference count (a contended cache line), and one
/// long-queued message pins the whole buffer. Copying a small message once
/// into its own allocation is cheaper than both. Large bodies stay
/// zero-copy slices.
fn compact(
    exchange: ShortStr,
    routing_key: ShortStr,
    props: Bytes,
    body: Bytes,
) -> (ShortStr, ShortStr, Bytes, Bytes) {
    if body.len() > INLINE_BODY_MAX {
        return (exchange, routing_key, props, body);
    }
    let (e, r, p) = (exchange.len(), routing_key.len(), props.len());
    let mut v = Vec::with_capacity(e + r + p + body.len());
    v.extend_from_slice(exchange.as_bytes());
    v.extend_from_slice(routing_key.as_bytes());
    v.extend_from_slice(&props);
    v.extend_from_slice(&body);
    let all = Bytes::from(v);
    (
        ShortStr::new(all.slice(0..e)),
        ShortStr::new(all.slice(e..e + r)),
        all.slice(e + r..e + r + p),
        all.slice(e + r + p..),
    )
}

fn encode_properties(p: &BasicProperties) -> Bytes {
    let mut buf = BytesMut::new();
    p.encode(&mut buf);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(b: &BodyParts) -> usize {
        match b {
            BodyParts::Many(m) => m.capacity(),
            BodyParts::One(o) => o.len(),
            BodyParts::Empty => 0,
        }
    }

    /// A header claiming 128 MiB followed by a few tiny frames must not
    /// reserve the claimed size (200 such channels once reserved 25 GiB).
    #[test]
    fn body_memory_follows_received_bytes_not_the_claim() {
        let claimed = 128 << 20;
        let mut b = BodyParts::Empty;
        for _ in 0..3 {
            b.push(Bytes::from_static(b"x"), claimed);
        }
        assert_eq!(b.len(), 3);
        assert!(capacity(&b) <= 64, "reserved {} bytes", capacity(&b));
        // Growing to the real size stays within twice what arrived.
        let frame = Bytes::from(vec![7u8; 131_064]);
        let mut received = 3;
        while received + frame.len() <= 4 << 20 {
            b.push(frame.clone(), claimed);
            received += frame.len();
            assert!(
                capacity(&b) <= 2 * received,
                "{} for {received}",
                capacity(&b)
            );
        }
        // And never past the declared size when it is reached.
        let mut exact = BodyParts::Empty;
        for _ in 0..5 {
            exact.push(Bytes::from(vec![1u8; 1000]), 5000);
        }
        assert_eq!(exact.len(), 5000);
        assert!(capacity(&exact) <= 8192);
        assert!(exact.into_bytes().iter().all(|&x| x == 1));
    }
}
