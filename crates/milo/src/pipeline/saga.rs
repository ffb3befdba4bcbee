//! The pipeline saga: an eager scheduler that walks the dependency graph with `put`, `call`
//! and `fork` effects.
//!
//! Each phase starts as soon as all its dependencies have completed or been skipped (not in
//! waves). Parallel phases run as forked child sagas, at most `jobs` at once; a phase with
//! `parallel = false` runs alone, called directly by the scheduler once nothing else runs, and
//! nothing starts while it runs. A stop (interrupt, `q`, `cancel_pipeline`, fail-fast, a
//! failure under the stop policy) is heard between any two starts, and an attempt whose token
//! is already cancelled does not start: no phase starts after a stop, and those that never
//! started stay pending. When the best ready phase (by execution order) is
//! non-parallel, nothing new starts until the running phases drain, so it cannot starve.
//! A retry's wait is a forked delay that holds no `jobs` slot.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::action::PipelineAction;
use super::command::{RunFiles, run_command_phase};
use super::graph::Pipeline;
use super::incremental::{Check, Decision, DepResult, Dependency, Incremental};
use super::phase::{EventSink, Handler, LineSink, PhaseContext, PhaseOutput};
use super::policy::OnFail;
use super::service::{Interrupts, Link, Live, Service, ServicePool, ServiceState};
use super::state::Status;
use super::tracing_capture::phase_span;
use crate::action::Action;
use crate::capture::Stream;
use crate::executor::RemoteEvent;
use crate::saga::{Cx, Saga, SagaError, SagaHandle, SagaResult};
use crate::util::panic_message;

/// How a run is controlled from outside: an interrupt signal and results to reuse.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Cancelling this stops the run: running phases are cancelled (commands get SIGTERM,
    /// then SIGKILL after the grace period) and the run ends with `@@PIPELINE_CANCELLED`.
    pub stop: CancellationToken,
    /// Phases not to run: each is completed at once with the given result JSON, noted as
    /// reused from the given run (used to resume an earlier run).
    pub reuse: HashMap<String, (serde_json::Value, String)>,
    /// Where ready services go at the end of the run instead of being stopped, and where the
    /// run takes them from (see [`ServicePool`]); `None`: the run stops its services.
    pub services: Option<ServicePool>,
    /// Where the run registers each running attempt, so that single phases can be
    /// interrupted from outside (see [`Interrupts`]).
    pub interrupts: Option<Interrupts>,
}

/// How a run ended and what each phase produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// `completed`, `failed` or `cancelled`.
    pub status: Status,
    /// Each phase's result, in declaration order (`None` if it did not complete).
    pub results: Vec<Option<PhaseOutput>>,
}

enum Outcome {
    /// The attempt was not started: a phase had already failed under the stop policy.
    NotStarted,
    Completed(PhaseOutput),
    Skipped,
    Failed(String),
    Retry(Duration),
    Cancelled,
}

/// What an attempt ended with, and the decision made before the phase's first attempt.
struct Ended {
    outcome: Outcome,
    decision: Option<Decision>,
}

enum Msg {
    Done(usize, Ended),
    RetryDue(usize),
    /// A service's readiness check ended (`Err`: it was not ready in time).
    ServiceReady(usize, Result<(), String>),
    /// A service's handler ended.
    ServiceExited(usize, SagaResult<PhaseOutput>),
}

/// A service the run has started or taken from its pool, until it ends or is handed back.
struct RunningService {
    live: Arc<Live>,
    ready: bool,
    /// It failed (not ready in time); its end puts nothing more.
    failed: bool,
    /// The run asked it to stop.
    stopping: bool,
}

impl Pipeline {
    /// The saga of the specification: runs the pipeline to its end in a store. Use
    /// [`run_in`](Self::run_in) to control the run and get the results.
    pub fn build_saga<S, A>(&self) -> Saga<S, A>
    where
        S: Send + Sync + 'static,
        A: Action + Clone + From<PipelineAction>,
    {
        let pipeline = self.clone();
        Saga::new(format!("pipeline:{}", self.name()), move |cx| async move {
            pipeline.run_in(cx, RunOptions::default()).await.map(drop)
        })
    }

    /// Runs the pipeline inside a saga: puts `@@PIPELINE_START`, the phase actions and exactly
    /// one terminal action once every phase has stopped.
    pub async fn run_in<S, A>(&self, cx: Cx<S, A>, options: RunOptions) -> SagaResult<RunReport>
    where
        S: Send + Sync + 'static,
        A: Action + Clone + From<PipelineAction>,
    {
        Scheduler::new(self.clone(), cx, options).run().await
    }
}

/// A [`PhaseGroup`](super::PhaseGroup) while the pipeline runs.
struct GroupRun {
    running: usize,
    held: Vec<usize>,
    token: CancellationToken,
}

struct Scheduler<S, A> {
    p: Pipeline,
    cx: Cx<S, A>,
    options: RunOptions,
    start: Instant,
    /// Cancelled on fail-fast or stop; parent of every phase's token.
    run_token: CancellationToken,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    waiting: Vec<usize>,
    attempt: Vec<u32>,
    results: Vec<Option<PhaseOutput>>,
    /// Each incremental phase's decision, once made (its key reaches its dependents).
    decisions: Vec<Option<Decision>>,
    ready: BinaryHeap<Reverse<usize>>,
    running: usize,
    /// Per group (by name): its members running now, the ranks of ready members held back
    /// by its `max_parallel`, and its token (a child of `run_token`, parent of its members').
    groups: HashMap<Arc<str>, GroupRun>,
    retry_timers: HashMap<usize, SagaHandle<()>>,
    forks: Vec<SagaHandle<()>>,
    jobs: usize,
    stopping: bool,
    interrupted: bool,
    failure: Option<String>,
    /// Set, under its lock, when a phase fails under the stop policy. A first attempt is put
    /// as started only under the same lock and while it is unset, so that no phase starts
    /// after a `@@PHASE_FAILED` (a parallel attempt forked just before the scheduler heard of
    /// the failure then does not start at all); retries of started phases still run.
    failed: Arc<Mutex<bool>>,
    /// Where command phases exchange results; removed with the run.
    files: Arc<RunFiles>,
    /// Whether parallel attempts are still polled inline first.
    inline: Inline,
    /// Whether each phase ran in this run (not up to date, reused or a kept service): a kept
    /// service is restarted when one of its dependencies did.
    rebuilt: Vec<bool>,
    /// The services running for this run, by phase.
    services: HashMap<usize, RunningService>,
}

