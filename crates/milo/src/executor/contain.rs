//! Containing everything a command starts, so that stopping a phase stops all of it: the
//! processes of its group, and also those that left the group or the session (`setsid`,
//! `timeout`, daemons that double-fork).
//!
//! Each command runs in a [`Container`], by the best mechanism the machine offers (chosen once
//! per process, see [`mechanism`]):
//!
//! * **A cgroup of its own** (cgroup v2 where milo may create one under its own cgroup, else a
//!   writable cgroup v1 `pids` or `freezer` hierarchy). A cgroup holds every descendant,
//!   whatever it does to its group, session or parent; v2 kills it with one write to
//!   `cgroup.kill`. Cgroups are kept in a pool and reused, so the cost is paid once per
//!   concurrent job, not per phase.
//! * **The process tree**, everywhere else: the command's group, its descendants while their
//!   parent lives, and — once milo is a child subreaper ([`become_subreaper`], done by the `milo`
//!   binary) — processes re-parented to milo that carry the container's `MILO_JOB` marker in
//!   their environment. A process that clears its environment *and* is orphaned escapes this
//!   fallback until the end of the run, when [`kill_descendants`] stops every descendant.
//!
//! Every command is also started in a new session (no controlling terminal: a phase that reads
//! `/dev/tty` fails at once instead of stopping in the background) and with
//! `PR_SET_PDEATHSIG`, so the command's main process dies with milo even on SIGKILL. What a
//! killed milo leaves behind (its cgroups, its result directories, marked processes) is swept
//! by the next milo that starts ([`sweep_stale`]).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use parking_lot::Mutex;

use super::procfs::{self, ProcStat};

/// The environment variable that marks every process of a container (`<milo pid>-<start>-<n>`).
pub const MARKER_VAR: &str = "MILO_JOB";

/// Chooses the mechanism for tests and for machines where a cgroup is unwanted: `cgroup`,
/// `cgroup-v1` (skip v2) or `tree` (`auto`, the default, prefers a cgroup, v2 first).
pub const MECHANISM_VAR: &str = "MILO_CONTAINMENT";

/// How commands are contained in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// A cgroup v2 per command.
    CgroupV2,
    /// A cgroup v1 per command.
    CgroupV1,
    /// The process group, the process tree and the `MILO_JOB` marker.
    ProcessTree,
}

impl Mechanism {
    /// `cgroup v2`, `cgroup v1`, `process tree`.
    pub fn describe(self) -> &'static str {
        match self {
            Mechanism::CgroupV2 => "cgroup v2",
            Mechanism::CgroupV1 => "cgroup v1",
            Mechanism::ProcessTree => "process tree",
        }
    }
}

/// This process's identity as it appears in names: `<pid>-<start time>`, unique even after the
/// pid is reused.
pub fn owner_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        let start = procfs::stat(pid as i32).map_or(0, |s| s.start_time);
        format!("{pid}-{start}")
    })
}

/// Whether the process that `tag` (from [`owner_tag`]) names is gone.
fn tag_is_dead(tag: &str) -> bool {
    let mut parts = tag.splitn(2, '-');
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else {
        return false;
    };
    procfs::stat(pid).is_none_or(|s| s.start_time != start)
}

static SUBREAPER: AtomicBool = AtomicBool::new(false);

/// Makes this process a child subreaper: descendants whose parent dies are re-parented to it
/// rather than to init, so they can be found and stopped. From then on this process also reaps
/// every child it did not start through the [`LocalExecutor`](super::LocalExecutor), so call it
/// only in a program that starts its children that way (the `milo` binary does).
pub fn become_subreaper() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        SUBREAPER.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// The pids of the children started by the executor and not yet waited for.
static CHILDREN: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Held shared by every spawn until its child is registered, and exclusively while orphans are
/// listed, so a child is never mistaken for an orphan to reap; spawns on different threads do
/// not wait for each other (each takes as long as its child's exec).
static SPAWNING: parking_lot::RwLock<()> = parking_lot::RwLock::new(());

