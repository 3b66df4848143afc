//! A member's background tasks: saying when the definitions leader
//! changes, and RabbitMQ's cluster-wide resource alarms.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warren_broker::broker::Broker;
use warren_raft::Group;

use super::link::Service;
use super::member::Member;
use super::services::Relayed;

/// Says when the definitions group's leader changes (openraft's own lines
/// are off by default), at most once a second.
pub(super) async fn log_leaders(group: Group) {
    let mut last: Option<Option<String>> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = group.status();
        if s.role == warren_raft::Role::Shutdown {
            return;
        }
        // A new leader is said once; having none once, not at every
        // failed election.
        let now = s.leader.clone();
        if last.as_ref() != Some(&now) {
            match &now {
                Some(l) => tracing::info!("cluster definitions leader: {l} (term {})", s.term),
                None => {
                    tracing::warn!("cluster definitions: no leader; changes wait for a majority")
                }
            }
            last = Some(now);
        }
    }
}

/// RabbitMQ blocks publishers on every node while any node has a resource
/// alarm: every 2 s, each reachable member is asked for its own alarms
/// (a member that does not answer within 3 s counts as having none: a
/// node that is down stores nothing).
pub(super) async fn watch_alarms(member: Arc<Member>, broker: Arc<Broker>) {
    let ask = match serde_json::to_vec(&Relayed {
        user: "cluster".into(),
        request: serde_json::json!({"op": "alarms"}).to_string(),
    }) {
        Ok(p) => Bytes::from(p),
        Err(_) => return,
    };
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if member.group.status().role == warren_raft::Role::Shutdown {
            return;
        }
        let (mut memory, mut disk, mut on) = (false, false, Vec::new());
        for name in member.members() {
            if name == member.me || !member.reaches(&name) {
                continue;
            }
            let Ok(raw) = member
                .link
                .call(&name, Service::CONTROL, ask.clone(), Duration::from_secs(3))
                .await
            else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
                continue;
            };
            let r = &v["result"];
            if r["memory"].as_bool() == Some(true) {
                memory = true;
                on.push(format!("{name}: memory"));
            }
            if r["disk"].as_bool() == Some(true) {
                disk = true;
                on.push(format!("{name}: disk"));
            }
        }
        broker.alarms.set_remote(memory, disk, &on.join(", "));
    }
}
