//! TLS for AMQP (AMQPS, port 5671) and the management listener, with
//! rustls, from PEM files named as RabbitMQ's `ssl_options`: `certfile`,
//! `keyfile`, `cacertfile`, `verify` (`verify_peer` asks clients for a
//! certificate signed by `cacertfile`), `fail_if_no_peer_cert` (refuse
//! clients without one). The files are read again on SIGHUP or
//! `warrenctl reload_tls`; connections already open keep their session.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// RabbitMQ's `ssl_options.*` (config file `[ssl_options]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SslOptions {
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub cacertfile: Option<PathBuf>,
    /// `verify_peer` or `verify_none` (default).
    pub verify: Option<String>,
    #[serde(default)]
    pub fail_if_no_peer_cert: bool,
}

impl SslOptions {
    /// Whether a certificate and key are configured.
    pub fn is_set(&self) -> bool {
        self.certfile.is_some() && self.keyfile.is_some()
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", path.display()))
}

fn certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{what} {}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

/// Builds a server configuration from the files (read now).
pub fn server_config(o: &SslOptions) -> anyhow::Result<Arc<ServerConfig>> {
    let (Some(certfile), Some(keyfile)) = (&o.certfile, &o.keyfile) else {
        anyhow::bail!("TLS needs ssl_options certfile and keyfile");
    };
    let chain = certs(certfile, "certificate file")?;
    let key_pem = read(keyfile, "key file")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| anyhow::anyhow!("key file {}: {e}", keyfile.display()))?
        .ok_or_else(|| {
            anyhow::anyhow!("key file {}: no PEM private key in it", keyfile.display())
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    let verify_peer = o.verify.as_deref() == Some("verify_peer");
    let builder = match (&o.cacertfile, verify_peer) {
        (Some(ca), true) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca, "CA certificate file")? {
                roots
                    .add(c)
                    .map_err(|e| anyhow::anyhow!("CA certificate file {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if o.fail_if_no_peer_cert {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            }
            .map_err(|e| anyhow::anyhow!("TLS client verification: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, true) => anyhow::bail!("ssl_options verify = verify_peer needs a cacertfile"),
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("certificate and key: {e}"))?;
    Ok(Arc::new(config))
}

/// An acceptor whose configuration can be reloaded from the files.
pub struct Reloadable {
    options: SslOptions,
    current: RwLock<TlsAcceptor>,
}

impl Reloadable {
    pub fn new(options: SslOptions) -> anyhow::Result<Arc<Reloadable>> {
        let acceptor = TlsAcceptor::from(server_config(&options)?);
        Ok(Arc::new(Reloadable {
            options,
            current: RwLock::new(acceptor),
        }))
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reads the files again; on error the old configuration stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let acceptor = TlsAcceptor::from(server_config(&self.options)?);
        match self.current.write() {
            Ok(mut g) => *g = acceptor,
            Err(p) => *p.into_inner() = acceptor,
        }
        Ok(())
    }
}

/// The common name (CN) of a client certificate's subject: the user name
/// for the EXTERNAL mechanism (RabbitMQ's `ssl_cert_login_from =
/// common_name`).
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
