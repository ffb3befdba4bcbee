//! [`LocalExecutor`]: commands as local processes — through `sh -c`, or exec'd directly when
//! they need no shell — each in its own process group.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::argv;
use super::{CommandError, CommandSpec, Executor, ExitFuture, ExitOutcome, GroupSignal, Launched, OutputReader};

/// Runs commands as local processes, through `sh -c "<command>"` — or, when the command is
/// just a program and its arguments, the program itself, exec'd directly as GNU make does.
///
/// The shell is bypassed when the command line has nothing for it to interpret: plain words
/// separated by blanks, without quoting, escapes, expansions, redirections, operators,
/// comments, a variable assignment, or a reserved word or builtin as its first word (`cd`,
/// `exit`, `pwd`, `test`…; `echo`, `true` and `false` without options are fine). That saves
/// starting a shell per command, and changes nothing else:
///
/// * the program is looked up on the same PATH (the phase's own, if it sets one);
/// * it gets the environment `sh` would pass on (a command whose environment has a variable
///   the shell would drop or reset — a name that is not a shell identifier, `IFS`, `OPTIND`,
///   `PPID` — goes through the shell);
/// * `PWD` is what `sh` would export: an inherited `PWD` that names the working directory is
///   kept, anything else is replaced by the directory's physical path;
/// * a program that cannot be started (missing, not executable, no `#!` line…) is handed to
///   the shell after all, so the failure reads and exits (127, 126) as it always has;
/// * where `sh` runs its program as a child it waits for (dash) rather than exec'ing it
///   (bash), a program that dies of a signal is reported as that shell reports it: exit
///   status 128 + the signal's number, and a line on stderr such as `Killed`.
///
/// A relative program path (`./build.sh`) in a phase with its own working directory is left
/// to the shell.
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
        // The working directory's identity (device, inode), for `shell_pwd`.
        let mut cwd_id = None;
        if let Some(cwd) = &spec.cwd {
            // Checked up front: spawning in a missing directory reports a bare ENOENT that
            // reads like `sh` itself is missing.
            match std::fs::metadata(cwd) {
                Ok(m) if m.is_dir() => cwd_id = Some((m.dev(), m.ino())),
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

        let direct_cmd = argv::simple_argv(&spec.command).and_then(|words| direct_command(spec, &words, cwd_id));
        let started = match direct_cmd {
            Some(mut cmd) => match cmd.spawn() {
                Ok(child) => {
                    tracing::trace!(command = %spec.command, "started the program directly, without a shell");
                    Some(child)
                }
                Err(e) => {
                    tracing::trace!(
                        command = %spec.command,
                        "could not start the program directly ({e}); running it through sh, \
                         which reports the failure"
                    );
                    None
                }
            },
            None => {
                tracing::trace!(command = %spec.command, "the command needs a shell; running it through sh");
                None
            }
        };
        let direct = started.is_some();
        let mut child = match started {
            Some(child) => child,
            None => shell_command(spec).spawn().map_err(|e| {
                let reason = match (e.kind(), &spec.cwd) {
                    (io::ErrorKind::NotFound, _) => {
                        format!("`sh` was not found ({e}); make sure a POSIX shell is on PATH")
                    }
                    (_, Some(cwd)) => format!("{e} (working directory {})", cwd.display()),
                    _ => e.to_string(),
                };
                spawn_error(reason, e)
            })?,
        };
        let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
            return Err(spawn_error(
                "the process vanished right after it started".to_owned(),
                io::Error::other("no process id"),
            ));
        };
        tracing::debug!(pid, command = %spec.command, "started command");
        let stdout = child.stdout.take().map(|r| Box::new(r) as OutputReader);
        let mut stderr = child.stderr.take().map(|r| Box::new(r) as OutputReader);
        let note = if !direct {
            ShellNote::Shell
        } else if let Some(pipe) = stderr.take() {
            let (tx, rx) = oneshot::channel();
            stderr = Some(Box::new(ThenNote {
                pipe: Some(pipe),
                note: Some(rx),
                text: Vec::new(),
            }));
            ShellNote::Captured(tx)
        } else {
            ShellNote::Inherited
        };
        Ok(Box::new(LocalLaunched {
            pgid: Pid::from_raw(pid),
            child: Some(child),
            stdout,
            stderr,
            gone: false,
            signalled: Arc::new(AtomicBool::new(false)),
            note,
        }))
    }
}

