//! Incremental runs through the binary: phases with `sources`/`outputs` run only when what
//! they depend on changed, outputs come back from the cache, and `--explain` says why.
//!
//! Every phase appends its name to `ran.log`; [`ran`] reads and empties it, so each test
//! states exactly which phases a run ran.

use std::time::{Duration, SystemTime};

use crate::util::{Test, phase};

const PIPELINE: &str = r#"
name = "inc"

[defaults]
parallel = true

[[phase]]
name = "gen"
run = "echo gen >> ran.log; mkdir -p out; cat src/*.txt > out/gen.txt; echo generated from $(ls src | wc -l) files"
sources = ["src/*.txt"]
outputs = ["out/gen.txt"]

[[phase]]
name = "build"
depends_on = ["gen"]
run = "echo build >> ran.log; tr a-z A-Z < out/gen.txt > out/build.txt"
sources = ["out/gen.txt"]
outputs = ["out/build.txt"]

[[phase]]
name = "flavour"
run = "echo flavour >> ran.log; mkdir -p out; echo \"$FLAVOUR\" > out/flavour.txt"
env_inputs = ["FLAVOUR"]
outputs = ["out/flavour.txt"]

[[phase]]
name = "always"
run = "echo always >> ran.log"
"#;

/// A project with [`PIPELINE`] and two sources.
fn project() -> Test {
    Test::with(PIPELINE)
        .file("src/a.txt", "alpha\n")
        .file("src/b.txt", "beta\n")
        .env("FLAVOUR", Some("vanilla"))
        .args(["run", "--ui", "plain"])
}

