//! The real `milo` binary as an MCP server, driven by rmcp's client: `milo mcp -f FILE` over
//! stdio (through a tee that keeps every byte the server writes to stdout, and through rmcp's
//! child-process transport) and `milo run --mcp-http 127.0.0.1:0` over streamable HTTP.
//!
//! The fixture's phases wait for gate files the test creates: `prepare` for `start` (so a
//! client of `milo run --mcp-http` can subscribe before anything happens), `work` for
//! `release` after logging 40 lines; `prepare` also runs `cat`, which would swallow the
//! protocol were a command's stdin the server's. "During the run" is thus a state the test
//! holds for as long as it needs, however loaded the machine is. Every wait is bounded
//! ([`WAIT`]), and the child is killed if a test fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use milo_mcp::testing::{self, Recorder, TestResult, Updates, call, ended, error_code, ok, read_json, tool_error};
use rmcp::model::{
    ErrorCode, ProtocolVersion, ServerNotification, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const TIMELINE: &str = "milo://pipeline/timeline";
const GRAPH: &str = "milo://pipeline/graph";
const LOGS_TEMPLATE: &str = "milo://pipeline/phases/{name}/logs";
const PREPARE_LOGS: &str = "milo://pipeline/phases/prepare/logs";
const WORK_LOGS: &str = "milo://pipeline/phases/work/logs";
const FINISH_LOGS: &str = "milo://pipeline/phases/finish/logs";
const TOOLS: [&str; 5] = [
    "run_pipeline",
    "cancel_pipeline",
    "get_timeline",
    "execution_order",
    "phase_logs",
];

/// The longest any single expected state may take to show up.
const WAIT: Duration = Duration::from_secs(20);
/// The longest a whole test may take.
const TEST_LIMIT: Duration = Duration::from_secs(120);
/// Lines `work` logs before it waits at the gate.
const WORK_LINES: usize = 40;

/// Runs a test body with a hard time limit, so a hang fails instead of blocking the suite.
async fn limited(body: impl Future<Output = TestResult>) -> TestResult {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .map_err(|_| format!("the test took longer than {TEST_LIMIT:?}"))?
}

/// A temporary directory with the pipeline file and the gates its phases wait for.
struct Fixture {
    dir: TempDir,
}

/// The pipeline: `prepare` waits for the gate file `start`, `work` logs its lines and waits
/// for `release` (30 s at most each; commands run in the fixture's directory).
const PIPELINE: &str = r#"name = "demo"

[[phase]]
name = "prepare"
description = "Prepare the inputs"
run = """
n=0; while [ ! -e start ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
cat; echo preparing; echo careful >&2
"""

[[phase]]
name = "work"
description = "Do the work"
depends_on = ["prepare"]
weight = 3
run = """
echo $$ > work.pid
i=1; while [ $i -le 40 ]; do echo "line $i"; i=$((i + 1)); done
n=0; while [ ! -e release ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
echo released
"""

[[phase]]
name = "finish"
depends_on = ["work"]
parallel = true
run = "echo done >&2"
"#;

impl Fixture {
    /// The pipeline with its start gate open: a run goes straight on to `work`'s gate.
    fn new() -> Self {
        let fixture = Self::held();
        fixture.open("start");
        fixture
    }

    /// The pipeline with both gates closed.
    fn held() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("milo-mcp-test")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("milo.toml"), PIPELINE).expect("write milo.toml");
        Fixture { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("milo.toml")
    }

    /// Opens gate `name` (`start` or `release`).
    fn open(&self, name: &str) {
        std::fs::write(self.dir.path().join(name), "").expect("open the gate");
    }

    fn milo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_milo"));
        cmd.args(args)
            .arg("-f")
            .arg(self.file())
            .current_dir(self.dir.path())
            .env("MILO_LOG", "debug")
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        cmd
    }
}

/// Reads all of `stream` into a string.
fn collect(mut stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for the child to exit (bounded) and returns its exit code.
async fn exit_code(child: &mut Child, limit: Duration) -> i32 {
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status
            .expect("wait for milo")
            .code()
            .expect("an exit code, not a signal"),
        Err(_) => {
            let _ = child.start_kill();
            panic!("milo did not exit within {limit:?}");
        }
    }
}

