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
    let Some(processes) = milo::executor::procfs::processes() else {
        return;
    };
    for p in processes.filter(|p| p.ppid == me && p.pgrp == p.pid) {
        let _ = killpg(Pid::from_raw(p.pid), Signal::SIGKILL);
    }
}
