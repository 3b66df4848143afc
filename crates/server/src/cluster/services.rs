//! What this node serves on the inter-node link: Raft's messages for its
//! groups, and control requests relayed from other members; and the
//! transport its groups send through.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use warren_raft::{BoxFuture, Groups, Transport, TransportError};

use super::link::{Handler, Link, LinkError, PeerState, Service};

pub(super) struct LinkTransport {
    pub(super) link: Link,
}

impl Transport for LinkTransport {
    fn call(
        &self,
        to: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Bytes, TransportError>> {
        let link = self.link.clone();
        let to = to.to_string();
        Box::pin(async move {
            // No connection now: nothing is sent (a proposal refused here
            // is certainly not made).
            let up = link
                .peers()
                .iter()
                .any(|p| p.name == to && p.state == PeerState::Up);
            if !up {
                return Err(TransportError::NotSent(format!("no connection to {to}")));
            }
            link.call(&to, Service::RAFT, payload, timeout)
                .await
                .map_err(|e| match e {
                    LinkError::UnknownPeer(_) | LinkError::Overloaded(_) => {
                        TransportError::NotSent(e.to_string())
                    }
                    LinkError::Disconnected(_) | LinkError::Timeout(_) | LinkError::Remote(_) => {
                        TransportError::NoAnswer(e.to_string())
                    }
                })
        })
    }
}

/// Runs a control-socket request relayed from another member (`warrenctl
/// -n`): (the requesting node, the OS user there, the request line) to the
/// response. Set once the control socket's handler exists.
pub(crate) type ControlHandler = Arc<dyn Fn(&str, &str, &str) -> serde_json::Value + Send + Sync>;

pub(super) struct LinkHandler {
    pub(super) groups: Groups,
    pub(super) control: Arc<OnceLock<ControlHandler>>,
}

/// A request relayed to another node's control handler.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Relayed {
    /// The operating-system user on the node the command was given on.
    pub(super) user: String,
    /// The control-socket request line.
    pub(super) request: String,
}

#[async_trait::async_trait]
impl Handler for LinkHandler {
    async fn request(&self, from: &str, service: Service, payload: Bytes) -> Result<Bytes, String> {
        match service {
            Service::RAFT => self.groups.handle(from, payload).await,
            Service::CONTROL => {
                let relayed: Relayed = serde_json::from_slice(&payload)
                    .map_err(|e| format!("malformed relayed request: {e}"))?;
                let handler = self
                    .control
                    .get()
                    .cloned()
                    .ok_or("this node is still starting")?;
                let from = from.to_string();
                let reply = tokio::task::spawn_blocking(move || {
                    handler(&from, &relayed.user, &relayed.request)
                })
                .await
                .map_err(|e| e.to_string())?;
                Ok(Bytes::from(reply.to_string()))
            }
            other => Err(format!("service {} is not served by this node", other.0)),
        }
    }

    fn message(&self, from: &str, service: Service, _payload: Bytes) {
        tracing::debug!(
            "ignoring a one-way message from {from} for service {}",
            service.0
        );
    }
}
