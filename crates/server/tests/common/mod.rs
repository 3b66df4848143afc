//! Shared helpers for the integration tests: a real `warren` process per
//! test on a free loopback port, lapin connections to it, and bounded waits.

#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::{Connection, ConnectionProperties};

pub mod bystander;
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

/// How to run a test broker.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    /// RLIMIT_AS for the broker process, bytes.
    pub address_space: Option<u64>,
    /// A command line the broker runs under (for example `nsenter` into
    /// a mount namespace); empty runs it directly.
    pub wrapper: Vec<String>,
    /// The data directory; a fresh temporary one when `None`.
    pub data_dir: Option<PathBuf>,
}

impl Launch {
    pub fn new(args: &[&str], envs: &[(&str, &str)]) -> Launch {
        Launch {
            args: args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }
}

/// A running `warren` broker, killed (and its data dir removed) on drop.
pub struct TestBroker {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    launch: Launch,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        Self::start_with(&[], &[])
    }

    /// Starts the broker with extra command-line flags and environment.
    pub fn start_with(args: &[&str], envs: &[(&str, &str)]) -> TestBroker {
        Self::launch(Launch::new(args, envs))
    }

    /// Starts the broker with its address space limited to `bytes`
    /// (RLIMIT_AS): an allocation the peer provokes beyond it aborts.
    pub fn start_limited(args: &[&str], bytes: u64) -> TestBroker {
        Self::launch(Launch {
            address_space: Some(bytes),
            ..Launch::new(args, &[])
        })
    }

