//! `warrenctl`: rabbitmqctl's commands, flags, output and exit codes, for
//! Warren. A script written for rabbitmqctl works by changing the program
//! name.
//!
//! It talks to the broker over the control socket in the broker's data
//! directory (see the server's `control` module): with no flags it finds
//! the broker started with the default configuration; `--data-dir` or
//! `WARREN_DATA_DIR` point it at another data directory, `--socket` or
//! `WARREN_CTL_SOCKET` at a socket elsewhere. Exit codes are sysexits'
//! codes as rabbitmqctl uses them: 64 usage, 65 data error, 67 no such
//! user, 69 unavailable (broker down, no such vhost, failed health check,
//! a node other than the local one), 70 software error.
//!
//! Run as `warren-diagnostics` (a link or the binary of that name), it
//! offers rabbitmq-diagnostics' commands (help.rs lists them).

mod args;
mod client;
mod cluster;
mod commands;
mod diagnostics;
mod environment;
mod features;
mod help;
mod limits;
mod memory;
mod node;
mod output;
mod parameters;
mod password;
mod policies;
mod report;

use std::process::ExitCode;

use commands::{usage_error, Ctx, COMMANDS};

pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOUSER: u8 = 67;
pub const EX_UNAVAILABLE: u8 = 69;
pub const EX_SOFTWARE: u8 = 70;
/// rabbitmqctl's code for an operation that timed out (a cluster with no
/// majority to commit a change).
pub const EX_TEMPFAIL: u8 = 75;

/// A failed command: what goes to stderr, and the exit code.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

fn help() -> String {
    help::all()
}

fn run(argv: &[String]) -> Result<(), Failure> {
    let line = args::parse(argv)
        .map_err(|e| Failure::new(EX_USAGE, format!("Error (argument validation): {e}")))?;
    let Some(name) = line.command.clone() else {
        return Err(Failure::new(EX_USAGE, help()));
    };
    if name == "help" || name == "--help" {
        // `help <command>`: that command's page.
        return match line.positional.first() {
            None => {
                output::println_safe(&help());
                Ok(())
            }
            Some(c) => match help::page(c).filter(|_| help::offered(c)) {
                Some(p) => {
                    output::println_safe(&p);
                    Ok(())
                }
                None => Err(Failure::new(
                    EX_USAGE,
                    format!("\nCommand '{c}' not found. \n{}", help()),
                )),
            },
        };
    }
    if name == "version" {
        output::println_safe(env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let Some(cmd) = COMMANDS
        .iter()
        .find(|c| c.name == name && help::offered(c.name))
    else {
        return Err(Failure::new(
            EX_USAGE,
            format!("\nCommand '{name}' not found. \n{}", help()),
        ));
    };
    if line.flag("--help") {
        output::println_safe(&help::page(cmd.name).unwrap_or_default());
        return Ok(());
    }
    let n = line.positional.len();
    // Listings take columns; the rest have fixed arguments.
    if n < cmd.min {
        return Err(usage_error(&line, Some(cmd), "not enough arguments."));
    }
    if n > cmd.max {
        return Err(usage_error(&line, Some(cmd), "too many arguments."));
    }
    let ctx = Ctx {
        out: output::Out::new(&line.options),
        client: client::Client::new(&line.options),
        line: &line,
    };
    node::check(cmd.name, line.options.node.as_deref(), &ctx.client)?;
    (cmd.run)(&ctx)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // A health check under --silent fails with its exit code alone.
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
