//! The definitions importer: any JSON document (or none) is imported or
//! refused with an error, never a panic; the broker still exports after.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use warren_broker::admin::Admin;
use warren_broker::broker::{Broker, BrokerSetup};

fn admin() -> &'static Admin {
    static ADMIN: OnceLock<Admin> = OnceLock::new();
    ADMIN.get_or_init(|| Admin::new(Broker::new(&BrokerSetup::default())))
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let a = admin();
    let _ = a.import_definitions(&v, None, true);
    let _ = a.import_definitions(&v, None, false);
    let _ = a.import_definitions(&v, Some("/"), false);
    a.export_definitions(None).expect("export after import");
    let _: Option<Arc<Broker>> = None;
});
