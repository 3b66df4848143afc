//! Retained messages: the last retained PUBLISH per topic, per vhost,
//! kept in memory and in an append-only log on disk
//! (`<data dir>/mqtt/retained-<vhost hex>.log`) so they survive restarts.
//!
//! A record is `len: u32, crc32: u32, packet` where the packet is the
//! PUBLISH in MQTT 5 form (properties kept, topic alias dropped); an
//! empty payload deletes the topic's message, as in the protocol. Loading
//! skips a damaged record alone and stops at a torn tail. The log is
//! rewritten (to a temporary file, fsynced, renamed) once it holds more
//! than twice what is live. A retain answers only once its record is
//! fsynced.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use parking_lot::Mutex;
use warren_protocol::mqtt::{self, Packet, Publish, LEVEL_5};

/// Largest record accepted on load (a retained message is a PUBLISH, so
/// bounded by the MQTT packet limit anyway).
const RECORD_MAX: usize = 256 << 20;
/// Retained topics one vhost may hold.
pub(crate) const TOPICS_MAX: usize = 100_000;

#[derive(Debug)]
pub(crate) struct RetainedStore {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: BTreeMap<String, Publish>,
    file: Option<File>,
    /// Bytes in the log, and bytes of its live records.
    log_bytes: u64,
    live_bytes: u64,
}

fn record(p: &Publish) -> Vec<u8> {
    let mut b = BytesMut::new();
    Packet::Publish(p.clone()).encode(LEVEL_5, &mut b);
    let mut out = Vec::with_capacity(8 + b.len());
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
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
            while at + 8 <= all.len() {
                let len =
                    u32::from_be_bytes([all[at], all[at + 1], all[at + 2], all[at + 3]]) as usize;
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
                let mut buf = BytesMut::from(body);
                match mqtt::decode(&mut buf, Some(LEVEL_5), RECORD_MAX) {
                    Ok(Some(Packet::Publish(p))) => {
                        if p.payload.is_empty() {
                            inner.live.remove(&p.topic);
                        } else {
                            inner.live.insert(p.topic.clone(), p);
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
        let mut g = self.inner.lock();
        if !p.payload.is_empty() && !g.live.contains_key(&p.topic) && g.live.len() >= TOPICS_MAX {
            return Err(std::io::Error::other("too many retained topics"));
        }
        if let Some(f) = g.file.as_mut() {
            let r = record(&p);
            f.write_all(&r)?;
            f.sync_data()?;
            g.log_bytes += r.len() as u64;
        }
        if p.payload.is_empty() {
            if let Some(old) = g.live.remove(&p.topic) {
                g.live_bytes = g.live_bytes.saturating_sub(record(&old).len() as u64);
            }
        } else {
            let size = record(&p).len() as u64;
            if let Some(old) = g.live.insert(p.topic.clone(), p) {
                g.live_bytes = g.live_bytes.saturating_sub(record(&old).len() as u64);
            }
            g.live_bytes += size;
        }
        if g.log_bytes > 2 * g.live_bytes + 4096 {
            self.rewrite(&mut g)?;
        }
        Ok(())
    }

    /// The retained messages whose topic `filter` matches.
    pub(crate) fn matching(&self, filter: &str) -> Vec<Publish> {
        self.inner
            .lock()
            .live
            .iter()
            .filter(|(t, _)| super::topic::matches(filter, t))
            .map(|(_, p)| p.clone())
            .collect()
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
}