// --- clients ---------------------------------------------------------------------------------

type LegacyClient = RunningService<RoleClient, Recorder>;

/// `milo mcp` on stdio with a 2025-11-25 client. Everything the server writes to stdout goes
/// through a tee on its way to the client; [`StdioServer::finish`] checks it was all protocol.
struct StdioServer {
    child: Child,
    stdout: JoinHandle<Vec<Vec<u8>>>,
    stderr: JoinHandle<String>,
}

async fn stdio_server(fixture: &Fixture) -> (StdioServer, LegacyClient, Updates) {
    let mut child = fixture
        .milo(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn milo mcp");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = collect(child.stderr.take().expect("stderr"));
    let (mut to_client, client_side) = tokio::io::duplex(1 << 20);
    let stdout = tokio::spawn(async move {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = to_client.write_all(&line).await;
                    lines.push(line);
                }
            }
        }
        lines
    });
    let (tx, updates) = mpsc::unbounded_channel();
    let client = Recorder { updates: tx }
        .serve((client_side, stdin))
        .await
        .expect("the client connects to milo mcp");
    (StdioServer { child, stdout, stderr }, client, updates)
}

impl StdioServer {
    /// Closes the session (stdin), expects `milo mcp` to exit 0, and checks that each line it
    /// wrote to stdout is a JSON-RPC message. Returns its stderr.
    async fn finish(mut self, client: LegacyClient) -> String {
        client.cancel().await.expect("close the session");
        let code = exit_code(&mut self.child, WAIT).await;
        let stderr = self.stderr.await.expect("stderr");
        assert_eq!(code, 0, "milo mcp exited with {code}; stderr:\n{stderr}");
        let lines = self.stdout.await.expect("stdout");
        assert!(!lines.is_empty(), "milo mcp wrote nothing to stdout");
        for line in &lines {
            let text = String::from_utf8_lossy(line);
            assert!(text.ends_with('\n'), "a partial line on stdout: {text:?}");
            let message: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("stdout carries something else than JSON-RPC ({e}): {text:?}"));
            assert_eq!(message["jsonrpc"], "2.0", "{text}");
            assert!(
                message.get("id").is_some() || message.get("method").is_some(),
                "not a JSON-RPC message: {text}"
            );
        }
        stderr
    }
}

