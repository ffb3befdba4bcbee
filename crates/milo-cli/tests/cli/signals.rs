//! Interrupting a run: SIGINT and SIGTERM stop every phase's processes, grandchildren
//! included, and milo exits 130; a second Ctrl-C kills at once.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::processes_with;
use crate::util::Test;

/// A `sleep` argument no other process on the machine has: `300.<pid><n>`, fixed-width so
/// that no marker is a prefix of another.
pub(crate) fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "300.{:07}{:03}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) + 1
    )
}

/// Polls `f` every 50ms until it is true or `limit` passes.
pub(crate) fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `milo run --ui plain` started in the background, its output going to files.
pub(crate) struct Running {
    child: Child,
    dir: std::path::PathBuf,
}

impl Running {
    pub(crate) fn start(t: &Test, extra: &[&str]) -> Self {
        Self::start_env(t, extra, &[])
    }

    /// [`start`](Self::start) with environment variables set for milo.
    pub(crate) fn start_env(t: &Test, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let out = File::create(t.path("stdout.txt")).unwrap();
        let err = File::create(t.path("stderr.txt")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_milo"))
            .current_dir(t.dir())
            .args(["run", "--ui", "plain"])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn milo");
        Self {
            child,
            dir: t.dir().to_owned(),
        }
    }

    pub(crate) fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).expect("kill");
    }

    /// Waits (generously) for milo to exit and returns its status code.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<i32> {
        let mut code = None;
        let exited = wait_for(limit, || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = status.code();
                true
            }
            _ => false,
        });
        assert!(exited, "milo did not exit within {limit:?}\n{}", self.output());
        code
    }

    pub(crate) fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(Path::new(&self.dir).join(f)).unwrap_or_default();
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            read("stdout.txt"),
            read("stderr.txt")
        )
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A pipeline whose phase `hang` runs a child and a background grandchild, both sleeping with
/// the given markers, and a second phase waiting for it.
fn hanging(child: &str, grandchild: &str, prefix: &str) -> Test {
    Test::with(&format!(
        r#"
name = "hang"

[[phase]]
name = "hang"
run = "{prefix}sleep {grandchild} & sleep {child}; wait"

[[phase]]
name = "after"
depends_on = ["hang"]
run = "touch after.ran"
"#
    ))
}

fn interrupt_stops_everything(sig: Signal) {
    let (child, grandchild) = (marker(), marker());
    let t = hanging(&child, &grandchild, "");
    let mut milo = Running::start(&t, &["--timeline", "t.json"]);
    assert!(
        wait_for(Duration::from_secs(30), || {
            !processes_with(&format!("sleep {child}")).is_empty()
                && !processes_with(&format!("sleep {grandchild}")).is_empty()
        }),
        "the phase did not start\n{}",
        milo.output()
    );
    milo.signal(sig);
    let code = milo.wait(Duration::from_secs(30));
    assert_eq!(code, Some(130), "{}", milo.output());
    for m in [&child, &grandchild] {
        assert!(
            wait_for(Duration::from_secs(5), || processes_with(m).is_empty()),
            "processes left behind: {:?}\n{}",
            processes_with(m),
            milo.output()
        );
    }
    let out = milo.stdout();
    assert!(out.contains("[hang] cancelled after"), "{}", milo.output());
    assert!(out.contains("⊘ hang cancelled in"), "{}", milo.output());
    assert!(!t.path("after.ran").exists(), "a phase ran after the interrupt");
    let tl = t.json("t.json");
    assert_eq!(tl["status"], "cancelled");
    assert_eq!(crate::util::phase(&tl, "hang")["status"], "cancelled");
}

#[test]
fn sigint_stops_every_process_and_exits_130() {
    interrupt_stops_everything(Signal::SIGINT);
}

#[test]
fn sigterm_stops_every_process_and_exits_130() {
    interrupt_stops_everything(Signal::SIGTERM);
}

#[test]
fn sighup_stops_the_run_too() {
    interrupt_stops_everything(Signal::SIGHUP);
}

#[test]
fn a_second_ctrl_c_kills_phases_that_ignore_sigterm() {
    let (child, grandchild) = (marker(), marker());
    // The phase's processes ignore SIGTERM, so the first Ctrl-C alone would wait out the
    // grace period (5s) before SIGKILL.
    let t = hanging(&child, &grandchild, "trap '' TERM; ");
    let mut milo = Running::start(&t, &[]);
    assert!(
        wait_for(Duration::from_secs(30), || {
            !processes_with(&format!("sleep {grandchild}")).is_empty()
                && !processes_with(&format!("sleep {child}")).is_empty()
        }),
        "the phase did not start\n{}",
        milo.output()
    );
    milo.signal(Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !processes_with(&child).is_empty(),
        "SIGTERM should have been ignored; the test is void"
    );
    let second = Instant::now();
    milo.signal(Signal::SIGINT);
    let code = milo.wait(Duration::from_secs(30));
    assert_eq!(code, Some(130), "{}", milo.output());
    assert!(
        second.elapsed() < Duration::from_millis(4500),
        "the second Ctrl-C did not kill at once (took {:?}, the grace period is 5s)",
        second.elapsed()
    );
    for m in [&child, &grandchild] {
        assert!(
            wait_for(Duration::from_secs(5), || processes_with(m).is_empty()),
            "processes left behind: {:?}",
            processes_with(m)
        );
    }
}

#[test]
fn processes_a_phase_leaves_behind_are_stopped_when_it_ends() {
    let leftover = marker();
    let t = Test::with(&format!(
        "name = \"x\"\n[[phase]]\nname = \"leaky\"\nrun = \"sleep {leftover} & echo done\"\n"
    ))
    .args(["run", "--ui", "plain"]);
    t.run().code(0);
    assert!(
        wait_for(Duration::from_secs(10), || processes_with(&leftover).is_empty()),
        "a background process of a finished phase is still running: {:?}",
        processes_with(&leftover)
    );
}

#[test]
fn an_interrupt_during_a_retry_delay_ends_the_run_at_once() {
    let t = Test::with(
        "name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"touch tried; exit 1\"\npolicy = { on_fail = \"retry\", max_retries = 3, retry_delay = \"60s\" }\n",
    );
    let mut milo = Running::start(&t, &["--timeline", "t.json"]);
    assert!(
        wait_for(Duration::from_secs(30), || milo.stdout().contains("retrying in")),
        "{}",
        milo.output()
    );
    milo.signal(Signal::SIGINT);
    let code = milo.wait(Duration::from_secs(30));
    assert_eq!(code, Some(130), "{}", milo.output());
    assert!(milo.stdout().contains("[a] cancelled after"), "{}", milo.output());
    assert_eq!(crate::util::phase(&t.json("t.json"), "a")["status"], "cancelled");
}
