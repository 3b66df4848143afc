use std::path::{Path, PathBuf};

use super::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warren-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn env(vars: &[(&str, &str)]) -> Env {
    Env::build(
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        Path::new("/nonexistent/rabbitmq-env.conf"),
    )
    .unwrap()
}

fn conf(text: &str) -> Result<Loaded, Error> {
    // One directory per call: tests run in parallel.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = dir(&format!("conf{n}"));
    let p = d.join("rabbitmq.conf");
    std::fs::write(&p, text).unwrap();
    load(Some((p, Source::Default)), &env(&[]))
}

#[test]
fn parser_keeps_lines_and_values_with_spaces() {
    let entries = conf::parse(
        Path::new("r.conf"),
        "# comment\n\nlisteners.tcp.default = 5673\n  cluster_name =  my cluster # not a comment\n",
    )
    .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].line, 3);
    assert_eq!(entries[1].key, "cluster_name");
    assert_eq!(entries[1].value, "my cluster # not a comment");
    let err = conf::parse(Path::new("r.conf"), "a = 1\njust words\n").unwrap_err();
    assert!(err.to_string().contains("r.conf line 2"), "{err}");
}

#[test]
fn rabbitmq_keys_map_to_settings() {
    let l = conf(
        "listeners.tcp.default = 5673\nlisteners.tcp.other = 127.0.0.1:5674\n\
         management.tcp.port = 15673\nprometheus.tcp.port = 15693\nmqtt.listeners.tcp.default = 1884\n\
         default_user = admin\ndefault_pass = s3cret words\ndefault_user_tags.administrator = true\n\
         default_user_tags.monitoring = true\ndefault_permissions.read = ^r\nloopback_users.guest = false\n\
         vm_memory_high_watermark.relative = 0.6\ndisk_free_limit.absolute = 1GB\nframe_max = 64KiB\n\
         log.file.level = warning\ncluster_name = c1\nwarren.mqtt.retained_max_bytes = 512MiB\n",
    )
    .unwrap();
    let g = |n: &str| l.layers.get(n).unwrap().values.clone();
    assert_eq!(g("listeners"), vec!["5673", "127.0.0.1:5674"]);
    assert_eq!(g("management_port"), vec!["15673"]);
    assert_eq!(g("prometheus_port"), vec!["15693"]);
    assert_eq!(g("mqtt_port"), vec!["1884"]);
    assert_eq!(g("default_pass"), vec!["s3cret words"]);
    assert_eq!(g("default_user_tags"), vec!["administrator", "monitoring"]);
    assert_eq!(g("default_permissions.read"), vec!["^r"]);
    assert_eq!(g("loopback_users"), vec![""]);
    assert_eq!(g("vm_memory_high_watermark"), vec!["0.6"]);
    assert_eq!(g("disk_free_limit"), vec!["1000000000B"]);
    assert_eq!(g("frame_max"), vec!["65536"]);
    assert_eq!(
        g("mqtt_retained_max_bytes"),
        vec![(512u64 << 20).to_string()]
    );
    match &l.layers.get("management_port").unwrap().source {
        Source::File { line, key, .. } => {
            assert_eq!(*line, Some(3));
            assert_eq!(key, "management.tcp.port");
        }
        s => panic!("{s:?}"),
    }
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let l =
        conf("listeners.tcp = none\nloopback_users = none\nmqtt.listeners.tcp = none\n").unwrap();
    assert!(l.layers.get("listeners").unwrap().values.is_empty());
    assert!(l.layers.get("loopback_users").unwrap().values.is_empty());
    assert_eq!(l.layers.get("mqtt").unwrap().text(), "false");
}

