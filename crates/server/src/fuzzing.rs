//! Entry points for the cargo-fuzz targets (`fuzz/`): the management API
//! in process without sockets, and the AMQP connection state machine over
//! loopback after a valid handshake. Not part of Warren's interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use tower::ServiceExt;
use warren_broker::admin::users::Credentials;
use warren_broker::admin::Admin;
use warren_broker::definitions::VhostDef;
use warren_broker::Broker;

use crate::config::Config;
use crate::http;

/// The administrator the fuzzer's requests log in as; the fuzzed paths
/// only name other users, and it is restored if a body removes it.
const USER: &str = "fuzz-admin";
const PASS: &str = "fuzz-pass";

/// A broker on a scratch directory with its management router.
pub struct Management {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    admin: Admin,
    dir: PathBuf,
    authorization: String,
}

impl Management {
    /// Opens a fresh broker under the system's temporary directory.
    pub fn new() -> anyhow::Result<Management> {
        let dir = std::env::temp_dir().join(format!("warren-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = Config {
            data_dir: dir.clone(),
            management_login_failures: 0,
            disk_free_limit: 0,
            loopback_users: Vec::new(),
            ..Config::default()
        };
        let setup = cfg.broker_setup();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let broker = runtime
            .block_on(async { Broker::open(&setup, &dir) })
            .map_err(|e| anyhow::anyhow!(e))?;
        let api = http::Api::new(broker.clone(), Arc::new(cfg));
        let router = http::router(api);
        let admin = Admin::new(broker);
        use base64::Engine;
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
        );
        let m = Management {
            runtime,
            router,
            admin,
            dir,
            authorization,
        };
        m.restore_admin();
        Ok(m)
    }

    fn restore_admin(&self) {
        let _ = self.admin.add_vhost(VhostDef {
            name: "/".into(),
            ..Default::default()
        });
        let _ = self.admin.put_user(
            USER,
            Some(Credentials::Password(PASS.into())),
            vec!["administrator".into()],
        );
        let _ = self.admin.set_permissions("/", USER, ".*", ".*", ".*");
    }

    /// One request; returns the response status. Panics (a finding) if
    /// the API answers 500: a body must never crash a handler.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return 0;
        };
        let Ok(mut req) = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
        else {
            return 0;
        };
        let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
        req.extensions_mut().insert(ConnectInfo(peer));
        let status = self
            .runtime
            .block_on(self.router.clone().oneshot(req))
            .map_or(0, |r| r.status().as_u16());
        assert!(
            status != 500,
            "{path}: 500 for body {:?}",
            String::from_utf8_lossy(body)
        );
        if status == 401 || status == 403 {
            self.restore_admin();
        }
        status
    }
}

impl Drop for Management {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A broker serving AMQP on a loopback port, for byte streams after a
/// valid handshake. A panic anywhere in it aborts the process, so the
/// fuzzer sees it even when it happens in a connection's task.
pub struct Amqp {
    _runtime: tokio::runtime::Runtime,
    port: u16,
    dir: PathBuf,
}

impl Amqp {
    pub fn new() -> anyhow::Result<Amqp> {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::abort();
        }));
        let dir = std::env::temp_dir().join(format!("warren-fuzz-amqp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = Arc::new(Config {
            data_dir: dir.clone(),
            disk_free_limit: 0,
            loopback_users: Vec::new(),
            ..Config::default()
        });
        let setup = cfg.broker_setup();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let port = runtime.block_on(async {
            let broker = Broker::open(&setup, &dir).map_err(|e| anyhow::anyhow!(e))?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            let port = listener.local_addr()?.port();
            tokio::spawn(crate::accept(listener, broker, cfg));
            anyhow::Ok(port)
        })?;
        Ok(Amqp {
            _runtime: runtime,
            port,
            dir,
        })
    }

    /// Opens a connection (guest on `/`, frame_max 131072, no
    /// heartbeats), sends `bytes` after the handshake and reads whatever
    /// comes back until the broker hangs up or goes quiet. Then checks
    /// that a new connection is still answered. Returns how many bytes the
    /// broker answered after connection.open-ok.
    pub fn feed(&self, bytes: &[u8]) -> usize {
        use std::io::{Read, Write};
        use std::time::Duration;
        let mut out = b"AMQP\x00\x00\x09\x01".to_vec();
        let mut start_ok = vec![0, 0, 0, 0];
        shortstr(&mut start_ok, b"PLAIN");
        start_ok.extend_from_slice(&12u32.to_be_bytes());
        start_ok.extend_from_slice(b"\0guest\0guest");
        shortstr(&mut start_ok, b"en_US");
        method(&mut out, 10, 11, &start_ok);
        let mut tune_ok = 2047u16.to_be_bytes().to_vec();
        tune_ok.extend_from_slice(&131_072u32.to_be_bytes());
        tune_ok.extend_from_slice(&0u16.to_be_bytes());
        method(&mut out, 10, 31, &tune_ok);
        let mut open = Vec::new();
        shortstr(&mut open, b"/");
        shortstr(&mut open, b"");
        open.push(0);
        method(&mut out, 10, 40, &open);
        out.extend_from_slice(bytes);
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            panic!("the broker refuses connections");
        };
        // Loopback answers in microseconds; the input ends with a
        // half-close, so the broker hangs up at once once it has read it.
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        // The broker may close before reading everything: write errors
        // are an answer too.
        let _ = s.write_all(&out);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 65_536];
        let mut total = 0usize;
        // The first 64 KiB of answers, where the handshake's are.
        let mut head = Vec::new();
        // Bounded: at most 64 MiB or 2 s of answers.
        let started = std::time::Instant::now();
        while total < 64 << 20 && started.elapsed() < Duration::from_secs(2) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n;
                    let room = 65_536usize.saturating_sub(head.len()).min(n);
                    head.extend_from_slice(&buf[..room]);
                }
            }
        }
        drop(s);
        let mut probe = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .expect("the broker stopped accepting");
        let _ = probe.set_read_timeout(Some(Duration::from_secs(5)));
        probe
            .write_all(b"AMQP\x00\x00\x09\x01")
            .expect("write to a new connection");
        let mut start = [0u8; 7];
        probe
            .read_exact(&mut start)
            .expect("a new connection gets connection.start");
        assert_eq!(start[0], 1, "connection.start is a method frame");
        total.saturating_sub(handshake_answer_len(&head))
    }
}

impl Drop for Amqp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How many bytes of the broker's handshake answers (start, tune,
/// open-ok) lead a buffer: their frames, read off by their sizes.
fn handshake_answer_len(buf: &[u8]) -> usize {
    let mut at = 0;
    for _ in 0..3 {
        let Some(size) = buf.get(at + 3..at + 7) else {
            return at;
        };
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        at += 7 + size + 1;
    }
    at.min(buf.len())
}

fn shortstr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// A method frame on channel 0.
fn method(out: &mut Vec<u8>, class: u16, id: u16, args: &[u8]) {
    out.push(1);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(4 + args.len() as u32).to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(args);
    out.push(0xce);
}
