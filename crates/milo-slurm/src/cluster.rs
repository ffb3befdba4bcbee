//! [`Slurm`]: one run's connection to the cluster. It submits jobs, and one monitor task
//! follows all of the run's jobs: the jobs' exit and start files on the shared filesystem
//! (cheap, every few tens of milliseconds), one batched `squeue` per tick filtered by the
//! run's job names (the interval adaptive: short after a change or while cancellations are
//! pending, backing off while nothing changes or the controller is slow), `scontrol show job`
//! only for the ids `squeue` no longer lists, and one `scancel` for every job to cancel at
//! that moment. It never queries per job on every tick and never needs `sacct`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use milo::executor::{CommandError, CommandSpec, Executor, ExitOutcome, Launched};
use parking_lot::Mutex;
use tokio::process::Command;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::SlurmOptions;
use crate::outcome::{EndState, JobState, outcome, parse_exit_code, parse_exit_file};
use crate::wrapper::JobFiles;

/// How often the monitor looks at the jobs' files.
const FILE_TICK: Duration = Duration::from_millis(50);
/// The `squeue` interval right after a change, and at most while nothing changes.
const QUERY_MIN: Duration = Duration::from_millis(500);
const QUERY_MAX: Duration = Duration::from_secs(5);
/// How long a job may be over in Slurm's eyes before its exit file shows up (a shared
/// filesystem's attribute cache can delay it).
const EXIT_FILE_GRACE: Duration = Duration::from_secs(3);
/// How long a job `squeue` and `scontrol` no longer know may take to show its exit file
/// before it is a failure (`MILO_SLURM_VANISH_GRACE`, in seconds, overrides it).
const VANISH_GRACE: Duration = Duration::from_secs(30);
/// How long cancellation requests are gathered before one `scancel` sends them.
const CANCEL_COALESCE: Duration = Duration::from_millis(50);
/// Retries of a busy controller: the first wait, and the longest total.
const BUSY_FIRST: Duration = Duration::from_millis(250);
const BUSY_TOTAL: Duration = Duration::from_secs(120);

/// Counts of what milo asked the controller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `sbatch` calls (one per job, plus retries).
    pub sbatch: u64,
    /// `squeue` calls.
    pub squeue: u64,
    /// `scontrol show job` calls.
    pub scontrol: u64,
    /// `scancel` calls.
    pub scancel: u64,
}

impl Stats {
    /// Status queries (`squeue` and `scontrol`).
    pub fn queries(&self) -> u64 {
        self.squeue + self.scontrol
    }
}

/// One run's connection to a Slurm cluster: make an [`Executor`] per set of options with
/// [`executor`](Self::executor), and call [`shutdown`](Self::shutdown) before the process
/// exits so that no job of the run is left behind.
#[derive(Clone)]
pub struct Slurm {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Slurm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slurm")
            .field("tag", &self.inner.tag)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// Identifies the run in job names: `milo.<tag>.<phase>`.
    tag: String,
    /// The run's job directory on the shared filesystem.
    dir: PathBuf,
    next: AtomicU64,
    /// Every job submitted, by id.
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    /// Jobs to cancel at the next tick.
    cancels: Mutex<Vec<String>>,
    /// Jobs milo cancelled.
    cancelled: Mutex<Vec<String>>,
    wake: Notify,
    monitor: AtomicBool,
    sbatch: AtomicU64,
    squeue: AtomicU64,
    scontrol: AtomicU64,
    scancel: AtomicU64,
    vanish_grace: Duration,
    /// Jobs of an interrupted run to follow instead of submitting: phase name → job id.
    reattach: Mutex<HashMap<String, String>>,
}

/// What a job's handle learns from the monitor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Progress {
    Queued,
    Running,
    Ended(Result<ExitOutcome, String>),
}

/// One submitted job.
pub(crate) struct Job {
    pub(crate) id: String,
    name: String,
    pub(crate) files: JobFiles,
    time_minutes: Option<u64>,
    track: Mutex<Track>,
    pub(crate) progress: watch::Sender<Progress>,
}

#[derive(Default)]
struct Track {
    started: bool,
    ended: bool,
    cancel_sent: bool,
    /// When Slurm first reported the job over without an exit file.
    over_since: Option<(Instant, EndState)>,
    /// When neither `squeue` nor `scontrol` knew the job any more.
    missing_since: Option<Instant>,
    /// An exit file saying SIGKILL: waiting to hear whether Slurm says OUT_OF_MEMORY.
    killed_since: Option<Instant>,
}