/// An inline poll that takes at least this long counts as slow (see [`Inline`]).
const INLINE_SLOW: Duration = Duration::from_micros(200);

/// How the scheduler's inline polls of parallel handlers went.
///
/// On a live store a parallel attempt's handler is polled once on the scheduler's task before
/// it is forked: one that ends in that poll (an async handler that never waits) then costs
/// what a non-parallel phase costs, and one that waits (a command, a sync handler on the
/// blocking pool, a sleep) is forked after it and runs concurrently as before. Only an async
/// handler that computes for long without waiting would lose its concurrency by running
/// there; so once more than 3 inline polls, and more than 1 in 100, have been slow, the run
/// forks every attempt without polling it first (a no-op is rarely slow, even when its
/// thread is preempted; a computing handler always is).
#[derive(Debug, Default)]
struct Inline {
    polls: u64,
    slow: u64,
}

impl Inline {
    fn on(&self) -> bool {
        !(self.slow > 3 && self.slow * 100 > self.polls)
    }

    fn note(&mut self, slow: bool) {
        self.polls += 1;
        self.slow += u64::from(slow);
    }
}

impl<S, A> Scheduler<S, A>
where
    S: Send + Sync + 'static,
    A: Action + Clone + From<PipelineAction>,
{
    fn new(p: Pipeline, cx: Cx<S, A>, options: RunOptions) -> Self {
        let n = p.phases.len();
        let (tx, rx) = mpsc::unbounded_channel();
        let start = cx.now();
        let run_token = options.stop.child_token();
        let jobs = p.job_limit();
        let waiting = p.def.phases.iter().map(|i| i.deps.len()).collect();
        Self {
            files: Arc::new(RunFiles::new(p.result_limit)),
            p,
            cx,
            options,
            start,
            run_token,
            tx,
            rx,
            waiting,
            attempt: vec![0; n],
            results: vec![None; n],
            decisions: vec![None; n],
            ready: BinaryHeap::new(),
            running: 0,
            groups: HashMap::new(),
            retry_timers: HashMap::new(),
            forks: Vec::new(),
            jobs,
            stopping: false,
            interrupted: false,
            failure: None,
            failed: Arc::new(Mutex::new(false)),
            inline: Inline::default(),
            rebuilt: vec![false; n],
            services: HashMap::new(),
        }
    }

    fn now(&self) -> f64 {
        self.cx.now().saturating_duration_since(self.start).as_secs_f64()
    }

    fn put(&self, action: PipelineAction) -> SagaResult<()> {
        self.cx.put(A::from(self.p.secrets.mask_action(action)))
    }

    async fn run(mut self) -> SagaResult<RunReport> {
        // Wall-clock time travels in the action, so the reducer stays pure.
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64());
        self.put(PipelineAction::PipelineStart {
            started_at,
            name: self.p.def.name.clone(),
            timestamp: 0.0,
        })?;
        for (i, info) in self.p.def.phases.iter().enumerate() {
            if info.deps.is_empty() {
                self.ready.push(Reverse(self.p.def.rank(i)));
            }
        }
        loop {
            self.start_ready().await?;
            if self.running == 0 && self.retry_timers.is_empty() && (self.ready.is_empty() || self.stopping) {
                // Nothing but services left: wait for those still starting (their dependents
                // have yet to run), then stop them or hand them to the pool.
                let starting = self.services.values().any(|s| !s.ready && !s.failed && !s.stopping);
                if !starting || self.stopping {
                    self.release_services()?;
                }
                if self.services.is_empty() {
                    break;
                }
            }
            let stop = self.options.stop.clone();
            let msg = tokio::select! {
                biased;
                m = self.rx.recv() => m,
                _ = stop.cancelled(), if !self.interrupted => {
                    self.interrupt()?;
                    continue;
                }
            };
            match msg {
                Some(Msg::Done(i, ended)) => {
                    self.running -= 1;
                    self.left_group(i);
                    self.end_attempt(i, ended).await?;
                }
                Some(Msg::ServiceReady(i, ready)) => self.service_ready(i, ready).await?,
                Some(Msg::ServiceExited(i, result)) => self.service_exited(i, result).await?,
                Some(Msg::RetryDue(i)) => {
                    if self.retry_timers.remove(&i).is_none() {
                        // Its wait was already cancelled (and the phase with it).
                        continue;
                    }
                    // A phase waiting to retry has started: after a failure under the stop
                    // policy it finishes its attempts like a running phase; only a
                    // cancellation (interrupt, fail-fast) ends it here.
                    if self.run_token.is_cancelled() || self.interrupted || self.group_cancelled(i) {
                        self.put(PipelineAction::PhaseCancelled {
                            name: self.name(i),
                            timestamp: self.now(),
                        })?;
                    } else {
                        self.ready.push(Reverse(self.p.def.rank(i)));
                    }
                }
                None => break,
            }
        }
        if self.options.stop.is_cancelled() && !self.interrupted {
            self.interrupted = true;
        }
        // A phase whose retry was due but could not start before the run stopped (it waited
        // for a jobs slot, or for running phases to drain) will not run again: cancel it
        // rather than leave it `retrying`.
        let mut due: Vec<usize> = std::mem::take(&mut self.ready)
            .into_sorted_vec()
            .into_iter()
            .rev()
            .map(|Reverse(rank)| self.p.def.order()[rank])
            .filter(|&i| self.attempt[i] > 0)
            .collect();
        due.dedup();
        for i in due {
            self.put(PipelineAction::PhaseCancelled {
                name: self.name(i),
                timestamp: self.now(),
            })?;
        }
        for h in self.forks.drain(..) {
            let _ = h.await;
        }
        let timestamp = self.now();
        let status = if self.interrupted {
            self.put(PipelineAction::PipelineCancelled { timestamp })?;
            Status::Cancelled
        } else if let Some(error) = self.failure.take() {
            self.put(PipelineAction::PipelineFailed { error, timestamp })?;
            Status::Failed
        } else {
            self.put(PipelineAction::PipelineComplete { timestamp })?;
            Status::Completed
        };
        Ok(RunReport {
            status,
            results: self.results,
        })
    }

    fn interrupt(&mut self) -> SagaResult<()> {
        self.interrupted = true;
        self.stopping = true;
        self.run_token.cancel();
        for s in self.services.values_mut() {
            s.stopping = true;
            s.live.token.cancel();
        }
        self.cancel_retry_waits()
    }

    /// Cancels the phases waiting for a retry (call after cancelling `run_token`). Done here
    /// rather than by the waits themselves, which only end on `run_token` (and are awaited
    /// before the terminal action, so no saga outlives the run).
    fn cancel_retry_waits(&mut self) -> SagaResult<()> {
        let mut waiting: Vec<(usize, SagaHandle<()>)> = self.retry_timers.drain().collect();
        waiting.sort_by_key(|&(i, _)| self.p.def.rank(i));
        for (i, timer) in waiting {
            // Ends the wait now even when `run_token` is not cancelled (a failure without
            // fail-fast): the phase will not run again.
            timer.cancel();
            self.forks.push(timer);
            self.put(PipelineAction::PhaseCancelled {
                name: self.name(i),
                timestamp: self.now(),
            })?;
        }
        Ok(())
    }

    fn name(&self, i: usize) -> Arc<str> {
        self.p.def.phases[i].name.clone()
    }

    /// Starts every phase that may start now.
    async fn start_ready(&mut self) -> SagaResult<()> {
        loop {
            // A stop is heard between any two starts, also after a non-parallel phase that
            // ran here, inline (the stop token is cancelled before its signal is delivered).
            if self.options.stop.is_cancelled() && !self.interrupted {
                self.interrupt()?;
            }
            if self.interrupted || self.run_token.is_cancelled() {
                break;
            }
            let Some(&Reverse(rank)) = self.ready.peek() else { break };
            let i = self.p.def.order()[rank];
            if self.stopping && self.attempt[i] == 0 {
                // After a failure only retries of phases that had started run; the phases
                // that had not started stay pending.
                self.ready.pop();
                continue;
            }
            if let Some((json, run)) = self.options.reuse.get(&*self.p.def.phases[i].name) {
                self.ready.pop();
                let (json, run) = (json.clone(), run.clone());
                let output = PhaseOutput::json(json);
                self.put(PipelineAction::PhaseComplete {
                    name: self.name(i),
                    result: output.as_json().clone(),
                    timestamp: self.now(),
                    reused_from: Some(run),
                })?;
                self.settle(i, Outcome::Completed(output)).await?;
                continue;
            }
            if let Some(service) = self.p.phases[i].service.clone() {
                // A service holds no jobs slot: it runs until the run no longer needs it.
                self.ready.pop();
                self.start_service(i, service).await?;
                continue;
            }
            if self.p.def.phases[i].parallel {
                if self.running >= self.jobs {
                    break;
                }
                self.ready.pop();
                if self.group_full(i) {
                    // Held back until a member of its group ends.
                    if let Some(g) = self.p.phases[i].group.clone() {
                        self.group_run(&g).held.push(rank);
                    }
                    continue;
                }
                self.running += 1;
                self.joined_group(i);
                let job = self.job(i);
                let tx = self.tx.clone();
                let label = self.p.def.phases[i].name.clone();
                let handle = if self.inline.on() && job.incremental.is_none() && self.cx.store().is_some() {
                    // On a live store the handler is polled once here, and the attempt is
                    // only forked if it has to wait: one that ends at once (an async handler
                    // that never waits) costs no task, no message and no wake-up. The
                    // attempt's actions and checks are those of `Job::run`.
                    let (finish, mut execution) = match job.start(&self.cx) {
                        Ok(started) => started,
                        Err(ended) => {
                            self.running -= 1;
                            self.left_group(i);
                            self.end_attempt(i, ended).await?;
                            continue;
                        }
                    };
                    let polled = Instant::now();
                    let first = execution.poll_once();
                    self.inline.note(polled.elapsed() >= INLINE_SLOW);
                    if let Some(result) = first {
                        let ended = Ended {
                            outcome: finish.outcome(&self.cx, result),
                            decision: None,
                        };
                        self.running -= 1;
                        self.left_group(i);
                        self.end_attempt(i, ended).await?;
                        continue;
                    }
                    self.cx
                        .fork(label, move |cx| async move {
                            let result = execution.finish_caught().await;
                            let ended = Ended {
                                outcome: finish.outcome(&cx, result),
                                decision: None,
                            };
                            let _ = tx.send(Msg::Done(i, ended));
                            Ok(())
                        })
                        .await
                } else {
                    self.cx
                        .fork(label, move |cx| async move {
                            let ended = job.run(&cx).await;
                            let _ = tx.send(Msg::Done(i, ended));
                            Ok(())
                        })
                        .await
                };
                if !handle.is_finished() {
                    self.forks.push(handle);
                }
                self.forks.retain(|h| !h.is_finished());
            } else {
                if self.running > 0 {
                    break;
                }
                self.ready.pop();
                let job = self.job(i);
                let ended = if job.incremental.is_none() && self.cx.store().is_some() {
                    // What `Job::run` does, with the handler's first poll made before its
                    // timeout and cancellation are waited on (most in-process handlers end
                    // in it).
                    match job.start(&self.cx) {
                        Err(ended) => ended,
                        Ok((finish, mut execution)) => {
                            let result = match execution.poll_once() {
                                Some(result) => result,
                                None => execution.finish_caught().await,
                            };
                            Ended {
                                outcome: finish.outcome(&self.cx, result),
                                decision: None,
                            }
                        }
                    }
                } else {
                    job.run(&self.cx).await
                };
                self.end_attempt(i, ended).await?;
            }
        }
        Ok(())
    }

    fn job(&mut self, i: usize) -> Job {
        self.attempt[i] += 1;
        let group_token = self.p.phases[i].group.clone().map(|g| self.group_run(&g).token.clone());
        let info = &self.p.def.phases[i];
        let inputs: Arc<[(Arc<str>, Option<PhaseOutput>)]> = info
            .deps
            .iter()
            .map(|&d| (self.p.def.phases[d].name.clone(), self.results[d].clone()))
            .collect();
        let name = info.name.clone();
        let cancel = match group_token {
            Some(token) => token.child_token(),
            None => self.run_token.child_token(),
        };
        if let Some(interrupts) = &self.options.interrupts {
            interrupts.insert(name.clone(), cancel.clone());
        }
        let sink = self.sink(name.clone());
        let (events, held) = self.events(name.clone());
        // The decision is made once, before the first attempt (or again after an attempt
        // whose check failed); retries record under it.
        let incremental = self.p.incremental.clone().filter(|inc| inc.is_incremental(&name));
        let decided = self.decisions[i].clone();
        let deps = match (&incremental, &decided) {
            (Some(_), None) => info
                .deps
                .iter()
                .map(|&d| OwnedDep {
                    name: self.p.def.phases[d].name.clone(),
                    key: self.decisions[d].as_ref().map(|d| d.key.clone()),
                    result: self.results[d].as_ref().map(|r| r.as_json().clone()),
                })
                .collect(),
            _ => Vec::new(),
        };
        Job {
            incremental,
            decided,
            deps,
            max_logs: info.max_logs,
            ctx: PhaseContext {
                pipeline: self.p.def.name.clone(),
                name,
                attempt: self.attempt[i],
                inputs,
                sink,
                events: Some(events),
                held: Some(held),
                capture: self.p.capture_output,
                cancel,
                files: self.files.clone(),
            },
            handler: self.p.handler(i).clone(),
            timeout: info.timeout,
            policy: info.policy,
            grace: self.p.grace,
            executor: self.p.phases[i]
                .executor
                .clone()
                .unwrap_or_else(|| self.p.executor.clone()),
            start: self.start,
            failed: self.failed.clone(),
            secrets: self.p.secrets.clone(),
        }
    }

    /// What a batch-scheduled command's events become: `@@PHASE_QUEUED` / `@@PHASE_RUNNING`,
    /// and the attempt's timeout clock held while queued (the receiver).
    fn events(&self, name: Arc<str>) -> (EventSink, tokio::sync::watch::Receiver<bool>) {
        let (hold, held) = tokio::sync::watch::channel(false);
        let cx = self.cx.clone();
        let start = self.start;
        let secrets = self.p.secrets.clone();
        let sink: EventSink = Arc::new(move |event| {
            let timestamp = cx.now().saturating_duration_since(start).as_secs_f64();
            let name = name.clone();
            let action = match event {
                RemoteEvent::Queued { job_id } => {
                    hold.send_replace(true);
                    PipelineAction::PhaseQueued {
                        name,
                        job_id: job_id.into(),
                        timestamp,
                    }
                }
                RemoteEvent::Started { job_id } => {
                    hold.send_replace(false);
                    PipelineAction::PhaseRunning {
                        name,
                        job_id: job_id.into(),
                        timestamp,
                    }
                }
            };
            put_masked(&cx, &secrets, action);
        });
        (sink, held)
    }

    fn sink(&self, name: Arc<str>) -> LineSink {
        if self.p.capture_output {
            let cx = self.cx.clone();
            let start = self.start;
            let secrets = self.p.secrets.clone();
            Arc::new(move |stream, line: String| {
                let timestamp = cx.now().saturating_duration_since(start).as_secs_f64();
                let action = PipelineAction::PhaseLog {
                    name: name.clone(),
                    line: secrets.mask(&line).into(),
                    stream,
                    timestamp,
                };
                if let Err(e) = cx.put(A::from(action)) {
                    tracing::warn!("could not record a log line: {e}");
                }
            })
        } else {
            let secrets = self.p.secrets.clone();
            Arc::new(move |stream, line: String| {
                use std::io::Write;
                let line = secrets.mask(&line);
                let _ = match stream {
                    Stream::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
                    Stream::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
                };
            })
        }
    }

    /// Keeps the decision an attempt made, then settles its outcome.
    async fn end_attempt(&mut self, i: usize, ended: Ended) -> SagaResult<()> {
        if let Some(interrupts) = &self.options.interrupts {
            interrupts.remove(&self.p.def.phases[i].name);
        }
        if let Outcome::Completed(_) = &ended.outcome {
            self.rebuilt[i] = !ended.decision.as_ref().is_some_and(|d| d.verdict.is_fresh());
        }
        if ended.decision.is_some() {
            self.decisions[i] = ended.decision;
        }
        self.settle(i, ended.outcome).await
    }

    /// Applies a phase's outcome: unlocks dependents, schedules a retry, or stops the run.
    async fn settle(&mut self, i: usize, outcome: Outcome) -> SagaResult<()> {
        match outcome {
            Outcome::Completed(output) => {
                self.results[i] = Some(output);
                self.unlock(i);
            }
            Outcome::Skipped => self.unlock(i),
            Outcome::Failed(error) => {
                if self.failure.is_none() {
                    self.failure = Some(format!("phase `{}` failed: {error}", self.p.def.phases[i].name));
                }
                self.stopping = true;
                if let Some(g) = self.p.phases[i].group.clone()
                    && g.fail_fast
                {
                    // The group's other members that are running are cancelled; those
                    // waiting to retry are when their wait ends; the rest never start.
                    self.group_run(&g).token.cancel();
                }
                if self.p.fail_fast {
                    // Fail-fast cancels running work, phases waiting to retry included.
                    self.run_token.cancel();
                    self.cancel_retry_waits()?;
                }
            }
            Outcome::NotStarted => {
                // A first attempt stays pending; a phase that was waiting to retry is cancelled.
                if self.attempt[i] > 1 {
                    self.put(PipelineAction::PhaseCancelled {
                        name: self.name(i),
                        timestamp: self.now(),
                    })?;
                }
            }
            Outcome::Retry(delay) => {
                let tx = self.tx.clone();
                let token = self.run_token.clone();
                // The wait is a forked delay: it holds no jobs slot.
                let timer = self.cx.clone();
                let label = format!("retry-wait:{}", self.p.def.phases[i].name);
                let handle = timer
                    .fork(label, move |cx| async move {
                        tokio::select! {
                            biased;
                            _ = token.cancelled() => {}
                            _ = cx.delay(delay) => {}
                        }
                        let _ = tx.send(Msg::RetryDue(i));
                        Ok(())
                    })
                    .await;
                self.retry_timers.insert(i, handle);
            }
            Outcome::Cancelled => {
                self.put(PipelineAction::PhaseCancelled {
                    name: self.name(i),
                    timestamp: self.now(),
                })?;
            }
        }
        Ok(())
    }

    /// Starts service `i`, or takes it from the pool as it is when none of its dependencies
    /// ran in this run. Its readiness check runs in a fork of the run.
    async fn start_service(&mut self, i: usize, service: Service) -> SagaResult<()> {
        let name = self.name(i);
        let pool = self.options.services.clone();
        if let Some(live) = pool.as_ref().and_then(|p| p.take(&name)) {
            let rebuilt = self.p.def.phases[i].deps.iter().any(|&d| self.rebuilt[d]);
            if !rebuilt && !live.exited.is_cancelled() {
                self.attempt[i] += 1;
                self.attach(i, &live);
                self.put(PipelineAction::Service {
                    name,
                    state: ServiceState::Ready,
                    timestamp: self.now(),
                })?;
                self.services.insert(
                    i,
                    RunningService {
                        live,
                        ready: true,
                        failed: false,
                        stopping: false,
                    },
                );
                self.results[i] = Some(PhaseOutput::none());
                self.unlock(i);
                return Ok(());
            }
            // One of its dependencies ran again (or it ended): it starts anew.
            live.stop().await;
        }
        let mut job = self.job(i);
        if let Some(interrupts) = &self.options.interrupts {
            interrupts.remove(&name);
        }
        if pool.is_some() {
            // A kept service outlives the run: a later run stops it, not this run's token.
            job.ctx.cancel = CancellationToken::new();
        }
        if !job.begin(&self.cx, None) {
            return self.settle(i, Outcome::NotStarted).await;
        }
        let live = Arc::new(Live {
            token: job.ctx.cancel.clone(),
            exited: CancellationToken::new(),
            link: Link::new(&service.ready),
            task: Mutex::new(None),
        });
        self.attach(i, &live);
        job.ctx.sink = live.link.sink();
        // A service's `timeout` is its readiness timeout, not a limit on how long it runs.
        let execution = Execution::new(job.handler, job.ctx, None, job.grace, job.executor);
        let (link, exited) = (live.link.clone(), live.exited.clone());
        let task = tokio::spawn(async move {
            let result = execution.finish_caught().await;
            exited.cancel();
            link.exited(result);
        });
        *live.task.lock() = Some(task);
        let (tx, link, exited) = (self.tx.clone(), live.link.clone(), live.exited.clone());
        let handle = self
            .cx
            .fork(format!("ready:{name}"), move |_cx| async move {
                tokio::select! {
                    biased;
                    _ = exited.cancelled() => {}
                    ready = link.wait_ready(&service.ready, service.timeout) => {
                        let _ = tx.send(Msg::ServiceReady(i, ready));
                    }
                }
                Ok(())
            })
            .await;
        self.forks.push(handle);
        self.rebuilt[i] = true;
        self.services.insert(
            i,
            RunningService {
                live,
                ready: false,
                failed: false,
                stopping: false,
            },
        );
        Ok(())
    }

    /// Makes this run the owner of a service's lines and of its end.
    fn attach(&self, i: usize, live: &Live) {
        let tx = self.tx.clone();
        live.link.attach(
            self.sink(self.name(i)),
            Box::new(move |result| {
                let _ = tx.send(Msg::ServiceExited(i, result));
            }),
        );
    }

    async fn service_ready(&mut self, i: usize, ready: Result<(), String>) -> SagaResult<()> {
        let Some(s) = self.services.get_mut(&i) else {
            return Ok(());
        };
        if s.ready || s.failed || s.stopping {
            return Ok(());
        }
        match ready {
            Ok(()) => {
                s.ready = true;
                self.put(PipelineAction::Service {
                    name: self.name(i),
                    state: ServiceState::Ready,
                    timestamp: self.now(),
                })?;
                self.results[i] = Some(PhaseOutput::none());
                self.unlock(i);
                Ok(())
            }
            Err(e) => {
                s.failed = true;
                s.live.token.cancel();
                self.fail_service(i, &e).await
            }
        }
    }

    async fn service_exited(&mut self, i: usize, result: SagaResult<PhaseOutput>) -> SagaResult<()> {
        let Some(s) = self.services.remove(&i) else {
            return Ok(());
        };
        let task = s.live.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if s.failed {
            return Ok(());
        }
        let stopped = PipelineAction::Service {
            name: self.name(i),
            state: ServiceState::Stopped,
            timestamp: self.now(),
        };
        match result {
            _ if s.stopping => self.put(stopped),
            Err(SagaError::Cancelled) => self.put(stopped),
            Ok(_) if s.ready => self.put(stopped),
            Ok(_) => {
                self.fail_service(i, "exited before it was ready (its command ended with status 0)")
                    .await
            }
            Err(e) if s.ready => {
                self.fail_service(i, &format!("ended while the run needed it: {e}"))
                    .await
            }
            Err(e) => self.fail_service(i, &format!("exited before it was ready: {e}")).await,
        }
    }

    /// Fails service `i` with `why`, and with it the direct dependents waiting for it.
    async fn fail_service(&mut self, i: usize, why: &str) -> SagaResult<()> {
        let name = self.name(i);
        let waiting: Vec<usize> = self.p.def.phases[i]
            .dependents
            .iter()
            .copied()
            .filter(|&d| self.attempt[d] == 0)
            .collect();
        let needed = match waiting.len() {
            0 => String::new(),
            n => format!(
                "; {} need{} it",
                waiting
                    .iter()
                    .map(|&d| format!("`{}`", self.p.def.phases[d].name))
                    .collect::<Vec<_>>()
                    .join(", "),
                if n == 1 { "s" } else { "" }
            ),
        };
        let error = format!("service `{name}` {why}{needed}");
        {
            let mut failed = self.failed.lock();
            self.put(PipelineAction::PhaseFailed {
                name: name.clone(),
                error: error.clone(),
                timestamp: self.now(),
            })?;
            for &d in &waiting {
                self.put(PipelineAction::PhaseFailed {
                    name: self.name(d),
                    error: format!("it needs service `{name}`, which {why}"),
                    timestamp: self.now(),
                })?;
            }
            *failed = true;
        }
        self.settle(i, Outcome::Failed(error)).await
    }

    /// Stops the run's services, or hands the ready ones to the pool (unless the run was
    /// interrupted). Their ends arrive as `Msg::ServiceExited`.
    fn release_services(&mut self) -> SagaResult<()> {
        let pool = self.options.services.clone().filter(|_| !self.interrupted);
        let mut order: Vec<usize> = self.services.keys().copied().collect();
        order.sort_by_key(|&i| self.p.def.rank(i));
        for i in order {
            let Some(s) = self.services.get_mut(&i) else { continue };
            if s.stopping || s.failed {
                continue;
            }
            match &pool {
                Some(pool) if s.ready => {
                    if let Some(s) = self.services.remove(&i) {
                        self.put(PipelineAction::Service {
                            name: self.name(i),
                            state: ServiceState::Kept,
                            timestamp: self.now(),
                        })?;
                        pool.keep(self.name(i), s.live);
                    }
                }
                _ => {
                    s.stopping = true;
                    s.live.token.cancel();
                }
            }
        }
        Ok(())
    }

    /// The run-time state of group `g`, created on first use.
    fn group_run(&mut self, g: &super::PhaseGroup) -> &mut GroupRun {
        let token = &self.run_token;
        self.groups.entry(g.name.clone()).or_insert_with(|| GroupRun {
            running: 0,
            held: Vec::new(),
            token: token.child_token(),
        })
    }

    /// Whether phase `i`'s group already runs its `max_parallel` members.
    fn group_full(&mut self, i: usize) -> bool {
        let Some(g) = self.p.phases[i].group.clone() else {
            return false;
        };
        let Some(max) = g.max_parallel else { return false };
        self.group_run(&g).running >= max.max(1)
    }

    fn joined_group(&mut self, i: usize) {
        if let Some(g) = self.p.phases[i].group.clone() {
            self.group_run(&g).running += 1;
        }
    }

    /// An attempt of phase `i` ended: its group may start a member it held back.
    fn left_group(&mut self, i: usize) {
        let Some(g) = self.p.phases[i].group.clone() else {
            return;
        };
        let run = self.group_run(&g);
        run.running = run.running.saturating_sub(1);
        let held = std::mem::take(&mut run.held);
        for rank in held {
            self.ready.push(Reverse(rank));
        }
    }

    /// Whether phase `i`'s group was cancelled by the failure of a member (fail-fast).
    fn group_cancelled(&self, i: usize) -> bool {
        self.p.phases[i]
            .group
            .as_ref()
            .and_then(|g| self.groups.get(&g.name))
            .is_some_and(|r| r.token.is_cancelled())
    }

    fn unlock(&mut self, i: usize) {
        for k in 0..self.p.def.phases[i].dependents.len() {
            let d = self.p.def.phases[i].dependents[k];
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.push(Reverse(self.p.def.rank(d)));
            }
        }
    }
}

