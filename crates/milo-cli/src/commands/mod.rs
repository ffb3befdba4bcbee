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
        Command::Run(args) => contained(|| run::run(args)),
        Command::Order(args) => inspect::order(&args),
        Command::Phases(args) => inspect::phases(&args),
        Command::Check(args) => inspect::check(&args),
        Command::Graph(args) => inspect::graph(&args),
        Command::Init(args) => init::init(&args),
        Command::Mcp(args) => contained(|| mcp::serve(&args)),
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

/// Runs `f` (a command that runs phases) with every phase process contained: milo becomes a
/// child subreaper, sweeps what a killed milo left behind, and on the way out stops whatever is
/// left of the phases and removes their cgroups (see `milo::executor::contain`).
fn contained(f: impl FnOnce() -> Result<u8, CliError>) -> Result<u8, CliError> {
    use milo::executor::contain;
    if let Err(e) = contain::become_subreaper() {
        tracing::warn!("could not become a child subreaper ({e}); processes that escape a phase may outlive it");
    }
    contain::sweep_stale(&milo::pipeline::result_dir_bases());
    let result = f();
    contain::shutdown();
    result
}

/// Writes `bytes` to stdout; a closed pipe (e.g. `milo order | head -1`) is not an error.
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
