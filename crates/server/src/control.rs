//! The control socket `warrenctl` talks to: a Unix socket in the data
//! directory (mode 0600, so only the broker's user can manage it, as
//! rabbitmqctl relies on the Erlang cookie file).
//!
//! Protocol: one JSON request line, one JSON response line, then close.
//! Request: `{"command": "list_queues", "vhost": "/"}`.
//! Response: `{"ok": true, "rows": [{...}, ...]}` or `{"ok": false, "error": "..."}`.
//! Rows carry every field; the CLI picks and formats the columns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tracing::{debug, warn};
use warren_broker::alarms::Watermark;
use warren_broker::Broker;
use warren_protocol::{FieldTable, FieldValue};

/// Requests are tiny; anything longer is refused.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
struct Request {
    command: String,
    #[serde(default)]
    vhost: Option<String>,
    #[serde(default)]
    args: Vec<String>,
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("warren.sock")
}

/// Binds the control socket, refusing to steal one a live broker uses.
pub async fn bind(data_dir: &Path) -> anyhow::Result<UnixListener> {
    let path = socket_path(data_dir);
    if path.exists() {
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            anyhow::bail!(
                "another Warren broker is running with data directory {}",
                data_dir.display()
            );
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}

pub async fn serve(listener: UnixListener, broker: Arc<Broker>, data_dir: PathBuf) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let broker = broker.clone();
        let data_dir = data_dir.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(rd).take(MAX_REQUEST as u64);
            let response = match reader.read_line(&mut line).await {
                Ok(_) => match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        debug!("control request: {}", req.command);
                        handle(&broker, &data_dir, &req)
                    }
                    Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
                },
                Err(e) => json!({"ok": false, "error": format!("read failed: {e}")}),
            };
            let mut text = response.to_string();
            text.push('\n');
            if let Err(e) = wr.write_all(text.as_bytes()).await {
                warn!("control socket write failed: {e}");
            }
        });
    }
}

/// Applies new alarm thresholds at once rather than at the next tick.
fn recheck(broker: &Broker, data_dir: &Path) {
    let free = warren_broker::alarms::disk_free(data_dir).unwrap_or(u64::MAX);
    broker.alarms.check(
        warren_broker::alarms::process_rss(),
        warren_broker::alarms::total_memory(),
        free,
    );
}

