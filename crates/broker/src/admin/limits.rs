//! Vhost limits (`set_vhost_limits`, `clear_vhost_limits`,
//! `list_vhost_limits`): stored as RabbitMQ stores them, the runtime
//! parameter `vhost-limits`/`limits` of the vhost (so they are exported
//! and imported with the definitions), and put in force at once. User
//! limits live with the user (`admin/users.rs`).

use serde_json::{Map, Value};

use super::{Admin, AdminError, AdminResult};
use crate::definitions::{Change, ParameterDef};
use crate::limits::{self, Kind, VHOST_COMPONENT};

impl Admin {
    /// Merges `limits` into the vhost's limits.
    pub fn set_vhost_limits(&self, vhost: &str, given: &Value) -> AdminResult<()> {
        let parsed = limits::validate(given, Kind::Vhost).map_err(AdminError::invalid)?;
        self.vhost(vhost)?;
        let mut all = self.broker.vhost_limits(vhost);
        all.extend(parsed);
        self.store_parameter(limits_parameter(vhost, all))?;
        self.limits_changed(vhost);
        Ok(())
    }

    /// Removes one limit, or all of them (`all`).
    pub fn clear_vhost_limits(&self, vhost: &str, which: &str) -> AdminResult<()> {
        self.vhost(vhost)?;
        let mut all = self.broker.vhost_limits(vhost);
        if which == "all" {
            all.clear();
        } else {
            all.remove(which);
        }
        if all.is_empty() {
            let _g = self.broker.ddl();
            if self
                .record(Change::ClearParameter {
                    vhost: vhost.to_string(),
                    component: VHOST_COMPONENT.to_string(),
                    name: "limits".to_string(),
                })?
                .is_replicated()
            {
                return Ok(());
            }
            self.broker.runtime.write().parameters.remove(&(
                vhost.to_string(),
                VHOST_COMPONENT.to_string(),
                "limits".to_string(),
            ));
        } else {
            self.store_parameter(limits_parameter(vhost, all))?;
        }
        self.limits_changed(vhost);
        Ok(())
    }

    /// The limits of one vhost, or of every vhost that has some.
    pub fn vhost_limits(
        &self,
        vhost: Option<&str>,
    ) -> AdminResult<Vec<(String, Map<String, Value>)>> {
        if let Some(v) = vhost {
            self.vhost(v)?;
            return Ok(vec![(v.to_string(), self.broker.vhost_limits(v))]);
        }
        Ok(self
            .broker
            .vhosts()
            .iter()
            .map(|v| (v.name.clone(), self.broker.vhost_limits(&v.name)))
            .filter(|(_, l)| !l.is_empty())
            .collect())
    }

    pub(super) fn limits_changed(&self, vhost: &str) {
        if let Some(v) = self.broker.vhost(vhost) {
            v.set_max_queues(limits::get(&self.broker.vhost_limits(vhost), "max-queues"));
        }
        self.broker.limits_reported.reset();
    }
}

/// The `vhost-limits` parameter holding `limits` for `vhost`.
fn limits_parameter(vhost: &str, limits: Map<String, Value>) -> ParameterDef {
    ParameterDef {
        vhost: vhost.to_string(),
        component: VHOST_COMPONENT.to_string(),
        name: "limits".to_string(),
        value: Value::Object(limits),
    }
}
