//! The tools: their definitions (with JSON schemas for their inputs) and how a call runs.
//!
//! Bad arguments, a second run while one is active and unknown phases are tool errors
//! (`isError: true` with a message the caller can read), never protocol errors or panics.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::hub::Hub;
use crate::resources::{TIMELINE_URI, logs_json, timeline_json};

/// `run_pipeline`: start a run.
pub const RUN_PIPELINE: &str = "run_pipeline";
/// `cancel_pipeline`: stop the active run.
pub const CANCEL_PIPELINE: &str = "cancel_pipeline";
/// `get_timeline`: the timeline of the active or last run.
pub const GET_TIMELINE: &str = "get_timeline";
/// `execution_order`: phase names in execution order.
pub const EXECUTION_ORDER: &str = "execution_order";
/// `phase_logs`: one phase's captured lines.
pub const PHASE_LOGS: &str = "phase_logs";

/// The arguments of tools that take none.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// The arguments of `run_pipeline`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunArgs {
    /// Parameter values by name (the others keep their defaults).
    #[serde(default)]
    params: Option<JsonObject>,
}

/// `run_pipeline`'s input schema: no arguments, or `params` when the pipeline has parameters.
fn run_schema(hub: &Hub) -> Arc<JsonObject> {
    let Some(params) = hub.params_schema() else {
        return no_args_schema();
    };
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), json!({ "params": Value::Object(params.clone()) }));
    schema.insert("additionalProperties".into(), Value::Bool(false));
    Arc::new(schema)
}

/// The arguments of `phase_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PhaseLogsArgs {
    /// The phase's name.
    name: String,
    /// Only the last `tail` lines (all kept lines when omitted).
    #[serde(default)]
    tail: Option<usize>,
}

fn no_args_schema() -> Arc<JsonObject> {
    let mut schema = (*schema_for_empty_input()).clone();
    schema.insert("additionalProperties".into(), Value::Bool(false));
    Arc::new(schema)
}

fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<T>().unwrap_or_else(|error| {
        tracing::error!(%error, "invalid tool input schema");
        schema_for_empty_input()
    })
}

/// Every tool, for `tools/list`.
pub(crate) fn tools(hub: &Hub) -> Vec<Tool> {
    let read_only = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .open_world(false);
    vec![
        Tool::new(
            RUN_PIPELINE,
            "Start a run of the pipeline and return at once with its run id. Follow it with the \
             milo://pipeline/timeline resource or get_timeline. Fails if a run is in progress. \
             A pipeline with parameters takes their values in `params` (by name; the others \
             keep their defaults).",
            run_schema(hub),
        )
        .with_title("Run pipeline")
        .annotate(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(false),
        ),
        Tool::new(
            CANCEL_PIPELINE,
            "Cancel the run in progress: running phases are stopped (commands get SIGTERM, then \
             SIGKILL after a grace period) and the run ends as cancelled.",
            no_args_schema(),
        )
        .with_title("Cancel pipeline")
        .annotate(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
        ),
        Tool::new(
            GET_TIMELINE,
            "The execution timeline of the active or last run: status, progress, and each \
             phase's status, timing, attempts, errors and log count, and for an incremental \
             phase its key, verdict (run, up_to_date or restored) and the reason.",
            no_args_schema(),
        )
        .with_title("Get timeline")
        .annotate(read_only.clone()),
        Tool::new(
            EXECUTION_ORDER,
            "The phase names in the order the pipeline runs them, and grouped by dependency level.",
            no_args_schema(),
        )
        .with_title("Execution order")
        .annotate(read_only.clone()),
        Tool::new(
            PHASE_LOGS,
            "The captured output lines of one phase in the active or last run, oldest first \
             (the last `tail` lines when given).",
            schema::<PhaseLogsArgs>(),
        )
        .with_title("Phase logs")
        .annotate(read_only),
    ]
}

fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn parse<T: DeserializeOwned>(tool: &str, arguments: Option<JsonObject>) -> Result<T, CallToolResult> {
    let value = Value::Object(arguments.unwrap_or_default());
    serde_json::from_value(value).map_err(|e| tool_error(format!("invalid arguments for `{tool}`: {e}")))
}

/// Runs tool `name`. Unknown tools are a protocol error (invalid params); anything else that
/// goes wrong is a tool error.
pub(crate) fn call(hub: &Hub, name: &str, arguments: Option<JsonObject>) -> Result<CallToolResult, ErrorData> {
    let result = match name {
        RUN_PIPELINE => parse::<RunArgs>(name, arguments).map(|args| run_pipeline(hub, args)),
        CANCEL_PIPELINE => parse::<NoArgs>(name, arguments).map(|_| cancel_pipeline(hub)),
        GET_TIMELINE => parse::<NoArgs>(name, arguments).map(|_| CallToolResult::structured(timeline_json(hub))),
        EXECUTION_ORDER => parse::<NoArgs>(name, arguments).map(|_| execution_order(hub)),
        PHASE_LOGS => parse::<PhaseLogsArgs>(name, arguments).map(|args| phase_logs(hub, args)),
        _ => {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool `{name}` (available: {RUN_PIPELINE}, {CANCEL_PIPELINE}, {GET_TIMELINE}, \
                     {EXECUTION_ORDER}, {PHASE_LOGS})"
                ),
                None,
            ));
        }
    };
    Ok(result.unwrap_or_else(|error| error))
}

fn run_pipeline(hub: &Hub, args: RunArgs) -> CallToolResult {
    match hub.start_run_with(args.params.as_ref()) {
        Ok(run_id) => {
            let mut started = json!({
                "run_id": run_id,
                "pipeline": hub.pipeline().name(),
                "status": "started",
                "timeline": TIMELINE_URI,
            });
            if hub.params_schema().is_some() {
                // The values the run got, given or not.
                started["params"] = Value::Object(hub.params_values().into_iter().collect());
            }
            CallToolResult::structured(started)
        }
        Err(e) => tool_error(e.to_string()),
    }
}

fn cancel_pipeline(hub: &Hub) -> CallToolResult {
    match hub.cancel_run() {
        Ok(run_id) => CallToolResult::structured(json!({
            "run_id": run_id,
            "pipeline": hub.pipeline().name(),
            "status": "cancelling",
        })),
        Err(e) => tool_error(e.to_string()),
    }
}

fn execution_order(hub: &Hub) -> CallToolResult {
    let pipeline = hub.pipeline();
    let def = pipeline.def();
    CallToolResult::structured(json!({
        "pipeline": hub.pipeline().name(),
        "execution_order": def.execution_order(),
        "levels": def.levels(),
    }))
}

fn phase_logs(hub: &Hub, args: PhaseLogsArgs) -> CallToolResult {
    match logs_json(hub, &args.name, args.tail) {
        Some(lines) => CallToolResult::structured(json!({"phase": args.name, "lines": lines})),
        None => {
            let available: Vec<String> = hub
                .pipeline()
                .def()
                .phases
                .iter()
                .map(|p| format!("`{}`", p.name))
                .collect();
            tool_error(format!(
                "unknown phase `{}` (available phases: {})",
                args.name,
                available.join(", ")
            ))
        }
    }
}
