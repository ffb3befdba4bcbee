//! Fault injection with the real `milo` binary: phases that die, misbehave or outlive
//! themselves, signals to milo mid-run, a pipeline file that changes under a run, unusable
//! working directories, and two runs in one directory. Each test checks that milo ends with
//! the right status and state, stays within bounded memory, and leaves no process behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::processes_with;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

mod common;

const MILO: &str = env!("CARGO_BIN_EXE_milo");

/// The most memory milo may use while its phases misbehave.
const MAX_RSS_KIB: u64 = 200 * 1024;

/// A `sleep` argument no other process on the machine has: `3NN.<pid><n>`.
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}.{:07}",
        310 + N.fetch_add(1, Ordering::Relaxed),
        std::process::id() % 10_000_000
    )
}

/// Asserts that no process with `needle` in its command line is left (allowing a moment for
/// the kernel to finish reaping), and kills any that is, so a failure leaves nothing behind.
fn assert_no_survivors(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = processes_with(needle);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_with(needle);
    }
    for &pid in &left {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(left.is_empty(), "processes outlived milo: {needle} in {left:?}");
}

/// The survivor check is not vacuous: it sees a live process by its command line, and stops
/// seeing it once it has exited, even before it is reaped.
#[test]
fn the_survivor_check_sees_live_processes_only() {
    let m = marker();
    let needle = format!("sleep {m}");
    let mut child = Command::new("sleep").arg(&m).spawn().expect("spawn sleep");
    let pid = child.id() as i32;
    let live = processes_with(&needle);
    child.kill().expect("kill sleep");
    assert_eq!(live, [pid]);
    // A zombie until it is waited for.
    let deadline = Instant::now() + Duration::from_secs(5);
    while milo::executor::procfs::stat(pid).is_some_and(|p| !p.is_dead()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        milo::executor::procfs::stat(pid).is_some(),
        "the zombie is listed in /proc"
    );
    assert_eq!(processes_with(&needle), Vec::<i32>::new());
    child.wait().expect("reap sleep");
    assert_eq!(processes_with(&needle), Vec::<i32>::new());
}

/// A temporary directory with a `milo.toml`.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("milo.toml"), toml).expect("write milo.toml");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `milo run --ui <ui> --timeline timeline.json` in the project directory.
    fn command(&self, ui: &str) -> Command {
        let mut cmd = Command::new(MILO);
        cmd.current_dir(self.dir.path())
            .args(["run", "--ui", ui, "--timeline", "timeline.json"])
            .env_remove("MILO_LOG")
            .stdin(Stdio::null());
        cmd
    }

    fn timeline(&self) -> Value {
        let text = std::fs::read_to_string(self.path("timeline.json")).expect("the timeline was written");
        serde_json::from_str(&text).expect("the timeline is JSON")
    }
}

fn phase_status(timeline: &Value, name: &str) -> String {
    let phases = timeline["phases"].as_array().expect("phases");
    let phase = phases
        .iter()
        .find(|p| p["name"] == name)
        .expect("the phase is in the timeline");
    phase["status"].as_str().expect("a status").to_owned()
}

/// What a finished milo run left.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// The peak resident set size, in KiB, as last read from `/proc/<pid>/status`.
    max_rss_kib: Option<u64>,
    elapsed: Duration,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for `child` (at most `limit`, then kills it and fails), watching its peak memory.
