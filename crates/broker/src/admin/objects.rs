//! Queues, exchanges, bindings, connections, channels and consumers:
//! listings, and the operator's actions on them.

use std::collections::HashMap;
use std::sync::Arc;

use warren_protocol::ShortStr;

use super::info::{
    BindingInfo, ChannelInfo, ConnectionInfo, ConsumerInfo, ExchangeInfo, QueueInfo, StatusInfo,
};
use super::{Admin, AdminError, AdminResult};
use crate::alarms;
use crate::connections::ConnectionEntry;
use crate::queue::Queue;

impl Admin {
    fn queue(&self, vhost: &str, name: &str) -> AdminResult<Arc<Queue>> {
        self.vhost(vhost)?
            .queue(&ShortStr::from(name))
            .map_err(|_| AdminError::NoSuchQueue {
                vhost: vhost.to_string(),
                name: name.to_string(),
            })
    }

    fn connections_by_id(&self) -> HashMap<u64, Arc<ConnectionEntry>> {
        self.broker
            .connections
            .list()
            .into_iter()
            .map(|c| (c.id, c))
            .collect()
    }

    /// A vhost's queues (rabbitmqctl lists none, without error, for a
    /// missing vhost).
    pub fn queues(&self, vhost: &str) -> Vec<QueueInfo> {
        let Some(v) = self.broker.vhost(vhost) else {
            return Vec::new();
        };
        let conns = self.connections_by_id();
        v.queues()
            .iter()
            .map(|q| {
                let owner = q.owner.and_then(|id| conns.get(&id)).map(|c| c.pid.clone());
                QueueInfo::of(q, owner)
            })
            .collect()
    }

    pub fn queue_info(&self, vhost: &str, name: &str) -> AdminResult<QueueInfo> {
        let q = self.queue(vhost, name)?;
        let owner = q
            .owner
            .and_then(|id| self.broker.connections.get(id))
            .map(|c| c.pid.clone());
        Ok(QueueInfo::of(&q, owner))
    }

    pub fn exchanges(&self, vhost: &str) -> Vec<ExchangeInfo> {
        let Some(v) = self.broker.vhost(vhost) else {
            return Vec::new();
        };
        v.exchanges().iter().map(|x| ExchangeInfo::of(x)).collect()
    }

    /// A vhost's bindings, the default exchange's implicit ones first.
    pub fn bindings(&self, vhost: &str) -> Vec<BindingInfo> {
        let Some(v) = self.broker.vhost(vhost) else {
            return Vec::new();
        };
        v.bindings()
            .into_iter()
            .map(|(source, kind, dest, key, args)| BindingInfo {
                vhost: vhost.to_string(),
                source_name: source.to_string(),
                source_kind: "exchange",
                destination_name: dest.to_string(),
                destination_kind: kind,
                routing_key: key.to_string(),
                arguments: sorted_arguments(&args),
            })
            .collect()
    }

    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.broker
            .connections
            .list()
            .iter()
            .map(|c| ConnectionInfo::of(c))
            .collect()
    }

    pub fn channels(&self) -> Vec<ChannelInfo> {
        let mut out = Vec::new();
        for c in self.broker.connections.list() {
            let mut chans = c.channels();
            chans.sort_by_key(|ch| ch.number);
            out.extend(chans.iter().map(|ch| ChannelInfo::of(&c, ch)));
        }
        out
    }

    pub fn consumers(&self, vhost: &str) -> Vec<ConsumerInfo> {
        let Some(v) = self.broker.vhost(vhost) else {
            return Vec::new();
        };
        let conns = self.connections_by_id();
        let mut out = Vec::new();
        for q in v.queues() {
            for c in q.consumer_infos() {
                out.push(ConsumerInfo::of(
                    &q,
                    &c,
                    conns.get(&c.connection_id).map(|e| &**e),
                ));
            }
        }
        out
    }

    /// Drops a queue's ready messages; returns how many, once their
    /// removal is durable. Blocks (the control socket calls it on a
    /// blocking thread; the HTTP API has [`Admin::purge_durably`]). Like
    /// `rabbitmqctl purge_queue`, it purges any queue, exclusive or not.
    pub fn purge_queue(&self, vhost: &str, name: &str) -> AdminResult<u32> {
        let n = self.queue(vhost, name)?.purge();
        let v = self.vhost(vhost)?;
        super::messages::wait_durable_blocking(&v, self.marks_ticket(&v))?;
        Ok(n)
    }

    /// Deletes a queue as queue.delete would (but regardless of which
    /// connection owns it); returns its ready message count.
    pub fn delete_queue(
        &self,
        vhost: &str,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> AdminResult<u32> {
        let q = self.queue(vhost, name)?;
        let stats = q.stats();
        if if_unused && stats.consumers > 0 {
            return Err(AdminError::QueueInUse {
                vhost: vhost.to_string(),
                name: name.to_string(),
            });
        }
        if if_empty && stats.ready > 0 {
            return Err(AdminError::QueueNotEmpty {
                vhost: vhost.to_string(),
                name: name.to_string(),
            });
        }
        Ok(self.vhost(vhost)?.remove_queue(&q)?)
    }

    /// Closes one connection (by name or pid) with 320 and `reason`.
    pub fn close_connection(&self, name_or_pid: &str, reason: &str) -> AdminResult<()> {
        let c = self.broker.connections.find(name_or_pid).ok_or_else(|| {
            AdminError::NoSuchConnection {
                name: name_or_pid.to_string(),
            }
        })?;
        c.force_close(reason);
        Ok(())
    }

    /// Closes every connection (of a vhost, or of a user); returns how
    /// many.
    pub fn close_all_connections(
        &self,
        vhost: Option<&str>,
        user: Option<&str>,
        reason: &str,
    ) -> usize {
        self.broker.connections.close_where(
            |c| vhost.is_none_or(|v| c.meta.vhost == v) && user.is_none_or(|u| c.meta.user == u),
            reason,
        )
    }

    pub fn status(&self) -> StatusInfo {
        let state = self.broker.alarms.state();
        let total = alarms::total_memory();
        let mut active = Vec::new();
        if state.memory {
            active.push("memory");
        }
        if state.disk {
            active.push("disk");
        }
        let disk_free = self
            .broker
            .persistence()
            .and_then(|p| alarms::disk_free(&p.data_dir))
            .unwrap_or(0);
        StatusInfo {
            product: "Warren",
            version: env!("CARGO_PKG_VERSION"),
            node: crate::connections::node_name(),
            os_pid: std::process::id(),
            memory_used: alarms::process_rss(),
            memory_high_watermark: self.broker.alarms.watermark().bytes(total),
            total_memory: total,
            disk_free,
            disk_free_limit: self.broker.alarms.disk_free_limit(),
            alarms: active,
            connections: self.broker.connections.len(),
            queues: self.broker.vhosts().iter().map(|v| v.queues().len()).sum(),
            vhosts: self.broker.vhosts().len(),
        }
    }
}

/// Binding arguments as RabbitMQ lists them: sorted by key (it keeps
/// bindings' arguments sorted; queues' and exchanges' as declared).
fn sorted_arguments(t: &warren_protocol::FieldTable) -> serde_json::Value {
    let v = super::json::table_to_json(t);
    match v {
        serde_json::Value::Object(m) => {
            let mut items: Vec<_> = m.into_iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(items.into_iter().collect())
        }
        other => other,
    }
}
