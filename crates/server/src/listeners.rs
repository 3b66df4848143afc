//! Listening sockets. As RabbitMQ, the default listens dual-stack on
//! `[::]` (IPv4 clients arrive as `::ffff:a.b.c.d`), so a client that
//! resolves `localhost` to `::1` first connects; where the host has no
//! IPv6 it falls back to `0.0.0.0`. Several listeners may be given
//! (`--listen`, RabbitMQ's `listeners.tcp.N`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tracing::warn;

/// Pending connections the kernel queues per listener (RabbitMQ's
/// default `backlog` is 128; a burst of connects should not be refused).
const BACKLOG: i32 = 1024;

/// One listening socket, as `warrenctl listeners` and RabbitMQ's
/// `rabbitmq-diagnostics listeners` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Bound {
    /// RabbitMQ's protocol names: `amqp`, `amqp/ssl`, `http`, `https`,
    /// `http/prometheus`, `mqtt`, `mqtt/ssl`, `http/web-mqtt`.
    pub protocol: &'static str,
    pub addr: SocketAddr,
}

/// The node's listeners, recorded as each one binds.
#[derive(Debug, Default)]
pub(crate) struct Registry(Mutex<Vec<Bound>>);

impl Registry {
    pub fn add(&self, protocol: &'static str, listener: &TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            self.0.lock().push(Bound { protocol, addr });
        }
    }

    pub fn all(&self) -> Vec<Bound> {
        self.0.lock().clone()
    }
}

/// Binds `addr`; the IPv6 wildcard accepts IPv4 too.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = Domain::for_address(addr);
    let socket = match Socket::new(domain, Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) if addr.ip() == IpAddr::from([0u16; 8]) => {
            warn!(
                "no IPv6 here ({e}); listening on 0.0.0.0:{} instead",
                addr.port()
            );
            return bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                addr.port(),
            ));
        }
        Err(e) => return Err(e),
    };
    if addr.is_ipv6() {
        // Dual-stack for the wildcard; a specific IPv6 address is v6 only
        // either way.
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    match socket.bind(&addr.into()) {
        Ok(()) => {}
        Err(e)
            if addr.ip() == IpAddr::from([0u16; 8])
                && e.kind() == io::ErrorKind::AddrNotAvailable =>
        {
            warn!(
                "cannot bind [::] ({e}); listening on 0.0.0.0:{} instead",
                addr.port()
            );
            return bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                addr.port(),
            ));
        }
        Err(e) => return Err(e),
    }
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ipv6_loopback_and_ipv4_loopback_listeners() {
        for ip in ["::1", "127.0.0.1"] {
            let l = bind(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
            let addr = l.local_addr().unwrap();
            let client = tokio::net::TcpStream::connect(addr);
            let (accepted, connected) = tokio::join!(l.accept(), client);
            assert!(accepted.is_ok() && connected.is_ok(), "{ip}");
        }
    }
}
