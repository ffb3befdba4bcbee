//! Integration tests for the Store: ordering, panics, listeners, middleware, watch and
//! reducer-scheduled sagas.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use milo::action::{INIT, SAGA_ERROR};
use milo::store::Next;
use milo::{Action, Builtin, DispatchError, DynAction, Middleware, Reducer, ReducerResult, Saga, Store};

/// Generous bound for "this must not hang" checks; never reached when things work.
const HANG: Duration = Duration::from_secs(10);

fn act(kind: &'static str) -> DynAction {
    DynAction::new(kind)
}

fn add(n: i64) -> DynAction {
    DynAction::with_payload("add", n.into())
}

/// A counter: `add` adds its payload, `boom` panics, everything else leaves the state alone
/// (returning the same `Arc`).
fn counter(state: Option<&Arc<i64>>, action: &DynAction) -> ReducerResult<i64, DynAction> {
    let Some(state) = state else {
        return ReducerResult::from(0);
    };
    match &*action.kind {
        "add" => ReducerResult::from(**state + action.payload.as_i64().unwrap()),
        "boom" => panic!("reducer exploded"),
        _ => ReducerResult::new(state.clone()),
    }
}

fn counter_store() -> Store<i64, DynAction> {
    Store::new(counter, None).unwrap()
}

/// Runs `f` on a thread and fails the test if it does not return within [`HANG`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} did not finish within {HANG:?} (deadlock?)"))
}

#[test]
fn init_builds_the_state_when_none_is_given() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let reducer = move |state: Option<&Arc<i64>>, action: &DynAction| -> i64 {
        s.lock().unwrap().push((state.map(|s| **s), action.kind.to_string()));
        state.map_or(100, |s| **s)
    };
    let store: Store<i64, DynAction> = Store::new(reducer, None).unwrap();
    assert_eq!(*store.get_state(), 100);
    assert_eq!(*seen.lock().unwrap(), [(None, INIT.to_owned())]);
}

#[test]
fn init_sees_the_initial_state_when_given() {
    let store: Store<i64, DynAction> = Store::new(counter, Some(7)).unwrap();
    assert_eq!(*store.get_state(), 7);
    store.dispatch(add(3)).unwrap();
    assert_eq!(*store.get_state(), 10);
}

#[test]
fn a_reducer_panicking_on_init_falls_back_to_the_initial_state_or_fails() {
    let panicky = |_: Option<&Arc<i64>>, _: &DynAction| -> i64 { panic!("no init for you") };
    let store: Store<i64, DynAction> = Store::new(panicky, Some(5)).unwrap();
    assert_eq!(*store.get_state(), 5);

    let err = Store::<i64, DynAction>::new(panicky, None).unwrap_err();
    assert_eq!(
        err,
        DispatchError::ReducerPanicked {
            action: INIT.to_owned(),
            message: "no init for you".to_owned()
        }
    );
}

#[test]
fn clones_share_one_store() {
    let a = counter_store();
    let b = a.clone();
    a.dispatch(add(2)).unwrap();
    b.dispatch(add(3)).unwrap();
    assert_eq!(*a.get_state(), 5);
    assert_eq!(*b.get_state(), 5);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seqs {
    count: u64,
    /// The last sequence number applied from each thread.
    last: [u64; 8],
}

#[test]
fn concurrent_dispatch_is_totally_ordered_and_reduced_once_per_action() {
    const THREADS: usize = 8;
    const PER_THREAD: u64 = 10_000;

    let reductions = Arc::new(AtomicUsize::new(0));
    let r = reductions.clone();
    let reducer = move |state: Option<&Arc<Seqs>>, action: &DynAction| -> Seqs {
        r.fetch_add(1, Ordering::Relaxed);
        let mut s = state.map_or(Seqs { count: 0, last: [0; 8] }, |s| **s);
        if action.kind == "tick" {
            let t = action.payload[0].as_u64().unwrap() as usize;
            let seq = action.payload[1].as_u64().unwrap();
            // Each thread's actions arrive in the order that thread dispatched them.
            assert_eq!(seq, s.last[t] + 1, "thread {t} out of order");
            s.last[t] = seq;
            s.count += 1;
        }
        s
    };
    let store: Store<Seqs, DynAction> = Store::new(reducer, None).unwrap();
    assert_eq!(reductions.load(Ordering::Relaxed), 1); // @@INIT

    // The listener must see every state, one per action, in the order they were applied,
    // and each state must be the one produced by the action it is given with.
    let seen = Arc::new(Mutex::new(Vec::with_capacity(THREADS * PER_THREAD as usize)));
    let s = seen.clone();
    let _sub = store.subscribe(move |action: &DynAction, state: &Arc<Seqs>| {
        let t = action.payload[0].as_u64().unwrap() as usize;
        let seq = action.payload[1].as_u64().unwrap();
        assert_eq!(state.last[t], seq, "listener got a state that is not this action's");
        s.lock().unwrap().push(state.count);
    });

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                for seq in 1..=PER_THREAD {
                    store
                        .dispatch(DynAction::with_payload("tick", serde_json::json!([t, seq])))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }

    let total = THREADS as u64 * PER_THREAD;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, total);
    assert!(
        seen.iter().copied().eq(1..=total),
        "listener saw states out of order or missed some"
    );
    assert_eq!(reductions.load(Ordering::Relaxed) as u64, total + 1);
    let end = store.get_state();
    assert_eq!(end.count, total);
    assert_eq!(end.last, [PER_THREAD; 8]);
}