impl Job {
    pub(crate) fn is_ended(&self) -> bool {
        self.track.lock().ended
    }

    fn end(&self, result: Result<ExitOutcome, String>) {
        let mut t = self.track.lock();
        if !t.ended {
            t.ended = true;
            self.progress.send_replace(Progress::Ended(result));
        }
    }

    fn start(&self) {
        let mut t = self.track.lock();
        if !t.started && !t.ended {
            t.started = true;
            self.progress.send_replace(Progress::Running);
        }
    }

    /// Looks at the start and exit files; true if the job changed.
    fn check_files(&self) -> bool {
        if self.is_ended() {
            return false;
        }
        match std::fs::read_to_string(&self.files.exit) {
            Ok(text) => {
                let Some(exit) = parse_exit_file(&text) else {
                    self.end(Err(format!(
                        "Slurm job {}: its exit file {} holds {:?}, not an exit status",
                        self.id,
                        self.files.exit.display(),
                        text.trim()
                    )));
                    return true;
                };
                self.start();
                if exit == ExitOutcome::Signal(9) {
                    // Killed: Slurm may be about to say OUT_OF_MEMORY.
                    let mut t = self.track.lock();
                    let since = *t.killed_since.get_or_insert_with(Instant::now);
                    drop(t);
                    if since.elapsed() < EXIT_FILE_GRACE {
                        return false;
                    }
                }
                self.end(Ok(exit));
                true
            }
            Err(_) => {
                let started = self.track.lock().started;
                if !started && self.files.started.exists() {
                    self.start();
                    return true;
                }
                false
            }
        }
    }

    /// Applies what the controller says of the job; true if it changed.
    fn observe(&self, state: JobState, exit_code: Option<(i32, i32)>) -> bool {
        if self.is_ended() {
            return false;
        }
        match state {
            JobState::Queued => false,
            JobState::Running => {
                let was = self.track.lock().started;
                self.start();
                !was
            }
            JobState::Ended(end) => {
                if self.check_files() && self.is_ended() {
                    return true;
                }
                let exit = std::fs::read_to_string(&self.files.exit)
                    .ok()
                    .and_then(|t| parse_exit_file(&t));
                let waiting = {
                    let mut t = self.track.lock();
                    let (since, _) = *t.over_since.get_or_insert((Instant::now(), end));
                    // Only a job that may still write its exit file is waited for.
                    matches!(end, EndState::Completed | EndState::Failed)
                        && exit.is_none()
                        && since.elapsed() < EXIT_FILE_GRACE
                };
                if waiting {
                    return false;
                }
                self.end(outcome(&self.id, end, exit, exit_code, self.time_minutes).map_err(|e| e.to_string()));
                true
            }
        }
    }
}

