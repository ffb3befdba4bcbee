//! Retention: `History::prune` by count and by age, per pipeline; runs still being recorded
//! are kept; every row of a deleted run goes, unused definitions too; the remaining runs still
//! verify and replay; and `Recorder::finish` keeps the newest `keep_runs` by itself.

use std::path::PathBuf;
use std::time::Duration;

use milo::capture::Stream;
use milo::pipeline::{Phase, Pipeline, RunOptions, Status};
use milo_history::{History, Prune, RecordOptions, RunId, RunStatus, cli};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(".milo").join("history.db")
}

/// A pipeline `name` whose phase `a` logs `lines` lines (of 100 bytes) and whose phase
/// `tail` is named `tail` (another name changes the definition, not the pipeline).
fn pipeline(name: &str, tail: &str, lines: usize) -> Pipeline {
    Pipeline::new(
        name,
        [
            Phase::new("a", move |cx| {
                for i in 0..lines {
                    cx.log(Stream::Stdout, format!("{i:>6} {}", "x".repeat(93)));
                }
                Ok::<_, String>(json!({"lines": lines}))
            }),
            Phase::new(tail, |_| Ok::<_, String>(json!("done"))).depends_on(["a"]),
        ],
    )
    .unwrap()
    .capture_output(true)
}

/// Runs `pipeline`, recorded with `options`; returns the run id.
fn record(history: &History, pipeline: &Pipeline, options: RecordOptions) -> RunId {
    let recorder = history.recorder(pipeline, options).unwrap();
    let report = rt().block_on(async {
        let store = pipeline.store().unwrap();
        let _sub = recorder.subscribe(&store);
        pipeline.run_with(&store, RunOptions::default()).await.unwrap()
    });
    assert_eq!(report.status, Status::Completed);
    recorder.finish(report.status, 0).unwrap()
}

fn run(history: &History, pipeline: &Pipeline) -> RunId {
    record(history, pipeline, RecordOptions::default())
}

fn ids(history: &History) -> Vec<RunId> {
    let mut ids: Vec<RunId> = history.runs(1000).unwrap().iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids
}

/// Rows of run `id` in each table a run owns: (runs, phases, logs, journal).
fn rows(conn: &rusqlite::Connection, id: RunId) -> [i64; 4] {
    [
        "runs WHERE id",
        "phases WHERE run_id",
        "logs WHERE run_id",
        "journal WHERE run_id",
    ]
    .map(|t| {
        conn.query_row(&format!("SELECT count(*) FROM {t} = ?1"), [id], |r| r.get(0))
            .unwrap()
    })
}

fn defs(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn.prepare("SELECT def_hash FROM defs ORDER BY def_hash").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Asserts that every remaining run's journal verifies and replays.
#[track_caller]
fn remaining_runs_are_intact(history: &History) {
    for id in ids(history) {
        let verification = history.verify(Some(id)).unwrap();
        assert!(verification.is_intact(), "run {id}: {verification}");
        let replay = history.replay(Some(id)).unwrap();
        assert_eq!(replay.timeline().unwrap()["status"], "completed", "run {id}");
        assert_eq!(history.show(Some(id)).unwrap().phases.len(), 2);
    }
}

fn keep(n: usize) -> Prune {
    Prune {
        keep: Some(n),
        ..Prune::default()
    }
}

#[test]
fn keep_n_counts_each_pipeline_on_its_own_and_deletes_every_row_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let (a, b) = (pipeline("alpha", "t", 50), pipeline("beta", "t", 50));
    // alpha: 1, 3, 5, 6; beta: 2, 4.
    for p in [&a, &b, &a, &b, &a, &a] {
        run(&history, p);
    }
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    assert!(rows(&conn, 1).iter().all(|&n| n > 0), "{:?}", rows(&conn, 1));

    let dry = history
        .prune(&Prune {
            dry_run: true,
            ..keep(2)
        })
        .unwrap();
    assert_eq!((dry.runs.clone(), dry.remaining, dry.freed_bytes), (vec![1, 3], 4, 0));
    assert!(dry.dry_run);
    assert_eq!(ids(&history), [1, 2, 3, 4, 5, 6], "a dry run deletes nothing");

    let pruned = history.prune(&keep(2)).unwrap();
    assert_eq!(pruned.runs, [1, 3]);
    assert_eq!(pruned.remaining, 4);
    assert_eq!(pruned.defs, 0, "both definitions are still used");
    assert!(pruned.kept_running.is_empty());
    assert!(pruned.freed_bytes > 0, "{pruned:?}");
    assert_eq!(ids(&history), [2, 4, 5, 6]);
    for id in [1, 3] {
        assert_eq!(rows(&conn, id), [0; 4], "run {id} left rows behind");
    }
    for id in [2, 4, 5, 6] {
        assert!(
            rows(&conn, id).iter().all(|&n| n > 0),
            "run {id}: {:?}",
            rows(&conn, id)
        );
    }
    remaining_runs_are_intact(&history);

    // --pipeline: only that pipeline's runs.
    let pruned = history
        .prune(&Prune {
            pipeline: Some("beta".into()),
            ..keep(1)
        })
        .unwrap();
    assert_eq!((pruned.runs, pruned.remaining), (vec![2], 1));
    assert_eq!(ids(&history), [4, 5, 6]);

    // Within the limit: nothing to do.
    let pruned = history.prune(&keep(2)).unwrap();
    assert_eq!((pruned.runs.len(), pruned.remaining, pruned.freed_bytes), (0, 3, 0));
    // No policy: nothing either.
    assert!(history.prune(&Prune::default()).unwrap().runs.is_empty());
    remaining_runs_are_intact(&history);
}

