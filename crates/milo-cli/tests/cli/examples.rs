//! The pipelines in `examples/`, run from a copy so that the repository is never written to.

use std::path::{Path, PathBuf};

use crate::util::{Run, Test, phase};

fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

/// A temporary copy of `examples/<name>/milo.toml`, and `milo run` there with `args`.
fn run_example(name: &str, args: &[&str]) -> (Test, Run) {
    let toml = std::fs::read_to_string(example_dir(name).join("milo.toml")).expect("example exists");
    let t = Test::with(&toml)
        .args(["run", "--timeline", "t.json"])
        .args(args.iter().copied());
    let run = t.run();
    (t, run)
}

#[test]
fn every_example_is_valid() {
    for name in ["site-build", "flaky", "failing", "skipped", "incremental"] {
        let file = example_dir(name).join("milo.toml");
        Test::empty()
            .args(["check", "-f", file.to_str().unwrap()])
            .run()
            .code(0)
            .stdout_has("is valid");
    }
}

#[test]
fn site_build_completes_and_writes_the_site() {
    let (t, run) = run_example("site-build", &["--ui", "plain"]);
    run.code(0)
        .stdout_has("✓ site-build completed")
        .stdout_has("index lists 8 pages");
    let index = t.read("build/site/index.html");
    assert!(index.contains("page1.html") && index.contains("page8.html"), "{index}");
    assert!(!index.contains("index.html"), "the index lists itself: {index}");
    assert!(t.path("build/site/assets/style.css").exists());
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "discover")["result"], 8);
    assert_eq!(phase(&tl, "write")["result"]["pages"], 8);
    let order: Vec<&str> = tl["execution_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(order, ["discover", "parse", "assets", "render", "write"]);
}

#[test]
fn site_build_renders_and_copies_assets_at_the_same_time() {
    let (t, run) = run_example("site-build", &["--ui", "json", "--jobs", "2"]);
    run.code(0);
    let tl = t.json("t.json");
    let (render, assets) = (phase(&tl, "render"), phase(&tl, "assets"));
    let f = |p: &serde_json::Value, k: &str| p[k].as_f64().unwrap();
    assert!(
        f(assets, "started_at") < f(render, "finished_at") && f(render, "started_at") < f(assets, "finished_at"),
        "render and assets should overlap: {render:#} {assets:#}"
    );
}

#[test]
fn flaky_completes_on_the_third_attempt() {
    let (t, run) = run_example("flaky", &["--ui", "plain"]);
    run.code(0)
        .stdout_line("[fetch] started (attempt 3)")
        .stdout_line("[fetch] │ attempt 3")
        .stdout_line("[use] │ {\"fetch\":\"ok\"}")
        .stdout_lacks("started (attempt 4)");
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "fetch")["attempt"], 3);
    assert_eq!(phase(&tl, "fetch")["status"], "completed");
    assert_eq!(phase(&tl, "fetch")["result"], "ok");
}

#[test]
fn failing_exits_1_with_the_failed_phases_last_lines_in_the_summary() {
    for ui in ["plain", "progress"] {
        let (t, run) = run_example("failing", &["--ui", ui]);
        run.code(1);
        let out = if ui == "plain" { &run.stdout } else { &run.stderr };
        let summary = &out[out
            .find("✗ failing failed")
            .unwrap_or_else(|| panic!("{}", run.report()))..];
        for line in [
            "  ✗ test  ",
            ": command exited with status 3",
            "│ running 3 tests",
            "│ test parser ... ok",
            "│ test renderer ... FAILED",
        ] {
            assert!(summary.contains(line), "summary lacks {line:?}:\n{summary}");
        }
        assert!(summary.contains("1 completed, 1 failed, 1 pending"), "{summary}");
        let tl = t.json("t.json");
        assert_eq!(phase(&tl, "deploy")["status"], "pending");
    }
}

#[test]
fn skipped_exits_0_and_report_sees_null() {
    let (t, run) = run_example("skipped", &["--ui", "plain"]);
    run.code(0)
        .stdout_has("[lint] skipped after")
        .stdout_line("[report] │ {\"lint\":null}")
        .stdout_has("1 completed, 1 skipped");
    assert_eq!(phase(&t.json("t.json"), "lint")["status"], "skipped");
}

#[test]
fn the_incremental_example_reruns_what_changed_and_restores_what_was_deleted() {
    let src = example_dir("incremental");
    let mut t = Test::with(&std::fs::read_to_string(src.join("milo.toml")).expect("example exists"));
    for dir in ["content", "theme"] {
        for entry in std::fs::read_dir(src.join(dir)).expect("example files") {
            let path = entry.expect("entry").path();
            let name = format!("{dir}/{}", path.file_name().and_then(|n| n.to_str()).expect("name"));
            t = t.file(&name, &std::fs::read_to_string(&path).expect("read"));
        }
    }
    let t = t.args(["run", "--ui", "plain", "--explain"]);
    t.run().code(0).stdout_has("index lists 3 pages").stdout_has("3 ran");
    t.run().code(0).stdout_has("0 ran, 3 up to date");
    std::fs::write(t.path("content/faq.md"), "# FAQ\n\nEdited.\n").expect("edit");
    t.run()
        .code(0)
        .stdout_has("2 ran, 1 up to date")
        .stdout_has("content/faq.md changed");
    std::fs::remove_dir_all(t.path("public")).expect("remove the site");
    t.run().code(0).stdout_has("0 ran, 3 up to date (3 restored)");
    assert!(t.read("public/pages/faq.html").contains("Edited."));
    assert!(t.read("public/index.html").contains("usage.html"));
}
