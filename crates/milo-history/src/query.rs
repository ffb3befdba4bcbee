//! Reading the history: runs, one run's phases, a phase's logs, the journal, its
//! verification and replay, the resume plan of a failed run, and median phase durations.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use milo::capture::Stream;
use milo::pipeline::{Pipeline, PipelineAction, PipelineState, Row as ViewRow, pipeline_to_timeline};
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::key::{Chain, Hasher, JournalKey, KEYED, RunFacts};
use crate::recorder::{PhaseRow, apply};

use crate::chunk::{self, Check, ChunkEntry};
use crate::def::{DefRecord, phase_hash};
use crate::error::HistoryError;
use crate::trigger::Trigger;
use crate::{History, RunId, RunStatus};

/// One run, as listed by `milo history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run's number.
    pub id: RunId,
    /// The pipeline's name.
    pub pipeline: String,
    /// How it stands.
    pub status: RunStatus,
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_at: f64,
    /// Wall-clock end (for an interrupted run: its last write), if it ended.
    pub ended_at: Option<f64>,
    /// Seconds from start to end (or to the last write while running).
    pub duration: Option<f64>,
    /// The exit status `milo run` returned.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// The first phase that failed.
    pub failed_phase: Option<String>,
    /// The run it resumed.
    pub resumed_from: Option<RunId>,
    /// Hex SHA-256 of the recorded pipeline definition.
    pub def_hash: String,
    /// The pipeline file it was run from.
    pub pipeline_file: Option<String>,
    /// The recording process.
    pub pid: i64,
    /// How many actions the journal holds.
    pub journal_len: i64,
    /// The run's parameter values, in declaration order (empty without parameters).
    pub params: Vec<(String, String)>,
    /// What started it: a `milo watch` cycle (absent for a plain `milo run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Why the history holds only part of the run, when it does: a write failed mid-run
    /// (a full disk…), or the recording process went away.
    pub recording_error: Option<String>,
}

/// One phase of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRecord {
    /// Its name.
    pub name: String,
    /// `pending`, `running`, `retrying`, `completed`, `failed`, `skipped`, `cancelled` or
    /// `interrupted`.
    pub status: String,
    /// The last attempt (0 if it never started).
    pub attempts: u32,
    /// When it first started, seconds since the run started.
    pub started_at: Option<f64>,
    /// When it finished, seconds since the run started.
    pub finished_at: Option<f64>,
    /// Seconds from start to finish.
    pub duration: Option<f64>,
    /// Its error, if it failed, was skipped, or is retrying.
    pub error: Option<String>,
    /// Its result, once completed.
    pub result: Option<serde_json::Value>,
    /// The run its result was reused from.
    pub reused_from: Option<String>,
    /// How many lines it logged.
    pub log_count: i64,
    /// The hash deciding whether it is unchanged (see [`phase_hash`]).
    pub phase_hash: String,
    /// For an incremental phase (`@@PHASE_DECISION`): the key it was decided under.
    pub key: Option<String>,
    /// For an incremental phase: `run`, `up_to_date` or `restored`.
    pub verdict: Option<String>,
    /// For an incremental phase: why it ran or did not (`src/main.c changed`, `never ran`…).
    pub reason: Option<String>,
    /// For a phase a batch scheduler (Slurm) ran: the job ids of its attempts, oldest first.
    pub job_ids: Vec<String>,
    /// For an instance of a matrix phase: its group, the matrix phase's name (from the
    /// recorded definition; for one recorded before groups were, from the instance's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its place in the pipeline's declaration order (a group lists its members in it).
    #[serde(skip)]
    pub declared: usize,
}

impl PhaseRecord {
    /// `Some("up_to_date")` or `Some("restored")` when the phase completed without running
    /// (an incremental phase whose outputs were up to date, or restored from the cache);
    /// `None` when it ran, or has not completed.
    pub fn fresh(&self) -> Option<&str> {
        self.verdict
            .as_deref()
            .filter(|v| self.status == "completed" && matches!(*v, "up_to_date" | "restored"))
    }
}

/// A run and its phases, as shown by `milo show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Its phases in execution order.
    pub phases: Vec<PhaseRecord>,
}

impl RunDetail {
    /// The phases as the views list them ([`PipelineDef::rows`](milo::pipeline::PipelineDef::rows)'s
    /// rule, indices into [`phases`](Self::phases)): in execution order, the members of a
    /// group gathered into one [`Row::Group`](milo::pipeline::Row::Group) where the first of them runs, in declaration
    /// order.
    pub fn rows(&self) -> Vec<ViewRow> {
        let groups: Vec<Option<&str>> = self.phases.iter().map(|p| p.group.as_deref()).collect();
        let mut rows = ViewRow::gather(&groups);
        for row in &mut rows {
            if let ViewRow::Group { members, .. } = row {
                members.sort_by_key(|&j| self.phases[j].declared);
            }
        }
        rows
    }
}

/// One captured line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Its position in the run's journal.
    pub seq: i64,
    /// `stdout` or `stderr`.
    pub stream: Stream,
    /// Seconds since the run started.
    pub timestamp: f64,
    /// The text.
    pub line: String,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// 1 for the first action.
    pub seq: i64,
    /// The action's JSON as recorded.
    pub json: String,
    /// For a JSON entry: SHA-256 of the previous chain head followed by `json`. For a
    /// captured line: its 4-byte [`tag`](crate::chunk::tag) (a version 1 line: its own chained
    /// hash; see [`chunk`](crate::chunk)).
    pub hash: Vec<u8>,
}

impl JournalEntry {
    /// The recorded action.
    pub fn action(&self) -> Result<PipelineAction, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// The outcome of checking a run's hash chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Verification {
    /// Every entry matches its hash and the chain is complete.
    Intact {
        /// How many entries.
        entries: u64,
    },
    /// The chain checks out as far as it can be checked, but it does not prove anything: the
    /// run was recorded with the unkeyed chain of an older milo (anyone can recompute it), or
    /// with a journal key that is not here.
    Unverified {
        /// How many entries.
        entries: u64,
        /// Why it cannot be verified.
        reason: String,
    },
    /// The journal checks out, but the rows derived from it (the run, its phases, its log
    /// chunks, its definition) say something else: they were edited.
    Disagrees {
        /// What disagrees with what.
        reason: String,
    },
    /// The first entry that does not check out.
    Broken {
        /// Its sequence number.
        seq: i64,
        /// Its action type, if its JSON still says.
        action_type: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
}

impl Verification {
    /// Whether the chain is intact and verified with the journal key.
    pub fn is_intact(&self) -> bool {
        matches!(self, Verification::Intact { .. })
    }

