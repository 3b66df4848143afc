//! MQTT 3.1, 3.1.1 and 5.0, the broker's second front-end (port 1883),
//! as RabbitMQ's MQTT plugin builds it: every MQTT publish is an AMQP
//! message published to `amq.topic` (topic `a/b` is routing key `a.b`),
//! and every subscription is a binding from `amq.topic` to the client's
//! queue, `mqtt-subscription-<client id>qos0`, `…qos1` or `…qos2`. So MQTT and AMQP
//! clients reach each other, under the same users, vhosts and
//! permissions (topic permissions included).
//!
//! A client reaches the broker core only through the same calls the
//! AMQP channel makes: `VirtualHost::publish` (the one publish
//! pipeline), queue declare/bind, and consumers whose deliveries arrive
//! as connection events.
//!
//! Decisions (see docs/compatibility.md):
//! - the vhost comes from a `vhost:user` user name, else `--mqtt-vhost`;
//! - no user name logs in as `guest`/`guest` (RabbitMQ's default
//!   `mqtt.allow_anonymous` with `mqtt.default_user`), which loopback
//!   rules then hold to localhost;
//! - QoS 2 both ways (RabbitMQ grants QoS 1): a QoS 2 subscription has
//!   its own queue (`…qos2`), and deliveries are exactly once across
//!   lost connections and crashes (`session/qos2.rs`);
//! - a clean session's queues are exclusive (gone with the connection);
//!   a persistent one's are durable, and an MQTT 5 session expiry becomes
//!   the queues' `x-expires`.

mod connection;
mod retained;
mod session;
pub(crate) mod topic;
pub(crate) mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use warren_broker::error::AmqpError;
use warren_broker::session::{ConnectionEvent, EventSender};
use warren_broker::Broker;

use crate::config::Config;
use retained::{RetainedStore, Writer};
use session::will::PendingWill;

/// A connected client id's holder: its connection, how to reach it, and
/// its user (only the same user may take the client id over).
struct Holder {
    connection: u64,
    sink: EventSender,
    user: String,
}

/// Another user's connection holds the client id.
pub(crate) struct HeldByAnother;

/// The front-end's shared state: which client ids are connected (one
/// connection per id per vhost: a new one of the same user takes over)
/// and each vhost's retained messages (every vhost's log is loaded at
/// start, on the retained store's own thread: see `retained.rs`).
pub(crate) struct Mqtt {
    broker: Arc<Broker>,
    cfg: Arc<Config>,
    clients: Mutex<HashMap<(String, String), Holder>>,
    /// Wills waiting out their delay, by (vhost, client id): a new
    /// connection with that client id cancels its will.
    wills: Mutex<HashMap<(String, String), tokio::task::AbortHandle>>,
    retained: Mutex<HashMap<String, Arc<RetainedStore>>>,
    /// The thread that does the retained stores' file work.
    retained_writer: Arc<Writer>,
    dir: PathBuf,
}

impl Mqtt {
    pub(crate) fn new(broker: Arc<Broker>, cfg: Arc<Config>) -> Arc<Mqtt> {
        let dir = cfg.data_dir.join("mqtt");
        let retained_writer = Writer::start(cfg.mqtt_retained_max_bytes);
        let mqtt = Arc::new(Mqtt {
            broker,
            cfg,
            clients: Mutex::new(HashMap::new()),
            wills: Mutex::new(HashMap::new()),
            retained: Mutex::new(HashMap::new()),
            retained_writer,
            dir,
        });
        // Every vhost's retained messages are loaded now, not on its first
        // CONNECT; listing the directory is file work too, so not here.
        let me = Arc::downgrade(&mqtt);
        let dir = mqtt.dir.clone();
        let listed = std::thread::Builder::new()
            .name("mqtt-retained-scan".into())
            .spawn(move || {
                let Ok(files) = std::fs::read_dir(&dir) else {
                    return;
                };
                for f in files.flatten() {
                    let name = f.file_name();
                    let Some(vhost) = name.to_str().and_then(retained::vhost_of) else {
                        continue;
                    };
                    let Some(mqtt) = me.upgrade() else { return };
                    let _ = mqtt.retained(&vhost);
                }
            });
        if let Err(e) = listed {
            tracing::warn!("retained messages load on first use: {e}");
        }
        mqtt
    }

