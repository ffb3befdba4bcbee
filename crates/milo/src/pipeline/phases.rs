//! [`Phases`]: every phase's status in a state, cheap to update one phase at a time.
//!
//! Phases that are running or waiting to retry (at most [`MAX_ACTIVE`] of them; normally no
//! more than `jobs`) live in a short list that is copied on each update; the others live in a
//! persistent vector. A log line or a status change of a running phase therefore copies a
//! handful of pointers whether the pipeline has ten phases or a hundred thousand. A phase that
//! finishes joins a short list of recently settled phases, which is written into the
//! persistent vector [`FLUSH`] at a time: one batch shares the copied path through the vector
//! (phases tend to finish in index order), so a finish costs about the same at any size.

use std::ops::Index;
use std::sync::Arc;

use imbl::Vector;

use super::state::PhaseStatus;

/// How many in-progress phases the short list holds before updates fall back to the
/// persistent vector.
pub const MAX_ACTIVE: usize = 64;

/// How many finished phases wait in the short list before they are written into the
/// persistent vector together.
pub const FLUSH: usize = 32;

type Entries = Arc<[(usize, Arc<PhaseStatus>)]>;

/// Every phase's status, in declaration order.
#[derive(Clone)]
pub struct Phases {
    settled: Vector<Arc<PhaseStatus>>,
    /// Finished phases not yet written into `settled`; these override it.
    recent: Entries,
    /// In-progress phases by index, oldest start first; these override both.
    active: Entries,
}

fn find(list: &Entries, index: usize) -> Option<&Arc<PhaseStatus>> {
    list.iter().find(|(i, _)| *i == index).map(|(_, p)| p)
}

impl Phases {
    pub(crate) fn new(phases: impl IntoIterator<Item = Arc<PhaseStatus>>) -> Self {
        Self {
            settled: phases.into_iter().collect(),
            recent: Arc::new([]),
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
        find(&self.active, index)
            .or_else(|| find(&self.recent, index))
            .or_else(|| self.settled.get(index))
    }

    /// Every phase, in declaration order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<PhaseStatus>> + '_ {
        // The overrides, sorted by index, looked up by binary search: O(n + k log k).
        let mut overrides: Vec<(usize, &Arc<PhaseStatus>)> = self.recent.iter().map(|(i, p)| (*i, p)).collect();
        for (i, p) in self.active.iter() {
            overrides.retain(|(j, _)| j != i);
            overrides.push((*i, p));
        }
        overrides.sort_unstable_by_key(|(i, _)| *i);
        self.settled
            .iter()
            .enumerate()
            .map(move |(i, p)| match overrides.binary_search_by_key(&i, |(j, _)| *j) {
                Ok(k) => overrides[k].1,
                Err(_) => p,
            })
    }

    /// Phases in progress (running or retrying) that are tracked in the short list, with their
    /// index, oldest start first.
    pub fn in_progress(&self) -> impl DoubleEndedIterator<Item = (usize, &Arc<PhaseStatus>)> + '_ {
        self.active.iter().map(|(i, p)| (*i, p))
    }

    /// Applies `f` to phase `index`.
    pub(crate) fn update(&mut self, index: usize, f: impl FnOnce(&mut PhaseStatus)) {
        for list in [&mut self.active, &mut self.recent] {
            if let Some(pos) = list.iter().position(|(i, _)| *i == index) {
                let mut copy = list.to_vec();
                f(Arc::make_mut(&mut copy[pos].1));
                *list = copy.into();
                return;
            }
        }
        if let Some(slot) = self.settled.get_mut(index) {
            f(Arc::make_mut(slot));
        }
    }

    /// Moves phase `index` to the end of the in-progress list (it just started).
    pub(crate) fn activate(&mut self, index: usize) {
        let Some(current) = self.get(index).cloned() else {
            return;
        };
        let mut list: Vec<_> = self.active.iter().filter(|(i, _)| *i != index).cloned().collect();
        if list.len() < MAX_ACTIVE {
            list.push((index, current));
        } else {
            self.put_settled(index, current);
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
        self.put_settled(index, status);
    }

    /// Records `status` as phase `index`'s settled state, batching writes into the vector.
    fn put_settled(&mut self, index: usize, status: Arc<PhaseStatus>) {
        let mut recent: Vec<_> = self.recent.iter().filter(|(i, _)| *i != index).cloned().collect();
        recent.push((index, status));
        if recent.len() >= FLUSH {
            for (i, p) in recent.drain(..) {
                if let Some(slot) = self.settled.get_mut(i) {
                    *slot = p;
                }
            }
        }
        self.recent = recent.into();
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

    #[test]
    fn settled_phases_are_batched_into_the_vector_and_stay_visible() {
        let mut phases = state(3 * FLUSH + 5).phases;
        let before = phases.clone();
        for i in 0..3 * FLUSH + 5 {
            phases.activate(i);
            phases.update(i, |p| p.status = Status::Running);
            phases.update(i, |p| p.status = Status::Completed);
            phases.settle(i);
            assert_eq!(phases.get(i).map(|p| p.status), Some(Status::Completed));
        }
        assert!(phases.recent.len() < FLUSH);
        assert!(phases.iter().all(|p| p.status == Status::Completed));
        assert_eq!(phases.iter().count(), 3 * FLUSH + 5);
        assert!(phases.iter().rev().all(|p| p.status == Status::Completed));
        // Older snapshots are untouched.
        assert!(before.iter().all(|p| p.status == Status::Pending));
        // A finished phase that starts again (a retry after settling) comes back to the front.
        phases.activate(2);
        phases.update(2, |p| p.status = Status::Running);
        assert_eq!(phases[2].status, Status::Running);
        assert_eq!(phases.iter().nth(2).map(|p| p.status), Some(Status::Running));
    }
}
