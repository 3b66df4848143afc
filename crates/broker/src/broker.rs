//! The broker: virtual hosts, users, direct reply-to routes, the
//! connection registry, and the durable definitions behind them.
//!
//! Operator changes (users, vhosts, permissions, policies, parameters) go
//! through [`crate::admin`], which journals each one here ([`Broker::record`])
//! before applying it, under the broker's definitions lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::{Mutex, MutexGuard, RwLock};
use warren_protocol::ShortStr;

use crate::alarms::{Alarms, Watermark};
use crate::auth::{hash_password, AuthStore, HashAlgorithm, Permission, TopicPermission, User};
use crate::connections::ConnectionRegistry;
use crate::definitions::{
    Change, DefinitionsLog, DefinitionsState, GlobalParameterDef, ParameterDef, PermissionDef,
    PolicyDef, UserDef, VhostDef,
};
use crate::message::Message;
use crate::persistence::{Persistence, VhostStorage, STORAGE_VERSION};
use crate::session::{ConnectionEvent, ConsumerFlow, Delivery, EventSender};
use crate::store::files::{create_dir_private, write_atomic, DIR_MODE};
use crate::store::Committer;
use crate::vhost::VirtualHost;

/// Where a direct reply-to address delivers.
#[derive(Debug, Clone)]
pub struct ReplyRoute {
    pub sink: EventSender,
    /// The reply consumer's key in its connection.
    pub consumer: u64,
    pub flow: Arc<ConsumerFlow>,
}

/// Policies and runtime parameters, kept for listing and definitions.
#[derive(Debug, Default)]
pub struct Runtime {
    /// By (vhost, name, operator).
    pub policies: BTreeMap<(String, String, bool), PolicyDef>,
    /// By (vhost, component, name).
    pub parameters: BTreeMap<(String, String, String), ParameterDef>,
    pub global_parameters: BTreeMap<String, GlobalParameterDef>,
}

#[derive(Debug)]
pub struct Broker {
    vhosts: RwLock<AHashMap<String, Arc<VirtualHost>>>,
    pub auth: Arc<AuthStore>,
    /// Users that may log in only from loopback (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    reply_routes: RwLock<AHashMap<ShortStr, ReplyRoute>>,
    pub connections: ConnectionRegistry,
    /// Limits refused (logged once each).
    pub limits_reported: crate::limits::Reported,
    persistence: Option<Arc<Persistence>>,
    pub alarms: Arc<Alarms>,
    /// Held across journal and apply of user, vhost, permission, policy and
    /// parameter changes, so the journal holds them in effect order.
    ddl: Mutex<()>,
    pub(crate) runtime: RwLock<Runtime>,
    /// Broker-wide message statistics (see `sampler`).
    pub stats: crate::sampler::BrokerStats,
    /// On a cluster: where definitions changes go instead of the journal.
    replicator: std::sync::OnceLock<Arc<dyn crate::cluster::Replicator>>,
}

/// Where a broker's definitions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Definitions {
    /// This node's own journal (`definitions.json` + `definitions.log`).
    Local,
    /// The cluster's replicated state machine (see `crate::cluster`).
    Replicated,
}

/// The changes a first start makes: the default vhost, the default user and
/// its permissions there (RabbitMQ's `default_user`, `default_vhost`,
/// `default_user_tags`, `default_permissions`).
pub fn default_changes(setup: &BrokerSetup) -> Vec<Change> {
    let [configure, write, read] = setup.default_permissions.clone();
    vec![
        Change::PutVhost(VhostDef {
            name: setup.default_vhost.clone(),
            description: "Default virtual host".into(),
            ..Default::default()
        }),
        Change::PutUser(UserDef {
            name: setup.default_user.clone(),
            password_hash: hash_password(&setup.default_pass),
            hashing_algorithm: String::new(),
            tags: setup.default_user_tags.clone(),
            limits: Default::default(),
        }),
        Change::SetPermissions(PermissionDef {
            vhost: setup.default_vhost.clone(),
            user: setup.default_user.clone(),
            configure,
            write,
            read,
        }),
    ]
}

/// First-start settings: the default user, as RabbitMQ's `default_user`.
#[derive(Debug, Clone)]
pub struct BrokerSetup {
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
    pub memory_high_watermark: Watermark,
    pub disk_free_limit: u64,
    /// RabbitMQ's `loopback_users`: these may log in only from loopback.
    pub loopback_users: Vec<String>,
    /// RabbitMQ's `default_user_tags`, given the default user on a first
    /// start.
    pub default_user_tags: Vec<String>,
    /// RabbitMQ's `default_permissions`: configure, write, read patterns of
    /// the default user on the default vhost, on a first start.
    pub default_permissions: [String; 3],
}

