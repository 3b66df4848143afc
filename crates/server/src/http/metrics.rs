//! Prometheus metrics on their own port (15692), with RabbitMQ's metric
//! names, help texts and labels so RabbitMQ's Grafana dashboards work:
//! `/metrics` aggregates over the node, `/metrics/per-object` has one
//! series per queue, channel and connection (RabbitMQ 3.8+ layout).
//!
//! The text is written straight into one buffer: a scrape of 100,000
//! queues allocates nothing per queue beyond its lines.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use warren_broker::alarms;
use warren_broker::stats::{Metric, Snapshot};

use super::Api;

pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .with_state(api)
}

fn text(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A metric family being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }

    fn value(&mut self, name: &str, labels: &str, v: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
        }
    }

    /// A family with one unlabelled value.
    fn single(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.value(name, "", v);
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return s.into();
    }
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

const QUEUE_GAUGES: &[(&str, &str)] = &[
    (
        "rabbitmq_queue_messages_ready",
        "Messages ready to be delivered to consumers",
    ),
    (
        "rabbitmq_queue_messages_unacked",
        "Messages delivered to consumers but not yet acknowledged",
    ),
    (
        "rabbitmq_queue_messages",
        "Sum of ready and unacknowledged messages - total queue depth",
    ),
    (
        "rabbitmq_queue_messages_ready_bytes",
        "Size in bytes of ready messages",
    ),
    (
        "rabbitmq_queue_messages_unacked_bytes",
        "Size in bytes of all unacknowledged messages",
    ),
    (
        "rabbitmq_queue_messages_bytes",
        "Size in bytes of ready and unacknowledged messages",
    ),
    ("rabbitmq_queue_consumers", "Consumers on a queue"),
    (
        "rabbitmq_queue_process_memory_bytes",
        "Memory in bytes used by the Erlang queue process",
    ),
];

/// One queue's values in QUEUE_GAUGES order, plus its published count.
fn queue_values(q: &warren_broker::Queue) -> ([u64; 8], u64) {
    let s = q.stats();
    (
        [
            s.ready,
            s.unacked,
            s.ready + s.unacked,
            s.ready_bytes,
            s.unacked_bytes,
            s.ready_bytes + s.unacked_bytes,
            u64::from(s.consumers),
            q.memory(),
        ],
        q.counters().publish,
    )
}

/// RabbitMQ's channel counters and the statistics they are made of.
const CHANNEL_COUNTERS: &[(&str, &str, &[Metric])] = &[
    ("rabbitmq_channel_messages_published_total", "Total number of messages published into an exchange on a channel", &[Metric::Publish]),
    ("rabbitmq_channel_messages_confirmed_total", "Total number of messages published into an exchange and confirmed on the channel", &[Metric::Confirm]),
    ("rabbitmq_channel_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", &[Metric::ReturnUnroutable]),
    ("rabbitmq_channel_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", &[Metric::DropUnroutable]),
    ("rabbitmq_channel_get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", &[Metric::Get]),
    ("rabbitmq_channel_get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", &[Metric::GetNoAck]),
    ("rabbitmq_channel_messages_delivered_ack_total", "Total number of messages delivered to consumers in manual acknowledgement mode", &[Metric::Deliver]),
    ("rabbitmq_channel_messages_delivered_total", "Total number of messages delivered to consumers in automatic acknowledgement mode", &[Metric::DeliverNoAck]),
    ("rabbitmq_channel_messages_redelivered_total", "Total number of messages redelivered to consumers", &[Metric::Redeliver]),
    ("rabbitmq_channel_messages_acked_total", "Total number of messages acknowledged by consumers", &[Metric::Ack]),
    ("rabbitmq_channel_get_empty_total", "Total number of times basic.get operations fetched no message", &[Metric::GetEmpty]),
];

