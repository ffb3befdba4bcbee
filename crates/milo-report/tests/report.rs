//! The HTML page (parsed back with an HTML parser), the Chrome trace, and reports built from
//! a real run history and from timeline files.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use milo::capture::Stream;
use milo::pipeline::{Phase, PhasePolicy, Pipeline, RunOptions, Status, pipeline_to_timeline};
use milo_history::{History, HistoryError, RecordOptions};
use milo_report::cli::{ReportFormat, report};
use milo_report::{ReportError, ReportRun, render_chrome_trace, render_html};
use scraper::{ElementRef, Html, Selector};
use serde_json::{Value, json};

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn attr<'a>(e: &ElementRef<'a>, name: &str) -> &'a str {
    e.value()
        .attr(name)
        .unwrap_or_else(|| panic!("no {name} on {:?}", e.value()))
}

fn attr_f(e: &ElementRef<'_>, name: &str) -> f64 {
    attr(e, name).parse().unwrap()
}

struct Bar {
    phase: String,
    attempt: u32,
    status: String,
    x: f64,
    width: f64,
    critical: bool,
}

/// The chart's mapping (`x0`, px per second) and its bars, in document order.
fn bars(doc: &Html) -> (f64, f64, Vec<Bar>) {
    let svg = doc.select(&sel("svg.gantt")).next().expect("a Gantt chart");
    let x0 = attr_f(&svg, "data-x0");
    let scale = attr_f(&svg, "data-px-per-sec");
    let bars = doc
        .select(&sel("svg.gantt rect.bar"))
        .map(|r| Bar {
            phase: attr(&r, "data-phase").to_owned(),
            attempt: attr(&r, "data-attempt").parse().unwrap(),
            status: attr(&r, "data-status").to_owned(),
            x: attr_f(&r, "x"),
            width: attr_f(&r, "width"),
            critical: r.value().classes().any(|c| c == "critical"),
        })
        .collect();
    (x0, scale, bars)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.01
}

