//! [`LocalExecutor`]: commands as local processes, each in its own process group.

use std::io;
use std::process::Stdio;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::{CommandError, CommandSpec, Executor, ExitFuture, ExitOutcome, GroupSignal, Launched, OutputReader};

/// Runs commands as local `sh -c "<command>"` processes.
///
/// Each command leads its own process group, so it and everything it starts can be signalled
/// together; dropping the [`Launched`] handle SIGKILLs the group. Its stdin is `/dev/null`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn launch(&self, spec: &CommandSpec) -> Result<Box<dyn Launched>, CommandError> {
        let spawn_error = |reason: String, source: io::Error| CommandError::Spawn {
            command: spec.command.clone(),
            reason,
            source,
        };
        if let Some(cwd) = &spec.cwd {
            // Checked up front: spawning in a missing directory reports a bare ENOENT that
            // reads like `sh` itself is missing.
            match std::fs::metadata(cwd) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(spawn_error(
                        format!(
                            "working directory {} is not a directory; point the phase's cwd \
                             at a directory",
                            cwd.display()
                        ),
                        io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                    ));
                }
                Err(e) => {
                    let fix = if e.kind() == io::ErrorKind::NotFound {
                        "create it or fix the phase's cwd"
                    } else {
                        "check its permissions or fix the phase's cwd"
                    };
                    return Err(spawn_error(
                        format!("working directory {} is unusable ({e}); {fix}", cwd.display()),
                        e,
                    ));
                }
            }
        }

        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&spec.command)
            .process_group(0)
            .stdin(Stdio::null())
            .envs(spec.env.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        if spec.capture {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        }
        let mut child = cmd.spawn().map_err(|e| {
            let reason = match (e.kind(), &spec.cwd) {
                (io::ErrorKind::NotFound, _) => {
                    format!("`sh` was not found ({e}); make sure a POSIX shell is on PATH")
                }
                (_, Some(cwd)) => format!("{e} (working directory {})", cwd.display()),
                _ => e.to_string(),
            };
            spawn_error(reason, e)
        })?;
        let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
            return Err(spawn_error(
                "the process vanished right after it started".to_owned(),
                io::Error::other("no process id"),
            ));
        };
        tracing::debug!(pid, command = %spec.command, "started command");
        let stdout = child.stdout.take().map(|r| Box::new(r) as OutputReader);
        let stderr = child.stderr.take().map(|r| Box::new(r) as OutputReader);
        Ok(Box::new(LocalLaunched {
            pgid: Pid::from_raw(pid),
            child: Some(child),
            stdout,
            stderr,
            gone: false,
        }))
    }
}

struct LocalLaunched {
    pgid: Pid,
    child: Option<Child>,
    stdout: Option<OutputReader>,
    stderr: Option<OutputReader>,
    /// Set once the group is known to be empty: no more signals to it (its id may be reused).
    gone: bool,
}

impl Launched for LocalLaunched {
    fn take_stdout(&mut self) -> Option<OutputReader> {
        self.stdout.take()
    }

    fn take_stderr(&mut self) -> Option<OutputReader> {
        self.stderr.take()
    }

    fn take_exit(&mut self) -> Option<ExitFuture> {
        let mut child = self.child.take()?;
        Some(Box::pin(async move {
            let status = child.wait().await?;
            use std::os::unix::process::ExitStatusExt;
            Ok(match (status.code(), status.signal()) {
                (Some(code), _) => ExitOutcome::Code(code),
                (None, Some(sig)) => ExitOutcome::Signal(sig),
                (None, None) => ExitOutcome::Code(-1),
            })
        }))
    }

    fn signal(&mut self, signal: GroupSignal) -> io::Result<()> {
        if self.gone {
            return Ok(());
        }
        let sig = match signal {
            GroupSignal::Terminate => Signal::SIGTERM,
            GroupSignal::Kill => Signal::SIGKILL,
        };
        match killpg(self.pgid, sig) {
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => {
                self.gone = true;
                Ok(())
            }
            Err(e) => Err(io::Error::from(e)),
        }
    }

    fn is_running(&mut self) -> bool {
        if self.gone {
            return false;
        }
        match killpg(self.pgid, None) {
            Err(Errno::ESRCH) => {
                self.gone = true;
                false
            }
            // Members exist, but they may all be zombies waiting for a parent (or init) to
            // reap them; those are not running.
            _ => has_live_member(self.pgid).unwrap_or(true),
        }
    }
}

impl Drop for LocalLaunched {
    fn drop(&mut self) {
        if !self.gone {
            // Best effort: ESRCH (already gone) is the common case.
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Whether a process of group `pgid` is alive and not a zombie, from `/proc` (Linux). `None`
/// when `/proc` cannot be read.
fn has_live_member(pgid: Pid) -> Option<bool> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let want = pgid.as_raw();
    Some(super::procfs::processes()?.any(|p| p.pgrp == want && !p.is_dead()))
}
