//! The definitions state machine against itself: applying is
//! deterministic (two nodes given the same log agree on every verdict and
//! end in the same state, replicated and live), and a snapshot taken
//! anywhere plus the rest of the log gives the same state as the whole
//! log.

use proptest::prelude::*;
use warren_raft::StateMachine;

use super::machine::DefinitionsMachine;
use super::Command;
use crate::broker::{Broker, BrokerSetup};
use crate::definitions::{Change, ParameterDef, PermissionDef, PolicyDef, UserDef, VhostDef};

fn change() -> impl Strategy<Value = Change> {
    let name = prop::sample::select(vec!["a", "b", "c"]);
    let vhost = prop::sample::select(vec!["/", "v1", "v2"]);
    prop_oneof![
        vhost.clone().prop_map(|v| Change::PutVhost(VhostDef {
            name: v.into(),
            ..Default::default()
        })),
        vhost
            .clone()
            .prop_map(|v| Change::DeleteVhost { name: v.into() }),
        (name.clone(), 0u8..3).prop_map(|(u, t)| Change::PutUser(UserDef {
            name: u.into(),
            password_hash: String::new(),
            hashing_algorithm: String::new(),
            tags: vec![format!("t{t}")],
            limits: Default::default(),
        })),
        name.clone()
            .prop_map(|u| Change::DeleteUser { name: u.into() }),
        (vhost.clone(), name.clone()).prop_map(|(v, u)| Change::SetPermissions(PermissionDef {
            vhost: v.into(),
            user: u.into(),
            configure: ".*".into(),
            write: "^w".into(),
            read: "".into(),
        })),
        (vhost.clone(), name.clone()).prop_map(|(v, u)| Change::ClearPermissions {
            vhost: v.into(),
            user: u.into()
        }),
        (vhost.clone(), name.clone(), 0i64..3).prop_map(|(v, n, prio)| Change::SetPolicy(
            PolicyDef {
                vhost: v.into(),
                name: n.into(),
                pattern: "^q".into(),
                apply_to: "queues".into(),
                definition: serde_json::json!({"max-length": 10}),
                priority: prio,
                operator: false,
            }
        )),
        (vhost.clone(), name.clone()).prop_map(|(v, n)| Change::ClearPolicy {
            vhost: v.into(),
            name: n.into(),
            operator: false,
        }),
        (vhost.clone(), 1u64..50).prop_map(|(v, max)| Change::SetParameter(ParameterDef {
            vhost: v.into(),
            component: "vhost-limits".into(),
            name: "limits".into(),
            value: serde_json::json!({"max-queues": max}),
        })),
        // Topology is refused, identically everywhere.
        (vhost, name).prop_map(|(v, n)| Change::DeleteQueue {
            vhost: v.into(),
            name: n.into()
        }),
    ]
}

fn command(c: &Change) -> String {
    serde_json::to_string(&Command {
        node: "n@test".into(),
        change: c.clone(),
    })
    .unwrap()
}

fn node() -> DefinitionsMachine {
    DefinitionsMachine::new(Broker::without_definitions(&BrokerSetup::default()))
}

/// What the running broker holds that definitions decide: users with their
/// tags, vhosts, and each vhost's policies and queue limit.
fn live(m: &DefinitionsMachine) -> Vec<String> {
    let b = m.broker();
    let mut out: Vec<String> = b
        .auth
        .users()
        .iter()
        .map(|u| format!("user {} {:?}", u.name, u.tags))
        .collect();
    for v in b.vhosts() {
        out.push(format!("vhost {} max-queues {:?}", v.name, v.max_queues()));
    }
    let rt = b.runtime.read();
    out.extend(rt.policies.keys().map(|k| format!("policy {k:?}")));
    out.extend(rt.parameters.keys().map(|k| format!("parameter {k:?}")));
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn two_nodes_agree_and_a_snapshot_replays_to_the_same_state(
        log in prop::collection::vec(change(), 0..40),
        cut in 0usize..40,
    ) {
        let (mut a, mut b) = (node(), node());
        for (i, c) in log.iter().enumerate() {
            let ra = a.apply(i as u64 + 1, &command(c));
            let rb = b.apply(i as u64 + 1, &command(c));
            prop_assert_eq!(ra, rb);
        }
        prop_assert_eq!(a.snapshot(), b.snapshot());
        prop_assert_eq!(live(&a), live(&b));

        // A third node: the log up to `cut`, a snapshot of that state
        // installed on a fourth, which applies the rest.
        let cut = cut.min(log.len());
        let mut c = node();
        for (i, ch) in log[..cut].iter().enumerate() {
            c.apply(i as u64 + 1, &command(ch));
        }
        let mut d = node();
        // d had applied something else before (a node that was behind and
        // diverged in what it had applied): the snapshot replaces it.
        for (i, ch) in log.iter().rev().take(3).enumerate() {
            d.apply(i as u64 + 1, &command(ch));
        }
        d.restore(&c.snapshot()).unwrap();
        for (i, ch) in log[cut..].iter().enumerate() {
            d.apply((cut + i) as u64 + 1, &command(ch));
        }
        prop_assert_eq!(d.snapshot(), a.snapshot());
        prop_assert_eq!(live(&d), live(&a));
    }
}

#[test]
fn a_malformed_command_is_refused_not_applied() {
    let mut a = node();
    let reply = a.apply(1, "{not json");
    assert!(reply.contains("Refused"), "{reply}");
    assert_eq!(a.state().users.len(), 0);
}
