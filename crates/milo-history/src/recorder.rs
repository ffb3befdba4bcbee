//! [`Recorder`]: records one run off the hot path.
//!
//! The store listener only clones the action (a few reference-count increments) and sends it
//! down an unbounded channel; a dedicated thread owns its own SQLite connection and writes
//! whatever has queued up in one transaction per batch: the journal row with its chained
//! hash (a captured line goes into its phase's [log chunk](crate::chunk) instead), and the
//! phase and run rows the batch changed. A batch collects actions for up to [`COMMIT_EVERY`]
//! (50 ms; or [`BATCH`] actions) and is then committed, so a killed process loses at most
//! the last 50 ms of actions, and what was committed stays readable (WAL). The writer polls
//! its queue every few milliseconds instead of blocking on it while a batch is open, so the
//! dispatching thread does not have to wake it for each action.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;

use milo::pipeline::{Pipeline, PipelineAction, ServiceState, Status};
use milo::store::{Store, Subscription};
use rusqlite::{Connection, params};

use crate::chunk::{self, CHUNK_BYTES};
use crate::def::{DefRecord, phase_hash};
use crate::error::HistoryError;
use crate::key::{Chain, Hasher, JournalKey, RunFacts};
use crate::trigger::Trigger;
use crate::{RunId, RunStatus, now, process};

/// The most actions written in one transaction.
pub const BATCH: usize = 32 * 1024;

/// How long the writer waits for more actions before it looks at the queue again (a
/// `park_timeout`: [`Recorder::finish`] unparks it, so the end of a run does not wait).
const IDLE: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a batch's transaction stays open collecting actions before it is committed.
pub const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

enum Msg {
    Action(PipelineAction),
    Finish { status: RunStatus, exit_code: Option<i32> },
}

/// The next action of the batch opened at `opened`: the queue is polled (no wake-up per action
/// for the dispatching thread) until [`COMMIT_EVERY`] has passed. A transaction is kept open
/// that long because every commit appends each page it touched to the WAL: committing per
/// burst of actions wrote the same phase and run pages dozens of times a second.
fn next_in_batch(rx: &Receiver<Msg>, opened: std::time::Instant) -> Option<Msg> {
    loop {
        match rx.try_recv() {
            Ok(msg) => return Some(msg),
            Err(TryRecvError::Empty) if opened.elapsed() < COMMIT_EVERY => std::thread::park_timeout(IDLE),
            Err(_) => return None,
        }
    }
}

/// What a recording is about, besides the pipeline itself.
#[derive(Debug, Clone, Default)]
pub struct RecordOptions {
    /// The pipeline file, shown by `milo show`.
    pub pipeline_file: Option<String>,
    /// The run this one resumes (`milo run --resume`).
    pub resumed_from: Option<RunId>,
    /// The run's parameter values (`-p NAME=VALUE` after defaults), in declaration order;
    /// shown by `milo show` and the report, and reused by `--resume`.
    pub params: Vec<(String, String)>,
    /// What started the run, when not a plain `milo run`: `milo watch` passes each cycle's
    /// number and changed paths. Shown by `milo show`, `milo history` and the report, and
    /// covered by the journal's MAC.
    pub trigger: Option<Trigger>,
    /// Retention: once the run is recorded, [`Recorder::finish`] deletes the runs of this
    /// pipeline beyond the newest N (see [`History::prune`](crate::History::prune)). `None`
    /// (the default) or `Some(0)` keeps every run; `milo run` passes
    /// [`DEFAULT_KEEP_RUNS`](crate::DEFAULT_KEEP_RUNS) unless told otherwise.
    pub keep_runs: Option<usize>,
}

/// Records one run. Subscribe [`listener`](Self::listener) (or call
/// [`subscribe`](Self::subscribe)) before the run starts, and call
/// [`finish`](Self::finish) when it ends. Dropped without `finish`, the run is recorded as
/// `interrupted`.
#[derive(Debug)]
pub struct Recorder {
    run_id: RunId,
    /// The database, to mark the run if the writer fails.
    path: std::path::PathBuf,
    pipeline: String,
    keep_runs: Option<usize>,
    tx: Option<Sender<Msg>>,
    /// The writer; it hands its connection back when it is done.
    thread: Option<JoinHandle<Result<Connection, HistoryError>>>,
}