/// RabbitMQ's churn counters.
fn churn_metrics(o: &mut Out, api: &Api) {
    let c = api.broker.churn().0;
    let fams: [(&str, &str, u64); 7] = [
        (
            "rabbitmq_connections_opened_total",
            "Total number of connections opened",
            c[0],
        ),
        (
            "rabbitmq_connections_closed_total",
            "Total number of connections closed or terminated",
            c[1],
        ),
        (
            "rabbitmq_channels_opened_total",
            "Total number of channels opened",
            c[2],
        ),
        (
            "rabbitmq_channels_closed_total",
            "Total number of channels closed",
            c[3],
        ),
        (
            "rabbitmq_queues_declared_total",
            "Total number of queues declared",
            c[4],
        ),
        (
            "rabbitmq_queues_created_total",
            "Total number of queues created",
            c[5],
        ),
        (
            "rabbitmq_queues_deleted_total",
            "Total number of queues deleted",
            c[6],
        ),
    ];
    for (name, help, v) in fams {
        o.single(name, "counter", help, v);
    }
}

fn sum(s: &Snapshot, ms: &[Metric]) -> u64 {
    ms.iter().map(|m| s.get(*m)).sum()
}

/// Node-wide figures, the same in both layouts.
fn node_metrics(o: &mut Out, api: &Api) {
    let node = api.node();
    let cluster = api.admin.cluster_name().unwrap_or_else(|| node.clone());
    o.family(
        "rabbitmq_identity_info",
        "untyped",
        "RabbitMQ node & cluster identity info",
    );
    o.value(
        "rabbitmq_identity_info",
        &format!(
            "rabbitmq_node=\"{n}\",rabbitmq_cluster=\"{c}\",rabbitmq_cluster_permanent_id=\"warren-{n}\"",
            n = esc(&node),
            c = esc(&cluster)
        ),
        1,
    );
    o.family(
        "rabbitmq_build_info",
        "untyped",
        "RabbitMQ & Erlang/OTP version info",
    );
    o.value(
        "rabbitmq_build_info",
        &format!(
            "rabbitmq_version=\"{}\",prometheus_plugin_version=\"{}\",prometheus_client_version=\"warren\",erlang_version=\"none\",product_name=\"Warren\",product_version=\"{}\"",
            super::overview::RABBITMQ_VERSION,
            super::overview::RABBITMQ_VERSION,
            env!("CARGO_PKG_VERSION")
        ),
        1,
    );
    let s = api.admin.status();
    let alarms = api.broker.alarms.state();
    let (fds, max_fds) = super::overview::fds();
    o.single(
        "rabbitmq_process_resident_memory_bytes",
        "gauge",
        "Memory used in bytes",
        s.memory_used,
    );
    o.single(
        "rabbitmq_resident_memory_limit_bytes",
        "gauge",
        "Memory high watermark in bytes",
        s.memory_high_watermark,
    );
    o.single(
        "rabbitmq_disk_space_available_bytes",
        "gauge",
        "Disk space available in bytes",
        s.disk_free,
    );
    o.single(
        "rabbitmq_disk_space_available_limit_bytes",
        "gauge",
        "Free disk space low watermark in bytes",
        s.disk_free_limit,
    );
    o.single(
        "rabbitmq_process_open_fds",
        "gauge",
        "Open file descriptors",
        fds,
    );
    o.single(
        "rabbitmq_process_max_fds",
        "gauge",
        "Open file descriptors limit",
        max_fds,
    );
    o.single(
        "rabbitmq_process_open_tcp_sockets",
        "gauge",
        "Open TCP sockets",
        api.broker.connections.len(),
    );
    o.single(
        "rabbitmq_process_max_tcp_sockets",
        "gauge",
        "Open TCP sockets limit",
        max_fds,
    );
    o.single(
        "rabbitmq_alarms_file_descriptor_limit",
        "untyped",
        "is 1 if file descriptor limit alarm is in effect",
        0,
    );
    o.single(
        "rabbitmq_alarms_free_disk_space_watermark",
        "untyped",
        "is 1 if free disk space watermark alarm is in effect",
        u8::from(alarms.disk),
    );
    o.single(
        "rabbitmq_alarms_memory_used_watermark",
        "untyped",
        "is 1 if VM memory watermark alarm is in effect",
        u8::from(alarms.memory),
    );
    o.single(
        "rabbitmq_system_memory_bytes",
        "gauge",
        "Total memory of the host in bytes (Warren)",
        alarms::total_memory(),
    );
    o.single(
        "rabbitmq_uptime_seconds",
        "gauge",
        "Time since the node started, in seconds (Warren)",
        api.started.elapsed().as_secs(),
    );
}

