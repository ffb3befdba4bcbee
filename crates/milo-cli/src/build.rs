//! Turning a checked [`PipelineFile`] into a runnable [`Pipeline`] of command phases (with
//! its secrets to mask, see [`secret_values`]), and narrowing it with `--only`.

use std::collections::{BTreeSet, HashMap};

use milo::pipeline::{CommandPhase, Phase, Pipeline};

use crate::config::{ExecutorKind, PhaseDef, PipelineFile};
use crate::error::CliError;

/// The pipeline of `file`, restricted to `only` and their dependencies when `only` is not
/// empty.
pub fn pipeline(file: &PipelineFile, only: &[String]) -> Result<Pipeline, CliError> {
    pipeline_on(file, only, None)
}

/// [`pipeline`], with the phases whose `executor` is `"slurm"` submitted through `slurm` (they
/// run locally without one: the commands that only look at a pipeline).
pub fn pipeline_on(
    file: &PipelineFile,
    only: &[String],
    slurm: Option<&milo_slurm::Slurm>,
) -> Result<Pipeline, CliError> {
    let selected = select(file, only)?;
    let phases = file
        .phases
        .iter()
        .filter(|p| selected.as_ref().is_none_or(|s| s.contains(p.name.as_str())));
    // One group per matrix phase, shared by its instances: it limits or cancels them, and the
    // views gather them under it.
    let mut groups: std::collections::HashMap<&str, std::sync::Arc<milo::pipeline::PhaseGroup>> =
        std::collections::HashMap::new();
    let phases = phases.map(|p| {
        let built = phase(file, p, slurm);
        match &p.matrix {
            Some(cell) => {
                let group = groups.entry(cell.phase.as_str()).or_insert_with(|| {
                    std::sync::Arc::new(milo::pipeline::PhaseGroup {
                        name: cell.phase.as_str().into(),
                        max_parallel: cell.max_parallel,
                        fail_fast: cell.fail_fast,
                    })
                });
                built.group(group.clone())
            }
            None => built,
        }
    });
    let pipeline = Pipeline::new(file.name.as_str(), phases).map_err(|e| file.report(&e))?;
    let pipeline = pipeline
        .capture_output(file.capture_output)
        .fail_fast(file.fail_fast)
        .with_secrets(secret_values(file, std::env::vars_os()));
    let pipeline = match file.max_result_size {
        Some(bytes) => pipeline.max_result_size(bytes),
        None => pipeline,
    };
    Ok(match file.jobs {
        Some(j) => pipeline.jobs(j),
        None => pipeline,
    })
}

fn phase(file: &PipelineFile, def: &PhaseDef, slurm: Option<&milo_slurm::Slurm>) -> Phase {
    let cwd = def.cwd.clone().unwrap_or_else(|| file.dir.clone());
    let env: Vec<(String, String)> = def.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let service = def
        .service
        .as_ref()
        .map(|s| crate::probe::service(s, cwd.clone(), env.clone()));
    let command = CommandPhase {
        run: def.run.clone(),
        cwd: Some(cwd),
        env,
        shell: def.shell.clone(),
    };
    let p = Phase::command_with(def.name.as_str(), command);
    let p = match service {
        Some(s) => p.service(s),
        None => p,
    };
    let p = p
        .depends_on(def.depends_on.iter().map(String::as_str))
        .parallel(def.parallel)
        .weight(def.weight)
        .description(def.description.clone())
        .policy(def.policy)
        .max_logs(def.max_logs);
    let p = match slurm {
        Some(slurm) if def.executor == ExecutorKind::Slurm => p.executor(slurm.executor(def.slurm.clone())),
        _ => p,
    };
    match def.timeout {
        Some(t) => p.timeout(t),
        None => p,
    }
}

/// Pattern-matched values shorter than this are not masked: a `*_KEY = "1"` would
/// otherwise turn every `1` of the output into `***`. Values named in `secrets` are masked
/// whatever their length.
pub const MIN_PATTERN_SECRET: usize = 4;

/// The values to mask in a run of `file`: those of the variables `secrets` names and of
/// those whose names match `secret_patterns`, from every phase's `env` and from `process_env`
/// (milo's environment, which the phases inherit).
pub fn secret_values(
    file: &PipelineFile,
    process_env: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<String> {
    let named = |name: &str| file.secrets.iter().any(|s| s == name);
    let matched = |name: &str| file.secret_patterns.iter().any(|p| wildcard(p, name));
    let mut values = BTreeSet::new();
    let mut consider = |name: &str, value: &str| {
        if named(name) || (value.chars().count() >= MIN_PATTERN_SECRET && matched(name)) {
            values.insert(value.to_owned());
        }
    };
    for p in &file.phases {
        for (k, v) in &p.env {
            consider(k, v);
        }
    }
    for (k, v) in process_env {
        if let (Some(k), Some(v)) = (k.to_str(), v.to_str()) {
            consider(k, v);
        }
    }
    values.into_iter().collect()
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters; ASCII
/// case-insensitive.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_uppercase(), name.to_ascii_uppercase());
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The phases `name` selects (see [`PipelineFile::select`]); an error if none: "there is no
/// phase `tst` … did you mean `test`?"
pub fn check_phase_name<'a>(file: &'a PipelineFile, name: &str) -> Result<Vec<&'a str>, CliError> {
    let selected = file.select(name);
    if !selected.is_empty() {
        return Ok(selected);
    }
    // Matrix phases are offered by their own names, not each instance.
    let mut names: Vec<&str> = Vec::new();
    for p in &file.phases {
        let n = p.matrix.as_ref().map_or(p.name.as_str(), |c| c.phase.as_str());
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if crate::config::matrix::Selector::parse(name).is_some_and(|s| names.contains(&s.base)) {
        return Err(CliError::usage(
            format!(
                "`{name}` matches no instance of a matrix phase in {}",
                file.path.display()
            ),
            Some(format!(
                "its instances: {}",
                file.phases
                    .iter()
                    .filter(|p| p
                        .matrix
                        .as_ref()
                        .is_some_and(|c| name.starts_with(&format!("{}[", c.phase))))
                    .map(|p| format!("`{}`", p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    let closest = names
        .iter()
        .map(|n| (strsim::levenshtein(n, name), *n))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, n)| format!("did you mean `{n}`? "))
        .unwrap_or_default();
    let all = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    Err(CliError::usage(
        format!("there is no phase `{name}` in {}", file.path.display()),
        Some(format!("{closest}phases: {all}")),
    ))
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
        todo.extend(check_phase_name(file, name)?);
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

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards() {
        assert!(wildcard("*TOKEN*", "API_TOKEN"));
        assert!(wildcard("*TOKEN*", "token"));
        assert!(wildcard("*TOKEN*", "GITHUB_TOKEN_2"));
        assert!(wildcard("*_KEY", "AWS_SECRET_KEY"));
        assert!(!wildcard("*_KEY", "KEYBOARD"));
        assert!(!wildcard("*_KEY", "_KEYS"));
        assert!(wildcard("API_TOKEN", "api_token"));
        assert!(!wildcard("API_TOKEN", "API_TOKENS"));
        assert!(wildcard("A*B*C", "AxxBxxC"));
        assert!(!wildcard("A*B*C", "AxxCxxB"));
        assert!(wildcard("*", ""));
    }
}