    /// A vhost's retained store, opened (its loading queued on the
    /// store's thread) on first use. Does no file I/O; never fails (a log
    /// that cannot be loaded refuses retains instead).
    fn retained(&self, vhost: &str) -> std::io::Result<Arc<RetainedStore>> {
        let mut g = self.retained.lock();
        if let Some(s) = g.get(vhost) {
            return Ok(s.clone());
        }
        let s = RetainedStore::open(&self.dir, vhost, &self.retained_writer);
        g.insert(vhost.to_string(), s.clone());
        Ok(s)
    }

    /// Registers `client_id` in `vhost` for connection `id` of `user`,
    /// first closing the connection that holds it (MQTT's session
    /// takeover) and waiting a bounded time for it to go. A client id held
    /// by another user's connection is not taken: that connection and its
    /// session are left alone.
    async fn take_over(
        &self,
        vhost: &str,
        client_id: &str,
        id: u64,
        sink: EventSender,
        user: &str,
    ) -> Result<(), HeldByAnother> {
        let key = (vhost.to_string(), client_id.to_string());
        let old = {
            let mut clients = self.clients.lock();
            if clients.get(&key).is_some_and(|h| h.user != user) {
                return Err(HeldByAnother);
            }
            clients.insert(
                key.clone(),
                Holder {
                    connection: id,
                    sink,
                    user: user.to_string(),
                },
            )
        };
        let Some(Holder {
            connection: old_id,
            sink: old_sink,
            ..
        }) = old
        else {
            self.cancel_will(&key);
            return Ok(());
        };
        let _ = old_sink.send(ConnectionEvent::Close(AmqpError::internal(
            "another connection took over the client id",
        )));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.broker.connections.get(old_id).is_some()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The old connection may have scheduled its will on the way out:
        // the client is back, so it must not go (MQTT 5, 3.1.3.2.2).
        self.cancel_will(&key);
        Ok(())
    }

    fn cancel_will(&self, key: &(String, String)) {
        if let Some(w) = self.wills.lock().remove(key) {
            w.abort();
            tracing::debug!("MQTT {}: delayed will cancelled by a reconnect", key.1);
        }
    }

    /// Publishes `will` now, or after its delay unless the client id
    /// connects again first. A delayed will lives in memory only: a broker
    /// restart drops it (documented in docs/compatibility.md).
    fn schedule_will(self: &Arc<Self>, vhost: &str, client_id: &str, will: PendingWill) {
        if will.delay.is_zero() {
            will.publish();
            return;
        }
        let key = (vhost.to_string(), client_id.to_string());
        let mut wills = self.wills.lock();
        let me = Arc::downgrade(self);
        let k = key.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(will.delay).await;
            let Some(me) = me.upgrade() else { return };
            // Only if not cancelled meanwhile: the entry is ours to remove.
            if me.wills.lock().remove(&k).is_some() {
                will.publish();
            }
        });
        if let Some(old) = wills.insert(key, task.abort_handle()) {
            old.abort();
        }
    }

    /// Forgets `client_id` if connection `id` still holds it.
    fn release(&self, vhost: &str, client_id: &str, id: u64) {
        let key = (vhost.to_string(), client_id.to_string());
        let mut g = self.clients.lock();
        if g.get(&key).is_some_and(|h| h.connection == id) {
            g.remove(&key);
        }
    }
}

/// Accepts MQTT connections until aborted.
pub(crate) async fn accept(listener: TcpListener, mqtt: Arc<Mqtt>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let local = local_addr(&stream);
                tokio::spawn(connection::serve(stream, peer, local, mqtt.clone()));
            }
            Err(e) => {
                tracing::warn!("MQTT accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accepts MQTT over TLS (the AMQPS certificate, key and handshake
/// timeout) until aborted.
pub(crate) async fn accept_tls(
    listener: TcpListener,
    tls: Arc<crate::tls::Reloadable>,
    mqtt: Arc<Mqtt>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let local = local_addr(&stream);
                let acceptor = tls.acceptor();
                let mqtt = mqtt.clone();
                tokio::spawn(async move {
                    let timeout = mqtt.cfg.ssl_handshake_timeout;
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection::serve(s, peer, local, mqtt).await,
                        Ok(Err(e)) => tracing::info!("MQTT TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::info!("MQTT TLS handshake with {peer} timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!("MQTT over TLS accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn local_addr(stream: &tokio::net::TcpStream) -> SocketAddr {
    let _ = stream.set_nodelay(true);
    stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}