#[test]
fn older_than_deletes_by_start_time_and_both_limits_apply() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let p = pipeline("p", "t", 5);
    for _ in 0..4 {
        run(&history, &p);
    }
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    // Runs 1 and 2 started ten and three days ago.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for (id, days) in [(1, 10.0), (2, 3.0)] {
        conn.execute(
            "UPDATE runs SET started_at = ?2 WHERE id = ?1",
            rusqlite::params![id, now - days * 86_400.0],
        )
        .unwrap();
    }
    let older = |days: u64| Prune {
        older_than: Some(Duration::from_secs(days * 86_400)),
        ..Prune::default()
    };
    assert_eq!(history.prune(&older(30)).unwrap().runs, Vec::<RunId>::new());
    assert_eq!(history.prune(&older(7)).unwrap().runs, [1]);
    // Both: beyond the newest 3 (none), or older than a day (run 2).
    let pruned = history
        .prune(&Prune {
            keep: Some(3),
            older_than: Some(Duration::from_secs(86_400)),
            ..Prune::default()
        })
        .unwrap();
    assert_eq!((pruned.runs, pruned.remaining), (vec![2], 2));
    assert_eq!(ids(&history), [3, 4]);
    remaining_runs_are_intact(&history);
}

#[test]
fn a_run_still_recorded_by_a_live_process_is_kept_a_dead_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let p = pipeline("p", "t", 5);
    run(&history, &p);
    // Run 2: "running" in a process that is gone (this pid, but another start time).
    let stale = history.recorder(&p, RecordOptions::default()).unwrap();
    drop(stale);
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    conn.execute(
        "UPDATE runs SET status = 'running', pid_start = 'not this process' WHERE id = 2",
        [],
    )
    .unwrap();
    // Run 3: being recorded right now, by this process.
    let live = history.recorder(&p, RecordOptions::default()).unwrap();
    assert_eq!(history.run(Some(3)).unwrap().status, RunStatus::Running);

    let everything = Prune {
        older_than: Some(Duration::ZERO),
        ..Prune::default()
    };
    let dry = history
        .prune(&Prune {
            dry_run: true,
            ..everything.clone()
        })
        .unwrap();
    assert_eq!(dry.runs, [1, 2]);
    let pruned = history.prune(&everything).unwrap();
    assert_eq!(pruned.runs, [1, 2]);
    assert_eq!(pruned.kept_running, [(3, i64::from(std::process::id()))]);
    assert_eq!(pruned.remaining, 1);
    assert_eq!(ids(&history), [3]);
    let mut out = Vec::new();
    cli::prune(&db(&dir), &everything, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("nothing to prune: the runs the policy selects are still being recorded\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "kept run 3 (pid {}): still being recorded",
            std::process::id()
        )),
        "{text}"
    );

    // Once it has ended, it may go.
    drop(live);
    assert_eq!(history.prune(&everything).unwrap().runs, [3]);
    assert_eq!(ids(&history), Vec::<RunId>::new());
}

#[test]
fn definitions_no_run_uses_are_deleted_with_the_last_run_using_them() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let v1 = pipeline("p", "old", 5);
    let v2 = pipeline("p", "new", 5);
    let other = pipeline("q", "old", 5);
    run(&history, &v1); // 1
    run(&history, &other); // 2
    run(&history, &v1); // 3
    run(&history, &v2); // 4
    run(&history, &v2); // 5
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    let hash = |id: RunId| history.run(Some(id)).unwrap().def_hash;
    let (h1, h2, h4) = (hash(1), hash(2), hash(4));
    assert_eq!(defs(&conn).len(), 3);

    // Run 1 goes, run 3 still uses its definition.
    let pruned = history
        .prune(&Prune {
            pipeline: Some("p".into()),
            ..keep(3)
        })
        .unwrap();
    assert_eq!((pruned.runs, pruned.defs), (vec![1], 0));
    assert!(defs(&conn).contains(&h1));

    // Run 3 goes: its definition with it; q's and v2's stay.
    let dry = history
        .prune(&Prune {
            dry_run: true,
            ..keep(2)
        })
        .unwrap();
    assert_eq!((dry.runs.clone(), dry.defs), (vec![3], 1));
    let pruned = history.prune(&keep(2)).unwrap();
    assert_eq!((pruned.runs, pruned.defs), (vec![3], 1));
    let mut left = vec![h2, h4];
    left.sort();
    assert_eq!(defs(&conn), left);
    remaining_runs_are_intact(&history);
}

