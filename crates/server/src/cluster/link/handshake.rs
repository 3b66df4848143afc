//! The mutual challenge–response that opens every inter-node connection.
//! The shared secret never travels; each side proves it holds it by an
//! HMAC-SHA256 over both nonces and both names.
//!
//! Every handshake message is `u8 type | u16 length | body` (big-endian),
//! the body at most [`MAX_MESSAGE`] bytes:
//!
//! ```text
//! dialer   -> HELLO     "WRNC" | u16 version | u8 len | from | u8 len | to | nonce_c[32]
//! acceptor -> CHALLENGE nonce_s[32] | HMAC(secret, "acceptor" | nonce_c | nonce_s | from | to)
//! dialer   -> PROOF     HMAC(secret, "dialer" | nonce_s | nonce_c | from | to)
//! acceptor -> OK        (empty)
//! either   -> REFUSE    reason (UTF-8), then closes
//! ```
//!
//! In the MACs each name is preceded by its length (one byte), so
//! ("a", "bc") and ("ab", "c") differ. MACs are checked with `hmac`'s
//! constant-time `verify_slice`. Names are 1 to 255 bytes of UTF-8.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The first bytes of a HELLO's body.
pub(crate) const MAGIC: &[u8; 4] = b"WRNC";
/// The link protocol this code speaks.
pub(crate) const VERSION: u16 = 1;
/// How long a handshake may take, from the TCP connect to OK.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest handshake message body.
pub(crate) const MAX_MESSAGE: usize = 4096;

const NONCE: usize = 32;
const MAC: usize = 32;

const HELLO: u8 = 1;
const CHALLENGE: u8 = 2;
const PROOF: u8 = 3;
const OK: u8 = 4;
const REFUSE: u8 = 5;

type HmacSha256 = Hmac<Sha256>;

/// The refusal both sides send and recognise for a failed MAC.
const WRONG_SECRET: &str = "wrong cluster secret";

/// Why a handshake failed; its text goes into the warning.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// The other side refused us, with its reason.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// The other side could not prove it holds our secret (or, at the
    /// acceptor, the dialer could not).
    #[error("wrong cluster secret")]
    WrongSecret,
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn mac(secret: &[u8], role: &[u8], n1: &[u8], n2: &[u8], from: &str, to: &str) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(role);
    m.update(n1);
    m.update(n2);
    m.update(&[from.len() as u8]);
    m.update(from.as_bytes());
    m.update(&[to.len() as u8]);
    m.update(to.as_bytes());
    m
}

/// Checks a node name as the handshake carries it.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255
}

async fn write_msg<S: AsyncWrite + Unpin>(s: &mut S, ty: u8, body: &[u8]) -> std::io::Result<()> {
    debug_assert!(body.len() <= MAX_MESSAGE);
    let mut m = Vec::with_capacity(3 + body.len());
    m.push(ty);
    m.extend_from_slice(&(body.len() as u16).to_be_bytes());
    m.extend_from_slice(body);
    s.write_all(&m).await?;
    s.flush().await
}

async fn read_msg<S: AsyncRead + Unpin>(s: &mut S) -> Result<(u8, Vec<u8>), HandshakeError> {
    let eof = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            HandshakeError::Protocol("connection closed during the handshake".into())
        } else {
            HandshakeError::Io(e)
        }
    };
    let mut head = [0u8; 3];
    s.read_exact(&mut head).await.map_err(eof)?;
    let len = u16::from_be_bytes([head[1], head[2]]) as usize;
    if len > MAX_MESSAGE {
        return Err(HandshakeError::Protocol(format!(
            "handshake message of {len} bytes (at most {MAX_MESSAGE})"
        )));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.map_err(eof)?;
    if head[0] == REFUSE {
        let reason = String::from_utf8_lossy(&body).into_owned();
        if reason == WRONG_SECRET {
            return Err(HandshakeError::WrongSecret);
        }
        return Err(HandshakeError::Refused(reason));
    }
    Ok((head[0], body))
}

/// Tells the other side why, best effort (it may be gone already).
async fn refuse<S: AsyncWrite + Unpin>(s: &mut S, reason: &str) {
    let r = &reason.as_bytes()[..reason.len().min(MAX_MESSAGE)];
    let _ = write_msg(s, REFUSE, r).await;
}