#[test]
fn a_panicking_reducer_keeps_the_previous_state_and_the_store_stays_usable() {
    let store = counter_store();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c = calls.clone();
    let _sub = store.subscribe(move |a: &DynAction, s: &Arc<i64>| c.lock().unwrap().push((a.kind.to_string(), **s)));
    store.dispatch(add(4)).unwrap();
    let before = store.get_state();

    let err = store.dispatch(act("boom")).unwrap_err();
    assert_eq!(
        err,
        DispatchError::ReducerPanicked {
            action: "boom".to_owned(),
            message: "reducer exploded".to_owned()
        }
    );
    assert!(err.to_string().contains("reducer exploded"), "{err}");
    assert!(
        Arc::ptr_eq(&before, &store.get_state()),
        "the previous state must be kept"
    );

    store.dispatch(add(1)).unwrap();
    assert_eq!(*store.get_state(), 5);
    // Listeners are not told about the action that failed.
    assert_eq!(*calls.lock().unwrap(), [("add".to_owned(), 4), ("add".to_owned(), 5)]);
}

#[test]
fn a_panicking_listener_is_reported_and_the_others_still_run() {
    let store = counter_store();
    let ran = Arc::new(AtomicUsize::new(0));
    let _bad = store.subscribe(|_: &DynAction, _: &Arc<i64>| panic!("listener exploded"));
    let r = ran.clone();
    let _good = store.subscribe(move |_: &DynAction, _: &Arc<i64>| {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let err = store.dispatch(add(1)).unwrap_err();
    assert_eq!(
        err,
        DispatchError::ListenerPanicked {
            action: "add".to_owned(),
            message: "listener exploded".to_owned()
        }
    );
    assert_eq!(*store.get_state(), 1, "the state is applied even if a listener panics");
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn dropping_the_subscription_unsubscribes() {
    let store = counter_store();
    let a = Arc::new(AtomicUsize::new(0));
    let b = Arc::new(AtomicUsize::new(0));
    let (ac, bc) = (a.clone(), b.clone());
    let sub_a = store.subscribe(move |_: &DynAction, _: &Arc<i64>| {
        ac.fetch_add(1, Ordering::SeqCst);
    });
    let _sub_b = store.subscribe(move |_: &DynAction, _: &Arc<i64>| {
        bc.fetch_add(1, Ordering::SeqCst);
    });
    store.dispatch(add(1)).unwrap();
    drop(sub_a);
    store.dispatch(add(1)).unwrap();
    store.dispatch(add(1)).unwrap();
    assert_eq!(a.load(Ordering::SeqCst), 1);
    assert_eq!(b.load(Ordering::SeqCst), 3);
}

#[test]
fn unsubscribing_releases_the_listener_at_once() {
    let store = counter_store();
    let marker = Arc::new(());
    let m = marker.clone();
    let sub = store.subscribe(move |_: &DynAction, _: &Arc<i64>| {
        let _ = &m;
    });
    store.dispatch(add(1)).unwrap();
    assert_eq!(Arc::strong_count(&marker), 2);
    drop(sub);
    assert_eq!(
        Arc::strong_count(&marker),
        1,
        "the store must not keep an unsubscribed listener alive"
    );
}

#[test]
fn a_subscription_outliving_its_store_drops_cleanly() {
    let store = counter_store();
    let sub = store.subscribe(|_: &DynAction, _: &Arc<i64>| {});
    drop(store);
    drop(sub);
}

#[test]
fn listeners_receive_the_action_and_the_state_after_it() {
    let store = counter_store();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _sub = store.subscribe(move |a: &DynAction, st: &Arc<i64>| s.lock().unwrap().push((a.clone(), **st)));
    store.dispatch(add(2)).unwrap();
    store.dispatch(act("noop")).unwrap();
    store.dispatch(add(5)).unwrap();
    assert_eq!(*seen.lock().unwrap(), [(add(2), 2), (act("noop"), 2), (add(5), 7)]);
}

#[test]
fn reentrant_dispatch_from_a_listener_is_applied_after_the_current_one() {
    let store = counter_store();
    let log = Arc::new(Mutex::new(Vec::new()));

    let inner = store.clone();
    let l1 = log.clone();
    let _first = store.subscribe(move |a: &DynAction, s: &Arc<i64>| {
        l1.lock().unwrap().push(format!("first {} {}", a.kind, s));
        if a.kind == "add" && a.payload == 1 {
            // Queued: must not deadlock, and is applied after every listener saw `add 1`.
            inner.dispatch(add(10)).unwrap();
            assert_eq!(*inner.get_state(), 1, "the re-entrant dispatch must not be applied yet");
        }
    });
    let l2 = log.clone();
    let _second = store.subscribe(move |a: &DynAction, s: &Arc<i64>| {
        l2.lock().unwrap().push(format!("second {} {}", a.kind, s));
    });

    let st = store.clone();
    within("re-entrant dispatch", move || st.dispatch(add(1))).unwrap();
    // By the time the outer dispatch returns, the queued one has been applied too.
    assert_eq!(*store.get_state(), 11);
    assert_eq!(
        *log.lock().unwrap(),
        ["first add 1", "second add 1", "first add 11", "second add 11"]
    );
}

#[test]
fn reentrant_dispatches_between_two_stores_do_not_deadlock() {
    let a = counter_store();
    let b = counter_store();
    let (a2, b2) = (a.clone(), b.clone());
    let _to_b = a.subscribe(move |act: &DynAction, _: &Arc<i64>| {
        if act.kind == "add" {
            b2.dispatch(act.clone()).unwrap();
        }
    });
    let _to_a = b.subscribe(move |act: &DynAction, s: &Arc<i64>| {
        if act.kind == "add" && **s < 3 {
            a2.dispatch(add(1)).unwrap();
        }
    });
    let a3 = a.clone();
    within("ping-pong dispatch", move || a3.dispatch(add(1))).unwrap();
    assert_eq!(*a.get_state(), 3);
    assert_eq!(*b.get_state(), 3);
}

#[test]
fn middleware_sees_actions_in_order_and_can_drop_or_transform_them() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let logger = move |state: &Arc<i64>, action: DynAction, next: Next<'_, DynAction>| {
        s.lock().unwrap().push(format!("{}@{}", action.kind, state));
        next(action)
    };
    let filter = |_: &Arc<i64>, action: DynAction, next: Next<'_, DynAction>| match &*action.kind {
        "drop-me" => Ok(()),
        "double" => next(DynAction::with_payload(
            "add",
            (action.payload.as_i64().unwrap() * 2).into(),
        )),
        "reject" => Err(DispatchError::Rejected {
            action: "reject".into(),
            message: "not allowed".into(),
        }),
        _ => next(action),
    };
    let mw: Vec<Arc<dyn Middleware<i64, DynAction>>> = vec![Arc::new(logger), Arc::new(filter)];
    let store = Store::with_middleware(counter, None, mw).unwrap();
    let reduced = Arc::new(Mutex::new(Vec::new()));
    let r = reduced.clone();
    let _sub = store.subscribe(move |a: &DynAction, _: &Arc<i64>| r.lock().unwrap().push(a.clone()));

    store.dispatch(add(1)).unwrap();
    store.dispatch(act("drop-me")).unwrap();
    store.dispatch(DynAction::with_payload("double", 5.into())).unwrap();
    let err = store.dispatch(act("reject")).unwrap_err();
    assert!(matches!(err, DispatchError::Rejected { .. }), "{err:?}");
    store.dispatch(add(100)).unwrap();

    assert_eq!(*store.get_state(), 111);
    // The outer middleware saw every action in dispatch order, with the state before it.
    assert_eq!(
        *seen.lock().unwrap(),
        ["add@0", "drop-me@1", "double@1", "reject@11", "add@11"]
    );
    // The reducer (and so the listeners) only got what the filter passed on.
    assert_eq!(*reduced.lock().unwrap(), [add(1), add(10), add(100)]);
}