#[test]
fn the_gantt_chart_places_each_phase_by_its_times() {
    let run = ReportRun::from_timeline(&common::known_timeline()).unwrap();
    let html = render_html(&run);
    let doc = Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);

    // One row per phase, in execution order.
    let rows: Vec<&str> = doc
        .select(&sel("svg.gantt g.row"))
        .map(|g| attr(&g, "data-phase"))
        .collect();
    assert_eq!(rows, ["fetch", "build", "lint", "test", "deploy"]);

    // A bar per phase that ran: x proportional to its start, width to its duration.
    let (x0, scale, bars) = bars(&doc);
    assert!(scale > 0.0);
    let expected = [
        ("fetch", 0.0, 2.0, "completed"),
        ("build", 2.0, 6.0, "completed"),
        ("lint", 2.0, 3.0, "completed"),
        ("test", 6.0, 9.0, "failed"),
    ];
    assert_eq!(bars.len(), expected.len());
    for (bar, (name, start, end, status)) in bars.iter().zip(expected) {
        assert_eq!(
            (bar.phase.as_str(), bar.attempt, bar.status.as_str()),
            (name, 1, status)
        );
        assert!(
            close(bar.x, x0 + start * scale),
            "{name}: x {} vs {}",
            bar.x,
            x0 + start * scale
        );
        assert!(close(bar.width, (end - start) * scale), "{name}: width {}", bar.width);
    }
    let by: HashMap<&str, &Bar> = bars.iter().map(|b| (b.phase.as_str(), b)).collect();
    assert!(close(by["build"].width / by["fetch"].width, 2.0));
    assert!(close(by["lint"].x, by["build"].x), "lint and build start together");
    assert!(close(by["fetch"].x + by["fetch"].width, by["build"].x));
    // The whole run (10 s) spans the chart.
    assert!(close(x0 + 10.0 * scale, milo_report::html::GANTT_WIDTH - 20.0));

    // Critical path: fetch → build → test (lint finished earlier than build).
    let critical: Vec<&str> = bars.iter().filter(|b| b.critical).map(|b| b.phase.as_str()).collect();
    assert_eq!(critical, ["fetch", "build", "test"]);
    assert_eq!(doc.select(&sel("svg.graph path.edge.critical")).count(), 2);

    // A time axis.
    let ticks: Vec<String> = doc
        .select(&sel("svg.gantt text.tick"))
        .map(|t| t.text().collect())
        .collect();
    assert_eq!(ticks.first().map(String::as_str), Some("0"));
    assert_eq!(ticks.last().map(String::as_str), Some("10s"));

    // Dependency graph: every phase a node, parallel ones marked, every edge drawn.
    let nodes: Vec<(String, bool)> = doc
        .select(&sel("svg.graph g.node"))
        .map(|n| {
            (
                attr(&n, "data-node").to_owned(),
                n.value().classes().any(|c| c == "parallel"),
            )
        })
        .collect();
    assert_eq!(nodes.len(), 5);
    let parallel: Vec<&str> = nodes.iter().filter(|n| n.1).map(|n| n.0.as_str()).collect();
    assert_eq!(parallel, ["build", "lint"]);
    assert_eq!(doc.select(&sel("svg.graph path.edge")).count(), 5);

    // Table: status, attempts, duration, share.
    let row: Vec<String> = doc
        .select(&sel("table.phases tr[data-phase=\"build\"] td"))
        .map(|td| td.text().collect::<String>().trim().to_owned())
        .collect();
    assert_eq!(row[1], "completed");
    assert_eq!(row[2], "1");
    assert_eq!(row[3], "4s");
    assert_eq!(row[4], "40.0%");
    // The error is escaped text, not markup.
    let test_row = doc
        .select(&sel("table.phases tr[data-phase=\"test\"] td.err"))
        .next()
        .unwrap();
    assert_eq!(test_row.text().collect::<String>(), "1 test failed: <b>bold</b>");
    assert_eq!(doc.select(&sel("table.phases b")).count(), 0);

    // A timeline file has no logs: the page says where to find them.
    assert_eq!(doc.select(&sel("details.logs")).count(), 0);
    assert!(html.contains("not part of a timeline file"));
    // Self-contained: nothing loaded from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("url(http"));
    assert_eq!(doc.select(&sel("script[src], link[href], img[src]")).count(), 0);
}

