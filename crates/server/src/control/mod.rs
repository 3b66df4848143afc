//! The control socket `warrenctl` talks to: a Unix socket in the data
//! directory (mode 0600, so only the broker's user can manage it, as
//! rabbitmqctl relies on the Erlang cookie file).
//!
//! Protocol: one JSON request line, one JSON response line, then close.
//! A request is an administration request (`warren_broker::admin::Request`,
//! e.g. `{"op": "list_queues", "vhost": "/"}`), or one of the server's own:
//! `await_startup`, `stop`, `reload_tls`, `inject_fault` (tests).
//! Response: `{"ok": true, "result": …}` or `{"ok": false, "error": {"kind":
//! …, "message": …}}`. Rows carry every field; the CLI picks and formats
//! the columns.

mod environment;
mod logging;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tracing::{debug, error, info, warn};
use warren_broker::admin::{Actor, Admin, AdminError, Request, Via};
use warren_broker::connections::node_name;
use warren_broker::Broker;

pub(crate) mod diagnostics;

/// The longest request: definitions files of large installations run to
/// tens of MB (30,000 queues with bindings: 6 MB); the socket is the
/// broker user's only, and this still bounds what one request can hold.
const MAX_REQUEST: usize = 256 * 1024 * 1024;

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

/// What the control socket's own operations reach besides the admin layer.
pub(crate) struct Control {
    pub data_dir: PathBuf,
    /// The configuration the broker runs with.
    pub cfg: Arc<crate::config::Config>,
    /// Every listener, as bound.
    pub listeners: Arc<crate::listeners::Registry>,
    /// Notified by `stop`.
    pub stop: Arc<tokio::sync::Notify>,
    /// The TLS files `reload_tls` reads again, if TLS is on.
    pub tls: Option<Arc<crate::tls::Reloadable>>,
    /// This node's cluster membership, when it runs in a cluster.
    pub member: Option<Arc<crate::cluster::member::Member>>,
}

pub(crate) async fn serve(listener: UnixListener, broker: Arc<Broker>, control: Control) {
    let admin = Admin::new(broker);
    let control = Arc::new(control);
    // Requests other members relay here (`warrenctl -n THIS_NODE` there).
    if let Some(member) = &control.member {
        let (admin, control) = (admin.clone(), control.clone());
        member.serve_control(Arc::new(move |from: &str, user: &str, line: &str| {
            let admin = admin.acting_as(Actor::new(format!("{user} on {from}"), Via::Cli));
            let op = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("op").and_then(Value::as_str).map(str::to_string));
            if op.as_deref() == Some("relay") {
                return failure(AdminError::invalid(
                    "a relayed request can't be relayed again",
                ));
            }
            handle(&admin, &control, line, "")
        }));
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // The audit log names the operating-system user on the socket.
        let who = stream
            .peer_cred()
            .map(|c| os_user(c.uid()))
            .unwrap_or_else(|_| "unknown".to_string());
        let admin = admin.acting_as(Actor::new(who.clone(), Via::Cli));
        let control = control.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(rd).take(MAX_REQUEST as u64);
            let response = match reader.read_line(&mut line).await {
                Ok(_) if !line.ends_with('\n') && line.len() >= MAX_REQUEST => failure(
                    AdminError::invalid(format!("request longer than {MAX_REQUEST} bytes")),
                ),
                Ok(_) => {
                    // Administration can fsync (journal): off the async workers.
                    tokio::task::spawn_blocking(move || handle(&admin, &control, &line, &who))
                        .await
                        .unwrap_or_else(|e| {
                            failure(AdminError::invalid(format!("internal error: {e}")))
                        })
                }
                Err(e) => failure(AdminError::invalid(format!("read failed: {e}"))),
            };
            let mut text = response.to_string();
            text.push('\n');
            if let Err(e) = wr.write_all(text.as_bytes()).await {
                warn!("control socket write failed: {e}");
            }
        });
    }
}

