//! [`render_chrome_trace`]: a run in the Chrome trace-event format, for `chrome://tracing`,
//! Perfetto (<https://ui.perfetto.dev>) or speedscope.
//!
//! Every event is a complete event (`"ph": "X"`) with `name`, `cat`, `ts` and `dur` in
//! microseconds since the run started, `pid` 1 and a `tid` per lane: tid 0 holds the whole
//! run, and phases that ran at the same time get different tids (see
//! [`ReportRun::lanes`]), so overlapping phases never collide. Each attempt is its own event
//! (`cat` `phase`), and each wait between retries too (`cat` `retry-wait`). An incremental
//! phase's events carry its `verdict` (`run`, `up_to_date`, `restored`), `reason` and `key`
//! in `args`; one that did not run is a zero-length event with status `up_to_date` or
//! `restored`.

use serde_json::{Value, json};

use crate::model::ReportRun;

/// Seconds to trace microseconds, rounded to the nanosecond so the JSON stays short.
fn micros(secs: f64) -> f64 {
    let us = secs * 1e6;
    if us.is_finite() {
        (us * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// The run as trace-event JSON: `{"traceEvents": [...], "displayTimeUnit": "ms",
/// "otherData": {...}}`.
pub fn render_chrome_trace(run: &ReportRun) -> Value {
    let (lanes, _) = run.lanes();
    let critical = run.critical_path();
    let mut events = vec![json!({
        "name": run.pipeline,
        "cat": "pipeline",
        "ph": "X",
        "ts": 0.0,
        "dur": micros(run.elapsed.max(0.0)),
        "pid": 1,
        "tid": 0,
        "args": {"status": run.status, "run": run.run, "error": run.error},
    })];
    for (i, phase) in run.phases.iter().enumerate() {
        let Some(lane) = lanes[i] else { continue };
        let tid = lane + 1;
        for (k, s) in phase.segments.iter().enumerate() {
            let start = s.start.max(0.0);
            let mut event = json!({
                "name": phase.name,
                "cat": "phase",
                "ph": "X",
                "ts": micros(start),
                "dur": micros((s.end - start).max(0.0)),
                "pid": 1,
                "tid": tid,
                "args": {
                    "attempt": s.attempt,
                    "status": s.status,
                    "error": s.error,
                    "parallel": phase.parallel,
                    "depends_on": phase.depends_on,
                    "critical": critical.contains(&i),
                },
            });
            if let Some(verdict) = &phase.verdict {
                event["args"]["verdict"] = json!(verdict);
                event["args"]["reason"] = json!(phase.reason);
                event["args"]["key"] = json!(phase.key);
            }
            events.push(event);
            if let Some(next) = phase.segments.get(k + 1)
                && next.start > s.end
            {
                events.push(json!({
                    "name": format!("{} (retry wait)", phase.name),
                    "cat": "retry-wait",
                    "ph": "X",
                    "ts": micros(s.end.max(0.0)),
                    "dur": micros(next.start - s.end.max(0.0)),
                    "pid": 1,
                    "tid": tid,
                    "args": {"after_attempt": s.attempt},
                }));
            }
        }
    }
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "pipeline": run.pipeline,
            "run": run.run,
            "status": run.status,
        },
    })
}
