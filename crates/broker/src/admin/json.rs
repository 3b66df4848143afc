//! Field tables as JSON, the way RabbitMQ's definitions and HTTP API show
//! them: integers as numbers, strings as strings, nested tables as
//! objects, arrays as arrays. Going back, a JSON integer becomes a signed
//! 64-bit `long`, a float a `double`, as RabbitMQ imports them.

use bytes::Bytes;
use serde_json::{Map, Number, Value};
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::error::{AdminError, AdminResult};

/// A field value as JSON.
pub fn value_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::F32(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        FieldValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        FieldValue::Decimal(d) => {
            let x = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            Number::from_f64(x).map_or(Value::Null, Value::Number)
        }
        FieldValue::LongStr(b) | FieldValue::Bytes(b) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        FieldValue::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        FieldValue::Timestamp(t) => Value::Number((*t).into()),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Void => Value::Null,
        other => other
            .as_i64()
            .map_or(Value::Null, |i| Value::Number(i.into())),
    }
}

/// A field table as a JSON object (insertion order kept).
pub fn table_to_json(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t.iter() {
        m.insert(k.to_string(), value_to_json(v));
    }
    Value::Object(m)
}

/// A JSON value as a field value.
pub fn json_to_value(v: &Value) -> AdminResult<FieldValue> {
    Ok(match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => FieldValue::I64(i),
            (None, Some(f)) => FieldValue::F64(f),
            _ => return Err(AdminError::invalid(format!("number out of range: {n}"))),
        },
        Value::String(s) => FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes())),
        Value::Array(a) => {
            FieldValue::Array(a.iter().map(json_to_value).collect::<AdminResult<_>>()?)
        }
        Value::Object(_) => FieldValue::Table(json_to_table(v)?),
    })
}

/// A JSON object as a field table; `null` is an empty table.
pub fn json_to_table(v: &Value) -> AdminResult<FieldTable> {
    match v {
        Value::Null => Ok(FieldTable::new()),
        Value::Object(m) => {
            let mut t = FieldTable::new();
            for (k, v) in m {
                if k.len() > 255 {
                    return Err(AdminError::invalid(format!("argument name too long: {k}")));
                }
                t.insert(ShortStr::from(k.as_str()), json_to_value(v)?);
            }
            Ok(t)
        }
        other => Err(AdminError::invalid(format!(
            "arguments must be an object, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_through_json() {
        let v: Value = serde_json::json!({
            "x-message-ttl": 60000, "x-dead-letter-exchange": "dlx", "ok": true,
            "ratio": 0.5, "nested": {"a": [1, "b"]}
        });
        let t = json_to_table(&v).unwrap();
        assert_eq!(t.get("x-message-ttl"), Some(&FieldValue::I64(60000)));
        assert_eq!(table_to_json(&t), v);
        // Insertion order is kept (RabbitMQ lists arguments as declared).
        let keys: Vec<String> = t.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys[0], "x-message-ttl");
        assert!(json_to_table(&serde_json::json!([1])).is_err());
    }
}
