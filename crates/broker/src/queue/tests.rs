//! Queue behaviour: dispatch, requeue order, limits, exclusivity.

use super::*;
use crate::session::{ChannelFlow, ConnectionEvent, ConsumerFlow, Delivery, EventReceiver};
use bytes::Bytes;
use warren_protocol::BasicProperties;

fn queue(limits: QueueLimits) -> Arc<Queue> {
    Arc::new(Queue::new(QueueSetup::in_memory("q", limits)))
}

fn msg(body: &'static str) -> Arc<Message> {
    Arc::new(Message::new(
        "".into(),
        "q".into(),
        BasicProperties::default(),
        Bytes::from_static(&[0, 0]),
        Bytes::from_static(body.as_bytes()),
    ))
}

fn consumer(tag: &str, prefetch: u32) -> (Consumer, EventReceiver) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let c = Consumer {
        tag: tag.into(),
        session: 1,
        key: 1,
        connection_id: 1,
        no_ack: false,
        exclusive: false,
        priority: 0,
        flow: Arc::new(ConsumerFlow::new(
            prefetch,
            Arc::new(ChannelFlow::default()),
        )),
        sink: tx,
    };
    (c, rx)
}

fn drain(rx: &mut EventReceiver) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Ok(ConnectionEvent::Deliver(d)) = rx.try_recv() {
        out.push(d);
    }
    out
}

#[test]
fn round_robin_and_prefetch() {
    let q = queue(QueueLimits::default());
    let (a, mut ra) = consumer("a", 1);
    let (b, mut rb) = consumer("b", 0);
    let _ = q.add_consumer(a).unwrap();
    let _ = q.add_consumer(b).unwrap();
    for _ in 0..5 {
        let _ = q.publish(msg("m"), Durability::BestEffort);
    }
    // a has prefetch 1: one message, b takes the rest.
    assert_eq!(drain(&mut ra).len(), 1);
    assert_eq!(drain(&mut rb).len(), 4);
    assert_eq!(q.stats().unacked, 5);
}

#[test]
fn requeued_messages_keep_their_place() {
    let q = queue(QueueLimits::default());
    for b in ["1", "2", "3", "4"] {
        let _ = q.publish(msg(b), Durability::BestEffort);
    }
    let (m1, _) = q.get(false).0.unwrap();
    let (m2, _) = q.get(false).0.unwrap();
    let _ = q.requeue(vec![(m2.seq, m2.message, None), (m1.seq, m1.message, None)]);
    let order: Vec<_> = std::iter::from_fn(|| q.get(true).0)
        .map(|(m, _)| (m.message.body.clone(), m.redelivered))
        .collect();
    assert_eq!(
        order,
        vec![
            (Bytes::from_static(b"1"), true),
            (Bytes::from_static(b"2"), true),
            (Bytes::from_static(b"3"), false),
            (Bytes::from_static(b"4"), false)
        ]
    );
}

#[test]
fn max_length_drop_head_and_reject_publish() {
    let q = queue(QueueLimits {
        max_length: Some(2),
        ..Default::default()
    });
    for b in ["1", "2", "3"] {
        let _ = q.publish(msg(b), Durability::BestEffort);
    }
    assert_eq!(
        q.get(true).0.unwrap().0.message.body,
        Bytes::from_static(b"2")
    );
    let q = queue(QueueLimits {
        max_length: Some(1),
        overflow: Overflow::RejectPublish,
        ..Default::default()
    });
    assert_eq!(
        q.publish(msg("1"), Durability::BestEffort).0,
        PublishOutcome::Enqueued {
            needs_sync: false,
            congested: false,
        }
    );
    assert_eq!(
        q.publish(msg("2"), Durability::BestEffort).0,
        PublishOutcome::Rejected
    );
}

#[test]
fn exclusive_consumer_locks_out_others() {
    let q = queue(QueueLimits::default());
    let (mut a, _ra) = consumer("a", 0);
    a.exclusive = true;
    let _ = q.add_consumer(a).unwrap();
    let (b, _rb) = consumer("b", 0);
    assert_eq!(q.add_consumer(b).unwrap_err().code, 403);
}

mod model {
    //! Dispatch and credit against a reference queue: random publishes,
    //! consumers (prefetch, no-ack), socket writes, acks, nacks with and
    //! without requeue, basic.get and cancels. Nothing is lost or
    //! duplicated, every dispatch takes the oldest ready messages (requeued
    //! ones back in their place), prefetch is never exceeded, every body is
    //! the one published.

    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn body_of(seq: u64) -> Bytes {
        Bytes::from(format!("message-{seq:06}").repeat(3))
    }

