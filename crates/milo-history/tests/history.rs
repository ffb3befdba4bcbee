//! Recording real runs and reading them back: every query, resume, tampering, SIGKILL,
//! schema versions and corrupt files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use milo::capture::Stream;
use milo::pipeline::{
    Check, Decision, Dependency, Incremental, Phase, PhasePolicy, Pipeline, PipelineAction, RunOptions, Status,
    Verdict, pipeline_to_timeline,
};
use milo_history::{History, HistoryError, RecordOptions, RunStatus, Trigger, Verification, cli};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Recorded {
    run: i64,
    status: Status,
    actions: Vec<PipelineAction>,
    timeline: serde_json::Value,
}

/// Runs `pipeline` with a recorder (and a listener collecting every action).
fn record(history: &History, pipeline: &Pipeline, options: RunOptions, resumed_from: Option<i64>) -> Recorded {
    let recorder = history
        .recorder(
            pipeline,
            RecordOptions {
                pipeline_file: Some("milo.toml".into()),
                resumed_from,
                ..RecordOptions::default()
            },
        )
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (report, state) = rt().block_on(async {
        let store = pipeline.store().unwrap();
        let _sub = recorder.subscribe(&store);
        let seen2 = seen.clone();
        let _all = store.subscribe(move |a: &PipelineAction, _| seen2.lock().unwrap().push(a.clone()));
        let report = pipeline.run_with(&store, options).await.unwrap();
        (report, store.get_state())
    });
    let code = if report.status == Status::Completed { 0 } else { 1 };
    let run = recorder.finish(report.status, code).unwrap();
    let actions = seen.lock().unwrap().clone();
    Recorded {
        run,
        status: report.status,
        actions,
        timeline: pipeline_to_timeline(&state),
    }
}

fn library_pipeline() -> Pipeline {
    let flaky = Arc::new(std::sync::atomic::AtomicU32::new(0));
    Pipeline::new(
        "lib",
        [
            Phase::new("a", |cx| {
                for i in 0..10 {
                    cx.log(Stream::Stdout, format!("a line {i}"));
                }
                cx.log(Stream::Stderr, "a warning");
                Ok::<_, String>(json!({"n": 1}))
            })
            .max_logs(2),
            Phase::new("b", move |_| {
                if flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    Err("first attempt fails".to_owned())
                } else {
                    Ok(json!("b-result"))
                }
            })
            .depends_on(["a"])
            .policy(PhasePolicy::retry(1).retry_delay(Duration::from_millis(1))),
            Phase::new("c", |_| Err::<(), _>("c is broken")).depends_on(["b"]),
            Phase::new("d", |_| Ok::<_, String>(())).parallel(true),
        ],
    )
    .unwrap()
    .capture_output(true)
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(".milo").join("history.db")
}

#[test]
fn a_run_round_trips_through_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let pipeline = library_pipeline();
    let rec = record(&history, &pipeline, RunOptions::default(), None);
    assert_eq!(rec.status, Status::Failed);

    // runs
    let runs = history.runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(
        (r.id, r.pipeline.as_str(), r.status),
        (rec.run, "lib", RunStatus::Failed)
    );
    assert_eq!(r.exit_code, Some(1));
    assert_eq!(r.failed_phase.as_deref(), Some("c"));
    assert!(r.error.as_deref().unwrap().contains("c is broken"), "{:?}", r.error);
    assert!(r.duration.unwrap() >= 0.0);
    assert_eq!(r.journal_len as usize, rec.actions.len());
    assert_eq!(r.def_hash.len(), 64);

    // show
    let detail = history.show(None).unwrap();
    let names: Vec<&str> = detail.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, pipeline.execution_order());
    let phase = |n: &str| detail.phases.iter().find(|p| p.name == n).unwrap();
    assert_eq!(phase("a").status, "completed");
    assert_eq!(phase("a").result, Some(json!({"n": 1})));
    assert_eq!(phase("a").log_count, 11);
    assert_eq!(phase("b").status, "completed");
    assert_eq!(phase("b").attempts, 2);
    assert_eq!(phase("c").status, "failed");
    assert_eq!(phase("c").error.as_deref(), Some("c is broken"));
    assert!(phase("a").duration.is_some());

    // logs: all of them, though the state keeps 2.
    let all = history.logs(None, "a", None).unwrap();
    assert_eq!(all.len(), 11);
    assert_eq!(all[0].line, "a line 0");
    assert_eq!(all[10].line, "a warning");
    assert_eq!(all[10].stream, Stream::Stderr);
    let stdout = history.logs(Some(rec.run), "a", Some(Stream::Stdout)).unwrap();
    assert_eq!(stdout.len(), 10);
    let err = history.logs(None, "zz", None).unwrap_err();
    assert!(matches!(err, HistoryError::NoSuchPhase { .. }), "{err}");
    assert!(err.to_string().contains("`a`, `b`, `c`, `d`"), "{err}");

    // journal: every action, in order, as dispatched.
    let journal = history.journal(None).unwrap();
    let recorded: Vec<PipelineAction> = journal.iter().map(|e| e.action().unwrap()).collect();
    assert_eq!(recorded, rec.actions);
    assert_eq!(journal[0].seq, 1);

    // verify + replay reproduce the live timeline exactly.
    assert_eq!(
        history.verify(None).unwrap(),
        Verification::Intact {
            entries: rec.actions.len() as u64
        }
    );
    let replay = history.replay(None).unwrap();
    assert_eq!(replay.timeline().unwrap(), rec.timeline);

    // Not found.
    assert!(matches!(history.show(Some(99)), Err(HistoryError::NoSuchRun(99))));

    // The CLI renderings.
    let mut out = Vec::new();
    assert_eq!(cli::history(&db(&dir), 10, false, &mut out).unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("RUN") && text.contains("failed") && text.trim_end().ends_with('c'),
        "{text}"
    );
    let mut out = Vec::new();
    cli::history(&db(&dir), 10, true, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v[0]["failed_phase"], "c");
    let mut out = Vec::new();
    cli::show(&db(&dir), None, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("run 1 · lib · failed (exit 1)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with('b') && l.contains("completed") && l.contains(" 2 ")),
        "{text}"
    );
    let mut out = Vec::new();
    cli::show(&db(&dir), Some("1"), true, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["phases"][0]["name"], "a");
    let mut out = Vec::new();
    cli::logs(&db(&dir), None, "a", Some(Stream::Stderr), &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "a warning\n");
    let mut out = Vec::new();
    assert_eq!(cli::replay(&db(&dir), None, false, &mut out).unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("journal verified: MAC chain intact"), "{text}");
    let mut out = Vec::new();
    cli::replay(&db(&dir), None, true, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, rec.timeline);
}

