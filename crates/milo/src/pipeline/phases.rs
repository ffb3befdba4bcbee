//! [`Phases`]: every phase's status in a state, cheap to update one phase at a time.
//!
//! Phases that are running or waiting to retry (at most [`MAX_ACTIVE`] of them; normally no
//! more than `jobs`) live in a short list that is copied on each update; the others live in a
//! persistent vector. A log line or a status change of a running phase therefore copies a
//! handful of pointers whether the pipeline has ten phases or a hundred thousand; only a phase
//! starting or finishing touches the persistent vector.

use std::ops::Index;
use std::sync::Arc;

use imbl::Vector;

use super::state::PhaseStatus;

/// How many in-progress phases the short list holds before updates fall back to the
/// persistent vector.
pub const MAX_ACTIVE: usize = 64;

/// Every phase's status, in declaration order.
#[derive(Clone)]
pub struct Phases {
    settled: Vector<Arc<PhaseStatus>>,
    /// In-progress phases by index, oldest start first; these override `settled`.
    active: Arc<[(usize, Arc<PhaseStatus>)]>,
}

impl Phases {
    pub(crate) fn new(phases: impl IntoIterator<Item = Arc<PhaseStatus>>) -> Self {
        Self {
            settled: phases.into_iter().collect(),
            active: Arc::new([]),
        }
    }

    /// How many phases there are.
    pub fn len(&self) -> usize {
        self.settled.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.settled.is_empty()
    }

    /// Phase `index` (declaration order).
    pub fn get(&self, index: usize) -> Option<&Arc<PhaseStatus>> {
        match self.active.iter().find(|(i, _)| *i == index) {
            Some((_, p)) => Some(p),
            None => self.settled.get(index),
        }
    }

    /// Every phase, in declaration order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<PhaseStatus>> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// Phases in progress (running or retrying) that are tracked in the short list, with their
    /// index, oldest start first.
    pub fn in_progress(&self) -> impl DoubleEndedIterator<Item = (usize, &Arc<PhaseStatus>)> + '_ {
        self.active.iter().map(|(i, p)| (*i, p))
    }

    /// Applies `f` to phase `index`.
    pub(crate) fn update(&mut self, index: usize, f: impl FnOnce(&mut PhaseStatus)) {
        if let Some(pos) = self.active.iter().position(|(i, _)| *i == index) {
            let mut list = self.active.to_vec();
            f(Arc::make_mut(&mut list[pos].1));
            self.active = list.into();
        } else if let Some(slot) = self.settled.get_mut(index) {
            f(Arc::make_mut(slot));
        }
    }

    /// Moves phase `index` to the end of the in-progress list (it just started).
    pub(crate) fn activate(&mut self, index: usize) {
        let current = self.get(index).cloned();
        let Some(current) = current else { return };
        let mut list: Vec<_> = self.active.iter().filter(|(i, _)| *i != index).cloned().collect();
        if list.len() < MAX_ACTIVE {
            list.push((index, current));
        } else if let Some(slot) = self.settled.get_mut(index) {
            *slot = current;
        }
        self.active = list.into();
    }

    /// Moves phase `index` out of the in-progress list (it finished).
    pub(crate) fn settle(&mut self, index: usize) {
        let Some(pos) = self.active.iter().position(|(i, _)| *i == index) else {
            return;
        };
        let mut list = self.active.to_vec();
        let (_, status) = list.remove(pos);
        self.active = list.into();
        if let Some(slot) = self.settled.get_mut(index) {
            *slot = status;
        }
    }
}

impl PartialEq for Phases {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Index<usize> for Phases {
    type Output = Arc<PhaseStatus>;
    fn index(&self, index: usize) -> &Self::Output {
        match self.get(index) {
            Some(p) => p,
            None => panic!("phase index {index} out of range for {} phases", self.len()),
        }
    }
}

impl std::fmt::Debug for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Phases {
    type Item = &'a Arc<PhaseStatus>;
    type IntoIter = Box<dyn DoubleEndedIterator<Item = &'a Arc<PhaseStatus>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Phase, Pipeline, PipelineState, Status};

    fn state(n: usize) -> PipelineState {
        let phases = (0..n).map(|i| Phase::new(format!("p{i}"), |_| Ok::<_, String>(())));
        let p = Pipeline::new("x", phases).unwrap_or_else(|e| panic!("{e}"));
        PipelineState::new(p.def().clone())
    }

    #[test]
    fn active_phases_override_settled_ones_and_move_back() {
        let mut phases = state(5).phases;
        phases.activate(3);
        phases.update(3, |p| p.status = Status::Running);
        assert_eq!(phases.get(3).map(|p| p.status), Some(Status::Running));
        assert_eq!(phases.in_progress().map(|(i, _)| i).collect::<Vec<_>>(), [3]);
        phases.settle(3);
        assert_eq!(phases.in_progress().count(), 0);
        assert_eq!(phases[3].status, Status::Running);
        assert_eq!(phases.iter().count(), 5);
    }

    #[test]
    fn more_than_max_active_falls_back_to_the_persistent_vector() {
        let mut phases = state(MAX_ACTIVE + 10).phases;
        for i in 0..MAX_ACTIVE + 10 {
            phases.activate(i);
            phases.update(i, |p| p.attempt = 7);
        }
        assert_eq!(phases.in_progress().count(), MAX_ACTIVE);
        assert!(phases.iter().all(|p| p.attempt == 7));
    }
}
