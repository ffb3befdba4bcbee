//! Every example of the specification (`shared/seed/pipeline.md`) as a test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use milo::Store;
use milo::pipeline::{
    Phase, PhaseContext, PhasePolicy, Pipeline, PipelineAction, PipelineState, RetryBackoff, Status,
    make_detail_reducer, pipeline_to_timeline,
};
use milo::saga::Effect;
use milo::saga::testing::SagaTest;

fn ok(_: &PhaseContext) -> Result<(), String> {
    Ok(())
}

fn build() -> Pipeline {
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

#[test]
fn execution_order_matches_the_specification() {
    assert_eq!(
        build().execution_order(),
        ["discover", "parse", "assets", "render", "write"]
    );
}

#[test]
fn extending_with_shr_returns_a_new_pipeline_and_keeps_the_original() {
    let pipeline = build();
    let extended = (&pipeline
        >> Phase::new("health", ok)
            .depends_on(["write"])
            .description("Verify internal links"))
    .unwrap();
    assert_eq!(pipeline.phases().len(), 5);
    assert_eq!(extended.phases().len(), 6);
    assert_eq!(extended.execution_order().last().map(String::as_str), Some("health"));
    let bad = &pipeline >> Phase::new("broken", ok).depends_on(["nowhere"]);
    assert!(bad.is_err());
    let chained = pipeline.clone().capture_output(true) >> Phase::new("a", ok) >> Phase::new("b", ok);
    assert!(chained.unwrap().captures_output());
}

#[test]
fn generated_reducer_handles_the_specified_actions() {
    let pipeline = build();
    let reducer = pipeline.build_reducer();
    let store: Store<PipelineState, PipelineAction> = Store::new(reducer, None).unwrap();
    assert_eq!(store.get_state().status, Status::Pending);
    store
        .dispatch(PipelineAction::PipelineStart {
            started_at: None,
            name: "build".into(),
            timestamp: 0.0,
        })
        .unwrap();
    assert_eq!(store.get_state().status, Status::Running);
    store
        .dispatch(PipelineAction::PhaseStart {
            name: "discover".into(),
            attempt: 1,
            timestamp: 0.5,
        })
        .unwrap();
    let s = store.get_state();
    assert_eq!(s.phase("discover").unwrap().status, Status::Running);
    assert_eq!(s.current_phase.as_deref(), Some("discover"));
    store
        .dispatch(PipelineAction::PhaseComplete {
            name: "discover".into(),
            result: Arc::new(serde_json::json!(3)),
            timestamp: 1.5,
            reused_from: None,
        })
        .unwrap();
    let s = store.get_state();
    let discover = s.phase("discover").unwrap();
    assert_eq!(discover.status, Status::Completed);
    assert_eq!(discover.elapsed, 1.0);
    assert!((s.progress - 0.2).abs() < 1e-9);
    store
        .dispatch(PipelineAction::PhaseFailed {
            name: "parse".into(),
            error: "bad".into(),
            timestamp: 2.0,
        })
        .unwrap();
    let s = store.get_state();
    assert_eq!(s.status, Status::Failed);
    assert_eq!(s.phase("parse").unwrap().error.as_deref(), Some("bad"));
    store
        .dispatch(PipelineAction::PipelineComplete { timestamp: 3.0 })
        .unwrap();
    assert_eq!(store.get_state().status, Status::Completed);
    assert_eq!(store.get_state().progress, 1.0);
    assert_eq!(store.get_state().elapsed, 3.0);
}

#[test]
fn generated_saga_yields_put_call_and_fork_effects() {
    let pipeline = build();
    let t: SagaTest<(), PipelineAction> = SagaTest::new(());
    for name in ["discover", "parse", "render", "assets", "write"] {
        t.answer(name, milo::pipeline::PhaseOutput::none());
    }
    let saga = pipeline.build_saga::<(), PipelineAction>();
    let body = saga.label().to_owned();
    let p = pipeline.clone();
    t.run(&body, move |cx| async move {
        p.run_in(cx, Default::default()).await.map(drop)
    })
    .unwrap();
    let summary: Vec<String> = t
        .effects()
        .iter()
        .map(|e| match e {
            Effect::Put(a) => format!("put {} {}", milo::Action::type_name(a), a.phase().unwrap_or("")),
            // The pipeline calls handlers with `try_call` (a panic fails the phase): the
            // specification's Call effect.
            Effect::TryCall(l) => format!("call {l}"),
            Effect::Fork(l) => format!("fork {l}"),
            other => format!("{other:?}"),
        })
        .map(|s| s.trim_end().to_owned())
        .collect();
    assert_eq!(
        summary,
        [
            "put @@PIPELINE_START",
            "put @@PHASE_START discover",
            "call discover",
            "put @@PHASE_COMPLETE discover",
            "put @@PHASE_START parse",
            "call parse",
            "put @@PHASE_COMPLETE parse",
            "fork assets",
            "put @@PHASE_START assets",
            "call assets",
            "put @@PHASE_COMPLETE assets",
            "fork render",
            "put @@PHASE_START render",
            "call render",
            "put @@PHASE_COMPLETE render",
            "put @@PHASE_START write",
            "call write",
            "put @@PHASE_COMPLETE write",
            "put @@PIPELINE_COMPLETE",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observable_state_after_a_real_run() {
    let out = build().run().await.unwrap();
    let s = &out.state;
    assert_eq!(s.status, Status::Completed);
    assert_eq!(s.progress, 1.0);
    assert_eq!(s.phases.len(), 5);
    for p in s.phases.iter() {
        assert_eq!(p.status, Status::Completed, "{}", p.name);
        assert!(p.started_at.is_some());
        assert!(p.error.is_none());
    }
    assert!(s.current_phase.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policy_with_exponential_backoff() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let deploy = Phase::new("deploy", move |cx: &PhaseContext| {
        c.fetch_add(1, Ordering::SeqCst);
        if cx.attempt() < 3 {
            Err(format!("attempt {} failed", cx.attempt()))
        } else {
            Ok("deployed")
        }
    })
    .policy(
        PhasePolicy::retry(3)
            .retry_backoff(RetryBackoff::Exponential)
            .retry_delay(Duration::from_millis(20)),
    );
    let out = Pipeline::new("deploy", [deploy]).unwrap().run().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let p = out.state.phase("deploy").unwrap();
    assert_eq!(p.status, Status::Completed);
    assert_eq!(p.attempt, 3);
    assert_eq!(out.result::<&str>("deploy"), Some(&"deployed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_capture_stores_logs_on_each_phase() {
    use std::io::Write;
    let p = Pipeline::new(
        "build",
        [Phase::new("talk", |cx: &PhaseContext| {
            writeln!(cx.stdout(), "hello")?;
            writeln!(cx.stderr(), "careful")?;
            Ok::<_, std::io::Error>(())
        })],
    )
    .unwrap()
    .capture_output(true);
    let out = p.run().await.unwrap();
    let phase = &out.state.phases[0];
    let lines: Vec<String> = phase
        .logs
        .iter()
        .map(|l| format!("[{}] {}", l.stream.as_str(), l.line))
        .collect();
    assert_eq!(lines, ["[stdout] hello", "[stderr] careful"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_resource_json() {
    let out = build().run().await.unwrap();
    let t = pipeline_to_timeline(&out.state);
    assert_eq!(t["pipeline"], "build");
    assert_eq!(t["status"], "completed");
    assert_eq!(t["progress"], 1.0);
    let phases = t["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 5);
    assert_eq!(phases[4]["depends_on"], serde_json::json!(["render", "assets"]));
    assert_eq!(phases[2]["parallel"], true);
    assert!(phases[0]["error"].is_null());
    for key in [
        "name",
        "status",
        "started_at",
        "elapsed",
        "attempt",
        "error",
        "log_count",
        "depends_on",
        "parallel",
        "weight",
    ] {
        assert!(phases[0].get(key).is_some(), "missing {key}");
    }
}

#[test]
fn detail_reducer_wraps_the_pipeline_reducer() {
    let reducer = make_detail_reducer(build().build_reducer());
    let store = Store::new(reducer, None).unwrap();
    assert_eq!(store.get_state().pipeline.phases.len(), 5);
    store.dispatch(milo::pipeline::Key::Down.into()).unwrap();
    assert_eq!(store.get_state().selected_row, 1);
}

/// `@@PHASE_LOG` as the original writes it may leave out `stream` and `timestamp`: they
/// default to `stdout` and `0.0`.
#[test]
fn a_phase_log_without_stream_or_timestamp_defaults_them() {
    let action: PipelineAction =
        serde_json::from_str(r#"{"type": "@@PHASE_LOG", "payload": {"name": "parse", "line": "hi"}}"#)
            .expect("a PHASE_LOG without stream and timestamp");
    let PipelineAction::PhaseLog { stream, timestamp, .. } = action else {
        panic!("{action:?}")
    };
    assert_eq!((stream, timestamp), (milo::capture::Stream::Stdout, 0.0));
}

/// `log_count` is `len(phase.logs)` as in the original (the lines kept, at most `max_logs`);
/// `log_total` counts every line. The start's wall-clock time is kept from
/// `@@PIPELINE_START`.
#[test]
fn the_timeline_counts_kept_lines_and_keeps_the_start_time() {
    let pipeline = Pipeline::new("p", [Phase::new("talk", ok).max_logs(2)]).unwrap();
    let store: Store<PipelineState, PipelineAction> = Store::new(pipeline.build_reducer(), None).unwrap();
    store
        .dispatch(PipelineAction::PipelineStart {
            started_at: Some(1_700_000_000.5),
            name: "p".into(),
            timestamp: 0.0,
        })
        .unwrap();
    for n in 0..5 {
        store
            .dispatch(PipelineAction::PhaseLog {
                name: "talk".into(),
                line: format!("line {n}").into(),
                stream: milo::capture::Stream::Stdout,
                timestamp: 0.1,
            })
            .unwrap();
    }
    let state = store.get_state();
    assert_eq!(state.started_at, Some(1_700_000_000.5));
    let tl = pipeline_to_timeline(&state);
    assert_eq!(tl["started_at"], 1_700_000_000.5);
    assert_eq!(tl["phases"][0]["log_count"], 2);
    assert_eq!(tl["phases"][0]["log_total"], 5);
}

/// A real run carries the wall-clock start in `@@PIPELINE_START`.
#[tokio::test]
async fn a_run_records_its_wall_clock_start() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let pipeline = build();
    let store: Store<PipelineState, PipelineAction> = Store::new(pipeline.build_reducer(), None).unwrap();
    pipeline.run_with(&store, Default::default()).await.unwrap();
    let started = store.get_state().started_at.expect("a start time");
    assert!(
        started >= before - 1.0 && started < before + 60.0,
        "{started} vs {before}"
    );
}
