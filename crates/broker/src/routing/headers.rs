//! Headers-exchange matching, as RabbitMQ's `rabbit_exchange_type_headers`:
//! `x-match` = `all` (default), `any`, `all-with-x` or `any-with-x`. The
//! plain forms ignore arguments and headers whose names start with `x-`.
//! A binding argument of type void matches on presence alone; integers
//! compare by value whatever their width, as do floats.

use warren_protocol::{FieldTable, FieldValue};

use crate::error::{AmqpError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// Reads `x-match` from binding arguments.
pub fn match_kind(args: &FieldTable) -> Result<MatchKind> {
    match args.get("x-match") {
        None => Ok(MatchKind::All),
        Some(v) => match v.as_bytes() {
            Some(b"all") => Ok(MatchKind::All),
            Some(b"any") => Ok(MatchKind::Any),
            Some(b"all-with-x") => Ok(MatchKind::AllWithX),
            Some(b"any-with-x") => Ok(MatchKind::AnyWithX),
            _ => Err(AmqpError::precondition_failed(format!(
                "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
                describe(v)
            ))),
        },
    }
}

fn describe(v: &FieldValue) -> String {
    match v.as_bytes() {
        Some(b) => format!("<<\"{}\">>", String::from_utf8_lossy(b)),
        None => format!("{v:?}"),
    }
}

fn values_match(pattern: &FieldValue, value: &FieldValue) -> bool {
    if let (Some(a), Some(b)) = (pattern.as_i64(), value.as_i64()) {
        return a == b;
    }
    match (pattern, value) {
        (FieldValue::F32(a), FieldValue::F32(b)) => a == b,
        (FieldValue::F64(a), FieldValue::F64(b)) => a == b,
        (FieldValue::F32(a), FieldValue::F64(b)) => f64::from(*a) == *b,
        (FieldValue::F64(a), FieldValue::F32(b)) => *a == f64::from(*b),
        _ => pattern == value,
    }
}

pub fn matches(kind: MatchKind, binding_args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let with_x = matches!(kind, MatchKind::AllWithX | MatchKind::AnyWithX);
    let all = matches!(kind, MatchKind::All | MatchKind::AllWithX);
    let considered = binding_args.iter().filter(|(k, _)| {
        k.as_bytes() != b"x-match" && (with_x || !k.as_bytes().starts_with(b"x-"))
    });
    for (key, pattern) in considered {
        let hit = headers
            .and_then(|h| h.get_raw(key.as_bytes()))
            .is_some_and(|v| matches!(pattern, FieldValue::Void) || values_match(pattern, v));
        if all && !hit {
            return false;
        }
        if !all && hit {
            return true;
        }
    }
    // all: every considered argument matched (vacuously true with none);
    // any: nothing matched.
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use warren_protocol::ShortStr;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        entries
            .iter()
            .map(|(k, v)| (ShortStr::from(*k), v.clone()))
            .collect()
    }

    fn s(v: &'static str) -> FieldValue {
        FieldValue::LongStr(Bytes::from_static(v.as_bytes()))
    }

    #[test]
    fn all_any_and_with_x() {
        let args = table(&[("format", s("pdf")), ("type", s("report")), ("x-k", s("1"))]);
        let full = table(&[("format", s("pdf")), ("type", s("report"))]);
        let half = table(&[("format", s("pdf")), ("type", s("log"))]);
        assert!(matches(MatchKind::All, &args, Some(&full)));
        assert!(!matches(MatchKind::All, &args, Some(&half)));
        assert!(matches(MatchKind::Any, &args, Some(&half)));
        assert!(!matches(MatchKind::Any, &args, None));
        // with-x also needs the x- argument.
        assert!(!matches(MatchKind::AllWithX, &args, Some(&full)));
        let with_x = table(&[("format", s("pdf")), ("type", s("report")), ("x-k", s("1"))]);
        assert!(matches(MatchKind::AllWithX, &args, Some(&with_x)));
        assert!(matches(
            MatchKind::AnyWithX,
            &table(&[("x-k", s("1"))]),
            Some(&with_x)
        ));
    }

    #[test]
    fn void_means_presence_and_ints_compare_by_value() {
        let args = table(&[("k", FieldValue::Void), ("n", FieldValue::I32(5))]);
        let h = table(&[("k", s("anything")), ("n", FieldValue::I8(5))]);
        assert!(matches(MatchKind::All, &args, Some(&h)));
        let empty = FieldTable::new();
        assert!(matches(MatchKind::All, &empty, None));
        assert!(!matches(MatchKind::Any, &empty, None));
    }
}
