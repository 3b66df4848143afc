//! `warrenctl`: rabbitmqctl's commands and output format, for Warren.
//!
//! It talks to the broker over the control socket in the broker's data
//! directory (see the server's `control` module). Output matches
//! rabbitmqctl: informational lines (dropped by `-q`), a tab-separated
//! header row (dropped by `--no-table-headers`, absent when there are no
//! rows), then one tab-separated row per item; `--formatter json` prints
//! a JSON array instead.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

/// sysexits.h codes, as rabbitmqctl uses them.
const EX_USAGE: u8 = 64;
const EX_SOFTWARE: u8 = 70;
const EX_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "warrenctl",
    version,
    about = "Manage a Warren broker (rabbitmqctl-compatible commands)"
)]
struct Cli {
    /// The broker's data directory, where its control socket lives
    #[arg(long, env = "WARREN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,

    /// Virtual host
    #[arg(short = 'p', long = "vhost", default_value = "/", global = true)]
    vhost: String,

    /// Suppress informational messages
    #[arg(short = 'q', long, global = true)]
    quiet: bool,

    /// Do not print the header row
    #[arg(long, global = true)]
    no_table_headers: bool,

    /// Output format: table or json
    #[arg(long, default_value = "table", global = true)]
    formatter: String,

    /// Seconds to wait for the broker
    #[arg(short = 't', long, default_value_t = 60, global = true)]
    timeout: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[command(rename_all = "snake_case")]
// rabbitmqctl's names; more than list_* commands follow.
#[allow(clippy::enum_variant_names)]
enum Command {
    /// List queues: name messages by default
    ListQueues { columns: Vec<String> },
    /// List exchanges: name type by default
    ListExchanges { columns: Vec<String> },
    /// List bindings
    ListBindings { columns: Vec<String> },
    /// List virtual hosts
    ListVhosts { columns: Vec<String> },
    /// List users
    ListUsers,
    /// Set the memory high watermark: a fraction of RAM, or `absolute <size>`
    SetVmMemoryHighWatermark { args: Vec<String> },
    /// Set the free disk limit: a size, or `mem_relative <fraction>`
    SetDiskFreeLimit { args: Vec<String> },
    /// Show the broker's version, memory, disk and alarms
    Status,
}

struct Listing {
    command: &'static str,
    /// What the informational line says, e.g. "queues for vhost /".
    what: String,
    allowed: &'static [&'static str],
    default: &'static [&'static str],
    columns: Vec<String>,
    per_vhost: bool,
}

const QUEUE_KEYS: &[&str] = &[
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
    "type",
    "state",
];
const EXCHANGE_KEYS: &[&str] = &[
    "name",
    "vhost",
    "type",
    "durable",
    "auto_delete",
    "internal",
    "arguments",
];
const BINDING_KEYS: &[&str] = &[
    "source_name",
    "source_kind",
    "destination_name",
    "destination_kind",
    "routing_key",
    "arguments",
    "vhost",
];

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("warren");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/warren"),
        None => PathBuf::from("warren-data"),
    }
}

fn request(cli: &Cli, command: &str) -> Result<Vec<Value>, (u8, String)> {
    request_with(cli, command, &[])
}

