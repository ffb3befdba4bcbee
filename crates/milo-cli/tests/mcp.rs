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

mod common;

use common::processes_with;
use milo_mcp::testing::{self, Recorder, TestResult, Updates, call, ended, error_code, ok, read_json, tool_error};
use rmcp::model::{
    ErrorCode, ProtocolVersion, ServerNotification, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
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
        Self::with(PIPELINE)
    }

    /// A directory with `pipeline` as its milo.toml.
    fn with(pipeline: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("milo-mcp-test")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("milo.toml"), pipeline).expect("write milo.toml");
        Fixture { dir }
    }

    /// `milo history --json` of the fixture: the recorded runs, newest first.
    fn history(&self) -> Vec<Value> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_milo"))
            .args(["history", "--json", "-f"])
            .arg(self.file())
            .output()
            .expect("run milo history");
        assert!(
            out.status.success(),
            "milo history: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let runs: Value = serde_json::from_slice(&out.stdout).expect("milo history --json prints JSON");
        runs.as_array().cloned().expect("an array of runs")
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

/// `milo run --mcp-http 127.0.0.1:0 --ui plain` and the URL and token it announced on stderr.
struct HttpRun {
    child: Child,
    url: String,
    token: String,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

async fn http_run(fixture: &Fixture, linger: &str) -> HttpRun {
    http_run_with(fixture, linger, &[]).await
}

/// [`http_run`] with more flags.
async fn http_run_with(fixture: &Fixture, linger: &str, extra: &[&str]) -> HttpRun {
    let mut args = vec![
        "run",
        "--ui",
        "plain",
        "--mcp-http",
        "127.0.0.1:0",
        "--mcp-linger",
        linger,
    ];
    args.extend_from_slice(extra);
    http_run_cmd(fixture.milo(&args)).await
}

async fn http_run_cmd(mut cmd: Command) -> HttpRun {
    let mut child = cmd
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
        let mut url = None;
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.strip_prefix("milo: MCP server at ") {
                url = Some(u.to_owned());
            }
            // The token line follows the URL: a generated token, or a note that it was given.
            if let Some(rest) = line.strip_prefix("milo: MCP token: ")
                && let (Some(url), Some(tx)) = (url.take(), url_tx.take())
            {
                let token = rest.split([' ', ';']).next().unwrap_or("").to_owned();
                let _ = tx.send((url, token));
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let (url, token) = match tokio::time::timeout(WAIT, url_rx).await {
        Ok(Ok(found)) => found,
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
        token,
        stdout,
        stderr,
    }
}

impl HttpRun {
    /// rmcp's HTTP client transport to the server, sending the token.
    fn client_config(&self) -> StreamableHttpClientTransportConfig {
        StreamableHttpClientTransportConfig::with_uri(self.url.clone()).auth_header(self.token.clone())
    }

    /// `host:port` of the server.
    fn authority(&self) -> &str {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches(milo_mcp::HTTP_PATH)
    }

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
            .serve(StreamableHttpClientTransport::from_config(run.client_config()))
            .await?;
        let modern = ()
            .serve_with_lifecycle(
                StreamableHttpClientTransport::from_config(run.client_config()),
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
            .serve(StreamableHttpClientTransport::from_config(run.client_config()))
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

// --- who may reach the HTTP server ------------------------------------------------------------

/// An `initialize` request of MCP 2025-11-25 (a session-based client).
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

/// What a raw HTTP exchange returned.
struct RawResponse {
    status: u16,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    /// The body as sent (chunked, for event streams).
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `/mcp` at `authority` on a fresh connection (`Connection: close`),
/// with `headers` (a `Host` among them replaces the right one) and `body`.
async fn raw_http(authority: &str, method: &str, headers: &[(&str, &str)], body: &str) -> RawResponse {
    let mut request = format!("{method} /mcp HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {authority}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.expect("read the response");
        bytes
    };
    let bytes = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no response to {method} within {WAIT:?}"));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requires_the_token_a_local_origin_and_a_loopback_host() -> TestResult {
    limited(async {
        let fixture = Fixture::held();
        let run = http_run_with(&fixture, "0", &["--mcp-allow-origin", "https://app.example:8443"]).await;
        let at = run.authority().to_owned();
        let bearer = format!("Bearer {}", run.token);
        assert_eq!(run.token.len(), 64, "a 256-bit hex token: {}", run.token);

        // The generated token is in .milo/mcp-token, readable by its owner only.
        let token_file = fixture.dir.path().join(".milo").join("mcp-token");
        assert_eq!(std::fs::read_to_string(&token_file)?.trim(), run.token);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file)?.permissions().mode() & 0o777, 0o600);

        // No token, a wrong one, another scheme: 401 with a challenge and a readable reason.
        for auth in [
            None,
            Some("Bearer nope"),
            Some("Basic dXNlcjpwYXNz"),
            Some(run.token.as_str()),
        ] {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
            let r = raw_http(&at, "POST", &headers, INITIALIZE).await;
            assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
            assert!(
                r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
                "{auth:?}"
            );
            assert!(r.body.contains("Authorization: Bearer"), "{}", r.body);
        }
        // rmcp's client without the token cannot connect either.
        let refused = ().serve(StreamableHttpClientTransport::from_uri(run.url.clone())).await;
        assert!(refused.is_err(), "a client without the token connected");

        // A page of another site (DNS rebinding, cross-site requests) is refused, even with
        // the token; loopback origins and the allowed one are served.
        for origin in [
            "http://evil.example",
            "http://evil.example:80",
            "null",
            "https://app.example:443",
        ] {
            let r = raw_http(
                &at,
                "POST",
                &[("Authorization", &bearer), ("Origin", origin)],
                INITIALIZE,
            )
            .await;
            assert_eq!(r.status, 403, "{origin}: {}", r.body);
        }
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "https://app.example:8443",
        ] {
            let r = raw_http(
                &at,
                "POST",
                &[("Authorization", &bearer), ("Origin", origin)],
                INITIALIZE,
            )
            .await;
            assert_eq!(r.status, 200, "{origin}: {}", r.body);
            assert!(r.body.contains("\"serverInfo\""), "{origin}: {}", r.body);
        }
        // The Host must be a loopback name while bound to loopback.
        for host in ["evil.example", "evil.example:80", "192.0.2.1"] {
            let r = raw_http(&at, "POST", &[("Authorization", &bearer), ("Host", host)], INITIALIZE).await;
            assert_eq!(r.status, 403, "{host}: {}", r.body);
        }
        let port = at.rsplit(':').next().unwrap_or_default();
        let localhost = format!("localhost:{port}");
        let r = raw_http(
            &at,
            "POST",
            &[("Authorization", &bearer), ("Host", &localhost)],
            INITIALIZE,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);

        // With the token, rmcp's client works.
        let client = ().serve(StreamableHttpClientTransport::from_config(run.client_config())).await?;
        check_lists(&client).await?;
        let _ = client.cancel().await;
        fixture.open("start");
        fixture.open("release");
        let (code, _, stderr) = run.exit().await;
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stderr.contains(&format!("also in {}", token_file.display())) && stderr.contains("Authorization: Bearer"),
            "{stderr}"
        );
        assert!(!token_file.exists(), "the token file outlived the server");
        Ok(())
    })
    .await
}

/// The `mcp-session-id` an `initialize` answered with `200` created.
fn session_id(r: &RawResponse) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("mcp-session-id").expect("a session id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sessions_are_capped_with_a_clear_error() -> TestResult {
    limited(async {
        let fixture = Fixture::held();
        // A token given in the environment: used as is, not written anywhere.
        let mut cmd = fixture.milo(&[
            "run",
            "--ui",
            "plain",
            "--mcp-http",
            "127.0.0.1:0",
            "--mcp-max-sessions",
            "2",
        ]);
        cmd.env("MILO_MCP_TOKEN", "s3cret-from-env");
        let run = http_run_cmd(cmd).await;
        assert!(!fixture.dir.path().join(".milo").join("mcp-token").exists());
        let at = run.authority().to_owned();
        let auth = ("Authorization", "Bearer s3cret-from-env");

        let first = session_id(&raw_http(&at, "POST", &[auth], INITIALIZE).await);
        let _second = session_id(&raw_http(&at, "POST", &[auth], INITIALIZE).await);
        let full = raw_http(&at, "POST", &[auth], INITIALIZE).await;
        assert_eq!(full.status, 503, "{}", full.body);
        assert!(
            full.body.contains("all 2 MCP sessions") && full.body.contains("--mcp-max-sessions"),
            "{}",
            full.body
        );
        assert!(full.header("retry-after").is_some());
        // Closing a session frees its place.
        let closed = raw_http(&at, "DELETE", &[auth, ("Mcp-Session-Id", &first)], "").await;
        assert!(closed.status < 300, "DELETE: {} {}", closed.status, closed.body);
        session_id(&raw_http(&at, "POST", &[auth], INITIALIZE).await);

        fixture.open("start");
        fixture.open("release");
        let (code, _, stderr) = run.exit().await;
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("given with --mcp-token or MILO_MCP_TOKEN"), "{stderr}");
        assert!(
            !stderr.contains("s3cret-from-env"),
            "a given token is not printed: {stderr}"
        );
        Ok(())
    })
    .await
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_thousands_of_initializes_without_delete_stay_bounded() -> TestResult {
    limited(async {
        let fixture = Fixture::held();
        let run = http_run(&fixture, "0").await;
        let at = run.authority().to_owned();
        let bearer = format!("Bearer {}", run.token);
        let pid = run.child.id().expect("milo run is running");
        let auth = ("Authorization", bearer.as_str());
        // Warm up (the first requests allocate the server's buffers), then measure.
        session_id(&raw_http(&at, "POST", &[auth], INITIALIZE).await);
        let before = rss_kib(pid);
        let mut opened = 1;
        for _ in 0..2000 {
            let r = raw_http(&at, "POST", &[auth], INITIALIZE).await;
            match r.status {
                200 => opened += 1,
                503 => {}
                other => panic!("initialize answered {other}: {}", r.body),
            }
        }
        let grown = rss_kib(pid).saturating_sub(before);
        assert_eq!(opened, milo_mcp::DEFAULT_MAX_SESSIONS, "sessions opened");
        // Each session held ~50 KiB for good before the cap: 2,000 were ~100 MiB.
        assert!(grown < 48 * 1024, "milo grew by {grown} KiB");

        fixture.open("start");
        fixture.open("release");
        let (code, _, stderr) = run.exit().await;
        assert_eq!(code, 0, "{stderr}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_idle_sessions_expire() -> TestResult {
    limited(async {
        let fixture = Fixture::held();
        let run = http_run_with(
            &fixture,
            "0",
            &["--mcp-max-sessions", "1", "--mcp-session-timeout", "1.5"],
        )
        .await;
        let at = run.authority().to_owned();
        let bearer = format!("Bearer {}", run.token);
        let auth = ("Authorization", bearer.as_str());
        let idle = session_id(&raw_http(&at, "POST", &[auth], INITIALIZE).await);
        // The only place is taken until the idle session expires; then a new client gets it,
        // and the expired session is unknown.
        let deadline = Instant::now() + WAIT;
        loop {
            let r = raw_http(&at, "POST", &[auth], INITIALIZE).await;
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503, "{}", r.body);
            assert!(Instant::now() < deadline, "the idle session never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
        let gone = raw_http(&at, "POST", &[auth, ("Mcp-Session-Id", &idle)], ping).await;
        assert_eq!(gone.status, 404, "{}", gone.body);

        fixture.open("start");
        fixture.open("release");
        let (code, _, stderr) = run.exit().await;
        assert_eq!(code, 0, "{stderr}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_seconds_and_mcp_flags_are_usage_errors() -> TestResult {
    let fixture = Fixture::new();
    for (args, expect) in [
        (&["--mcp-linger", "1e300"][..], "too long"),
        (&["--mcp-linger", "-1"], "negative"),
        (&["--mcp-linger", "NaN"], "not a number of seconds"),
        (&["--mcp-linger", "soon"], "not a number of seconds"),
        (&["--mcp-session-timeout", "0"], "more than 0 seconds"),
        (&["--mcp-session-timeout", "-5"], "negative"),
        (&["--mcp-session-timeout", "inf"], "too long"),
        (&["--mcp-max-sessions", "0"], "at least 1"),
        (&["--mcp-allow-origin", "evil.example"], "not an origin"),
        (&["--mcp-allow-origin", "https://app.example/path"], "not an origin"),
        (&["--mcp-token", "has space"], "printable ASCII"),
        (&["--mcp-token", ""], "empty"),
    ] {
        let out = fixture
            .milo(&["run", "--ui", "plain", "--mcp-http", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_milo_mcp_token_does_not_break_runs_without_mcp() -> TestResult {
    let fixture = Fixture::new();
    let out = fixture
        .milo(&["run", "--dry-run"])
        .env("MILO_MCP_TOKEN", "exported-for-every-run")
        .stdin(Stdio::null())
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    Ok(())
}

// --- runs started through MCP, and signals ------------------------------------------------------

/// A pipeline whose `hold` phase waits for the gate file `start` (30 s at most), then sleeps
/// a marker of this test if the file `hold` exists.
fn holding_pipeline(marker: &str) -> String {
    format!(
        r#"name = "holding"

[[phase]]
name = "hold"
run = """
n=0; while [ ! -e start ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
if [ -e hold ]; then sleep {marker}; fi
echo held
"""
"#
    )
}

/// A `sleep` argument no other process has.
fn marker(n: u32) -> String {
    format!("311.{:07}{n:03}", std::process::id())
}

/// Waits until no process has `marker` on its command line.
async fn wait_gone(marker: &str) {
    let deadline = Instant::now() + WAIT;
    while !processes_with(marker).is_empty() {
        assert!(Instant::now() < deadline, "`sleep {marker}` outlived milo");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a process has `marker` on its command line.
async fn wait_running(marker: &str) {
    let deadline = Instant::now() + WAIT;
    while processes_with(marker).is_empty() {
        assert!(Instant::now() < deadline, "`sleep {marker}` never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_signals_stop_the_run_record_it_and_exit() -> TestResult {
    limited(async {
        for (n, signal) in [
            nix::sys::signal::Signal::SIGTERM,
            nix::sys::signal::Signal::SIGINT,
            nix::sys::signal::Signal::SIGHUP,
        ]
        .into_iter()
        .enumerate()
        {
            let marker = marker(n as u32 + 1);
            let fixture = Fixture::with(&holding_pipeline(&marker));
            fixture.open("start");
            // A run of `milo run` first: MCP runs are numbered on from it in the history.
            let out = fixture.milo(&["run", "--ui", "plain"]).output().await?;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            fixture.open("hold");

            let (mut server, client, _updates) = stdio_server(&fixture).await;
            let started = ok(call(&client, "run_pipeline", json!({})).await?);
            wait_running(&marker).await;
            let pid = server.child.id().expect("milo mcp is running");
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)?;
            let code = exit_code(&mut server.child, WAIT).await;
            let stderr = server.stderr.await?;
            assert_eq!(code, 130, "{signal}: {stderr}");
            wait_gone(&marker).await;
            drop(client);
            assert_eq!(started["run_id"], 2, "{signal}: the run id is the history's");

            let runs = fixture.history();
            let statuses: Vec<(&Value, &Value)> = runs.iter().map(|r| (&r["id"], &r["status"])).collect();
            assert_eq!(
                statuses,
                [(&json!(2), &json!("cancelled")), (&json!(1), &json!("completed"))],
                "{signal}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_runs_are_recorded_in_the_history() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        fixture.open("release");
        let (server, client, _updates) = stdio_server(&fixture).await;
        assert_eq!(ok(call(&client, "run_pipeline", json!({})).await?)["run_id"], 1);
        wait_timeline(&client, "the first run to complete", ended("completed")).await;
        assert_eq!(ok(call(&client, "run_pipeline", json!({})).await?)["run_id"], 2);
        wait_timeline(&client, "the second run to complete", ended("completed")).await;
        server.finish(client).await;
        let runs = fixture.history();
        let got: Vec<(&Value, &Value, &Value)> =
            runs.iter().map(|r| (&r["id"], &r["status"], &r["pipeline"])).collect();
        assert_eq!(
            got,
            [
                (&json!(2), &json!("completed"), &json!("demo")),
                (&json!(1), &json!("completed"), &json!("demo"))
            ]
        );
        // The journal holds the run's actions: `milo logs` prints what `work` wrote.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_milo"))
            .args(["logs", "2", "work", "-f"])
            .arg(fixture.file())
            .output()?;
        let logs = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && logs.contains("line 40") && logs.contains("released"),
            "{logs}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_a_run_started_during_the_linger_keeps_the_server_up_and_is_recorded() -> TestResult {
    limited(async {
        let marker = marker(7);
        let fixture = Fixture::with(&holding_pipeline(&marker));
        let run = http_run(&fixture, "5").await;
        let client = ().serve(StreamableHttpClientTransport::from_config(run.client_config())).await?;
        // milo run's run ends once the client is there; the 5 s linger starts.
        fixture.open("start");
        wait_timeline(&client, "milo run's run to complete", ended("completed")).await;
        fixture.open("hold");
        let started = ok(call(&client, "run_pipeline", json!({})).await?);
        assert_eq!(started["run_id"], 2, "the run id is the history's");
        wait_running(&marker).await;
        // Well past the linger, the server is still up, serving the run.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let timeline = read_json(&client, TIMELINE).await?;
        assert_eq!(timeline["status"], "running");
        // Let it end: milo exits once it has, with the status of its own run.
        std::fs::remove_file(fixture.dir.path().join("hold"))?;
        for pid in processes_with(&marker) {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)?;
        }
        let _ = client.cancel().await;
        let (code, _, stderr) = run.exit().await;
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("run 2 started through MCP is still going"), "{stderr}");
        let runs = fixture.history();
        let got: Vec<(&Value, &Value)> = runs.iter().map(|r| (&r["id"], &r["status"])).collect();
        // `sleep` killed: the phase failed, and the run with it.
        assert_eq!(got, [(&json!(2), &json!("failed")), (&json!(1), &json!("completed"))]);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_linger_inf_lasts_until_a_signal_which_cancels_an_mcp_run() -> TestResult {
    limited(async {
        let marker = marker(8);
        let fixture = Fixture::with(&holding_pipeline(&marker));
        fixture.open("start");
        let run = http_run(&fixture, "inf").await;
        let client = ().serve(StreamableHttpClientTransport::from_config(run.client_config())).await?;
        wait_timeline(&client, "milo run's run to complete", ended("completed")).await;
        fixture.open("hold");
        assert_eq!(ok(call(&client, "run_pipeline", json!({})).await?)["run_id"], 2);
        wait_running(&marker).await;
        let pid = run.child.id().expect("milo run is running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        wait_gone(&marker).await;
        let _ = client.cancel().await;
        let (code, _, stderr) = run.exit().await;
        assert_eq!(code, 0, "milo run's own run completed: {stderr}");
        let runs = fixture.history();
        let got: Vec<(&Value, &Value)> = runs.iter().map(|r| (&r["id"], &r["status"])).collect();
        assert_eq!(
            got,
            [(&json!(2), &json!("cancelled")), (&json!(1), &json!("completed"))]
        );
        Ok(())
    })
    .await
}

// --- JSON-RPC errors on stdio -------------------------------------------------------------------

/// The next line `milo mcp` writes, as JSON.
async fn next_json(stdout: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .expect("an answer in time")
        .expect("read stdout")
        .expect("milo mcp is still up");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_malformed_input_gets_json_rpc_errors() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let mut child = fixture
            .milo(&["mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = collect(child.stderr.take().expect("stderr"));
        stdin.write_all(format!("{INITIALIZE}\n").as_bytes()).await?;
        assert_eq!(next_json(&mut stdout).await["id"], 1);
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
            .await?;

        let cases: [(&[u8], Value, i64, &str); 9] = [
            (
                b"{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\"\n",
                Value::Null,
                -32700,
                "not valid JSON",
            ),
            (b"not json at all\n", Value::Null, -32700, "not valid JSON"),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}\0\n",
                Value::Null,
                -32700,
                "NUL",
            ),
            (b"\0\0\0\n", Value::Null, -32700, "NUL"),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"\xff\xfe\"}\n",
                Value::Null,
                -32700,
                "UTF-8",
            ),
            (b"[]\n", Value::Null, -32600, "batches"),
            (
                br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":42}}"#,
                json!(6),
                -32602,
                "tools/call",
            ),
            (
                br#"{"jsonrpc":"2.0","id":"seven","method":"resources/read","params":{"uri":["x"]}}"#,
                json!("seven"),
                -32602,
                "resources/read",
            ),
            (
                br#"{"jsonrpc":"2.0","id":8,"method":"deploy/now"}"#,
                json!(8),
                -32601,
                "",
            ),
        ];
        for (bytes, id, code, expect) in cases {
            stdin.write_all(bytes).await?;
            if !bytes.ends_with(b"\n") {
                stdin.write_all(b"\n").await?;
            }
            let reply = next_json(&mut stdout).await;
            let shown = String::from_utf8_lossy(bytes);
            assert_eq!(reply["jsonrpc"], "2.0", "{shown}: {reply}");
            assert_eq!(reply["id"], id, "{shown}: {reply}");
            assert_eq!(reply["error"]["code"], code, "{shown}: {reply}");
            let message = reply["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains(expect), "{shown}: {reply}");
        }
        // The session goes on.
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\"}\n")
            .await?;
        let tools = next_json(&mut stdout).await;
        assert_eq!(tools["id"], 9, "{tools}");
        assert_eq!(
            tools["result"]["tools"].as_array().map(Vec::len),
            Some(TOOLS.len()),
            "{tools}"
        );
        drop(stdin);
        let code = exit_code(&mut child, WAIT).await;
        let stderr = stderr.await?;
        assert_eq!(code, 0, "{stderr}");
        Ok(())
    })
    .await
}

/// A pipeline with parameters, for `run_pipeline`'s `params`.
const PARAMS_PIPELINE: &str = r#"name = "paramed"

[params.target]
choices = ["debug", "release"]
default = "debug"
help = "Build profile"

[params.jobs]
type = "int"
default = 2

[[phase]]
name = "build"
run = "echo target={{ params.target }} jobs={{ params.jobs }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_run_pipeline_takes_the_parameters_its_schema_lists() -> TestResult {
    limited(async {
        let fixture = Fixture::with(PARAMS_PIPELINE);
        let (server, client, _updates) = stdio_server(&fixture).await;
        let tools = client.list_all_tools().await?;
        let run = tools.iter().find(|t| t.name == "run_pipeline").expect("run_pipeline");
        let params = &Value::Object((*run.input_schema).clone())["properties"]["params"];
        assert_eq!(
            params["properties"]["target"],
            json!({"type": "string", "enum": ["debug", "release"], "default": "debug", "description": "Build profile"})
        );
        assert_eq!(params["properties"]["jobs"], json!({"type": "integer", "default": 2}));
        assert_eq!(params["additionalProperties"], json!(false));

        // Bad values are tool errors naming what is wrong.
        let e = tool_error(call(&client, "run_pipeline", json!({"params": {"target": "fast"}})).await?);
        assert!(e.contains("`fast`") && e.contains("release"), "{e}");
        let e = tool_error(call(&client, "run_pipeline", json!({"params": {"targte": "debug"}})).await?);
        assert!(e.contains("targte"), "{e}");

        let started = ok(call(
            &client,
            "run_pipeline",
            json!({"params": {"target": "release", "jobs": 8}}),
        )
        .await?);
        assert_eq!(started["params"], json!({"target": "release", "jobs": "8"}));
        let done = wait_timeline(&client, "the run to end", |t| t["status"] == "completed").await;
        assert_eq!(done["status"], "completed");
        let logs = ok(call(&client, "phase_logs", json!({"name": "build"})).await?);
        assert_eq!(lines(&logs["lines"]), ["target=release jobs=8"]);

        // Without `params`, a run gets the server's values again.
        let started = ok(call(&client, "run_pipeline", json!({})).await?);
        assert_eq!(started["params"], json!({"target": "debug", "jobs": "2"}));
        assert_eq!(started["run_id"], 2);
        let deadline = Instant::now() + WAIT;
        loop {
            let logs = ok(call(&client, "phase_logs", json!({"name": "build"})).await?);
            if lines(&logs["lines"]) == ["target=debug jobs=2"] {
                break;
            }
            assert!(Instant::now() < deadline, "the second run's line never came: {logs}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wait_timeline(&client, "the second run to end", |t| t["status"] == "completed").await;
        server.finish(client).await;

        // Each run is recorded with its values.
        let history = fixture.history();
        let shown = std::process::Command::new(env!("CARGO_BIN_EXE_milo"))
            .args(["show", "1", "-f"])
            .arg(fixture.file())
            .output()
            .expect("run milo show");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("params: target=release jobs=8"), "{text}\n{history:?}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_params_for_a_pipeline_without_parameters_are_refused() -> TestResult {
    limited(async {
        let fixture = Fixture::new();
        let (server, client, _updates) = stdio_server(&fixture).await;
        let e = tool_error(call(&client, "run_pipeline", json!({"params": {"x": "1"}})).await?);
        assert!(e.contains("it has no parameters"), "{e}");
        server.finish(client).await;
        Ok(())
    })
    .await
}