    struct Client {
        consumer: Consumer,
        rx: EventReceiver,
        /// Dispatched, not yet "written" by the connection.
        in_transit: Vec<Delivery>,
        /// Seen by the client, not yet settled (ack mode only).
        unacked: Vec<(u64, Arc<Message>)>,
        cancelled: bool,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Publish(u8),
        Consume {
            prefetch: u32,
            no_ack: bool,
        },
        /// The connection writes out what was dispatched to a consumer.
        Write(prop::sample::Index),
        Ack(prop::sample::Index, prop::sample::Index, bool),
        Nack(prop::sample::Index, prop::sample::Index, bool),
        Get(bool),
        Cancel(prop::sample::Index),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..20).prop_map(Op::Publish),
            1 => (prop::sample::select(vec![0u32, 1, 3, 10]), any::<bool>())
                .prop_map(|(prefetch, no_ack)| Op::Consume { prefetch, no_ack }),
            4 => any::<prop::sample::Index>().prop_map(Op::Write),
            3 => (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>())
                .prop_map(|(c, m, multiple)| Op::Ack(c, m, multiple)),
            2 => (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>())
                .prop_map(|(c, m, requeue)| Op::Nack(c, m, requeue)),
            1 => any::<bool>().prop_map(Op::Get),
            1 => any::<prop::sample::Index>().prop_map(Op::Cancel),
        ]
    }

    struct World {
        q: Arc<Queue>,
        clients: Vec<Client>,
        /// Messages from basic.get in ack mode.
        got: Vec<(u64, Arc<Message>)>,
        ready: BTreeSet<u64>,
        /// Dispatched or got at least once (their next delivery is redelivered).
        seen: BTreeSet<u64>,
        settled: BTreeSet<u64>,
        published: u64,
    }

    impl World {
        /// Collects what the last operation dispatched and checks it took
        /// the oldest ready messages.
        fn collect(&mut self) -> Result<(), TestCaseError> {
            let mut fresh = Vec::new();
            for c in &mut self.clients {
                while let Ok(ev) = c.rx.try_recv() {
                    if let ConnectionEvent::Deliver(d) = ev {
                        fresh.push(d.seq);
                        prop_assert!(!c.cancelled, "delivery to a cancelled consumer");
                        prop_assert_eq!(&d.message.body, &body_of(d.seq));
                        prop_assert_eq!(d.redelivered, self.seen.contains(&d.seq));
                        c.in_transit.push(d);
                    }
                }
            }
            fresh.sort_unstable();
            let oldest: Vec<u64> = self.ready.iter().take(fresh.len()).copied().collect();
            prop_assert_eq!(&fresh, &oldest, "dispatch skipped older ready messages");
            for s in fresh {
                self.ready.remove(&s);
                self.seen.insert(s);
            }
            Ok(())
        }

        fn check(&self) -> Result<(), TestCaseError> {
            let stats = self.q.stats();
            prop_assert_eq!(stats.ready, self.ready.len() as u64);
            let mut unacked = self.got.len() as u64;
            let mut holding = self.got.len() as u64;
            for c in &self.clients {
                holding += (c.in_transit.len() + c.unacked.len()) as u64;
                if !c.consumer.no_ack {
                    unacked += (c.in_transit.len() + c.unacked.len()) as u64;
                    let p = c.consumer.flow.prefetch;
                    let n = c.consumer.flow.unacked.load(Ordering::Relaxed);
                    prop_assert!(p == 0 || n <= p, "prefetch {} exceeded: {}", p, n);
                }
            }
            prop_assert_eq!(stats.unacked, unacked);
            let size = |m: &Arc<Message>| m.size() as u64;
            let mut unacked_bytes: u64 = self.got.iter().map(|(_, m)| size(m)).sum();
            for c in self.clients.iter().filter(|c| !c.consumer.no_ack) {
                unacked_bytes += c.in_transit.iter().map(|d| size(&d.message)).sum::<u64>();
                unacked_bytes += c.unacked.iter().map(|(_, m)| size(m)).sum::<u64>();
            }
            prop_assert_eq!(stats.unacked_bytes, unacked_bytes);
            prop_assert_eq!(
                self.ready.len() as u64 + holding + self.settled.len() as u64,
                self.published,
                "a message was lost or duplicated"
            );
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn dispatch_and_settlement_match_the_model(ops in proptest::collection::vec(op(), 1..120)) {
            let mut w = World {
                q: queue(QueueLimits::default()),
                clients: Vec::new(),
                got: Vec::new(),
                ready: BTreeSet::new(),
                seen: BTreeSet::new(),
                settled: BTreeSet::new(),
                published: 0,
            };
            for op in ops {
                match op {
                    Op::Publish(n) => {
                        for _ in 0..n {
                            let seq = w.published;
                            let m = Arc::new(Message::new(
                                "".into(),
                                "q".into(),
                                BasicProperties::default(),
                                Bytes::from_static(&[0, 0]),
                                body_of(seq),
                            ));
                            let _ = w.q.publish(m, Durability::BestEffort);
                            w.ready.insert(seq);
                            w.published += 1;
                            w.collect()?;
                        }
                    }
                    Op::Consume { prefetch, no_ack } => {
                        let (mut consumer, rx) = consumer(&format!("c{}", w.clients.len()), prefetch);
                        consumer.no_ack = no_ack;
                        consumer.key = w.clients.len() as u64;
                        let _ = w.q.add_consumer(consumer.clone()).unwrap();
                        w.clients.push(Client { consumer, rx, in_transit: Vec::new(), unacked: Vec::new(), cancelled: false });
                        w.collect()?;
                    }
                    Op::Write(i) => {
                        if w.clients.is_empty() { continue; }
                        let k = i.index(w.clients.len());
                        let c = &mut w.clients[k];
                        let n = c.in_transit.len() as u32;
                        for d in c.in_transit.drain(..) {
                            if c.consumer.no_ack {
                                w.settled.insert(d.seq);
                            } else {
                                c.unacked.push((d.seq, d.message));
                            }
                        }
                        if n > 0 && c.consumer.flow.written(n) {
                            let _ = w.q.dispatch();
                        }
                        w.collect()?;
                    }
                    Op::Ack(ci, mi, multiple) | Op::Nack(ci, mi, multiple) if w.clients.is_empty() && w.got.is_empty() => {
                        let _ = (ci, mi, multiple);
                    }
                    Op::Ack(ci, mi, multiple) => {
                        // A consumer's deliveries, or (past the end) the gets.
                        let k = ci.index(w.clients.len() + 1);
                        let (list, flow) = match w.clients.get_mut(k) {
                            Some(c) => (&mut c.unacked, Some(c.consumer.flow.clone())),
                            None => (&mut w.got, None),
                        };
                        if list.is_empty() { continue; }
                        let at = mi.index(list.len());
                        let taken: Vec<_> = if multiple { list.drain(..=at).collect() } else { vec![list.remove(at)] };
                        if let Some(f) = flow { f.on_settled(taken.len() as u32); }
                        for (s, _) in &taken { w.settled.insert(*s); }
                        let _ = w.q.settle(&vec![None; taken.len()], taken.iter().map(|(_, m)| m.size() as u64).sum());
                        w.collect()?;
                    }
                    Op::Nack(ci, mi, requeue) => {
                        let k = ci.index(w.clients.len() + 1);
                        let (list, flow) = match w.clients.get_mut(k) {
                            Some(c) => (&mut c.unacked, Some(c.consumer.flow.clone())),
                            None => (&mut w.got, None),
                        };
                        if list.is_empty() { continue; }
                        let (s, m) = list.remove(mi.index(list.len()));
                        if let Some(f) = flow { f.on_settled(1); }
                        if requeue {
                            w.ready.insert(s);
                            let _ = w.q.requeue(vec![(s, m, None)]);
                        } else {
                            w.settled.insert(s);
                            let _ = w.q.discard(vec![(m, None)]);
                        }
                        w.collect()?;
                    }
                    Op::Get(no_ack) => {
                        let expect = w.ready.iter().next().copied();
                        let got = w.q.get(no_ack).0;
                        prop_assert_eq!(got.as_ref().map(|(m, _)| m.seq), expect);
                        if let Some((m, remaining)) = got {
                            prop_assert_eq!(&m.message.body, &body_of(m.seq));
                            prop_assert_eq!(m.redelivered, w.seen.contains(&m.seq));
                            w.ready.remove(&m.seq);
                            w.seen.insert(m.seq);
                            prop_assert_eq!(u64::from(remaining), w.ready.len() as u64);
                            if no_ack { w.settled.insert(m.seq); } else { w.got.push((m.seq, m.message)); }
                        }
                        w.collect()?;
                    }
                    Op::Cancel(i) => {
                        if w.clients.is_empty() { continue; }
                        let k = i.index(w.clients.len());
                        let c = &mut w.clients[k];
                        if c.cancelled { continue; }
                        let _ = w.q.remove_consumer(c.consumer.connection_id, c.consumer.key);
                        c.cancelled = true;
                        // What was dispatched but not written goes back, in
                        // place (the connection's consumer registry does it).
                        let back: Vec<Returned> = c.in_transit.drain(..).map(|d| (d.seq, d.message, d.disk)).collect();
                        let counted = !c.consumer.no_ack;
                        if counted { c.consumer.flow.on_settled(back.len() as u32); }
                        for (s, _, _) in &back { w.ready.insert(*s); }
                        if !back.is_empty() { let _ = w.q.put_back(back, counted); }
                        w.collect()?;
                    }
                }
                w.check()?;
            }
        }
    }
}

