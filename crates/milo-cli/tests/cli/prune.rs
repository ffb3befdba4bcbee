//! Retention through the `milo` binary: `milo run --keep-runs N` / `MILO_KEEP_RUNS`, and
//! `milo history prune`.

use crate::util::{LIMIT, Test};

const PIPELINE: &str = r#"
name = "kept"

[[phase]]
name = "hello"
run = "echo hello"
"#;

/// The run numbers `milo history --json` lists, newest first.
fn listed(t: Test) -> (Test, Vec<i64>) {
    let t = t.then(["history", "--json"]);
    let run = t.run();
    run.code(0);
    let runs: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.report()));
    let ids = runs
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| r["id"].as_i64().expect("a run id"))
        .collect();
    (t, ids)
}

#[test]
fn keep_runs_leaves_the_newest_runs_in_the_history() {
    let mut t = Test::with(PIPELINE).args(["run", "--ui", "plain", "--keep-runs", "2"]);
    for _ in 0..4 {
        t.run().code(0);
        t = t.then(["run", "--ui", "plain", "--keep-runs", "2"]);
    }
    let (t, ids) = listed(t);
    assert_eq!(ids, [4, 3]);
    // 0 keeps everything.
    let t = t.then(["run", "--ui", "plain", "--keep-runs", "0"]);
    t.run().code(0);
    let (_, ids) = listed(t);
    assert_eq!(ids, [5, 4, 3]);
}

#[test]
fn milo_keep_runs_in_the_environment_sets_the_limit() {
    let t = Test::with(PIPELINE);
    for _ in 0..3 {
        let out = assert_cmd::Command::cargo_bin("milo")
            .expect("the milo binary")
            .current_dir(t.dir())
            .args(["run", "--ui", "plain"])
            .env("MILO_KEEP_RUNS", "1")
            .timeout(LIMIT)
            .output()
            .expect("run milo");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let (_, ids) = listed(t);
    assert_eq!(ids, [3]);
}

#[test]
fn prune_dry_run_says_what_would_go_and_deletes_nothing() {
    let mut t = Test::with(PIPELINE).args(["run", "--ui", "plain"]);
    for _ in 0..3 {
        t.run().code(0);
    }
    t = t.then(["history", "prune", "--keep", "1", "--dry-run"]);
    t.run()
        .code(0)
        .stdout_line("would delete 2 runs (1-2), leaving 1 run; nothing was deleted (--dry-run)");
    let (t, ids) = listed(t);
    assert_eq!(ids, [3, 2, 1]);

    let t = t.then(["history", "prune", "--keep", "1"]);
    t.run().code(0).stdout_has("deleted 2 runs (1-2); 1 run left");
    let (t, ids) = listed(t);
    assert_eq!(ids, [3]);
    let t = t.then(["show"]);
    t.run().code(0).stdout_has("run 3 · kept · completed");
    t.then(["replay"])
        .run()
        .code(0)
        .stdout_has("journal verified: MAC chain intact");
}

#[test]
fn prune_without_a_policy_is_a_usage_error_with_a_hint() {
    let t = Test::with(PIPELINE).args(["run", "--ui", "plain"]);
    t.run().code(0);
    let t = t.then(["history", "prune"]);
    t.run()
        .code(2)
        .stderr_has("`milo history prune` needs a policy")
        .stderr_has("help: add --keep N");
    let t = t.then(["history", "prune", "--older-than", "3weeks"]);
    t.run().code(2).stderr_has("`3weeks` is not a duration");
    let (_, ids) = listed(t);
    assert_eq!(ids, [1]);
}