#[test]
fn read_commands_on_a_missing_database_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    let err = cli::history(&db(&dir), 5, false, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, HistoryError::NotFound { .. }));
    assert!(err.to_string().contains("history.db"), "{err}");
    assert!(!db(&dir).exists());
}

#[test]
fn a_tampered_journal_names_the_first_bad_entry() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let rec = record(&history, &library_pipeline(), RunOptions::default(), None);
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    // Change phase c's error in the journal: the @@PHASE_FAILED entry.
    let target: i64 = conn
        .query_row(
            "SELECT seq FROM journal WHERE run_id = ?1 AND action LIKE '%@@PHASE_FAILED%'",
            [rec.run],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE journal SET action = replace(action, 'c is broken', 'c is fine') WHERE run_id = ?1 AND seq = ?2",
        [rec.run, target],
    )
    .unwrap();
    // And a later one too: the first is reported.
    conn.execute(
        "UPDATE journal SET action = replace(action, '0', '1') WHERE run_id = ?1 AND seq = ?2",
        [rec.run, target + 1],
    )
    .unwrap();
    let v = history.verify(Some(rec.run)).unwrap();
    match &v {
        Verification::Broken {
            seq,
            action_type,
            reason,
        } => {
            assert_eq!(*seq, target);
            assert_eq!(action_type.as_deref(), Some("@@PHASE_FAILED"));
            assert!(reason.contains("does not match its hash"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let replay = history.replay(None).unwrap();
    assert_eq!(replay.verification, v);
    assert!(replay.state.is_none());
    let mut out = Vec::new();
    assert_eq!(cli::replay(&db(&dir), None, false, &mut out).unwrap(), 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(&format!("entry {target} (@@PHASE_FAILED)")), "{text}");

    // A deleted entry in the middle and one at the end are caught too.
    let history2 = History::open(&dir.path().join("b.db")).unwrap();
    let rec2 = record(&history2, &library_pipeline(), RunOptions::default(), None);
    let conn2 = rusqlite::Connection::open(dir.path().join("b.db")).unwrap();
    let n = rec2.actions.len() as i64;
    conn2
        .execute("DELETE FROM journal WHERE run_id = ?1 AND seq = ?2", [rec2.run, n])
        .unwrap();
    let v = history2.verify(None).unwrap();
    assert!(matches!(v, Verification::Broken { seq, .. } if seq == n), "{v:?}");
    let start: i64 = conn2
        .query_row(
            "SELECT min(seq) FROM journal WHERE run_id = ?1 AND action LIKE '%@@PHASE_START%'",
            [rec2.run],
            |r| r.get(0),
        )
        .unwrap();
    conn2
        .execute("DELETE FROM journal WHERE run_id = ?1 AND seq = ?2", [rec2.run, start])
        .unwrap();
    let v = history2.verify(None).unwrap();
    assert!(matches!(v, Verification::Broken { seq, .. } if seq == start), "{v:?}");
    assert!(v.to_string().contains("missing"), "{v}");

    // A captured line edited inside its log chunk.
    let history3 = History::open(&dir.path().join("c.db")).unwrap();
    let rec3 = record(&history3, &library_pipeline(), RunOptions::default(), None);
    let conn3 = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let (first, mut data): (i64, Vec<u8>) = conn3
        .query_row(
            "SELECT first_seq, data FROM logs WHERE run_id = ?1 AND phase = 'a'",
            [rec3.run],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let at = data.windows(8).position(|w| w == b"a line 3").unwrap();
    data[at + 7] = b'9';
    conn3
        .execute(
            "UPDATE logs SET data = ?2 WHERE run_id = ?1 AND phase = 'a'",
            rusqlite::params![rec3.run, data],
        )
        .unwrap();
    assert_eq!(history3.logs(None, "a", None).unwrap()[3].line, "a line 9");
    let v = history3.verify(None).unwrap();
    assert!(
        matches!(&v, Verification::Broken { seq, action_type: Some(t), .. } if *seq == first + 3 && t == "@@PHASE_LOG"),
        "{v:?}"
    );
}

fn command_pipeline(b_cmd: &str, c_cmd: &str) -> Pipeline {
    Pipeline::new(
        "cmds",
        [
            Phase::command("a", r#"echo '{"x": 1}' > "$MILO_OUTPUT"; echo a ran"#),
            Phase::command("b", b_cmd).depends_on(["a"]),
            Phase::command("c", c_cmd).depends_on(["b"]),
            Phase::command("d", "echo d ran").parallel(true),
        ],
    )
    .unwrap()
    .capture_output(true)
}

#[test]
fn resume_reuses_exactly_the_completed_unchanged_phases_and_feeds_their_results() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let b = r#"echo '"from b"' > "$MILO_OUTPUT""#;
    let first = command_pipeline(b, "exit 3");
    let rec = record(&history, &first, RunOptions::default(), None);
    assert_eq!(rec.status, Status::Failed);

    // Same definition: a, b, d reused; c runs again.
    let plan = history.resume_plan(None, &first).unwrap();
    assert_eq!(plan.run, rec.run);
    let mut reused: Vec<&str> = plan.reuse.keys().map(String::as_str).collect();
    reused.sort();
    assert_eq!(reused, ["a", "b", "d"]);
    assert_eq!(plan.rerun, ["c"]);
    assert_eq!(plan.reuse["a"], (json!({"x": 1}), "1".to_owned()));
    assert_eq!(plan.reuse["b"], (json!("from b"), "1".to_owned()));

    // a changed: a runs again, and so does b, which depends on it; d is still reused.
    let changed = Pipeline::new(
        "cmds",
        [
            Phase::command("a", "echo changed"),
            Phase::command("b", b).depends_on(["a"]),
            Phase::command("c", "exit 3").depends_on(["b"]),
            Phase::command("d", "echo d ran").parallel(true),
        ],
    )
    .unwrap();
    let plan2 = history.resume_plan(Some(rec.run), &changed).unwrap();
    assert_eq!(plan2.reuse.keys().collect::<Vec<_>>(), ["d"]);
    assert_eq!(plan2.rerun, ["a", "b", "c"]);

    // Fix c and resume: only c runs, and it sees b's recorded result through MILO_INPUTS.
    let fixed = command_pipeline(b, r#"cat "$MILO_INPUTS"; echo"#);
    let (plan, note) = cli::resume(&history, None, &fixed).unwrap();
    assert_eq!(note, "resuming run 1: 3 phases reused (a, d, b), 1 to run (c)");
    let rec2 = record(
        &history,
        &fixed,
        RunOptions {
            reuse: plan.reuse,
            ..Default::default()
        },
        Some(plan.run),
    );
    assert_eq!(rec2.status, Status::Completed);
    let detail = history.show(Some(rec2.run)).unwrap();
    assert_eq!(detail.run.resumed_from, Some(rec.run));
    for p in &detail.phases {
        assert_eq!(p.status, "completed", "{p:?}");
        let expected = (p.name != "c").then(|| "1".to_owned());
        assert_eq!(p.reused_from, expected, "{p:?}");
    }
    let c_logs = history.logs(Some(rec2.run), "c", None).unwrap();
    let inputs: serde_json::Value = serde_json::from_str(&c_logs[0].line).unwrap();
    assert_eq!(inputs, json!({"b": "from b"}));
    // Nothing ran in a, b, d: no output recorded.
    assert!(history.logs(Some(rec2.run), "a", None).unwrap().is_empty());

    // A completed run cannot be resumed; a chain of resumes keeps the original run.
    let err = history.resume_plan(None, &fixed).unwrap_err();
    assert!(matches!(err, HistoryError::NotResumable { run: 2, .. }), "{err}");
    assert!(err.to_string().contains("run 2 is completed"), "{err}");
    // Another pipeline's run.
    let err = history.resume_plan(Some(rec.run), &library_pipeline()).unwrap_err();
    assert!(matches!(err, HistoryError::OtherPipeline { .. }), "{err}");
}

#[test]
fn median_durations_come_from_successful_runs_only() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    assert!(history.median_durations("p").unwrap().is_empty());
    let sleepy = |ms: u64| {
        Pipeline::new(
            "p",
            [Phase::new_async("s", move |_| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, String>(())
            })],
        )
        .unwrap()
    };
    for ms in [10, 200, 40] {
        record(&history, &sleepy(ms), RunOptions::default(), None);
    }
    let failing = Pipeline::new(
        "p",
        [Phase::new_async("s", |_| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Err::<(), _>("no")
        })],
    )
    .unwrap();
    record(&history, &failing, RunOptions::default(), None);
    let m = history.median_durations("p").unwrap();
    let s = m["s"];
    assert!((0.035..0.2).contains(&s), "median {s}");
    assert!(history.median_durations("other").unwrap().is_empty());
}

#[test]
fn a_newer_schema_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(History::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = History::open(&path).unwrap_err();
    assert!(
        matches!(err, HistoryError::TooNew { found: 99, supported, .. } if supported == milo_history::SCHEMA_VERSION)
    );
    let msg = err.to_string();
    assert!(msg.contains("newer milo") && msg.contains("upgrade milo"), "{msg}");
}

#[test]
fn corrupt_or_foreign_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5au8; 8192]).unwrap();
    let err = History::open(&garbage).unwrap_err();
    assert!(matches!(err, HistoryError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("--no-history"), "{err}");
    assert!(cli::open_for_run(Path::new("milo.toml"), Some(&garbage)).is_none());

    // A valid SQLite file of another program.
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = History::open(&foreign).unwrap_err();
    assert!(err.to_string().contains("not one milo wrote"), "{err}");

    // A truncated history: header fine, pages missing.
    let good = dir.path().join("good.db");
    {
        let h = History::open(&good).unwrap();
        record(&h, &library_pipeline(), RunOptions::default(), None);
    }
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len().min(4096 + 100)]).unwrap();
    match History::open(&cut) {
        Err(_) => {}
        Ok(h) => {
            // Opened: queries fail cleanly instead.
            let _ = h.runs(10);
            let _ = h.replay(None);
        }
    }

    // A directory where the file should be.
    let err = History::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, HistoryError::Open { .. } | HistoryError::Corrupt { .. }),
        "{err}"
    );
}

