//! What `warrenctl`'s `rabbitmq-diagnostics` commands ask the node
//! (`ping`, `check_running`, the alarm checks, `listeners`,
//! `check_port_connectivity`, `memory_breakdown`, `cluster_status`):
//!
//! - `diagnostics`: whether startup has completed (every listener bound),
//!   the alarms in effect, the listeners, the version.
//! - `memory_breakdown`: the process's resident memory split into what
//!   Warren can attribute; the rest is reported as `other`, never guessed.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};
use warren_broker::admin::Admin;
use warren_broker::alarms;
use warren_broker::connections::node_name;

use super::Control;

/// Set once every listener is bound and the broker serves (`check_running`
/// answers "fully booted" only then; the control socket is up earlier).
static BOOTED: AtomicBool = AtomicBool::new(false);

/// Called when startup is complete.
pub(crate) fn mark_booted() {
    BOOTED.store(true, Ordering::Release);
}

fn ok(result: Value) -> Value {
    json!({"ok": true, "result": result, "node": node_name()})
}

/// `{"op": "diagnostics"}`.
pub(super) fn diagnostics(admin: &Admin, control: &Control) -> Value {
    let state = admin.broker().alarms.state();
    let mut active = Vec::new();
    if state.memory {
        active.push("memory");
    }
    if state.disk {
        active.push("disk");
    }
    ok(json!({
        "booted": BOOTED.load(Ordering::Acquire),
        "product": "Warren",
        "version": env!("CARGO_PKG_VERSION"),
        "alarms": active,
        "listeners": control.listeners.all(),
    }))
}

/// `{"op": "memory_breakdown"}`: bytes per category, and the total (RSS).
///
/// - `queue_procs`: what queues hold in memory: ready message bodies and
///   a per-message overhead, plus each queue's own state (the figure
///   `list_queues memory` shows), summed over every queue.
/// - `code`: file-backed resident pages (`RssFile` in
///   `/proc/self/status`): the executable and shared libraries.
/// - `other`: everything else resident (connection and channel buffers,
///   definitions, indexes, the allocator's caches, thread stacks), which
///   Warren does not track per category.
pub(super) fn memory_breakdown(admin: &Admin) -> Value {
    let rss = alarms::process_rss();
    let queues: u64 = admin
        .broker()
        .vhosts()
        .iter()
        .flat_map(|v| v.queues_unordered())
        .map(|q| q.memory())
        .sum();
    let code = rss_file().unwrap_or(0);
    let queues = queues.min(rss);
    let code = code.min(rss - queues);
    let other = rss - queues - code;
    ok(json!({
        "total": rss,
        "categories": {
            "queue_procs": queues,
            "code": code,
            "other": other,
        }
    }))
}

/// File-backed resident memory, from `/proc/self/status` (kB).
fn rss_file() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_rss_file(&status)
}

fn parse_rss_file(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("RssFile:"))?;
    let kb: u64 = line
        .trim_start_matches("RssFile:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_file_from_proc_status() {
        let s = "Name:\twarren\nVmRSS:\t  2048 kB\nRssAnon:\t  1024 kB\nRssFile:\t   512 kB\n";
        assert_eq!(parse_rss_file(s), Some(512 * 1024));
        assert_eq!(parse_rss_file("Name:\tx\n"), None);
        // This process has some code resident.
        assert!(rss_file().is_some_and(|b| b > 0));
    }
}
