//! Property tests of the pipeline engine: random DAGs run to a clean end under every policy,
//! random action sequences never break the reducers, and validation agrees with a reference
//! implementation of Kahn's algorithm.
//!
//! Case counts are modest so that the whole file runs in well under a minute in debug on two
//! cores; set `PROPTEST_CASES` to run more.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Once};
use std::time::Duration;

use milo::capture::Stream;
use milo::pipeline::Phase;
use milo::pipeline::{
    Key, PhaseContext, PhasePolicy, Pipeline, PipelineAction, PipelineError, PipelineState, PipelineViewState,
    RetryBackoff, RunOptions, Status, ViewAction, ViewEvent, make_detail_reducer,
};
use milo::{Action, Reducer, Store};
use parking_lot::Mutex;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The number of cases of the slow properties (real runs), unless `PROPTEST_CASES` is set.
const RUN_CASES: u32 = 48;
/// The number of cases of the fast properties (pure functions).
const PURE_CASES: u32 = 256;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Shrinking a failing run is slow and rarely needed to read the failure.
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    }
}

/// Keeps the injected panics of handlers out of the test output; every other panic is
/// reported as usual.
fn quiet_injected_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.starts_with("injected"));
            if !injected {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// Random DAGs, run for real.

/// What a phase's handler does on each attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behavior {
    /// Returns its result at once.
    Succeed,
    /// Sleeps this many microseconds (≤ 2 ms), then succeeds.
    Sleep(u64),
    /// Returns an error.
    Fail,
    /// Panics inside the handler's future.
    Panic,
    /// Fails its first `n` attempts, then succeeds.
    FailTimes(u32),
}