/// `milo run --mcp-http 127.0.0.1:0 --ui plain` and the URL it announced on stderr.
struct HttpRun {
    child: Child,
    url: String,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

async fn http_run(fixture: &Fixture, linger: &str) -> HttpRun {
    let mut child = fixture
        .milo(&[
            "run",
            "--ui",
            "plain",
            "--mcp-http",
            "127.0.0.1:0",
            "--mcp-linger",
            linger,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn milo run");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (url_tx, url_rx) = oneshot::channel();
    let stderr = tokio::spawn(async move {
        let mut url_tx = Some(url_tx);
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("milo: MCP server at ")
                && let Some(tx) = url_tx.take()
            {
                let _ = tx.send(url.to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = match tokio::time::timeout(WAIT, url_rx).await {
        Ok(Ok(url)) => url,
        _ => {
            let _ = child.start_kill();
            let stderr = stderr.await.unwrap_or_default();
            panic!("milo run did not announce its MCP server; stderr:\n{stderr}");
        }
    };
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp") && !url.contains(":0/"),
        "{url}"
    );
    HttpRun {
        child,
        url,
        stdout,
        stderr,
    }
}

impl HttpRun {
    /// Waits for `milo run` to exit and returns its code, stdout and stderr.
    async fn exit(mut self) -> (i32, String, String) {
        let code = exit_code(&mut self.child, WAIT + Duration::from_secs(10)).await;
        let stdout = self.stdout.await.expect("stdout");
        let stderr = self.stderr.await.expect("stderr");
        (code, stdout, stderr)
    }
}

// --- requests --------------------------------------------------------------------------------

/// Polls the timeline resource until `done` holds.
async fn wait_timeline<S: rmcp::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    testing::wait_timeline(client, WAIT, what, done).await
}

fn phase<'a>(timeline: &'a Value, name: &str) -> &'a Value {
    timeline["phases"]
        .as_array()
        .and_then(|phases| phases.iter().find(|p| p["name"] == json!(name)))
        .unwrap_or(&Value::Null)
}

/// `work` has logged all its lines and waits at the gate.
fn work_waiting(timeline: &Value) -> bool {
    phase(timeline, "work")["status"] == "running" && phase(timeline, "work")["log_count"] == json!(WORK_LINES)
}

/// The `line` fields of a logs resource or `phase_logs` result.
fn lines(logs: &Value) -> Vec<&str> {
    logs.as_array()
        .expect("an array of lines")
        .iter()
        .map(|l| l["line"].as_str().expect("a line"))
        .collect()
}

/// Receives updates until each of `uris` has been seen; returns all received.
async fn wait_updates(updates: &mut Updates, uris: &[&str], what: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !uris.iter().all(|u| seen.iter().any(|s| s == u)) {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some((uri, _))) => seen.push(uri),
            Ok(None) => panic!("the update channel closed while waiting for {what}: {seen:?}"),
            Err(_) => panic!("timed out waiting for {what}: got {seen:?}, want {uris:?}"),
        }
    }
    seen
}

/// Receives updates until none arrives for `quiet`.
async fn drain(updates: &mut Updates, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(Some((uri, _))) = tokio::time::timeout(quiet, updates.recv()).await {
        got.push(uri);
    }
    got
}

/// The checks of the resource list, templates and tools every server must pass.
async fn check_lists<S: rmcp::Service<RoleClient>>(client: &RunningService<RoleClient, S>) -> TestResult {
    let resources = client.list_all_resources().await?;
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [TIMELINE, GRAPH]);
    assert!(
        resources
            .iter()
            .all(|r| r.mime_type.as_deref() == Some("application/json"))
    );
    let templates = client.list_all_resource_templates().await?;
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(templates, [LOGS_TEMPLATE]);
    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    assert_eq!(names, TOOLS);
    for tool in &tools {
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}", tool.name);
    }
    Ok(())
}

/// What the graph resource of the fixture says.
fn check_graph(graph: &Value) {
    assert_eq!(graph["pipeline"], "demo");
    assert_eq!(graph["execution_order"], json!(["prepare", "work", "finish"]));
    assert_eq!(graph["levels"], json!([["prepare"], ["work"], ["finish"]]));
    let prepare = graph["phases"][0]["command"].as_str().expect("a command");
    assert!(
        prepare.ends_with("\ncat; echo preparing; echo careful >&2\n"),
        "{prepare}"
    );
    assert_eq!(graph["phases"][1]["description"], "Do the work");
    assert_eq!(graph["phases"][1]["depends_on"], json!(["prepare"]));
    assert_eq!(graph["phases"][1]["weight"], 3.0);
    assert_eq!(graph["phases"][2]["parallel"], true);
}

/// The resources while `work` waits at the gate.
async fn check_during<S: rmcp::Service<RoleClient>>(client: &RunningService<RoleClient, S>) -> TestResult {
    let during = wait_timeline(client, "work to wait at the gate", work_waiting).await;
    assert_eq!(during["pipeline"], "demo");
    assert_eq!(during["status"], "running");
    assert_eq!(during["current_phase"], "work");
    assert_eq!(phase(&during, "prepare")["status"], "completed");
    assert_eq!(phase(&during, "finish")["status"], "pending");
    let prepare = read_json(client, PREPARE_LOGS).await?;
    let mut got: Vec<(&str, &str)> = prepare
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| (l["line"].as_str().unwrap_or(""), l["stream"].as_str().unwrap_or("")))
        .collect();
    got.sort();
    assert_eq!(got, [("careful", "stderr"), ("preparing", "stdout")]);
    let work = read_json(client, WORK_LOGS).await?;
    let expected: Vec<String> = (1..=WORK_LINES).map(|i| format!("line {i}")).collect();
    assert_eq!(lines(&work), expected);
    assert!(work[0]["timestamp"].is_number());
    assert_eq!(read_json(client, FINISH_LOGS).await?, json!([]));
    check_graph(&read_json(client, GRAPH).await?);
    Ok(())
}

