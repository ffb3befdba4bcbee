//! Benchmarks of the core engine: Store dispatch and the saga runtime.
//!
//! Run with `cargo bench -p milo --bench core -- --warm-up-time 1 --measurement-time 3`.
//! See BENCHMARKS.md for the figures and the Python original's.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use milo::{DynAction, ReducerResult, SagaError, Store};

/// A reducer that changes nothing (and says so without copying the state's pointer).
fn noop_reducer(state: Option<&Arc<u64>>, _action: &DynAction) -> ReducerResult<u64, DynAction> {
    match state {
        Some(_) => ReducerResult::unchanged(),
        None => ReducerResult::from(0),
    }
}

/// A counter: `add` adds its payload; anything else is a no-op.
fn counter(state: Option<&Arc<i64>>, action: &DynAction) -> Arc<i64> {
    match (state, &*action.kind) {
        (Some(s), "add") => Arc::new(**s + action.payload.as_i64().unwrap_or(0)),
        (Some(s), _) => s.clone(),
        (None, _) => Arc::new(0),
    }
}

fn add(n: i64) -> DynAction {
    DynAction::with_payload("add", n.into())
}

fn dispatch(c: &mut Criterion) {
    let store: Store<u64, DynAction> = Store::new(noop_reducer, None).expect("store");
    c.bench_function("dispatch/noop", |b| {
        b.iter(|| store.dispatch(black_box(DynAction::new("noop"))));
    });

    let mut group = c.benchmark_group("dispatch/subscribers");
    for n in [0_usize, 1, 10, 100] {
        let store: Store<u64, DynAction> = Store::new(noop_reducer, None).expect("store");
        let subs: Vec<_> = (0..n)
            .map(|_| {
                store.subscribe(|a: &DynAction, s: &Arc<u64>| {
                    black_box((a, s));
                })
            })
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| store.dispatch(black_box(DynAction::new("noop"))));
        });
        drop(subs);
    }
    group.finish();
}

fn runtimes() -> [(&'static str, tokio::runtime::Runtime); 2] {
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    [("current_thread", current), ("multi_thread", multi)]
}

fn sagas(c: &mut Criterion) {
    for (flavor, rt) in runtimes() {
        let store: Store<i64, DynAction> = rt.block_on(async { Store::new(counter, None) }).expect("store");

        c.bench_function(&format!("saga/call_put/{flavor}"), |b| {
            b.to_async(&rt).iter(|| async {
                store
                    .run_saga("call-put", |cx| async move {
                        let n = cx.call("fetch", async { Ok::<_, SagaError>(1) }).await?;
                        cx.put(add(n))
                    })
                    .await
                    .expect("saga")
            });
        });

        c.bench_function(&format!("saga/fork_1_plus_4/{flavor}"), |b| {
            b.to_async(&rt).iter(|| async {
                store
                    .run_saga("parent", |cx| async move {
                        for _ in 0..4 {
                            let _child = cx.fork("child", |cx| async move { cx.put(add(1)) }).await;
                        }
                        Ok(())
                    })
                    .await
                    .expect("saga")
            });
        });
    }
}

/// The floor under a dispatch: the atomic read-modify-writes it cannot avoid (lock + unlock
/// of the store's mutex, and the reducer's `Arc` clone + the store dropping it).
fn floor(c: &mut Criterion) {
    let lock = parking_lot::Mutex::new(0_u64);
    c.bench_function("floor/mutex_lock_unlock", |b| {
        b.iter(|| *black_box(&lock).lock() += 1);
    });
    let arc = Arc::new(0_u64);
    c.bench_function("floor/arc_clone_drop", |b| {
        b.iter(|| drop(black_box(Arc::clone(black_box(&arc)))));
    });
}

criterion_group!(benches, dispatch, sagas, floor);
criterion_main!(benches);
