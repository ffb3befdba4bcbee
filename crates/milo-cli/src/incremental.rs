//! Incremental runs for `milo run`: the phases' `sources`, `outputs` and `env_inputs` as the
//! cache's [`PhaseSpec`]s, the cache opened beside the pipeline file (`.milo/cache`), and the
//! `--explain` text (after a run, or for `--dry-run` without running or writing anything).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use milo::pipeline::{Check, DepResult, Dependency, Incremental, Pipeline, PipelineState, Verdict};
use milo_cache::{Cache, Force, Options, PhaseSpec};

use crate::config::{PhaseDef, PipelineFile};
use crate::error::CliError;
use crate::views::summary::explanation;

/// How `milo run` asked for the cache to be used.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--force` (an empty name: every phase) and `--force=PHASE`.
    pub force: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--dry-run`: decide, write nothing.
    pub read_only: bool,
    /// `milo watch`: the root its watcher reports every change under (to
    /// [`Cache::changed`]), so source walks are remembered between cycles.
    pub watched: Option<PathBuf>,
}

/// The cache directory of `file`: `.milo/cache` beside it.
pub fn cache_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(""));
    dir.join(".milo").join("cache")
}

/// Whether any phase of `file` is incremental (has `sources` or `outputs`).
pub fn any_incremental(file: &PipelineFile) -> bool {
    file.phases
        .iter()
        .any(|p| !p.sources.is_empty() || !p.outputs.is_empty())
}

/// The cache for a run of `file` (the phases of `pipeline`), or `None` when no phase is
/// incremental.
pub fn open(file: &PipelineFile, pipeline: &Pipeline, flags: &Flags) -> Result<Option<Arc<Cache>>, CliError> {
    if !any_incremental(file) {
        if let Some(name) = flags.force.iter().find(|n| !n.is_empty()) {
            crate::build::check_phase_name(file, name)?;
        }
        return Ok(None);
    }
    let force = if flags.force.iter().any(String::is_empty) {
        Force::All
    } else if flags.force.is_empty() {
        Force::None
    } else {
        let mut names = BTreeSet::new();
        for name in &flags.force {
            names.extend(
                crate::build::check_phase_name(file, name)?
                    .into_iter()
                    .map(str::to_owned),
            );
        }
        Force::Phases(names)
    };
    let selected: BTreeSet<&str> = pipeline.def().phases.iter().map(|p| &*p.name).collect();
    let specs = file
        .phases
        .iter()
        .filter(|p| selected.contains(p.name.as_str()))
        .map(|p| spec(file, p))
        .collect();
    let dir = cache_dir(&file.path);
    if !flags.read_only {
        let milo_dir = dir.parent().unwrap_or(Path::new(".milo"));
        if std::fs::create_dir_all(milo_dir).is_ok() {
            milo_history::ignore_in_git(milo_dir);
        }
    }
    let options = Options {
        dir,
        read_only: flags.read_only,
        force,
        use_cache: !flags.no_cache,
        max_size: file.cache_max_size.unwrap_or(milo_cache::DEFAULT_MAX_SIZE),
        watched: flags.watched.clone(),
    };
    Cache::open(options, specs).map(|c| Some(Arc::new(c))).map_err(|e| {
        CliError::usage(
            format!("cannot open the cache: {e}"),
            Some("`milo cache clean` starts it afresh; `--no-cache` runs without storing outputs".into()),
        )
    })
}

/// What the cache needs to know about phase `p`: everything that decides what runs, in named
/// parts (a changed part is named in the reason).
fn spec(file: &PipelineFile, p: &PhaseDef) -> PhaseSpec {
    let cwd = p.cwd.clone().unwrap_or_else(|| file.dir.clone());
    let env = serde_json::to_string(&p.env).unwrap_or_default();
    PhaseSpec {
        name: p.name.clone(),
        definition: vec![
            ("command".into(), p.run.clone()),
            ("cwd".into(), cwd.display().to_string()),
            ("env".into(), env),
            // Commands run as `sh -c` (or the program itself, which sh would run the same way),
            // or with the phase's `shell`.
            (
                "shell".into(),
                p.shell.as_ref().map_or_else(|| "sh".to_owned(), |s| s.join(" ")),
            ),
        ],
        cwd,
        sources: p.sources.clone(),
        outputs: p.outputs.clone(),
        env_inputs: p.env_inputs.clone(),
        cache: p.cache,
    }
}

/// `--explain` after a run: for each incremental phase in execution order, why it ran or why
/// it did not.
pub fn explain_run(state: &PipelineState) -> String {
    let lines: Vec<(String, String)> = state
        .phases_in_order()
        .filter_map(|p| Some((p.name.to_string(), explanation(p)?)))
        .collect();
    let mut out = String::new();
    if lines.is_empty() {
        out.push_str("explain: no phase has `sources` or `outputs`, so every phase runs every time\n");
        return out;
    }
    let width = lines.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0);
    out.push_str("why each phase ran or did not:\n");
    for (name, why) in lines {
        let _ = writeln!(out, "  {name:<width$}  {why}");
    }
    out
}

/// What a dry run would do with each phase, in execution order: `None` for a phase that is
/// not incremental (it always runs), else the verdict and the reason. Writes nothing: the
/// cache was opened read-only. A phase after one that would run cannot know its dependency's
/// result, and says so.
pub fn explain_dry_run(pipeline: &Pipeline, cache: &Cache) -> Vec<Option<(Verdict, String)>> {
    let def = pipeline.def();
    let n = def.phases.len();
    let mut keys: Vec<Option<Arc<str>>> = vec![None; n];
    let mut results: Vec<Option<serde_json::Value>> = vec![None; n];
    let mut out = vec![None; n];
    for &i in def.order() {
        let info = &def.phases[i];
        if !cache.is_incremental(&info.name) {
            continue;
        }
        let deps: Vec<Dependency<'_>> = info
            .deps
            .iter()
            .map(|&d| Dependency {
                name: &def.phases[d].name,
                key: keys[d].as_deref(),
                result: match &results[d] {
                    Some(v) => DepResult::Completed(v),
                    None => DepResult::Unknown,
                },
            })
            .collect();
        let (decision, result) = match cache.check(&info.name, &deps) {
            Ok(Check::Always) => continue,
            Ok(Check::Run(d)) => (d, None),
            Ok(Check::Fresh(d, recorded)) => (d, Some(recorded.result)),
            Err(e) => {
                out[i] = Some((Verdict::Run, format!("cannot tell: {e}")));
                continue;
            }
        };
        keys[i] = Some(decision.key.clone());
        results[i] = result;
        out[i] = Some((decision.verdict, decision.reason.to_string()));
    }
    out
}