/// A dependency as the scheduler knows it, handed to a check that may block.
struct OwnedDep {
    name: Arc<str>,
    key: Option<Arc<str>>,
    /// `None` when it was skipped.
    result: Option<Arc<serde_json::Value>>,
}

impl OwnedDep {
    /// As the [`Incremental`] is given it.
    fn borrowed(&self) -> Dependency<'_> {
        Dependency {
            name: &self.name,
            key: self.key.as_deref(),
            result: match &self.result {
                Some(r) => DepResult::Completed(r),
                None => DepResult::Skipped,
            },
        }
    }
}

/// One attempt of one phase.
struct Job {
    /// Set when the phase is incremental.
    incremental: Option<Arc<dyn Incremental>>,
    /// The decision of an earlier attempt: a retry runs under it, without a new check.
    decided: Option<Decision>,
    /// The dependencies to check against, when there is no decision yet.
    deps: Vec<OwnedDep>,
    /// How many captured lines to record for replay.
    max_logs: usize,
    ctx: PhaseContext,
    handler: Handler,
    timeout: Option<Duration>,
    policy: super::policy::PhasePolicy,
    grace: Duration,
    executor: Arc<dyn crate::executor::Executor>,
    start: Instant,
    failed: Arc<Mutex<bool>>,
    secrets: super::Secrets,
}