impl Slurm {
    /// A connection for the run `tag` (letters, digits, `-`, `_`; it goes into every job
    /// name), its jobs' files under `dir` (created, mode 0700), which must be on a
    /// filesystem the compute nodes share.
    pub fn new(tag: &str, dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        }
        let vanish_grace = std::env::var("MILO_SLURM_VANISH_GRACE")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(VANISH_GRACE, Duration::from_secs_f64);
        Ok(Self {
            inner: Arc::new(Inner {
                tag: sanitize(tag),
                dir,
                next: AtomicU64::new(0),
                jobs: Mutex::new(HashMap::new()),
                cancels: Mutex::new(Vec::new()),
                cancelled: Mutex::new(Vec::new()),
                wake: Notify::new(),
                monitor: AtomicBool::new(false),
                sbatch: AtomicU64::new(0),
                squeue: AtomicU64::new(0),
                scontrol: AtomicU64::new(0),
                scancel: AtomicU64::new(0),
                vanish_grace,
                reattach: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Follows these jobs of an interrupted run (phase name → job id) instead of submitting
    /// the phases' first attempts again: each one still known to the controller is followed
    /// to its end (one that ended meanwhile is read from its exit file); one the controller
    /// forgot is submitted as usual.
    pub fn reattach(&self, jobs: impl IntoIterator<Item = (String, String)>) {
        self.inner.reattach.lock().extend(jobs);
    }

    /// The run's job directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// An executor submitting commands with `options`; every executor of this connection
    /// shares its monitor.
    pub fn executor(&self, options: SlurmOptions) -> Arc<dyn Executor> {
        Arc::new(SlurmExecutor {
            inner: self.inner.clone(),
            options,
        })
    }

    /// What was asked of the controller so far.
    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats {
            sbatch: i.sbatch.load(Ordering::Relaxed),
            squeue: i.squeue.load(Ordering::Relaxed),
            scontrol: i.scontrol.load(Ordering::Relaxed),
            scancel: i.scancel.load(Ordering::Relaxed),
        }
    }

    /// The ids of every job submitted so far.
    pub fn job_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.jobs.lock().keys().cloned().collect();
        ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        ids
    }

    /// Cancels every job of the run that has not ended (in one `scancel`), waits at most
    /// `wait` until Slurm reports them all ended, and removes the run's job directory once
    /// none is left. Returns the ids of the jobs milo cancelled during the run, and those it
    /// still saw running at the end (`Err` then).
    pub async fn shutdown(&self, wait: Duration) -> Result<Vec<String>, (Vec<String>, Vec<String>)> {
        let deadline = Instant::now() + wait;
        let active: Vec<Arc<Job>> = self
            .inner
            .jobs
            .lock()
            .values()
            .filter(|j| !j.is_ended())
            .cloned()
            .collect();
        for job in &active {
            self.inner.request_cancel(job);
        }
        loop {
            let left: Vec<String> = active.iter().filter(|j| !j.is_ended()).map(|j| j.id.clone()).collect();
            if left.is_empty() || Instant::now() >= deadline {
                let mut cancelled = self.inner.cancelled.lock().clone();
                cancelled.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
                cancelled.dedup();
                if left.is_empty() {
                    let _ = std::fs::remove_dir_all(&self.inner.dir);
                    return Ok(cancelled);
                }
                return Err((cancelled, left));
            }
            self.inner.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Job names and the run tag keep to letters, digits, `-`, `_` and `.` (a comma would split
/// the `squeue --name` list).
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Inner {
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn job_name(&self, phase: &str) -> String {
        format!("milo.{}.{}", self.tag, sanitize(phase))
    }

    pub(crate) fn request_cancel(&self, job: &Job) {
        {
            let mut t = job.track.lock();
            if t.ended || t.cancel_sent {
                return;
            }
            t.cancel_sent = true;
        }
        self.cancels.lock().push(job.id.clone());
        self.cancelled.lock().push(job.id.clone());
        self.wake.notify_one();
    }

    fn ensure_monitor(self: &Arc<Self>) {
        if !self.monitor.swap(true, Ordering::SeqCst) {
            tokio::spawn(monitor(Arc::downgrade(self)));
        }
    }

    /// Submits `script` as job `name`: its id. A busy controller is retried with backoff.
    async fn submit(&self, name: &str, files: &JobFiles, options: &SlurmOptions) -> Result<String, String> {
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={name}"),
            format!("--output={}", files.stdout.display()),
            format!("--error={}", files.stderr.display()),
        ];
        args.extend(options.sbatch_args());
        args.push(files.script.display().to_string());
        let mut wait = BUSY_FIRST;
        let give_up = Instant::now() + BUSY_TOTAL;
        loop {
            self.sbatch.fetch_add(1, Ordering::Relaxed);
            let out = Command::new("sbatch")
                .args(&args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| missing("sbatch", &e))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                // `--parsable`: `id` or `id;cluster`.
                let id = stdout.trim().split(';').next().unwrap_or("").to_owned();
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("sbatch printed no job id (it printed {:?})", stdout.trim()));
                }
                return Ok(id);
            }
            if is_busy(&stderr) && Instant::now() + wait < give_up {
                tracing::info!(
                    "the Slurm controller is busy ({}); submitting again in {wait:?}",
                    stderr.trim()
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
                continue;
            }
            return Err(format!(
                "sbatch refused the job: {}{}",
                stderr.trim(),
                if is_busy(&stderr) {
                    " (the controller stayed busy for 2 minutes)"
                } else {
                    "; check the phase's `slurm` options"
                }
            ));
        }
    }
}

/// Whether an error of a Slurm command says the controller is busy or unreachable for now.
fn is_busy(stderr: &str) -> bool {
    const BUSY: &[&str] = &[
        "Socket timed out",
        "Resource temporarily unavailable",
        "temporarily unable to accept",
        "Unable to contact slurm controller",
        "Zero Bytes were transmitted",
        "Connection refused",
        "try again",
    ];
    BUSY.iter().any(|b| stderr.contains(b))
}

fn missing(program: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("`{program}` was not found: install Slurm's client commands (Debian: slurm-client) or put them on PATH")
    } else {
        format!("could not run `{program}`: {e}")
    }
}

/// The monitor of a run's jobs (see the module's documentation).
async fn monitor(inner: std::sync::Weak<Inner>) {
    let mut interval = QUERY_MIN;
    let mut next_query = Instant::now();
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let active: Vec<Arc<Job>> = inner.jobs.lock().values().filter(|j| !j.is_ended()).cloned().collect();
        let mut changed = false;
        for job in &active {
            changed |= job.check_files();
        }
        // Cancellations: one scancel for all of them. A stop cancels several phases at once,
        // each from its own task: a moment's wait lets their requests arrive together.
        if !inner.cancels.lock().is_empty() {
            tokio::time::sleep(CANCEL_COALESCE).await;
        }
        let cancels: Vec<String> = std::mem::take(&mut *inner.cancels.lock());
        if !cancels.is_empty() {
            inner.scancel.fetch_add(1, Ordering::Relaxed);
            let out = Command::new("scancel")
                .args(&cancels)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await;
            match out {
                Ok(o) if !o.status.success() && is_busy(&String::from_utf8_lossy(&o.stderr)) => {
                    tracing::info!("the Slurm controller is busy; cancelling again shortly");
                    inner.cancels.lock().extend(cancels);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("{}", missing("scancel", &e)),
            }
            interval = QUERY_MIN;
            next_query = next_query.min(Instant::now() + QUERY_MIN / 2);
        }
        let active: Vec<Arc<Job>> = active.into_iter().filter(|j| !j.is_ended()).collect();
        if !active.is_empty() && Instant::now() >= next_query {
            let began = Instant::now();
            let (answered, moved) = query(&inner, &active).await;
            changed |= moved;
            let took = began.elapsed();
            let pending_cancel = active.iter().any(|j| j.track.lock().cancel_sent && !j.is_ended());
            interval = if changed || pending_cancel {
                QUERY_MIN
            } else if !answered {
                (interval * 2).min(QUERY_MAX * 2)
            } else {
                interval.mul_f64(1.5).min(QUERY_MAX)
            };
            // A slow controller is asked less often.
            interval = interval.max(took * 10);
            next_query = Instant::now() + interval;
        }
        if changed {
            next_query = next_query.min(Instant::now() + QUERY_MIN);
        }
        let idle = active.is_empty() && inner.cancels.lock().is_empty();
        let nap = if idle { Duration::from_millis(500) } else { FILE_TICK };
        let wake = inner.wake.notified();
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = wake => {}
        }
    }
}

/// One `squeue` for `active` (and `scontrol` for those it does not list): whether the
/// controller answered, and whether any job changed.
async fn query(inner: &Inner, active: &[Arc<Job>]) -> (bool, bool) {
    let names: HashSet<&str> = active.iter().map(|j| j.name.as_str()).collect();
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    inner.squeue.fetch_add(1, Ordering::Relaxed);
    let out = Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%i|%T"])
        .arg(format!("--name={}", names.join(",")))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            tracing::info!(
                "squeue failed ({}); asking again later",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return (false, false);
        }
        Err(e) => {
            tracing::warn!("{}", missing("squeue", &e));
            return (false, false);
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let listed: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, state)| (id.trim(), state.trim()))
        .collect();
    let mut changed = false;
    for job in active {
        match listed.get(job.id.as_str()) {
            Some(state) => {
                if let Some(state) = JobState::parse(state) {
                    let exit_code = match state {
                        JobState::Ended(EndState::Failed) if !job.files.exit.exists() => {
                            show_job(inner, &job.id).await.and_then(|(_, code)| code)
                        }
                        _ => None,
                    };
                    job.track.lock().missing_since = None;
                    changed |= job.observe(state, exit_code);
                }
            }
            None => changed |= unlisted(inner, job).await,
        }
    }
    (true, changed)
}