impl Recorder {
    pub(crate) fn start(
        conn: Connection,
        path: &std::path::Path,
        key: JournalKey,
        pipeline: &Pipeline,
        options: RecordOptions,
    ) -> Result<Self, HistoryError> {
        let def = DefRecord::of(pipeline);
        let chain = Chain::Keyed(key.clone());
        let (me, me_start) = process::current();
        // A batch of 32K lines fits in the page cache instead of spilling mid-transaction.
        conn.pragma_update(None, "cache_size", -32 * 1024)?;
        // Checkpoint (copy the WAL into the database and fsync) every ~32 MiB instead of
        // every 4 MiB: the same copying, far fewer fsyncs on the writer thread.
        conn.pragma_update(None, "wal_autocheckpoint", 2048)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let inserted = (|| -> Result<(RunId, [u8; 32]), rusqlite::Error> {
            let (json, hash) = def.to_json_and_hash();
            conn.execute(
                "INSERT OR IGNORE INTO defs (def_hash, def_json) VALUES (?1, ?2)",
                params![hash, json],
            )?;
            let started_at = now();
            let params_json = crate::params_json(&options.params);
            let trigger_json = options.trigger.as_ref().and_then(Trigger::to_json);
            conn.execute(
                "INSERT INTO runs (pipeline, def_hash, pipeline_file, started_at, last_seen, status, pid, pid_start, resumed_from, chain, params, trigger)
                 VALUES (?1, ?2, ?3, ?4, ?4, 'running', ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    def.name,
                    hash,
                    options.pipeline_file,
                    started_at,
                    me,
                    me_start,
                    options.resumed_from,
                    key.chain_name(),
                    params_json,
                    trigger_json
                ],
            )?;
            let run_id = conn.last_insert_rowid();
            // The chain starts from a MAC of the row's fixed facts.
            let genesis = chain.genesis(&RunFacts {
                run: run_id,
                pipeline: &def.name,
                def_hash: &hash,
                pipeline_file: options.pipeline_file.as_deref(),
                started_at: started_at.to_bits(),
                resumed_from: options.resumed_from,
                params: params_json.as_deref(),
                trigger: trigger_json.as_deref(),
            });
            conn.execute(
                "UPDATE runs SET journal_head = ?2 WHERE id = ?1",
                params![run_id, &genesis[..]],
            )?;
            let mut insert = conn.prepare(
                "INSERT INTO phases (run_id, idx, name, phase_hash, status) VALUES (?1, ?2, ?3, ?4, 'pending')",
            )?;
            for (i, p) in def.phases.iter().enumerate() {
                insert.execute(params![run_id, i as i64, p.name, phase_hash(p)])?;
            }
            Ok((run_id, genesis))
        })();
        let (run_id, genesis) = match inserted {
            Ok(id) => {
                conn.execute_batch("COMMIT")?;
                id
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        };
        // The start waited as long as the history was opened to wait; the writer, off the
        // run's path, waits the usual time for another process's transaction.
        conn.busy_timeout(crate::schema::BUSY_TIMEOUT)?;
        let phases: Vec<PhaseRow> = def.phases.iter().map(|p| PhaseRow::new(&p.name)).collect();
        let index = def
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| (Arc::<str>::from(p.name.as_str()), i))
            .collect();
        let writer = Writer {
            conn,
            run_id,
            seq: 0,
            head: genesis,
            chain,
            lines: None,
            last: None,
            dirty: vec![false; phases.len()],
            dirty_list: Vec::new(),
            phases,
            index,
            run_error: None,
            json: Vec::with_capacity(256),
        };
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("milo-history-{run_id}"))
            .spawn(move || writer.run(rx))
            .map_err(|e| HistoryError::Writer(format!("could not start the writer thread: {e}")))?;
        Ok(Self {
            run_id,
            path: path.to_owned(),
            pipeline: def.name,
            keep_runs: options.keep_runs.filter(|&n| n > 0),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// This run's id.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// A store listener that hands every action to the writer thread. It never blocks and
    /// never fails; once the writer has stopped, actions are dropped.
    pub fn listener<S>(&self) -> impl Fn(&PipelineAction, &Arc<S>) + Send + Sync + 'static {
        let tx = self.tx.clone();
        move |action: &PipelineAction, _: &Arc<S>| {
            if let Some(tx) = &tx {
                let _ = tx.send(Msg::Action(action.clone()));
            }
        }
    }

    /// Subscribes [`listener`](Self::listener) to `store`; keep the subscription for the run.
    pub fn subscribe<S: Send + Sync + 'static>(&self, store: &Store<S, PipelineAction>) -> Subscription {
        store.subscribe(self.listener::<S>())
    }

