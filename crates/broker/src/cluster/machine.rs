//! The definitions state machine: what every node applies, in log order.
//!
//! `apply` checks a change against the replicated state (never against
//! anything local, so every node reaches the same verdict), updates that
//! state and the running broker, and answers with a [`Reply`]: the verdict
//! and the log index, so the proposing node can wait until it has applied
//! that far itself before its caller hears `ok`. The snapshot is the
//! definitions in the single-node `definitions.json` shape; installing one
//! applies the difference to the running broker.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Command, Verdict};
use crate::admin::AdminError;
use crate::broker::Broker;
use crate::definitions::{Change, DefinitionsState, Snapshot};

/// What `apply` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub index: u64,
    pub verdict: Verdict,
}

pub struct DefinitionsMachine {
    broker: Arc<Broker>,
    state: DefinitionsState,
}

impl DefinitionsMachine {
    pub fn new(broker: Arc<Broker>) -> DefinitionsMachine {
        DefinitionsMachine {
            broker,
            state: DefinitionsState::default(),
        }
    }

    /// Applies one command (see the module docs).
    pub fn apply_command(&mut self, index: u64, command: &str) -> Reply {
        let verdict = match serde_json::from_str::<Command>(command) {
            Err(e) => Verdict::Refused(AdminError::invalid(format!(
                "malformed definitions command: {e}"
            ))),
            Ok(cmd) => match check(&self.state, &cmd.change) {
                Err(e) => Verdict::Refused(e),
                Ok(()) => {
                    self.state.apply(cmd.change.clone());
                    self.broker.apply_live(&cmd.change);
                    Verdict::Applied
                }
            },
        };
        Reply { index, verdict }
    }

    pub fn state(&self) -> &DefinitionsState {
        &self.state
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }
}

impl warren_raft::StateMachine for DefinitionsMachine {
    fn apply(&mut self, index: u64, command: &str) -> String {
        let reply = self.apply_command(index, command);
        serde_json::to_string(&reply).unwrap_or_default()
    }

    fn snapshot(&self) -> String {
        serde_json::to_string(&self.state.to_snapshot()).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &str) -> Result<(), String> {
        let snap: Snapshot =
            serde_json::from_str(snapshot).map_err(|e| format!("definitions snapshot: {e}"))?;
        let new = DefinitionsState::from_snapshot(snap);
        for change in diff(&self.state, &new) {
            self.broker.apply_live(&change);
        }
        self.state = new;
        Ok(())
    }
}

/// Whether `change` can apply to `state`: RabbitMQ's errors for what a
/// concurrent change on another node removed meanwhile.
pub fn check(state: &DefinitionsState, change: &Change) -> Result<(), AdminError> {
    let vhost = |name: &str| {
        if state.vhosts.contains_key(name) {
            Ok(())
        } else {
            Err(AdminError::NoSuchVhost { name: name.into() })
        }
    };
    let user = |name: &str| {
        if state.users.contains_key(name) {
            Ok(())
        } else {
            Err(AdminError::NoSuchUser { name: name.into() })
        }
    };
    if !super::replicated(change) {
        return Err(AdminError::Refused {
            code: 540,
            text: super::TOPOLOGY_NOT_REPLICATED.into(),
        });
    }
    match change {
        Change::DeleteVhost { name } => vhost(name),
        Change::DeleteUser { name } => user(name),
        Change::SetPermissions(p) => vhost(&p.vhost).and_then(|()| user(&p.user)),
        Change::SetTopicPermissions(t) => vhost(&t.vhost).and_then(|()| user(&t.user)),
        Change::SetPolicy(p) => vhost(&p.vhost),
        Change::SetParameter(p) => vhost(&p.vhost),
        _ => Ok(()),
    }
}

/// The changes that turn `old` into `new` (for a snapshot installed on a
/// node that was behind): additions and updates first, removals after.
pub fn diff(old: &DefinitionsState, new: &DefinitionsState) -> Vec<Change> {
    let mut out = Vec::new();
    for (k, v) in &new.vhosts {
        if old.vhosts.get(k) != Some(v) {
            out.push(Change::PutVhost(v.clone()));
        }
    }
    for (k, u) in &new.users {
        if old.users.get(k) != Some(u) {
            out.push(Change::PutUser(u.clone()));
        }
    }
    for (k, p) in &new.permissions {
        if old.permissions.get(k) != Some(p) {
            out.push(Change::SetPermissions(p.clone()));
        }
    }
    for (k, t) in &new.topic_permissions {
        if old.topic_permissions.get(k) != Some(t) {
            out.push(Change::SetTopicPermissions(t.clone()));
        }
    }
    for (k, p) in &new.policies {
        if old.policies.get(k) != Some(p) {
            out.push(Change::SetPolicy(p.clone()));
        }
    }
    for (k, p) in &new.parameters {
        if old.parameters.get(k) != Some(p) {
            out.push(Change::SetParameter(p.clone()));
        }
    }
    for (k, g) in &new.global_parameters {
        if old.global_parameters.get(k) != Some(g) {
            out.push(Change::SetGlobalParameter(g.clone()));
        }
    }
    for k in old.global_parameters.keys() {
        if !new.global_parameters.contains_key(k) {
            out.push(Change::ClearGlobalParameter { name: k.clone() });
        }
    }
    for (vhost, component, name) in old.parameters.keys() {
        if !new
            .parameters
            .contains_key(&(vhost.clone(), component.clone(), name.clone()))
        {
            out.push(Change::ClearParameter {
                vhost: vhost.clone(),
                component: component.clone(),
                name: name.clone(),
            });
        }
    }
    for (vhost, name, operator) in old.policies.keys() {
        if !new
            .policies
            .contains_key(&(vhost.clone(), name.clone(), *operator))
        {
            out.push(Change::ClearPolicy {
                vhost: vhost.clone(),
                name: name.clone(),
                operator: *operator,
            });
        }
    }
    for (vhost, user, exchange) in old.topic_permissions.keys() {
        if !new
            .topic_permissions
            .contains_key(&(vhost.clone(), user.clone(), exchange.clone()))
        {
            out.push(Change::ClearTopicPermissions {
                vhost: vhost.clone(),
                user: user.clone(),
                exchange: Some(exchange.clone()),
            });
        }
    }
    for (vhost, user) in old.permissions.keys() {
        if !new.permissions.contains_key(&(vhost.clone(), user.clone())) {
            out.push(Change::ClearPermissions {
                vhost: vhost.clone(),
                user: user.clone(),
            });
        }
    }
    for k in old.users.keys() {
        if !new.users.contains_key(k) {
            out.push(Change::DeleteUser { name: k.clone() });
        }
    }
    for k in old.vhosts.keys() {
        if !new.vhosts.contains_key(k) {
            out.push(Change::DeleteVhost { name: k.clone() });
        }
    }
    out
}
