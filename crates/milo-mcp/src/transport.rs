//! Serving a [`Hub`] over stdio ([`serve_stdio`]), any rmcp transport ([`serve_transport`]),
//! or streamable HTTP at `http://ADDR/mcp` ([`serve_http`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::ServiceExt;
use rmcp::transport::IntoTransport;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::error::McpError;
use crate::hub::Hub;
use crate::server::MiloServer;

/// The path the HTTP server answers on.
pub const HTTP_PATH: &str = "/mcp";

/// How long open HTTP connections (such as event streams) get to close after shutdown.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves one MCP session over stdin/stdout until the client disconnects. Nothing else may
/// write to stdout meanwhile: log to stderr.
pub async fn serve_stdio(hub: Arc<Hub>) -> Result<(), McpError> {
    serve_transport(hub, rmcp::transport::stdio()).await
}

/// Serves one MCP session over `transport` (anything rmcp accepts: an `AsyncRead +
/// AsyncWrite` pair or stream, a sink and stream of messages…) until it closes.
pub async fn serve_transport<T, E, A>(hub: Arc<Hub>, transport: T) -> Result<(), McpError>
where
    T: IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let shutdown = CancellationToken::new();
    let _stop_watchers = shutdown.clone().drop_guard();
    let running = MiloServer::new(hub, &shutdown).serve(transport).await?;
    let reason = running.waiting().await.map_err(McpError::Session)?;
    tracing::info!(?reason, "MCP session ended");
    Ok(())
}

/// Refuses a non-loopback `addr` unless `allow_remote`, with an error that says how to allow it.
pub fn check_bind_addr(addr: SocketAddr, allow_remote: bool) -> Result<(), McpError> {
    if allow_remote || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(McpError::NotLoopback { addr })
    }
}

/// Binds `addr` and returns the bound address and the server future, which serves MCP over
/// streamable HTTP at `http://ADDR/mcp` until `shutdown` is cancelled (then open connections
/// get [`HTTP_SHUTDOWN_GRACE`] to close). Spawn or await the future.
///
/// Only loopback addresses are accepted unless `allow_remote`; without it, requests must also
/// name a loopback host (DNS-rebinding protection). Both the 2026-07-28 lifecycle
/// (stateless, `subscriptions/listen`) and older session-based clients
/// (`resources/subscribe`, updates on the session's event stream) are served.
pub async fn serve_http(
    hub: Arc<Hub>,
    addr: SocketAddr,
    allow_remote: bool,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = Result<(), McpError>> + Send + 'static), McpError> {
    check_bind_addr(addr, allow_remote)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| McpError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| McpError::Bind { addr, source })?;
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_cancellation_token(shutdown.child_token());
    let config = if allow_remote {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            bound.ip().to_string(),
        ])
    };
    let sessions = shutdown.clone();
    let service = StreamableHttpService::new(
        move || Ok(MiloServer::new(hub.clone(), &sessions)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service(HTTP_PATH, service);
    tracing::info!("MCP server listening on http://{bound}{HTTP_PATH}");
    let server = async move {
        let graceful = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tokio::select! {
            result = graceful => result.map_err(McpError::Serve),
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(HTTP_SHUTDOWN_GRACE).await;
            } => {
                tracing::warn!("MCP HTTP connections still open after the shutdown grace period; closing them");
                Ok(())
            }
        }
    };
    Ok((bound, server))
}
