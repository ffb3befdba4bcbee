//! Building a [`ReportRun`]: from a recorded run in the history ([`ReportRun::from_history`],
//! every attempt from the journal, the full logs, earlier runs' durations) or from a
//! `--timeline` JSON file ([`ReportRun::from_timeline`], one segment per phase, no logs).
//! Both carry each incremental phase's decision (key, verdict, reason); a phase that was up
//! to date or restored gets one empty segment where it completed.

use std::collections::HashMap;

use milo::pipeline::PipelineAction;
use milo_history::{History, RunId, RunStatus};
use serde_json::Value;

use crate::error::ReportError;
use crate::model::{LogLine, ReportPhase, ReportRun, Segment};

/// How many earlier runs of the pipeline feed each phase's median and sparkline.
pub const HISTORY_RUNS: usize = 20;

/// How many of the most recent runs are searched for earlier runs of the same pipeline.
const HISTORY_SCAN: usize = 500;

impl ReportRun {
    /// The report of a recorded run (`None` = the newest): phases and their status from
    /// [`History::show`], each attempt's start and end from the journal, dependencies from
    /// the replayed definition, logs from [`History::logs`], and the durations of up to
    /// [`HISTORY_RUNS`] earlier runs of the same pipeline.
    pub fn from_history(history: &History, run: Option<RunId>) -> Result<Self, ReportError> {
        let detail = history.show(run)?;
        let id = detail.run.id;
        let mut phases: Vec<ReportPhase> = detail
            .phases
            .iter()
            .map(|p| {
                let mut phase = ReportPhase::new(&p.name, &p.status);
                phase.error = p.error.clone().filter(|e| !e.is_empty());
                phase.attempts = p.attempts;
                phase.reused_from = p.reused_from.clone();
                phase.key = p.key.clone();
                phase.verdict = p.verdict.clone();
                phase.reason = p.reason.clone();
                phase.group = p.group.clone();
                phase.log_count = u64::try_from(p.log_count).unwrap_or(0);
                phase
            })
            .collect();
        let index: HashMap<String, usize> = phases.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();

        // The graph, from the recorded definition (the replay rebuilds it; a tampered
        // journal leaves the report without edges rather than failing).
        if let Ok(replay) = history.replay(Some(id))
            && let Some(state) = replay.state
        {
            for p in state.phases.iter() {
                if let Some(&i) = index.get(&*p.name) {
                    let phase = &mut phases[i];
                    phase.depends_on = p.info.depends_on.iter().map(|d| d.to_string()).collect();
                    phase.parallel = p.info.parallel;
                    phase.description = p.info.description.clone();
                }
            }
        }

        // Attempts, from the journal.
        let mut end_of_run: Option<f64> = None;
        let mut last_seen = 0.0f64;
        for entry in history.journal(Some(id))? {
            // Log lines are read below, chunk by chunk; skip them without parsing.
            if entry.json.starts_with(r#"{"type":"@@PHASE_LOG""#) {
                continue;
            }
            let Ok(action) = entry.action() else { continue };
            if let Some(t) = action.timestamp().filter(|t| t.is_finite()) {
                last_seen = last_seen.max(t);
                if action.is_terminal() {
                    end_of_run = Some(t);
                }
            }
            let Some(&i) = action.phase().and_then(|n| index.get(n)) else {
                continue;
            };
            let phase = &mut phases[i];
            // An up-to-date or restored phase never starts: it is drawn where it completed.
            if let (PipelineAction::PhaseComplete { timestamp, .. }, Some(fresh)) = (&action, phase.fresh())
                && !phase.segments.iter().any(|s| s.end.is_nan())
            {
                let fresh = fresh.to_owned();
                phase.segments.push(fresh_segment(*timestamp, fresh));
                continue;
            }
            apply(&mut phase.segments, &action);
        }
        let elapsed = end_of_run.unwrap_or_else(|| last_seen.max(detail.run.duration.unwrap_or(0.0)));
        for phase in &mut phases {
            for s in phase.segments.iter_mut().filter(|s| s.end.is_nan()) {
                s.end = elapsed.max(s.start);
                s.status = match phase.status.as_str() {
                    "running" | "retrying" if detail.run.status != RunStatus::Running => "interrupted".into(),
                    "running" | "retrying" | "interrupted" | "cancelled" => phase.status.clone(),
                    _ => "interrupted".into(),
                };
            }
        }

        // Logs.
        for phase in &mut phases {
            if phase.log_count == 0 {
                continue;
            }
            phase.logs = history
                .logs(Some(id), &phase.name, None)?
                .into_iter()
                .map(|e| LogLine {
                    stream: e.stream,
                    line: e.line,
                    timestamp: e.timestamp,
                })
                .collect();
        }

        // Earlier runs: each phase's duration where it completed (not reused).
        let mut earlier: Vec<RunId> = history
            .runs(HISTORY_SCAN)?
            .into_iter()
            .filter(|r| r.pipeline == detail.run.pipeline && r.id < id && r.status != RunStatus::Running)
            .map(|r| r.id)
            .take(HISTORY_RUNS)
            .collect();
        earlier.reverse();
        for run in earlier {
            let Ok(old) = history.show(Some(run)) else { continue };
            for p in old.phases {
                // Only the phases that ran: reused, up-to-date and restored ones took no time.
                if p.status != "completed" || p.reused_from.is_some() || p.fresh().is_some() {
                    continue;
                }
                if let (Some(&i), Some(d)) = (index.get(&p.name), p.duration.filter(|d| d.is_finite())) {
                    phases[i].history.push(d);
                }
            }
        }

        Ok(Self {
            pipeline: detail.run.pipeline,
            run: Some(id),
            status: detail.run.status.to_string(),
            elapsed,
            started_at: Some(detail.run.started_at),
            error: detail.run.error,
            params: detail.run.params,
            trigger: detail.run.trigger,
            phases,
        })
    }