/// Output is drained on threads so that a chatty child never blocks on a full pipe.
fn finish(mut child: Child, limit: Duration) -> Finished {
    let start = Instant::now();
    let pid = child.id();
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let mut max_rss_kib = None;
    let status = loop {
        if let Some(hwm) = vm_hwm_kib(pid) {
            max_rss_kib = Some(max_rss_kib.unwrap_or(0).max(hwm));
        }
        if let Some(status) = child.try_wait().expect("wait for milo") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("milo did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Finished {
        status,
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
        max_rss_kib,
        elapsed: start.elapsed(),
    }
}

fn run(project: &Project, ui: &str, limit: Duration) -> Finished {
    let child = project
        .command(ui)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start milo");
    finish(child, limit)
}

#[test]
fn a_phase_killed_by_a_signal_fails_with_the_signal_named() {
    let project = Project::new(
        r#"
name = "killed"
[[phase]]
name = "victim"
run = "echo before; kill -9 $$; echo after"
"#,
    );
    let done = run(&project, "plain", Duration::from_secs(60));
    assert_eq!(done.status.code(), Some(1), "{}{}", done.stdout, done.stderr);
    let all = format!("{}{}", done.stdout, done.stderr);
    assert!(all.contains("SIGKILL"), "the signal is named: {all}");
    let timeline = project.timeline();
    assert_eq!(timeline["status"], "failed");
    assert_eq!(phase_status(&timeline, "victim"), "failed");
    let phase = &timeline["phases"][0];
    assert!(
        phase["error"].as_str().is_some_and(|e| e.contains("SIGKILL")),
        "{phase}"
    );
}

#[test]
fn hostile_phases_end_with_bounded_memory_and_no_survivors() {
    let daemon = marker();
    let toml = format!(
        r#"
name = "hostile"
[defaults]
parallel = true
[[phase]]
name = "closes-stdout"
run = "exec 1>&-; sleep 1; echo done >&2"
[[phase]]
name = "garbage"
run = "head -c 100000 /dev/urandom"
[[phase]]
name = "huge-line"
run = "head -c 104857600 /dev/zero | tr '\\0' a"
[[phase]]
name = "daemon"
run = "(trap '' TERM; sleep {daemon}) & echo forked"
"#
    );
    let project = Project::new(&toml);
    let done = run(&project, "plain", Duration::from_secs(180));
    assert_no_survivors(&daemon);
    assert!(
        done.status.code().is_some(),
        "milo was not killed by a signal: {:?}",
        done.status
    );
    assert_eq!(done.status.code(), Some(0), "{}\n{}", done.stdout, done.stderr);
    let timeline = project.timeline();
    assert_eq!(timeline["status"], "completed");
    for phase in ["closes-stdout", "garbage", "huge-line", "daemon"] {
        assert_eq!(phase_status(&timeline, phase), "completed", "{phase}");
    }
    let rss = done.max_rss_kib.expect("milo's memory could be read");
    assert!(
        rss < MAX_RSS_KIB,
        "milo peaked at {} MiB of memory (bound {} MiB)",
        rss / 1024,
        MAX_RSS_KIB / 1024
    );
}

/// A pipeline of `setup` (quick), then `slow-a` and `slow-b` (each a `sleep` with a unique
/// marker, ignoring SIGTERM when `stubborn`) and `after` (depends on `slow-a`).
fn long_pipeline(markers: &[String; 2], stubborn: bool) -> String {
    let trap = if stubborn { "trap '' TERM; " } else { "" };
    format!(
        r#"
name = "long"
[[phase]]
name = "setup"
run = "true"
[[phase]]
name = "slow-a"
run = "{trap}sleep {a}"
depends_on = ["setup"]
parallel = true
[[phase]]
name = "slow-b"
run = "{trap}sleep {b}"
depends_on = ["setup"]
parallel = true
[[phase]]
name = "after"
run = "true"
depends_on = ["slow-a"]
"#,
        a = markers[0],
        b = markers[1]
    )
}

/// Starts `milo run --ui json` and returns once both slow phases have started.
fn start_until_running(project: &Project) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = project
        .command("json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start milo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut started = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("@@PHASE_START") && line.contains("slow-") {
                started += 1;
                if started == 2 {
                    let _ = tx.send(());
                }
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the slow phases did not start: {}", reader.join().unwrap_or_default());
    }
    // Let the shells exec into `sleep` (and set their traps).
    std::thread::sleep(Duration::from_millis(200));
    (child, reader)
}

fn interrupted_run(signals: &[Signal], stubborn: bool) -> Duration {
    let markers = [marker(), marker()];
    let project = Project::new(&long_pipeline(&markers, stubborn));
    let (child, reader) = start_until_running(&project);
    let pid = Pid::from_raw(child.id() as i32);
    let sent = Instant::now();
    for (k, &signal) in signals.iter().enumerate() {
        if k > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        kill(pid, signal).expect("signal milo");
    }
    let done = finish(child, Duration::from_secs(30));
    let took = sent.elapsed();
    let json = reader.join().expect("stdout reader");
    for m in &markers {
        assert_no_survivors(m);
    }
    assert_eq!(
        done.status.code(),
        Some(130),
        "{signals:?}: exit status\n{json}\n{}",
        done.stderr
    );
    let last = json.lines().last().unwrap_or_default();
    assert!(last.contains("@@PIPELINE_CANCELLED"), "{signals:?}: last action {last}");
    let timeline = project.timeline();
    assert_eq!(timeline["status"], "cancelled", "{signals:?}");
    assert_eq!(phase_status(&timeline, "setup"), "completed");
    assert_eq!(phase_status(&timeline, "slow-a"), "cancelled", "{signals:?}");
    assert_eq!(phase_status(&timeline, "slow-b"), "cancelled", "{signals:?}");
    assert_eq!(phase_status(&timeline, "after"), "pending", "{signals:?}");
    let _ = done.elapsed;
    took
}

#[test]
fn sigterm_mid_run_cancels_cleanly() {
    interrupted_run(&[Signal::SIGTERM], false);
}

#[test]
fn sighup_mid_run_cancels_cleanly() {
    interrupted_run(&[Signal::SIGHUP], false);
}