#[test]
fn open_for_run_puts_the_database_beside_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub").join("milo.toml");
    let h = cli::open_for_run(&file, None).unwrap();
    assert_eq!(h.path(), dir.path().join("sub/.milo/history.db"));
    assert!(h.path().exists());
}

#[test]
fn a_dropped_recorder_leaves_the_run_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let recorder = history.recorder(&library_pipeline(), RecordOptions::default()).unwrap();
    let id = recorder.run_id();
    drop(recorder);
    assert_eq!(history.run(Some(id)).unwrap().status, RunStatus::Interrupted);
}

// ---------------------------------------------------------------------------------------------
// SIGKILL: the test re-runs this test binary as a child that records forever.

const CHILD_ENV: &str = "MILO_HISTORY_TEST_CHILD_DB";

/// In the child: record a run that logs forever. In the parent: nothing.
#[test]
fn child_recorder() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let history = History::open(Path::new(&path)).unwrap();
    let pipeline = Pipeline::new(
        "forever",
        [
            Phase::new("first", |_| Ok::<_, String>(json!("done"))),
            Phase::new_async("spin", |cx| async move {
                for i in 0u64.. {
                    cx.log(Stream::Stdout, format!("line {i}"));
                    if i % 100 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Ok::<_, String>(())
            })
            .depends_on(["first"]),
        ],
    )
    .unwrap()
    .capture_output(true);
    let recorder = history.recorder(&pipeline, RecordOptions::default()).unwrap();
    rt().block_on(async {
        let store = pipeline.store().unwrap();
        let _sub = recorder.subscribe(&store);
        let _ = pipeline.run_with(&store, RunOptions::default()).await;
    });
    unreachable!("the parent kills this process");
}