impl Behavior {
    /// Whether attempt `attempt` (1-based) succeeds.
    fn succeeds_on(self, attempt: u32) -> bool {
        match self {
            Behavior::Succeed | Behavior::Sleep(_) => true,
            Behavior::Fail | Behavior::Panic => false,
            Behavior::FailTimes(n) => attempt > n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Stop,
    Skip,
    Retry { max: u32, exponential: bool },
}

impl Policy {
    fn build(self) -> PhasePolicy {
        match self {
            Policy::Stop => PhasePolicy::stop(),
            Policy::Skip => PhasePolicy::skip(),
            Policy::Retry { max, exponential } => PhasePolicy::retry(max)
                .retry_delay(Duration::from_millis(1))
                .retry_backoff(if exponential {
                    RetryBackoff::Exponential
                } else {
                    RetryBackoff::Fixed
                }),
        }
    }

    fn max_attempts(self) -> u32 {
        match self {
            Policy::Retry { max, .. } => max + 1,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone)]
struct PhaseSpec {
    deps: Vec<usize>,
    parallel: bool,
    weight: f64,
    policy: Policy,
    behavior: Behavior,
}

impl PhaseSpec {
    /// How the phase ends when it runs undisturbed: `Completed` (with its last attempt),
    /// `Skipped` or `Failed`.
    fn expected(&self) -> (Status, u32) {
        let attempts = self.policy.max_attempts();
        match (1..=attempts).find(|&a| self.behavior.succeeds_on(a)) {
            Some(a) => (Status::Completed, a),
            None if self.policy == Policy::Skip => (Status::Skipped, attempts),
            None => (Status::Failed, attempts),
        }
    }
}

#[derive(Debug, Clone)]
struct DagSpec {
    phases: Vec<PhaseSpec>,
    jobs: usize,
    fail_fast: bool,
}

fn behavior() -> impl Strategy<Value = Behavior> {
    prop_oneof![
        4 => Just(Behavior::Succeed),
        6 => (0u64..=2_000).prop_map(Behavior::Sleep),
        1 => Just(Behavior::Fail),
        1 => Just(Behavior::Panic),
        2 => (1u32..=3).prop_map(Behavior::FailTimes),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        2 => Just(Policy::Stop),
        1 => Just(Policy::Skip),
        2 => (0u32..=3, any::<bool>()).prop_map(|(max, exponential)| Policy::Retry { max, exponential }),
    ]
}

fn phase_spec(index: usize) -> impl Strategy<Value = PhaseSpec> {
    // Dependencies point at earlier phases only, so the graph is acyclic; most are recent, so
    // that chains are long and fan-in is common.
    let deps = if index == 0 {
        Just(Vec::new()).boxed()
    } else {
        proptest::collection::vec(0..index, 0..=3).boxed()
    };
    (
        deps,
        proptest::bool::weighted(0.75),
        prop_oneof![1 => Just(0.0), 6 => 0.5f64..5.0],
        policy(),
        behavior(),
    )
        .prop_map(|(mut deps, parallel, weight, policy, behavior)| {
            deps.sort_unstable();
            deps.dedup();
            PhaseSpec {
                deps,
                parallel,
                weight,
                policy,
                behavior,
            }
        })
}

fn dag() -> impl Strategy<Value = DagSpec> {
    let sizes = prop_oneof![3 => 1usize..=24, 2 => 25usize..=120, 1 => 121usize..=300];
    (sizes, 1usize..=6, any::<bool>())
        .prop_flat_map(|(n, jobs, fail_fast)| {
            let phases: Vec<_> = (0..n).map(phase_spec).collect();
            (phases, Just(jobs), Just(fail_fast))
        })
        .prop_map(|(phases, jobs, fail_fast)| DagSpec {
            phases,
            jobs,
            fail_fast,
        })
}

/// Name of phase `i`. Names do not sort like indices, so that the execution order (by level,
/// then name) differs from the declaration order.
fn name(i: usize) -> String {
    format!("{}-{i}", ["delta", "alpha", "echo", "charlie", "bravo"][i % 5])
}

/// Records which handlers run at once, from inside the handlers.
#[derive(Default)]
struct Probe {
    inner: Mutex<ProbeState>,
}

#[derive(Default)]
struct ProbeState {
    active: usize,
    serial_active: usize,
    max_active: usize,
    violations: Vec<String>,
}

struct ProbeGuard {
    probe: Arc<Probe>,
    parallel: bool,
}

impl Probe {
    fn enter(self: &Arc<Self>, name: &str, parallel: bool) -> ProbeGuard {
        let mut s = self.inner.lock();
        if s.serial_active > 0 {
            s.violations
                .push(format!("`{name}` started while a non-parallel phase was running"));
        }
        if !parallel && s.active > 0 {
            let others = s.active;
            s.violations.push(format!(
                "non-parallel `{name}` started while {others} other phase(s) were running"
            ));
        }
        s.active += 1;
        if !parallel {
            s.serial_active += 1;
        }
        s.max_active = s.max_active.max(s.active);
        ProbeGuard {
            probe: self.clone(),
            parallel,
        }
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        let mut s = self.probe.inner.lock();
        s.active -= 1;
        if !self.parallel {
            s.serial_active -= 1;
        }
    }
}

fn build(spec: &DagSpec, probe: &Arc<Probe>) -> Pipeline {
    let phases = spec.phases.iter().enumerate().map(|(i, p)| {
        let (behavior, parallel, probe) = (p.behavior, p.parallel, probe.clone());
        let phase_name = name(i);
        Phase::new_async(name(i), move |cx: PhaseContext| {
            let probe = probe.clone();
            let phase_name = phase_name.clone();
            async move {
                let _running = probe.enter(&phase_name, parallel);
                cx.log(Stream::Stdout, format!("attempt {}", cx.attempt()));
                match behavior {
                    Behavior::Succeed => Ok(i),
                    Behavior::Sleep(us) => {
                        tokio::time::sleep(Duration::from_micros(us)).await;
                        Ok(i)
                    }
                    Behavior::Fail => Err(format!("injected failure of {phase_name}")),
                    Behavior::Panic => panic!("injected panic"),
                    Behavior::FailTimes(n) if cx.attempt() <= n => {
                        Err(format!("injected failure {} of {n}", cx.attempt()))
                    }
                    Behavior::FailTimes(_) => Ok(i),
                }
            }
        })
        .depends_on(p.deps.iter().map(|&d| name(d)))
        .parallel(p.parallel)
        .weight(p.weight)
        .policy(p.policy.build())
        .max_logs(2)
    });
    Pipeline::new("random", phases)
        .expect("a DAG of earlier-phase dependencies is valid")
        .capture_output(true)
        .fail_fast(spec.fail_fast)
        .jobs(spec.jobs)
}

/// Checks the recorded actions and states of one run against the scheduler's guarantees.
fn check_trace(spec: &DagSpec, trace: &[(PipelineAction, Arc<PipelineState>)]) -> Result<(), TestCaseError> {
    let n = spec.phases.len();
    let index = |a: &PipelineAction| {
        let name = a.phase().expect("a phase action");
        let (_, i) = name.rsplit_once('-').expect("generated name");
        i.parse::<usize>().expect("generated index")
    };
    let terminals: Vec<usize> = (0..trace.len()).filter(|&k| trace[k].0.is_terminal()).collect();
    prop_assert_eq!(terminals.len(), 1, "exactly one terminal action");
    prop_assert_eq!(terminals[0], trace.len() - 1, "the terminal action is the last one");
    prop_assert!(
        matches!(trace[0].0, PipelineAction::PipelineStart { .. }),
        "the run starts with @@PIPELINE_START, not {:?}",
        trace[0].0
    );

    let mut done = vec![false; n]; // completed or skipped
    let mut running: BTreeSet<usize> = BTreeSet::new();
    let mut last_attempt = vec![0u32; n];
    let mut failed_at = None;
    let mut progress = 0.0f64;
    for (k, (action, state)) in trace.iter().enumerate() {
        prop_assert!(
            (0.0..=1.0).contains(&state.progress),
            "progress {} out of range after {action:?}",
            state.progress
        );
        prop_assert!(
            state.progress >= progress,
            "progress went from {progress} to {} on {action:?}",
            state.progress
        );
        progress = state.progress;
        match action {
            PipelineAction::PhaseStart { attempt, .. } => {
                let i = index(action);
                for &d in &spec.phases[i].deps {
                    prop_assert!(done[d], "{} started before its dependency {} ended", name(i), name(d));
                }
                prop_assert!(!running.contains(&i), "{} started twice", name(i));
                prop_assert_eq!(*attempt, last_attempt[i] + 1, "attempts of {} count up by one", name(i));
                last_attempt[i] = *attempt;
                // After a failure nothing new starts; a phase that had started (and waits to
                // retry) finishes its attempts, unless fail-fast cancelled it.
                if let Some(f) = failed_at {
                    prop_assert!(
                        *attempt > 1 && !spec.fail_fast,
                        "{} started (attempt {attempt}) after the failure at action {f}",
                        name(i)
                    );
                }
                if !spec.phases[i].parallel {
                    prop_assert!(running.is_empty(), "non-parallel {} overlaps {running:?}", name(i));
                }
                if let Some(&j) = running.iter().find(|&&j| !spec.phases[j].parallel) {
                    prop_assert!(false, "{} started while non-parallel {} runs", name(i), name(j));
                }
                running.insert(i);
                prop_assert!(
                    running.len() <= spec.jobs,
                    "{} phases running with jobs = {}",
                    running.len(),
                    spec.jobs
                );
            }
            PipelineAction::PhaseComplete { .. } | PipelineAction::PhaseSkipped { .. } => {
                let i = index(action);
                prop_assert!(running.remove(&i), "{} ended without running", name(i));
                done[i] = true;
            }
            PipelineAction::PhaseFailed { .. } => {
                let i = index(action);
                prop_assert!(running.remove(&i), "{} failed without running", name(i));
                failed_at.get_or_insert(k);
            }
            PipelineAction::PhaseRetry { .. } => {
                let i = index(action);
                prop_assert!(running.remove(&i), "{} retried without running", name(i));
            }
            PipelineAction::PhaseCancelled { .. } => {
                running.remove(&index(action));
            }
            PipelineAction::PhaseLog { .. } => {
                prop_assert!(running.contains(&index(action)), "a log line of a phase not running");
            }
            _ => {}
        }
    }
    prop_assert!(running.is_empty(), "phases still running at the end: {running:?}");

    let (last, state) = trace.last().expect("a terminal action");
    prop_assert!(state.is_finished(), "the final state is finished");
    for p in state.phases.iter() {
        let history = || {
            let about: Vec<String> = trace
                .iter()
                .filter(|(a, _)| a.phase() == Some(&*p.name) || a.phase().is_none())
                .map(|(a, _)| a.type_name().to_owned())
                .collect();
            about.join(" ")
        };
        prop_assert!(
            !matches!(p.status, Status::Running | Status::Retrying),
            "{} is {} after the run ended: {}",
            p.name,
            p.status,
            history()
        );
    }
    match last {
        PipelineAction::PipelineComplete { .. } => {
            prop_assert!(failed_at.is_none());
            prop_assert_eq!(state.status, Status::Completed);
            prop_assert_eq!(state.progress, 1.0);
            for (i, p) in state.phases.iter().enumerate() {
                let (status, attempt) = spec.phases[i].expected();
                prop_assert_eq!(p.status, status, "final status of {}", name(i));
                prop_assert_eq!(p.attempt, attempt, "attempts of {}", name(i));
            }
        }
        PipelineAction::PipelineFailed { .. } => {
            prop_assert!(failed_at.is_some(), "a failed run has a failed phase");
            prop_assert_eq!(state.status, Status::Failed);
            for (i, p) in state.phases.iter().enumerate() {
                if p.status == Status::Failed {
                    prop_assert_eq!(spec.phases[i].expected().0, Status::Failed, "{} failed", name(i));
                }
            }
        }
        other => prop_assert!(false, "unexpected terminal action {other:?}"),
    }
    Ok(())
}

fn run_dag(rt: &tokio::runtime::Runtime, spec: &DagSpec) -> Result<(), TestCaseError> {
    let probe = Arc::new(Probe::default());
    let pipeline = build(spec, &probe);
    let store = rt.block_on(async { pipeline.store() }).expect("store");
    let trace = Arc::new(Mutex::new(Vec::new()));
    let _sub = {
        let trace = trace.clone();
        store.subscribe(move |a: &PipelineAction, s: &Arc<PipelineState>| trace.lock().push((a.clone(), s.clone())))
    };
    let report = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            pipeline.run_with(&store, RunOptions::default()),
        )
        .await
    });
    let report = match report {
        Ok(r) => r.map_err(|e| TestCaseError::fail(format!("the run failed: {e}")))?,
        Err(_) => return Err(TestCaseError::fail("the run did not end within 60 s")),
    };
    let trace = std::mem::take(&mut *trace.lock());
    check_trace(spec, &trace)?;