/// Replies in flight to one direct reply-to requester at most (32 times a
/// consumer's transit credit: bursts of concurrent calls pass, a requester
/// that never reads can't grow the broker).
const REPLY_TRANSIT_MAX: u32 = 32 * crate::session::MAX_IN_TRANSIT;

/// Takes an exclusive lock on the data directory for the life of the
/// process, so two brokers never write the same files.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("lock");
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(crate::store::files::FILE_MODE)
            .open(&path)
    }
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "another Warren broker is using data directory {}",
            dir.display()
        ));
    }
    Ok(f)
}

impl Default for BrokerSetup {
    fn default() -> Self {
        BrokerSetup {
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
            memory_high_watermark: Watermark::Relative(0.4),
            disk_free_limit: 50_000_000,
            loopback_users: vec!["guest".to_string()],
            default_user_tags: vec!["administrator".to_string()],
            default_permissions: [".*".into(), ".*".into(), ".*".into()],
        }
    }
}

impl Broker {
    /// A broker with the default vhost and the default administrator, who
    /// has full permissions there. Only `guest` is held to loopback, as in
    /// RabbitMQ.
    pub fn new(setup: &BrokerSetup) -> Arc<Self> {
        let broker = Self::empty(setup, None);
        broker.add_vhost(&setup.default_vhost);
        broker.auth.put_user(User {
            name: setup.default_user.clone(),
            password_hash: hash_password(&setup.default_pass),
            hashing: HashAlgorithm::Sha256,
            tags: setup.default_user_tags.clone(),
            limits: Default::default(),
        });
        let [c, w, r] = &setup.default_permissions;
        broker.auth.set_permission(
            &setup.default_vhost,
            &setup.default_user,
            Permission::new(c, w, r).unwrap_or_else(|_| Permission::full()),
        );
        Arc::new(broker)
    }

    /// A broker with no definitions at all and no storage (a cluster
    /// member's before its replicated definitions arrive, in tests).
    #[cfg(test)]
    pub(crate) fn without_definitions(setup: &BrokerSetup) -> Arc<Self> {
        Arc::new(Self::empty(setup, None))
    }

    /// No vhosts, no users yet.
    fn empty(setup: &BrokerSetup, persistence: Option<Arc<Persistence>>) -> Broker {
        Broker {
            vhosts: RwLock::new(AHashMap::new()),
            auth: Arc::new(AuthStore::default()),
            loopback_users: setup.loopback_users.clone(),
            reply_routes: RwLock::new(AHashMap::new()),
            connections: ConnectionRegistry::default(),
            limits_reported: Default::default(),
            persistence,
            alarms: Arc::new(Alarms::new(
                setup.memory_high_watermark,
                setup.disk_free_limit,
            )),
            ddl: Mutex::new(()),
            runtime: RwLock::new(Runtime::default()),
            stats: Default::default(),
            replicator: std::sync::OnceLock::new(),
        }
    }

    /// Opens the broker on a data directory: recovers definitions and
    /// messages, or on a first start creates the default vhost and user
    /// from `setup` (later starts ignore `setup`, as RabbitMQ does).
    pub fn open(setup: &BrokerSetup, data_dir: &std::path::Path) -> Result<Arc<Self>, String> {
        Self::open_with(setup, data_dir, Definitions::Local)
    }

