//! One AMQP channel: its method handlers, content assembly, consumers,
//! unacked deliveries, confirms and transactions.
//!
//! Handlers return `Err(AmqpError)`; the connection turns a soft error into
//! channel.close and a hard one into connection.close, with the class and
//! method ids of the method that failed.
//!
//! - here: the channel's state and the method dispatch, permission checks;
//! - [`content`]: basic.publish's header and body frames;
//! - [`declare`]: exchange.declare and queue.declare;
//! - [`consume`]: consumers, basic.get, deliveries, acks and requeues;
//! - [`publish`]: routing, enqueueing, confirms and transactions.

mod consume;
mod content;
mod declare;
mod publish;

use std::sync::Arc;

use ahash::AHashMap;
use bytes::{Bytes, BytesMut};
use warren_broker::access::{Operation, Resource};
use warren_broker::connections::ChannelStats;
use warren_broker::error::{AmqpError, Result};
use warren_broker::exchange::Exchange;
use warren_broker::names::{self, DIRECT_REPLY_TO};
use warren_broker::queue::Durability;
use warren_broker::session::{Consumer, ConsumerFlow, Delivery};
use warren_broker::store::Ticket;
use warren_broker::vhost::{
    check_name, default_exchange_refused, ExchangeSpec, QueueSpec, RouteCache,
};
use warren_broker::{broker::ReplyRoute, Message, Queue};
use warren_protocol::constants::reply;
use warren_protocol::methods::*;
use warren_protocol::{BasicProperties, ContentHeader, Decoder, FieldTable, Method, ShortStr};

use crate::context::ConnContext;
use content::BodyParts;
use publish::Reply;
use warren_broker::session::Unacked;

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
    /// The protocol-neutral session: consumers (tag → key), delivery
    /// tags, unacknowledged deliveries, settlement, channel-wide prefetch.
    delivery: warren_broker::session::Session,
    /// basic.qos global=false: the limit for consumers created from now on.
    consumer_prefetch: u32,
    /// Publisher confirms: the next publish sequence number.
    confirm_seq: Option<u64>,
    /// Replies that wait for a commit ticket (confirms, tx.commit-ok), in
    /// the order they must go out. Tickets never decrease along the queue.
    deferred: warren_broker::session::Deferred<Reply>,
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
    /// Default-exchange routes and the routing buffer.
    routes: RouteCache,
    /// Write permission (cached per permission epoch) and the message
    /// checks every front-end makes.
    checks: warren_broker::session::PublishChecks,
    /// Live counters for listings.
    stats: Arc<ChannelStats>,
    /// Publishes to the last exchange, not yet added to its shared
    /// counters (see [`ExchangeTally`]).
    tally: ExchangeTally,
}

/// Publishes counted locally and added to the exchange's shared counters
/// once per read batch or when the channel switches exchange: one atomic
/// add per batch instead of one per message.
#[derive(Default)]
struct ExchangeTally {
    exchange: Option<Arc<Exchange>>,
    published_in: u64,
    published_out: u64,
}

impl ExchangeTally {
    fn count(&mut self, x: &Arc<Exchange>, routed: bool) {
        if !self.exchange.as_ref().is_some_and(|e| Arc::ptr_eq(e, x)) {
            self.flush();
            self.exchange = Some(x.clone());
        }
        self.published_in += 1;
        self.published_out += u64::from(routed);
    }

    fn flush(&mut self) {
        use warren_broker::stats::Metric;
        if let Some(x) = &self.exchange {
            if self.published_in > 0 {
                x.counters.add(Metric::PublishIn, self.published_in);
            }
            if self.published_out > 0 {
                x.counters.add(Metric::PublishOut, self.published_out);
            }
        }
        self.published_in = 0;
        self.published_out = 0;
    }
}

