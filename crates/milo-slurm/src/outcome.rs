//! How a Slurm job ended: its state as `squeue`/`scontrol` report it, the exit file its
//! wrapper wrote, and the phase error each combination becomes.

use milo::executor::ExitOutcome;

/// Where a job stands, as the controller reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to start (`PENDING`, `CONFIGURING`, `REQUEUED`…).
    Queued,
    /// Started (`RUNNING`, `COMPLETING`, `SUSPENDED`…): not over until it leaves `COMPLETING`.
    Running,
    /// Over, in this final state.
    Ended(EndState),
}

/// A final job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndState {
    /// `COMPLETED`.
    Completed,
    /// `FAILED`.
    Failed,
    /// `CANCELLED`.
    Cancelled,
    /// `TIMEOUT`.
    Timeout,
    /// `OUT_OF_MEMORY`.
    OutOfMemory,
    /// `NODE_FAIL`.
    NodeFail,
    /// `PREEMPTED`.
    Preempted,
    /// `BOOT_FAIL`.
    BootFail,
    /// `DEADLINE`.
    Deadline,
    /// Another final state (`REVOKED`, `SPECIAL_EXIT`…).
    Other,
}

impl JobState {
    /// The state of `squeue -o %T` / `scontrol`'s `JobState=`; `None` for one milo does not
    /// know (treated as still running).
    pub fn parse(text: &str) -> Option<JobState> {
        use EndState::*;
        Some(match text.trim() {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD" | "RESV_DEL_HOLD" => {
                JobState::Queued
            }
            "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT" | "RESIZING" => {
                JobState::Running
            }
            "COMPLETED" => JobState::Ended(Completed),
            "FAILED" => JobState::Ended(Failed),
            "CANCELLED" => JobState::Ended(Cancelled),
            "TIMEOUT" => JobState::Ended(Timeout),
            "OUT_OF_MEMORY" => JobState::Ended(OutOfMemory),
            "NODE_FAIL" => JobState::Ended(NodeFail),
            "PREEMPTED" => JobState::Ended(Preempted),
            "BOOT_FAIL" => JobState::Ended(BootFail),
            "DEADLINE" => JobState::Ended(Deadline),
            "REVOKED" | "SPECIAL_EXIT" => JobState::Ended(Other),
            _ => return None,
        })
    }
}

/// The exit status the wrapper wrote (`$?` of the command): above 128, a signal as the shell
/// reports it (128 + its number).
pub fn parse_exit_file(text: &str) -> Option<ExitOutcome> {
    let code: i32 = text.trim().parse().ok()?;
    Some(if (129..=128 + 64).contains(&code) {
        ExitOutcome::Signal(code - 128)
    } else {
        ExitOutcome::Code(code)
    })
}

/// `ExitCode=3:0` of `scontrol show job`: (exit code, signal).
pub fn parse_exit_code(text: &str) -> Option<(i32, i32)> {
    let (code, signal) = text.trim().split_once(':')?;
    Some((code.parse().ok()?, signal.parse().ok()?))
}

/// How a job that ended in `state` comes out, given what its exit file said (`None`: there
/// was none) and `scontrol`'s exit code when known. `Err` is the phase's error.
pub fn outcome(
    job: &str,
    state: EndState,
    exit_file: Option<ExitOutcome>,
    exit_code: Option<(i32, i32)>,
    time_minutes: Option<u64>,
) -> Result<ExitOutcome, String> {
    let limit = time_minutes.map_or(String::new(), |m| format!(" of {m} min"));
    match (state, exit_file) {
        (EndState::OutOfMemory, _) => Err(format!(
            "Slurm job {job} ran out of memory (OUT_OF_MEMORY); raise the phase's `slurm.mem`"
        )),
        (EndState::Timeout, _) => Err(format!(
            "Slurm job {job} reached its time limit{limit} (TIMEOUT); raise the phase's `slurm.time`"
        )),
        (EndState::NodeFail, _) => Err(format!(
            "Slurm job {job} failed with its node (NODE_FAIL); a retry policy resubmits it"
        )),
        (EndState::Preempted, _) => Err(format!(
            "Slurm job {job} was preempted by a job of higher priority (PREEMPTED); a retry policy resubmits it"
        )),
        (EndState::BootFail, _) => Err(format!(
            "Slurm job {job} could not start: its node failed to boot (BOOT_FAIL)"
        )),
        (EndState::Deadline, _) => Err(format!("Slurm job {job} missed its deadline (DEADLINE)")),
        (_, Some(outcome)) => Ok(outcome),
        (EndState::Cancelled, None) => Err(format!(
            "Slurm job {job} was cancelled outside milo (scancel, or an administrator)"
        )),
        (EndState::Failed, None) => Err(match exit_code {
            Some((_, signal)) if signal != 0 => format!(
                "Slurm job {job} was killed by {} before its command reported an exit status",
                milo::executor::signal_name(signal)
            ),
            Some((code, _)) => format!(
                "Slurm job {job} failed (exit code {code}) before its command ran; see the job's stderr above, \
                 and check that the job directory is on a filesystem the nodes share"
            ),
            None => format!("Slurm job {job} failed before its command reported an exit status"),
        }),
        (EndState::Completed | EndState::Other, None) => Err(format!(
            "Slurm job {job} ended but its command wrote no exit status; the job directory must be on a \
             filesystem shared with the nodes"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_exit_files_map_to_outcomes_and_errors() {
        assert_eq!(JobState::parse("PENDING"), Some(JobState::Queued));
        assert_eq!(JobState::parse("COMPLETING"), Some(JobState::Running));
        assert_eq!(JobState::parse("TIMEOUT"), Some(JobState::Ended(EndState::Timeout)));
        assert_eq!(parse_exit_file("3\n"), Some(ExitOutcome::Code(3)));
        assert_eq!(parse_exit_file("137\n"), Some(ExitOutcome::Signal(9)));
        assert_eq!(parse_exit_code("0:15"), Some((0, 15)));
        let ok = outcome("7", EndState::Completed, Some(ExitOutcome::Code(0)), None, None);
        assert_eq!(ok, Ok(ExitOutcome::Code(0)));
        let t = outcome("7", EndState::Timeout, None, Some((0, 15)), Some(1)).unwrap_err();
        assert!(t.contains("time limit of 1 min (TIMEOUT)"), "{t}");
        let oom = outcome("7", EndState::OutOfMemory, Some(ExitOutcome::Signal(9)), None, None).unwrap_err();
        assert!(oom.contains("OUT_OF_MEMORY") && oom.contains("slurm.mem"), "{oom}");
        let killed = outcome("7", EndState::Failed, None, Some((0, 9)), None).unwrap_err();
        assert!(killed.contains("SIGKILL"), "{killed}");
        let gone = outcome("7", EndState::Completed, None, None, None).unwrap_err();
        assert!(gone.contains("shared"), "{gone}");
    }
}
