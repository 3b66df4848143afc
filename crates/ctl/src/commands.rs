//! The commands, with rabbitmqctl's names, banners, columns, messages
//! and exit codes (measured on rabbitmqctl 3.10.8:
//! `tests/python/tools/probe-rabbitmqctl-3.10.8.txt`).

use std::io::Read;

use serde_json::{json, Value};

use crate::args::Line;
use crate::client::{Client, Refusal};
use crate::limits;
use crate::output::{cell, println_safe, term, Out};
use crate::parameters;
use crate::policies;
use crate::{Failure, EX_DATAERR, EX_NOUSER, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE};

/// What a command runs with.
pub struct Ctx<'a> {
    pub line: &'a Line,
    pub out: Out,
    pub client: Client,
}

type Run = fn(&Ctx) -> Result<(), Failure>;

/// One command: its name, its arguments as rabbitmqctl's usage shows
/// them, how many positional arguments it takes, and what it does.
pub struct Command {
    pub name: &'static str,
    pub usage: &'static str,
    pub min: usize,
    pub max: usize,
    pub help: &'static str,
    pub run: Run,
}

const MANY: usize = usize::MAX;

pub const COMMANDS: &[Command] = &[
    Command { name: "add_user", usage: "<username> <password>", min: 1, max: 2, help: "Creates a new user in the internal database", run: add_user },
    Command { name: "delete_user", usage: "<username>", min: 1, max: 1, help: "Removes a user from the internal database", run: delete_user },
    Command { name: "change_password", usage: "<username> <password>", min: 2, max: 2, help: "Changes the user password", run: change_password },
    Command { name: "clear_password", usage: "<username>", min: 1, max: 1, help: "Clears (resets) password and disables password login for a user", run: clear_password },
    Command { name: "authenticate_user", usage: "<username> <password>", min: 2, max: 2, help: "Attempts to authenticate a user", run: authenticate_user },
    Command { name: "set_user_tags", usage: "<username> <tag> [...]", min: 1, max: MANY, help: "Sets user tags", run: set_user_tags },
    Command { name: "list_users", usage: "[--no-table-headers]", min: 0, max: 0, help: "List user names and tags", run: list_users },
    Command { name: "add_vhost", usage: "<vhost> [--description <description> --tags \"<tag1>,<tag2>,<...>\" --default-queue-type <quorum|classic|stream>]", min: 1, max: 1, help: "Creates a virtual host", run: add_vhost },
    Command { name: "delete_vhost", usage: "<vhost>", min: 1, max: 1, help: "Deletes a virtual host", run: delete_vhost },
    Command { name: "list_vhosts", usage: "[<column> ...]", min: 0, max: MANY, help: "Lists virtual hosts", run: list_vhosts },
    Command { name: "set_permissions", usage: "[--vhost <vhost>] <username> <conf> <write> <read>", min: 4, max: 4, help: "Sets user permissions for a vhost", run: set_permissions },
    Command { name: "clear_permissions", usage: "[--vhost <vhost>] <username>", min: 1, max: 1, help: "Revokes user permissions for a vhost", run: clear_permissions },
    Command { name: "list_permissions", usage: "[--vhost <vhost>]", min: 0, max: 0, help: "Lists user permissions in a virtual host", run: list_permissions },
    Command { name: "list_user_permissions", usage: "<username>", min: 1, max: 1, help: "Lists permissions of a user across all virtual hosts", run: list_user_permissions },
    Command { name: "set_topic_permissions", usage: "[--vhost <vhost>] <username> <exchange> <write> <read>", min: 4, max: 4, help: "Sets topic permissions for user", run: set_topic_permissions },
    Command { name: "clear_topic_permissions", usage: "[--vhost <vhost>] <username> [<exchange>]", min: 1, max: 2, help: "Clears user topic permissions for a vhost or exchange", run: clear_topic_permissions },
    Command { name: "list_topic_permissions", usage: "[--vhost <vhost>]", min: 0, max: 0, help: "Lists topic permissions in a virtual host", run: list_topic_permissions },
    Command { name: "list_user_topic_permissions", usage: "<username>", min: 1, max: 1, help: "Lists user topic permissions", run: list_user_topic_permissions },
    Command { name: "set_policy", usage: "[--vhost <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>", min: 3, max: 3, help: "Sets or updates a policy", run: policies::set_policy },
    Command { name: "clear_policy", usage: "[--vhost <vhost>] <name>", min: 1, max: 1, help: "Clears (removes) a policy", run: policies::clear_policy },
    Command { name: "list_policies", usage: "[--vhost <vhost>]", min: 0, max: 0, help: "Lists all policies in a virtual host", run: policies::list_policies },
    Command { name: "set_operator_policy", usage: "[--vhost <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>", min: 3, max: 3, help: "Sets an operator policy that overrides a subset of arguments in user policies", run: policies::set_operator_policy },
    Command { name: "clear_operator_policy", usage: "[--vhost <vhost>] <name>", min: 1, max: 1, help: "Clears an operator policy", run: policies::clear_operator_policy },
    Command { name: "list_operator_policies", usage: "[--vhost <vhost>]", min: 0, max: 0, help: "Lists operator policy overrides for a virtual host", run: policies::list_operator_policies },
    Command { name: "set_vhost_limits", usage: "[--vhost <vhost>] <definition>", min: 1, max: 1, help: "Sets virtual host limits", run: limits::set_vhost_limits },
    Command { name: "clear_vhost_limits", usage: "[--vhost <vhost>]", min: 0, max: 0, help: "Clears virtual host limits", run: limits::clear_vhost_limits },
    Command { name: "list_vhost_limits", usage: "[--vhost <vhost>] [--global] [--no-table-headers]", min: 0, max: 0, help: "Displays configured virtual host limits", run: limits::list_vhost_limits },
    Command { name: "set_user_limits", usage: "<username> <definition>", min: 2, max: 2, help: "Sets user limits", run: limits::set_user_limits },
    Command { name: "clear_user_limits", usage: "<username> <limit> | all", min: 2, max: 2, help: "Clears user connection/channel limits", run: limits::clear_user_limits },
    Command { name: "list_user_limits", usage: "[--user <username>] [--no-table-headers]", min: 0, max: 0, help: "Displays configured user limits", run: limits::list_user_limits },
    Command { name: "list_queues", usage: "[--vhost <vhost>] [<column> ...]", min: 0, max: MANY, help: "Lists queues and their properties", run: list_queues },
    Command { name: "list_exchanges", usage: "[--vhost <vhost>] [<column> ...]", min: 0, max: MANY, help: "Lists exchanges", run: list_exchanges },
    Command { name: "list_bindings", usage: "[--vhost <vhost>] [<column> ...]", min: 0, max: MANY, help: "Lists all bindings on a vhost", run: list_bindings },
    Command { name: "list_connections", usage: "[<column> ...]", min: 0, max: MANY, help: "Lists AMQP 0.9.1 connections for the node", run: list_connections },
    Command { name: "list_channels", usage: "[<column> ...]", min: 0, max: MANY, help: "Lists all channels in the node", run: list_channels },
    Command { name: "list_consumers", usage: "[--vhost <vhost>] [<column> ...]", min: 0, max: MANY, help: "Lists all consumers for a vhost", run: list_consumers },
    Command { name: "purge_queue", usage: "[--vhost <vhost>] <queue>", min: 1, max: 1, help: "Purges a queue (removes all messages in it)", run: purge_queue },
    Command { name: "delete_queue", usage: "[--vhost <vhost>] <queue_name> [--if-empty|-e] [--if-unused|-u]", min: 1, max: 1, help: "Deletes a queue", run: delete_queue },
    Command { name: "close_connection", usage: "<connection pid> <explanation>", min: 2, max: 2, help: "Instructs the broker to close the connection associated with the Erlang process id", run: close_connection },
    Command { name: "close_all_connections", usage: "[--vhost <vhost> --limit <limit>] [-n <node> --global] [--per-connection-delay <delay>] <explanation>", min: 1, max: 1, help: "Instructs the broker to close all connections for the specified vhost or entire RabbitMQ node", run: close_all_connections },
    Command { name: "export_definitions", usage: "<file_path | \"-\"> [--format <json | erlang>]", min: 1, max: 1, help: "Exports definitions in JSON or compressed Erlang Term Format.", run: export_definitions },
    Command { name: "import_definitions", usage: "<file_path | \"-\"> [--format <json | erlang>] [--skip-if-unchanged] [--strict] [--timeout <timeout>]", min: 0, max: 1, help: "Imports definitions in JSON or compressed Erlang Term Format. Items Warren does not support are left out and reported; --strict refuses the whole file instead (Warren's own flag)", run: import_definitions },
    Command { name: "set_parameter", usage: "[--vhost <vhost>] <component_name> <name> <value>", min: 3, max: 3, help: "Sets a runtime parameter.", run: parameters::set_parameter },
    Command { name: "clear_parameter", usage: "[--vhost <vhost>] <component_name> <key>", min: 2, max: 2, help: "Clears a runtime parameter.", run: parameters::clear_parameter },
    Command { name: "list_parameters", usage: "[--vhost <vhost>]", min: 0, max: 0, help: "Lists runtime parameters for a virtual host", run: parameters::list_parameters },
    Command { name: "set_global_parameter", usage: "<name> <value>", min: 2, max: 2, help: "Sets a runtime parameter.", run: parameters::set_global_parameter },
    Command { name: "clear_global_parameter", usage: "<key>", min: 1, max: 1, help: "Clears a global runtime parameter", run: parameters::clear_global_parameter },
    Command { name: "list_global_parameters", usage: "", min: 0, max: 0, help: "Lists global runtime parameters", run: parameters::list_global_parameters },
    Command { name: "set_cluster_name", usage: "<name>", min: 1, max: 1, help: "Sets the cluster name", run: parameters::set_cluster_name },
    Command { name: "status", usage: "", min: 0, max: 0, help: "Displays status of a node", run: status },
    // Issue 20: rabbitmq-diagnostics' checks and the runbook commands.
    Command { name: "cluster_status", usage: "", min: 0, max: 0, help: "Displays all the nodes in the cluster grouped by node type, together with the currently running nodes", run: crate::cluster::cluster_status },
    // Issue 21: the cluster's membership.
    Command { name: "join_cluster", usage: "<existing_cluster_member>", min: 1, max: 1, help: "Instructs the node to become a member of the cluster that the specified node is in", run: crate::cluster::join_cluster },
    Command { name: "forget_cluster_node", usage: "<existing_cluster_member>", min: 1, max: 1, help: "Removes a node from the cluster", run: crate::cluster::forget_cluster_node },
    Command { name: "report", usage: "", min: 0, max: 0, help: "Generate a server status report containing a concatenation of all server status information for support purposes", run: crate::report::report },
    Command { name: "list_feature_flags", usage: "[<column> ...]", min: 0, max: MANY, help: "Lists feature flags", run: crate::features::list_feature_flags },
    Command { name: "enable_feature_flag", usage: "<all | feature_flag>", min: 1, max: 1, help: "Enables a feature flag or all supported feature flags on the target node", run: crate::features::enable_feature_flag },
    Command { name: "hash_password", usage: "<cleartext_password>", min: 0, max: 1, help: "Hashes a plaintext password", run: crate::password::hash_password },
    Command { name: "ping", usage: "", min: 0, max: 0, help: "Checks that the node OS process is up and CLI tools can reach it", run: crate::diagnostics::ping },
    Command { name: "check_running", usage: "", min: 0, max: 0, help: "Health check that exits with a non-zero code if the broker on the target node is not running", run: crate::diagnostics::check_running },
    Command { name: "check_local_alarms", usage: "", min: 0, max: 0, help: "Health check that exits with a non-zero code if the target node reports any local alarms", run: crate::diagnostics::check_local_alarms },
    Command { name: "check_alarms", usage: "", min: 0, max: 0, help: "Health check that exits with a non-zero code if the target node reports any alarms, local or cluster-wide.", run: crate::diagnostics::check_alarms },
    Command { name: "check_port_connectivity", usage: "", min: 0, max: 0, help: "Basic TCP connectivity health check for each listener's port on the target node", run: crate::diagnostics::check_port_connectivity },
    Command { name: "check_protocol_listener", usage: "<protocol>", min: 1, max: 1, help: "Health check that exits with a non-zero code if target node does not have an active listener for given protocol", run: crate::diagnostics::check_protocol_listener },
    Command { name: "check_virtual_hosts", usage: "", min: 0, max: 0, help: "Health check that checks if all vhosts are running in the target node", run: crate::diagnostics::check_virtual_hosts },
    Command { name: "listeners", usage: "", min: 0, max: 0, help: "Lists active connection listeners (bound interface, port, protocol) on the target node", run: crate::diagnostics::listeners },
    Command { name: "alarms", usage: "", min: 0, max: 0, help: "Lists resource alarms (local or cluster-wide) in effect on the target node", run: crate::diagnostics::alarms },
    Command { name: "memory_breakdown", usage: "[--unit <unit>]", min: 0, max: 0, help: "Provides a memory usage breakdown on the target node.", run: crate::memory::memory_breakdown },
    Command { name: "server_version", usage: "", min: 0, max: 0, help: "Displays server version on the target node", run: crate::diagnostics::server_version },
    Command { name: "stop", usage: "[--idempotent] [<pidfile>]", min: 0, max: 1, help: "Stops RabbitMQ and its runtime (Erlang VM). Requires a local node pid file path to monitor progress.", run: stop },
    Command { name: "await_startup", usage: "", min: 0, max: 0, help: "Waits for the RabbitMQ application to start on the target node", run: await_startup },
    Command { name: "environment", usage: "", min: 0, max: 0, help: "Displays the effective configuration: every setting, its value and where it came from (flag, environment, config file line, default)", run: crate::environment::environment },
    Command { name: "rotate_logs", usage: "", min: 0, max: 0, help: "Rotates the log file now (name.log becomes name.log.0)", run: crate::environment::rotate_logs },
    Command { name: "set_log_level", usage: "<log_level>", min: 1, max: 1, help: "Sets the log level of every log output at runtime (debug, info, warning, error, critical, none)", run: crate::environment::set_log_level },
    Command { name: "reload_tls", usage: "", min: 0, max: 0, help: "Reads the TLS certificate, key and CA files again (Warren's own; as SIGHUP). New connections use them; on an error the old certificate stays", run: reload_tls },
    Command { name: "set_vm_memory_high_watermark", usage: "<fraction> | absolute <value>", min: 1, max: 2, help: "Sets the vm_memory_high_watermark setting", run: set_vm_memory_high_watermark },
    Command { name: "set_disk_free_limit", usage: "<disk_limit> | mem_relative <fraction>", min: 1, max: 2, help: "Sets the disk_free_limit setting", run: set_disk_free_limit },
];

