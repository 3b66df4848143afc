//! Logs an operator can use: RabbitMQ's level names, plaintext or JSON
//! lines, the console and a rotated file at once with their own levels,
//! and both levels changeable at runtime (`warrenctl set_log_level`).
//! docs/configuration.md, "Logs", describes the outputs.

mod file;
mod format;
mod level;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

pub use level::{parse_level, LevelSpec};

/// When and how the log file rotates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes; 0: never by size.
    pub size: u64,
    /// Rotated files kept (`name.0` newest).
    pub count: u32,
    /// Daily at this local hour (`$D0`: midnight).
    pub daily_hour: Option<u8>,
}

/// The log outputs.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    pub console: bool,
    pub console_level: LevelSpec,
    pub console_json: bool,
    pub file: Option<PathBuf>,
    pub file_level: LevelSpec,
    pub file_json: bool,
    pub rotation: Rotation,
}

type Reload = reload::Handle<EnvFilter, Registry>;

struct Handle {
    console: Option<Reload>,
    file: Option<(Reload, file::FileWriter)>,
}

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(s: &LogSettings) -> anyhow::Result<()> {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let mut handle = Handle {
        console: None,
        file: None,
    };
    if s.console {
        let (filter, h) = reload::Layer::new(s.console_level.filter());
        let ansi = !s.console_json && std::io::stdout().is_terminal();
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .event_format(format::Format {
                    json: s.console_json,
                    ansi,
                })
                .with_writer(std::io::stdout)
                .with_filter(filter)
                .boxed(),
        );
        handle.console = Some(h);
    }
    if let Some(path) = &s.file {
        let writer = file::FileWriter::open(path, s.rotation)?;
        let (filter, h) = reload::Layer::new(s.file_level.filter());
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .event_format(format::Format {
                    json: s.file_json,
                    ansi: false,
                })
                .with_writer(writer.clone())
                .with_filter(filter)
                .boxed(),
        );
        handle.file = Some((h, writer));
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    let _ = HANDLE.set(handle);
    Ok(())
}

/// Sets the level of every output (`warrenctl set_log_level`).
pub fn set_level(spec: &LevelSpec) -> Result<(), String> {
    let h = HANDLE.get().ok_or("logging is not initialised")?;
    for r in h.console.iter().chain(h.file.as_ref().map(|(r, _)| r)) {
        r.reload(spec.filter()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Rotates the log file now (`warrenctl rotate_logs`); `Ok(None)` when
/// there is no file.
pub fn rotate() -> Result<Option<PathBuf>, String> {
    let Some((_, w)) = HANDLE.get().and_then(|h| h.file.as_ref()) else {
        return Ok(None);
    };
    w.rotate()?;
    Ok(Some(w.path().to_path_buf()))
}

/// Lines the file writer dropped because it fell behind.
pub fn dropped() -> u64 {
    HANDLE
        .get()
        .and_then(|h| h.file.as_ref())
        .map_or(0, |(_, w)| w.dropped())
}

/// Writes out the log file's queue (at shutdown).
pub fn flush() {
    if let Some((_, w)) = HANDLE.get().and_then(|h| h.file.as_ref()) {
        w.flush();
    }
}