/// RabbitMQ's `rabbitmq_global_*` counters, labelled by protocol (and
/// queue type where RabbitMQ does).
fn global_metrics(o: &mut Out, c: &Snapshot) {
    let p = "protocol=\"amqp091\"";
    let pq = "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"";
    let fam: &[(&str, &str, &str, u64)] = &[
        ("rabbitmq_global_messages_received_total", "Total number of messages received from publishers", p, c.get(Metric::Publish)),
        ("rabbitmq_global_messages_received_confirm_total", "Total number of messages received from publishers expecting confirmations", p, c.get(Metric::Confirm)),
        ("rabbitmq_global_messages_routed_total", "Total number of messages routed to queues or streams", p, c.get(Metric::Publish).saturating_sub(c.get(Metric::ReturnUnroutable) + c.get(Metric::DropUnroutable))),
        ("rabbitmq_global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", p, c.get(Metric::DropUnroutable)),
        ("rabbitmq_global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", p, c.get(Metric::ReturnUnroutable)),
        ("rabbitmq_global_messages_confirmed_total", "Total number of messages confirmed to publishers", p, c.get(Metric::Confirm)),
        ("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers", pq, sum(c, &[Metric::Deliver, Metric::DeliverNoAck, Metric::Get, Metric::GetNoAck])),
        ("rabbitmq_global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", pq, c.get(Metric::Deliver)),
        ("rabbitmq_global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", pq, c.get(Metric::DeliverNoAck)),
        ("rabbitmq_global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", pq, c.get(Metric::Get)),
        ("rabbitmq_global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", pq, c.get(Metric::GetNoAck)),
        ("rabbitmq_global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", pq, c.get(Metric::GetEmpty)),
        ("rabbitmq_global_messages_redelivered_total", "Total number of messages redelivered to consumers", pq, c.get(Metric::Redeliver)),
        ("rabbitmq_global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", pq, c.get(Metric::Ack)),
    ];
    for (name, help, labels, v) in fam {
        o.family(name, "counter", help);
        o.value(name, labels, v);
    }
}

async fn aggregated(State(api): State<Arc<Api>>) -> Response {
    let mut o = Out(String::with_capacity(16 << 10));
    let conns = api.broker.connections.list();
    let channels: usize = conns.iter().map(|c| c.channels().len()).sum();
    let mut queues = 0u64;
    let mut totals = [0u64; 8];
    let mut published = 0u64;
    for v in api.broker.vhosts() {
        for q in v.queues_unordered() {
            queues += 1;
            let (vals, p) = queue_values(&q);
            for (t, v) in totals.iter_mut().zip(vals) {
                *t += v;
            }
            published += p;
        }
    }
    o.single(
        "rabbitmq_connections",
        "gauge",
        "Connections currently open",
        conns.len(),
    );
    o.single(
        "rabbitmq_channels",
        "gauge",
        "Channels currently open",
        channels,
    );
    o.single(
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
        totals[6],
    );
    o.single("rabbitmq_queues", "gauge", "Queues available", queues);
    for ((name, help), v) in QUEUE_GAUGES.iter().zip(totals) {
        o.single(name, "gauge", help, v);
    }
    o.single(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        published,
    );
    let counts = api.broker.message_counts();
    for (name, help, ms) in CHANNEL_COUNTERS {
        o.single(name, "counter", help, sum(&counts, ms));
    }
    let (mut rb, mut rp, mut sb, mut sp) = (0, 0, 0, 0);
    for c in &conns {
        let t = c.stats.traffic();
        rb += t.recv_oct;
        rp += t.recv_cnt;
        sb += t.send_oct;
        sp += t.send_cnt;
    }
    o.single(
        "rabbitmq_connection_incoming_bytes_total",
        "counter",
        "Total number of bytes received on a connection",
        rb,
    );
    o.single(
        "rabbitmq_connection_outgoing_bytes_total",
        "counter",
        "Total number of bytes sent on a connection",
        sb,
    );
    o.single(
        "rabbitmq_connection_incoming_packets_total",
        "counter",
        "Total number of packets received on a connection",
        rp,
    );
    o.single(
        "rabbitmq_connection_outgoing_packets_total",
        "counter",
        "Total number of packets sent on a connection",
        sp,
    );
    global_metrics(&mut o, &counts);
    churn_metrics(&mut o, &api);
    node_metrics(&mut o, &api);
    text(o.0)
}

