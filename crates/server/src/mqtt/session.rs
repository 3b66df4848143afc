//! An MQTT client's session: its subscriptions (bindings to its queues),
//! its consumers, the QoS 1 messages in flight both ways, topic aliases,
//! and its will. Publishes go through `VirtualHost::publish` as AMQP's do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use warren_broker::access::Access;
use warren_broker::connections::ConnectionEntry;
use warren_broker::exchange::Exchange;
use warren_broker::queue::Queue;
use warren_broker::session::EventSender;
use warren_broker::store::Ticket;
use warren_broker::vhost::RouteCache;
use warren_broker::VirtualHost;
use warren_protocol::mqtt::{
    Ack, Connect, Disconnect, MqttError, Packet, Properties, Publish, Will, LEVEL_5,
};
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::connection::End;
use super::retained::RetainedStore;
use super::topic;
use warren_broker::session::Consumers;

/// QoS 1 messages a client may have unacknowledged per subscription
/// queue unless it asks for fewer (MQTT 5's receive maximum).
const PREFETCH: u32 = 64;
/// Topic aliases a client may set (MQTT 5).
const TOPIC_ALIAS_MAX: u16 = 64;
/// Payloads larger than this are written from the message, not copied.
const COPY_MAX: usize = 2048;

pub(super) struct SessionSetup<'a> {
    pub id: u64,
    pub level: u8,
    pub client_id: String,
    pub connect: &'a Connect,
    pub vhost: Arc<VirtualHost>,
    pub access: Access,
    pub events: EventSender,
    pub retained: Arc<RetainedStore>,
    pub max_message_size: u64,
    /// This connection in the broker's registry (byte counters).
    pub entry: Arc<ConnectionEntry>,
}

/// One subscription: its MQTT 5 options and the queue its binding leads
/// to (whose name says the granted QoS). Identifier and no-local are kept in the
/// binding's arguments, so a persistent session finds them again.
#[derive(Debug, Clone)]
pub(super) struct Sub {
    no_local: bool,
    id: Option<u32>,
    queue: ShortStr,
    /// A shared subscription: its group and the QoS this member was
    /// granted. Each member binds the group's queue with its own client id
    /// in the arguments (one message still lands once, as routing dedupes
    /// a queue), so a resumed persistent session finds its groups again.
    shared: Option<Shared>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Shared {
    group: String,
    qos: u8,
}

const MEMBER: &str = "x-mqtt-shared-member";

/// The client id a binding's arguments name as a shared group's member.
fn member(args: &FieldTable) -> Option<&[u8]> {
    match args.get(MEMBER) {
        Some(FieldValue::LongStr(b)) => Some(b.as_ref()),
        _ => None,
    }
}

impl Sub {
    fn has_extras(&self) -> bool {
        self.no_local || self.id.is_some()
    }

    /// The binding's arguments (ignored by topic routing).
    fn arguments(&self, client_id: &str) -> FieldTable {
        let mut t = FieldTable::new();
        if let Some(id) = self.id {
            t.insert("x-mqtt-subscription-id", FieldValue::I64(i64::from(id)));
        }
        if self.no_local {
            t.insert("x-mqtt-no-local", FieldValue::Bool(true));
        }
        if let Some(s) = &self.shared {
            let text = |v: &str| FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()));
            t.insert(MEMBER, text(client_id));
            t.insert("x-mqtt-shared-group", text(&s.group));
            t.insert("x-mqtt-shared-qos", FieldValue::U8(s.qos));
        }
        t
    }

    fn from_binding(queue: ShortStr, args: &FieldTable) -> Sub {
        let shared = match (
            args.get("x-mqtt-shared-group"),
            args.get("x-mqtt-shared-qos"),
        ) {
            (Some(FieldValue::LongStr(g)), Some(q)) => Some(Shared {
                group: String::from_utf8_lossy(g).into_owned(),
                qos: u8::from(q.as_i64() == Some(1)),
            }),
            _ => None,
        };
        Sub {
            no_local: matches!(args.get("x-mqtt-no-local"), Some(FieldValue::Bool(true))),
            id: args
                .get("x-mqtt-subscription-id")
                .and_then(|v| v.as_i64())
                .and_then(|v| u32::try_from(v).ok()),
            queue,
            shared,
        }
    }

    /// The filter as the client subscribed it (`$share/<group>/…` for a
    /// shared one), given the binding's plain filter.
    fn subscribed_as(&self, plain: &str) -> String {
        match &self.shared {
            Some(s) => format!("$share/{}/{plain}", s.group),
            None => plain.to_string(),
        }
    }
}