/// A job `squeue` did not list: asks `scontrol`, and fails it after the grace period when
/// the controller does not know it either and it left no exit file.
async fn unlisted(inner: &Inner, job: &Job) -> bool {
    if job.check_files() {
        return true;
    }
    match show_job(inner, &job.id).await {
        Some((Some(state), code)) => {
            job.track.lock().missing_since = None;
            job.observe(state, code)
        }
        _ => {
            let since = *job.track.lock().missing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= inner.vanish_grace {
                job.end(Err(format!(
                    "Slurm job {} vanished: the controller no longer knows it and it wrote no exit status to {} \
                     within {:?}; it may have been purged (MinJobAge) or lost with its node",
                    job.id,
                    job.files.exit.display(),
                    inner.vanish_grace
                )));
                true
            } else {
                false
            }
        }
    }
}

/// `scontrol show job -o ID`: its state and exit code; `None` when the controller does not
/// know the job (or did not answer).
async fn show_job(inner: &Inner, id: &str) -> Option<(Option<JobState>, Option<(i32, i32)>)> {
    inner.scontrol.fetch_add(1, Ordering::Relaxed);
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| show_field(&text, key);
    Some((
        field("JobState=").and_then(|s| JobState::parse(&s)),
        field("ExitCode=").and_then(|s| parse_exit_code(&s)),
    ))
}

