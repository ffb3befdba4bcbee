//! Simple commands (a program and plain arguments) run without a shell, and behave exactly as
//! through `sh -c`: output, exit status, the shell's "not found" for a missing program, `PWD`,
//! cancellation.
//!
//! To prove a command really ran without the shell, several tests run it with a PATH holding
//! only symlinks to the programs it needs and no `sh`: through the shell it could not start
//! at all (checked by [`shell_less_path`]).

mod common;

use common::{marker, texts};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use milo::capture::Stream;
use milo::executor::{CommandError, CommandSpec, LocalExecutor, run_command};
use tokio_util::sync::CancellationToken;

const GRACE: Duration = Duration::from_secs(10);

/// Runs `spec` to completion, returning the result and the captured lines.
async fn run(spec: CommandSpec) -> (Result<(), CommandError>, Vec<(Stream, String)>) {
    common::run(spec, GRACE).await
}

/// The real path of `program` on this process's PATH.
fn find_program(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| panic!("`{program}` is on PATH"))
}

/// A directory for a PATH holding symlinks to `programs` and no shell; checks that a command
/// that needs the shell cannot start with it.
async fn shell_less_path(programs: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for program in programs {
        std::os::unix::fs::symlink(find_program(program), dir.path().join(program)).expect("symlink");
    }
    assert!(!dir.path().join("sh").exists());
    let (res, _) = run(CommandSpec::new("true; true").env("PATH", path_str(dir.path()))).await;
    let err = res.expect_err("no shell on this PATH");
    assert!(matches!(err, CommandError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("`sh` was not found"), "{err}");
    dir
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[tokio::test]
async fn a_simple_command_runs_without_a_shell_with_its_output_and_status() {
    let bin = shell_less_path(&["echo", "false"]).await;
    let no_shell = |command: &str| CommandSpec::new(command).env("PATH", path_str(bin.path()));

    let (res, lines) = run(no_shell("echo hello   world")).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["hello world"]);
    assert_eq!(texts(&lines, Stream::Stderr), Vec::<&str>::new());

    let (res, _) = run(no_shell("false")).await;
    assert!(matches!(res, Err(CommandError::Exit { code: 1 })), "{res:?}");

    // The same with the ordinary PATH.
    let (res, lines) = run(CommandSpec::new("echo hello world")).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["hello world"]);
    let (res, _) = run(CommandSpec::new("false")).await;
    assert!(matches!(res, Err(CommandError::Exit { code: 1 })), "{res:?}");
}

#[tokio::test]
async fn a_missing_program_gets_the_shells_not_found_and_status_127() {
    let (res, lines) = run(CommandSpec::new("no-such-program-xyz arg")).await;
    let err = res.expect_err("missing program");
    assert!(matches!(err, CommandError::Exit { code: 127 }), "{err:?}");
    assert!(err.to_string().contains("command not found"), "{err}");
    let stderr = texts(&lines, Stream::Stderr);
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("no-such-program-xyz") && l.contains("not found")),
        "{stderr:?}"
    );

    // That message is the shell's: without one, the fallback itself cannot start.
    let bin = shell_less_path(&["echo"]).await;
    let (res, _) = run(CommandSpec::new("no-such-program-xyz arg").env("PATH", path_str(bin.path()))).await;
    let err = res.expect_err("neither the program nor sh");
    assert!(matches!(err, CommandError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("`sh` was not found"), "{err}");
}

#[tokio::test]
async fn programs_that_cannot_be_exec_d_are_left_to_the_shell() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    };
    // Not executable: the shell's "Permission denied", status 126.
    let plain = write("plain", "echo never\n", 0o644);
    let (res, lines) = run(CommandSpec::new(format!("{} arg", plain.display()))).await;
    assert!(matches!(res, Err(CommandError::Exit { code: 126 })), "{res:?}");
    let stderr = texts(&lines, Stream::Stderr);
    assert!(stderr.iter().any(|l| l.contains("Permission denied")), "{stderr:?}");
    assert_eq!(texts(&lines, Stream::Stdout), Vec::<&str>::new());

    // Executable without a `#!` line: exec refuses it, the shell runs it as a script.
    let script = write("script", "echo \"script ran with $1\"\n", 0o755);
    let (res, lines) = run(CommandSpec::new(format!("{} arg", script.display()))).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["script ran with arg"]);

    // A relative program path is the working directory's, and `$0` is as typed.
    write("hello.sh", "#!/bin/sh\necho \"hello from $0\"\n", 0o755);
    let (res, lines) = run(CommandSpec::new("./hello.sh").cwd(dir.path())).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["hello from ./hello.sh"]);
}

