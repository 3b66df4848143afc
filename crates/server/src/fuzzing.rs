//! Entry points for the cargo-fuzz targets (`fuzz/`): the management API
//! in process, without sockets. Not part of Warren's interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use tower::ServiceExt;
use warren_broker::admin::users::Credentials;
use warren_broker::admin::Admin;
use warren_broker::broker::BrokerSetup;
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
            ..Config::default()
        };
        let setup = BrokerSetup {
            default_user: cfg.default_user.clone(),
            default_pass: cfg.default_pass.clone(),
            default_vhost: cfg.default_vhost.clone(),
            memory_high_watermark: cfg.vm_memory_high_watermark,
            disk_free_limit: 0,
            loopback_users: Vec::new(),
        };
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
