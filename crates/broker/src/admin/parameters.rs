//! Runtime parameters and global parameters (`rabbitmqctl set_parameter`,
//! `set_global_parameter`, `set_cluster_name`; `/api/parameters`,
//! `/api/global-parameters`, `/api/cluster-name`).
//!
//! A parameter belongs to a component; RabbitMQ's components come with
//! its plugins (shovel, federation…). Warren has three: `vhost-limits`
//! (validated and put in force, as `set_vhost_limits`), and `policy` /
//! `operator_policy` (a policy given in parameter form, as RabbitMQ's
//! exports list operator policies). Any other component is refused with
//! RabbitMQ's own text for a component whose plugin is not enabled
//! ("component shovel not found") rather than stored as dead data.
//!
//! Global parameters are stored as RabbitMQ stores them, whatever their
//! name; `cluster_name` is applied (the overview's and the status's
//! cluster name, the `/api/cluster-name` resource).

use serde_json::{json, Value};

use super::{Admin, AdminError, AdminResult};
use crate::definitions::{Change, GlobalParameterDef, ParameterDef, PolicyDef};
use crate::limits::{self, Kind, VHOST_COMPONENT};

/// The global parameter holding the cluster's name.
pub const CLUSTER_NAME: &str = "cluster_name";

/// RabbitMQ's refusal of a component no enabled plugin provides.
fn component_not_found(component: &str) -> AdminError {
    AdminError::invalid(format!(
        "Validation failed\n\ncomponent {component} not found\n"
    ))
}

fn no_such_parameter(vhost: &str, component: &str, name: &str) -> AdminError {
    AdminError::NoSuchParameter {
        vhost: vhost.into(),
        component: component.into(),
        name: name.into(),
    }
}

impl Admin {
    /// rabbitmqctl set_parameter: a parameter of a component Warren has.
    pub fn set_parameter(&self, p: ParameterDef) -> AdminResult<()> {
        match p.component.as_str() {
            VHOST_COMPONENT => {
                // RabbitMQ leaves `[]` behind once a vhost's limits are
                // cleared over HTTP, and exports it: no limits.
                if matches!(&p.value, Value::Array(a) if a.is_empty()) {
                    self.vhost(&p.vhost)?;
                    if self.broker.vhost_limits(&p.vhost).is_empty() {
                        return Ok(());
                    }
                    return self.clear_vhost_limits(&p.vhost, "all");
                }
                let parsed =
                    limits::validate(&p.value, Kind::Vhost).map_err(AdminError::invalid)?;
                let vhost = p.vhost.clone();
                self.vhost(&vhost)?;
                // RabbitMQ keeps a vhost's limits under the name `limits`.
                self.store_parameter(ParameterDef {
                    name: "limits".into(),
                    value: Value::Object(parsed),
                    ..p
                })?;
                self.limits_changed(&vhost);
                Ok(())
            }
            "policy" | "operator_policy" => self.set_policy(policy_of(&p)?),
            other => Err(component_not_found(other)),
        }
    }

    /// Stores a parameter as it is (the components' own code validated it).
    pub(crate) fn store_parameter(&self, p: ParameterDef) -> AdminResult<()> {
        let _g = self.broker.ddl();
        self.vhost(&p.vhost)?;
        if self
            .record(Change::SetParameter(p.clone()))?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker
            .runtime
            .write()
            .parameters
            .insert((p.vhost.clone(), p.component.clone(), p.name.clone()), p);
        Ok(())
    }

    /// rabbitmqctl clear_parameter. A parameter stored by an older Warren
    /// under another component can be cleared too.
    pub fn clear_parameter(&self, vhost: &str, component: &str, name: &str) -> AdminResult<()> {
        self.vhost(vhost)?;
        match component {
            "policy" | "operator_policy" => {
                let cleared = if component == "policy" {
                    self.clear_policy(vhost, name)?
                } else {
                    self.clear_operator_policy(vhost, name)?
                };
                return if cleared {
                    Ok(())
                } else {
                    Err(no_such_parameter(vhost, component, name))
                };
            }
            VHOST_COMPONENT if name == "limits" => {
                if self.broker.vhost_limits(vhost).is_empty() {
                    return Err(no_such_parameter(vhost, component, name));
                }
                return self.clear_vhost_limits(vhost, "all");
            }
            _ => {}
        }
        let _g = self.broker.ddl();
        let key = (vhost.to_string(), component.to_string(), name.to_string());
        if !self.broker.runtime.read().parameters.contains_key(&key) {
            return Err(no_such_parameter(vhost, component, name));
        }
        if self
            .record(Change::ClearParameter {
                vhost: vhost.into(),
                component: component.into(),
                name: name.into(),
            })?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker.runtime.write().parameters.remove(&key);
        Ok(())
    }