#[test]
fn retries_are_separate_segments_and_logs_stay_text() {
    let run = common::retry_run();
    let html = render_html(&run);
    let doc = Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);

    let (x0, scale, bars) = bars(&doc);
    let flaky: Vec<&Bar> = bars.iter().filter(|b| b.phase == "flaky").collect();
    assert_eq!(flaky.len(), 2, "one rect per attempt");
    assert_eq!((flaky[0].attempt, flaky[0].status.as_str()), (1, "retried"));
    assert_eq!((flaky[1].attempt, flaky[1].status.as_str()), (2, "completed"));
    assert!(close(flaky[0].x, x0 + scale));
    assert!(close(flaky[1].x, x0 + 3.0 * scale));
    assert!(close(flaky[1].width, 2.0 * scale));
    // The wait between them.
    let wait = doc
        .select(&sel("svg.gantt line.wait[data-phase=\"flaky\"]"))
        .next()
        .expect("a wait line");
    assert!(close(attr_f(&wait, "x1"), x0 + 2.0 * scale));
    assert!(close(attr_f(&wait, "x2"), x0 + 3.0 * scale));
    // The attempt's error rides along for the tooltip, unescaped by the parser.
    let first = doc
        .select(&sel("rect.bar[data-phase=\"flaky\"][data-attempt=\"1\"]"))
        .next()
        .unwrap();
    assert_eq!(attr(&first, "data-error"), "connection reset \"<eof>\"");

    // Critical path: flaky ends last, depends on noisy.
    let critical: Vec<&str> = bars.iter().filter(|b| b.critical).map(|b| b.phase.as_str()).collect();
    assert_eq!(critical, ["noisy", "flaky", "flaky"]);

    // Exactly one script element: the page's own; log lines are text.
    assert_eq!(doc.select(&sel("script")).count(), 1);
    assert_eq!(doc.select(&sel("img")).count(), 0);
    let details = doc
        .select(&sel("details.logs[data-phase=\"noisy\"]"))
        .next()
        .expect("noisy's logs");
    let lines: Vec<(String, String)> = details
        .select(&sel("span.ln"))
        .map(|l| {
            let text: String = l
                .children()
                .skip(1)
                .filter_map(|c| c.value().as_text().map(|t| t.to_string()))
                .collect();
            (attr(&l, "data-stream").to_owned(), text)
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                "stdout".to_owned(),
                "<script>document.body.dataset.pwned = '1'</script>".to_owned()
            ),
            (
                "stderr".to_owned(),
                "warning: </pre></details><img src=x onerror=alert(1)> & more".to_owned()
            ),
        ]
    );
    assert_eq!(details.select(&sel("span.ln.stderr")).count(), 1);
    assert!(details.text().collect::<String>().contains("1 on stderr"));

    // History: a median and a sparkline of the earlier runs plus this one.
    let spark = doc
        .select(&sel("tr[data-phase=\"noisy\"] svg.spark"))
        .next()
        .expect("a sparkline");
    assert_eq!(attr(&spark, "data-points"), "4");
    let noisy_row: Vec<String> = doc
        .select(&sel("tr[data-phase=\"noisy\"] td"))
        .map(|td| td.text().collect::<String>())
        .collect();
    assert!(
        noisy_row.iter().any(|c| c == "900ms"),
        "median of 0.8, 1.2, 0.9: {noisy_row:?}"
    );
    // The title is escaped too.
    let title: String = doc.select(&sel("title")).next().unwrap().text().collect();
    assert_eq!(title, "milo report: retry <demo> — run 2");
}

/// Checks the trace-event format and returns the phase events (`cat` `phase`).
fn check_trace(trace: &Value) -> Vec<Value> {
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    for e in events {
        for key in ["name", "cat", "ph", "ts", "dur", "pid", "tid"] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
        assert_eq!(e["ph"], "X");
        assert!(e["name"].is_string());
        assert!(e["ts"].as_f64().unwrap() >= 0.0, "{e}");
        assert!(e["dur"].as_f64().unwrap() >= 0.0, "{e}");
        assert!(e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
    }
    // Events sharing a tid never overlap (tid 0 holds only the whole run).
    let mut by_tid: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for e in events {
        by_tid
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()));
    }
    for (tid, mut spans) in by_tid {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(w[1].0 >= w[0].0 + w[0].1 - 1e-3, "tid {tid}: {w:?} overlap");
        }
    }
    events.iter().filter(|e| e["cat"] == "phase").cloned().collect()
}

