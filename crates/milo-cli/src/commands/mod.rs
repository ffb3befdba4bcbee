//! One module per subcommand; [`dispatch`] routes the parsed command line to it.

mod cache;
mod history;
mod init;
mod inspect;
mod mcp;
mod params;
mod run;
mod watch;

use std::io::{IsTerminal, Write};

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Runs the command and returns its exit status.
pub fn dispatch(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Run(args) => contained(|| run::run(args)),
        Command::Watch(args) => contained(|| watch::watch(args)),
        Command::Order(args) => inspect::order(&args),
        Command::Phases(args) => inspect::phases(&args),
        Command::Check(args) => inspect::check(&args),
        Command::Params(args) => params::params(&args),
        Command::Graph(args) => inspect::graph(&args),
        Command::Init(args) => init::init(&args),
        Command::Mcp(args) => contained(|| mcp::serve(&args)),
        Command::History(args) => history::history(&args),
        Command::Show(args) => history::show(&args),
        Command::Logs(args) => history::logs(&args),
        Command::Replay(args) => history::replay(&args),
        Command::Report(args) => history::report(&args),
        Command::Cache(args) => cache::cache(&args),
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

/// Writes `bytes` to stdout; a closed pipe (e.g. `milo order | head -1`) is not an error.
///
/// On a terminal the text is sanitised line by line first ([`crate::color::Palette::clean`]):
/// what these commands print holds text the pipeline file or the phases control (names,
/// descriptions, errors, `milo logs` output), which must not drive the terminal. Into a pipe
/// or a file the bytes go out as they are.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let clean;
    let bytes = if out.is_terminal() {
        clean = terminal_text(bytes, crate::color::for_stdout());
        clean.as_bytes()
    } else {
        bytes
    };
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Io {
            action: "write to",
            path: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `bytes` as text safe for a terminal: each line sanitised, the newlines kept.
fn terminal_text(bytes: &[u8], paint: crate::color::Palette) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut clean = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        clean.push_str(&paint.clean(body));
        clean.push_str(newline);
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_sanitises_each_line_and_keeps_the_newlines() {
        let text = terminal_text(
            b"a\x1b]52;c;eA==\x07b\n\x1b[2Jc\r\n\nend",
            crate::color::Palette::plain(),
        );
        assert_eq!(text, "ab\nc\n\nend");
    }
}
