//! rabbitmqctl's command line: global options anywhere on the line
//! (`-p vhost`, `-q`, `-s`, `--no-table-headers`, `--formatter json`,
//! `-t seconds`, `-n node`), then the command, its positional arguments
//! and its own `--flags`. Parsed by hand so usage errors read (and exit)
//! as rabbitmqctl's do.

use std::path::PathBuf;

/// The options every command takes.
#[derive(Debug, Clone)]
pub struct Options {
    pub vhost: Option<String>,
    pub quiet: bool,
    pub silent: bool,
    pub no_table_headers: bool,
    pub json: bool,
    pub timeout: u64,
    pub data_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    /// `-n` / `--node`: checked against the local node (node.rs).
    pub node: Option<String>,
}

/// One command line, split.
#[derive(Debug, Clone)]
pub struct Line {
    pub options: Options,
    pub command: Option<String>,
    pub positional: Vec<String>,
    /// Command flags (`--if-empty`, `--description text`), as given.
    pub flags: Vec<(String, Option<String>)>,
    /// The arguments as typed, for error messages.
    pub raw: Vec<String>,
}

impl Line {
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == name)
    }

    pub fn flag_value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(f, _)| f == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn vhost(&self) -> &str {
        self.options.vhost.as_deref().unwrap_or("/")
    }
}

/// Command flags that take a value.
const VALUE_FLAGS: &[&str] = &[
    "--description",
    "--tags",
    "--default-queue-type",
    "--limit",
    "--format",
    "--priority",
    "--apply-to",
    "--user",
    "--unit",
];

/// Splits `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Line, String> {
    let mut o = Options {
        vhost: None,
        quiet: false,
        silent: false,
        no_table_headers: false,
        json: false,
        timeout: 60,
        data_dir: std::env::var_os("WARREN_DATA_DIR").map(PathBuf::from),
        socket: std::env::var_os("WARREN_CTL_SOCKET").map(PathBuf::from),
        node: None,
    };
    let mut command = None;
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut i = 0;
    let value = |i: &mut usize, name: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| format!("option {name} needs a value"))
    };
    while i < args.len() {
        let a = args[i].as_str();
        // `--opt=value` as well as `--opt value`.
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a, None),
        };
        let take = |i: &mut usize| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => value(i, name),
            }
        };
        match name {
            "-p" | "--vhost" => o.vhost = Some(take(&mut i)?),
            "-q" | "--quiet" => o.quiet = true,
            "-s" | "--silent" => {
                o.silent = true;
                o.quiet = true;
            }
            "--no-table-headers" => o.no_table_headers = true,
            "--formatter" => {
                let f = take(&mut i)?;
                o.json = f == "json";
            }
            "-t" | "--timeout" => {
                let t = take(&mut i)?;
                o.timeout = t
                    .parse()
                    .map_err(|_| format!("invalid timeout '{t}' (seconds)"))?;
            }
            // Warren has one node, found through its data directory; a
            // name other than its own is refused (node.rs).
            "-n" | "--node" => o.node = Some(take(&mut i)?),
            "-l" | "--longnames" => {}
            "--data-dir" => o.data_dir = Some(PathBuf::from(take(&mut i)?)),
            "--socket" => o.socket = Some(PathBuf::from(take(&mut i)?)),
            f if f.starts_with("--") && f.len() > 2 => {
                let v = if VALUE_FLAGS.contains(&f) {
                    Some(take(&mut i)?)
                } else {
                    inline.clone()
                };
                flags.push((f.to_string(), v));
            }
            _ if command.is_none() => command = Some(a.to_string()),
            _ => positional.push(a.to_string()),
        }
        i += 1;
    }
    Ok(Line {
        options: o,
        command,
        positional,
        flags,
        raw: args.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Line {
        let v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        parse(&v).unwrap()
    }

    #[test]
    fn options_anywhere() {
        let l = line("-n rabbit@x set_permissions -p v2 lqz ^a ^b ^c");
        assert_eq!(l.command.as_deref(), Some("set_permissions"));
        assert_eq!(l.vhost(), "v2");
        assert_eq!(l.positional, vec!["lqz", "^a", "^b", "^c"]);
        let l = line("list_queues --formatter=json -q name messages");
        assert!(l.options.json && l.options.quiet);
        assert_eq!(l.positional, vec!["name", "messages"]);
        let l = line("delete_queue q --if-empty");
        assert!(l.flag("--if-empty"));
        let l = line("add_vhost v --description hello --tags a,b");
        assert_eq!(l.flag_value("--description"), Some("hello"));
        assert_eq!(l.flag_value("--tags"), Some("a,b"));
        assert!(parse(&["-p".into()]).is_err());
    }
}
