//! `-n NODE` / `--node NODE`. warrenctl reaches one node, through its
//! data directory's control socket. Another node's name is served when it
//! is a member of that node's cluster: every request is relayed there over
//! the cluster link (authenticated by the cluster's secret), and its answer
//! comes back as that node gave it. Any other name is an error naming it
//! (exit 69, the text rabbitmqctl prints for a node it cannot reach), never
//! silently the local node.
//!
//! Accepted: the full name the broker reports (`warren@myhost`, or what
//! `RABBITMQ_NODENAME` made it), or its bare name part (`-n warren`) when
//! the host part is this machine's host name, as rabbitmqctl expands
//! `-n rabbit` to `rabbit@<short hostname>`.

use serde_json::json;

use crate::client::Client;
use crate::{Failure, EX_UNAVAILABLE};

/// Commands that never reach the broker: `-n` means nothing to them.
const OFFLINE: &[&str] = &["hash_password"];

/// This machine's host name (the kernel's, as the broker reads it).
pub(crate) fn hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if h.is_empty() {
        "localhost".into()
    } else {
        h
    }
}

/// The host name up to its first dot.
pub(crate) fn short_hostname() -> String {
    let h = hostname();
    h.split('.').next().unwrap_or(&h).to_string()
}

/// A node name as rabbitmqctl completes it: `name` → `name@<short host>`.
pub(crate) fn expand(asked: &str) -> String {
    if asked.contains('@') {
        asked.to_string()
    } else {
        format!("{asked}@{}", short_hostname())
    }
}

/// The node a command talks to, for texts printed when the broker cannot
/// be asked: `-n`, else `RABBITMQ_NODENAME`, else Warren's default.
pub(crate) fn target(asked: Option<&str>) -> String {
    if let Some(n) = asked {
        return expand(n);
    }
    match std::env::var("RABBITMQ_NODENAME") {
        Ok(n) if !n.trim().is_empty() => expand(n.trim()),
        _ => format!("warren@{}", short_hostname()),
    }
}

/// Whether `asked` (as given to `-n`) names `local` (as the broker
/// reports itself).
pub(crate) fn is_local(asked: &str, local: &str) -> bool {
    if asked == local {
        return true;
    }
    match (asked.contains('@'), local.split_once('@')) {
        (false, Some((name, host))) => {
            asked == name && (host == short_hostname() || host == hostname())
        }
        _ => false,
    }
}

/// rabbitmqctl's text for a node it cannot reach, in Warren's terms.
pub(crate) fn unreachable(asked: &str, local: &str) -> Failure {
    let asked = expand(asked);
    Failure::new(
        EX_UNAVAILABLE,
        format!(
            "Error: unable to perform an operation on node '{asked}'. Please see diagnostics information and suggestions below.\n\
             \n\
             Most common reasons for this are:\n\
             \n \
             * Target node is neither the local Warren node ('{local}', the node whose data directory warrenctl uses) \
             nor a member of its cluster\n \
             * Target node is not running\n\
             \n\
             DIAGNOSTICS\n\
             ===========\n\
             \n\
             attempted to contact: [{asked}]\n\
             \n\
             local node: {local}"
        ),
    )
}

/// Refuses `-n` naming another node than the one the socket reaches.
/// Asks the broker its name (one request) only when `-n` is given.
pub(crate) fn check(command: &str, asked: Option<&str>, client: &Client) -> Result<(), Failure> {
    let Some(asked) = asked else {
        return Ok(());
    };
    if OFFLINE.contains(&command) {
        return Ok(());
    }
    match client.request(json!({"op": "await_startup"})) {
        Ok(_) | Err(Ok(_)) => {}
        // Down: the command's own request reports it, as without -n.
        Err(Err(_)) => return Ok(()),
    }
    let local = client.node();
    if is_local(asked, &local) {
        return Ok(());
    }
    let name = expand(asked);
    let members = client
        .request(json!({"op": "cluster_members"}))
        .ok()
        .and_then(|v| {
            v["members"].as_array().map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
        })
        .unwrap_or_default();
    if members.contains(&name) {
        client.relay_to(name);
        Ok(())
    } else {
        Err(unreachable(asked, &local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names() {
        let short = short_hostname();
        let local = format!("warren@{short}");
        assert!(is_local(&local, &local));
        assert!(is_local("warren", &local));
        assert!(!is_local("rabbit", &local));
        assert!(!is_local("warren@elsewhere", &local));
        assert!(!is_local(&format!("other@{short}"), &local));
        assert_eq!(expand("warren"), local);
        assert_eq!(expand("a@b"), "a@b");
        let f = unreachable("other@host", &local);
        assert_eq!(f.code, EX_UNAVAILABLE);
        assert!(f.message.starts_with(
            "Error: unable to perform an operation on node 'other@host'. Please see diagnostics"
        ));
        assert!(f.message.contains("attempted to contact: [other@host]"));
    }
}
