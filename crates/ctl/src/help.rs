//! Help: the command list grouped as rabbitmqctl groups it, and a page
//! per command (`warrenctl help list_queues`, `warrenctl list_queues
//! --help`): usage, what the command does in Warren, its arguments and
//! flags, and for listings the columns. Written for Warren, not copied
//! from Erlang's.

use std::io::IsTerminal;

use crate::commands::{Command, COMMANDS};

/// The heading rabbitmqctl's help puts a command under, in its order.
const SECTIONS: &[(&str, &[&str])] = &[
    ("Help", &["help", "version"]),
    (
        "Nodes",
        &["await_startup", "stop", "reload_tls", "rotate_logs"],
    ),
    (
        "Cluster",
        &[
            "cluster_status",
            "join_cluster",
            "forget_cluster_node",
            "set_cluster_name",
        ],
    ),
    (
        "Users",
        &[
            "add_user",
            "authenticate_user",
            "change_password",
            "clear_password",
            "clear_user_limits",
            "delete_user",
            "hash_password",
            "list_user_limits",
            "list_users",
            "set_user_limits",
            "set_user_tags",
        ],
    ),
    (
        "Access Control",
        &[
            "clear_permissions",
            "clear_topic_permissions",
            "list_permissions",
            "list_topic_permissions",
            "list_user_permissions",
            "list_user_topic_permissions",
            "set_permissions",
            "set_topic_permissions",
        ],
    ),
    (
        "Monitoring, observability and health checks",
        &[
            "alarms",
            "check_alarms",
            "check_local_alarms",
            "check_port_connectivity",
            "check_protocol_listener",
            "check_running",
            "check_virtual_hosts",
            "list_bindings",
            "list_channels",
            "list_connections",
            "list_consumers",
            "list_exchanges",
            "list_queues",
            "listeners",
            "memory_breakdown",
            "ping",
            "report",
            "server_version",
            "status",
        ],
    ),
    (
        "Parameters",
        &[
            "clear_global_parameter",
            "clear_parameter",
            "list_global_parameters",
            "list_parameters",
            "set_global_parameter",
            "set_parameter",
        ],
    ),
    (
        "Policies",
        &[
            "clear_operator_policy",
            "clear_policy",
            "list_operator_policies",
            "list_policies",
            "set_operator_policy",
            "set_policy",
        ],
    ),
    (
        "Virtual hosts",
        &[
            "add_vhost",
            "clear_vhost_limits",
            "delete_vhost",
            "list_vhost_limits",
            "list_vhosts",
            "set_vhost_limits",
        ],
    ),
    (
        "Configuration and Environment",
        &[
            "environment",
            "set_disk_free_limit",
            "set_log_level",
            "set_vm_memory_high_watermark",
        ],
    ),
    ("Definitions", &["export_definitions", "import_definitions"]),
    (
        "Feature flags",
        &["enable_feature_flag", "list_feature_flags"],
    ),
    ("Operations", &["close_all_connections", "close_connection"]),
    ("Queues", &["delete_queue", "purge_queue"]),
];

/// The commands `warren-diagnostics` (rabbitmq-diagnostics' name) takes.
pub(crate) const DIAGNOSTICS: &[&str] = &[
    "alarms",
    "check_alarms",
    "check_local_alarms",
    "check_port_connectivity",
    "check_protocol_listener",
    "check_running",
    "check_virtual_hosts",
    "cluster_status",
    "environment",
    "list_feature_flags",
    "listeners",
    "memory_breakdown",
    "ping",
    "report",
    "server_version",
    "status",
];

