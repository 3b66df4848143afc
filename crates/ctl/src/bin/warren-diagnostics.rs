//! `warren-diagnostics`: rabbitmq-diagnostics' name for Warren's CLI.
//! `warrenctl` answers to this name (it looks at the name it was run
//! under) and then offers the diagnostics commands; this binary runs the
//! `warrenctl` beside it under that name, for installs without a symlink.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let ctl = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("warrenctl")))
        .filter(|p| p.exists());
    let Some(ctl) = ctl else {
        eprintln!("warren-diagnostics: warrenctl not found beside this program");
        return ExitCode::from(69);
    };
    let err = Command::new(&ctl)
        .arg0("warren-diagnostics")
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("warren-diagnostics: cannot run {}: {err}", ctl.display());
    ExitCode::from(69)
}