#[test]
fn middleware_may_dispatch_reentrantly() {
    let store_slot: Arc<Mutex<Option<Store<i64, DynAction>>>> = Arc::new(Mutex::new(None));
    let slot = store_slot.clone();
    let echo = move |_: &Arc<i64>, action: DynAction, next: Next<'_, DynAction>| {
        if action.kind == "echo" {
            let store = slot.lock().unwrap().clone().unwrap();
            store.dispatch(add(7)).unwrap();
        }
        next(action)
    };
    let mw: Vec<Arc<dyn Middleware<i64, DynAction>>> = vec![Arc::new(echo)];
    let store = Store::with_middleware(counter, None, mw).unwrap();
    *store_slot.lock().unwrap() = Some(store.clone());
    let st = store.clone();
    within("dispatch from middleware", move || st.dispatch(act("echo"))).unwrap();
    assert_eq!(*store.get_state(), 7);
    store_slot.lock().unwrap().take();
}

#[test]
fn watch_holds_the_newest_state_and_skips_unchanged_ones() {
    let store = counter_store();
    let mut rx = store.watch();
    assert_eq!(**rx.borrow_and_update(), 0);
    store.dispatch(add(1)).unwrap();
    store.dispatch(add(2)).unwrap();
    store.dispatch(add(3)).unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(**rx.borrow_and_update(), 6);
    // A reducer returning the same Arc does not wake watchers.
    store.dispatch(act("noop")).unwrap();
    assert!(!rx.has_changed().unwrap());
}