/// A message sent to the client at QoS 1, waiting for its PUBACK: its
/// delivery tag in the session, or `None` for a retained message
/// (nothing to settle).
type Inflight = Option<u64>;

pub(super) struct Session {
    pub level: u8,
    id: u64,
    client_id: String,
    /// The client id as a header value (no-local), shared by every publish.
    client_id_header: Bytes,
    vhost: Arc<VirtualHost>,
    access: Access,
    events: EventSender,
    retained: Arc<RetainedStore>,
    exchange: Arc<Exchange>,
    routes: RouteCache,
    /// Write permission on amq.topic (cached per permission epoch).
    checks: warren_broker::session::PublishChecks,
    persistent: bool,
    /// MQTT 5 session expiry as the queues' `x-expires` (ms).
    expires_ms: Option<u64>,
    pub session_present: bool,
    /// The queues this session consumes from (its own two, and shared
    /// subscriptions'), with their consumer keys.
    queues: HashMap<ShortStr, (Arc<Queue>, u64)>,
    consumers: Consumers,
    /// Its consumers, delivery tags and unacknowledged deliveries (the
    /// broker's protocol-neutral session).
    delivery: warren_broker::session::Session,
    prefetch: u32,
    /// Topic filter (as subscribed, `$share/…` included) → subscription.
    subs: BTreeMap<String, Sub>,
    /// Some subscription has an identifier or no-local: deliveries must
    /// look at which subscriptions match.
    sub_extras: bool,
    inflight: HashMap<u16, Inflight>,
    next_id: u16,
    /// Acks waiting for a commit ticket, in order.
    acks: warren_broker::session::Deferred<Packet>,
    watching: Ticket,
    /// QoS 2 packet ids received and not yet released.
    qos2: HashSet<u16>,
    aliases: HashMap<u16, String>,
    /// Topic aliases this server sends (MQTT 5): topic → alias, up to
    /// what the client accepts (its CONNECT's topic alias maximum) and
    /// never more than [`TOPIC_ALIAS_MAX`]; the first topics delivered
    /// keep them for the connection.
    out_aliases: HashMap<String, u16>,
    out_alias_max: u16,
    will: Option<Will>,
    max_message_size: u64,
    out: BytesMut,
    chunks: Vec<Bytes>,
    entry: Arc<ConnectionEntry>,
    /// Has published: resource alarms block only publishers.
    pub published: bool,
    /// A queue that asked this publisher to pause (credit flow), taken by
    /// the connection loop.
    pub congested: Option<Arc<Queue>>,
}

/// A subscribed filter without its `$share/<group>/` part, if any.
fn plain_filter(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|r| r.split_once('/'))
        .map_or(filter, |(_, f)| f)
}

/// A shared subscription's queue (`$share/<group>/<filter>`), consumed by
/// every member of the group in turn.
fn shared_queue_name(group: &str, filter: &str) -> ShortStr {
    ShortStr::from(format!("mqtt-shared-{group}-{filter}"))
}

fn queue_name(client_id: &str, qos: u8) -> ShortStr {
    // RabbitMQ's names; a client id too long for them is refused at
    // CONNECT (`client_id_fits`).
    ShortStr::from(format!("mqtt-subscription-{client_id}qos{qos}"))
}

/// Whether `client_id`'s queue names fit in an AMQP name (255 bytes): a
/// longer id is refused, not cut (two ids cut alike would share a session).
pub(super) fn client_id_fits(client_id: &str) -> bool {
    "mqtt-subscription-qos1".len() + client_id.len() <= 255
}