/// Runs `spawn` and records the child it returns as one of the executor's own.
pub(crate) fn spawn_registered<T>(spawn: impl FnOnce() -> io::Result<(T, i32)>) -> io::Result<T> {
    let _spawning = SPAWNING.read();
    let (child, pid) = spawn()?;
    CHILDREN.lock().get_or_insert_with(HashSet::new).insert(pid);
    Ok(child)
}

/// Forgets a child once it has been waited for.
pub(crate) fn unregister(pid: i32) {
    if let Some(children) = CHILDREN.lock().as_mut() {
        children.remove(&pid);
    }
}

/// This process's direct children, from `/proc/self/task/*/children`.
fn direct_children() -> Vec<i32> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            pids.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    pids
}

/// Children of this process that the executor did not start: processes re-parented to the
/// subreaper. No spawn is under way while they are listed (see [`SPAWNING`]), so every child
/// of the executor's is registered by then.
fn orphans() -> Vec<i32> {
    if !SUBREAPER.load(Ordering::Relaxed) {
        return Vec::new();
    }
    let _no_spawn = SPAWNING.write();
    let children = direct_children();
    let registered = CHILDREN.lock();
    children
        .into_iter()
        .filter(|p| registered.as_ref().is_none_or(|r| !r.contains(p)))
        .collect()
}

/// Reaps the orphans that have exited, at most every 100 ms: a zombie costs nothing but its
/// pid while it waits, and looking for them reads a file per thread.
fn reap_orphans_soon() {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let mut last = LAST.lock();
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
    }
    reap_orphans();
}

/// Reaps the orphans that have exited (once a subreaper, nothing else waits for them). The
/// executor's own children are never among them: see [`orphans`].
pub fn reap_orphans() {
    for pid in orphans() {
        if procfs::stat(pid).is_some_and(|s| s.is_dead()) {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// The `MILO_JOB` marker in process `pid`'s (initial) environment, if it has one.
fn marker_of(pid: i32) -> Option<String> {
    let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{MARKER_VAR}=");
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Whether process `pid` carries `marker`.
fn has_marker(pid: i32, marker: &str) -> bool {
    marker_of(pid).is_some_and(|m| m == marker)
}

/// `roots` and all their descendants among `all`.
fn with_descendants(all: &[ProcStat], roots: impl IntoIterator<Item = i32>) -> HashSet<i32> {
    let mut set: HashSet<i32> = roots.into_iter().collect();
    let mut frontier: Vec<i32> = set.iter().copied().collect();
    while let Some(p) = frontier.pop() {
        for c in all.iter().filter(|c| c.ppid == p && !c.is_dead()) {
            if set.insert(c.pid) {
                frontier.push(c.pid);
            }
        }
    }
    set
}

/// SIGKILLs every descendant of this process (a second Ctrl-C, the end of the run): with the
/// subreaper that is everything any phase started, wherever it went. Cgroups are killed too.
pub fn kill_descendants() {
    if let Some(pool) = POOL.get().and_then(|p| p.as_ref()) {
        pool.kill_all();
    }
    let me = std::process::id() as i32;
    let Some(all) = procfs::processes().map(Iterator::collect::<Vec<_>>) else {
        return;
    };
    let mut set = with_descendants(&all, [me]);
    set.remove(&me);
    for pid in set {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The mechanism commands are contained by in this process, chosen on first use.
pub fn mechanism() -> Mechanism {
    match pool() {
        Some(p) => p.version,
        None => Mechanism::ProcessTree,
    }
}

/// The cgroups of this process: a directory `milo-<owner tag>` under this process's own cgroup,
/// with a `job-<n>` cgroup per concurrent command.
struct Pool {
    version: Mechanism,
    base: PathBuf,
    free: Mutex<Vec<PathBuf>>,
    all: Mutex<Vec<PathBuf>>,
    next: AtomicU64,
}

static POOL: OnceLock<Option<Pool>> = OnceLock::new();

fn pool() -> Option<&'static Pool> {
    POOL.get_or_init(|| {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let wanted = std::env::var(MECHANISM_VAR).unwrap_or_default();
        if wanted == "tree" {
            return None;
        }
        let v2 = || cgroup_parent(Mechanism::CgroupV2).and_then(|parent| Pool::create(Mechanism::CgroupV2, &parent));
        let v1 = || cgroup_parent(Mechanism::CgroupV1).and_then(|parent| Pool::create(Mechanism::CgroupV1, &parent));
        let pool = if wanted == "cgroup-v1" { v1() } else { v2().or_else(v1) };
        if pool.is_none() && wanted.starts_with("cgroup") {
            tracing::warn!("{MECHANISM_VAR}=cgroup, but no cgroup could be created; containing by process tree");
        }
        pool
    })
    .as_ref()
}

/// This process's own cgroup directory under the hierarchy of `version`, if mounted.
fn cgroup_parent(version: Mechanism) -> Option<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    // mountinfo: "id parent major:minor root mountpoint options ... - fstype source superopts"
    let mount_of = |want: &dyn Fn(&str, &str) -> bool| {
        mounts.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split_whitespace();
            let fstype = r.next()?;
            let _source = r.next();
            let superopts = r.next().unwrap_or("");
            let mut f = left.split_whitespace();
            let root = f.nth(3)?;
            let point = f.next()?;
            (want(fstype, superopts) && root == "/").then(|| PathBuf::from(point))
        })
    };
    match version {
        Mechanism::CgroupV2 => {
            let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
            let mount = mount_of(&|fstype, _| fstype == "cgroup2")?;
            Some(mount.join(path.trim_start_matches('/')))
        }
        Mechanism::CgroupV1 => ["pids", "freezer"].iter().find_map(|controller| {
            let path = own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
                names.split(',').any(|n| n == *controller).then_some(path)
            })?;
            let mount = mount_of(&|fstype, opts| fstype == "cgroup" && opts.split(',').any(|o| o == *controller))?;
            Some(mount.join(path.trim_start_matches('/')))
        }),
        Mechanism::ProcessTree => None,
    }
}

