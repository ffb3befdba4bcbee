//! Starting a command as `posix_spawn` does — a child that borrows milo's memory until it
//! execs (`clone(CLONE_VM | CLONE_VFORK)`), so no page tables are copied and milo takes no
//! copy-on-write faults afterwards — while still doing, in the child, what containment needs
//! before the exec: join the command's cgroup, start a new session and ask for `SIGKILL` when
//! milo dies (`PR_SET_PDEATHSIG`).
//!
//! The standard library forks instead as soon as a `pre_exec` hook is set; on a spawn-bound
//! pipeline (1,000 phases of `true`) that fork was most of milo's cost (see BENCHMARKS.md).
//!
//! Everything the child touches is prepared here before the clone and stays alive and unchanged
//! until it returns: with `CLONE_VFORK` the calling thread is suspended until the child has
//! exec'd or exited. The child only makes system calls on that data.

use std::ffi::{CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc::{self, c_char, c_int, c_void};

/// What to start.
pub(crate) struct Request<'a> {
    /// The program, an absolute path.
    pub program: &'a Path,
    /// The arguments, `argv[0]` included.
    pub argv: Vec<&'a OsStr>,
    /// Variables set on top of milo's own environment, in order (a later one wins).
    pub env: Vec<(&'a OsStr, &'a OsStr)>,
    /// The working directory, if not milo's.
    pub cwd: Option<&'a Path>,
    /// Pipe stdout and stderr (`true`) or let them be milo's own.
    pub capture: bool,
    /// `cgroup.procs` of the command's cgroup, which the child writes itself into.
    pub cgroup: Option<BorrowedFd<'a>>,
}

/// A started child.
pub(crate) struct Spawned {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// What the child reads (raw pointers into memory the suspended caller owns) and where it
/// leaves the error of a step that failed.
struct ChildData {
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdin: c_int,
    stdout: c_int,
    stderr: c_int,
    cgroup: c_int,
    parent: libc::pid_t,
    error: AtomicI32,
}

/// The size of the child's stack: it calls a handful of libc wrappers, no more.
const STACK: usize = 64 * 1024;

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a command"))
}

/// `/dev/null`, opened once for every child's stdin.
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();
    match NULL.get_or_init(|| {
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }) {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(e) => Err(io::Error::from_raw_os_error(*e)),
    }
}

/// A close-on-exec pipe whose ends are not 0, 1 or 2 (which the child overwrites).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let raw = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(io::Error::from)?;
    #[allow(unsafe_code)]
    // SAFETY: `raw` is a new descriptor F_DUPFD_CLOEXEC just returned; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// milo's environment with `set` on top (a later entry wins), as `KEY=value` strings: milo's
/// own variables first, in their order, then the ones `set` adds or replaces.
fn environment(set: &[(&OsStr, &OsStr)]) -> io::Result<Vec<CString>> {
    let entry = |k: &OsStr, v: &OsStr| {
        let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
        kv.extend_from_slice(k.as_bytes());
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        CString::new(kv).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the environment"))
    };
    let mut out = Vec::with_capacity(64 + set.len());
    for (k, v) in std::env::vars_os() {
        if !set.iter().any(|(s, _)| *s == k.as_os_str()) {
            out.push(entry(&k, &v)?);
        }
    }
    for (i, (k, v)) in set.iter().enumerate() {
        if !set[i + 1..].iter().any(|(later, _)| later == k) {
            out.push(entry(k, v)?);
        }
    }
    Ok(out)
}

/// Starts `req`; the error of a step that failed in the child (a missing program is
/// `ENOENT`, a bad working directory `ENOENT`/`ENOTDIR`…), with the child already reaped.
pub(crate) fn spawn(req: &Request<'_>) -> io::Result<Spawned> {
    // Everything the child reads, built now.
    let path = cstring(req.program.as_os_str())?;
    let argv: Vec<CString> = req.argv.iter().map(|a| cstring(a)).collect::<io::Result<_>>()?;
    let envs = environment(&req.env)?;
    let cwd = req.cwd.map(|c| cstring(c.as_os_str())).transpose()?;
    let argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let env_ptrs: Vec<*const c_char> = envs.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect();
    let (out, err) = if req.capture {
        (Some(pipe()?), Some(pipe()?))
    } else {
        (None, None)
    };
    let (out_r, out_w) = out.unzip();
    let (err_r, err_w) = err.unzip();
    let data = ChildData {
        path: path.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: env_ptrs.as_ptr(),
        cwd: cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        stdin: dev_null()?,
        stdout: out_w.as_ref().map_or(-1, |w| w.as_raw_fd()),
        stderr: err_w.as_ref().map_or(-1, |w| w.as_raw_fd()),
        cgroup: req.cgroup.map_or(-1, |f| f.as_raw_fd()),
        parent: nix::unistd::getpid().as_raw(),
        error: AtomicI32::new(0),
    };
    // Not zeroed: the child only ever writes below its stack pointer before it reads.
    let mut stack: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(STACK);
    let pid = clone_child(&data, &mut stack)?;
    // The child has exec'd (or exited): its copies of the write ends are its own now.
    drop((out_w, err_w));
    let error = data.error.load(Ordering::Acquire);
    if error != 0 {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(Spawned {
        pid,
        stdout: out_r,
        stderr: err_r,
    })
}

/// Clones the child onto `stack` with all signals blocked in this thread, so that no signal
/// handler of milo runs on the child's side before it has reset them.
#[allow(unsafe_code)]
fn clone_child(data: &ChildData, stack: &mut [MaybeUninit<u8>]) -> io::Result<i32> {
    // The stack grows down: its top, aligned to 16 bytes as the ABI wants.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    // SAFETY: `sigset_t` is plain data; sigfillset and pthread_sigmask only write the sets we
    // pass. `clone` with CLONE_VM | CLONE_VFORK runs `child_main` on `stack` (ours, unused by
    // anything else, and alive until clone returns, since this thread is suspended until the
    // child execs or exits) with a pointer to `data`, which likewise outlives the child's use
    // of it; `child_main` never returns into Rust code of the parent (it execs or _exits).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            data as *const ChildData as *mut c_void,
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 { Err(clone_error) } else { Ok(pid) }
    }
}