    let final_state = store.get_state();
    prop_assert_eq!(report.status, final_state.status);
    let probe = probe.inner.lock();
    prop_assert!(probe.violations.is_empty(), "{:?}", probe.violations);
    prop_assert!(
        probe.max_active <= spec.jobs,
        "{} handlers ran at once with jobs = {}",
        probe.max_active,
        spec.jobs
    );
    prop_assert_eq!(probe.active, 0, "a handler is still running");

    // Replaying the recorded actions through the pure reducer gives the same state.
    let reducer = pipeline.build_reducer();
    let mut replayed: Option<Arc<PipelineState>> = None;
    for (action, _) in &trace {
        replayed = Some(reducer.apply(replayed.as_ref(), action));
    }
    let replayed = replayed.expect("at least one action");
    prop_assert!(*replayed == *final_state, "replaying the actions gives another state");
    Ok(())
}

proptest! {
    #![proptest_config(config(RUN_CASES))]

    #[test]
    fn random_dags_run_to_a_clean_end(spec in dag()) {
        quiet_injected_panics();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        run_dag(&rt, &spec)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Random actions into the reducers.

const NAMES: [&str; 5] = ["a", "b", "c", "d", "ghost"];

fn small_pipeline(max_logs: usize, phases: usize) -> Pipeline {
    grouped_pipeline(max_logs, phases, false)
}

/// [`small_pipeline`], its second and third phases (if any) in one group when `grouped`, as
/// a matrix phase's instances are.
fn grouped_pipeline(max_logs: usize, phases: usize, grouped: bool) -> Pipeline {
    let group = Arc::new(milo::pipeline::PhaseGroup {
        name: "g".into(),
        max_parallel: None,
        fail_fast: false,
    });
    let list = (0..phases).map(|i| {
        let p = Phase::new(NAMES[i], |_: &PhaseContext| Ok::<_, String>(())).max_logs(max_logs);
        let p = if grouped && (1..=2).contains(&i) {
            p.group(group.clone())
        } else {
            p
        };
        if i > 0 { p.depends_on([NAMES[i - 1]]) } else { p }
    });
    Pipeline::new("small", list).expect("valid")
}

fn timestamp() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0f64..100.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1.0),
    ]
}