    /// The report of a timeline JSON (the schema of
    /// [`pipeline_to_timeline`](milo::pipeline::pipeline_to_timeline), as written by
    /// `milo run --timeline FILE`). The timeline keeps no attempts, so each phase that ran is
    /// one segment from `started_at` to `finished_at`; it keeps no logs either.
    pub fn from_timeline(timeline: &Value) -> Result<Self, String> {
        let obj = timeline.as_object().ok_or("the top level is not a JSON object")?;
        let pipeline = obj
            .get("pipeline")
            .and_then(Value::as_str)
            .ok_or("it has no `pipeline` name")?
            .to_owned();
        let list = obj
            .get("phases")
            .and_then(Value::as_array)
            .ok_or("it has no `phases` array")?;
        let elapsed = seconds(obj.get("elapsed"), "`elapsed`")?.unwrap_or(0.0);
        let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut phases = Vec::with_capacity(list.len());
        for (n, p) in list.iter().enumerate() {
            let name = str_of(p, "name").ok_or_else(|| format!("phase {} has no `name`", n + 1))?;
            let status = str_of(p, "status").unwrap_or_else(|| "pending".into());
            let mut phase = ReportPhase::new(name, status.clone());
            phase.depends_on = p
                .get("depends_on")
                .and_then(Value::as_array)
                .map(|d| d.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            phase.parallel = p.get("parallel").and_then(Value::as_bool).unwrap_or(false);
            phase.description = str_of(p, "description").unwrap_or_default();
            phase.error = str_of(p, "error").filter(|e| !e.is_empty());
            phase.attempts = p
                .get("attempt")
                .and_then(Value::as_u64)
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0);
            phase.reused_from = str_of(p, "reused_from");
            phase.key = str_of(p, "key");
            phase.verdict = str_of(p, "verdict");
            phase.reason = str_of(p, "reason");
            // A timeline names no groups: an instance's name says its matrix phase.
            phase.group = milo_history::def::group_of_name(&phase.name).map(str::to_owned);
            // `log_total` (every line) where the timeline has it; `log_count` is the lines kept.
            phase.log_count = p
                .get("log_total")
                .or_else(|| p.get("log_count"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let field = |key: &str| seconds(p.get(key), &format!("phase `{}`'s `{key}`", phase.name));
            let started = field("started_at")?;
            let finished = field("finished_at")?;
            let elapsed_here = field("elapsed")?.unwrap_or(0.0);
            if let (Some(fresh), Some(at)) = (phase.fresh(), finished.or(started)) {
                let fresh = fresh.to_owned();
                phase.segments.push(fresh_segment(at, fresh));
            } else if let Some(start) = started {
                let end = finished.unwrap_or((start + elapsed_here).max(elapsed));
                phase.segments.push(Segment {
                    attempt: phase.attempts.max(1),
                    start,
                    end: end.max(start),
                    status: status.clone(),
                    error: phase.error.clone(),
                });
            }
            phases.push(phase);
        }
        // Execution order, when the timeline says.
        if let Some(order) = obj.get("execution_order").and_then(Value::as_array) {
            let rank: HashMap<&str, usize> = order
                .iter()
                .filter_map(Value::as_str)
                .enumerate()
                .map(|(i, n)| (n, i))
                .collect();
            phases.sort_by_key(|p| rank.get(p.name.as_str()).copied().unwrap_or(usize::MAX));
        }
        Ok(Self {
            pipeline,
            run: None,
            status: str_of(timeline, "status").unwrap_or_else(|| "unknown".into()),
            elapsed,
            started_at: None,
            error: str_of(timeline, "error").filter(|e| !e.is_empty()),
            params: Vec::new(),
            trigger: None,
            phases,
        })
    }
}

/// The longest time a timeline may give, in seconds (about 31 million years): anything
/// longer is a damaged or hand-made file, and would not fit the report's arithmetic.
pub const MAX_SECONDS: f64 = 1e15;

/// A time of a timeline (`what` names it for the message): absent or `null` is `None`;
/// otherwise a number of seconds from 0 to [`MAX_SECONDS`].
fn seconds(value: Option<&Value>, what: &str) -> Result<Option<f64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=MAX_SECONDS).contains(&t) => Ok(Some(t)),
            Some(t) => Err(format!(
                "{what} is {}, not a time in seconds from 0 to {MAX_SECONDS:e}",
                readable(t)
            )),
            None => Err(format!("{what} is {v}, not a number of seconds")),
        },
    }
}

