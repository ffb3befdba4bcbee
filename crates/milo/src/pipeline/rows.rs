//! Rows: a pipeline's phases as the views list them, the members of a
//! [`PhaseGroup`](super::PhaseGroup) (the instances of a matrix phase) gathered under one row.
//!
//! [`PipelineDef::rows`] follows the execution order; a group stands where its first member
//! would, and lists its members in declaration order (the matrix's order). [`GroupCounts`]
//! sums up where a group's members stand, for the group's line in a view.

use std::collections::HashMap;
use std::sync::Arc;

use super::graph::PipelineDef;
use super::state::{PipelineState, Status};

/// One row of a view: a phase on its own, or a group and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// The phase at this index of [`PipelineDef::phases`].
    Phase(usize),
    /// A group (its name, the matrix phase's) and its members' indices, in declaration order.
    Group {
        /// The group's name.
        name: Arc<str>,
        /// Its members' indices in [`PipelineDef::phases`], in declaration order.
        members: Vec<usize>,
    },
}

impl PipelineDef {
    /// The phases in execution order, the members of each group gathered into one
    /// [`Row::Group`] at the place of the first of them to run.
    pub fn rows(&self) -> Vec<Row> {
        // Each group's members in declaration order, found in one pass.
        let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, info) in self.phases.iter().enumerate() {
            if let Some(group) = &info.group {
                members.entry(group).or_default().push(i);
            }
        }
        let mut rows =
            Vec::with_capacity(self.phases.len() - members.values().map(Vec::len).sum::<usize>() + members.len());
        for &i in self.order() {
            let Some(info) = self.phases.get(i) else { continue };
            match &info.group {
                None => rows.push(Row::Phase(i)),
                // The first member to run brings the group; the others are in it already.
                Some(group) => {
                    if let Some(members) = members.remove(&**group) {
                        rows.push(Row::Group {
                            name: group.clone(),
                            members,
                        });
                    }
                }
            }
        }
        rows
    }
}

impl Row {
    /// Rows of a list of phases already in the order to show them, given each one's group
    /// (for a view of a recorded run, without a [`PipelineDef`]): a phase without a group is
    /// its own row, a group stands where its first member is and lists its members in the
    /// list's order.
    pub fn gather(groups: &[Option<&str>]) -> Vec<Row> {
        let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            if let Some(g) = g {
                members.entry(g).or_default().push(i);
            }
        }
        let mut rows = Vec::with_capacity(groups.len());
        for (i, g) in groups.iter().enumerate() {
            match g {
                None => rows.push(Row::Phase(i)),
                Some(g) => {
                    if let Some(members) = members.remove(g) {
                        rows.push(Row::Group {
                            name: (*g).into(),
                            members,
                        });
                    }
                }
            }
        }
        rows
    }
}

/// How many members of a group stand at each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Members in all.
    pub total: usize,
    /// Completed members.
    pub completed: usize,
    /// Failed members.
    pub failed: usize,
    /// Skipped members.
    pub skipped: usize,
    /// Cancelled members.
    pub cancelled: usize,
    /// Members running or waiting to retry.
    pub running: usize,
    /// Members queued on a batch scheduler.
    pub queued: usize,
    /// Members that have not started.
    pub pending: usize,
}

impl GroupCounts {
    /// Counts the statuses of `members` (indices in `state`'s phases).
    pub fn of(state: &PipelineState, members: &[usize]) -> Self {
        Self::of_statuses(members.iter().filter_map(|&i| state.phases.get(i)).map(|p| p.status))
    }

    /// Counts `statuses` (the members' statuses as recorded, for a view of a past run).
    pub fn of_statuses(statuses: impl IntoIterator<Item = Status>) -> Self {
        let mut c = Self::default();
        for status in statuses {
            c.total += 1;
            match status {
                Status::Completed => c.completed += 1,
                Status::Failed => c.failed += 1,
                Status::Skipped => c.skipped += 1,
                Status::Cancelled => c.cancelled += 1,
                Status::Running | Status::Retrying => c.running += 1,
                Status::Queued => c.queued += 1,
                Status::Pending => c.pending += 1,
            }
        }
        c
    }

    /// The counts that are not zero, each with its status, in the order the views list them:
    /// completed, failed, skipped, cancelled, running, queued, pending.
    pub fn nonzero(&self) -> Vec<(usize, Status)> {
        [
            (self.completed, Status::Completed),
            (self.failed, Status::Failed),
            (self.skipped, Status::Skipped),
            (self.cancelled, Status::Cancelled),
            (self.running, Status::Running),
            (self.queued, Status::Queued),
            (self.pending, Status::Pending),
        ]
        .into_iter()
        .filter(|&(n, _)| n > 0)
        .collect()
    }

    /// `4 instances: 1 completed, 1 failed, 2 pending` (the summary's words, unpainted).
    pub fn describe(&self) -> String {
        let counts: Vec<String> = self
            .nonzero()
            .into_iter()
            .map(|(n, s)| format!("{n} {}", s.as_str()))
            .collect();
        let instances = if self.total == 1 { "instance" } else { "instances" };
        format!("{} {instances}: {}", self.total, counts.join(", "))
    }