#[test]
fn a_recorder_killed_with_sigkill_leaves_a_readable_database_and_an_interrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_recorder", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a good number of lines are committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the child never recorded 5000 lines");
        std::thread::sleep(Duration::from_millis(50));
        let Ok(conn) = rusqlite::Connection::open(&path) else {
            continue;
        };
        let n: i64 = conn
            .query_row("SELECT coalesce(sum(lines), 0) FROM logs", [], |r| r.get(0))
            .unwrap_or(0);
        if n >= 5000 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let history = History::open(&path).unwrap();
    let run = history.run(None).unwrap();
    assert_eq!(run.status, RunStatus::Interrupted, "{run:?}");
    assert!(run.duration.is_some());
    let detail = history.show(None).unwrap();
    let phase = |n: &str| detail.phases.iter().find(|p| p.name == n).unwrap().clone();
    assert_eq!(phase("first").status, "completed");
    assert_eq!(phase("first").result, Some(json!("done")));
    assert_eq!(phase("spin").status, "interrupted");
    let logs = history.logs(None, "spin", None).unwrap();
    assert!(logs.len() >= 5000);
    for (i, l) in logs.iter().enumerate() {
        assert_eq!(l.line, format!("line {i}"));
    }
    assert_eq!(phase("spin").log_count as usize, logs.len());
    // Everything committed verifies and replays.
    let replay = history.replay(None).unwrap();
    assert!(replay.verification.is_intact(), "{}", replay.verification);
    let state = replay.state.unwrap();
    assert_eq!(state.phase("spin").unwrap().log_count as usize, logs.len());
    // And the history keeps working.
    let rec = record(&history, &library_pipeline(), RunOptions::default(), None);
    assert_eq!(history.runs(10).unwrap()[0].id, rec.run);
}

