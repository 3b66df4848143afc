//! Retained messages: the last retained PUBLISH per topic, per vhost,
//! kept in memory and in an append-only log on disk
//! (`<data dir>/mqtt/retained-<vhost hex>.log`) so they survive restarts.
//!
//! A record is `len: u32, crc32: u32, [deadline: u64,] packet` where the
//! packet is the PUBLISH in MQTT 5 form (properties kept, topic alias
//! dropped) and bit 31 of `len` says an expiry deadline (Unix ms, from
//! MQTT 5's message expiry interval) precedes it; the CRC covers both. An
//! empty payload deletes the topic's message, as in the protocol. An
//! expired message is dropped when it is next looked at and is not
//! loaded again; a subscriber gets the time it has left. Loading
//! skips a damaged record alone and stops at a torn tail. The log is
//! rewritten (to a temporary file, fsynced, renamed) once it holds more
//! than twice what is live. A retain answers only once its record is
//! fsynced.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use parking_lot::Mutex;
use warren_protocol::mqtt::{self, Packet, Publish, LEVEL_5};

/// Largest record accepted on load (a retained message is a PUBLISH, so
/// bounded by the MQTT packet limit anyway).
const RECORD_MAX: usize = 256 << 20;
/// Retained topics one vhost may hold.
pub(crate) const TOPICS_MAX: usize = 100_000;
/// Bit 31 of a record's length: an expiry deadline precedes the packet.
const HAS_DEADLINE: u32 = 1 << 31;

/// One topic's retained message and when it expires (Unix ms).
#[derive(Debug, Clone)]
struct Retained {
    publish: Publish,
    deadline: Option<u64>,
    /// Its record's size in the log (for the live-bytes count).
    size: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
pub(crate) struct RetainedStore {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: BTreeMap<String, Retained>,
    file: Option<File>,
    /// Bytes in the log, and bytes of its live records.
    log_bytes: u64,
    live_bytes: u64,
}

fn record(r: &Retained) -> Vec<u8> {
    let mut b = BytesMut::new();
    let mut flag = 0;
    if let Some(d) = r.deadline {
        b.extend_from_slice(&d.to_be_bytes());
        flag = HAS_DEADLINE;
    }
    Packet::Publish(r.publish.clone()).encode(LEVEL_5, &mut b);
    let mut out = Vec::with_capacity(8 + b.len());
    out.extend_from_slice(&(b.len() as u32 | flag).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&b).to_be_bytes());
    out.extend_from_slice(&b);
    out
}

