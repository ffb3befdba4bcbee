//! [`LocalExecutor`]: commands as local processes — through `sh -c`, or exec'd directly when
//! they need no shell — each in its own [container](super::contain) (session, group, cgroup).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;

use super::argv;
use super::contain::{self, Container};
use super::spawn::Spawned;
use super::{CommandError, CommandSpec, Executor, ExitFuture, GroupSignal, Launched, OutputReader};

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
///
/// One thing reads differently: a program that dies of a signal (a crash, the OOM killer, a
/// `kill` from outside) is reported as killed by that signal, as it is when `sh` is bash
/// (which execs its last command) — where dash, which waits for its program, would have
/// turned it into exit status 128 + the signal's number.
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

        let mut container = Container::new();
        // Only `sh -c` commands are started directly: another shell (`bash -euo pipefail -c`)
        // changes what even a plain command line means.
        let words = argv::simple_argv(&spec.command).filter(|_| spec.shell.is_none());
        let direct_cmd = words
            .as_deref()
            .and_then(|words| direct_command(spec, words, cwd_id, &container));
        let started = match direct_cmd {
            Some(cmd) => match spawn(&cmd, &container) {
                Ok(child) => {
                    tracing::trace!(command = %spec.command, "started the program directly, without a shell");
                    Some(child)
                }
                Err(e) => {
                    if let Some(&program) = words.as_ref().and_then(|w| w.first()) {
                        forget_lookup(program, spec);
                    }
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
        let mut child = match started {
            Some(child) => child,
            None => spawn(&shell_command(spec, &container), &container).map_err(|e| {
                let shell = spec.shell.as_ref().and_then(|s| s.first()).map_or("sh", String::as_str);
                forget_lookup(shell, spec);
                let reason = match (e.kind(), &spec.cwd) {
                    (io::ErrorKind::NotFound, _) => match spec.shell.as_ref().and_then(|s| s.first()) {
                        Some(shell) => format!("the shell `{shell}` was not found ({e}); install it or fix `shell`"),
                        None => format!("`sh` was not found ({e}); make sure a POSIX shell is on PATH"),
                    },
                    (_, Some(cwd)) => format!("{e} (working directory {})", cwd.display()),
                    _ => e.to_string(),
                };
                spawn_error(reason, e)
            })?,
        };
        let pid = child.pid;
        tracing::debug!(pid, command = %spec.command, "started command");
        container.started(Pid::from_raw(pid));
        let reader = |fd: Option<OwnedFd>| -> Result<Option<OutputReader>, CommandError> {
            fd.map(|fd| {
                tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                    .map(|r| Box::new(r) as OutputReader)
                    .map_err(|e| spawn_error(format!("could not read the command's output: {e}"), e))
            })
            .transpose()
        };
        let stdout = reader(child.stdout.take())?;
        let stderr = reader(child.stderr.take())?;
        Ok(Box::new(LocalLaunched {
            pid,
            container,
            waited: false,
            stdout,
            stderr,
        }))
    }
}

/// A command about to be started: what [`spawn`](super::spawn::spawn) needs, owned.
struct Plan {
    program: PathBuf,
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    capture: bool,
}

impl Plan {
    fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.argv.push(arg.as_ref().to_owned());
        self
    }

    fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }
}

/// Starts `plan` in `container`, recording the child as the executor's own (see [`contain`]).
/// A program named without a `/` is looked up on the PATH it will get.
fn spawn(plan: &Plan, container: &Container) -> io::Result<Spawned> {
    let found;
    let program = if plan.program.as_os_str().as_encoded_bytes().contains(&b'/') {
        plan.program.as_path()
    } else {
        let path = plan
            .env
            .iter()
            .rfind(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        let cwd = plan.cwd.clone().unwrap_or_else(|| PathBuf::from("."));
        found = which::which_in(&plan.program, Some(path), cwd)
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("{}: {e}", plan.program.display())))?;
        found.as_path()
    };
    let request = super::spawn::Request {
        program,
        argv: plan.argv.iter().map(OsString::as_os_str).collect(),
        env: plan.env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str())).collect(),
        cwd: plan.cwd.as_deref(),
        capture: plan.capture,
        cgroup: container.cgroup_procs(),
    };
    contain::spawn_registered(|| {
        let child = super::spawn::spawn(&request)?;
        let pid = child.pid;
        Ok((child, pid))
    })
}

/// `program` set up to run as `spec` says: in its container (a new session, so leading a new
/// process group with no controlling terminal; killed if milo dies; in its cgroup), stdin
/// `/dev/null`, `spec`'s environment and working directory, output piped or passed through.
fn command(program: impl AsRef<OsStr>, spec: &CommandSpec, container: &Container) -> Plan {
    let program = program.as_ref();
    let (marker, value) = container.marker();
    let mut env: Vec<(OsString, OsString)> = spec.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    env.push((marker.into(), value.into()));
    Plan {
        program: PathBuf::from(program),
        argv: vec![program.to_owned()],
        env,
        cwd: spec.cwd.clone(),
        capture: spec.capture,
    }
}

/// `sh -c "<command>"`, or the phase's own shell words followed by the command.
fn shell_command(spec: &CommandSpec, container: &Container) -> Plan {
    let (program, args): (&str, &[String]) = match spec.shell.as_deref() {
        Some([program, args @ ..]) => (program, args),
        _ => ("sh", &[]),
    };
    // The shell is looked up once per PATH (the phase's own, if it sets one), as a program is.
    let shell = if program.contains('/') {
        PathBuf::from(program)
    } else {
        lookup(program, spec).unwrap_or_else(|| PathBuf::from(program))
    };
    let mut cmd = command(shell, spec, container);
    if spec.shell.is_none() {
        cmd.arg("-c");
    }
    for a in args {
        cmd.arg(a);
    }
    cmd.arg(&spec.command);
    cmd
}

