//! Shared helpers of the integration tests: a gated pipeline, in-process clients and polling,
//! with the request helpers of [`milo_mcp::testing`].

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use milo::capture::Stream;
use milo::pipeline::{Phase, PhaseContext, Pipeline};
pub use milo_mcp::testing::*;
use rmcp::model::ProtocolVersion;
use rmcp::service::RunningService;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

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

/// Polls the timeline resource until `done` holds (10 s at most).
pub async fn wait_timeline<S: rmcp::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    milo_mcp::testing::wait_timeline(client, Duration::from_secs(10), what, done).await
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
