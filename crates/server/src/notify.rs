//! Readiness for a service manager: systemd's `sd_notify(3)` protocol
//! without libsystemd.
//!
//! When systemd starts a `Type=notify` unit it puts the path of a datagram
//! socket in `NOTIFY_SOCKET` (a file system path, or `@name` for a name in
//! the abstract namespace). The service sends `READY=1` there once it
//! serves, and `STOPPING=1` when it begins to shut down. Outside systemd
//! the variable is unset and nothing is sent.
//!
//! A failure to notify is logged and never stops the broker: under systemd
//! the start then times out (`TimeoutStartSec`) and the log says why.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tracing::{debug, warn};

/// Where notifications go, and whether readiness was already sent.
pub(crate) struct Notifier {
    /// `NOTIFY_SOCKET`'s value; `None`: not started by a service manager.
    target: Option<OsString>,
    ready_sent: AtomicBool,
    stopping_sent: AtomicBool,
}

/// The process's notifier, from `NOTIFY_SOCKET` as it was at first use.
fn global() -> &'static Notifier {
    static NOTIFIER: OnceLock<Notifier> = OnceLock::new();
    NOTIFIER.get_or_init(|| Notifier::new(std::env::var_os("NOTIFY_SOCKET")))
}

/// Every listener is up: `READY=1` with a status line, once per process.
pub(crate) fn ready(status: &str) {
    global().ready(status);
}

/// Shutdown has begun: `STOPPING=1`, once per process.
pub(crate) fn stopping() {
    global().stopping();
}

impl Notifier {
    pub(crate) fn new(target: Option<OsString>) -> Self {
        Notifier {
            target: target.filter(|t| !t.is_empty()),
            ready_sent: AtomicBool::new(false),
            stopping_sent: AtomicBool::new(false),
        }
    }

    /// Sends `READY=1` and `STATUS=<status>` the first time only.
    pub(crate) fn ready(&self, status: &str) {
        if self.ready_sent.swap(true, Ordering::AcqRel) {
            return;
        }
        // A newline would end the STATUS assignment and start another.
        let status = status.replace('\n', " ");
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    /// Sends `STOPPING=1` the first time only.
    pub(crate) fn stopping(&self) {
        if self.stopping_sent.swap(true, Ordering::AcqRel) {
            return;
        }
        self.send("STOPPING=1\nSTATUS=Shutting down\n");
    }

    fn send(&self, state: &str) {
        let Some(target) = &self.target else {
            return;
        };
        match send_to(target, state.as_bytes()) {
            Ok(()) => debug!(
                "notified the service manager: {}",
                state.lines().next().unwrap_or_default()
            ),
            Err(e) => warn!(
                "cannot notify the service manager through NOTIFY_SOCKET={}: {e}",
                target.to_string_lossy()
            ),
        }
    }
}

/// One datagram to the socket `target` names: an absolute path, or
/// `@name` in Linux's abstract namespace.
fn send_to(target: &OsStr, message: &[u8]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = target.as_bytes();
    let socket = UnixDatagram::unbound()?;
    let sent = match bytes.split_first() {
        Some((b'@', name)) => send_abstract(&socket, name, message)?,
        Some((b'/', _)) => socket.send_to(message, target)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor an @abstract name",
            ))
        }
    };
    if sent != message.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", message.len()),
        ));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn listening() -> (tempdir::Dir, UnixDatagram, OsString) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        (dir, socket, path.into_os_string())
    }

    #[test]
    fn ready_then_stopping_once_each_to_a_path() {
        let (_dir, socket, path) = listening();
        let n = Notifier::new(Some(path));
        n.ready("Listening on [::]:5672\nand more");
        n.ready("again");
        n.stopping();
        n.stopping();
        assert_eq!(
            receive(&socket),
            "READY=1\nSTATUS=Listening on [::]:5672 and more\n"
        );
        assert_eq!(receive(&socket), "STOPPING=1\nSTATUS=Shutting down\n");
        // Nothing else was sent.
        socket.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        assert_eq!(
            socket.recv(&mut buf).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_names() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("warren-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Notifier::new(Some(format!("@{name}").into())).ready("up");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=up\n");
    }

    #[test]
    fn failures_are_reported_not_fatal() {
        let dir = tempdir::Dir::new();
        let missing = dir.0.join("nobody-listens");
        assert!(send_to(missing.as_os_str(), b"READY=1").is_err());
        assert!(send_to(OsStr::new("relative"), b"READY=1").is_err());
        // Neither panics nor blocks.
        Notifier::new(Some(missing.into_os_string())).ready("up");
        Notifier::new(None).ready("up");
        Notifier::new(Some(OsString::new())).stopping();
    }

    /// A private directory removed at the end of the test.
    mod tempdir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "warren-notify-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).expect("temp dir");
                Dir(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
