//! The import of a real RabbitMQ 3.10.8 export (tests/python/fixtures):
//! the report, the strict refusal, and every shape of damage to it
//! answered without a panic.

use serde_json::{json, Value};

use super::super::Admin;
use super::AdminError;
use crate::broker::{Broker, BrokerSetup};

const FIXTURE: &str =
    include_str!("../../../../../tests/python/fixtures/rabbitmq-3.10-definitions.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("the fixture is JSON")
}

fn admin() -> Admin {
    Admin::new(Broker::new(&BrokerSetup::default()))
}

#[test]
fn the_fixture_imports_with_its_report() {
    let a = admin();
    let report = a
        .import_definitions(&fixture(), None, false)
        .expect("import");
    let mut items: Vec<(String, String)> = report
        .skipped
        .iter()
        .map(|s| (s.kind.clone(), s.name.clone()))
        .collect();
    items.sort();
    let expected = [
        ("binding", "orders-x -> events-stream (#)"),
        ("federation-upstream", "dc-west"),
        ("federation-upstream-set", "all-dcs"),
        ("global_parameter", "mqtt_port_to_vhost_mapping"),
        ("policy", "federate-fed"),
        ("policy", "ha-all"),
        ("policy", "ha-two-ttl"),
        ("queue", "events-stream"),
        ("shovel", "orders-to-archive"),
    ];
    assert_eq!(
        items,
        expected
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .to_vec()
    );
    let alice = a.user_limits(Some("alice")).expect("alice");
    assert_eq!(
        Value::Object(alice[0].1.clone()),
        json!({"max-connections": 10, "max-channels": 20})
    );
    assert_eq!(a.operator_policies(Some("prod")).len(), 1);
    let prod = a.vhost("prod").expect("prod");
    assert!(prod.queue(&"orders-quorum".into()).is_ok());
    assert!(prod.queue(&"events-stream".into()).is_err());
    assert_eq!(a.cluster_name().as_deref(), Some("rabbit-prod-eu"));
    // Imported again: the same report, nothing fails.
    let again = a
        .import_definitions(&fixture(), None, false)
        .expect("again");
    assert_eq!(again, report);
}

#[test]
fn a_strict_import_changes_nothing() {
    let a = admin();
    let before = a.export_definitions(None).expect("export");
    match a.import_definitions(&fixture(), None, true) {
        Err(AdminError::ImportRefused { skipped, message }) => {
            assert_eq!(skipped.len(), 9);
            assert!(message.contains("nothing was imported"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.export_definitions(None).expect("export"), before);
}

/// Every value of the fixture replaced in turn by each JSON kind.
#[test]
fn damaged_files_are_errors_not_panics() {
    fn paths(v: &Value, at: Vec<Value>, out: &mut Vec<Vec<Value>>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| {
                let mut p = at.clone();
                p.push(json!(k));
                paths(x, p, out);
            }),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| {
                let mut p = at.clone();
                p.push(json!(i));
                paths(x, p, out);
            }),
            _ => {}
        }
    }
    fn at<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
        path.iter().fold(v, |v, k| match k {
            Value::String(s) => &mut v[s.as_str()],
            other => &mut v[other.as_u64().unwrap_or(0) as usize],
        })
    }
    let base = fixture();
    let mut all = Vec::new();
    paths(&base, Vec::new(), &mut all);
    let kinds = [json!(null), json!(-1), json!([]), json!({})];
    for path in &all {
        for k in &kinds {
            let mut d = base.clone();
            *at(&mut d, path) = k.clone();
            let a = admin();
            let _ = a.import_definitions(&d, None, true);
            let _ = a.import_definitions(&d, None, false);
            a.export_definitions(None)
                .expect("export after a damaged import");
        }
    }
}