    /// Starts a broker as `launch` says.
    pub fn launch(launch: Launch) -> TestBroker {
        let mut last_err = String::new();
        // A freed port can be taken by someone else before the broker binds
        // it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let data_dir = launch
                .data_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(unique("wtest")));
            if let Err(e) = std::fs::create_dir_all(&data_dir) {
                last_err = e.to_string();
                continue;
            }
            match Self::spawn(port, data_dir.clone(), launch.clone()) {
                Ok(b) => return b,
                Err(e) => {
                    if launch.data_dir.is_none() {
                        let _ = std::fs::remove_dir_all(&data_dir);
                    }
                    last_err = e
                }
            }
        }
        panic!("could not start warren: {last_err}");
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the broker (SIGKILL when `crash`, else SIGTERM and a clean
    /// shutdown) and starts it again on the same port and data directory.
    pub fn restart(self, crash: bool) -> TestBroker {
        self.restart_after(crash, |_| {})
    }

    /// [`restart`](Self::restart), calling `between` with the data
    /// directory while the broker is down (to damage its files).
    pub fn restart_after(self, crash: bool, between: impl FnOnce(&Path)) -> TestBroker {
        let stopped = self.stop(crash);
        between(&stopped.data_dir);
        stopped.start()
    }

    /// Stops the broker (SIGKILL when `crash`, else SIGTERM and a clean
    /// shutdown), keeping its data directory and port for a new start.
    pub fn stop(mut self, crash: bool) -> Stopped {
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
        let stopped = Stopped {
            port: self.port,
            data_dir: std::mem::take(&mut self.data_dir),
            launch: std::mem::take(&mut self.launch),
        };
        // The data is the Stopped's now: this TestBroker cleans up nothing.
        drop(self);
        stopped
    }

    fn spawn(port: u16, data_dir: PathBuf, launch: Launch) -> Result<TestBroker, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("broker.log"))
            .map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = match launch.wrapper.split_first() {
            // The wrapper may change what paths mean (a mount namespace):
            // hand it the binary's real path.
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(env!("CARGO_BIN_EXE_warren"));
                c
            }
            None => Command::new(broker_exe(&data_dir)),
        };
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--amqp-port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        // Tests run brokers side by side: no HTTP listeners on the fixed
        // default ports unless a test asks for them.
        if !launch.args.iter().any(|a| a == "--management-port") {
            cmd.arg("--disable-management");
        }
        if !launch.args.iter().any(|a| a == "--mqtt-port") {
            cmd.arg("--disable-mqtt");
        }
        if !launch.args.iter().any(|a| a == "--prometheus-port") {
            cmd.arg("--disable-prometheus");
        }
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
            "WARREN_FAULT_INJECTION",
            "RABBITMQ_DEFAULT_USER",
            "RABBITMQ_DEFAULT_PASS",
            "RABBITMQ_DEFAULT_VHOST",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &launch.envs {
            cmd.env(k, v);
        }
        if let Some(bytes) = launch.address_space {
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
            launch,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let failed = loop {
            if let Ok(Some(status)) = broker.child.try_wait() {
                break format!("warren exited early ({status}); log:\n{}", broker.log());
            }
            if listening(port) {
                return Ok(broker);
            }
            if Instant::now() > deadline {
                break format!(
                    "warren did not listen on {port} within {STARTUP_TIMEOUT:?}; log:\n{}",
                    broker.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The data belongs to the caller (a restart must keep it).
        broker.data_dir = PathBuf::new();
        Err(failed)
    }

    /// One request on the control socket (what warrenctl sends); returns
    /// the JSON response.
    pub fn control(&self, command: &str, args: &[&str]) -> serde_json::Value {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let mut s = UnixStream::connect(self.data_dir.join("warren.sock")).expect("control socket");
        let req = serde_json::json!({"op": command, "args": args});
        writeln!(s, "{req}").expect("control write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("control read");
        serde_json::from_str(&out).expect("control response")
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
        self.log_at(&self.data_dir)
    }

    fn log_at(&self, data_dir: &Path) -> String {
        read_log(data_dir)
    }
}

/// A stopped broker's data directory and port (removed on drop unless
/// started again).
pub struct Stopped {
    pub port: u16,
    pub data_dir: PathBuf,
    launch: Launch,
}

impl Stopped {
    /// Starts a broker on the same port and data directory.
    pub fn start(mut self) -> TestBroker {
        let mut last = String::new();
        for _ in 0..50 {
            match TestBroker::spawn(self.port, self.data_dir.clone(), self.launch.clone()) {
                Ok(b) => {
                    self.data_dir = PathBuf::new();
                    return b;
                }
                // The old socket may linger briefly; retry the same port.
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!("could not restart warren: {last}");
    }

    /// One start that is expected to fail: the broker's output, once it
    /// has exited (panics if it starts).
    pub fn start_fails(&self) -> String {
        match TestBroker::spawn(self.port, self.data_dir.clone(), self.launch.clone()) {
            Ok(mut b) => {
                b.data_dir = PathBuf::new();
                panic!("warren started; log:\n{}", b.log_at(&self.data_dir));
            }
            Err(e) => e,
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.data_dir.as_os_str().is_empty() {
            let log = read_log(&self.data_dir);
            let _ = std::fs::remove_dir_all(&self.data_dir);
            fail_on_panic(&log);
        }
    }
}

fn read_log(data_dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(data_dir.join("broker.log")) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// A broker that panicked (in any thread, even one the test never
/// noticed) fails the test that ran it, when it is dropped; unless the
/// test is failing already.
fn fail_on_panic(log: &str) {
    if std::thread::panicking() || !log.contains("panicked") {
        return;
    }
    let at = log.find("panicked").unwrap_or(0);
    let from = log[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let excerpt: String = log[from..].lines().take(20).collect::<Vec<_>>().join("\n");
    panic!("the broker panicked:\n{excerpt}");
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
        // An empty data_dir: stop() handed the directory (and its log) on.
        if !self.data_dir.as_os_str().is_empty() {
            let log = self.log();
            let _ = std::fs::remove_dir_all(&self.data_dir);
            fail_on_panic(&log);
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
pub async fn run_test<F: Future>(fut: F) -> F::Output {
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
