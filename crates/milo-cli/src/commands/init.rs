//! `milo init`: write a commented starter pipeline file, never overwriting one.

use std::fs::OpenOptions;
use std::io::Write;

use super::write_stdout;
use crate::cli::FileArg;
use crate::error::CliError;

/// The starter file: valid as written, every option shown.
pub const STARTER: &str = r#"# milo pipeline: `milo run` runs it, `milo check` validates it, `milo graph` draws it.
name = "my-pipeline"
# capture_output = true   # collect each phase's output (default true)
# fail_fast = false       # cancel running phases as soon as one fails
# jobs = 4                # parallel phases at once (default: number of CPUs)

# Defaults for every phase (any phase key except name, run and depends_on).
[defaults]
# A phase runs alone unless it is `parallel` (the default is false): with this, phases that do
# not depend on each other (compile and lint below) run at the same time.
parallel = true
# timeout = "10m"

[[phase]]
name = "prepare"
description = "Create the output directory"
run = "mkdir -p build"
parallel = false          # runs alone: nothing else runs at the same time

[[phase]]
name = "compile"
description = "Build the program"
run = "echo compiling && sleep 1"
depends_on = ["prepare"]
weight = 3                # share of the progress bar (default 1)

[[phase]]
name = "lint"
description = "Check the style"
run = "echo linting"
depends_on = ["prepare"]
policy = { on_fail = "skip" }    # stop (default) | skip | retry

[[phase]]
name = "test"
description = "Run the tests, retrying flaky ones"
run = "echo testing"
depends_on = ["compile"]
timeout = "5m"
policy = { on_fail = "retry", max_retries = 2, retry_delay = "1s", retry_backoff = "exponential" }
# Each command gets MILO_INPUTS (JSON of its dependencies' results) and MILO_OUTPUT (a file
# whose content becomes this phase's result), plus MILO_PIPELINE, MILO_PHASE and MILO_ATTEMPT.
"#;

pub fn init(args: &FileArg) -> Result<u8, CliError> {
    let path = &args.file;
    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::usage(
                format!("`{}` already exists; milo init never overwrites a file", path.display()),
                Some("pick another name with `milo init -f FILE`, or edit the existing file".into()),
            ));
        }
        Err(source) => {
            return Err(CliError::Io {
                action: "create",
                path: path.clone(),
                source,
            });
        }
    };
    file.write_all(STARTER.as_bytes()).map_err(|source| CliError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    write_stdout(
        format!(
            "wrote {}; run it with `milo run -f {}`\n",
            path.display(),
            path.display()
        )
        .as_bytes(),
    )?;
    Ok(0)
}