    /// Records how the run ended (`completed`, `failed`, `cancelled`; any other status is
    /// recorded as `interrupted`), waits until everything sent so far is written, and
    /// returns the run id. Actions dispatched after this are not recorded.
    ///
    /// Then, with [`RecordOptions::keep_runs`] set, deletes the runs of this pipeline beyond
    /// the newest N (one indexed lookup when there are not that many); a failure there is
    /// [`HistoryError::Retention`], the run itself being recorded.
    pub fn finish(mut self, status: Status, exit_code: i32) -> Result<RunId, HistoryError> {
        let status = match status {
            Status::Completed => RunStatus::Completed,
            Status::Failed => RunStatus::Failed,
            Status::Cancelled => RunStatus::Cancelled,
            _ => RunStatus::Interrupted,
        };
        let conn = self.close(status, Some(exit_code))?;
        if let (Some(conn), Some(keep)) = (conn, self.keep_runs) {
            crate::prune::retain(&conn, &self.pipeline, keep).map_err(|e| HistoryError::Retention {
                run: self.run_id,
                pipeline: self.pipeline.clone(),
                keep,
                reason: e.to_string(),
            })?;
        }
        Ok(self.run_id)
    }

    /// Ends the recording; the writer's connection once it is done.
    fn close(&mut self, status: RunStatus, exit_code: Option<i32>) -> Result<Option<Connection>, HistoryError> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Finish { status, exit_code });
        }
        match self.thread.take() {
            Some(thread) => {
                // The writer naps between looks at its queue (no wake-up per action); the
                // end of the run should not wait for the nap to end.
                thread.thread().unpark();
                let result = thread
                    .join()
                    .map_err(|_| HistoryError::Writer("the writer thread panicked".into()))
                    .and_then(|r| r);
                if let Err(e) = &result {
                    // The writer tried to mark the run; try once more now that its transaction
                    // is gone (on a disk still full this fails too: the next open marks it).
                    if let Ok(conn) = crate::schema::open_waiting(&self.path, std::time::Duration::from_secs(2)) {
                        abandon(&conn, self.run_id, e);
                    }
                }
                result.map(Some)
            }
            None => Ok(None),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.close(RunStatus::Interrupted, None);
    }
}

/// After a failed write (a full disk, an I/O error): marks run `run_id` `interrupted` with
/// the reason, so it is not left `running`, unless it is marked already. Best effort: if this
/// write fails too, the next [`History::open`](crate::History::open) marks it, and until then
/// it reads as interrupted once the recording process is gone. True if it was written.
fn abandon(conn: &Connection, run_id: RunId, error: &HistoryError) -> bool {
    let reason = match error {
        HistoryError::Sql(e) => e.to_string(),
        other => other.to_string(),
    };
    let reason = format!("the history stopped recording this run mid-way: {reason}");
    let t = now();
    let written = conn.execute_batch("BEGIN IMMEDIATE").and_then(|()| {
        conn.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = ?2, last_seen = ?2, recording_error = ?3
             WHERE id = ?1 AND status = 'running'",
            params![run_id, t, reason],
        )?;
        conn.execute(
            "UPDATE phases SET status = 'interrupted' WHERE run_id = ?1 AND status IN ('queued', 'running', 'retrying')",
            params![run_id],
        )?;
        conn.execute_batch("COMMIT")
    });
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    written.is_ok()
}

