//! The journal against a model: whatever mix of changes, failed writes and
//! failed fsyncs, a crash (a torn tail, trailing garbage) or a flipped
//! byte, recovery yields exactly the acknowledged changes (minus a
//! corrupted one), and nothing that was refused.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;
use crate::definitions::{encode_table, BindingDef, ExchangeDef, QueueDef};
use crate::store::faults::{inject, Fault, FaultError};
use warren_protocol::FieldTable;

static DIRS: AtomicUsize = AtomicUsize::new(0);

fn tmpdir(tag: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("warren-journal-{tag}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn queue(name: &str, id: u64) -> Change {
    Change::DeclareQueue(QueueDef {
        vhost: "/".into(),
        name: name.into(),
        id,
        auto_delete: false,
        arguments: encode_table(&FieldTable::new()),
    })
}

fn fault(dir: &Path, op: FileOp) {
    inject(Fault {
        op,
        path_contains: format!("{}/definitions.log", dir.display()),
        skip: 0,
        count: 1,
        error: FaultError::Io,
    });
}

#[test]
fn torn_tail_is_ignored_and_a_corrupt_middle_line_only_skips_itself() {
    let dir = tmpdir("replay");
    let log = DefinitionsLog::open(&dir, DefinitionsState::default()).unwrap();
    log.record(&Change::AddVhost { name: "/".into() }).unwrap();
    log.record(&queue("a", 1)).unwrap();
    log.record(&queue("b", 2)).unwrap();
    log.record(&queue("c", 3)).unwrap();
    drop(log);
    // Flip one byte inside the second line ("a"), then tear a fifth.
    let path = log_path(&dir);
    let mut raw = fs::read(&path).unwrap();
    // Line 0 is the header, line 1 the vhost, line 2 queue "a".
    let newlines: Vec<usize> = raw
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let second = newlines[1] + 20;
    raw[second] ^= 0x20;
    raw.extend_from_slice(b"deadbeef {\"op\":\"add_vh");
    fs::write(&path, &raw).unwrap();
    let st = load(&dir).unwrap().unwrap();
    assert!(st.vhosts.contains_key("/"));
    let st_names = st.queues.len();
    assert_eq!(st_names, 2);
    let names: Vec<&str> = st.queues.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(names, vec!["b", "c"], "only the damaged line is lost");
    assert_eq!(st.next_queue_id, 4);
    // Reopening compacts: the snapshot holds everything, the log is empty
    // (but for its header).
    let (_log, _, first) = DefinitionsLog::load_and_open(&dir, DefinitionsState::default).unwrap();
    assert!(!first);
    let header = fs::read_to_string(&path).unwrap();
    assert!(
        header.starts_with(HEADER) && header.lines().count() == 1,
        "{header:?}"
    );
    assert_eq!(load(&dir).unwrap().unwrap().queues.len(), 2);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_append_leaves_no_trace_and_later_entries_survive() {
    let dir = tmpdir("failed-append");
    let log = DefinitionsLog::open(&dir, DefinitionsState::default()).unwrap();
    log.record(&queue("a", 1)).unwrap();
    fault(&dir, FileOp::Write);
    assert!(log.record(&queue("lost", 2)).is_err());
    fault(&dir, FileOp::Sync);
    assert!(log.record(&queue("lost-too", 3)).is_err());
    assert!(!log
        .state()
        .queues
        .contains_key(&("/".into(), "lost".into())));
    log.record(&queue("b", 4)).unwrap();
    let st = load(&dir).unwrap().unwrap();
    let names: Vec<&str> = st.queues.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(st, log.state());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_log_is_compacted_once_it_outgrows_the_snapshot() {
    let dir = tmpdir("compact");
    let log = DefinitionsLog::open(&dir, DefinitionsState::default()).unwrap();
    let mut declared = 0u64;
    // Each declare + delete adds ~250 bytes and leaves nothing behind.
    while declared < 10_000 {
        log.record(&queue("churn", declared)).unwrap();
        log.record(&Change::DeleteQueue {
            vhost: "/".into(),
            name: "churn".into(),
        })
        .unwrap();
        declared += 1;
        assert!(log.log_len() < COMPACT_MIN + 1024);
    }
    log.record(&queue("kept", 99_999)).unwrap();
    let st = load(&dir).unwrap().unwrap();
    assert_eq!(st.queues.len(), 1);
    assert_eq!(st, log.state());
    fs::remove_dir_all(&dir).unwrap();
}

#[derive(Debug, Clone)]
enum Fail {
    None,
    Write,
    Sync,
}

fn change() -> impl Strategy<Value = Change> {
    let name = || prop::sample::select(vec!["q0", "q1", "q2"]);
    let ex = || prop::sample::select(vec!["x0", "x1"]);
    prop_oneof![
        (name(), 0u64..50).prop_map(|(n, id)| queue(n, id)),
        name().prop_map(|n| Change::DeleteQueue {
            vhost: "/".into(),
            name: n.into()
        }),
        ex().prop_map(|n| Change::DeclareExchange(ExchangeDef {
            vhost: "/".into(),
            name: n.into(),
            kind: "direct".into(),
            auto_delete: false,
            internal: false,
            arguments: String::new(),
        })),
        ex().prop_map(|n| Change::DeleteExchange {
            vhost: "/".into(),
            name: n.into()
        }),
        (ex(), name(), any::<bool>()).prop_map(|(x, q, bind)| {
            let b = BindingDef {
                vhost: "/".into(),
                source: x.into(),
                destination: q.into(),
                destination_kind: "queue".into(),
                routing_key: "k".into(),
                arguments: String::new(),
            };
            if bind {
                Change::Bind(b)
            } else {
                Change::Unbind(b)
            }
        }),
    ]
}

fn fail() -> impl Strategy<Value = Fail> {
    prop_oneof![8 => Just(Fail::None), 1 => Just(Fail::Write), 1 => Just(Fail::Sync)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn recovery_yields_exactly_what_was_acknowledged(
        ops in proptest::collection::vec((change(), fail()), 1..40),
        garbage in proptest::collection::vec(any::<u8>(), 0..80),
        flip in proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
    ) {
        let dir = tmpdir("model");
        let log = DefinitionsLog::open(&dir, DefinitionsState::default()).unwrap();
        // The state of the current base (snapshot) and the acknowledged
        // changes journaled after it, with their offsets in the log.
        let mut base = DefinitionsState::default();
        let mut since: Vec<(u64, u64, Change)> = Vec::new();
        let mut model = DefinitionsState::default();
        for (c, f) in ops {
            match f {
                Fail::None => {}
                Fail::Write => fault(&dir, FileOp::Write),
                Fail::Sync => fault(&dir, FileOp::Sync),
            }
            let (before, generation) = (log.log_len(), log.generation());
            let r = log.record(&c);
            prop_assert_eq!(r.is_ok(), matches!(f, Fail::None));
            if log.generation() != generation {
                // A fresh base was written first (after a failed fsync),
                // whether or not this change then made it.
                base = model.clone();
                since.clear();
            }
            if r.is_ok() {
                model.apply(c.clone());
                let end = log.log_len();
                let line = checksum_line(&serde_json::to_string(&c).unwrap()).len() as u64;
                prop_assert!(end >= before + line || since.is_empty());
                since.push((end - line, end, c));
            }
            prop_assert_eq!(&log.state(), &model);
        }
        drop(log);
        // A crash mid-append leaves garbage after the last good line.
        let path = log_path(&dir);
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&garbage).unwrap();
        drop(f);
        let mut expected = model.clone();
        if let (Some((at, x)), false) = (flip, since.is_empty()) {
            // Damage one journaled line: exactly that change is lost.
            let k = at.index(since.len());
            let (start, end, _) = since[k].clone();
            let mut raw = fs::read(&path).unwrap();
            // Inside the JSON, never the newline (that would merge lines).
            let pos = start as usize + 9 + (end - start - 10) as usize / 2;
            raw[pos] ^= x;
            if raw[pos] == b'\n' {
                raw[pos] = b'#';
            }
            fs::write(&path, &raw).unwrap();
            expected = base.clone();
            for (i, (_, _, c)) in since.iter().enumerate() {
                if i != k {
                    expected.apply(c.clone());
                }
            }
        }
        let got = load(&dir).unwrap().unwrap_or_default();
        prop_assert_eq!(got, expected);
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// A base write that fails part-way (the snapshot replaced, the new log
/// not yet in place) refuses changes until one succeeds; a crash in that
/// state recovers exactly what was acknowledged.
#[test]
fn a_base_write_failing_part_way_refuses_changes_and_recovers_cleanly() {
    for crash_before_retry in [false, true] {
        let dir = tmpdir("partial-base");
        let log = DefinitionsLog::open(&dir, DefinitionsState::default()).unwrap();
        log.record(&queue("a", 1)).unwrap();
        // A failed fsync: the log is not trusted, the next change first
        // writes a new base.
        fault(&dir, FileOp::Sync);
        assert!(log.record(&queue("refused", 2)).is_err());
        // That base write's fsyncs: the new log's, the snapshot's, the
        // directory after the snapshot's rename (fails here), then the
        // directory after the log's rename.
        inject(Fault {
            op: FileOp::Sync,
            path_contains: dir.display().to_string(),
            skip: 2,
            count: 1,
            error: FaultError::Io,
        });
        assert!(log.record(&queue("refused-too", 3)).is_err());
        if crash_before_retry {
            drop(log);
        } else {
            log.record(&queue("b", 4)).unwrap();
            drop(log);
        }
        let st = load(&dir).unwrap().unwrap();
        let names: Vec<&str> = st.queues.keys().map(|k| k.1.as_str()).collect();
        if crash_before_retry {
            assert_eq!(names, vec!["a"]);
        } else {
            assert_eq!(names, vec!["a", "b"]);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