    /// Opens the broker on a data directory, its definitions kept as
    /// `mode` says: a cluster member's come from the cluster (its own
    /// journal stays empty, and one that holds a single node's definitions
    /// is refused rather than silently dropped).
    pub fn open_with(
        setup: &BrokerSetup,
        data_dir: &std::path::Path,
        mode: Definitions,
    ) -> Result<Arc<Self>, String> {
        // Password hashes and message bodies live here: the broker's user
        // only (an existing directory is tightened too).
        create_dir_private(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| format!("cannot restrict {}: {e}", data_dir.display()))?;
        }
        let lock = lock_data_dir(data_dir)?;
        let version_file = data_dir.join("VERSION");
        match std::fs::read_to_string(&version_file) {
            Ok(v) if v.trim() != STORAGE_VERSION => {
                return Err(format!(
                    "{} holds storage format {}, this Warren reads format {STORAGE_VERSION}",
                    data_dir.display(),
                    v.trim()
                ))
            }
            Ok(_) => {}
            Err(_) => write_atomic(&version_file, STORAGE_VERSION.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", version_file.display()))?,
        }
        // A first start creates the default vhost and user, as RabbitMQ's
        // `default_user`; later starts ignore `setup` for them.
        let (defs, snap, _first_start) = DefinitionsLog::load_and_open(data_dir, || {
            let mut s = DefinitionsState::default();
            if !matches!(mode, Definitions::Replicated) {
                for c in default_changes(setup) {
                    s.apply(c);
                }
            }
            s
        })?;
        if matches!(mode, Definitions::Replicated)
            && (!snap.users.is_empty() || !snap.vhosts.is_empty())
        {
            return Err(format!(
                "{} holds a single node's definitions ({} user(s), {} vhost(s)); a cluster member \
                 takes its definitions from the cluster. Export them (warrenctl \
                 export_definitions), start this node on an empty data directory and import \
                 them into the cluster",
                data_dir.display(),
                snap.users.len(),
                snap.vhosts.len()
            ));
        }
        let persistence = Arc::new(Persistence::new(
            data_dir,
            defs,
            Committer::start(),
            snap.next_queue_id,
            lock,
        ));
        let broker = Self::empty(setup, Some(persistence.clone()));
        // A failed store write raises the disk alarm at once.
        let alarms = broker.alarms.clone();
        persistence
            .committer
            .set_failure_hook(Box::new(move |e| alarms.storage_failed(e)));
        broker.apply_loaded(&snap, &persistence)?;
        Ok(Arc::new(broker))
    }

    /// Rebuilds users, permissions, vhosts (with their queues and
    /// messages), policies and parameters from recovered definitions.
    fn apply_loaded(
        &self,
        snap: &DefinitionsState,
        persistence: &Arc<Persistence>,
    ) -> Result<(), String> {
        for u in snap.users.values() {
            self.auth.put_user(user_from_def(u));
        }
        for p in snap.permissions.values() {
            match Permission::new(&p.configure, &p.write, &p.read) {
                Ok(perm) => self.auth.set_permission(&p.vhost, &p.user, perm),
                Err(e) => {
                    tracing::warn!("skipping permissions of '{}' in '{}': {e}", p.user, p.vhost)
                }
            }
        }
        for t in snap.topic_permissions.values() {
            match TopicPermission::new(&t.exchange, &t.write, &t.read, &t.user, &t.vhost) {
                Ok(tp) => self.auth.set_topic_permission(&t.vhost, &t.user, tp),
                Err(e) => tracing::warn!(
                    "skipping topic permissions of '{}' in '{}': {e}",
                    t.user,
                    t.vhost
                ),
            }
        }
        for (name, meta) in &snap.vhosts {
            let storage = VhostStorage::open(persistence.clone(), name)
                .map_err(|e| format!("cannot open storage of vhost '{name}': {e}"))?;
            let vhost = VirtualHost::with_storage(name.clone(), Some(storage));
            vhost.set_meta(meta.clone());
            vhost.recover(snap);
            vhost.set_policies(crate::policy::PolicySet::new(
                snap.policies.values().filter(|p| &p.vhost == name),
            ));
            self.vhosts.write().insert(name.clone(), vhost);
        }
        let mut rt = self.runtime.write();
        rt.policies = snap.policies.clone();
        rt.parameters = snap.parameters.clone();
        drop(rt);
        for v in self.vhosts() {
            v.set_max_queues(crate::limits::get(
                &self.vhost_limits(&v.name),
                "max-queues",
            ));
        }
        let mut rt = self.runtime.write();
        rt.global_parameters = snap.global_parameters.clone();
        Ok(())
    }