impl Job {
    /// Asks the [`Incremental`] about this phase through [`blocking`] (it reads files).
    async fn check(&mut self) -> Result<Check, String> {
        let Some(inc) = self.incremental.clone() else {
            return Ok(Check::Always);
        };
        if let Some(d) = &self.decided {
            return Ok(Check::Run(d.clone()));
        }
        let deps = std::mem::take(&mut self.deps);
        let name = self.ctx.name.clone();
        // First in place: most checks of an unchanged phase are a few stats.
        let quick = {
            let borrowed: Vec<Dependency<'_>> = deps.iter().map(OwnedDep::borrowed).collect();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inc.check_quick(&name, &borrowed)))
                .unwrap_or_else(|p| Some(Err(format!("the check panicked: {}", panic_message(&*p)))))
        };
        if let Some(checked) = quick {
            return checked;
        }
        let checked = blocking(move || {
            let deps: Vec<Dependency<'_>> = deps.iter().map(OwnedDep::borrowed).collect();
            inc.check(&name, &deps)
        })
        .await;
        checked.unwrap_or_else(|e| Err(format!("the check {e}")))
    }

    /// Puts the attempt as started (after its decision, if given), unless it may not start:
    /// `false` then.
    fn begin<S, A>(&self, cx: &Cx<S, A>, decision: Option<&Decision>) -> bool
    where
        S: Send + Sync + 'static,
        A: Action + Clone + From<PipelineAction>,
    {
        let ts = || cx.now().saturating_duration_since(self.start).as_secs_f64();
        // Under the lock a failure is put with, so no start follows a failure; and never
        // once the run is stopping (the token is cancelled before the scheduler hears of
        // it, by an interrupt, fail-fast, `q` or `cancel_pipeline`).
        let failed = self.failed.lock();
        if (*failed && self.ctx.attempt == 1) || self.ctx.cancel.is_cancelled() {
            return false;
        }
        if let Some(d) = decision {
            put_masked(
                cx,
                &self.secrets,
                PipelineAction::PhaseDecision {
                    name: self.ctx.name.clone(),
                    decision: d.clone(),
                    timestamp: ts(),
                },
            );
        }
        put_masked(
            cx,
            &self.secrets,
            PipelineAction::PhaseStart {
                name: self.ctx.name.clone(),
                attempt: self.ctx.attempt,
                timestamp: ts(),
            },
        );
        true
    }

