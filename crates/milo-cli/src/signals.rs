//! Ctrl-C, SIGTERM and SIGHUP during a run: the first asks the run to stop (running phases'
//! process groups get SIGTERM, then SIGKILL after the grace period); a second Ctrl-C kills
//! every phase's process group at once.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpid};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Watches for signals until `done` is cancelled.
pub async fn watch(stop: CancellationToken, done: CancellationToken) {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("could not install signal handlers; Ctrl-C will not stop phases cleanly");
        return;
    };
    loop {
        let second = stop.is_cancelled();
        tokio::select! {
            _ = done.cancelled() => return,
            _ = int.recv() => {
                if second { kill_phase_groups(); }
                stop.cancel();
            }
            _ = term.recv() => stop.cancel(),
            _ = hup.recv() => stop.cancel(),
        }
    }
}

/// SIGKILLs the process group of every direct child of milo (each command phase leads its own
/// group).
pub fn kill_phase_groups() {
    let me = getpid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": parse after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (_, ppid, pgrp) = (fields.next(), fields.next(), fields.next());
        if ppid.and_then(|p| p.parse::<i32>().ok()) == Some(me) && pgrp.and_then(|p| p.parse::<i32>().ok()) == Some(pid)
        {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