    /// Members that have ended (completed, failed, skipped or cancelled).
    pub fn done(&self) -> usize {
        self.completed + self.failed + self.skipped + self.cancelled
    }

    /// Whether every member has ended.
    pub fn is_finished(&self) -> bool {
        self.done() == self.total
    }

    /// The group's status as one: running while a member runs or is queued, else failed if
    /// one failed, else cancelled if one was, else pending while one has not started, else
    /// skipped if all were, else completed.
    pub fn status(&self) -> Status {
        if self.running > 0 {
            Status::Running
        } else if self.queued > 0 {
            Status::Queued
        } else if self.failed > 0 {
            Status::Failed
        } else if self.cancelled > 0 {
            Status::Cancelled
        } else if self.pending > 0 {
            Status::Pending
        } else if self.total > 0 && self.skipped == self.total {
            Status::Skipped
        } else {
            Status::Completed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Phase, PhaseGroup, Pipeline, PipelineAction};

    fn group(name: &str) -> Arc<PhaseGroup> {
        Arc::new(PhaseGroup {
            name: name.into(),
            max_parallel: None,
            fail_fast: false,
        })
    }

    fn ok(_: &crate::pipeline::PhaseContext) -> Result<(), String> {
        Ok(())
    }

    /// `build`, then `test` with three instances declared out of name order, then `publish`.
    fn pipeline() -> Pipeline {
        let g = group("test");
        Pipeline::new(
            "p",
            [
                Phase::new("build", ok),
                Phase::new("test[v=3]", ok).depends_on(["build"]).group(g.clone()),
                Phase::new("test[v=1]", ok).depends_on(["build"]).group(g.clone()),
                Phase::new("test[v=2]", ok).depends_on(["build"]).group(g),
                Phase::new("publish", ok).depends_on(["test[v=3]", "test[v=1]", "test[v=2]"]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_groups_members_are_one_row_in_declaration_order() {
        let p = pipeline();
        assert_eq!(
            p.def().rows(),
            vec![
                Row::Phase(0),
                Row::Group {
                    name: "test".into(),
                    members: vec![1, 2, 3]
                },
                Row::Phase(4),
            ]
        );
        assert_eq!(p.def().phases[1].group.as_deref(), Some("test"));
        assert_eq!(p.def().phases[0].group, None);
    }

    #[test]
    fn listed_phases_gather_by_group_where_the_first_member_is() {
        let rows = Row::gather(&[None, Some("t"), None, Some("t"), Some("u")]);
        assert_eq!(
            rows,
            vec![
                Row::Phase(0),
                Row::Group {
                    name: "t".into(),
                    members: vec![1, 3]
                },
                Row::Phase(2),
                Row::Group {
                    name: "u".into(),
                    members: vec![4]
                },
            ]
        );
    }

    #[test]
    fn a_group_stands_where_its_first_member_runs() {
        // `a[x=1]` runs at level 0, `a[x=2]` only after `b`: the group is the first row.
        let g = group("a");
        let p = Pipeline::new(
            "p",
            [
                Phase::new("b", ok),
                Phase::new("a[x=2]", ok).depends_on(["b"]).group(g.clone()),
                Phase::new("a[x=1]", ok).group(g),
            ],
        )
        .unwrap();
        assert_eq!(
            p.def().rows(),
            vec![
                Row::Group {
                    name: "a".into(),
                    members: vec![1, 2]
                },
                Row::Phase(0),
            ]
        );
    }

    #[test]
    fn a_pipeline_without_groups_is_one_row_per_phase_in_execution_order() {
        let p = Pipeline::new("p", [Phase::new("b", ok).depends_on(["a"]), Phase::new("a", ok)]).unwrap();
        assert_eq!(p.def().rows(), vec![Row::Phase(1), Row::Phase(0)]);
    }

    #[test]
    fn group_counts_and_status_follow_the_members() {
        let p = pipeline();
        let r = p.build_reducer();
        let mut s = r.apply(None, &PipelineAction::Init {});
        let members = [1, 2, 3];
        let c = GroupCounts::of(&s, &members);
        assert_eq!((c.total, c.pending, c.status()), (3, 3, Status::Pending));
        for a in [
            PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
            PipelineAction::PhaseStart {
                name: "test[v=1]".into(),
                attempt: 1,
                timestamp: 0.0,
            },
            PipelineAction::PhaseStart {
                name: "test[v=2]".into(),
                attempt: 1,
                timestamp: 0.0,
            },
            PipelineAction::PhaseFailed {
                name: "test[v=2]".into(),
                error: "boom".into(),
                timestamp: 1.0,
            },
        ] {
            s = r.apply(Some(&s), &a);
        }
        let c = GroupCounts::of(&s, &members);
        assert_eq!((c.running, c.failed, c.pending, c.done()), (1, 1, 1, 1));
        assert_eq!(c.status(), Status::Running);
        assert!(!c.is_finished());
        s = r.apply(
            Some(&s),
            &PipelineAction::PhaseComplete {
                name: "test[v=1]".into(),
                result: Arc::new(serde_json::Value::Null),
                timestamp: 1.0,
                reused_from: None,
            },
        );
        let c = GroupCounts::of(&s, &members);
        assert_eq!(c.status(), Status::Failed, "{c:?}");
    }
}
