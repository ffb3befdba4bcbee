//! The command line: every subcommand and flag, parsed by clap into typed values.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use crate::color::ColorChoice;

const AFTER_HELP: &str = "\
Examples:
  milo run                      run ./milo.toml with a live progress display
  milo run -f ci.toml --ui plain --jobs 2
  milo run render               run `render` and everything it depends on
  milo order                    list the phases in execution order
  milo graph --format mermaid   draw the dependency graph
  milo init                     write a starter milo.toml

Exit status: 0 completed, 1 failed, 2 usage or definition error, 130 interrupted.";

/// milo runs multi-phase pipelines of shell commands: it resolves their order, runs
/// independent phases concurrently, retries or skips failures by policy, and shows what every
/// phase is doing.
#[derive(Debug, Parser)]
#[command(name = "milo", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to use colours: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE=1
    /// forces them), always or never.
    #[arg(long, value_name = "WHEN", value_enum, global = true, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline.
    #[command(after_help = "\
Examples:
  milo run
  milo run -f build.toml --jobs 4 --fail-fast
  milo run test                 `test` and what it depends on (also: --only test)
  milo run -p target=release -p pythons=3.12,3.13
  milo run 'test[python=3.12,*]'   some instances of the matrix phase `test`
  milo run deploy --dry-run
  milo run --ui json | jq -c 'select(.type == \"@@PHASE_FAILED\")'
  milo run --timeline run.json

Exit status: 0 completed (skipped phases included), 1 failed, 2 usage or definition error,
130 interrupted (Ctrl-C or SIGTERM; a second Ctrl-C kills running phases at once).")]
    Run(RunArgs),
    /// Run the pipeline, then again whenever the phases' `sources` change: each cycle runs
    /// only the phases whose key changed and their dependents; services stay up.
    #[command(after_help = "\
Examples:
  milo watch
  milo watch test               `test` and what it depends on
  milo watch --poll             for file systems without change events
  milo watch --ui json | jq -c 'select(.type == \"@@WATCH_CYCLE\")'

Never trigger a cycle: .milo/, .git/, every declared output, and what a .gitignore excludes.
A change while a cycle runs starts one more cycle after it, or interrupts the phases it
affects that declare on_change = \"restart\". q (on a terminal; q then Enter from a pipe) or Ctrl-C stops everything.")]
    Watch(WatchArgs),
    /// Print the phases in execution order, one per line.
    #[command(after_help = "Examples:\n  milo order\n  milo order --json -f ci.toml")]
    Order(ListArgs),
    /// Describe every phase: description, dependencies, parallel, weight, policy.
    #[command(after_help = "Examples:\n  milo phases\n  milo phases --json | jq '.[].name'")]
    Phases(ListArgs),
    /// Validate the pipeline file without running anything (exit 0 if valid, 2 if not).
    #[command(after_help = "Examples:\n  milo check\n  milo check -f ci.toml\n  milo check -p target=release")]
    Check(CheckArgs),
    /// List the pipeline's parameters: type, default, choices, help, and the value a run
    /// would get (from -p, MILO_PARAM_NAME or the default).
    #[command(after_help = "Examples:\n  milo params\n  milo params --json -p target=release")]
    Params(ListArgs),
    /// Print the dependency graph as Graphviz dot or Mermaid.
    #[command(after_help = "Examples:\n  milo graph | dot -Tsvg > graph.svg\n  milo graph --format mermaid")]
    Graph(GraphArgs),
    /// Write a commented starter milo.toml (never overwrites an existing file).
    #[command(after_help = "Examples:\n  milo init\n  milo init -f other.toml")]
    Init(FileArg),
    /// List recent runs from the run history: status, duration, failed phase.
    #[command(
        after_help = "Examples:\n  milo history\n  milo history -n 5 --json\n  milo history prune --keep 20 --dry-run"
    )]
    History(HistoryArgs),
    /// Show one run's phases with status, attempts and durations (default: the last run).
    #[command(after_help = "Examples:\n  milo show\n  milo show 12 --json")]
    Show(RunSelectArgs),
    /// Print a phase's full captured output from the run history.
    #[command(after_help = "Examples:\n  milo logs render\n  milo logs 12 render --stream stderr")]
    Logs(LogsArgs),
    /// Re-reduce a run's journal, verify its hash chain and print the final timeline.
    #[command(
        after_help = "Examples:\n  milo replay\n  milo replay 12 --json\n\nExit status 1 when the journal was tampered with (the first bad entry is named)."
    )]
    Replay(RunSelectArgs),
    /// Write a run's report: one self-contained HTML page with a Gantt chart, the dependency
    /// graph, a table of phases and their logs (default: the last run).
    #[command(
        after_help = "Examples:\n  milo report\n  milo report 12 -o build.html\n  milo report --timeline timeline.json\n  milo report --format chrome-trace   # open in chrome://tracing or ui.perfetto.dev"
    )]
    Report(ReportArgs),
    /// Serve the pipeline to AI agents over MCP on stdio (logs go to stderr).
    #[command(after_help = "\
