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
//! user, 69 unavailable (broker down, no such vhost), 70 software error.

mod args;
mod client;
mod commands;
mod limits;
mod output;
mod parameters;
mod policies;

use std::process::ExitCode;

use commands::{usage_error, Ctx, COMMANDS};

pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOUSER: u8 = 67;
pub const EX_UNAVAILABLE: u8 = 69;
pub const EX_SOFTWARE: u8 = 70;

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
    let mut s = String::from(
        "\nUsage\n\nwarrenctl [--node <node>] [--timeout <timeout>] [--longnames] [--quiet] [--data-dir <dir>] <command> [<command options>]\n\nAvailable commands:\n\n",
    );
    for c in COMMANDS {
        s.push_str(&format!("   {:<30}{}\n", c.name, c.help));
    }
    s
}

fn run(argv: &[String]) -> Result<(), Failure> {
    let line = args::parse(argv)
        .map_err(|e| Failure::new(EX_USAGE, format!("Error (argument validation): {e}")))?;
    let Some(name) = line.command.clone() else {
        return Err(Failure::new(EX_USAGE, help()));
    };
    if name == "help" || name == "--help" {
        output::println_safe(&help());
        return Ok(());
    }
    if name == "version" {
        output::println_safe(env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let Some(cmd) = COMMANDS.iter().find(|c| c.name == name) else {
        return Err(Failure::new(
            EX_USAGE,
            format!("\nCommand '{name}' not found. \n{}", help()),
        ));
    };
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
    (cmd.run)(&ctx)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}
