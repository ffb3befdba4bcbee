//! `milo order`, `milo phases`, `milo check` and `milo graph`: look at a pipeline without
//! running it.

use std::fmt::Write;

use milo::pipeline::{OnFail, PhaseInfo, Pipeline};
use serde_json::json;

use super::{plural, print_warnings, write_stdout};
use crate::build;
use crate::cli::{CheckArgs, FileArg, GraphArgs, GraphFormat, ListArgs, ParamArgs};
use crate::config;
use crate::error::CliError;

/// The file with the values of `-p` and `MILO_PARAM_*`; a required parameter without one is
/// not an error (these commands run nothing).
pub(super) fn load_file(file: &FileArg, params: &ParamArgs) -> Result<config::PipelineFile, CliError> {
    let inputs = config::ParamInputs::new(params.params.clone(), false);
    Ok(config::load_with(&file.file, &inputs)?)
}

fn load(file: &FileArg, params: &ParamArgs) -> Result<Pipeline, CliError> {
    let f = load_file(file, params)?;
    build::pipeline(&f, &[])
}

pub fn order(args: &ListArgs) -> Result<u8, CliError> {
    let p = load(&args.file, &args.params)?;
    let order = p.execution_order();
    let text = if args.json {
        json!(order).to_string() + "\n"
    } else {
        order.iter().map(|n| format!("{n}\n")).collect()
    };
    write_stdout(text.as_bytes())?;
    Ok(0)
}

fn policy_text(info: &PhaseInfo) -> String {
    let p = info.policy;
    match p.on_fail {
        OnFail::Retry => format!(
            "retry ×{} ({} from {}s)",
            p.max_retries,
            p.retry_backoff,
            p.retry_delay.as_secs_f64()
        ),
        other => other.to_string(),
    }
}