/// The name of the user with this uid (`uid N` when it has none).
fn os_user(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf` (whose length it is
    // given) and sets `result` to `pwd` on success; `pw_name` then points
    // into `buf`, a NUL-terminated string, read before `buf` is dropped.
    let name = unsafe {
        let rc = libc::getpwuid_r(
            uid,
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || (*result).pw_name.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*result).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

fn failure(e: AdminError) -> Value {
    let mut error = serde_json::to_value(&e).unwrap_or_else(|_| json!({}));
    if let Some(m) = error.as_object_mut() {
        m.insert("message".into(), e.to_string().into());
    }
    json!({"ok": false, "error": error})
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

/// One request line; `who` is the OS user on the socket (named to another
/// node when the request is relayed there).
fn handle(admin: &Admin, control: &Control, line: &str, who: &str) -> Value {
    let data_dir = control.data_dir.as_path();
    let raw: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return failure(AdminError::invalid(format!("bad request: {e}"))),
    };
    let op = raw
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    debug!("control request: {op}");
    match op.as_str() {
        "await_startup" => return json!({"ok": true, "result": null, "node": node_name()}),
        "stop" => {
            control.stop.notify_one();
            return json!({"ok": true, "result": null, "node": node_name()});
        }
        "reload_tls" => return reload_tls(control),
        "listeners" => {
            return json!({"ok": true, "result": control.listeners.all(), "node": node_name()})
        }
        "inject_fault" => return inject_fault(&raw),
        "diagnostics" => return diagnostics::diagnostics(admin, control),
        "memory_breakdown" => return diagnostics::memory_breakdown(admin),
        "environment" => return environment::environment(control),
        "relay" => return relay(control, &raw, who),
        "add_cluster_member" | "forget_cluster_node" | "join_cluster" => {
            return membership(control, &op, &raw)
        }
        "alarms" => {
            // This node's own alarms (another member's poll: see
            // cluster::member::watch_alarms).
            let a = admin.broker().alarms.state();
            return json!({"ok": true, "result": {"memory": a.memory, "disk": a.disk}, "node": node_name()});
        }
        "node_json" => {
            let result = match &control.member {
                Some(m) => m.node_info(),
                None => json!({"name": node_name(), "type": "disc", "running": true}),
            };
            return json!({"ok": true, "result": result, "node": node_name()});
        }
        "cluster_members" => {
            let result = control.member.as_ref().map(|m| {
                let mut view = m.view();
                // Each running member's version and alarms, as it reports them.
                let mut others = serde_json::Map::new();
                for name in m.members() {
                    if name == m.me {
                        continue;
                    }
                    if let Some(info) = m.node_json_of(&name) {
                        let mut alarms = Vec::new();
                        if info["mem_alarm"].as_bool() == Some(true) {
                            alarms.push("memory");
                        }
                        if info["disk_free_alarm"].as_bool() == Some(true) {
                            alarms.push("disk");
                        }
                        others.insert(
                            name,
                            json!({"version": info["product_version"], "alarms": alarms}),
                        );
                    }
                }
                view["others"] = Value::Object(others);
                view
            });
            return json!({"ok": true, "result": result, "node": node_name()});
        }
        "rotate_logs" | "set_log_level" => return logging::handle(&op, &raw),
        _ => {}
    }
    let req: Request = match serde_json::from_value(raw) {
        Ok(r) => r,
        Err(e) => return failure(AdminError::invalid(format!("bad request '{op}': {e}"))),
    };
    // On a cluster, a change is decided on the cluster's latest state (see
    // `warren_broker::broker::Broker::sync_definitions`); reads, closing
    // connections and purging queues go on without a majority.
    let changes_definitions = matches!(
        op.as_str(),
        "add_user"
            | "delete_user"
            | "change_password"
            | "clear_password"
            | "set_user_tags"
            | "set_policy"
            | "clear_policy"
            | "set_vhost_limits"
            | "clear_vhost_limits"
            | "set_user_limits"
            | "clear_user_limits"
            | "add_vhost"
            | "delete_vhost"
            | "set_permissions"
            | "clear_permissions"
            | "set_topic_permissions"
            | "clear_topic_permissions"
            | "delete_queue"
            | "import_definitions"
            | "set_parameter"
            | "clear_parameter"
            | "set_global_parameter"
            | "clear_global_parameter"
            | "set_cluster_name"
    );
    if changes_definitions {
        if let Err(e) = admin.broker().sync_definitions() {
            return failure(e);
        }
    }
    let rechecks = matches!(
        req,
        Request::SetVmMemoryHighWatermark { .. } | Request::SetDiskFreeLimit { .. }
    );
    match admin.handle(req) {
        Ok(result) => {
            if rechecks {
                recheck(admin.broker(), data_dir);
            }
            json!({"ok": true, "result": result, "node": node_name()})
        }
        Err(e) => failure(e),
    }
}

/// Membership changes: `join_cluster NODE` (this node asks NODE's cluster
/// to add it), `forget_cluster_node NODE` (RabbitMQ's: the node must be
/// stopped; it is removed from the members and refused from then on, so
/// it can come back only with an empty data directory), and
/// `add_cluster_member` (what a joining node asks of a member).
fn membership(control: &Control, op: &str, raw: &Value) -> Value {
    let node = raw
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(member) = &control.member else {
        return failure(AdminError::invalid(format!(
            "node {} is not in a cluster (start it with --cluster-node)",
            node_name()
        )));
    };
    let unavailable = |message: String| failure(AdminError::Unavailable { message });
    let done = || json!({"ok": true, "result": null, "node": node_name()});
    match op {
        "add_cluster_member" => match member.add_member(&node) {
            Ok(()) => {
                info!("added {node} to the cluster");
                done()
            }
            Err(e) => unavailable(format!("cannot add {node} to the cluster: {e}")),
        },
        "forget_cluster_node" => {
            if node == member.me {
                return failure(AdminError::invalid(format!(
                    "{node} is the local node: run forget_cluster_node on another member"
                )));
            }
            if !member.is_member(&node) {
                return failure(AdminError::invalid(format!(
                    "{node} is not a member of this cluster"
                )));
            }
            if member.reaches(&node) {
                return failure(AdminError::invalid(format!(
                    "{node} is running: stop it before removing it from the cluster"
                )));
            }
            match member.forget(&node) {
                Ok(()) => {
                    info!("removed {node} from the cluster");
                    done()
                }
                Err(e) => unavailable(format!("cannot remove {node} from the cluster: {e}")),
            }
        }
        _ => {
            // join_cluster NODE: NODE's cluster adds this node.
            if member.group.status().initialized {
                return failure(AdminError::invalid(format!(
                    "{} is already a member of a cluster: it joins another only from an empty data directory",
                    member.me
                )));
            }
            let ask = json!({"op": "add_cluster_member", "node": member.me}).to_string();
            match member.relay(&node, "cluster", ask) {
                Ok(v) if v["ok"].as_bool() == Some(true) => done(),
                Ok(v) => v,
                Err(e) => unavailable(format!("cannot reach {node}: {e}")),
            }
        }
    }
}

/// `warrenctl -n NODE`: the request runs on NODE, over the cluster link,
/// and its answer comes back as NODE gave it.
fn relay(control: &Control, raw: &Value, who: &str) -> Value {
    let node = raw.get("node").and_then(Value::as_str).unwrap_or("");
    let Some(request) = raw.get("request") else {
        return failure(AdminError::invalid("relay: no request"));
    };
    let Some(member) = &control.member else {
        return failure(AdminError::Unavailable {
            message: format!(
                "node {} is not in a cluster: it can't reach {node}",
                node_name()
            ),
        });
    };
    if !member.is_member(node) {
        return failure(AdminError::Unavailable {
            message: format!("{node} is not a member of {}'s cluster", node_name()),
        });
    }
    match member.relay(node, who, request.to_string()) {
        Ok(answer) => answer,
        Err(e) => failure(AdminError::Unavailable {
            message: format!("unable to perform an operation on node '{node}': {e}"),
        }),
    }
}

/// Reads the TLS certificate, key and CA files again (as SIGHUP does):
/// new connections use them, open ones keep theirs. A file that fails to
/// load leaves the old certificate in place and is reported.
fn reload_tls(control: &Control) -> Value {
    let Some(tls) = &control.tls else {
        return failure(AdminError::invalid(
            "TLS is not configured (no ssl_options.certfile and keyfile)",
        ));
    };
    match tls.reload() {
        Ok(()) => {
            info!("TLS certificate and key reloaded (warrenctl reload_tls)");
            json!({"ok": true, "result": null, "node": node_name()})
        }
        Err(e) => {
            error!("TLS reload failed, the old certificate stays: {e}");
            failure(AdminError::invalid(format!(
                "TLS reload failed, the old certificate stays: {e}"
            )))
        }
    }
}

/// Test support: makes chosen storage writes or fsyncs fail. Refused
/// unless the broker was started with `WARREN_FAULT_INJECTION=1`.
/// `{"op": "inject_fault", "args": ["write|fsync", PATH-SUBSTRING, SKIP,
/// COUNT, "enospc|eio|stall"]}`.
fn inject_fault(raw: &Value) -> Value {
    use warren_broker::store::faults::{inject, Fault, FaultError, FileOp};
    if std::env::var("WARREN_FAULT_INJECTION").as_deref() != Ok("1") {
        return failure(AdminError::invalid(
            "fault injection is disabled (start the broker with WARREN_FAULT_INJECTION=1)",
        ));
    }
    let args: Vec<String> = raw
        .get("args")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let parsed =
        match args.as_slice() {
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
            json!({"ok": true, "result": null})
        }
        None => failure(AdminError::invalid(
            "usage: inject_fault write|fsync PATH-SUBSTRING SKIP COUNT enospc|eio|stall",
        )),
    }
}