fn handle(broker: &Broker, data_dir: &Path, req: &Request) -> Value {
    let vhost_name = req.vhost.clone().unwrap_or_else(|| "/".into());
    let rows: Vec<Value> = match req.command.as_str() {
        "list_queues" => match broker.vhost(&vhost_name) {
            // rabbitmqctl lists nothing (and succeeds) for a missing vhost.
            None => Vec::new(),
            Some(v) => v
                .queues()
                .iter()
                .map(|q| {
                    let s = q.stats();
                    json!({
                        "name": q.name.to_string(),
                        "vhost": v.name,
                        "durable": q.options.durable,
                        "auto_delete": q.options.auto_delete,
                        "exclusive": q.options.exclusive,
                        "arguments": table_text(&q.options.arguments),
                        "messages": s.ready + s.unacked,
                        "messages_ready": s.ready,
                        "messages_unacknowledged": s.unacked,
                        "message_bytes_ready": s.ready_bytes,
                        "consumers": s.consumers,
                        "type": "classic",
                        "state": "running",
                    })
                })
                .collect(),
        },
        "list_exchanges" => match broker.vhost(&vhost_name) {
            None => Vec::new(),
            Some(v) => v
                .exchanges()
                .iter()
                .map(|x| {
                    json!({
                        "name": x.name.to_string(),
                        "vhost": v.name,
                        "type": x.kind.as_str(),
                        "durable": x.durable,
                        "auto_delete": x.auto_delete,
                        "internal": x.internal,
                        "arguments": table_text(&x.arguments),
                    })
                })
                .collect(),
        },
        "list_bindings" => match broker.vhost(&vhost_name) {
            None => Vec::new(),
            Some(v) => v
                .bindings()
                .into_iter()
                .map(|(source, kind, dest, key, args)| {
                    json!({
                        "source_name": source.to_string(),
                        "source_kind": "exchange",
                        "destination_name": dest.to_string(),
                        "destination_kind": kind,
                        "routing_key": key.to_string(),
                        "arguments": table_text(&args),
                        "vhost": v.name,
                    })
                })
                .collect(),
        },
        "list_vhosts" => broker
            .vhosts()
            .iter()
            .map(|v| json!({"name": v.name}))
            .collect(),
        "list_users" => broker
            .auth
            .users()
            .iter()
            .map(|u| json!({"user": u.name, "tags": format!("[{}]", u.tags.join(", "))}))
            .collect(),
        "set_vm_memory_high_watermark" => {
            let w = match req.args.as_slice() {
                [kind, value] if kind == "absolute" => {
                    match warren_broker::alarms::parse_size(value) {
                        Some(b) => Watermark::Absolute(b),
                        None => {
                            return json!({"ok": false, "error": format!("invalid size '{value}'")})
                        }
                    }
                }
                [value] => match value.parse::<f64>() {
                    Ok(f) if (0.0..=1.0).contains(&f) => Watermark::Relative(f),
                    _ => {
                        return json!({"ok": false, "error": format!("invalid fraction '{value}' (0.0 to 1.0)")})
                    }
                },
                _ => {
                    return json!({"ok": false, "error": "usage: set_vm_memory_high_watermark <fraction> | absolute <size>"})
                }
            };
            broker.alarms.set_watermark(w);
            recheck(broker, data_dir);
            Vec::new()
        }
        "set_disk_free_limit" => {
            let bytes = match req.args.as_slice() {
                [kind, value] if kind == "mem_relative" => match value.parse::<f64>() {
                    Ok(f) if f >= 0.0 => (warren_broker::alarms::total_memory() as f64 * f) as u64,
                    _ => {
                        return json!({"ok": false, "error": format!("invalid fraction '{value}'")})
                    }
                },
                [value] => match warren_broker::alarms::parse_size(value) {
                    Some(b) => b,
                    None => return json!({"ok": false, "error": format!("invalid size '{value}'")}),
                },
                _ => {
                    return json!({"ok": false, "error": "usage: set_disk_free_limit <size> | mem_relative <fraction>"})
                }
            };
            broker.alarms.set_disk_free_limit(bytes);
            recheck(broker, data_dir);
            Vec::new()
        }
        "status" => {
            let state = broker.alarms.state();
            let total = warren_broker::alarms::total_memory();
            let mut alarms = Vec::new();
            if state.memory {
                alarms.push("memory");
            }
            if state.disk {
                alarms.push("disk");
            }
            vec![json!({
                "product": "Warren",
                "version": env!("CARGO_PKG_VERSION"),
                "memory_used": warren_broker::alarms::process_rss(),
                "memory_high_watermark": broker.alarms.watermark().bytes(total),
                "total_memory": total,
                "disk_free": warren_broker::alarms::disk_free(data_dir).unwrap_or(0),
                "disk_free_limit": broker.alarms.disk_free_limit(),
                "alarms": alarms,
            })]
        }
        "inject_fault" => return inject_fault(&req.args),
        other => return json!({"ok": false, "error": format!("unknown command '{other}'")}),
    };
    json!({"ok": true, "rows": rows})
}

/// Test support: makes chosen storage writes or fsyncs fail. Refused
/// unless the broker was started with `WARREN_FAULT_INJECTION=1`.
/// Arguments: `write|fsync PATH-SUBSTRING SKIP COUNT enospc|eio`.
fn inject_fault(args: &[String]) -> Value {
    use warren_broker::store::faults::{inject, Fault, FaultError, FileOp};
    if std::env::var("WARREN_FAULT_INJECTION").as_deref() != Ok("1") {
        return json!({"ok": false, "error": "fault injection is disabled (start the broker with WARREN_FAULT_INJECTION=1)"});
    }
    let parsed =
        match args {
            [op, path, skip, count, error] => FileOp::parse(op)
                .zip(FaultError::parse(error))
                .and_then(|(op, error)| {
                    Some(Fault {
                        op,
                        path_contains: path.clone(),
                        skip: skip.parse().ok()?,
                        count: count.parse().ok()?,
                        error,
                    })
                }),
            _ => None,
        };
    match parsed {
        Some(f) => {
            tracing::warn!("fault injection: {f:?}");
            inject(f);
            json!({"ok": true, "rows": []})
        }
        None => {
            json!({"ok": false, "error": "usage: inject_fault write|fsync PATH-SUBSTRING SKIP COUNT enospc|eio"})
        }
    }
}

/// Arguments in rabbitmqctl's style: `[{"x-message-ttl",1000}]`.
fn table_text(t: &FieldTable) -> String {
    let items: Vec<String> = t
        .iter()
        .map(|(k, v)| {
            let value = match v {
                FieldValue::LongStr(b) | FieldValue::Bytes(b) => {
                    format!("\"{}\"", String::from_utf8_lossy(b))
                }
                FieldValue::Bool(b) => b.to_string(),
                other => other
                    .as_i64()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| format!("{other:?}")),
            };
            format!("{{\"{k}\",{value}}}")
        })
        .collect();
    format!("[{}]", items.join(","))
}
