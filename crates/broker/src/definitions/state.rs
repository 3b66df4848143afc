//! The definitions in memory, keyed, as the journal has made them durable.
//!
//! Applying a change is a map operation (bindings are indexed by source
//! and by destination, so deleting a queue or an exchange finds its
//! bindings without a scan): replaying a journal of N changes is
//! O(N log N), not O(N²). `apply` is idempotent, so a journal replayed on
//! top of a snapshot that already holds some of its changes ends in the
//! same state.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    BindingDef, Change, ExchangeDef, GlobalParameterDef, ParameterDef, PermissionDef, PolicyDef,
    QueueDef, Snapshot, TopicPermissionDef, UserDef, VhostDef,
};

/// `(vhost, name)`.
type Key = (String, String);

/// A binding ordered by where it goes: `(vhost, destination kind,
/// destination, source, routing key, arguments)`.
type ByDestination = (String, String, String, String, String, String);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DefinitionsState {
    pub next_queue_id: u64,
    pub vhosts: BTreeMap<String, VhostDef>,
    pub users: BTreeMap<String, UserDef>,
    /// By `(vhost, user)`.
    pub permissions: BTreeMap<Key, PermissionDef>,
    /// By `(vhost, user, exchange)`.
    pub topic_permissions: BTreeMap<(String, String, String), TopicPermissionDef>,
    /// By `(vhost, name, operator)`.
    pub policies: BTreeMap<(String, String, bool), PolicyDef>,
    /// By `(vhost, component, name)`.
    pub parameters: BTreeMap<(String, String, String), ParameterDef>,
    pub global_parameters: BTreeMap<String, GlobalParameterDef>,
    pub exchanges: BTreeMap<Key, ExchangeDef>,
    pub queues: BTreeMap<Key, QueueDef>,
    /// Ordered by `(vhost, source, …)`.
    bindings: BTreeSet<BindingDef>,
    by_destination: BTreeSet<ByDestination>,
}

fn dest_key(b: &BindingDef) -> ByDestination {
    (
        b.vhost.clone(),
        b.destination_kind.clone(),
        b.destination.clone(),
        b.source.clone(),
        b.routing_key.clone(),
        b.arguments.clone(),
    )
}

fn from_dest_key(k: ByDestination) -> BindingDef {
    BindingDef {
        vhost: k.0,
        destination_kind: k.1,
        destination: k.2,
        source: k.3,
        routing_key: k.4,
        arguments: k.5,
    }
}

/// The smallest binding (in `BindingDef` order) of `vhost` from `source`.
fn source_floor(vhost: &str, source: &str) -> BindingDef {
    BindingDef {
        vhost: vhost.to_string(),
        source: source.to_string(),
        destination: String::new(),
        destination_kind: String::new(),
        routing_key: String::new(),
        arguments: String::new(),
    }
}

