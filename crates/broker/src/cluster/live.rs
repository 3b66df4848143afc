//! Applying a committed definitions change to the running broker, with the
//! effects the single-node path has after journaling: the same stores are
//! updated, policies re-applied, limits re-read, and the connections of a
//! deleted user or vhost closed (320) on every node.

use crate::auth::{Permission, TopicPermission};
use crate::broker::{user_from_def, Broker};
use crate::definitions::{Change, VhostDef};
use crate::policy::PolicySet;

impl Broker {
    /// Applies `change`, already checked against the replicated state.
    /// Exchanges, queues and bindings never get here (refused on a
    /// cluster; see the module docs).
    pub(crate) fn apply_live(&self, change: &Change) {
        match change {
            Change::AddVhost { name } => {
                if self.vhost(name).is_none() {
                    self.create_vhost_live(VhostDef {
                        name: name.clone(),
                        ..Default::default()
                    });
                }
            }
            Change::PutVhost(meta) => self.create_vhost_live(meta.clone()),
            Change::DeleteVhost { name } => {
                self.auth.clear_vhost(name);
                let mut rt = self.runtime.write();
                rt.policies.retain(|k, _| k.0 != *name);
                rt.parameters.retain(|k, _| k.0 != *name);
                drop(rt);
                let vhost = self.remove_vhost(name);
                let why = format!("vhost '{name}' is deleted");
                self.connections
                    .close_where(|c| c.meta.vhost == *name, &why);
                if let Some(v) = vhost {
                    v.destroy();
                }
            }
            Change::PutUser(def) => self.auth.put_user(user_from_def(def)),
            Change::DeleteUser { name } => {
                self.auth.delete_user(name);
                let why = format!("user '{name}' is deleted");
                self.connections.close_where(|c| c.meta.user == *name, &why);
            }
            Change::SetPermissions(p) => match Permission::new(&p.configure, &p.write, &p.read) {
                Ok(perm) => self.auth.set_permission(&p.vhost, &p.user, perm),
                Err(e) => tracing::error!(
                    "replicated permissions of '{}' in '{}' don't compile here: {e}",
                    p.user,
                    p.vhost
                ),
            },
            Change::ClearPermissions { vhost, user } => self.auth.clear_permission(vhost, user),
            Change::SetTopicPermissions(t) => {
                match TopicPermission::new(&t.exchange, &t.write, &t.read, &t.user, &t.vhost) {
                    Ok(tp) => self.auth.set_topic_permission(&t.vhost, &t.user, tp),
                    Err(e) => tracing::error!(
                        "replicated topic permissions of '{}' in '{}' don't compile here: {e}",
                        t.user,
                        t.vhost
                    ),
                }
            }
            Change::ClearTopicPermissions {
                vhost,
                user,
                exchange,
            } => self
                .auth
                .clear_topic_permission(vhost, user, exchange.as_deref()),
            Change::SetPolicy(p) => {
                self.runtime
                    .write()
                    .policies
                    .insert((p.vhost.clone(), p.name.clone(), p.operator), p.clone());
                self.reapply_policies(&p.vhost);
            }
            Change::ClearPolicy {
                vhost,
                name,
                operator,
            } => {
                self.runtime
                    .write()
                    .policies
                    .remove(&(vhost.clone(), name.clone(), *operator));
                self.reapply_policies(vhost);
            }
            Change::SetParameter(p) => {
                self.runtime.write().parameters.insert(
                    (p.vhost.clone(), p.component.clone(), p.name.clone()),
                    p.clone(),
                );
                self.parameters_changed(&p.vhost, &p.component);
            }
            Change::ClearParameter {
                vhost,
                component,
                name,
            } => {
                self.runtime.write().parameters.remove(&(
                    vhost.clone(),
                    component.clone(),
                    name.clone(),
                ));
                self.parameters_changed(vhost, component);
            }
            Change::SetGlobalParameter(g) => {
                self.runtime
                    .write()
                    .global_parameters
                    .insert(g.name.clone(), g.clone());
            }
            Change::ClearGlobalParameter { name } => {
                self.runtime.write().global_parameters.remove(name);
            }
            Change::DeclareExchange(_)
            | Change::DeleteExchange { .. }
            | Change::DeclareQueue(_)
            | Change::DeleteQueue { .. }
            | Change::Bind(_)
            | Change::Unbind(_) => {
                tracing::error!(
                    "a replicated topology change reached a node that can't apply it: {change:?}"
                );
            }
        }
    }

    fn create_vhost_live(&self, meta: VhostDef) {
        let name = meta.name.clone();
        if let Err(e) = self.create_vhost(meta) {
            // The vhost exists in the cluster but has no storage here: its
            // queues can't live on this node. Said loudly; the disk alarm
            // (raised by the failed write) stops publishers meanwhile.
            tracing::error!("cannot create the storage of vhost '{name}' on this node: {e}");
        }
    }

    fn reapply_policies(&self, vhost: &str) {
        let Some(v) = self.vhost(vhost) else {
            return;
        };
        let set = {
            let rt = self.runtime.read();
            PolicySet::new(rt.policies.values().filter(|p| p.vhost == vhost))
        };
        v.set_policies(set);
    }

    fn parameters_changed(&self, vhost: &str, component: &str) {
        if component == crate::limits::VHOST_COMPONENT {
            if let Some(v) = self.vhost(vhost) {
                v.set_max_queues(crate::limits::get(&self.vhost_limits(vhost), "max-queues"));
            }
            self.limits_reported.reset();
        }
    }
}