    /// The parameters (of one vhost and/or component), with the operator
    /// policies in parameter form as RabbitMQ lists them, by vhost,
    /// component and name.
    pub fn parameters(&self, vhost: Option<&str>, component: Option<&str>) -> Vec<ParameterDef> {
        let mut out: Vec<ParameterDef> = self
            .broker
            .runtime
            .read()
            .parameters
            .values()
            .cloned()
            .chain(
                self.operator_policies(None)
                    .into_iter()
                    .map(operator_policy_parameter),
            )
            .filter(|p| vhost.is_none_or(|v| v == p.vhost))
            .filter(|p| component.is_none_or(|c| c == p.component))
            .collect();
        out.sort_by(|a, b| {
            (&a.vhost, &a.component, &a.name).cmp(&(&b.vhost, &b.component, &b.name))
        });
        out
    }

    pub fn set_global_parameter(&self, g: GlobalParameterDef) -> AdminResult<()> {
        if g.name.is_empty() {
            return Err(AdminError::invalid(
                "a global parameter's name can't be empty",
            ));
        }
        let _g = self.broker.ddl();
        if self
            .record(Change::SetGlobalParameter(g.clone()))?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker
            .runtime
            .write()
            .global_parameters
            .insert(g.name.clone(), g);
        Ok(())
    }

    pub fn clear_global_parameter(&self, name: &str) -> AdminResult<()> {
        let _g = self.broker.ddl();
        if !self
            .broker
            .runtime
            .read()
            .global_parameters
            .contains_key(name)
        {
            return Err(no_such_parameter("", "global", name));
        }
        if self
            .record(Change::ClearGlobalParameter { name: name.into() })?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker.runtime.write().global_parameters.remove(name);
        Ok(())
    }

    /// The global parameters, by name.
    pub fn global_parameters(&self) -> Vec<GlobalParameterDef> {
        let mut out: Vec<GlobalParameterDef> = self
            .broker
            .runtime
            .read()
            .global_parameters
            .values()
            .cloned()
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// rabbitmqctl set_cluster_name (and the `cluster_name` config key at
    /// boot): the `cluster_name` global parameter, kept across restarts.
    pub fn set_cluster_name(&self, name: &str) -> AdminResult<()> {
        if name.is_empty() {
            return Err(AdminError::invalid("a cluster name can't be empty"));
        }
        // Set again at every boot from the configuration: journal changes only.
        if self.cluster_name().as_deref() == Some(name) {
            return Ok(());
        }
        self.set_global_parameter(GlobalParameterDef {
            name: CLUSTER_NAME.into(),
            value: Value::String(name.into()),
        })
    }

    /// The cluster name set, if any (RabbitMQ's default is the node name;
    /// front-ends fall back to it).
    pub fn cluster_name(&self) -> Option<String> {
        cluster_name(&self.broker)
    }
}

/// The cluster name set on `broker`, if any (for front-ends without an
/// `Admin`, such as the AMQP handshake's server properties).
pub fn cluster_name(broker: &crate::Broker) -> Option<String> {
    broker
        .runtime
        .read()
        .global_parameters
        .get(CLUSTER_NAME)
        .and_then(|g| match &g.value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
}

/// A `policy`/`operator_policy` parameter's value as a policy.
fn policy_of(p: &ParameterDef) -> AdminResult<PolicyDef> {
    let v = &p.value;
    let pattern = v
        .get("pattern")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::invalid("Validation failed\n\npattern not set\n"))?;
    let definition = v
        .get("definition")
        .cloned()
        .ok_or_else(|| AdminError::invalid("Validation failed\n\ndefinition not set\n"))?;
    Ok(PolicyDef {
        vhost: p.vhost.clone(),
        name: p.name.clone(),
        pattern: pattern.to_string(),
        apply_to: v
            .get("apply-to")
            .and_then(Value::as_str)
            .unwrap_or("all")
            .to_string(),
        definition,
        priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
        operator: p.component == "operator_policy",
    })
}

/// An operator policy in parameter form, as RabbitMQ lists and exports it.
pub(crate) fn operator_policy_parameter(p: PolicyDef) -> ParameterDef {
    ParameterDef {
        component: "operator_policy".into(),
        value: json!({"pattern": p.pattern, "definition": p.definition,
                      "priority": p.priority, "apply-to": p.apply_to}),
        vhost: p.vhost,
        name: p.name,
    }
}
