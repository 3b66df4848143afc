//! Warren's cluster (issue 21): the inter-node link ([`link`]) and this
//! node's membership ([`member`]): the definitions Raft group on the link
//! and the broker's replicator. The broker's side (the replicated state
//! machine) is `warren_broker::cluster`; consensus is `warren_raft`.

// Parts of the link wait for their callers: one-way messages, `remove_peer`
// (forget_cluster_node) and the CONTROL and FORWARD services (`-n` and
// forwarded AMQP, the next steps of issue 21).
#[allow(dead_code)]
pub(crate) mod link;
pub(crate) mod member;
mod replicator;
mod services;
mod watch;