impl Session {
    pub(super) fn start(s: SessionSetup) -> Result<Session, String> {
        let v5 = s.level == LEVEL_5;
        let expiry = s.connect.properties.session_expiry_interval.unwrap_or(0);
        let persistent = if v5 {
            expiry > 0
        } else {
            !s.connect.clean_start
        };
        let exchange = s
            .vhost
            .exchange(&ShortStr::from_static("amq.topic"))
            .map_err(|e| e.reply_text())?;
        let prefetch = s
            .connect
            .properties
            .receive_maximum
            .map_or(PREFETCH, |m| u32::from(m).min(PREFETCH));
        let mut session = Session {
            level: s.level,
            id: s.id,
            client_id_header: Bytes::from(s.client_id.clone()),
            client_id: s.client_id,
            vhost: s.vhost,
            access: s.access,
            events: s.events,
            retained: s.retained,
            exchange,
            routes: RouteCache::default(),
            checks: Default::default(),
            persistent,
            expires_ms: (v5 && expiry != u32::MAX && expiry > 0).then(|| u64::from(expiry) * 1000),
            session_present: false,
            queues: HashMap::new(),
            consumers: Consumers::default(),
            delivery: warren_broker::session::Session::default(),
            prefetch,
            subs: BTreeMap::new(),
            sub_extras: false,
            inflight: HashMap::new(),
            next_id: 0,
            acks: Default::default(),
            watching: 0,
            qos2: HashSet::new(),
            aliases: HashMap::new(),
            out_aliases: HashMap::new(),
            out_alias_max: if v5 {
                s.connect
                    .properties
                    .topic_alias_maximum
                    .unwrap_or(0)
                    .min(TOPIC_ALIAS_MAX)
            } else {
                0
            },
            will: s.connect.will.clone(),
            max_message_size: s.max_message_size,
            out: BytesMut::with_capacity(4096),
            chunks: Vec::new(),
            entry: s.entry,
            published: false,
            congested: None,
        };
        for qos in 0..2u8 {
            let name = queue_name(&session.client_id, qos);
            let Ok(q) = session.vhost.queue(&name) else {
                continue;
            };
            if s.connect.clean_start || !persistent {
                // A clean start discards the old session.
                session
                    .vhost
                    .delete_queue(&name, false, false, session.id)
                    .map_err(|e| e.reply_text())?;
                continue;
            }
            session.session_present = true;
            let mine = session.exchange.bindings_where(|b| {
                b.destination.name() == &q.name && member(&b.arguments).is_none()
            });
            for b in mine {
                let sub = Sub::from_binding(q.name.clone(), &b.arguments);
                session.sub_extras |= sub.has_extras();
                session
                    .subs
                    .insert(topic::from_amqp(&b.routing_key.as_str()), sub);
            }
            session.consume(qos, q)?;
        }
        session.rejoin_groups(s.connect.clean_start || !persistent)?;
        Ok(session)
    }

    /// A resumed persistent session consumes again from the shared groups
    /// it is a member of; any other start leaves them (a clean start
    /// discards the old session's memberships).
    fn rejoin_groups(&mut self, leave: bool) -> Result<(), String> {
        let mine = self.client_id.as_bytes();
        let memberships = self
            .exchange
            .bindings_where(|b| member(&b.arguments) == Some(mine));
        for b in memberships {
            let queue = b.destination.name().clone();
            let sub = Sub::from_binding(queue.clone(), &b.arguments);
            let plain = topic::from_amqp(&b.routing_key.as_str());
            let Some(shared) = sub.shared.clone().filter(|_| !leave) else {
                self.unbind(&plain, &sub);
                continue;
            };
            let Ok(q) = self.vhost.queue(&queue) else {
                // The group's queue went; its bindings went with it.
                continue;
            };
            self.session_present = true;
            self.sub_extras |= sub.has_extras();
            self.subs.insert(sub.subscribed_as(&plain), sub);
            if !self.queues.contains_key(&queue) {
                self.consume(shared.qos, q)?;
            }
        }
        Ok(())
    }

    /// CONNACK's MQTT 5 properties: what this server supports.
    pub(super) fn connack_properties(&self, assigned: Option<String>) -> Properties {
        Properties {
            assigned_client_identifier: assigned,
            topic_alias_maximum: Some(TOPIC_ALIAS_MAX),
            maximum_qos: Some(1),
            retain_available: Some(1),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(1),
            shared_subscription_available: Some(1),
            maximum_packet_size: u32::try_from(self.max_packet()).ok(),
            ..Properties::default()
        }
    }

    pub(super) fn max_packet(&self) -> usize {
        usize::try_from(self.max_message_size)
            .unwrap_or(usize::MAX)
            .saturating_add(65_536)
    }

