//! milo's Slurm executor: phases run as Slurm batch jobs, with the same capture, policies,
//! cancellation and history as local ones.
//!
//! * [`Slurm`] (`cluster`): one run's connection; [`Slurm::executor`] makes the core's
//!   [`Executor`](milo::executor::Executor) for a set of [`SlurmOptions`] (`options`).
//! * `wrapper`: the batch script each job runs; it writes the command's exit status to a file
//!   atomically, the ground truth for how the command ended.
//! * `job`: a job behind the core's `Launched`: submission (`sbatch --parsable`, a busy
//!   controller retried with backoff), `queued`/`running` events, the result copied back,
//!   `scancel` on cancellation.
//! * `follow`: the job's stdout and stderr files read as they grow, into live lines.
//! * [`outcome`]: Slurm states and exit files mapped to phase errors.
//! * [`check`]: whether the client commands are installed and the controller answers.

pub mod check;
mod cluster;
mod follow;
mod job;
pub mod options;
pub mod outcome;
mod wrapper;

pub use cluster::{Slurm, Stats};
pub use options::SlurmOptions;
