//! An MQTT client's session: its subscriptions (bindings to its queues),
//! its consumers, the QoS 1 messages in flight both ways, topic aliases,
//! and its will. Publishes go through `VirtualHost::publish` as AMQP's do.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use warren_broker::access::{Access, Operation, Resource};
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
/// QoS 1 messages a session may have unacknowledged in all (every
/// subscription queue, shared groups and retained messages together):
/// MQTT 5's Receive Maximum when the client asks for fewer, this fixed
/// window otherwise (3.1.1 has no such field). Further deliveries wait in
/// their queues, retained ones in the session. Far below the 65,535
/// packet ids, so one is always free.
pub(super) const WINDOW: u32 = 1024;
/// Output buffered before it must be written (the connection writes it
/// out; retained messages waiting to go stop here).
pub(super) const OUT_HIGH_WATER: usize = 256 * 1024;
/// QoS 1 and 2 publishes a client may have unacknowledged (its PUBACK
/// or PUBCOMP not yet sent): the Receive Maximum this server announces;
/// more is a protocol error (0x93).
pub(super) const SERVER_RECEIVE_MAX: u16 = 1024;
/// The binding/queue argument naming the user a session belongs to.
const OWNER: &str = "x-mqtt-session-owner";
/// Topic aliases a client may set (MQTT 5).
const TOPIC_ALIAS_MAX: u16 = 64;
/// Payloads larger than this are written from the message, not copied.
const COPY_MAX: usize = 2048;

pub(super) struct SessionSetup<'a> {
    pub id: u64,
    pub level: u8,
    pub client_id: String,
    /// The logged-in user: the session's owner.
    pub user: String,
    pub connect: &'a Connect,
    pub vhost: Arc<VirtualHost>,
    pub access: Access,
    pub events: EventSender,
    pub retained: Arc<RetainedStore>,
    pub max_message_size: u64,
    /// Longest a session outlives its connection, seconds (`None`: no
    /// limit): RabbitMQ's mqtt.max_session_expiry_interval_seconds.
    pub max_session_expiry: Option<u32>,
    /// The keepalive the server imposes (MQTT 5 Server Keep Alive).
    pub server_keep_alive: Option<u16>,
    /// This connection in the broker's registry (byte counters).
    pub entry: Arc<ConnectionEntry>,
}

