//! Policies and operator policies: validation with RabbitMQ's texts, the
//! choice of the policy that applies to a queue or an exchange, and the
//! limits that result from a queue's arguments and its policies.
//!
//! As RabbitMQ: of the policies whose pattern matches a name (a regex
//! search) and whose `apply-to` covers the object, the one with the highest
//! priority applies (ties: the first by name); the same for operator
//! policies. For a queue, `message-ttl`, `expires`, `max-length` and
//! `max-length-bytes` take the least of the argument, the policy and the
//! operator policy; `dead-letter-exchange`, `dead-letter-routing-key`,
//! `overflow` and `queue-mode` take the argument if the queue has one, the
//! policy's otherwise (`rabbit_queue_type_util:args_policy_lookup`). For an
//! exchange, an `alternate-exchange` argument wins over the policy's.

use std::sync::Arc;

use serde_json::{Map, Value};
use warren_protocol::{FieldTable, ShortStr};

use crate::definitions::PolicyDef;
use crate::queue::{Overflow, QueueLimits};

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTo {
    All,
    Queues,
    Exchanges,
    ClassicQueues,
    QuorumQueues,
    Streams,
}

impl ApplyTo {
    pub fn parse(s: &str) -> Option<ApplyTo> {
        Some(match s {
            "all" => ApplyTo::All,
            "queues" => ApplyTo::Queues,
            "exchanges" => ApplyTo::Exchanges,
            "classic_queues" => ApplyTo::ClassicQueues,
            "quorum_queues" => ApplyTo::QuorumQueues,
            "streams" => ApplyTo::Streams,
            _ => return None,
        })
    }
}

/// The kind of object a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A queue; `quorum` when declared with `x-queue-type: quorum`.
    Queue {
        quorum: bool,
    },
    Exchange,
}

impl ApplyTo {
    fn covers(self, target: Target) -> bool {
        match (self, target) {
            (ApplyTo::All, _) => true,
            (ApplyTo::Queues, Target::Queue { .. }) => true,
            (ApplyTo::Exchanges, Target::Exchange) => true,
            (ApplyTo::ClassicQueues, Target::Queue { quorum }) => !quorum,
            (ApplyTo::QuorumQueues, Target::Queue { quorum }) => quorum,
            _ => false,
        }
    }
}

/// The keys of a policy definition Warren acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyKeys {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Option<Overflow>,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    pub alternate_exchange: Option<ShortStr>,
    /// Quorum queues only.
    pub delivery_limit: Option<u64>,
}

/// A validated, compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub def: PolicyDef,
    pattern: regex::bytes::Regex,
    apply_to: ApplyTo,
    pub keys: PolicyKeys,
}

impl Policy {
    /// Validates a policy as RabbitMQ does (texts of `rabbit_policy` and
    /// `rabbit_policies`) and compiles it.
    pub fn compile(def: PolicyDef) -> Result<Policy, String> {
        if def.name.is_empty() {
            return Err("a policy name can't be empty".into());
        }
        let pattern = regex::bytes::Regex::new(&def.pattern).map_err(|e| {
            let why = e.to_string().lines().last().unwrap_or("").trim().to_string();
            format!("Validation failed\n\npattern should be regular expression but is invalid: {{\"{why}\",0}}")
        })?;
        let apply_to = ApplyTo::parse(&def.apply_to).ok_or_else(|| {
            format!(
                "Validation failed\n\napply-to '{}' unrecognised; should be 'queues', 'exchanges' or 'all'",
                def.apply_to
            )
        })?;
        let keys = validate_definition(&def.definition, def.operator)
            .map_err(|e| format!("Validation failed\n\n{e}"))?;
        Ok(Policy {
            def,
            pattern,
            apply_to,
            keys,
        })
    }

    fn matches(&self, name: &[u8], target: Target) -> bool {
        self.apply_to.covers(target) && self.pattern.is_match(name)
    }
}