#[test]
fn the_chrome_trace_is_valid_trace_event_json() {
    let run = ReportRun::from_timeline(&common::known_timeline()).unwrap();
    let trace = render_chrome_trace(&run);
    // Round-trips through text.
    let trace: Value = serde_json::from_str(&serde_json::to_string(&trace).unwrap()).unwrap();
    let phases = check_trace(&trace);
    let find = |n: &str| phases.iter().find(|e| e["name"] == n).unwrap().clone();
    for (name, start, end) in [
        ("fetch", 0.0, 2.0),
        ("build", 2.0, 6.0),
        ("lint", 2.0, 3.0),
        ("test", 6.0, 9.0),
    ] {
        let e = find(name);
        assert!((e["ts"].as_f64().unwrap() - start * 1e6).abs() < 1e-3, "{e}");
        assert!((e["dur"].as_f64().unwrap() - (end - start) * 1e6).abs() < 1e-3, "{e}");
    }
    assert_eq!(phases.len(), 4, "deploy never ran");
    assert_ne!(
        find("build")["tid"],
        find("lint")["tid"],
        "concurrent phases get their own lanes"
    );
    assert_eq!(find("fetch")["tid"], find("build")["tid"]);
    assert_eq!(find("test")["args"]["error"], "1 test failed: <b>bold</b>");
    assert_eq!(trace["traceEvents"][0]["dur"].as_f64(), Some(10.0e6));

    // Retries: one event per attempt, and the wait between them.
    let trace = render_chrome_trace(&common::retry_run());
    let phases = check_trace(&trace);
    let flaky: Vec<&Value> = phases.iter().filter(|e| e["name"] == "flaky").collect();
    assert_eq!(flaky.len(), 2);
    assert_eq!(flaky[0]["args"]["attempt"], 1);
    assert_eq!(flaky[0]["args"]["status"], "retried");
    assert_eq!(flaky[1]["dur"].as_f64(), Some(2.0e6));
    let waits: Vec<&Value> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == "retry-wait")
        .collect();
    assert_eq!(waits.len(), 1);
    assert_eq!(
        (waits[0]["ts"].as_f64(), waits[0]["dur"].as_f64()),
        (Some(2.0e6), Some(1.0e6))
    );
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A pipeline whose `flaky` phase fails its first attempt and is retried after 50 ms.
fn retry_pipeline() -> Pipeline {
    let tries = Arc::new(AtomicU32::new(0));
    Pipeline::new(
        "retry-demo",
        [
            Phase::new("prepare", |cx| {
                cx.log(Stream::Stdout, "<script>document.body.dataset.pwned = '1'</script>");
                cx.log(Stream::Stderr, "careful & <warned>");
                std::thread::sleep(Duration::from_millis(20));
                Ok::<_, String>(json!({"ok": true}))
            }),
            Phase::new("flaky", move |_| {
                std::thread::sleep(Duration::from_millis(10));
                if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err("first attempt fails".to_owned())
                } else {
                    Ok(())
                }
            })
            .depends_on(["prepare"])
            .policy(PhasePolicy::retry(2).retry_delay(Duration::from_millis(50))),
            Phase::new("side", |_| {
                std::thread::sleep(Duration::from_millis(5));
                Ok::<_, String>(())
            })
            .depends_on(["prepare"])
            .parallel(true),
        ],
    )
    .unwrap()
    .capture_output(true)
}

/// Records one run of a fresh [`retry_pipeline`]; returns its id and final timeline.
fn record(history: &History) -> (i64, Value) {
    let pipeline = retry_pipeline();
    let recorder = history.recorder(&pipeline, RecordOptions::default()).unwrap();
    let (report, state) = rt().block_on(async {
        let store = pipeline.store().unwrap();
        let _sub = recorder.subscribe(&store);
        let report = pipeline.run_with(&store, RunOptions::default()).await.unwrap();
        (report, store.get_state())
    });
    assert_eq!(report.status, Status::Completed);
    let id = recorder.finish(report.status, 0).unwrap();
    (id, pipeline_to_timeline(&state))
}

