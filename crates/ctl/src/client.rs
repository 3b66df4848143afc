//! The control socket: one JSON request line out, one JSON response in.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::args::Options;
use crate::{Failure, EX_SOFTWARE, EX_UNAVAILABLE};

/// sysexits' configuration error.
const EX_CONFIG: u8 = 78;

/// An error the broker answered with: its kind and message.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: String,
    pub message: String,
}

pub struct Client {
    /// The control socket, or why it could not be found (a broken config
    /// or env file).
    path: Result<PathBuf, String>,
    timeout: Duration,
    /// The broker's node name, from its last answer.
    node: RefCell<String>,
    /// The node `-n` named, for texts when the broker can't be reached.
    asked: Option<String>,
    /// Another cluster member that `-n` named: every request is relayed to
    /// it through the local node.
    relay: RefCell<Option<String>>,
}

impl Client {
    pub fn new(o: &Options) -> Client {
        let path = match (&o.socket, &o.data_dir) {
            (Some(socket), _) => Ok(socket.clone()),
            (None, Some(dir)) => Ok(dir.join("warren.sock")),
            // As the broker resolves its data directory: the environment
            // (RABBITMQ_MNESIA_DIR, …), the env file, the config file.
            (None, None) => warren_config::locate_data_dir()
                .map(|(dir, _)| dir.join("warren.sock"))
                .map_err(|e| e.to_string()),
        };
        Client {
            path,
            timeout: Duration::from_secs(o.timeout.max(1)),
            node: RefCell::new(String::new()),
            asked: o.node.clone(),
            relay: RefCell::new(None),
        }
    }

    /// From now on, requests run on `node` (a member of the local node's
    /// cluster), relayed by the local node over the cluster link.
    pub fn relay_to(&self, node: String) {
        *self.relay.borrow_mut() = Some(node);
    }

    /// The node name the broker gave with its last answer.
    pub fn node(&self) -> String {
        self.node.borrow().clone()
    }

    /// Sends one request. `Err(Ok(refusal))`: the broker refused it;
    /// `Err(Err(failure))`: no answer (the broker is down, say).
    pub fn request(&self, req: Value) -> Result<Value, Result<Refusal, Failure>> {
        let path = match &self.path {
            Ok(p) => p,
            Err(e) => {
                return Err(Err(Failure::new(
                    EX_CONFIG,
                    format!("Error: cannot find the broker: {e}"),
                )))
            }
        };
        let down = |e: std::io::Error| {
            // rabbitmqctl's text for a node it cannot reach, in Warren's
            // terms (node.rs has the one for a node other than the local).
            let target = crate::node::target(self.asked.as_deref());
            Err(Failure::new(
                EX_UNAVAILABLE,
                format!(
                    "Error: unable to perform an operation on node '{target}'. Please see diagnostics information and suggestions below.\n\n\
                     Most common reasons for this are:\n\n \
                     * Target node is not running\n \
                     * warrenctl looks in another data directory than the broker's: give it the broker's \
                     --data-dir (or WARREN_DATA_DIR, RABBITMQ_MNESIA_DIR, or the config file's data_dir)\n \
                     * warrenctl runs as a user that cannot open the broker's control socket (the broker's user and root can)\n\n\
                     DIAGNOSTICS\n===========\n\n\
                     attempted to contact: [{target}]\n\n\
                     control socket {}: {e}",
                    path.display()
                ),
            ))
        };
        let mut stream = UnixStream::connect(path).map_err(down)?;
        stream.set_read_timeout(Some(self.timeout)).map_err(down)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(down)?;
        let req = match &*self.relay.borrow() {
            Some(node) => serde_json::json!({"op": "relay", "node": node, "request": req}),
            None => req,
        };
        let mut line = req.to_string();
        line.push('\n');
        stream.write_all(line.as_bytes()).map_err(down)?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).map_err(down)?;
        if reply.is_empty() {
            // The node went away with the request in hand (stopped or
            // killed): whether it was carried out is unknown.
            return Err(Err(Failure::new(
                EX_UNAVAILABLE,
                "Error: the node closed the control connection before answering (did it stop?); \
                 whether the operation was carried out is unknown"
                    .to_string(),
            )));
        }
        let v: Value = serde_json::from_str(&reply).map_err(|e| {
            Err(Failure::new(
                EX_SOFTWARE,
                format!("Error: bad reply from the broker: {e}"),
            ))
        })?;
        if let Some(n) = v["node"].as_str() {
            *self.node.borrow_mut() = n.to_string();
        }
        if v["ok"].as_bool() == Some(true) {
            return Ok(v["result"].clone());
        }
        let e = &v["error"];
        Err(Ok(Refusal {
            kind: e["kind"].as_str().unwrap_or("").to_string(),
            message: e["message"].as_str().unwrap_or("unknown error").to_string(),
        }))
    }
}
