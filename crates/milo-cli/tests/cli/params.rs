//! Parameters (`[params.NAME]`, `-p`, `MILO_PARAM_*`), templates (`{{ params.x }}`) and matrix
//! phases, through the real binary.

use crate::util::Test;

const PARAMS: &str = r#"name = "p"

[params.target]
type = "string"
default = "debug"
choices = ["debug", "release"]
help = "Build profile"

[params.jobs]
type = "int"
default = 2

[params.pythons]
type = "list"
default = ["3.11", "3.12"]

[[phase]]
name = "build"
description = "build {{ params.target }}"
run = "echo T={{ params.target }} E=$MILO_PARAM_TARGET J={{ params.jobs + 1 }} P=$MILO_PARAM_PYTHONS"
"#;

/// `milo run --ui plain --no-history` and `extra`.
fn run(t: Test, extra: &[&str]) -> crate::util::Run {
    t.args(["run", "--ui", "plain", "--no-history"])
        .args(extra.iter().copied())
        .run()
}

#[test]
fn values_come_from_p_over_the_environment_over_the_default() {
    run(Test::with(PARAMS), &[])
        .code(0)
        .stdout_has("T=debug E=debug J=3 P=3.11,3.12");
    run(Test::with(PARAMS).env("MILO_PARAM_TARGET", Some("release")), &[])
        .code(0)
        .stdout_has("T=release E=release");
    let t = Test::with(PARAMS)
        .args([
            "run",
            "--ui",
            "plain",
            "--no-history",
            "-p",
            "target=debug",
            "--param",
            "jobs=7",
        ])
        .env("MILO_PARAM_TARGET", Some("release"));
    t.run().code(0).stdout_has("T=debug E=debug J=8");
    // A list from the command line is comma-separated; it is exported comma-joined.
    run(Test::with(PARAMS), &["-p", "pythons=3.12, 3.13"])
        .code(0)
        .stdout_has("P=3.12,3.13");
}

#[test]
fn an_unknown_parameter_is_an_error_that_lists_them() {
    let r = run(Test::with(PARAMS), &["-p", "targte=release"]);
    r.code(2)
        .stderr_has("`-p targte=release`: the pipeline has no parameter `targte`; did you mean `target`?")
        .stderr_has("the parameters are `target`, `jobs`, `pythons`")
        .stderr_has("milo.toml:3:2");
    assert!(r.stdout.is_empty(), "{}", r.report());
    run(Test::with(PARAMS), &["-p", "target"])
        .code(2)
        .stderr_has("`-p target` must be NAME=VALUE");
}

#[test]
fn a_value_of_the_wrong_type_is_located_at_the_type() {
    run(Test::with(PARAMS), &["-p", "jobs=abc"])
        .code(2)
        .stderr_has("error: `-p jobs=abc`: `abc` is not an integer, and parameter `jobs` is int")
        .stderr_has("--> milo.toml:10:8");
    run(Test::with(PARAMS).env("MILO_PARAM_JOBS", Some("1.5")), &[])
        .code(2)
        .stderr_has("`MILO_PARAM_JOBS=1.5` (in the environment): `1.5` is not an integer");
}

#[test]
fn a_value_outside_the_choices_lists_them() {
    run(Test::with(PARAMS), &["-p", "target=relase"])
        .code(2)
        .stderr_has("`relase` is not one of the choices of parameter `target`; did you mean `release`?")
        .stderr_has("--> milo.toml:6:11")
        .stderr_has("the choices are `debug`, `release`");
}

const REQUIRED: &str = r#"name = "p"

[params.version]
required = true

[[phase]]
name = "tag"
run = "echo v={{ params.version }}"
"#;

#[test]
fn a_missing_required_parameter_stops_a_run_but_check_only_notes_it() {
    run(Test::with(REQUIRED), &[])
        .code(2)
        .stderr_has("error: parameter `version` is required, and no value was given")
        .stderr_has("--> milo.toml:3:9")
        .stderr_has("`-p version=VALUE`");
    Test::with(REQUIRED)
        .args(["check"])
        .run()
        .code(0)
        .stdout_has("is valid")
        .stdout_has("note: parameter `version` is required and has no value");
    run(Test::with(REQUIRED), &["-p", "version=1.2"])
        .code(0)
        .stdout_has("v=1.2");
}