#[tokio::test]
async fn watch_changed_wakes_on_a_dispatch_from_another_thread() {
    let store = counter_store();
    let mut rx = store.watch();
    rx.borrow_and_update();
    let st = store.clone();
    let t = thread::spawn(move || st.dispatch(add(42)).unwrap());
    tokio::time::timeout(HANG, rx.changed()).await.unwrap().unwrap();
    assert_eq!(**rx.borrow(), 42);
    t.join().unwrap();
}

/// A reducer that schedules a saga on `start`: the saga puts `add 5`.
fn scheduling(state: Option<&Arc<i64>>, action: &DynAction) -> ReducerResult<i64, DynAction> {
    let Some(state) = state else {
        return ReducerResult::from(0);
    };
    match &*action.kind {
        "start" => ReducerResult::new(state.clone()).with_saga(Saga::new("adder", |cx| async move {
            cx.put(add(5))?;
            Ok(())
        })),
        _ => counter(Some(state), action),
    }
}

#[tokio::test]
async fn sagas_returned_by_the_reducer_are_scheduled() {
    let store: Store<i64, DynAction> = Store::new(scheduling, None).unwrap();
    let mut rx = store.watch();
    store.dispatch(act("start")).unwrap();
    store.dispatch(act("start")).unwrap();
    tokio::time::timeout(HANG, rx.wait_for(|s| **s == 10))
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn sagas_from_the_reducer_on_a_store_made_inside_a_runtime_run_there() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store: Store<i64, DynAction> = rt.block_on(async { Store::new(scheduling, None).unwrap() });
    // Dispatched from a plain thread: the saga goes to the store's runtime.
    store.dispatch(act("start")).unwrap();
    let mut rx = store.watch();
    rt.block_on(async {
        tokio::time::timeout(HANG, rx.wait_for(|s| **s == 5))
            .await
            .unwrap()
            .unwrap()
    });
}

#[test]
fn scheduling_a_saga_without_a_runtime_is_an_error_but_the_state_is_applied() {
    let reducer = |state: Option<&Arc<i64>>, action: &DynAction| -> ReducerResult<i64, DynAction> {
        let n = state.map_or(0, |s| **s) + i64::from(action.kind == "start");
        ReducerResult::from(n).with_saga(Saga::new("never", |_| async { Ok(()) }))
    };
    // No runtime at all: even @@INIT's saga cannot be scheduled.
    assert_eq!(
        Store::<i64, DynAction>::new(reducer, None).unwrap_err(),
        DispatchError::NoRuntime
    );

    let plain = |state: Option<&Arc<i64>>, action: &DynAction| scheduling(state, action);
    let store: Store<i64, DynAction> = Store::new(plain, None).unwrap();
    assert_eq!(store.dispatch(act("start")).unwrap_err(), DispatchError::NoRuntime);
    store.dispatch(add(1)).unwrap();
    assert_eq!(*store.get_state(), 1);
}

