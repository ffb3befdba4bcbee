//! Serving a [`Hub`] over stdio ([`serve_stdio`]), any rmcp transport ([`serve_transport`]),
//! or streamable HTTP at `http://ADDR/mcp` ([`serve_http`], guarded as [`HttpOptions`] says:
//! `Host` and `Origin` checks, a bearer token, a capped number of sessions that expire).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http;
use futures::Stream;
use rmcp::RoleServer;
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::IntoTransport;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId, SessionManager};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::error::McpError;
use crate::hub::Hub;
use crate::server::MiloServer;
use crate::stdio::CheckedLines;

/// The path the HTTP server answers on.
pub const HTTP_PATH: &str = "/mcp";

/// How long open HTTP connections (such as event streams) get to close after shutdown.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves one MCP session over stdin/stdout until the client disconnects. Nothing else may
/// write to stdout meanwhile: log to stderr. Malformed input is answered with JSON-RPC errors
/// (see [`CheckedLines`]).
pub async fn serve_stdio(hub: Arc<Hub>) -> Result<(), McpError> {
    let (stdin, stdout) = rmcp::transport::stdio();
    serve_transport(hub, CheckedLines::new(stdin, stdout)).await
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

/// How `serve_http` listens and whom it lets in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// The address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// Allow a non-loopback `addr` (and any `Host` header).
    pub allow_remote: bool,
    /// The bearer token every request must carry (`Authorization: Bearer TOKEN`).
    pub token: String,
    /// Browser origins allowed besides the loopback ones (`http://localhost:*`,
    /// `http://127.0.0.1:*`, `http://[::1]:*` and their `https` forms), such as
    /// `https://app.example:443`. Requests without an `Origin` header (every non-browser
    /// client) are not affected.
    pub allowed_origins: Vec<String>,
    /// The most session-based (2025-11-25 and older) sessions open at once; `initialize`
    /// beyond it gets `503 Service Unavailable`.
    pub max_sessions: usize,
    /// A session with no request and no message from the server for this long is closed
    /// (its client gets `404` and may initialize again).
    pub session_idle_timeout: Duration,
}

impl HttpOptions {
    /// Loopback-only options on `addr` with `token`, [`DEFAULT_MAX_SESSIONS`] sessions and
    /// [`DEFAULT_SESSION_IDLE_TIMEOUT`].
    pub fn new(addr: SocketAddr, token: impl Into<String>) -> Self {
        Self {
            addr,
            allow_remote: false,
            token: token.into(),
            allowed_origins: Vec::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
        }
    }
}

/// The default of [`HttpOptions::max_sessions`].
pub const DEFAULT_MAX_SESSIONS: usize = 32;
/// The default of [`HttpOptions::session_idle_timeout`].
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The origins a browser page served from this machine has.
const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

