//! Topic matching: for any binding keys and routing key, the trie agrees
//! with the reference matcher, and its work stays bounded by
//! 3 x (trie nodes) x (words + 1) whatever the patterns (see routing/topic.rs).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use warren_broker::exchange::{Exchange, ExchangeKind};
use warren_broker::routing::topic::{reference_match, split_words, TopicIndex};
use warren_broker::routing::{Binding, Destination};
use warren_protocol::{FieldTable, ShortStr};

fuzz_target!(|data: &[u8]| {
    // Binding keys and the routing key, separated by 0xff; short words
    // drawn from a tiny alphabet so that matches happen.
    let mut parts: Vec<Vec<u8>> = data
        .split(|b| *b == 0xff)
        .map(|p| {
            p.iter()
                .map(|b| match b % 6 {
                    0 => b'.',
                    1 => b'*',
                    2 => b'#',
                    3 => b'a',
                    4 => b'b',
                    _ => b'c',
                })
                .take(255)
                .collect()
        })
        .collect();
    let Some(key) = parts.pop() else {
        return;
    };
    let dest = Arc::new(Exchange::new(
        "d".into(),
        "/".into(),
        ExchangeKind::Fanout,
        false,
        false,
        false,
        FieldTable::new(),
    ));
    let mut index = TopicIndex::default();
    let mut nodes = 1;
    for p in parts.iter().take(64) {
        nodes += split_words(p).len() + 1;
        index.insert(Binding {
            destination: Destination::Exchange(dest.clone()),
            routing_key: ShortStr::new(bytes::Bytes::copy_from_slice(p)),
            arguments: FieldTable::new(),
        });
    }
    let mut hits = Vec::new();
    let steps = index.matches_counting(&key, &mut hits);
    let words = split_words(&key).len() + 1;
    assert!(steps <= 3 * nodes * words, "{steps} steps for {nodes} nodes, {words} positions");
    // The reference is exponential in `#`s: compare on small cases only.
    if key.len() <= 24 && parts.iter().all(|p| p.len() <= 24) {
        for p in parts.iter().take(64) {
            let matched = hits.iter().any(|b| b.routing_key.as_bytes() == p.as_slice());
            assert_eq!(matched, reference_match(p, &key), "pattern {p:?} key {key:?}");
        }
    }
});
