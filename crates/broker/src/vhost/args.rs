//! Argument validation with RabbitMQ's texts: the `x-` queue arguments
//! and the equivalence checks of a redeclare.

use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::error::{AmqpError, Result};
use crate::queue::{Overflow, QueueLimits};

/// Queue arguments RabbitMQ compares when a queue is redeclared.
pub(super) const EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

pub(super) fn rs(kind: &str, name: &ShortStr, vhost: &str) -> String {
    format!("{kind} '{name}' in vhost '{vhost}'")
}

/// The 403 for any operation on the default exchange but publishing.
pub fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

/// RabbitMQ refuses client-chosen names in the reserved `amq.` space.
pub fn check_name(kind: &str, name: &ShortStr) -> Result<()> {
    if name.starts_with("amq.") {
        return Err(AmqpError::access_refused(format!(
            "{kind} name '{name}' contains reserved prefix 'amq.*'"
        )));
    }
    Ok(())
}

/// RabbitMQ's names for field types, used in equivalence errors.
pub(super) fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal(_) => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::Bytes(_) => "binary",
    }
}

pub(super) fn value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::LongStr(b) | FieldValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::F32(f) => f.to_string(),
        FieldValue::F64(f) => f.to_string(),
        other => other
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// RabbitMQ's wording for differing arguments: plain values when both
/// sides have one, typed descriptions when one side has none.
pub(super) fn arg_mismatch(
    key: &str,
    what: &str,
    received: Option<&FieldValue>,
    current: Option<&FieldValue>,
) -> AmqpError {
    let text = match (received, current) {
        (Some(r), Some(c)) => format!(
            "inequivalent arg '{key}' for {what}: received '{}' but current is '{}'",
            value_text(r),
            value_text(c)
        ),
        _ => format!(
            "inequivalent arg '{key}' for {what}: received {} but current is {}",
            describe_arg(received),
            describe_arg(current)
        ),
    };
    AmqpError::precondition_failed(text)
}

pub(super) fn describe_arg(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_string(),
        Some(v) => format!("the value '{}' of type '{}'", value_text(v), type_name(v)),
    }
}

/// Argument values equal as RabbitMQ compares them (integers by value).
pub(super) fn arg_equal(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x == y,
        },
        _ => false,
    }
}

pub(super) fn inequivalent(field: &str, what: &str, received: &str, current: &str) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "inequivalent arg '{field}' for {what}: received '{received}' but current is '{current}'"
    ))
}

/// How strictly arguments are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checks {
    /// A declare: everything RabbitMQ refuses is refused.
    Declare,
    /// Recovery of a queue an earlier release accepted: the checks added
    /// since (queue mode and version values, quorum-only arguments, long
    /// names, `x-max-priority` above 255) don't cost the queue its limits.
    Recover,
}

