//! The `milo` command: runs pipelines of shell-command phases from `milo.toml`, with live
//! progress, and inspects them (`order`, `phases`, `check`, `graph`, `init`).
//!
//! Flags are parsed once by clap ([`cli`]), the file is checked by [`config`] and turned into
//! a core [`milo::pipeline::Pipeline`] by [`build`]; the run's views ([`views`]) are
//! subscribers of the one store. Errors map to exit statuses in [`main`] and only there.

pub mod build;
pub mod cli;
pub mod color;
pub mod commands;
pub mod complete;
pub mod config;
pub mod error;
pub mod incremental;
pub mod memory;
pub mod probe;
pub mod signals;
pub mod slurm;
pub mod views;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// Parses the command line, runs the command, and returns the exit status.
pub fn main() -> ExitCode {
    memory::configure_allocator();
    // `COMPLETE=bash milo` prints the shell's completion script; the script calls milo back
    // the same way to complete a word (phase and parameter names from the pipeline file).
    clap_complete::CompleteEnv::with_factory(|| cli::branded(cli::Cli::command())).complete();
    let matches = cli::branded(cli::Cli::command()).get_matches();
    let mut cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Without `-f`, the nearest milo.toml in this directory or a parent, as cargo does.
    if cli::file_defaulted(&matches)
        && let Some(arg) = cli.command.pipeline_file_mut()
        && !arg.file.is_file()
        && let Ok(cwd) = std::env::current_dir()
        && let Some(found) = cli::discover(&cwd, config::DEFAULT_FILE)
    {
        arg.file = found;
    }
    let tui = matches!(&cli.command, cli::Command::Run(r) if r.ui == cli::Ui::Tui);
    if !tui {
        init_logging();
    }
    color::init(cli.color);
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            print_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes `e` to stderr, its `error:` and `= help:` labels coloured on a colour terminal.
pub fn print_error(e: &error::CliError) {
    let text = colour_labels(&e.to_string(), color::for_stderr());
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// `text` with the `error:`, `warning:` and `= help:` labels that start its lines painted.
fn colour_labels(text: &str, palette: color::Palette) -> String {
    if !palette.is_on() {
        return text.to_owned();
    }
    let labels = [
        ("error:", color::RED.bold()),
        ("warning:", color::YELLOW.bold()),
        ("= help:", color::CYAN.bold()),
    ];
    let mut out = String::with_capacity(text.len() + 32);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        match labels.iter().find(|(l, _)| body.starts_with(l)) {
            Some((label, style)) => {
                out.push_str(indent);
                out.push_str(&palette.paint(*style, label));
                out.push_str(&body[label.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
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