/// The resources after a completed run.
async fn check_after<S: rmcp::Service<RoleClient>>(client: &RunningService<RoleClient, S>) -> TestResult {
    let after = wait_timeline(client, "the run to complete", ended("completed")).await;
    assert_eq!(after["progress"], 1.0);
    for name in ["prepare", "work", "finish"] {
        assert_eq!(phase(&after, name)["status"], "completed", "{name}");
    }
    let work = read_json(client, WORK_LOGS).await?;
    assert_eq!(work.as_array().map(Vec::len), Some(WORK_LINES + 1));
    assert_eq!(work[WORK_LINES]["line"], "released");
    let finish = read_json(client, FINISH_LOGS).await?;
    assert_eq!(lines(&finish), ["done"]);
    assert_eq!(finish[0]["stream"], "stderr");
    Ok(())
}

// --- stdio -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_resources_before_during_and_after_a_run() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let (server, client, _updates) = stdio_server(&fixture).await;
        check_lists(&client).await?;
        let info = client.peer_info().expect("server info");
        assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("milo-mcp"));
        assert_eq!(
            info.capabilities.resources.as_ref().and_then(|r| r.subscribe),
            Some(true)
        );

        // Before any run: the server has no active pipeline.
        assert_eq!(
            read_json(&client, TIMELINE).await?,
            json!({"pipeline": null, "status": "no active pipeline", "phases": []})
        );
        check_graph(&read_json(&client, GRAPH).await?);
        for uri in [PREPARE_LOGS, WORK_LOGS, FINISH_LOGS] {
            assert_eq!(read_json(&client, uri).await?, json!([]), "{uri}");
        }

        // Unknown URIs are resource-not-found errors.
        for uri in [
            "milo://pipeline/phases/nope/logs",
            "milo://pipeline/nope",
            "milo://pipeline/phases//logs",
            "file:///etc/passwd",
        ] {
            let e = read_json(&client, uri).await.expect_err(uri);
            assert_eq!(error_code(e), ErrorCode::RESOURCE_NOT_FOUND, "{uri}");
        }

        assert_eq!(ok(call(&client, "run_pipeline", json!({})).await?)["run_id"], 1);
        check_during(&client).await?;
        fixture.open("release");
        check_after(&client).await?;
        // The session still answers once the run is over.
        check_graph(&read_json(&client, GRAPH).await?);

        let stderr = server.finish(client).await;
        // Diagnostics (MILO_LOG=debug) went to stderr, not into the protocol.
        assert!(stderr.contains("pipeline run started"), "{stderr}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_every_tool_and_its_errors() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let (server, client, _updates) = stdio_server(&fixture).await;

        // Before any run.
        assert_eq!(
            ok(call(&client, "get_timeline", Value::Null).await?)["status"],
            "no active pipeline"
        );
        let order = ok(call(&client, "execution_order", json!({})).await?);
        assert_eq!(
            order,
            json!({"pipeline": "demo", "execution_order": ["prepare", "work", "finish"],
                   "levels": [["prepare"], ["work"], ["finish"]]})
        );
        assert_eq!(
            ok(call(&client, "phase_logs", json!({"name": "work"})).await?),
            json!({"phase": "work", "lines": []})
        );
        let e = tool_error(call(&client, "cancel_pipeline", json!({})).await?);
        assert!(e.contains("no pipeline run is in progress"), "{e}");

        // Bad inputs are tool errors with a readable message.
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
        for tool in ["run_pipeline", "cancel_pipeline", "get_timeline", "execution_order"] {
            let e = tool_error(call(&client, tool, json!({"now": true})).await?);
            assert!(e.contains("unknown field `now`"), "{tool}: {e}");
        }
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
            json!({"run_id": 1, "pipeline": "demo", "status": "started", "timeline": TIMELINE})
        );
        let e = tool_error(call(&client, "run_pipeline", Value::Null).await?);
        assert!(e.contains("already running (run 1)"), "{e}");
        wait_timeline(&client, "work to wait at the gate", work_waiting).await;
        let timeline = ok(call(&client, "get_timeline", json!({})).await?);
        assert_eq!(timeline["status"], "running");
        assert_eq!(timeline["current_phase"], "work");
        let tail = ok(call(&client, "phase_logs", json!({"name": "work", "tail": 3})).await?);
        assert_eq!(tail["phase"], "work");
        assert_eq!(lines(&tail["lines"]), ["line 38", "line 39", "line 40"]);
        let all = ok(call(&client, "phase_logs", json!({"name": "work"})).await?);
        assert_eq!(all["lines"].as_array().map(Vec::len), Some(WORK_LINES));
        let prepare = ok(call(&client, "phase_logs", json!({"name": "prepare", "tail": 0})).await?);
        assert_eq!(prepare["lines"], json!([]));
        let e = tool_error(call(&client, "phase_logs", json!({"name": "nope"})).await?);
        assert!(e.contains("unknown phase `nope`"), "{e}");

        // Cancel it: the command is stopped, the run ends cancelled.
        let cancelled = ok(call(&client, "cancel_pipeline", json!({})).await?);
        assert_eq!(
            cancelled,
            json!({"run_id": 1, "pipeline": "demo", "status": "cancelling"})
        );
        let timeline = wait_timeline(&client, "the run to be cancelled", ended("cancelled")).await;
        assert_eq!(phase(&timeline, "finish")["status"], "pending");
        assert_eq!(ok(call(&client, "get_timeline", json!({})).await?), timeline);
        let e = tool_error(call(&client, "cancel_pipeline", json!({})).await?);
        assert!(e.contains("no pipeline run is in progress"), "{e}");

        // A new run may start once the last has ended; it replaces the timeline.
        fixture.open("release");
        assert_eq!(ok(call(&client, "run_pipeline", json!({})).await?)["run_id"], 2);
        wait_timeline(&client, "the second run to complete", ended("completed")).await;
        let done = ok(call(&client, "phase_logs", json!({"name": "finish"})).await?);
        assert_eq!(lines(&done["lines"]), ["done"]);

        server.finish(client).await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_resources_subscribe_sends_updates_during_a_run() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let (server, client, mut updates) = stdio_server(&fixture).await;

        #[allow(deprecated)]
        {
            client.subscribe(SubscribeRequestParams::new(TIMELINE)).await?;
            client.subscribe(SubscribeRequestParams::new(WORK_LOGS)).await?;
            client.subscribe(SubscribeRequestParams::new(GRAPH)).await?;
            let e = client
                .subscribe(SubscribeRequestParams::new("milo://pipeline/phases/nope/logs"))
                .await
                .expect_err("an unknown phase");
            assert_eq!(error_code(e), ErrorCode::RESOURCE_NOT_FOUND);
        }
        // Nothing runs, nothing is sent.
        assert_eq!(
            drain(&mut updates, Duration::from_millis(300)).await,
            Vec::<String>::new()
        );

        ok(call(&client, "run_pipeline", json!({})).await?);
        let during = wait_updates(&mut updates, &[TIMELINE, WORK_LOGS], "updates during the run").await;
        assert!(
            during.iter().all(|u| u == TIMELINE || u == WORK_LOGS),
            "the graph never changes: {during:?}"
        );
        check_during(&client).await?;
        // Let the watchers settle on the waiting state, then release it: the end is announced.
        drain(&mut updates, Duration::from_millis(300)).await;
        fixture.open("release");
        wait_updates(&mut updates, &[TIMELINE, WORK_LOGS], "updates at the end of the run").await;
        check_after(&client).await?;
        let after = drain(&mut updates, Duration::from_millis(300)).await;
        assert!(after.iter().all(|u| u == TIMELINE || u == WORK_LOGS), "{after:?}");

        // Unsubscribed from the logs, a new run only updates the timeline.
        #[allow(deprecated)]
        client.unsubscribe(UnsubscribeRequestParams::new(WORK_LOGS)).await?;
        ok(call(&client, "run_pipeline", json!({})).await?);
        wait_updates(&mut updates, &[TIMELINE], "updates of the second run").await;
        wait_timeline(&client, "the second run to complete", ended("completed")).await;
        let second = drain(&mut updates, Duration::from_millis(300)).await;
        assert!(second.iter().all(|u| u == TIMELINE), "{second:?}");

        server.finish(client).await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_subscriptions_listen_over_the_child_process_transport() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let (transport, stderr) = TokioChildProcess::builder(fixture.milo(&["mcp"]))
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = collect(stderr.expect("stderr"));
        let client = ()
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await?;
        check_lists(&client).await?;
        assert_eq!(read_json(&client, TIMELINE).await?["status"], "no active pipeline");
        // In 2026-07-28 an unknown resource is an invalid-params error.
        let e = read_json(&client, "milo://pipeline/phases/nope/logs")
            .await
            .expect_err("unknown");
        assert_eq!(error_code(e), ErrorCode::INVALID_PARAMS);

        let mut subscription = client
            .listen(
                SubscriptionFilter::builder()
                    .resource_subscriptions([TIMELINE, WORK_LOGS, "milo://pipeline/nope"])
                    .build(),
            )
            .await?;
        assert_eq!(
            subscription.acknowledged().resource_subscriptions,
            Some(vec![TIMELINE.to_owned(), WORK_LOGS.to_owned()])
        );

        ok(call(&client, "run_pipeline", json!({})).await?);
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while !(seen.iter().any(|u| u == TIMELINE) && seen.iter().any(|u| u == WORK_LOGS)) {
            match tokio::time::timeout_at(deadline, subscription.next()).await?? {
                Some(ServerNotification::ResourceUpdatedNotification(n)) => seen.push(n.params.uri),
                other => panic!("unexpected {other:?}"),
            }
        }
        check_during(&client).await?;
        fixture.open("release");
        // Updates follow until the one that shows the run completed.
        loop {
            let next = tokio::time::timeout_at(deadline, subscription.next()).await??;
            let Some(ServerNotification::ResourceUpdatedNotification(n)) = next else {
                panic!("unexpected {next:?}");
            };
            if n.params.uri == TIMELINE && read_json(&client, TIMELINE).await?["status"] == "completed" {
                break;
            }
        }
        check_after(&client).await?;
        subscription.cancel().await?;
        // Closing the client closes the server's stdin: `milo mcp` exits.
        client.cancel().await?;
        let stderr = tokio::time::timeout(WAIT, stderr).await??;
        assert!(stderr.contains("pipeline run started"), "{stderr}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_a_client_leaving_mid_run_ends_the_server_and_its_commands() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let (server, client, _updates) = stdio_server(&fixture).await;
        ok(call(&client, "run_pipeline", json!({})).await?);
        wait_timeline(&client, "work to wait at the gate", work_waiting).await;
        let pid = std::fs::read_to_string(fixture.dir.path().join("work.pid"))?;
        let pid = pid.trim().to_owned();
        assert!(alive(&pid), "work's shell {pid} is not running");
        // The client goes away while `work` runs: `milo mcp` exits 0 and stops the command
        // (which would otherwise wait 30 s for its gate).
        server.finish(client).await;
        let deadline = Instant::now() + WAIT;
        while alive(&pid) {
            assert!(Instant::now() < deadline, "work's shell {pid} outlived milo mcp");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    })
    .await
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: &str) -> bool {
    pid.parse()
        .ok()
        .and_then(milo::executor::procfs::stat)
        .is_some_and(|p| !p.is_dead())
}