Examples:
  milo mcp -f milo.toml
  (in a desktop MCP client's config: {\"command\": \"milo\", \"args\": [\"mcp\", \"-f\", \"/path/to/milo.toml\"]})

Runs started with the run_pipeline tool are recorded in the run history (`milo history`).
SIGTERM, SIGINT or SIGHUP (or the client closing stdin) stop a run in progress as Ctrl-C stops
`milo run` (a second Ctrl-C kills its commands at once), then the server exits: 0 when the
client closed stdin, 130 after a signal.")]
    Mcp(McpArgs),
    /// Show, clean or prune the cache of phase outputs (.milo/cache beside the pipeline file).
    #[command(after_help = "Examples:\n  milo cache status\n  milo cache prune --max-size 2GiB\n  milo cache clean")]
    Cache(CacheArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  milo completions bash > ~/.local/share/bash-completion/completions/milo\n  milo completions fish > ~/.config/fish/completions/milo.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    #[command(flatten)]
    pub file: FileArg,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// How many entries and objects the cache holds, and their size.
    Status,
    /// Delete everything in the cache: stored outputs and what was recorded about earlier
    /// runs (every incremental phase then runs again).
    Clean,
    /// Evict the outputs of the least recently used entries until the cache holds at most
    /// --max-size (phases whose outputs are in place stay up to date).
    Prune {
        /// The size to prune to, such as 2GiB or 500MB.
        #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
        max_size: u64,
    },
}

/// A size flag: bytes, or a number with a unit (`2GiB`, `500MB`).
fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s)
        .map_err(|why| format!("`{s}` {why}: write bytes or a size with a unit such as 2GiB or 500MB"))
}

/// `-p NAME=VALUE`: parameter values.
#[derive(Debug, Clone, Default, Args)]
pub struct ParamArgs {
    /// Set parameter NAME to VALUE (repeatable; over MILO_PARAM_NAME and the file's default;
    /// a list is comma-separated: -p pythons=3.11,3.12).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", add = ArgValueCompleter::new(crate::complete::params))]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub params: ParamArgs,
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// The pipeline file.
    #[arg(short = 'f', long = "file", value_name = "FILE", default_value = "milo.toml")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub db: DbArg,
    /// Don't record the runs started through MCP in the run history.
    #[arg(long)]
    pub no_history: bool,
}

#[derive(Debug, Args)]
pub struct DbArg {
    /// The run history database (default: .milo/history.db beside the pipeline file).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub db: DbArg,
    /// Show the N most recent runs.
    #[arg(short = 'n', value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Delete old runs from the run history: beyond the newest N of each pipeline, and/or
    /// started longer ago than a duration. Runs still being recorded are kept.
    #[command(after_help = "\
Examples:
  milo history prune --keep 20
  milo history prune --older-than 30d --dry-run
  milo history prune --keep 5 --pipeline site-build --vacuum

Deleted runs free space inside the file, which later runs reuse; --vacuum also shrinks the
file (slow for a big history). `milo run` keeps the newest 100 runs of its pipeline by itself
(--keep-runs N or MILO_KEEP_RUNS=N to change that, 0 to keep every run).")]
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub db: DbArg,
    /// Keep the newest N runs of each pipeline; delete the older ones.
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub keep: Option<usize>,
    /// Delete the runs that started longer ago than DURATION (such as 7d, 12h or 30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: Option<std::time::Duration>,
    /// Only prune the runs of pipeline NAME.
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Afterwards, rebuild the database file so it shrinks (slow for a big history).
    #[arg(long, conflicts_with = "dry_run")]
    pub vacuum: bool,
}