impl DefinitionsState {
    pub fn from_snapshot(s: Snapshot) -> Self {
        let mut st = DefinitionsState {
            next_queue_id: s.next_queue_id,
            ..Default::default()
        };
        for name in s.vhosts {
            st.vhosts.insert(
                name.clone(),
                VhostDef {
                    name,
                    ..Default::default()
                },
            );
        }
        for v in s.vhost_meta {
            if st.vhosts.contains_key(&v.name) {
                st.vhosts.insert(v.name.clone(), v);
            }
        }
        for t in s.topic_permissions {
            st.topic_permissions
                .insert((t.vhost.clone(), t.user.clone(), t.exchange.clone()), t);
        }
        for p in s.policies {
            st.policies
                .insert((p.vhost.clone(), p.name.clone(), p.operator), p);
        }
        for p in s.parameters {
            st.parameters
                .insert((p.vhost.clone(), p.component.clone(), p.name.clone()), p);
        }
        for g in s.global_parameters {
            st.global_parameters.insert(g.name.clone(), g);
        }
        for u in s.users {
            st.users.insert(u.name.clone(), u);
        }
        for p in s.permissions {
            st.permissions.insert((p.vhost.clone(), p.user.clone()), p);
        }
        for x in s.exchanges {
            st.exchanges.insert((x.vhost.clone(), x.name.clone()), x);
        }
        for q in s.queues {
            st.next_queue_id = st.next_queue_id.max(q.id + 1);
            st.queues.insert((q.vhost.clone(), q.name.clone()), q);
        }
        for b in s.bindings {
            st.add_binding(b);
        }
        st
    }

    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            version: super::FORMAT_VERSION,
            log_id: 0,
            next_queue_id: self.next_queue_id,
            vhosts: self.vhosts.keys().cloned().collect(),
            users: self.users.values().cloned().collect(),
            permissions: self.permissions.values().cloned().collect(),
            exchanges: self.exchanges.values().cloned().collect(),
            queues: self.queues.values().cloned().collect(),
            bindings: self.bindings.iter().cloned().collect(),
            vhost_meta: self.vhosts.values().cloned().collect(),
            topic_permissions: self.topic_permissions.values().cloned().collect(),
            policies: self.policies.values().cloned().collect(),
            parameters: self.parameters.values().cloned().collect(),
            global_parameters: self.global_parameters.values().cloned().collect(),
        }
    }

    pub fn bindings(&self) -> impl Iterator<Item = &BindingDef> {
        self.bindings.iter()
    }

    fn add_binding(&mut self, b: BindingDef) {
        self.by_destination.insert(dest_key(&b));
        self.bindings.insert(b);
    }

    fn remove_binding(&mut self, b: &BindingDef) {
        self.by_destination.remove(&dest_key(b));
        self.bindings.remove(b);
    }

    /// Removes every binding whose source is `vhost`/`source`.
    fn remove_bindings_from(&mut self, vhost: &str, source: &str) {
        let doomed: Vec<BindingDef> = self
            .bindings
            .range(source_floor(vhost, source)..)
            .take_while(|b| b.vhost == vhost && b.source == source)
            .cloned()
            .collect();
        for b in &doomed {
            self.remove_binding(b);
        }
    }

    /// Removes every binding to `vhost`/`kind`/`destination`.
    fn remove_bindings_to(&mut self, vhost: &str, kind: &str, destination: &str) {
        let floor: ByDestination = (
            vhost.to_string(),
            kind.to_string(),
            destination.to_string(),
            String::new(),
            String::new(),
            String::new(),
        );
        let doomed: Vec<ByDestination> = self
            .by_destination
            .range(floor..)
            .take_while(|k| k.0 == vhost && k.1 == kind && k.2 == destination)
            .cloned()
            .collect();
        for k in doomed {
            let b = from_dest_key(k);
            self.remove_binding(&b);
        }
    }

    /// Applies one change; idempotent.
    pub fn apply(&mut self, c: Change) {
        match c {
            Change::AddVhost { name } => {
                self.vhosts.entry(name.clone()).or_insert(VhostDef {
                    name,
                    ..Default::default()
                });
            }
            Change::PutVhost(v) => {
                self.vhosts.insert(v.name.clone(), v);
            }
            Change::DeleteVhost { name } => {
                self.vhosts.remove(&name);
                let in_vhost = |k: &Key| k.0 == name;
                self.permissions.retain(|k, _| !in_vhost(k));
                self.topic_permissions.retain(|k, _| k.0 != name);
                self.policies.retain(|k, _| k.0 != name);
                self.parameters.retain(|k, _| k.0 != name);
                self.exchanges.retain(|k, _| !in_vhost(k));
                self.queues.retain(|k, _| !in_vhost(k));
                let doomed: Vec<BindingDef> = self
                    .bindings
                    .range(source_floor(&name, "")..)
                    .take_while(|b| b.vhost == name)
                    .cloned()
                    .collect();
                for b in &doomed {
                    self.remove_binding(b);
                }
            }
            Change::PutUser(u) => {
                self.users.insert(u.name.clone(), u);
            }
            Change::DeleteUser { name } => {
                self.users.remove(&name);
                self.permissions.retain(|k, _| k.1 != name);
                self.topic_permissions.retain(|k, _| k.1 != name);
            }
            Change::SetTopicPermissions(t) => {
                self.topic_permissions
                    .insert((t.vhost.clone(), t.user.clone(), t.exchange.clone()), t);
            }
            Change::ClearTopicPermissions {
                vhost,
                user,
                exchange,
            } => {
                self.topic_permissions.retain(|k, _| {
                    !(k.0 == vhost && k.1 == user && exchange.as_ref().is_none_or(|x| *x == k.2))
                });
            }
            Change::SetPolicy(p) => {
                self.policies
                    .insert((p.vhost.clone(), p.name.clone(), p.operator), p);
            }
            Change::ClearPolicy {
                vhost,
                name,
                operator,
            } => {
                self.policies.remove(&(vhost, name, operator));
            }
            Change::SetParameter(p) => {
                self.parameters
                    .insert((p.vhost.clone(), p.component.clone(), p.name.clone()), p);
            }
            Change::ClearParameter {
                vhost,
                component,
                name,
            } => {
                self.parameters.remove(&(vhost, component, name));
            }
            Change::SetGlobalParameter(g) => {
                self.global_parameters.insert(g.name.clone(), g);
            }
            Change::ClearGlobalParameter { name } => {
                self.global_parameters.remove(&name);
            }
            Change::SetPermissions(p) => {
                self.permissions
                    .insert((p.vhost.clone(), p.user.clone()), p);
            }
            Change::ClearPermissions { vhost, user } => {
                self.permissions.remove(&(vhost, user));
            }
            Change::DeclareExchange(x) => {
                self.exchanges.insert((x.vhost.clone(), x.name.clone()), x);
            }
            Change::DeleteExchange { vhost, name } => {
                self.exchanges.remove(&(vhost.clone(), name.clone()));
                self.remove_bindings_from(&vhost, &name);
                self.remove_bindings_to(&vhost, "exchange", &name);
            }
            Change::DeclareQueue(q) => {
                self.next_queue_id = self.next_queue_id.max(q.id + 1);
                self.queues.insert((q.vhost.clone(), q.name.clone()), q);
            }
            Change::DeleteQueue { vhost, name } => {
                self.queues.remove(&(vhost.clone(), name.clone()));
                self.remove_bindings_to(&vhost, "queue", &name);
            }
            Change::Bind(b) => self.add_binding(b),
            Change::Unbind(b) => self.remove_binding(&b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(source: &str, kind: &str, dest: &str, key: &str) -> BindingDef {
        BindingDef {
            vhost: "/".into(),
            source: source.into(),
            destination: dest.into(),
            destination_kind: kind.into(),
            routing_key: key.into(),
            arguments: String::new(),
        }
    }

    #[test]
    fn deleting_ends_drops_their_bindings() {
        let mut s = DefinitionsState::default();
        let b = binding("x", "queue", "q", "k");
        s.apply(Change::Bind(b.clone()));
        s.apply(Change::Bind(b));
        s.apply(Change::Bind(binding("x", "exchange", "y", "k")));
        s.apply(Change::Bind(binding("y", "queue", "q2", "k")));
        s.apply(Change::Bind(binding("z", "exchange", "x", "k")));
        assert_eq!(s.bindings().count(), 4);
        s.apply(Change::DeleteQueue {
            vhost: "/".into(),
            name: "q".into(),
        });
        assert_eq!(s.bindings().count(), 3);
        // x is both a source and a destination.
        s.apply(Change::DeleteExchange {
            vhost: "/".into(),
            name: "x".into(),
        });
        let left: Vec<_> = s.bindings().cloned().collect();
        assert_eq!(left, vec![binding("y", "queue", "q2", "k")]);
        assert_eq!(s.by_destination.len(), 1);
    }

    #[test]
    fn snapshot_round_trips() {
        let mut s = DefinitionsState::default();
        s.apply(Change::AddVhost { name: "/".into() });
        s.apply(Change::DeclareQueue(QueueDef {
            vhost: "/".into(),
            name: "q".into(),
            id: 41,
            auto_delete: false,
            arguments: String::new(),
        }));
        s.apply(Change::Bind(binding("amq.direct", "queue", "q", "q")));
        let back = DefinitionsState::from_snapshot(s.to_snapshot());
        assert_eq!(back, s);
        assert_eq!(back.next_queue_id, 42);
    }
}