/// The columns of each listing: every one it accepts, and its default.
pub(crate) const COLUMNS: &[(&str, &[&str], &[&str])] = &[
    (
        "list_queues",
        &[
            "name",
            "vhost",
            "durable",
            "auto_delete",
            "exclusive",
            "arguments",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "message_bytes_ready",
            "consumers",
            "memory",
            "state",
            "type",
            "owner_pid",
            "policy",
            "operator_policy",
            "effective_policy_definition",
        ],
        &["name", "messages"],
    ),
    (
        "list_exchanges",
        &[
            "name",
            "vhost",
            "type",
            "durable",
            "auto_delete",
            "internal",
            "arguments",
        ],
        &["name", "type"],
    ),
    (
        "list_bindings",
        &[
            "source_name",
            "source_kind",
            "destination_name",
            "destination_kind",
            "routing_key",
            "arguments",
            "vhost",
        ],
        &[
            "source_name",
            "source_kind",
            "destination_name",
            "destination_kind",
            "routing_key",
            "arguments",
        ],
    ),
    (
        "list_connections",
        &[
            "pid",
            "name",
            "user",
            "vhost",
            "peer_host",
            "peer_port",
            "host",
            "port",
            "state",
            "channels",
            "protocol",
            "ssl",
            "auth_mechanism",
            "client_properties",
            "connected_at",
            "frame_max",
            "channel_max",
            "timeout",
            "recv_oct",
            "recv_cnt",
            "send_oct",
            "send_cnt",
        ],
        &["user", "peer_host", "peer_port", "state"],
    ),
    (
        "list_channels",
        &[
            "pid",
            "name",
            "connection",
            "number",
            "user",
            "vhost",
            "consumer_count",
            "messages_unacknowledged",
            "prefetch_count",
            "global_prefetch_count",
            "confirm",
            "transactional",
            "state",
        ],
        &["pid", "user", "consumer_count", "messages_unacknowledged"],
    ),
    (
        "list_consumers",
        &[
            "queue_name",
            "channel_pid",
            "consumer_tag",
            "ack_required",
            "prefetch_count",
            "active",
            "arguments",
            "exclusive",
            "vhost",
        ],
        &[
            "queue_name",
            "channel_pid",
            "consumer_tag",
            "ack_required",
            "prefetch_count",
            "active",
            "arguments",
        ],
    ),
    (
        "list_vhosts",
        &[
            "name",
            "description",
            "tags",
            "default_queue_type",
            "tracing",
            "cluster_state",
        ],
        &["name"],
    ),
    (
        "list_feature_flags",
        // Sorted: rabbitmqctl lists these keys alphabetically.
        &[
            "desc",
            "doc_url",
            "name",
            "provided_by",
            "stability",
            "state",
        ],
        &["name", "state"],
    ),
];