/// Rewrites run `run` into the version 1 encoding (every line chained on its own, chunks
/// without a link), as schema version 1 wrote it.
fn rewrite_as_v1(history: &History, conn: &rusqlite::Connection, run: i64) {
    use milo_history::chunk;
    use sha2::{Digest, Sha256};
    let journal = history.journal(Some(run)).unwrap();
    let json_seqs: std::collections::HashSet<i64> = {
        let mut stmt = conn.prepare("SELECT seq FROM journal WHERE run_id = ?1").unwrap();
        stmt.query_map([run], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut head = [0u8; 32];
    let mut chunks: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut input = Vec::new();
    for e in &journal {
        let bytes = if json_seqs.contains(&e.seq) {
            e.json.as_bytes().to_vec()
        } else {
            let PipelineAction::PhaseLog {
                name,
                line,
                stream,
                timestamp,
            } = e.action().unwrap()
            else {
                panic!("not a line: {}", e.json)
            };
            chunk::hash_input(&mut input, &name, stream, timestamp, &line);
            input.clone()
        };
        let mut h = Sha256::new();
        h.update(head);
        h.update(&bytes);
        head = h.finalize().into();
        if json_seqs.contains(&e.seq) {
            conn.execute(
                "UPDATE journal SET hash = ?3 WHERE run_id = ?1 AND seq = ?2",
                rusqlite::params![run, e.seq, &head[..]],
            )
            .unwrap();
        } else if let PipelineAction::PhaseLog {
            name,
            line,
            stream,
            timestamp,
        } = e.action().unwrap()
        {
            let buf = chunks.entry(name.to_string()).or_default();
            chunk::encode_v1(buf, e.seq, stream, timestamp, &head, &line);
        }
    }
    conn.execute("DELETE FROM logs WHERE run_id = ?1", [run]).unwrap();
    for (phase, data) in chunks {
        let entries = chunk::decode(&data, false).unwrap();
        conn.execute(
            "INSERT INTO logs (run_id, phase, first_seq, last_seq, lines, data) VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
            rusqlite::params![run, phase, entries[0].seq, entries.len() as i64, data],
        )
        .unwrap();
    }
    // The unkeyed chain of milo before the journal key: no chain name, no seal.
    conn.execute(
        "UPDATE runs SET journal_head = ?2, chain = NULL, seal = NULL WHERE id = ?1",
        rusqlite::params![run, &head[..]],
    )
    .unwrap();
}

#[test]
fn version_1_log_chunks_still_read_verify_and_name_a_changed_line() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let rec = record(&history, &library_pipeline(), RunOptions::default(), None);
    let before = history.logs(None, "a", None).unwrap();
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    rewrite_as_v1(&history, &conn, rec.run);
    let hashes: i64 = conn
        .query_row("SELECT count(hash) FROM logs WHERE run_id = ?1", [rec.run], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(hashes, 0, "still version 2 chunks");
    assert_eq!(history.logs(None, "a", None).unwrap(), before);
    // Undamaged, replayed, but not called intact: anyone can recompute an unkeyed chain.
    let replay = history.replay(None).unwrap();
    assert!(
        matches!(&replay.verification, Verification::Unverified { reason, .. } if reason.contains("unkeyed")),
        "{}",
        replay.verification
    );
    assert!(!replay.verification.is_intact() && !replay.verification.is_tampered());
    assert_eq!(replay.timeline().unwrap(), rec.timeline);

    let mut data: Vec<u8> = conn
        .query_row(
            "SELECT data FROM logs WHERE run_id = ?1 AND phase = 'a'",
            [rec.run],
            |r| r.get(0),
        )
        .unwrap();
    let at = data.windows(8).position(|w| w == b"a line 5").unwrap();
    data[at + 7] = b'6';
    conn.execute(
        "UPDATE logs SET data = ?2 WHERE run_id = ?1 AND phase = 'a'",
        rusqlite::params![rec.run, data],
    )
    .unwrap();
    let v = history.verify(None).unwrap();
    assert!(
        matches!(&v, Verification::Broken { seq, action_type: Some(t), .. } if *seq == before[5].seq && t == "@@PHASE_LOG"),
        "{v:?}"
    );
}

#[test]
fn a_changed_line_with_a_forged_tag_still_breaks_the_chunk_link() {
    use milo_history::chunk::{self, Check, Encoder};
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let rec = record(&history, &library_pipeline(), RunOptions::default(), None);
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    let (first, data): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT first_seq, data FROM logs WHERE run_id = ?1 AND phase = 'a' ORDER BY first_seq LIMIT 1",
            [rec.run],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Re-encode the chunk with line 4 changed and its tag recomputed to match.
    let mut enc = Encoder::default();
    let mut input = Vec::new();
    for e in chunk::decode(&data, true).unwrap() {
        let line = if e.line == "a line 4" {
            "a line X".to_owned()
        } else {
            e.line
        };
        chunk::hash_input(&mut input, "a", e.stream, e.timestamp, &line);
        assert!(matches!(e.check, Check::Tag(_)));
        enc.push(e.seq, e.stream, e.timestamp, chunk::tag(e.seq, &input), &line);
    }
    conn.execute(
        "UPDATE logs SET data = ?3 WHERE run_id = ?1 AND phase = 'a' AND first_seq = ?2",
        rusqlite::params![rec.run, first, enc.buf],
    )
    .unwrap();
    let v = history.verify(None).unwrap();
    match &v {
        Verification::Broken { seq, reason, .. } => {
            // Caught at the next link (a JSON entry or the chunk's), which names the range
            // of lines since the last good link: it starts at the chunk's first line.
            assert!(*seq >= first, "{v}");
            assert!(reason.contains("does not match"), "{reason}");
            assert!(
                *seq == first || reason.contains(&format!("from entry {first} on")),
                "{v}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(history.replay(None).unwrap().state.is_none());
}

#[test]
fn opening_a_new_database_from_many_threads_at_once_never_fails() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || History::open(&path).map(|h| h.runs(1).unwrap().len()))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), 0);
        }
    }
}

#[test]
fn a_version_2_database_moves_its_definitions_out_of_the_run_rows() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = library_pipeline();
    let (first, second, timeline) = {
        let history = History::open(&db(&dir)).unwrap();
        let first = record(&history, &pipeline, RunOptions::default(), None);
        let second = record(&history, &pipeline, RunOptions::default(), None);
        (first.run, second.run, second.timeline)
    };
    // Turn the file back into schema version 2: the definition inside each run row, no
    // chain columns (their values are put back after the migration: these runs were keyed).
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    let chains: Vec<(i64, Option<String>, Option<Vec<u8>>)> = conn
        .prepare("SELECT id, chain, seal FROM runs")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute_batch(
        "ALTER TABLE runs ADD COLUMN def_json TEXT NOT NULL DEFAULT '';
         UPDATE runs SET def_json = (SELECT def_json FROM defs WHERE defs.def_hash = runs.def_hash);
         DROP TABLE defs;
         ALTER TABLE runs DROP COLUMN chain;
         ALTER TABLE runs DROP COLUMN seal;
         ALTER TABLE runs DROP COLUMN recording_error;
         ALTER TABLE phases DROP COLUMN decision_key;
         ALTER TABLE phases DROP COLUMN verdict;
         ALTER TABLE phases DROP COLUMN reason;
         ALTER TABLE phases DROP COLUMN job_ids;
         ALTER TABLE runs DROP COLUMN params;
         ALTER TABLE runs DROP COLUMN trigger;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);

    let history = History::open(&db(&dir)).unwrap();
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    for (id, chain, seal) in chains {
        conn.execute(
            "UPDATE runs SET chain = ?2, seal = ?3 WHERE id = ?1",
            rusqlite::params![id, chain, seal],
        )
        .unwrap();
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, milo_history::SCHEMA_VERSION);
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('runs')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!columns.iter().any(|c| c == "def_json"), "{columns:?}");
    // Two runs of one pipeline share one stored definition.
    let defs: i64 = conn.query_row("SELECT count(*) FROM defs", [], |r| r.get(0)).unwrap();
    assert_eq!(defs, 1);
    // Both runs still replay from their (shared) definition.
    for run in [first, second] {
        let replay = history.replay(Some(run)).unwrap();
        assert!(replay.verification.is_intact(), "{}", replay.verification);
    }
    assert_eq!(history.replay(Some(second)).unwrap().timeline().unwrap(), timeline);
    // And a new run after the migration records into the new table.
    let third = record(&history, &pipeline, RunOptions::default(), None);
    assert_eq!(
        history.replay(Some(third.run)).unwrap().timeline().unwrap(),
        third.timeline
    );
}

