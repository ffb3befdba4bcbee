//! Command phases: run a shell command through an [`Executor`] and pass results between
//! phases through files.
//!
//! Each command gets `MILO_OUTPUT`, the path of a file that does not exist yet (creating one
//! per phase up front was a measurable part of the cost of a short command); what it writes
//! there is its result: `null` if nothing or nothing but blanks, the JSON value if it parses,
//! else the text without its final newline. `MILO_INPUTS` is the path of a JSON object
//! `{dependency: result}` of its direct dependencies (`null` for a skipped one).
//! `MILO_PIPELINE`, `MILO_PHASE` and `MILO_ATTEMPT` name the run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::phase::{CommandPhase, PhaseContext, PhaseOutput};
use crate::executor::{CommandError, CommandSpec, Executor, run_command};
use crate::saga::{SagaError, SagaResult};

/// The files a run's command phases exchange results through: one temporary directory per
/// run, created on first use and removed with the run. It goes in `$TMPDIR` when that is set;
/// else on a RAM-backed filesystem when one is at hand — `$XDG_RUNTIME_DIR`, else `/dev/shm` —
/// because creating and deleting two small files per phase on a disk filesystem (ext4's inode
/// allocation) was a third of milo's own cost per command phase; else in `/tmp`.
#[derive(Debug, Default)]
pub(crate) struct RunFiles {
    dir: OnceLock<Result<tempfile::TempDir, String>>,
    no_inputs: OnceLock<Result<PathBuf, String>>,
    next: AtomicU64,
}

impl RunFiles {
    fn dir(&self) -> SagaResult<&Path> {
        let dir = self.dir.get_or_init(|| {
            let mut builder = tempfile::Builder::new();
            builder.prefix("milo-run-");
            // An explicit TMPDIR wins; else the first RAM-backed directory that takes it.
            let ram: Vec<PathBuf> = if std::env::var_os("TMPDIR").is_some_and(|d| !d.is_empty()) {
                Vec::new()
            } else {
                let linux_shm = cfg!(target_os = "linux").then(|| PathBuf::from("/dev/shm"));
                std::env::var_os("XDG_RUNTIME_DIR")
                    .map(PathBuf::from)
                    .into_iter()
                    .chain(linux_shm)
                    .collect()
            };
            ram.iter()
                .find_map(|base| builder.tempdir_in(base).ok())
                .map_or_else(|| builder.tempdir(), Ok)
                .map_err(|e| format!("could not create a temporary directory for the phases' results: {e}"))
        });
        dir.as_ref().map(|d| d.path()).map_err(SagaError::msg)
    }

    /// A fresh pair of paths: (result file, inputs file).
    fn pair(&self) -> SagaResult<(PathBuf, PathBuf)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir()?;
        Ok((dir.join(format!("{n}.out")), dir.join(format!("{n}.in.json"))))
    }

    /// The shared `{}` inputs file of phases without dependencies.
    fn no_inputs(&self) -> SagaResult<PathBuf> {
        let path = self.no_inputs.get_or_init(|| {
            let path = self.dir().map_err(|e| e.to_string())?.join("no-inputs.json");
            std::fs::write(&path, b"{}").map_err(|e| format!("could not write {}: {e}", path.display()))?;
            Ok(path)
        });
        path.clone().map_err(SagaError::msg)
    }
}

pub(crate) async fn run_command_phase(
    command: Arc<CommandPhase>,
    ctx: PhaseContext,
    executor: Arc<dyn Executor>,
    grace: Duration,
) -> SagaResult<PhaseOutput> {
    let files = ctx.files.clone();
    let (output_path, own_inputs) = files.pair()?;
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| SagaError::msg(format!("could not write {}: {e}", path.display())))
    };
    let own = !ctx.inputs.is_empty();
    let inputs_path = if !own {
        files.no_inputs()?
    } else {
        write(
            &own_inputs,
            &serde_json::to_vec(&ctx.inputs_json()).map_err(SagaError::msg)?,
        )?;
        own_inputs.clone()
    };
    let mut spec = CommandSpec::new(command.run.clone()).capture(ctx.capture);
    spec.cwd = command.cwd.clone();
    spec.env = command.env.clone();
    spec.env.extend([
        ("MILO_OUTPUT".to_owned(), output_path.display().to_string()),
        ("MILO_INPUTS".to_owned(), inputs_path.display().to_string()),
        ("MILO_PIPELINE".to_owned(), ctx.pipeline.to_string()),
        ("MILO_PHASE".to_owned(), ctx.name.to_string()),
        ("MILO_ATTEMPT".to_owned(), ctx.attempt.to_string()),
    ]);
    let sink = ctx.sink.clone();
    let on_line = move |stream, line| sink(stream, line);
    let outcome = run_command(&*executor, &spec, &on_line, &ctx.cancel, grace).await;
    let bytes = read_result(&output_path).await;
    if bytes.is_some() {
        let _ = std::fs::remove_file(&output_path);
    }
    if own {
        let _ = std::fs::remove_file(&own_inputs);
    }
    let bytes = bytes.unwrap_or_default();
    match outcome {
        Ok(()) => Ok(PhaseOutput::json(parse_result(&bytes))),
        Err(CommandError::Cancelled) => Err(SagaError::Cancelled),
        Err(e) => Err(SagaError::Failed(e.to_string())),
    }
}

/// What a command wrote to `MILO_OUTPUT`; `None` if it did not create the file. A small file —
/// the usual case — is read right here: handing it to the blocking pool would cost two thread
/// wake-ups per phase; a large one is read there, so the runtime's worker is not held up.
async fn read_result(path: &Path) -> Option<Vec<u8>> {
    const INLINE: u64 = 64 * 1024;
    match std::fs::metadata(path) {
        Ok(m) if m.len() <= INLINE => Some(std::fs::read(path).unwrap_or_default()),
        Ok(_) => Some(tokio::fs::read(path).await.unwrap_or_default()),
        Err(_) => None,
    }
}

/// A command's result from what it wrote to `MILO_OUTPUT`.
pub fn parse_result(bytes: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        return serde_json::Value::Null;
    }
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            let t = text.strip_suffix('\n').unwrap_or(&text);
            let t = t.strip_suffix('\r').unwrap_or(t);
            serde_json::Value::String(t.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_result;
    use serde_json::json;

    #[test]
    fn results_are_null_json_or_text() {
        assert_eq!(parse_result(b""), json!(null));
        assert_eq!(parse_result(b"{\"n\": 3}\n"), json!({"n": 3}));
        assert_eq!(parse_result(b"42"), json!(42));
        assert_eq!(parse_result(b"hello world\n"), json!("hello world"));
        assert_eq!(parse_result(b"two\nlines\n"), json!("two\nlines"));
    }
}