/// The phases that ran since the last call, sorted; empties `ran.log`.
fn ran(t: &Test) -> Vec<String> {
    let path = t.path("ran.log");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let mut names: Vec<String> = text.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// Writes `contents` to `name` in the project.
fn write(t: &Test, name: &str, contents: &str) {
    let path = t.path(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dirs");
    }
    std::fs::write(path, contents).expect("write");
}

/// Sets `name`'s modification time to `t`.
fn set_mtime(t: &Test, name: &str, time: SystemTime) {
    let f = std::fs::File::options().write(true).open(t.path(name)).expect("open");
    f.set_modified(time).expect("set mtime");
}

fn mtime(t: &Test, name: &str) -> SystemTime {
    std::fs::metadata(t.path(name))
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn a_second_run_runs_only_the_phases_that_are_not_incremental() {
    let t = project();
    t.run().code(0).stdout_has("4 ran");
    assert_eq!(ran(&t), ["always", "build", "flavour", "gen"]);
    let second = t.run();
    second
        .code(0)
        .stdout_has("1 ran, 3 up to date")
        .stdout_line("[gen] up to date")
        // The recorded output is replayed, marked as such.
        .stdout_has("[gen] ↺ │ generated from 2 files");
    assert_eq!(ran(&t), ["always"]);
}

#[test]
fn editing_a_source_reruns_exactly_its_phase_and_dependents() {
    let t = project();
    t.run().code(0);
    ran(&t);
    write(&t, "src/a.txt", "ALPHA, edited\n");
    let r = t.run_args(["run", "--ui", "plain", "--explain"]);
    r.code(0).stdout_has("src/a.txt changed");
    assert_eq!(ran(&t), ["always", "build", "gen"]);
    assert_eq!(t.read("out/build.txt"), "ALPHA, EDITED\nBETA\n");
}

#[test]
fn touching_a_source_without_changing_it_reruns_nothing() {
    let t = project();
    t.run().code(0);
    ran(&t);
    let later = SystemTime::now() + Duration::from_secs(5);
    set_mtime(&t, "src/a.txt", later);
    t.run().code(0).stdout_has("3 up to date");
    assert_eq!(ran(&t), ["always"]);
}

#[test]
fn an_edit_in_the_same_second_as_the_last_run_is_seen() {
    let t = project();
    t.run().code(0);
    ran(&t);
    // Same size, and the same modification time as before the edit: only the content says
    // it changed, and the entry written by the last run was too recent to trust its time.
    let before = mtime(&t, "src/a.txt");
    write(&t, "src/a.txt", "ALPHA\n");
    set_mtime(&t, "src/a.txt", before);
    t.run().code(0);
    assert_eq!(ran(&t), ["always", "build", "gen"]);
}

#[test]
fn a_file_added_to_a_glob_reruns_and_is_named() {
    let t = project();
    t.run().code(0);
    ran(&t);
    write(&t, "src/c.txt", "gamma\n");
    t.run_args(["run", "--ui", "plain", "--explain"])
        .code(0)
        .stdout_has("src/c.txt added");
    assert_eq!(ran(&t), ["always", "build", "gen"]);
    std::fs::remove_file(t.path("src/c.txt")).expect("remove");
    // Back to the first two files: the first run's outputs come back from the cache.
    t.run_args(["run", "--ui", "plain", "--explain"])
        .code(0)
        .stdout_has("restored");
    assert_eq!(ran(&t), ["always"]);
    assert_eq!(t.read("out/build.txt"), "ALPHA\nBETA\n");
}

#[test]
fn a_changed_command_reruns_and_is_named() {
    let t = project();
    t.run().code(0);
    ran(&t);
    let edited = PIPELINE.replace("tr a-z A-Z", "tr a-y A-Y");
    write(&t, "milo.toml", &edited);
    t.run_args(["run", "--ui", "plain", "--explain"])
        .code(0)
        .stdout_has("command changed");
    assert_eq!(ran(&t), ["always", "build"]);
}

#[test]
fn a_changed_shell_reruns_and_is_named() {
    let t = project();
    t.run().code(0);
    ran(&t);
    let edited = PIPELINE.replace("[defaults]\n", "[defaults]\nshell = \"bash -c\"\n");
    write(&t, "milo.toml", &edited);
    t.run_args(["run", "--ui", "plain", "--explain"])
        .code(0)
        .stdout_has("shell changed");
    assert_eq!(ran(&t), ["always", "build", "flavour", "gen"]);
}

#[test]
fn a_changed_env_input_reruns_and_is_named() {
    let t = project();
    t.run().code(0);
    ran(&t);
    let t = t.env("FLAVOUR", Some("chocolate")).args(["--explain"]);
    t.run().code(0).stdout_has("FLAVOUR changed");
    assert_eq!(ran(&t), ["always", "flavour"]);
    assert_eq!(t.read("out/flavour.txt"), "chocolate\n");
    // Unset is a value of its own.
    let t = t.env("FLAVOUR", None);
    t.run().code(0);
    assert_eq!(ran(&t), ["always", "flavour"]);
}

#[test]
fn a_changed_upstream_result_reruns_the_dependent() {
    let toml = r#"
name = "results"
[[phase]]
name = "version"
run = "echo version >> ran.log; cat v.txt > \"$MILO_OUTPUT\""
sources = ["v.txt"]
[[phase]]
name = "stamp"
depends_on = ["version"]
run = "echo stamp >> ran.log; cp \"$MILO_INPUTS\" stamp.json"
outputs = ["stamp.json"]
"#;
    let t = Test::with(toml)
        .file("v.txt", "1\n")
        .args(["run", "--ui", "plain", "--explain"]);
    t.run().code(0);
    ran(&t);
    t.run().code(0);
    assert_eq!(ran(&t), Vec::<String>::new());
    write(&t, "v.txt", "2\n");
    t.run()
        .code(0)
        .stdout_has("dependency `version` produced a different result");
    assert_eq!(ran(&t), ["stamp", "version"]);
    assert_eq!(t.json("stamp.json"), serde_json::json!({ "version": 2 }));
}

#[test]
fn a_deleted_or_edited_output_is_restored_without_running() {
    let t = project();
    t.run().code(0);
    ran(&t);
    std::fs::remove_file(t.path("out/gen.txt")).expect("remove");
    t.run_args(["run", "--ui", "plain", "--explain"])
        .code(0)
        .stdout_has("output out/gen.txt was deleted (restored from cache)")
        .stdout_has("restored");
    assert_eq!(ran(&t), ["always"]);
    assert_eq!(t.read("out/gen.txt"), "alpha\nbeta\n");
    write(&t, "out/build.txt", "scribbled over\n");
    t.run().code(0);
    assert_eq!(ran(&t), ["always"]);
    assert_eq!(t.read("out/build.txt"), "ALPHA\nBETA\n");
}

#[test]
fn without_the_cache_a_deleted_output_reruns_its_phase() {
    let t = project();
    t.run().code(0);
    ran(&t);
    std::fs::remove_file(t.path("out/gen.txt")).expect("remove");
    t.run_args(["run", "--ui", "plain", "--no-cache", "--explain"])
        .code(0)
        .stdout_has("output out/gen.txt was deleted");
    // gen ran again and wrote the same file, so build is up to date.
    assert_eq!(ran(&t), ["always", "gen"]);
}

#[test]
fn reverting_a_source_restores_the_earlier_output() {
    let t = project();
    t.run().code(0);
    write(&t, "src/a.txt", "second version\n");
    t.run().code(0);
    assert_eq!(t.read("out/build.txt"), "SECOND VERSION\nBETA\n");
    ran(&t);
    write(&t, "src/a.txt", "alpha\n");
    t.run().code(0).stdout_has("restored");
    assert_eq!(ran(&t), ["always"]);
    assert_eq!(t.read("out/build.txt"), "ALPHA\nBETA\n");
}

#[test]
fn a_directory_output_is_restored_exactly_without_stale_files() {
    let toml = r#"
name = "site"
[[phase]]
name = "site"
run = "echo site >> ran.log; rm -rf public; mkdir -p public/pages; for f in pages/*; do cp $f public/pages/; done; chmod 755 public/pages; printf '#!/bin/sh\n' > public/run.sh; chmod 750 public/run.sh; ln -s pages public/link"
sources = ["pages/*"]
outputs = ["public"]
"#;
    let t = Test::with(toml)
        .file("pages/one.html", "one")
        .file("pages/two.html", "two")
        .args(["run", "--ui", "plain"]);
    t.run().code(0);
    ran(&t);
    write(&t, "public/stale.html", "left over");
    std::fs::remove_file(t.path("public/pages/one.html")).expect("remove");
    t.run().code(0).stdout_has("restored");
    assert_eq!(ran(&t), Vec::<String>::new());
    let mut names: Vec<String> = walk(&t.path("public"));
    names.sort();
    assert_eq!(
        names,
        ["link", "pages", "pages/one.html", "pages/two.html", "run.sh"],
        "the restored directory is exactly the recorded one"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(t.path(p)).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode("public/run.sh"), 0o750);
    assert_eq!(
        std::fs::read_link(t.path("public/link")).expect("a symlink"),
        std::path::Path::new("pages")
    );
    assert_eq!(t.read("public/pages/one.html"), "one");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let e = e.expect("entry");
            let path = e.path();
            out.push(path.strip_prefix(dir).expect("inside").to_string_lossy().into_owned());
            if e.file_type().expect("type").is_dir() {
                todo.push(path);
            }
        }
    }
    out
}