    fn finish(&self) -> Finish {
        Finish {
            name: self.ctx.name.clone(),
            attempt: self.ctx.attempt,
            start: self.start,
            policy: self.policy,
            failed: self.failed.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// Starts an attempt of a phase that is not incremental as [`run`](Self::run) does, up to
    /// its handler: what settles it, and its handler not yet polled. `Err` if it may not
    /// start.
    fn start<S, A>(self, cx: &Cx<S, A>) -> Result<(Finish, Execution), Ended>
    where
        S: Send + Sync + 'static,
        A: Action + Clone + From<PipelineAction>,
    {
        debug_assert!(self.incremental.is_none());
        if !self.begin(cx, None) {
            return Err(Ended {
                outcome: Outcome::NotStarted,
                decision: None,
            });
        }
        let finish = self.finish();
        let execution = Execution::new(self.handler, self.ctx, self.timeout, self.grace, self.executor);
        Ok((finish, execution))
    }

    async fn run<S, A>(mut self, cx: &Cx<S, A>) -> Ended
    where
        S: Send + Sync + 'static,
        A: Action + Clone + From<PipelineAction>,
    {
        let name = self.ctx.name.clone();
        let attempt = self.ctx.attempt;
        let ts = |cx: &Cx<S, A>, start: Instant| cx.now().saturating_duration_since(start).as_secs_f64();
        let start = self.start;
        let secrets = self.secrets.clone();
        let put = |cx: &Cx<S, A>, a: PipelineAction| {
            if let Err(e) = cx.put(A::from(secrets.mask_action(a))) {
                tracing::warn!("dispatch failed: {e}");
            }
        };
        let newly_decided = self.incremental.is_some() && self.decided.is_none();
        let checked = self.check().await;
        let (decision, check_error) = match checked {
            Ok(Check::Always) => (None, None),
            Ok(Check::Run(d)) => (Some(d), None),
            Ok(Check::Fresh(d, recorded)) => {
                let failed = self.failed.lock();
                if (*failed && attempt == 1) || self.ctx.cancel.is_cancelled() {
                    return Ended {
                        outcome: Outcome::NotStarted,
                        decision: None,
                    };
                }
                put(
                    cx,
                    PipelineAction::PhaseDecision {
                        name: name.clone(),
                        decision: d.clone(),
                        timestamp: ts(cx, start),
                    },
                );
                for (stream, line) in recorded.logs {
                    (self.ctx.sink)(stream, line);
                }
                let output = PhaseOutput::json(recorded.result);
                put(
                    cx,
                    PipelineAction::PhaseComplete {
                        name,
                        result: output.as_json().clone(),
                        timestamp: ts(cx, start),
                        reused_from: None,
                    },
                );
                return Ended {
                    outcome: Outcome::Completed(output),
                    decision: Some(d),
                };
            }
            Err(e) => (None, Some(format!("could not tell whether it is up to date: {e}"))),
        };
        if !self.begin(cx, decision.as_ref().filter(|_| newly_decided)) {
            return Ended {
                outcome: Outcome::NotStarted,
                decision: None,
            };
        }
        // An incremental phase's lines are kept (the newest `max_logs`) to replay when it is
        // next up to date; they are masked once, when recorded, not per captured line.
        let collected = decision.as_ref().map(|_| {
            let lines = Arc::new(Mutex::new(std::collections::VecDeque::new()));
            let (inner, keep, max) = (self.ctx.sink.clone(), lines.clone(), self.max_logs);
            self.ctx.sink = Arc::new(move |stream, line: String| {
                {
                    let mut kept = keep.lock();
                    if kept.len() >= max {
                        kept.pop_front();
                    }
                    if max > 0 {
                        kept.push_back((stream, line.clone()));
                    }
                }
                inner(stream, line)
            });
            lines
        });
        let finish = self.finish();
        let incremental = self.incremental.clone();
        let mut result = match check_error {
            Some(e) => Err(SagaError::Failed(e)),
            None => {
                cx.try_call(
                    &name,
                    execute(self.handler, self.ctx, self.timeout, self.grace, self.executor),
                )
                .await
            }
        };
        if let (Ok(output), Some(inc), Some(d), Some(lines)) = (&result, incremental, &decision, &collected) {
            let secrets = &self.secrets;
            let logs: Vec<(Stream, String)> = std::mem::take(&mut *lines.lock())
                .into_iter()
                .map(|(stream, line)| (stream, secrets.mask(&line).into_owned()))
                .collect();
            if let Err(e) = record(inc, name.clone(), d.clone(), output.as_json().clone(), logs).await {
                result = Err(SagaError::Failed(e));
            }
        }
        let outcome = finish.outcome(cx, result);
        Ended { outcome, decision }
    }
}

/// What settles an attempt once its handler has returned.
struct Finish {
    name: Arc<str>,
    attempt: u32,
    start: Instant,
    policy: super::policy::PhasePolicy,
    failed: Arc<Mutex<bool>>,
    secrets: super::Secrets,
}

impl Finish {
    /// Puts the attempt's end (`@@PHASE_COMPLETE`, `_RETRY`, `_SKIPPED` or `_FAILED`) and
    /// tells the scheduler what to do next.
    fn outcome<S, A>(self, cx: &Cx<S, A>, result: SagaResult<PhaseOutput>) -> Outcome
    where
        S: Send + Sync + 'static,
        A: Action + Clone + From<PipelineAction>,
    {
        let ts = |cx: &Cx<S, A>, start: Instant| cx.now().saturating_duration_since(start).as_secs_f64();
        match result {
            Ok(output) => {
                put_masked(
                    cx,
                    &self.secrets,
                    PipelineAction::PhaseComplete {
                        name: self.name,
                        result: output.as_json().clone(),
                        timestamp: ts(cx, self.start),
                        reused_from: None,
                    },
                );
                Outcome::Completed(output)
            }
            Err(SagaError::Cancelled) => Outcome::Cancelled,
            Err(e) => {
                let error = e.to_string();
                if self.policy.retries_after(self.attempt) {
                    let delay = self.policy.delay_after(self.attempt);
                    put_masked(
                        cx,
                        &self.secrets,
                        PipelineAction::PhaseRetry {
                            name: self.name,
                            attempt: self.attempt,
                            error,
                            max_retries: self.policy.max_retries,
                            delay: delay.as_secs_f64(),
                            timestamp: ts(cx, self.start),
                        },
                    );
                    Outcome::Retry(delay)
                } else if self.policy.on_fail == OnFail::Skip {
                    put_masked(
                        cx,
                        &self.secrets,
                        PipelineAction::PhaseSkipped {
                            name: self.name,
                            error: error.clone(),
                            timestamp: ts(cx, self.start),
                        },
                    );
                    Outcome::Skipped
                } else {
                    let mut failed = self.failed.lock();
                    put_masked(
                        cx,
                        &self.secrets,
                        PipelineAction::PhaseFailed {
                            name: self.name,
                            error: error.clone(),
                            timestamp: ts(cx, self.start),
                        },
                    );
                    *failed = true;
                    Outcome::Failed(error)
                }
            }
        }
    }
}

/// Dispatches `a`, masked; a failed dispatch is logged.
fn put_masked<S, A>(cx: &Cx<S, A>, secrets: &super::Secrets, a: PipelineAction)
where
    S: Send + Sync + 'static,
    A: Action + Clone + From<PipelineAction>,
{
    if let Err(e) = cx.put(A::from(secrets.mask_action(a))) {
        tracing::warn!("dispatch failed: {e}");
    }
}

/// Records a successful attempt under `decision` through [`blocking`] (it stores outputs).
async fn record(
    inc: Arc<dyn Incremental>,
    name: Arc<str>,
    decision: Decision,
    result: Arc<serde_json::Value>,
    logs: Vec<(Stream, String)>,
) -> Result<(), String> {
    blocking(move || inc.record(&name, &decision, &result, &logs))
        .await
        .unwrap_or_else(|e| Err(format!("recording {e}")))
}

/// Runs `f`, which may block (it reads files), without stalling the runtime: in place on a
/// multi-threaded runtime (the worker hands its other tasks on, no thread to wake up and
/// wait for: a check that finds a phase up to date takes microseconds), else on a blocking
/// thread. A panic is an error saying so.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi {
        return tokio::task::block_in_place(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
            .map_err(|p| format!("panicked: {}", panic_message(&*p)));
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_panic() => Err(format!("panicked: {}", panic_message(&*e.into_panic()))),
        Err(_) => Err("was cancelled".into()),
    }
}

/// Runs a handler under its timeout and cancellation (see [`Execution::finish`]).
async fn execute(
    handler: Handler,
    ctx: PhaseContext,
    timeout: Option<Duration>,
    grace: Duration,
    executor: Arc<dyn crate::executor::Executor>,
) -> SagaResult<PhaseOutput> {
    Execution::new(handler, ctx, timeout, grace, executor).finish().await
}

/// A handler's attempt, ready to be polled.
struct Execution {
    work: BoxFuture<'static, SagaResult<PhaseOutput>>,
    token: CancellationToken,
    timeout: Option<Duration>,
    grace: Duration,
    /// `true` while a batch-scheduled command's job is queued: its timeout waits.
    held: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Execution {
    fn new(
        handler: Handler,
        ctx: PhaseContext,
        timeout: Option<Duration>,
        grace: Duration,
        executor: Arc<dyn crate::executor::Executor>,
    ) -> Self {
        let token = ctx.cancel.clone();
        let held = ctx.held.clone();
        // In-process handlers run inside a `milo.phase` span, so `tracing` events they emit
        // reach the phase's log through `phase_log_layer`.
        let (span, sink_guard) = match &handler {
            Handler::Command(_) => (tracing::Span::none(), None),
            _ => {
                let (span, guard) = phase_span(&ctx.name, ctx.attempt, &ctx.sink);
                (span, Some(guard))
            }
        };
        let work = match handler {
            Handler::Sync(f) => async move {
                let _sink = sink_guard;
                match tokio::task::spawn_blocking(move || span.in_scope(|| f(&ctx))).await {
                    Ok(r) => r.map_err(SagaError::Failed),
                    Err(e) if e.is_panic() => Err(SagaError::Panicked(panic_message(&*e.into_panic()))),
                    Err(_) => Err(SagaError::Cancelled),
                }
            }
            .boxed(),
            Handler::Async(f) => {
                let fut = std::panic::AssertUnwindSafe(f(ctx).instrument(span)).catch_unwind();
                async move {
                    let _sink = sink_guard;
                    match fut.await {
                        Ok(r) => r.map_err(SagaError::Failed),
                        Err(p) => Err(SagaError::Panicked(panic_message(&*p))),
                    }
                }
                .boxed()
            }
            Handler::Command(c) => run_command_phase(c, ctx, executor, grace).boxed(),
        };
        Self {
            work,
            token,
            timeout,
            grace,
            held,
        }
    }

    /// Polls the handler once, as the first poll of [`finish`](Self::finish) would (unless
    /// the phase is already cancelled, which `finish` then handles): its result if it ended.
    /// A panic is an error, as under `try_call`.
    fn poll_once(&mut self) -> Option<SagaResult<PhaseOutput>> {
        if self.token.is_cancelled() {
            return None;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (&mut self.work).now_or_never())) {
            Ok(r) => r,
            Err(p) => Some(Err(SagaError::Panicked(panic_message(&*p)))),
        }
    }