/// What `action` changes in the phase rows and the run's error: the one rule the recorder
/// writes by and [`History::replay`](crate::History::replay) checks the stored rows against.
/// Returns the index of the phase it changed.
pub(crate) fn apply(
    rows: &mut [PhaseRow],
    index: &HashMap<Arc<str>, usize>,
    run_error: &mut Option<String>,
    action: &PipelineAction,
) -> Option<usize> {
    let mut touched = None;
    let mut touch = |name: &str, f: &mut dyn FnMut(&mut PhaseRow)| {
        if let Some(&i) = index.get(name) {
            f(&mut rows[i]);
            touched = Some(i);
        }
    };
    {
        use PipelineAction as A;
        match action {
            // Lines of unknown phases: journal only, as the reducer ignores them too.
            A::PhaseLog { .. } => {}
            A::PhaseDecision { name, decision, .. } => touch(name, &mut |p| {
                p.key = Some(decision.key.to_string());
                p.verdict = Some(decision.verdict.as_str());
                p.reason = Some(decision.reason.to_string());
            }),
            A::PhaseQueued { name, job_id, .. } => touch(name, &mut |p| {
                p.status = "queued";
                let ids = p.job_ids.get_or_insert_with(String::new);
                if !ids.split(',').any(|id| id == &**job_id) {
                    if !ids.is_empty() {
                        ids.push(',');
                    }
                    ids.push_str(job_id);
                }
            }),
            A::PhaseRunning { name, .. } => touch(name, &mut |p| p.status = "running"),
            A::PhaseStart {
                name,
                attempt,
                timestamp,
            } => touch(name, &mut |p| {
                p.status = "running";
                p.attempts = *attempt;
                p.started_at.get_or_insert(*timestamp);
                p.finished_at = None;
            }),
            A::PhaseComplete {
                name,
                result,
                timestamp,
                reused_from,
            } => touch(name, &mut |p| {
                p.status = "completed";
                p.result = Some(result.to_string());
                p.reused_from = reused_from.clone();
                p.error = None;
                p.started_at.get_or_insert(*timestamp);
                p.finished_at = Some(*timestamp);
            }),
            A::PhaseFailed { name, error, timestamp } => touch(name, &mut |p| {
                p.status = "failed";
                p.error = Some(error.clone());
                p.finished_at = Some(*timestamp);
            }),
            A::PhaseSkipped { name, error, timestamp } => touch(name, &mut |p| {
                p.status = "skipped";
                p.error = Some(error.clone());
                p.finished_at = Some(*timestamp);
            }),
            A::PhaseCancelled { name, timestamp } => touch(name, &mut |p| {
                p.status = "cancelled";
                p.finished_at = Some(*timestamp);
            }),
            A::PhaseRetry {
                name, attempt, error, ..
            } => touch(name, &mut |p| {
                p.status = "retrying";
                p.attempts = *attempt;
                p.error = Some(error.clone());
            }),
            // A service that stopped (or was kept for the next run) completed, as the
            // reducer has it.
            A::Service { name, state, timestamp } => {
                if matches!(state, ServiceState::Stopped | ServiceState::Kept) {
                    touch(name, &mut |p| {
                        p.status = "completed";
                        p.result = Some("null".to_owned());
                        p.error = None;
                        p.finished_at = Some(*timestamp);
                    });
                }
            }
            A::PipelineFailed { error, .. } => *run_error = Some(error.clone()),
            A::Init {}
            | A::SagaCancelled { .. }
            | A::SagaError { .. }
            | A::PipelineStart { .. }
            | A::PipelineComplete { .. }
            | A::PipelineCancelled { .. } => {}
        }
    }
    touched
}

/// A phase row as the recorder keeps it.
pub(crate) struct PhaseRow {
    pub(crate) status: &'static str,
    pub(crate) attempts: u32,
    pub(crate) started_at: Option<f64>,
    pub(crate) finished_at: Option<f64>,
    pub(crate) error: Option<String>,
    pub(crate) result: Option<String>,
    pub(crate) reused_from: Option<String>,
    pub(crate) log_count: i64,
    /// The decision of an incremental phase (`@@PHASE_DECISION`): its key, verdict (`run`,
    /// `up_to_date`, `restored`) and reason.
    pub(crate) key: Option<String>,
    pub(crate) verdict: Option<&'static str>,
    pub(crate) reason: Option<String>,
    /// The batch scheduler's job ids of its attempts, comma-separated (`@@PHASE_QUEUED`).
    pub(crate) job_ids: Option<String>,
    pub(crate) name: String,
    /// The open log chunk and its first sequence number.
    chunk: chunk::Encoder,
    chunk_first: i64,
}

impl PhaseRow {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            status: "pending",
            attempts: 0,
            started_at: None,
            finished_at: None,
            error: None,
            result: None,
            reused_from: None,
            log_count: 0,
            key: None,
            verdict: None,
            reason: None,
            job_ids: None,
            name: name.to_owned(),
            chunk: chunk::Encoder::default(),
            chunk_first: 0,
        }
    }
}