impl Pool {
    fn create(version: Mechanism, parent: &Path) -> Option<Pool> {
        let base = parent.join(format!("milo-{}", owner_tag()));
        match fs::create_dir(&base) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!("no {} for the phases ({}: {e})", version.describe(), base.display());
                return None;
            }
        }
        let pool = Pool {
            version,
            base,
            free: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        };
        // Only a pool a process can actually be moved into is any use: try with a job cgroup
        // and this process's own pid written back where it was (a no-op move).
        let job = pool.take()?;
        let usable = fs::OpenOptions::new()
            .write(true)
            .open(job.join("cgroup.procs"))
            .is_ok();
        pool.give_back(job);
        if !usable {
            pool.remove();
            return None;
        }
        tracing::debug!(
            "containing phases in {} cgroups under {}",
            version.describe(),
            pool.base.display()
        );
        Some(pool)
    }

    /// An empty cgroup: a free one, or a new one.
    fn take(&self) -> Option<PathBuf> {
        if let Some(p) = self.free.lock().pop() {
            return Some(p);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.base.join(format!("job-{n}"));
        fs::create_dir(&dir).ok()?;
        self.all.lock().push(dir.clone());
        Some(dir)
    }

    fn give_back(&self, dir: PathBuf) {
        if cgroup_members(&dir).is_empty() {
            self.free.lock().push(dir);
        }
    }

    fn kill_all(&self) {
        for dir in self.all.lock().iter() {
            kill_cgroup(dir, self.version, Signal::SIGKILL);
        }
    }

    /// Kills what is left and removes every cgroup (the end of the process).
    fn remove(&self) {
        let dirs: Vec<PathBuf> = self.all.lock().drain(..).collect();
        self.free.lock().clear();
        for dir in &dirs {
            remove_cgroup(dir, self.version);
        }
        let _ = fs::remove_dir(&self.base);
    }
}