/// A new random bearer token: 32 bytes from the OS, as 64 hex digits.
pub fn generate_token() -> Result<String, McpError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| McpError::Token(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Binds `options.addr` and returns the bound address and the server future, which serves MCP
/// over streamable HTTP at `http://ADDR/mcp` until `shutdown` is cancelled (then open
/// connections get [`HTTP_SHUTDOWN_GRACE`] to close). Spawn or await the future.
///
/// Only loopback addresses are accepted unless `allow_remote`; without it, requests must also
/// name a loopback host (DNS-rebinding protection). Requests from a browser page must come
/// from a loopback origin or one of `allowed_origins` (`403` otherwise), every request must
/// carry the bearer token (`401` otherwise), and sessions are capped and expire (see
/// [`HttpOptions`]). Both the 2026-07-28 lifecycle (stateless, `subscriptions/listen`) and
/// older session-based clients (`resources/subscribe`, updates on the session's event
/// stream) are served.
pub async fn serve_http(
    hub: Arc<Hub>,
    options: HttpOptions,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = Result<(), McpError>> + Send + 'static), McpError> {
    let addr = options.addr;
    check_bind_addr(addr, options.allow_remote)?;
    if options.token.trim().is_empty() {
        return Err(McpError::Token("the bearer token is empty".into()));
    }
    if options.max_sessions == 0 {
        return Err(McpError::Config(
            "the maximum number of MCP sessions is 0, so no session-based client could connect; allow at least 1"
                .into(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| McpError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| McpError::Bind { addr, source })?;
    let origins = LOOPBACK_ORIGINS
        .iter()
        .map(|o| (*o).to_owned())
        .chain(options.allowed_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_cancellation_token(shutdown.child_token())
        .with_allowed_origins(origins)
        .enforce_origin_validation();
    let config = if options.allow_remote {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            bound.ip().to_string(),
        ])
    };
    let sessions = Arc::new(CappedSessions::new(options.max_sessions, options.session_idle_timeout));
    let session_shutdown = shutdown.clone();
    let service = StreamableHttpService::new(
        move || Ok(MiloServer::new(hub.clone(), &session_shutdown)),
        sessions.clone(),
        config,
    );
    let guard = Arc::new(Guard {
        token_digest: Sha256::digest(options.token.as_bytes()).into(),
        sessions,
    });
    let router = axum::Router::new()
        .nest_service(HTTP_PATH, service)
        .layer(axum::middleware::from_fn_with_state(guard, guard_requests));
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

/// What [`guard_requests`] checks before rmcp sees a request.
struct Guard {
    /// SHA-256 of the token: comparing digests takes the same time whatever the guess.
    token_digest: [u8; 32],
    sessions: Arc<CappedSessions>,
}

/// Refuses requests without the bearer token (`401`), and `initialize` requests while every
/// session is taken (`503`, before rmcp would answer with a bare `500`).
async fn guard_requests(
    State(guard): State<Arc<Guard>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let headers = request.headers();
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let authorized = given.is_some_and(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())) == guard.token_digest);
    if !authorized {
        let why = if given.is_some() {
            "the bearer token is wrong"
        } else {
            "no bearer token was sent"
        };
        tracing::warn!("refused an MCP request: {why}");
        return plain(
            http::StatusCode::UNAUTHORIZED,
            &[(
                http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"milo\", error=\"invalid_token\"",
            )],
            format!(
                "Unauthorized: {why}. Send the token milo printed at startup (also in its token \
                 file) as the header `Authorization: Bearer TOKEN`.\n"
            ),
        );
    }
    let opens_session = request.method() == http::Method::POST
        && !headers.contains_key(SESSION_ID_HEADER)
        && headers
            .get(PROTOCOL_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v < STATELESS_PROTOCOL);
    if opens_session && guard.sessions.is_full().await {
        return plain(
            http::StatusCode::SERVICE_UNAVAILABLE,
            &[(http::header::RETRY_AFTER, "30")],
            guard.sessions.full_message(),
        );
    }
    next.run(request).await
}

const SESSION_ID_HEADER: &str = "mcp-session-id";
const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// The first protocol revision without sessions.
const STATELESS_PROTOCOL: &str = "2026-07-28";

fn plain(
    status: http::StatusCode,
    headers: &[(http::header::HeaderName, &'static str)],
    body: String,
) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    for (name, value) in headers {
        map.insert(name.clone(), http::HeaderValue::from_static(value));
    }
    response
}

/// rmcp's [`LocalSessionManager`] with idle sessions closed after a timeout and at most `max`
/// sessions open.
#[derive(Debug)]
struct CappedSessions {
    inner: LocalSessionManager,
    max: usize,
    idle: Duration,
    /// Held while a session is created, so that two cannot both take the last place.
    creating: tokio::sync::Mutex<()>,
}

/// Why [`CappedSessions`] refused or failed.
#[derive(Debug, thiserror::Error)]
enum SessionsError {
    #[error("{0}")]
    Full(String),
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

impl CappedSessions {
    fn new(max: usize, idle: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        Self {
            inner,
            max,
            idle,
            creating: tokio::sync::Mutex::new(()),
        }
    }

    async fn is_full(&self) -> bool {
        self.inner.sessions.read().await.len() >= self.max
    }

    fn full_message(&self) -> String {
        format!(
            "Service Unavailable: all {} MCP sessions of this server are open. Close one (HTTP \
             DELETE with its Mcp-Session-Id header), wait for an idle one to expire (after {} s \
             without activity), or start milo with a higher --mcp-max-sessions.\n",
            self.max,
            self.idle.as_secs_f64()
        )
    }
}

impl SessionManager for CappedSessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _creating = self.creating.lock().await;
        if self.is_full().await {
            return Err(SessionsError::Full(self.full_message()));
        }
        Ok(self.inner.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }
}