/// An [`Incremental`] that finds `gen` restored from the cache, `lib` up to date (each with a
/// recorded result and line), and runs `compile` because a source changed; `plain` is not
/// incremental.
struct Decider;

impl Incremental for Decider {
    fn is_incremental(&self, phase: &str) -> bool {
        phase != "plain"
    }

    fn check(&self, phase: &str, _deps: &[Dependency<'_>]) -> Result<Check, String> {
        let decision = |verdict, reason: &str| Decision {
            key: format!("key-{phase}").into(),
            verdict,
            reason: reason.into(),
        };
        let recorded = || milo::pipeline::Recorded {
            result: json!({ "from": phase }),
            logs: vec![(Stream::Stdout, format!("{phase} said this before"))],
        };
        Ok(match phase {
            "gen" => Check::Fresh(
                decision(Verdict::Restored, "output out/gen was deleted (restored from cache)"),
                recorded(),
            ),
            "lib" => Check::Fresh(decision(Verdict::UpToDate, "up to date"), recorded()),
            // A file name is user-controlled: the escape must not reach a terminal.
            _ => Check::Run(decision(Verdict::Run, "src/main\u{1b}[2J.c changed")),
        })
    }

    fn record(&self, _: &str, _: &Decision, _: &serde_json::Value, _: &[(Stream, String)]) -> Result<(), String> {
        Ok(())
    }
}

fn incremental_pipeline(plain_fails: bool) -> Pipeline {
    Pipeline::new(
        "inc",
        [
            Phase::new("gen", |_| Ok::<_, String>(json!("ran"))),
            Phase::new("lib", |_| Ok::<_, String>(json!("ran"))).depends_on(["gen"]),
            Phase::new("compile", |cx| {
                cx.log(Stream::Stdout, "compiling");
                std::thread::sleep(Duration::from_millis(20));
                Ok::<_, String>(json!("binary"))
            })
            .depends_on(["lib"]),
            Phase::new("plain", move |_| {
                if plain_fails {
                    Err("plain broke".to_owned())
                } else {
                    Ok(())
                }
            })
            .depends_on(["compile"]),
        ],
    )
    .unwrap()
    .capture_output(true)
    .incremental(Arc::new(Decider))
}

#[test]
fn decisions_are_recorded_verified_shown_and_kept_out_of_the_medians() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let pipeline = incremental_pipeline(false);
    let rec = record(&history, &pipeline, RunOptions::default(), None);
    assert_eq!(rec.status, Status::Completed);
    assert!(
        rec.actions
            .iter()
            .any(|a| matches!(a, PipelineAction::PhaseDecision { .. }))
    );

    // The phase rows carry each decision; `fresh` tells the phases that did not run.
    let detail = history.show(Some(rec.run)).unwrap();
    let phase = |n: &str| detail.phases.iter().find(|p| p.name == n).unwrap().clone();
    let gen_phase = phase("gen");
    assert_eq!(gen_phase.status, "completed");
    assert_eq!(gen_phase.key.as_deref(), Some("key-gen"));
    assert_eq!(gen_phase.verdict.as_deref(), Some("restored"));
    assert_eq!(gen_phase.fresh(), Some("restored"));
    assert_eq!(gen_phase.attempts, 0);
    assert_eq!(gen_phase.result, Some(json!({"from": "gen"})));
    assert_eq!(gen_phase.log_count, 1);
    assert_eq!(phase("lib").fresh(), Some("up_to_date"));
    let compile = phase("compile");
    assert_eq!(compile.verdict.as_deref(), Some("run"));
    assert_eq!(compile.fresh(), None);
    assert_eq!(compile.reason.as_deref(), Some("src/main\u{1b}[2J.c changed"));
    let plain = phase("plain");
    assert_eq!((plain.key, plain.verdict, plain.reason), (None, None, None));
    // The replayed lines are the phase's logs.
    assert_eq!(
        history.logs(Some(rec.run), "gen", None).unwrap()[0].line,
        "gen said this before"
    );

    // The journal replays to the same timeline, decisions included, and the rows agree.
    let replay = history.replay(Some(rec.run)).unwrap();
    assert!(replay.verification.is_intact(), "{}", replay.verification);
    let timeline = replay.timeline().unwrap();
    assert_eq!(timeline, rec.timeline);
    assert_eq!(timeline["phases"][0]["verdict"], "restored");