#[test]
fn a_failing_phase_is_never_up_to_date() {
    let toml = r#"
name = "fails"
[[phase]]
name = "flaky"
run = "echo flaky >> ran.log; mkdir -p out; echo x > out/x; test -e ok"
sources = ["in.txt"]
outputs = ["out/x"]
"#;
    let t = Test::with(toml).file("in.txt", "1").args(["run", "--ui", "plain"]);
    t.run().code(1);
    t.run().code(1);
    assert_eq!(ran(&t), ["flaky", "flaky"]);
    write(&t, "ok", "");
    t.run().code(0);
    t.run().code(0);
    assert_eq!(ran(&t), ["flaky"]);
}

#[test]
fn a_phase_that_does_not_write_a_declared_output_fails_naming_it() {
    let toml = r#"
name = "missing"
[[phase]]
name = "lazy"
run = "true"
outputs = ["build/app"]
"#;
    Test::with(toml)
        .args(["run", "--ui", "plain"])
        .run()
        .code(1)
        .stdout_has("build/app");
}

#[test]
fn two_runs_at_once_on_the_same_cache_corrupt_nothing() {
    let t = project();
    let dir = t.dir().to_owned();
    let bin = assert_cmd::cargo::cargo_bin("milo");
    let spawn = || {
        std::process::Command::new(&bin)
            .current_dir(&dir)
            .args(["run", "--ui", "plain"])
            .env("FLAVOUR", "vanilla")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn milo")
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ran(&t);
    t.run().code(0).stdout_has("3 up to date");
    assert_eq!(ran(&t), ["always"]);
    std::fs::remove_dir_all(t.path("out")).expect("remove outputs");
    t.run().code(0).stdout_has("restored");
    assert_eq!(t.read("out/build.txt"), "ALPHA\nBETA\n");
}

#[test]
fn force_runs_everything_or_the_named_phase() {
    let t = project();
    t.run().code(0);
    ran(&t);
    t.run_args(["run", "--ui", "plain", "--force=gen", "--explain"])
        .code(0)
        .stdout_has("forced (--force)");
    // gen wrote the same output again: build stays up to date.
    assert_eq!(ran(&t), ["always", "gen"]);
    t.run_args(["run", "--ui", "plain", "--force"]).code(0);
    assert_eq!(ran(&t), ["always", "build", "flavour", "gen"]);
    t.run_args(["run", "--ui", "plain"]).code(0);
    assert_eq!(ran(&t), ["always"]);
    t.run_args(["run", "--force=nope"])
        .code(2)
        .stderr_has("there is no phase `nope`");
}

#[test]
fn dry_run_with_explain_says_what_would_run_and_writes_nothing() {
    let t = project();
    t.run().code(0);
    ran(&t);
    write(&t, "src/a.txt", "changed\n");
    std::fs::remove_file(t.path("out/flavour.txt")).expect("remove");
    let cache = t.path(".milo/cache");
    let before = snapshot(&cache);
    let r = t.run_args(["run", "--dry-run", "--explain"]);
    r.code(0)
        .stdout_has("src/a.txt changed")
        .stdout_has("dependency `gen` will run")
        .stdout_has("output out/flavour.txt was deleted");
    assert_eq!(ran(&t), Vec::<String>::new(), "a dry run runs nothing");
    assert!(!t.path("out/flavour.txt").exists(), "a dry run restores nothing");
    assert_eq!(snapshot(&cache), before, "a dry run writes nothing in the cache");
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &std::path::Path) -> Vec<(String, u64, SystemTime)> {
    let mut out: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(dir.join(&p)).expect("stat");
            (p, m.len(), m.modified().expect("mtime"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_json_stream_and_the_timeline_carry_each_decision() {
    let t = project();
    t.run().code(0);
    let r = t.run_args(["run", "--ui", "json", "--timeline", "t.json"]);
    r.code(0);
    let decisions: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|a| a["type"] == "@@PHASE_DECISION")
        .collect();
    assert_eq!(decisions.len(), 3, "{decisions:#?}");
    assert!(decisions.iter().all(|d| d["payload"]["verdict"] == "up_to_date"));
    assert!(
        decisions
            .iter()
            .all(|d| d["payload"]["key"].as_str().is_some_and(|k| k.len() >= 32))
    );
    let timeline = t.json("t.json");
    assert_eq!(phase(&timeline, "gen")["verdict"], "up_to_date");
    assert_eq!(phase(&timeline, "always")["verdict"], serde_json::Value::Null);
}

#[test]
fn cache_status_prune_and_clean() {
    let t = project();
    t.run().code(0);
    t.run_args(["cache", "status"]).code(0).stdout_has("3 entries");
    // Pruning evicts stored outputs; what was recorded still makes phases up to date.
    t.run_args(["cache", "prune", "--max-size", "1B"])
        .code(0)
        .stdout_has("evicted 3 entries");
    std::fs::remove_file(t.path("out/gen.txt")).expect("remove");
    ran(&t);
    // Nothing to restore from: gen runs again, and its same output leaves build up to date.
    t.run().code(0);
    assert_eq!(ran(&t), ["always", "gen"]);
    // Cleaning forgets everything: every phase runs.
    t.run_args(["cache", "clean"]).code(0).stdout_has("removed the cache");
    t.run().code(0);
    assert_eq!(ran(&t), ["always", "build", "flavour", "gen"]);
    t.run_args(["cache", "prune", "--max-size", "lots"])
        .code(2)
        .stderr_has("unit");
}

#[test]
fn sources_and_outputs_are_checked_when_the_file_is_loaded() {
    let toml = r#"
name = "bad"
[[phase]]
name = "a"
run = "true"
sources = ["src/**/{a,b"]
outputs = ["build/*.o"]
"#;
    Test::with(toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("is not a valid glob")
        .stderr_has("looks like a glob; outputs are paths");
    let toml = r#"
name = "bad"
[[phase]]
name = "a"
run = "true"
outputs = ["/etc/passwd", "../elsewhere", ".", ".milo/x"]
"#;
    Test::with(toml)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("milo.toml:6:")
        .stderr_has("is absolute")
        .stderr_has("leaves the phase's `cwd`")
        .stderr_has("is the phase's `cwd` itself")
        .stderr_has("is inside `.milo/`");
}

#[test]
fn phases_lists_sources_outputs_and_env_inputs() {
    let t = project();
    t.run_args(["phases"])
        .code(0)
        .stdout_has("  sources: src/*.txt")
        .stdout_has("  outputs: out/gen.txt")
        .stdout_has("  env inputs: FLAVOUR");
    let json: serde_json::Value = serde_json::from_str(&t.run_args(["phases", "--json"]).stdout).expect("JSON");
    let gen_phase = json
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "gen"))
        .expect("gen");
    assert_eq!(gen_phase["sources"], serde_json::json!(["src/*.txt"]));
    assert_eq!(gen_phase["outputs"], serde_json::json!(["out/gen.txt"]));
    assert_eq!(gen_phase["cache"], true);
}
