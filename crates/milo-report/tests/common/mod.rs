//! Shared fixtures: a known timeline, a run with a retry and hostile log lines.

#![allow(dead_code)]

use milo::capture::Stream;
use milo_report::{LogLine, ReportPhase, ReportRun, Segment};
use serde_json::{Value, json};

/// A timeline as `milo run --timeline` writes it (phases in declaration order, which is not
/// the execution order).
pub fn known_timeline() -> Value {
    let phase = |name: &str, status: &str, start: Option<f64>, end: Option<f64>, deps: &[&str], parallel: bool| {
        json!({
            "name": name,
            "status": status,
            "started_at": start,
            "finished_at": end,
            "elapsed": start.zip(end).map_or(0.0, |(s, e)| e - s),
            "attempt": if start.is_some() { 1 } else { 0 },
            "error": if status == "failed" { Some("1 test failed: <b>bold</b>") } else { None },
            "log_count": 3,
            "depends_on": deps,
            "parallel": parallel,
            "weight": 1.0,
            "description": format!("the {name} phase"),
            "result": null,
            "reused_from": null,
        })
    };
    json!({
        "pipeline": "site",
        "status": "failed",
        "elapsed": 10.0,
        "progress": 0.6,
        "current_phase": null,
        "error": "phase `test` failed: 1 test failed",
        "execution_order": ["fetch", "build", "lint", "test", "deploy"],
        "phases": [
            phase("fetch", "completed", Some(0.0), Some(2.0), &[], false),
            phase("lint", "completed", Some(2.0), Some(3.0), &["fetch"], true),
            phase("build", "completed", Some(2.0), Some(6.0), &["fetch"], true),
            phase("test", "failed", Some(6.0), Some(9.0), &["build", "lint"], false),
            phase("deploy", "pending", None, None, &["test"], false),
        ],
    })
}

fn segment(attempt: u32, start: f64, end: f64, status: &str, error: Option<&str>) -> Segment {
    Segment {
        attempt,
        start,
        end,
        status: status.into(),
        error: error.map(str::to_owned),
    }
}

/// A run whose `flaky` phase failed once and was retried after a wait, and whose `noisy`
/// phase printed markup.
pub fn retry_run() -> ReportRun {
    let mut noisy = ReportPhase::new("noisy", "completed");
    noisy.attempts = 1;
    noisy.segments.push(segment(1, 0.0, 1.0, "completed", None));
    noisy.logs = vec![
        LogLine {
            stream: Stream::Stdout,
            line: "<script>document.body.dataset.pwned = '1'</script>".into(),
            timestamp: 0.25,
        },
        LogLine {
            stream: Stream::Stderr,
            line: "warning: </pre></details><img src=x onerror=alert(1)> & more".into(),
            timestamp: 0.5,
        },
    ];
    noisy.log_count = 2;
    noisy.history = vec![0.8, 1.2, 0.9];
    let mut flaky = ReportPhase::new("flaky", "completed");
    flaky.depends_on = vec!["noisy".into()];
    flaky.attempts = 2;
    flaky.segments = vec![
        segment(1, 1.0, 2.0, "retried", Some("connection reset \"<eof>\"")),
        segment(2, 3.0, 5.0, "completed", None),
    ];
    flaky.history = vec![3.0, 2.5];
    let mut side = ReportPhase::new("side", "completed");
    side.parallel = true;
    side.attempts = 1;
    side.segments.push(segment(1, 0.0, 4.0, "completed", None));
    ReportRun {
        pipeline: "retry <demo>".into(),
        run: Some(2),
        status: "completed".into(),
        elapsed: 5.0,
        started_at: Some(1_709_210_096.0),
        error: None,
        params: vec![("target".into(), "release <&>".into())],
        trigger: None,
        phases: vec![noisy, side, flaky],
    }
}
