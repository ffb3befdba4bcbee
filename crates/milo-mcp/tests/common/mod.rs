//! Shared helpers of the integration tests: a gated pipeline, clients and polling.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use milo::capture::Stream;
use milo::pipeline::{Phase, PhaseContext, Pipeline};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ProtocolVersion, ReadResourceRequestParams, ResourceContents,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Lines the `work` phase logs before it waits at the gate.
pub const WORK_LINES: usize = 40;

/// A three-phase pipeline: `prepare` (a command writing to stdout and stderr), `work` (logs
/// [`WORK_LINES`] lines 5 ms apart, then waits for a permit of `gate`, or cancellation) and
/// `finish`.
pub fn pipeline(gate: Arc<Semaphore>) -> Pipeline {
    Pipeline::new(
        "demo",
        [
            Phase::command("prepare", "echo preparing; echo careful >&2").description("Prepare the inputs"),
            Phase::new_async("work", move |cx: PhaseContext| {
                let gate = gate.clone();
                async move {
                    for i in 0..WORK_LINES {
                        cx.log(Stream::Stdout, format!("line {i}"));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    tokio::select! {
                        permit = gate.acquire() => permit.map_err(|e| e.to_string())?.forget(),
                        _ = cx.cancellation().cancelled() => return Err("cancelled".to_owned()),
                    }
                    cx.log(Stream::Stdout, "released");
                    Ok::<_, String>(())
                }
            })
            .depends_on(["prepare"])
            .weight(3.0)
            .description("Do the work"),
            Phase::new_async("finish", |cx: PhaseContext| async move {
                cx.log(Stream::Stderr, "done");
                Ok::<_, String>(())
            })
            .depends_on(["work"])
            .parallel(true),
        ],
    )
    .expect("valid pipeline")
}

/// A client that records `notifications/resources/updated` (legacy subscriptions).
#[derive(Clone)]
pub struct Recorder {
    pub updates: mpsc::UnboundedSender<(String, Instant)>,
}

impl ClientHandler for Recorder {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.updates.send((params.uri, Instant::now()));
    }
}

pub type Updates = mpsc::UnboundedReceiver<(String, Instant)>;
pub type LegacyClient = RunningService<RoleClient, Recorder>;
pub type ModernClient = RunningService<RoleClient, ()>;

/// A client of MCP 2025-11-25 (initialize lifecycle) over an in-process duplex pipe.
pub async fn legacy_client(hub: Arc<milo_mcp::Hub>) -> (LegacyClient, Updates) {
    let (server_io, client_io) = tokio::io::duplex(256 * 1024);
    tokio::spawn(milo_mcp::serve_transport(hub, server_io));
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Recorder { updates: tx }
        .serve(client_io)
        .await
        .expect("legacy client connects");
    (client, rx)
}

/// A client of MCP 2026-07-28 (discover lifecycle) over an in-process duplex pipe.
pub async fn modern_client(hub: Arc<milo_mcp::Hub>) -> ModernClient {
    let (server_io, client_io) = tokio::io::duplex(256 * 1024);
    tokio::spawn(milo_mcp::serve_transport(hub, server_io));
    ().serve_with_lifecycle(
        client_io,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("modern client connects")
}

/// Reads resource `uri` as JSON.
pub async fn read_json<S: rmcp::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    uri: &str,
) -> Result<Value, ServiceError> {
    let result = client.read_resource(ReadResourceRequestParams::new(uri)).await?;
    assert_eq!(result.contents.len(), 1, "{uri}");
    match &result.contents[0] {
        ResourceContents::TextResourceContents {
            uri: got,
            mime_type,
            text,
            ..
        } => {
            assert_eq!(got, uri);
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            Ok(serde_json::from_str(text).expect("resource is JSON"))
        }
        other => panic!("unexpected contents {other:?}"),
    }
}

/// Calls tool `name` with `args` (an object, or null for none).
pub async fn call<S: rmcp::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    name: &str,
    args: Value,
) -> Result<CallToolResult, ServiceError> {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client.call_tool(params).await
}

/// The text of a tool result.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts the call succeeded and returns its structured content.
pub fn ok(result: CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool failed: {}", text(&result));
    result.structured_content.expect("structured content")
}

/// Asserts the call is a tool error and returns its message.
pub fn tool_error(result: CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "expected a tool error, got {result:?}");
    text(&result)
}

/// Polls the timeline resource until `done` holds (10 s at most).
pub async fn wait_timeline<S: rmcp::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let timeline = read_json(client, milo_mcp::TIMELINE_URI).await.expect("timeline");
        if done(&timeline) {
            return timeline;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {timeline:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status of phase `name` in a timeline.
pub fn phase_status<'a>(timeline: &'a Value, name: &str) -> &'a str {
    timeline["phases"]
        .as_array()
        .and_then(|phases| phases.iter().find(|p| p["name"] == json!(name)))
        .and_then(|p| p["status"].as_str())
        .unwrap_or("")
}

/// Whether `work` is waiting at the gate (all its lines logged).
pub fn work_waiting(timeline: &Value) -> bool {
    phase_status(timeline, "work") == "running"
        && timeline["phases"][1]["log_count"].as_u64() == Some(WORK_LINES as u64)
}

/// Whether the run has ended with `status`.
pub fn ended(status: &'static str) -> impl Fn(&Value) -> bool {
    move |t: &Value| t["status"] == json!(status) && t["current_phase"].is_null()
}