impl RetainedStore {
    /// Opens (or creates) a vhost's store under `dir`.
    pub(crate) fn open(dir: &Path, vhost: &str) -> std::io::Result<RetainedStore> {
        std::fs::create_dir_all(dir)?;
        let hex: String = vhost.bytes().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("retained-{hex}.log"));
        let mut inner = Inner::default();
        if let Ok(mut f) = File::open(&path) {
            let mut all = Vec::new();
            f.read_to_end(&mut all)?;
            let mut at = 0;
            let now = now_ms();
            while at + 8 <= all.len() {
                let field = u32::from_be_bytes([all[at], all[at + 1], all[at + 2], all[at + 3]]);
                let len = (field & !HAS_DEADLINE) as usize;
                let crc = u32::from_be_bytes([all[at + 4], all[at + 5], all[at + 6], all[at + 7]]);
                if len > RECORD_MAX || at + 8 + len > all.len() {
                    tracing::warn!("{}: torn tail at byte {at} dropped", path.display());
                    break;
                }
                let body = &all[at + 8..at + 8 + len];
                at += 8 + len;
                if crc32fast::hash(body) != crc {
                    tracing::warn!("{}: damaged record skipped", path.display());
                    continue;
                }
                let (deadline, packet) = if field & HAS_DEADLINE == 0 {
                    (None, body)
                } else if let Some((d, rest)) = body.split_first_chunk::<8>() {
                    (Some(u64::from_be_bytes(*d)), rest)
                } else {
                    tracing::warn!("{}: short record skipped", path.display());
                    continue;
                };
                let mut buf = BytesMut::from(packet);
                match mqtt::decode(&mut buf, Some(LEVEL_5), RECORD_MAX) {
                    Ok(Some(Packet::Publish(p))) => {
                        if p.payload.is_empty() || deadline.is_some_and(|d| d <= now) {
                            inner.live.remove(&p.topic);
                        } else {
                            let topic = p.topic.clone();
                            let r = Retained {
                                publish: p,
                                deadline,
                                size: (8 + len) as u64,
                            };
                            inner.live.insert(topic, r);
                        }
                    }
                    _ => tracing::warn!("{}: unreadable record skipped", path.display()),
                }
            }
        }
        let store = RetainedStore {
            path: Some(path),
            inner: Mutex::new(inner),
        };
        // Start from a compact log: what was read, and nothing torn.
        store.rewrite(&mut store.inner.lock())?;
        Ok(store)
    }

    /// Retains `p` for its topic (an empty payload forgets the topic).
    /// Returns once that is on disk; an error leaves memory unchanged.
    pub(crate) fn retain(&self, mut p: Publish) -> std::io::Result<()> {
        p.properties.topic_alias = None;
        p.dup = false;
        p.qos = p.qos.min(1);
        // A QoS 1 PUBLISH needs an id to be well-formed; subscribers get
        // their own.
        p.packet_id = (p.qos > 0).then_some(1);
        p.retain = true;
        let mut r = Retained {
            deadline: p
                .properties
                .message_expiry_interval
                .map(|s| now_ms().saturating_add(u64::from(s) * 1000)),
            publish: p,
            size: 0,
        };
        let bytes = record(&r);
        r.size = bytes.len() as u64;
        let p = &r.publish;
        let mut g = self.inner.lock();
        if !p.payload.is_empty() && !g.live.contains_key(&p.topic) && g.live.len() >= TOPICS_MAX {
            return Err(std::io::Error::other("too many retained topics"));
        }
        if let Some(f) = g.file.as_mut() {
            f.write_all(&bytes)?;
            f.sync_data()?;
            g.log_bytes += bytes.len() as u64;
        }
        if p.payload.is_empty() {
            if let Some(old) = g.live.remove(&p.topic) {
                g.live_bytes = g.live_bytes.saturating_sub(old.size);
            }
        } else {
            let size = r.size;
            if let Some(old) = g.live.insert(p.topic.clone(), r) {
                g.live_bytes = g.live_bytes.saturating_sub(old.size);
            }
            g.live_bytes += size;
        }
        if g.log_bytes > 2 * g.live_bytes + 4096 {
            self.rewrite(&mut g)?;
        }
        Ok(())
    }

    /// The retained messages whose topic `filter` matches, each with the
    /// expiry interval it has left; expired ones are dropped on the way.
    pub(crate) fn matching(&self, filter: &str) -> Vec<Publish> {
        let now = now_ms();
        let mut g = self.inner.lock();
        let mut expired = Vec::new();
        let mut out = Vec::new();
        for (t, r) in &g.live {
            if !super::topic::matches(filter, t) {
                continue;
            }
            let mut p = r.publish.clone();
            if let Some(d) = r.deadline {
                if d <= now {
                    expired.push(t.clone());
                    continue;
                }
                let left = (d - now).div_ceil(1000);
                p.properties.message_expiry_interval =
                    Some(u32::try_from(left).unwrap_or(u32::MAX));
            }
            out.push(p);
        }
        for t in expired {
            if let Some(old) = g.live.remove(&t) {
                g.live_bytes = g.live_bytes.saturating_sub(old.size);
            }
        }
        out
    }

    fn rewrite(&self, g: &mut Inner) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        let mut bytes = 0u64;
        for p in g.live.values() {
            let r = record(p);
            f.write_all(&r)?;
            bytes += r.len() as u64;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        g.file = Some(OpenOptions::new().append(true).open(path)?);
        g.log_bytes = bytes;
        g.live_bytes = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use warren_protocol::mqtt::Properties;

    fn publish(topic: &str, payload: &'static [u8]) -> Publish {
        Publish {
            dup: false,
            qos: 1,
            retain: true,
            topic: topic.into(),
            packet_id: Some(7),
            properties: Properties::default(),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn retained_messages_survive_reopen_and_damage() {
        let dir = std::env::temp_dir().join(format!("warren-retained-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = RetainedStore::open(&dir, "/").unwrap();
            s.retain(publish("a/b", b"one")).unwrap();
            s.retain(publish("a/c", b"two")).unwrap();
            s.retain(publish("a/b", b"three")).unwrap();
            s.retain(publish("a/c", b"")).unwrap();
            s.retain(publish("x", b"four")).unwrap();
        }
        let s = RetainedStore::open(&dir, "/").unwrap();
        let got: Vec<_> = s
            .matching("#")
            .into_iter()
            .map(|p| (p.topic, p.payload))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/b".into(), Bytes::from_static(b"three")),
                ("x".into(), Bytes::from_static(b"four"))
            ]
        );
        assert_eq!(s.matching("a/+").len(), 1);
        drop(s);
        // A torn tail is dropped; the records before it stay.
        let path = dir.join("retained-2f.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 1, 0, 1, 2]).unwrap();
        drop(f);
        let s = RetainedStore::open(&dir, "/").unwrap();
        assert_eq!(s.matching("#").len(), 2);
        drop(s);
        // A flipped byte in one record loses that record only.
        let mut all = std::fs::read(&path).unwrap();
        let last = all.len() - 1;
        all[last] ^= 0xff;
        std::fs::write(&path, &all).unwrap();
        let s = RetainedStore::open(&dir, "/").unwrap();
        assert_eq!(s.matching("#").len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retained_messages_expire_and_report_the_time_left() {
        let dir = std::env::temp_dir().join(format!("warren-retained-exp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let expiring = |topic: &str, payload: &'static [u8], secs: u32| {
            let mut p = publish(topic, payload);
            p.properties.message_expiry_interval = Some(secs);
            p
        };
        {
            let s = RetainedStore::open(&dir, "/").unwrap();
            s.retain(expiring("long", b"stays", 100)).unwrap();
            s.retain(expiring("short", b"goes", 1)).unwrap();
            s.retain(publish("plain", b"no expiry")).unwrap();
            let got = s.matching("long");
            assert_eq!(got[0].payload, Bytes::from_static(b"stays"));
            let left = got[0].properties.message_expiry_interval.unwrap();
            assert!((99..=100).contains(&left), "{left}");
            assert_eq!(
                s.matching("plain")[0].properties.message_expiry_interval,
                None
            );
        }
        // The deadline is on disk: after a reopen the time left keeps running.
        let s = RetainedStore::open(&dir, "/").unwrap();
        assert_eq!(s.matching("short").len(), 1);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(s.matching("short").is_empty(), "expired but retained");
        let mut topics: Vec<_> = s.matching("#").into_iter().map(|p| p.topic).collect();
        topics.sort();
        assert_eq!(topics, ["long", "plain"]);
        drop(s);
        let s = RetainedStore::open(&dir, "/").unwrap();
        assert_eq!(s.matching("#").len(), 2);
        let left = s.matching("long")[0]
            .properties
            .message_expiry_interval
            .unwrap();
        assert!((98..=100).contains(&left), "{left}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