fn expect(ty: u8, want: u8, body: &[u8], len: usize, what: &str) -> Result<(), HandshakeError> {
    if ty != want || body.len() != len {
        return Err(HandshakeError::Protocol(format!(
            "expected {what}, got message type {ty} of {} bytes",
            body.len()
        )));
    }
    Ok(())
}

/// The dialer's side: `from` (this node) opens a connection to `to`.
/// The caller bounds it in time ([`TIMEOUT`]).
pub(crate) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    secret: &[u8],
    from: &str,
    to: &str,
) -> Result<(), HandshakeError> {
    if !valid_name(from) || !valid_name(to) {
        return Err(HandshakeError::Protocol(
            "node names must be 1 to 255 bytes".into(),
        ));
    }
    let nonce_c = nonce();
    let mut hello = Vec::with_capacity(4 + 2 + 2 + from.len() + to.len() + NONCE);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&VERSION.to_be_bytes());
    hello.push(from.len() as u8);
    hello.extend_from_slice(from.as_bytes());
    hello.push(to.len() as u8);
    hello.extend_from_slice(to.as_bytes());
    hello.extend_from_slice(&nonce_c);
    write_msg(s, HELLO, &hello).await?;
    let (ty, body) = read_msg(s).await?;
    expect(ty, CHALLENGE, &body, NONCE + MAC, "CHALLENGE")?;
    let (nonce_s, their) = body.split_at(NONCE);
    if mac(secret, b"acceptor", &nonce_c, nonce_s, from, to)
        .verify_slice(their)
        .is_err()
    {
        refuse(s, WRONG_SECRET).await;
        return Err(HandshakeError::WrongSecret);
    }
    let proof = mac(secret, b"dialer", nonce_s, &nonce_c, from, to)
        .finalize()
        .into_bytes();
    write_msg(s, PROOF, &proof).await?;
    let (ty, body) = read_msg(s).await?;
    expect(ty, OK, &body, 0, "OK")
}

/// The acceptor's side, as node `me`: returns the dialer's name. On a
/// failure the dialer has been sent the reason; the caller logs and closes.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    secret: &[u8],
    me: &str,
) -> Result<String, HandshakeError> {
    let (ty, body) = read_msg(s).await?;
    let hello = match parse_hello(ty, &body) {
        Ok(h) => h,
        Err(e) => {
            refuse(s, &e.to_string()).await;
            return Err(e);
        }
    };
    let Hello { from, to, nonce_c } = hello;
    if to != me {
        let e =
            HandshakeError::Protocol(format!("addressed to node '{to}', but this is node '{me}'"));
        refuse(s, &e.to_string()).await;
        return Err(e);
    }
    if from == me {
        // Two nodes configured with one name: say so rather than serve it.
        let e = HandshakeError::Protocol(format!(
            "the dialer calls itself '{from}', which is this node's own name"
        ));
        refuse(s, &e.to_string()).await;
        return Err(e);
    }
    let nonce_s = nonce();
    let mut challenge = Vec::with_capacity(NONCE + MAC);
    challenge.extend_from_slice(&nonce_s);
    challenge.extend_from_slice(
        &mac(secret, b"acceptor", &nonce_c, &nonce_s, &from, &to)
            .finalize()
            .into_bytes(),
    );
    write_msg(s, CHALLENGE, &challenge).await?;
    let (ty, body) = read_msg(s).await?;
    expect(ty, PROOF, &body, MAC, "PROOF")?;
    if mac(secret, b"dialer", &nonce_s, &nonce_c, &from, &to)
        .verify_slice(&body)
        .is_err()
    {
        refuse(s, WRONG_SECRET).await;
        return Err(HandshakeError::WrongSecret);
    }
    write_msg(s, OK, &[]).await?;
    Ok(from)
}

struct Hello {
    from: String,
    to: String,
    nonce_c: [u8; NONCE],
}