    /// [`finish`](Self::finish), where a panic is the attempt's error, as under `try_call`.
    async fn finish_caught(self) -> SagaResult<PhaseOutput> {
        std::panic::AssertUnwindSafe(self.finish())
            .catch_unwind()
            .await
            .unwrap_or_else(|p| Err(SagaError::Panicked(panic_message(&*p))))
    }

    /// Runs the handler to its end. On cancel or timeout the phase's token is cancelled and
    /// the handler gets the grace period to stop (commands use it to go from SIGTERM to
    /// SIGKILL) before it is dropped.
    async fn finish(self) -> SagaResult<PhaseOutput> {
        let Self {
            mut work,
            token,
            timeout,
            grace,
            held,
        } = self;
        // The timeout runs while the attempt is not held (queued); it starts over when a
        // queued job starts, so it counts from the job's start, not its submission.
        let deadline = async {
            let Some(d) = timeout else {
                return std::future::pending().await;
            };
            let Some(mut held) = held else {
                return tokio::time::sleep(d).await;
            };
            loop {
                if *held.borrow_and_update() {
                    if held.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(d) => return,
                    changed = held.changed() => {
                        if changed.is_err() {
                            return tokio::time::sleep(d).await;
                        }
                    }
                }
            }
        };
        // Biased towards cancellation: a handler that returns because it saw its token
        // cancelled (fail-fast or an interrupt) leaves its phase cancelled, not completed.
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                let _ = tokio::time::timeout(grace + Duration::from_secs(1), work).await;
                Err(SagaError::Cancelled)
            }
            r = &mut work => r,
            _ = deadline => {
                token.cancel();
                let _ = tokio::time::timeout(grace + Duration::from_secs(1), work).await;
                Err(SagaError::Timeout(timeout.unwrap_or_default()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Inline;

    #[test]
    fn inline_polling_stops_only_once_slow_polls_are_more_than_a_few_and_one_in_a_hundred() {
        let mut inline = Inline::default();
        // A few preempted no-ops among many quick ones keep it on.
        for k in 0..1_000 {
            inline.note(k % 250 == 0);
        }
        assert!(inline.on());
        // Handlers that compute without waiting turn it off after four slow polls.
        let mut inline = Inline::default();
        for _ in 0..3 {
            inline.note(true);
        }
        assert!(inline.on());
        inline.note(true);
        assert!(!inline.on());
    }
}
