//! [`Trigger`]: what started a run other than a plain `milo run` — a `milo watch` cycle,
//! with its number and the changed paths that started it.
//!
//! Stored as JSON in `runs.trigger` (since schema version 8; NULL for a plain run and the
//! runs recorded before), and covered by the keyed chain's genesis (see
//! [`RunFacts`](crate::key::RunFacts)): a trigger edited after the run was recorded fails
//! `milo replay`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The most changed paths a run's trigger stores; the rest are counted in
/// [`Trigger::more`]. A `git checkout` can change tens of thousands of files: their names are
/// not worth a run row of megabytes, which every progress update of the run would rewrite.
pub const MAX_TRIGGER_PATHS: usize = 1_000;

/// How many changed paths `milo show` names before `(+N more)`.
pub const SHOWN_TRIGGER_PATHS: usize = 5;

/// What started a run: a watch cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// The cycle's number in its `milo watch` (1 for the first run, which no change
    /// started).
    pub watch_cycle: u64,
    /// The changed paths that started the cycle, relative to the pipeline file's directory
    /// (`.` when the watcher lost events and everything is checked again), in the order
    /// the watcher reported them; at most [`MAX_TRIGGER_PATHS`].
    pub changed: Vec<String>,
    /// How many more paths changed than `changed` holds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Trigger {
    /// Watch cycle `cycle`, started by a change of `changed` (kept up to
    /// [`MAX_TRIGGER_PATHS`], the rest counted).
    pub fn watch(cycle: u64, mut changed: Vec<String>) -> Self {
        let more = changed.len().saturating_sub(MAX_TRIGGER_PATHS);
        changed.truncate(MAX_TRIGGER_PATHS);
        Self {
            watch_cycle: cycle,
            changed,
            more: more as u64,
        }
    }

    /// How many paths changed in all.
    pub fn total_changed(&self) -> u64 {
        self.changed.len() as u64 + self.more
    }

    /// `src/a.c, src/b.h, (+3 more)`: the first `shown` changed paths, each through `path`
    /// (to escape or sanitize it), then how many others changed, as `milo watch` announces
    /// a cycle; `None` when no path changed (the first cycle).
    pub fn changed_list(&self, shown: usize, path: impl Fn(&str) -> String) -> Option<String> {
        if self.total_changed() == 0 {
            return None;
        }
        let mut items: Vec<String> = self.changed.iter().take(shown).map(|p| path(p)).collect();
        let rest = self.total_changed() - items.len() as u64;
        if rest > 0 {
            items.push(format!("(+{rest} more)"));
        }
        Some(items.join(", "))
    }

    /// `watch cycle 3 — src/a.c, src/b.h changed`, naming at most `shown` paths then
    /// `(+N more)` (as `milo watch` announces a cycle); `watch cycle 1` for a cycle no change
    /// started. The paths are as stored: a caller printing to a terminal sanitizes them.
    pub fn describe(&self, shown: usize) -> String {
        let mut s = format!("watch cycle {}", self.watch_cycle);
        if let Some(list) = self.changed_list(shown, str::to_owned) {
            let _ = write!(s, " — {list} changed");
        }
        s
    }

    /// The `runs.trigger` column's JSON.
    pub(crate) fn to_json(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }

    /// The `runs.trigger` column read back; a value that is not a trigger reads as none (the
    /// audit of the run reports the edit).
    pub(crate) fn parse(json: Option<&str>) -> Option<Self> {
        json.and_then(|j| serde_json::from_str(j).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_names_a_few_paths_then_counts_the_rest() {
        let paths = |n: usize| (0..n).map(|i| format!("src/{i}.c")).collect::<Vec<_>>();
        assert_eq!(Trigger::watch(1, Vec::new()).describe(5), "watch cycle 1");
        assert_eq!(
            Trigger::watch(3, paths(2)).describe(5),
            "watch cycle 3 — src/0.c, src/1.c changed"
        );
        assert_eq!(
            Trigger::watch(4, paths(7)).describe(2),
            "watch cycle 4 — src/0.c, src/1.c, (+5 more) changed"
        );
    }

    #[test]
    fn a_trigger_stores_at_most_the_cap_and_counts_the_rest() {
        let t = Trigger::watch(2, (0..MAX_TRIGGER_PATHS + 3).map(|i| i.to_string()).collect());
        assert_eq!(t.changed.len(), MAX_TRIGGER_PATHS);
        assert_eq!(t.more, 3);
        assert_eq!(t.total_changed(), MAX_TRIGGER_PATHS as u64 + 3);
        assert_eq!(Trigger::parse(t.to_json().as_deref()), Some(t));
        assert_eq!(Trigger::parse(Some("not json")), None);
    }
}