fn parse_hello(ty: u8, body: &[u8]) -> Result<Hello, HandshakeError> {
    let bad = || HandshakeError::Protocol("not a Warren inter-node connection".into());
    if ty != HELLO || body.len() < 6 || &body[..4] != MAGIC {
        return Err(bad());
    }
    let version = u16::from_be_bytes([body[4], body[5]]);
    if version != VERSION {
        return Err(HandshakeError::Protocol(format!(
            "inter-node protocol version {version} not supported (this node speaks {VERSION})"
        )));
    }
    let mut rest = &body[6..];
    let mut name = || -> Result<String, HandshakeError> {
        let (&len, tail) = rest.split_first().ok_or_else(bad)?;
        let len = len as usize;
        if len == 0 || tail.len() < len {
            return Err(bad());
        }
        let n = std::str::from_utf8(&tail[..len])
            .map_err(|_| bad())?
            .to_owned();
        rest = &tail[len..];
        Ok(n)
    };
    let from = name()?;
    let to = name()?;
    let nonce_c: [u8; NONCE] = rest.try_into().map_err(|_| bad())?;
    Ok(Hello { from, to, nonce_c })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(
        dial_secret: &'static [u8],
        accept_secret: &'static [u8],
        to: &'static str,
    ) -> (Result<(), HandshakeError>, Result<String, HandshakeError>) {
        let (mut a, mut b) = tokio::io::duplex(8192);
        tokio::join!(
            async move { dial(&mut a, dial_secret, "a", to).await },
            async move { accept(&mut b, accept_secret, "b").await }
        )
    }

    #[tokio::test]
    async fn same_secret_succeeds_both_ways() {
        let (d, a) = pair(b"s3cret", b"s3cret", "b").await;
        d.unwrap();
        assert_eq!(a.unwrap(), "a");
    }

    #[tokio::test]
    async fn wrong_secret_fails_at_the_dialer_first() {
        let (d, a) = pair(b"one", b"two", "b").await;
        assert!(matches!(d, Err(HandshakeError::WrongSecret)), "{d:?}");
        // The acceptor learns it from the dialer's refusal.
        assert!(matches!(a, Err(HandshakeError::WrongSecret)), "{a:?}");
    }

    #[tokio::test]
    async fn wrong_name_is_refused_with_the_reason() {
        let (d, a) = pair(b"s", b"s", "c").await;
        let e = d.unwrap_err().to_string();
        assert!(e.contains("addressed to node 'c'"), "{e}");
        assert!(a.is_err());
    }

    #[tokio::test]
    async fn a_dialer_with_the_acceptors_own_name_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        let (d, acc) = tokio::join!(
            async move { dial(&mut a, b"s", "b", "b").await },
            async move { accept(&mut b, b"s", "b").await }
        );
        let e = d.unwrap_err().to_string();
        assert!(e.contains("this node's own name"), "{e}");
        assert!(acc.is_err());
    }

    #[tokio::test]
    async fn a_forged_proof_is_refused_by_the_acceptor() {
        // A dialer that does not know the secret: sends HELLO, ignores the
        // challenge, answers a made-up proof.
        let (mut a, mut b) = tokio::io::duplex(8192);
        let acceptor = tokio::spawn(async move { accept(&mut b, b"real", "b").await });
        let mut hello = Vec::new();
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&VERSION.to_be_bytes());
        hello.extend_from_slice(&[1, b'a', 1, b'b']);
        hello.extend_from_slice(&[7u8; NONCE]);
        write_msg(&mut a, HELLO, &hello).await.unwrap();
        let (ty, _) = read_msg(&mut a).await.unwrap();
        assert_eq!(ty, CHALLENGE);
        write_msg(&mut a, PROOF, &[0u8; MAC]).await.unwrap();
        let reply = read_msg(&mut a).await;
        assert!(
            matches!(reply, Err(HandshakeError::WrongSecret)),
            "{reply:?}"
        );
        assert!(matches!(
            acceptor.await.unwrap(),
            Err(HandshakeError::WrongSecret)
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_hellos_never_panic(
            ty in 0u8..7,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let _ = parse_hello(ty, &body);
            // A well-formed prefix with random names and nonce.
            let mut h = MAGIC.to_vec();
            h.extend_from_slice(&VERSION.to_be_bytes());
            h.extend_from_slice(&body);
            if let Ok(hello) = parse_hello(HELLO, &h) {
                proptest::prop_assert!(valid_name(&hello.from) && valid_name(&hello.to));
            }
        }
    }

    #[tokio::test]
    async fn garbage_and_oversize_hellos_are_refused() {
        for junk in [&b"AMQP\x00\x00\x09\x01"[..], &[1, 0xff, 0xff][..], &[][..]] {
            let (mut a, mut b) = tokio::io::duplex(8192);
            let acceptor = tokio::spawn(async move { accept(&mut b, b"s", "b").await });
            a.write_all(junk).await.unwrap();
            drop(a);
            assert!(acceptor.await.unwrap().is_err());
        }
    }
}
