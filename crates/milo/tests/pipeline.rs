//! The pipeline engine: phases, handlers, command phases, scheduling, policies, output
//! capture, terminal actions, timeline, detail reducer.
//!
//! Timing tests use generous margins (they must not flake on a loaded 2-core machine);
//! ordering-only questions use the test interpreter.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use milo::Store;
use milo::capture::Stream;
use milo::pipeline::{
    CommandPhase, DEFAULT_MAX_LOGS, Key, OnFail, Opaque, Phase, PhaseContext, PhasePolicy, Pipeline, PipelineAction,
    PipelineError, PipelineState, PipelineViewState, RetryBackoff, RunOptions, RunReport, Status, ViewAction,
    ViewEvent, make_detail_reducer, pipeline_to_timeline,
};
use milo::saga::Effect;
use milo::saga::testing::SagaTest;
use milo::{Action, Reducer};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn ok(_: &PhaseContext) -> Result<(), String> {
    Ok(())
}

/// A run in a fresh store, with every dispatched action recorded.
struct Recorded {
    report: RunReport,
    state: Arc<PipelineState>,
    actions: Vec<PipelineAction>,
}

impl Recorded {
    fn types(&self) -> Vec<String> {
        self.actions.iter().map(|a| a.type_name().to_owned()).collect()
    }

    fn phase(&self, name: &str) -> &milo::pipeline::PhaseStatus {
        self.state.phase(name).unwrap_or_else(|| panic!("no phase {name}"))
    }

    fn logs(&self, name: &str) -> Vec<String> {
        self.phase(name).logs.iter().map(|l| l.line.to_string()).collect()
    }

    fn started(&self, name: &str) -> f64 {
        self.phase(name)
            .started_at
            .unwrap_or_else(|| panic!("{name} never started"))
    }
}

async fn run_recorded(p: &Pipeline, options: RunOptions) -> Recorded {
    let store = p.store().unwrap();
    let actions = Arc::new(Mutex::new(Vec::new()));
    let sink = actions.clone();
    let _sub = store.subscribe(move |a: &PipelineAction, _s: &Arc<PipelineState>| sink.lock().push(a.clone()));
    let report = p.run_with(&store, options).await.unwrap();
    let actions = actions.lock().clone();
    Recorded {
        report,
        state: store.get_state(),
        actions,
    }
}

async fn run(p: &Pipeline) -> Recorded {
    run_recorded(p, RunOptions::default()).await
}

/// Counts phases running at once and remembers the maximum.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) -> usize {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        n
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

fn sleeper(name: &str, ms: u64) -> Phase {
    Phase::new_async(name, move |_cx: PhaseContext| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, String>(())
    })
}

fn pgrep(marker: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn unique_marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("milo{tag}{}x{nanos}", std::process::id())
}

