//! Logging setup: `RUST_LOG` filters (default `info`, database driver notices at `warn`), text or JSON lines on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person at a terminal: escape codes in a log file break grep.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (e.g. a CLI command after serve in tests) is harmless: keep the first.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