fn request_with(cli: &Cli, command: &str, args: &[String]) -> Result<Vec<Value>, (u8, String)> {
    let dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    let path = dir.join("warren.sock");
    let unavailable = |e: std::io::Error| {
        (
            EX_UNAVAILABLE,
            format!(
                "Error: unable to perform an operation on the Warren broker: cannot reach {}: {e}\n\
                 Is the broker running with data directory {}? (set --data-dir or WARREN_DATA_DIR)",
                path.display(),
                dir.display()
            ),
        )
    };
    let mut stream = UnixStream::connect(&path).map_err(unavailable)?;
    let timeout = Some(Duration::from_secs(cli.timeout.max(1)));
    stream.set_read_timeout(timeout).map_err(unavailable)?;
    stream.set_write_timeout(timeout).map_err(unavailable)?;
    let mut line = json!({"command": command, "vhost": cli.vhost, "args": args}).to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(unavailable)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(unavailable)?;
    let v: Value = serde_json::from_str(&reply).map_err(|e| {
        (
            EX_SOFTWARE,
            format!("Error: bad reply from the broker: {e}"),
        )
    })?;
    if v["ok"].as_bool() != Some(true) {
        return Err((
            EX_SOFTWARE,
            format!("Error: {}", v["error"].as_str().unwrap_or("unknown error")),
        ));
    }
    Ok(v["rows"].as_array().cloned().unwrap_or_default())
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn list(cli: &Cli, l: Listing) -> Result<(), (u8, String)> {
    let columns: Vec<String> = if l.columns.is_empty() {
        l.default.iter().map(|s| s.to_string()).collect()
    } else {
        l.columns.clone()
    };
    let bad: Vec<&str> = columns
        .iter()
        .filter(|c| !l.allowed.contains(&c.as_str()))
        .map(|c| c.as_str())
        .collect();
    if !bad.is_empty() {
        return Err((
            EX_USAGE,
            format!(
                "Error (argument validation): Info key(s) {} are not supported\nSupported keys: {}",
                bad.join(","),
                l.allowed.join(", ")
            ),
        ));
    }
    let rows = request(cli, l.command)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut emit = |s: String| {
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(out, "{s}");
    };
    if cli.formatter == "json" {
        let picked: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                for c in &columns {
                    m.insert(c.clone(), r[c.as_str()].clone());
                }
                Value::Object(m)
            })
            .collect();
        emit(serde_json::to_string_pretty(&picked).unwrap_or_else(|_| "[]".into()));
        return Ok(());
    }
    if !cli.quiet {
        if l.per_vhost {
            emit(format!("Timeout: {}.0 seconds ...", cli.timeout));
        }
        emit(format!("Listing {} ...", l.what));
    }
    if !rows.is_empty() && !cli.no_table_headers {
        emit(columns.join("\t"));
    }
    for r in &rows {
        emit(
            columns
                .iter()
                .map(|c| cell(&r[c.as_str()]))
                .collect::<Vec<_>>()
                .join("\t"),
        );
    }
    Ok(())
}

/// Commands that change something and print one line, as rabbitmqctl.
fn action(cli: &Cli) -> Option<Result<(), (u8, String)>> {
    let (command, args, says) = match &cli.command {
        Command::SetVmMemoryHighWatermark { args } => (
            "set_vm_memory_high_watermark",
            args,
            format!("Setting memory threshold to {} ...", args.join(" ")),
        ),
        Command::SetDiskFreeLimit { args } => (
            "set_disk_free_limit",
            args,
            format!("Setting disk free limit to {} ...", args.join(" ")),
        ),
        Command::Status => {
            return Some(request(cli, "status").map(|rows| {
                let r = rows.first().cloned().unwrap_or(Value::Null);
                if cli.formatter == "json" {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    return;
                }
                if !cli.quiet {
                    println!("Status of the Warren broker ...");
                }
                for key in [
                    "product",
                    "version",
                    "memory_used",
                    "memory_high_watermark",
                    "total_memory",
                    "disk_free",
                    "disk_free_limit",
                    "alarms",
                ] {
                    println!("{key}: {}", cell(&r[key]));
                }
            }))
        }
        _ => return None,
    };
    Some(request_with(cli, command, args).map(|_| {
        if !cli.quiet {
            println!("{says}");
        }
    }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(result) = action(&cli) {
        return exit_code(result);
    }
    let vhost = cli.vhost.clone();
    let listing = match &cli.command {
        Command::ListQueues { columns } => Listing {
            command: "list_queues",
            what: format!("queues for vhost {vhost}"),
            allowed: QUEUE_KEYS,
            default: &["name", "messages"],
            columns: columns.clone(),
            per_vhost: true,
        },
        Command::ListExchanges { columns } => Listing {
            command: "list_exchanges",
            what: format!("exchanges for vhost {vhost}"),
            allowed: EXCHANGE_KEYS,
            default: &["name", "type"],
            columns: columns.clone(),
            per_vhost: true,
        },
        Command::ListBindings { columns } => Listing {
            command: "list_bindings",
            what: format!("bindings for vhost {vhost}"),
            allowed: BINDING_KEYS,
            default: &[
                "source_name",
                "source_kind",
                "destination_name",
                "destination_kind",
                "routing_key",
                "arguments",
            ],
            columns: columns.clone(),
            per_vhost: true,
        },
        Command::ListVhosts { columns } => Listing {
            command: "list_vhosts",
            what: "vhosts".into(),
            allowed: &["name"],
            default: &["name"],
            columns: columns.clone(),
            per_vhost: false,
        },
        Command::ListUsers => Listing {
            command: "list_users",
            what: "users".into(),
            allowed: &["user", "tags"],
            default: &["user", "tags"],
            columns: Vec::new(),
            per_vhost: false,
        },
        // Handled by `action`.
        Command::SetVmMemoryHighWatermark { .. }
        | Command::SetDiskFreeLimit { .. }
        | Command::Status => {
            return ExitCode::SUCCESS;
        }
    };
    exit_code(list(&cli, listing))
}

/// Prints the error, if any, and turns it into the process exit code.
fn exit_code(result: Result<(), (u8, String)>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}