/// A per-connection metric: name, help, and how to read it.
type ConnectionFamily = (
    &'static str,
    &'static str,
    fn(&warren_broker::connections::ConnectionEntry) -> u64,
);

async fn per_object(State(api): State<Arc<Api>>) -> Response {
    let vhosts = api.broker.vhosts();
    let queues: Vec<_> = vhosts.iter().flat_map(|v| v.queues_unordered()).collect();
    let mut o = Out(String::with_capacity(4096 + queues.len() * 900));
    // One pass over the queues; the lines are grouped by family after.
    let rows: Vec<(String, [u64; 8], u64)> = queues
        .iter()
        .map(|q| {
            let (vals, p) = queue_values(q);
            let labels = format!(
                "vhost=\"{}\",queue=\"{}\"",
                esc(&q.vhost),
                esc(&q.name.as_str())
            );
            (labels, vals, p)
        })
        .collect();
    for (i, (name, help)) in QUEUE_GAUGES.iter().enumerate() {
        o.family(name, "gauge", help);
        for (labels, vals, _) in &rows {
            o.value(name, labels, vals[i]);
        }
    }
    o.family(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
    );
    for (labels, _, p) in &rows {
        o.value("rabbitmq_queue_messages_published_total", labels, p);
    }
    let conns = api.broker.connections.list();
    let chans: Vec<(String, Snapshot, u32, u32)> = conns
        .iter()
        .flat_map(|c| {
            c.channels().into_iter().map(|ch| {
                let st = ch.state();
                (
                    format!("channel=\"{}\"", esc(&c.channel_pid(ch.number))),
                    ch.counters.snapshot(),
                    st.consumers,
                    st.unacked,
                )
            })
        })
        .collect();
    o.family(
        "rabbitmq_channel_consumers",
        "gauge",
        "Consumers on a channel",
    );
    for (l, _, n, _) in &chans {
        o.value("rabbitmq_channel_consumers", l, n);
    }
    o.family(
        "rabbitmq_channel_messages_unacked",
        "gauge",
        "Delivered but not yet acknowledged messages",
    );
    for (l, _, _, n) in &chans {
        o.value("rabbitmq_channel_messages_unacked", l, n);
    }
    for (name, help, ms) in CHANNEL_COUNTERS {
        o.family(name, "counter", help);
        for (l, s, _, _) in &chans {
            o.value(name, l, sum(s, ms));
        }
    }
    let conn_fams: &[ConnectionFamily] = &[
        (
            "rabbitmq_connection_incoming_bytes_total",
            "Total number of bytes received on a connection",
            |c| c.stats.traffic().recv_oct,
        ),
        (
            "rabbitmq_connection_outgoing_bytes_total",
            "Total number of bytes sent on a connection",
            |c| c.stats.traffic().send_oct,
        ),
        (
            "rabbitmq_connection_incoming_packets_total",
            "Total number of packets received on a connection",
            |c| c.stats.traffic().recv_cnt,
        ),
        (
            "rabbitmq_connection_outgoing_packets_total",
            "Total number of packets sent on a connection",
            |c| c.stats.traffic().send_cnt,
        ),
        (
            "rabbitmq_connection_channels",
            "Channels on a connection",
            |c| c.channels().len() as u64,
        ),
    ];
    for (name, help, f) in conn_fams {
        o.family(
            name,
            if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            },
            help,
        );
        for c in &conns {
            // RabbitMQ labels connection series with `channel` too.
            o.value(name, &format!("channel=\"{}\"", esc(&c.pid)), f(c));
        }
    }
    o.single(
        "rabbitmq_connections",
        "gauge",
        "Connections currently open",
        conns.len(),
    );
    o.single(
        "rabbitmq_channels",
        "gauge",
        "Channels currently open",
        chans.len(),
    );
    o.single("rabbitmq_queues", "gauge", "Queues available", queues.len());
    let consumers: u64 = rows.iter().map(|r| r.1[6]).sum();
    o.single(
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
        consumers,
    );
    global_metrics(&mut o, &api.broker.message_counts());
    churn_metrics(&mut o, &api);
    node_metrics(&mut o, &api);
    text(o.0)
}
