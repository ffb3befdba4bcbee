//! [`probe`]: whether this machine can submit to Slurm: the client commands are on PATH and
//! the controller answers. `milo check` reports what it finds, with the fix.

use std::process::{Command, Stdio};

/// Why Slurm cannot be used from here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// A client command is missing.
    #[error(
        "`{program}` was not found on PATH; install Slurm's client commands (Debian: `apt-get install slurm-client`) \
         or run milo on a machine that submits to the cluster"
    )]
    Missing {
        /// The command.
        program: &'static str,
    },
    /// The controller did not answer.
    #[error(
        "the Slurm controller does not answer (`scontrol ping`: {output}); check that slurmctld runs and that \
         SLURM_CONF points at the cluster's slurm.conf"
    )]
    NoController {
        /// What `scontrol ping` said.
        output: String,
    },
}

/// Checks that `sbatch`, `squeue`, `scontrol` and `scancel` are on PATH and that
/// `scontrol ping` reaches the controller.
pub fn probe() -> Result<(), ProbeError> {
    for program in ["sbatch", "squeue", "scontrol", "scancel"] {
        if which(program).is_none() {
            return Err(ProbeError::Missing { program });
        }
    }
    let out = Command::new("scontrol")
        .arg("ping")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ProbeError::NoController { output: e.to_string() })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("is UP") {
        Ok(())
    } else {
        Err(ProbeError::NoController {
            output: text.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