    // `milo show`: the state, the reason (terminal-safe), and the counts on the run's line.
    let mut out = Vec::new();
    cli::show(&db(&dir), None, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.ends_with(" · 2 ran, 2 up to date (1 restored)"), "{text}");
    let line = |n: &str| text.lines().find(|l| l.starts_with(n)).unwrap().to_owned();
    assert!(line("gen ").contains("restored"), "{text}");
    assert!(!line("gen ").contains("completed"), "{text}");
    assert!(
        line("gen ").ends_with("  — output out/gen was deleted (restored from cache)"),
        "{text}"
    );
    assert!(line("lib ").contains("up to date"), "{text}");
    assert!(
        line("lib ").trim_end().ends_with('1'),
        "the reason repeats the state: {text}"
    );
    assert!(line("compile").contains("completed"), "{text}");
    assert!(line("compile").ends_with("  — src/main.c changed"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(line("plain").trim_end().ends_with('0'), "{text}");
    // `milo replay` reads the same states.
    let mut out = Vec::new();
    cli::replay(&db(&dir), None, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("lib") && l.contains("up to date")),
        "{text}"
    );
    assert!(text.contains("— src/main.c changed"), "{text}");

    // Fresh phases took no time of their own: no median from them.
    let medians = history.median_durations("inc").unwrap();
    assert!(
        !medians.contains_key("gen") && !medians.contains_key("lib"),
        "{medians:?}"
    );
    assert!(medians["compile"] >= 0.015, "{medians:?}");

    // The verdict is checked like every other column of the row.
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    conn.execute(
        "UPDATE phases SET verdict = 'run' WHERE run_id = ?1 AND name = 'gen'",
        [rec.run],
    )
    .unwrap();
    let v = history.verify(Some(rec.run)).unwrap();
    assert!(
        matches!(&v, Verification::Disagrees { reason } if reason.contains("`gen`'s verdict")),
        "{v:?}"
    );
    conn.execute(
        "UPDATE phases SET verdict = 'restored', reason = 'forged' WHERE run_id = ?1 AND name = 'gen'",
        [rec.run],
    )
    .unwrap();
    let v = history.verify(Some(rec.run)).unwrap();
    assert!(
        matches!(&v, Verification::Disagrees { reason } if reason.contains("decision reason")),
        "{v:?}"
    );
}

#[test]
fn resuming_counts_a_fresh_phase_as_completed_with_its_recorded_result() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let rec = record(&history, &incremental_pipeline(true), RunOptions::default(), None);
    assert_eq!(rec.status, Status::Failed);
    let plan = history.resume_plan(None, &incremental_pipeline(false)).unwrap();
    assert_eq!(plan.rerun, ["plain"]);
    assert_eq!(plan.reuse["gen"], (json!({"from": "gen"}), rec.run.to_string()));
    assert_eq!(plan.reuse["lib"], (json!({"from": "lib"}), rec.run.to_string()));
    assert_eq!(plan.reuse["compile"], (json!("binary"), rec.run.to_string()));
}

#[test]
fn a_version_4_database_gains_the_decision_columns() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = library_pipeline();
    let (old, timeline) = {
        let history = History::open(&db(&dir)).unwrap();
        let rec = record(&history, &pipeline, RunOptions::default(), None);
        (rec.run, rec.timeline)
    };
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    conn.execute_batch(
        "ALTER TABLE phases DROP COLUMN decision_key;
         ALTER TABLE phases DROP COLUMN verdict;
         ALTER TABLE phases DROP COLUMN reason;
         ALTER TABLE phases DROP COLUMN job_ids;
         ALTER TABLE runs DROP COLUMN params;
         ALTER TABLE runs DROP COLUMN trigger;
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);

    let history = History::open(&db(&dir)).unwrap();
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, milo_history::SCHEMA_VERSION);
    assert_eq!(milo_history::SCHEMA_VERSION, 8);
    let run_columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('runs')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(run_columns.iter().any(|n| n == "params"), "{run_columns:?}");
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('phases')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for c in ["decision_key", "verdict", "reason"] {
        assert!(columns.iter().any(|n| n == c), "{c}: {columns:?}");
    }
    // The old run: no decisions, still verified, the same timeline, shown as before.
    let replay = history.replay(Some(old)).unwrap();
    assert!(replay.verification.is_intact(), "{}", replay.verification);
    assert_eq!(replay.timeline().unwrap(), timeline);
    let detail = history.show(Some(old)).unwrap();
    assert!(detail.phases.iter().all(|p| p.verdict.is_none() && p.key.is_none()));
    let mut out = Vec::new();
    cli::show(&db(&dir), Some(&old.to_string()), false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("up to date") && !text.contains(" ran,"), "{text}");
    // A new incremental run records its decisions.
    let rec = record(&history, &incremental_pipeline(false), RunOptions::default(), None);
    let detail = history.show(Some(rec.run)).unwrap();
    assert_eq!(detail.phases[0].verdict.as_deref(), Some("restored"));
    assert!(history.verify(Some(rec.run)).unwrap().is_intact());
}

/// Records one run of `pipeline` in a new history in `dir`, then turns the file into an older
/// schema's with `sql`; the run's id.
fn run_then_downgrade(dir: &tempfile::TempDir, pipeline: &Pipeline, sql: &str) -> i64 {
    let old = {
        let history = History::open(&db(dir)).unwrap();
        record(&history, pipeline, RunOptions::default(), None).run
    };
    let conn = rusqlite::Connection::open(db(dir)).unwrap();
    conn.execute_batch(sql).unwrap();
    old
}

