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
        toml.push_str(&format!(
            "[[phase]]\nname = \"p{i}\"\nrun = \"echo $MILO_PHASE >> spawned.log; {body}\"\n"
        ));
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
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "took {:?}",
        stopped.elapsed()
    );
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
        toml.push_str(&format!(
            "[[phase]]\nname = \"q{i}\"\nrun = \"echo q{i} >> spawned.log\"\n"
        ));
    }
    let t = Test::with(&toml).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run().code(1);
    assert_eq!(spawned(&t), ["bad"]);
    let tl = t.json("t.json");
    for i in 1..=20 {
        assert_eq!(phase(&tl, &format!("q{i}"))["status"], "pending");
    }
}

/// The ways a phase's processes escape its process group: `timeout` (which calls setpgid),
/// `setsid` in the background, and a double fork that leaves a TERM-ignoring grandchild.
fn escaping(markers: &[String; 3]) -> String {
    format!(
        "timeout 600 sleep {} & setsid sleep {} & (trap '' TERM; sleep {}) &",
        markers[0], markers[1], markers[2]
    )
}

fn markers() -> [String; 3] {
    [marker(), marker(), marker()]
}

fn all_gone(markers: &[String], within: Duration) -> Result<(), String> {
    for m in markers {
        if !wait_for(within, || processes_with(m).is_empty()) {
            return Err(format!("process `sleep {m}` escaped: {:?}", processes_with(m)));
        }
    }
    Ok(())
}

/// Each containment mechanism: a cgroup (v2 first, else v1), a cgroup v1 (where this machine
/// has a writable v1 hierarchy; else it falls back like any machine without one), and the
/// process-tree fallback (subreaper and marker) that must hold on its own.
const MECHANISMS: [&str; 3] = ["cgroup", "cgroup-v1", "tree"];

fn escape_test(mechanism: &str, stop: Option<Signal>, extra_toml: &str, tail: &str) {
    let ms = markers();
    let t = Test::with(&format!(
        "name = \"esc\"\n[[phase]]\nname = \"leaky\"\nrun = \"{} {tail}\"\n{extra_toml}",
        escaping(&ms)
    ))
    .env("MILO_CONTAINMENT", Some(mechanism));
    match stop {
        Some(sig) => {
            let mut milo = Running::start_env(&t, &[], &[("MILO_CONTAINMENT", mechanism)]);
            assert!(
                wait_for(Duration::from_secs(30), || ms
                    .iter()
                    .all(|m| !processes_with(m).is_empty())),
                "the phase did not start its processes\n{}",
                milo.output()
            );
            milo.signal(sig);
            milo.wait(Duration::from_secs(30));
            all_gone(&ms, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{mechanism}, {sig}: {e}\n{}", milo.output()));
        }
        None => {
            let run = t.args(["run", "--ui", "plain"]).run();
            all_gone(&ms, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{mechanism}: {e}\n{}", run.report()));
        }
    }
}

#[test]
fn escaped_processes_are_stopped_by_ctrl_c_sigterm_and_sighup() {
    for mechanism in MECHANISMS {
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            escape_test(mechanism, Some(sig), "", "sleep 4000");
        }
    }
}

#[test]
fn escaped_processes_are_stopped_when_the_phase_ends() {
    for mechanism in MECHANISMS {
        escape_test(mechanism, None, "", "echo done");
    }
}

#[test]
fn escaped_processes_are_stopped_when_the_phase_times_out() {
    for mechanism in MECHANISMS {
        escape_test(mechanism, None, "timeout = \"2s\"\n", "sleep 4000");
    }
}

/// After SIGKILL of milo, the phase's direct process dies with it (PR_SET_PDEATHSIG), and the
/// next `milo run` sweeps the rest: processes that escaped, and the run's result directory.
#[test]
fn what_a_killed_milo_leaves_is_swept_by_the_next_run() {
    for mechanism in MECHANISMS {
        let (direct, escaped) = (marker(), marker());
        let t = Test::with(&format!(
            "name = \"k\"\n[defaults]\nparallel = true\n[[phase]]\nname = \"direct\"\nrun = \"sleep {direct}\"\n[[phase]]\nname = \"shell\"\nrun = \"setsid sleep {escaped} & sleep 4000\"\n"
        ))
        .file("tmp/keep", "")
        .file("next/milo.toml", "name = \"n\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n");
        let tmp = t.path("tmp").display().to_string();
        let env = [("MILO_CONTAINMENT", mechanism), ("TMPDIR", tmp.as_str())];
        let mut milo = Running::start_env(&t, &[], &env);
        assert!(
            wait_for(Duration::from_secs(30), || {
                !processes_with(&direct).is_empty() && !processes_with(&escaped).is_empty()
            }),
            "{}",
            milo.output()
        );
        milo.signal(Signal::SIGKILL);
        milo.wait(Duration::from_secs(30));
        all_gone(std::slice::from_ref(&direct), Duration::from_secs(5)).unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        let leftovers = || {
            std::fs::read_dir(t.path("tmp"))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("milo-run-"))
                .count()
        };
        assert_eq!(
            leftovers(),
            1,
            "{mechanism}: the killed run's directory should still be there"
        );
        let next = Test::empty()
            .env("MILO_CONTAINMENT", Some(mechanism))
            .env("TMPDIR", Some(&tmp))
            .args([
                "run",
                "--ui",
                "plain",
                "-f",
                &t.path("next/milo.toml").display().to_string(),
            ]);
        next.run().code(0);
        all_gone(std::slice::from_ref(&escaped), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert_eq!(leftovers(), 0, "{mechanism}: the killed run's directory was not swept");
    }
}

/// The second Ctrl-C kills at once even when the phase's group leader is already gone and a
/// TERM-ignoring process it started is all that is left.
#[test]
fn a_second_ctrl_c_kills_what_outlived_its_group_leader() {
    for mechanism in MECHANISMS {
        let m = marker();
        let t = Test::with(&format!(
            "name = \"x\"\n[[phase]]\nname = \"stubborn\"\nrun = \"(trap '' TERM; setsid sleep {m}) & sleep 4000\"\n"
        ));
        let mut milo = Running::start_env(&t, &[], &[("MILO_CONTAINMENT", mechanism)]);
        assert!(
            wait_for(Duration::from_secs(30), || !processes_with(&m).is_empty()),
            "{}",
            milo.output()
        );
        milo.signal(Signal::SIGINT);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !processes_with(&m).is_empty(),
            "SIGTERM should have been ignored; the test is void"
        );
        let second = Instant::now();
        milo.signal(Signal::SIGINT);
        assert_eq!(milo.wait(Duration::from_secs(30)), Some(130), "{}", milo.output());
        all_gone(std::slice::from_ref(&m), Duration::from_secs(2)).unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert!(
            second.elapsed() < Duration::from_millis(4500),
            "{mechanism}: the second Ctrl-C did not kill at once ({:?}; the grace period is 5 s)",
            second.elapsed()
        );
    }
}
