//! The broker's way into the definitions group: proposals and the read
//! barrier, blocking the calling (blocking) thread while the cluster's
//! runtime does the work.

use warren_broker::cluster::machine::Reply;
use warren_broker::cluster::{Command, ReplicationError, Replicator, Verdict};
use warren_broker::definitions::Change;
use warren_raft::{Group, ProposeError};

use super::member::{runtime, COMMIT_WAIT};

/// The broker's way into the definitions group.
#[derive(Debug)]
pub(super) struct RaftReplicator {
    pub(super) me: String,
    pub(super) group: GroupHandle,
}

/// `Group` is not `Debug`; the replicator needs to be.
#[derive(Clone)]
pub(super) struct GroupHandle(pub(super) Group);

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Group(definitions)")
    }
}

impl Replicator for RaftReplicator {
    fn sync(&self) -> Result<(), ReplicationError> {
        let group = self.group.0.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        runtime().spawn(async move {
            let _ = tx.send(group.sync(COMMIT_WAIT).await);
        });
        match rx.recv_timeout(COMMIT_WAIT * 2) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(ReplicationError::Unavailable(format!(
                "the change was not made: no majority of the cluster's nodes could be reached within {} s",
                COMMIT_WAIT.as_secs()
            ))),
        }
    }

    fn propose(&self, change: &Change) -> Result<(), ReplicationError> {
        let command = serde_json::to_string(&Command {
            node: self.me.clone(),
            change: change.clone(),
        })
        .map_err(|e| ReplicationError::Unavailable(e.to_string()))?;
        let group = self.group.0.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        runtime().spawn(async move {
            let r = group.propose(command, COMMIT_WAIT).await;
            // Read-your-writes on this node: wait until it applied the
            // entry itself (the leader answered; this node may lag).
            let r = match r {
                Ok(text) => match serde_json::from_str::<Reply>(&text) {
                    Ok(reply) => {
                        if group.wait_applied(reply.index, COMMIT_WAIT).await {
                            Ok(reply.verdict)
                        } else {
                            Err(ReplicationError::Unknown(format!(
                                "the change was committed but this node did not apply it within {} s",
                                COMMIT_WAIT.as_secs()
                            )))
                        }
                    }
                    Err(e) => Err(ReplicationError::Unknown(format!("unreadable answer from the cluster: {e}"))),
                },
                Err(ProposeError::NoQuorum(_)) => Err(ReplicationError::Unavailable(format!(
                    "the change was not made: no majority of the cluster's nodes could be reached within {} s",
                    COMMIT_WAIT.as_secs()
                ))),
                Err(e @ ProposeError::Indeterminate(_)) => Err(ReplicationError::Unknown(e.to_string())),
                Err(e) => Err(ReplicationError::Unavailable(e.to_string())),
            };
            let _ = tx.send(r);
        });
        match rx.recv_timeout(COMMIT_WAIT * 3) {
            Ok(Ok(Verdict::Applied)) => Ok(()),
            Ok(Ok(Verdict::Refused(e))) => Err(ReplicationError::Refused(e)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ReplicationError::Unknown(
                "the cluster did not answer".into(),
            )),
        }
    }
}