/// Erlang's `~p` of a JSON value, as RabbitMQ's validation texts print it.
fn erl(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Keys an operator policy may set (RabbitMQ 3.10's operator policy
/// validators).
pub const OPERATOR_KEYS: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
];

/// Keys RabbitMQ accepts in a policy definition that Warren stores but
/// does not need to act on: lazy mode (Warren's queues keep their backlog
/// on disk anyway), queue placement (one node), quorum and stream
/// settings. Classic mirroring's `ha-*` keys are refused (see
/// [`mirroring_refusal`]); federation's keys are unrecognised, as they are
/// by a RabbitMQ without the federation plugin.
const ACCEPTED_KEYS: &[&str] = &[
    "queue-mode",
    "queue-version",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "queue-master-locator",
    "queue-leader-locator",
    "max-age",
    "stream-max-segment-size-bytes",
];

/// RabbitMQ 3.10 accepts classic mirroring's `ha-*` keys; Warren would
/// ignore them (one node, no mirrors), so they are refused with the
/// reason and the replacement rather than stored as if they worked.
pub fn mirroring_refusal(map: &Map<String, Value>) -> Option<String> {
    let mut ha: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("ha-"))
        .collect();
    if ha.is_empty() {
        return None;
    }
    ha.sort_unstable();
    Some(format!(
        "{} not supported: Warren does not do classic queue mirroring (its queues are not \
         replicated); quorum queues (x-queue-type: quorum) are the replacement",
        ha.join(", ")
    ))
}

/// Checks every key of a definition; returns what Warren acts on.
pub fn validate_definition(def: &Value, operator: bool) -> Result<PolicyKeys, String> {
    let Value::Object(map) = def else {
        return Err("no policy provided".into());
    };
    if map.is_empty() {
        return Err("no policy provided".into());
    }
    if !operator {
        if let Some(e) = mirroring_refusal(map) {
            return Err(e);
        }
    }
    let mut unknown: Vec<&String> = map
        .keys()
        .filter(|k| {
            if operator {
                !OPERATOR_KEYS.contains(&k.as_str())
            } else {
                !KNOWN_KEYS.contains(&k.as_str()) && !ACCEPTED_KEYS.contains(&k.as_str())
            }
        })
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        let list: Vec<String> = unknown
            .iter()
            .map(|k| format!("{{<<\"{k}\">>,{}}}", erl(&map[k.as_str()])))
            .collect();
        return Err(format!(
            "[{}] are not recognised policy settings",
            list.join(",")
        ));
    }
    let mut keys = PolicyKeys::default();
    let int = |key: &str, min: u64, what: &str| -> Result<Option<u64>, String> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= min => Ok(Some(n)),
                _ => Err(format!("{} is not a valid {what}", erl(v))),
            },
        }
    };
    let text = |key: &str, what: &str| -> Result<Option<ShortStr>, String> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() <= 255 => Ok(Some(ShortStr::from(s.as_str()))),
            Some(v) => Err(format!("{} is not a valid {what}", erl(v))),
        }
    };
    keys.message_ttl = int("message-ttl", 0, "message TTL")?;
    keys.expires = int("expires", 1, "queue expiry")?;
    keys.max_length = int("max-length", 0, "maximum length")?;
    keys.max_length_bytes = int("max-length-bytes", 0, "maximum length in bytes")?;
    int("max-in-memory-length", 0, "maximum memory length")?;
    int("max-in-memory-bytes", 0, "maximum memory in bytes")?;
    keys.delivery_limit = int("delivery-limit", 0, "delivery limit")?;
    keys.dead_letter_exchange = text("dead-letter-exchange", "dead letter exchange name")?;
    keys.dead_letter_routing_key = text("dead-letter-routing-key", "dead letter routing key")?;
    keys.alternate_exchange = text("alternate-exchange", "alternate exchange name")?;
    keys.overflow = match map.get("overflow") {
        None => None,
        Some(Value::String(s)) if s == "drop-head" => Some(Overflow::DropHead),
        Some(Value::String(s)) if s == "reject-publish" || s == "reject-publish-dlx" => {
            Some(Overflow::RejectPublish)
        }
        Some(v) => return Err(format!("{} is not a valid overflow value", erl(v))),
    };
    match map.get("queue-mode") {
        None => {}
        Some(Value::String(s)) if s == "default" || s == "lazy" => {}
        Some(v) => return Err(format!("{} is not a valid queue-mode value", erl(v))),
    }
    match map.get("queue-version") {
        None => {}
        Some(v) if v.as_u64() == Some(1) || v.as_u64() == Some(2) => {}
        Some(v) => return Err(format!("{} is not a valid queue-version value", erl(v))),
    }
    // A policy may set dead-letter-routing-key alone (RabbitMQ accepts it;
    // it takes effect with a dead-letter exchange from the arguments).
    Ok(keys)
}

