//! The seam for incremental runs: an [`Incremental`] decides, just before a phase's first
//! attempt, whether it must run or is up to date, and records a successful phase afterwards.
//!
//! The core knows nothing about files, digests or caches: it hands the implementation (the
//! `milo-cache` crate for `milo.toml` pipelines) each direct dependency's key and result once
//! they are known, puts the [`Decision`] it gets back as `@@PHASE_DECISION`, and, for a phase
//! that is up to date, completes it at once with the recorded result after replaying its
//! recorded log lines. Replaying the actions rebuilds the same state: the decision travels in
//! the action.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::capture::Stream;

/// What the decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The phase runs (the reason says why).
    Run,
    /// The phase did not run: an earlier success with the same key left its outputs as they are.
    UpToDate,
    /// The phase did not run: its outputs were restored from the cache of an earlier success
    /// with the same key.
    Restored,
}

impl Verdict {
    /// `"run"`, `"up_to_date"` or `"restored"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Run => "run",
            Verdict::UpToDate => "up_to_date",
            Verdict::Restored => "restored",
        }
    }

    /// Whether the phase was spared running (up to date or restored).
    pub fn is_fresh(self) -> bool {
        !matches!(self, Verdict::Run)
    }
}

/// Why an incremental phase runs or does not, and under which key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The digest of everything the phase's result depends on (hex).
    pub key: Arc<str>,
    /// Run, up to date or restored.
    pub verdict: Verdict,
    /// In words: "never ran", "src/main.c changed", "up to date",
    /// "output build/app was deleted (restored from cache)"…
    pub reason: Arc<str>,
}

/// How a direct dependency ended, as far as its dependent's key is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DepResult<'a> {
    /// It completed with this result (`MILO_OUTPUT`, as JSON).
    Completed(&'a serde_json::Value),
    /// It failed under the skip policy.
    Skipped,
    /// Not known: it would run (a dry run, which runs nothing).
    Unknown,
}

/// A direct dependency of the phase being decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dependency<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its key, when it is incremental.
    pub key: Option<&'a str>,
    /// How it ended.
    pub result: DepResult<'a>,
}

/// What an up-to-date or restored phase completes with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded {
    /// The result recorded by the earlier success.
    pub result: serde_json::Value,
    /// The log lines it printed then, replayed as the phase's output.
    pub logs: Vec<(Stream, String)>,
}

/// The answer of [`Incremental::check`].
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The phase declares nothing to decide on: it always runs, as without incremental runs.
    Always,
    /// The phase runs, for the decision's reason.
    Run(Decision),
    /// The phase is up to date or was restored: it completes with what was recorded.
    Fresh(Decision, Recorded),
}

/// Decides whether phases must run, and records the ones that succeeded.
///
/// Both methods may block (they read and hash files); the saga calls them in place on a
/// multi-threaded runtime (`block_in_place`), else on a blocking thread. An error fails the phase's attempt with that message (so its policy applies): an
/// unreadable source, an output it declared and did not produce.
pub trait Incremental: Send + Sync {
    /// Whether phase `phase` is incremental at all (cheap, never blocks). The saga checks
    /// and records only the phases for which this is true.
    fn is_incremental(&self, phase: &str) -> bool;

    /// Called once per phase, before its first attempt, after every dependency has ended.
    fn check(&self, phase: &str, deps: &[Dependency<'_>]) -> Result<Check, String>;

    /// [`check`](Self::check) if it can decide without work that may take long (hashing a
    /// file, restoring an output, anything a stat cannot answer): the saga calls it first, in
    /// place on its own thread, and falls back to `check` on `None`. A no-op run of a thousand
    /// up-to-date phases then hands off no thread at all. The default is `None`.
    fn check_quick(&self, phase: &str, deps: &[Dependency<'_>]) -> Option<Result<Check, String>> {
        let _ = (phase, deps);
        None
    }

    /// Called when an attempt of a phase that was decided to [`Run`](Verdict::Run) succeeded,
    /// before it is put as completed, with its result and its captured lines (the newest
    /// `max_logs`).
    fn record(
        &self,
        phase: &str,
        decision: &Decision,
        result: &serde_json::Value,
        logs: &[(Stream, String)],
    ) -> Result<(), String>;
}

impl std::fmt::Debug for dyn Incremental {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Incremental")
    }
}
