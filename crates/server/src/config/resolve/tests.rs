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

#[test]
fn cluster_defaults_and_flags() {
    let c = load(&["--data-dir", "/d", "--bind", "127.0.0.1"]).unwrap();
    assert!(!c.cluster_enabled());
    assert_eq!(c.cluster.port, 25672);
    assert_eq!(c.cluster.bind.to_string(), "127.0.0.1", "bind's address");
    assert_eq!(c.cluster.secret_file, Path::new("/d/.cluster_secret"));
    let c = load(&[
        "--node-name",
        "n1@h",
        "--cluster-node",
        "n1@h=127.0.0.1:25001",
        "--cluster-node",
        "n2@h=127.0.0.1:25002,n3@h=[::1]:25003",
        "--cluster-port",
        "25001",
        "--cluster-bind",
        "::1",
        "--cluster-secret-file",
        "/s",
    ])
    .unwrap();
    assert!(c.cluster_enabled());
    assert_eq!(
        c.cluster.nodes,
        vec![
            ("n1@h".to_string(), "127.0.0.1:25001".to_string()),
            ("n2@h".to_string(), "127.0.0.1:25002".to_string()),
            ("n3@h".to_string(), "[::1]:25003".to_string()),
        ]
    );
    assert_eq!(
        c.cluster.peers(&c.node_name).collect::<Vec<_>>(),
        vec![("n2@h", "127.0.0.1:25002"), ("n3@h", "[::1]:25003")],
        "this node is a member, not a peer"
    );
    assert_eq!(c.cluster.listen_addr().to_string(), "[::1]:25001");
    assert_eq!(c.cluster.secret_file, Path::new("/s"));
    assert_eq!(
        c.cluster.nodes_source.locate("cluster_nodes"),
        "flag --cluster-node"
    );
    let row = |name: &str| c.effective.iter().find(|r| r.name == name).unwrap().clone();
    assert_eq!(
        row("cluster_nodes").value,
        "n1@h=127.0.0.1:25001, n2@h=127.0.0.1:25002, n3@h=[::1]:25003"
    );
    assert_eq!(row("cluster_nodes").source, "flag --cluster-node");
    assert_eq!(row("cluster_port").value, "25001");
    assert_eq!(row("cluster_bind").value, "::1");
    assert_eq!(row("cluster_secret_file").value, "/s");
    let c = load(&["--data-dir", "/d"]).unwrap();
    let row = c
        .effective
        .iter()
        .find(|r| r.name == "cluster_secret_file")
        .unwrap();
    assert_eq!(row.value, "/d/.cluster_secret");
    assert_eq!(row.origin, "default");
}

#[test]
fn cluster_errors_name_their_source() {
    let err = |args: &[&str], vars: &[(&str, &str)]| load_with(args, vars).unwrap_err().to_string();
    let e = err(&["--cluster-node", "n1@h"], &[]);
    assert_eq!(
        e,
        "invalid configuration: flag --cluster-node: invalid cluster node 'n1@h': expected NAME=HOST:PORT (rabbit@a=10.0.0.1:25672)"
    );
    let e = err(
        &["--cluster-node", "n1@h=h:1", "--cluster-node", "n1@h=h:2"],
        &[],
    );
    assert!(
        e.ends_with("flag --cluster-node: cluster node 'n1@h' is given two addresses: h:1 and h:2"),
        "{e}"
    );
    let e = err(&["--cluster-node", "n1@h=h"], &[]);
    assert!(e.contains("invalid address 'h'"), "{e}");
    let e = err(&[], &[("RABBITMQ_DIST_PORT", "0")]);
    assert!(
        e.contains("environment variable RABBITMQ_DIST_PORT: invalid value '0' (expected a port number (1-65535))"),
        "{e}"
    );
    // The flag wins over the environment, RabbitMQ's variable is read.
    let c = load_with(&[], &[("RABBITMQ_DIST_PORT", "25100")]).unwrap();
    assert_eq!(c.cluster.port, 25100);
    let c = load_with(
        &["--cluster-port", "25200"],
        &[("RABBITMQ_DIST_PORT", "25100")],
    )
    .unwrap();
    assert_eq!(c.cluster.port, 25200);
    let file = temp("cluster.toml", "[cluster_nodes]\n\"n1@h\" = \"nowhere\"\n");
    let e = err(&["--config", file.to_str().unwrap()], &[]);
    assert!(
        e.contains("'cluster_nodes': invalid address 'nowhere'"),
        "{e}"
    );
}

#[test]
fn cluster_flags_replace_the_files_nodes() {
    let file = temp(
        "cluster.conf",
        "cluster_formation.classic_config.nodes.1 = a@h\n\
         cluster_formation.warren.addresses.a@h = h:1\nwarren.cluster.port = 25300\n",
    );
    let path = file.to_str().unwrap();
    let c = load(&["--config", path]).unwrap();
    assert_eq!(
        c.cluster.nodes,
        vec![("a@h".to_string(), "h:1".to_string())]
    );
    assert_eq!(c.cluster.port, 25300);
    assert!(c
        .cluster
        .nodes_source
        .locate("cluster_nodes")
        .ends_with("line 1: 'cluster_formation.classic_config.nodes.1'"));
    let c = load(&["--config", path, "--cluster-node", "b@h=h:2"]).unwrap();
    assert_eq!(
        c.cluster.nodes,
        vec![("b@h".to_string(), "h:2".to_string())]
    );
}
