//! [`MiloServer`]: the MCP server handler of one session, over a shared [`Hub`].
//!
//! Subscriptions work with both lifecycles: clients of MCP 2025-11-25 and older use
//! `resources/subscribe` / `resources/unsubscribe` (updates are sent to the session), clients
//! of 2026-07-28 open a `subscriptions/listen` stream naming the resource URIs (updates are
//! sent on that stream until it is cancelled).

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use parking_lot::Mutex;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig, SubscribeRequestParams,
    SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::notify::{Target, watch_resource};
use crate::resources::{GRAPH_URI, LOGS_TEMPLATE, ResourceKey, TIMELINE_URI, graph_json, logs_json, timeline_json};
use crate::tools;

const JSON: &str = "application/json";

/// Ends a session's watchers when the session (its last handler clone) goes away.
#[derive(Debug)]
struct Session {
    cancel: CancellationToken,
    subscriptions: Mutex<HashMap<String, CancellationToken>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The MCP server handler for one session. Create one per session with [`MiloServer::new`];
/// all of them share the [`Hub`].
#[derive(Debug, Clone)]
pub struct MiloServer {
    hub: Arc<Hub>,
    session: Arc<Session>,
}

impl MiloServer {
    /// A handler over `hub`. Its subscriptions end when `shutdown` is cancelled or the
    /// session ends.
    pub fn new(hub: Arc<Hub>, shutdown: &CancellationToken) -> Self {
        Self {
            hub,
            session: Arc::new(Session {
                cancel: shutdown.child_token(),
                subscriptions: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn not_found(&self, uri: &str) -> ErrorData {
        let phases: Vec<String> = self
            .hub
            .pipeline()
            .def()
            .phases
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        ErrorData::resource_not_found(
            format!(
                "unknown resource `{uri}`: this server has {TIMELINE_URI}, {GRAPH_URI} and \
                 {LOGS_TEMPLATE} for the phases {}",
                phases.join(", ")
            ),
            Some(json!({ "uri": uri })),
        )
    }

    fn read(&self, uri: &str) -> Result<Value, ErrorData> {
        match ResourceKey::resolve(&self.hub, uri) {
            Some(ResourceKey::Timeline) => Ok(timeline_json(&self.hub)),
            Some(ResourceKey::Graph) => Ok(graph_json(self.hub.pipeline().def())),
            Some(ResourceKey::Logs(name)) => logs_json(&self.hub, &name, None).ok_or_else(|| self.not_found(uri)),
            None => Err(self.not_found(uri)),
        }
    }
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities::builder()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_tools()
        .build()
}

impl ServerHandler for MiloServer {
    fn get_info(&self) -> ServerConfig {
        let pipeline = self.hub.pipeline();
        let name = pipeline.name();
        ServerConfig::new(capabilities())
            .with_server_info(Implementation::new("milo-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "Serves the milo pipeline `{name}`. Read {GRAPH_URI} for its phases and \
                 {TIMELINE_URI} for the progress of the active or last run (subscribe to it for \
                 live updates); {LOGS_TEMPLATE} has each phase's output. Start a run with the \
                 run_pipeline tool and stop it with cancel_pipeline."
            ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(TIMELINE_URI, "timeline")
                .with_title("Pipeline timeline")
                .with_description(
                    "The execution timeline of the active or last run as JSON: status, progress and \
                     each phase's status, timing and errors, and for an incremental phase its \
                     decision (key, verdict run/up_to_date/restored, reason). Subscribe for live \
                     updates.",
                )
                .with_mime_type(JSON),
            Resource::new(GRAPH_URI, "graph")
                .with_title("Pipeline graph")
                .with_description(
                    "The phases (as `milo phases --json`: dependencies, parallel flag, weight, \
                     description, failure policy, timeout, command, level) and the execution order.",
                )
                .with_mime_type(JSON),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(LOGS_TEMPLATE, "phase-logs")
                .with_title("Phase logs")
                .with_description(
                    "A phase's captured output lines in the active or last run, as JSON \
                     [{\"line\", \"stream\", \"timestamp\"}]. Subscribe for live updates.",
                )
                .with_mime_type(JSON),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let value = self.read(&request.uri)?;
        let contents = ResourceContents::text(value.to_string(), request.uri).with_mime_type(JSON);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = request.uri;
        let Some(key) = ResourceKey::resolve(&self.hub, &uri) else {
            return Err(self.not_found(&uri));
        };
        let cancel = self.session.cancel.child_token();
        if let Some(previous) = self.session.subscriptions.lock().insert(uri.clone(), cancel.clone()) {
            previous.cancel();
        }
        tracing::debug!(uri, "resources/subscribe");
        tokio::spawn(watch_resource(
            self.hub.clone(),
            key,
            uri,
            Target::Peer(context.peer),
            cancel,
        ));
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Some(cancel) = self.session.subscriptions.lock().remove(&request.uri) {
            cancel.cancel();
        }
        Ok(())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let uris = requested.resource_subscriptions.iter().flatten();
        let known: Vec<&String> = uris
            .filter(|uri| ResourceKey::resolve(&self.hub, uri).is_some())
            .collect();
        Some(SubscriptionFilter::builder().resource_subscriptions(known).build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let cancel = self.session.cancel.child_token();
        let sink = context.sink().clone();
        let watchers = context
            .accepted()
            .resource_subscriptions
            .iter()
            .flatten()
            .filter_map(|uri| Some((ResourceKey::resolve(&self.hub, uri)?, uri.clone())))
            .map(|(key, uri)| watch_resource(self.hub.clone(), key, uri, Target::Sink(sink.clone()), cancel.clone()))
            .collect::<Vec<_>>();
        tracing::debug!(count = watchers.len(), "subscriptions/listen");
        tokio::select! {
            _ = context.cancelled() => {}
            _ = cancel.cancelled() => {}
            _ = async {
                join_all(watchers).await;
                // Every watcher has stopped (its stream is gone): wait for the end.
                std::future::pending::<()>().await;
            } => {}
        }
        cancel.cancel();
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::tools(&self.hub)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        tools::call(&self.hub, &request.name, request.arguments).map(CallToolResponse::from)
    }
}