fn pipeline_action() -> impl Strategy<Value = PipelineAction> {
    let name = proptest::sample::select(NAMES.to_vec()).prop_map(Arc::<str>::from);
    let line = "[a-z ]{0,8}".prop_map(Arc::<str>::from);
    let stream = prop_oneof![Just(Stream::Stdout), Just(Stream::Stderr)];
    prop_oneof![
        1 => Just(PipelineAction::Init {}),
        1 => timestamp().prop_map(|timestamp| PipelineAction::PipelineStart {
            started_at: None,
            name: "small".into(),
            timestamp
        }),
        1 => (name.clone(), 0u32..4, timestamp()).prop_map(|(name, attempt, timestamp)| PipelineAction::PhaseStart {
            name,
            attempt,
            timestamp
        }),
        1 => (name.clone(), timestamp()).prop_map(|(name, timestamp)| PipelineAction::PhaseComplete {
            name,
            result: Arc::new(serde_json::Value::Null),
            timestamp,
            reused_from: None
        }),
        1 => (name.clone(), timestamp()).prop_map(|(name, timestamp)| PipelineAction::PhaseFailed {
            name,
            error: "e".into(),
            timestamp
        }),
        1 => (name.clone(), timestamp()).prop_map(|(name, timestamp)| PipelineAction::PhaseSkipped {
            name,
            error: "e".into(),
            timestamp
        }),
        1 => (name.clone(), 0u32..4, timestamp()).prop_map(|(name, attempt, timestamp)| PipelineAction::PhaseRetry {
            name,
            attempt,
            error: "e".into(),
            max_retries: 3,
            delay: 0.1,
            timestamp
        }),
        1 => (name.clone(), timestamp()).prop_map(|(name, timestamp)| PipelineAction::PhaseCancelled { name, timestamp }),
        6 => (name, line, stream, timestamp()).prop_map(|(name, line, stream, timestamp)| PipelineAction::PhaseLog {
            name,
            line,
            stream,
            timestamp
        }),
        1 => timestamp().prop_map(|timestamp| PipelineAction::PipelineComplete { timestamp }),
        1 => timestamp().prop_map(|timestamp| PipelineAction::PipelineFailed {
            error: "e".into(),
            timestamp
        }),
        1 => timestamp().prop_map(|timestamp| PipelineAction::PipelineCancelled { timestamp }),
        1 => Just(PipelineAction::SagaError {
            saga: "s".into(),
            error: "e".into()
        }),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        3 => Just(Key::Up),
        3 => Just(Key::Down),
        1 => Just(Key::Enter),
        1 => Just(Key::Space),
        1 => Just(Key::Esc),
        1 => Just(Key::Home),
        1 => Just(Key::End),
        2 => proptest::sample::select(vec!['g', 'G', 'f', 'x']).prop_map(Key::Char),
    ]
}

