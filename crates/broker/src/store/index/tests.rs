//! The queue index against a model: random appends, acks and delivery
//! marks with syncs in between, then a crash (unsynced buffers lost, a
//! torn partial entry or mark at the end, a flipped byte in a synced
//! entry). Recovery must give back exactly the synced, unacked, persistent
//! entries, minus only the damaged one, in order, with their marks.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;
use crate::store::faults::{inject, Fault, FaultError, FileOp};

static DIRS: AtomicUsize = AtomicUsize::new(0);

fn tmpdir(tag: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("warren-index-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn loc(i: u64) -> Location {
    Location {
        segment: 1_000_000 + (i as u32 % 7),
        offset: i as u32 * 100,
        len: 100,
    }
}

fn open(dir: &Path) -> (QueueIndex, Recovered, Arc<Committer>) {
    let committer = Arc::new(Committer::default());
    let store = Arc::new(MessageStore::open(&dir.join("msgs"), committer.clone()).unwrap());
    let (index, rec) = QueueIndex::open(&dir.join("q"), store, committer.clone()).unwrap();
    (index, rec, committer)
}

fn all_live(index: &mut QueueIndex, rec: &Recovered) -> Vec<IndexEntry> {
    let mut cursor = rec.cursor;
    index.read(&mut cursor, usize::MAX)
}

#[test]
fn one_corrupt_entry_costs_that_entry_only() {
    let dir = tmpdir("flip");
    {
        let (mut index, _, committer) = open(&dir);
        for i in 0..100 {
            index.append(i, loc(i), false).unwrap();
        }
        committer.sync_once().unwrap();
    }
    let idx = dir.join("q").join("0000000000.idx");
    let mut raw = std::fs::read(&idx).unwrap();
    assert_eq!(raw.len(), 100 * ENTRY_SIZE);
    raw[10 * ENTRY_SIZE + 5] ^= 0x40;
    std::fs::write(&idx, &raw).unwrap();
    let (mut index, rec, _) = open(&dir);
    assert_eq!(rec.live, 99, "everything but the damaged entry is kept");
    let seqs: Vec<u64> = all_live(&mut index, &rec).iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (0..100).filter(|&i| i != 10).collect();
    assert_eq!(seqs, want);
    assert_eq!(
        std::fs::metadata(&idx).unwrap().len(),
        100 * ENTRY_SIZE as u64,
        "nothing truncated"
    );
    // New entries go after the kept ones, not over them.
    let d = index.append(100, loc(100), false).unwrap();
    assert_eq!(d.pos.entry, 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_poisoned_index_file_rolls_over_to_a_new_one() {
    let dir = tmpdir("poison");
    {
        let (mut index, _, committer) = open(&dir);
        index.append(0, loc(0), false).unwrap();
        committer.sync_once().unwrap();
        index.append(1, loc(1), false).unwrap();
        inject(Fault {
            op: FileOp::Sync,
            path_contains: format!("{}/q/0000000000.idx", dir.display()),
            skip: 0,
            count: 1,
            error: FaultError::Io,
        });
        assert!(committer.sync_once().is_err());
        let d = index.append(2, loc(2), false).unwrap();
        assert_eq!(d.pos.segment, 1, "a new index file after a failed fsync");
        committer.sync_once().unwrap();
    }
    let (mut index, rec, _) = open(&dir);
    let seqs: Vec<u64> = all_live(&mut index, &rec).iter().map(|e| e.seq).collect();
    // Entry 1's fsync failed (its data did reach the file here).
    assert_eq!(seqs, vec![0, 1, 2]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    Append { transient: bool },
    Ack(prop::sample::Index),
    Deliver(prop::sample::Index),
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Append { transient: false }),
        1 => Just(Op::Append { transient: true }),
        2 => any::<prop::sample::Index>().prop_map(Op::Ack),
        1 => any::<prop::sample::Index>().prop_map(Op::Deliver),
        1 => Just(Op::Sync),
    ]
}

#[derive(Debug, Clone, Default)]
struct ModelEntry {
    transient: bool,
    acked: bool,
    delivered: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn recovery_matches_the_model(
        ops in proptest::collection::vec(op(), 1..300),
        torn_idx in 0usize..ENTRY_SIZE,
        torn_marks in 0usize..MARK_SIZE,
        flip in proptest::option::of((any::<prop::sample::Index>(), 0usize..36, 1u8..=255)),
    ) {
        let dir = tmpdir("model");
        // What is in memory now, and what the last sync made durable.
        let mut model: BTreeMap<u64, ModelEntry> = BTreeMap::new();
        let mut durable: BTreeMap<u64, ModelEntry> = BTreeMap::new();
        let mut refs: BTreeMap<u64, DiskRef> = BTreeMap::new();
        {
            let (mut index, _, committer) = open(&dir);
            let mut seq = 0u64;
            for op in ops {
                match op {
                    Op::Append { transient } => {
                        let d = index.append(seq, loc(seq), transient).unwrap();
                        refs.insert(seq, d);
                        model.insert(seq, ModelEntry { transient, ..Default::default() });
                        seq += 1;
                    }
                    Op::Ack(i) => {
                        let live: Vec<u64> = model.iter().filter(|(_, e)| !e.acked).map(|(s, _)| *s).collect();
                        if !live.is_empty() {
                            let s = live[i.index(live.len())];
                            index.ack(refs[&s]);
                            model.get_mut(&s).unwrap().acked = true;
                        }
                    }
                    Op::Deliver(i) => {
                        let live: Vec<u64> = model.iter().filter(|(_, e)| !e.acked).map(|(s, _)| *s).collect();
                        if !live.is_empty() {
                            let s = live[i.index(live.len())];
                            index.delivered(refs[&s].pos);
                            model.get_mut(&s).unwrap().delivered = true;
                        }
                    }
                    Op::Sync => {
                        committer.sync_once().unwrap();
                        durable = model.clone();
                    }
                }
            }
            // Crash: the index is dropped with its buffers unwritten.
        }
        let qdir = dir.join("q");
        let idx = qdir.join("0000000000.idx");
        let marks = qdir.join("0000000000.acks");
        // A crash mid-write leaves a partial entry and a partial mark.
        for (path, n) in [(&idx, torn_idx), (&marks, torn_marks)] {
            if path.exists() {
                let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                f.write_all(&vec![0xA5u8; n]).unwrap();
            }
        }
        let mut expected = durable.clone();
        if let (Some((i, byte, x)), false) = (flip, durable.is_empty()) {
            let seqs: Vec<u64> = durable.keys().copied().collect();
            let s = seqs[i.index(seqs.len())];
            let at = refs[&s].pos.entry as usize * ENTRY_SIZE + byte;
            let mut raw = std::fs::read(&idx).unwrap();
            raw[at] ^= x;
            std::fs::write(&idx, &raw).unwrap();
            expected.remove(&s);
        }
        let (mut index, rec, _) = open(&dir);
        let got: Vec<(u64, bool, Location)> = all_live(&mut index, &rec)
            .iter()
            .map(|e| (e.seq, e.delivered, e.disk.loc))
            .collect();
        let want: Vec<(u64, bool, Location)> = expected
            .iter()
            .filter(|(_, e)| !e.acked && !e.transient)
            .map(|(s, e)| (*s, e.delivered, loc(*s)))
            .collect();
        prop_assert_eq!(rec.live as usize, want.len());
        prop_assert_eq!(got, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