#[test]
fn sigint_twice_kills_phases_that_ignore_sigterm_at_once() {
    // The phases ignore SIGTERM, so only the second Ctrl-C's SIGKILL ends them before the
    // 5 s grace period.
    let took = interrupted_run(&[Signal::SIGINT, Signal::SIGINT], true);
    assert!(
        took < Duration::from_secs(4),
        "the second SIGINT took {took:?} to end the run"
    );
}

#[test]
fn the_pipeline_file_changing_or_disappearing_mid_run_does_not_affect_the_run() {
    for change in ["rewrite", "delete"] {
        let project = Project::new(
            r#"
name = "steady"
[[phase]]
name = "first"
run = "sleep 0.5; echo first"
[[phase]]
name = "second"
run = "echo second"
depends_on = ["first"]
"#,
        );
        let child = project
            .command("plain")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start milo");
        std::thread::sleep(Duration::from_millis(200));
        match change {
            "rewrite" => std::fs::write(project.path("milo.toml"), "this is [not toml\n").expect("rewrite"),
            _ => std::fs::remove_file(project.path("milo.toml")).expect("delete"),
        }
        let done = finish(child, Duration::from_secs(60));
        assert_eq!(done.status.code(), Some(0), "{change}: {}{}", done.stdout, done.stderr);
        let timeline = project.timeline();
        assert_eq!(timeline["status"], "completed", "{change}");
        assert_eq!(phase_status(&timeline, "second"), "completed", "{change}");
    }
}

/// A phase whose working directory cannot be used: a file where a directory should be
/// (ENOTDIR), and `/proc`, where nobody, root included, may create a file.
#[test]
#[allow(clippy::print_stdout)]
fn an_unusable_working_directory_fails_the_phase_clearly() {
    let project = Project::new(
        r#"
name = "nowhere"
[[phase]]
name = "in-a-file"
run = "echo hi > out.txt"
cwd = "not-a-dir"
"#,
    );
    std::fs::write(project.path("not-a-dir"), "a file").expect("write");
    let done = run(&project, "plain", Duration::from_secs(60));
    assert_eq!(done.status.code(), Some(1), "{}{}", done.stdout, done.stderr);
    let timeline = project.timeline();
    assert_eq!(phase_status(&timeline, "in-a-file"), "failed");
    let error = timeline["phases"][0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("not-a-dir") || error.to_lowercase().contains("not a directory"),
        "the error names the problem: {error}"
    );

    let project = Project::new(
        r#"
name = "read-only"
[[phase]]
name = "write"
run = "echo hi > milo-fault-test.txt"
cwd = "/proc"
"#,
    );
    let done = run(&project, "plain", Duration::from_secs(60));
    assert_eq!(done.status.code(), Some(1), "{}{}", done.stdout, done.stderr);
    let all = format!("{}{}", done.stdout, done.stderr);
    assert!(all.contains("milo-fault-test.txt"), "the shell's error is shown: {all}");
    assert_eq!(phase_status(&project.timeline(), "write"), "failed");
    assert!(!Path::new("/proc/milo-fault-test.txt").exists());

    // A read-only directory: only meaningful when the test may not write there anyway (root
    // may), which is checked by trying.
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new(
        r#"
name = "read-only"
[[phase]]
name = "write"
run = "echo hi > out.txt"
cwd = "ro"
"#,
    );
    let ro = project.path("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    if std::fs::write(ro.join("probe"), "x").is_ok() {
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
        println!("skipped the chmod 0555 case: this user (root?) may write to read-only directories");
        return;
    }
    let done = run(&project, "plain", Duration::from_secs(60));
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
    assert_eq!(done.status.code(), Some(1), "{}{}", done.stdout, done.stderr);
    assert_eq!(phase_status(&project.timeline(), "write"), "failed");
}

#[test]
fn two_runs_in_the_same_directory_both_complete() {
    let project = Project::new(
        r#"
name = "twice"
[[phase]]
name = "append"
run = "for i in 1 2 3; do echo $$ >> shared.log; sleep 0.1; done"
[[phase]]
name = "count"
run = "wc -l < shared.log"
depends_on = ["append"]
"#,
    );
    let spawn = |timeline: &str| {
        Command::new(MILO)
            .current_dir(project.dir.path())
            .args(["run", "--ui", "plain", "--timeline", timeline])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start milo")
    };
    let (a, b) = (spawn("a.json"), spawn("b.json"));
    let (a, b) = (finish(a, Duration::from_secs(60)), finish(b, Duration::from_secs(60)));
    for (done, timeline) in [(a, "a.json"), (b, "b.json")] {
        assert_eq!(done.status.code(), Some(0), "{}{}", done.stdout, done.stderr);
        let text = std::fs::read_to_string(project.path(timeline)).expect("timeline");
        let json: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(json["status"], "completed");
    }
    let lines = std::fs::read_to_string(project.path("shared.log")).expect("log");
    assert_eq!(lines.lines().count(), 6, "both runs appended their lines");
}