/// `program` set up to run as `spec` says: leading a new process group, stdin `/dev/null`,
/// `spec`'s environment and working directory, output piped or passed through.
fn command(program: impl AsRef<OsStr>, spec: &CommandSpec) -> Command {
    let mut cmd = Command::new(program);
    cmd.process_group(0)
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
    cmd
}

/// `sh -c "<command>"`.
fn shell_command(spec: &CommandSpec) -> Command {
    // `sh` is looked up on PATH once, not by every spawn (which tries each PATH entry in
    // turn); a phase that sets its own PATH gets the lookup done against that PATH.
    let shell = if spec.env.iter().any(|(k, _)| k == "PATH") {
        Path::new("sh")
    } else {
        shell_path()
    };
    let mut cmd = command(shell, spec);
    cmd.arg("-c").arg(&spec.command);
    cmd
}

/// The program `words[0]` with arguments `words[1..]`, set up to behave as `sh -c` would run
/// it; `None` when that cannot be vouched for (the shell then runs it).
fn direct_command(spec: &CommandSpec, words: &[&str], cwd_id: Option<(u64, u64)>) -> Option<Command> {
    let (&program, args) = words.split_first()?;
    if !program.contains('/') && !spec.env.iter().any(|(k, _)| k == "PATH") && std::env::var_os("PATH").is_none() {
        // No PATH at all: the shell searches its own default one, `execvp` another.
        return None;
    }
    if env_needs_shell(spec) {
        return None;
    }
    if spec.cwd.is_some() && program.contains('/') && !program.starts_with('/') {
        // A relative path like `./build.sh` is left to the shell, which resolves it in the
        // working directory: a spawn leaves unspecified which directory it resolves it in,
        // and making it absolute would change the `$0` a script sees.
        return None;
    }
    let pwd = shell_pwd(spec, cwd_id).ok()?;
    let mut cmd = command(program, spec);
    cmd.args(args);
    if let Some(pwd) = pwd {
        cmd.env("PWD", pwd);
    }
    Some(cmd)
}

/// Whether the command's environment has a variable that `sh` would not pass on as it is:
/// dash drops a variable whose name is not a shell identifier (`MY-VAR`, `BASH_FUNC_f%%`…),
/// and shells reset `IFS`, `OPTIND` and `PPID` at start-up. milo's own environment is looked
/// at once: it cannot change it (`unsafe_code` is denied).
fn env_needs_shell(spec: &CommandSpec) -> bool {
    fn rewritten(name: &OsStr) -> bool {
        let name = name.as_encoded_bytes();
        let identifier = name.first().is_some_and(|&b| b == b'_' || b.is_ascii_alphabetic())
            && name.iter().all(|&b| b == b'_' || b.is_ascii_alphanumeric());
        !identifier || matches!(name, b"IFS" | b"OPTIND" | b"PPID")
    }
    static INHERITED: OnceLock<bool> = OnceLock::new();
    spec.env.iter().any(|(k, _)| rewritten(OsStr::new(k)))
        || *INHERITED.get_or_init(|| std::env::vars_os().any(|(k, _)| rewritten(&k)))
}

