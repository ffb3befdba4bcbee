//! `milo report`: an HTML page or a Chrome trace of a recorded run, or of a `--timeline` file.

use crate::util::Test;

const FLAKY: &str = r#"
name = "reported"

[[phase]]
name = "fetch"
run = '''
echo "attempt $MILO_ATTEMPT"
[ "$MILO_ATTEMPT" -ge 2 ] || { echo "<script>alert(1)</script>" >&2; exit 1; }
'''
policy = { on_fail = "retry", max_retries = 2, retry_delay = "50ms" }

[[phase]]
name = "build"
depends_on = ["fetch"]
run = "echo built"
"#;

#[test]
fn the_last_run_becomes_a_self_contained_page_with_a_bar_per_attempt() {
    let t = Test::with(FLAKY).args(["run", "--ui", "plain"]);
    t.run().code(0);
    let t = t.then(["report", "-o", "page.html"]);
    let run = t.run();
    run.code(0);
    assert!(run.stdout.contains("page.html"), "{}", run.stdout);
    let html = t.read("page.html");
    assert_eq!(
        html.matches("class=\"bar").count(),
        3,
        "two attempts of fetch and one of build"
    );
    assert!(html.contains("data-phase=\"fetch\""));
    assert!(!html.contains("<script>alert(1)"), "log lines must be escaped");
    assert!(html.contains("&lt;script&gt;alert(1)"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "nothing is fetched from the network"
    );
}

#[test]
fn a_chrome_trace_and_a_page_from_a_timeline_file() {
    let t = Test::with(FLAKY).args(["run", "--ui", "plain", "--timeline", "timeline.json", "--no-history"]);
    t.run().code(0);
    let t = t.then(["report", "--timeline", "timeline.json", "-o", "from-timeline.html"]);
    t.run().code(0);
    assert!(t.read("from-timeline.html").contains("data-phase=\"build\""));

    let t = t.then(["run", "--ui", "plain"]);
    t.run().code(0);
    let t = t.then(["report", "--format", "chrome-trace", "-o", "trace.json"]);
    t.run().code(0);
    let trace = t.json("trace.json");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    assert!(events.iter().any(|e| e["name"] == "build" && e["ph"] == "X"));
    for e in events {
        assert!(
            e["ts"].as_f64().is_some_and(|ts| ts >= 0.0) && e["dur"].as_f64().is_some(),
            "{e}"
        );
    }
}

#[test]
fn without_history_there_is_nothing_to_report() {
    let t = Test::with(FLAKY).args(["report"]);
    let run = t.run();
    assert_ne!(run.code, Some(0));
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("no run history"), "{}", run.stderr);
}

#[test]
fn a_timeline_with_times_out_of_range_is_a_clear_error_not_a_panic() {
    let mut t = Test::with(FLAKY).args(["run", "--ui", "plain", "--timeline", "timeline.json", "--no-history"]);
    t.run().code(0);
    let good = t.json("timeline.json");
    for (label, edit) in [
        (
            "elapsed",
            &(|v: &mut serde_json::Value| v["elapsed"] = 1e20.into()) as &dyn Fn(&mut serde_json::Value),
        ),
        ("phase elapsed", &|v: &mut serde_json::Value| {
            v["phases"][0]["elapsed"] = 1e300.into()
        }),
        ("negative start", &|v: &mut serde_json::Value| {
            v["phases"][1]["started_at"] = (-5.0).into()
        }),
    ] {
        let mut bad = good.clone();
        edit(&mut bad);
        t = t
            .file("bad.json", &bad.to_string())
            .then(["report", "--timeline", "bad.json", "-o", "bad.html"]);
        let run = t.run();
        run.code(2);
        assert!(
            run.stderr.contains("is not a milo timeline"),
            "{label}: {}",
            run.report()
        );
        assert!(
            run.stderr.contains("not a time in seconds"),
            "{label}: {}",
            run.report()
        );
        assert!(!run.stderr.contains("panicked"), "{label}: {}", run.report());
    }
}
