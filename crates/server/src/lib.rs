//! Warren's server: the AMQP, management HTTP and control-socket front-ends
//! over the broker core, and [`main`], which the `warren` binary runs.

mod channel;
mod cluster;
mod config;
mod connection;
mod context;
mod control;
mod error_log;
mod handshake;
mod http;
mod io;
mod listeners;
mod logging;
mod mqtt;
mod notify;
mod outbound;
mod stream;
mod tls;

#[doc(hidden)]
pub mod fuzzing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{error, info};
use warren_broker::alarms;
use warren_broker::Broker;

use crate::config::Config;

/// How often message rates are sampled (RabbitMQ's collect_statistics_interval).
const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The `warren` binary: parses the command line, then runs the broker
/// until a shutdown signal.
pub fn main() -> anyhow::Result<()> {
    // Everything the broker creates (data files, the control socket) is
    // for its own user only, whatever umask it was started with.
    // SAFETY: umask has no memory-safety preconditions.
    unsafe {
        libc::umask(0o077);
    }
    // A bad setting stops the start here: its message (naming the key,
    // and the file and line it is on) on stderr, a non-zero exit.
    let cfg = Config::from_command_line()?;
    logging::init(&cfg.log)?;
    warren_broker::connections::set_node_name(cfg.node_name.clone());
    // Cluster settings given to a node with no members do nothing: said, not
    // silently accepted.
    if !cfg.cluster_enabled() {
        let unused: Vec<String> = cfg
            .effective
            .iter()
            .filter(|e| {
                matches!(
                    e.name.as_str(),
                    "cluster_port" | "cluster_bind" | "cluster_secret_file" | "cluster_tls"
                ) && e.source != "default"
            })
            .map(|e| format!("{} ({})", e.name, e.source))
            .collect();
        if !unused.is_empty() {
            tracing::warn!(
                "cluster settings without cluster members (--cluster-node) do nothing: {}",
                unused.join("; ")
            );
        }
    }
    if !cfg.ignored_keys.is_empty() {
        tracing::warn!(
            "configuration keys Warren does not act on: {}",
            cfg.ignored_keys.join("; ")
        );
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if cfg.worker_threads > 0 {
        builder.worker_threads(cfg.worker_threads);
    }
    let runtime = builder.enable_all().build()?;
    let to_file = cfg.log.file.is_some();
    let result = runtime.block_on(run(Arc::new(cfg)));
    if let Err(e) = &result {
        // The console gets it on stderr from main's caller; the file
        // should say why the broker stopped too.
        if to_file {
            error!("{e}");
        }
    }
    logging::flush();
    result
}

async fn run(cfg: Arc<Config>) -> anyhow::Result<()> {
    let setup = cfg.broker_setup();
    let started = std::time::Instant::now();
    let mode = if cfg.cluster_enabled() {
        warren_broker::broker::Definitions::Replicated
    } else {
        warren_broker::broker::Definitions::Local
    };
    let broker = Broker::open_with(&setup, &cfg.data_dir, mode).map_err(|e| anyhow::anyhow!(e))?;
    info!("recovered in {:.3}s", started.elapsed().as_secs_f64());
    let member = if cfg.cluster_enabled() {
        let member = cluster::member::Member::start(&cfg, broker.clone()).await?;
        // The definitions file and the cluster name go through the cluster
        // too: once it has a leader (the node serves meanwhile).
        let (b, c) = (broker.clone(), cfg.clone());
        member.when_formed(broker.clone(), setup.clone(), move || {
            if let Err(e) = apply_configured_definitions(&b, &c) {
                error!("{e}");
            }
        });
        Some(member)
    } else {
        apply_configured_definitions(&broker, &cfg)?;
        None
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let control = control::bind(&cfg.data_dir).await?;
    // Resource alarms: memory and disk, checked twice a second.
    let monitor = broker.clone();
    let data_dir = cfg.data_dir.clone();
    tokio::spawn(async move {
        let total = alarms::total_memory();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if monitor.alarms.storage_failure_pending() {
                let dir = data_dir.clone();
                let probe = tokio::task::spawn_blocking(move || alarms::probe_disk(&dir)).await;
                if matches!(probe, Ok(Ok(()))) {
                    monitor.alarms.storage_recovered();
                }
            }
            let free = alarms::disk_free(&data_dir).unwrap_or(u64::MAX);
            monitor.alarms.check(alarms::process_rss(), total, free);
        }
    });
    // Memory back to the OS after a burst: glibc keeps freed memory in its
    // arenas; trimming every 10 s returns it (measured: bench/rss_after_burst.py).
    // jemalloc (the default) and mimalloc purge by themselves.
    #[cfg(not(any(feature = "jemalloc", feature = "mimalloc")))]
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            // Walks the heap: off the async workers.
            let _ = tokio::task::spawn_blocking(alarms::release_free_memory).await;
        }
    });
    // Delayed exchanges: held messages routed when due.
    tokio::spawn(broker.clone().run_delays());
    // Housekeeping: message TTLs and x-expires.
    let sweeper = broker.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            sweeper.sweep();
        }
    });
    // Message rates: every counter read once per interval.
    let sampled = broker.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        loop {
            tick.tick().await;
            warren_broker::sampler::sample(&sampled);
        }
    });
    let stop = Arc::new(tokio::sync::Notify::new());
    // TLS: read the files now (a bad file stops the start with its error),
    // again on SIGHUP.
    let tls = if cfg.ssl.is_set() {
        let t = tls::Reloadable::new(cfg.ssl.clone())?;
        tokio::spawn(reload_on_sighup(t.clone()));
        Some(t)
    } else {
        None
    };
    if cfg.management_ssl && tls.is_none() {
        anyhow::bail!("--management-ssl needs --ssl-certfile and --ssl-keyfile");
    }
    let http_tls = if cfg.management_ssl {
        tls.clone()
    } else {
        None
    };
    let api = http::Api::new(broker.clone(), cfg.clone());
    if let Some(m) = &member {
        let _ = api.member.set(m.clone());
        let a = api.clone();
        m.serve_node_info(Arc::new(move || http::overview::node_json(&a)));
    }
    let bound = Arc::new(listeners::Registry::default());
    if let Some(port) = cfg.management_port {
        let addr = SocketAddr::new(cfg.management_bind(), port);
        let l = listeners::bind(addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (management): {e}"))?;
        info!("management API and web UI on http://{}", l.local_addr()?);
        bound.add(if http_tls.is_some() { "https" } else { "http" }, &l);
        tokio::spawn(http::serve(
            l,
            http::router(api.clone()),
            http_tls.clone(),
            cfg.http_max_connections_per_source,
        ));
    }
    if let Some(port) = cfg.prometheus_port {
        let addr = SocketAddr::new(cfg.management_bind(), port);
        let l = listeners::bind(addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (prometheus): {e}"))?;
        info!("Prometheus metrics on http://{}/metrics", l.local_addr()?);
        bound.add("http/prometheus", &l);
        tokio::spawn(http::serve(
            l,
            http::metrics::router(api.clone()),
            http_tls.clone(),
            cfg.http_max_connections_per_source,
        ));
    }
    tokio::spawn(control::serve(
        control,
        broker.clone(),
        control::Control {
            data_dir: cfg.data_dir.clone(),
            cfg: cfg.clone(),
            listeners: bound.clone(),
            stop: stop.clone(),
            tls: tls.clone(),
            member: member.clone(),
        },
    ));
    let mut accepting = Vec::new();
    for addr in &cfg.listeners {
        let listener =
            listeners::bind(*addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        info!(
            "Warren {} listening for AMQP 0-9-1 on {}",
            env!("CARGO_PKG_VERSION"),
            listener.local_addr()?
        );
        bound.add("amqp", &listener);
        accepting.push(tokio::spawn(accept(listener, broker.clone(), cfg.clone())));
    }
    if let Some(port) = cfg.mqtt_port {
        let addr = SocketAddr::new(cfg.bind, port);
        let listener = listeners::bind(addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (MQTT): {e}"))?;
        info!("listening for MQTT 3.1.1/5.0 on {}", listener.local_addr()?);
        bound.add("mqtt", &listener);
        let front = mqtt::Mqtt::new(broker.clone(), cfg.clone());
        if let Some(t) = &tls {
            let addr = SocketAddr::new(cfg.bind, cfg.mqtt_ssl_port);
            let l = listeners::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (MQTT over TLS): {e}"))?;
            info!("listening for MQTT over TLS on {}", l.local_addr()?);
            bound.add("mqtt/ssl", &l);
            accepting.push(tokio::spawn(mqtt::accept_tls(l, t.clone(), front.clone())));
        }
        if let Some(port) = cfg.web_mqtt_port {
            let addr = SocketAddr::new(cfg.bind, port);
            let l = listeners::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (web MQTT): {e}"))?;
            let local = l.local_addr()?;
            info!("listening for MQTT over WebSockets on ws://{local}/ws");
            bound.add("http/web-mqtt", &l);
            let router = mqtt::web::router(front.clone(), local);
            accepting.push(tokio::spawn(http::serve(
                l,
                router,
                None,
                cfg.http_max_connections_per_source,
            )));
        }
        accepting.push(tokio::spawn(mqtt::accept(listener, front)));
    }
    if let Some(t) = &tls {
        let addr = SocketAddr::new(cfg.bind, cfg.ssl_port);
        let listener = listeners::bind(addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (AMQPS): {e}"))?;
        info!(
            "listening for AMQP 0-9-1 over TLS on {}",
            listener.local_addr()?
        );
        bound.add("amqp/ssl", &listener);
        accepting.push(tokio::spawn(accept_tls(
            listener,
            t.clone(),
            broker.clone(),
            cfg.clone(),
        )));
    }
    info!("data directory {}", cfg.data_dir.display());
    info!("Server startup complete");
    control::diagnostics::mark_booted();
    startup_complete();
    tokio::select! {
        _ = shutdown_signal() => info!("shutting down"),
        _ = stop.notified() => info!("shutting down (warrenctl stop)"),
    }
    notify::stopping();
    // Graceful: no new connections; every client told 320 (RabbitMQ's
    // text) and given a bounded time to go; then buffers to disk.
    for a in &accepting {
        a.abort();
    }
    let open = broker.connections.close_where(
        |_| true,
        "broker forced connection closure with reason 'shutdown'",
    );
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while !broker.connections.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !broker.connections.is_empty() {
        tracing::warn!(
            "{} connection(s) still open after {:?}; closing anyway",
            broker.connections.len(),
            SHUTDOWN_GRACE
        );
    }
    let _ = std::fs::remove_file(control::socket_path(&cfg.data_dir));
    // Acks, delivery marks and anything else in buffers go to disk, then
    // the clean-shutdown marker.
    broker.shutdown_clean();
    info!("stopped ({open} connection(s) closed)");
    Ok(())
}

/// Every listener is up and the broker serves: what a service manager
/// waits for: systemd's readiness notification (`Type=notify`), if
/// started by it.
fn startup_complete() {
    notify::ready(concat!(
        "Warren ",
        env!("CARGO_PKG_VERSION"),
        ": server startup complete"
    ));
}

/// Accepts AMQPS connections: the TLS handshake within the AMQP
/// handshake's time limit, then the same connection handling.
async fn accept_tls(
    listener: TcpListener,
    tls: Arc<tls::Reloadable>,
    broker: Arc<Broker>,
    cfg: Arc<config::Config>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let acceptor = tls.acceptor();
                let (broker, cfg) = (broker.clone(), cfg.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(cfg.ssl_handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => connection::serve_tls(s, peer, broker, cfg).await,
                        Ok(Err(e)) => tracing::info!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::info!("TLS handshake with {peer} timed out"),
                    }
                });
            }
            Err(e) => {
                error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads the TLS files again on SIGHUP (new connections use them).
async fn reload_on_sighup(tls: Arc<tls::Reloadable>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => info!("TLS certificate and key reloaded"),
                Err(e) => error!("TLS reload failed, the old certificate stays: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

/// How long clients get to leave at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts AMQP connections on one listener until aborted.
async fn accept(listener: TcpListener, broker: Arc<Broker>, cfg: Arc<config::Config>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(connection::serve(stream, peer, broker.clone(), cfg.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// RabbitMQ's `load_definitions` file and `cluster_name` key, applied at
/// every start (the cluster name journaled only when it changes).
fn apply_configured_definitions(broker: &Arc<Broker>, cfg: &Config) -> anyhow::Result<()> {
    if let Some(path) = &cfg.definitions {
        import_definitions_file(broker, path)?;
    }
    if let Some(name) = &cfg.cluster_name {
        warren_broker::admin::Admin::new(broker.clone())
            .set_cluster_name(name)
            .map_err(|e| anyhow::anyhow!("cannot set the cluster name '{name}': {e}"))?;
    }
    Ok(())
}

/// RabbitMQ's `load_definitions`: imported at every start; a broken file
/// stops the start with a clear message.
fn import_definitions_file(broker: &Arc<Broker>, path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read definitions file {}: {e}", path.display()))?;
    let defs: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("definitions file {} is not valid JSON: {e}", path.display())
    })?;
    // Each item left out is logged (warning) by the import itself.
    use warren_broker::admin::{Actor, Admin, Via};
    let report = Admin::new(broker.clone())
        .acting_as(Actor::new(path.display().to_string(), Via::DefinitionsFile))
        .import_definitions(&defs, None, false)
        .map_err(|e| anyhow::anyhow!("cannot import definitions from {}: {e}", path.display()))?;
    if report.skipped.is_empty() {
        info!("imported definitions from {}", path.display());
    } else {
        tracing::warn!(
            "imported definitions from {}; {} item(s) Warren does not support were left out (see the warnings above)",
            path.display(),
            report.skipped.len()
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