fn view_action() -> impl Strategy<Value = ViewAction> {
    prop_oneof![
        4 => pipeline_action().prop_map(ViewAction::Pipeline),
        4 => key().prop_map(ViewAction::from),
        1 => (0usize..8).prop_map(|log_height| ViewAction::View(ViewEvent::Resize { log_height })),
    ]
}

fn check_view(v: &PipelineViewState) -> Result<(), TestCaseError> {
    let rows = v.visible_len();
    prop_assert!(
        v.selected_row < rows.max(1),
        "selected_row {} of {rows} rows",
        v.selected_row
    );
    prop_assert!(
        v.log_scroll <= v.max_scroll(),
        "log_scroll {} past max_scroll {}",
        v.log_scroll,
        v.max_scroll()
    );
    prop_assert!(v.log_height >= 1);
    check_logs(&v.pipeline)
}

fn check_logs(s: &PipelineState) -> Result<(), TestCaseError> {
    for p in s.phases.iter() {
        prop_assert!(
            p.logs.len() <= p.info.max_logs,
            "{} keeps {} lines, max_logs {}",
            p.name,
            p.logs.len(),
            p.info.max_logs
        );
        prop_assert!(p.logs.len() as u64 <= p.log_count);
    }
    prop_assert!((0.0..=1.0).contains(&s.progress), "progress {}", s.progress);
    Ok(())
}

