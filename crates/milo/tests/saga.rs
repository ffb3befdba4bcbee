//! Integration tests for the saga runtime (live, on tokio) and the test interpreter.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use milo::action::{SAGA_CANCELLED, SAGA_ERROR};
use milo::saga::testing::SagaTest;
use milo::saga::{Backoff, Effect, RetryPolicy, when};
use milo::{DynAction, Saga, SagaError, SagaHandle, Store, Subscription};
use tokio::time::Instant;

/// Generous bound for "this must finish" waits; never reached when things work.
const HANG: Duration = Duration::from_secs(10);
/// Longer than any test waits, so a saga delaying this long is effectively blocked forever.
const FOREVER: Duration = Duration::from_secs(3600);

fn act(kind: &'static str) -> DynAction {
    DynAction::new(kind)
}

fn add(n: i64) -> DynAction {
    DynAction::with_payload("add", n.into())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A counter store plus a log of every action it applied.
struct Harness {
    store: Store<i64, DynAction>,
    log: Arc<Mutex<Vec<DynAction>>>,
    _sub: Subscription,
}

impl Harness {
    fn new() -> Self {
        let reducer = |state: Option<&Arc<i64>>, action: &DynAction| -> i64 {
            let n = state.map_or(0, |s| **s);
            match &*action.kind {
                "add" => n + action.payload.as_i64().unwrap(),
                _ => n,
            }
        };
        let store = Store::new(reducer, None).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let _sub = store.subscribe(move |a: &DynAction, _: &Arc<i64>| l.lock().unwrap().push(a.clone()));
        Self { store, log, _sub }
    }

    fn state(&self) -> i64 {
        *self.store.get_state()
    }

    fn kinds(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().map(|a| a.kind.to_string()).collect()
    }

    /// Labels of the sagas reported as cancelled, sorted.
    fn cancelled(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.kind == SAGA_CANCELLED)
            .map(|a| a.payload["saga"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    }

    /// (label, message) of every `@@SAGA_ERROR`.
    fn errors(&self) -> Vec<(String, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.kind == SAGA_ERROR)
            .map(|a| {
                (
                    a.payload["saga"].as_str().unwrap().to_owned(),
                    a.payload["error"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// Awaits a saga in a real-time test, failing the test if it hangs.
async fn finish<T>(h: SagaHandle<T>) -> milo::SagaResult<T> {
    tokio::time::timeout(HANG, h).await.expect("saga did not finish")
}

/// Awaits a saga in a paused-time test: virtual time auto-advances, so a saga that can never
/// finish hits this (virtual) limit at once instead of hanging.
async fn finish_v<T>(h: SagaHandle<T>) -> milo::SagaResult<T> {
    tokio::time::timeout(FOREVER * 1000, h)
        .await
        .expect("saga did not finish")
}

/// Waits (in virtual or real time) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + HANG;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// ---------------------------------------------------------------------------------------
// put, select, call, try_call, call_blocking
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn put_dispatches_and_select_reads_the_new_state() {
    let h = Harness::new();
    let got = finish(h.store.run_saga("putter", |cx| async move {
        cx.put(add(2))?;
        let after_one = cx.select(|s| *s);
        cx.put(add(3))?;
        Ok((after_one, cx.select(|s| *s)))
    }))
    .await;
    assert_eq!(got, Ok((2, 5)));
    assert_eq!(h.state(), 5);
    assert_eq!(h.kinds(), ["add", "add"]);
}

#[tokio::test]
async fn putter_dispatches_from_other_threads() {
    let h = Harness::new();
    finish(h.store.run_saga("writer", |cx| async move {
        let put = cx.putter();
        std::thread::spawn(move || {
            for _ in 0..10 {
                put(add(1));
            }
        })
        .join()
        .unwrap();
        Ok(())
    }))
    .await
    .unwrap();
    assert_eq!(h.state(), 10);
}

#[tokio::test]
async fn call_returns_the_value_or_the_error() {
    let h = Harness::new();
    let got = finish(h.store.run_saga("caller", |cx| async move {
        let v = cx.call("double", async { Ok::<_, SagaError>(21 * 2) }).await?;
        cx.put(add(v))?;
        Ok(v)
    }))
    .await;
    assert_eq!(got, Ok(42));
    assert_eq!(h.state(), 42);

    let got = finish(h.store.run_saga("failing", |cx| async move {
        cx.call("fetch", async {
            Err::<i64, _>(std::io::Error::other("connection refused"))
        })
        .await?;
        cx.put(add(1000))?; // never reached
        Ok(())
    }))
    .await;
    assert_eq!(got, Err(SagaError::Failed("connection refused".into())));
    assert_eq!(h.state(), 42);
    assert_eq!(h.errors(), [("failing".to_owned(), "connection refused".to_owned())]);
}

#[tokio::test]
async fn try_call_turns_a_panic_into_an_error_and_the_saga_goes_on() {
    let h = Harness::new();
    let got = finish(h.store.run_saga("careful", |cx| async move {
        let r: milo::SagaResult<i64> = cx
            .try_call("explode", async {
                panic!("kaboom");
                #[allow(unreachable_code)]
                Ok::<i64, SagaError>(1)
            })
            .await;
        cx.put(add(1))?;
        let ok = cx.try_call("fine", async { Ok::<_, SagaError>(5) }).await?;
        Ok((r, ok))
    }))
    .await;
    assert_eq!(got, Ok((Err(SagaError::Panicked("kaboom".into())), 5)));
    assert_eq!(h.state(), 1);
    assert!(h.errors().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_blocking_runs_off_the_runtime_and_propagates_values_errors_and_panics() {
    let h = Harness::new();
    let got = finish(h.store.run_saga("blocking", |cx| async move {
        let caller = std::thread::current().id();
        let (ran_on, v) = cx
            .call_blocking("sync-work", || {
                std::thread::sleep(Duration::from_millis(5));
                Ok::<_, SagaError>((std::thread::current().id(), 7))
            })
            .await?;
        let err = cx.call_blocking("sync-fail", || Err::<(), _>("disk full")).await;
        Ok((caller != ran_on, v, err))
    }))
    .await;
    let (elsewhere, v, err) = got.unwrap();
    assert!(
        elsewhere,
        "call_blocking must run on the blocking pool, not the saga's thread"
    );
    assert_eq!(v, 7);
    assert_eq!(err, Err(SagaError::Failed("disk full".into())));

    let got = finish(h.store.run_saga("blocking-panic", |cx| async move {
        cx.call_blocking("explode", || -> Result<(), SagaError> { panic!("sync kaboom") })
            .await
    }))
    .await;
    assert_eq!(got, Err(SagaError::Panicked("sync kaboom".into())));
    assert_eq!(
        h.errors(),
        [("blocking-panic".to_owned(), "panicked: sync kaboom".to_owned())]
    );
}

// ---------------------------------------------------------------------------------------
// errors and panics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn errors_and_panics_in_sagas_are_reported_and_do_not_crash_the_runtime() {
    let h = Harness::new();
    let err = finish(
        h.store
            .run_saga("erring", |_cx| async { Err::<(), _>(SagaError::msg("bad input")) }),
    )
    .await;
    assert_eq!(err, Err(SagaError::Failed("bad input".into())));

    let panicked = finish(h.store.run_saga("panicking", |cx| async move {
        cx.put(add(1))?;
        if cx.label() == "panicking" {
            panic!("saga exploded");
        }
        Ok(())
    }))
    .await;
    assert_eq!(panicked, Err(SagaError::Panicked("saga exploded".into())));

    assert_eq!(
        h.errors(),
        [
            ("erring".to_owned(), "bad input".to_owned()),
            ("panicking".to_owned(), "panicked: saga exploded".to_owned())
        ]
    );
    // The runtime and the store are still fine.
    finish(h.store.run_saga("after", |cx| async move { cx.put(add(1)) }))
        .await
        .unwrap();
    assert_eq!(h.state(), 2);
    assert_eq!(h.kinds(), [SAGA_ERROR, "add", SAGA_ERROR, "add"]);
}

#[tokio::test]
async fn a_failing_put_fails_the_saga() {
    let reducer = |state: Option<&Arc<i64>>, action: &DynAction| -> i64 {
        assert_ne!(action.kind, "poison", "poisoned");
        state.map_or(0, |s| **s)
    };
    let store: Store<i64, DynAction> = Store::new(reducer, None).unwrap();
    let got = finish(store.run_saga("poisoner", |cx| async move { cx.put(act("poison")) })).await;
    assert!(
        matches!(
            got,
            Err(SagaError::Dispatch(milo::DispatchError::ReducerPanicked { .. }))
        ),
        "{got:?}"
    );
}

// ---------------------------------------------------------------------------------------
// take, delay, timeout
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn take_waits_for_the_next_matching_action() {
    let h = Harness::new();
    let handle = h.store.run_saga("taker", |cx| async move {
        let a = cx.take(when("go", |a: &DynAction| a.kind == "go")).await?;
        cx.put(add(1))?;
        Ok(a)
    });
    // The saga registers its take when it first runs; keep dispatching (a non-matching
    // action, then a matching one) until it has taken one.
    let mut i = 0;
    while !handle.is_finished() && i < 10_000 {
        h.store.dispatch(act("other")).unwrap();
        h.store.dispatch(DynAction::with_payload("go", i.into())).unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = finish(handle).await.unwrap();
    assert_eq!(got.kind, "go");
    assert_eq!(h.state(), 1, "take must match exactly one action");
}

#[tokio::test(start_paused = true)]
async fn take_by_type_name_and_take_timeout() {
    let h = Harness::new();
    let start = Instant::now();
    let handle = h.store.run_saga("taker", |cx| async move {
        let none = cx.take_timeout("never", secs(5)).await?;
        let some = cx.take_timeout("go", secs(5)).await?;
        let plain = cx.take(String::from("go")).await?;
        Ok((none, some, plain))
    });
    // Let the first take time out (virtual time), then answer the next two.
    tokio::time::sleep(secs(6)).await;
    h.store.dispatch(act("never-mind")).unwrap();
    h.store.dispatch(DynAction::with_payload("go", 1.into())).unwrap();
    // Give the saga (virtual) time to register its third take.
    tokio::time::sleep(secs(1)).await;
    h.store.dispatch(DynAction::with_payload("go", 2.into())).unwrap();
    let (none, some, plain) = finish_v(handle).await.unwrap();
    assert_eq!(none, None);
    assert_eq!(some, Some(DynAction::with_payload("go", 1.into())));
    assert_eq!(plain, DynAction::with_payload("go", 2.into()));
    assert!(start.elapsed() >= secs(5));
}

#[tokio::test(start_paused = true)]
async fn delay_waits_in_tokio_time() {
    let h = Harness::new();
    let start = Instant::now();
    finish_v(h.store.run_saga("sleeper", |cx| async move {
        cx.delay(secs(30)).await;
        cx.put(add(1))
    }))
    .await
    .unwrap();
    assert!(start.elapsed() >= secs(30));
    assert_eq!(h.state(), 1);
}

#[tokio::test(start_paused = true)]
async fn timeout_returns_the_value_or_times_out_and_drops_the_work() {
    let h = Harness::new();
    let got = finish_v(h.store.run_saga("bounded", |cx| async move {
        let fast = cx.timeout(secs(2), async { Ok(1) }).await;
        let slow = cx
            .timeout(secs(2), async {
                tokio::time::sleep(secs(10)).await;
                cx.put(add(100))?;
                Ok(2)
            })
            .await;
        Ok((fast, slow))
    }))
    .await;
    let (fast, slow) = got.unwrap();
    assert_eq!(fast, Ok(1));
    assert_eq!(slow, Err(SagaError::Timeout(secs(2))));
    assert_eq!(slow.unwrap_err().to_string(), "timed out after 2s");
    tokio::time::sleep(secs(20)).await;
    assert_eq!(h.state(), 0, "the timed-out work must have been dropped");
}

// ---------------------------------------------------------------------------------------
// fork, spawn, cancellation trees
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_saga_waits_for_its_attached_forks() {
    let h = Harness::new();
    let start = Instant::now();
    let got = finish_v(h.store.run_saga("parent", |cx| async move {
        let child = cx
            .fork("child", |cx| async move {
                cx.delay(secs(3)).await;
                cx.put(add(1))?;
                Ok(10)
            })
            .await;
        drop(child); // dropping the handle does not cancel or detach the child
        Ok(1)
    }))
    .await;
    assert_eq!(got, Ok(1));
    assert_eq!(h.state(), 1, "the parent's handle completes only after its fork");
    assert!(start.elapsed() >= secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_fork_handle_returns_the_childs_value() {
    let h = Harness::new();
    let got = finish_v(h.store.run_saga("parent", |cx| async move {
        let a = cx.fork("a", |_| async { Ok("A") }).await;
        let b = cx.fork("b", |cx| async move {
            cx.delay(secs(1)).await;
            Ok("B")
        });
        let b = b.await;
        Ok((a.await?, b.await?))
    }))
    .await;
    assert_eq!(got, Ok(("A", "B")));
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_saga_cancels_its_forks_transitively_but_not_spawns() {
    let h = Harness::new();
    let detached: Arc<Mutex<Option<SagaHandle<i64>>>> = Arc::new(Mutex::new(None));
    let slot = detached.clone();
    let parent = h.store.run_saga("parent", move |cx| async move {
        let _child = cx
            .fork("child", |cx| async move {
                let _grandchild = cx
                    .fork("grandchild", |cx| async move {
                        cx.delay(FOREVER).await;
                        cx.put(add(1000))
                    })
                    .await;
                cx.delay(FOREVER).await;
                cx.put(add(1000))
            })
            .await;
        let spawned = cx
            .spawn("detached", |cx| async move {
                cx.take("finish").await?;
                cx.put(add(1))?;
                Ok(7)
            })
            .await;
        *slot.lock().unwrap() = Some(spawned);
        cx.delay(FOREVER).await;
        cx.put(add(1000))
    });
    until("the tree to start", || detached.lock().unwrap().is_some()).await;
    tokio::time::sleep(secs(1)).await;

    parent.cancel();
    assert_eq!(finish_v(parent).await, Err(SagaError::Cancelled));
    // When the parent's handle completes, the whole attached tree has stopped and reported.
    assert_eq!(h.cancelled(), ["child", "grandchild", "parent"]);
    assert!(h.errors().is_empty());

    // The detached saga lives on.
    let spawned = detached.lock().unwrap().take().unwrap();
    assert!(!spawned.token().is_cancelled());
    assert!(!spawned.is_finished());
    h.store.dispatch(act("finish")).unwrap();
    assert_eq!(finish_v(spawned).await, Ok(7));
    assert_eq!(h.state(), 1);
    assert_eq!(h.cancelled(), ["child", "grandchild", "parent"]);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_fork_leaves_its_parent_running() {
    let h = Harness::new();
    let got = finish_v(h.store.run_saga("parent", |cx| async move {
        let child = cx
            .fork("child", |cx| async move {
                cx.delay(FOREVER).await;
                Ok(())
            })
            .await;
        cx.delay(secs(1)).await;
        child.cancel();
        let child_result = child.await;
        assert!(!cx.cancellation().is_cancelled());
        cx.put(add(1))?;
        Ok(child_result)
    }))
    .await;
    assert_eq!(got, Ok(Err(SagaError::Cancelled)));
    assert_eq!(h.state(), 1);
    assert_eq!(h.cancelled(), ["child"]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_parent_cancels_its_forks() {
    let h = Harness::new();
    let got = finish_v(h.store.run_saga("parent", |cx| async move {
        let _child = cx
            .fork("child", |cx| async move {
                cx.delay(FOREVER).await;
                cx.put(add(1))
            })
            .await;
        cx.delay(secs(1)).await;
        Err::<(), _>(SagaError::msg("parent failed"))
    }))
    .await;
    assert_eq!(got, Err(SagaError::Failed("parent failed".into())));
    assert_eq!(h.cancelled(), ["child"]);
    assert_eq!(h.errors(), [("parent".to_owned(), "parent failed".to_owned())]);
    assert_eq!(h.state(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_saga_cancelled_while_waiting_for_a_take_reports_it() {
    let h = Harness::new();
    let handle = h.store.run_saga("waiting", |cx| async move {
        cx.take("never").await?;
        Ok(())
    });
    tokio::time::sleep(secs(1)).await;
    handle.cancel();
    assert_eq!(finish_v(handle).await, Err(SagaError::Cancelled));
    assert_eq!(h.kinds(), [SAGA_CANCELLED]);
    assert_eq!(h.cancelled(), ["waiting"]);
}

// ---------------------------------------------------------------------------------------
// all, race
// ---------------------------------------------------------------------------------------

fn sleeper(label: &'static str, wait: u64, value: u32) -> Saga<i64, DynAction, u32> {
    Saga::new(label, move |cx| async move {
        cx.delay(secs(wait)).await;
        Ok(value)
    })
}

#[tokio::test(start_paused = true)]
async fn all_returns_results_in_input_order() {
    let h = Harness::new();
    let start = Instant::now();
    let got = finish_v(h.store.run_saga("parent", |cx| async move {
        cx.all(vec![sleeper("slow", 3, 1), sleeper("mid", 2, 2), sleeper("fast", 1, 3)])
            .await
    }))
    .await;
    assert_eq!(got, Ok(vec![1, 2, 3]));
    // They ran concurrently: 3 s, not 6 s.
    let took = start.elapsed();
    assert!(took >= secs(3) && took < secs(6), "{took:?}");
    assert!(h.cancelled().is_empty());
}

#[tokio::test(start_paused = true)]
async fn all_of_nothing_is_empty() {
    let h = Harness::new();
    let got = finish_v(h.store.run_saga(
        "parent",
        |cx| async move { cx.all(Vec::<Saga<_, _, u32>>::new()).await },
    ))
    .await;
    assert_eq!(got, Ok(vec![]));
}

#[tokio::test(start_paused = true)]
async fn all_cancels_the_others_on_the_first_error() {
    let h = Harness::new();
    let start = Instant::now();
    let failing = Saga::new("failing", |cx: milo::Cx<i64, DynAction>| async move {
        cx.delay(secs(1)).await;
        Err::<u32, _>(SagaError::msg("one failed"))
    });
    let slow = |label: &'static str| {
        Saga::new(label, |cx: milo::Cx<i64, DynAction>| async move {
            cx.delay(FOREVER).await;
            cx.put(add(1))?;
            Ok(0_u32)
        })
    };
    let log = h.log.clone();
    let got = finish_v(h.store.run_saga("parent", move |cx| async move {
        let r = cx.all(vec![slow("slow-a"), failing, slow("slow-b")]).await;
        // When `all` returns, the others have already stopped and reported.
        let cancelled = log.lock().unwrap().iter().filter(|a| a.kind == SAGA_CANCELLED).count();
        Ok((r, cancelled))
    }))
    .await;
    assert_eq!(got, Ok((Err(SagaError::Failed("one failed".into())), 2)));
    assert!(start.elapsed() < FOREVER);
    assert_eq!(h.cancelled(), ["slow-a", "slow-b"]);
    assert_eq!(h.errors(), [("failing".to_owned(), "one failed".to_owned())]);
    tokio::time::sleep(FOREVER * 2).await;
    assert_eq!(h.state(), 0, "cancelled children must not run on");
}

#[tokio::test(start_paused = true)]
async fn race_returns_the_winner_and_cancels_the_losers() {
    let h = Harness::new();
    let loser = |label: &'static str, wait: u64| {
        Saga::new(label, move |cx: milo::Cx<i64, DynAction>| async move {
            cx.delay(secs(wait)).await;
            cx.put(add(1))?;
            Ok("loser")
        })
    };
    let winner = Saga::new("winner", |cx: milo::Cx<i64, DynAction>| async move {
        cx.delay(secs(1)).await;
        Ok("winner")
    });
    let log = h.log.clone();
    let start = Instant::now();
    let got = finish_v(h.store.run_saga("parent", move |cx| async move {
        let r = cx.race(vec![loser("loser-a", 5), winner, loser("loser-b", 9)]).await;
        let cancelled = log.lock().unwrap().iter().filter(|a| a.kind == SAGA_CANCELLED).count();
        Ok((r, cancelled))
    }))
    .await;
    assert_eq!(got, Ok((Ok((1, "winner")), 2)));
    let took = start.elapsed();
    assert!(took >= secs(1) && took < secs(5), "{took:?}");
    assert_eq!(h.cancelled(), ["loser-a", "loser-b"]);
    tokio::time::sleep(secs(60)).await;
    assert_eq!(h.state(), 0, "losers must not run on");
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_parent_stops_its_all_children() {
    let h = Harness::new();
    let parent = h.store.run_saga("parent", |cx| async move {
        cx.all(vec![sleeper("a", 3600, 1), sleeper("b", 3600, 2)]).await?;
        cx.put(add(1))
    });
    tokio::time::sleep(secs(1)).await;
    parent.cancel();
    assert_eq!(finish_v(parent).await, Err(SagaError::Cancelled));
    assert_eq!(h.cancelled(), ["a", "b", "parent"]);
    assert_eq!(h.state(), 0);
}

#[tokio::test(start_paused = true)]
async fn race_of_nothing_is_an_error() {
    let h = Harness::new();
    let got = finish_v(h.store.run_saga(
        "parent",
        |cx| async move { cx.race(Vec::<Saga<_, _, u32>>::new()).await },
    ))
    .await;
    assert!(got.is_err());
}

// ---------------------------------------------------------------------------------------
// retry
// ---------------------------------------------------------------------------------------

/// Runs a live retry whose first `failures` attempts fail; returns (result, attempts seen,
/// virtual time taken).
async fn live_retry(policy: RetryPolicy, failures: u32) -> (milo::SagaResult<u32>, Vec<u32>, Duration) {
    let h = Harness::new();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let start = Instant::now();
    let got = finish_v(h.store.run_saga("retrying", move |cx| async move {
        cx.retry("flaky", policy, move |attempt| {
            seen.lock().unwrap().push(attempt);
            async move {
                if attempt <= failures {
                    Err(SagaError::msg(format!("attempt {attempt} failed")))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await
    }))
    .await;
    let attempts = attempts.lock().unwrap().clone();
    (got, attempts, start.elapsed())
}

fn about(took: Duration, expected: Duration) -> bool {
    took >= expected && took < expected + Duration::from_millis(500)
}

#[tokio::test(start_paused = true)]
async fn retry_with_fixed_backoff() {
    let (got, attempts, took) = live_retry(RetryPolicy::new(5, secs(2)), 3).await;
    assert_eq!(got, Ok(4));
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert!(about(took, secs(6)), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_with_linear_backoff() {
    let (got, attempts, took) = live_retry(RetryPolicy::new(5, secs(1)).backoff(Backoff::Linear), 3).await;
    assert_eq!(got, Ok(4));
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert!(about(took, secs(1 + 2 + 3)), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_with_exponential_backoff_and_cap() {
    let (got, _, took) = live_retry(RetryPolicy::new(5, secs(1)).backoff(Backoff::Exponential), 3).await;
    assert_eq!(got, Ok(4));
    assert!(about(took, secs(1 + 2 + 4)), "{took:?}");

    let capped = RetryPolicy::new(6, secs(1)).backoff(Backoff::Exponential).cap(secs(3));
    let (got, _, took) = live_retry(capped, 5).await;
    assert_eq!(got, Ok(6));
    assert!(about(took, secs(1 + 2 + 3 + 3 + 3)), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_with_the_last_error() {
    let (got, attempts, took) = live_retry(RetryPolicy::new(3, secs(1)), 10).await;
    assert_eq!(got, Err(SagaError::Failed("attempt 3 failed".into())));
    assert_eq!(attempts, [1, 2, 3]);
    // No wait after the last attempt.
    assert!(about(took, secs(2)), "{took:?}");
    // At least one attempt even with max_attempts = 0.
    let (got, attempts, _) = live_retry(RetryPolicy::new(0, secs(1)), 10).await;
    assert!(got.is_err());
    assert_eq!(attempts, [1]);
}

#[test]
fn retry_policy_delays() {
    let p = RetryPolicy::new(10, Duration::from_millis(100))
        .backoff(Backoff::Exponential)
        .cap(secs(1));
    let d: Vec<_> = (1..=6).map(|a| p.delay_for(a).as_millis()).collect();
    assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
    let l = RetryPolicy::new(10, Duration::from_millis(100)).backoff(Backoff::Linear);
    assert_eq!(l.delay_for(3), Duration::from_millis(300));
    assert_eq!(RetryPolicy::new(10, secs(2)).delay_for(7), secs(2));
}

// ---------------------------------------------------------------------------------------
// the test interpreter
// ---------------------------------------------------------------------------------------

#[test]
fn interpreter_retry_with_exponential_backoff_yields_growing_delays_in_virtual_time() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    t.fail("deploy", "no route")
        .fail("deploy", "no route")
        .fail("deploy", "no route");
    t.answer("deploy", 7_u32);
    let policy = RetryPolicy::new(5, secs(1)).backoff(Backoff::Exponential);
    let real_calls = Arc::new(AtomicU32::new(0));
    let rc = real_calls.clone();
    let started = std::time::Instant::now();
    let got = t.run("deploy-saga", move |cx| async move {
        let before = cx.now();
        let v = cx
            .retry("deploy", policy, move |_| {
                rc.fetch_add(1, Ordering::SeqCst);
                async { Err::<u32, SagaError>("real call".into()) }
            })
            .await?;
        Ok((v, cx.now() - before))
    });
    assert_eq!(got, Ok((7, secs(7))));
    assert_eq!(
        t.effects(),
        [
            Effect::Call("deploy".into()),
            Effect::Delay(secs(1)),
            Effect::Call("deploy".into()),
            Effect::Delay(secs(2)),
            Effect::Call("deploy".into()),
            Effect::Delay(secs(4)),
            Effect::Call("deploy".into()),
        ]
    );
    assert_eq!(t.elapsed(), secs(7));
    // Generous: 7 s of virtual time must not take anywhere near 7 s of real time.
    assert!(started.elapsed() < secs(5));
    // The futures were built but the scripted answers replaced them.
    assert_eq!(real_calls.load(Ordering::SeqCst), 4);
}

#[test]
fn interpreter_answers_calls_with_values_and_errors_in_order() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    t.answer("fetch", 42_u32)
        .fail("fetch", "404")
        .answer("other", String::from("x"));
    let got = t.run("s", |cx| async move {
        let a = cx.call("fetch", async { Ok::<u32, SagaError>(0) }).await;
        let b = cx.call("fetch", async { Ok::<u32, SagaError>(0) }).await;
        let c: String = cx.call("other", async { Ok::<_, SagaError>(String::new()) }).await?;
        Ok((a, b, c))
    });
    assert_eq!(got, Ok((Ok(42), Err(SagaError::Failed("404".into())), "x".to_owned())));
}

#[test]
fn interpreter_wrong_type_answer_is_a_clear_error() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    t.answer("count", "not a number");
    let got = t.run("s", |cx| async move {
        cx.call("count", async { Ok::<u64, SagaError>(1) }).await
    });
    let Err(SagaError::Test(msg)) = got else {
        panic!("expected a test error, got {got:?}")
    };
    assert!(
        msg.contains("count") && msg.contains("wrong type") && msg.contains("u64"),
        "{msg}"
    );
    // The saga's failure is reported like any other.
    assert!(
        matches!(&t.puts()[..], [a] if a.kind == SAGA_ERROR && a.payload["error"].as_str().unwrap().contains("wrong type"))
    );
}

#[test]
fn interpreter_unanswered_calls_fail_unless_passthrough() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    let got = t.run("s", |cx| async move {
        cx.call("missing", async { Ok::<u8, SagaError>(1) }).await
    });
    let Err(SagaError::Test(msg)) = got else {
        panic!("{got:?}")
    };
    assert!(msg.contains("missing"), "{msg}");

    let t: SagaTest<(), DynAction> = SagaTest::new(());
    t.passthrough(true);
    let got = t.run("s", |cx| async move {
        let a = cx.call("real", async { Ok::<u8, SagaError>(1) }).await?;
        let b = cx.call_blocking("real-sync", || Ok::<u8, SagaError>(2)).await?;
        Ok(a + b)
    });
    assert_eq!(got, Ok(3));
    assert_eq!(
        t.effects(),
        [Effect::Call("real".into()), Effect::CallBlocking("real-sync".into())]
    );
}

#[test]
fn interpreter_records_puts_selects_takes_and_timeouts_and_applies_the_reducer() {
    let reducer = |state: Option<&Arc<i64>>, action: &DynAction| -> i64 {
        state.map_or(0, |s| **s) + action.payload.as_i64().unwrap_or(0)
    };
    let t: SagaTest<i64, DynAction> = SagaTest::with_reducer(10, reducer);
    t.answer_take(DynAction::with_payload("go", 5.into()));
    t.answer("slow", 1_i64);
    let got = t.run("s", |cx| async move {
        cx.put(add(1))?;
        let seen = cx.select(|s| *s);
        let go = cx.take("go").await?;
        let missing = cx.take_timeout("again", secs(1)).await?;
        let v = cx
            .timeout(secs(3), cx.call("slow", async { Ok::<i64, SagaError>(0) }))
            .await?;
        cx.put(go.clone())?;
        Ok((seen, go.payload.as_i64(), missing, v))
    });
    assert_eq!(got, Ok((11, Some(5), None, 1)));
    assert_eq!(*t.state(), 16);
    assert_eq!(
        t.effects(),
        [
            Effect::Put(add(1)),
            Effect::Select,
            Effect::Take("go".into()),
            Effect::TakeTimeout("again".into(), secs(1)),
            Effect::Timeout(secs(3)),
            Effect::Call("slow".into()),
            Effect::Put(DynAction::with_payload("go", 5.into())),
        ]
    );
    assert_eq!(t.puts(), [add(1), DynAction::with_payload("go", 5.into())]);

    // An unanswered plain take is a test error.
    let got = t.run("s2", |cx| async move { cx.take("nothing").await.map(|_| ()) });
    assert!(
        matches!(got, Err(SagaError::Test(ref m)) if m.contains("nothing")),
        "{got:?}"
    );
}

#[test]
fn interpreter_records_fork_spawn_all_and_race() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    t.answer("child-call", 1_u32)
        .answer("a-call", 2_u32)
        .answer("b-call", 3_u32)
        .answer("r-call", 4_u32);
    let called = |label: &'static str, call: &'static str| {
        Saga::new(label, move |cx: milo::Cx<(), DynAction>| async move {
            cx.call(call, async { Ok::<u32, SagaError>(0) }).await
        })
    };
    let got = t.run("parent", move |cx| async move {
        let forked = cx
            .fork("child", |cx| async move {
                cx.call("child-call", async { Ok::<u32, SagaError>(0) }).await
            })
            .await;
        let spawned = cx.spawn("detached", |cx| async move {
            cx.put(act("from-detached"))?;
            Ok(0_u32)
        });
        let spawned = spawned.await.await?;
        let all = cx.all(vec![called("a", "a-call"), called("b", "b-call")]).await?;
        let (winner, raced) = cx.race(vec![called("r", "r-call")]).await?;
        Ok((forked.await?, spawned, all, winner, raced))
    });
    assert_eq!(got, Ok((1, 0, vec![2, 3], 0, 4)));
    assert_eq!(
        t.effects(),
        [
            Effect::Fork("child".into()),
            Effect::Call("child-call".into()),
            Effect::Spawn("detached".into()),
            Effect::Put(act("from-detached")),
            Effect::All(vec!["a".into(), "b".into()]),
            Effect::Call("a-call".into()),
            Effect::Call("b-call".into()),
            Effect::Race(vec!["r".into()]),
            Effect::Call("r-call".into()),
        ]
    );
}

#[test]
fn interpreter_race_reports_the_losers_as_cancelled() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    let got = t.run("parent", |cx| async move {
        let first = Saga::new("first", |cx: milo::Cx<(), DynAction>| async move {
            cx.delay(secs(1)).await;
            Ok(1)
        });
        let second = Saga::new("second", |_cx: milo::Cx<(), DynAction>| async move {
            std::future::pending::<()>().await;
            Ok(2)
        });
        cx.race(vec![first, second]).await
    });
    assert_eq!(got, Ok((0, 1)));
    let puts = t.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].kind, SAGA_CANCELLED);
    assert_eq!(puts[0].payload["saga"], "second");
}

#[test]
fn interpreter_reports_saga_errors_and_panics_as_puts() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    let got = t.run("bad", |_cx| async move {
        if secs(1) > Duration::ZERO {
            panic!("oops");
        }
        Ok(())
    });
    assert_eq!(got, Err(SagaError::Panicked("oops".into())));
    assert_eq!(
        t.puts(),
        [DynAction::with_payload(
            SAGA_ERROR,
            serde_json::json!({"saga": "bad", "error": "panicked: oops"})
        )]
    );
}

#[test]
fn interpreter_records_try_call_and_take_timeouts_as_such() {
    let t: SagaTest<(), DynAction> = SagaTest::new(());
    t.answer("risky", 1_i64);
    let got = t.run("s", |cx| async move {
        let v = cx.try_call("risky", async { Ok::<i64, SagaError>(0) }).await?;
        let none = cx.take_timeout("late", secs(2)).await?;
        Ok((v, none.is_none()))
    });
    assert_eq!(got, Ok((1, true)));
    assert_eq!(
        t.effects(),
        [
            Effect::TryCall("risky".into()),
            Effect::TakeTimeout("late".into(), secs(2))
        ]
    );
}