/// Keys Warren acts on.
const KNOWN_KEYS: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "alternate-exchange",
    "delivery-limit",
];

/// A stored policy without `ha-*` keys: a policy journaled before Warren
/// refused them keeps its other keys in force.
fn without_mirroring(d: &PolicyDef) -> PolicyDef {
    let mut d = d.clone();
    if let Value::Object(m) = &mut d.definition {
        m.retain(|k, _| !k.starts_with("ha-"));
    }
    d
}

/// A vhost's policies, compiled, best first.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Arc<Policy>>,
}

impl PolicySet {
    /// Compiles the stored policies of one vhost; a stored policy that no
    /// longer compiles (it was validated when set) is skipped with a
    /// warning.
    pub fn new<'a>(defs: impl IntoIterator<Item = &'a PolicyDef>) -> PolicySet {
        let mut policies: Vec<Arc<Policy>> = defs
            .into_iter()
            .filter_map(|d| match Policy::compile(without_mirroring(d)) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    tracing::warn!("policy '{}' in vhost '{}' ignored: {e}", d.name, d.vhost);
                    None
                }
            })
            .collect();
        policies.sort_by(|a, b| {
            b.def
                .priority
                .cmp(&a.def.priority)
                .then_with(|| a.def.name.cmp(&b.def.name))
        });
        PolicySet { policies }
    }

    /// The policy and the operator policy that apply to `name`.
    pub fn applied(&self, name: &[u8], target: Target) -> Applied {
        let pick = |operator: bool| {
            self.policies
                .iter()
                .find(|p| p.def.operator == operator && p.matches(name, target))
                .cloned()
        };
        Applied {
            policy: pick(false),
            operator: pick(true),
        }
    }
}

/// The policies in force on one queue or exchange.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub policy: Option<Arc<Policy>>,
    pub operator: Option<Arc<Policy>>,
}

fn least(values: [Option<u64>; 3]) -> Option<u64> {
    values.into_iter().flatten().min()
}

impl Applied {
    pub fn policy_name(&self) -> Option<&str> {
        self.policy.as_ref().map(|p| p.def.name.as_str())
    }

    pub fn operator_policy_name(&self) -> Option<&str> {
        self.operator.as_ref().map(|p| p.def.name.as_str())
    }

    /// The queue limits from its arguments (`args`, as parsed from
    /// `arguments`) and these policies.
    pub fn queue_limits(&self, args: &QueueLimits, arguments: &FieldTable) -> QueueLimits {
        let none = PolicyKeys::default();
        let p = self.policy.as_ref().map_or(&none, |p| &p.keys);
        let o = self.operator.as_ref().map_or(&none, |p| &p.keys);
        QueueLimits {
            message_ttl: least([args.message_ttl, p.message_ttl, o.message_ttl]),
            expires: least([args.expires, p.expires, o.expires]),
            max_length: least([args.max_length, p.max_length, o.max_length]),
            max_length_bytes: least([
                args.max_length_bytes,
                p.max_length_bytes,
                o.max_length_bytes,
            ]),
            overflow: if arguments.get("x-overflow").is_some() {
                args.overflow
            } else {
                p.overflow.unwrap_or(args.overflow)
            },
            dead_letter_exchange: args
                .dead_letter_exchange
                .clone()
                .or_else(|| p.dead_letter_exchange.clone()),
            // Each key on its own (measured: an argument DLX with a
            // policy's routing key uses both).
            dead_letter_routing_key: args
                .dead_letter_routing_key
                .clone()
                .or_else(|| p.dead_letter_routing_key.clone()),
            single_active_consumer: args.single_active_consumer,
            max_priority: args.max_priority,
            delivery_limit: least([args.delivery_limit, p.delivery_limit, o.delivery_limit]),
        }
    }

    /// An exchange's alternate exchange: its argument's, else the
    /// policy's.
    pub fn alternate_exchange(&self, argument: Option<&ShortStr>) -> Option<ShortStr> {
        argument.cloned().or_else(|| {
            self.policy
                .as_ref()
                .and_then(|p| p.keys.alternate_exchange.clone())
        })
    }