proptest! {
    #![proptest_config(config(PURE_CASES))]

    #[test]
    fn random_actions_never_break_the_reducer(
        max_logs in 0usize..4,
        phases in 0usize..=4,
        actions in proptest::collection::vec(pipeline_action(), 0..60),
    ) {
        let reducer = small_pipeline(max_logs, phases).build_reducer();
        let mut state = reducer.apply(None, &PipelineAction::Init {});
        for a in &actions {
            state = reducer.apply(Some(&state), a);
            check_logs(&state)?;
        }
        // The reducer is pure: the same actions give the same state.
        let again = actions.iter().fold(reducer.apply(None, &PipelineAction::Init {}), |s, a| reducer.apply(Some(&s), a));
        // (Compared as text: NaN timestamps make `==` false on equal states.)
        prop_assert_eq!(format!("{again:?}"), format!("{state:?}"));
    }

    #[test]
    fn random_keys_and_actions_keep_the_view_in_range(
        max_logs in 0usize..6,
        phases in 0usize..=4,
        grouped in any::<bool>(),
        actions in proptest::collection::vec(view_action(), 0..80),
    ) {
        let reducer = make_detail_reducer(grouped_pipeline(max_logs, phases, grouped).build_reducer());
        let store: Store<PipelineViewState, ViewAction> = Store::new(reducer.clone(), None).expect("store");
        check_view(&store.get_state())?;
        let mut state = store.get_state();
        for a in &actions {
            // Through the reducer directly (a panic fails the test) and through a store (a
            // panic would be reported as a dispatch error).
            state = reducer.reduce(Some(&state), a).state_or(&state);
            check_view(&state)?;
            store.dispatch(a.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        check_view(&store.get_state())?;
    }
}

// ---------------------------------------------------------------------------------------------
// Validation against a reference.

/// Kahn's algorithm: whether the graph (`deps[i]`: what `i` depends on) has a cycle.
fn reference_has_cycle(deps: &[Vec<usize>]) -> bool {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(|d| d.iter().collect::<HashSet<_>>().len()).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &j in d.iter().collect::<HashSet<_>>() {
            dependents[j].push(i);
        }
    }
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop_front() {
        seen += 1;
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                queue.push_back(d);
            }
        }
    }
    seen < n
}

fn random_graph() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..=40, 0.0f64..0.15).prop_flat_map(|(n, density)| {
        let edges = ((n * n) as f64 * density).ceil() as usize;
        proptest::collection::vec((0..n, 0..n), 0..=edges).prop_map(move |edges| {
            let mut deps = vec![Vec::new(); n];
            for (a, b) in edges {
                if a != b {
                    deps[a].push(b);
                }
            }
            deps
        })
    })
}

