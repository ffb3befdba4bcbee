//! Does recording slow a run down? A phase printing 1,000,000 lines: the same
//! `@@PHASE_LOG` actions dispatched into a pipeline store without and with the history
//! recorder's listener, the latter including [`Recorder::finish`] (everything written and
//! committed). The lines are made before the clock starts, so the baseline is the store's
//! dispatch alone, the strictest comparison.
//!
//! ```text
//! cargo bench -p milo-history --bench history
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use milo::capture::Stream;
use milo::pipeline::{Phase, Pipeline, PipelineAction, PipelineState, Status};
use milo::store::Store;
use milo_history::{History, RecordOptions};

const LINES: usize = 1_000_000;

fn pipeline() -> Pipeline {
    Pipeline::new("bench", [Phase::new("spam", |_| Ok::<_, String>(()))])
        .expect("valid pipeline")
        .capture_output(true)
}

fn lines() -> Vec<Arc<str>> {
    (0..LINES)
        .map(|i| {
            Arc::from(format!(
                "compiling unit {i:>7}: ok, 0 warnings, output written to target/obj/{i}.o"
            ))
        })
        .collect()
}

/// The actions of a run of one phase printing `lines`, dispatched into `store`.
fn run(store: &Store<PipelineState, PipelineAction>, lines: &[Arc<str>]) {
    let name: Arc<str> = Arc::from("spam");
    let put = |a| store.dispatch(a).expect("dispatch");
    put(PipelineAction::PipelineStart {
        started_at: None,
        name: Arc::from("bench"),
        timestamp: 0.0,
    });
    put(PipelineAction::PhaseStart {
        name: name.clone(),
        attempt: 1,
        timestamp: 0.0,
    });
    for (i, line) in lines.iter().enumerate() {
        put(PipelineAction::PhaseLog {
            name: name.clone(),
            line: line.clone(),
            stream: Stream::Stdout,
            timestamp: i as f64 * 1e-6,
        });
    }
    put(PipelineAction::PhaseComplete {
        name: name.clone(),
        result: Arc::new(serde_json::Value::Null),
        timestamp: 1.0,
        reused_from: None,
    });
    put(PipelineAction::PipelineComplete { timestamp: 1.0 });
}

fn phase_log_1m(c: &mut Criterion) {
    let p = pipeline();
    let lines = lines();
    let mut group = c.benchmark_group("history/phase_log_1m");
    group.sample_size(10).measurement_time(Duration::from_secs(40));
    group.bench_function("without_recorder", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store = p.store().expect("store");
                let t = Instant::now();
                run(&store, &lines);
                total += t.elapsed();
            }
            total
        })
    });
    group.bench_function("with_recorder", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let history = History::open(&dir.path().join("history.db")).expect("open");
                let store = p.store().expect("store");
                let t = Instant::now();
                let recorder = history.recorder(&p, RecordOptions::default()).expect("recorder");
                let sub = recorder.subscribe(&store);
                run(&store, &lines);
                drop(sub);
                recorder.finish(Status::Completed, 0).expect("finish");
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, phase_log_1m);
criterion_main!(benches);
