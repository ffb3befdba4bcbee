//! Integration tests of the `milo` binary, one module per area (ripgrep style: a single test
//! binary, so it is linked once).

#[path = "common/mod.rs"]
mod common;
#[path = "cli/pty.rs"]
mod pty;
#[path = "cli/util.rs"]
mod util;

#[path = "cli/errors.rs"]
mod errors;
#[path = "cli/examples.rs"]
mod examples;
#[path = "cli/history_output.rs"]
mod history_output;
#[path = "cli/include.rs"]
mod include;
#[path = "cli/incremental.rs"]
mod incremental;
#[path = "cli/inspect.rs"]
mod inspect;
#[path = "cli/json.rs"]
mod json;
#[path = "cli/params.rs"]
mod params;
#[path = "cli/policy.rs"]
mod policy;
#[path = "cli/progress.rs"]
mod progress;
#[path = "cli/prune.rs"]
mod prune;
#[path = "cli/report.rs"]
mod report;
#[path = "cli/results.rs"]
mod results;
#[path = "cli/run.rs"]
mod run;
#[path = "cli/signals.rs"]
mod signals;
#[path = "cli/status.rs"]
mod status;
#[path = "cli/stop.rs"]
mod stop;
#[path = "cli/terminal.rs"]
mod terminal;
