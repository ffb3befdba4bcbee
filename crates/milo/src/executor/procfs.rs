//! Reading `/proc/<pid>/stat` (Linux): a process's state, parent, group and start time. Used
//! to find what is left in a command's process group, the phases' groups to kill on a second
//! Ctrl-C, and whether the process that recorded a run is still alive.

/// The fields of `/proc/<pid>/stat` milo uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The process id.
    pub pid: i32,
    /// The state letter (`R`, `S`, `Z`…).
    pub state: char,
    /// The parent's pid.
    pub ppid: i32,
    /// The process group id.
    pub pgrp: i32,
    /// When the process started, in clock ticks since boot (with the pid, it identifies one
    /// process even after the pid is reused).
    pub start_time: u64,
}

impl ProcStat {
    /// Whether the process has exited but not been reaped (a zombie, or dead).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses one `stat` line: "pid (comm) state ppid pgrp …"; comm may contain anything, so the
/// fields are read after the last `)`.
fn parse(pid: i32, stat: &str) -> Option<ProcStat> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0 and field 22 (starttime) index 19.
    Some(ProcStat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Process `pid`'s stat, or `None` if it is gone or `/proc` is unavailable.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse(pid, &text)
}

/// Every process's stat, or `None` when `/proc` cannot be read. Processes that vanish while
/// they are listed are skipped.
pub fn processes() -> Option<impl Iterator<Item = ProcStat>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(entries.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
        stat(pid)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_spaces_and_parentheses_are_skipped() {
        let line = "42 (a (weird) name) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        let s = parse(42, line).unwrap();
        assert_eq!((s.state, s.ppid, s.pgrp, s.start_time), ('S', 1, 42, 12345));
        assert!(!s.is_dead());
    }

    #[test]
    fn this_process_is_listed() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert_eq!(s.pid, me);
        assert!(processes().unwrap().any(|p| p.pid == me));
    }
}