/// What a command does, and its arguments and flags, in Warren's words.
/// Commands without an entry get their one-line summary.
const PAGES: &[(&str, &str)] = &[
    ("add_user", "Creates a user with a password (read from standard input when omitted), hashed with salted SHA-256 as RabbitMQ does. The user has no tags and no permissions.\n\n<username>\n\tthe name to create\n<password>\n\tthe password; omit it to read one line from standard input"),
    ("delete_user", "Deletes a user, with its permissions and topic permissions. Its open connections stay open.\n\n<username>\n\tthe user to delete"),
    ("change_password", "Sets a new password for a user.\n\n<username>\n\tthe user\n<password>\n\tthe new password"),
    ("clear_password", "Removes a user's password: the user can no longer log in with a password (EXTERNAL, with a client certificate, still works).\n\n<username>\n\tthe user"),
    ("authenticate_user", "Checks a user name and password against the node's users, as a client's login would; exits 65 when they do not match.\n\n<username>\n\tthe user\n<password>\n\tthe password to check"),
    ("set_user_tags", "Replaces a user's tags (administrator, monitoring, policymaker, management, impersonator, or any other word). No tags: the user loses every tag.\n\n<username>\n\tthe user\n<tag> ...\n\tthe new tags"),
    ("list_users", "Lists users and their tags."),
    ("hash_password", "Prints the hash of a password as RabbitMQ's default hashing (rabbit_password_hashing_sha256) makes it: base64 of a random 4-byte salt followed by SHA-256(salt + password). The hash goes into a definitions file's password_hash. Needs no running broker.\n\n<password>\n\tthe password; omit it to read one line from standard input"),
    ("add_vhost", "Creates a virtual host.\n\n<vhost>\n\tits name\n--description <text>\n\ta description\n--tags <tag1,tag2>\n\tcomma-separated tags\n--default-queue-type <classic|quorum|stream>\n\tthe queue type for declarations that give none (stream queues are refused by Warren)"),
    ("delete_vhost", "Deletes a virtual host with everything in it: queues and their messages, exchanges, bindings, permissions, policies, limits. Connections to it are closed.\n\n<vhost>\n\tthe virtual host"),
    ("list_vhosts", "Lists virtual hosts."),
    ("set_permissions", "Grants a user configure, write and read permissions in a virtual host, each a regular expression over resource names ('.*' all, '' none).\n\n-p <vhost>\n\tthe virtual host (default /)\n<username> <conf> <write> <read>\n\tthe user and the three patterns"),
    ("clear_permissions", "Revokes a user's permissions in a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)\n<username>\n\tthe user"),
    ("list_permissions", "Lists the permissions of every user in a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)"),
    ("list_user_permissions", "Lists a user's permissions in every virtual host.\n\n<username>\n\tthe user"),
    ("set_topic_permissions", "Restricts the routing keys a user may publish with (write) and bind with (read) on a topic exchange, as regular expressions.\n\n-p <vhost>\n\tthe virtual host (default /)\n<username> <exchange> <write> <read>\n\tthe user, the exchange and the two patterns"),
    ("clear_topic_permissions", "Removes a user's topic permissions in a virtual host, for one exchange or all.\n\n-p <vhost>\n\tthe virtual host (default /)\n<username> [<exchange>]\n\tthe user, and optionally the exchange"),
    ("list_topic_permissions", "Lists topic permissions in a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)"),
    ("list_user_topic_permissions", "Lists a user's topic permissions in every virtual host.\n\n<username>\n\tthe user"),
    ("set_policy", "Sets a policy: a definition (JSON) applied to the queues and/or exchanges whose names match a pattern; of the policies that match, the one with the highest priority applies. Warren refuses the classic mirroring keys (ha-*): it does not replicate.\n\n-p <vhost>\n\tthe virtual host (default /)\n--priority <n>\n\tpriority (default 0)\n--apply-to <queues|exchanges|all>\n\twhat the policy applies to (default all)\n<name> <pattern> <definition>\n\tthe policy's name, a regular expression over names, and a JSON object"),
    ("clear_policy", "Removes a policy; its settings leave the queues and exchanges it applied to at once.\n\n-p <vhost>\n\tthe virtual host (default /)\n<name>\n\tthe policy"),
    ("list_policies", "Lists the policies of a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)"),
    ("set_operator_policy", "Sets an operator policy: limits (max-length, message-ttl, expires, …) that cap what user policies and queue arguments set, the lower value winning.\n\n-p <vhost>\n\tthe virtual host (default /)\n--priority <n>\n\tpriority (default 0)\n--apply-to <queues|exchanges|all>\n\twhat the policy applies to\n<name> <pattern> <definition>\n\tthe policy's name, a regular expression over names, and a JSON object"),
    ("clear_operator_policy", "Removes an operator policy.\n\n-p <vhost>\n\tthe virtual host (default /)\n<name>\n\tthe operator policy"),
    ("list_operator_policies", "Lists the operator policies of a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)"),
    ("set_vhost_limits", "Sets a virtual host's limits: max-connections and max-queues (a negative value removes a limit).\n\n-p <vhost>\n\tthe virtual host (default /)\n<definition>\n\ta JSON object, e.g. '{\"max-connections\": 100}'"),
    ("clear_vhost_limits", "Removes every limit of a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)"),
    ("list_vhost_limits", "Shows a virtual host's limits, or every virtual host's with --global.\n\n-p <vhost>\n\tthe virtual host (default /)\n--global\n\tall virtual hosts"),
    ("set_user_limits", "Sets a user's limits: max-connections and max-channels (per connection).\n\n<username> <definition>\n\tthe user and a JSON object, e.g. '{\"max-connections\": 10}'"),
    ("clear_user_limits", "Removes one of a user's limits, or all.\n\n<username> <max-connections|max-channels|all>\n\tthe user and the limit"),
    ("list_user_limits", "Shows users' limits.\n\n--user <username>\n\tone user only"),
    ("list_queues", "Lists the queues of a virtual host with the columns asked for. Quorum queues are listed with type quorum; Warren does not replicate them.\n\n-p <vhost>\n\tthe virtual host (default /)\n<column> ...\n\tthe columns to show"),
    ("list_exchanges", "Lists the exchanges of a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)\n<column> ...\n\tthe columns to show"),
    ("list_bindings", "Lists the bindings of a virtual host, including each queue's implicit binding to the default exchange.\n\n-p <vhost>\n\tthe virtual host (default /)\n<column> ...\n\tthe columns to show"),
    ("list_connections", "Lists AMQP 0-9-1 client connections to the node (MQTT connections are in the HTTP API).\n\n<column> ...\n\tthe columns to show"),
    ("list_channels", "Lists the channels of every AMQP connection.\n\n<column> ...\n\tthe columns to show"),
    ("list_consumers", "Lists the consumers of a virtual host's queues.\n\n-p <vhost>\n\tthe virtual host (default /)\n<column> ...\n\tthe columns to show"),
    ("purge_queue", "Removes every ready message from a queue (unacknowledged ones stay with their consumers). Done once the removal is on disk.\n\n-p <vhost>\n\tthe virtual host (default /)\n<queue>\n\tthe queue"),
    ("delete_queue", "Deletes a queue and its messages.\n\n-p <vhost>\n\tthe virtual host (default /)\n<queue>\n\tthe queue\n--if-empty\n\tonly if it has no messages\n--if-unused\n\tonly if it has no consumers"),
    ("close_connection", "Closes a client connection with reply code 320 and the explanation given.\n\n<connection pid> <explanation>\n\tthe connection's pid (or name, from list_connections) and the text sent to the client"),
    ("close_all_connections", "Closes every client connection of a virtual host, or of the node with --global, with reply code 320.\n\n-p <vhost>\n\tthe virtual host (default /)\n--global\n\tevery connection of the node\n<explanation>\n\tthe text sent to the clients"),
    ("export_definitions", "Writes the node's definitions (users, virtual hosts, permissions, policies, limits, queues, exchanges, bindings, parameters) in RabbitMQ's JSON format.\n\n<file | ->\n\tthe file to write, or - for standard output"),
    ("import_definitions", "Reads definitions in RabbitMQ's JSON format (as rabbitmqctl export_definitions or the HTTP API export them) and applies them. What Warren does not support (shovels, federation, ha-* policy keys, streams, other plugins' parameters) is left out and reported, one line each on standard error; the rest is imported.\n\n<file | ->\n\tthe file to read, or - (the default) for standard input\n--strict\n\trefuse the whole file (exit 65, nothing imported) if anything would be left out"),
    ("status", "Shows the node's state: version, process, alarms, memory use and its high watermark, free disk space and its limit, and counts of connections, queues and virtual hosts. With --formatter json, the whole status object."),
    ("stop", "Stops the broker gracefully: no new connections, every client told with reply code 320, buffers written, a clean-shutdown marker left for the next start."),
    ("await_startup", "Waits until the broker answers on its control socket (for at most the --timeout in seconds, default 60), e.g. after starting the service."),
    ("reload_tls", "Reads the TLS certificate, key and CA files again, as SIGHUP does. New connections use them; open ones keep theirs; on an error the old certificate stays."),
    ("set_vm_memory_high_watermark", "Sets the memory use above which publishers are blocked, as a fraction of the machine's memory or an absolute size. Not written to the configuration: a restart takes the configured value.\n\n<fraction>\n\te.g. 0.4\nabsolute <value>\n\ta size in bytes or with a unit, e.g. 2GB"),
    ("set_disk_free_limit", "Sets the free disk space below which publishers are blocked. Not written to the configuration.\n\n<disk_limit>\n\ta size in bytes or with a unit, e.g. 1GB\nmem_relative <fraction>\n\ta multiple of the machine's memory"),
    ("cluster_status", "Shows the cluster as RabbitMQ's cluster_status does: the members (disk nodes), those this node reaches (running nodes), those it does not (network partitions) and the definitions leader. A node started without --cluster-node is a cluster of one. With --formatter json, RabbitMQ's JSON keys."),
    ("join_cluster", "Asks NODE's cluster to add this node, which must have no cluster yet (a fresh data directory): it joins as a learner, catches up, then votes. A node started with --cluster-node joins a seed's cluster by itself at first start; this is for when that could not happen. NODE must be listed with its address in this node's --cluster-node, and this node in the members' (addresses come only from a node's own configuration)."),
    ("forget_cluster_node", "Removes NODE from the cluster's members. As RabbitMQ's, NODE must be stopped. A forgotten node is refused from then on: it can come back only from an empty data directory (then it joins again)."),
    ("report", "Prints, for a support request, the node's status, cluster status, connections and channels, and for every virtual host its queues, exchanges, bindings, consumers, permissions and policies (with parameters where the node has them)."),
    ("list_feature_flags", "Lists feature flags. Warren states its behaviour as RabbitMQ 3.10.8's stable feature flags, all enabled (no mixed-version cluster to protect). An enabled flag says what Warren is compatible with, not that every feature behind it exists: stream queues are still refused.\n\n<column> ...\n\tthe columns to show"),
    ("enable_feature_flag", "Every flag Warren knows is already enabled, so this succeeds for a known flag and for 'all'; an unknown flag is an error (exit 64).\n\n<all | feature_flag>\n\tthe flag"),
    ("ping", "Checks that the broker process is up and answers on its control socket. Exits 69 when it does not."),
    ("check_running", "Health check: exits 0 once the broker has fully started (every listener bound), 69 while it is starting or when it is down."),
    ("check_local_alarms", "Health check: exits 69 if the node has a memory or disk alarm in effect (publishers blocked), 0 otherwise."),
    ("check_alarms", "Health check: exits 69 if any alarm is in effect, 0 otherwise. With one node, the same alarms as check_local_alarms."),
    ("alarms", "Lists the resource alarms in effect (memory, free disk space). Not a health check: exits 0 either way."),
    ("listeners", "Lists the node's listeners: interface, port, protocol (RabbitMQ's names: amqp, amqp/ssl, mqtt, mqtt/ssl, http, https, http/web-mqtt, http/prometheus) and purpose."),
    ("check_port_connectivity", "Health check: opens a TCP connection to every listener the node reports (a wildcard address is tried on loopback) and closes it; exits 69 naming the listeners that refused."),
    ("check_protocol_listener", "Health check: exits 69 unless the node has a listener for the protocol.\n\n<protocol>\n\ta protocol name or alias as RabbitMQ accepts them: amqp (amqp091, amqp0-9-1), amqp/ssl (amqps), mqtt, mqtt/ssl (mqtts), http (management), https, http/web-mqtt (web-mqtt), http/prometheus"),
    ("check_virtual_hosts", "Health check: exits 69 if a virtual host is down. Warren's virtual hosts have no separate process: one that cannot be recovered stops the broker's start, so a running node reports them all running."),
    ("memory_breakdown", "Shows the broker's resident memory by category, largest first. Warren attributes queue_procs (message bodies queues hold in memory, their overhead and state) and code (the executable and libraries, file-backed); the rest (connection buffers, definitions, allocator caches, stacks) is other.\n\n--unit <bytes|kb|mb|gb|tb>\n\tthe unit (default gb; kb, mb, gb and tb are decimal)"),
    ("server_version", "Prints the version of Warren the node runs."),
    // Commands of the configuration and parameters work (issue 20).
    ("set_parameter", "Sets a runtime parameter of a component in a virtual host. Warren acts on the components it implements; shovel and federation parameters are refused (not supported yet).\n\n-p <vhost>\n\tthe virtual host (default /)\n<component_name> <name> <value>\n\tthe component, the parameter's name and its value (JSON)"),
    ("clear_parameter", "Removes a runtime parameter.\n\n-p <vhost>\n\tthe virtual host (default /)\n<component_name> <name>\n\tthe component and the parameter's name"),
    ("list_parameters", "Lists the runtime parameters of a virtual host.\n\n-p <vhost>\n\tthe virtual host (default /)"),
    ("set_global_parameter", "Sets a global (node-wide) parameter, such as cluster_name.\n\n<name> <value>\n\tthe parameter's name and its value (JSON)"),
    ("clear_global_parameter", "Removes a global parameter.\n\n<name>\n\tthe parameter's name"),
    ("list_global_parameters", "Lists the global parameters."),
    ("set_cluster_name", "Sets the cluster name (the cluster_name global parameter) that clients and the HTTP API are shown.\n\n<name>\n\tthe new name"),
    ("environment", "Shows the configuration the broker runs with and where each setting came from (command line, environment, configuration file, default)."),
    ("rotate_logs", "Closes and reopens the log file, starting a new one, as log rotation expects."),
    ("set_log_level", "Changes the log level at once, without a restart.\n\n<level>\n\tdebug, info, warning, error, critical or none"),
    ("help", "Lists the commands, or shows one command's page.\n\n<command>\n\tthe command"),
    ("version", "Prints warrenctl's version."),
];

