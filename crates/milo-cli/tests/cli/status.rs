//! Every exit status: 0 completed (skipped phases included), 1 failed, 2 usage or definition
//! error, 130 interrupted (see `signals`).

use crate::util::Test;

#[test]
fn completed_is_0() {
    Test::with("name = \"ok\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n")
        .args(["run"])
        .run()
        .code(0);
}

#[test]
fn completed_with_skipped_phases_is_0() {
    let toml = r#"
name = "skips"

[[phase]]
name = "lint"
run = "exit 1"
policy = { on_fail = "skip" }

[[phase]]
name = "after"
depends_on = ["lint"]
run = "true"
"#;
    Test::with(toml)
        .args(["run", "--ui", "plain"])
        .run()
        .code(0)
        .stdout_has("[lint] skipped after")
        .stdout_has("1 completed, 1 skipped");
}

#[test]
fn failed_is_1_and_dependents_do_not_run() {
    let toml = r#"
name = "fails"

[[phase]]
name = "bad"
run = "exit 5"

[[phase]]
name = "never"
depends_on = ["bad"]
run = "touch never.ran"
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain"]);
    t.run()
        .code(1)
        .stdout_has("[bad] failed after")
        .stdout_has("command exited with status 5")
        .stdout_has("1 pending");
    assert!(!t.path("never.ran").exists());
}

#[test]
fn a_phase_killed_by_a_signal_fails_the_run() {
    let toml = "name = \"k\"\n[[phase]]\nname = \"self-kill\"\nrun = \"kill -9 $$\"\n";
    Test::with(toml)
        .args(["run", "--ui", "plain"])
        .run()
        .code(1)
        .stdout_has("[self-kill] failed");
}

#[test]
fn usage_errors_are_2() {
    for args in [
        &["run", "--no-such-flag"][..],
        &["frobnicate"],
        &[],
        &["graph", "--format", "png"],
        &["completions", "tcsh"],
    ] {
        Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n")
            .args(args.iter().copied())
            .run()
            .code(2);
    }
}

#[test]
fn definition_errors_are_2_for_every_command() {
    for cmd in ["run", "order", "phases", "check", "graph"] {
        Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\ndepends_on = [\"zz\"]\n")
            .args([cmd])
            .run()
            .code(2)
            .stderr_has("milo.toml:5:15");
    }
}