/// The `PWD` that `sh` would export to the command, when it is not the one the command
/// inherits (`Ok(None)`: leave it). At start-up, dash and bash keep an inherited `PWD` that is
/// an absolute path to their working directory, however spelled (through a symlink, with a
/// trailing `/`…), and replace anything else — a `PWD` naming another directory, a relative
/// one, none — with the directory's physical path. The inherited `PWD` is `spec`'s own if it
/// sets one, else milo's; `cwd_id` is the working directory's (device, inode) if `spec` has
/// one.
fn shell_pwd(spec: &CommandSpec, cwd_id: Option<(u64, u64)>) -> io::Result<Option<PathBuf>> {
    let inherited = match spec.env.iter().rfind(|(k, _)| k == "PWD") {
        Some((_, v)) => Some(OsString::from(v)),
        None => std::env::var_os("PWD"),
    };
    let dir = spec.cwd.as_deref().unwrap_or(Path::new("."));
    let here = match cwd_id {
        Some(id) => id,
        None => std::fs::metadata(dir).map(|m| (m.dev(), m.ino()))?,
    };
    let names_here = |p: &Path| p.is_absolute() && std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == here);
    if inherited.as_deref().map(Path::new).is_some_and(names_here) {
        return Ok(None);
    }
    std::fs::canonicalize(dir).map(Some)
}

/// The absolute path of `sh` on this process's PATH, found once; plain `sh` (a PATH search by
/// each spawn, and its usual "not found" error) when the lookup fails.
fn shell_path() -> &'static Path {
    static SHELL: OnceLock<PathBuf> = OnceLock::new();
    SHELL.get_or_init(|| {
        which::which("sh")
            .ok()
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from("sh"))
    })
}

/// Where `sh` would have reported that the program it ran died of a signal — for a program
/// exec'd directly in its stead (see [`shell_waits`]).
enum ShellNote {
    /// The command runs under `sh` itself, which reports for itself.
    Shell,
    /// To the captured stderr, through [`ThenNote`].
    Captured(oneshot::Sender<String>),
    /// To milo's own stderr, which the command shares.
    Inherited,
}

impl ShellNote {
    fn send(self, line: Option<String>) {
        let Some(line) = line else { return };
        match self {
            ShellNote::Shell => {}
            ShellNote::Captured(tx) => {
                let _ = tx.send(line);
            }
            ShellNote::Inherited => {
                use std::io::Write;
                let _ = writeln!(io::stderr(), "{line}");
            }
        }
    }
}

/// Whether `sh -c "<program>"` runs the program as a child it waits for (dash) rather than
/// exec'ing the program in its own place (bash). A shell that waits turns its program's death
/// by a signal into its own exit status 128 + the signal's number, with a line on stderr
/// saying what killed it, so a program exec'd directly gets the same treatment there. Asked
/// once, of the shell itself; only ever needed when a program dies of a signal.
async fn shell_waits() -> bool {
    static WAITS: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    *WAITS
        .get_or_init(|| async {
            // The inner shell prints its parent: the outer one if that waits for it.
            let probe = Command::new(shell_path())
                .arg("-c")
                .arg("sh -c 'echo $PPID'")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            let Ok(probe) = probe else { return true };
            let pid = probe.id();
            let waits = match (pid, probe.wait_with_output().await) {
                (Some(pid), Ok(out)) => String::from_utf8_lossy(&out.stdout).trim() == pid.to_string(),
                _ => true,
            };
            tracing::debug!(waits, "does `sh -c` wait for the program it runs, rather than exec it?");
            waits
        })
        .await
}

/// The line dash writes to stderr when the program it waits for is killed by signal `sig`:
/// the signal's description (glibc's `strsignal`), and whether it dumped core; none for SIGINT
/// and SIGPIPE.
fn signal_report(sig: i32, core_dumped: bool) -> Option<String> {
    let name = Signal::try_from(sig).map(Signal::as_str).unwrap_or("");
    let what = match name {
        "SIGINT" | "SIGPIPE" => return None,
        "SIGHUP" => "Hangup",
        "SIGQUIT" => "Quit",
        "SIGILL" => "Illegal instruction",
        "SIGTRAP" => "Trace/breakpoint trap",
        "SIGABRT" => "Aborted",
        "SIGBUS" => "Bus error",
        "SIGFPE" => "Floating point exception",
        "SIGKILL" => "Killed",
        "SIGUSR1" => "User defined signal 1",
        "SIGSEGV" => "Segmentation fault",
        "SIGUSR2" => "User defined signal 2",
        "SIGALRM" => "Alarm clock",
        "SIGTERM" => "Terminated",
        "SIGSTKFLT" => "Stack fault",
        "SIGCHLD" => "Child exited",
        "SIGCONT" => "Continued",
        "SIGSTOP" => "Stopped (signal)",
        "SIGTSTP" => "Stopped",
        "SIGTTIN" => "Stopped (tty input)",
        "SIGTTOU" => "Stopped (tty output)",
        "SIGURG" => "Urgent I/O condition",
        "SIGXCPU" => "CPU time limit exceeded",
        "SIGXFSZ" => "File size limit exceeded",
        "SIGVTALRM" => "Virtual timer expired",
        "SIGPROF" => "Profiling timer expired",
        "SIGWINCH" => "Window changed",
        "SIGIO" => "I/O possible",
        "SIGPWR" => "Power failure",
        "SIGSYS" => "Bad system call",
        _ if cfg!(target_os = "linux") && (34..=64).contains(&sig) => {
            return Some(format!("Real-time signal {}", sig - 34));
        }
        _ => return Some(format!("Unknown signal {sig}")),
    };
    Some(if core_dumped {
        format!("{what} (core dumped)")
    } else {
        what.to_owned()
    })
}

