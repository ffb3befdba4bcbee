//! Shell completion of what only the pipeline file knows: phase names (`milo run PHASE`,
//! `--only`, `--force=PHASE`, `milo logs PHASE`) and parameter names (`-p NAME=`), through
//! clap_complete's dynamic engine (`source <(COMPLETE=bash milo)`).
//!
//! The candidates come from the pipeline file the command would read without `-f`: the
//! nearest `milo.toml` of the current directory and its parents. A file that cannot be read
//! or is broken gives no candidates (completion never prints an error into the prompt).

use std::ffi::OsStr;

use clap_complete::engine::CompletionCandidate;

use crate::config::{self, PipelineFile};

/// The pipeline file completion reads, if there is one that loads.
fn pipeline() -> Option<PipelineFile> {
    let cwd = std::env::current_dir().ok()?;
    let path = crate::cli::discover(&cwd, config::DEFAULT_FILE)?;
    config::load(path).ok()
}

/// Phase names starting with what is typed: every phase (a matrix phase's instances, and the
/// phase's own name, which selects all of them), with its description as help.
pub fn phases(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(file) = pipeline() else {
        return Vec::new();
    };
    let typed = current.to_string_lossy();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in &file.phases {
        if let Some(cell) = &p.matrix
            && seen.insert(cell.phase.clone())
            && cell.phase.starts_with(typed.as_ref())
        {
            out.push(CompletionCandidate::new(cell.phase.clone()).help(Some("every instance".into())));
        }
        if p.name.starts_with(typed.as_ref()) && seen.insert(p.name.clone()) {
            let help = (!p.description.is_empty()).then(|| p.description.clone().into());
            out.push(CompletionCandidate::new(p.name.clone()).help(help));
        }
    }
    out
}

/// `NAME=` for each parameter (with its help), then, once `NAME=` is typed, the parameter's
/// choices (or a boolean's `true`/`false`).
pub fn params(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(file) = pipeline() else {
        return Vec::new();
    };
    let typed = current.to_string_lossy();
    if let Some((name, value)) = typed.split_once('=') {
        let Some(p) = file.params.iter().find(|p| p.name == name) else {
            return Vec::new();
        };
        let values: Vec<String> = match p.ty {
            config::ParamType::Bool => vec!["true".into(), "false".into()],
            _ => p.choices.iter().map(ToString::to_string).collect(),
        };
        return values
            .into_iter()
            .filter(|v| v.starts_with(value))
            .map(|v| CompletionCandidate::new(format!("{name}={v}")))
            .collect();
    }
    file.params
        .iter()
        .filter(|p| p.name.starts_with(typed.as_ref()))
        .map(|p| {
            let help = (!p.help.is_empty()).then(|| p.help.clone().into());
            CompletionCandidate::new(format!("{}=", p.name)).help(help)
        })
        .collect()
}
