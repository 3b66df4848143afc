//! Virtual hosts: add (idempotent, as rabbitmqctl), delete, list.

use super::info::VhostInfo;
use super::{Admin, AdminError, AdminResult};
use crate::definitions::{Change, VhostDef};

impl Admin {
    /// Creates a vhost; an existing one keeps its contents (its metadata
    /// is updated when `meta` says more than the name).
    pub fn add_vhost(&self, meta: VhostDef) -> AdminResult<bool> {
        if meta.name.is_empty() {
            return Err(AdminError::invalid("a vhost name can't be empty"));
        }
        let _g = self.broker.ddl();
        let existing = self.broker.vhost(&meta.name);
        if let Some(v) = &existing {
            let current = v.meta();
            let unchanged = meta.description.is_empty()
                && meta.tags.is_empty()
                && meta.default_queue_type.is_none();
            if unchanged || current == meta {
                return Ok(false);
            }
        }
        if self.record(Change::PutVhost(meta.clone()))?.is_replicated() {
            return Ok(existing.is_none());
        }
        self.broker
            .create_vhost(meta)
            .map_err(AdminError::storage)?;
        Ok(existing.is_none())
    }

    /// Deletes a vhost: its connections are closed (320, as RabbitMQ), its
    /// queues, exchanges, permissions, policies and data go.
    pub fn delete_vhost(&self, name: &str) -> AdminResult<()> {
        let vhost = {
            let _g = self.broker.ddl();
            if self.broker.vhost(name).is_none() {
                return Err(AdminError::NoSuchVhost {
                    name: name.to_string(),
                });
            }
            if self
                .record(Change::DeleteVhost {
                    name: name.to_string(),
                })?
                .is_replicated()
            {
                return Ok(());
            }
            self.broker.auth.clear_vhost(name);
            let mut rt = self.broker.runtime.write();
            rt.policies.retain(|k, _| k.0 != name);
            rt.parameters.retain(|k, _| k.0 != name);
            drop(rt);
            self.broker.remove_vhost(name)
        };
        let why = format!("vhost '{name}' is deleted");
        self.broker
            .connections
            .close_where(|c| c.meta.vhost == name, &why);
        if let Some(v) = vhost {
            v.destroy();
        }
        Ok(())
    }

    pub fn vhosts(&self) -> Vec<VhostInfo> {
        self.broker
            .vhosts()
            .iter()
            .map(|v| VhostInfo::of(v))
            .collect()
    }
}
