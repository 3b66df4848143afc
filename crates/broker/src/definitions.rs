//! Durable definitions: vhosts, users, permissions, durable exchanges,
//! durable queues and the bindings between durable ends.
//!
//! On disk (in the data directory):
//! - `definitions.json`: a snapshot, replaced atomically (write a temporary
//!   file, fsync it, rename it over the old one, fsync the directory), so a
//!   crash leaves either the old or the new snapshot.
//! - `definitions.log`: changes since the snapshot, one per line:
//!   `<crc32 of the JSON, 8 hex digits> <JSON>\n`, fsynced before the change
//!   is acknowledged to the client. A torn or corrupt last line (a crash
//!   mid-append) fails its checksum and is ignored with a warning.
//!
//! At startup the snapshot is loaded, the log replayed, a new snapshot
//! written and the log emptied.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::warn;
use warren_protocol::{Decoder, FieldTable};

/// Bumped when the snapshot's shape changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserDef {
    pub name: String,
    pub password_hash: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PermissionDef {
    pub vhost: String,
    pub user: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExchangeDef {
    pub vhost: String,
    pub name: String,
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    /// AMQP-encoded field table, base64: exact, types included.
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueDef {
    pub vhost: String,
    pub name: String,
    /// Names the queue's storage directory; a queue deleted and declared
    /// again gets a new id, so old messages can't leak into it.
    pub id: u64,
    pub auto_delete: bool,
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindingDef {
    pub vhost: String,
    pub source: String,
    pub destination: String,
    /// "queue" or "exchange"
    pub destination_kind: String,
    pub routing_key: String,
    pub arguments: String,
}

/// One change, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    AddVhost { name: String },
    DeleteVhost { name: String },
    PutUser(UserDef),
    DeleteUser { name: String },
    SetPermissions(PermissionDef),
    ClearPermissions { vhost: String, user: String },
    DeclareExchange(ExchangeDef),
    DeleteExchange { vhost: String, name: String },
    DeclareQueue(QueueDef),
    DeleteQueue { vhost: String, name: String },
    Bind(BindingDef),
    Unbind(BindingDef),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    pub next_queue_id: u64,
    pub vhosts: Vec<String>,
    pub users: Vec<UserDef>,
    pub permissions: Vec<PermissionDef>,
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
}

impl Snapshot {
    /// Applies one change; idempotent, so replaying a log twice is harmless.
    pub fn apply(&mut self, c: Change) {
        match c {
            Change::AddVhost { name } => {
                if !self.vhosts.contains(&name) {
                    self.vhosts.push(name);
                }
            }
            Change::DeleteVhost { name } => {
                self.vhosts.retain(|v| *v != name);
                self.permissions.retain(|p| p.vhost != name);
                self.exchanges.retain(|x| x.vhost != name);
                self.queues.retain(|q| q.vhost != name);
                self.bindings.retain(|b| b.vhost != name);
            }
            Change::PutUser(u) => {
                self.users.retain(|x| x.name != u.name);
                self.users.push(u);
            }
            Change::DeleteUser { name } => {
                self.users.retain(|x| x.name != name);
                self.permissions.retain(|p| p.user != name);
            }
            Change::SetPermissions(p) => {
                self.permissions
                    .retain(|x| !(x.vhost == p.vhost && x.user == p.user));
                self.permissions.push(p);
            }
            Change::ClearPermissions { vhost, user } => {
                self.permissions
                    .retain(|x| !(x.vhost == vhost && x.user == user));
            }
            Change::DeclareExchange(x) => {
                self.exchanges
                    .retain(|e| !(e.vhost == x.vhost && e.name == x.name));
                self.exchanges.push(x);
            }
            Change::DeleteExchange { vhost, name } => {
                self.exchanges
                    .retain(|e| !(e.vhost == vhost && e.name == name));
                self.bindings.retain(|b| {
                    !(b.vhost == vhost
                        && (b.source == name
                            || (b.destination_kind == "exchange" && b.destination == name)))
                });
            }
            Change::DeclareQueue(q) => {
                self.next_queue_id = self.next_queue_id.max(q.id + 1);
                self.queues
                    .retain(|e| !(e.vhost == q.vhost && e.name == q.name));
                self.queues.push(q);
            }
            Change::DeleteQueue { vhost, name } => {
                self.queues
                    .retain(|e| !(e.vhost == vhost && e.name == name));
                self.bindings.retain(|b| {
                    !(b.vhost == vhost && b.destination_kind == "queue" && b.destination == name)
                });
            }
            Change::Bind(b) => {
                if !self.bindings.contains(&b) {
                    self.bindings.push(b);
                }
            }
            Change::Unbind(b) => self.bindings.retain(|x| *x != b),
        }
    }
}

pub fn encode_table(t: &FieldTable) -> String {
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

pub fn decode_table(s: &str) -> FieldTable {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|raw| Decoder::new(Bytes::from(raw)).get_table().ok())
        .unwrap_or_default()
}

/// The definitions journal of a running broker.
#[derive(Debug)]
pub struct DefinitionsLog {
    log: Mutex<File>,
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("definitions.json")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("definitions.log")
}

pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `data` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

fn checksum_line(json: &str) -> String {
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()))
}

