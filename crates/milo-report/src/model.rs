//! The report's data model ([`ReportRun`], [`ReportPhase`], [`Segment`], [`LogLine`]) and
//! what is derived from it: each phase's span, the critical path and the lanes of
//! concurrently running phases.

use std::collections::HashMap;

use milo::capture::Stream;
use milo::pipeline::Row;
use serde::Serialize;

/// One run, as a report shows it. Times are seconds since the run started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRun {
    /// The pipeline's name.
    pub pipeline: String,
    /// The run's number in the history (`None` for a report built from a timeline file).
    pub run: Option<i64>,
    /// `completed`, `failed`, `cancelled`, `running`, `interrupted`…
    pub status: String,
    /// Seconds from the run's start to its end (or to its last recorded action).
    pub elapsed: f64,
    /// Wall-clock start, seconds since the Unix epoch, when known.
    pub started_at: Option<f64>,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// The run's parameter values, in declaration order (empty without parameters).
    pub params: Vec<(String, String)>,
    /// What started the run: a `milo watch` cycle and its changed paths (`None` for a plain
    /// run, or a report built from a timeline file).
    pub trigger: Option<milo_history::Trigger>,
    /// The phases, in execution order.
    pub phases: Vec<ReportPhase>,
}

/// One phase of a [`ReportRun`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportPhase {
    /// Its name.
    pub name: String,
    /// `completed`, `failed`, `skipped`, `cancelled`, `running`, `pending`…
    pub status: String,
    /// The phases it depends on.
    pub depends_on: Vec<String>,
    /// Whether it may run concurrently with other parallel phases.
    pub parallel: bool,
    /// Its description.
    pub description: String,
    /// Its last error.
    pub error: Option<String>,
    /// How many attempts it made (0 if it never started).
    pub attempts: u32,
    /// The run its result was reused from (`milo run --resume`).
    pub reused_from: Option<String>,
    /// For an incremental phase: the key it was decided under.
    pub key: Option<String>,
    /// For an incremental phase: `run`, `up_to_date` or `restored`.
    pub verdict: Option<String>,
    /// For an incremental phase: why it ran or did not (`src/main.c changed`…).
    pub reason: Option<String>,
    /// For an instance of a matrix phase: its group, the matrix phase's name (the table lists
    /// the instances under one line of the group).
    pub group: Option<String>,
    /// Its attempts, in order (a phase that was up to date or restored: one empty segment at
    /// the moment it completed, with status `up_to_date` or `restored` and attempt 0); the waits between retries are the gaps between them.
    pub segments: Vec<Segment>,
    /// Its captured output, in order.
    pub logs: Vec<LogLine>,
    /// How many lines it logged in all (`logs` may hold fewer, or none for a timeline file).
    pub log_count: u64,
    /// Its durations in earlier runs of the pipeline, oldest first (empty without history).
    pub history: Vec<f64>,
}

/// One attempt of a phase: from its `@@PHASE_START` to the action that ended it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started, seconds since the run started.
    pub start: f64,
    /// When it ended (for an attempt that never ended: the run's end).
    pub end: f64,
    /// `retried` for an attempt that failed and was tried again, else how the phase ended
    /// (`completed`, `failed`, `skipped`, `cancelled`) or `running` / `interrupted`.
    pub status: String,
    /// The attempt's error, if it failed.
    pub error: Option<String>,
}

impl Segment {
    /// Seconds from start to end.
    pub fn duration(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }
}

/// One captured line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// `stdout` or `stderr`.
    pub stream: Stream,
    /// The text, without its newline.
    pub line: String,
    /// Seconds since the run started.
    pub timestamp: f64,
}

impl ReportPhase {
    /// A phase with no attempts, logs or history.
    pub fn new(name: impl Into<String>, status: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: status.into(),
            depends_on: Vec::new(),
            parallel: false,
            description: String::new(),
            error: None,
            attempts: 0,
            reused_from: None,
            key: None,
            verdict: None,
            reason: None,
            group: None,
            segments: Vec::new(),
            logs: Vec::new(),
            log_count: 0,
            history: Vec::new(),
        }
    }

    /// `Some("up_to_date")` or `Some("restored")` when the phase completed without running
    /// (an incremental phase that was up to date, or restored from the cache).
    pub fn fresh(&self) -> Option<&str> {
        self.verdict
            .as_deref()
            .filter(|v| self.status == "completed" && matches!(*v, "up_to_date" | "restored"))
    }

    /// How its state reads: `up to date`, `restored`, else its status.
    pub fn state_label(&self) -> &str {
        milo_history::cli::state_label(&self.status, self.fresh())
    }

    /// When its first attempt started.
    pub fn start(&self) -> Option<f64> {
        self.segments.iter().map(|s| s.start).reduce(f64::min)
    }

    /// When its last attempt ended.
    pub fn end(&self) -> Option<f64> {
        self.segments.iter().map(|s| s.end).reduce(f64::max)
    }

    /// Seconds from its first start to its end (attempts and the waits between them).
    pub fn duration(&self) -> Option<f64> {
        Some((self.end()? - self.start()?).max(0.0))
    }

    /// The median of [`history`](Self::history), if there is any.
    pub fn median(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.history.iter().copied().filter(|d| d.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }
}

impl ReportRun {
    /// `3 ran, 17 up to date (2 restored)` when any phase is incremental, else `None`: the
    /// phases that started at least once, and those that completed without running.
    pub fn decision_summary(&self) -> Option<String> {
        if self.phases.iter().all(|p| p.verdict.is_none()) {
            return None;
        }
        let ran = self.phases.iter().filter(|p| p.attempts > 0).count();
        let fresh = self.phases.iter().filter(|p| p.fresh().is_some()).count();
        let restored = self.phases.iter().filter(|p| p.fresh() == Some("restored")).count();
        Some(milo_history::cli::decision_counts(ran, fresh, restored))
    }