    /// Whether it shows that the history was changed after it was recorded.
    pub fn is_tampered(&self) -> bool {
        matches!(self, Verification::Broken { .. } | Verification::Disagrees { .. })
    }
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verification::Intact { entries } => write!(
                f,
                "journal verified: MAC chain intact ({entries} entries), and the run, phase and log rows agree with it"
            ),
            Verification::Unverified { entries, reason } => {
                write!(f, "the journal ({entries} entries) cannot be verified: {reason}")
            }
            Verification::Disagrees { reason } => f.write_str(reason),
            Verification::Broken {
                seq,
                action_type,
                reason,
            } => {
                write!(f, "entry {seq}")?;
                if let Some(t) = action_type {
                    write!(f, " ({t})")?;
                }
                write!(f, " {reason}")
            }
        }
    }
}

/// A replayed run.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The run.
    pub run: RunId,
    /// The journal check; the state is only rebuilt when it is intact, or unverifiable but
    /// undamaged (an older milo's unkeyed chain).
    pub verification: Verification,
    /// The state the reducer reaches from the journal.
    pub state: Option<Arc<PipelineState>>,
}

impl Replay {
    /// The final timeline ([`pipeline_to_timeline`]), when the journal was replayed.
    pub fn timeline(&self) -> Option<serde_json::Value> {
        self.state.as_deref().map(pipeline_to_timeline)
    }
}

/// What `milo run --resume` reuses from an earlier run.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePlan {
    /// The run being resumed.
    pub run: RunId,
    /// Phases not to run again: result JSON and the run it comes from (for
    /// `RunOptions::reuse`).
    pub reuse: HashMap<String, (serde_json::Value, String)>,
    /// Phases that will run, in execution order.
    pub rerun: Vec<String>,
}

/// Parses a run selector: a run number, or `last` / nothing for the newest run.
pub fn parse_run(selector: Option<&str>) -> Result<Option<RunId>, HistoryError> {
    match selector.map(str::trim) {
        None | Some("last") | Some("") => Ok(None),
        Some(s) => s
            .trim_start_matches('#')
            .parse::<RunId>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| HistoryError::BadRunSelector(s.to_owned())),
    }
}

const RUN_COLUMNS: &str = "r.id, r.pipeline, r.status, r.started_at, r.ended_at, r.last_seen, r.exit_code, r.error,
    (SELECT p.name FROM phases p WHERE p.run_id = r.id AND p.status = 'failed' ORDER BY p.finished_at, p.idx LIMIT 1),
    r.resumed_from, r.def_hash, r.pipeline_file, r.pid, r.journal_len, r.recording_error, r.pid_start, r.params, r.trigger";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunSummary> {
    let mut status = RunStatus::parse(&r.get::<_, String>(2)?);
    let pid: i64 = r.get(12)?;
    let mut recording_error: Option<String> = r.get(14)?;
    // Left `running` by a process that is gone, and not marked yet (the file could not be
    // written when it was opened): it reads as what it is.
    if status == RunStatus::Running && !crate::process::alive(pid, r.get::<_, Option<String>>(15)?.as_deref()) {
        status = RunStatus::Interrupted;
        recording_error.get_or_insert_with(|| crate::GONE.to_owned());
    }
    let started_at: f64 = r.get(3)?;
    let ended_at: Option<f64> = r.get(4)?;
    let last_seen: Option<f64> = r.get(5)?;
    let end = ended_at.or(last_seen);
    Ok(RunSummary {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        status,
        started_at,
        ended_at,
        duration: end.map(|e| (e - started_at).max(0.0)),
        exit_code: r.get(6)?,
        error: r.get(7)?,
        failed_phase: r.get(8)?,
        resumed_from: r.get(9)?,
        def_hash: r.get(10)?,
        pipeline_file: r.get(11)?,
        pid,
        journal_len: r.get(13)?,
        recording_error,
        params: crate::parse_params(r.get::<_, Option<String>>(16)?.as_deref()),
        trigger: Trigger::parse(r.get::<_, Option<String>>(17)?.as_deref()),
    })
}

/// The largest time a history row may hold, in seconds (about 31 million years): a wall-clock
/// time since the Unix epoch, or a phase's time since its run started. Anything else (NaN,
/// negative, `1e300`) was written by hand or damaged, and is reported as such instead of
/// breaking the arithmetic of durations.
pub const MAX_SECONDS: f64 = 1e15;

/// `Ok` when `value` is absent or a plausible time (see [`MAX_SECONDS`]).
fn check_time(run: RunId, what: &'static str, value: Option<f64>) -> Result<(), HistoryError> {
    match value {
        Some(t) if !(0.0..=MAX_SECONDS).contains(&t) => Err(HistoryError::BadRecord {
            run,
            what,
            reason: format!("{} is not a time in seconds from 0 to {MAX_SECONDS:e}", readable(t)),
        }),
        _ => Ok(()),
    }
}

impl RunSummary {
    /// Checks the times of the run row.
    fn check(self) -> Result<Self, HistoryError> {
        check_time(self.id, "start time", Some(self.started_at))?;
        check_time(self.id, "end time", self.ended_at)?;
        check_time(self.id, "duration", self.duration)?;
        Ok(self)
    }
}