#[test]
fn a_report_from_the_history_has_every_attempt_logs_and_earlier_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join(".milo").join("history.db");
    let history = History::open(&db).unwrap();
    let (first, _) = record(&history);
    let (second, timeline) = record(&history);
    assert_eq!((first, second), (1, 2));

    let run = ReportRun::from_history(&history, None).unwrap();
    assert_eq!(
        (run.pipeline.as_str(), run.run, run.status.as_str()),
        ("retry-demo", Some(2), "completed")
    );
    let names: Vec<&str> = run.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prepare", "flaky", "side"]);
    let phase = |n: &str| run.phases.iter().find(|p| p.name == n).unwrap();

    // The retry: two attempts with the wait between them.
    let flaky = phase("flaky");
    assert_eq!(flaky.attempts, 2);
    assert_eq!(flaky.depends_on, ["prepare"]);
    let s = &flaky.segments;
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!((s[0].attempt, s[0].status.as_str()), (1, "retried"));
    assert_eq!(s[0].error.as_deref(), Some("first attempt fails"));
    assert_eq!(
        (s[1].attempt, s[1].status.as_str(), s[1].error.as_deref()),
        (2, "completed", None)
    );
    assert!(s[0].duration() >= 0.009, "{s:?}");
    assert!(s[1].start - s[0].end >= 0.045, "waited the retry delay: {s:?}");
    assert!(s[0].start >= phase("prepare").end().unwrap() - 1e-9);
    assert!(phase("side").parallel);
    assert!(run.elapsed >= flaky.end().unwrap());

    // Logs, both streams, in full.
    let logs = &phase("prepare").logs;
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[1].stream, Stream::Stderr);
    assert_eq!(logs[1].line, "careful & <warned>");

    // Earlier runs: run 1's durations.
    for p in &run.phases {
        assert_eq!(p.history.len(), 1, "{}: {:?}", p.name, p.history);
    }
    let run1 = ReportRun::from_history(&history, Some(first)).unwrap();
    assert!(run1.phases.iter().all(|p| p.history.is_empty()));

    // The page: two bars for flaky, the markup in the log as text.
    let doc = Html::parse_document(&render_html(&run));
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);
    assert_eq!(doc.select(&sel("rect.bar[data-phase=\"flaky\"]")).count(), 2);
    assert_eq!(doc.select(&sel("script")).count(), 1);
    assert_eq!(doc.select(&sel("details.logs")).count(), 1);
    assert_eq!(doc.select(&sel("svg.spark")).count(), 3);

    // The CLI function: HTML, trace, and the timeline file, to explicit and default paths.
    let out = dir.path().join("r.html");
    let msg = report(&db, Some("2"), None, Some(&out), ReportFormat::Html).unwrap();
    assert_eq!(
        msg,
        format!(
            "wrote the report of run 2 (retry-demo: 3 phases, completed) to {}",
            out.display()
        )
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("data-phase=\"flaky\""));

    let trace_path = dir.path().join("t.json");
    report(&db, None, None, Some(&trace_path), ReportFormat::ChromeTrace).unwrap();
    let trace: Value = serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).unwrap();
    let phases = check_trace(&trace);
    assert_eq!(phases.iter().filter(|e| e["name"] == "flaky").count(), 2);

    let tl = dir.path().join("timeline.json");
    std::fs::write(&tl, serde_json::to_vec(&timeline).unwrap()).unwrap();
    let from_tl = milo_report::cli::load(&db, None, Some(&tl)).unwrap();
    assert_eq!(from_tl.run, None);
    let tl_flaky = from_tl.phases.iter().find(|p| p.name == "flaky").unwrap();
    assert_eq!(tl_flaky.segments.len(), 1, "a timeline keeps one span per phase");
    assert_eq!(tl_flaky.segments[0].start, s[0].start);
    assert_eq!(tl_flaky.segments[0].end, s[1].end);
    assert!(from_tl.phases.iter().all(|p| p.logs.is_empty()));
    let out = dir.path().join("tl.html");
    let msg = report(&db, None, Some(&tl), Some(&out), ReportFormat::Html).unwrap();
    assert!(
        msg.contains("of the timeline (retry-demo: 3 phases, completed)"),
        "{msg}"
    );

    // Errors: a run and a timeline, no database, no such run, not a timeline.
    assert!(matches!(
        report(&db, Some("1"), Some(&tl), None, ReportFormat::Html),
        Err(ReportError::RunAndTimeline)
    ));
    let missing = dir.path().join("nope.db");
    let err = report(&missing, None, None, None, ReportFormat::Html).unwrap_err();
    assert!(
        matches!(err, ReportError::History(HistoryError::NotFound { .. })),
        "{err}"
    );
    let err = report(&db, Some("9"), None, None, ReportFormat::Html).unwrap_err();
    assert!(matches!(err, ReportError::History(HistoryError::NoSuchRun(9))), "{err}");
    assert_eq!(err.exit_code(), 2);
    std::fs::write(&tl, "{\"hello\": 1}").unwrap();
    let err = report(&db, None, Some(&tl), None, ReportFormat::Html).unwrap_err();
    assert!(err.to_string().contains("is not a milo timeline"), "{err}");
    assert_eq!(err.exit_code(), 2);
}