/// `--keep N`: a positive number of runs.
fn parse_keep(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(
            "0 would delete every run; keep at least 1 (to start a new history, delete the .milo/history.db file)"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number of runs: give a whole number such as 20")),
    }
}

/// `--older-than DURATION`: `7d`, `12h`, `30m`, `1d12h`…
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    crate::config::duration::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration: {e}; write one such as 7d, 12h or 30m"))
}

#[derive(Debug, Args)]
pub struct RunSelectArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub db: DbArg,
    /// The run number, or `last` (default).
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub db: DbArg,
    /// The run number, or `last` (default).
    #[arg(value_name = "RUN", conflicts_with = "timeline")]
    pub run: Option<String>,
    /// Build the report from a timeline JSON written by `milo run --timeline FILE` instead of
    /// the run history (no logs then).
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// Where to write it (default: milo-report-<RUN>.html, or .json for chrome-trace).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// html: a self-contained page; chrome-trace: trace-event JSON for chrome://tracing or Perfetto.
    #[arg(long, value_name = "FORMAT", default_value = "html", value_parser = milo_report::cli::parse_format)]
    pub format: milo_report::cli::ReportFormat,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub db: DbArg,
    /// `PHASE`, or `RUN PHASE`.
    #[arg(value_name = "RUN|PHASE", add = ArgValueCompleter::new(crate::complete::phases))]
    pub first: String,
    /// The phase, when a run is given first.
    #[arg(value_name = "PHASE")]
    pub second: Option<String>,
    /// Only this stream.
    #[arg(long, value_parser = milo_history::cli::parse_stream)]
    pub stream: Option<milo::capture::Stream>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Ui {
    /// `progress` when stderr is a terminal, `plain` otherwise.
    Auto,
    /// A live display: overall bar, running phases, finished phases.
    Progress,
    /// One line per event, for CI logs.
    Plain,
    /// One JSON action per line on stdout, nothing else.
    Json,
    /// An interactive full-screen view: select a phase, read its logs live (needs a terminal).
    Tui,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Watch and run only these phases and what they depend on.
    #[arg(value_name = "PHASE")]
    pub targets: Vec<String>,
    /// At most N parallel phases at once (default: the file's `jobs`, else the CPU count).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// How the cycles are shown (`tui`: one full-screen view across all of them).
    #[arg(long, value_enum, default_value_t = Ui::Auto)]
    pub ui: Ui,
    /// Find changes by scanning the tree instead of the OS's change events.
    #[arg(long)]
    pub poll: bool,
    /// How often --poll scans, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500, requires = "poll")]
    pub poll_interval: u64,
    /// How long to wait after a change for more before a cycle starts, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub debounce: u64,
    /// Do not record the cycles in the run history.
    #[arg(long)]
    pub no_history: bool,
    /// The run history database (default: .milo/history.db beside the pipeline file).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Delete the runs of this pipeline beyond the newest N from the run history after each
    /// cycle (0 keeps every run).
    #[arg(long, value_name = "N", env = "MILO_KEEP_RUNS", default_value_t = milo_history::DEFAULT_KEEP_RUNS)]
    pub keep_runs: usize,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub params: ParamArgs,
    /// List the pipeline's parameters (as `milo params` does) and run nothing.
    #[arg(long)]
    pub help_params: bool,
    /// Run at most N parallel phases at once (default: from the file, else available parallelism).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Cancel running phases as soon as one fails.
    #[arg(long)]
    pub fail_fast: bool,
    /// Let phase output pass straight through instead of capturing it (the progress view then
    /// gives way to plain event lines, which the output cannot tear).
    #[arg(long)]
    pub no_capture: bool,
    /// Run only these phases and what they depend on (the same as `--only`).
    #[arg(value_name = "PHASE", add = ArgValueCompleter::new(crate::complete::phases))]
    pub targets: Vec<String>,
    /// Run only PHASE and what it depends on (repeatable).
    #[arg(long = "only", value_name = "PHASE", add = ArgValueCompleter::new(crate::complete::phases))]
    pub only: Vec<String>,
    /// Print what would run, in order, with commands; run nothing. With --explain, also say
    /// which phases are up to date and why the others would run (nothing is written).
    #[arg(long)]
    pub dry_run: bool,
    /// Say, for every phase with `sources` or `outputs`, why it ran or why it did not
    /// ("src/main.c changed", "up to date", "output build/app was deleted (restored from cache)").
    #[arg(long)]
    pub explain: bool,
    /// Run phases even when they are up to date, and record their new keys: all of them, or
    /// PHASE (repeatable: `--force=compile --force=test`).
    #[arg(long, value_name = "PHASE", num_args = 0..=1, default_missing_value = "", action = clap::ArgAction::Append, add = ArgValueCompleter::new(crate::complete::phases))]
    pub force: Vec<String>,
    /// Neither restore outputs from the cache nor store them in it (up-to-date phases with
    /// their outputs in place still do not run).
    #[arg(long)]
    pub no_cache: bool,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Ui::Auto)]
    pub ui: Ui,
    /// Write the final timeline JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// While the pipeline runs, serve it over MCP (streamable HTTP) at http://ADDR/mcp.
    #[arg(long, value_name = "ADDR")]
    pub mcp_http: Option<std::net::SocketAddr>,
    /// Allow --mcp-http to listen on a non-loopback address.
    #[arg(long, requires = "mcp_http")]
    pub mcp_allow_remote: bool,
    /// Don't record this run in the run history.
    #[arg(long)]
    pub no_history: bool,
    /// The run history database (default: .milo/history.db beside the pipeline file).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// After the run, delete the runs of this pipeline beyond the newest N from the run
    /// history (0 keeps every run).
    #[arg(long, value_name = "N", env = "MILO_KEEP_RUNS", default_value_t = milo_history::DEFAULT_KEEP_RUNS)]
    pub keep_runs: usize,
    /// Re-run a failed, cancelled or interrupted run (default: the last), reusing the results
    /// of its completed phases whose definition is unchanged.
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "last")]
    pub resume: Option<String>,
    /// Keep the MCP server up SECS seconds after the run ends (fractions allowed), or `inf`
    /// until milo is stopped (Ctrl-C, SIGTERM). A run started through MCP meanwhile keeps it
    /// up until that run ends.
    #[arg(long, value_name = "SECS", requires = "mcp_http", default_value = "0", value_parser = parse_linger,
          allow_negative_numbers = true)]
    pub mcp_linger: Linger,
    /// The bearer token MCP clients must send (`Authorization: Bearer TOKEN`); default: a new
    /// random one, printed and written to .milo/mcp-token beside the pipeline file.
    // No `requires = "mcp_http"`: a MILO_MCP_TOKEN exported for every run must not break the
    // runs without --mcp-http.
    #[arg(long, value_name = "TOKEN", env = "MILO_MCP_TOKEN", hide_env_values = true)]
    pub mcp_token: Option<String>,
    /// Also accept requests from browser pages of ORIGIN (such as https://app.example:443 or
    /// http://tool.local:*); loopback origins are always accepted (repeatable).
    #[arg(long = "mcp-allow-origin", value_name = "ORIGIN", requires = "mcp_http", value_parser = parse_origin)]
    pub mcp_allow_origin: Vec<String>,
    /// At most N MCP sessions at once (session-based clients of MCP 2025-11-25 and older).
    #[arg(long, value_name = "N", requires = "mcp_http", default_value_t = milo_mcp::DEFAULT_MAX_SESSIONS,
          value_parser = parse_sessions)]
    pub mcp_max_sessions: usize,
    /// Close an MCP session idle for SECS seconds (its client then starts a new one).
    #[arg(long, value_name = "SECS", requires = "mcp_http", default_value = "600", value_parser = parse_positive_seconds,
          allow_negative_numbers = true)]
    pub mcp_session_timeout: std::time::Duration,
}

