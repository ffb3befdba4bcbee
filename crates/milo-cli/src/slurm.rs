//! Phases with `executor = "slurm"`: the run's [`milo_slurm::Slurm`] connection (its job
//! directory under `.milo/slurm/` beside the pipeline file, which must be on a filesystem the
//! nodes share), the check that Slurm answers, and the end of the run: every job still queued
//! or running cancelled and waited for, and the cancelled jobs named.

use std::time::Duration;

use milo_slurm::Slurm;

use crate::config::{ExecutorKind, PipelineFile};
use crate::error::CliError;

/// How long the end of a run waits for Slurm to report its cancelled jobs ended.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

/// Whether any phase of `file` runs on Slurm.
pub fn uses_slurm(file: &PipelineFile) -> bool {
    file.phases.iter().any(|p| p.executor == ExecutorKind::Slurm)
}

/// Checks that the Slurm commands are installed and the controller answers.
pub fn check() -> Result<(), CliError> {
    milo_slurm::check::probe().map_err(|e| {
        CliError::usage(
            format!("this pipeline runs phases on Slurm, but {e}"),
            Some("or set `executor = \"local\"` to run them on this machine".into()),
        )
    })
}

/// The run's connection when a phase of `file` runs on Slurm (checked first).
pub fn connect(file: &PipelineFile) -> Result<Option<Slurm>, CliError> {
    if !uses_slurm(file) {
        return Ok(None);
    }
    check()?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name: String = file.name.chars().take(40).collect();
    let tag = format!("{name}-{}-{millis}", std::process::id());
    let dir = file.dir.join(".milo").join("slurm").join(&tag);
    Slurm::new(&tag, &dir).map(Some).map_err(|source| CliError::Io {
        action: "create the Slurm job directory",
        path: dir,
        source,
    })
}

/// For `--resume`: the phases of the interrupted run `run` that will run again and had a
/// Slurm job follow that job (its newest) instead of submitting a new one, when Slurm still
/// knows it (see [`Slurm::reattach`]).
pub fn reattach(slurm: &Slurm, history: &milo_history::History, run: milo_history::RunId, rerun: &[String]) {
    let detail = match history.show(Some(run)) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln_stderr(&format!(
                "milo: warning: could not read run {run}'s Slurm jobs ({e}); its phases are submitted again"
            ));
            return;
        }
    };
    let jobs: Vec<(String, String)> = detail
        .phases
        .iter()
        .filter(|p| rerun.contains(&p.name))
        .filter_map(|p| Some((p.name.clone(), p.job_ids.last()?.clone())))
        .collect();
    if !jobs.is_empty() {
        let ids: Vec<&str> = jobs.iter().map(|(_, id)| id.as_str()).collect();
        let _ = writeln_stderr(&format!(
            "milo: following the interrupted run's Slurm jobs {} where Slurm still knows them",
            ids.join(", ")
        ));
        slurm.reattach(jobs);
    }
}

/// Cancels what is left of the run's jobs, waits until Slurm reports them ended, and says
/// which jobs milo cancelled (on stderr).
pub async fn finish(slurm: &Slurm) {
    let report = |ids: &[String]| {
        if !ids.is_empty() {
            let _ = writeln_stderr(&format!("milo: cancelled Slurm jobs {}", ids.join(", ")));
        }
    };
    match slurm.shutdown(SHUTDOWN_WAIT).await {
        Ok(cancelled) => report(&cancelled),
        Err((cancelled, left)) => {
            report(&cancelled);
            let _ = writeln_stderr(&format!(
                "milo: warning: Slurm still reports jobs {} as not ended {SHUTDOWN_WAIT:?} after they were cancelled; \
                 check them with `squeue -j {}`",
                left.join(", "),
                left.join(",")
            ));
        }
    }
    if std::env::var_os("MILO_SLURM_STATS").is_some() {
        let s = slurm.stats();
        let _ = writeln_stderr(&format!(
            "milo: slurm stats: sbatch {} squeue {} scontrol {} scancel {}",
            s.sbatch, s.squeue, s.scontrol, s.scancel
        ));
    }
}

fn writeln_stderr(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr().lock(), "{line}")
}