struct Writer {
    conn: Connection,
    run_id: RunId,
    seq: i64,
    head: [u8; 32],
    /// HMAC-SHA256 under the journal key.
    chain: Chain,
    /// The lines since the chain's last link, hashed from it (see [`chunk`]).
    lines: Option<Hasher>,
    /// The phase of the last line (lines come in runs of one phase).
    last: Option<(Arc<str>, usize)>,
    phases: Vec<PhaseRow>,
    index: HashMap<Arc<str>, usize>,
    dirty: Vec<bool>,
    /// The indices set in `dirty`, so a flush costs the changed phases, not all of them.
    dirty_list: Vec<usize>,
    run_error: Option<String>,
    json: Vec<u8>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) -> Result<Connection, HistoryError> {
        // A closed channel means the Recorder went away without finishing.
        let gone = || Msg::Finish {
            status: RunStatus::Interrupted,
            exit_code: None,
        };
        loop {
            // With nothing queued, wait a moment before blocking: while a phase streams
            // lines they pile up into the next batch, and the dispatching thread never pays
            // for waking a blocked writer (a futex call per action otherwise).
            let first = match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Disconnected) => gone(),
                Err(TryRecvError::Empty) => {
                    std::thread::park_timeout(IDLE);
                    match rx.try_recv() {
                        Ok(msg) => msg,
                        Err(TryRecvError::Disconnected) => gone(),
                        Err(TryRecvError::Empty) => rx.recv().unwrap_or_else(|_| gone()),
                    }
                }
            };
            match self.step(first, &rx) {
                Ok(true) => return Ok(self.conn),
                Ok(false) => {}
                Err(e) => {
                    if !self.conn.is_autocommit() {
                        let _ = self.conn.execute_batch("ROLLBACK");
                    }
                    self.abandon(&e);
                    return Err(e);
                }
            }
        }
    }

    /// One transaction: `first` and what follows it; true once finished.
    fn step(&mut self, first: Msg, rx: &Receiver<Msg>) -> Result<bool, HistoryError> {
        // IMMEDIATE: wait (busy timeout) for another process's write to end up front,
        // instead of failing when a read in the transaction has to become a write.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let done = self.batch(first, rx)?;
        self.conn.execute_batch("COMMIT")?;
        Ok(done)
    }

    /// After a failed write: see [`abandon`].
    fn abandon(&mut self, error: &HistoryError) {
        abandon(&self.conn, self.run_id, error);
    }

    /// Writes `first` and whatever else is queued (up to [`BATCH`]); true once finished.
    fn batch(&mut self, first: Msg, rx: &Receiver<Msg>) -> Result<bool, HistoryError> {
        let opened = std::time::Instant::now();
        let mut next = Some(first);
        let mut n = 0;
        let mut finish = None;
        while let Some(msg) = next {
            match msg {
                Msg::Action(action) => self.record(&action)?,
                Msg::Finish { status, exit_code } => {
                    finish = Some((status, exit_code));
                    break;
                }
            }
            n += 1;
            if n >= BATCH {
                break;
            }
            next = next_in_batch(rx, opened);
        }
        self.flush_phases()?;
        match finish {
            Some((status, exit_code)) => {
                self.end(status, exit_code)?;
                Ok(true)
            }
            None => {
                debug_assert!(self.lines.is_none(), "lines left out of the chain");
                self.conn
                    .prepare_cached(
                        "UPDATE runs SET last_seen = ?2, journal_len = ?3, journal_head = ?4 WHERE id = ?1",
                    )?
                    .execute(params![self.run_id, now(), self.seq, &self.head[..]])?;
                Ok(false)
            }
        }
    }

    /// Links the lines hashed since the last link into the chain.
    fn fold(&mut self) {
        if let Some(lines) = self.lines.take() {
            self.head = lines.finish();
        }
    }

    /// The phase index of a line's phase, if it is one of the pipeline's.
    fn phase_of(&mut self, name: &Arc<str>) -> Option<usize> {
        if let Some((last, i)) = &self.last
            && (Arc::ptr_eq(last, name) || **last == **name)
        {
            return Some(*i);
        }
        let i = *self.index.get(&**name)?;
        self.last = Some((name.clone(), i));
        Some(i)
    }

    fn chain(&mut self) {
        self.fold();
        self.head = self.chain.link(&self.head, &self.json);
        self.seq += 1;
    }

    fn record(&mut self, action: &PipelineAction) -> Result<(), HistoryError> {
        if let PipelineAction::PhaseLog {
            name,
            line,
            stream,
            timestamp,
        } = action
            && let Some(i) = self.phase_of(name)
        {
            // Stored once, in the phase's chunk; the journal JSON is rebuilt from it. Hashed
            // into the running link, and tagged.
            chunk::hash_input(&mut self.json, name, *stream, *timestamp, line);
            self.seq += 1;
            let (head, chain) = (&self.head, &self.chain);
            self.lines
                .get_or_insert_with(|| {
                    let mut h = chain.hasher(b"lines");
                    h.update(head);
                    h
                })
                .update(&self.json);
            let tag = chunk::tag(self.seq, &self.json);
            let p = &mut self.phases[i];
            if p.chunk.lines == 0 {
                p.chunk_first = self.seq;
            }
            p.chunk.push(self.seq, *stream, *timestamp, tag, line);
            p.log_count += 1;
            let full = p.chunk.buf.len() >= CHUNK_BYTES;
            self.mark_dirty(i);
            if full {
                self.flush_chunk(i)?;
            }
            return Ok(());
        }
        self.json.clear();
        serde_json::to_writer(&mut self.json, action)
            .map_err(|e| HistoryError::Writer(format!("could not encode an action: {e}")))?;
        self.chain();
        let json = std::str::from_utf8(&self.json).map_err(|e| HistoryError::Writer(e.to_string()))?;
        self.conn
            .prepare_cached("INSERT INTO journal (run_id, seq, action, hash) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![self.run_id, self.seq, json, &self.head[..]])?;
        self.apply(action);
        Ok(())
    }

    fn flush_chunk(&mut self, i: usize) -> Result<(), HistoryError> {
        if self.phases[i].chunk.lines == 0 {
            return Ok(());
        }
        // The chunk's link: the chain head as of now (`last_seq`).
        self.fold();
        let p = &mut self.phases[i];
        self.conn
            .prepare_cached(
                "INSERT INTO logs (run_id, phase, first_seq, last_seq, lines, data, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                self.run_id,
                p.name,
                p.chunk_first,
                self.seq,
                p.chunk.lines,
                &p.chunk.buf[..],
                &self.head[..]
            ])?;
        p.chunk.clear();
        Ok(())
    }

    fn apply(&mut self, action: &PipelineAction) {
        if let Some(i) = apply(&mut self.phases, &self.index, &mut self.run_error, action) {
            self.mark_dirty(i);
        }
    }

    fn mark_dirty(&mut self, i: usize) {
        if !std::mem::replace(&mut self.dirty[i], true) {
            self.dirty_list.push(i);
        }
    }

    fn flush_phases(&mut self) -> Result<(), HistoryError> {
        if self.dirty_list.is_empty() {
            return Ok(());
        }
        let mut changed = std::mem::take(&mut self.dirty_list);
        changed.sort_unstable();
        for &i in &changed {
            self.flush_chunk(i)?;
        }
        let mut stmt = self.conn.prepare_cached(
            "UPDATE phases SET status = ?3, attempts = ?4, started_at = ?5, finished_at = ?6, error = ?7,
                    result = ?8, reused_from = ?9, log_count = ?10, decision_key = ?11, verdict = ?12,
                    reason = ?13, job_ids = ?14
             WHERE run_id = ?1 AND name = ?2",
        )?;
        for &i in &changed {
            self.dirty[i] = false;
            let p = &self.phases[i];
            stmt.execute(params![
                self.run_id,
                p.name,
                p.status,
                p.attempts,
                p.started_at,
                p.finished_at,
                p.error,
                p.result,
                p.reused_from,
                p.log_count,
                p.key,
                p.verdict,
                p.reason,
                p.job_ids
            ])?;
        }
        Ok(())
    }

    fn end(&mut self, status: RunStatus, exit_code: Option<i32>) -> Result<(), HistoryError> {
        if status == RunStatus::Interrupted {
            self.conn
                .prepare_cached(
                    "UPDATE phases SET status = 'interrupted' WHERE run_id = ?1 AND status IN ('queued', 'running', 'retrying')",
                )?
                .execute(params![self.run_id])?;
        }
        let t = now();
        let seal = self.chain.seal(&self.head, status.as_str(), exit_code, t);
        self.conn
            .prepare_cached(
                "UPDATE runs SET status = ?2, exit_code = ?3, ended_at = ?4, last_seen = ?4, error = ?5,
                        journal_len = ?6, journal_head = ?7, seal = ?8
                 WHERE id = ?1",
            )?
            .execute(params![
                self.run_id,
                status.as_str(),
                exit_code,
                t,
                self.run_error,
                self.seq,
                &self.head[..],
                seal
            ])?;
        Ok(())
    }
}
