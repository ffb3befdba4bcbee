//! Command phases: run a shell command through an [`Executor`] and pass results between
//! phases through files.
//!
//! Each command gets `MILO_OUTPUT`, the path of a file that does not exist yet (creating one
//! per phase up front was a measurable part of the cost of a short command); what it writes
//! there is its result: `null` if nothing or nothing but blanks, the JSON value if it parses,
//! else the text without its final newline. `MILO_INPUTS` is the path of a JSON object
//! `{dependency: result}` of its direct dependencies (`null` for a skipped one), its own
//! read-only file. A result must be a regular file of at most the pipeline's
//! `max_result_size` (16 MiB by default); anything else fails the phase.
//! `MILO_PIPELINE`, `MILO_PHASE` and `MILO_ATTEMPT` name the run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::phase::{CommandPhase, PhaseContext, PhaseOutput};
use crate::bounded_read::{BoundedReadError, Links, read_regular};
use crate::executor::{CommandError, CommandSpec, Executor, run_command_observed};
use crate::saga::{SagaError, SagaResult};

/// The files a run's command phases exchange results through: one temporary directory per
/// run (mode 0700), created on first use and removed with the run. It goes in `$TMPDIR` when
/// that is set; else on a RAM-backed filesystem when one is at hand — `$XDG_RUNTIME_DIR`, else
/// `/dev/shm` — because creating and deleting two small files per phase on a disk filesystem
/// (ext4's inode allocation) was a third of milo's own cost per command phase; else in `/tmp`.
///
/// Every attempt gets its own inputs file, written 0400 (a phase that writes to its
/// `MILO_INPUTS` cannot change what another phase reads), and its own result path.
#[derive(Debug)]
pub(crate) struct RunFiles {
    dir: OnceLock<Result<tempfile::TempDir, String>>,
    next: AtomicU64,
    /// The largest result read back, in bytes.
    limit: u64,
}

impl RunFiles {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            dir: OnceLock::new(),
            next: AtomicU64::new(0),
            limit,
        }
    }

    fn dir(&self) -> SagaResult<&Path> {
        let dir = self.dir.get_or_init(|| {
            let mut builder = tempfile::Builder::new();
            // The owner in the name lets the next milo sweep a directory a killed one left.
            let prefix = format!("milo-run-{}-", crate::executor::contain::owner_tag());
            builder.prefix(&prefix);
            // Owner only, whatever the umask: results and inputs are nobody else's business.
            {
                use std::os::unix::fs::PermissionsExt;
                builder.permissions(std::fs::Permissions::from_mode(0o700));
            }
            result_dir_bases()
                .iter()
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
}

/// Where a run's result directory may go, in order of preference: `$TMPDIR` when set; else the
/// RAM-backed `$XDG_RUNTIME_DIR` and `/dev/shm`, then the system's temporary directory.
pub fn result_dir_bases() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("TMPDIR").filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let linux_shm = cfg!(target_os = "linux").then(|| PathBuf::from("/dev/shm"));
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(linux_shm)
        .chain([std::env::temp_dir()])
        .collect()
}

/// Writes `bytes` to a new file at `path`, readable by its owner only (0400).
fn write_inputs(path: &Path, bytes: &[u8]) -> SagaResult<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| SagaError::msg(format!("could not write {}: {e}", path.display())))
}

pub(crate) async fn run_command_phase(
    command: Arc<CommandPhase>,
    ctx: PhaseContext,
    executor: Arc<dyn Executor>,
    grace: Duration,
) -> SagaResult<PhaseOutput> {
    let files = ctx.files.clone();
    let (output_path, inputs_path) = files.pair()?;
    write_inputs(
        &inputs_path,
        &serde_json::to_vec(&ctx.inputs_json()).map_err(SagaError::msg)?,
    )?;
    let mut spec = CommandSpec::new(command.run.clone()).capture(ctx.capture);
    spec.cwd = command.cwd.clone();
    spec.env = command.env.clone();
    spec.shell = command.shell.clone();
    spec.env.extend([
        ("MILO_OUTPUT".to_owned(), output_path.display().to_string()),
        ("MILO_INPUTS".to_owned(), inputs_path.display().to_string()),
        ("MILO_PIPELINE".to_owned(), ctx.pipeline.to_string()),
        ("MILO_PHASE".to_owned(), ctx.name.to_string()),
        ("MILO_ATTEMPT".to_owned(), ctx.attempt.to_string()),
    ]);
    let sink = ctx.sink.clone();
    let on_line = move |stream, line| sink(stream, line);
    let events = ctx.events.clone();
    let on_event = move |event| {
        if let Some(events) = &events {
            events(event);
        }
    };
    let outcome = run_command_observed(&*executor, &spec, &on_line, &on_event, &ctx.cancel, grace).await;
    let read = read_result(&output_path, files.limit).await;
    // No result file (the usual case) is nothing to remove.
    if !matches!(read, Ok(None)) {
        let _ = std::fs::remove_file(&output_path);
    }
    let _ = std::fs::remove_file(&inputs_path);
    match outcome {
        Ok(()) => match read {
            Ok(bytes) => Ok(PhaseOutput::json(parse_result(&bytes.unwrap_or_default()))),
            Err(e) => Err(SagaError::Failed(format!(
                "its result (MILO_OUTPUT) was not read: {e}{}",
                match e {
                    BoundedReadError::TooLarge { .. } => {
                        "; write less, or raise the pipeline's `max_result_size`"
                    }
                    BoundedReadError::Symlink { .. } | BoundedReadError::NotRegular { .. } => {
                        "; write the result into MILO_OUTPUT as a regular file"
                    }
                    _ => "",
                }
            ))),
        },
        Err(CommandError::Cancelled) => Err(SagaError::Cancelled),
        Err(e) => Err(SagaError::Failed(e.to_string())),
    }
}

/// What a command wrote to `MILO_OUTPUT`; `None` if it did not create the file. Only a regular
/// file is read (not a FIFO, a device or a symbolic link, which could hang milo or point it
/// anywhere), and at most `limit` bytes. A small file — the usual case — is read right here:
/// handing it to the blocking pool would cost two thread wake-ups per phase; a large one is
/// read there, so the runtime's worker is not held up.
async fn read_result(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, BoundedReadError> {
    const INLINE: u64 = 64 * 1024;
    let read = move |path: &Path| match read_regular(path, limit, Links::Refuse) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BoundedReadError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    };
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(None),
        Ok(m) if m.len() <= INLINE || !m.is_file() => read(path),
        Ok(_) => {
            let owned = path.to_owned();
            tokio::task::spawn_blocking(move || read(&owned))
                .await
                .unwrap_or_else(|e| {
                    Err(BoundedReadError::Io {
                        path: path.display().to_string(),
                        source: std::io::Error::other(e),
                    })
                })
        }
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