/// The `PWD=` line of `env`'s output.
fn pwd_line(lines: &[(Stream, String)]) -> String {
    let out = texts(lines, Stream::Stdout);
    let pwd: Vec<_> = out.iter().filter(|l| l.starts_with("PWD=")).collect();
    assert_eq!(pwd.len(), 1, "{out:?}");
    pwd[0].to_string()
}

#[tokio::test]
async fn pwd_is_the_one_the_shell_would_export() {
    let bin = shell_less_path(&["env"]).await;
    let work = tempfile::tempdir().expect("temp dir");
    let real = work.path().canonicalize().expect("canonical");
    let link = tempfile::tempdir().expect("temp dir");
    let link = link.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");

    // (cwd, explicit PWD, expected PWD, if known)
    let cases: Vec<(Option<&OsStr>, Option<&str>, Option<PathBuf>)> = vec![
        (Some(real.as_os_str()), None, Some(real.clone())),
        // Through a symlink: the shell exports the physical path.
        (Some(link.as_os_str()), None, Some(real.clone())),
        // An explicit PWD naming the directory (symlinked or not) is kept.
        (Some(real.as_os_str()), Some(path_str(&link)), Some(link.clone())),
        (Some(link.as_os_str()), Some(path_str(&link)), Some(link.clone())),
        // One naming another directory, or relative, is replaced.
        (Some(real.as_os_str()), Some("/"), Some(real.clone())),
        (Some(real.as_os_str()), Some("relative"), Some(real.clone())),
        // A relative working directory, and none.
        (
            Some(OsStr::new("src")),
            None,
            Some(Path::new("src").canonicalize().expect("src")),
        ),
        (Some(OsStr::new(".")), None, None),
        (None, None, None),
        (None, Some("/"), Some(std::env::current_dir().expect("cwd"))),
    ];
    for (cwd, explicit, expected) in cases {
        let spec = |command: &str| {
            let mut spec = CommandSpec::new(command);
            if let Some(cwd) = cwd {
                spec = spec.cwd(cwd);
            }
            if let Some(pwd) = explicit {
                spec = spec.env("PWD", pwd);
            }
            spec
        };
        let case = format!("cwd {cwd:?}, PWD {explicit:?}");
        let (res, lines) = run(spec("env").env("PATH", path_str(bin.path()))).await;
        assert!(res.is_ok(), "{case}: {res:?}");
        let direct = pwd_line(&lines);
        let (res, lines) = run(spec("env; true")).await;
        assert!(res.is_ok(), "{case}: {res:?}");
        let shell = pwd_line(&lines);
        assert_eq!(direct, shell, "{case}: direct vs through sh");
        if let Some(expected) = expected {
            assert_eq!(direct, format!("PWD={}", expected.display()), "{case}");
        }
    }
}