/// What a queue handed back: (x-death reason header, body) per message,
/// and the exchange they are for.
fn dead(d: DeadLetters) -> (String, Vec<(String, String)>) {
    let Some(batch) = d.into_batch() else {
        return (String::new(), Vec::new());
    };
    let items = batch
        .items
        .iter()
        .map(|(m, reason)| {
            let first = m
                .headers
                .as_deref()
                .and_then(|h| h.get("x-first-death-reason"))
                .and_then(|v| v.as_bytes())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            assert_eq!(first, reason.as_str(), "x-death written for this death");
            assert_eq!(m.exchange.as_str(), batch.exchange.as_str());
            (first, String::from_utf8_lossy(&m.body).into_owned())
        })
        .collect();
    (batch.exchange.to_string(), items)
}

fn with_dlx(limits: QueueLimits) -> QueueLimits {
    QueueLimits {
        dead_letter_exchange: Some("dlx".into()),
        ..limits
    }
}

#[test]
fn queues_hand_back_their_dead_letters() {
    let pair = |r: &str, b: &str| (r.to_string(), b.to_string());
    // Rejected without requeue.
    let q = queue(with_dlx(QueueLimits::default()));
    let _ = q.publish(msg("a"), Durability::BestEffort);
    let (m, _) = q.get(false).0.unwrap();
    assert_eq!(
        dead(q.discard(vec![(m.message, None)])),
        ("dlx".into(), vec![pair("rejected", "a")])
    );
    // Over the length limit with drop-head: the oldest goes.
    let q = queue(with_dlx(QueueLimits {
        max_length: Some(1),
        ..Default::default()
    }));
    assert!(q.publish(msg("1"), Durability::BestEffort).1.is_empty());
    let (_, d) = q.publish(msg("2"), Durability::BestEffort);
    assert_eq!(dead(d).1, vec![pair("maxlen", "1")]);
    // x-max-length 0 keeps nothing: the new message dies at once.
    let q = queue(with_dlx(QueueLimits {
        max_length: Some(0),
        ..Default::default()
    }));
    let (outcome, d) = q.publish(msg("z"), Durability::BestEffort);
    assert!(matches!(outcome, PublishOutcome::Enqueued { .. }));
    assert_eq!(dead(d).1, vec![pair("maxlen", "z")]);
    // Expired at the head.
    let q = queue(with_dlx(QueueLimits {
        message_ttl: Some(1),
        ..Default::default()
    }));
    let _ = q.publish(msg("e1"), Durability::BestEffort);
    let _ = q.publish(msg("e2"), Durability::BestEffort);
    let later = Instant::now() + std::time::Duration::from_millis(50);
    assert_eq!(
        dead(q.expire(later)).1,
        vec![pair("expired", "e1"), pair("expired", "e2")]
    );
    assert_eq!(q.stats().ready, 0);
    // A lowered limit (a policy) drops the excess at once.
    let q = queue(with_dlx(QueueLimits::default()));
    for b in ["p1", "p2", "p3"] {
        let _ = q.publish(msg(b), Durability::BestEffort);
    }
    let d = q.set_limits(with_dlx(QueueLimits {
        max_length: Some(1),
        ..Default::default()
    }));
    assert_eq!(dead(d).1, vec![pair("maxlen", "p1"), pair("maxlen", "p2")]);
}

#[test]
fn without_a_dead_letter_exchange_nothing_is_handed_back() {
    let q = queue(QueueLimits {
        max_length: Some(1),
        ..Default::default()
    });
    let _ = q.publish(msg("1"), Durability::BestEffort);
    let (_, d) = q.publish(msg("2"), Durability::BestEffort);
    assert!(d.is_empty());
    let (m, _) = q.get(false).0.unwrap();
    assert!(q.discard(vec![(m.message, None)]).is_empty());
}