    /// The phases as the table lists them, indices into [`phases`](Self::phases): the
    /// instances of a matrix phase gathered into one [`Row::Group`] where the first of them
    /// is, in execution order.
    pub fn rows(&self) -> Vec<Row> {
        let groups: Vec<Option<&str>> = self.phases.iter().map(|p| p.group.as_deref()).collect();
        Row::gather(&groups)
    }
}

/// Allowance for timestamps recorded a hair apart (seconds).
const EPSILON: f64 = 1e-6;

impl ReportRun {
    /// The time the chart spans: the run's elapsed time, or the last segment's end if later
    /// (never zero, so positions stay finite).
    pub fn span(&self) -> f64 {
        let last = self.phases.iter().filter_map(ReportPhase::end).fold(0.0, f64::max);
        let span = self.elapsed.max(last);
        if span.is_finite() && span > 0.0 { span } else { 1.0 }
    }

    /// The critical path, as indexes into [`phases`](Self::phases) from first to last: start
    /// at the phase that finished last, then repeatedly step to the dependency that finished
    /// last. A phase with no dependency that ran but that started late waited for the phases
    /// before it (a non-parallel phase runs alone), so the step goes to the phase that
    /// finished last before it started.
    pub fn critical_path(&self) -> Vec<usize> {
        let index: HashMap<&str, usize> = self
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        let ends: Vec<Option<f64>> = self.phases.iter().map(ReportPhase::end).collect();
        let latest = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates
                .filter_map(|i| Some((i, ends[i]?)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(i, _)| i)
        };
        let Some(mut current) = latest(&mut (0..self.phases.len())) else {
            return Vec::new();
        };
        let mut path = vec![current];
        let mut seen = vec![false; self.phases.len()];
        seen[current] = true;
        loop {
            let phase = &self.phases[current];
            let mut deps = phase.depends_on.iter().filter_map(|d| index.get(d.as_str()).copied());
            let next = latest(&mut deps).or_else(|| {
                let start = phase.start()?;
                if start <= EPSILON {
                    return None;
                }
                latest(
                    &mut (0..self.phases.len())
                        .filter(|&i| i != current && ends[i].is_some_and(|e| e <= start + EPSILON)),
                )
            });
            match next {
                Some(i) if !seen[i] => {
                    seen[i] = true;
                    path.push(i);
                    current = i;
                }
                _ => break,
            }
        }
        path.reverse();
        path
    }

    /// A lane for each phase (indexes into [`phases`](Self::phases)) so that phases sharing a
    /// lane never overlap in time: phases that ran concurrently get different lanes. Phases
    /// that never started get `None`. Returns the lanes and how many there are.
    pub fn lanes(&self) -> (Vec<Option<usize>>, usize) {
        let mut order: Vec<(usize, f64, f64)> = self
            .phases
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.start()?, p.end()?)))
            .collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let mut lane_end: Vec<f64> = Vec::new();
        let mut lanes = vec![None; self.phases.len()];
        for (i, start, end) in order {
            let lane = match lane_end.iter().position(|&e| e <= start + EPSILON) {
                Some(l) => l,
                None => {
                    lane_end.push(f64::NEG_INFINITY);
                    lane_end.len() - 1
                }
            };
            lane_end[lane] = end.max(start);
            lanes[i] = Some(lane);
        }
        (lanes, lane_end.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(name: &str, deps: &[&str], start: f64, end: f64) -> ReportPhase {
        let mut p = ReportPhase::new(name, "completed");
        p.depends_on = deps.iter().map(|d| d.to_string()).collect();
        p.segments.push(Segment {
            attempt: 1,
            start,
            end,
            status: "completed".into(),
            error: None,
        });
        p
    }

    fn run(phases: Vec<ReportPhase>) -> ReportRun {
        ReportRun {
            pipeline: "p".into(),
            run: None,
            status: "completed".into(),
            elapsed: 10.0,
            started_at: None,
            error: None,
            params: Vec::new(),
            trigger: None,
            phases,
        }
    }

    #[test]
    fn critical_path_follows_the_dependency_that_finished_last() {
        let r = run(vec![
            phase("a", &[], 0.0, 1.0),
            phase("b", &["a"], 1.0, 5.0),
            phase("c", &["a"], 1.0, 3.0),
            phase("d", &["b", "c"], 5.0, 6.0),
            phase("e", &["a"], 1.0, 2.0),
        ]);
        assert_eq!(r.critical_path(), vec![0, 1, 3]);
    }

    #[test]
    fn critical_path_crosses_implicit_waits() {
        // No declared dependencies: sequential phases wait for each other.
        let r = run(vec![phase("a", &[], 0.0, 1.0), phase("b", &[], 1.0, 2.0)]);
        assert_eq!(r.critical_path(), vec![0, 1]);
        assert!(run(vec![]).critical_path().is_empty());
    }

    #[test]
    fn overlapping_phases_get_different_lanes() {
        let r = run(vec![
            phase("a", &[], 0.0, 1.0),
            phase("b", &["a"], 1.0, 5.0),
            phase("c", &["a"], 1.0, 3.0),
            phase("d", &["c"], 3.0, 4.0),
            ReportPhase::new("never", "pending"),
        ]);
        let (lanes, n) = r.lanes();
        assert_eq!(n, 2);
        assert_eq!(lanes, vec![Some(0), Some(0), Some(1), Some(1), None]);
    }

    #[test]
    fn median_of_history() {
        let mut p = ReportPhase::new("a", "completed");
        assert_eq!(p.median(), None);
        p.history = vec![3.0, 1.0, 2.0, 10.0];
        assert_eq!(p.median(), Some(2.5));
    }
}