fn graph_name(i: usize) -> String {
    format!("n{:02}", (i * 7) % 100)
}

proptest! {
    #![proptest_config(config(PURE_CASES))]

    #[test]
    fn validation_agrees_with_kahn(deps in random_graph()) {
        let phases = deps.iter().enumerate().map(|(i, d)| {
            Phase::new(graph_name(i), |_: &PhaseContext| Ok::<_, String>(()))
                .depends_on(d.iter().map(|&j| graph_name(j)))
        });
        let cyclic = reference_has_cycle(&deps);
        match Pipeline::new("g", phases) {
            Ok(p) => {
                prop_assert!(!cyclic, "a cyclic graph was accepted");
                // The order is topological, level by level, names sorted within a level.
                let def = p.def();
                let order = def.order();
                prop_assert_eq!(order.len(), deps.len());
                for (i, d) in deps.iter().enumerate() {
                    let level = d.iter().map(|&j| def.phases[j].level + 1).max().unwrap_or(0);
                    prop_assert_eq!(def.phases[i].level, level, "level of {}", graph_name(i));
                    for &j in d {
                        prop_assert!(def.rank(j) < def.rank(i), "{} before its dependency", graph_name(i));
                    }
                }
                let keys: Vec<(usize, &str)> =
                    order.iter().map(|&i| (def.phases[i].level, &*def.phases[i].name)).collect();
                let mut sorted = keys.clone();
                sorted.sort();
                prop_assert_eq!(keys, sorted);
            }
            Err(PipelineError::Cycle { path }) => {
                prop_assert!(cyclic, "an acyclic graph was reported cyclic: {path:?}");
                prop_assert!(path.len() >= 3, "a cycle of two or more phases: {path:?}");
                prop_assert_eq!(path.first(), path.last());
                let index = |n: &str| (0..deps.len()).find(|&i| graph_name(i) == n).expect("a phase");
                for pair in path.windows(2) {
                    let (a, b) = (index(&pair[0]), index(&pair[1]));
                    prop_assert!(deps[a].contains(&b), "{} does not depend on {}", pair[0], pair[1]);
                }
                let inner: HashSet<&String> = path[..path.len() - 1].iter().collect();
                prop_assert_eq!(inner.len(), path.len() - 1, "the cycle repeats a phase: {:?}", path);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn self_dependencies_are_reported(n in 1usize..10, at in 0usize..10) {
        let at = at % n;
        let phases = (0..n).map(|i| {
            let p = Phase::new(graph_name(i), |_: &PhaseContext| Ok::<_, String>(()));
            if i == at { p.depends_on([graph_name(i)]) } else { p }
        });
        prop_assert_eq!(
            Pipeline::new("g", phases).unwrap_err(),
            PipelineError::SelfDependency { phase: graph_name(at) }
        );
    }
}

/// Found by `random_keys_and_actions_keep_the_view_in_range`: collapsing a scrolled log view
/// and selecting a phase with fewer lines left `log_scroll` past the end.
#[test]
fn selecting_another_phase_keeps_log_scroll_in_range() {
    let reducer = make_detail_reducer(small_pipeline(10, 2).build_reducer());
    let mut state = reducer
        .reduce(None, &ViewAction::Pipeline(PipelineAction::Init {}))
        .state
        .unwrap();
    let log = |line: &str| {
        ViewAction::Pipeline(PipelineAction::PhaseLog {
            name: "a".into(),
            line: line.into(),
            stream: Stream::Stdout,
            timestamp: 0.0,
        })
    };
    let steps = [
        ViewAction::View(ViewEvent::Resize { log_height: 1 }),
        log("one"),
        log("two"),
        log("three"),
        ViewAction::from(Key::Enter),
        ViewAction::from(Key::Esc),
        ViewAction::from(Key::Down),
    ];
    for step in &steps {
        state = reducer.reduce(Some(&state), step).state_or(&state);
    }
    assert_eq!(state.selected_row, 1);
    assert_eq!(state.log_scroll, 0, "phase b has no lines");
}
