//! The MCP server in process, over a duplex pipe (the stdio transport's framing), with rmcp's
//! client: resources, templates, tools and their errors, and live updates with both
//! `resources/subscribe` (2025-11-25) and `subscriptions/listen` (2026-07-28).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use milo_mcp::{GRAPH_URI, Hub, LOGS_TEMPLATE, TIMELINE_URI, logs_uri};
use rmcp::model::{
    ErrorCode, ServerNotification, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

fn setup() -> (Arc<Hub>, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    (Hub::new(pipeline(gate.clone())), gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_resources_templates_and_tools() -> TestResult {
    let (hub, _gate) = setup();
    let (client, _updates) = legacy_client(hub).await;

    let resources = client.list_all_resources().await?;
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [TIMELINE_URI, GRAPH_URI]);
    assert!(
        resources
            .iter()
            .all(|r| r.mime_type.as_deref() == Some("application/json"))
    );

    let templates = client.list_all_resource_templates().await?;
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].uri_template, LOGS_TEMPLATE);

    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    assert_eq!(
        names,
        [
            "run_pipeline",
            "cancel_pipeline",
            "get_timeline",
            "execution_order",
            "phase_logs"
        ]
    );
    for tool in &tools {
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}", tool.name);
    }
    let logs = &tools[4].input_schema;
    assert_eq!(logs["required"], json!(["name"]));
    assert!(logs["properties"]["name"].is_object() && logs["properties"]["tail"].is_object());

    let info = client.peer_info().expect("server info");
    let resources_cap = info.capabilities.resources.as_ref().expect("resources capability");
    assert_eq!(resources_cap.subscribe, Some(true));
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_each_resource_before_during_and_after_a_run() -> TestResult {
    let (hub, gate) = setup();
    let (client, _updates) = legacy_client(hub.clone()).await;

    // Before any run.
    assert_eq!(
        read_json(&client, TIMELINE_URI).await?,
        json!({"pipeline": null, "status": "no active pipeline", "phases": []})
    );
    let graph = read_json(&client, GRAPH_URI).await?;
    assert_eq!(graph["pipeline"], "demo");
    assert_eq!(graph["execution_order"], json!(["prepare", "work", "finish"]));
    assert_eq!(graph["levels"], json!([["prepare"], ["work"], ["finish"]]));
    assert_eq!(
        graph["phases"][1],
        json!({"name": "work", "description": "Do the work", "depends_on": ["prepare"], "parallel": false,
               "weight": 3.0, "max_logs": 200, "timeout": null, "command": null, "level": 1,
               "policy": {"on_fail": "stop", "max_retries": 0, "retry_delay": 1.0, "retry_backoff": "fixed"}})
    );
    // The phases are the pipeline's `PhaseInfo`s as serde writes them (as `milo phases --json`).
    assert_eq!(graph["phases"], json!(hub.pipeline().def().phases));
    assert_eq!(graph["phases"][0]["command"], "echo preparing; echo careful >&2");
    assert_eq!(graph["phases"][2]["parallel"], true);
    assert_eq!(read_json(&client, &logs_uri("work")).await?, json!([]));

    // Unknown URIs and phases are resource-not-found errors (-32002 before 2026-07-28).
    for uri in [
        "milo://pipeline/phases/nope/logs",
        "milo://pipeline/nope",
        "file:///etc/passwd",
    ] {
        let e = read_json(&client, uri).await.expect_err(uri);
        assert_eq!(error_code(e), ErrorCode::RESOURCE_NOT_FOUND, "{uri}");
    }

    // During a run.
    let started = ok(call(&client, "run_pipeline", Value::Null).await?);
    assert_eq!(started["run_id"], 1);
    let during = wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    assert_eq!(during["pipeline"], "demo");
    assert_eq!(during["status"], "running");
    assert_eq!(during["current_phase"], "work");
    assert_eq!(phase_status(&during, "prepare"), "completed");
    assert_eq!(phase_status(&during, "finish"), "pending");
    assert_eq!(during["execution_order"], json!(["prepare", "work", "finish"]));
    let prepare = read_json(&client, &logs_uri("prepare")).await?;
    let lines: Vec<(&str, &str)> = prepare
        .as_array()
        .expect("array")
        .iter()
        .map(|l| (l["line"].as_str().unwrap_or(""), l["stream"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.contains(&("preparing", "stdout")) && lines.contains(&("careful", "stderr")));
    assert!(prepare[0]["timestamp"].is_f64());
    let work = read_json(&client, &logs_uri("work")).await?;
    assert_eq!(work.as_array().map(Vec::len), Some(WORK_LINES));
    assert_eq!(work[0]["line"], "line 0");
    assert_eq!(read_json(&client, &logs_uri("finish")).await?, json!([]));
    // The graph does not depend on the run.
    assert_eq!(read_json(&client, GRAPH_URI).await?, graph);

    // After it.
    gate.add_permits(1);
    let after = wait_timeline(&client, "the run to complete", ended("completed")).await;
    assert_eq!(after["progress"], 1.0);
    assert!(
        after["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .all(|p| p["status"] == "completed")
    );
    let work = read_json(&client, &logs_uri("work")).await?;
    assert_eq!(work.as_array().map(Vec::len), Some(WORK_LINES + 1));
    assert_eq!(work[WORK_LINES]["line"], "released");
    let finish = read_json(&client, &logs_uri("finish")).await?;
    assert_eq!(
        finish,
        json!([{"line": "done", "stream": "stderr", "timestamp": finish[0]["timestamp"]}])
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_and_its_errors() -> TestResult {
    let (hub, gate) = setup();
    let (client, _updates) = legacy_client(hub.clone()).await;

    // Before any run.
    let timeline = ok(call(&client, "get_timeline", json!({})).await?);
    assert_eq!(timeline["status"], "no active pipeline");
    let order = ok(call(&client, "execution_order", Value::Null).await?);
    assert_eq!(order["execution_order"], json!(["prepare", "work", "finish"]));
    assert_eq!(order["levels"], json!([["prepare"], ["work"], ["finish"]]));
    assert_eq!(
        ok(call(&client, "phase_logs", json!({"name": "work"})).await?),
        json!({"phase": "work", "lines": []})
    );
    let e = tool_error(call(&client, "cancel_pipeline", json!({})).await?);
    assert!(e.contains("no pipeline run is in progress"), "{e}");

    // Bad inputs are tool errors.
    for (args, expect) in [
        (json!({}), "missing field `name`"),
        (json!({"name": 3}), "invalid type"),
        (json!({"name": "work", "tail": -1}), "invalid value"),
        (json!({"name": "work", "tail": "x"}), "invalid type"),
        (json!({"name": "work", "lines": 3}), "unknown field `lines`"),
    ] {
        let e = tool_error(call(&client, "phase_logs", args.clone()).await?);
        assert!(
            e.contains("invalid arguments for `phase_logs`") && e.contains(expect),
            "{args}: {e}"
        );
    }
    let e = tool_error(call(&client, "run_pipeline", json!({"now": true})).await?);
    assert!(e.contains("unknown field `now`"), "{e}");
    let e = tool_error(call(&client, "phase_logs", json!({"name": "nope"})).await?);
    assert!(
        e.contains("unknown phase `nope`") && e.contains("`prepare`, `work`, `finish`"),
        "{e}"
    );
    // An unknown tool is a protocol error.
    let e = call(&client, "deploy", json!({})).await.expect_err("unknown tool");
    assert_eq!(error_code(e), ErrorCode::INVALID_PARAMS);

    // A run, and a second one while it is active.
    let started = ok(call(&client, "run_pipeline", json!({})).await?);
    assert_eq!(
        started,
        json!({"run_id": 1, "pipeline": "demo", "status": "started", "timeline": TIMELINE_URI})
    );
    let e = tool_error(call(&client, "run_pipeline", json!({})).await?);
    assert!(e.contains("already running (run 1)"), "{e}");
    wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    let timeline = ok(call(&client, "get_timeline", json!({})).await?);
    assert_eq!(timeline["status"], "running");
    let tail = ok(call(&client, "phase_logs", json!({"name": "work", "tail": 3})).await?);
    let lines: Vec<&str> = tail["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["line"].as_str())
        .collect();
    assert_eq!(lines, ["line 37", "line 38", "line 39"]);
    let all = ok(call(&client, "phase_logs", json!({"name": "work"})).await?);
    assert_eq!(all["lines"].as_array().map(Vec::len), Some(WORK_LINES));

    // Cancel it.
    let cancelled = ok(call(&client, "cancel_pipeline", json!({})).await?);
    assert_eq!(cancelled["run_id"], 1);
    let timeline = wait_timeline(&client, "the run to be cancelled", ended("cancelled")).await;
    assert_eq!(phase_status(&timeline, "finish"), "pending");
    assert_eq!(ok(call(&client, "get_timeline", json!({})).await?), timeline);
    let e = tool_error(call(&client, "cancel_pipeline", json!({})).await?);
    assert!(e.contains("no pipeline run is in progress"), "{e}");

    // A new run may start once the last has ended; it replaces the timeline.
    let started = ok(call(&client, "run_pipeline", json!({})).await?);
    assert_eq!(started["run_id"], 2);
    gate.add_permits(1);
    wait_timeline(&client, "the second run to complete", ended("completed")).await;
    assert_eq!(hub.current().map(|r| r.id()), Some(2));
    client.cancel().await?;
    Ok(())
}

/// Receives updates until none arrives for `quiet`, returning each (uri, when).
async fn drain(updates: &mut Updates, quiet: Duration) -> Vec<(String, Instant)> {
    let mut got = Vec::new();
    while let Ok(Some(u)) = tokio::time::timeout(quiet, updates.recv()).await {
        got.push(u);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_subscribe_sends_coalesced_updates_and_the_final_state() -> TestResult {
    let (hub, gate) = setup();
    let (client, mut updates) = legacy_client(hub.clone()).await;
    let work_logs = logs_uri("work");

    #[allow(deprecated)]
    {
        client.subscribe(SubscribeRequestParams::new(TIMELINE_URI)).await?;
        client.subscribe(SubscribeRequestParams::new(work_logs.clone())).await?;
        client.subscribe(SubscribeRequestParams::new(GRAPH_URI)).await?;
        let e = client
            .subscribe(SubscribeRequestParams::new("milo://pipeline/phases/nope/logs"))
            .await
            .expect_err("unknown phase");
        assert_eq!(error_code(e), ErrorCode::RESOURCE_NOT_FOUND);
    }
    // Nothing changes, nothing is sent.
    assert!(drain(&mut updates, Duration::from_millis(300)).await.is_empty());

    let start = Instant::now();
    ok(call(&client, "run_pipeline", json!({})).await?);
    wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    let during = drain(&mut updates, Duration::from_millis(400)).await;
    let elapsed = start.elapsed();
    let timeline_updates = during.iter().filter(|(u, _)| u == TIMELINE_URI).count();
    let log_updates = during.iter().filter(|(u, _)| *u == work_logs).count();
    assert!(
        during.iter().all(|(u, _)| u == TIMELINE_URI || *u == work_logs),
        "{during:?}"
    );
    assert!(timeline_updates >= 2 && log_updates >= 1, "{during:?}");
    // 40 lines and the phase changes were dispatched, yet at most ~10 updates a second went out.
    let bound = (elapsed.as_millis() / 100) as usize + 2;
    assert!(
        timeline_updates <= bound && log_updates <= bound,
        "{timeline_updates} timeline and {log_updates} log updates in {elapsed:?}"
    );

    // The end of the run is always announced, and then nothing more.
    gate.add_permits(1);
    let end = drain(&mut updates, Duration::from_millis(500)).await;
    let state = hub.current().expect("run").state();
    assert!(state.is_finished(), "{:?}", state.status);
    assert!(end.iter().any(|(u, _)| u == TIMELINE_URI), "{end:?}");
    assert!(end.iter().any(|(u, _)| *u == work_logs), "{end:?}");
    assert_eq!(read_json(&client, TIMELINE_URI).await?["status"], "completed");

    // After unsubscribing from the logs, a new run only updates the timeline.
    #[allow(deprecated)]
    client
        .unsubscribe(UnsubscribeRequestParams::new(work_logs.clone()))
        .await?;
    ok(call(&client, "run_pipeline", json!({})).await?);
    gate.add_permits(1);
    wait_timeline(&client, "the second run to complete", ended("completed")).await;
    let second = drain(&mut updates, Duration::from_millis(400)).await;
    assert!(second.iter().any(|(u, _)| u == TIMELINE_URI), "{second:?}");
    assert!(second.iter().all(|(u, _)| u == TIMELINE_URI), "{second:?}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_listen_streams_updates_to_2026_clients() -> TestResult {
    let (hub, gate) = setup();
    let client = modern_client(hub.clone()).await;
    let work_logs = logs_uri("work");

    // Reads and tools work the same; unknown resources are invalid-params errors in 2026-07-28.
    assert_eq!(read_json(&client, TIMELINE_URI).await?["status"], "no active pipeline");
    let e = read_json(&client, "milo://pipeline/phases/nope/logs")
        .await
        .expect_err("unknown");
    assert_eq!(error_code(e), ErrorCode::INVALID_PARAMS);

    let mut subscription = client
        .listen(
            SubscriptionFilter::builder()
                .resource_subscriptions([TIMELINE_URI, work_logs.as_str(), "milo://pipeline/nope"])
                .build(),
        )
        .await?;
    assert_eq!(
        subscription.acknowledged().resource_subscriptions,
        Some(vec![TIMELINE_URI.to_owned(), work_logs.clone()])
    );

    ok(call(&client, "run_pipeline", json!({})).await?);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Updates arrive for both resources while the run goes on…
    while !(seen.iter().any(|u| u == TIMELINE_URI) && seen.contains(&work_logs)) {
        let next = tokio::time::timeout_at(deadline, subscription.next()).await??;
        match next {
            Some(ServerNotification::ResourceUpdatedNotification(n)) => seen.push(n.params.uri),
            other => panic!("unexpected {other:?}"),
        }
    }
    // …and one follows the end of the run.
    wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    gate.add_permits(1);
    loop {
        let next = tokio::time::timeout_at(deadline, subscription.next()).await??;
        let Some(ServerNotification::ResourceUpdatedNotification(n)) = next else {
            panic!("unexpected {next:?}");
        };
        if n.params.uri == TIMELINE_URI && hub.current().is_some_and(|r| !r.is_active()) {
            break;
        }
    }
    assert_eq!(read_json(&client, TIMELINE_URI).await?["status"], "completed");
    subscription.cancel().await?;
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_run_is_served_and_cancelled_through_its_token() -> TestResult {
    let gate = Arc::new(Semaphore::new(0));
    let pipeline = pipeline(gate.clone()).capture_output(true);
    let hub = Hub::new(pipeline.clone());
    let (client, _updates) = legacy_client(hub.clone()).await;

    let store = pipeline.store()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let run_id = hub.attach(store.clone(), stop.clone());
    assert_eq!(run_id, 1);
    let runner = {
        let pipeline = pipeline.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let options = milo::pipeline::RunOptions {
                stop,
                ..Default::default()
            };
            pipeline.run_with(&store, options).await
        })
    };
    wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    let e = tool_error(call(&client, "run_pipeline", json!({})).await?);
    assert!(e.contains("already running (run 1)"), "{e}");
    assert_eq!(ok(call(&client, "cancel_pipeline", json!({})).await?)["run_id"], 1);
    assert!(stop.is_cancelled());
    let report = runner.await??;
    assert_eq!(report.status.as_str(), "cancelled");
    wait_timeline(&client, "the run to be cancelled", ended("cancelled")).await;
    client.cancel().await?;
    Ok(())
}

/// `prepare` restored from the cache (with a recorded line), `work` runs because a file
/// changed; `finish` is not incremental.
struct Decider;

impl milo::pipeline::Incremental for Decider {
    fn is_incremental(&self, phase: &str) -> bool {
        phase != "finish"
    }

    fn check(&self, phase: &str, _deps: &[milo::pipeline::Dependency<'_>]) -> Result<milo::pipeline::Check, String> {
        use milo::pipeline::{Check, Decision, Recorded, Verdict};
        let key = format!("key-{phase}").into();
        Ok(if phase == "prepare" {
            Check::Fresh(
                Decision {
                    key,
                    verdict: Verdict::Restored,
                    reason: "output out/prepared was deleted (restored from cache)".into(),
                },
                Recorded {
                    result: json!({"prepared": true}),
                    logs: vec![(milo::capture::Stream::Stdout, "preparing (recorded)".into())],
                },
            )
        } else {
            Check::Run(Decision {
                key,
                verdict: Verdict::Run,
                reason: "src/work.c changed".into(),
            })
        })
    }

    fn record(
        &self,
        _: &str,
        _: &milo::pipeline::Decision,
        _: &Value,
        _: &[(milo::capture::Stream, String)],
    ) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_carries_each_decision_and_updates_announce_it() -> TestResult {
    let gate = Arc::new(Semaphore::new(0));
    let hub = Hub::new(pipeline(gate.clone()).incremental(Arc::new(Decider)));
    let (client, mut updates) = legacy_client(hub.clone()).await;
    let prepare_logs = logs_uri("prepare");
    #[allow(deprecated)]
    {
        client.subscribe(SubscribeRequestParams::new(TIMELINE_URI)).await?;
        client
            .subscribe(SubscribeRequestParams::new(prepare_logs.clone()))
            .await?;
    }
    ok(call(&client, "run_pipeline", json!({})).await?);
    let during = wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    let phase = |t: &Value, name: &str| -> Value {
        t["phases"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == json!(name)))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let prepare = phase(&during, "prepare");
    assert_eq!(prepare["status"], "completed");
    assert_eq!(prepare["verdict"], "restored");
    assert_eq!(prepare["key"], "key-prepare");
    assert_eq!(
        prepare["reason"],
        "output out/prepared was deleted (restored from cache)"
    );
    assert_eq!(prepare["attempt"], 0);
    assert_eq!(prepare["result"], json!({"prepared": true}));
    let work = phase(&during, "work");
    assert_eq!(
        (&work["status"], &work["verdict"], &work["reason"]),
        (&json!("running"), &json!("run"), &json!("src/work.c changed"))
    );
    let finish = phase(&during, "finish");
    for field in ["key", "verdict", "reason"] {
        assert!(finish.get(field).is_some_and(Value::is_null), "{field}: {finish}");
    }
    // The replayed line is the restored phase's log; its resource and the timeline were
    // announced.
    let lines = read_json(&client, &prepare_logs).await?;
    assert_eq!(lines[0]["line"], "preparing (recorded)");
    let sent = drain(&mut updates, Duration::from_millis(300)).await;
    assert!(sent.iter().any(|(u, _)| u == TIMELINE_URI), "{sent:?}");
    assert!(sent.iter().any(|(u, _)| *u == prepare_logs), "{sent:?}");
    // The tool reads the same timeline.
    let tool = ok(call(&client, "get_timeline", Value::Null).await?);
    assert_eq!(phase(&tool, "prepare")["verdict"], "restored");
    assert_eq!(phase(&tool, "work")["reason"], "src/work.c changed");
    gate.add_permits(1);
    let done = wait_timeline(&client, "the run to complete", ended("completed")).await;
    assert_eq!(phase(&done, "work")["verdict"], "run");
    client.cancel().await?;
    Ok(())
}
