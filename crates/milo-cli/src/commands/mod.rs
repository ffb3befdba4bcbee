//! One module per subcommand; [`dispatch`] routes the parsed command line to it.

mod history;
mod init;
mod inspect;
mod mcp;
mod run;

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Runs the command and returns its exit status.
pub fn dispatch(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Order(args) => inspect::order(&args),
        Command::Phases(args) => inspect::phases(&args),
        Command::Check(args) => inspect::check(&args),
        Command::Graph(args) => inspect::graph(&args),
        Command::Init(args) => init::init(&args),
        Command::Mcp(args) => mcp::serve(&args),
        Command::History(args) => history::history(&args),
        Command::Show(args) => history::show(&args),
        Command::Logs(args) => history::logs(&args),
        Command::Replay(args) => history::replay(&args),
        Command::Report(args) => history::report(&args),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "milo", &mut out);
            write_stdout(&out)?;
            Ok(0)
        }
    }
}

/// Writes `bytes` to stdout; a closed pipe (e.g. `milo order | head -1`) is not an error.
/// `1 phase`, `2 phases`: `word` with an `s` unless `n` is 1.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Prints the pipeline file's warnings to stderr, each followed by a blank line.
pub fn print_warnings(file: &crate::config::PipelineFile) {
    let mut err = std::io::stderr().lock();
    for w in file.warnings() {
        let _ = writeln!(err, "{w}\n");
    }
}

pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Io {
            action: "write to",
            path: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}