/// `Error:` and the message on stderr, with an exit code.
pub(crate) fn error(code: u8, message: impl AsRef<str>) -> Failure {
    Failure::new(code, format!("Error:\n{}", message.as_ref()))
}

/// The broker's refusal, as this command reports it.
fn refused(r: Result<Refusal, Failure>, map: impl Fn(&Refusal) -> Option<Failure>) -> Failure {
    match r {
        Ok(refusal) => map(&refusal).unwrap_or_else(|| {
            let code = if refusal.kind == "unavailable" {
                crate::EX_TEMPFAIL
            } else {
                EX_SOFTWARE
            };
            error(code, &refusal.message)
        }),
        Err(f) => f,
    }
}

impl Ctx<'_> {
    pub(crate) fn arg(&self, i: usize) -> &str {
        &self.line.positional[i]
    }

    /// A request whose refusals this command maps with `map`.
    pub(crate) fn call(
        &self,
        req: Value,
        map: impl Fn(&Refusal) -> Option<Failure>,
    ) -> Result<Value, Failure> {
        self.client.request(req).map_err(|r| refused(r, map))
    }

    pub(crate) fn rows(
        &self,
        req: Value,
        map: impl Fn(&Refusal) -> Option<Failure>,
    ) -> Result<Vec<Value>, Failure> {
        Ok(self.call(req, map)?.as_array().cloned().unwrap_or_default())
    }
}

