//! The incremental seam of the saga: decisions before the first attempt, replay of fresh
//! phases, recording after success, keys and results reaching dependents.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use milo::Action;
use milo::capture::Stream;
use milo::pipeline::{
    Check, Decision, DepResult, Dependency, Incremental, OnFail, Phase, PhaseContext, PhasePolicy, Pipeline,
    PipelineAction, PipelineState, Recorded, RetryBackoff, RunOptions, Status, Verdict,
};
use parking_lot::Mutex;

/// A fake: phases named in `fresh` are up to date with a recorded result and lines; the others
/// run. Every check's dependencies and every record are remembered.
#[derive(Default)]
struct Fake {
    fresh: HashMap<String, Verdict>,
    always: Vec<String>,
    fail_record: Vec<String>,
    checks: Mutex<Vec<(String, Vec<String>)>>,
    records: Mutex<Vec<RecordCall>>,
}

/// One call of `record`: phase, key, result, lines.
type RecordCall = (String, Arc<str>, serde_json::Value, Vec<(Stream, String)>);

impl Incremental for Fake {
    fn is_incremental(&self, phase: &str) -> bool {
        !self.always.iter().any(|p| p == phase)
    }

    fn check(&self, phase: &str, deps: &[Dependency<'_>]) -> Result<Check, String> {
        let described = deps
            .iter()
            .map(|d| {
                let result = match d.result {
                    DepResult::Completed(v) => v.to_string(),
                    DepResult::Skipped => "skipped".into(),
                    DepResult::Unknown => "unknown".into(),
                };
                format!("{}:{}:{result}", d.name, d.key.unwrap_or("-"))
            })
            .collect();
        self.checks.lock().push((phase.to_owned(), described));
        let key: Arc<str> = format!("key-{phase}").into();
        Ok(match self.fresh.get(phase) {
            Some(&verdict) => Check::Fresh(
                Decision {
                    key,
                    verdict,
                    reason: "up to date".into(),
                },
                Recorded {
                    result: serde_json::json!({ "from": phase }),
                    logs: vec![(Stream::Stdout, format!("{phase} said this before"))],
                },
            ),
            None => Check::Run(Decision {
                key,
                verdict: Verdict::Run,
                reason: "never ran".into(),
            }),
        })
    }

    fn record(
        &self,
        phase: &str,
        decision: &Decision,
        result: &serde_json::Value,
        logs: &[(Stream, String)],
    ) -> Result<(), String> {
        if self.fail_record.iter().any(|p| p == phase) {
            return Err("declared output out/x was not written".into());
        }
        self.records
            .lock()
            .push((phase.to_owned(), decision.key.clone(), result.clone(), logs.to_vec()));
        Ok(())
    }
}

async fn run(p: Pipeline) -> (Arc<PipelineState>, Vec<PipelineAction>) {
    let p = p.capture_output(true);
    let store = p.store().unwrap();
    let actions = Arc::new(Mutex::new(Vec::new()));
    let sink = actions.clone();
    let _sub = store.subscribe(move |a: &PipelineAction, _s: &Arc<PipelineState>| sink.lock().push(a.clone()));
    p.run_with(&store, RunOptions::default()).await.unwrap();
    let actions = actions.lock().clone();
    (store.get_state(), actions)
}

fn types_of(actions: &[PipelineAction], phase: &str) -> Vec<String> {
    actions
        .iter()
        .filter(|a| a.phase() == Some(phase))
        .map(|a| a.type_name().to_owned())
        .collect()
}

#[tokio::test]
async fn a_fresh_phase_completes_with_its_recorded_result_and_lines_without_running() {
    let ran = Arc::new(AtomicU32::new(0));
    let counter = ran.clone();
    let fake = Arc::new(Fake {
        fresh: [("gen".to_owned(), Verdict::Restored)].into(),
        ..Fake::default()
    });
    let seen = Arc::new(Mutex::new(None));
    let seen_in = seen.clone();
    let p = Pipeline::new(
        "inc",
        [
            Phase::new("gen", move |_: &PhaseContext| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(())
            }),
            Phase::new("use", move |cx: &PhaseContext| {
                *seen_in.lock() = Some(cx.inputs_json());
                writeln!(cx.stdout(), "used").map_err(|e| e.to_string())?;
                Ok::<_, String>(7)
            })
            .depends_on(["gen"]),
        ],
    )
    .unwrap()
    .incremental(fake.clone());
    let (state, actions) = run(p).await;
    assert_eq!(ran.load(Ordering::SeqCst), 0, "an up-to-date phase must not run");
    assert_eq!(
        types_of(&actions, "gen"),
        ["@@PHASE_DECISION", "@@PHASE_LOG", "@@PHASE_COMPLETE"]
    );
    assert_eq!(
        types_of(&actions, "use"),
        ["@@PHASE_DECISION", "@@PHASE_START", "@@PHASE_LOG", "@@PHASE_COMPLETE"]
    );
    let gen_state = state.phase("gen").unwrap();
    assert_eq!(gen_state.status, Status::Completed);
    assert_eq!(gen_state.fresh(), Some(Verdict::Restored));
    assert_eq!(
        gen_state.logs.iter().next().unwrap().line.as_ref(),
        "gen said this before"
    );
    assert_eq!(state.phase("use").unwrap().fresh(), None);
    assert_eq!(
        state.phase("use").unwrap().decision.as_ref().unwrap().reason.as_ref(),
        "never ran"
    );
    // The dependent got the recorded result as its input, and the dependency's key.
    assert_eq!(*seen.lock(), Some(serde_json::json!({ "gen": { "from": "gen" } })));
    assert_eq!(
        fake.checks.lock().clone(),
        [
            ("gen".to_owned(), vec![]),
            ("use".to_owned(), vec![r#"gen:key-gen:{"from":"gen"}"#.to_owned()])
        ]
    );
    // Only the phase that ran is recorded, with its result and its lines.
    let records = fake.records.lock().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, "use");
    assert_eq!(records[0].1.as_ref(), "key-use");
    assert_eq!(records[0].2, serde_json::json!(7));
    assert_eq!(records[0].3, [(Stream::Stdout, "used".to_owned())]);

    // Replaying the actions through the pure reducer gives the same decisions.
    let reducer = state_reducer();
    let mut replayed = None;
    for a in &actions {
        replayed = Some(reducer.apply(replayed.as_ref(), a));
    }
    let replayed = replayed.unwrap();
    assert_eq!(replayed.phase("gen").unwrap().decision, gen_state.decision);
    assert_eq!(replayed.phase("gen").unwrap().fresh(), Some(Verdict::Restored));
}

fn state_reducer() -> milo::pipeline::PipelineReducer {
    let noop = |_: &PhaseContext| Ok::<_, String>(());
    Pipeline::new(
        "inc",
        [Phase::new("gen", noop), Phase::new("use", noop).depends_on(["gen"])],
    )
    .unwrap()
    .build_reducer()
}

#[tokio::test]
async fn a_failed_record_fails_the_attempt_and_retries_run_under_the_same_decision() {
    let fake = Arc::new(Fake {
        fail_record: vec!["out".into()],
        ..Fake::default()
    });
    let policy = PhasePolicy {
        on_fail: OnFail::Retry,
        max_retries: 1,
        retry_delay: std::time::Duration::ZERO,
        retry_backoff: RetryBackoff::Fixed,
    };
    let p = Pipeline::new(
        "inc",
        [Phase::new("out", |_: &PhaseContext| Ok::<_, String>(())).policy(policy)],
    )
    .unwrap()
    .incremental(fake.clone());
    let (state, actions) = run(p).await;
    let out = state.phase("out").unwrap();
    assert_eq!(out.status, Status::Failed);
    assert!(
        out.error.as_deref().unwrap().contains("out/x was not written"),
        "{:?}",
        out.error
    );
    // One check, one decision, two attempts.
    assert_eq!(fake.checks.lock().len(), 1);
    assert_eq!(
        types_of(&actions, "out"),
        [
            "@@PHASE_DECISION",
            "@@PHASE_START",
            "@@PHASE_RETRY",
            "@@PHASE_START",
            "@@PHASE_FAILED"
        ]
    );
}

#[tokio::test]
async fn phases_that_are_not_incremental_are_neither_checked_nor_recorded() {
    let fake = Arc::new(Fake {
        always: vec!["plain".into()],
        ..Fake::default()
    });
    let p = Pipeline::new(
        "inc",
        [
            Phase::new("plain", |_: &PhaseContext| Ok::<_, String>(1)),
            Phase::new("skipper", |_: &PhaseContext| Err::<(), _>("no".to_owned())).policy(PhasePolicy {
                on_fail: OnFail::Skip,
                ..PhasePolicy::default()
            }),
            Phase::new("after", |_: &PhaseContext| Ok::<_, String>(())).depends_on(["plain", "skipper"]),
        ],
    )
    .unwrap()
    .incremental(fake.clone());
    let (state, actions) = run(p).await;
    assert_eq!(state.status, Status::Completed);
    assert_eq!(types_of(&actions, "plain"), ["@@PHASE_START", "@@PHASE_COMPLETE"]);
    assert!(state.phase("plain").unwrap().decision.is_none());
    let checks = fake.checks.lock().clone();
    let after = checks.iter().find(|(p, _)| p == "after").unwrap();
    // A non-incremental dependency has no key; a skipped one counts as skipped.
    assert_eq!(after.1, ["plain:-:1", "skipper:key-skipper:skipped"]);
    assert!(fake.records.lock().iter().all(|r| r.0 != "plain"));
}

#[tokio::test]
async fn recorded_lines_are_masked_once_when_recorded() {
    let fake = Arc::new(Fake::default());
    let p = Pipeline::new(
        "inc",
        [Phase::new("talk", |cx: &PhaseContext| {
            writeln!(cx.stdout(), "token s3cr3t-value").map_err(|e| e.to_string())
        })],
    )
    .unwrap()
    .with_secrets(["s3cr3t-value"])
    .incremental(fake.clone());
    let (state, _) = run(p).await;
    assert_eq!(state.phase("talk").unwrap().status, Status::Completed);
    let records = fake.records.lock().clone();
    assert_eq!(records[0].3, [(Stream::Stdout, "token ***".to_owned())]);
}