/// Validates the `x-` queue arguments RabbitMQ validates and derives the
/// limits Warren enforces.
pub(super) fn queue_limits(
    args: &FieldTable,
    what: &str,
    durable: bool,
    exclusive: bool,
    checks: Checks,
) -> Result<QueueLimits> {
    let strict = checks == Checks::Declare;
    let invalid = |key: &str, why: String| {
        AmqpError::precondition_failed(format!("invalid arg '{key}' for {what}: {why}"))
    };
    // RabbitMQ 3.10's texts (tools/probe-policies-3.10.8.txt, section 7).
    let int_arg = |key: &str, min: i64| -> Result<Option<i64>> {
        match args.get(key) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                None => Err(invalid(
                    key,
                    format!("\"expected integer, got {}\"", type_name(v)),
                )),
                Some(i) if i < 0 => Err(invalid(key, format!("{{value_negative,{i}}}"))),
                Some(i) if i < min => Err(invalid(key, format!("{{value_zero,{i}}}"))),
                Some(i) => Ok(Some(i)),
            },
        }
    };
    let message_ttl = int_arg("x-message-ttl", 0)?.map(|v| v as u64);
    let expires = int_arg("x-expires", 1)?.map(|v| v as u64);
    let max_priority = match int_arg("x-max-priority", 0)? {
        Some(p) if p > 255 && !strict => Some(255),
        Some(p) if p > 255 => {
            return Err(invalid(
                "x-max-priority",
                format!("{{max_value_exceeded,{p}}}"),
            ))
        }
        p => p.map(|p| p as u8),
    };
    let max_length = int_arg("x-max-length", 0)?.map(|v| v as u64);
    let max_length_bytes = int_arg("x-max-length-bytes", 0)?.map(|v| v as u64);
    let overflow = match args.get("x-overflow") {
        None => Overflow::DropHead,
        Some(v) => match v.as_bytes() {
            Some(b"drop-head") => Overflow::DropHead,
            Some(b"reject-publish") | Some(b"reject-publish-dlx") => Overflow::RejectPublish,
            Some(_) => return Err(invalid("x-overflow", "invalid_overflow".into())),
            None => {
                return Err(invalid(
                    "x-overflow",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                ))
            }
        },
    };
    if let Some(v) = args.get("x-queue-type") {
        match v.as_bytes() {
            Some(b"classic") => {}
            // Quorum queues are served by the classic implementation; keep
            // RabbitMQ's declaration rules so programs behave the same.
            Some(b"quorum") => {
                if !durable || exclusive {
                    return Err(invalid(
                        "x-queue-type",
                        "quorum queues must be durable and not exclusive".into(),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    "x-queue-type",
                    format!("\"unsupported queue type '{}'\"", value_text(v)),
                ))
            }
        }
    }
    let text_arg = |key: &str| -> Result<Option<ShortStr>> {
        match args.get(key) {
            None => Ok(None),
            Some(v) => match v.as_bytes() {
                Some(b) if b.len() <= 255 => {
                    Ok(Some(ShortStr::new(bytes::Bytes::copy_from_slice(b))))
                }
                Some(_) if !strict => Ok(None),
                _ => Err(AmqpError::precondition_failed(format!(
                    "invalid type '{}' for arg '{key}' in {what}",
                    type_name(v)
                ))),
            },
        }
    };
    let dead_letter_exchange = text_arg("x-dead-letter-exchange")?;
    let dead_letter_routing_key = text_arg("x-dead-letter-routing-key")?;
    if dead_letter_routing_key.is_some() && dead_letter_exchange.is_none() {
        return Err(invalid(
            "x-dead-letter-routing-key",
            "routing_key_but_no_dlx_defined".into(),
        ));
    }
    match args.get("x-queue-mode") {
        _ if !strict => {}
        None => {}
        Some(v) => match v.as_bytes() {
            Some(b"default") | Some(b"lazy") => {}
            Some(other) => {
                return Err(invalid(
                    "x-queue-mode",
                    format!(
                        "\"unsupported queue mode '{}'\"",
                        String::from_utf8_lossy(other)
                    ),
                ))
            }
            None => {
                return Err(invalid(
                    "x-queue-mode",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                ))
            }
        },
    }
    match args.get("x-queue-version") {
        _ if !strict => {}
        None => {}
        Some(v) => match v.as_i64() {
            Some(1) | Some(2) => {}
            Some(n) => {
                return Err(invalid(
                    "x-queue-version",
                    format!("\"unsupported queue version '{n}'\""),
                ))
            }
            None => {
                return Err(invalid(
                    "x-queue-version",
                    format!("\"expected integer, got {}\"", type_name(v)),
                ))
            }
        },
    }
    // Quorum-only arguments on a classic queue, as RabbitMQ refuses them.
    let quorum = args.get("x-queue-type").and_then(|v| v.as_bytes()) == Some(b"quorum");
    for key in [
        "x-delivery-limit",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
    ] {
        if strict && !quorum && args.get(key).is_some() {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for {what} of queue type rabbit_classic_queue"
            )));
        }
    }
    let single_active_consumer = match args.get("x-single-active-consumer") {
        None => false,
        Some(FieldValue::Bool(b)) => *b,
        Some(v) => {
            return Err(invalid(
                "x-single-active-consumer",
                format!("{{unacceptable_type,{}}}", type_name(v)),
            ))
        }
    };
    Ok(QueueLimits {
        max_length,
        max_length_bytes,
        overflow,
        message_ttl,
        expires,
        dead_letter_exchange,
        dead_letter_routing_key,
        single_active_consumer,
        max_priority,
        delivery_limit: if quorum {
            int_arg("x-delivery-limit", 0)?.map(|v| v as u64)
        } else {
            None
        },
    })
}
