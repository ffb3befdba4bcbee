//! Turning a checked [`PipelineFile`] into a runnable [`Pipeline`] of command phases, and
//! narrowing it with `--only`.

use std::collections::{BTreeSet, HashMap};

use milo::pipeline::{CommandPhase, Phase, Pipeline};

use crate::config::{PhaseDef, PipelineFile};
use crate::error::CliError;

/// The pipeline of `file`, restricted to `only` and their dependencies when `only` is not
/// empty.
pub fn pipeline(file: &PipelineFile, only: &[String]) -> Result<Pipeline, CliError> {
    let selected = select(file, only)?;
    let phases = file
        .phases
        .iter()
        .filter(|p| selected.as_ref().is_none_or(|s| s.contains(p.name.as_str())));
    let pipeline = Pipeline::new(file.name.as_str(), phases.map(|p| phase(file, p))).map_err(|e| file.report(&e))?;
    let pipeline = pipeline.capture_output(file.capture_output).fail_fast(file.fail_fast);
    Ok(match file.jobs {
        Some(j) => pipeline.jobs(j),
        None => pipeline,
    })
}

fn phase(file: &PipelineFile, def: &PhaseDef) -> Phase {
    let command = CommandPhase {
        run: def.run.clone(),
        cwd: Some(def.cwd.clone().unwrap_or_else(|| file.dir.clone())),
        env: def.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    let p = Phase::command_with(def.name.as_str(), command)
        .depends_on(def.depends_on.iter().map(String::as_str))
        .parallel(def.parallel)
        .weight(def.weight)
        .description(def.description.clone())
        .policy(def.policy)
        .max_logs(def.max_logs);
    match def.timeout {
        Some(t) => p.timeout(t),
        None => p,
    }
}

/// The names of `only` and everything they depend on, transitively; `None` for all phases.
fn select<'a>(file: &'a PipelineFile, only: &[String]) -> Result<Option<BTreeSet<&'a str>>, CliError> {
    if only.is_empty() {
        return Ok(None);
    }
    let by_name: HashMap<&str, &PhaseDef> = file.phases.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut selected = BTreeSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for name in only {
        match by_name.get_key_value(name.as_str()) {
            Some((k, _)) => todo.push(k),
            None => {
                let closest = file
                    .phases
                    .iter()
                    .map(|p| (strsim::levenshtein(&p.name, name), p.name.as_str()))
                    .min()
                    .filter(|(d, _)| *d <= 3)
                    .map(|(_, n)| format!("did you mean `{n}`? "))
                    .unwrap_or_default();
                let all = file
                    .phases
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(CliError::usage(
                    format!("there is no phase `{name}` in {}", file.path.display()),
                    Some(format!("{closest}phases: {all}")),
                ));
            }
        }
    }
    while let Some(name) = todo.pop() {
        if selected.insert(name)
            && let Some(def) = by_name.get(name)
        {
            todo.extend(
                def.depends_on
                    .iter()
                    .filter_map(|d| by_name.get_key_value(d.as_str()).map(|(k, _)| *k)),
            );
        }
    }
    Ok(Some(selected))
}
