//! `report`: rabbitmqctl's support report, each section the output of a
//! command with its banner: the node's status and cluster status, its
//! environment, connections and channels with every column, then per
//! virtual host its queues, exchanges, bindings (every column),
//! consumers, permissions, policies and parameters. Sections whose
//! command this warrenctl lacks are left out.

use serde_json::json;

use crate::args::Line;
use crate::commands::{usage_failure, Ctx, COMMANDS};
use crate::help::COLUMNS;
use crate::output::{println_safe, Out};
use crate::Failure;

/// Runs command `name` as `warrenctl [-p vhost] name <every column>`.
fn section(c: &Ctx, name: &str, vhost: Option<&str>) -> Result<(), Failure> {
    let Some(cmd) = COMMANDS.iter().find(|k| k.name == name) else {
        return Ok(());
    };
    let mut options = c.line.options.clone();
    if let Some(v) = vhost {
        options.vhost = Some(v.to_string());
    }
    let positional: Vec<String> = COLUMNS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, all, _)| all.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    let line = Line {
        options,
        command: Some(name.to_string()),
        positional,
        flags: Vec::new(),
        raw: c.line.raw.clone(),
    };
    let ctx = Ctx {
        out: Out::new(&line.options),
        client: crate::client::Client::new(&line.options),
        line: &line,
    };
    println_safe("");
    (cmd.run)(&ctx)
}

pub(crate) fn report(c: &Ctx) -> Result<(), Failure> {
    if c.out.json {
        return Err(usage_failure(c, "Only report formatter is supported"));
    }
    let vhosts = c.rows(json!({"op": "list_vhosts"}), |_| None)?;
    c.out.info(&format!(
        "Reporting server status of node {} ...",
        c.client.node()
    ));
    for name in [
        "status",
        "cluster_status",
        "environment",
        "list_connections",
        "list_channels",
        "list_vhosts",
    ] {
        section(c, name, None)?;
    }
    for v in &vhosts {
        let Some(v) = v["name"].as_str() else {
            continue;
        };
        for name in [
            "list_queues",
            "list_exchanges",
            "list_bindings",
            "list_consumers",
            "list_permissions",
            "list_policies",
            "list_global_parameters",
            "list_parameters",
        ] {
            section(c, name, Some(v))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse;

    /// Every column the report (and help) names is one the command
    /// accepts: with no broker to ask, the command gets as far as the
    /// request (exit 69), not to a usage error (64).
    #[test]
    fn report_columns_are_accepted() {
        for (name, all, _) in COLUMNS {
            let Some(cmd) = COMMANDS.iter().find(|k| k.name == *name) else {
                continue;
            };
            let mut argv = vec![
                "-q".to_string(),
                "--socket".to_string(),
                "/nonexistent/warren.sock".to_string(),
                name.to_string(),
            ];
            argv.extend(all.iter().map(|s| s.to_string()));
            let line = parse(&argv).unwrap();
            let ctx = Ctx {
                out: Out::new(&line.options),
                client: crate::client::Client::new(&line.options),
                line: &line,
            };
            let err = (cmd.run)(&ctx).err().map(|f| f.code);
            assert_eq!(err, Some(crate::EX_UNAVAILABLE), "{name}");
        }
    }
}
