//! [`SlurmOptions`]: what a phase asks of Slurm (partition, time limit, CPUs, memory, account,
//! extra `sbatch` flags), how a phase's options override the pipeline's, and the `sbatch`
//! flags they become. Every value is checked here, so a wrong one is an error in the pipeline
//! file, not a failed job.

use std::time::Duration;

/// The Slurm options of a phase; `None`/empty where not given (Slurm's defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time`, in whole minutes (Slurm counts whole minutes).
    pub time_minutes: Option<u64>,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem`, as Slurm writes it (`4G`, `512M`, `16000`).
    pub mem: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// Passed to `sbatch` as they are, after the others.
    pub extra: Vec<String>,
}

impl SlurmOptions {
    /// `self` with every option `over` gives replacing this one's (`extra` is appended).
    pub fn overridden_by(&self, over: &SlurmOptions) -> SlurmOptions {
        SlurmOptions {
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            time_minutes: over.time_minutes.or(self.time_minutes),
            cpus: over.cpus.or(self.cpus),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            account: over.account.clone().or_else(|| self.account.clone()),
            extra: self.extra.iter().chain(&over.extra).cloned().collect(),
        }
    }

    /// The `sbatch` flags these options become.
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(p) = &self.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(t) = self.time_minutes {
            args.push(format!("--time={t}"));
        }
        if let Some(c) = self.cpus {
            args.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = &self.mem {
            args.push(format!("--mem={m}"));
        }
        if let Some(a) = &self.account {
            args.push(format!("--account={a}"));
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// Flags milo sets itself: an `extra` entry giving one of them would break how milo follows
/// the job.
const RESERVED: &[&str] = &[
    "--parsable",
    "--job-name",
    "-J",
    "--output",
    "-o",
    "--error",
    "-e",
    "--wrap",
    "--array",
    "-a",
    "--chdir",
    "-D",
];

/// `--time` from a duration: whole minutes, rounded up, at least 1.
pub fn time_minutes(d: Duration) -> Result<u64, String> {
    if d.is_zero() {
        return Err("must be at least 1 minute (Slurm counts whole minutes)".into());
    }
    Ok(d.as_secs().div_ceil(60).max(1))
}

/// Checks a `partition` or `account` name.
pub fn check_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control() || *c == ',') {
        return Err(format!(
            "holds {c:?}; a Slurm partition or account name has no spaces, commas or control characters"
        ));
    }
    Ok(())
}

/// Checks a `mem` value: a number of megabytes with an optional unit `K`, `M`, `G` or `T`.
pub fn check_mem(value: &str) -> Result<(), String> {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let unit_len = value.len() - digits.len();
    if digits.is_empty() || unit_len > 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{value}` is not a Slurm memory size; write a number with an optional unit K, M, G or T, such as \"4G\" or \"512M\""
        ));
    }
    if digits.bytes().all(|b| b == b'0') {
        return Err("must be more than 0".into());
    }
    Ok(())
}

/// Checks an `extra` flag.
pub fn check_extra(flag: &str) -> Result<(), String> {
    if !flag.starts_with('-') {
        return Err(format!(
            "`{flag}` is not an sbatch flag; write each flag with its value as one string, such as \"--qos=normal\""
        ));
    }
    let name = flag.split('=').next().unwrap_or(flag);
    if RESERVED.contains(&name)
        || RESERVED
            .iter()
            .any(|r| r.len() == 2 && flag.starts_with(r) && flag.len() > 2)
    {
        return Err(format!(
            "`{name}` is set by milo itself (it names, follows and collects the job); remove it"
        ));
    }
    if flag.contains('\0') {
        return Err("holds a NUL character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_options_override_the_pipelines_and_become_flags() {
        let top = SlurmOptions {
            partition: Some("debug".into()),
            time_minutes: Some(10),
            cpus: Some(2),
            mem: Some("4G".into()),
            account: Some("proj".into()),
            extra: vec!["--qos=normal".into()],
        };
        let phase = SlurmOptions {
            cpus: Some(8),
            mem: Some("16G".into()),
            extra: vec!["--exclusive".into()],
            ..Default::default()
        };
        assert_eq!(
            top.overridden_by(&phase).sbatch_args(),
            [
                "--partition=debug",
                "--time=10",
                "--cpus-per-task=8",
                "--mem=16G",
                "--account=proj",
                "--qos=normal",
                "--exclusive"
            ]
        );
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(time_minutes(Duration::from_secs(61)), Ok(2));
        assert_eq!(time_minutes(Duration::from_secs(5)), Ok(1));
        assert!(time_minutes(Duration::ZERO).is_err());
        assert!(check_mem("4G").is_ok() && check_mem("16000").is_ok());
        assert!(check_mem("4GB").is_err() && check_mem("lots").is_err() && check_mem("0").is_err());
        assert!(check_name("debug").is_ok() && check_name("a b").is_err() && check_name("").is_err());
        assert!(check_extra("--qos=normal").is_ok());
        assert!(check_extra("qos=normal").is_err());
        assert!(check_extra("--output=x").is_err() && check_extra("-Jname").is_err());
    }
}