fn bright(s: &str) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[1m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// The program's name as the user typed it (`warrenctl`,
/// `warren-diagnostics`).
pub(crate) fn program() -> String {
    std::env::args()
        .next()
        .as_deref()
        .and_then(|p| {
            std::path::Path::new(p)
                .file_name()?
                .to_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "warrenctl".into())
}

/// Whether the program runs as `warren-diagnostics`.
pub(crate) fn as_diagnostics() -> bool {
    program().contains("diagnostics")
}

/// Whether `name` is a command of this program (all of them for
/// warrenctl; the diagnostics set for warren-diagnostics).
pub(crate) fn offered(name: &str) -> bool {
    !as_diagnostics() || DIAGNOSTICS.contains(&name) || name == "help" || name == "version"
}

/// The list of every command, grouped.
pub(crate) fn all() -> String {
    let prog = program();
    let mut s = format!(
        "\n{}\n\n{prog} [--node <node>] [--timeout <timeout>] [--longnames] [--quiet] [--data-dir <dir>] <command> [<command options>]\n\nAvailable commands:\n",
        bright("Usage")
    );
    let names: Vec<&str> = COMMANDS
        .iter()
        .map(|c| c.name)
        .chain(["help", "version"])
        .filter(|n| offered(n))
        .collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let line = |n: &str| format!("   {n:<width$}  {}\n", summary(n));
    let mut placed: Vec<&str> = Vec::new();
    for (title, members) in SECTIONS {
        let mut here: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| members.contains(n))
            .collect();
        if here.is_empty() {
            continue;
        }
        here.sort_unstable();
        s.push_str(&format!("\n{}:\n\n", bright(title)));
        for n in &here {
            s.push_str(&line(n));
        }
        placed.extend(here);
    }
    let mut rest: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !placed.contains(n))
        .collect();
    if !rest.is_empty() {
        rest.sort_unstable();
        s.push_str(&format!("\n{}:\n\n", bright("Other")));
        for n in &rest {
            s.push_str(&line(n));
        }
    }
    s.push_str(&format!(
        "\nUse '{prog} help <command>' to learn more about a specific command"
    ));
    s
}

