//! The management API's JSON bodies: any body on any route that takes one
//! gets a 2xx or a 4xx, never a 500 or a panic, and the broker behind it
//! keeps working (each input runs against the state earlier ones left).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warren_server::fuzzing::Management;

/// Routes that read a body, with `{n}` for a fuzzed object name.
const ROUTES: &[(&str, &str)] = &[
    ("PUT", "/api/vhosts/{n}"),
    ("PUT", "/api/users/{n}"),
    ("POST", "/api/users/bulk-delete"),
    ("PUT", "/api/permissions/%2F/{n}"),
    ("PUT", "/api/topic-permissions/%2F/{n}"),
    ("PUT", "/api/queues/%2F/{n}"),
    ("PUT", "/api/exchanges/%2F/{n}"),
    ("POST", "/api/exchanges/%2F/amq.default/publish"),
    ("POST", "/api/exchanges/%2F/{n}/publish"),
    ("POST", "/api/queues/%2F/{n}/get"),
    ("POST", "/api/queues/%2F/{n}/move"),
    ("POST", "/api/bindings/%2F/e/amq.direct/q/{n}"),
    ("POST", "/api/bindings/%2F/e/{n}/e/amq.topic"),
    ("PUT", "/api/policies/%2F/{n}"),
    ("PUT", "/api/operator-policies/%2F/{n}"),
    ("POST", "/api/definitions"),
    ("POST", "/api/definitions/%2F"),
    ("POST", "/api/definitions/{n}"),
    ("DELETE", "/api/queues/%2F/{n}/contents"),
    ("DELETE", "/api/queues/%2F/{n}"),
    ("DELETE", "/api/exchanges/%2F/{n}"),
    ("DELETE", "/api/vhosts/{n}"),
    ("DELETE", "/api/users/{n}"),
];

/// Object names the inputs share, so that declares, binds, publishes and
/// deletes meet the same objects.
const NAMES: &[&str] = &["a", "b", "q.1", "%2F", "amq.x", "caf%C3%A9"];

fuzz_target!(|data: &[u8]| {
    static API: OnceLock<Management> = OnceLock::new();
    let api = API.get_or_init(|| Management::new().expect("a scratch broker"));
    let [route, name, body @ ..] = data else {
        return;
    };
    let (method, path) = ROUTES[*route as usize % ROUTES.len()];
    let path = path.replace("{n}", NAMES[*name as usize % NAMES.len()]);
    api.request(method, &path, body);
});