    /// Takes the definitions lock: journal, then apply, while holding it.
    pub(crate) fn ddl(&self) -> MutexGuard<'_, ()> {
        self.ddl.lock()
    }

    /// Makes this broker a cluster member: definitions changes go to
    /// `replicator` from now on (see `crate::cluster`), and exchanges,
    /// queues and bindings are refused until the cluster replicates them.
    pub fn set_replicator(&self, replicator: Arc<dyn crate::cluster::Replicator>) {
        let _ = self.replicator.set(replicator);
        if let Some(p) = &self.persistence {
            p.clustered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// On a cluster, waits until this node has applied every definitions
    /// change committed before the call (see [`crate::cluster::Replicator::sync`]);
    /// alone, nothing to wait for. Front-ends call it before an
    /// administrative change, so it is decided on the cluster's latest state.
    pub fn sync_definitions(&self) -> Result<(), crate::admin::AdminError> {
        match self.replicator.get() {
            Some(r) => {
                let r = r.clone();
                crate::blocking::run(|| r.sync()).map_err(Into::into)
            }
            None => Ok(()),
        }
    }

    /// Whether this broker runs in a cluster.
    pub fn is_clustered(&self) -> bool {
        self.replicator.get().is_some()
    }

    /// Makes a definitions change durable: on a cluster, committed by a
    /// majority and applied on this node by the replicated state machine
    /// ([`crate::cluster::Recorded::Replicated`]: the caller applies
    /// nothing); alone, journaled here (the caller applies it).
    pub(crate) fn commit(
        &self,
        change: Change,
    ) -> Result<crate::cluster::Recorded, crate::admin::AdminError> {
        match self.replicator.get() {
            Some(r) => {
                let r = r.clone();
                crate::blocking::run(|| r.propose(&change))?;
                Ok(crate::cluster::Recorded::Replicated)
            }
            None => {
                self.record(change).map_err(|e| {
                    tracing::error!("cannot journal a definition change: {e}");
                    crate::admin::AdminError::storage(e)
                })?;
                Ok(crate::cluster::Recorded::Journaled)
            }
        }
    }

    /// Journals a change (fsynced) before the caller applies it. Without a
    /// data directory there is nothing to write.
    pub(crate) fn record(&self, change: Change) -> std::io::Result<()> {
        match &self.persistence {
            Some(p) => p.defs.record(&change),
            None => Ok(()),
        }
    }

    /// The definitions as journaled (durable state; for export).
    pub(crate) fn persistence(&self) -> Option<&Arc<Persistence>> {
        self.persistence.as_ref()
    }

    /// Creates a vhost (with storage when the broker has a data directory)
    /// after its definition was journaled.
    pub(crate) fn create_vhost(&self, meta: VhostDef) -> std::io::Result<Arc<VirtualHost>> {
        if let Some(v) = self.vhost(&meta.name) {
            v.set_meta(meta);
            return Ok(v);
        }
        let storage = match &self.persistence {
            Some(p) => Some(VhostStorage::open(p.clone(), &meta.name)?),
            None => None,
        };
        let v = VirtualHost::with_storage(meta.name.clone(), storage);
        v.set_meta(meta);
        self.vhosts.write().insert(v.name.clone(), v.clone());
        Ok(v)
    }

    /// Removes a vhost from the broker (its deletion was journaled).
    pub(crate) fn remove_vhost(&self, name: &str) -> Option<Arc<VirtualHost>> {
        let v = self.vhosts.write().remove(name)?;
        // Its queue churn stays in the node's (monotonic) counters.
        self.stats.retired_queue_churn.add(&v.queue_churn);
        Some(v)
    }

    /// Makes everything buffered durable (clean shutdown).
    pub fn sync(&self) {
        if let Some(p) = &self.persistence {
            p.committer.sync_now();
        }
    }

    /// A clean stop: everything to disk, then the marker that tells the
    /// next start no delivery marks can be missing.
    pub fn shutdown_clean(&self) {
        self.sync();
        if let Some(p) = &self.persistence {
            p.mark_clean_shutdown();
        }
    }

    pub fn add_vhost(&self, name: &str) -> Arc<VirtualHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| VirtualHost::new(name))
            .clone()
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VirtualHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// RabbitMQ's `loopback_users`: these users may log in only from
    /// loopback (over AMQP and HTTP alike).
    pub fn login_allowed_from(&self, user: &str, ip: std::net::IpAddr) -> bool {
        login_allowed_from(user, ip, &self.loopback_users)
    }

    pub fn vhosts(&self) -> Vec<Arc<VirtualHost>> {
        let mut v: Vec<_> = self.vhosts.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn next_connection_id(&self) -> u64 {
        self.connections.next_id()
    }

    pub fn add_reply_route(&self, address: ShortStr, route: ReplyRoute) {
        self.reply_routes.write().insert(address, route);
    }

    pub fn remove_reply_route(&self, address: &ShortStr) {
        self.reply_routes.write().remove(address);
    }

    /// Delivers a reply published to a direct reply-to address. Returns
    /// false when nobody listens there (the client went away).
    pub fn deliver_reply(&self, address: &ShortStr, message: Arc<Message>) -> bool {
        // Sent under the read lock: once `remove_reply_route` has the write
        // lock and returns, no delivery can reach the retired consumer.
        let routes = self.reply_routes.read();
        let Some(route) = routes.get(address) else {
            return false;
        };
        // Bounded like any delivery: replies to a requester that stopped
        // reading pile up to REPLY_TRANSIT_MAX, then are refused (returned
        // if mandatory, else dropped: direct reply-to is at most once).
        if route
            .flow
            .in_transit
            .load(std::sync::atomic::Ordering::Relaxed)
            >= REPLY_TRANSIT_MAX
        {
            self.limits_reported.log_once(
                format!("reply-to {address}"),
                &format!(
                    "direct reply-to {address}: the requester is not reading; replies refused"
                ),
            );
            return false;
        }
        route.flow.on_dispatch(true);
        route
            .sink
            .send(ConnectionEvent::Deliver(Delivery {
                consumer: route.consumer,
                message,
                redelivered: false,
                seq: 0,
                disk: None,
                expires_at: None,
            }))
            .is_ok()
    }

    /// A vhost's limits (RabbitMQ's `vhost-limits` parameter).
    pub fn vhost_limits(&self, vhost: &str) -> serde_json::Map<String, serde_json::Value> {
        let key = (
            vhost.to_string(),
            crate::limits::VHOST_COMPONENT.to_string(),
            "limits".to_string(),
        );
        self.runtime
            .read()
            .parameters
            .get(&key)
            .and_then(|p| p.value.as_object().cloned())
            .unwrap_or_default()
    }

    /// Refuses a connection over its vhost's or its user's connection
    /// limit (checked at connection.open, as RabbitMQ).
    pub fn check_connection_limits(
        &self,
        user: &crate::auth::User,
        vhost: &str,
    ) -> Result<(), crate::error::AmqpError> {
        if let Some(limit) = crate::limits::get(&self.vhost_limits(vhost), "max-connections") {
            let open = self
                .connections
                .list()
                .iter()
                .filter(|c| c.meta.vhost == vhost)
                .count() as u64;
            if open >= limit {
                let e = crate::limits::vhost_connections(vhost, &user.name, limit);
                self.limits_reported
                    .log_once(format!("vhost {vhost} max-connections"), &e.reply_text());
                return Err(e);
            }
        }
        if let Some(limit) = crate::limits::get(&user.limits, "max-connections") {
            let open = self
                .connections
                .list()
                .iter()
                .filter(|c| c.meta.user == user.name)
                .count() as u64;
            if open >= limit {
                let e = crate::limits::user_connections(&user.name, limit);
                self.limits_reported.log_once(
                    format!("user {} max-connections", user.name),
                    &e.reply_text(),
                );
                return Err(e);
            }
        }
        Ok(())
    }

    /// Refuses a channel over its user's channel limit.
    pub fn check_channel_limit(
        &self,
        user: &crate::auth::User,
    ) -> Result<(), crate::error::AmqpError> {
        let Some(limit) = crate::limits::get(&user.limits, "max-channels") else {
            return Ok(());
        };
        let open: u64 = self
            .connections
            .list()
            .iter()
            .filter(|c| c.meta.user == user.name)
            .map(|c| c.channels().len() as u64)
            .sum();
        if open >= limit {
            let e = crate::limits::user_channels(&user.name, limit);
            self.limits_reported
                .log_once(format!("user {} max-channels", user.name), &e.reply_text());
            return Err(e);
        }
        Ok(())
    }

    /// Routes every delayed exchange's due messages; returns when (Unix
    /// ms) the next is due.
    pub fn fire_delayed(&self) -> Option<u64> {
        let now = crate::store::index::now_ms();
        self.vhosts()
            .iter()
            .filter_map(|v| v.fire_delayed(now))
            .min()
    }

    /// Routes held messages as they come due, until the process ends: one
    /// task for all delayed exchanges, woken early when a message is held
    /// that is due sooner.
    pub async fn run_delays(self: std::sync::Arc<Self>) {
        loop {
            let next = self.fire_delayed();
            let now = crate::store::index::now_ms();
            // Checked at least once a second.
            let wait = next.map_or(1000, |t| t.saturating_sub(now).min(1000));
            if wait == 0 {
                // More are due: another batch, after letting others run.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
                _ = crate::delayed::WAKE.notified() => {}
            }
        }
    }

    /// Periodic housekeeping for every vhost (TTLs, `x-expires`).
    pub fn sweep(&self) {
        let now = std::time::Instant::now();
        for v in self.vhosts() {
            v.sweep(now);
        }
    }
}

/// A stored user as the auth store holds it.
pub(crate) fn user_from_def(u: &UserDef) -> User {
    User {
        name: u.name.clone(),
        password_hash: u.password_hash.clone(),
        hashing: HashAlgorithm::parse(&u.hashing_algorithm).unwrap_or_default(),
        tags: u.tags.clone(),
        limits: u.limits.clone(),
    }
}

/// Whether `user` may log in from `ip` given the loopback-only users.
pub fn login_allowed_from(user: &str, ip: std::net::IpAddr, loopback_users: &[String]) -> bool {
    let loopback = match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        v4 => v4.is_loopback(),
    };
    loopback || !loopback_users.iter().any(|u| u == user)
}