/// One subscription: its MQTT 5 options and the queue its binding leads
/// to (whose name says the granted QoS). Identifier and no-local are kept in the
/// binding's arguments, so a persistent session finds them again.
#[derive(Debug, Clone)]
pub(super) struct Sub {
    no_local: bool,
    /// Retain as published (MQTT 5): deliveries keep the RETAIN flag
    /// they were published with.
    rap: bool,
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
    /// The member session's user (`None` in bindings made before
    /// sessions had owners: they are unbound with the arguments they had).
    owner: Option<Bytes>,
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
        self.no_local || self.rap || self.id.is_some()
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
        if self.rap {
            t.insert("x-mqtt-retain-as-published", FieldValue::Bool(true));
        }
        if let Some(s) = &self.shared {
            let text = |v: &str| FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()));
            t.insert(MEMBER, text(client_id));
            if let Some(o) = &s.owner {
                t.insert(OWNER, FieldValue::LongStr(o.clone()));
            }
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
                qos: u8::try_from(q.as_i64().unwrap_or(0).clamp(0, 2)).unwrap_or(0),
                owner: match args.get(OWNER) {
                    Some(FieldValue::LongStr(o)) => Some(o.clone()),
                    _ => None,
                },
            }),
            _ => None,
        };
        Sub {
            no_local: matches!(args.get("x-mqtt-no-local"), Some(FieldValue::Bool(true))),
            rap: matches!(
                args.get("x-mqtt-retain-as-published"),
                Some(FieldValue::Bool(true))
            ),
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

/// A message sent to the client at QoS 1 or 2 and not yet acknowledged
/// (each holds a place in the session's window until PUBACK or PUBCOMP).
#[derive(Debug, Clone)]
pub(super) enum Inflight {
    /// QoS 1 from a queue, until PUBACK: its delivery tag.
    Acked(u64),
    /// A retained message (nothing to settle): QoS 1 until PUBACK, QoS 2
    /// until PUBREC.
    Retained,
    /// QoS 2 from a queue, until PUBREC: its delivery tag and where it
    /// came from (a released marker names it).
    Received { tag: u64, queue: ShortStr, seq: u64 },
    /// PUBREL sent (or waiting for its marker's commit), until PUBCOMP:
    /// the marker's tag in the session's released queue, if it has one.
    Released { marker: Option<u64> },
}

pub(super) struct Session {
    pub level: u8,
    id: u64,
    client_id: String,
    /// The client id as a header value (no-local), shared by every publish.
    client_id_header: Bytes,
    /// The user this session belongs to (its queues' and memberships'
    /// owner argument).
    user: Bytes,
    vhost: Arc<VirtualHost>,
    access: Access,
    events: EventSender,
    retained: Arc<RetainedStore>,
    exchange: Arc<Exchange>,
    routes: RouteCache,
    /// Write permission on amq.topic (cached per permission epoch).
    checks: warren_broker::session::PublishChecks,
    persistent: bool,
    /// The session's expiry as its queues' `x-expires` (ms): MQTT 5's
    /// session expiry interval, a 3.1.1 persistent session's the
    /// configured maximum, either cut to that maximum (`None`: never).
    expires_ms: Option<u64>,
    /// The expiry this server grants an MQTT 5 client that asked for a
    /// longer one (told in CONNACK).
    expiry_capped: Option<u32>,
    /// The configured maximum session expiry (seconds; `None`: none).
    max_session_expiry: Option<u32>,
    /// The client's Maximum Packet Size (MQTT 5): larger deliveries are
    /// dropped as if sent (3.1.2.11.4).
    client_max_packet: Option<u32>,
    /// The keepalive imposed on the client (CONNACK's Server Keep Alive).
    pub server_keep_alive: Option<u16>,
    /// QoS 1 and 2 publishes from the client whose PUBACK or PUBCOMP has
    /// not been sent (bounded by [`SERVER_RECEIVE_MAX`]).
    inbound: u32,
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
    /// The QoS granted to each consumer's subscription (by consumer key).
    granted: HashMap<u64, u8>,
    /// A persistent session's released queue (QoS 2 messages the client
    /// has received, PUBREL owed): see `session/qos2.rs`.
    released: Option<Arc<Queue>>,
    /// Messages (queue, position) a released marker names: acknowledged
    /// when their queue delivers them again, not sent.
    released_keys: HashSet<(ShortStr, u64)>,
    /// PUBRELs to send once their marker's commit is done: (ticket,
    /// packet id, the delivery to settle then).
    releases: VecDeque<(Ticket, u16, u64)>,
    /// PUBRELs owed from before (a resumed session), sent after CONNACK.
    owed_releases: Vec<u16>,
    /// Retained messages waiting for a place in the window (or for the
    /// output to drain), by the filter whose subscription asked for them:
    /// subscribing to a filter again replaces its waiting messages rather
    /// than adding more. `retained_order` lists each waiting filter once.
    retained_waiting: HashMap<String, RetainedBatch>,
    retained_order: VecDeque<String>,
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

/// The retained messages one subscription still has to receive: matched
/// when the batch comes to the front (the match is the work, so a
/// SUBSCRIBE naming many filters costs one filter's match per turn),
/// their payloads read a bounded batch at a time as they go out.
pub(super) struct RetainedBatch {
    qos: u8,
    id: Option<u32>,
    /// Index entries not yet read (`None`: not matched yet).
    entries: Option<VecDeque<Arc<super::retained::RetainedEntry>>>,
    /// Read, waiting for the window or the output.
    loaded: VecDeque<Publish>,
}

/// A subscribed filter without its `$share/<group>/` part, if any.
fn plain_filter(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|r| r.split_once('/'))
        .map_or(filter, |(_, f)| f)
}

/// A shared subscription's queue (`$share/<group>/<filter>`), consumed by
/// every member of the group in turn. A share name holds no `/`, so the
/// first `/` after the prefix ends the group: two (group, filter) pairs
/// never share a name. (Before, a `-` joined them, and
/// `$share/workers/eu-orders` met `$share/workers-eu/orders`.)
fn shared_queue_name(group: &str, filter: &str) -> ShortStr {
    ShortStr::from(format!("mqtt-shared-{group}/{filter}"))
}

/// The name earlier releases gave a shared group's queue (ambiguous: see
/// [`shared_queue_name`]); still used for a group whose durable queue
/// has it, when every binding to it is that group's.
fn legacy_shared_queue_name(group: &str, filter: &str) -> ShortStr {
    ShortStr::from(format!("mqtt-shared-{group}-{filter}"))
}

/// The user an argument table names as a session's owner.
fn owner(args: &FieldTable) -> Option<&[u8]> {
    match args.get(OWNER) {
        Some(FieldValue::LongStr(b)) => Some(b.as_ref()),
        _ => None,
    }
}

/// The user `client_id`'s stored session in `vhost` belongs to: the owner
/// named by its queues or its shared-group memberships. `None` when it
/// has none, or only queues made before sessions had owners (those are
/// resumed under the queue permission checks alone).
pub(super) fn session_owner(vhost: &VirtualHost, client_id: &str) -> Option<String> {
    let names = (0..3u8)
        .map(|qos| queue_name(client_id, qos))
        .chain([released_queue_name(client_id)]);
    for name in names {
        if let Ok(q) = vhost.queue(&name) {
            if let Some(o) = owner(&q.options.arguments) {
                return Some(String::from_utf8_lossy(o).into_owned());
            }
        }
    }
    let exchange = vhost.exchange(&ShortStr::from_static("amq.topic")).ok()?;
    let mine = client_id.as_bytes();
    exchange
        .bindings_where(|b| member(&b.arguments) == Some(mine) && owner(&b.arguments).is_some())
        .first()
        .and_then(|b| owner(&b.arguments).map(|o| String::from_utf8_lossy(o).into_owned()))
}

/// A persistent session's queue of released QoS 2 markers.
fn released_queue_name(client_id: &str) -> ShortStr {
    // Shorter than the subscription queues' names, so it fits as they do.
    ShortStr::from(format!("mqtt-released-{client_id}"))
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

/// A persistent session's expiry in seconds (`None`: never): what an
/// MQTT 5 client asked for (`u32::MAX` is never), 3.1.1's none, cut to
/// the configured maximum.
fn session_expiry(v5: bool, asked: u32, max: Option<u32>) -> Option<u32> {
    let asked = (v5 && asked != u32::MAX).then_some(asked);
    match (asked, max) {
        (Some(a), Some(m)) => Some(a.min(m)),
        (a, None) => a,
        (None, m) => m,
    }
}

/// Why a session could not start: the CONNACK tells the two apart.
pub(super) enum StartError {
    /// The user may not resume or discard this client id's session.
    NotAuthorized(String),
    Failed(String),
}

impl Session {
    pub(super) fn start(s: SessionSetup) -> Result<Session, StartError> {
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
            .map_err(|e| StartError::Failed(e.reply_text()))?;
        let receive_maximum = s.connect.properties.receive_maximum.map(u32::from);
        let prefetch = receive_maximum.map_or(PREFETCH, |m| m.min(PREFETCH));
        let delivery = warren_broker::session::Session::default();
        delivery
            .flow()
            .set_prefetch(receive_maximum.map_or(WINDOW, |m| m.clamp(1, WINDOW)));
        let mut session = Session {
            level: s.level,
            id: s.id,
            client_id_header: Bytes::from(s.client_id.clone()),
            client_id: s.client_id,
            user: Bytes::from(s.user),
            vhost: s.vhost,
            access: s.access,
            events: s.events,
            retained: s.retained,
            exchange,
            routes: RouteCache::default(),
            checks: Default::default(),
            persistent,
            expires_ms: persistent
                .then(|| session_expiry(v5, expiry, s.max_session_expiry))
                .flatten()
                .map(|secs| u64::from(secs) * 1000),
            max_session_expiry: s.max_session_expiry,
            client_max_packet: if v5 {
                s.connect.properties.maximum_packet_size
            } else {
                None
            },
            server_keep_alive: s.server_keep_alive,
            inbound: 0,
            expiry_capped: (v5 && persistent)
                .then(|| session_expiry(v5, expiry, s.max_session_expiry))
                .flatten()
                .filter(|&secs| secs != expiry),
            session_present: false,
            queues: HashMap::new(),
            consumers: Consumers::default(),
            delivery,
            prefetch,
            subs: BTreeMap::new(),
            sub_extras: false,
            inflight: HashMap::new(),
            next_id: 0,
            granted: HashMap::new(),
            released: None,
            released_keys: HashSet::new(),
            releases: VecDeque::new(),
            owed_releases: Vec::new(),
            retained_waiting: HashMap::new(),
            retained_order: VecDeque::new(),
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
        if s.connect.clean_start {
            session.discard_released()?;
        }
        for qos in 0..3u8 {
            let name = queue_name(&session.client_id, qos);
            let Ok(q) = session.vhost.queue(&name) else {
                continue;
            };
            if s.connect.clean_start {
                // A clean start discards the old session: a queue delete,
                // with its permission check. (Without one, an MQTT 5
                // client resumes its session even with a session expiry
                // of 0 now: it then ends with this connection.)
                session.may(Operation::Configure, &name)?;
                session
                    .vhost
                    .delete_queue(&name, false, false, session.id)
                    .map_err(|e| StartError::Failed(e.reply_text()))?;
                continue;
            }
            // Resuming is consuming from it again.
            session.may(Operation::Read, &name)?;
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
            session.consume(qos, q).map_err(StartError::Failed)?;
        }
        session.rejoin_groups(s.connect.clean_start)?;
        if !s.connect.clean_start {
            session.resume_released()?;
        }
        Ok(session)
    }

    /// Whether this session's user may do `op` on queue `name` (checked
    /// as any queue operation is).
    fn may(&mut self, op: Operation, name: &ShortStr) -> Result<(), StartError> {
        self.access
            .check(op, Resource::Queue, &name.as_str())
            .map_err(|e| StartError::NotAuthorized(e.reply_text()))
    }

    /// A resumed persistent session consumes again from the shared groups
    /// it is a member of; any other start leaves them (a clean start
    /// discards the old session's memberships).
    fn rejoin_groups(&mut self, leave: bool) -> Result<(), StartError> {
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
            self.may(Operation::Read, &queue)?;
            self.session_present = true;
            self.sub_extras |= sub.has_extras();
            self.subs.insert(sub.subscribed_as(&plain), sub);
            if !self.queues.contains_key(&queue) {
                self.consume(shared.qos, q).map_err(StartError::Failed)?;
            }
        }
        Ok(())
    }

    /// An MQTT 5 DISCONNECT's new session expiry: 0 ends the session
    /// with the connection; another value applies to its queues from now
    /// (cut to the configured maximum). Setting one when the CONNECT's
    /// was 0 is a protocol error (3.14.2.2.2).
    fn expiry_changed(&mut self, secs: u32) -> Result<(), String> {
        if !self.persistent && secs > 0 {
            self.disconnect(
                0x82,
                "session expiry set at DISCONNECT after 0 at CONNECT".into(),
            );
            return Err("session expiry set at DISCONNECT after 0 at CONNECT".into());
        }
        if secs == 0 {
            self.persistent = false;
            return Ok(());
        }
        let ms = session_expiry(true, secs, self.max_session_expiry).map(|s| u64::from(s) * 1000);
        self.expires_ms = ms;
        let queues: Vec<Arc<Queue>> = self.queues.values().map(|(q, _)| q.clone()).collect();
        for q in queues {
            self.vhost.dead_letter(q.set_expires(ms));
        }
        Ok(())
    }

    /// Counts one more QoS 1 or 2 publish from the client awaiting its
    /// acknowledgement; past the Receive Maximum it announced, the
    /// client broke the protocol (0x93).
    pub(super) fn inbound_taken(&mut self) -> Result<(), String> {
        self.inbound += 1;
        if self.inbound > u32::from(SERVER_RECEIVE_MAX) {
            self.disconnect(0x93, "receive maximum exceeded".into());
            return Err("receive maximum exceeded".into());
        }
        Ok(())
    }

    /// Whether a packet of `len` bytes may go to this client (its MQTT 5
    /// Maximum Packet Size).
    pub(super) fn fits_client(&self, p: &Publish) -> bool {
        let Some(max) = self.client_max_packet else {
            return true;
        };
        let mut head = BytesMut::new();
        p.encode_head(self.level, &mut head);
        head.len() + p.payload.len() <= max as usize
    }

    /// CONNACK's MQTT 5 properties: what this server supports.
    pub(super) fn connack_properties(&self, assigned: Option<String>) -> Properties {
        Properties {
            assigned_client_identifier: assigned,
            session_expiry_interval: self.expiry_capped,
            server_keep_alive: self.server_keep_alive,
            receive_maximum: Some(SERVER_RECEIVE_MAX),
            topic_alias_maximum: Some(TOPIC_ALIAS_MAX),
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
        if matches!(p, Packet::PubAck(_)) {
            // A client publish is acknowledged (or refused).
            self.inbound = self.inbound.saturating_sub(1);
        }
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
            Packet::PubAck(a) => self.acked(a.packet_id),
            Packet::PubRec(a) => self.pubrec(a.packet_id, a.reason)?,
            Packet::PubComp(a) => self.pubcomp(a.packet_id),
            Packet::PubRel(a) => {
                let known = self.qos2.remove(&a.packet_id);
                if known {
                    self.inbound = self.inbound.saturating_sub(1);
                }
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
                if let Some(secs) = d.properties.session_expiry_interval {
                    self.expiry_changed(secs)?;
                }
                return Ok(Some(End::Disconnected {
                    with_will: d.reason == 0x04,
                }));
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
mod qos2;
mod subscribe;
pub(super) mod will;