/// A number as people write it: `1e20` rather than twenty digits.
fn readable(t: f64) -> String {
    if t.is_finite() && t.abs() < 1e9 {
        t.to_string()
    } else {
        format!("{t:e}")
    }
}

/// The segment of a phase that completed at `at` without running (`status` `up_to_date` or
/// `restored`): no attempt, no duration.
fn fresh_segment(at: f64, status: String) -> Segment {
    Segment {
        attempt: 0,
        start: at,
        end: at,
        status,
        error: None,
    }
}

/// Applies one journal action about a phase to its segments. An attempt still open has a
/// NaN end.
fn apply(segments: &mut Vec<Segment>, action: &PipelineAction) {
    let mut close = |t: f64, status: &str, error: Option<&str>| {
        if let Some(s) = segments.last_mut().filter(|s| s.end.is_nan()) {
            s.end = t.max(s.start);
            s.status = status.to_owned();
            s.error = error.filter(|e| !e.is_empty()).map(str::to_owned);
        }
    };
    match action {
        PipelineAction::PhaseStart { attempt, timestamp, .. } => {
            close(*timestamp, "interrupted", None);
            segments.push(Segment {
                attempt: *attempt,
                start: *timestamp,
                end: f64::NAN,
                status: "running".into(),
                error: None,
            });
        }
        PipelineAction::PhaseRetry { error, timestamp, .. } => close(*timestamp, "retried", Some(error)),
        PipelineAction::PhaseComplete { timestamp, .. } => close(*timestamp, "completed", None),
        PipelineAction::PhaseFailed { error, timestamp, .. } => close(*timestamp, "failed", Some(error)),
        PipelineAction::PhaseSkipped { error, timestamp, .. } => close(*timestamp, "skipped", Some(error)),
        PipelineAction::PhaseCancelled { timestamp, .. } => close(*timestamp, "cancelled", None),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn journal_actions_become_attempts() {
        let name: Arc<str> = Arc::from("b");
        let mut segments = Vec::new();
        for a in [
            PipelineAction::PhaseStart {
                name: name.clone(),
                attempt: 1,
                timestamp: 1.0,
            },
            PipelineAction::PhaseRetry {
                name: name.clone(),
                attempt: 1,
                error: "boom".into(),
                max_retries: 2,
                delay: 0.5,
                timestamp: 2.0,
            },
            PipelineAction::PhaseStart {
                name: name.clone(),
                attempt: 2,
                timestamp: 2.5,
            },
            PipelineAction::PhaseFailed {
                name: name.clone(),
                error: "again".into(),
                timestamp: 3.0,
            },
        ] {
            apply(&mut segments, &a);
        }
        assert_eq!(segments.len(), 2);
        assert_eq!(
            (
                segments[0].attempt,
                segments[0].start,
                segments[0].end,
                segments[0].status.as_str()
            ),
            (1, 1.0, 2.0, "retried")
        );
        assert_eq!(segments[0].error.as_deref(), Some("boom"));
        assert_eq!(
            (
                segments[1].attempt,
                segments[1].start,
                segments[1].end,
                segments[1].status.as_str()
            ),
            (2, 2.5, 3.0, "failed")
        );
    }

    #[test]
    fn a_timeline_without_phases_is_rejected() {
        assert!(ReportRun::from_timeline(&serde_json::json!({"pipeline": "x"})).is_err());
        assert!(ReportRun::from_timeline(&serde_json::json!([1])).is_err());
    }
}