/// The child, between clone and exec. It runs on its own stack but in milo's memory, while
/// milo's other threads go on: it only makes system calls on the data prepared for it, takes
/// no lock and allocates nothing.
#[allow(unsafe_code)]
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    /// Leaves errno for the parent and exits.
    unsafe fn fail(d: &ChildData) -> ! {
        // SAFETY: errno is this thread's; `_exit` ends the child without running anything.
        unsafe {
            d.error.store(*libc::__errno_location(), Ordering::Release);
            libc::_exit(127)
        }
    }
    // SAFETY: `arg` points to the `ChildData` the suspended parent keeps alive (see
    // `clone_child`); every pointer in it is to a NUL-terminated string or a NULL-terminated
    // array of them, owned by the parent's suspended frame.
    unsafe {
        let d = &*(arg as *const ChildData);
        // Signal dispositions: handlers are milo's (and run in its memory): back to default.
        // SIGPIPE, which Rust programs ignore, is back to default too, as std does.
        for sig in 1..libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            if sig == libc::SIGPIPE || (old.sa_sigaction != libc::SIG_IGN && old.sa_sigaction != libc::SIG_DFL) {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
        }
        if d.cgroup >= 0 {
            // Best effort: a command that cannot join its cgroup is still contained by its
            // session and the process tree.
            let _ = libc::write(d.cgroup, b"0".as_ptr() as *const c_void, 1);
        }
        if libc::setsid() < 0 {
            fail(d);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
            fail(d);
        }
        // milo may have died before the line above: then nothing would kill us.
        if libc::getppid() != d.parent {
            *libc::__errno_location() = libc::ESRCH;
            fail(d);
        }
        for (from, to) in [(d.stdin, 0), (d.stdout, 1), (d.stderr, 2)] {
            if from >= 0 && libc::dup2(from, to) < 0 {
                fail(d);
            }
        }
        if !d.cwd.is_null() && libc::chdir(d.cwd) < 0 {
            fail(d);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(d.path, d.argv, d.envp);
        fail(d)
    }
}

/// Waits for child `pid` to exit, without blocking a runtime worker: on a pidfd (Linux 5.3+)
/// registered with tokio, else on a blocking thread.
pub(crate) async fn wait(pid: i32) -> io::Result<super::ExitOutcome> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let pid = nix::unistd::Pid::from_raw(pid);
    let outcome = |status: WaitStatus| match status {
        WaitStatus::Exited(_, code) => Some(super::ExitOutcome::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(super::ExitOutcome::Signal(sig as i32)),
        _ => None,
    };
    #[allow(unsafe_code)]
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd >= 0 {
        #[allow(unsafe_code)]
        // SAFETY: `fd` is the new descriptor pidfd_open just returned; nothing else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        #[allow(unsafe_code)]
        // SAFETY: the `AsyncFd` owns `pidfd`, an `OwnedFd`, whose descriptor stays open and the
        // same until the `AsyncFd` is dropped.
        let pidfd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(status) => {
                    if let Some(o) = outcome(status) {
                        return Ok(o);
                    }
                }
                Err(e) => return Err(io::Error::from(e)),
            }
            // Readable once the process has exited.
            let mut ready = pidfd.readable().await?;
            ready.clear_ready();
        }
    }
    tokio::task::spawn_blocking(move || {
        loop {
            match waitpid(pid, None) {
                Ok(status) => {
                    if let Some(o) = outcome(status) {
                        return Ok(o);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    })
    .await
    .map_err(io::Error::other)?
}
