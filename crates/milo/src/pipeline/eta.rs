//! [`Eta`]: how long a run still needs, and how far along it is, from the median durations of
//! its phases in earlier successful runs (the run history provides them) or, without
//! history, from this run's own pace.
//!
//! A phase without a median is estimated from its weight: seconds per unit of weight come
//! from the phases that have a median, else from the phases of this run that completed (the
//! time they took over their weight). With neither there is nothing to base an estimate on:
//! [`Eta::remaining`] is `None` rather than a guess. A running phase counts its time so far
//! against its expected duration. The remaining time is the longer of the critical path
//! (dependencies run one after another) and the remaining work spread over `jobs` workers;
//! non-parallel phases count as running alone.
//!
//! A phase of an incremental run that was up to date or restored from the cache took no time
//! of its own (~0 s): one decided so and not completed yet is expected to take 0 s, and the
//! time such phases took never counts as a pace (as for phases reused by `--resume`). The
//! history's medians leave them out too.
//!
//! [`Eta::progress`] is the share of the weight done, running phases included for the part
//! of their expected duration they have run (at most [`RUNNING_CAP`] of it until they
//! complete), so a bar moves while long phases run instead of only when one ends.

use std::collections::HashMap;

use super::state::{PipelineState, Status};

/// The most of its weight a running phase counts for in [`Eta::progress`] before it
/// completes, however long it has run.
pub const RUNNING_CAP: f64 = 0.95;

/// An ETA estimator: median phase durations from earlier runs and the `jobs` limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Eta {
    medians: HashMap<String, f64>,
    jobs: usize,
}

impl Eta {
    /// Estimates from `medians` (seconds per phase name) with `jobs` parallel workers.
    pub fn new(medians: HashMap<String, f64>, jobs: usize) -> Self {
        Self { medians, jobs }
    }

    /// Estimates from the weights alone (no history).
    pub fn from_weights(jobs: usize) -> Self {
        Self::new(HashMap::new(), jobs)
    }

    /// Whether there are medians from earlier runs.
    pub fn has_history(&self) -> bool {
        !self.medians.is_empty()
    }

    /// Seconds until the run in `state` ends, at `now` seconds since it started; `None` when
    /// there is nothing to base it on yet (no history and no phase of this run completed).
    pub fn remaining(&self, state: &PipelineState, now: f64) -> Option<f64> {
        estimate_remaining(state, now, &self.medians, self.jobs)
    }

    /// The share of the run done at `now`, in [0, 1]: the weight of the finished phases, plus
    /// the weight of each running phase times the part of its expected duration it has run
    /// (at most [`RUNNING_CAP`]). Never less than `state.progress`.
    pub fn progress(&self, state: &PipelineState, now: f64) -> f64 {
        let total = state.def().total_weight();
        if state.status != Status::Running || total <= 0.0 {
            return state.progress;
        }
        let now = clamp_now(state, now);
        let per_weight = seconds_per_weight(state, &self.medians);
        let running: f64 = state
            .def()
            .phases
            .iter()
            .zip(&state.phases)
            .filter(|(_, p)| matches!(p.status, Status::Queued | Status::Running | Status::Retrying))
            .filter_map(|(info, p)| {
                let expected = expected_secs(info, &self.medians, per_weight)?;
                let ran = (now - p.started_at?).max(0.0);
                let share = if expected > 0.0 { ran / expected } else { 1.0 };
                Some(info.weight * share.min(RUNNING_CAP))
            })
            .sum();
        (state.progress + running / total).clamp(state.progress, 1.0)
    }
}

/// `now`, never before the state's own elapsed time (a NaN counts as that).
fn clamp_now(state: &PipelineState, now: f64) -> f64 {
    if now.is_finite() {
        now.max(state.elapsed)
    } else {
        state.elapsed
    }
}

/// Seconds per unit of weight: from the phases with a median, else from the phases of this
/// run that completed by running (not reused, not up to date or restored), else unknown.
fn seconds_per_weight(state: &PipelineState, medians: &HashMap<String, f64>) -> Option<f64> {
    let def = state.def();
    let (known_secs, known_weight) = def
        .phases
        .iter()
        .filter_map(|p| medians.get(&*p.name).map(|m| (*m, p.weight)))
        .fold((0.0, 0.0), |(s, w), (m, pw)| (s + m, w + pw));
    if known_weight > 0.0 {
        return Some(known_secs / known_weight);
    }
    let (done_secs, done_weight) = def
        .phases
        .iter()
        .zip(&state.phases)
        .filter(|(_, p)| p.status == Status::Completed && p.reused_from.is_none() && p.fresh().is_none())
        .fold((0.0, 0.0), |(s, w), (info, p)| (s + p.elapsed, w + info.weight));
    (done_weight > 0.0).then(|| done_secs / done_weight)
}