impl History {
    /// The `limit` most recent runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs r ORDER BY r.id DESC LIMIT ?1"))?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], run_row)?;
        rows.map(|r| r.map_err(HistoryError::from).and_then(RunSummary::check))
            .collect()
    }

    /// Resolves a run selector (`None` = the newest run, of `pipeline` if given).
    pub fn resolve(&self, run: Option<RunId>, pipeline: Option<&str>) -> Result<RunId, HistoryError> {
        match run {
            Some(id) => {
                let found: Option<RunId> = self
                    .conn
                    .query_row("SELECT id FROM runs WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?;
                found.ok_or(HistoryError::NoSuchRun(id))
            }
            None => {
                let found: Option<RunId> = match pipeline {
                    Some(p) => self
                        .conn
                        .query_row("SELECT max(id) FROM runs WHERE pipeline = ?1", [p], |r| r.get(0))?,
                    None => self.conn.query_row("SELECT max(id) FROM runs", [], |r| r.get(0))?,
                };
                found.ok_or_else(|| HistoryError::NoRuns {
                    pipeline: pipeline.map(str::to_owned),
                })
            }
        }
    }

    /// One run (`None` = the newest).
    pub fn run(&self, run: Option<RunId>) -> Result<RunSummary, HistoryError> {
        let id = self.resolve(run, None)?;
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ?1"),
                [id],
                run_row,
            )?
            .check()
    }

    fn def_of(&self, run: RunId) -> Result<DefRecord, HistoryError> {
        let json: String = self.conn.query_row(
            "SELECT defs.def_json FROM runs JOIN defs USING (def_hash) WHERE runs.id = ?1",
            [run],
            |r| r.get(0),
        )?;
        serde_json::from_str(&json).map_err(|e| HistoryError::BadRecord {
            run,
            what: "pipeline definition",
            reason: e.to_string(),
        })
    }

    /// One run and its phases in execution order (`None` = the newest run).
    pub fn show(&self, run: Option<RunId>) -> Result<RunDetail, HistoryError> {
        let summary = self.run(run)?;
        let id = summary.id;
        let mut stmt = self.conn.prepare(
            "SELECT name, status, attempts, started_at, finished_at, error, result, reused_from, log_count, phase_hash,
                    decision_key, verdict, reason, job_ids
             FROM phases WHERE run_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([id], |r| {
            let job_ids: Option<String> = r.get(13)?;
            let started_at: Option<f64> = r.get(3)?;
            let finished_at: Option<f64> = r.get(4)?;
            let result: Option<String> = r.get(6)?;
            Ok(PhaseRecord {
                name: r.get(0)?,
                status: r.get(1)?,
                attempts: r.get(2)?,
                started_at,
                finished_at,
                duration: started_at.zip(finished_at).map(|(s, f)| (f - s).max(0.0)),
                error: r.get(5)?,
                result: result.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))),
                reused_from: r.get(7)?,
                log_count: r.get(8)?,
                phase_hash: r.get(9)?,
                key: r.get(10)?,
                verdict: r.get(11)?,
                reason: r.get(12)?,
                job_ids: job_ids
                    .map(|ids| ids.split(',').filter(|id| !id.is_empty()).map(str::to_owned).collect())
                    .unwrap_or_default(),
                group: None,
                declared: 0,
            })
        })?;
        let mut phases: Vec<PhaseRecord> = rows.collect::<Result<_, _>>()?;
        let def = self.def_of(id).ok();
        set_groups(&mut phases, def.as_ref());
        for p in &phases {
            check_time(id, "phase start time", p.started_at)
                .and_then(|()| check_time(id, "phase end time", p.finished_at))
                .map_err(|e| match e {
                    HistoryError::BadRecord { run, what, reason } => HistoryError::BadRecord {
                        run,
                        what,
                        reason: format!("phase `{}`: {reason}", p.name),
                    },
                    e => e,
                })?;
        }
        // Execution order, from the recorded definition (declaration order if unreadable).
        let order = def.and_then(|d| d.to_noop_pipeline().ok());
        if let Some(order) = order.map(|p| p.execution_order()) {
            let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
            phases.sort_by_key(|p| rank.get(p.name.as_str()).copied().unwrap_or(usize::MAX));
        }
        Ok(RunDetail { run: summary, phases })
    }

    fn check_phase(&self, run: RunId, phase: &str) -> Result<(), HistoryError> {
        let names: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM phases WHERE run_id = ?1 ORDER BY idx")?;
            stmt.query_map([run], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        if names.iter().any(|n| n == phase) {
            Ok(())
        } else {
            Err(HistoryError::NoSuchPhase {
                run,
                phase: phase.to_owned(),
                available: names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
            })
        }
    }

    /// Calls `f` with every line phase `phase` of a run logged (`None` = the newest run),
    /// in order, optionally only those of `stream`. Returns the run id.
    pub fn for_each_log(
        &self,
        run: Option<RunId>,
        phase: &str,
        stream: Option<Stream>,
        mut f: impl FnMut(LogEntry) -> Result<(), HistoryError>,
    ) -> Result<RunId, HistoryError> {
        let id = self.resolve(run, None)?;
        self.check_phase(id, phase)?;
        let mut stmt = self
            .conn
            .prepare("SELECT data, hash IS NOT NULL FROM logs WHERE run_id = ?1 AND phase = ?2 ORDER BY first_seq")?;
        let mut rows = stmt.query(params![id, phase])?;
        while let Some(r) = rows.next()? {
            let data = r.get_ref(0)?.as_bytes().unwrap_or_default();
            let entries = chunk::decode(data, r.get(1)?).map_err(|n| HistoryError::BadRecord {
                run: id,
                what: "log chunk",
                reason: format!("phase `{phase}`: damaged after {n} lines"),
            })?;
            for e in entries {
                if stream.is_none_or(|s| s == e.stream) {
                    f(LogEntry {
                        seq: e.seq,
                        stream: e.stream,
                        timestamp: e.timestamp,
                        line: e.line,
                    })?;
                }
            }
        }
        Ok(id)
    }

    /// Every line phase `phase` of a run logged (`None` = the newest run), in order.
    pub fn logs(&self, run: Option<RunId>, phase: &str, stream: Option<Stream>) -> Result<Vec<LogEntry>, HistoryError> {
        let mut out = Vec::new();
        self.for_each_log(run, phase, stream, |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// A run's journal, in order (`None` = the newest run). Stops before the first entry
    /// that is missing or damaged ([`verify`](Self::verify) says which).
    pub fn journal(&self, run: Option<RunId>) -> Result<Vec<JournalEntry>, HistoryError> {
        let id = self.resolve(run, None)?;
        let mut out = Vec::new();
        let _ = self.walk_entries(id, |seq, entry| {
            let (json, hash) = match entry {
                Entry::Json { json, hash } => (String::from_utf8_lossy(json).into_owned(), hash.to_vec()),
                Entry::Log { phase, entry } => (
                    serde_json::to_string(&entry.action(phase)).unwrap_or_default(),
                    entry.check.to_vec(),
                ),
            };
            out.push(JournalEntry { seq, json, hash });
            None
        })?;
        Ok(out)
    }

    /// Checks a run's journal and the rows derived from it (`None` = the newest run).
    pub fn verify(&self, run: Option<RunId>) -> Result<Verification, HistoryError> {
        let id = self.resolve(run, None)?;
        Ok(self.audit(id)?.verification)
    }

    /// Verifies a run's journal and, if intact, re-reduces it with the pipeline reducer of
    /// the recorded definition (`None` = the newest run).
    pub fn replay(&self, run: Option<RunId>) -> Result<Replay, HistoryError> {
        let id = self.resolve(run, None)?;
        let audit = self.audit(id)?;
        Ok(Replay {
            run: id,
            verification: audit.verification,
            state: audit.state,
        })
    }

    /// Checks run `id`: its definition against its hash, its journal's MAC chain (with the
    /// journal key), and the `runs`, `phases` and `logs` rows against what the journal
    /// reduces to. The state and phase rows come from the journal, never from the rows.
    fn audit(&self, id: RunId) -> Result<Audit, HistoryError> {
        let run = self.conn.query_row(
            "SELECT pipeline, def_hash, pipeline_file, started_at, resumed_from, status, error, exit_code, ended_at,
                    journal_len, journal_head, chain, seal, params, trigger
             FROM runs WHERE id = ?1",
            [id],
            |r| {
                Ok(RunRow {
                    pipeline: r.get(0)?,
                    def_hash: r.get(1)?,
                    pipeline_file: r.get(2)?,
                    started_at: r.get(3)?,
                    resumed_from: r.get(4)?,
                    status: r.get(5)?,
                    error: r.get(6)?,
                    exit_code: r.get(7)?,
                    ended_at: r.get(8)?,
                    journal_len: r.get(9)?,
                    journal_head: blob(r.get_ref(10)?),
                    chain: r.get(11)?,
                    seal: blob(r.get_ref(12)?),
                    params: r.get(13)?,
                    trigger: r.get(14)?,
                })
            },
        )?;
        let disagrees = |reason: String| Audit {
            verification: Verification::Disagrees { reason },
            state: None,
            rows: Vec::new(),
        };
        let def_json: Option<String> = self
            .conn
            .query_row("SELECT def_json FROM defs WHERE def_hash = ?1", [&run.def_hash], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(def_json) = def_json else {
            return Ok(disagrees(format!(
                "the pipeline definition the run names ({}) is not in the history: it, or the run row, was changed",
                run.def_hash
            )));
        };
        if crate::def::hex(&Sha256::digest(def_json.as_bytes())) != run.def_hash {
            return Ok(disagrees(
                "the recorded pipeline definition does not match its hash: it was changed after it was recorded".into(),
            ));
        }
        let def: DefRecord = serde_json::from_str(&def_json).map_err(|e| HistoryError::BadRecord {
            run: id,
            what: "pipeline definition",
            reason: e.to_string(),
        })?;
        let unverified = |reason: String| Audit {
            verification: Verification::Unverified {
                entries: u64::try_from(run.journal_len).unwrap_or(0),
                reason,
            },
            state: None,
            rows: Vec::new(),
        };
        let chain = match run.chain.as_deref() {
            None => Chain::Unkeyed,
            Some(c) => match c.strip_prefix(KEYED) {
                Some(key_id) => match JournalKey::load()? {
                    Some(key) if key.id() == key_id => Chain::Keyed(key),
                    Some(key) => {
                        return Ok(unverified(format!(
                            "it was recorded with another journal key (id {key_id}; `{}` is {}): another user's, or a key since replaced",
                            key.path().display(),
                            key.id()
                        )));
                    }
                    None => {
                        return Ok(unverified(format!(
                            "the journal key it was recorded with (id {key_id}) is not here ({}); set {}=PATH to name it",
                            crate::key::key_path()
                                .map_or_else(|| "no key path".to_owned(), |p| format!("no file `{}`", p.display())),
                            crate::key::KEY_ENV
                        )));
                    }
                },
                None => {
                    return Ok(unverified(format!(
                        "it uses a journal chain this milo does not know (`{c}`)"
                    )));
                }
            },
        };
        let genesis = chain.genesis(&RunFacts {
            run: id,
            pipeline: &run.pipeline,
            def_hash: &run.def_hash,
            pipeline_file: run.pipeline_file.as_deref(),
            started_at: run.started_at.to_bits(),
            resumed_from: run.resumed_from,
            params: run.params.as_deref(),
            trigger: run.trigger.as_deref(),
        });
        let pipeline = def.to_noop_pipeline().map_err(|e| HistoryError::BadRecord {
            run: id,
            what: "pipeline definition",
            reason: e.to_string(),
        })?;
        let reducer = pipeline.build_reducer();
        let mut state = reducer.apply(None, &PipelineAction::Init {});
        let mut rows: Vec<PhaseRow> = def.phases.iter().map(|p| PhaseRow::new(&p.name)).collect();
        let index: HashMap<Arc<str>, usize> = def
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| (Arc::<str>::from(p.name.as_str()), i))
            .collect();
        let mut run_error = None;
        let mut ended = None;
        let verification = self.walk_journal(
            id,
            &chain,
            genesis,
            (run.journal_len, run.journal_head.as_deref()),
            |action| {
                state = reducer.apply(Some(&state), action);
                match action {
                    // Lines of the pipeline's phases are counted (the recorder stores them in
                    // chunks); the others are journal only.
                    PipelineAction::PhaseLog { name, .. } if index.contains_key(name) => {
                        if let Some(&i) = index.get(name) {
                            rows[i].log_count += 1;
                        }
                    }
                    PipelineAction::PipelineComplete { .. } => ended = Some("completed"),
                    PipelineAction::PipelineFailed { .. } => ended = Some("failed"),
                    PipelineAction::PipelineCancelled { .. } => ended = Some("cancelled"),
                    _ => {}
                }
                apply(&mut rows, &index, &mut run_error, action);
            },
        )?;
        if !matches!(verification, Verification::Intact { .. }) {
            return Ok(Audit {
                verification,
                state: None,
                rows: Vec::new(),
            });
        }
        let entries = run.journal_len;
        if run.status == "interrupted" {
            for r in &mut rows {
                if matches!(r.status, "running" | "retrying") {
                    r.status = "interrupted";
                }
            }
        }
        if let Some(reason) = self
            .run_disagrees(&run, &chain, ended, run_error.as_deref())
            .or(self.phases_disagree(id, &def, &rows)?)
            .or(self.chunks_disagree(id)?)
        {
            return Ok(disagrees(reason));
        }
        let verification = match chain {
            Chain::Keyed(_) => Verification::Intact {
                entries: entries as u64,
            },
            Chain::Unkeyed => Verification::Unverified {
                entries: entries as u64,
                reason: "it was recorded by an older milo with an unkeyed hash chain, which anyone who can write the database can recompute; it shows no accidental damage, but proves nothing".into(),
            },
        };
        Ok(Audit {
            verification,
            state: Some(state),
            rows,
        })
    }

    /// What in the run row disagrees with the journal (its end, its error, its seal).
    fn run_disagrees(&self, run: &RunRow, chain: &Chain, ended: Option<&str>, error: Option<&str>) -> Option<String> {
        let status = run.status.as_str();
        let fits = match ended {
            // Killed after the last action, before the row was updated.
            Some(end) => status == end || (status == "interrupted" && run.seal.is_none()) || status == "running",
            // A run whose saga stopped unexpectedly is recorded as failed.
            None => matches!(status, "running" | "interrupted" | "failed"),
        };
        if !fits {
            return Some(format!(
                "the run row says the run is `{status}`, but its journal {}",
                match ended {
                    Some(end) => format!("ends with the pipeline {end}"),
                    None => "never ends".into(),
                }
            ));
        }
        if run.error.as_deref() != error {
            return Some(format!(
                "the run row's error ({}) is not the one its journal records ({})",
                run.error.as_deref().map_or("none".into(), |e| format!("`{e}`")),
                error.map_or("none".into(), |e| format!("`{e}`"))
            ));
        }
        if let Chain::Keyed(_) = chain {
            let needs_seal = matches!(status, "completed" | "failed" | "cancelled");
            let head: [u8; 32] = run
                .journal_head
                .as_deref()
                .and_then(|h| h.try_into().ok())
                .unwrap_or([0; 32]);
            let expected = run.ended_at.and_then(|t| chain.seal(&head, status, run.exit_code, t));
            match (&run.seal, expected) {
                (None, _) if !needs_seal => {}
                (Some(seal), Some(exp)) if *seal == exp => {}
                (None, _) => {
                    return Some(format!(
                        "the run row says the run is `{status}` but has no seal: its end was changed"
                    ));
                }
                _ => {
                    return Some(
                        "the run row's end (status, exit code or end time) does not match its seal: it was changed"
                            .into(),
                    );
                }
            }
        }
        None
    }

    /// What in the phase rows disagrees with what the journal reduces to.
    fn phases_disagree(&self, id: RunId, def: &DefRecord, rows: &[PhaseRow]) -> Result<Option<String>, HistoryError> {
        type Stored = (
            i64,
            String,
            String,
            u32,
            Option<f64>,
            Option<f64>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            [Option<String>; 4],
        );
        let mut stmt = self.conn.prepare(
            "SELECT idx, name, status, attempts, started_at, finished_at, error, result, reused_from, log_count,
                    decision_key, verdict, reason, job_ids
             FROM phases WHERE run_id = ?1 ORDER BY idx",
        )?;
        let stored: Vec<Stored> = stmt
            .query_map([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    [r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?],
                ))
            })?
            .collect::<Result<_, _>>()?;
        if stored.len() != rows.len() {
            return Ok(Some(format!(
                "the run has {} phase rows, but its definition {} phases: rows were added or deleted",
                stored.len(),
                rows.len()
            )));
        }
        let hashes: HashMap<(i64, String), String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT idx, name, phase_hash FROM phases WHERE run_id = ?1")?;
            stmt.query_map([id], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
                .collect::<Result<_, _>>()?
        };
        for (i, (row, s)) in rows.iter().zip(&stored).enumerate() {
            let name = &row.name;
            if s.0 != i as i64 || s.1 != *name {
                return Ok(Some(format!(
                    "phase row {} is `{}`, but the definition's phase {} is `{name}`",
                    s.0, s.1, i
                )));
            }
            if hashes.get(&(s.0, s.1.clone())) != Some(&phase_hash(&def.phases[i])) {
                return Ok(Some(format!(
                    "phase `{name}`'s hash is not the one of its recorded definition: it was changed"
                )));
            }
            let differs = |field: &str, stored: String, journal: String| {
                Some(format!(
                    "phase `{name}`'s {field} is {stored} in the phases table, but {journal} in the journal: the row was changed"
                ))
            };
            let opt = |v: &Option<String>| v.as_ref().map_or("none".to_owned(), |v| format!("`{v}`"));
            let time = |v: Option<f64>| v.map_or("none".to_owned(), |t| t.to_string());
            let found = if s.2 != row.status {
                differs("status", format!("`{}`", s.2), format!("`{}`", row.status))
            } else if s.3 != row.attempts {
                differs("attempt count", s.3.to_string(), row.attempts.to_string())
            } else if s.4.map(f64::to_bits) != row.started_at.map(f64::to_bits) {
                differs("start time", time(s.4), time(row.started_at))
            } else if s.5.map(f64::to_bits) != row.finished_at.map(f64::to_bits) {
                differs("end time", time(s.5), time(row.finished_at))
            } else if s.6 != row.error {
                differs("error", opt(&s.6), opt(&row.error))
            } else if s.7 != row.result {
                differs("result", opt(&s.7), opt(&row.result))
            } else if s.8 != row.reused_from {
                differs("origin (reused from)", opt(&s.8), opt(&row.reused_from))
            } else if s.9 != row.log_count {
                differs("line count", s.9.to_string(), row.log_count.to_string())
            } else if s.10[0] != row.key {
                differs("decision key", opt(&s.10[0]), opt(&row.key))
            } else if s.10[1].as_deref() != row.verdict {
                differs("verdict", opt(&s.10[1]), opt(&row.verdict.map(str::to_owned)))
            } else if s.10[2] != row.reason {
                differs("decision reason", opt(&s.10[2]), opt(&row.reason))
            } else if s.10[3] != row.job_ids {
                differs("job ids", opt(&s.10[3]), opt(&row.job_ids))
            } else {
                None
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// What in the log chunk rows disagrees with the lines they hold (the lines themselves
    /// are checked by the chain).
    fn chunks_disagree(&self, id: RunId) -> Result<Option<String>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT phase, first_seq, lines, data, hash IS NOT NULL FROM logs WHERE run_id = ?1")?;
        let mut rows = stmt.query([id])?;
        while let Some(r) = rows.next()? {
            let phase: String = r.get(0)?;
            let first: i64 = r.get(1)?;
            let lines: i64 = r.get(2)?;
            let data = r.get_ref(3)?.as_bytes().unwrap_or_default();
            let entries = chunk::decode(data, r.get(4)?).unwrap_or_default();
            if entries.len() as i64 != lines || entries.first().is_some_and(|e| e.seq != first) {
                return Ok(Some(format!(
                    "a log chunk of phase `{phase}` says it holds {lines} lines from entry {first}, but it holds {} from entry {}: the row was changed",
                    entries.len(),
                    entries.first().map_or(0, |e| e.seq)
                )));
            }
        }
        Ok(None)
    }

    /// Calls `f(seq, entry)` for each journal entry of run `id` in order, merging the
    /// `journal` rows with the lines of the log chunks. Stops
    /// when `f` returns a verdict, or at a missing, duplicated or undecodable entry; returns
    /// the number of entries on a clean end.
    fn walk_entries(
        &self,
        id: RunId,
        mut f: impl FnMut(i64, Entry<'_>) -> Option<Verification>,
    ) -> Result<Result<i64, Verification>, HistoryError> {
        type JournalRow = (i64, Vec<u8>, Vec<u8>);
        type ChunkRow = (Arc<str>, i64, Vec<u8>, bool);
        let mut jstmt = self
            .conn
            .prepare("SELECT seq, action, hash FROM journal WHERE run_id = ?1 ORDER BY seq")?;
        let mut jrows = jstmt.query([id])?;
        let next_journal = |rows: &mut rusqlite::Rows<'_>| -> Result<Option<JournalRow>, HistoryError> {
            let Some(r) = rows.next()? else { return Ok(None) };
            // Bytes, whatever the column holds: an edit may have stored anything.
            let json = match r.get_ref(1)? {
                ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
                other => format!("{other:?}").into_bytes(),
            };
            let hash = match r.get_ref(2)? {
                ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
                _ => Vec::new(),
            };
            Ok(Some((r.get(0)?, json, hash)))
        };
        let mut cstmt = self.conn.prepare(
            "SELECT phase, first_seq, data, hash IS NOT NULL FROM logs WHERE run_id = ?1 ORDER BY first_seq",
        )?;
        let mut crows = cstmt.query([id])?;
        let next_chunk = |rows: &mut rusqlite::Rows<'_>| -> Result<Option<ChunkRow>, HistoryError> {
            let Some(r) = rows.next()? else { return Ok(None) };
            let phase: String = r.get(0)?;
            let data = r.get_ref(2)?.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
            Ok(Some((Arc::from(phase), r.get(1)?, data, r.get(3)?)))
        };
        let mut journal = next_journal(&mut jrows)?;
        let mut chunk = next_chunk(&mut crows)?;
        let mut pending: BTreeMap<i64, (Arc<str>, ChunkEntry)> = BTreeMap::new();
        let mut seq = 1i64;
        loop {
            while let Some((phase, first, data, v2)) = chunk.take_if(|c| c.1 <= seq) {
                match chunk::decode(&data, v2) {
                    Ok(entries) => pending.extend(entries.into_iter().map(|e| (e.seq, (phase.clone(), e)))),
                    Err(n) => {
                        return Ok(Err(Verification::Broken {
                            seq: seq.max(first),
                            action_type: Some("@@PHASE_LOG".into()),
                            reason: format!("is in a damaged log chunk of phase `{phase}` (after its {n} first lines)"),
                        }));
                    }
                }
                chunk = next_chunk(&mut crows)?;
            }
            let verdict = if journal.as_ref().is_some_and(|j| j.0 == seq) {
                let (_, action, hash) = journal.take().unwrap_or_default();
                journal = next_journal(&mut jrows)?;
                f(
                    seq,
                    Entry::Json {
                        json: &action,
                        hash: &hash,
                    },
                )
            } else if let Some((phase, e)) = pending.remove(&seq) {
                f(
                    seq,
                    Entry::Log {
                        phase: &phase,
                        entry: &e,
                    },
                )
            } else if journal.is_none() && pending.is_empty() && chunk.is_none() {
                return Ok(Ok(seq - 1));
            } else {
                Some(Verification::Broken {
                    seq,
                    action_type: None,
                    reason: "is missing: it was deleted from the journal".into(),
                })
            };
            if let Some(v) = verdict {
                return Ok(Err(v));
            }
            let duplicate = journal.as_ref().is_some_and(|j| j.0 <= seq)
                || pending.first_key_value().is_some_and(|(s, _)| *s <= seq);
            if duplicate {
                return Ok(Err(Verification::Broken {
                    seq,
                    action_type: None,
                    reason: "is recorded twice".into(),
                }));
            }
            seq += 1;
        }
    }

    /// Walks the journal of run `id` checking the chain, calling `f` with each good action
    /// in order; stops at the first bad entry.
    fn walk_journal(
        &self,
        id: RunId,
        chain: &Chain,
        genesis: [u8; 32],
        (len, head): (i64, Option<&[u8]>),
        mut f: impl FnMut(&PipelineAction),
    ) -> Result<Verification, HistoryError> {
        // The links of version 2 chunks: (journal length when written, chain head then, phase).
        let links: Vec<(i64, Vec<u8>, String)> = {
            let mut stmt = self.conn.prepare(
                "SELECT last_seq, hash, phase FROM logs WHERE run_id = ?1 AND hash IS NOT NULL ORDER BY last_seq",
            )?;
            let rows = stmt.query_map([id], |r| {
                let hash = match r.get_ref(1)? {
                    ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
                    _ => Vec::new(),
                };
                Ok((r.get(0)?, hash, r.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut link = 0;
        let mut prev = genesis;
        // The running hash of the lines since the last link, and the first of them.
        let mut lines: Option<(Hasher, i64)> = None;
        let fold = |prev: &mut [u8; 32], lines: &mut Option<(Hasher, i64)>| {
            if let Some((h, _)) = lines.take() {
                *prev = h.finish();
            }
        };
        let mut input = Vec::with_capacity(256);
        let walked = self.walk_entries(id, |seq, entry| {
            let action = match entry {
                Entry::Json { json, hash } => {
                    let text = || String::from_utf8_lossy(json);
                    let since = lines.as_ref().map(|l| l.1);
                    fold(&mut prev, &mut lines);
                    let computed = chain.link(&prev, json);
                    if computed[..] != hash[..] {
                        let reason = match since {
                            Some(s) => format!(
                                "does not match its hash: it, or a captured line from entry {s} on, was changed after it was recorded"
                            ),
                            None if seq == 1 && matches!(chain, Chain::Keyed(_)) => "does not match its hash: it, or the facts of the run row it chains from (run number, pipeline, file, start time, definition hash, resumed run), was changed after it was recorded".into(),
                            None => "does not match its hash: it was changed after it was recorded".into(),
                        };
                        return Some(Verification::Broken {
                            seq,
                            action_type: action_type(&text()),
                            reason,
                        });
                    }
                    match serde_json::from_slice::<PipelineAction>(json) {
                        Ok(action) => {
                            prev = computed;
                            action
                        }
                        Err(e) => {
                            return Some(Verification::Broken {
                                seq,
                                action_type: action_type(&text()),
                                reason: format!("matches its hash but is not a valid action ({e})"),
                            });
                        }
                    }
                }
                Entry::Log { phase, entry } => {
                    chunk::hash_input(&mut input, phase, entry.stream, entry.timestamp, &entry.line);
                    let good = match entry.check {
                        Check::Chained(hash) => {
                            fold(&mut prev, &mut lines);
                            let computed = chain.link(&prev, &input);
                            prev = computed;
                            computed == hash
                        }
                        Check::Tag(tag) => {
                            let (h, _) = lines.get_or_insert_with(|| {
                                let mut h = chain.hasher(b"lines");
                                h.update(&prev);
                                (h, seq)
                            });
                            h.update(&input);
                            chunk::tag(seq, &input) == tag
                        }
                    };
                    if !good {
                        return Some(Verification::Broken {
                            seq,
                            action_type: Some("@@PHASE_LOG".into()),
                            reason: format!(
                                "does not match its hash: the line of phase `{phase}` was changed after it was recorded"
                            ),
                        });
                    }
                    entry.action(phase)
                }
            };
            f(&action);
            // The chunks written after this entry: the chain head must be theirs.
            while let Some((at, hash, phase)) = links.get(link).filter(|l| l.0 <= seq) {
                let since = lines.as_ref().map_or(seq, |l| l.1);
                fold(&mut prev, &mut lines);
                if *at < seq || hash[..] != prev[..] {
                    return Some(Verification::Broken {
                        seq: since,
                        action_type: None,
                        reason: format!(
                            "does not match the hash chain: entries {since} to {seq} do not match the link stored with a log chunk of phase `{phase}`; they were changed after they were recorded"
                        ),
                    });
                }
                link += 1;
            }
            None
        })?;
        let count = match walked {
            Ok(count) => count,
            Err(broken) => return Ok(broken),
        };
        if let Some((at, _, phase)) = links.get(link) {
            return Ok(Verification::Broken {
                seq: count + 1,
                action_type: None,
                reason: format!(
                    "is missing: a log chunk of phase `{phase}` was written after entry {at}, but the journal ends after {count}"
                ),
            });
        }
        if count < len {
            return Ok(Verification::Broken {
                seq: count + 1,
                action_type: None,
                reason: format!("is missing: the run recorded {len} entries but the journal ends after {count}"),
            });
        }
        if count == 0 && len == 0 && matches!(chain, Chain::Keyed(_)) && head != Some(&prev[..]) {
            return Ok(Verification::Broken {
                seq: 1,
                action_type: None,
                reason: "is missing: the journal is empty, but the run's chain head shows that entries were recorded; they were deleted".into(),
            });
        }
        let head_ok = match chain {
            Chain::Keyed(_) => head == Some(&prev[..]),
            Chain::Unkeyed => count == 0 || head == Some(&prev[..]),
        };
        if count > len || !head_ok {
            return Ok(Verification::Broken {
                seq: count,
                action_type: None,
                reason: "does not match the chain head recorded in the run: entries were added or rewritten".into(),
            });
        }
        Ok(Verification::Intact { entries: count as u64 })
    }

    /// The plan to resume a failed, cancelled or interrupted run of `pipeline` (`None` = the
    /// newest run of this pipeline): a phase is reused when it completed (an incremental phase
    /// that was up to date or restored counts as completed, with its recorded result), its
    /// phase hash is unchanged, and every phase it depends on is reused too (a dependency that runs again
    /// may produce something else).
    pub fn resume_plan(&self, run: Option<RunId>, pipeline: &Pipeline) -> Result<ResumePlan, HistoryError> {
        let id = self.resolve(run, Some(pipeline.name()))?;
        let summary = self.run(Some(id))?;
        if summary.pipeline != pipeline.name() {
            return Err(HistoryError::OtherPipeline {
                run: id,
                found: summary.pipeline,
                expected: pipeline.name().to_owned(),
            });
        }
        // Results only from a verified journal: the phase rows a writer of the database could
        // have edited are not trusted, what the journal reduces to is.
        let audit = self.audit(id)?;
        if !audit.verification.is_intact() {
            return Err(HistoryError::NotVerified {
                run: id,
                reason: audit.verification.to_string(),
            });
        }
        if matches!(summary.status, RunStatus::Completed | RunStatus::Running) {
            let status = if summary.status == RunStatus::Running {
                format!("still running (pid {})", summary.pid)
            } else {
                "completed".to_owned()
            };
            return Err(HistoryError::NotResumable { run: id, status });
        }
        let recorded = self.def_of(id)?;
        let old: HashMap<String, (String, String, Option<String>, Option<String>)> = audit
            .rows
            .into_iter()
            .zip(&recorded.phases)
            .map(|(row, def)| {
                (
                    row.name,
                    (row.status.to_owned(), phase_hash(def), row.result, row.reused_from),
                )
            })
            .collect();
        let current = DefRecord::of(pipeline);
        let def = pipeline.def();
        let mut reuse = HashMap::new();
        let mut reused: HashSet<usize> = HashSet::new();
        let mut rerun = Vec::new();
        for &i in def.order() {
            let info = &def.phases[i];
            let name = info.name.to_string();
            let unchanged = old.get(&name).and_then(|(status, hash, result, from)| {
                (status == "completed" && *hash == phase_hash(&current.phases[i])).then_some((result, from))
            });
            match unchanged {
                Some((result, from)) if info.deps.iter().all(|d| reused.contains(d)) => {
                    let value = match result {
                        Some(s) => serde_json::from_str(s).map_err(|e| HistoryError::BadRecord {
                            run: id,
                            what: "phase result",
                            reason: format!("phase `{name}`: {e}"),
                        })?,
                        None => serde_json::Value::Null,
                    };
                    let origin = from.clone().unwrap_or_else(|| id.to_string());
                    reuse.insert(name, (value, origin));
                    reused.insert(i);
                }
                _ => rerun.push(name),
            }
        }
        Ok(ResumePlan { run: id, reuse, rerun })
    }

    /// The median duration (seconds) of each phase over the `recent` most recent completed
    /// runs of `pipeline`, counting only phases that ran (not reused ones, nor incremental
    /// ones that were up to date or restored: they took no time of their own). Empty when
    /// there is no such run.
    pub fn median_durations_over(&self, pipeline: &str, recent: usize) -> Result<HashMap<String, f64>, HistoryError> {
        let mut stmt = self.conn.prepare(
            "SELECT p.name, p.finished_at - p.started_at FROM phases p
             WHERE p.run_id IN (SELECT id FROM runs WHERE pipeline = ?1 AND status = 'completed' ORDER BY id DESC LIMIT ?2)
               AND p.status = 'completed' AND p.reused_from IS NULL
               AND (p.verdict IS NULL OR p.verdict = 'run')
               AND p.started_at IS NOT NULL AND p.finished_at IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![pipeline, i64::try_from(recent).unwrap_or(i64::MAX)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
        })?;
        let mut by_phase: HashMap<String, Vec<f64>> = HashMap::new();
        for row in rows {
            let (name, d) = row?;
            if d.is_finite() {
                by_phase.entry(name).or_default().push(d.max(0.0));
            }
        }
        Ok(by_phase
            .into_iter()
            .map(|(name, mut ds)| (name, median(&mut ds)))
            .collect())
    }

    /// [`median_durations_over`](Self::median_durations_over) the 20 most recent completed
    /// runs.
    pub fn median_durations(&self, pipeline: &str) -> Result<HashMap<String, f64>, HistoryError> {
        self.median_durations_over(pipeline, 20)
    }
}

/// One journal entry as stored: a `journal` row, or a line of a log chunk.
enum Entry<'a> {
    Json { json: &'a [u8], hash: &'a [u8] },
    Log { phase: &'a Arc<str>, entry: &'a ChunkEntry },
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The `type` of an action's JSON, if it still parses that far.
fn action_type(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("type")?.as_str().map(str::to_owned)
}

/// A number as people write it: `1e300` rather than three hundred digits.
fn readable(t: f64) -> String {
    if t.is_finite() && t.abs() < 1e9 {
        t.to_string()
    } else {
        format!("{t:e}")
    }
}

/// What [`History::audit`] found.
struct Audit {
    verification: Verification,
    /// The state the journal reduces to (when it was replayed).
    state: Option<Arc<PipelineState>>,
    /// The phase rows the journal reduces to, in declaration order (when intact).
    rows: Vec<PhaseRow>,
}

/// A run row, as [`History::audit`] checks it.
struct RunRow {
    pipeline: String,
    def_hash: String,
    pipeline_file: Option<String>,
    started_at: f64,
    resumed_from: Option<i64>,
    status: String,
    error: Option<String>,
    exit_code: Option<i32>,
    ended_at: Option<f64>,
    journal_len: i64,
    journal_head: Option<Vec<u8>>,
    chain: Option<String>,
    seal: Option<Vec<u8>>,
    params: Option<String>,
    trigger: Option<String>,
}

/// Numbers `phases` (read in declaration order) and sets each one's group: from `def`, or
/// when it has none (recorded before groups were, or unreadable) from the phase's name.
fn set_groups(phases: &mut [PhaseRecord], def: Option<&DefRecord>) {
    let recorded: HashMap<&str, &str> = def
        .map(|d| {
            d.phases
                .iter()
                .filter_map(|p| Some((p.name.as_str(), p.group.as_deref()?)))
                .collect()
        })
        .unwrap_or_default();
    for (i, p) in phases.iter_mut().enumerate() {
        p.declared = i;
        let group = if recorded.is_empty() {
            crate::def::group_of_name(&p.name)
        } else {
            recorded.get(p.name.as_str()).copied()
        };
        p.group = group.map(str::to_owned);
    }
}

/// The bytes of a BLOB (or TEXT) column, whatever an edit stored there.
fn blob(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
        _ => None,
    }
}
