use std::path::Path;

use super::*;

fn env(vars: &[(&str, &str)]) -> Env {
    Env::build(
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        Path::new("/nonexistent/rabbitmq-env.conf"),
    )
    .unwrap()
}

fn load_with(extra: &[&str], vars: &[(&str, &str)]) -> anyhow::Result<Config> {
    let mut v = vec!["warren"];
    v.extend_from_slice(extra);
    let m = Args::command().try_get_matches_from(v)?;
    Config::resolve(&m, &env(vars), Path::new("/nonexistent/rabbitmq.conf"))
}

fn load(extra: &[&str]) -> anyhow::Result<Config> {
    load_with(extra, &[])
}

fn temp(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-cfg-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, body).unwrap();
    file
}

#[test]
fn defaults_are_rabbitmqs() {
    let c = load(&[]).unwrap();
    assert_eq!(c.amqp_port, 5672);
    assert_eq!(c.frame_max, 131_072);
    assert_eq!(c.channel_max, 2047);
    assert_eq!(c.heartbeat, 60);
    assert_eq!(c.management_port, Some(15672));
    assert_eq!(c.prometheus_port, Some(15692));
    assert_eq!(c.default_user_tags, vec!["administrator".to_string()]);
    assert!(c.node_name.starts_with("warren@"));
}

#[test]
fn http_listeners_are_configurable() {
    let c = load(&["--management-port", "15000", "--disable-prometheus"]).unwrap();
    assert_eq!(c.management_port, Some(15000));
    assert_eq!(c.prometheus_port, None);
    let c = load(&["--disable-management", "--bind", "127.0.0.1"]).unwrap();
    assert_eq!(c.management_port, None);
    assert_eq!(c.management_bind().to_string(), "127.0.0.1");
}

#[test]
fn loopback_users_and_definitions_are_configurable() {
    let c = load(&[]).unwrap();
    assert_eq!(c.loopback_users, vec!["guest".to_string()]);
    assert!(c.definitions.is_none());
    let c = load(&["--loopback-users", ""]).unwrap();
    assert!(
        c.loopback_users.is_empty(),
        "an empty list lets guest in from anywhere"
    );
    let c = load(&["--loopback-users", "guest,ops", "--definitions", "/d.json"]).unwrap();
    assert_eq!(
        c.loopback_users,
        vec!["guest".to_string(), "ops".to_string()]
    );
    assert_eq!(c.definitions.as_deref(), Some(Path::new("/d.json")));
}

#[test]
fn flags_override_the_file() {
    let file = temp(
        "warren.toml",
        "amqp_port = 5999\nheartbeat = 10\nbind = \"127.0.0.1\"\n",
    );
    let path = file.to_str().unwrap();
    let c = load(&["--config", path, "--heartbeat", "5"]).unwrap();
    assert_eq!(c.amqp_port, 5999);
    assert_eq!(c.heartbeat, 5);
    assert_eq!(c.bind.to_string(), "127.0.0.1");
    std::fs::write(&file, "no_such_key = 1\n").unwrap();
    let err = load(&["--config", path]).unwrap_err().to_string();
    assert!(err.contains("invalid config file"), "{err}");
    let err = load(&["--frame-max", "100"]).unwrap_err().to_string();
    assert!(err.contains("4096"), "{err}");
}

#[test]
fn rabbitmq_conf_listeners_and_environment() {
    let file = temp(
        "rabbitmq.conf",
        "listeners.tcp.default = 127.0.0.1:5900\nheartbeat = 7\ndefault_permissions.read = ^r\n\
         vm_memory_high_watermark.absolute = 1GiB\nlog.console.level = warning\nlog.console.formatter = json\n",
    );
    let path = file.to_str().unwrap();
    let c = load(&["--config", path]).unwrap();
    assert_eq!(
        c.listeners,
        vec!["127.0.0.1:5900".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.heartbeat, 7);
    assert_eq!(c.default_permissions.read, "^r");
    assert_eq!(c.vm_memory_high_watermark, Watermark::Absolute(1 << 30));
    assert!(c.log.console_json);
    assert_eq!(c.log.console_level.to_string(), "warning");
    // The environment's port wins over the file's listener.
    let c = load_with(&["--config", path], &[("RABBITMQ_NODE_PORT", "5901")]).unwrap();
    assert_eq!(
        c.listeners,
        vec!["[::]:5901".parse::<SocketAddr>().unwrap()]
    );
    // --log-level beats the file's per-output level.
    let c = load(&["--config", path, "--log-level", "debug"]).unwrap();
    assert_eq!(c.log.console_level.to_string(), "debug");
    let row = c.effective.iter().find(|r| r.name == "heartbeat").unwrap();
    assert!(row.source.ends_with("line 2 (heartbeat)"), "{}", row.source);
}

#[test]
fn bad_values_name_their_source() {
    let err = load_with(&[], &[("RABBITMQ_NODE_PORT", "lots")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("environment variable RABBITMQ_NODE_PORT"),
        "{err}"
    );
    let file = temp(
        "bad.conf",
        "heartbeat = 1\nlog.file.rotation.date = $W0D23\n",
    );
    let err = load(&["--config", file.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2: 'log.file.rotation.date'"), "{err}");
}

#[test]
fn log_levels_are_rabbitmqs() {
    // `warning` once turned every line off: it is RabbitMQ's name for warn.
    let c = load(&["--log-level", "warning"]).unwrap();
    assert_eq!(c.log.console_level.directives(), "warn");
    assert_eq!(
        load(&["--log-level", "critical"])
            .unwrap()
            .log
            .console_level
            .directives(),
        "error"
    );
    assert_eq!(
        load(&["--log-level", "none"])
            .unwrap()
            .log
            .console_level
            .directives(),
        "off"
    );
    let err = load(&["--log-level", "warn"]).unwrap_err().to_string();
    assert!(err.contains("flag --log-level"), "{err}");
    assert!(err.contains("unknown log level 'warn'"), "{err}");
    let c = load(&["--log-level", "info,warren_server::mqtt=debug"]).unwrap();
    assert_eq!(
        c.log.console_level.directives(),
        "info,warren_server::mqtt=debug"
    );
}

#[test]
fn data_dir_and_node_name_from_rabbitmq_variables() {
    let c = load_with(
        &[],
        &[
            ("RABBITMQ_MNESIA_BASE", "/base"),
            ("RABBITMQ_NODENAME", "n1@h"),
        ],
    )
    .unwrap();
    assert_eq!(c.data_dir, Path::new("/base/n1@h"));
    assert_eq!(c.node_name, "n1@h");
    let c = load_with(&["--data-dir", "/flag"], &[("RABBITMQ_MNESIA_DIR", "/m")]).unwrap();
    assert_eq!(c.data_dir, Path::new("/flag"));
    let c = load_with(
        &[],
        &[
            ("RABBITMQ_LOG_BASE", "/logs"),
            ("RABBITMQ_NODENAME", "n1@h"),
        ],
    )
    .unwrap();
    assert_eq!(c.log.file.as_deref(), Some(Path::new("/logs/n1@h.log")));
    let c = load_with(
        &[],
        &[("RABBITMQ_LOGS", "-"), ("RABBITMQ_LOG_BASE", "/logs")],
    )
    .unwrap();
    assert!(c.log.file.is_none());
    let pass = c
        .effective
        .iter()
        .find(|r| r.name == "default_pass")
        .unwrap();
    assert_eq!(pass.value, "********");
}
