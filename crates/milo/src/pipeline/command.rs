//! Command phases: run a shell command through an [`Executor`] and pass results between
//! phases through files.
//!
//! Each command gets `MILO_OUTPUT`, the path of an empty file; what it writes there is its
//! result: `null` if empty, the JSON value if it parses, else the text without its final
//! newline. `MILO_INPUTS` is the path of a JSON object `{dependency: result}` of its direct
//! dependencies (`null` for a skipped one). `MILO_PIPELINE`, `MILO_PHASE` and `MILO_ATTEMPT`
//! name the run.

use std::sync::Arc;
use std::time::Duration;

use super::phase::{CommandPhase, PhaseContext, PhaseOutput};
use crate::executor::{CommandError, CommandSpec, Executor, run_command};
use crate::saga::{SagaError, SagaResult};

pub(crate) async fn run_command_phase(
    command: Arc<CommandPhase>,
    ctx: PhaseContext,
    executor: Arc<dyn Executor>,
    grace: Duration,
) -> SagaResult<PhaseOutput> {
    let dir = tempfile::Builder::new().prefix("milo-").tempdir().map_err(|e| {
        SagaError::msg(format!(
            "could not create a temporary directory for the phase's result: {e}"
        ))
    })?;
    let output_path = dir.path().join("output");
    let inputs_path = dir.path().join("inputs.json");
    let inputs = serde_json::to_vec(&ctx.inputs_json()).map_err(SagaError::msg)?;
    std::fs::write(&inputs_path, inputs)
        .and_then(|_| std::fs::write(&output_path, b""))
        .map_err(|e| SagaError::msg(format!("could not write {}: {e}", dir.path().display())))?;

    let mut spec = CommandSpec::new(command.run.clone()).capture(ctx.capture);
    spec.cwd = command.cwd.clone();
    spec.env = command.env.clone();
    spec.env.extend([
        ("MILO_OUTPUT".to_owned(), output_path.display().to_string()),
        ("MILO_INPUTS".to_owned(), inputs_path.display().to_string()),
        ("MILO_PIPELINE".to_owned(), ctx.pipeline.to_string()),
        ("MILO_PHASE".to_owned(), ctx.name.to_string()),
        ("MILO_ATTEMPT".to_owned(), ctx.attempt.to_string()),
    ]);
    let sink = ctx.sink.clone();
    let on_line = move |stream, line| sink(stream, line);
    match run_command(&*executor, &spec, &on_line, &ctx.cancel, grace).await {
        Ok(()) => {}
        Err(CommandError::Cancelled) => return Err(SagaError::Cancelled),
        Err(e) => return Err(SagaError::Failed(e.to_string())),
    }
    let bytes = tokio::fs::read(&output_path).await.unwrap_or_default();
    Ok(PhaseOutput::json(parse_result(&bytes)))
}

/// A command's result from what it wrote to `MILO_OUTPUT`.
pub fn parse_result(bytes: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        return serde_json::Value::Null;
    }
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            let t = text.strip_suffix('\n').unwrap_or(&text);
            let t = t.strip_suffix('\r').unwrap_or(t);
            serde_json::Value::String(t.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_result;
    use serde_json::json;

    #[test]
    fn results_are_null_json_or_text() {
        assert_eq!(parse_result(b""), json!(null));
        assert_eq!(parse_result(b"{\"n\": 3}\n"), json!({"n": 3}));
        assert_eq!(parse_result(b"42"), json!(42));
        assert_eq!(parse_result(b"hello world\n"), json!("hello world"));
        assert_eq!(parse_result(b"two\nlines\n"), json!("two\nlines"));
    }
}
