//! [`pipeline_to_timeline`]: the JSON view of a run served as `milo://pipeline/timeline`,
//! written by `--timeline`, and read by reports.

use serde_json::{Value, json};

use super::state::PipelineState;

/// The execution timeline of `state` as JSON:
/// `{"pipeline", "status", "started_at", "elapsed", "progress", "current_phase", "error",
/// "phases": [...]}` (`started_at` in seconds since the Unix epoch, every other time relative
/// to it), each phase with `name`, `status`, `started_at`, `finished_at`, `elapsed`,
/// `attempt`, `error` (null when empty), `log_count` (the lines kept, at most `max_logs`, as
/// in the specification), `log_total` (every line captured), `depends_on`, `parallel`, `weight`,
/// `description`, `result` and `reused_from`. Phases are in declaration order;
/// `execution_order` lists their names in execution order.
pub fn pipeline_to_timeline(state: &PipelineState) -> Value {
    let phases: Vec<Value> = state
        .phases
        .iter()
        .map(|p| {
            json!({
                "name": &*p.name,
                "status": p.status,
                "started_at": p.started_at,
                "finished_at": p.finished_at,
                "elapsed": p.elapsed,
                "attempt": p.attempt,
                "error": p.error.as_deref().filter(|e| !e.is_empty()),
                // As in the specification's original: the lines kept (at most `max_logs`);
                // `log_total` counts every line captured.
                "log_count": p.logs.len(),
                "log_total": p.log_count,
                "depends_on": p.info.depends_on.iter().map(|d| &**d).collect::<Vec<_>>(),
                "parallel": p.info.parallel,
                "weight": p.info.weight,
                "description": p.info.description,
                "result": p.result.as_deref(),
                "reused_from": p.reused_from,
            })
        })
        .collect();
    json!({
        "pipeline": &*state.name,
        "status": state.status,
        "started_at": state.started_at,
        "elapsed": state.elapsed,
        "progress": state.progress,
        "current_phase": state.current_phase.as_deref(),
        "error": state.error,
        "execution_order": state.def().execution_order(),
        "phases": phases,
    })
}
