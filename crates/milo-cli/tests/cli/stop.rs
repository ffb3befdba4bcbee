//! Stop means stop: after Ctrl-C, a failure under the stop policy or `--fail-fast`, no phase
//! starts; whatever a phase started is stopped with it, even processes that left its process
//! group or session; nothing a phase does can hang milo.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::processes_with;
use crate::signals::{Running, marker, wait_for};
use crate::util::{Test, phase};

/// `n` independent phases, each logging its name to `spawned.log` and then running `body`
/// (with `jobs = 1` when parallel, so that they still run one at a time).
fn independent(n: usize, parallel: bool, body: &str) -> Test {
    let mut toml = format!("name = \"many\"\njobs = 1\n[defaults]\nparallel = {parallel}\n");
    for i in 1..=n {
        toml.push_str(&format!("[[phase]]\nname = \"p{i}\"\nrun = \"echo $MILO_PHASE >> spawned.log; {body}\"\n"));
    }
    Test::with(&toml)
}

fn spawned(t: &Test) -> Vec<String> {
    std::fs::read_to_string(t.path("spawned.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Ctrl-C during the first of many non-parallel phases: none of the others starts (their
/// commands never run, and none is reported started or cancelled: they stay pending).
fn nothing_starts_after_an_interrupt(parallel: bool, body: &str) {
    let m = marker();
    let t = independent(30, parallel, &body.replace("MARK", &m));
    let mut milo = Running::start(&t, &["--timeline", "t.json"]);
    assert!(
        wait_for(Duration::from_secs(30), || !processes_with(&m).is_empty()),
        "the first phase did not start\n{}",
        milo.output()
    );
    milo.signal(Signal::SIGINT);
    let stopped = Instant::now();
    assert_eq!(milo.wait(Duration::from_secs(30)), Some(130), "{}", milo.output());
    // One grace period (5 s) at most, never one per phase.
    assert!(stopped.elapsed() < Duration::from_secs(8), "took {:?}", stopped.elapsed());
    assert_eq!(spawned(&t), ["p1"], "phases ran after Ctrl-C\n{}", milo.output());
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "p1")["status"], "cancelled");
    for i in 2..=30 {
        assert_eq!(phase(&tl, &format!("p{i}"))["status"], "pending", "p{i}\n{tl:#}");
    }
    let out = milo.stdout();
    assert!(!out.contains("[p2] started"), "{}", milo.output());
}

#[test]
fn no_phase_starts_after_ctrl_c() {
    nothing_starts_after_an_interrupt(false, "sleep MARK");
}

#[test]
fn no_phase_starts_after_ctrl_c_when_phases_ignore_sigterm() {
    nothing_starts_after_an_interrupt(false, "trap '' TERM; sleep MARK; true");
}

#[test]
fn no_parallel_phase_starts_after_ctrl_c() {
    nothing_starts_after_an_interrupt(true, "sleep MARK");
}

/// A failure under the stop policy: the phases that depend on nothing else still do not
/// start once the failure is known, and stay pending.
#[test]
fn no_phase_starts_after_a_failure() {
    let mut toml = String::from("name = \"x\"\n[[phase]]\nname = \"bad\"\nrun = \"echo bad >> spawned.log; exit 3\"\n");
    for i in 1..=20 {
        toml.push_str(&format!("[[phase]]\nname = \"q{i}\"\nrun = \"echo q{i} >> spawned.log\"\n"));
    }
    let t = Test::with(&toml).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run().code(1);
    assert_eq!(spawned(&t), ["bad"]);
    let tl = t.json("t.json");
    for i in 1..=20 {
        assert_eq!(phase(&tl, &format!("q{i}"))["status"], "pending");
    }
}