fn no_such_user(r: &Refusal) -> Option<Failure> {
    (r.kind == "no_such_user").then(|| error(EX_NOUSER, &r.message))
}

/// set_permissions and friends: rabbitmqctl's texts there lack quotes.
fn permission_refusal(r: &Refusal, line: &Line, user: &str) -> Option<Failure> {
    match r.kind.as_str() {
        "no_such_user" => Some(error(EX_NOUSER, format!("User {user} does not exist"))),
        "no_such_vhost" => Some(error(
            EX_UNAVAILABLE,
            format!("Virtual host {} does not exist", line.vhost()),
        )),
        "invalid_regex" => Some(error(EX_UNAVAILABLE, &r.message)),
        _ => None,
    }
}

// ---- users ------------------------------------------------------------

fn add_user(c: &Ctx) -> Result<(), Failure> {
    let name = c.arg(0);
    c.out.info(&format!("Adding user \"{name}\" ..."));
    let password = match c.line.positional.get(1) {
        Some(p) => p.clone(),
        None => {
            // rabbitmqctl reads the password from stdin when omitted.
            c.out.info("Password: ");
            let mut s = String::new();
            let _ = std::io::stdin().read_to_string(&mut s);
            let p = s.lines().next().unwrap_or("").to_string();
            if p.is_empty() {
                return Err(error(
                    EX_DATAERR,
                    "Password is not provided via argument or stdin",
                ));
            }
            p
        }
    };
    c.call(
        json!({"op": "add_user", "name": name, "password": password}),
        |r| (r.kind == "user_exists").then(|| error(EX_SOFTWARE, &r.message)),
    )?;
    c.out.info("Done. Don't forget to grant the user permissions to some virtual hosts! See 'rabbitmqctl help set_permissions' to learn more.");
    Ok(())
}