/// How long phase `info` is expected to take: its median, else its weight at `per_weight`.
fn expected_secs(info: &super::PhaseInfo, medians: &HashMap<String, f64>, per_weight: Option<f64>) -> Option<f64> {
    match medians.get(&*info.name) {
        Some(m) => Some(*m),
        None => Some(info.weight * per_weight?),
    }
}

fn estimate_remaining(state: &PipelineState, now: f64, medians: &HashMap<String, f64>, jobs: usize) -> Option<f64> {
    let now = clamp_now(state, now);
    let def = state.def();
    let per_weight = seconds_per_weight(state, medians);
    let n = def.phases.len();
    let mut remaining = vec![0.0f64; n];
    for (i, info) in def.phases.iter().enumerate() {
        let Some(p) = state.phases.get(i) else { continue };
        // Finished, or decided up to date or restored (its recorded lines are being replayed):
        // nothing left to run.
        if p.status.is_finished() || p.decision.as_ref().is_some_and(|d| d.verdict.is_fresh()) {
            continue;
        }
        let expected = expected_secs(info, medians, per_weight)?;
        remaining[i] = match p.status {
            Status::Queued | Status::Running | Status::Retrying => {
                (expected - (now - p.started_at.unwrap_or(now))).max(0.0)
            }
            _ => expected,
        };
    }
    // Longest chain of remaining work, in execution order (dependencies come first).
    let mut finish = vec![0.0f64; n];
    let mut critical = 0.0f64;
    for &i in def.order() {
        let start = def.phases[i].deps.iter().map(|&d| finish[d]).fold(0.0, f64::max);
        finish[i] = start + remaining[i];
        critical = critical.max(finish[i]);
    }
    let jobs = jobs.max(1) as f64;
    let spread: f64 = def
        .phases
        .iter()
        .zip(&remaining)
        .map(|(info, r)| if info.parallel { r / jobs } else { *r })
        .sum();
    Some(critical.max(spread))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::pipeline::{Phase, Pipeline, PipelineAction};

    use super::*;

    fn noop(name: &str) -> Phase {
        Phase::new(name, |_| Ok::<_, String>(()))
    }

    #[test]
    fn medians_give_the_remaining_time_and_weights_fill_the_gaps() {
        let p = Pipeline::new("p", [noop("a"), noop("b").depends_on(["a"]).weight(2.0)]).unwrap();
        let r = p.build_reducer();
        let mut s = r.apply(None, &PipelineAction::Init {});
        // No history, nothing done: no basis.
        assert_eq!(Eta::from_weights(1).remaining(&s, 4.0), None);
        let medians = HashMap::from([("a".to_owned(), 10.0), ("b".to_owned(), 30.0)]);
        assert_eq!(Eta::new(medians.clone(), 1).remaining(&s, 4.0), Some(40.0));
        for a in [
            PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
            PipelineAction::PhaseStart {
                name: "a".into(),
                attempt: 1,
                timestamp: 0.0,
            },
            PipelineAction::PhaseComplete {
                name: "a".into(),
                result: Arc::new(serde_json::Value::Null),
                timestamp: 4.0,
                reused_from: None,
            },
        ] {
            s = r.apply(Some(&s), &a);
        }
        assert_eq!(Eta::new(medians.clone(), 1).remaining(&s, 4.0), Some(30.0));
        // Only `a` has a median: b's weight 2 at 10 s per unit.
        let only_a = HashMap::from([("a".to_owned(), 10.0)]);
        assert_eq!(Eta::new(only_a.clone(), 1).remaining(&s, 4.0), Some(20.0));
        // No history: this run's pace, 4 s for weight 1.
        assert_eq!(Eta::from_weights(1).remaining(&s, 4.0), Some(8.0));
        // A running phase counts its live time against its median.
        let b_started = PipelineAction::PhaseStart {
            name: "b".into(),
            attempt: 1,
            timestamp: 4.0,
        };
        s = r.apply(Some(&s), &b_started);
        assert_eq!(Eta::new(medians.clone(), 1).remaining(&s, 10.0), Some(24.0));
    }

    /// `a` → `b` → `c` → `d`, one second of weight each; `a` completed in 1 s and `b` started.
    fn chain_after_a() -> PipelineState {
        let p = Pipeline::new(
            "p",
            [
                noop("a"),
                noop("b").depends_on(["a"]),
                noop("c").depends_on(["b"]),
                noop("d").depends_on(["c"]),
            ],
        )
        .unwrap();
        let r = p.build_reducer();
        let mut s = r.apply(None, &PipelineAction::Init {});
        for a in [
            PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
            PipelineAction::PhaseStart {
                name: "a".into(),
                attempt: 1,
                timestamp: 0.0,
            },
            PipelineAction::PhaseComplete {
                name: "a".into(),
                result: Arc::new(serde_json::Value::Null),
                timestamp: 1.0,
                reused_from: None,
            },
            PipelineAction::PhaseStart {
                name: "b".into(),
                attempt: 1,
                timestamp: 1.0,
            },
        ] {
            s = r.apply(Some(&s), &a);
        }
        (*s).clone()
    }

    #[test]
    fn without_history_the_estimate_does_not_climb_while_a_phase_runs() {
        let s = chain_after_a();
        let eta = Eta::from_weights(1);
        // From a's pace (1 s per unit): b is expected to take 1 s, c and d 1 s each.
        assert_eq!(eta.remaining(&s, 1.5), Some(2.5));
        let later = eta.remaining(&s, 3.0).unwrap();
        assert!(later <= 2.5, "the ETA climbed from 2.5 s to {later} s");
    }

    #[test]
    fn the_progress_counts_the_time_running_phases_have_run() {
        let s = chain_after_a();
        let eta = Eta::from_weights(1);
        assert_eq!(s.progress, 0.25);
        // b ran half of its expected second: half of its weight.
        assert_eq!(eta.progress(&s, 1.5), 0.375);
        // Overrunning counts as almost done, never done.
        assert_eq!(eta.progress(&s, 10.0), 0.25 + RUNNING_CAP / 4.0);
        // With a median for b, b's own expectation is used.
        let medians = HashMap::from([("b".to_owned(), 4.0)]);
        assert_eq!(Eta::new(medians, 1).progress(&s, 2.0), 0.25 + 0.25 / 4.0);
    }

    #[test]
    fn fresh_phases_take_no_time_and_set_no_pace() {
        use crate::pipeline::{Decision, Verdict};
        let p = Pipeline::new(
            "p",
            [noop("a"), noop("b").depends_on(["a"]), noop("c").depends_on(["b"])],
        )
        .unwrap();
        let r = p.build_reducer();
        let mut s = r.apply(None, &PipelineAction::Init {});
        let decide = |name: &str, verdict| PipelineAction::PhaseDecision {
            name: name.into(),
            decision: Decision {
                key: "k".into(),
                verdict,
                reason: "up to date".into(),
            },
            timestamp: 3.0,
        };
        for a in [
            PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
            // `a` is up to date, completed at 3 s (after a slow check): no pace from it.
            decide("a", Verdict::UpToDate),
            PipelineAction::PhaseComplete {
                name: "a".into(),
                result: Arc::new(serde_json::Value::Null),
                timestamp: 3.0,
                reused_from: None,
            },
        ] {
            s = r.apply(Some(&s), &a);
        }
        assert_eq!(s.phase("a").unwrap().fresh(), Some(Verdict::UpToDate));
        assert_eq!(Eta::from_weights(1).remaining(&s, 3.0), None);
        // With medians, b and c remain; once `b` is decided restored it counts for nothing.
        let medians = HashMap::from([("b".to_owned(), 5.0), ("c".to_owned(), 7.0)]);
        assert_eq!(Eta::new(medians.clone(), 1).remaining(&s, 3.0), Some(12.0));
        s = r.apply(Some(&s), &decide("b", Verdict::Restored));
        assert_eq!(Eta::new(medians.clone(), 1).remaining(&s, 3.0), Some(7.0));
        // A phase decided to run is expected to take its time.
        s = r.apply(Some(&s), &decide("c", Verdict::Run));
        assert_eq!(Eta::new(medians, 1).remaining(&s, 3.0), Some(7.0));
    }

    #[test]
    fn with_nothing_to_go_on_there_is_no_estimate() {
        let p = Pipeline::new("p", [noop("a"), noop("b")]).unwrap();
        let r = p.build_reducer();
        let mut s = r.apply(None, &PipelineAction::Init {});
        for a in [
            PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
            PipelineAction::PhaseStart {
                name: "a".into(),
                attempt: 1,
                timestamp: 0.0,
            },
        ] {
            s = r.apply(Some(&s), &a);
        }
        let eta = Eta::from_weights(2);
        assert_eq!(eta.remaining(&s, 6.0), None);
        assert_eq!(eta.progress(&s, 6.0), 0.0);
    }
}