/// How long `--mcp-linger` keeps the server up after the run: a duration, or until stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    For(std::time::Duration),
    UntilStopped,
}

/// A number of seconds (`0`, `2.5`, `90`) as a duration; negative, NaN, infinite and
/// too-large values are errors that say so.
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds: give one such as 10 or 2.5"))?;
    if secs.is_nan() {
        return Err(format!("`{s}` is not a number of seconds: give one such as 10 or 2.5"));
    }
    if secs < 0.0 {
        return Err(format!("`{s}` is negative: give 0 or more seconds"));
    }
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| d.as_secs() <= MAX_SECONDS)
        .ok_or_else(|| format!("`{s}` seconds is too long: give at most {MAX_SECONDS} (about 31 years)"))
}

/// The longest duration a seconds flag takes: far beyond any run, and still safe to add to
/// the clock.
const MAX_SECONDS: u64 = 1_000_000_000;

/// `--mcp-session-timeout SECS`: more than 0 seconds.
fn parse_positive_seconds(s: &str) -> Result<std::time::Duration, String> {
    match parse_seconds(s)? {
        d if d.is_zero() => Err(format!(
            "`{s}` would close every session at once: give more than 0 seconds"
        )),
        d => Ok(d),
    }
}

/// `--mcp-max-sessions N`: at least 1.
fn parse_sessions(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 would refuse every session-based client: allow at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{s}` is not a number of sessions: give a whole number such as 32"
        )),
    }
}

/// `--mcp-linger SECS|inf`.
fn parse_linger(s: &str) -> Result<Linger, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "inf" || t == "infinity" || t == "+inf" || t == "+infinity" {
        return Ok(Linger::UntilStopped);
    }
    parse_seconds(s).map(Linger::For).map_err(|e| {
        if e.contains("negative") {
            e
        } else {
            format!("{e}, or `inf` to keep the server up until milo is stopped")
        }
    })
}

/// `--mcp-allow-origin ORIGIN`: `http(s)://HOST[:PORT|:*]`, as a browser sends it.
fn parse_origin(s: &str) -> Result<String, String> {
    let origin = s.trim().trim_end_matches('/');
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("`{s}` is not an origin: write scheme, host and port, such as https://app.example:443")
        })?;
    let host = rest.strip_suffix(":*").unwrap_or(rest);
    let bad = host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) || rest.contains(":*") && host.ends_with(':');
    if bad {
        return Err(format!(
            "`{s}` is not an origin: write scheme, host and port with no path, such as https://app.example:443 or http://tool.local:*"
        ));
    }
    Ok(origin.to_owned())
}