fn delete_user(c: &Ctx) -> Result<(), Failure> {
    c.out.info(&format!("Deleting user \"{}\" ...", c.arg(0)));
    c.call(json!({"op": "delete_user", "name": c.arg(0)}), no_such_user)?;
    Ok(())
}

fn change_password(c: &Ctx) -> Result<(), Failure> {
    c.out
        .info(&format!("Changing password for user \"{}\" ...", c.arg(0)));
    c.call(
        json!({"op": "change_password", "name": c.arg(0), "password": c.arg(1)}),
        no_such_user,
    )?;
    Ok(())
}

fn clear_password(c: &Ctx) -> Result<(), Failure> {
    c.out
        .info(&format!("Clearing password for user \"{}\" ...", c.arg(0)));
    c.call(
        json!({"op": "clear_password", "name": c.arg(0)}),
        no_such_user,
    )?;
    Ok(())
}

fn authenticate_user(c: &Ctx) -> Result<(), Failure> {
    let name = c.arg(0);
    c.out.info(&format!("Authenticating user \"{name}\" ..."));
    c.call(
        json!({"op": "authenticate_user", "name": name, "password": c.arg(1)}),
        |r| {
            (r.kind == "authentication_failed").then(|| {
                error(
                    EX_DATAERR,
                    format!("Error: failed to authenticate user \"{name}\"\nuser '{name}' - invalid credentials"),
                )
            })
        },
    )?;
    c.out.info("Success");
    Ok(())
}

fn set_user_tags(c: &Ctx) -> Result<(), Failure> {
    let tags: Vec<&str> = c.line.positional[1..].iter().map(String::as_str).collect();
    c.out.info(&format!(
        "Setting tags for user \"{}\" to [{}] ...",
        c.arg(0),
        tags.join(", ")
    ));
    c.call(
        json!({"op": "set_user_tags", "name": c.arg(0), "tags": tags}),
        no_such_user,
    )?;
    Ok(())
}

fn list_users(c: &Ctx) -> Result<(), Failure> {
    c.out.info("Listing users ...");
    let rows = c.rows(json!({"op": "list_users"}), |_| None)?;
    c.out
        .table(&cols(&["user", "tags"]), &rows, true, &|_, v| cell(v));
    Ok(())
}

// ---- vhosts -----------------------------------------------------------

