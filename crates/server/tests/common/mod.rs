//! Shared helpers for the integration tests: a real `warren` process per
//! test on a free loopback port, lapin connections to it, and bounded waits.

#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::{Connection, ConnectionProperties};

pub mod raw;

/// How long the broker gets to start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for any single test body.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one expected event (a delivery, a close, an error).
pub const STEP: Duration = Duration::from_secs(5);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A running `warren` broker, killed (and its data dir removed) on drop.
pub struct TestBroker {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// RLIMIT_AS for the broker process, bytes.
    address_space: Option<u64>,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        Self::start_with(&[], &[])
    }

    /// Starts the broker with extra command-line flags and environment.
    pub fn start_with(args: &[&str], envs: &[(&str, &str)]) -> TestBroker {
        let mut last_err = String::new();
        // A freed port can be taken by someone else before the broker binds
        // it: try a few.
        for _ in 0..3 {
            match Self::try_start(args, envs) {
                Ok(b) => return b,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start warren: {last_err}");
    }

    /// Starts the broker with its address space limited to `bytes`
    /// (RLIMIT_AS): an allocation the peer provokes beyond it aborts.
    pub fn start_limited(args: &[&str], bytes: u64) -> TestBroker {
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port();
            let data_dir = std::env::temp_dir().join(unique("wtest"));
            if let Err(e) = std::fs::create_dir_all(&data_dir) {
                last_err = e.to_string();
                continue;
            }
            let args = args.iter().map(|s| s.to_string()).collect();
            match Self::spawn(port, data_dir, args, Vec::new(), Some(bytes)) {
                Ok(b) => return b,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start warren: {last_err}");
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn try_start(args: &[&str], envs: &[(&str, &str)]) -> Result<TestBroker, String> {
        let port = free_port();
        let data_dir = std::env::temp_dir().join(unique("wtest"));
        std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(port, data_dir, args, envs, None)
    }

    /// Stops the broker (SIGKILL when `crash`, else SIGTERM and a clean
    /// shutdown) and starts it again on the same port and data directory.
    pub fn restart(mut self, crash: bool) -> TestBroker {
        if crash {
            let _ = self.child.kill();
        } else {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !matches!(self.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (port, data_dir) = (self.port, self.data_dir.clone());
        let (args, envs, limit) = (
            std::mem::take(&mut self.args),
            std::mem::take(&mut self.envs),
            self.address_space,
        );
        // Keep the data: this TestBroker must not clean up on drop.
        self.data_dir = PathBuf::new();
        drop(self);
        let mut last = String::new();
        for _ in 0..50 {
            match Self::spawn(port, data_dir.clone(), args.clone(), envs.clone(), limit) {
                Ok(b) => return b,
                // The old socket may linger briefly; retry the same port.
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!("could not restart warren: {last}");
    }

    fn spawn(
        port: u16,
        data_dir: PathBuf,
        args: Vec<String>,
        envs: Vec<(String, String)>,
        address_space: Option<u64>,
    ) -> Result<TestBroker, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("broker.log"))
            .map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(broker_exe(&data_dir));
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--amqp-port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        // Hermetic: nothing from the caller's environment.
        for var in [
            "WARREN_AMQP_PORT",
            "WARREN_BIND",
            "WARREN_DATA_DIR",
            "WARREN_CONFIG",
            "WARREN_LOG",
            "WARREN_HEARTBEAT",
            "WARREN_FRAME_MAX",
            "WARREN_CHANNEL_MAX",
            "WARREN_DEFAULT_USER",
            "WARREN_DEFAULT_PASS",
            "WARREN_DEFAULT_VHOST",
            "RABBITMQ_DEFAULT_USER",
            "RABBITMQ_DEFAULT_PASS",
            "RABBITMQ_DEFAULT_VHOST",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &envs {
            cmd.env(k, v);
        }
        if let Some(bytes) = address_space {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec here.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let mut broker = TestBroker {
            child,
            port,
            data_dir,
            args,
            envs,
            address_space,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = broker.child.try_wait() {
                return Err(format!(
                    "warren exited early ({status}); log:\n{}",
                    broker.log()
                ));
            }
            if listening(port) {
                return Ok(broker);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "warren did not listen on {port} within {STARTUP_TIMEOUT:?}; log:\n{}",
                    broker.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn uri_for(&self, user: &str, pass: &str, vhost: &str) -> String {
        format!("amqp://{user}:{pass}@127.0.0.1:{}/{vhost}", self.port)
    }

    /// A lapin connection as guest to vhost `/`.
    pub async fn connect(&self) -> Connection {
        bounded(STEP, "lapin connect", connect_uri(&self.uri()))
            .await
            .expect("lapin connect")
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.data_dir.join("broker.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- warren log (last lines) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if !self.data_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// The broker binary, run through a symlink with a neutral name: other
/// tooling on a shared machine that stops "warren" processes by name
/// (`pkill warren`, `killall warren`) must not hit the brokers of a running
/// test. The path and data dir deliberately don't contain "warren" either.
fn broker_exe(data_dir: &std::path::Path) -> PathBuf {
    let real = PathBuf::from(env!("CARGO_BIN_EXE_warren"));
    #[cfg(unix)]
    {
        let link = data_dir.join("amqp-broker");
        if std::os::unix::fs::symlink(&real, &link).is_ok() {
            return link;
        }
    }
    let _ = data_dir;
    real
}

/// A port nobody listens on right now. Taken below the kernel's ephemeral
/// range when possible, so that no client socket (including the readiness
/// probe, which could otherwise connect to itself) is handed the same port.
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    if ephemeral_start > 11_000 {
        let span = ephemeral_start - 10_000;
        let mut seed = u64::from(std::process::id()) << 32
            ^ SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed) as u64;
        for _ in 0..50 {
            // xorshift
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let port = (10_000 + (seed % u64::from(span)) as u32) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Whether something other than ourselves accepts connections on `port`.
fn listening(port: u16) -> bool {
    match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) {
        // A connection from `port` to `port` is a TCP self-connect, not
        // the broker.
        Ok(s) => s.local_addr().map(|a| a.port() != port).unwrap_or(false),
        Err(_) => false,
    }
}

pub async fn connect_uri(uri: &str) -> lapin::Result<Connection> {
    Connection::connect(uri, ConnectionProperties::default()).await
}

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn bounded<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Runs a whole test body with the global upper bound.
pub async fn run_test<F: Future<Output = ()>>(fut: F) {
    bounded(TEST_TIMEOUT, "the test body", fut).await
}

/// The AMQP reply code and text of a lapin protocol error.
pub fn amqp_error(err: &lapin::Error) -> (u16, String) {
    match err {
        lapin::Error::ProtocolError(e) => (e.get_id(), e.get_message().as_str().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?}"),
    }
}

/// Asserts `r` failed with exactly this reply code and text.
#[track_caller]
pub fn assert_amqp_error<T: std::fmt::Debug>(r: lapin::Result<T>, code: u16, text: &str) {
    match r {
        Ok(v) => panic!("expected error {code} {text:?}, got Ok({v:?})"),
        Err(e) => assert_eq!(amqp_error(&e), (code, text.to_string()), "error: {e}"),
    }
}
