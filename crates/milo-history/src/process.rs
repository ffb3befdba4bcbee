//! Is the process that recorded a run still alive? A pid alone can be reused, so on Linux the
//! process's start time (field 22 of `/proc/<pid>/stat`) is recorded with it and compared.

/// This process's pid and, where known, its start time.
pub fn current() -> (i64, Option<String>) {
    let pid = i64::from(std::process::id());
    (pid, start_time(pid))
}

#[cfg(target_os = "linux")]
fn stat_fields(pid: i64) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

#[cfg(target_os = "linux")]
fn start_time(pid: i64) -> Option<String> {
    // After the name: field 3 (state) is index 0, so field 22 (starttime) is index 19.
    stat_fields(pid)?.get(19).cloned()
}

#[cfg(not(target_os = "linux"))]
fn start_time(_pid: i64) -> Option<String> {
    None
}

/// Whether process `pid` (started at `start`, when known) still runs. A zombie is not alive.
#[cfg(target_os = "linux")]
pub fn alive(pid: i64, start: Option<&str>) -> bool {
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    if matches!(fields.first().map(String::as_str), Some("Z" | "X" | "x")) {
        return false;
    }
    match start {
        Some(start) => fields.get(19).map(String::as_str) == Some(start),
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