/// Waits up to `limit` for `f` to hold.
async fn eventually(limit: Duration, f: impl Fn() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

// ---------------------------------------------------------------------------------------
// Phase fields and defaults
// ---------------------------------------------------------------------------------------

#[test]
fn phase_defaults() {
    let p = Pipeline::new("p", [Phase::new("a", ok)]).unwrap();
    let info = &p.def().phases[0];
    assert!(!info.parallel);
    assert_eq!(info.weight, 1.0);
    assert_eq!(info.policy, PhasePolicy::default());
    assert_eq!(info.policy.on_fail, OnFail::Stop);
    assert_eq!(info.policy.max_retries, 0);
    assert_eq!(info.max_logs, 200);
    assert_eq!(DEFAULT_MAX_LOGS, 200);
    assert_eq!(info.timeout, None);
    assert!(info.description.is_empty());
    assert!(info.command.is_none());
    assert!(!p.captures_output());
    assert!(!p.is_fail_fast());
}

#[test]
fn phase_fields_are_kept() {
    let phase = Phase::new("b", ok)
        .depends_on(["a"])
        .parallel(true)
        .weight(3)
        .description("the b")
        .policy(PhasePolicy::skip())
        .max_logs(7)
        .timeout(Duration::from_secs(2));
    let p = Pipeline::new("p", [Phase::new("a", ok), phase, Phase::command("c", "true")]).unwrap();
    let info = &p.def().phases[1];
    assert!(info.parallel);
    assert_eq!(info.weight, 3.0);
    assert_eq!(info.description, "the b");
    assert_eq!(info.policy.on_fail, OnFail::Skip);
    assert_eq!(info.max_logs, 7);
    assert_eq!(info.timeout, Some(Duration::from_secs(2)));
    assert_eq!(&*info.depends_on[0], "a");
    assert_eq!(p.def().phases[2].command.as_deref(), Some("true"));
    assert_eq!(p.def().total_weight(), 5.0);
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_cancels_the_handler_and_fails_the_phase() {
    let saw_cancel = Arc::new(AtomicU32::new(0));
    let seen = saw_cancel.clone();
    let slow = Phase::new_async("slow", move |cx: PhaseContext| {
        let seen = seen.clone();
        async move {
            tokio::select! {
                _ = cx.cancellation().cancelled() => { seen.fetch_add(1, Ordering::SeqCst); }
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            Ok::<_, String>(())
        }
    })
    .timeout(Duration::from_millis(150));
    let p = Pipeline::new("p", [slow, Phase::new("after", ok).depends_on(["slow"])]).unwrap();
    let t0 = Instant::now();
    let r = run(&p).await;
    assert!(t0.elapsed() < Duration::from_secs(10), "the handler was not cut off");
    assert_eq!(r.report.status, Status::Failed);
    let slow = r.phase("slow");
    assert_eq!(slow.status, Status::Failed);
    let error = slow.error.as_deref().unwrap();
    assert!(error.contains("timed out after"), "{error}");
    assert_eq!(
        saw_cancel.load(Ordering::SeqCst),
        1,
        "the handler's token was not cancelled"
    );
    assert_eq!(r.phase("after").status, Status::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_policy_retries_timeouts() {
    let slow = Phase::new_async("slow", |cx: PhaseContext| async move {
        if cx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok::<_, String>(cx.attempt())
    })
    .timeout(Duration::from_millis(100))
    .policy(PhasePolicy::retry(2).retry_delay(Duration::from_millis(10)));
    let p = Pipeline::new("p", [slow]).unwrap();
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    let retry = r
        .actions
        .iter()
        .find_map(|a| match a {
            PipelineAction::PhaseRetry { error, attempt, .. } => Some((error.clone(), *attempt)),
            _ => None,
        })
        .expect("a @@PHASE_RETRY");
    assert!(retry.0.contains("timed out after"), "{}", retry.0);
    assert_eq!(retry.1, 1);
    assert_eq!(r.phase("slow").attempt, 2);
    assert_eq!(**r.phase("slow").result.as_ref().unwrap(), serde_json::json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_sync_handler_fails_in_time() {
    let p = Pipeline::new(
        "p",
        [Phase::new("block", |cx: &PhaseContext| {
            // A well-behaved sync handler watches its cancellation signal.
            let t0 = Instant::now();
            while !cx.is_cancelled() && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok::<_, String>(())
        })
        .timeout(Duration::from_millis(100))],
    )
    .unwrap();
    let t0 = Instant::now();
    let r = run(&p).await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(r.phase("block").status, Status::Failed);
    assert!(r.phase("block").error.as_deref().unwrap().contains("timed out after"));
}

// ---------------------------------------------------------------------------------------
// Handlers and results
// ---------------------------------------------------------------------------------------

/// Not serializable: it can only travel as an opaque value.
struct Site {
    pages: Vec<String>,
}
struct SiteBox(Mutex<Site>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_async_handlers_pass_typed_results() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new("count", |_: &PhaseContext| Ok::<_, String>(vec![1_u32, 2, 3])),
            Phase::new_async("site", |_cx: PhaseContext| async {
                Ok::<_, String>(Opaque(SiteBox(Mutex::new(Site {
                    pages: vec!["index".into(), "about".into()],
                }))))
            }),
            Phase::new("use", |cx: &PhaseContext| {
                let count = cx.result::<Vec<u32>>("count").ok_or("no count")?;
                let site = cx.result::<SiteBox>("site").ok_or("no site")?;
                let pages = site.0.lock().pages.len();
                // A wrong type or a non-dependency gives None.
                assert!(cx.result::<String>("count").is_none());
                assert!(cx.result::<u32>("nowhere").is_none());
                Ok::<_, String>(format!("{}:{pages}:{}", count.iter().sum::<u32>(), cx.attempt()))
            })
            .depends_on(["count", "site"]),
        ],
    )
    .unwrap();
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed, "{:?}", r.state.error);
    assert_eq!(r.state.phase("use").unwrap().status, Status::Completed);
    let out = milo::pipeline::RunOutput {
        state: r.state.clone(),
        report: r.report.clone(),
    };
    assert_eq!(out.result::<String>("use").map(String::as_str), Some("6:2:1"));
    // Serializable results are also JSON; opaque ones are null.
    assert_eq!(
        **r.phase("count").result.as_ref().unwrap(),
        serde_json::json!([1, 2, 3])
    );
    assert!(r.phase("site").result.as_ref().unwrap().is_null());
    assert!(out.result::<SiteBox>("site").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_dependency_yields_none() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new("flaky", |_: &PhaseContext| Err::<u32, _>("broken")).policy(PhasePolicy::skip()),
            Phase::new("good", |_: &PhaseContext| Ok::<_, String>(5_u32)),
            Phase::new("after", |cx: &PhaseContext| {
                let inputs = cx.inputs_json();
                Ok::<_, String>((
                    cx.result::<u32>("flaky").is_none(),
                    cx.output("flaky").is_none(),
                    cx.result::<u32>("good").copied(),
                    inputs,
                ))
            })
            .depends_on(["flaky", "good"]),
        ],
    )
    .unwrap();
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    assert_eq!(r.phase("flaky").status, Status::Skipped);
    assert_eq!(r.phase("flaky").error.as_deref(), Some("broken"));
    assert_eq!(
        **r.phase("after").result.as_ref().unwrap(),
        serde_json::json!([true, true, 5, {"flaky": null, "good": 5}])
    );
    assert_eq!(r.state.progress, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_handlers_run_on_the_blocking_pool() {
    // Two sync handlers that block their thread for 300 ms each, in parallel, on a runtime
    // with one worker: they overlap only if they run off the worker thread.
    let c = Arc::new(Concurrency::default());
    let mk = |name: &str| {
        let c = c.clone();
        Phase::new(name, move |_: &PhaseContext| {
            c.enter();
            std::thread::sleep(Duration::from_millis(300));
            c.leave();
            Ok::<_, String>(())
        })
        .parallel(true)
    };
    let p = Pipeline::new("p", [mk("a"), mk("b")]).unwrap().jobs(2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = tokio::task::spawn_blocking(move || rt.block_on(p.run()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state.status, Status::Completed);
    assert_eq!(c.max(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_phase_and_the_process_survives() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new("sync", |_: &PhaseContext| -> Result<(), String> { panic!("sync boom") })
                .policy(PhasePolicy::skip()),
            Phase::new_async("async", |_cx: PhaseContext| async {
                if true {
                    panic!("async boom {}", 42);
                }
                Ok::<_, String>(())
            })
            .depends_on(["sync"]),
        ],
    )
    .unwrap();
    let r = run(&p).await;
    let sync = r.phase("sync");
    assert_eq!(sync.status, Status::Skipped);
    assert!(sync.error.as_deref().unwrap().contains("sync boom"), "{:?}", sync.error);
    let a = r.phase("async");
    assert_eq!(a.status, Status::Failed);
    assert!(a.error.as_deref().unwrap().contains("async boom 42"), "{:?}", a.error);
    assert_eq!(r.report.status, Status::Failed);
    // And the engine still works.
    assert_eq!(
        run(&Pipeline::new("q", [Phase::new("a", ok)]).unwrap())
            .await
            .report
            .status,
        Status::Completed
    );
}

#[test]
fn run_blocking_runs_outside_a_runtime() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new("a", |_: &PhaseContext| Ok::<_, String>(20)),
            Phase::new_async("b", |cx: PhaseContext| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, String>(cx.result::<i32>("a").copied().unwrap_or(0) + 22)
            })
            .depends_on(["a"]),
        ],
    )
    .unwrap();
    let out = p.run_blocking().unwrap();
    assert_eq!(out.state.status, Status::Completed);
    assert_eq!(out.result::<i32>("b"), Some(&42));
}

// ---------------------------------------------------------------------------------------
// Command phases
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_phases_get_their_environment_and_pass_results() {
    let p = Pipeline::new(
        "site",
        [
            Phase::command("produce", r#"printf '{"pages": 3}' > "$MILO_OUTPUT""#),
            Phase::command(
                "consume",
                r#"printf '%s|%s|%s|%s|' "$MILO_PIPELINE" "$MILO_PHASE" "$MILO_ATTEMPT" "$EXTRA" > "$MILO_OUTPUT"
                   cat "$MILO_INPUTS" >> "$MILO_OUTPUT""#,
            )
            .depends_on(["produce"]),
            Phase::command_with(
                "where",
                CommandPhase {
                    run: r#"pwd > "$MILO_OUTPUT""#.into(),
                    cwd: Some(std::env::temp_dir()),
                    env: vec![],
                    shell: None,
                },
            ),
        ],
    )
    .unwrap();
    // Environment for `consume` comes from command_with; rebuild it with EXTRA set.
    let p = Pipeline::new(
        "site",
        p.phases()
            .iter()
            .map(|ph| match ph.command_line() {
                Some(c) if ph.name() == "consume" => Phase::command_with(
                    "consume",
                    CommandPhase {
                        env: vec![("EXTRA".into(), "x1".into())],
                        ..c.clone()
                    },
                )
                .depends_on(["produce"]),
                _ => ph.clone(),
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed, "{:?}", r.state.error);
    assert_eq!(
        **r.phase("produce").result.as_ref().unwrap(),
        serde_json::json!({"pages": 3})
    );
    let consumed = r.phase("consume").result.as_ref().unwrap().as_str().unwrap().to_owned();
    let (head, inputs) = consumed.rsplit_once('|').unwrap();
    assert_eq!(head, "site|consume|1|x1");
    let inputs: serde_json::Value = serde_json::from_str(inputs).unwrap();
    assert_eq!(inputs, serde_json::json!({"produce": {"pages": 3}}));
    let dir = r.phase("where").result.as_ref().unwrap().as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::canonicalize(dir).unwrap(),
        std::fs::canonicalize(std::env::temp_dir()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_fails_with_its_exit_status() {
    let p = Pipeline::new("p", [Phase::command("bad", "echo oops >&2; exit 3")])
        .unwrap()
        .capture_output(true);
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Failed);
    let bad = r.phase("bad");
    assert_eq!(bad.status, Status::Failed);
    let error = bad.error.as_deref().unwrap();
    assert!(error.contains("status 3"), "{error}");
    assert_eq!(r.logs("bad"), ["oops"]);
    assert_eq!(bad.logs[0].stream, Stream::Stderr);
    assert!(r.state.error.as_deref().unwrap().contains("bad"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_output_is_captured_line_by_line_while_it_runs() {
    let p = Pipeline::new(
        "p",
        [Phase::command(
            "talk",
            "echo first; sleep 0.6; printf 'second\\r\\nthird'",
        )],
    )
    .unwrap()
    .capture_output(true);
    let store = p.store().unwrap();
    // When `first` arrives, the phase must still be running.
    let running_at_first = Arc::new(Mutex::new(None));
    let seen = running_at_first.clone();
    let _sub = store.subscribe(move |a: &PipelineAction, s: &Arc<PipelineState>| {
        if let PipelineAction::PhaseLog { line, .. } = a
            && &**line == "first"
        {
            *seen.lock() = Some(s.phase("talk").unwrap().status);
        }
    });
    p.run_with(&store, RunOptions::default()).await.unwrap();
    let s = store.get_state();
    let talk = s.phase("talk").unwrap();
    let lines: Vec<&str> = talk.logs.iter().map(|l| &*l.line).collect();
    assert_eq!(lines, ["first", "second", "third"]);
    assert_eq!(*running_at_first.lock(), Some(Status::Running));
    let gap = talk.logs[1].timestamp - talk.logs[0].timestamp;
    assert!(gap > 0.3, "lines were not dispatched as they came: {gap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_terminates_command_process_groups() {
    let marker = unique_marker("cancel");
    // A child that ignores SIGTERM must be killed after the grace period; the other one
    // leaves on SIGTERM.
    let stubborn = format!("trap '' TERM; sh -c 'trap \"\" TERM; sleep 30; : {marker}' & sleep 30; : {marker}");
    let polite = format!("sleep 31 & wait; : {marker}");
    let p = Pipeline::new(
        "p",
        [
            Phase::command("stubborn", stubborn).parallel(true),
            Phase::command("polite", polite).parallel(true),
            Phase::new("later", ok).depends_on(["stubborn", "polite"]),
        ],
    )
    .unwrap()
    .jobs(2)
    .grace_period(Duration::from_millis(300));
    let options = RunOptions::default();
    let stop = options.stop.clone();
    let m = marker.clone();
    let canceller = tokio::spawn(async move {
        assert!(
            eventually(Duration::from_secs(10), || pgrep(&m).len() >= 2).await,
            "the commands never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    });
    let t0 = Instant::now();
    let r = run_recorded(&p, options).await;
    canceller.await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(r.report.status, Status::Cancelled);
    assert_eq!(r.state.status, Status::Cancelled);
    assert_eq!(r.phase("stubborn").status, Status::Cancelled);
    assert_eq!(r.phase("polite").status, Status::Cancelled);
    assert_eq!(r.phase("later").status, Status::Pending);
    assert_eq!(r.types().last().map(String::as_str), Some("@@PIPELINE_CANCELLED"));
    assert!(
        eventually(Duration::from_secs(3), || pgrep(&marker).is_empty()).await,
        "leftover processes: {:?}",
        pgrep(&marker)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_timeout_kills_its_process_group() {
    let marker = unique_marker("timeout");
    let p = Pipeline::new(
        "p",
        [Phase::command("slow", format!("sleep 30 & sleep 30; : {marker}")).timeout(Duration::from_millis(300))],
    )
    .unwrap()
    .grace_period(Duration::from_millis(200));
    let r = run(&p).await;
    assert_eq!(r.phase("slow").status, Status::Failed);
    assert!(r.phase("slow").error.as_deref().unwrap().contains("timed out after"));
    assert!(
        eventually(Duration::from_secs(3), || pgrep(&marker).is_empty()).await,
        "leftover processes: {:?}",
        pgrep(&marker)
    );
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

#[test]
fn validation_errors() {
    let dup = Pipeline::new("p", [Phase::new("a", ok), Phase::new("a", ok)]).unwrap_err();
    assert_eq!(dup, PipelineError::DuplicatePhase { name: "a".into() });
    assert!(dup.to_string().contains("duplicate phase name `a`"));

    let unknown = Pipeline::new("p", [Phase::new("a", ok), Phase::new("b", ok).depends_on(["c"])]).unwrap_err();
    let msg = unknown.to_string();
    assert!(msg.contains("`c`") && msg.contains("`a`, `b`"), "{msg}");

    let cycle = Pipeline::new(
        "p",
        [
            Phase::new("a", ok).depends_on(["c"]),
            Phase::new("b", ok).depends_on(["a"]),
            Phase::new("c", ok).depends_on(["b"]),
        ],
    )
    .unwrap_err();
    let PipelineError::Cycle { path } = &cycle else {
        panic!("{cycle}")
    };
    assert_eq!(path.first(), path.last());
    assert_eq!(path.len(), 4);
    assert!(cycle.to_string().contains(" → "), "{cycle}");
}

#[test]
fn a_million_phase_chain_orders_without_overflowing_the_stack() {
    // Run on a small stack to make sure nothing recurses.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let n = 1_000_000;
            let phases = (0..n).map(|i| {
                let p = Phase::new(format!("p{i}"), ok);
                if i == 0 {
                    p
                } else {
                    p.depends_on([format!("p{}", i - 1)])
                }
            });
            let p = Pipeline::new("chain", phases).unwrap();
            let order = p.execution_order();
            assert_eq!(order.len(), n);
            assert_eq!(order[0], "p0");
            assert_eq!(order[n - 1], format!("p{}", n - 1));
        })
        .unwrap();
    handle.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Terminal actions
// ---------------------------------------------------------------------------------------

fn assert_one_terminal_after_everything(r: &Recorded, terminal: &str) {
    let types = r.types();
    let terminals: Vec<usize> = r
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_terminal())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(terminals.len(), 1, "{types:?}");
    assert_eq!(
        terminals[0],
        types.len() - 1,
        "the terminal action is not last: {types:?}"
    );
    assert_eq!(types.last().unwrap(), terminal);
    assert!(
        r.state
            .phases
            .iter()
            .all(|p| p.status != Status::Running && p.status != Status::Retrying),
        "a phase was still running at the end"
    );
    assert_eq!(r.state.running().count(), 0);
    assert!(r.state.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_ends_with_exactly_one_terminal_action() {
    // Completed.
    let p = Pipeline::new("p", [sleeper("a", 10).parallel(true), sleeper("b", 30).parallel(true)]).unwrap();
    let r = run(&p).await;
    assert_one_terminal_after_everything(&r, "@@PIPELINE_COMPLETE");
    assert_eq!(r.report.status, Status::Completed);

    // Failed: the running sibling finishes before the terminal action. `bad` fails only after
    // `slow` has surely started (a phase that fails at once may stop its sibling from starting
    // at all, which is right too, but not what this checks).
    let p = Pipeline::new(
        "p",
        [
            Phase::new("bad", |_: &PhaseContext| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                Err::<(), _>("no")
            })
            .parallel(true),
            sleeper("slow", 300).parallel(true),
        ],
    )
    .unwrap()
    .jobs(2);
    let r = run(&p).await;
    assert_one_terminal_after_everything(&r, "@@PIPELINE_FAILED");
    assert_eq!(r.phase("slow").status, Status::Completed);

    // Cancelled by the stop token while a retry waits.
    let p = Pipeline::new(
        "p",
        [Phase::new("flaky", |_: &PhaseContext| Err::<(), _>("no"))
            .policy(PhasePolicy::retry(5).retry_delay(Duration::from_secs(30)))],
    )
    .unwrap();
    let options = RunOptions::default();
    let stop = options.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
    });
    let t0 = Instant::now();
    let r = run_recorded(&p, options).await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_one_terminal_after_everything(&r, "@@PIPELINE_CANCELLED");
    assert_eq!(r.phase("flaky").status, Status::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_token_cancelled_before_the_run_starts_nothing() {
    let started = Arc::new(AtomicU32::new(0));
    let s = started.clone();
    let p = Pipeline::new(
        "p",
        [Phase::new("a", move |_: &PhaseContext| {
            s.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })],
    )
    .unwrap();
    let options = RunOptions::default();
    options.stop.cancel();
    let r = run_recorded(&p, options).await;
    assert_eq!(r.report.status, Status::Cancelled);
    assert_one_terminal_after_everything(&r, "@@PIPELINE_CANCELLED");
    assert!(started.load(Ordering::SeqCst) <= 1);
}

// ---------------------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_start_eagerly_not_in_waves() {
    // A (0.1 s) and B (0.5 s) parallel roots, C (0.4 s) after A, D after B and C.
    // Waves: 0.5 + 0.4 = 0.9 s before D; eagerly: max(0.5, 0.1 + 0.4) = 0.5 s.
    let p = Pipeline::new(
        "p",
        [
            sleeper("A", 100).parallel(true),
            sleeper("B", 500).parallel(true),
            sleeper("C", 400).parallel(true).depends_on(["A"]),
            sleeper("D", 10).depends_on(["B", "C"]),
        ],
    )
    .unwrap()
    .jobs(4);
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    let (a, b, c, d) = (r.started("A"), r.started("B"), r.started("C"), r.started("D"));
    assert!(c < b + 0.35, "C waited for B: C at {c}, B at {b}");
    assert!(c >= a + 0.09, "C started before A finished");
    assert!(d >= 0.49, "D started before B finished: {d}");
    assert!(d < 0.8, "D started at {d}: scheduled in waves?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_jobs_parallel_phases_run_at_once() {
    let c = Arc::new(Concurrency::default());
    let phases: Vec<Phase> = (0..8)
        .map(|i| {
            let c = c.clone();
            Phase::new_async(format!("p{i}"), move |_cx: PhaseContext| {
                let c = c.clone();
                async move {
                    c.enter();
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    c.leave();
                    Ok::<_, String>(())
                }
            })
            .parallel(true)
        })
        .collect();
    let p = Pipeline::new("p", phases).unwrap().jobs(3);
    assert_eq!(p.job_limit(), 3);
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    assert_eq!(c.max(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_parallel_phase_runs_alone() {
    let c = Arc::new(Concurrency::default());
    let alone_ok = Arc::new(AtomicU32::new(0));
    let mk = |name: &str, parallel: bool, ms: u64| {
        let c = c.clone();
        let alone_ok = alone_ok.clone();
        Phase::new_async(name, move |_cx: PhaseContext| {
            let c = c.clone();
            let alone_ok = alone_ok.clone();
            async move {
                let n = c.enter();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                // Nothing may have started while a non-parallel phase runs.
                if !parallel && n == 1 && c.now.load(Ordering::SeqCst) == 1 {
                    alone_ok.fetch_add(1, Ordering::SeqCst);
                }
                c.leave();
                Ok::<_, String>(())
            }
        })
        .parallel(parallel)
    };
    // `solo` is ready at once but must wait for the running parallel phases, and the
    // parallel phases ready while it runs must wait for it.
    let p = Pipeline::new(
        "p",
        [
            mk("p1", true, 200),
            mk("p2", true, 200),
            mk("solo", false, 200),
            mk("q1", true, 50).depends_on(["p1"]),
            mk("q2", true, 50),
            mk("solo2", false, 100).depends_on(["q1"]),
        ],
    )
    .unwrap()
    .jobs(4);
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    assert_eq!(
        alone_ok.load(Ordering::SeqCst),
        2,
        "a non-parallel phase did not run alone"
    );
    // Intervals of solo phases do not overlap any other phase's.
    let spans: Vec<(String, f64, f64)> = r
        .state
        .phases
        .iter()
        .map(|p| (p.name.to_string(), p.started_at.unwrap(), p.finished_at.unwrap()))
        .collect();
    for (name, s, e) in spans.iter().filter(|(n, ..)| n.starts_with("solo")) {
        for (other, os, oe) in spans.iter().filter(|(o, ..)| o != name) {
            assert!(oe <= s || os >= e, "{other} [{os}, {oe}] overlaps {name} [{s}, {e}]");
        }
    }
}

#[test]
fn ready_phases_start_in_execution_order() {
    // With one job slot, ready parallel phases start in execution order (level, then name),
    // whatever their declaration order; the test interpreter records the order exactly.
    let p = Pipeline::new(
        "p",
        [
            Phase::new("zeta", ok).parallel(true),
            Phase::new("alpha", ok).parallel(true),
            Phase::new("mid", ok).parallel(true).depends_on(["alpha"]),
            Phase::new("beta", ok).parallel(true),
        ],
    )
    .unwrap()
    .jobs(1);
    assert_eq!(p.execution_order(), ["alpha", "beta", "zeta", "mid"]);
    let t: SagaTest<(), PipelineAction> = SagaTest::new(());
    t.passthrough(true);
    let q = p.clone();
    t.run(
        "order",
        move |cx| async move { q.run_in(cx, RunOptions::default()).await },
    )
    .unwrap();
    let starts: Vec<String> = t
        .effects()
        .iter()
        .filter_map(|e| match e {
            Effect::Put(PipelineAction::PhaseStart { name, .. }) => Some(name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(starts, ["alpha", "beta", "zeta", "mid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_phases_start_in_execution_order_live() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mk = |name: &str| {
        let order = order.clone();
        let n = name.to_owned();
        Phase::new(name, move |_: &PhaseContext| {
            order.lock().push(n.clone());
            Ok::<_, String>(())
        })
        .parallel(true)
    };
    let p = Pipeline::new("p", [mk("c"), mk("a"), mk("d"), mk("b")])
        .unwrap()
        .jobs(1);
    run(&p).await;
    assert_eq!(*order.lock(), ["a", "b", "c", "d"]);
}

// ---------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_policy_fails_the_pipeline_and_lets_running_phases_finish() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new_async("bad", |_cx: PhaseContext| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<(), _>("kaput")
            })
            .parallel(true),
            sleeper("running", 400).parallel(true),
            sleeper("waiting", 10).parallel(true).depends_on(["running"]),
            sleeper("unrelated", 10).depends_on(["bad"]),
        ],
    )
    .unwrap()
    .jobs(2);
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Failed);
    assert_eq!(r.state.status, Status::Failed);
    assert_eq!(r.phase("bad").status, Status::Failed);
    assert_eq!(r.phase("bad").error.as_deref(), Some("kaput"));
    assert_eq!(r.phase("running").status, Status::Completed);
    // No new phase starts after the failure.
    assert_eq!(r.phase("waiting").status, Status::Pending);
    assert_eq!(r.phase("unrelated").status, Status::Pending);
    let error = r.state.error.as_deref().unwrap();
    assert!(error.contains("bad") && error.contains("kaput"), "{error}");
    assert_eq!(r.types().last().unwrap(), "@@PIPELINE_FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_cancels_running_phases() {
    let cancelled = Arc::new(AtomicU32::new(0));
    let seen = cancelled.clone();
    let p = Pipeline::new(
        "p",
        [
            // Fails once `long` has surely started.
            Phase::new("bad", |_: &PhaseContext| {
                std::thread::sleep(Duration::from_millis(50));
                Err::<(), _>("kaput")
            })
            .parallel(true),
            Phase::new_async("long", move |cx: PhaseContext| {
                let seen = seen.clone();
                async move {
                    tokio::select! {
                        _ = cx.cancellation().cancelled() => { seen.fetch_add(1, Ordering::SeqCst); }
                        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                    Ok::<_, String>(())
                }
            })
            .parallel(true),
        ],
    )
    .unwrap()
    .jobs(2)
    .fail_fast(true);
    let t0 = Instant::now();
    let r = run(&p).await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(r.phase("bad").status, Status::Failed);
    assert_eq!(r.phase("long").status, Status::Cancelled);
    assert_eq!(cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(r.report.status, Status::Failed);
    assert_one_terminal_after_everything(&r, "@@PIPELINE_FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_runs_at_most_max_retries_plus_one_times() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let p = Pipeline::new(
        "p",
        [Phase::new("flaky", move |cx: &PhaseContext| {
            c.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(format!("failure {}", cx.attempt()))
        })
        .policy(PhasePolicy::retry(2).retry_delay(Duration::from_millis(150)))],
    )
    .unwrap();
    let store = p.store().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _sub = store.subscribe(move |a: &PipelineAction, s: &Arc<PipelineState>| {
        let st = s.phase("flaky").unwrap().status;
        l.lock().push((a.type_name().to_owned(), st));
    });
    let report = p.run_with(&store, RunOptions::default()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(report.status, Status::Failed);
    let log = log.lock().clone();
    let kinds: Vec<&str> = log.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "@@PIPELINE_START",
            "@@PHASE_START",
            "@@PHASE_RETRY",
            "@@PHASE_START",
            "@@PHASE_RETRY",
            "@@PHASE_START",
            "@@PHASE_FAILED",
            "@@PIPELINE_FAILED"
        ]
    );
    // Between attempts the phase is `retrying`.
    assert_eq!(log[2].1, Status::Retrying);
    assert_eq!(log[4].1, Status::Retrying);
    let s = store.get_state();
    let flaky = s.phase("flaky").unwrap();
    assert_eq!(flaky.status, Status::Failed);
    assert_eq!(flaky.error.as_deref(), Some("failure 3"));
    assert_eq!(flaky.attempt, 3);
    // started_at is the first attempt's; elapsed covers every attempt and both waits.
    assert!(flaky.started_at.unwrap() < 0.1, "{:?}", flaky.started_at);
    assert!(flaky.elapsed >= 0.29, "elapsed {}", flaky.elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_retry_is_dispatched_before_the_wait() {
    let p = Pipeline::new(
        "p",
        [Phase::new("flaky", |cx: &PhaseContext| {
            if cx.attempt() == 1 {
                Err("first".to_owned())
            } else {
                Ok(cx.attempt())
            }
        })
        .policy(PhasePolicy::retry(1).retry_delay(Duration::from_millis(400)))],
    )
    .unwrap();
    let store = p.store().unwrap();
    let when = Arc::new(Mutex::new(Vec::new()));
    let w = when.clone();
    let t0 = Instant::now();
    let _sub = store.subscribe(move |a: &PipelineAction, _: &Arc<PipelineState>| {
        w.lock().push((a.type_name().to_owned(), t0.elapsed().as_secs_f64()));
    });
    p.run_with(&store, RunOptions::default()).await.unwrap();
    let when = when.lock().clone();
    let retry = when.iter().find(|(k, _)| k == "@@PHASE_RETRY").unwrap().1;
    let second = when.iter().filter(|(k, _)| k == "@@PHASE_START").nth(1).unwrap().1;
    assert!(retry < 0.3, "the retry was announced late: {retry}");
    assert!(
        second - retry >= 0.39,
        "the wait was shorter than the delay: {}",
        second - retry
    );
    let retry_action = store.get_state();
    assert_eq!(retry_action.phase("flaky").unwrap().status, Status::Completed);
}

#[test]
fn retry_delays_follow_the_backoff_in_the_test_interpreter() {
    let p = Pipeline::new(
        "p",
        [Phase::new("deploy", ok).policy(
            PhasePolicy::retry(3)
                .retry_delay(Duration::from_secs(1))
                .retry_backoff(RetryBackoff::Exponential),
        )],
    )
    .unwrap();
    let t = SagaTest::with_reducer(PipelineState::new(p.def().clone()), p.build_reducer());
    t.fail("deploy", "down").fail("deploy", "down").fail("deploy", "down");
    t.answer("deploy", milo::pipeline::PhaseOutput::new("v2"));
    let q = p.clone();
    let report = t
        .run(
            "retry",
            move |cx| async move { q.run_in(cx, RunOptions::default()).await },
        )
        .unwrap();
    assert_eq!(report.status, Status::Completed);
    let delays: Vec<u64> = t
        .effects()
        .iter()
        .filter_map(|e| match e {
            Effect::Delay(d) => Some(d.as_secs()),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [1, 2, 4]);
    let retries: Vec<(u32, f64)> = t
        .effects()
        .iter()
        .filter_map(|e| match e {
            Effect::Put(PipelineAction::PhaseRetry { attempt, delay, .. }) => Some((*attempt, *delay)),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [(1, 1.0), (2, 2.0), (3, 4.0)]);
    let s = t.state();
    let deploy = s.phase("deploy").unwrap();
    assert_eq!(deploy.status, Status::Completed);
    assert_eq!(deploy.attempt, 4);
    assert_eq!(deploy.started_at, Some(0.0));
    assert_eq!(deploy.elapsed, 7.0, "elapsed covers the waits (virtual time)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_wait_does_not_hold_a_job_slot() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new("flaky", |cx: &PhaseContext| {
                if cx.attempt() == 1 {
                    Err("once".to_owned())
                } else {
                    Ok(())
                }
            })
            .parallel(true)
            .policy(PhasePolicy::retry(1).retry_delay(Duration::from_millis(600))),
            sleeper("other", 100).parallel(true),
        ],
    )
    .unwrap()
    .jobs(1);
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    let other = r.phase("other");
    let flaky = r.phase("flaky");
    // `other` ran during flaky's wait, not after its second attempt.
    assert!(
        other.finished_at.unwrap() < flaky.finished_at.unwrap(),
        "other {:?}, flaky {:?}",
        other.finished_at,
        flaky.finished_at
    );
    assert!(
        other.started_at.unwrap() < 0.45,
        "other waited for the retry: {:?}",
        other.started_at
    );
}

// ---------------------------------------------------------------------------------------
// Output capture
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_lines_are_split_decoded_and_cut() {
    let long = "x".repeat(milo::capture::MAX_LINE_BYTES + 1000);
    let l = long.clone();
    let p = Pipeline::new(
        "p",
        [Phase::new("w", move |cx: &PhaseContext| {
            let mut out = cx.stdout();
            out.write_all(b"unix\nwin")?;
            out.write_all(b"dows\r\nbad \xff byte\n")?;
            out.write_all(l.as_bytes())?;
            out.write_all(b"\nlast without newline")?;
            Ok::<_, std::io::Error>(())
        })],
    )
    .unwrap()
    .capture_output(true);
    let r = run(&p).await;
    let lines = r.logs("w");
    assert_eq!(
        lines.len(),
        5,
        "{:?}",
        lines.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    assert_eq!(lines[0], "unix");
    assert_eq!(lines[1], "windows");
    assert_eq!(lines[2], "bad \u{fffd} byte");
    assert!(lines[3].len() < long.len());
    assert!(lines[3].starts_with("xxxx"));
    assert!(lines[3].contains("truncated"), "{}", &lines[3][lines[3].len() - 60..]);
    assert_eq!(lines[4], "last without newline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reducer_keeps_the_newest_max_logs_lines() {
    let p = Pipeline::new(
        "p",
        [Phase::new("w", |cx: &PhaseContext| {
            let mut out = cx.stdout();
            for i in 0..10 {
                writeln!(out, "line {i}")?;
            }
            Ok::<_, std::io::Error>(())
        })
        .max_logs(3)],
    )
    .unwrap()
    .capture_output(true);
    let r = run(&p).await;
    assert_eq!(r.logs("w"), ["line 7", "line 8", "line 9"]);
    assert_eq!(r.phase("w").log_count, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_phases_never_see_each_others_lines() {
    let mk = |name: &'static str| {
        Phase::new_async(name, move |cx: PhaseContext| async move {
            for i in 0..50 {
                writeln!(cx.stdout(), "{name} {i}").unwrap();
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Ok::<_, String>(())
        })
        .parallel(true)
    };
    let p = Pipeline::new("p", [mk("left"), mk("right"), mk("middle")])
        .unwrap()
        .capture_output(true)
        .jobs(3);
    let r = run(&p).await;
    for name in ["left", "right", "middle"] {
        let lines = r.logs(name);
        assert_eq!(lines.len(), 50);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l, &format!("{name} {i}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_dispatched_while_the_phase_runs() {
    let p = Pipeline::new(
        "p",
        [Phase::new_async("w", |cx: PhaseContext| async move {
            writeln!(cx.stderr(), "early").unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            cx.log(Stream::Stdout, "late");
            Ok::<_, String>(())
        })],
    )
    .unwrap()
    .capture_output(true);
    let r = run(&p).await;
    let types = r.types();
    let log = types.iter().position(|t| t == "@@PHASE_LOG").unwrap();
    let complete = types.iter().position(|t| t == "@@PHASE_COMPLETE").unwrap();
    assert!(log < complete);
    let w = r.phase("w");
    assert_eq!(w.logs[0].stream, Stream::Stderr);
    assert_eq!(w.logs[1].stream, Stream::Stdout);
    assert!(w.logs[1].timestamp - w.logs[0].timestamp > 0.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_capture_output_passes_through() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new("w", |cx: &PhaseContext| {
                assert!(!cx.captures_output());
                writeln!(cx.stdout(), "passes through")?;
                Ok::<_, std::io::Error>(())
            }),
            Phase::command("c", "echo from a command").depends_on(["w"]),
        ],
    )
    .unwrap();
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    assert!(!r.types().iter().any(|t| t == "@@PHASE_LOG"));
    assert!(r.phase("w").logs.is_empty());
    assert_eq!(r.phase("c").log_count, 0);
}

// ---------------------------------------------------------------------------------------
// Reducer, timeline
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_follows_weights() {
    let p = Pipeline::new(
        "p",
        [
            Phase::new("light", ok).weight(1),
            Phase::new("heavy", ok).weight(3).depends_on(["light"]),
        ],
    )
    .unwrap();
    let store = p.store().unwrap();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let pr = progress.clone();
    let _sub = store.subscribe(move |a: &PipelineAction, s: &Arc<PipelineState>| {
        if matches!(a, PipelineAction::PhaseComplete { .. }) {
            pr.lock().push(s.progress);
        }
    });
    p.run_with(&store, RunOptions::default()).await.unwrap();
    assert_eq!(*progress.lock(), [0.25, 1.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_reports_every_phase() {
    let p = Pipeline::new(
        "build",
        [
            Phase::new("a", |_: &PhaseContext| Ok::<_, String>(serde_json::json!({"n": 1}))).description("first"),
            Phase::new("b", |_: &PhaseContext| Err::<(), _>("nope"))
                .depends_on(["a"])
                .policy(PhasePolicy::skip()),
            Phase::new("c", |_: &PhaseContext| Err::<(), _>("fatal")).depends_on(["b"]),
            Phase::new("d", ok).depends_on(["c"]),
        ],
    )
    .unwrap();
    let r = run(&p).await;
    let t = pipeline_to_timeline(&r.state);
    assert_eq!(t["pipeline"], "build");
    assert_eq!(t["status"], "failed");
    assert!(t["error"].as_str().unwrap().contains("fatal"));
    assert_eq!(t["execution_order"], serde_json::json!(["a", "b", "c", "d"]));
    let phases = t["phases"].as_array().unwrap();
    let by = |n: &str| phases.iter().find(|p| p["name"] == n).unwrap().clone();
    assert_eq!(by("a")["status"], "completed");
    assert_eq!(by("a")["result"], serde_json::json!({"n": 1}));
    assert_eq!(by("a")["description"], "first");
    assert_eq!(by("b")["status"], "skipped");
    assert_eq!(by("b")["error"], "nope");
    assert_eq!(by("c")["status"], "failed");
    assert_eq!(by("c")["error"], "fatal");
    assert_eq!(by("c")["attempt"], 1);
    assert_eq!(by("d")["status"], "pending");
    assert!(by("d")["started_at"].is_null());
    assert!(by("a")["elapsed"].as_f64().unwrap() >= 0.0);
    // Serializes as JSON text.
    let text = serde_json::to_string(&t).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["phases"][1]["status"], "skipped");
}

#[test]
fn replaying_recorded_actions_reproduces_the_state() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = Pipeline::new(
        "p",
        [
            Phase::new("a", |cx: &PhaseContext| {
                writeln!(cx.stdout(), "hi")?;
                Ok::<_, std::io::Error>(1)
            }),
            Phase::new("b", ok).depends_on(["a"]).parallel(true),
        ],
    )
    .unwrap()
    .capture_output(true);
    let r = rt.block_on(run(&p));
    let reducer = p.build_reducer();
    let mut state = None;
    for a in &r.actions {
        // Through JSON, as history does.
        let a: PipelineAction = serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap();
        state = Some(reducer.apply(state.as_ref(), &a));
    }
    assert_eq!(*state.unwrap(), *r.state);
}

// ---------------------------------------------------------------------------------------
// Detail reducer
// ---------------------------------------------------------------------------------------

fn five() -> Pipeline {
    Pipeline::new(
        "build",
        [
            Phase::new("discover", ok),
            Phase::new("parse", ok).depends_on(["discover"]),
            Phase::new("render", ok).depends_on(["parse"]).parallel(true),
            Phase::new("assets", ok).depends_on(["parse"]).parallel(true),
            Phase::new("write", ok).depends_on(["render", "assets"]),
        ],
    )
    .unwrap()
}

fn log_line(name: &str, i: usize) -> ViewAction {
    PipelineAction::PhaseLog {
        name: name.into(),
        line: format!("line {i}").into(),
        stream: Stream::Stdout,
        timestamp: i as f64,
    }
    .into()
}

fn view_store() -> Store<PipelineViewState, ViewAction> {
    Store::new(make_detail_reducer(five().build_reducer()), None).unwrap()
}

fn key(store: &Store<PipelineViewState, ViewAction>, k: Key) -> Arc<PipelineViewState> {
    store.dispatch(k.into()).unwrap();
    store.get_state()
}

#[test]
fn detail_selection_is_clamped_and_follows_execution_order() {
    let store = view_store();
    let s = store.get_state();
    assert_eq!(s.selected_row, 0);
    assert!(!s.expanded && s.auto_follow && !s.quit);
    assert_eq!(key(&store, Key::Up).selected_row, 0);
    for _ in 0..10 {
        key(&store, Key::Down);
    }
    let s = store.get_state();
    assert_eq!(s.selected_row, 4);
    // Execution order: discover, parse, assets, render, write.
    key(&store, Key::Up);
    let s = key(&store, Key::Up);
    assert_eq!(s.selected_row, 2);
    assert_eq!(&*s.pipeline.phases[s.selected_index().unwrap()].name, "assets");
}

#[test]
fn detail_enter_space_and_esc() {
    let store = view_store();
    assert!(key(&store, Key::Enter).expanded);
    assert!(!key(&store, Key::Enter).expanded);
    assert!(key(&store, Key::Space).expanded);
    assert!(!key(&store, Key::Space).expanded);
    key(&store, Key::Enter);
    let s = key(&store, Key::Esc);
    assert!(!s.expanded && !s.quit, "Esc in the log view collapses");
    assert!(key(&store, Key::Esc).quit, "Esc in the overview quits");

    let store = view_store();
    assert!(key(&store, Key::Char('q')).quit);
    let store = view_store();
    key(&store, Key::Enter);
    assert!(key(&store, Key::Char('q')).quit, "q quits from the log view too");
}

#[test]
fn detail_log_scrolling_and_auto_follow() {
    let store = view_store();
    store
        .dispatch(ViewAction::View(ViewEvent::Resize { log_height: 5 }))
        .unwrap();
    for i in 0..20 {
        store.dispatch(log_line("discover", i)).unwrap();
    }
    let s = key(&store, Key::Enter);
    assert!(s.expanded);
    assert_eq!(s.max_scroll(), 15);
    assert_eq!(s.log_scroll, 15, "auto-follow opens at the newest line");

    // New lines of the selected phase keep the view at the bottom.
    store.dispatch(log_line("discover", 20)).unwrap();
    assert_eq!(store.get_state().log_scroll, 16);
    // Other phases' lines never move it.
    store.dispatch(log_line("parse", 0)).unwrap();
    assert_eq!(store.get_state().log_scroll, 16);

    // ↑ scrolls and stops following.
    let s = key(&store, Key::Up);
    assert_eq!(s.log_scroll, 15);
    assert!(!s.auto_follow);
    store.dispatch(log_line("discover", 21)).unwrap();
    assert_eq!(store.get_state().log_scroll, 15, "without auto-follow the view stays");
    // ↓ scrolls down, clamped.
    assert_eq!(key(&store, Key::Down).log_scroll, 16);
    for _ in 0..10 {
        key(&store, Key::Down);
    }
    assert_eq!(store.get_state().log_scroll, 17);
    // g / Home to the top, G / End to the bottom.
    assert_eq!(key(&store, Key::Char('g')).log_scroll, 0);
    assert_eq!(key(&store, Key::End).log_scroll, 17);
    assert_eq!(key(&store, Key::Home).log_scroll, 0);
    assert_eq!(key(&store, Key::Char('G')).log_scroll, 17);
    // f toggles auto-follow; turning it on jumps to the newest line.
    key(&store, Key::Char('g'));
    let s = key(&store, Key::Char('f'));
    assert!(s.auto_follow);
    assert_eq!(s.log_scroll, 17);
    store.dispatch(log_line("discover", 22)).unwrap();
    assert_eq!(store.get_state().log_scroll, 18);
    let s = key(&store, Key::Char('f'));
    assert!(!s.auto_follow);
    store.dispatch(log_line("discover", 23)).unwrap();
    assert_eq!(store.get_state().log_scroll, 18);
}

#[test]
fn detail_auto_follow_only_moves_the_view_when_expanded_on_the_logging_phase() {
    let store = view_store();
    store
        .dispatch(ViewAction::View(ViewEvent::Resize { log_height: 2 }))
        .unwrap();
    // Collapsed: lines do not move the scroll.
    for i in 0..5 {
        store.dispatch(log_line("discover", i)).unwrap();
    }
    assert_eq!(store.get_state().log_scroll, 0);
    // A non-log action leaves an expanded, following view where it is.
    key(&store, Key::Enter);
    let before = store.get_state().log_scroll;
    store
        .dispatch(
            PipelineAction::PhaseStart {
                name: "discover".into(),
                attempt: 1,
                timestamp: 9.0,
            }
            .into(),
        )
        .unwrap();
    assert_eq!(store.get_state().log_scroll, before);
    // An unknown phase's action changes nothing at all.
    let s = store.get_state();
    store.dispatch(log_line("nowhere", 1)).unwrap();
    assert!(Arc::ptr_eq(&s, &store.get_state()) || *s == *store.get_state());
}

#[test]
fn detail_reducer_is_a_reducer_over_the_pipeline_state() {
    let r = make_detail_reducer(five().build_reducer());
    let first = r
        .reduce(None, &ViewAction::from(PipelineAction::Init {}))
        .state
        .unwrap();
    assert_eq!(first.pipeline.status, Status::Pending);
    let next = r
        .reduce(
            Some(&first),
            &ViewAction::from(PipelineAction::PipelineStart {
                started_at: None,
                name: "build".into(),
                timestamp: 0.0,
            }),
        )
        .state_or(&first);
    assert_eq!(next.pipeline.status, Status::Running);
    assert_eq!(first.pipeline.status, Status::Pending, "states are immutable");
}

// ---------------------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_token_is_seen_by_handlers() {
    let token = CancellationToken::new();
    let options = RunOptions {
        stop: token.clone(),
        ..Default::default()
    };
    let p = Pipeline::new(
        "p",
        [Phase::new("watch", |cx: &PhaseContext| {
            let t0 = Instant::now();
            while !cx.is_cancelled() {
                if t0.elapsed() > Duration::from_secs(20) {
                    return Err("never cancelled");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })],
    )
    .unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        token.cancel();
    });
    let r = run_recorded(&p, options).await;
    assert_eq!(r.report.status, Status::Cancelled);
    assert_eq!(r.phase("watch").status, Status::Cancelled);
}

// ---------------------------------------------------------------------------------------
// Timestamps in dispatch order
// ---------------------------------------------------------------------------------------

#[test]
fn a_pipeline_store_keeps_timestamps_non_decreasing_in_dispatch_order() {
    let p = Pipeline::new("t", vec![Phase::new("a", ok), Phase::new("b", ok)]).unwrap();
    let store = p.store().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _sub = store.subscribe(move |a: &PipelineAction, _s: &Arc<PipelineState>| sink.lock().push(a.timestamp()));
    let start = |timestamp| PipelineAction::PipelineStart {
        started_at: None,
        name: "t".into(),
        timestamp,
    };
    let log = |name: &str, timestamp| PipelineAction::PhaseLog {
        name: name.into(),
        line: "x".into(),
        stream: Stream::Stdout,
        timestamp,
    };
    store.dispatch(start(0.0)).unwrap();
    store.dispatch(log("a", 0.5)).unwrap();
    // Read the clock before `a`'s line, dispatched after it.
    store.dispatch(log("b", 0.4)).unwrap();
    store.dispatch(log("a", 0.6)).unwrap();
    // A new run in the same store starts again from 0.
    store.dispatch(start(0.0)).unwrap();
    store.dispatch(log("a", 0.1)).unwrap();
    assert_eq!(
        *seen.lock(),
        vec![Some(0.0), Some(0.5), Some(0.5), Some(0.6), Some(0.0), Some(0.1)]
    );
    // The state holds what the listeners saw.
    let b = store.get_state();
    let b = b.phase("b").unwrap();
    assert_eq!(b.logs.last().map(|l| l.timestamp), Some(0.5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_phases_stream_timestamps_in_order() {
    let chatty = |name: &str| {
        Phase::new_async(name, |cx: PhaseContext| async move {
            for i in 0..300 {
                let _ = writeln!(cx.stdout(), "line {i}");
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Ok::<(), String>(())
        })
        .parallel(true)
    };
    let p = Pipeline::new("t", (0..4).map(|i| chatty(&format!("p{i}"))).collect::<Vec<_>>())
        .unwrap()
        .capture_output(true)
        .jobs(4);
    let r = run(&p).await;
    assert_eq!(r.report.status, Status::Completed);
    let times: Vec<f64> = r.actions.iter().filter_map(PipelineAction::timestamp).collect();
    assert!(times.len() > 1200, "{} timestamps", times.len());
    let backwards: Vec<_> = times.windows(2).filter(|w| w[1] < w[0]).collect();
    assert!(backwards.is_empty(), "timestamps went back: {backwards:?}");
}
