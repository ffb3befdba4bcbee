//! Timeouts, retries and skips as the command shows them.

use crate::util::{Test, phase};

#[test]
fn a_timeout_fails_the_phase() {
    let toml = "name = \"t\"\n[[phase]]\nname = \"stuck\"\nrun = \"sleep 30\"\ntimeout = \"500ms\"\n";
    let t = Test::with(toml).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    let run = t.run();
    run.code(1)
        .stdout_has("[stuck] failed after")
        .stdout_has("timed out after 500ms");
    assert!(
        run.elapsed.as_secs() < 25,
        "the timeout did not stop the command\n{}",
        run.report()
    );
    let stuck = phase(&t.json("t.json"), "stuck").clone();
    assert_eq!(stuck["status"], "failed");
    assert!(stuck["error"].as_str().unwrap().contains("timed out after"));
}

#[test]
fn a_timeout_from_defaults_applies_and_none_lifts_it() {
    let toml = r#"
name = "t"
[defaults]
timeout = "300ms"
[[phase]]
name = "limited"
run = "sleep 30"
[[phase]]
name = "free"
timeout = "none"
run = "sleep 0.6"
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run().code(1);
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "limited")["status"], "failed");
    assert_eq!(phase(&tl, "free")["status"], "completed");
}

#[test]
fn a_timeout_under_a_retry_policy_is_retried() {
    let toml = r#"
name = "t"
[[phase]]
name = "slow-then-fast"
run = 'echo "attempt $MILO_ATTEMPT"; if [ "$MILO_ATTEMPT" -lt 2 ]; then sleep 30; fi'
timeout = "500ms"
policy = { on_fail = "retry", max_retries = 2, retry_delay = "50ms" }
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run()
        .code(0)
        .stdout_has("[slow-then-fast] attempt 1/3 failed: timed out after 500ms; retrying in")
        .stdout_line("[slow-then-fast] │ attempt 2");
    let p = phase(&t.json("t.json"), "slow-then-fast").clone();
    assert_eq!(p["status"], "completed");
    assert_eq!(p["attempt"], 2);
}

#[test]
fn retries_run_out_and_the_phase_fails_with_its_last_error() {
    let toml = r#"
name = "t"
[[phase]]
name = "never"
run = 'echo "try $MILO_ATTEMPT"; exit 1'
policy = { on_fail = "retry", max_retries = 2, retry_delay = 0.01 }
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run()
        .code(1)
        .stdout_has("attempt 2/3 failed")
        .stdout_line("[never] started (attempt 3)")
        .stdout_has("✗ never  ")
        .stdout_has("(3 attempts): command exited with status 1");
    assert_eq!(phase(&t.json("t.json"), "never")["attempt"], 3);
}

#[test]
fn a_skipped_phase_shows_why() {
    let toml = "name = \"t\"\n[[phase]]\nname = \"lint\"\nrun = \"exit 9\"\npolicy = { on_fail = \"skip\" }\n";
    Test::with(toml)
        .args(["run", "--ui", "plain"])
        .run()
        .code(0)
        .stdout_has("[lint] skipped after")
        .stdout_has("command exited with status 9");
}

/// `flaky-net` fails once and succeeds on its retry (after 1 s); `broken` fails at once, while
/// `flaky-net` waits to retry; `later` depends on `flaky-net`.
const RETRY_WHILE_ANOTHER_FAILS: &str = r#"
name = "x"
[defaults]
parallel = true
[[phase]]
name = "flaky-net"
run = "if [ -e tried ]; then echo ok; else touch tried; exit 1; fi"
policy = { on_fail = "retry", max_retries = 3, retry_delay = "1s" }
[[phase]]
name = "broken"
run = "sleep 0.2; exit 4"
[[phase]]
name = "later"
depends_on = ["flaky-net"]
run = "touch later.ran"
"#;

/// A phase waiting to retry has started: when an unrelated phase fails (no `--fail-fast`) it
/// finishes its attempts like a running phase would, while nothing new starts.
#[test]
fn a_phase_waiting_to_retry_finishes_its_attempts_after_another_fails() {
    let t = Test::with(RETRY_WHILE_ANOTHER_FAILS).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run().code(1);
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "flaky-net")["status"], "completed", "{tl:#}");
    assert_eq!(phase(&tl, "broken")["status"], "failed");
    assert_eq!(phase(&tl, "later")["status"], "pending");
    assert!(!t.path("later.ran").exists(), "a phase started after the failure");
}

/// `--fail-fast` still cancels a phase waiting to retry at once.
#[test]
fn fail_fast_cancels_a_phase_waiting_to_retry() {
    let t = Test::with(RETRY_WHILE_ANOTHER_FAILS).args(["run", "--ui", "plain", "--fail-fast", "--timeline", "t.json"]);
    t.run().code(1);
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "flaky-net")["status"], "cancelled", "{tl:#}");
}