    /// RabbitMQ's `effective_policy_definition`: the policy's keys, with
    /// the operator policy's merged in (the lesser value where both set
    /// one).
    pub fn effective_definition(&self) -> Map<String, Value> {
        let mut out = match self.policy.as_ref().map(|p| &p.def.definition) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Object(op)) = self.operator.as_ref().map(|p| &p.def.definition) {
            for (k, v) in op {
                let merged = match (out.get(k).and_then(Value::as_u64), v.as_u64()) {
                    (Some(a), Some(b)) => Value::from(a.min(b)),
                    _ => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(
        name: &str,
        pattern: &str,
        priority: i64,
        definition: Value,
        operator: bool,
    ) -> PolicyDef {
        PolicyDef {
            vhost: "/".into(),
            name: name.into(),
            pattern: pattern.into(),
            apply_to: "all".into(),
            definition,
            priority,
            operator,
        }
    }

    #[test]
    fn highest_priority_wins_and_operator_policies_cap() {
        let set = PolicySet::new(&[
            def(
                "low",
                "^q",
                1,
                serde_json::json!({"max-length": 100, "message-ttl": 5000}),
                false,
            ),
            def(
                "high",
                "^q",
                5,
                serde_json::json!({"max-length": 50, "dead-letter-exchange": "dlx"}),
                false,
            ),
            def("cap", ".", 0, serde_json::json!({"max-length": 10}), true),
            def(
                "other",
                "^x",
                9,
                serde_json::json!({"max-length": 1}),
                false,
            ),
        ]);
        let a = set.applied(b"queue", Target::Queue { quorum: false });
        assert_eq!(a.policy_name(), Some("high"));
        assert_eq!(a.operator_policy_name(), Some("cap"));
        let args = QueueLimits {
            max_length: Some(20),
            dead_letter_exchange: Some("mine".into()),
            ..Default::default()
        };
        let l = a.queue_limits(&args, &FieldTable::new());
        assert_eq!(l.max_length, Some(10));
        assert_eq!(l.message_ttl, None, "only the winning policy applies");
        assert_eq!(l.dead_letter_exchange, Some("mine".into()));
        let eff = a.effective_definition();
        assert_eq!(eff.get("max-length"), Some(&Value::from(10)));
        assert_eq!(eff.get("dead-letter-exchange"), Some(&Value::from("dlx")));
        assert!(set.applied(b"zzz", Target::Exchange).policy.is_none());
    }

    #[test]
    fn validation_texts() {
        let bad = |v: Value, op: bool| validate_definition(&v, op).unwrap_err();
        let ha = bad(
            serde_json::json!({"ha-mode": "all", "ha-params": 2, "message-ttl": 1}),
            false,
        );
        assert!(
            ha.starts_with("ha-mode, ha-params not supported") && ha.contains("quorum queues"),
            "{ha}"
        );
        assert_eq!(
            bad(serde_json::json!({"federation-upstream-set": "all"}), false),
            "[{<<\"federation-upstream-set\">>,<<\"all\">>}] are not recognised policy settings"
        );
        // A policy stored with ha-* keys before they were refused keeps
        // its other keys in force.
        let stored = PolicyDef {
            vhost: "/".into(),
            name: "old".into(),
            pattern: ".".into(),
            apply_to: "all".into(),
            definition: serde_json::json!({"ha-mode": "all", "message-ttl": 5}),
            priority: 0,
            operator: false,
        };
        let set = PolicySet::new([&stored]);
        assert_eq!(set.policies.len(), 1);
        assert_eq!(set.policies[0].keys.message_ttl, Some(5));
        assert_eq!(
            bad(serde_json::json!({"max-length": "x"}), false),
            "<<\"x\">> is not a valid maximum length"
        );
        assert_eq!(
            bad(serde_json::json!({"message-ttl": -1}), false),
            "-1 is not a valid message TTL"
        );
        assert_eq!(
            bad(serde_json::json!({"foo": 1}), false),
            "[{<<\"foo\">>,1}] are not recognised policy settings"
        );
        assert_eq!(
            bad(serde_json::json!({"dead-letter-exchange": "x"}), true),
            "[{<<\"dead-letter-exchange\">>,<<\"x\">>}] are not recognised policy settings"
        );
        assert!(validate_definition(&serde_json::json!({"queue-mode": "lazy"}), false).is_ok());
    }
}