/// Finds `gen` restored, `lib` up to date, and runs `compile` (a source changed); `plain`
/// is not incremental.
struct Decider;

impl milo::pipeline::Incremental for Decider {
    fn is_incremental(&self, phase: &str) -> bool {
        phase != "plain"
    }

    fn check(&self, phase: &str, _deps: &[milo::pipeline::Dependency<'_>]) -> Result<milo::pipeline::Check, String> {
        use milo::pipeline::{Check, Decision, Recorded, Verdict};
        let decision = |verdict, reason: &str| Decision {
            key: format!("key-{phase}").into(),
            verdict,
            reason: reason.into(),
        };
        let recorded = || Recorded {
            result: json!(1),
            logs: vec![(Stream::Stdout, format!("{phase} said <this> before"))],
        };
        Ok(match phase {
            "gen" => Check::Fresh(decision(Verdict::Restored, "out/gen was deleted"), recorded()),
            "lib" => Check::Fresh(decision(Verdict::UpToDate, "up to date"), recorded()),
            _ => Check::Run(decision(Verdict::Run, "src/<main>.c changed")),
        })
    }

    fn record(&self, _: &str, _: &milo::pipeline::Decision, _: &Value, _: &[(Stream, String)]) -> Result<(), String> {
        Ok(())
    }
}

fn incremental_pipeline() -> Pipeline {
    Pipeline::new(
        "inc",
        [
            Phase::new("gen", |_| Ok::<_, String>(())),
            Phase::new("lib", |_| Ok::<_, String>(())).depends_on(["gen"]),
            Phase::new("compile", |_| {
                std::thread::sleep(Duration::from_millis(10));
                Ok::<_, String>(())
            })
            .depends_on(["lib"]),
            Phase::new("plain", |_| Ok::<_, String>(())).depends_on(["compile"]),
        ],
    )
    .unwrap()
    .capture_output(true)
    .incremental(Arc::new(Decider))
}

/// What the page shows of an incremental run, from either source.
fn check_fresh_page(run: &ReportRun) {
    let phase = |n: &str| run.phases.iter().find(|p| p.name == n).unwrap();
    assert_eq!(phase("gen").fresh(), Some("restored"));
    assert_eq!(phase("lib").fresh(), Some("up_to_date"));
    assert_eq!(phase("compile").fresh(), None);
    assert_eq!(phase("compile").reason.as_deref(), Some("src/<main>.c changed"));
    assert_eq!(phase("plain").verdict, None);
    assert_eq!(
        run.decision_summary().as_deref(),
        Some("2 ran, 2 up to date (1 restored)")
    );

    let html = render_html(run);
    let doc = Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);
    let summary = doc.select(&sel("p.summary .decisions")).next().unwrap();
    assert_eq!(summary.text().collect::<String>(), "2 ran, 2 up to date (1 restored)");
    // One thin bar each, of their own class, labelled, with the reason in the tooltip.
    let bar = |n: &str| {
        doc.select(&sel(&format!("rect.bar[data-phase=\"{n}\"]")))
            .next()
            .unwrap_or_else(|| panic!("no bar for {n}"))
    };
    let gen_bar = bar("gen");
    assert!(gen_bar.value().classes().any(|c| c == "fresh"));
    assert!(gen_bar.value().classes().any(|c| c == "s-restored"));
    assert_eq!(attr(&gen_bar, "data-status"), "restored");
    assert_eq!(attr(&gen_bar, "data-label"), "restored");
    assert_eq!(attr(&gen_bar, "data-reason"), "out/gen was deleted");
    let title: String = gen_bar.select(&sel("title")).next().unwrap().text().collect();
    assert!(
        title.starts_with("gen · restored\n") && title.ends_with("out/gen was deleted"),
        "{title}"
    );
    let lib_bar = bar("lib");
    assert!(lib_bar.value().classes().any(|c| c == "s-up_to_date"));
    assert_eq!(attr(&lib_bar, "data-label"), "up to date");
    let labels: Vec<String> = doc
        .select(&sel("svg.gantt text.fresh-label"))
        .map(|t| t.text().collect())
        .collect();
    assert_eq!(labels, ["restored", "up to date"]);
    // A phase that ran keeps its colour, and shows why it ran (as text, not markup).
    let compile = bar("compile");
    assert!(compile.value().classes().any(|c| c == "s-completed"));
    assert!(!compile.value().classes().any(|c| c == "fresh"));
    assert_eq!(attr(&compile, "data-reason"), "src/<main>.c changed");
    // A phase that is not incremental has no decision attributes at all.
    assert!(bar("plain").value().attr("data-reason").is_none());
    // The table: the state instead of `completed`, and the reasons.
    let row = |n: &str| -> String {
        doc.select(&sel(&format!("table.phases tr[data-phase=\"{n}\"]")))
            .next()
            .unwrap()
            .text()
            .collect()
    };
    assert!(row("gen").contains("restored — out/gen was deleted"), "{}", row("gen"));
    assert!(
        row("lib").contains("up to date") && !row("lib").contains('—'),
        "{}",
        row("lib")
    );
    assert!(
        row("compile").contains("completed — src/<main>.c changed"),
        "{}",
        row("compile")
    );
    assert!(doc.select(&sel("table.phases .badge.s-up_to_date")).count() == 1);
    assert!(html.contains("up to date (did not run)"), "the legend");