impl Channel {
    /// Whether the oldest unacknowledged delivery is older than
    /// `timeout` (RabbitMQ's consumer timeout).
    pub fn unacked_overdue(
        &mut self,
        now: std::time::Instant,
        timeout: std::time::Duration,
    ) -> bool {
        self.delivery.unacked_overdue(now, timeout)
    }

    pub fn new(id: u16, stats: Arc<ChannelStats>) -> Self {
        Channel {
            id,
            state: ChannelState::Open,
            content: Content::Idle,
            delivery: warren_broker::session::Session::default(),
            consumer_prefetch: 0,
            confirm_seq: None,
            deferred: Default::default(),
            tx: None,
            last_queue: None,
            reply_to: None,
            pending_ticket: 0,
            congested: None,
            exchanges: AHashMap::new(),
            routes: RouteCache::default(),
            checks: Default::default(),
            stats,
            tally: ExchangeTally::default(),
        }
    }

    /// Makes this batch's publishes visible in the exchanges' statistics.
    pub fn flush_stats(&mut self) {
        self.tally.flush();
    }

    /// Counts one message statistic (only this channel's task writes).
    #[inline]
    fn count(&self, m: warren_broker::stats::Metric) {
        self.stats.counters.bump(m);
    }

    /// Keeps the listed consumer count current.
    fn note_consumers(&self) {
        self.stats
            .set_consumers(u32::try_from(self.delivery.consumer_count()).unwrap_or(u32::MAX));
    }

