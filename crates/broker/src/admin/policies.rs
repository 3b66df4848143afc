//! Policies and operator policies: set (validated, journaled, then put in
//! force on every matching queue and exchange of the vhost at once), clear
//! and list.

use super::{Admin, AdminError, AdminResult};
use crate::definitions::{Change, PolicyDef};
use crate::policy::{Policy, PolicySet};

/// Policies or operator policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Policy,
    Operator,
}

impl PolicyKind {
    fn is_operator(self) -> bool {
        self == PolicyKind::Operator
    }
}

impl Admin {
    /// Stores a policy (or, with `p.operator`, an operator policy) and puts
    /// it in force.
    pub fn set_policy(&self, p: PolicyDef) -> AdminResult<()> {
        Policy::compile(p.clone()).map_err(AdminError::invalid)?;
        let _g = self.broker.ddl();
        self.vhost(&p.vhost)?;
        if self.record(Change::SetPolicy(p.clone()))?.is_replicated() {
            return Ok(());
        }
        let vhost = p.vhost.clone();
        self.broker
            .runtime
            .write()
            .policies
            .insert((p.vhost.clone(), p.name.clone(), p.operator), p);
        self.reapply(&vhost);
        Ok(())
    }

    /// Removes a policy; `false` if there was none.
    pub fn clear_policy(&self, vhost: &str, name: &str) -> AdminResult<bool> {
        self.clear(vhost, name, PolicyKind::Policy)
    }

    /// Removes an operator policy; `false` if there was none.
    pub fn clear_operator_policy(&self, vhost: &str, name: &str) -> AdminResult<bool> {
        self.clear(vhost, name, PolicyKind::Operator)
    }

    fn clear(&self, vhost: &str, name: &str, kind: PolicyKind) -> AdminResult<bool> {
        let _g = self.broker.ddl();
        self.vhost(vhost)?;
        let key = (vhost.to_string(), name.to_string(), kind.is_operator());
        if !self.broker.runtime.read().policies.contains_key(&key) {
            return Ok(false);
        }
        if self
            .record(Change::ClearPolicy {
                vhost: vhost.to_string(),
                name: name.to_string(),
                operator: kind.is_operator(),
            })?
            .is_replicated()
        {
            return Ok(true);
        }
        self.broker.runtime.write().policies.remove(&key);
        self.reapply(vhost);
        Ok(true)
    }

    /// The policies (of one vhost, or all), by vhost and name.
    pub fn policies(&self, vhost: Option<&str>) -> Vec<PolicyDef> {
        self.list(vhost, PolicyKind::Policy)
    }

    /// The operator policies (of one vhost, or all), by vhost and name.
    pub fn operator_policies(&self, vhost: Option<&str>) -> Vec<PolicyDef> {
        self.list(vhost, PolicyKind::Operator)
    }

    fn list(&self, vhost: Option<&str>, kind: PolicyKind) -> Vec<PolicyDef> {
        self.broker
            .runtime
            .read()
            .policies
            .values()
            .filter(|p| p.operator == kind.is_operator() && vhost.is_none_or(|v| v == p.vhost))
            .cloned()
            .collect()
    }

    /// Puts a vhost's current policies in force on its queues and
    /// exchanges (called under the definitions lock).
    fn reapply(&self, vhost: &str) {
        let Some(v) = self.broker.vhost(vhost) else {
            return;
        };
        let set = {
            let rt = self.broker.runtime.read();
            PolicySet::new(rt.policies.values().filter(|p| p.vhost == vhost))
        };
        v.set_policies(set);
    }
}
