//! Topology changes racing each other end up journaled in the order they
//! took effect: after any interleaving, what a restart recovers is what
//! was in memory.

use std::collections::BTreeSet;
use std::sync::Arc;

use warren_protocol::{FieldTable, ShortStr};

use crate::broker::{Broker, BrokerSetup};
use crate::definitions;
use crate::vhost::{QueueSpec, VirtualHost};

fn durable(name: &str) -> QueueSpec {
    QueueSpec {
        name: ShortStr::from(name),
        server_named: false,
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        arguments: FieldTable::new(),
    }
}

fn in_memory(v: &VirtualHost) -> BTreeSet<String> {
    v.queues().iter().map(|q| q.name.to_string()).collect()
}

#[test]
fn concurrent_declares_and_deletes_journal_in_effect_order() {
    let dir = std::env::temp_dir().join(format!("warren-vhost-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A slow journal widens the window between deciding and journaling.
    crate::store::faults::inject(crate::store::faults::Fault {
        op: crate::store::faults::FileOp::Sync,
        path_contains: format!("{}/definitions.log", dir.display()),
        skip: 0,
        count: u32::MAX,
        error: crate::store::faults::FaultError::Stall,
    });
    let expected = {
        let broker = Broker::open(&BrokerSetup::default(), &dir).expect("open");
        let v = broker.vhost("/").expect("default vhost");
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let v: Arc<VirtualHost> = v.clone();
                std::thread::spawn(move || {
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..250 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let name = format!("race-{}", (x >> 8) % 2);
                        if x % 2 == 0 {
                            v.declare_queue(&durable(&name), 1).expect("declare");
                        } else {
                            v.delete_queue(&ShortStr::from(name.as_str()), false, false, 1)
                                .expect("delete");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        in_memory(&v)
    };
    // Each name's entries alternate declare, delete, declare…: an entry
    // is journaled only for a change that took effect, in that order.
    let log = std::fs::read_to_string(dir.join("definitions.log")).expect("log");
    let mut exists = std::collections::BTreeMap::new();
    let mut entries = 0;
    for line in log.lines().skip(1) {
        let (_, json) = line.split_once(' ').expect("crc and json");
        let (name, declare) = match serde_json::from_str(json).expect("a change") {
            definitions::Change::DeclareQueue(q) => (q.name, true),
            definitions::Change::DeleteQueue { name, .. } => (name, false),
            _ => continue,
        };
        entries += 1;
        let was = exists.insert(name.clone(), declare).unwrap_or(false);
        assert_ne!(
            was, declare,
            "entry {entries}: {name} journaled out of order"
        );
    }
    assert!(entries > 50, "only {entries} changes took effect");
    let recovered: BTreeSet<String> = definitions::load(&dir)
        .expect("load")
        .expect("definitions exist")
        .queues
        .keys()
        .map(|k| k.1.clone())
        .collect();
    assert_eq!(recovered, expected);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Routing lists each queue once, whether few queues are routed (a scan)
/// or many (a set): a fanout to 40 queues, each bound twice, and an
/// exchange-to-exchange binding leading back to some of them.
#[test]
fn routing_lists_each_queue_once() {
    use crate::message::Message;
    use crate::vhost::ExchangeSpec;
    let v = VirtualHost::new("/");
    let spec = |name: &str| ExchangeSpec {
        name: ShortStr::from(name),
        kind: ShortStr::from("fanout"),
        passive: false,
        durable: false,
        auto_delete: false,
        internal: false,
        arguments: FieldTable::new(),
    };
    let fan = v.declare_exchange(&spec("fan")).unwrap();
    v.declare_exchange(&spec("inner")).unwrap();
    for n in [3usize, 40] {
        for i in 0..n {
            let q = ShortStr::from(format!("q{n}-{i}").as_str());
            let mut d = durable(&q.to_string());
            d.durable = false;
            v.declare_queue(&d, 1).unwrap();
            for key in ["a", "b"] {
                v.bind(
                    &ShortStr::from("fan"),
                    &q,
                    true,
                    key.into(),
                    FieldTable::new(),
                    1,
                )
                .unwrap();
            }
            if i % 2 == 0 {
                v.bind(
                    &ShortStr::from("inner"),
                    &q,
                    true,
                    "".into(),
                    FieldTable::new(),
                    1,
                )
                .unwrap();
            }
        }
        v.bind(
            &ShortStr::from("fan"),
            &ShortStr::from("inner"),
            false,
            "".into(),
            FieldTable::new(),
            1,
        )
        .unwrap();
        let m = Message::new(
            "fan".into(),
            "k".into(),
            Default::default(),
            bytes::Bytes::new(),
            bytes::Bytes::from_static(b"x"),
        );
        let mut out = Vec::new();
        v.route(&fan, &m, &mut out);
        let names: BTreeSet<String> = out.iter().map(|q| q.name.to_string()).collect();
        assert_eq!(names.len(), out.len(), "a queue listed twice");
        let expected = if n == 3 { 3 } else { 43 };
        assert_eq!(out.len(), expected);
        assert!(Arc::strong_count(&fan) >= 1);
    }
}
