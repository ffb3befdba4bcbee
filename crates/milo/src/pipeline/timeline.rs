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
/// `description`, `result`, `reused_from`, and for an incremental phase its decision: `key`
/// (the digest it was decided under), `verdict` (`"run"`, `"up_to_date"` or `"restored"`) and
/// `reason` (why it runs or does not: `"src/main.c changed"`, `"never ran"`…), all three null
/// for a phase that is not incremental (or not decided yet). A phase that was up to date or
/// restored is `completed` with `started_at` equal to `finished_at` and no attempt; its logs are
/// the lines recorded by the run that produced its result, replayed. Phases are in declaration
/// order; `execution_order` lists their names in execution order. A phase a batch scheduler
/// (Slurm) runs is `queued` until its job starts, then `running`; `job_id` names the job of its
/// current or last attempt (null for a local phase).
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
                "key": p.decision.as_ref().map(|d| &*d.key),
                "verdict": p.decision.as_ref().map(|d| d.verdict.as_str()),
                "reason": p.decision.as_ref().map(|d| &*d.reason),
                "job_id": p.job_id.as_deref(),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::pipeline::{Decision, Phase, Pipeline, PipelineAction, Verdict};

    use super::*;

    fn noop(name: &str) -> Phase {
        Phase::new(name, |_| Ok::<_, String>(()))
    }

    #[test]
    fn each_phase_carries_its_decision_or_nulls() {
        let p = Pipeline::new("p", [noop("gen"), noop("use").depends_on(["gen"]), noop("plain")]).unwrap();
        let r = p.build_reducer();
        let decision = |name: &str, verdict, reason: &str| PipelineAction::PhaseDecision {
            name: name.into(),
            decision: Decision {
                key: format!("k-{name}").into(),
                verdict,
                reason: reason.into(),
            },
            timestamp: 0.5,
        };
        let mut s = r.apply(None, &PipelineAction::Init {});
        for a in [
            PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
            decision(
                "gen",
                Verdict::Restored,
                "output out/x was deleted (restored from cache)",
            ),
            PipelineAction::PhaseLog {
                name: "gen".into(),
                line: "from before".into(),
                stream: crate::capture::Stream::Stdout,
                timestamp: 0.5,
            },
            PipelineAction::PhaseComplete {
                name: "gen".into(),
                result: Arc::new(serde_json::json!(1)),
                timestamp: 0.5,
                reused_from: None,
            },
            decision("use", Verdict::Run, "src/main.c changed"),
        ] {
            s = r.apply(Some(&s), &a);
        }
        let t = pipeline_to_timeline(&s);
        let gen_phase = &t["phases"][0];
        assert_eq!(gen_phase["status"], "completed");
        assert_eq!(gen_phase["key"], "k-gen");
        assert_eq!(gen_phase["verdict"], "restored");
        assert_eq!(gen_phase["reason"], "output out/x was deleted (restored from cache)");
        assert_eq!(gen_phase["started_at"], gen_phase["finished_at"]);
        assert_eq!(gen_phase["elapsed"], 0.0);
        assert_eq!(gen_phase["attempt"], 0);
        assert_eq!(gen_phase["log_total"], 1);
        let use_phase = &t["phases"][1];
        assert_eq!(use_phase["status"], "pending");
        assert_eq!(
            (&use_phase["key"], &use_phase["verdict"], &use_phase["reason"]),
            (
                &serde_json::json!("k-use"),
                &serde_json::json!("run"),
                &serde_json::json!("src/main.c changed")
            )
        );
        // Not incremental: the three fields are there, null.
        let plain = t["phases"][2].as_object().unwrap();
        for field in ["key", "verdict", "reason"] {
            assert_eq!(plain.get(field), Some(&Value::Null), "{field}");
        }
    }
}