pub fn phases(args: &ListArgs) -> Result<u8, CliError> {
    let f = load_file(&args.file, &args.params)?;
    let p = build::pipeline(&f, &[])?;
    let def = p.def();
    let by_name: std::collections::HashMap<&str, &config::PhaseDef> =
        f.phases.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut text = String::new();
    if args.json {
        // `PhaseInfo` is the phase's definition as JSON: name, description, depends_on,
        // parallel, weight, max_logs, policy, timeout, command, level; plus what makes it
        // incremental: sources, outputs, env_inputs, cache.
        let mut list = Vec::with_capacity(def.phases.len());
        for info in &def.phases {
            let mut v = serde_json::to_value(&**info).map_err(|e| CliError::Internal(e.to_string()))?;
            if let (Some(obj), Some(d)) = (v.as_object_mut(), by_name.get(&*info.name)) {
                obj.insert("sources".into(), json!(d.sources));
                obj.insert("outputs".into(), json!(d.outputs));
                obj.insert("env_inputs".into(), json!(d.env_inputs));
                obj.insert("cache".into(), json!(d.cache));
                if let Some(cell) = &d.matrix {
                    let values: serde_json::Map<String, serde_json::Value> =
                        cell.values.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                    obj.insert("matrix".into(), json!({ "phase": cell.phase, "values": values }));
                }
            }
            list.push(v);
        }
        text = serde_json::to_string_pretty(&list).map_err(|e| CliError::Internal(e.to_string()))? + "\n";
    } else {
        if !f.params.is_empty() {
            text.push_str("parameters:\n");
            text.push_str(&super::params::table(&f.params, "  "));
            text.push('\n');
        }
        for i in &def.phases {
            let deps = if i.depends_on.is_empty() {
                "-".to_owned()
            } else {
                i.depends_on.iter().map(|d| &**d).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(text, "{}", i.name);
            if !i.description.is_empty() {
                let _ = writeln!(text, "  {}", i.description);
            }
            let _ = writeln!(
                text,
                "  depends on: {deps}\n  parallel: {}  weight: {}  policy: {}",
                if i.parallel { "yes" } else { "no" },
                i.weight,
                policy_text(i)
            );
            if let Some(d) = by_name.get(&*i.name) {
                for (label, list) in [
                    ("sources", &d.sources),
                    ("outputs", &d.outputs),
                    ("env inputs", &d.env_inputs),
                ] {
                    if !list.is_empty() {
                        let _ = writeln!(text, "  {label}: {}", list.join(", "));
                    }
                }
                if !d.cache && (!d.sources.is_empty() || !d.outputs.is_empty()) {
                    let _ = writeln!(text, "  cache: off");
                }
            }
        }
    }
    write_stdout(text.as_bytes())?;
    Ok(0)
}

/// `milo check`: the file's warnings on stderr, then (on stdout) that it is valid, with a
/// note when phases that could run at the same time will run one at a time.
pub fn check(args: &CheckArgs) -> Result<u8, CliError> {
    let f = load_file(&args.file, &args.params)?;
    let p = build::pipeline(&f, &[])?;
    print_warnings(&f);
    let args = &args.file;
    let parallel = p.def().phases.iter().filter(|i| i.parallel).count();
    let mut msg = format!(
        "{}: pipeline `{}` is valid: {} ({parallel} parallel), {}\n",
        args.file.display(),
        p.name(),
        plural(p.phases().len(), "phase"),
        plural(p.def().levels().len(), "level"),
    );
    if let Some(note) = one_at_a_time(&p) {
        msg.push_str(&note);
    }
    if crate::slurm::uses_slurm(&f) {
        crate::slurm::check()?;
        let n = f
            .phases
            .iter()
            .filter(|d| d.executor == config::ExecutorKind::Slurm)
            .count();
        let _ = writeln!(
            msg,
            "{} on Slurm; sbatch, squeue, scontrol and scancel are installed and the controller answers",
            plural(n, "phase")
        );
    }
    for param in f.missing_params() {
        let _ = writeln!(
            msg,
            "note: parameter `{0}` is required and has no value: checked with the placeholder `<{0}>`; a run needs `-p {0}=VALUE` (or {1})",
            param.name,
            param.env_name()
        );
    }
    write_stdout(msg.as_bytes())?;
    Ok(0)
}

/// A note naming the phases that depend on nothing between them (the same level) but will
/// run one at a time because some of them are not `parallel`; `None` when there are none.
fn one_at_a_time(p: &Pipeline) -> Option<String> {
    let def = p.def();
    let parallel = |name: &str| def.phases.iter().any(|i| &*i.name == name && i.parallel);
    let groups: Vec<Vec<&str>> = def
        .levels()
        .into_iter()
        .filter(|level| level.len() > 1 && !level.iter().all(|n| parallel(n)))
        .collect();
    if groups.is_empty() {
        return None;
    }
    let mut note = String::from(
        "note: these phases do not depend on each other but will run one at a time, because a phase with `parallel = false` (the default) runs alone:\n",
    );
    for group in &groups {
        let names: Vec<String> = group
            .iter()
            .map(|n| {
                if parallel(n) {
                    format!("{n} (parallel)")
                } else {
                    (*n).to_owned()
                }
            })
            .collect();
        let _ = writeln!(note, "  - {}", names.join(", "));
    }
    note.push_str(
        "  = help: to run them together, set `parallel = true` on each of them, or once for every phase under `[defaults]`\n",
    );
    Some(note)
}

pub fn graph(args: &GraphArgs) -> Result<u8, CliError> {
    let f = load_file(&args.file, &args.params)?;
    let p = build::pipeline(&f, &[])?;
    let groups = matrix_groups(&f);
    let text = match args.format {
        GraphFormat::Dot => dot(&p, &groups),
        GraphFormat::Mermaid => mermaid(&p, &groups),
    };
    write_stdout(text.as_bytes())?;
    Ok(0)
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The matrix phases of `f`: each phase's name and its instances, in file order.
pub fn matrix_groups(f: &config::PipelineFile) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for phase in &f.phases {
        let Some(cell) = &phase.matrix else { continue };
        match groups.iter_mut().find(|(base, _)| *base == cell.phase) {
            Some((_, names)) => names.push(phase.name.clone()),
            None => groups.push((cell.phase.clone(), vec![phase.name.clone()])),
        }
    }
    groups
}

/// Graphviz: parallel phases are dashed boxes labelled "∥"; a matrix phase's instances are
/// drawn inside a cluster named after it.
pub fn dot(p: &Pipeline, groups: &[(String, Vec<String>)]) -> String {
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        quoted(p.name())
    );
    for (k, (base, names)) in groups.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{k} {{\n    label={};\n    style=rounded;",
            quoted(&format!("{base} (matrix, {})", names.len()))
        );
        for name in names {
            let _ = writeln!(out, "    {};", quoted(name));
        }
        out.push_str("  }\n");
    }
    for &i in p.def().order() {
        let info = &p.def().phases[i];
        if info.parallel {
            let label = quoted(&format!("{} ∥", info.name));
            let _ = writeln!(
                out,
                "  {} [label={label}, style=\"rounded,dashed\"];",
                quoted(&info.name)
            );
        } else {
            let _ = writeln!(out, "  {};", quoted(&info.name));
        }
    }
    for &i in p.def().order() {
        let info = &p.def().phases[i];
        for d in &info.depends_on {
            let _ = writeln!(out, "  {} -> {};", quoted(d), quoted(&info.name));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid: parallel phases are drawn as parallelograms labelled "∥"; a matrix phase's
/// instances inside a subgraph named after it.
pub fn mermaid(p: &Pipeline, groups: &[(String, Vec<String>)]) -> String {
    let def = p.def();
    let id = |i: usize| format!("p{i}");
    let mut out = String::from("flowchart LR\n");
    let node = |i: usize| {
        let info = &def.phases[i];
        let name = info.name.replace('"', "#quot;");
        if info.parallel {
            format!("{}[/\"{name} ∥\"/]", id(i))
        } else {
            format!("{}[\"{name}\"]", id(i))
        }
    };
    let mut grouped = std::collections::HashSet::new();
    for (k, (base, names)) in groups.iter().enumerate() {
        let title = format!("{base} (matrix, {})", names.len()).replace('"', "#quot;");
        let _ = writeln!(out, "  subgraph m{k}[\"{title}\"]");
        for name in names {
            if let Some(i) = def.index_of(name) {
                grouped.insert(i);
                let _ = writeln!(out, "    {}", node(i));
            }
        }
        out.push_str("  end\n");
    }
    for &i in def.order() {
        if !grouped.contains(&i) {
            let _ = writeln!(out, "  {}", node(i));
        }
    }
    for &i in def.order() {
        for &d in &def.phases[i].deps {
            let _ = writeln!(out, "  {} --> {}", id(d), id(i));
        }
    }
    out
}