/// The program `words[0]` with arguments `words[1..]`, set up to behave as `sh -c` would run
/// it; `None` when that cannot be vouched for (the shell then runs it).
fn direct_command(
    spec: &CommandSpec,
    words: &[&str],
    cwd_id: Option<(u64, u64)>,
    container: &Container,
) -> Option<Plan> {
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
    let mut cmd = match (!program.contains('/')).then(|| lookup(program, spec)).flatten() {
        // Exec'd by its path, with the name as argv[0], as the shell would.
        Some(path) => {
            let mut cmd = command(path, spec, container);
            cmd.argv[0] = program.into();
            cmd
        }
        None => command(program, spec, container),
    };
    for a in args {
        cmd.arg(a);
    }
    if let Some(pwd) = pwd {
        cmd.env("PWD", pwd);
    }
    Some(cmd)
}

/// Where `program` is on the PATH the command gets — the phase's own, else milo's — looked up
/// once per program and PATH, as a shell's command hash table does, instead of by every spawn
/// (which tries each PATH entry in turn: one failed `execve` per entry before the right one).
/// As with a shell's table, a hit is not checked again: a cached path whose program is gone
/// fails to start, which sends the command to the shell (which searches the PATH itself) and
/// drops the entry (see [`forget_lookup`]). `None` (let the spawn search) when the PATH has a
/// relative entry, whose meaning depends on the directory.
fn lookup(program: &str, spec: &CommandSpec) -> Option<PathBuf> {
    let path = lookup_path(spec)?;
    let key = (program.to_owned(), path);
    if let Some(found) = LOOKUPS.lock().as_ref().and_then(|c| c.get(&key)) {
        return Some(found.clone());
    }
    let found = which::which_in(program, Some(&key.1), "/").ok()?;
    LOOKUPS
        .lock()
        .get_or_insert_with(HashMap::new)
        .insert(key, found.clone());
    Some(found)
}

/// Programs found on a PATH: (program, PATH) → where.
type Lookups = HashMap<(String, OsString), PathBuf>;
static LOOKUPS: parking_lot::Mutex<Option<Lookups>> = parking_lot::Mutex::new(None);

/// The PATH `spec`'s command gets, when every entry is absolute.
fn lookup_path(spec: &CommandSpec) -> Option<OsString> {
    let path = match spec.env.iter().rfind(|(k, _)| k == "PATH") {
        Some((_, v)) => OsString::from(v),
        None => std::env::var_os("PATH")?,
    };
    std::env::split_paths(&path).all(|d| d.is_absolute()).then_some(path)
}

/// Drops what [`lookup`] remembers of `program`: starting it from there failed.
fn forget_lookup(program: &str, spec: &CommandSpec) {
    if let Some(path) = lookup_path(spec)
        && let Some(cache) = LOOKUPS.lock().as_mut()
    {
        cache.remove(&(program.to_owned(), path));
    }
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
    // Every phase of a pipeline asks the same question: the answer found for this (PWD,
    // directory) is kept, and trusted while the path it gives still names the directory
    // (one stat, where finding it again reads every component of the path).
    let key = (inherited.clone(), dir.to_owned());
    if let Some(answer) = PWDS.lock().as_ref().and_then(|c| c.get(&key)).cloned() {
        let named = answer.as_deref().or(inherited.as_deref().map(Path::new));
        if named.is_some_and(names_here) {
            return Ok(answer);
        }
    }
    let answer = if inherited.as_deref().map(Path::new).is_some_and(names_here) {
        None
    } else {
        Some(std::fs::canonicalize(dir)?)
    };
    PWDS.lock().get_or_insert_with(HashMap::new).insert(key, answer.clone());
    Ok(answer)
}

/// [`shell_pwd`]'s answers: (inherited PWD, working directory) → the PWD to set, if any.
type Pwds = HashMap<(Option<OsString>, PathBuf), Option<PathBuf>>;
static PWDS: parking_lot::Mutex<Option<Pwds>> = parking_lot::Mutex::new(None);

struct LocalLaunched {
    /// The main process.
    pid: i32,
    /// Everything the command started.
    container: Container,
    /// The exit future was handed out.
    waited: bool,
    stdout: Option<OutputReader>,
    stderr: Option<OutputReader>,
}

impl Launched for LocalLaunched {
    fn take_stdout(&mut self) -> Option<OutputReader> {
        self.stdout.take()
    }

    fn take_stderr(&mut self) -> Option<OutputReader> {
        self.stderr.take()
    }

    fn take_exit(&mut self) -> Option<ExitFuture> {
        if std::mem::replace(&mut self.waited, true) {
            return None;
        }
        let pid = self.pid;
        Some(Box::pin(async move {
            // Forgets the child once waited for — or once nobody will wait, so that the
            // orphan reaper takes it.
            struct Forget(i32);
            impl Drop for Forget {
                fn drop(&mut self) {
                    contain::unregister(self.0);
                }
            }
            let _forget = Forget(pid);
            super::spawn::wait(pid).await
        }))
    }

    fn signal(&mut self, signal: GroupSignal) -> io::Result<()> {
        let sig = match signal {
            GroupSignal::Terminate => Signal::SIGTERM,
            GroupSignal::Kill => Signal::SIGKILL,
        };
        self.container.signal(sig)
    }

    fn is_running(&mut self) -> bool {
        self.container.is_running()
    }
}
