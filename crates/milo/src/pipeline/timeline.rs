//! [`pipeline_to_timeline`]: the JSON view of a run served as `milo://pipeline/timeline`,
//! written by `--timeline`, and read by reports.

use serde_json::{Value, json};

use super::state::PipelineState;

/// The execution timeline of `state` as JSON:
/// `{"pipeline", "status", "elapsed", "progress", "current_phase", "error", "phases": [...]}`,
/// each phase with `name`, `status`, `started_at`, `finished_at`, `elapsed`, `attempt`,
/// `error` (null when empty), `log_count`, `depends_on`, `parallel`, `weight`,
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
                "log_count": p.log_count,
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
        "elapsed": state.elapsed,
        "progress": state.progress,
        "current_phase": state.current_phase.as_deref(),
        "error": state.error,
        "execution_order": state.def().execution_order(),
        "phases": phases,
    })
}
