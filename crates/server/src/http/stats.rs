//! Message statistics in RabbitMQ's JSON shape: each counter `x` with
//! `x_details: {"rate": per second}`, plus the derived `deliver_get`.

use serde_json::{json, Map, Value};
use warren_broker::stats::{Metric, Rates, Snapshot};

/// Which statistics an object reports.
pub(crate) const QUEUE: &[Metric] = &[
    Metric::Ack,
    Metric::Deliver,
    Metric::DeliverNoAck,
    Metric::Get,
    Metric::GetEmpty,
    Metric::GetNoAck,
    Metric::Publish,
    Metric::Redeliver,
];

pub(crate) const EXCHANGE: &[Metric] = &[Metric::PublishIn, Metric::PublishOut];

/// Channels, vhosts and the overview.
pub(crate) const FLOW: &[Metric] = &[
    Metric::Ack,
    Metric::Confirm,
    Metric::Deliver,
    Metric::DeliverNoAck,
    Metric::DropUnroutable,
    Metric::Get,
    Metric::GetEmpty,
    Metric::GetNoAck,
    Metric::Publish,
    Metric::Redeliver,
    Metric::ReturnUnroutable,
];

const DELIVER_GET: [Metric; 4] = [
    Metric::Deliver,
    Metric::DeliverNoAck,
    Metric::Get,
    Metric::GetNoAck,
];

/// `{"rate": r}`.
pub(crate) fn details(rate: f64) -> Value {
    json!({ "rate": round(rate) })
}

/// Rates to one decimal place, as RabbitMQ shows them.
fn round(r: f64) -> f64 {
    (r * 10.0).round() / 10.0
}

/// The `message_stats` object, or `None` when nothing was ever counted
/// (RabbitMQ leaves the key out then). `always` includes it anyway.
pub(crate) fn message_stats(
    counts: &Snapshot,
    rates: &Rates,
    which: &[Metric],
    always: bool,
) -> Option<Value> {
    if !always && which.iter().all(|m| counts.get(*m) == 0) {
        return None;
    }
    let r = rates.all();
    let rate = |m: Metric| r[m.index()];
    let mut out = Map::new();
    for m in which {
        out.insert(m.name().into(), counts.get(*m).into());
        out.insert(format!("{}_details", m.name()), details(rate(*m)));
    }
    if which.contains(&Metric::Deliver) {
        let n: u64 = DELIVER_GET.iter().map(|m| counts.get(*m)).sum();
        let r: f64 = DELIVER_GET.iter().map(|m| rate(*m)).sum();
        out.insert("deliver_get".into(), n.into());
        out.insert("deliver_get_details".into(), details(r));
    }
    Some(Value::Object(out))
}

/// Inserts `message_stats` into `obj` when there is any.
pub(crate) fn add_message_stats(
    obj: &mut Map<String, Value>,
    counts: &Snapshot,
    rates: &Rates,
    which: &[Metric],
) {
    if let Some(v) = message_stats(counts, rates, which, false) {
        obj.insert("message_stats".into(), v);
    }
}