#[test]
fn get_state_does_not_wait_for_a_running_listener() {
    let store = counter_store();
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (e, r) = (entered.clone(), release.clone());
    let _sub = store.subscribe(move |a: &DynAction, _: &Arc<i64>| {
        if a.kind == "add" {
            e.wait(); // the dispatch is now inside a listener
            r.wait(); // ...and stays there until the reader is done
        }
    });
    let st = store.clone();
    let dispatcher = thread::spawn(move || st.dispatch(add(9)).unwrap());
    entered.wait();

    // While the listener is blocked (holding the dispatch), reads still go through and see
    // the state the listener is being told about.
    let st = store.clone();
    let read = within("get_state during a listener", move || *st.get_state());
    assert_eq!(read, 9);
    let mut rx = store.watch();
    assert_eq!(**rx.borrow_and_update(), 9);

    release.wait();
    dispatcher.join().unwrap();
}

#[test]
fn a_state_snapshot_does_not_block_dispatch() {
    let store = counter_store();
    let snapshot = store.get_state();
    let st = store.clone();
    within("dispatch while a snapshot is held", move || {
        for _ in 0..100 {
            st.dispatch(add(1)).unwrap();
        }
    });
    assert_eq!(*snapshot, 0);
    assert_eq!(*store.get_state(), 100);
}

/// A small typed action enum works with the store like `DynAction`.
#[derive(Clone, Debug, PartialEq)]
enum Counter {
    Init,
    Inc,
    Cancelled(String),
    Error(String, String),
}

impl Action for Counter {
    fn type_name(&self) -> &str {
        match self {
            Counter::Init => INIT,
            Counter::Inc => "inc",
            Counter::Cancelled(_) => milo::action::SAGA_CANCELLED,
            Counter::Error(..) => SAGA_ERROR,
        }
    }
    fn from_builtin(builtin: Builtin) -> Self {
        match builtin {
            Builtin::Init => Counter::Init,
            Builtin::SagaCancelled { saga } => Counter::Cancelled(saga),
            Builtin::SagaError { saga, error } => Counter::Error(saga, error),
        }
    }
}

struct CountReducer;

impl Reducer<u32, Counter> for CountReducer {
    fn reduce(&self, state: Option<&Arc<u32>>, action: &Counter) -> ReducerResult<u32, Counter> {
        let n = state.map_or(0, |s| **s);
        ReducerResult::from(if *action == Counter::Inc { n + 1 } else { n })
    }
}

#[tokio::test]
async fn a_typed_action_enum_gets_builtins_from_the_runtime() {
    let store: Store<u32, Counter> = Store::new(CountReducer, None).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _sub = store.subscribe(move |a: &Counter, _: &Arc<u32>| s.lock().unwrap().push(a.clone()));
    store.dispatch(Counter::Inc).unwrap();
    let r = store.run_saga("typed", |cx| async move {
        cx.put(Counter::Inc)?;
        Err::<(), _>("nope".into())
    });
    assert_eq!(r.await, Err(milo::SagaError::Failed("nope".into())));
    assert_eq!(*store.get_state(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            Counter::Inc,
            Counter::Inc,
            Counter::Error("typed".into(), "nope".into())
        ]
    );
}

#[test]
fn an_unchanged_result_keeps_the_state_and_still_notifies_listeners() {
    let reducer = |state: Option<&Arc<i64>>, action: &DynAction| -> ReducerResult<i64, DynAction> {
        match (state, &*action.kind) {
            (None, _) => ReducerResult::from(5),
            (Some(s), "add") => ReducerResult::from(**s + 1),
            (Some(_), _) => ReducerResult::unchanged(),
        }
    };
    let store = Store::new(reducer, None).unwrap();
    let before = store.get_state();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s2 = seen.clone();
    let _sub = store.subscribe(move |_, state: &Arc<i64>| {
        assert_eq!(**state, 5);
        s2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    store.dispatch(DynAction::new("noop")).unwrap();
    assert!(Arc::ptr_eq(&before, &store.get_state()));
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_reducer_that_builds_no_initial_state_is_an_error() {
    let reducer = |_: Option<&Arc<i64>>, _: &DynAction| ReducerResult::<i64, DynAction>::unchanged();
    let err = Store::new(reducer, None).unwrap_err();
    assert!(matches!(err, DispatchError::NoInitialState { .. }), "{err}");
    assert!(Store::new(reducer, Some(3)).is_ok());
}
