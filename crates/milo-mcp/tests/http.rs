//! The streamable HTTP server on 127.0.0.1:0 with rmcp's HTTP client: a 2025-11-25 session
//! client (`resources/subscribe`, updates on the session stream) and a 2026-07-28 stateless
//! client (`subscriptions/listen`), the loopback-only rule and shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use milo_mcp::{GRAPH_URI, HttpOptions, Hub, McpError, TIMELINE_URI, logs_uri, serve_http};
use rmcp::model::{ProtocolVersion, ServerNotification, SubscribeRequestParams, SubscriptionFilter};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, ServiceExt};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-token";

/// rmcp's HTTP client settings for `url`, sending the token.
fn config(url: String) -> StreamableHttpClientTransportConfig {
    StreamableHttpClientTransportConfig::with_uri(url).auth_header(TOKEN)
}

async fn start() -> (
    Arc<Hub>,
    Arc<Semaphore>,
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), McpError>>,
) {
    let gate = Arc::new(Semaphore::new(0));
    let hub = Hub::new(pipeline(gate.clone()));
    let shutdown = CancellationToken::new();
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let (bound, server) = serve_http(hub.clone(), HttpOptions::new(addr, TOKEN), shutdown.clone())
        .await
        .expect("serve_http");
    assert_eq!(bound.ip(), addr.ip());
    assert_ne!(bound.port(), 0);
    let server = tokio::spawn(server);
    (hub, gate, format!("http://{bound}/mcp"), shutdown, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_session_client_reads_calls_and_subscribes() -> TestResult {
    let (_hub, gate, url, shutdown, server) = start().await;
    let (tx, mut updates) = mpsc::unbounded_channel();
    let client = Recorder { updates: tx }
        .serve(StreamableHttpClientTransport::from_config(config(url)))
        .await?;

    let uris: Vec<String> = client.list_all_resources().await?.into_iter().map(|r| r.uri).collect();
    assert_eq!(uris, [TIMELINE_URI, GRAPH_URI]);
    assert_eq!(client.list_all_resource_templates().await?.len(), 1);
    assert_eq!(client.list_all_tools().await?.len(), 5);
    assert_eq!(read_json(&client, TIMELINE_URI).await?["status"], "no active pipeline");
    assert_eq!(
        read_json(&client, GRAPH_URI).await?["execution_order"],
        json!(["prepare", "work", "finish"])
    );
    assert!(read_json(&client, "milo://pipeline/phases/x/logs").await.is_err());

    #[allow(deprecated)]
    client.subscribe(SubscribeRequestParams::new(TIMELINE_URI)).await?;
    assert_eq!(ok(call(&client, "run_pipeline", json!({})).await?)["run_id"], 1);
    let e = tool_error(call(&client, "run_pipeline", json!({})).await?);
    assert!(e.contains("already running"), "{e}");
    let (uri, _) = tokio::time::timeout(Duration::from_secs(10), updates.recv())
        .await?
        .expect("an update");
    assert_eq!(uri, TIMELINE_URI);
    wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    let logs = ok(call(&client, "phase_logs", json!({"name": "work", "tail": 1})).await?);
    assert_eq!(logs["lines"][0]["line"], "line 39");
    assert_eq!(
        read_json(&client, &logs_uri("prepare")).await?.as_array().map(Vec::len),
        Some(2)
    );
    ok(call(&client, "cancel_pipeline", json!({})).await?);
    wait_timeline(&client, "the run to be cancelled", ended("cancelled")).await;
    drop(gate);

    client.cancel().await?;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server).await???;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_listens_over_http() -> TestResult {
    let (hub, gate, url, shutdown, server) = start().await;
    let client = ()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(config(url)),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?;
    let mut subscription = client
        .listen(
            SubscriptionFilter::builder()
                .resource_subscription(TIMELINE_URI)
                .build(),
        )
        .await?;
    ok(call(&client, "run_pipeline", json!({})).await?);
    let next = tokio::time::timeout(Duration::from_secs(10), subscription.next()).await??;
    let Some(ServerNotification::ResourceUpdatedNotification(n)) = next else {
        panic!("unexpected {next:?}");
    };
    assert_eq!(n.params.uri, TIMELINE_URI);
    wait_timeline(&client, "work to wait at the gate", work_waiting).await;
    gate.add_permits(1);
    wait_timeline(&client, "the run to complete", ended("completed")).await;
    assert!(hub.current().is_some_and(|r| !r.is_active()));

    // Shutting the server down ends the open subscription stream and the server future.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server).await???;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match subscription.next().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await?;
    drop(end);
    let _ = client.cancel().await;
    Ok(())
}

#[tokio::test]
async fn non_loopback_addresses_are_refused_unless_allowed() {
    let gate = Arc::new(Semaphore::new(0));
    let hub = Hub::new(pipeline(gate));
    let addr: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    let Err(e) = serve_http(hub.clone(), HttpOptions::new(addr, TOKEN), CancellationToken::new()).await else {
        panic!("a non-loopback bind must be refused");
    };
    assert!(matches!(e, McpError::NotLoopback { .. }));
    let message = e.to_string();
    assert!(
        message.contains("0.0.0.0:0") && message.contains("--mcp-allow-remote"),
        "{message}"
    );
    assert!(milo_mcp::check_bind_addr("[::1]:8080".parse().expect("addr"), false).is_ok());
    assert!(milo_mcp::check_bind_addr("192.0.2.1:8080".parse().expect("addr"), true).is_ok());
    assert!(milo_mcp::check_bind_addr("192.0.2.1:8080".parse().expect("addr"), false).is_err());

    // A bind failure is a clear error too.
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = taken.local_addr().expect("addr");
    let Err(e) = serve_http(hub, HttpOptions::new(addr, TOKEN), CancellationToken::new()).await else {
        panic!("the port is taken");
    };
    assert!(matches!(e, McpError::Bind { .. }), "{e}");
}
