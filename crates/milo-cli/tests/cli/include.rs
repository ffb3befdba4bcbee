//! `include = [...]`: phases and defaults from other files, through the real binary.

use crate::util::Test;

const MAIN: &str = r#"name = "inc"
include = ["ci/common.toml"]

[defaults]
timeout = "1m"

[[phase]]
name = "build"
run = "echo built > built.txt; echo build-common=$FROM_COMMON"
"#;

const COMMON: &str = r#"[defaults]
env = { FROM_COMMON = "yes" }

[[phase]]
name = "test"
depends_on = ["build"]
run = "cat built.txt; echo common=$FROM_COMMON; pwd"
"#;

fn run(t: &Test) -> crate::util::Run {
    t.run_args(["run", "--ui", "plain", "--no-history"])
}

#[test]
fn included_phases_run_with_the_merged_defaults_in_the_pipeline_directory() {
    let t = Test::with(MAIN).file("ci/common.toml", COMMON);
    let out = run(&t);
    out.code(0)
        .stdout_has("[test] │ built")
        .stdout_has("[test] │ common=yes");
    // go-task's rule: an included file's phases run where the pipeline file is.
    let dir = std::fs::canonicalize(t.dir()).expect("canonical dir");
    out.stdout_has(&format!("[test] │ {}", dir.display()));
    // The merged defaults apply to the pipeline file's phases too.
    t.run_args(["run", "--ui", "plain", "--no-history", "--only", "build"])
        .code(0)
        .stdout_has("[build] │ build-common=yes");
    t.run_args(["check"]).code(0);
    let phases = t.run_args(["phases"]);
    phases.code(0).stdout_has("test");
}

#[test]
fn an_entry_with_cwd_runs_its_phases_there_and_resolves_their_paths_there() {
    let t = Test::with(
        r#"name = "inc"
include = [{ path = "web/milo.toml", cwd = "web" }]
"#,
    )
    .file(
        "web/milo.toml",
        r#"[[phase]]
name = "web"
run = "cat page.txt; echo $WEB_VAR"
env_file = "web.env"
"#,
    )
    .file("web/page.txt", "the page\n")
    .file("web/web.env", "WEB_VAR=from-web-env\n");
    run(&t)
        .code(0)
        .stdout_has("[web] │ the page")
        .stdout_has("[web] │ from-web-env");
}

#[test]
fn a_duplicate_phase_names_both_files_and_lines() {
    let t = Test::with(MAIN).file(
        "ci/common.toml",
        r#"[[phase]]
name = "build"
run = "true"
"#,
    );
    let out = t.run_args(["check"]);
    out.code(2);
    let err = out.stderr_redacted();
    assert!(err.contains("duplicate phase name `build`"), "{err}");
    assert!(err.contains("ci/common.toml:2:8"), "{err}");
    assert!(err.contains("milo.toml:8:8"), "{err}");
    assert!(
        err.contains("it is defined in both `milo.toml` and `ci/common.toml`"),
        "{err}"
    );
}

#[test]
fn a_default_set_in_two_files_is_an_error_naming_both() {
    let t = Test::with(MAIN).file(
        "ci/common.toml",
        r#"[defaults]
timeout = "2m"
env = { A = "1" }

[[phase]]
name = "test"
run = "true"
"#,
    );
    let out = t.run_args(["check"]);
    out.code(2);
    let err = out.stderr_redacted();
    assert!(
        err.contains("`timeout` in [defaults] is set in both `milo.toml` and `ci/common.toml`"),
        "{err}"
    );
    assert!(err.contains("ci/common.toml:2:1"), "{err}");
    assert!(err.contains("milo.toml:5:1"), "{err}");
    // Disjoint `env` variables merge.
    assert!(!err.contains("env."), "{err}");
}

#[test]
fn mistakes_in_an_included_file_point_into_it_all_at_once() {
    let t = Test::with(MAIN).file(
        "ci/common.toml",
        r#"jobs = 3

[[phase]]
name = "test"
depends_on = ["biuld"]
run = "true"
tiemout = "1m"
"#,
    );
    let out = t.run_args(["check"]);
    out.code(2);
    let err = out.stderr_redacted();
    assert!(
        err.contains("`jobs` can only be set in the pipeline file `milo.toml`, not in an included file"),
        "{err}"
    );
    assert!(err.contains("ci/common.toml:1:1"), "{err}");
    assert!(err.contains("unknown key `tiemout`"), "{err}");
    assert!(err.contains("ci/common.toml:7:1"), "{err}");
    assert!(
        err.contains("depends on `biuld`, which is not a phase; did you mean `build`?"),
        "{err}"
    );
    assert!(err.contains("ci/common.toml:5:15"), "{err}");
}

#[test]
fn a_missing_file_a_loop_and_a_syntax_error_are_located() {
    let missing = Test::with(MAIN);
    let out = missing.run_args(["check"]);
    out.code(2);
    let err = out.stderr_redacted();
    assert!(err.contains("included file `ci/common.toml` does not exist"), "{err}");
    assert!(err.contains("milo.toml:2:12"), "{err}");
    assert!(err.contains("required = false"), "{err}");

    let optional = Test::with(
        r#"name = "inc"
include = [{ path = "local.toml", required = false }]

[[phase]]
name = "a"
run = "echo ran-a"
"#,
    );
    run(&optional).code(0).stdout_has("ran-a");

    let looped = Test::with(MAIN).file(
        "ci/common.toml",
        r#"include = ["../milo.toml"]

[[phase]]
name = "test"
run = "true"
"#,
    );
    let out = looped.run_args(["check"]);
    out.code(2);
    let err = out.stderr_redacted();
    assert!(err.contains("includes itself"), "{err}");
    assert!(err.contains("ci/common.toml:1:12"), "{err}");

    let broken = Test::with(MAIN).file("ci/common.toml", "[[phase]\nname = 1\n");
    let out = broken.run_args(["check"]);
    out.code(2);
    let err = out.stderr_redacted();
    assert!(err.contains("invalid TOML"), "{err}");
    assert!(err.contains("ci/common.toml:1:"), "{err}");
}

#[test]
fn a_file_included_twice_brings_its_phases_once_and_nested_includes_work() {
    let t = Test::with(
        r#"name = "inc"
include = ["a.toml", "b.toml"]
"#,
    )
    .file(
        "a.toml",
        "include = [\"shared.toml\"]\n[[phase]]\nname = \"a\"\nrun = \"echo a\"\ndepends_on = [\"shared\"]\n",
    )
    .file(
        "b.toml",
        "include = [\"shared.toml\"]\n[[phase]]\nname = \"b\"\nrun = \"echo b\"\ndepends_on = [\"shared\"]\n",
    )
    .file(
        "shared.toml",
        "[[phase]]\nname = \"shared\"\nrun = \"echo shared-ran\"\n",
    );
    run(&t)
        .code(0)
        .stdout_has("[shared] │ shared-ran")
        .stdout_has("[a] │ a")
        .stdout_has("[b] │ b");
}

#[test]
fn a_pipeline_of_only_includes_without_phases_is_refused() {
    let t = Test::with("name = \"inc\"\ninclude = [\"d.toml\"]\n").file("d.toml", "[defaults]\nparallel = true\n");
    let out = t.run_args(["check"]);
    out.code(2);
    assert!(
        out.stderr_redacted()
            .contains("the pipeline has no phases, in this file or those it includes")
    );
}
