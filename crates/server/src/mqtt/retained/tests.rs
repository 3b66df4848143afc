//! The retained store against its files: reopen, damage, expiry, the
//! bounds, compaction.

use std::io::Write;

use bytes::Bytes;
use warren_protocol::mqtt::Properties;

use super::*;

fn publish(topic: &str, payload: &[u8]) -> Publish {
    Publish {
        dup: false,
        qos: 1,
        retain: true,
        topic: topic.into(),
        packet_id: Some(7),
        properties: Properties::default(),
        payload: Bytes::copy_from_slice(payload),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-retained-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A store with its own thread and bound.
fn open(dir: &Path, max: u64) -> Arc<RetainedStore> {
    RetainedStore::open(dir, "/", &Writer::start(max))
}

async fn all(s: &Arc<RetainedStore>, filter: &str) -> Vec<(String, Bytes)> {
    let entries = s.matching(filter).await;
    let mut out = Vec::new();
    for b in batches(&entries) {
        for p in s.read(b).await {
            out.push((p.topic, p.payload));
        }
    }
    out
}

#[tokio::test]
async fn retained_messages_survive_reopen_and_damage() {
    let dir = scratch("reopen");
    {
        let s = open(&dir, 1 << 20);
        s.stored(publish("a/b", b"one")).await.unwrap();
        s.stored(publish("a/c", b"two")).await.unwrap();
        s.stored(publish("a/b", b"three")).await.unwrap();
        s.stored(publish("a/c", b"")).await.unwrap();
        s.stored(publish("x", b"four")).await.unwrap();
    }
    let s = open(&dir, 1 << 20);
    assert_eq!(
        all(&s, "#").await,
        vec![
            ("a/b".into(), Bytes::from_static(b"three")),
            ("x".into(), Bytes::from_static(b"four"))
        ]
    );
    assert_eq!(s.matching("a/+").await.len(), 1);
    drop(s);
    // A torn tail is cut off; the records before it stay.
    let path = dir.join("retained-2f.log");
    let before = std::fs::metadata(&path).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0, 0, 1, 0, 1, 2]).unwrap();
    drop(f);
    let s = open(&dir, 1 << 20);
    assert_eq!(all(&s, "#").await.len(), 2);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    // New records go after the cut.
    s.stored(publish("y", b"five")).await.unwrap();
    drop(s);
    let s = open(&dir, 1 << 20);
    assert_eq!(all(&s, "#").await.len(), 3);
    drop(s);
    // A flipped payload byte loses that record only (found when read).
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let s = open(&dir, 1 << 20);
    let got = all(&s, "#").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        s.matching("#").await.len(),
        2,
        "the damaged one is forgotten"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn retained_messages_expire_and_report_the_time_left() {
    let dir = scratch("expiry");
    let expiring = |topic: &str, payload: &[u8], secs: u32| {
        let mut p = publish(topic, payload);
        p.properties.message_expiry_interval = Some(secs);
        p
    };
    let first = |s: Arc<RetainedStore>, f: &'static str| async move {
        let e = s.matching(f).await;
        s.read(&e).await.into_iter().next()
    };
    {
        let s = open(&dir, 1 << 20);
        s.stored(expiring("long", b"stays", 100)).await.unwrap();
        s.stored(expiring("short", b"goes", 1)).await.unwrap();
        s.stored(publish("plain", b"no expiry")).await.unwrap();
        let got = first(s.clone(), "long").await.unwrap();
        assert_eq!(got.payload, Bytes::from_static(b"stays"));
        let left = got.properties.message_expiry_interval.unwrap();
        assert!((99..=100).contains(&left), "{left}");
        let plain = first(s.clone(), "plain").await.unwrap();
        assert_eq!(plain.properties.message_expiry_interval, None);
    }
    // The deadline is on disk: after a reopen the time left keeps running.
    let s = open(&dir, 1 << 20);
    assert_eq!(s.matching("short").await.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(s.matching("short").await.is_empty(), "expired but retained");
    let mut topics: Vec<_> = all(&s, "#").await.into_iter().map(|p| p.0).collect();
    topics.sort();
    assert_eq!(topics, ["long", "plain"]);
    drop(s);
    let s = open(&dir, 1 << 20);
    assert_eq!(s.matching("#").await.len(), 2);
    let left = first(s.clone(), "long")
        .await
        .unwrap()
        .properties
        .message_expiry_interval
        .unwrap();
    assert!((98..=100).contains(&left), "{left}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_bytes_bound_refuses_growth_and_allows_the_rest() {
    let dir = scratch("bound");
    // Room for two 1,000-byte messages and a bit.
    let s = open(&dir, 2_200);
    let kb = vec![1u8; 1000];
    s.stored(publish("a", &kb)).await.unwrap();
    s.stored(publish("b", &kb)).await.unwrap();
    let used = s.live_bytes();
    assert!(used > 2000 && used <= 2200, "{used}");
    assert!(matches!(
        s.stored(publish("c", &kb)).await,
        Err(RetainError::Quota(_))
    ));
    // Growing a topic is refused too; replacing by no larger is fine.
    assert!(matches!(
        s.stored(publish("a", &[2u8; 1200])).await,
        Err(RetainError::Quota(_))
    ));
    s.stored(publish("a", &[3u8; 900])).await.unwrap();
    // Deleting frees room.
    s.stored(publish("b", b"")).await.unwrap();
    s.stored(publish("c", &kb)).await.unwrap();
    let got = all(&s, "#").await;
    assert_eq!(
        got,
        vec![
            ("a".into(), Bytes::from(vec![3u8; 900])),
            ("c".into(), Bytes::from(kb.clone()))
        ]
    );
    // What was refused is not on disk either.
    drop(s);
    let s = open(&dir, 2_200);
    assert_eq!(all(&s, "#").await, got);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn overwrites_are_compacted_and_old_entries_stay_readable() {
    let dir = scratch("compact");
    let s = open(&dir, 64 << 20);
    let big = vec![5u8; 100_000];
    s.stored(publish("keep", b"kept")).await.unwrap();
    s.stored(publish("t", &big)).await.unwrap();
    let held = s.matching("t").await;
    for i in 0..40u8 {
        let mut p = big.clone();
        p[0] = i;
        s.stored(publish("t", &p)).await.unwrap();
    }
    let path = dir.join("retained-2f.log");
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 2 * 100_100 + (1 << 20), "not compacted: {size}");
    // An entry taken before the compaction still reads (the old file).
    let old = s.read(&held).await;
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].payload, Bytes::from(big.clone()));
    let got = all(&s, "#").await;
    assert_eq!(got[0], ("keep".into(), Bytes::from_static(b"kept")));
    assert_eq!(got[1].1[0], 39);
    drop(s);
    let s = open(&dir, 64 << 20);
    assert_eq!(all(&s, "#").await, got);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn batches_are_bounded_in_count_and_bytes() {
    let dir = scratch("batches");
    std::fs::create_dir_all(&dir).unwrap();
    let file = Arc::new(File::create(dir.join("f")).unwrap());
    let entry = |len: u64| {
        Arc::new(RetainedEntry {
            topic: "t".into(),
            qos: 0,
            deadline: None,
            file: file.clone(),
            offset: 0,
            len,
        })
    };
    let small: Vec<_> = (0..1000).map(|_| entry(10)).collect();
    let sizes: Vec<_> = batches(&small).map(<[_]>::len).collect();
    assert_eq!(sizes, [256, 256, 256, 232]);
    let big: Vec<_> = (0..5).map(|_| entry(3 << 20)).collect();
    assert!(batches(&big).all(|b| b.len() == 1));
    let huge = vec![entry(100 << 20)];
    assert_eq!(batches(&huge).count(), 1);
    assert_eq!(vhost_of("retained-2f.log").as_deref(), Some("/"));
    assert_eq!(
        vhost_of(&record::file_name("a/b é")).as_deref(),
        Some("a/b é")
    );
    assert_eq!(vhost_of("retained-2.log"), None);
    let _ = std::fs::remove_dir_all(&dir);
}
