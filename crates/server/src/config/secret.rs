//! The secret a cluster's nodes share (RabbitMQ's Erlang cookie): the
//! content of a file, by default `<data dir>/.cluster_secret`.
//!
//! - Missing: created with 32 random bytes (from the kernel,
//!   `/dev/urandom`) written as 64 hex characters and a newline, mode
//!   0600. It is written to a temporary file first and published with a
//!   hard link, which fails if the file exists: two nodes started at once
//!   on one data directory (or a node and an operator) can't both create
//!   it, and nobody reads a half-written secret.
//! - Present: used as it is, any text (an existing Erlang cookie will do),
//!   surrounding whitespace and the newline trimmed. Refused when it is
//!   not a regular file, when group or others have any access (as the
//!   Erlang runtime refuses a cookie: "Cookie file ... must be accessible
//!   by owner only"), or when it is empty.
//!
//! The secret never goes on the wire: the inter-node link proves it with
//! a challenge–response (HMAC-SHA256).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{anyhow, bail, Context};

/// Random bytes in a created secret.
const SECRET_BYTES: usize = 32;
/// A larger file is not a secret someone meant to write.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The secret in `path`, created first if the file does not exist.
#[allow(dead_code)] // TODO(cluster): called when the cluster is wired
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    match File::open(path) {
        Ok(file) => read_secret(path, file),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            create_secret(path)?;
            let file = File::open(path)
                .with_context(|| format!("cannot open cluster secret file {}", path.display()))?;
            read_secret(path, file)
        }
        Err(e) => Err(anyhow!(
            "cannot open cluster secret file {}: {e}",
            path.display()
        )),
    }
}

fn read_secret(path: &Path, mut file: File) -> anyhow::Result<Vec<u8>> {
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read cluster secret file {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "cluster secret file {} is not a regular file",
            path.display()
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "cluster secret file {} must be accessible by owner only (its mode is {mode:04o}; chmod 600 it), \
             as RabbitMQ's Erlang cookie",
            path.display()
        );
    }
    if meta.len() > MAX_SECRET_FILE {
        bail!(
            "cluster secret file {} is larger than {MAX_SECRET_FILE} bytes",
            path.display()
        );
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut file)
        .take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("cannot read cluster secret file {}", path.display()))?;
    let secret = text.trim_ascii();
    if secret.is_empty() {
        bail!("cluster secret file {} is empty", path.display());
    }
    Ok(secret.to_vec())
}

/// A new random secret at `path`, unless someone else creates one first
/// (then theirs stands).
fn create_secret(path: &Path) -> anyhow::Result<()> {
    let cannot = |what: &str, e: std::io::Error| {
        anyhow!(
            "cannot create cluster secret file {}: {what}: {e}",
            path.display()
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| cannot("its directory", e))?;
    }
    let mut random = [0u8; SECRET_BYTES];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| cannot("reading /dev/urandom", e))?;
    let mut text: String = random.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and call (threads of one process may race too).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let write = |at: &Path| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(at)?;
        // 0600 whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    // Left by a process that had this id and crashed here (pid 1 in a
    // container is every start's).
    let _ = std::fs::remove_file(&tmp);
    write(&tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot("writing it", e)
    })?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        // Another process created it first: theirs is the secret.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        // A file system without hard links: create it in place, still
        // exclusively (a reader may then see it before it is written).
        Err(_) => match write(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(cannot("writing it", e)),
        },
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    tracing::info!("created cluster secret file {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("warren-secret-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_owner_only_and_stable() {
        let d = dir("create");
        let p = d.join("sub").join(".cluster_secret");
        let s = load_or_create_secret(&p).unwrap();
        assert_eq!(s.len(), 64);
        assert!(s.iter().all(|c| c.is_ascii_hexdigit()), "{s:?}");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), [&s[..], b"\n"].concat());
        assert_eq!(
            load_or_create_secret(&p).unwrap(),
            s,
            "read back, not replaced"
        );
        let other = d.join("other");
        assert_ne!(load_or_create_secret(&other).unwrap(), s, "random");
        let leftovers: Vec<_> = std::fs::read_dir(d.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn existing_is_trimmed() {
        let d = dir("trim");
        let p = d.join("cookie");
        std::fs::write(&p, "  ABCDEFGHIJKLMNOPQRST \n\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(load_or_create_secret(&p).unwrap(), b"ABCDEFGHIJKLMNOPQRST");
    }

    #[test]
    fn refused_when_others_may_read_it_or_it_is_empty() {
        let d = dir("refuse");
        let p = d.join("s");
        std::fs::write(&p, "secret\n").unwrap();
        for m in [0o644, 0o640, 0o604, 0o610] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
            let e = load_or_create_secret(&p).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "{} must be accessible by owner only (its mode is {m:04o}",
                    p.display()
                )),
                "{e}"
            );
        }
        std::fs::write(&p, " \n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_or_create_secret(&p).unwrap_err().to_string();
        assert!(e.ends_with("is empty"), "{e}");
        let e = load_or_create_secret(&d).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn racing_creators_agree() {
        let d = dir("race");
        let p = d.join(".cluster_secret");
        let got: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_secret(&p).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got.iter().all(|g| *g == got[0]));
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