    /// Keeps the listed unacked count current.
    fn note_unacked(&self) {
        self.stats
            .set_unacked(u32::try_from(self.delivery.unacked_len()).unwrap_or(u32::MAX));
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

    pub fn on_method(&mut self, s: &mut ConnContext, method: Method) -> Result<()> {
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
                // RabbitMQ's order: the default exchange, then system
                // exchanges (both refused by the vhost), then configure.
                if !m.exchange.is_empty() && !m.exchange.starts_with("amq.") {
                    check(s, Operation::Configure, Resource::Exchange, &m.exchange)?;
                }
                s.vhost.delete_exchange(&m.exchange, m.if_unused)?;
                self.exchanges.remove(&m.exchange);
                if !m.nowait {
                    s.out.method(self.id, &ExchangeDeleteOk {}.into());
                }
            }
            Method::ExchangeBind(m) => {
                let ok = (!m.nowait).then(|| ExchangeBindOk {}.into());
                let b = (m.source, m.destination, m.routing_key, m.arguments);
                self.exchange_binding(s, b, Binding::Add, ok)?;
            }
            Method::ExchangeUnbind(m) => {
                let ok = (!m.nowait).then(|| ExchangeUnbindOk {}.into());
                let b = (m.source, m.destination, m.routing_key, m.arguments);
                self.exchange_binding(s, b, Binding::Remove, ok)?;
            }
            Method::QueueDeclare(m) => self.queue_declare(s, m)?,
            Method::QueueBind(m) => {
                let key = self.routing_key_or_last(m.routing_key, &m.queue);
                let queue = self.queue_name(m.queue)?;
                check_binding(s, &m.exchange, &queue, Resource::Queue, &key)?;
                s.vhost
                    .bind(&m.exchange, &queue, true, key, m.arguments, s.id)?;
                if !m.nowait {
                    s.out.method(self.id, &QueueBindOk {}.into());
                }
            }
            Method::QueueUnbind(m) => {
                let key = self.routing_key_or_last(m.routing_key, &m.queue);
                let queue = self.queue_name(m.queue)?;
                check_binding(s, &m.exchange, &queue, Resource::Queue, &key)?;
                s.vhost
                    .unbind(&m.exchange, &queue, true, key, m.arguments, s.id)?;
                s.out.method(self.id, &QueueUnbindOk {}.into());
            }
            Method::QueuePurge(m) => {
                let q = self.readable_queue(s, m.queue)?;
                let n = q.purge();
                if !m.nowait {
                    s.out
                        .method(self.id, &QueuePurgeOk { message_count: n }.into());
                }
            }
            Method::QueueDelete(m) => {
                let name = self.queue_name(m.queue)?;
                check(s, Operation::Configure, Resource::Queue, &name)?;
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
                self.stats.set_confirm();
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
                self.stats.set_transactional();
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
                self.delivery.restore(back);
                self.note_unacked();
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

    /// Expands RabbitMQ's empty-name shortcut to the last declared queue.
    fn queue_name(&self, name: ShortStr) -> Result<ShortStr> {
        if !name.is_empty() {
            return Ok(name);
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    /// exchange.bind / exchange.unbind: permissions, then the change, then
    /// the reply (`None` with nowait).
    fn exchange_binding(
        &mut self,
        s: &mut ConnContext,
        (source, destination, key, arguments): (ShortStr, ShortStr, ShortStr, FieldTable),
        action: Binding,
        reply: Option<Method>,
    ) -> Result<()> {
        check_binding(s, &source, &destination, Resource::Exchange, &key)?;
        match action {
            Binding::Add => s
                .vhost
                .bind(&source, &destination, false, key, arguments, s.id)?,
            Binding::Remove => {
                s.vhost
                    .unbind(&source, &destination, false, key, arguments, s.id)?
            }
        }
        if let Some(r) = reply {
            s.out.method(self.id, &r);
        }
        Ok(())
    }

    /// RabbitMQ's shortcut: with both the queue name and the routing key
    /// empty, the key is the last declared queue's name too.
    fn routing_key_or_last(&self, key: ShortStr, queue: &ShortStr) -> ShortStr {
        match &self.last_queue {
            Some(last) if key.is_empty() && queue.is_empty() => last.clone(),
            _ => key,
        }
    }

    /// A queue the client may read from (get, consume, purge): read
    /// permission first, then existence and exclusivity, as RabbitMQ.
    fn readable_queue(&self, s: &mut ConnContext, name: ShortStr) -> Result<Arc<Queue>> {
        let name = self.queue_name(name)?;
        check(s, Operation::Read, Resource::Queue, &name)?;
        let q = s.vhost.queue(&name)?;
        s.vhost.check_exclusive(&q, s.id)?;
        Ok(q)
    }

    /// Releases everything the channel holds: consumers are cancelled and
    /// unacked messages go back to their queues.
    pub fn cleanup(&mut self, s: &mut ConnContext) {
        let tags: Vec<ShortStr> = self.delivery.consumer_tags();
        for tag in tags {
            self.cancel_consumer(s, &tag);
        }
        if let Some(tx) = self.tx.take() {
            let mut back = tx.acks;
            back.extend(tx.rejects.into_iter().map(|(u, _)| u));
            self.delivery.restore(back);
        }
        let all = self.delivery.take_all();
        self.note_unacked();
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

/// Whether a binding method adds or removes.
enum Binding {
    Add,
    Remove,
}

/// One permission check on a named queue or exchange.
fn check(s: &mut ConnContext, op: Operation, kind: Resource, name: &ShortStr) -> Result<()> {
    s.access.check(op, kind, &name.as_str())
}

/// queue.bind/unbind and exchange.bind/unbind, in RabbitMQ's order: write
/// on the destination, the default exchange refused, read on the source,
/// and the source's topic permission (read) on the routing key.
fn check_binding(
    s: &mut ConnContext,
    source: &ShortStr,
    destination: &ShortStr,
    kind: Resource,
    key: &ShortStr,
) -> Result<()> {
    check(s, Operation::Write, kind, destination)?;
    if source.is_empty() || (kind == Resource::Exchange && destination.is_empty()) {
        return Err(default_exchange_refused());
    }
    check(s, Operation::Read, Resource::Exchange, source)?;
    if let Ok(x) = s.vhost.exchange(source) {
        s.access.check_topic(Operation::Read, &x, &key.as_str())?;
    }
    Ok(())
}