#[test]
fn unknown_key_is_an_error_naming_key_and_line() {
    let err = conf("heartbeat = 30\n\n# x\nfoo.bar = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("line 4: unknown key 'foo.bar'"), "{err}");
}

#[test]
fn bad_value_is_an_error_naming_key_and_line() {
    let err = conf("heartbeat = often\n").unwrap_err().to_string();
    assert!(
        err.contains("line 1: invalid value 'often' for 'heartbeat'"),
        "{err}"
    );
    let err = conf("log.console.level = warn\n").unwrap_err().to_string();
    assert!(err.contains("'log.console.level'"), "{err}");
    let err = conf("listeners.tcp.default = localhost\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("listeners.tcp.default"), "{err}");
}

#[test]
fn unsupported_keys_are_collected_with_reasons() {
    let l = conf(
        "cluster_formation.peer_discovery_backend = classic_config\n\
         cluster_partition_handling = autoheal\nauth_backends.1 = ldap\n\
         ssl_options.versions.1 = tlsv1.2\nstomp.listeners.tcp.1 = 61613\nheartbeat = 10\n",
    )
    .unwrap();
    assert_eq!(l.warnings.len(), 4, "{:?}", l.warnings);
    assert!(
        l.warnings[0].starts_with(
            "cluster_partition_handling: Warren's partition handling is Raft's majority rule"
        ),
        "{}",
        l.warnings[0]
    );
    assert!(l.warnings[3].starts_with("stomp.listeners.tcp.1: STOMP"));
    assert_eq!(l.layers.get("heartbeat").unwrap().text(), "10");
}

#[test]
fn precedence_flag_env_file_default() {
    let d = dir("prec");
    let p = d.join("rabbitmq.conf");
    std::fs::write(
        &p,
        "default_user = fromfile\nheartbeat = 5\nwarren.data_dir = /file\n",
    )
    .unwrap();
    let e = env(&[
        ("RABBITMQ_DEFAULT_USER", "fromenv"),
        ("RABBITMQ_NODE_PORT", "6000"),
    ]);
    let mut l = load(Some((p.clone(), Source::Default)), &e).unwrap().layers;
    assert_eq!(l.get("default_user").unwrap().text(), "fromenv");
    assert_eq!(l.get("heartbeat").unwrap().text(), "5");
    l.set(
        "amqp_port",
        vec!["7000".into()],
        Source::Flag {
            name: "--amqp-port".into(),
        },
    );
    l.set(
        "default_user",
        vec!["x".into()],
        Source::File {
            path: p,
            line: None,
            key: "x".into(),
        },
    );
    assert_eq!(l.get("amqp_port").unwrap().text(), "7000");
    assert_eq!(
        l.get("default_user").unwrap().text(),
        "fromenv",
        "a file never beats the environment"
    );
    assert_eq!(data_dir(&l, "n@h").0, PathBuf::from("/file"));
}

#[test]
fn data_dir_resolution() {
    let e = env(&[
        ("RABBITMQ_MNESIA_BASE", "/base"),
        ("RABBITMQ_NODENAME", "rabbit"),
    ]);
    let l = load(None, &e).unwrap().layers;
    let (node, _) = node_name(&l);
    assert!(node.starts_with("rabbit@"), "{node}");
    assert_eq!(data_dir(&l, &node).0, PathBuf::from("/base").join(&node));
    let e = env(&[
        ("RABBITMQ_MNESIA_BASE", "/base"),
        ("RABBITMQ_MNESIA_DIR", "/mnesia"),
    ]);
    let l = load(None, &e).unwrap().layers;
    assert_eq!(data_dir(&l, "x@y").0, PathBuf::from("/mnesia"));
    assert_eq!(data_dir(&Layers::default(), "x@y").1, Source::Default);
}

#[test]
fn env_file_is_read_and_the_environment_wins() {
    let d = dir("envfile");
    let f = d.join("rabbitmq-env.conf");
    std::fs::write(&f, "# package defaults\nMNESIA_DIR=/var/lib/warren\nNODE_PORT=\"5999\"\nRABBITMQ_NODENAME=a@b\n").unwrap();
    let e = env(&[
        ("RABBITMQ_CONF_ENV_FILE", f.to_str().unwrap()),
        ("RABBITMQ_NODENAME", "c@d"),
    ]);
    assert_eq!(e.get("RABBITMQ_MNESIA_DIR").unwrap().0, "/var/lib/warren");
    assert_eq!(e.get("RABBITMQ_NODE_PORT").unwrap().0, "5999");
    assert_eq!(e.get("RABBITMQ_NODENAME").unwrap().0, "c@d");
    match e.get("RABBITMQ_MNESIA_DIR").unwrap().1 {
        Source::Env { file: Some(p), .. } => assert_eq!(p, f),
        s => panic!("{s:?}"),
    }
}

#[test]
fn config_file_location_order() {
    let d = dir("loc");
    let f = d.join("rabbitmq.conf");
    std::fs::write(&f, "").unwrap();
    let e = env(&[("RABBITMQ_CONFIG_FILE", d.join("rabbitmq").to_str().unwrap())]);
    assert_eq!(
        config_file_location(None, &e, Path::new("/nonexistent"))
            .unwrap()
            .0,
        f
    );
    assert!(config_file_location(None, &env(&[]), Path::new("/nonexistent")).is_none());
    assert_eq!(config_file_location(None, &env(&[]), &f).unwrap().0, f);
}

#[test]
fn toml_still_denies_unknown_fields() {
    let d = dir("toml");
    let p = d.join("warren.toml");
    std::fs::write(
        &p,
        "amqp_port = 5999\nlisteners = [\"127.0.0.1:1\"]\n[ssl_options]\ncertfile = \"/c\"\n",
    )
    .unwrap();
    let l = load(Some((p.clone(), Source::Default)), &env(&[]))
        .unwrap()
        .layers;
    assert_eq!(l.get("amqp_port").unwrap().text(), "5999");
    assert_eq!(l.get("ssl_options.certfile").unwrap().text(), "/c");
    std::fs::write(&p, "no_such_key = 1\n").unwrap();
    let err = load(Some((p, Source::Default)), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key 'no_such_key'"), "{err}");
}

#[test]
fn sizes_as_rabbitmq_writes_them() {
    assert_eq!(parse_size("1000"), Some(1000));
    assert_eq!(parse_size("50MB"), Some(50_000_000));
    assert_eq!(parse_size("512MiB"), Some(512 << 20));
    assert_eq!(parse_size("1GB"), Some(1_000_000_000));
    assert_eq!(parse_size("1024M"), Some(1 << 30));
    assert_eq!(parse_size("2TB"), Some(2_000_000_000_000));
    assert_eq!(parse_size("1gib"), Some(1 << 30));
    assert_eq!(parse_size("MB"), None);
    assert_eq!(parse_size("12 parsecs"), None);
}

#[test]
fn cluster_from_rabbitmq_conf() {
    let l = conf(
        "cluster_formation.peer_discovery_backend = rabbit_peer_discovery_classic_config\n\
         cluster_formation.classic_config.nodes.1 = rabbit@a\n\
         cluster_formation.classic_config.nodes.2 = rabbit@b.example.com\n\
         cluster_formation.classic_config.nodes.3 = rabbit@a\n\
         cluster_formation.warren.addresses.rabbit@b.example.com = b.example.com:25673\n\
         cluster_formation.warren.addresses.rabbit@a = 10.0.0.1:25672\n\
         warren.cluster.port = 25999\nwarren.cluster.bind = 127.0.0.1\n\
         warren.cluster.secret_file = /etc/warren/secret\n\
         cluster_formation.dns.hostname = x\ncluster_formation.node_cleanup.interval = 30\n",
    )
    .unwrap();
    let nodes = l.layers.get("cluster_nodes").unwrap();
    assert_eq!(
        nodes.values,
        vec![
            "rabbit@a=10.0.0.1:25672",
            "rabbit@b.example.com=b.example.com:25673"
        ]
    );
    match &nodes.source {
        Source::File { line, key, .. } => {
            assert_eq!(*line, Some(2));
            assert_eq!(key, "cluster_formation.classic_config.nodes.1");
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(l.layers.get("cluster_port").unwrap().text(), "25999");
    assert_eq!(l.layers.get("cluster_bind").unwrap().text(), "127.0.0.1");
    assert_eq!(
        l.layers.get("cluster_secret_file").unwrap().text(),
        "/etc/warren/secret"
    );
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(l.warnings[0].starts_with("cluster_formation.dns.hostname: Warren finds its peers"));
    // Another backend: warned, with what Warren does instead.
    let l = conf("cluster_formation.peer_discovery_backend = dns\n").unwrap();
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(
        l.warnings[0].starts_with(
            "cluster_formation.peer_discovery_backend = dns: Warren's only peer discovery is classic_config"
        ),
        "{}",
        l.warnings[0]
    );
    assert!(l.layers.get("cluster_nodes").is_none());
}

#[test]
fn cluster_conf_errors_name_the_line() {
    let err = |text: &str| conf(text).unwrap_err().to_string();
    let e = err("heartbeat = 1\ncluster_formation.classic_config.nodes.1 = rabbit@a\n");
    assert!(
        e.ends_with("line 2: cluster node 'rabbit@a' ('cluster_formation.classic_config.nodes.1') has no address: add cluster_formation.warren.addresses.rabbit@a = HOST:PORT"),
        "{e}"
    );
    let e = err("cluster_formation.classic_config.nodes.1 = rabbit@a\n\
         cluster_formation.warren.addresses.rabbit@a = h:1\n\
         cluster_formation.warren.addresses.rabbit@a = h:2\n");
    assert!(
        e.ends_with("line 3: cluster node 'rabbit@a' is given two addresses: h:1 (line 2) and h:2"),
        "{e}"
    );
    let e = err("cluster_formation.warren.addresses.rabbit@z = h:1\n");
    assert!(
        e.ends_with("line 1: 'cluster_formation.warren.addresses.rabbit@z': 'rabbit@z' is not a cluster node: list it as cluster_formation.classic_config.nodes.N = rabbit@z"),
        "{e}"
    );
    let e = err("cluster_formation.warren.addresses.rabbit@a = h\n");
    assert!(
        e.contains("line 1: invalid value 'h' for 'cluster_formation.warren.addresses.rabbit@a': invalid address 'h'"),
        "{e}"
    );
    let e = err("cluster_formation.classic_config.nodes.1 = rabbit\n");
    assert!(e.contains("line 1: invalid value 'rabbit'"), "{e}");
    assert!(e.contains("expected NAME@HOST"), "{e}");
    let e = err("warren.cluster.port = 0\n");
    assert!(
        e.contains("line 1: invalid value '0' for 'warren.cluster.port'"),
        "{e}"
    );
    let e = err("warren.cluster.bind = anywhere\n");
    assert!(
        e.contains("'warren.cluster.bind': expected an IP address"),
        "{e}"
    );
    let e = err("cluster_formation.classic_config.node.1 = rabbit@a\n");
    assert!(
        e.ends_with("unknown key 'cluster_formation.classic_config.node.1'"),
        "{e}"
    );
}

#[test]
fn cluster_from_toml_and_environment() {
    let d = dir("toml-cluster");
    let p = d.join("warren.toml");
    std::fs::write(
        &p,
        "cluster_port = 25001\ncluster_bind = \"::1\"\ncluster_secret_file = \"/s\"\n\
         [cluster_nodes]\n\"n1@h\" = \"127.0.0.1:25001\"\n\"n2@h\" = \"127.0.0.1:25002\"\n",
    )
    .unwrap();
    let l = load(Some((p.clone(), Source::Default)), &env(&[]))
        .unwrap()
        .layers;
    assert_eq!(
        l.get("cluster_nodes").unwrap().values,
        vec!["n1@h=127.0.0.1:25001", "n2@h=127.0.0.1:25002"]
    );
    assert_eq!(l.get("cluster_port").unwrap().text(), "25001");
    assert_eq!(l.get("cluster_bind").unwrap().text(), "::1");
    std::fs::write(&p, "cluster_nodes = [\"n1@h=127.0.0.1:25001\"]\n").unwrap();
    let l = load(
        Some((p.clone(), Source::Default)),
        &env(&[("RABBITMQ_DIST_PORT", "25100")]),
    )
    .unwrap()
    .layers;
    assert_eq!(
        l.get("cluster_nodes").unwrap().values,
        vec!["n1@h=127.0.0.1:25001"]
    );
    let port = l.get("cluster_port").unwrap();
    assert_eq!(port.text(), "25100");
    assert_eq!(
        port.source.locate("cluster_port"),
        "environment variable RABBITMQ_DIST_PORT"
    );
    std::fs::write(&p, "[cluster_nodes]\n\"n1@h\" = 25001\n").unwrap();
    let e = load(Some((p, Source::Default)), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'cluster_nodes.n1@h' must be a string"), "{e}");
}