/// Process ids and parent ids of live processes whose command line is `sleep <marker>`.
fn sleeping(marker: &str) -> Vec<(u32, u32)> {
    let out = std::process::Command::new("pgrep")
        .arg("-x")
        .arg("-f")
        .arg(format!("sleep {marker}"))
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|pid| {
            let pid: u32 = pid.trim().parse().expect("a pid");
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid …`
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            (pid, ppid)
        })
        .collect()
}

#[tokio::test]
async fn a_direct_command_is_our_child_and_cancelling_stops_it_quickly() {
    let bin = shell_less_path(&["sleep"]).await;
    let mark = marker();
    let spec = CommandSpec::new(format!("sleep {mark}")).env("PATH", path_str(bin.path()));
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move {
        let on_line = |_: Stream, _: String| {};
        run_command(&LocalExecutor, &spec, &on_line, &token, GRACE).await
    });

    let start = Instant::now();
    let found = loop {
        let found = sleeping(&mark);
        if !found.is_empty() || start.elapsed() > Duration::from_secs(5) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(found.len(), 1, "one `sleep {mark}`: {found:?}");
    assert_eq!(found[0].1, std::process::id(), "`sleep` is milo's own child: {found:?}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished());
    let t = Instant::now();
    cancel.cancel();
    let res = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("cancel completes within 5s")
        .expect("no panic");
    assert!(matches!(res, Err(CommandError::Cancelled)), "{res:?}");
    // SIGTERM to the group sufficed: no waiting for the grace period.
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    assert_eq!(sleeping(&mark), Vec::new());
}

/// Runs `command` (a `sleep {mark}`), kills the sleep with `signal` once it runs, and returns
/// the result and the captured lines.
async fn killed(spec: CommandSpec, mark: &str, signal: &str) -> (Result<(), CommandError>, Vec<(Stream, String)>) {
    let run = tokio::spawn(run(spec));
    let start = Instant::now();
    let pid = loop {
        if let Some(&(pid, _)) = sleeping(mark).first() {
            break pid;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "`sleep {mark}` never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("ends once killed")
        .expect("no panic")
}

#[tokio::test]
async fn a_program_killed_by_a_signal_is_reported_as_killed_by_it() {
    let bin = shell_less_path(&["sleep"]).await;
    // Core dumps (SIGQUIT) would land in the working directory.
    let dir = tempfile::tempdir().expect("temp dir");
    for (signal, name) in [("KILL", "SIGKILL"), ("TERM", "SIGTERM"), ("QUIT", "SIGQUIT")] {
        let mark = marker();
        let direct = CommandSpec::new(format!("sleep {mark}"))
            .env("PATH", path_str(bin.path()))
            .cwd(dir.path());
        let (res, lines) = killed(direct, &mark, signal).await;
        match res {
            Err(CommandError::Signal { signal: got }) => assert_eq!(got, name),
            other => panic!("SIG{signal}: {other:?}"),
        }
        // Nothing made up on the program's behalf.
        assert_eq!(texts(&lines, Stream::Stderr), Vec::<&str>::new(), "SIG{signal}");
    }
}

/// `env`'s output, sorted, without what only bash adds (`_`, `SHLVL`).
fn env_lines(lines: &[(Stream, String)]) -> Vec<String> {
    let mut env: Vec<String> = texts(lines, Stream::Stdout)
        .into_iter()
        .filter(|l| !l.starts_with("_=") && !l.starts_with("SHLVL=") && !l.starts_with("MILO_JOB="))
        .map(str::to_owned)
        .collect();
    env.sort();
    env
}

#[tokio::test]
async fn the_environment_is_the_one_the_shell_passes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("plain", vec![]),
        ("own variables", vec![("MILO_A", "1"), ("MILO_B", "two words")]),
        // dash drops variables whose name is not a shell identifier...
        ("odd names", vec![("MILO-DASH", "1"), ("MILO.DOT", "2"), ("1MILO", "3")]),
        // ...and shells reset these.
        ("IFS", vec![("IFS", "x")]),
        ("OPTIND", vec![("OPTIND", "5")]),
        ("PPID", vec![("PPID", "7")]),
    ];
    for (case, vars) in cases {
        for cwd in [None, Some(dir.path())] {
            let spec = |command: &str| {
                let mut spec = CommandSpec::new(command);
                for (k, v) in &vars {
                    spec = spec.env(*k, *v);
                }
                if let Some(cwd) = cwd {
                    spec = spec.cwd(cwd);
                }
                spec
            };
            let (res, lines) = run(spec("env")).await;
            assert!(res.is_ok(), "{case}: {res:?}");
            let direct = env_lines(&lines);
            let (res, lines) = run(spec("env; true")).await;
            assert!(res.is_ok(), "{case}: {res:?}");
            let shell = env_lines(&lines);
            assert!(direct.iter().any(|l| l.starts_with("PATH=")), "{case}: {direct:?}");
            assert_eq!(direct, shell, "{case}, cwd {cwd:?}: direct vs through sh");
        }
    }
}

/// A program found on PATH (once, then from the cache) is exec'd by its path but sees its own
/// name as argv[0], as it would from the shell.
#[tokio::test]
async fn a_program_found_on_path_sees_its_name_as_argv0() {
    for _ in 0..2 {
        let (res, lines) = run(CommandSpec::new("cat /proc/self/cmdline")).await;
        assert!(res.is_ok(), "{res:?}");
        let out = texts(&lines, Stream::Stdout).join("\n");
        assert!(out.starts_with("cat\0/proc/self/cmdline"), "{out:?}");
    }
}

/// A program is looked up on PATH once; when it is then removed and another of that name is
/// further down the PATH, the next command runs that one (and so does the one after).
#[tokio::test]
async fn a_program_that_moved_on_path_is_found_again() {
    use std::os::unix::fs::PermissionsExt;
    let first = tempfile::tempdir().expect("temp dir");
    let second = tempfile::tempdir().expect("temp dir");
    let script = |dir: &Path, says: &str| {
        let p = dir.join("milo-moving-tool");
        std::fs::write(&p, format!("#!/bin/sh\necho {says}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    };
    let in_first = script(first.path(), "first");
    script(second.path(), "second");
    let path = format!("{}:{}:/usr/bin:/bin", path_str(first.path()), path_str(second.path()));
    let says = || async {
        let (res, lines) = run(CommandSpec::new("milo-moving-tool").env("PATH", path.as_str())).await;
        assert!(res.is_ok(), "{res:?}");
        texts(&lines, Stream::Stdout).join("\n")
    };
    assert_eq!(says().await, "first");
    std::fs::remove_file(&in_first).expect("remove");
    assert_eq!(says().await, "second");
    assert_eq!(says().await, "second");
}

/// The `PWD` found for a working directory is remembered, but not past a change of what the
/// path names: a symlinked working directory pointed elsewhere gets the new physical path.
#[tokio::test]
async fn pwd_follows_a_working_directory_that_changed() {
    let bin = shell_less_path(&["env"]).await;
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let links = tempfile::tempdir().expect("temp dir");
    let link = links.path().join("here");
    let pwd_in = |link: PathBuf| {
        let path = path_str(bin.path()).to_owned();
        async move {
            let (res, lines) = run(CommandSpec::new("env").cwd(link).env("PATH", path)).await;
            assert!(res.is_ok(), "{res:?}");
            pwd_line(&lines)
        }
    };
    std::os::unix::fs::symlink(a.path(), &link).expect("symlink");
    let real_a = a.path().canonicalize().expect("canonical");
    assert_eq!(pwd_in(link.clone()).await, format!("PWD={}", real_a.display()));
    assert_eq!(pwd_in(link.clone()).await, format!("PWD={}", real_a.display()));
    std::fs::remove_file(&link).expect("unlink");
    std::os::unix::fs::symlink(b.path(), &link).expect("symlink");
    let real_b = b.path().canonicalize().expect("canonical");
    assert_eq!(pwd_in(link.clone()).await, format!("PWD={}", real_b.display()));
}

/// A variable the command sets twice gets its later value, once; milo's own variables are
/// passed on beside it.
#[tokio::test]
async fn a_variable_set_twice_has_its_later_value_once() {
    let bin = shell_less_path(&["env"]).await;
    let spec = CommandSpec::new("env")
        .env("PATH", path_str(bin.path()))
        .env("MILO_TWICE", "one")
        .env("MILO_TWICE", "two");
    let (res, lines) = run(spec).await;
    assert!(res.is_ok(), "{res:?}");
    let out = env_lines(&lines);
    let twice: Vec<_> = out.iter().filter(|l| l.starts_with("MILO_TWICE=")).collect();
    assert_eq!(twice, ["MILO_TWICE=two"], "{out:?}");
    assert!(
        out.iter().any(|l| l.starts_with("HOME=") || l.starts_with("USER=")),
        "{out:?}"
    );
}