fn add_vhost(c: &Ctx) -> Result<(), Failure> {
    let name = c.arg(0);
    c.out.info(&format!("Adding vhost \"{name}\" ..."));
    let tags: Vec<String> = c
        .line
        .flag_value("--tags")
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    c.call(
        json!({
            "op": "add_vhost", "name": name,
            "description": c.line.flag_value("--description").unwrap_or(""),
            "tags": tags,
            "default_queue_type": c.line.flag_value("--default-queue-type"),
        }),
        |_| None,
    )?;
    Ok(())
}

fn delete_vhost(c: &Ctx) -> Result<(), Failure> {
    c.out.info(&format!("Deleting vhost \"{}\" ...", c.arg(0)));
    c.call(json!({"op": "delete_vhost", "name": c.arg(0)}), |r| {
        (r.kind == "no_such_vhost").then(|| Failure::new(EX_DATAERR, r.message.clone()))
    })?;
    Ok(())
}

fn list_vhosts(c: &Ctx) -> Result<(), Failure> {
    let columns = listing_columns(c)?;
    c.out.info("Listing vhosts ...");
    let rows = c.rows(json!({"op": "list_vhosts"}), |_| None)?;
    c.out.table(&columns, &rows, true, &|k, v| match (k, v) {
        ("default_queue_type", Value::Null) => "undefined".into(),
        ("cluster_state", _) => format!("[{{{},running}}]", c.client.node()),
        _ => cell(v),
    });
    Ok(())
}

// ---- permissions ------------------------------------------------------

