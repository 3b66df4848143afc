//! Rebuilding a vhost's durable state at startup.

use std::sync::Arc;

use warren_protocol::ShortStr;

use super::args::{queue_limits, rs, Checks};
use super::VirtualHost;
use crate::definitions::{self, DefinitionsState};
use crate::exchange::{Exchange, ExchangeKind};
use crate::queue::{Queue, QueueLimits, QueueOptions, QueueSetup, RecoveredQueue};
use crate::routing::Binding;

impl VirtualHost {
    /// Rebuilds durable exchanges, queues (with their messages) and
    /// bindings from the definitions, then drops message-store segments
    /// nothing references any more.
    pub fn recover(&self, defs: &DefinitionsState) {
        let Some(storage) = &self.storage else {
            return;
        };
        let mine = |k: &(String, String)| k.0 == self.name;
        let mut exchanges = 0;
        for x in defs
            .exchanges
            .iter()
            .filter(|(k, _)| mine(k))
            .map(|(_, x)| x)
        {
            exchanges += 1;
            let Some(kind) = ExchangeKind::parse(x.kind.as_bytes()) else {
                tracing::warn!(
                    "skipping exchange '{}' of unknown type '{}'",
                    x.name,
                    x.kind
                );
                continue;
            };
            let ex = Exchange::new(
                ShortStr::from(x.name.as_str()),
                self.name.clone(),
                kind,
                true,
                x.auto_delete,
                x.internal,
                definitions::decode_table(&x.arguments),
            );
            self.attach_delay_store(&ex);
            self.exchanges.write().insert(ex.name.clone(), Arc::new(ex));
        }
        let mut recovered_messages = 0u64;
        let mut queues = 0;
        for qd in defs.queues.iter().filter(|(k, _)| mine(k)).map(|(_, q)| q) {
            queues += 1;
            let name = ShortStr::from(qd.name.as_str());
            let arguments = definitions::decode_table(&qd.arguments);
            let what = rs("queue", &name, &self.name);
            let limits = match queue_limits(&arguments, &what, true, false, Checks::Recover) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("{what}: arguments ignored at recovery: {}", e.reply_text());
                    QueueLimits::default()
                }
            };
            let handle = storage.queue_handle(qd.id, true);
            let lanes = usize::from(limits.max_priority.unwrap_or(0)) + 1;
            let (recovered, errors) = RecoveredQueue::open(&handle, lanes);
            for e in errors {
                tracing::error!("cannot recover the messages of {what}: {e}");
            }
            recovered_messages += recovered.live();
            let q = Queue::new(QueueSetup {
                name: name.clone(),
                vhost: self.name.clone(),
                options: QueueOptions {
                    durable: true,
                    exclusive: false,
                    auto_delete: qd.auto_delete,
                    arguments,
                },
                owner: None,
                limits,
                storage: Some(handle),
                recovered: Some(recovered),
            });
            self.queues.write().insert(name, Arc::new(q));
        }
        for b in defs.bindings().filter(|b| b.vhost == self.name) {
            let source = ShortStr::from(b.source.as_str());
            let dest = ShortStr::from(b.destination.as_str());
            let is_queue = b.destination_kind == "queue";
            let (Ok(ex), Ok(destination)) = (
                self.exchange(&source),
                self.binding_target(&dest, is_queue, 0),
            ) else {
                continue;
            };
            let _ = ex.bind(Binding {
                destination,
                routing_key: ShortStr::from(b.routing_key.as_str()),
                arguments: definitions::decode_table(&b.arguments),
            });
        }
        storage.store.remove_unreferenced();
        tracing::info!(
            "vhost '{}': recovered {} exchange(s), {} queue(s), {} message(s)",
            self.name,
            exchanges,
            queues,
            recovered_messages
        );
    }
}
