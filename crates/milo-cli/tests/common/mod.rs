//! Helpers shared by the integration tests of the `milo` binary (`mod common;` in a test file).

/// Pids of live (non-zombie) processes other than this one whose command line contains
/// `needle`, found through [`milo::executor::procfs`].
pub fn processes_with(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Some(processes) = milo::executor::procfs::processes() else {
        return Vec::new();
    };
    processes
        // Zombies have exited; they only wait to be reaped by their parent.
        .filter(|p| p.pid != me && !p.is_dead())
        .filter(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
        })
        .map(|p| p.pid)
        .collect()
}
