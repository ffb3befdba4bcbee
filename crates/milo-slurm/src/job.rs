//! [`SlurmLaunched`]: a phase's command as a Slurm job, behind the core's [`Launched`]. Its
//! exit future submits the job (`@@PHASE_QUEUED` with the id), reports its start
//! (`@@PHASE_RUNNING`), waits for the monitor to see it end, and copies its result back to
//! the orchestrator's `MILO_OUTPUT`; its output readers follow the job's stdout and stderr
//! files. Signalling it asks the monitor to `scancel` the job; dropping it too, unless the job
//! is over.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use milo::executor::{
    EventReceiver, ExitFuture, ExitOutcome, GroupSignal, JobFailure, Launched, OutputReader, RemoteEvent,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::SlurmOptions;
use crate::cluster::{Inner, Job, Progress};
use crate::follow::{Gate, follow};
use crate::wrapper::JobFiles;

/// How a job comes to be.
pub(crate) enum Submit {
    /// Submitted now, under this name.
    New { name: String },
    /// Already in the queue (from an interrupted run): followed, not submitted.
    Attach { id: String, name: String },
}

pub(crate) struct SlurmLaunched {
    inner: Arc<Inner>,
    /// The job, once submitted.
    job: Arc<Mutex<Option<Arc<Job>>>>,
    cancel: Arc<AtomicBool>,
    files: JobFiles,
    stdout: Option<OutputReader>,
    stderr: Option<OutputReader>,
    exit: Option<ExitFuture>,
    events: Option<EventReceiver>,
    /// Tells the followers the job is over.
    done: Arc<watch::Sender<Gate>>,
}

fn failure(message: String) -> io::Error {
    io::Error::other(JobFailure(message))
}

impl SlurmLaunched {
    pub(crate) fn start(
        inner: Arc<Inner>,
        submit: Submit,
        files: JobFiles,
        options: SlurmOptions,
        output: Option<PathBuf>,
    ) -> Self {
        let (done, done_rx) = watch::channel(Gate::Closed);
        let done = Arc::new(done);
        let stdout = follow(files.stdout.clone(), done_rx.clone());
        let stderr = follow(files.stderr.clone(), done_rx);
        let (tx, events) = mpsc::unbounded_channel();
        let job = Arc::new(Mutex::new(None));
        let cancel = Arc::new(AtomicBool::new(false));
        let exit = {
            let (inner, job_slot, cancel, files, done) =
                (inner.clone(), job.clone(), cancel.clone(), files.clone(), done.clone());
            async move {
                if cancel.load(Ordering::SeqCst) {
                    done.send_replace(Gate::Done);
                    return Err(failure("cancelled before it was submitted".into()));
                }
                let (name, attach) = match submit {
                    Submit::New { name } => (name, None),
                    Submit::Attach { id, name } => (name, Some(id)),
                };
                let job = match inner.submit_job(name, attach, files.clone(), &options).await {
                    Ok(job) => job,
                    Err(e) => {
                        done.send_replace(Gate::Done);
                        return Err(failure(e));
                    }
                };
                *job_slot.lock() = Some(job.clone());
                let _ = tx.send(RemoteEvent::Queued { job_id: job.id.clone() });
                if cancel.load(Ordering::SeqCst) {
                    inner.request_cancel(&job);
                }
                let mut progress = job.progress.subscribe();
                let mut started = false;
                let result = loop {
                    let now = progress.borrow_and_update().clone();
                    match now {
                        Progress::Queued => {}
                        Progress::Running => {
                            if !started {
                                started = true;
                                let _ = tx.send(RemoteEvent::Started { job_id: job.id.clone() });
                                done.send_replace(Gate::Open);
                            }
                        }
                        Progress::Ended(result) => break result,
                    }
                    if progress.changed().await.is_err() {
                        break Err(format!("lost track of Slurm job {}", job.id));
                    }
                };
                if !started && files.started.exists() {
                    let _ = tx.send(RemoteEvent::Started { job_id: job.id.clone() });
                }
                if let Some(output) = output
                    && files.result.exists()
                {
                    // The result goes where the orchestrator reads it: a copy, so that a
                    // symbolic link or a FIFO the command made stays what it is (and is refused
                    // there).
                    if let Err(e) = copy_result(&files.result, &output) {
                        tracing::warn!("could not copy {}: {e}", files.result.display());
                    }
                }
                done.send_replace(Gate::Done);
                // A failure names its job, where its files and Slurm's own record are.
                match result {
                    Ok(ExitOutcome::Code(0)) => Ok(ExitOutcome::Code(0)),
                    Ok(outcome) => match outcome.into_result() {
                        Err(e) => Err(failure(format!("{e} (Slurm job {})", job.id))),
                        Ok(()) => Ok(outcome),
                    },
                    Err(e) => Err(failure(e)),
                }
            }
            .boxed()
        };
        Self {
            inner,
            job,
            cancel,
            files,
            stdout: Some(stdout),
            stderr: Some(stderr),
            exit: Some(exit),
            events: Some(events),
            done,
        }
    }
}

/// Copies a regular result file; anything else is left for the reader to refuse.
fn copy_result(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_file() {
        std::fs::copy(from, to)?;
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    }
    Ok(())
}

impl Launched for SlurmLaunched {
    fn take_stdout(&mut self) -> Option<OutputReader> {
        self.stdout.take()
    }

    fn take_stderr(&mut self) -> Option<OutputReader> {
        self.stderr.take()
    }

    fn take_exit(&mut self) -> Option<ExitFuture> {
        self.exit.take()
    }

    fn take_events(&mut self) -> Option<EventReceiver> {
        self.events.take()
    }

    /// Both signals `scancel` the job (Slurm sends SIGTERM, then SIGKILL after its
    /// `KillWait`, to every process of the job).
    fn signal(&mut self, _signal: GroupSignal) -> io::Result<()> {
        self.cancel.store(true, Ordering::SeqCst);
        if let Some(job) = self.job.lock().clone() {
            self.inner.request_cancel(&job);
        }
        Ok(())
    }

    fn is_running(&mut self) -> bool {
        self.job.lock().as_ref().is_some_and(|j| !j.is_ended())
    }
}

impl Drop for SlurmLaunched {
    fn drop(&mut self) {
        self.done.send_replace(Gate::Done);
        self.cancel.store(true, Ordering::SeqCst);
        match self.job.lock().clone() {
            Some(job) if !job.is_ended() => self.inner.request_cancel(&job),
            Some(_) | None => {
                self.files.remove();
                // A job followed from an interrupted run: its directory goes with its last job.
                if let Some(dir) = self.files.script.parent()
                    && dir != self.inner.dir()
                {
                    let _ = std::fs::remove_dir(dir);
                }
            }
        }
    }
}