    // The trace: verdict and reason in args, only for incremental phases.
    let trace = render_chrome_trace(run);
    let events = check_trace(&trace);
    let event = |n: &str| events.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(event("gen")["args"]["verdict"], "restored");
    assert_eq!(event("gen")["args"]["reason"], "out/gen was deleted");
    assert_eq!(event("gen")["args"]["status"], "restored");
    assert_eq!(event("gen")["dur"], 0.0);
    assert_eq!(event("compile")["args"]["verdict"], "run");
    assert_eq!(event("compile")["args"]["key"], "key-compile");
    assert!(event("plain")["args"].get("verdict").is_none());
}

#[test]
fn fresh_phases_are_drawn_apart_and_counted_from_the_history_and_a_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join(".milo").join("history.db");
    let history = History::open(&db).unwrap();
    let pipeline = incremental_pipeline();
    let timeline = {
        let recorder = history.recorder(&pipeline, RecordOptions::default()).unwrap();
        let (report, state) = rt().block_on(async {
            let store = pipeline.store().unwrap();
            let _sub = recorder.subscribe(&store);
            let report = pipeline.run_with(&store, RunOptions::default()).await.unwrap();
            (report, store.get_state())
        });
        assert_eq!(report.status, Status::Completed);
        recorder.finish(report.status, 0).unwrap();
        pipeline_to_timeline(&state)
    };
    let from_history = ReportRun::from_history(&history, None).unwrap();
    let gen_phase = &from_history.phases[0];
    assert_eq!(gen_phase.segments.len(), 1, "{:?}", gen_phase.segments);
    assert_eq!(
        (gen_phase.segments[0].attempt, gen_phase.segments[0].status.as_str()),
        (0, "restored")
    );
    assert_eq!(gen_phase.duration(), Some(0.0));
    assert_eq!(gen_phase.logs[0].line, "gen said <this> before");
    check_fresh_page(&from_history);
    let from_timeline = ReportRun::from_timeline(&timeline).unwrap();
    check_fresh_page(&from_timeline);

    // A second run: the fresh phases' zero durations are not their history.
    let recorder = history.recorder(&pipeline, RecordOptions::default()).unwrap();
    let report = rt().block_on(async {
        let store = pipeline.store().unwrap();
        let _sub = recorder.subscribe(&store);
        pipeline.run_with(&store, RunOptions::default()).await.unwrap()
    });
    recorder.finish(report.status, 0).unwrap();
    let second = ReportRun::from_history(&history, None).unwrap();
    let phase = |n: &str| second.phases.iter().find(|p| p.name == n).unwrap();
    assert!(phase("gen").history.is_empty() && phase("lib").history.is_empty());
    assert_eq!(phase("compile").history.len(), 1);
}