/// A captured stderr, then the line `sh` would have added after it (see [`ShellNote`]), once
/// the program's exit says whether there is one.
struct ThenNote {
    pipe: Option<OutputReader>,
    note: Option<oneshot::Receiver<String>>,
    /// The rest of the line to hand out.
    text: Vec<u8>,
}

impl AsyncRead for ThenNote {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(pipe) = &mut this.pipe {
            let before = buf.filled().len();
            ready!(Pin::new(pipe).poll_read(cx, buf))?;
            if buf.filled().len() > before || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            this.pipe = None;
        }
        if let Some(rx) = &mut this.note {
            if let Ok(line) = ready!(Pin::new(rx).poll(cx)) {
                this.text = format!("{line}\n").into_bytes();
            }
            this.note = None;
        }
        let n = this.text.len().min(buf.remaining());
        buf.put_slice(&this.text[..n]);
        this.text.drain(..n);
        Poll::Ready(Ok(()))
    }
}

struct LocalLaunched {
    pgid: Pid,
    child: Option<Child>,
    stdout: Option<OutputReader>,
    stderr: Option<OutputReader>,
    /// Set once the group is known to be empty: no more signals to it (its id may be reused).
    gone: bool,
    /// Set once milo has signalled the group.
    signalled: Arc<AtomicBool>,
    /// Where `sh`'s report of a death by signal goes, when the program was exec'd directly.
    note: ShellNote,
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
        let signalled = Arc::clone(&self.signalled);
        let note = std::mem::replace(&mut self.note, ShellNote::Shell);
        Some(Box::pin(async move {
            let status = child.wait().await?;
            use std::os::unix::process::ExitStatusExt;
            Ok(match (status.code(), status.signal()) {
                (Some(code), _) => ExitOutcome::Code(code),
                // A program exec'd directly, killed by a signal milo did not send (which would
                // have killed `sh` too): what `sh` would have made of that.
                (None, Some(sig))
                    if !matches!(note, ShellNote::Shell)
                        && !signalled.load(Ordering::SeqCst)
                        && shell_waits().await =>
                {
                    note.send(signal_report(sig, status.core_dumped()));
                    ExitOutcome::Code(128 + sig)
                }
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
        self.signalled.store(true, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_reports_read_as_dash_writes_them() {
        assert_eq!(signal_report(9, false).as_deref(), Some("Killed"));
        assert_eq!(signal_report(15, false).as_deref(), Some("Terminated"));
        assert_eq!(signal_report(1, false).as_deref(), Some("Hangup"));
        assert_eq!(
            signal_report(11, true).as_deref(),
            Some("Segmentation fault (core dumped)")
        );
        assert_eq!(signal_report(2, false), None);
        assert_eq!(signal_report(13, false), None);
        if cfg!(target_os = "linux") {
            assert_eq!(signal_report(34, false).as_deref(), Some("Real-time signal 0"));
            assert_eq!(signal_report(40, false).as_deref(), Some("Real-time signal 6"));
        }
    }
}