/// An [`Executor`] that submits commands to Slurm with a set of options.
struct SlurmExecutor {
    inner: Arc<Inner>,
    options: SlurmOptions,
}

impl Executor for SlurmExecutor {
    fn launch(&self, spec: &CommandSpec) -> Result<Box<dyn Launched>, CommandError> {
        let spawn_error = |reason: String| CommandError::Spawn {
            command: spec.command.clone(),
            reason: reason.clone(),
            source: std::io::Error::other(reason),
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(spawn_error("the Slurm executor needs a tokio runtime".into()));
        }
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let files = JobFiles::new(&self.inner.dir, n);
        let script = crate::wrapper::script(spec, &files).map_err(spawn_error)?;
        write_file(&files.script, script.as_bytes(), 0o700).map_err(|e| {
            spawn_error(format!(
                "could not write the job script {}: {e}",
                files.script.display()
            ))
        })?;
        let env = |key: &str| {
            spec.env
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| PathBuf::from(v))
        };
        if let Some(inputs) = env("MILO_INPUTS") {
            let bytes = std::fs::read(&inputs).unwrap_or_else(|_| b"{}".to_vec());
            write_file(&files.inputs, &bytes, 0o400)
                .map_err(|e| spawn_error(format!("could not write {}: {e}", files.inputs.display())))?;
        }
        let phase = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "MILO_PHASE")
            .map_or("command", |(_, v)| v.as_str());
        let name = self.inner.job_name(phase);
        self.inner.ensure_monitor();
        let attempt = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "MILO_ATTEMPT")
            .map(|(_, v)| v.as_str());
        let reattach = if attempt == Some("1") {
            self.inner.reattach.lock().remove(phase)
        } else {
            None
        };
        if let Some(id) = reattach {
            match attached(&id) {
                Some((old_name, old_files)) => {
                    files.remove();
                    tracing::info!("phase {phase}: following Slurm job {id} of the interrupted run");
                    return Ok(Box::new(crate::job::SlurmLaunched::start(
                        self.inner.clone(),
                        crate::job::Submit::Attach { id, name: old_name },
                        old_files,
                        self.options.clone(),
                        env("MILO_OUTPUT"),
                    )));
                }
                None => tracing::info!(
                    "phase {phase}: Slurm job {id} of the interrupted run is not known any more; submitting it again"
                ),
            }
        }
        Ok(Box::new(crate::job::SlurmLaunched::start(
            self.inner.clone(),
            crate::job::Submit::New { name },
            files,
            self.options.clone(),
            env("MILO_OUTPUT"),
        )))
    }
}

/// Job `id`'s name and files, from `scontrol show job` (its `Command=` is the script milo
/// wrote, beside the job's other files); `None` when the controller does not know the job or
/// it is not one of milo's.
fn attached(id: &str) -> Option<(String, JobFiles)> {
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| show_field(&text, key);
    let name = field("JobName=")?;
    let script = PathBuf::from(field("Command=")?);
    let n: u64 = script.file_stem()?.to_str()?.parse().ok()?;
    if !name.starts_with("milo.") || script.extension()? != "sh" {
        return None;
    }
    Some((name, JobFiles::new(script.parent()?, n)))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)
}

impl Inner {
    /// Submits the job (or takes the running job `attach`) and registers it with the monitor.
    pub(crate) async fn submit_job(
        self: &Arc<Self>,
        name: String,
        attach: Option<String>,
        files: JobFiles,
        options: &SlurmOptions,
    ) -> Result<Arc<Job>, String> {
        let id = match attach {
            Some(id) => id,
            None => self.submit(&name, &files, options).await?,
        };
        let job = Arc::new(Job {
            id: id.clone(),
            name,
            files,
            time_minutes: options.time_minutes,
            track: Mutex::new(Track::default()),
            progress: watch::channel(Progress::Queued).0,
        });
        self.jobs.lock().insert(id, job.clone());
        self.wake.notify_one();
        Ok(job)
    }
}

/// The value of `KEY=` in one line of `scontrol show job -o`.
fn show_field(text: &str, key: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(str::to_owned)
}