/// `command` with every subcommand, at any depth, displayed as `milo`: `milo run --version`
/// prints `milo 0.1.0`, not clap's `milo-run 0.1.0`.
pub fn branded(command: clap::Command) -> clap::Command {
    command.mut_subcommands(|sub| branded(sub.display_name("milo")))
}

impl Command {
    /// The pipeline file argument of the command, if it reads one (`init` writes its file, so
    /// it is not given here).
    pub fn pipeline_file_mut(&mut self) -> Option<&mut FileArg> {
        Some(match self {
            Command::Run(a) => &mut a.file,
            Command::Watch(a) => &mut a.file,
            Command::Order(a) | Command::Phases(a) | Command::Params(a) => &mut a.file,
            Command::Check(a) => &mut a.file,
            Command::Graph(a) => &mut a.file,
            Command::History(a) => match &mut a.command {
                Some(HistoryCommand::Prune(p)) => &mut p.file,
                None => &mut a.file,
            },
            Command::Show(a) | Command::Replay(a) => &mut a.file,
            Command::Logs(a) => &mut a.file,
            Command::Report(a) => &mut a.file,
            Command::Mcp(a) => &mut a.file,
            Command::Cache(a) => &mut a.file,
            Command::Init(_) | Command::Completions { .. } => return None,
        })
    }
}

/// Whether `-f` was left at its default in `matches` (at the deepest level that has it).
pub fn file_defaulted(matches: &clap::ArgMatches) -> bool {
    let mut level = matches;
    let mut defaulted = false;
    loop {
        if level.ids().any(|id| id.as_str() == "file")
            && let Some(source) = level.value_source("file")
        {
            defaulted = source == clap::parser::ValueSource::DefaultValue;
        }
        match level.subcommand() {
            Some((_, sub)) => level = sub,
            None => return defaulted,
        }
    }
}

/// The nearest `milo.toml` in `start` or one of its parents, as a path relative to `start`
/// (`milo.toml`, `../milo.toml`, `../../milo.toml`…), as cargo finds `Cargo.toml`.
pub fn discover(start: &std::path::Path, name: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for dir in start.ancestors() {
        if dir.join(name).is_file() {
            return Some(relative.join(name));
        }
        relative.push("..");
    }
    None
}