#[test]
fn a_resumed_run_may_be_pruned_and_the_run_resuming_it_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let p = pipeline("p", "t", 5);
    let first = run(&history, &p);
    let second = record(
        &history,
        &p,
        RecordOptions {
            resumed_from: Some(first),
            ..RecordOptions::default()
        },
    );
    assert_eq!(history.prune(&keep(1)).unwrap().runs, [first]);
    assert_eq!(history.show(Some(second)).unwrap().run.resumed_from, Some(first));
    let mut out = Vec::new();
    cli::show(&db(&dir), None, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("resumes run 1 (since pruned from the history)"), "{text}");
    let mut out = Vec::new();
    cli::history(&db(&dir), 10, false, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("completed ↻1"));
    remaining_runs_are_intact(&history);
}

#[test]
fn finish_keeps_the_newest_keep_runs_of_its_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let (p, q) = (pipeline("p", "t", 5), pipeline("q", "t", 5));
    let keep2 = || RecordOptions {
        keep_runs: Some(2),
        ..RecordOptions::default()
    };
    record(&history, &q, RecordOptions::default()); // 1
    for _ in 0..4 {
        record(&history, &p, keep2()); // 2..=5
    }
    assert_eq!(ids(&history), [1, 4, 5], "q is another pipeline");
    // None and Some(0) keep everything.
    record(&history, &p, RecordOptions::default());
    record(
        &history,
        &p,
        RecordOptions {
            keep_runs: Some(0),
            ..RecordOptions::default()
        },
    );
    assert_eq!(ids(&history), [1, 4, 5, 6, 7]);
    record(&history, &q, keep2());
    assert_eq!(ids(&history), [1, 4, 5, 6, 7, 8], "q has 2 runs");
    record(&history, &p, keep2());
    assert_eq!(ids(&history), [1, 7, 8, 9], "p keeps 7 and 9");
    remaining_runs_are_intact(&history);
}

#[test]
fn prune_prints_one_line_and_vacuum_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let p = pipeline("p", "t", 2000);
    for _ in 0..4 {
        run(&history, &p);
    }
    let mut out = Vec::new();
    let policy = Prune {
        dry_run: true,
        ..keep(1)
    };
    assert_eq!(cli::prune(&db(&dir), &policy, false, &mut out).unwrap(), 0);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "would delete 3 runs (1-3), leaving 1 run; nothing was deleted (--dry-run)\n"
    );
    let mut out = Vec::new();
    cli::prune(&db(&dir), &keep(1), false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("deleted 3 runs (1-3); 1 run left; "), "{text}");
    assert!(
        text.ends_with(" freed inside the file for later runs (--vacuum shrinks the file)\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");

    let v = history.vacuum().unwrap();
    assert!(v.after < v.before / 2, "{v:?}");
    remaining_runs_are_intact(&history);
    let mut out = Vec::new();
    cli::prune(&db(&dir), &keep(1), true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("nothing to prune: the 1 run is within the policy\nvacuumed "),
        "{text}"
    );
}

#[test]
fn an_incremental_auto_vacuum_database_gives_the_pages_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    {
        let conn = rusqlite::Connection::open(db(&dir)).unwrap();
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;").unwrap();
    }
    let p = pipeline("p", "t", 2000);
    for _ in 0..3 {
        run(&history, &p);
    }
    let pruned = history.prune(&keep(1)).unwrap();
    assert_eq!(pruned.runs, [1, 2]);
    assert!(pruned.returned_bytes > 0, "{pruned:?}");
    remaining_runs_are_intact(&history);
}

#[test]
fn a_long_history_is_deleted_in_chunks_with_nothing_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    // 40 runs, more than two deletion chunks: 30 of one definition, then 10 of another.
    let (old, new) = (pipeline("p", "t", 5), pipeline("p", "u", 5));
    for i in 0..40 {
        run(&history, if i < 30 { &old } else { &new });
    }
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    assert_eq!(defs(&conn).len(), 2);

    let pruned = history.prune(&keep(5)).unwrap();
    assert_eq!(pruned.runs, (1..=35).collect::<Vec<RunId>>());
    assert_eq!((pruned.remaining, pruned.defs), (5, 1), "{pruned:?}");
    assert!(pruned.freed_bytes > 0, "{pruned:?}");
    assert_eq!(ids(&history), [36, 37, 38, 39, 40]);
    for id in 1..=35 {
        assert_eq!(rows(&conn, id), [0; 4], "run {id} left rows behind");
    }
    assert_eq!(defs(&conn).len(), 1, "the first definition went with its last run");
    remaining_runs_are_intact(&history);
}
