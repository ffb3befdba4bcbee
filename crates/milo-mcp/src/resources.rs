//! The resources: their URIs, how a URI is parsed, and the JSON each one serves.
//!
//! * [`TIMELINE_URI`]: [`pipeline_to_timeline`] of the active or last run (each phase with
//!   its decision when it is incremental: `key`, `verdict`, `reason`; null otherwise), or
//!   `{"pipeline": null, "status": "no active pipeline", "phases": []}` before any run.
//! * [`GRAPH_URI`]: `{"pipeline", "phases", "execution_order", "levels"}`, each phase a
//!   [`PhaseInfo`] as `milo phases --json` prints it (name, description, depends_on, parallel,
//!   weight, max_logs, policy, timeout, command, level).
//! * [`LOGS_TEMPLATE`]: one phase's captured lines, `[{"line", "stream", "timestamp"}]`.

use std::sync::Arc;

use milo::pipeline::{PhaseInfo, PipelineDef, PipelineState, pipeline_to_timeline};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::hub::Hub;

/// The execution timeline of the active or last run.
pub const TIMELINE_URI: &str = "milo://pipeline/timeline";
/// The pipeline's dependency graph and execution order.
pub const GRAPH_URI: &str = "milo://pipeline/graph";
/// The template of a phase's captured log lines.
pub const LOGS_TEMPLATE: &str = "milo://pipeline/phases/{name}/logs";

const LOGS_PREFIX: &str = "milo://pipeline/phases/";
const LOGS_SUFFIX: &str = "/logs";

/// Characters escaped in a phase name inside a URI (RFC 3986 unreserved ones are kept).
const NAME_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The URI of phase `name`'s logs (the name percent-encoded where needed).
pub fn logs_uri(name: &str) -> String {
    format!("{LOGS_PREFIX}{}{LOGS_SUFFIX}", utf8_percent_encode(name, NAME_ESCAPES))
}

/// A resource named by a URI (not yet checked against the pipeline).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ResourceKey {
    Timeline,
    Graph,
    Logs(String),
}

impl ResourceKey {
    /// Parses one of the resource URIs; `None` for anything else.
    pub(crate) fn parse(uri: &str) -> Option<ResourceKey> {
        match uri {
            TIMELINE_URI => Some(ResourceKey::Timeline),
            GRAPH_URI => Some(ResourceKey::Graph),
            _ => {
                let encoded = uri.strip_prefix(LOGS_PREFIX)?.strip_suffix(LOGS_SUFFIX)?;
                if encoded.is_empty() || encoded.contains('/') {
                    return None;
                }
                let name = percent_decode_str(encoded).decode_utf8().ok()?;
                Some(ResourceKey::Logs(name.into_owned()))
            }
        }
    }

    /// Parses `uri` and checks that a logs URI names a phase of the pipeline.
    pub(crate) fn resolve(hub: &Hub, uri: &str) -> Option<ResourceKey> {
        let key = Self::parse(uri)?;
        match &key {
            ResourceKey::Logs(name) if !phase_exists(hub, name) => None,
            _ => Some(key),
        }
    }
}

fn phase_exists(hub: &Hub, name: &str) -> bool {
    hub.pipeline().def().index_of(name).is_some()
        || hub
            .current()
            .is_some_and(|run| run.state().def().index_of(name).is_some())
}

/// The timeline resource's JSON.
pub(crate) fn timeline_json(hub: &Hub) -> Value {
    match hub.current() {
        Some(run) => pipeline_to_timeline(&run.state()),
        None => no_run_timeline(),
    }
}

/// The timeline before any run.
pub(crate) fn no_run_timeline() -> Value {
    json!({"pipeline": null, "status": "no active pipeline", "phases": []})
}

/// The graph resource: each phase's [`PhaseInfo`] exactly as `milo phases --json` prints it,
/// plus the pipeline's name, execution order and levels.
#[derive(Serialize)]
struct Graph<'a> {
    pipeline: &'a str,
    phases: &'a [Arc<PhaseInfo>],
    execution_order: Vec<String>,
    levels: Vec<Vec<&'a str>>,
}

/// The graph resource's JSON.
pub(crate) fn graph_json(def: &PipelineDef) -> Value {
    json!(Graph {
        pipeline: &def.name,
        phases: &def.phases,
        execution_order: def.execution_order(),
        levels: def.levels(),
    })
}

/// Phase `name`'s captured lines in the current run (the last `tail` of them when given):
/// `[]` before any run, `None` if there is no such phase.
pub(crate) fn logs_json(hub: &Hub, name: &str, tail: Option<usize>) -> Option<Value> {
    let state: Option<Arc<PipelineState>> = hub.current().map(|run| run.state());
    let lines = match &state {
        Some(state) => match state.phase(name) {
            Some(phase) => {
                let skip = tail.map_or(0, |t| phase.logs.len().saturating_sub(t));
                phase.logs.iter().skip(skip).map(|l| json!(l)).collect()
            }
            None if hub.pipeline().def().index_of(name).is_some() => Vec::new(),
            None => return None,
        },
        None if hub.pipeline().def().index_of(name).is_some() => Vec::new(),
        None => return None,
    };
    Some(Value::Array(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_round_trip() {
        assert_eq!(ResourceKey::parse(TIMELINE_URI), Some(ResourceKey::Timeline));
        assert_eq!(ResourceKey::parse(GRAPH_URI), Some(ResourceKey::Graph));
        assert_eq!(
            ResourceKey::parse("milo://pipeline/phases/build/logs"),
            Some(ResourceKey::Logs("build".into()))
        );
        for name in ["a b", "x/y", "ünï", "50%"] {
            assert_eq!(
                ResourceKey::parse(&logs_uri(name)),
                Some(ResourceKey::Logs(name.into()))
            );
        }
        for bad in [
            "milo://pipeline/phases//logs",
            "milo://pipeline/phases/a/b/logs",
            "milo://pipeline/nope",
            "file:///etc/passwd",
            "milo://pipeline/phases/a/logs/",
        ] {
            assert_eq!(ResourceKey::parse(bad), None, "{bad}");
        }
    }
}