#[test]
fn definitions_are_checked_with_locations() {
    let bad = "name = \"p\"\n[params.n]\ntype = \"integer\"\ndefault = 1\n[params.m]\ntype = \"int\"\ndefault = \"x\"\n[params.k]\ntype = \"string\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n";
    Test::with(bad)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`params.n.type` must be one of `string`, `int`, `float`, `bool`, `list`, found \"integer\"; did you mean \"int\"?")
        .stderr_has("milo.toml:3:8")
        .stderr_has("`params.m.default` must be an integer")
        .stderr_has("milo.toml:7:11")
        .stderr_has("parameter `k` has neither a `default` nor `required = true`")
        .stderr_has("milo.toml:8:9");
}

#[test]
fn an_undefined_template_variable_is_a_located_error_naming_the_phase_and_key() {
    let toml = PARAMS.replace("build {{ params.target }}", "build {{ params.tagret }}");
    let r = Test::with(&toml).args(["check"]).run();
    r.code(2)
        .stderr_has(
            "error: `description` in phase `build`: `params.tagret` is not a parameter; did you mean `params.target`?",
        )
        .stderr_has("--> milo.toml:19:15");
    let toml = PARAMS.replace("{{ params.jobs + 1 }}", "{{ matrix.python }}");
    Test::with(&toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`run` in phase `build`: `matrix.python` is used, but there is no matrix here");
    let toml = PARAMS.replace("{{ params.jobs + 1 }}", "{{ target }}");
    Test::with(&toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`run` in phase `build`: `target` is not defined; did you mean `params.target`?");
    let toml = PARAMS.replace("{{ params.jobs + 1 }}", "{{ params.jobs");
    Test::with(&toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`run` in phase `build`: template error: syntax error")
        .stderr_has("a literal `{{` is written `{{ \"{{\" }}`");
}

#[test]
fn shell_syntax_is_left_alone_and_literal_braces_can_be_written() {
    let toml = r#"name = "p"
[[phase]]
name = "a"
run = 'x=abc; echo "n=${#x}" {{ "{{" }}lit}} {{ "{%" }}'
[[phase]]
name = "b"
run = "y=1; echo '{plain}' \"${y:+set}\""
"#;
    run(Test::with(toml), &[])
        .code(0)
        .stdout_has("n=3 {{lit}} {%")
        .stdout_has("{plain} set");
}

#[test]
fn templates_reach_cwd_env_sources_and_outputs_and_the_key_follows_the_parameters() {
    let toml = r#"name = "p"
[params.target]
default = "debug"
[[phase]]
name = "build"
cwd = "{{ params.target }}"
env = { PROFILE = "profile-{{ params.target }}" }
sources = ["{{ params.target }}.c"]
outputs = ["out-{{ params.target }}.txt"]
run = "echo $PROFILE > out-{{ params.target }}.txt; echo ran >> ../runs.log"
"#;
    let t = Test::with(toml)
        .file("debug/debug.c", "int main;")
        .file("release/release.c", "int main;");
    let go = |args: &[&str]| {
        let mut all = vec!["run", "--ui", "plain", "--no-history"];
        all.extend_from_slice(args);
        t.run_args(all).code(0);
    };
    go(&[]);
    assert_eq!(t.read("debug/out-debug.txt"), "profile-debug\n");
    go(&[]);
    assert_eq!(t.read("runs.log").lines().count(), 1, "up to date the second time");
    go(&["-p", "target=release"]);
    assert_eq!(t.read("release/out-release.txt"), "profile-release\n");
    assert_eq!(
        t.read("runs.log").lines().count(),
        2,
        "a new value runs the phase again"
    );
    go(&["-p", "target=release"]);
    assert_eq!(t.read("runs.log").lines().count(), 2);
}

#[test]
fn params_and_help_params_and_phases_list_the_parameters() {
    let t = Test::with(PARAMS).env("MILO_PARAM_TARGET", None);
    let r = t.run_args(["params", "-p", "target=release"]);
    r.code(0)
        .stdout_has("target (string) = release   [from -p]")
        .stdout_has("    Build profile")
        .stdout_has("    default: debug; choices: debug, release")
        .stdout_has("jobs (int) = 2   [from default]");
    let help = t.run_args(["run", "--help-params", "-p", "target=release"]);
    help.code(0);
    assert_eq!(help.stdout, r.stdout);
    let json: serde_json::Value = serde_json::from_str(&t.run_args(["params", "--json"]).stdout).expect("JSON");
    assert_eq!(json[0]["name"], "target");
    assert_eq!(json[0]["choices"], serde_json::json!(["debug", "release"]));
    assert_eq!(json[2]["value"], serde_json::json!(["3.11", "3.12"]));
    assert_eq!(json[2]["env"], "MILO_PARAM_PYTHONS");
    t.run_args(["phases"])
        .code(0)
        .stdout_has("parameters:\n  target (string) = debug   [from default]")
        .stdout_has("build\n  build debug\n");
    t.run_args(["run", "--dry-run", "-p", "target=release"])
        .code(0)
        .stdout_has("parameters: target=release, jobs=2, pythons=3.11,3.12\n")
        .stdout_has("$ echo T=release E=$MILO_PARAM_TARGET J=3");
}

const MATRIX: &str = r#"name = "m"

[params.pythons]
type = "list"
default = ["3.11", "3.12", "3.13"]

[[phase]]
name = "test"
run = "echo py={{ matrix.python }} suite={{ matrix.suite }} env=$MILO_MATRIX_PYTHON/$MILO_MATRIX_SUITE"
matrix = { python = "{{ params.pythons }}", suite = ["unit", "integration"] }
matrix_exclude = [{ python = "3.11", suite = "integration" }]
matrix_include = [{ python = "3.14", suite = "unit" }]

[[phase]]
name = "publish"
run = "echo publish"
depends_on = ["test"]

[[phase]]
name = "report"
run = "echo report"
depends_on = ["test[python=3.12,*]"]
"#;

#[test]
fn a_matrix_expands_into_one_phase_per_combination() {
    let t = Test::with(MATRIX);
    let order = t.run_args(["order"]);
    order.code(0);
    let names: Vec<&str> = order.stdout.lines().collect();
    let mut tests: Vec<&str> = names.iter().copied().filter(|n| n.starts_with("test[")).collect();
    tests.sort();
    assert_eq!(
        tests,
        [
            "test[python=3.11,suite=unit]",
            "test[python=3.12,suite=integration]",
            "test[python=3.12,suite=unit]",
            "test[python=3.13,suite=integration]",
            "test[python=3.13,suite=unit]",
            "test[python=3.14,suite=unit]",
        ]
    );
    // `publish` waits for every instance.
    let last_test = names.iter().rposition(|n| n.starts_with("test[")).expect("instances");
    let publish = names.iter().position(|n| *n == "publish").expect("publish");
    assert!(publish > last_test, "{names:?}");
    let json: serde_json::Value = serde_json::from_str(&t.run_args(["phases", "--json"]).stdout).expect("JSON");
    let phases = json.as_array().expect("an array");
    let publish = phases.iter().find(|p| p["name"] == "publish").expect("publish");
    assert_eq!(publish["depends_on"].as_array().map(Vec::len), Some(6));
    let report = phases.iter().find(|p| p["name"] == "report").expect("report");
    assert_eq!(
        report["depends_on"],
        serde_json::json!(["test[python=3.12,suite=unit]", "test[python=3.12,suite=integration]"])
    );
    let cell = phases
        .iter()
        .find(|p| p["name"] == "test[python=3.14,suite=unit]")
        .expect("an instance");
    assert_eq!(cell["matrix"]["phase"], "test");
    assert_eq!(cell["matrix"]["values"]["python"], "3.14");
    let r = t.run_args(["run", "--ui", "plain", "--no-history"]);
    r.code(0)
        .stdout_has("py=3.12 suite=integration env=3.12/integration")
        .stdout_has("py=3.14 suite=unit env=3.14/unit")
        .stdout_lacks("py=3.11 suite=integration");
}

#[test]
fn matrix_values_can_come_from_a_list_parameter() {
    Test::with(MATRIX)
        .args(["order", "-p", "pythons=3.12,3.9"])
        .run()
        .code(0)
        .stdout_line("test[python=3.9,suite=unit]")
        .stdout_line("test[python=3.9,suite=integration]")
        .stdout_line("test[python=3.14,suite=unit]")
        .stdout_lacks("python=3.11");
    // With no 3.12 left, `report`'s `test[python=3.12,*]` matches nothing.
    Test::with(MATRIX)
        .args(["order", "-p", "pythons=3.9"])
        .run()
        .code(2)
        .stderr_has("which matches no instance of matrix phase `test`");
}

#[test]
fn only_and_targets_select_all_or_some_instances() {
    let t = Test::with(MATRIX);
    let some = t.run_args(["run", "--dry-run", "--only", "test[python=3.12,*]"]);
    some.code(0)
        .stdout_has("would run 2 phases")
        .stdout_has("test[python=3.12,suite=unit]")
        .stdout_has("test[python=3.12,suite=integration]");
    t.run_args(["run", "--dry-run", "test"])
        .code(0)
        .stdout_has("would run 6 phases");
    t.run_args(["run", "--dry-run", "test[python=3.12,suite=unit]"])
        .code(0)
        .stdout_has("would run 1 phase");
    t.run_args(["run", "--dry-run", "test[python=2.7,*]"])
        .code(2)
        .stderr_has("`test[python=2.7,*]` matches no instance of a matrix phase");
    t.run_args(["run", "--dry-run", "tset"])
        .code(2)
        .stderr_has("there is no phase `tset`")
        .stderr_has("did you mean `test`?");
}

#[test]
fn a_dependency_selector_matching_nothing_is_located() {
    let toml = MATRIX.replace("test[python=3.12,*]", "test[python=3.10,*]");
    Test::with(&toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("phase `report` depends on `test[python=3.10,*]`, which matches no instance of matrix phase `test`")
        .stderr_has("--> milo.toml:22:15");
}

#[test]
fn matrix_mistakes_are_located() {
    let toml = MATRIX.replace(
        "matrix_exclude = [{ python = \"3.11\", suite = \"integration\" }]",
        "matrix_exclude = [{ pyton = \"3.11\" }]",
    );
    Test::with(&toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`matrix_exclude` in phase `test`: `pyton` is not a matrix key; did you mean `python`?")
        .stderr_has("--> milo.toml:11:21");
    let toml = MATRIX.replace("{{ matrix.suite }}", "{{ matrix.suit }}");
    let r = Test::with(&toml).args(["check"]).run();
    r.code(2).stderr_has(
        "`run` in phase `test`: `matrix.suit` is not a key of this phase's matrix; did you mean `matrix.suite`?",
    );
    assert_eq!(
        r.stderr.matches("error:").count(),
        1,
        "reported once, not per instance\n{}",
        r.report()
    );
    let toml = MATRIX.replace("suite = [\"unit\", \"integration\"]", "suite = [\"a,b\"]");
    Test::with(&toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("the value \"a,b\" cannot be part of a phase name");
}

#[test]
fn without_f_the_nearest_milo_toml_in_a_parent_is_used() {
    let toml = "name = \"up\"\n[[phase]]\nname = \"where\"\nrun = \"pwd\"\n[[phase]]\nname = \"bad\"\nrun = \"true\"\ndepends_on = [\"nope\"]\n";
    let t = Test::with(toml).file("a/b/keep", "");
    let milo = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("milo")
            .expect("the milo binary")
            .current_dir(t.path("a/b"))
            .args(args)
            .timeout(crate::util::LIMIT)
            .output()
            .expect("run milo");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Errors name the file found.
    let (code, _, err) = milo(&["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--> ../../milo.toml:8:15"), "{err}");
    // Phases run in the file's directory.
    let fixed = toml.replace("depends_on = [\"nope\"]\n", "");
    std::fs::write(t.path("milo.toml"), fixed).expect("write");
    let (code, out, err) = milo(&["run", "--ui", "plain", "--no-history"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let dir = t.dir().canonicalize().expect("canonical");
    assert!(
        out.contains(&format!("│ {}", dir.display())) || out.contains(&format!("│ {}", t.dir().display())),
        "{out}"
    );
    // `-f` is taken as given.
    let (code, _, err) = milo(&["check", "-f", "milo.toml"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no pipeline file at `milo.toml`"), "{err}");
}

#[test]
fn env_files_and_the_pipeline_env_in_order_of_precedence() {
    let toml = r#"name = "e"
env_file = ".env"
env = { B = "pipeline-env", API_TOKEN = "hunter22" }

[[phase]]
name = "show"
env_file = { path = "phase.env", required = false }
env = { D = "phase-env" }
run = "echo A=$A B=$B C=$C D=$D T=$API_TOKEN"
"#;
    let t = Test::with(toml)
        .file(
            ".env",
            "A=pipeline-file\nB=pipeline-file\nC=pipeline-file\n# a comment\n",
        )
        .file("phase.env", "C=phase-file\nD=phase-file\n");
    run(t, &[])
        .code(0)
        .stdout_has("A=pipeline-file B=pipeline-env C=phase-file D=phase-env T=***");
    // An optional file may be missing; a required one may not.
    let t = Test::with(toml).file(".env", "A=1\n");
    run(t, &[]).code(0).stdout_has("A=1 B=pipeline-env C= D=phase-env");
    Test::with(toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`env_file`: there is no file")
        .stderr_has("--> milo.toml:2:12")
        .stderr_has("required = false");
    Test::with(toml)
        .file(".env", "A='unterminated\n")
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("is not a valid env file");
}

#[test]
fn a_run_list_runs_in_order_and_stops_at_the_first_failure() {
    let toml = r#"name = "l"
[params.who]
default = "world"
[[phase]]
name = "steps"
run = ["echo one # a comment", "echo two; false", "echo never"]
[[phase]]
name = "ok"
run = ["echo a", "echo hello {{ params.who }}"]
"#;
    let r = run(Test::with(toml), &["--only", "ok"]);
    r.code(0).stdout_has("│ a").stdout_has("│ hello world");
    let r = run(Test::with(toml), &["--only", "steps"]);
    r.code(1)
        .stdout_has("│ one")
        .stdout_has("│ two")
        .stdout_has("command exited with status 1")
        .stdout_lacks("│ never");
    Test::with(&toml.replace("[\"echo a\", ", "[1, "))
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`run` in phase `ok` must be a string")
        .stderr_has("milo.toml:9:8");
}

const RESUMABLE: &str = r#"name = "p"

[params.target]
choices = ["debug", "release"]
default = "debug"

[params.tag]
default = "none"

[[phase]]
name = "build"
run = "echo built-{{ params.target }}-{{ params.tag }}"

[[phase]]
name = "flaky"
depends_on = ["build"]
run = "echo flaky-{{ params.target }}; test \"$FAIL\" != 1"
"#;

#[test]
fn a_runs_parameters_are_recorded_shown_reported_and_reused_by_resume() {
    let t = Test::with(RESUMABLE).env("FAIL", Some("1")).args([
        "run",
        "--ui",
        "plain",
        "-p",
        "target=release",
        "-p",
        "tag=v1",
    ]);
    t.run().code(1).stdout_has("[build] │ built-release-v1");
    let t = t.then(["show"]);
    t.run().code(0).stdout_has("params: target=release tag=v1");
    let t = t.then(["report", "-o", "r.html"]);
    t.run().code(0);
    let html = t.read("r.html");
    assert!(
        html.contains("<code>target=release</code> <code>tag=v1</code>"),
        "{html}"
    );
    // --resume runs with the same values (not the defaults); -p still overrides one.
    let t = t
        .env("FAIL", Some("0"))
        .then(["run", "--ui", "plain", "--resume", "-p", "tag=v2"]);
    let out = t.run();
    out.code(0).stdout_has("[flaky] │ flaky-release");
    // The changed tag changed `build`'s command, so it ran again rather than being reused.
    out.stdout_has("[build] │ built-release-v2");
    let t = t.then(["show"]);
    t.run()
        .code(0)
        .stdout_has("params: target=release tag=v2")
        .stdout_has("resumes run 1");
    // The values are part of what the journal's chain vouches for: an edit is found.
    let t = t.then(["replay", "1"]);
    t.run().code(0);
    let conn = rusqlite::Connection::open(t.path(".milo/history.db")).expect("open the history");
    conn.execute("UPDATE runs SET params = '[[\"target\",\"debug\"]]' WHERE id = 1", [])
        .expect("edit");
    drop(conn);
    let t = t.then(["replay", "1"]);
    let verify = t.run();
    verify.code(1);
    let text = format!("{}{}", verify.stdout, verify.stderr);
    assert!(text.contains("TAMPERED") || text.contains("changed"), "{text}");
}

/// Instances that note how many of them are running when each is in the middle of its work.
const LIMITED: &str = r#"name = "m"
jobs = 4

[[phase]]
name = "test"
parallel = true
matrix = { n = ["1", "2", "3", "4"] }
matrix_max_parallel = 2
run = "mkdir -p running; touch running/{{ matrix.n }}; sleep 0.4; ls running | wc -l >> counts; rm running/{{ matrix.n }}"
"#;

#[test]
fn matrix_max_parallel_limits_how_many_instances_run_at_once() {
    let counts = |t: &Test| -> Vec<usize> {
        t.read("counts")
            .lines()
            .map(|l| l.trim().parse().expect("a count"))
            .collect()
    };
    let limited = Test::with(LIMITED);
    limited.run_args(["run", "--ui", "plain", "--no-history"]).code(0);
    let seen = counts(&limited);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|&c| c <= 2), "more than 2 at once: {seen:?}");
    assert!(seen.contains(&2), "the limit is 2, not 1: {seen:?}");
    // Without the limit the same instances run 4 at once (the test can tell).
    let unlimited = Test::with(&LIMITED.replace("matrix_max_parallel = 2\n", ""));
    unlimited.run_args(["run", "--ui", "plain", "--no-history"]).code(0);
    assert!(counts(&unlimited).iter().any(|&c| c > 2), "{:?}", counts(&unlimited));
}

#[test]
fn matrix_fail_fast_cancels_the_running_instances_and_only_them() {
    let toml = r#"name = "m"
jobs = 4

[[phase]]
name = "test"
parallel = true
matrix = { n = ["bad", "slow"] }
matrix_fail_fast = true
run = "if [ {{ matrix.n }} = bad ]; then sleep 0.3; exit 1; fi; sleep 5; echo slow-finished"

[[phase]]
name = "other"
parallel = true
run = "sleep 1.5; echo other-finished"
"#;
    let t = Test::with(toml);
    let out = t.run_args(["run", "--ui", "plain", "--no-history"]);
    out.code(1);
    out.stdout_lacks("slow-finished");
    // An unrelated running phase is let finish, as after any failure without --fail-fast.
    out.stdout_has("[other] │ other-finished");
    out.stdout_has("[test[n=slow]] cancelled");
    assert!(out.elapsed < std::time::Duration::from_secs(4), "{}", out.report());
    // Without it, the slow instance finishes.
    let t = Test::with(&toml.replace("matrix_fail_fast = true\n", ""));
    let out = t.run_args(["run", "--ui", "plain", "--no-history"]);
    out.code(1);
    out.stdout_has("[test[n=slow]] │ slow-finished");
}

#[test]
fn matrix_options_without_a_matrix_or_out_of_range_are_located_errors() {
    let t = Test::with("name = \"m\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\nmatrix_max_parallel = 2\n");
    let out = t.run_args(["check"]);
    out.code(2);
    let err = out.stderr_redacted();
    assert!(
        err.contains("`matrix_max_parallel` has no effect without `matrix`"),
        "{err}"
    );
    assert!(err.contains("milo.toml:5:1"), "{err}");
    let t = Test::with(&LIMITED.replace("matrix_max_parallel = 2", "matrix_max_parallel = 0"));
    let out = t.run_args(["check"]);
    out.code(2);
    assert!(out.stderr_redacted().contains("must be at least 1"), "{}", out.report());
}

/// `text` with every duration (`12ms`, `1.5s`, `3µs`, `2m5s`) replaced by `[T]`.
fn scrub_durations(text: &str) -> String {
    let is_duration = |w: &str| {
        w.starts_with(|c: char| c.is_ascii_digit())
            && w.chars().all(|c| c.is_ascii_digit() || ".msµh".contains(c))
            && w.ends_with(['s', 'm'])
    };
    text.lines()
        .map(|l| {
            l.split(' ')
                .map(|w| {
                    let core = w.trim_end_matches([':', ',']);
                    if is_duration(core) {
                        format!("[T]{}", &w[core.len()..])
                    } else {
                        w.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A matrix phase whose instance `n=2` fails (so `n=3` and `n=4` never start), and ordinary
/// phases.
const GROUPED: &str = r#"name = "m"

[[phase]]
name = "build"
run = "true"

[[phase]]
name = "test"
depends_on = ["build"]
matrix = { n = ["1", "2", "3", "4"] }
run = "if [ {{ matrix.n }} = 2 ]; then echo broken-{{ matrix.n }}; exit 1; fi"

[[phase]]
name = "lint"
run = "true"
"#;

#[test]
fn the_summary_shows_a_matrix_phase_as_one_line_with_its_failed_instances_beneath() {
    let t = Test::with(GROUPED);
    let out = t.run_args(["run", "--ui", "plain", "--no-history"]);
    out.code(1);
    let summary = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("✗ m failed in "))
        // Which phases were slowest is up to the machine.
        .filter(|l| !l.starts_with("  slowest: "))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("matrix_summary", scrub_durations(&summary));
    // All instances passing: one line, and no instance named.
    let t = Test::with(&GROUPED.replace("exit 1", "true"));
    let out = t.run_args(["run", "--ui", "plain", "--no-history"]);
    out.code(0).stdout_line("  ✓ test  4 instances: 4 completed");
    out.stdout_lacks("      ✓ test[");
}

#[test]
fn show_lists_a_matrix_phase_as_a_group_line_with_its_instances_beneath() {
    let t = Test::with(GROUPED);
    t.run_args(["run", "--ui", "plain"]).code(1);
    let show = t.run_args(["show"]);
    show.code(0);
    let table = show
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("PHASE"))
        .collect::<Vec<_>>()
        .join("\n");
    // A duration's width is up to the machine, and so is its padding.
    let mut table = scrub_durations(&table);
    while table.contains("  [T]") {
        table = table.replace("  [T]", " [T]");
    }
    insta::assert_snapshot!("matrix_show", table);
    // The JSON names each instance's group.
    let json: serde_json::Value = serde_json::from_str(&t.run_args(["show", "--json"]).stdout).expect("show json");
    let groups: Vec<(&str, Option<&str>)> = json["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or(""), p["group"].as_str()))
        .collect();
    assert!(groups.contains(&("test[n=3]", Some("test"))), "{groups:?}");
    assert!(groups.contains(&("build", None)), "{groups:?}");
    // The definition recorded with its groups still verifies and replays.
    t.run_args(["replay"]).code(0).stdout_has("journal verified");
    // The report's table groups them alike.
    t.run_args(["report", "-o", "report.html"]).code(0);
    let html = t.read("report.html");
    let group = html
        .lines()
        .find(|l| l.starts_with("<tr class=\"group\" data-group=\"test\">"))
        .unwrap_or_else(|| panic!("no group row\n{html}"));
    assert!(
        group.contains(">failed</span>") && group.contains(">4 instances: 1 completed, 1 failed, 2 pending</td>"),
        "{group}"
    );
    let after: Vec<&str> = html.lines().skip_while(|l| *l != group).skip(1).take(4).collect();
    for (line, n) in after.iter().zip(1..=4) {
        assert!(
            line.starts_with(&format!("<tr data-phase=\"test[n={n}]\"")) && line.contains("member"),
            "{after:#?}"
        );
    }
}

#[test]
fn the_plain_stream_closes_a_matrix_phase_with_its_group_line_once_every_instance_ended() {
    // Every instance ends (the broken one is skipped, so the run goes on): the group's line
    // follows the last one.
    let t = Test::with(&GROUPED.replace("name = \"test\"", "name = \"test\"\npolicy = { on_fail = \"skip\" }"));
    let out = t.run_args(["run", "--ui", "plain", "--no-history", "--jobs", "1"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let group: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i] == "[test] 4 instances: 3 completed, 1 skipped")
        .collect();
    assert_eq!(group.len(), 1, "{}", out.stdout);
    let last_instance = (0..lines.len())
        .rfind(|&i| lines[i].starts_with("[test[") && !lines[i].contains(" │ "))
        .expect("instance lines");
    assert_eq!(group[0], last_instance + 1, "{}", out.stdout);
    // A run that stops before every instance ended has no group line (the summary has it).
    let t = Test::with(GROUPED);
    let out = t.run_args(["run", "--ui", "plain", "--no-history", "--jobs", "1"]);
    out.code(1).stdout_lacks("[test] 4 instances");
}

#[test]
fn the_json_stream_names_each_matrix_phase_s_instances_at_the_start() {
    let t = Test::with(GROUPED);
    let out = t.run_args(["run", "--ui", "json", "--no-history"]);
    let first = out.stdout.lines().next().expect("a first line");
    let start: serde_json::Value = serde_json::from_str(first).expect("JSON");
    assert_eq!(start["type"], "@@PIPELINE_START");
    assert_eq!(
        start["payload"]["groups"],
        serde_json::json!({"test": ["test[n=1]", "test[n=2]", "test[n=3]", "test[n=4]"]})
    );
    assert!(
        first.starts_with(r#"{"type":"@@PIPELINE_START","payload":{"#),
        "{first}"
    );
    // Without a matrix phase, the start is the action as dispatched.
    let t = Test::with("name = \"plain\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\n");
    let out = t.run_args(["run", "--ui", "json", "--no-history"]);
    out.code(0).stdout_lacks("groups");
}