/// Reads the snapshot and replays the log. `Ok(None)` on a first start.
pub fn load(dir: &Path) -> Result<Option<Snapshot>, String> {
    let snap_path = snapshot_path(dir);
    let mut snapshot = match fs::read(&snap_path) {
        Ok(raw) => Some(
            serde_json::from_slice::<Snapshot>(&raw)
                .map_err(|e| format!("{} is unreadable: {e}", snap_path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", snap_path.display())),
    };
    if let Some(s) = &snapshot {
        if s.version > FORMAT_VERSION {
            return Err(format!(
                "{} has format version {}, newer than this Warren ({FORMAT_VERSION})",
                snap_path.display(),
                s.version
            ));
        }
    }
    let log = log_path(dir);
    if let Ok(f) = File::open(&log) {
        let snap = snapshot.get_or_insert_with(Snapshot::default);
        for (n, line) in BufReader::new(f).lines().enumerate() {
            let Ok(line) = line else { break };
            let parsed = line.split_once(' ').and_then(|(crc, json)| {
                let ok =
                    u32::from_str_radix(crc, 16).ok() == Some(crc32fast::hash(json.as_bytes()));
                ok.then(|| serde_json::from_str::<Change>(json).ok())
                    .flatten()
            });
            match parsed {
                Some(c) => snap.apply(c),
                None => {
                    // Only the last line can be torn by a crash; stop there.
                    warn!(
                        "{}: line {} is torn or corrupt; ignoring it and anything after",
                        log.display(),
                        n + 1
                    );
                    break;
                }
            }
        }
    }
    Ok(snapshot)
}

impl DefinitionsLog {
    /// Writes `snapshot` as the new base and starts an empty log.
    pub fn open(dir: &Path, snapshot: &Snapshot) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut s = snapshot.clone();
        s.version = FORMAT_VERSION;
        let json = serde_json::to_vec_pretty(&s).map_err(std::io::Error::other)?;
        write_atomic(&snapshot_path(dir), &json)?;
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(log_path(dir))?;
        log.sync_all()?;
        fsync_dir(dir)?;
        Ok(DefinitionsLog {
            log: Mutex::new(log),
        })
    }

    /// Appends a change and makes it durable before returning.
    pub fn record(&self, change: &Change) {
        let json = match serde_json::to_string(change) {
            Ok(j) => j,
            Err(e) => {
                warn!("cannot encode definition change: {e}");
                return;
            }
        };
        let line = checksum_line(&json);
        let mut f = self.log.lock();
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|_| f.sync_data()) {
            // The broker keeps serving; the change may not survive a restart.
            warn!("cannot persist definition change: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warren-defs-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn log_replays_and_torn_tail_is_ignored() {
        let dir = tmpdir("replay");
        let log = DefinitionsLog::open(&dir, &Snapshot::default()).unwrap();
        log.record(&Change::AddVhost { name: "/".into() });
        log.record(&Change::DeclareQueue(QueueDef {
            vhost: "/".into(),
            name: "q".into(),
            id: 7,
            auto_delete: false,
            arguments: encode_table(&FieldTable::new()),
        }));
        drop(log);
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(log_path(&dir))
            .unwrap();
        f.write_all(b"deadbeef {\"op\":\"add_vh").unwrap();
        let snap = load(&dir).unwrap().unwrap();
        assert_eq!(snap.vhosts, vec!["/".to_string()]);
        assert_eq!(snap.queues.len(), 1);
        assert_eq!(snap.next_queue_id, 8);
        // Reopening compacts: the snapshot holds everything, the log is empty.
        DefinitionsLog::open(&dir, &snap).unwrap();
        assert_eq!(fs::metadata(log_path(&dir)).unwrap().len(), 0);
        assert_eq!(load(&dir).unwrap().unwrap().queues.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn deleting_a_queue_drops_its_bindings() {
        let mut s = Snapshot::default();
        let b = BindingDef {
            vhost: "/".into(),
            source: "x".into(),
            destination: "q".into(),
            destination_kind: "queue".into(),
            routing_key: "k".into(),
            arguments: String::new(),
        };
        s.apply(Change::Bind(b.clone()));
        s.apply(Change::Bind(b));
        assert_eq!(s.bindings.len(), 1);
        s.apply(Change::DeleteQueue {
            vhost: "/".into(),
            name: "q".into(),
        });
        assert!(s.bindings.is_empty());
    }
}