#[test]
fn a_timeline_without_decisions_draws_as_before() {
    let run = ReportRun::from_timeline(&common::known_timeline()).unwrap();
    assert!(run.phases.iter().all(|p| p.verdict.is_none()));
    assert_eq!(run.decision_summary(), None);
    let html = render_html(&run);
    let doc = Html::parse_document(&html);
    for absent in [
        "[data-reason]",
        "[data-label]",
        ".fresh-label",
        ".fresh",
        ".decisions",
        ".reason",
    ] {
        assert_eq!(doc.select(&sel(absent)).count(), 0, "{absent}");
    }
    assert!(!html.contains("up to date (did not run)"));
}

#[test]
fn a_watch_cycle_names_its_changed_paths_escaped_and_capped() {
    let mut run = ReportRun::from_timeline(&common::known_timeline()).unwrap();
    let plain = Html::parse_document(&render_html(&run));
    assert_eq!(plain.select(&sel("p.trigger")).count(), 0);

    let mut changed = vec!["src/<b>.c".to_owned()];
    changed.extend((0..24).map(|i| format!("src/{i}.h")));
    run.trigger = Some(milo_history::Trigger::watch(3, changed));
    let html = render_html(&run);
    let doc = Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    let p = doc.select(&sel("p.trigger")).next().expect("a trigger line");
    let text: String = p.text().collect();
    assert!(
        text.starts_with("trigger: watch cycle 3 — src/<b>.c, src/0.h, "),
        "{text}"
    );
    assert!(text.ends_with("src/18.h, (+5 more) changed"), "{text}");
    // Each named path is code, and a path's markup stays text.
    assert_eq!(p.select(&sel("code")).count(), 20);
    assert_eq!(p.select(&sel("b")).count(), 0);
}

#[test]
fn a_matrix_phases_instances_are_one_group_row_with_its_counts_and_the_instances_beneath() {
    // Two instances of `check`, named as a matrix names them (a timeline keeps no groups:
    // the report reads them from the names).
    let timeline = common::known_timeline()
        .to_string()
        .replace("\"build\"", "\"check[os=mac]\"")
        .replace("\"lint\"", "\"check[os=linux]\"");
    let run = ReportRun::from_timeline(&serde_json::from_str(&timeline).unwrap()).unwrap();
    let doc = Html::parse_document(&render_html(&run));
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    let rows: Vec<String> = doc
        .select(&sel("table.phases tbody tr"))
        .map(|tr| {
            let class = tr.value().attr("class").unwrap_or("");
            let name = tr
                .select(&sel("td.name"))
                .next()
                .map(|td| td.text().collect::<String>());
            format!("{class}|{}", name.unwrap_or_default().trim())
        })
        .collect();
    assert_eq!(
        rows,
        [
            "critical|★ fetch",
            "group|check",
            "critical member|★ check[os=mac] ∥",
            "member|check[os=linux] ∥",
            "critical|★ test",
            "|deploy"
        ]
    );
    let group = doc.select(&sel("tr.group")).next().expect("the group's row");
    assert_eq!(group.value().attr("data-group"), Some("check"));
    let text: String = group.text().collect();
    assert_eq!(text, "checkcompleted2 instances: 2 completed");
    // The columns add up to the table's.
    let colspan: usize = group
        .select(&sel("td"))
        .map(|td| td.value().attr("colspan").map_or(1, |c| c.parse().unwrap()))
        .sum();
    assert_eq!(colspan, doc.select(&sel("table.phases thead th")).count());
}
