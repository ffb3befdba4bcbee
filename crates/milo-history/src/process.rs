//! Is the process that recorded a run still alive? A pid alone can be reused, so on Linux the
//! process's start time (field 22 of `/proc/<pid>/stat`) is recorded with it and compared.

/// This process's pid and, where known, its start time.
pub fn current() -> (i64, Option<String>) {
    let pid = i64::from(std::process::id());
    (pid, start_time(pid))
}

#[cfg(target_os = "linux")]
fn stat(pid: i64) -> Option<milo::executor::procfs::ProcStat> {
    milo::executor::procfs::stat(i32::try_from(pid).ok()?)
}

#[cfg(target_os = "linux")]
fn start_time(pid: i64) -> Option<String> {
    stat(pid).map(|s| s.start_time.to_string())
}

#[cfg(not(target_os = "linux"))]
fn start_time(_pid: i64) -> Option<String> {
    None
}

/// Whether process `pid` (started at `start`, when known) still runs. A zombie is not alive.
#[cfg(target_os = "linux")]
pub fn alive(pid: i64, start: Option<&str>) -> bool {
    let Some(s) = stat(pid) else {
        return false;
    };
    if s.is_dead() {
        return false;
    }
    match start {
        Some(start) => s.start_time.to_string() == start,
        None => true,
    }
}

/// Whether process `pid` still runs.
#[cfg(not(target_os = "linux"))]
pub fn alive(pid: i64, _start: Option<&str>) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}