// --- streamable HTTP -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_the_run_of_milo_run_then_lingers() -> TestResult {
    limited(async {
        let fixture = Fixture::held();
        let run = http_run(&fixture, "10").await;

        // A 2025-11-25 session client and a 2026-07-28 stateless one, side by side.
        let (tx, mut updates) = mpsc::unbounded_channel();
        let legacy = Recorder { updates: tx }
            .serve(StreamableHttpClientTransport::from_uri(run.url.clone()))
            .await?;
        let modern = ()
            .serve_with_lifecycle(
                StreamableHttpClientTransport::from_uri(run.url.clone()),
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await?;
        check_lists(&legacy).await?;
        check_lists(&modern).await?;
        #[allow(deprecated)]
        legacy.subscribe(SubscribeRequestParams::new(TIMELINE)).await?;
        let mut subscription = modern
            .listen(
                SubscriptionFilter::builder()
                    .resource_subscriptions([TIMELINE, WORK_LOGS])
                    .build(),
            )
            .await?;

        // The run `milo run` started is the one served; it goes on once everyone listens.
        let waiting = read_json(&legacy, TIMELINE).await?;
        assert_eq!(waiting["status"], "running");
        assert_eq!(phase(&waiting, "prepare")["status"], "running");
        fixture.open("start");
        check_during(&legacy).await?;
        check_during(&modern).await?;
        let e = tool_error(call(&legacy, "run_pipeline", json!({})).await?);
        assert!(e.contains("already running (run 1)"), "{e}");
        let timeline = ok(call(&modern, "get_timeline", json!({})).await?);
        assert_eq!(timeline["status"], "running");
        assert_eq!(
            ok(call(&modern, "execution_order", json!({})).await?)["execution_order"],
            json!(["prepare", "work", "finish"])
        );
        let tail = ok(call(&legacy, "phase_logs", json!({"name": "work", "tail": 1})).await?);
        assert_eq!(lines(&tail["lines"]), ["line 40"]);
        let e = tool_error(call(&legacy, "phase_logs", json!({"name": "nope"})).await?);
        assert!(e.contains("unknown phase `nope`"), "{e}");
        let e = tool_error(call(&modern, "phase_logs", json!({"tail": 1})).await?);
        assert!(e.contains("missing field `name`"), "{e}");
        let e = read_json(&legacy, "milo://pipeline/nope").await.expect_err("unknown");
        assert_eq!(error_code(e), ErrorCode::RESOURCE_NOT_FOUND);
        let e = read_json(&modern, "milo://pipeline/nope").await.expect_err("unknown");
        assert_eq!(error_code(e), ErrorCode::INVALID_PARAMS);

        // Both subscriptions saw the run move.
        wait_updates(&mut updates, &[TIMELINE], "session updates during the run").await;
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while !(seen.iter().any(|u| u == TIMELINE) && seen.iter().any(|u| u == WORK_LOGS)) {
            match tokio::time::timeout_at(deadline, subscription.next()).await?? {
                Some(ServerNotification::ResourceUpdatedNotification(n)) => seen.push(n.params.uri),
                other => panic!("unexpected {other:?}"),
            }
        }
        drain(&mut updates, Duration::from_millis(300)).await;

        // The end of the run is announced, and the server stays up for --mcp-linger.
        fixture.open("release");
        wait_updates(&mut updates, &[TIMELINE], "the session update at the end").await;
        check_after(&legacy).await?;
        check_after(&modern).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(read_json(&modern, TIMELINE).await?["status"], "completed");
        let _ = subscription.cancel().await;
        let _ = legacy.cancel().await;
        let _ = modern.cancel().await;

        let (code, stdout, stderr) = run.exit().await;
        assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
        let all = format!("{stdout}{stderr}");
        assert!(all.contains("demo completed"), "{all}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_cancel_pipeline_stops_milo_run() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let run = http_run(&fixture, "10").await;
        let (tx, _updates) = mpsc::unbounded_channel();
        let client = Recorder { updates: tx }
            .serve(StreamableHttpClientTransport::from_uri(run.url.clone()))
            .await?;
        wait_timeline(&client, "work to wait at the gate", work_waiting).await;
        assert_eq!(ok(call(&client, "cancel_pipeline", json!({})).await?)["run_id"], 1);
        let timeline = wait_timeline(&client, "the run to be cancelled", ended("cancelled")).await;
        assert_eq!(phase(&timeline, "work")["status"], "cancelled");
        assert_eq!(phase(&timeline, "finish")["status"], "pending");
        let e = tool_error(call(&client, "cancel_pipeline", json!({})).await?);
        assert!(e.contains("no pipeline run is in progress"), "{e}");
        let _ = client.cancel().await;

        let (code, stdout, stderr) = run.exit().await;
        assert_eq!(code, 130, "stdout:\n{stdout}\nstderr:\n{stderr}");
        Ok(())
    })
    .await
}