/// The live processes of cgroup `dir` (exited ones are not listed).
fn cgroup_members(dir: &Path) -> Vec<i32> {
    use std::io::Read;
    // Read through `Take`, whose reads do not first stat the file for a size (which a cgroup
    // file does not have): on an empty cgroup, the usual case, this is one open and one read.
    let Ok(file) = fs::File::open(dir.join("cgroup.procs")) else {
        return Vec::new();
    };
    let mut text = String::new();
    if file.take(u64::MAX).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    text.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn kill_cgroup(dir: &Path, version: Mechanism, signal: Signal) {
    if signal == Signal::SIGKILL
        && version == Mechanism::CgroupV2
        && fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.kill"))
            .and_then(|mut f| f.write_all(b"1"))
            .is_ok()
    {
        return;
    }
    // No cgroup.kill (v1, or a kernel before 5.14): signal each member; repeat for the ones
    // that forked meanwhile.
    for _ in 0..8 {
        let members = cgroup_members(dir);
        if members.is_empty() {
            return;
        }
        for pid in members {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        if signal != Signal::SIGKILL {
            return;
        }
    }
}

/// Kills cgroup `dir`'s members, waits a little for them to go, and removes it.
fn remove_cgroup(dir: &Path, version: Mechanism) {
    kill_cgroup(dir, version, Signal::SIGKILL);
    let end = Instant::now() + Duration::from_secs(2);
    while !cgroup_members(dir).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        kill_cgroup(dir, version, Signal::SIGKILL);
    }
    let _ = fs::remove_dir(dir);
}

/// Stops whatever this process's containers still hold and removes its cgroups. The `milo`
/// binary calls it on its way out.
pub fn shutdown() {
    kill_descendants();
    if let Some(pool) = POOL.get().and_then(|p| p.as_ref()) {
        pool.remove();
    }
    reap_orphans();
}

/// Removes what milo processes that died without cleaning up left behind: their cgroups (and
/// every process still in them), their result directories under `run_dirs`, and — when such a
/// directory is found — the processes that still carry their `MILO_JOB` marker.
pub fn sweep_stale(run_dirs: &[PathBuf]) {
    let mut dead: HashSet<String> = HashSet::new();
    for version in [Mechanism::CgroupV2, Mechanism::CgroupV1] {
        let Some(parent) = cgroup_parent(version) else { continue };
        let Ok(entries) = fs::read_dir(&parent) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(tag) = name.strip_prefix("milo-") else {
                continue;
            };
            if !tag_is_dead(tag) {
                continue;
            }
            tracing::debug!("removing the cgroups of a milo that is gone ({})", e.path().display());
            if let Ok(jobs) = fs::read_dir(e.path()) {
                for job in jobs.flatten().filter(|j| j.path().is_dir()) {
                    remove_cgroup(&job.path(), version);
                }
            }
            let _ = fs::remove_dir(e.path());
            dead.insert(tag.to_owned());
        }
    }
    let uid = nix::unistd::getuid().as_raw();
    for base in run_dirs {
        let Ok(entries) = fs::read_dir(base) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("milo-run-") else {
                continue;
            };
            // milo-run-<pid>-<start>-<random>
            let tag: String = rest.splitn(3, '-').take(2).collect::<Vec<_>>().join("-");
            let mine = std::os::unix::fs::MetadataExt::uid(&match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            }) == uid;
            if mine && tag_is_dead(&tag) {
                tracing::debug!(
                    "removing the result directory of a milo that is gone ({})",
                    e.path().display()
                );
                let _ = fs::remove_dir_all(e.path());
                dead.insert(tag);
            }
        }
    }
    if dead.is_empty() {
        return;
    }
    // Processes of the dead runs that no cgroup held: find them by their marker.
    let me = std::process::id() as i32;
    if let Some(all) = procfs::processes() {
        for p in all.filter(|p| p.pid != me && !p.is_dead()) {
            let Some(marker) = marker_of(p.pid) else { continue };
            if dead.iter().any(|tag| {
                marker
                    .strip_prefix(tag.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
            }) {
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
        }
    }
}

/// Everything one command started.
pub(crate) struct Container {
    marker: String,
    cgroup: Option<(PathBuf, Mechanism)>,
    /// `cgroup.procs` of the cgroup, open for the child to move itself in before it execs.
    procs: Option<OwnedFd>,
    /// The main process (leader of the command's session and group).
    main: Option<Pid>,
    /// Set once nothing is left: no more signals (the ids may be reused).
    gone: bool,
}

impl Container {
    pub(crate) fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let marker = format!("{}-{}", owner_tag(), N.fetch_add(1, Ordering::Relaxed));
        let (cgroup, procs) = match pool().and_then(|p| p.take().map(|d| (d, p.version))) {
            Some((dir, version)) => match fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs")) {
                Ok(f) => (Some((dir, version)), Some(OwnedFd::from(f))),
                Err(e) => {
                    tracing::debug!("cannot use cgroup {}: {e}", dir.display());
                    (None, None)
                }
            },
            None => (None, None),
        };
        Self {
            marker,
            cgroup,
            procs,
            main: None,
            gone: false,
        }
    }

    /// The marker variable to put in the command's environment.
    pub(crate) fn marker(&self) -> (&'static str, &str) {
        (MARKER_VAR, &self.marker)
    }

    /// `cgroup.procs` of the container's cgroup, for the child to write itself into before
    /// it execs (see `spawn`).
    pub(crate) fn cgroup_procs(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.procs.as_ref().map(|f| f.as_fd())
    }

    /// Records the main process once started; the cgroup file is no longer needed.
    pub(crate) fn started(&mut self, pid: Pid) {
        self.main = Some(pid);
        self.procs = None;
    }

    /// Every live process of the container, main process included.
    fn members(&self) -> HashSet<i32> {
        if let Some((dir, _)) = &self.cgroup {
            return cgroup_members(dir).into_iter().collect();
        }
        let Some(main) = self.main else {
            return HashSet::new();
        };
        let Some(all) = procfs::processes().map(Iterator::collect::<Vec<_>>) else {
            return HashSet::new();
        };
        let me = std::process::id() as i32;
        let roots = all
            .iter()
            .filter(|p| !p.is_dead())
            .filter(|p| {
                p.pid == main.as_raw()
                    || p.pgrp == main.as_raw()
                    || (p.ppid == me && p.pid != main.as_raw() && has_marker(p.pid, &self.marker))
            })
            .map(|p| p.pid)
            .collect::<Vec<_>>();
        with_descendants(&all, roots)
    }

    /// Sends `signal` to every process of the container.
    pub(crate) fn signal(&mut self, signal: Signal) -> io::Result<()> {
        if self.gone {
            return Ok(());
        }
        if let Some(main) = self.main {
            match killpg(main, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        if let Some((dir, version)) = &self.cgroup {
            kill_cgroup(dir, *version, signal);
            return Ok(());
        }
        for pid in self.members() {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        Ok(())
    }

    /// Whether any process of the container still runs (an exited main process not yet waited
    /// for does not count).
    pub(crate) fn is_running(&mut self) -> bool {
        if self.gone {
            return false;
        }
        let running = match (&self.cgroup, self.main) {
            (Some((dir, _)), _) => !cgroup_members(dir).is_empty(),
            (None, None) => false,
            (None, Some(main)) => {
                // Quick answers first: the group is gone and no orphan is marked as ours.
                let group = !matches!(killpg(main, None), Err(Errno::ESRCH));
                let orphan = || orphans().into_iter().any(|p| has_marker(p, &self.marker));
                if !group && !orphan() {
                    false
                } else {
                    self.members()
                        .into_iter()
                        .any(|p| procfs::stat(p).is_some_and(|s| !s.is_dead()))
                }
            }
        };
        if !running {
            self.gone = true;
        }
        running
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let gone = self.gone;
        if !gone {
            let _ = self.signal(Signal::SIGKILL);
        }
        reap_orphans_soon();
        if let Some((dir, _)) = self.cgroup.take()
            && let Some(pool) = pool()
        {
            if gone {
                // Seen empty just now: reuse it without reading it again.
                pool.free.lock().push(dir);
            } else {
                pool.give_back(dir);
            }
        }
    }
}
