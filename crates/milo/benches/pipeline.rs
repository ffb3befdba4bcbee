//! Benchmarks of the pipeline engine: whole runs of no-op pipelines, reducer `@@PHASE_LOG`
//! dispatch, and validation of a very long chain.
//!
//! Run with `cargo bench -p milo --bench pipeline -- --warm-up-time 1 --measurement-time 3`.
//! See BENCHMARKS.md ("Pipeline engine") for the figures and the Python original's.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use milo::Store;
use milo::capture::Stream;
use milo::pipeline::{Phase, PhaseContext, Pipeline, PipelineAction, PipelineState, Status};

fn noop(name: String) -> Phase {
    Phase::new_async(name, |_cx: PhaseContext| async { Ok::<_, String>(()) })
}

/// `p0 → p1 → … → p(n-1)`, each phase non-parallel (the default).
fn chain(n: usize) -> Pipeline {
    let phases = (0..n).map(|i| {
        let p = noop(format!("p{i}"));
        if i == 0 {
            p
        } else {
            p.depends_on([format!("p{}", i - 1)])
        }
    });
    Pipeline::new("chain", phases).expect("valid chain")
}

/// One root and `n - 1` parallel phases depending on it.
fn fan_out(n: usize) -> Pipeline {
    let phases = (0..n).map(|i| {
        if i == 0 {
            noop("root".into())
        } else {
            noop(format!("p{i}")).depends_on(["root"]).parallel(true)
        }
    });
    Pipeline::new("fan-out", phases).expect("valid fan-out")
}

/// Layers of 10 parallel phases, each depending on the whole previous layer.
fn lattice(n: usize) -> Pipeline {
    const WIDTH: usize = 10;
    let phases = (0..n).map(|i| {
        let (layer, col) = (i / WIDTH, i % WIDTH);
        let p = noop(format!("l{layer}c{col}")).parallel(true);
        if layer == 0 {
            p
        } else {
            p.depends_on((0..WIDTH).map(|c| format!("l{}c{c}", layer - 1)))
        }
    });
    Pipeline::new("lattice", phases).expect("valid lattice")
}

fn runs(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    type Shape = (&'static str, fn(usize) -> Pipeline);
    let shapes: [Shape; 3] = [("chain", chain), ("fan_out", fan_out), ("lattice", lattice)];
    for (shape, build) in shapes {
        let mut group = c.benchmark_group(format!("run/{shape}"));
        for n in [1_000_usize, 5_000, 10_000, 100_000] {
            if n >= 10_000 {
                group.sample_size(10);
            }
            let pipeline = build(n);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    let out = rt.block_on(pipeline.run()).expect("run");
                    assert_eq!(out.state.status, Status::Completed);
                    black_box(out)
                });
            });
        }
        group.finish();
    }
}

fn log_dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("reducer/phase_log");
    group.throughput(Throughput::Elements(1));
    for n in [10_usize, 1_000, 100_000] {
        let pipeline = chain(n);
        let store: Store<PipelineState, PipelineAction> = pipeline.store().expect("store");
        // Log into a phase in the middle, past the 200-line ring, so every dispatch also
        // drops the oldest line.
        let name: Arc<str> = format!("p{}", n / 2).into();
        let line: Arc<str> = "compiling module foo::bar (42 of 100)".into();
        // The phase is running, as it is whenever it logs.
        store
            .dispatch(PipelineAction::PhaseStart {
                name: name.clone(),
                attempt: 1,
                timestamp: 0.0,
            })
            .expect("dispatch");
        for _ in 0..300 {
            store.dispatch(log(&name, &line)).expect("dispatch");
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| store.dispatch(black_box(log(&name, &line))));
        });
        assert_eq!(store.get_state().phase(&name).expect("phase").logs.len(), 200);
    }
    group.finish();
}

fn log(name: &Arc<str>, line: &Arc<str>) -> PipelineAction {
    PipelineAction::PhaseLog {
        name: name.clone(),
        line: line.clone(),
        stream: Stream::Stdout,
        timestamp: 1.0,
    }
}

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    let n = 1_000_000;
    group.bench_function("chain/1000000", |b| {
        b.iter_batched(
            || {
                (0..n)
                    .map(|i| {
                        let p = Phase::new(format!("p{i}"), |_: &PhaseContext| Ok::<_, String>(()));
                        if i == 0 {
                            p
                        } else {
                            p.depends_on([format!("p{}", i - 1)])
                        }
                    })
                    .collect::<Vec<_>>()
            },
            |phases| {
                let p = Pipeline::new("chain", phases).expect("valid");
                let order = black_box(p.execution_order());
                (p, order)
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = runs, log_dispatch, validation
}
criterion_main!(benches);
