//! [`Eta`]: how long a run still needs, from the median durations of its phases in earlier
//! successful runs (the run history provides them) or, without history, from the weights.
//!
//! A phase without a median is estimated from its weight: seconds per unit of weight come
//! from the phases that have a median, else from this run's own pace (time elapsed over the
//! weight done so far). The remaining time is the longer of the critical path (dependencies
//! run one after another) and the remaining work spread over `jobs` workers; non-parallel
//! phases count as running alone.

use std::collections::HashMap;

use super::state::{PipelineState, Status};

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
    /// there is nothing to base it on yet (no history and no weight completed).
    pub fn remaining(&self, state: &PipelineState, now: f64) -> Option<f64> {
        estimate_remaining(state, now, &self.medians, self.jobs)
    }
}

fn estimate_remaining(state: &PipelineState, now: f64, medians: &HashMap<String, f64>, jobs: usize) -> Option<f64> {
    let now = if now.is_finite() {
        now.max(state.elapsed)
    } else {
        state.elapsed
    };
    let def = state.def();
    let (known_secs, known_weight) = def
        .phases
        .iter()
        .filter_map(|p| medians.get(&*p.name).map(|m| (*m, p.weight)))
        .fold((0.0, 0.0), |(s, w), (m, pw)| (s + m, w + pw));
    let done_weight = state.progress * def.total_weight();
    let per_weight = if known_weight > 0.0 {
        Some(known_secs / known_weight)
    } else if done_weight > 0.0 {
        Some(now / done_weight)
    } else {
        None
    };
    let n = def.phases.len();
    let mut remaining = vec![0.0f64; n];
    for (i, info) in def.phases.iter().enumerate() {
        let Some(p) = state.phases.get(i) else { continue };
        if p.status.is_finished() {
            continue;
        }
        let expected = match medians.get(&*info.name) {
            Some(m) => *m,
            None => info.weight * per_weight?,
        };
        remaining[i] = match p.status {
            Status::Running | Status::Retrying => (expected - (now - p.started_at.unwrap_or(now))).max(0.0),
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
}
