//! The connection state machine fed arbitrary frame streams after a valid
//! handshake (the in-CI counterpart of the cargo-fuzz targets, which cover
//! the decoders): random method frames of every class and method id with
//! random arguments, content headers and bodies of random sizes on random
//! channels, and raw garbage. Whatever arrives, the broker answers, closes
//! or hangs up within a bounded time, never panics, and a well-behaved
//! connection beside it keeps working.

mod common;

use std::time::Duration;

use common::bystander::Bystander;
use common::raw::*;
use common::{bounded, TestBroker};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

#[derive(Debug, Clone)]
enum Piece {
    /// A method frame: class, method, argument bytes.
    Method(u16, u16, u16, Vec<u8>),
    /// A content header claiming `size` bytes.
    Header(u16, u64),
    Body(u16, Vec<u8>),
    Heartbeat,
    Garbage(Vec<u8>),
}

/// Class and method ids the broker knows, and some it doesn't.
const IDS: &[(u16, u16)] = &[
    (10, 11),
    (10, 31),
    (10, 40),
    (10, 50),
    (10, 51),
    (20, 10),
    (20, 20),
    (20, 21),
    (20, 40),
    (20, 41),
    (40, 10),
    (40, 20),
    (40, 30),
    (40, 40),
    (50, 10),
    (50, 20),
    (50, 30),
    (50, 40),
    (50, 50),
    (60, 10),
    (60, 20),
    (60, 30),
    (60, 40),
    (60, 70),
    (60, 80),
    (60, 90),
    (60, 100),
    (60, 110),
    (60, 120),
    (85, 10),
    (90, 10),
    (90, 20),
    (90, 30),
    (7, 7),
    (60, 999),
];

fn piece() -> impl Strategy<Value = Piece> {
    let channel = prop_oneof![Just(0u16), Just(1u16), Just(2u16), 0u16..5];
    prop_oneof![
        6 => (channel.clone(), 0..IDS.len(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(c, i, a)| Piece::Method(c, IDS[i].0, IDS[i].1, a)),
        // Well-formed arguments more often: a channel.open, a declare, a publish.
        2 => channel.clone().prop_map(|c| Piece::Method(c, 20, 10, shortstr(""))),
        2 => (channel.clone(), "[a-z]{0,8}").prop_map(|(c, q)| Piece::Method(c, 50, 10, queue_declare_args(&q, 0, &table(&[])))),
        2 => (channel.clone(), "[a-z]{0,8}").prop_map(|(c, q)| Piece::Method(c, 60, 40, basic_publish_args("", &q))),
        2 => (channel.clone(), prop_oneof![Just(0u64), Just(1u64), 0u64..200_000, Just(u64::MAX)])
            .prop_map(|(c, s)| Piece::Header(c, s)),
        2 => (channel.clone(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(c, b)| Piece::Body(c, b)),
        1 => Just(Piece::Heartbeat),
        1 => proptest::collection::vec(any::<u8>(), 1..40).prop_map(Piece::Garbage),
    ]
}

fn encode(p: &Piece) -> Vec<u8> {
    match p {
        Piece::Method(c, class, m, args) => method(*c, *class, *m, args),
        Piece::Header(c, size) => frame(2, *c, &content_header(*size)),
        Piece::Body(c, b) => frame(3, *c, b),
        Piece::Heartbeat => frame(8, 0, &[]),
        Piece::Garbage(g) => g.clone(),
    }
}

#[tokio::test]
async fn arbitrary_frame_streams_never_hurt_the_broker() {
    let broker = TestBroker::start();
    let cases: Vec<Vec<Piece>> = {
        // Deterministic: a failure reproduces.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = proptest::collection::vec(piece(), 1..40);
        (0..250)
            .map(|_| strategy.new_tree(&mut runner).expect("value").current())
            .collect()
    };
    bounded(Duration::from_secs(120), "250 streams", async {
        let bystander = Bystander::open(&broker).await;
        for (i, stream) in cases.iter().enumerate() {
            let mut raw = Raw::open(&broker).await;
            let bytes: Vec<u8> = stream.iter().flat_map(encode).collect();
            raw.send(&bytes).await;
            // Whatever it answers (or not: a content header may leave it
            // waiting for the body), the connection stays bounded in time.
            let _ = raw.drain_for(Duration::from_millis(60)).await;
            drop(raw);
            if i % 20 == 0 {
                bystander.assert_works().await;
            }
        }
    })
    .await;
    let log = broker.log();
    assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
}