    pub(super) fn out(&mut self, p: Packet) {
        p.encode(self.level, &mut self.out);
    }

    /// Replaces a delivered PUBLISH's topic by its alias when the client
    /// takes aliases: the first PUBLISH of a topic names it and sets the
    /// alias, later ones carry only the alias.
    fn alias_out(&mut self, p: &mut Publish) {
        if self.out_alias_max == 0 {
            return;
        }
        if let Some(&a) = self.out_aliases.get(&p.topic) {
            p.properties.topic_alias = Some(a);
            p.topic.clear();
        } else if self.out_aliases.len() < usize::from(self.out_alias_max) {
            let a = u16::try_from(self.out_aliases.len() + 1).unwrap_or(u16::MAX);
            self.out_aliases.insert(p.topic.clone(), a);
            p.properties.topic_alias = Some(a);
        }
    }

    fn out_publish(&mut self, p: &Publish) {
        if p.payload.len() <= COPY_MAX {
            p.encode_head(self.level, &mut self.out);
            self.out.extend_from_slice(&p.payload);
        } else {
            p.encode_head(self.level, &mut self.out);
            self.chunks.push(self.out.split().freeze());
            self.chunks.push(p.payload.clone());
        }
    }

    pub(super) fn pending_out(&self) -> usize {
        self.out.len() + self.chunks.iter().map(|c| c.len()).sum::<usize>()
    }

    pub(super) async fn write_to<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> std::io::Result<()> {
        let n = self.pending_out();
        if n == 0 {
            return Ok(());
        }
        for c in self.chunks.drain(..) {
            stream.write_all(&c).await?;
        }
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
        }
        // TLS holds records in its session until flushed (a no-op on TCP).
        stream.flush().await?;
        self.entry.stats.sent(n);
        Ok(())
    }

    /// Counts bytes read from the client (listings, rates).
    pub(super) fn received(&self, n: usize) {
        self.entry.stats.received(n);
    }

    /// Tells an MQTT 5 client why it is being disconnected.
    pub(super) fn protocol_error(&mut self, e: &MqttError) {
        if self.level == LEVEL_5 {
            let reason = match e {
                MqttError::TooLarge { .. } => 0x95,
                MqttError::Protocol(_) => 0x82,
                _ => 0x81,
            };
            self.disconnect(reason, e.to_string());
        }
    }

    fn disconnect(&mut self, reason: u8, why: String) {
        if self.level == LEVEL_5 {
            let properties = Properties {
                reason_string: Some(why),
                ..Properties::default()
            };
            self.out(Packet::Disconnect(Disconnect { reason, properties }));
        }
    }

    /// Handles one packet; `Some(end)` ends the connection cleanly,
    /// `Err` ends it as lost (the will goes).
    pub(super) async fn handle(&mut self, p: Packet) -> Result<Option<End>, String> {
        match p {
            Packet::Publish(p) => self.publish(p).await?,
            Packet::PubAck(a) | Packet::PubComp(a) => self.acked(a.packet_id),
            Packet::PubRec(a) => {
                // We never send QoS 2, but answer as the protocol says.
                self.out(Packet::PubRel(Ack::new(a.packet_id, 0)));
            }
            Packet::PubRel(a) => {
                let known = self.qos2.remove(&a.packet_id);
                let reason = if known || self.level != LEVEL_5 {
                    0
                } else {
                    0x92
                };
                self.out(Packet::PubComp(Ack::new(a.packet_id, reason)));
            }
            Packet::Subscribe(s) => self.subscribe(s).await?,
            Packet::Unsubscribe(u) => self.unsubscribe(u)?,
            Packet::PingReq => self.out(Packet::PingResp),
            Packet::Disconnect(d) => {
                return Ok(Some(End::Disconnected {
                    with_will: d.reason == 0x04,
                }))
            }
            Packet::Auth(_) => {
                self.disconnect(0x8c, "extended authentication is not supported".into());
                return Err("AUTH is not supported".into());
            }
            other => {
                self.disconnect(0x82, "unexpected packet".into());
                return Err(format!("unexpected packet from a client: {other:?}"));
            }
        }
        Ok(None)
    }
}

mod deliver;
mod publish;
mod subscribe;
pub(super) mod will;