fn command(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// A command's one-line summary.
fn summary(name: &str) -> &'static str {
    match name {
        "help" => "Displays usage information for a command",
        "version" => "Displays CLI tools version",
        _ => command(name).map_or("", |c| c.help),
    }
}

/// One command's page, or None for an unknown command.
pub(crate) fn page(name: &str) -> Option<String> {
    let usage = match name {
        "help" => "[<command>]",
        "version" => "",
        _ => command(name)?.usage,
    };
    let prog = program();
    let mut s = format!(
        "\n{}\n\n{prog} [--node <node>] [--longnames] [--quiet] {name} {usage}\n\n",
        bright("Usage")
    );
    let text = PAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(summary(name), |(_, t)| t);
    let (description, arguments) = match text.split_once("\n\n") {
        Some((d, a)) => (d, Some(a)),
        None => (text, None),
    };
    s.push_str(description.trim_end_matches('.'));
    s.push_str(".\n");
    if let Some(a) = arguments {
        s.push_str(&format!("\n{}\n\n{a}\n", bright("Arguments and Options")));
    }
    if let Some((_, all, default)) = COLUMNS.iter().find(|(n, _, _)| *n == name) {
        s.push_str(&format!(
            "\n{}\n\n{}\n\nWithout columns: {}.\n",
            bright("Columns"),
            all.join(", "),
            default.join(", ")
        ));
    }
    s.push_str(&format!(
        "\n{}\n\n\
         -n <node>, --node <node>  the node: the local one only (Warren does not cluster yet)\n\
         --data-dir <dir>          the broker's data directory (its control socket is there)\n\
         -t <s>, --timeout <s>     give up after this many seconds (default 60)\n\
         -q, --quiet               no informational lines\n\
         -s, --silent              no informational lines nor table headers\n\
         -p <vhost>, --vhost       the virtual host, for commands scoped to one (default /)\n\
         --formatter json          JSON output, where the command has it\n\
         --help                    this page\n\
         \n\
         Exit codes: 0 success, 64 usage error, 65 data error, 67 no such user, 69 unavailable \
         (broker down, failed health check, unknown node or virtual host), 70 software error, 75 timeout.",
        bright("General Options")
    ));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_page_and_a_section() {
        let listed = all();
        for c in COMMANDS {
            let p = page(c.name).unwrap();
            assert!(p.contains(c.name), "{}", c.name);
            assert!(listed.contains(c.name), "{}", c.name);
            assert!(
                SECTIONS.iter().any(|(_, m)| m.contains(&c.name)),
                "{} has no section",
                c.name
            );
            assert!(
                PAGES.iter().any(|(n, _)| *n == c.name),
                "{} has no page",
                c.name
            );
        }
        assert!(page("no_such_command").is_none());
        let p = page("list_queues").unwrap();
        assert!(p.contains("messages_unacknowledged"));
        assert!(p.contains("Without columns: name, messages."));
    }
}
