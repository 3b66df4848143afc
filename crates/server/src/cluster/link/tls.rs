//! Inter-node TLS (optional): mutual TLS on a cluster CA around every
//! link connection, under the HMAC handshake (which still runs, inside
//! TLS). Each node has a certificate signed by the cluster CA, naming the
//! host its peers dial it at (DNS name or IP address in its SAN); the
//! dialer checks the acceptor's certificate against that host, the
//! acceptor requires a certificate from the dialer signed by the same CA.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A link connection's byte stream: plain TCP or TLS over it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for S {}

pub(crate) type BoxStream = Box<dyn Stream>;

/// The TLS side of a node's link: both ends' configurations.
#[derive(Clone)]
pub(crate) struct LinkTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTls")
    }
}

fn certs(pem: &[u8], what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("{what}: no PEM certificate in it");
    }
    Ok(certs)
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", path.display()))
}

impl LinkTls {
    /// From PEM files: this node's certificate (chain) and key, and the
    /// cluster CA's certificate.
    pub fn from_files(certfile: &Path, keyfile: &Path, cacertfile: &Path) -> anyhow::Result<Self> {
        let label = |what: &str, p: &Path| format!("inter-node TLS {what} {}", p.display());
        Self::from_pem(
            (
                &read(certfile, "certificate file")?,
                &label("certificate file", certfile),
            ),
            (&read(keyfile, "key file")?, &label("key file", keyfile)),
            (&read(cacertfile, "CA file")?, &label("CA file", cacertfile)),
        )
    }

    /// From PEM bytes, each with what to call it in an error.
    pub fn from_pem(
        (cert, cert_name): (&[u8], &str),
        (key, key_name): (&[u8], &str),
        (ca, ca_name): (&[u8], &str),
    ) -> anyhow::Result<Self> {
        let chain = certs(cert, cert_name)?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
            .map_err(|e| anyhow::anyhow!("{key_name}: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("{key_name}: no PEM private key in it"))?;
        let mut roots = RootCertStore::empty();
        for c in certs(ca, ca_name)? {
            roots
                .add(c)
                .map_err(|e| anyhow::anyhow!("{ca_name}: {e}"))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("inter-node TLS: {e}"))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("inter-node TLS: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| anyhow::anyhow!("inter-node TLS certificate and key: {e}"))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("inter-node TLS: {e}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| anyhow::anyhow!("inter-node TLS certificate and key: {e}"))?;
        Ok(LinkTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The dialer's TLS handshake with the node at `addr` ("host:port"):
    /// its certificate must name `host`.
    pub(crate) async fn connect(&self, addr: &str, tcp: TcpStream) -> Result<BoxStream, String> {
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("TLS: '{host}' is not a host name: {e}"))?;
        let s = TlsConnector::from(self.client.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        Ok(Box::new(s))
    }

    /// The acceptor's TLS handshake.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> Result<BoxStream, String> {
        let s = TlsAcceptor::from(self.server.clone())
            .accept(tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        Ok(Box::new(s))
    }
}

/// "host:port", "[v6]:port" -> host.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::LinkTls;

    const CA: &[u8] = include_bytes!("testdata/cluster-ca.pem");
    const CERT: &[u8] = include_bytes!("testdata/cluster-node.pem");
    const KEY: &[u8] = include_bytes!("testdata/cluster-node.key");
    const ROGUE_CA: &[u8] = include_bytes!("testdata/rogue-ca.pem");
    const ROGUE_CERT: &[u8] = include_bytes!("testdata/rogue-node.pem");
    const ROGUE_KEY: &[u8] = include_bytes!("testdata/rogue-node.key");

    /// A node of the test cluster.
    pub fn cluster() -> LinkTls {
        LinkTls::from_pem((CERT, "cert"), (KEY, "key"), (CA, "ca")).unwrap()
    }

    /// A node with a certificate from another CA (and trusting only it).
    pub fn rogue() -> LinkTls {
        LinkTls::from_pem((ROGUE_CERT, "cert"), (ROGUE_KEY, "key"), (ROGUE_CA, "ca")).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_addresses() {
        assert_eq!(host_of("node1.example:25672"), "node1.example");
        assert_eq!(host_of("127.0.0.1:25672"), "127.0.0.1");
        assert_eq!(host_of("[::1]:25672"), "::1");
        assert_eq!(host_of("plain"), "plain");
    }

    #[test]
    fn bad_pem_is_named() {
        let e = LinkTls::from_pem((b"nope", "my cert"), (b"", "my key"), (b"", "my ca"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("my cert"), "{e}");
        let _ = fixtures::cluster();
    }
}
