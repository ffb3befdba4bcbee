//! `--ui json`: stdout is one `{"type", "payload"}` object per line and nothing else, in a
//! sensible order.

use serde_json::Value;

use crate::util::Test;

const PIPELINE: &str = r#"
name = "stream"

[defaults]
parallel = true

[[phase]]
name = "first"
run = "echo one; echo two >&2"

[[phase]]
name = "left"
depends_on = ["first"]
run = "echo left-1; echo left-2"

[[phase]]
name = "right"
depends_on = ["first"]
run = "echo right-1"

[[phase]]
name = "flaky"
depends_on = ["first"]
run = 'echo "try $MILO_ATTEMPT"; [ "$MILO_ATTEMPT" -ge 2 ]'
policy = { on_fail = "retry", max_retries = 2, retry_delay = "10ms" }

[[phase]]
name = "skippy"
run = "echo nope; exit 1"
policy = { on_fail = "skip" }
"#;

/// Parses every stdout line, failing on anything that is not an action object.
fn actions(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
            assert!(
                obj.len() == 2 && obj["type"].is_string() && obj["payload"].is_object(),
                "not {{type, payload}}: {line}"
            );
            v
        })
        .collect()
}

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap()
}

/// The phase an action is about.
fn name(v: &Value) -> Option<&str> {
    kind(v)
        .starts_with("@@PHASE_")
        .then(|| v["payload"]["name"].as_str())
        .flatten()
}

fn check_order(actions: &[Value], terminal: &str) {
    let start = actions
        .iter()
        .position(|a| kind(a) == "@@PIPELINE_START")
        .expect("@@PIPELINE_START");
    let first_phase = actions.iter().position(|a| kind(a) == "@@PHASE_START").unwrap();
    assert!(start < first_phase, "@@PIPELINE_START after a @@PHASE_START");
    let terminals: Vec<_> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| kind(a).starts_with("@@PIPELINE_") && kind(a) != "@@PIPELINE_START")
        .collect();
    assert_eq!(terminals.len(), 1, "exactly one terminal action: {terminals:?}");
    assert_eq!(terminals[0].0, actions.len() - 1, "the terminal action is last");
    assert_eq!(kind(terminals[0].1), terminal);

    // Per phase: START, then LOGs, then exactly one ending; retries start again.
    let mut phases: Vec<&str> = actions.iter().filter_map(name).collect();
    phases.sort_unstable();
    phases.dedup();
    for phase in phases {
        let seq: Vec<&str> = actions.iter().filter(|a| name(a) == Some(phase)).map(kind).collect();
        let mut running = false;
        let mut ended = false;
        for k in &seq {
            match *k {
                "@@PHASE_START" => {
                    assert!(!running && !ended, "{phase}: START while running or ended: {seq:?}");
                    running = true;
                }
                "@@PHASE_LOG" => assert!(running, "{phase}: LOG outside an attempt: {seq:?}"),
                "@@PHASE_RETRY" => {
                    assert!(running, "{phase}: RETRY outside an attempt: {seq:?}");
                    running = false;
                }
                "@@PHASE_COMPLETE" | "@@PHASE_FAILED" | "@@PHASE_SKIPPED" | "@@PHASE_CANCELLED" => {
                    assert!(!ended, "{phase}: two endings: {seq:?}");
                    ended = true;
                    running = false;
                }
                other => panic!("{phase}: unexpected {other}"),
            }
        }
        assert!(ended, "{phase} never ended: {seq:?}");
    }
}

#[test]
fn every_line_is_an_action_in_order() {
    let run = Test::with(PIPELINE).args(["run", "--ui", "json"]).run();
    run.code(0);
    let all = actions(&run.stdout);
    check_order(&all, "@@PIPELINE_COMPLETE");
    let types: Vec<&str> = all.iter().map(kind).collect();
    for t in ["@@PHASE_LOG", "@@PHASE_RETRY", "@@PHASE_SKIPPED", "@@PHASE_COMPLETE"] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }
    let logs: Vec<(&str, &str, &str)> = all
        .iter()
        .filter(|a| kind(a) == "@@PHASE_LOG")
        .map(|a| {
            let p = &a["payload"];
            (
                p["name"].as_str().unwrap(),
                p["line"].as_str().unwrap(),
                p["stream"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(logs.contains(&("first", "one", "stdout")), "{logs:?}");
    assert!(logs.contains(&("first", "two", "stderr")), "{logs:?}");
    let left: Vec<_> = logs.iter().filter(|l| l.0 == "left").map(|l| l.1).collect();
    assert_eq!(left, ["left-1", "left-2"]);
    let retry = all.iter().find(|a| kind(a) == "@@PHASE_RETRY").unwrap();
    assert_eq!(retry["payload"]["name"], "flaky");
    assert_eq!(retry["payload"]["attempt"], 1);
    assert_eq!(retry["payload"]["max_retries"], 2);
}

#[test]
fn a_failed_run_ends_with_pipeline_failed_and_nothing_else_on_stdout() {
    let toml = "name = \"f\"\n[[phase]]\nname = \"a\"\nrun = \"echo hi; exit 2\"\n";
    let run = Test::with(toml).args(["run", "--ui", "json"]).run();
    run.code(1);
    let all = actions(&run.stdout);
    check_order(&all, "@@PIPELINE_FAILED");
    let failed = all.iter().find(|a| kind(a) == "@@PHASE_FAILED").unwrap();
    assert_eq!(failed["payload"]["error"], "command exited with status 2");
    assert!(
        all.last().unwrap()["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("`a`")
    );
}

#[test]
fn fail_fast_cancellations_are_actions_too() {
    let toml = r#"
name = "ff"
[defaults]
parallel = true
[[phase]]
name = "slow"
run = "sleep 5"
[[phase]]
name = "bad"
run = "sleep 0.2; exit 1"
"#;
    let run = Test::with(toml).args(["run", "--ui", "json", "--fail-fast"]).run();
    run.code(1);
    let all = actions(&run.stdout);
    check_order(&all, "@@PIPELINE_FAILED");
    assert!(
        all.iter()
            .any(|a| kind(a) == "@@PHASE_CANCELLED" && name(a) == Some("slow")),
        "{}",
        run.report()
    );
}

#[test]
fn no_capture_is_refused_with_the_json_stream() {
    // The phases' raw output would otherwise land on stdout between the actions.
    let toml = "name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"echo raw-output\"\n";
    let run = Test::with(toml).args(["run", "--ui", "json", "--no-capture"]).run();
    run.code(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("--no-capture cannot be used with --ui json"),
        "{}",
        run.stderr
    );
}
