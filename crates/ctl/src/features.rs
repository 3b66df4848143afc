//! Feature flags. Warren has no mixed-version cluster to protect, so its
//! behaviour is stated as RabbitMQ 3.10.8's feature flags, every one
//! enabled: the nine that release defines (`rabbit_core_ff.erl` and the
//! management agent's `rabbit_mgmt_ff.erl` at tag v3.10.8). Flags of later
//! releases (`feature_flags_v2`, `direct_exchange_routing_v2`,
//! `classic_queue_type_delivery_support`, `stream_single_active_consumer`,
//! `listener_records_in_ets`, `tracking_records_in_ets`, …) are 3.11's and
//! are not listed, as 3.10.8 does not list them.
//!
//! A flag says what the node's data and protocol behaviour are compatible
//! with, not that every feature behind it exists: `stream_queue` is
//! enabled as on any 3.10 node, while Warren refuses stream queues
//! (docs/cli.md says so).

use serde_json::{json, Value};

use crate::commands::Ctx;
use crate::diagnostics::node;
use crate::output::cell;
use crate::{Failure, EX_DATAERR, EX_USAGE};

/// name, description, documentation URL, providing application: as
/// RabbitMQ 3.10.8's `rabbit_ff_extra:cli_info()` reports them (sorted).
pub(crate) const FLAGS: &[(&str, &str, &str, &str)] = &[
    (
        "classic_mirrored_queue_version",
        "Support setting version for classic mirrored queues",
        "",
        "rabbit",
    ),
    (
        "drop_unroutable_metric",
        "Count unroutable publishes to be dropped in stats",
        "",
        "rabbitmq_management_agent",
    ),
    (
        "empty_basic_get_metric",
        "Count AMQP `basic.get` on empty queues in stats",
        "",
        "rabbitmq_management_agent",
    ),
    (
        "implicit_default_bindings",
        "Default bindings are now implicit, instead of being stored in the database",
        "",
        "rabbit",
    ),
    (
        "maintenance_mode_status",
        "Maintenance mode status",
        "",
        "rabbit",
    ),
    (
        "quorum_queue",
        "Support queues of type `quorum`",
        "https://www.rabbitmq.com/quorum-queues.html",
        "rabbit",
    ),
    (
        "stream_queue",
        "Support queues of type `stream`",
        "https://www.rabbitmq.com/stream.html",
        "rabbit",
    ),
    (
        "user_limits",
        "Configure connection and channel limits for a user",
        "",
        "rabbit",
    ),
    (
        "virtual_host_metadata",
        "Virtual host metadata (description, tags, etc)",
        "",
        "rabbit",
    ),
];

/// Every flag with every column, as `list_feature_flags` rows.
pub(crate) fn rows() -> Vec<Value> {
    FLAGS
        .iter()
        .map(|(name, desc, url, app)| {
            json!({"name": name, "state": "enabled", "stability": "stable",
                   "provided_by": app, "desc": desc, "doc_url": url})
        })
        .collect()
}

pub(crate) fn list_feature_flags(c: &Ctx) -> Result<(), Failure> {
    let columns = crate::commands::listing_columns(c)?;
    // The node must be up (RabbitMQ's command requires it running).
    node(c)?;
    c.out.info("Listing feature flags ...");
    c.out.table(&columns, &rows(), true, &|_, v| cell(v));
    Ok(())
}

pub(crate) fn enable_feature_flag(c: &Ctx) -> Result<(), Failure> {
    let name = c.arg(0);
    if name.is_empty() {
        return Err(Failure::new(
            EX_DATAERR,
            format!(
                "Error (argument validation): feature_flag cannot be an empty string.\nArguments given:\n\t{}",
                c.line.raw.join(" ")
            ),
        ));
    }
    let n = node(c)?;
    if name == "all" {
        c.out.info("Enabling all feature flags ...");
        return Ok(());
    }
    c.out.info(&format!("Enabling feature flag \"{name}\" ..."));
    if FLAGS.iter().any(|f| f.0 == name) {
        // Already enabled: RabbitMQ answers ok and prints nothing more.
        return Ok(());
    }
    Err(Failure::new(
        EX_USAGE,
        format!(
            "Error:\nThis feature flag is not supported by node {}",
            n.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_sorted_and_enabled() {
        let names: Vec<&str> = FLAGS.iter().map(|f| f.0).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 9);
        assert!(rows().iter().all(|r| r["state"] == "enabled"));
    }
}