#[test]
fn a_version_6_database_gains_the_job_ids_and_records_them_from_queued_actions() {
    use milo::pipeline::PipelineAction as A;

    let dir = tempfile::tempdir().unwrap();
    let pipeline = library_pipeline();
    let old = run_then_downgrade(
        &dir,
        &pipeline,
        "ALTER TABLE phases DROP COLUMN job_ids; ALTER TABLE runs DROP COLUMN trigger; PRAGMA user_version = 6;",
    );

    let history = History::open(&db(&dir)).unwrap();
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, milo_history::SCHEMA_VERSION);
    // The old run has no job ids and still verifies.
    assert!(history.verify(Some(old)).unwrap().is_intact());
    assert!(
        history
            .show(Some(old))
            .unwrap()
            .phases
            .iter()
            .all(|p| p.job_ids.is_empty())
    );

    // A phase queued twice (a retry) keeps both ids, in order; replay agrees with the rows.
    let first = pipeline.execution_order()[0].clone();
    let name: std::sync::Arc<str> = first.as_str().into();
    let store = pipeline.store().unwrap();
    let recorder = history.recorder(&pipeline, Default::default()).unwrap();
    let sub = recorder.subscribe(&store);
    let put = |a: A| store.dispatch(a).unwrap();
    put(A::PipelineStart {
        name: pipeline.name().into(),
        timestamp: 0.0,
        started_at: None,
    });
    for (attempt, id) in [(1, "17"), (2, "18")] {
        put(A::PhaseStart {
            name: name.clone(),
            attempt,
            timestamp: 0.1,
        });
        put(A::PhaseQueued {
            name: name.clone(),
            job_id: id.into(),
            timestamp: 0.2,
        });
        assert_eq!(
            store.get_state().phase(&first).unwrap().status,
            milo::pipeline::Status::Queued
        );
        put(A::PhaseRunning {
            name: name.clone(),
            job_id: id.into(),
            timestamp: 0.3,
        });
    }
    put(A::PipelineCancelled { timestamp: 0.4 });
    drop(sub);
    let run = recorder.run_id();
    recorder.finish(milo::pipeline::Status::Cancelled, 130).unwrap();
    let detail = history.show(Some(run)).unwrap();
    let p = detail.phases.iter().find(|p| p.name == first).unwrap();
    assert_eq!(p.job_ids, ["17", "18"]);
    assert!(history.verify(Some(run)).unwrap().is_intact());
    let replay = history.replay(Some(run)).unwrap();
    assert!(replay.verification.is_intact(), "{}", replay.verification);
}

#[test]
fn a_version_7_database_gains_the_trigger_and_keeps_its_runs_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = library_pipeline();
    let old = run_then_downgrade(
        &dir,
        &pipeline,
        "ALTER TABLE runs DROP COLUMN trigger; PRAGMA user_version = 7;",
    );

    let history = History::open(&db(&dir)).unwrap();
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 8);
    // The old run reads, without a trigger, and still verifies.
    let detail = history.show(Some(old)).unwrap();
    assert_eq!(detail.run.trigger, None);
    assert_eq!(detail.phases.len(), 4);
    assert!(history.verify(Some(old)).unwrap().is_intact());

    // A watch cycle's trigger is recorded, read back and covered by the chain.
    let trigger = Trigger::watch(3, vec!["src/a.c".into(), "src/b.h".into()]);
    let recorder = history
        .recorder(
            &pipeline,
            RecordOptions {
                trigger: Some(trigger.clone()),
                ..RecordOptions::default()
            },
        )
        .unwrap();
    let report = rt().block_on(async {
        let store = pipeline.store().unwrap();
        let _sub = recorder.subscribe(&store);
        pipeline.run_with(&store, RunOptions::default()).await.unwrap()
    });
    let run = recorder.finish(report.status, 1).unwrap();
    assert_eq!(history.show(Some(run)).unwrap().run.trigger, Some(trigger));
    let verified = history.verify(Some(run)).unwrap();
    assert!(verified.is_intact(), "{verified}");
    conn.execute(
        "UPDATE runs SET trigger = '{\"watch_cycle\":3,\"changed\":[\"src/evil.c\"]}' WHERE id = ?1",
        [run],
    )
    .unwrap();
    assert!(history.verify(Some(run)).unwrap().is_tampered());
    // A plain run before it is untouched by the edit.
    assert!(history.verify(Some(old)).unwrap().is_intact());
}

/// `build`, then three instances of matrix phase `test` declared out of name order.
fn matrix_pipeline() -> Pipeline {
    let group = Arc::new(milo::pipeline::PhaseGroup {
        name: "test".into(),
        max_parallel: None,
        fail_fast: false,
    });
    let ok = |_: &milo::pipeline::PhaseContext| Ok::<_, String>(());
    Pipeline::new(
        "m",
        [
            Phase::new("build", ok),
            Phase::new("test[v=3]", ok).depends_on(["build"]).group(group.clone()),
            Phase::new("test[v=1]", ok).depends_on(["build"]).group(group.clone()),
            Phase::new("test[v=2]", ok).depends_on(["build"]).group(group),
        ],
    )
    .unwrap()
}

#[test]
fn show_groups_instances_by_the_recorded_definition_or_by_their_names_before_it_kept_groups() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&db(&dir)).unwrap();
    let pipeline = matrix_pipeline();
    let run = record(&history, &pipeline, RunOptions::default(), None).run;
    let groups = |history: &History| -> Vec<(String, Option<String>)> {
        let detail = history.show(Some(run)).unwrap();
        let rows = detail.rows();
        assert_eq!(
            rows,
            vec![
                milo::pipeline::Row::Phase(0),
                milo::pipeline::Row::Group {
                    name: "test".into(),
                    // Declaration order, as the summary lists them.
                    members: ["test[v=3]", "test[v=1]", "test[v=2]"]
                        .iter()
                        .map(|n| detail.phases.iter().position(|p| p.name == *n).unwrap())
                        .collect()
                },
            ]
        );
        detail
            .phases
            .iter()
            .map(|p| (p.name.clone(), p.group.clone()))
            .collect()
    };
    let recorded = groups(&history);
    assert!(recorded.contains(&("build".into(), None)));
    assert!(recorded.contains(&("test[v=1]".into(), Some("test".into()))));
    assert!(history.verify(Some(run)).unwrap().is_intact());

    // The same run as an older milo recorded it: a definition without groups.
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    let json: String = conn.query_row("SELECT def_json FROM defs", [], |r| r.get(0)).unwrap();
    let without: String = json.replace(r#","group":"test""#, "");
    assert_ne!(json, without, "{json}");
    conn.execute("UPDATE defs SET def_json = ?1", [&without]).unwrap();
    assert_eq!(groups(&history), recorded);
}
