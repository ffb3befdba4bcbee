//! The `milo` command: runs pipelines of shell-command phases from `milo.toml`, with live
//! progress, and inspects them (`order`, `phases`, `check`, `graph`, `init`).
//!
//! Flags are parsed once by clap ([`cli`]), the file is checked by [`config`] and turned into
//! a core [`milo::pipeline::Pipeline`] by [`build`]; the run's views ([`views`]) are
//! subscribers of the one store. Errors map to exit statuses in [`main`] and only there.

pub mod build;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod memory;
pub mod signals;
pub mod views;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// Parses the command line, runs the command, and returns the exit status.
pub fn main() -> ExitCode {
    memory::configure_allocator();
    let matches = cli::branded(cli::Cli::command()).get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let tui = matches!(&cli.command, cli::Command::Run(r) if r.ui == cli::Ui::Tui);
    if !tui {
        init_logging();
    }
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Diagnostics go to stderr (never stdout, which carries `--ui json` and MCP's stdio), at the
/// level named by `MILO_LOG` (`error`, `warn`, `info`, `debug`, `trace`; default `warn`).
fn init_logging() {
    let level = std::env::var("MILO_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::WARN);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .try_init();
}