fn set_permissions(c: &Ctx) -> Result<(), Failure> {
    let (user, vhost) = (c.arg(0), c.line.vhost());
    c.out.info(&format!(
        "Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    c.call(
        json!({"op": "set_permissions", "vhost": vhost, "user": user,
               "configure": c.arg(1), "write": c.arg(2), "read": c.arg(3)}),
        |r| permission_refusal(r, c.line, user),
    )?;
    Ok(())
}

fn clear_permissions(c: &Ctx) -> Result<(), Failure> {
    let (user, vhost) = (c.arg(0), c.line.vhost());
    c.out.info(&format!(
        "Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    c.call(
        json!({"op": "clear_permissions", "vhost": vhost, "user": user}),
        |r| permission_refusal(r, c.line, user),
    )?;
    Ok(())
}

fn vhost_missing_65(r: &Refusal) -> Option<Failure> {
    (r.kind == "no_such_vhost").then(|| Failure::new(EX_DATAERR, r.message.clone()))
}

fn list_permissions(c: &Ctx) -> Result<(), Failure> {
    let vhost = c.line.vhost();
    c.out
        .info(&format!("Listing permissions for vhost \"{vhost}\" ..."));
    let rows = c.rows(
        json!({"op": "list_permissions", "vhost": vhost}),
        vhost_missing_65,
    )?;
    c.out.table(
        &cols(&["user", "configure", "write", "read"]),
        &rows,
        true,
        &|_, v| cell(v),
    );
    Ok(())
}

fn list_user_permissions(c: &Ctx) -> Result<(), Failure> {
    let user = c.arg(0);
    c.out
        .info(&format!("Listing permissions for user \"{user}\" ..."));
    let rows = c.rows(json!({"op": "list_user_permissions", "user": user}), |r| {
        (r.kind == "no_such_user")
            .then(|| error(EX_UNAVAILABLE, format!("{{:no_such_user, \"{user}\"}}")))
    })?;
    c.out.table(
        &cols(&["vhost", "configure", "write", "read"]),
        &rows,
        true,
        &|_, v| cell(v),
    );
    Ok(())
}

fn set_topic_permissions(c: &Ctx) -> Result<(), Failure> {
    let (user, vhost, exchange) = (c.arg(0), c.line.vhost(), c.arg(1));
    c.out.info(&format!(
        "Setting topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    c.call(
        json!({"op": "set_topic_permissions", "vhost": vhost, "user": user,
               "exchange": exchange, "write": c.arg(2), "read": c.arg(3)}),
        |r| permission_refusal(r, c.line, user),
    )?;
    Ok(())
}

fn clear_topic_permissions(c: &Ctx) -> Result<(), Failure> {
    let (user, vhost) = (c.arg(0), c.line.vhost());
    let exchange = c.line.positional.get(1);
    match exchange {
        Some(x) => c.out.info(&format!(
            "Clearing topic permissions on \"{x}\" for user \"{user}\" in vhost \"{vhost}\" ..."
        )),
        None => c.out.info(&format!(
            "Clearing topic permissions for user \"{user}\" in vhost \"{vhost}\" ..."
        )),
    }
    c.call(
        json!({"op": "clear_topic_permissions", "vhost": vhost, "user": user, "exchange": exchange}),
        |r| permission_refusal(r, c.line, user),
    )?;
    Ok(())
}

fn list_topic_permissions(c: &Ctx) -> Result<(), Failure> {
    let vhost = c.line.vhost();
    c.out.info(&format!(
        "Listing topic permissions for vhost \"{vhost}\" ..."
    ));
    let rows = c.rows(
        json!({"op": "list_topic_permissions", "vhost": vhost}),
        vhost_missing_65,
    )?;
    c.out.table(
        &cols(&["user", "exchange", "write", "read"]),
        &rows,
        true,
        &|_, v| cell(v),
    );
    Ok(())
}

fn list_user_topic_permissions(c: &Ctx) -> Result<(), Failure> {
    let user = c.arg(0);
    c.out.info(&format!(
        "Listing topic permissions for user \"{user}\" ..."
    ));
    let rows = c.rows(
        json!({"op": "list_user_topic_permissions", "user": user}),
        |r| {
            (r.kind == "no_such_user")
                .then(|| error(EX_UNAVAILABLE, format!("{{:no_such_user, \"{user}\"}}")))
        },
    )?;
    // rabbitmqctl prints these rows without a header.
    c.out.table(
        &cols(&["vhost", "exchange", "write", "read"]),
        &rows,
        false,
        &|_, v| cell(v),
    );
    Ok(())
}

// ---- queues, exchanges, bindings ----------------------------------------

fn list_queues(c: &Ctx) -> Result<(), Failure> {
    let columns = listing_columns(c)?;
    let vhost = c.line.vhost();
    c.out.info(&format!(
        "Timeout: {:.1} seconds ...",
        c.line.options.timeout as f64
    ));
    c.out.info(&format!("Listing queues for vhost {vhost} ..."));
    let mut rows = c.rows(json!({"op": "list_queues", "vhost": vhost}), |_| None)?;
    if !c.line.options.json {
        // Said plainly in the table; JSON keeps RabbitMQ's `type` and
        // carries `replicated`.
        for r in &mut rows {
            if r.get("type").and_then(Value::as_str) == Some("quorum")
                && r.get("replicated").and_then(Value::as_bool) == Some(false)
            {
                r["type"] = "quorum (not replicated)".into();
            }
        }
    }
    c.out.table(&columns, &rows, true, &|_, v| cell(v));
    Ok(())
}

fn list_exchanges(c: &Ctx) -> Result<(), Failure> {
    let columns = listing_columns(c)?;
    let vhost = c.line.vhost();
    c.out
        .info(&format!("Listing exchanges for vhost {vhost} ..."));
    let rows = c.rows(json!({"op": "list_exchanges", "vhost": vhost}), |_| None)?;
    c.out.table(&columns, &rows, true, &|_, v| cell(v));
    Ok(())
}

fn list_bindings(c: &Ctx) -> Result<(), Failure> {
    let columns = listing_columns(c)?;
    let vhost = c.line.vhost();
    c.out
        .info(&format!("Listing bindings for vhost {vhost}..."));
    let rows = c.rows(json!({"op": "list_bindings", "vhost": vhost}), |_| None)?;
    c.out.table(&columns, &rows, true, &|_, v| cell(v));
    Ok(())
}

// ---- connections, channels, consumers -----------------------------------

fn list_connections(c: &Ctx) -> Result<(), Failure> {
    let columns = listing_columns(c)?;
    c.out.info("Listing connections ...");
    let rows = c.rows(json!({"op": "list_connections"}), |_| None)?;
    c.out.table(&columns, &rows, true, &|k, v| match k {
        "protocol" => "{0,9,1}".into(),
        "client_properties" => term(v),
        _ => cell(v),
    });
    Ok(())
}

fn list_channels(c: &Ctx) -> Result<(), Failure> {
    let columns = listing_columns(c)?;
    c.out.info("Listing channels ...");
    let rows = c.rows(json!({"op": "list_channels"}), |_| None)?;
    c.out.table(&columns, &rows, true, &|_, v| cell(v));
    Ok(())
}

fn list_consumers(c: &Ctx) -> Result<(), Failure> {
    let columns = listing_columns(c)?;
    let vhost = c.line.vhost();
    c.out
        .info(&format!("Listing consumers in vhost {vhost} ..."));
    let rows = c.rows(json!({"op": "list_consumers", "vhost": vhost}), |_| None)?;
    c.out.table(&columns, &rows, true, &|_, v| cell(v));
    Ok(())
}

fn purge_queue(c: &Ctx) -> Result<(), Failure> {
    let (q, vhost) = (c.arg(0), c.line.vhost());
    c.out
        .info(&format!("Purging queue '{q}' in vhost '{vhost}' ..."));
    c.call(
        json!({"op": "purge_queue", "vhost": vhost, "name": q}),
        |r| (r.kind == "no_such_queue").then(|| error(EX_UNAVAILABLE, "not_found")),
    )?;
    Ok(())
}

fn delete_queue(c: &Ctx) -> Result<(), Failure> {
    let (q, vhost) = (c.arg(0), c.line.vhost());
    let if_empty = c.line.flag("--if-empty");
    let if_unused = c.line.flag("--if-unused");
    let condition = match (if_empty, if_unused) {
        (true, true) => " if queue is empty and if queue is unused",
        (true, false) => " if queue is empty",
        (false, true) => " if queue is unused",
        (false, false) => "",
    };
    c.out.info(&format!(
        "Deleting queue '{q}' on vhost '{vhost}'{condition} ..."
    ));
    let n = c.call(
        json!({"op": "delete_queue", "vhost": vhost, "name": q, "if_empty": if_empty, "if_unused": if_unused}),
        |r| match r.kind.as_str() {
            "no_such_queue" => Some(error(EX_USAGE, "Queue not found")),
            "queue_not_empty" => Some(error(EX_USAGE, "Queue is not empty")),
            "queue_in_use" => Some(error(EX_USAGE, "Queue is in use")),
            _ => None,
        },
    )?;
    c.out.info(&format!(
        "Queue was successfully deleted with {} ready messages",
        n["count"].as_u64().unwrap_or(0)
    ));
    Ok(())
}

fn close_connection(c: &Ctx) -> Result<(), Failure> {
    let (who, why) = (c.arg(0), c.arg(1));
    c.out
        .info(&format!("Closing connection {who}, reason: {why}..."));
    c.call(
        json!({"op": "close_connection", "name": who, "reason": why}),
        |r| (r.kind == "no_such_connection").then(|| error(EX_UNAVAILABLE, &r.message)),
    )?;
    Ok(())
}

fn close_all_connections(c: &Ctx) -> Result<(), Failure> {
    let why = c.arg(0);
    let global = c.line.flag("--global");
    let vhost = (!global).then(|| c.line.vhost().to_string());
    let n = c.call(
        json!({"op": "close_all_connections", "vhost": vhost, "reason": why}),
        |_| None,
    )?;
    match &vhost {
        Some(v) => c.out.info(&format!(
            "Closing all connections in vhost {v}, reason: {why}..."
        )),
        None => c.out.info(&format!(
            "Closing all connections to node {} (across all vhosts), reason: {why}...",
            c.client.node()
        )),
    }
    c.out.info(&format!(
        "Closed {} connections",
        n["count"].as_u64().unwrap_or(0)
    ));
    Ok(())
}

// ---- definitions --------------------------------------------------------

fn export_definitions(c: &Ctx) -> Result<(), Failure> {
    let target = c.arg(0);
    let defs = c.call(json!({"op": "export_definitions"}), |_| None)?;
    let text = defs.to_string();
    if target == "-" {
        println_safe(&text);
        return Ok(());
    }
    c.out.info(&format!(
        "Exporting definitions in JSON to a file at \"{target}\" ..."
    ));
    std::fs::write(target, text).map_err(|_| {
        error(
            EX_DATAERR,
            format!("No permissions to write to file {target} or its parent directory"),
        )
    })
}

fn import_definitions(c: &Ctx) -> Result<(), Failure> {
    let source = c.line.positional.first().map_or("-", String::as_str);
    let text = if source == "-" {
        let mut s = String::new();
        let _ = std::io::stdin().read_to_string(&mut s);
        s
    } else {
        std::fs::read_to_string(source).map_err(|_| {
            // rabbitmqctl 3.10 exits 65 here (measured), with this text.
            Failure::new(
                EX_DATAERR,
                format!("Error (argument validation): Bad argument: File {source} does not exist"),
            )
        })?
    };
    c.out.info(&format!(
        "Importing definitions in JSON from a file at \"{source}\" ..."
    ));
    let defs: Value = serde_json::from_str(&text).map_err(|e| {
        error(
            EX_DATAERR,
            format!("Failed to deserialise input (format: JSON) (error: {e})"),
        )
    })?;
    // A strict import refused (65, as any bad file): the message lists
    // every item that would have been left out.
    let strict = c.line.flag("--strict");
    let report = c.call(
        json!({"op": "import_definitions", "definitions": defs, "strict": strict}),
        |r| {
            matches!(r.kind.as_str(), "invalid" | "import_refused")
                .then(|| error(EX_DATAERR, &r.message))
        },
    )?;
    c.out.info("Successfully started definition import. This process is asynchronous and can take some time.");
    // What was left out: one line each on stderr, so stdout stays as
    // rabbitmqctl's; the exit code stays 0.
    for item in report["skipped"]
        .as_array()
        .map_or(&[][..], |a| a.as_slice())
    {
        eprintln!("Warning: {}", skipped_line(item));
    }
    Ok(())
}

/// One reported item: `policy 'ha-all' in vhost 'prod': skipped: reason`.
fn skipped_line(item: &Value) -> String {
    let f = |k: &str| item[k].as_str().unwrap_or("");
    let mut s = format!("{} '{}'", f("kind"), f("name"));
    if !f("component").is_empty() && f("component") != f("kind") {
        s.push_str(&format!(" (component '{}')", f("component")));
    }
    if !f("vhost").is_empty() {
        s.push_str(&format!(" in vhost '{}'", f("vhost")));
    }
    format!("{s}: {}: {}", f("action"), f("reason"))
}

// ---- node ---------------------------------------------------------------

fn gb(bytes: &Value) -> String {
    format!("{:.4} gb", bytes.as_f64().unwrap_or(0.0) / 1e9)
}

fn status(c: &Ctx) -> Result<(), Failure> {
    let s = c.call(json!({"op": "status"}), |_| None)?;
    if c.line.options.json {
        println_safe(&s.to_string());
        return Ok(());
    }
    c.out.info(&format!(
        "Status of node {} ...",
        s["node"].as_str().unwrap_or("")
    ));
    let alarms: Vec<String> = s["alarms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(|x| format!("{x} resource limit alarm"))
                .collect()
        })
        .unwrap_or_default();
    let lines = [
        "Runtime".to_string(),
        String::new(),
        format!("OS PID: {}", s["os_pid"]),
        "OS: Linux".into(),
        format!("Warren version: {}", s["version"].as_str().unwrap_or("")),
        format!("Node name: {}", s["node"].as_str().unwrap_or("")),
        String::new(),
        "Alarms".into(),
        String::new(),
        if alarms.is_empty() {
            "(none)".into()
        } else {
            alarms.join("\n")
        },
        String::new(),
        "Memory".into(),
        String::new(),
        format!("Total memory used: {}", gb(&s["memory_used"])),
        "Calculation strategy: rss".into(),
        format!(
            "Memory high watermark setting: computed to: {}",
            gb(&s["memory_high_watermark"])
        ),
        String::new(),
        "Free Disk Space".into(),
        String::new(),
        format!(
            "Low free disk space watermark: {}",
            gb(&s["disk_free_limit"])
        ),
        format!("Free disk space: {}", gb(&s["disk_free"])),
        String::new(),
        "Totals".into(),
        String::new(),
        format!("Connection count: {}", s["connections"]),
        format!("Queue count: {}", s["queues"]),
        format!("Virtual host count: {}", s["vhosts"]),
    ];
    for l in lines {
        println_safe(&l);
    }
    Ok(())
}

fn stop(c: &Ctx) -> Result<(), Failure> {
    c.call(json!({"op": "stop"}), |_| None)?;
    c.out.info(&format!(
        "Stopping and halting node {} ...",
        c.client.node()
    ));
    Ok(())
}

fn reload_tls(c: &Ctx) -> Result<(), Failure> {
    c.out.info(&format!(
        "Reloading TLS certificates on node {} ...",
        c.client.node()
    ));
    c.call(json!({"op": "reload_tls"}), |_| None)?;
    Ok(())
}

fn await_startup(c: &Ctx) -> Result<(), Failure> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(c.line.options.timeout);
    loop {
        match c.client.request(json!({"op": "await_startup"})) {
            Ok(_) => return Ok(()),
            Err(Ok(r)) => return Err(error(EX_SOFTWARE, &r.message)),
            Err(Err(f)) if std::time::Instant::now() >= deadline => return Err(f),
            Err(Err(_)) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}

fn set_vm_memory_high_watermark(c: &Ctx) -> Result<(), Failure> {
    let args = &c.line.positional;
    c.call(
        json!({"op": "set_vm_memory_high_watermark", "args": args}),
        |r| (r.kind == "invalid").then(|| usage_failure(c, &r.message)),
    )?;
    c.out.info(&format!(
        "Setting memory threshold on {} to {} ...",
        c.client.node(),
        args.join(" ")
    ));
    Ok(())
}

fn set_disk_free_limit(c: &Ctx) -> Result<(), Failure> {
    let r = c.call(
        json!({"op": "set_disk_free_limit", "args": &c.line.positional}),
        |r| (r.kind == "invalid").then(|| usage_failure(c, &r.message)),
    )?;
    c.out.info(&format!(
        "Setting disk free limit on {} to {} bytes ...",
        c.client.node(),
        r["count"].as_u64().unwrap_or(0)
    ));
    Ok(())
}

// ---- helpers --------------------------------------------------------------

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The requested columns (or the defaults), all of them known.
/// The columns a listing prints: those asked for, checked against the
/// listing's own (`help::COLUMNS`, the one list help pages show too), or
/// its defaults.
pub(crate) fn listing_columns(c: &Ctx) -> Result<Vec<String>, Failure> {
    let name = c.line.command.as_deref().unwrap_or("");
    match crate::help::COLUMNS.iter().find(|(n, _, _)| *n == name) {
        Some((_, allowed, default)) => columns(c, default, allowed),
        None => Err(Failure::new(
            EX_SOFTWARE,
            format!("internal error: no columns for '{name}'"),
        )),
    }
}

fn columns(c: &Ctx, default: &[&str], allowed: &[&str]) -> Result<Vec<String>, Failure> {
    let asked = &c.line.positional;
    if asked.is_empty() {
        return Ok(cols(default));
    }
    let bad: Vec<&str> = asked
        .iter()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if !bad.is_empty() {
        return Err(Failure::new(
            EX_USAGE,
            format!(
                "Error (argument validation): Info key(s) {} are not supported\nSupported keys: {}",
                bad.join(","),
                allowed.join(", ")
            ),
        ));
    }
    Ok(asked.clone())
}

/// An argument validation error with the command's usage, exit 64.
pub fn usage_failure(c: &Ctx, why: &str) -> Failure {
    let cmd = COMMANDS
        .iter()
        .find(|k| Some(k.name) == c.line.command.as_deref());
    usage_error(c.line, cmd, why)
}

pub fn usage_error(line: &Line, cmd: Option<&Command>, why: &str) -> Failure {
    let usage = cmd.map_or(String::new(), |k| {
        format!(
            "\n\nUsage\n\nwarrenctl [--node <node>] [--longnames] [--quiet] {} {}",
            k.name, k.usage
        )
    });
    Failure::new(
        EX_USAGE,
        format!(
            "Error (argument validation): {why}\nArguments given:\n\t{}{usage}",
            line.raw.join(" ")
        ),
    )
}
