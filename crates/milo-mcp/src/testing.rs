//! Helpers for tests that drive a milo MCP server with rmcp's client (feature `test-client`):
//! this crate's integration tests and those of the `milo` binary share them.
//!
//! They panic when the server answers with something other than what every milo resource or
//! tool result must look like; protocol errors are returned for the test to check.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ErrorCode, ReadResourceRequestParams, ResourceContents,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceError};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a test returns, so that it can use `?` on any error.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A client that records each `notifications/resources/updated` (legacy subscriptions) with
/// when it arrived.
#[derive(Clone)]
pub struct Recorder {
    /// Where the updated URIs go.
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

/// What a [`Recorder`] received.
pub type Updates = mpsc::UnboundedReceiver<(String, Instant)>;

/// Reads resource `uri` and parses it as JSON, asserting that it is one text content with that
/// URI and the JSON MIME type.
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
            Ok(serde_json::from_str(text).expect("the resource is JSON"))
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

/// The code of a protocol error (panics on any other error).
pub fn error_code(e: ServiceError) -> ErrorCode {
    match e {
        ServiceError::McpError(data) => data.code,
        other => panic!("expected an MCP error, got {other}"),
    }
}

/// Polls the timeline resource every 20 ms until `done` holds; panics after `limit`.
pub async fn wait_timeline<S: rmcp::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let timeline = read_json(client, crate::TIMELINE_URI).await.expect("read the timeline");
        if done(&timeline) {
            return timeline;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {timeline:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a timeline shows the run ended with `status`.
pub fn ended(status: &'static str) -> impl Fn(&Value) -> bool {
    move |t: &Value| t["status"] == json!(status) && t["current_phase"].is_null()
}
