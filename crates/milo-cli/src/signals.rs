//! Ctrl-C, SIGTERM and SIGHUP during a run: the first asks the run to stop (running phases'
//! processes get SIGTERM, then SIGKILL after the grace period); a second Ctrl-C kills every
//! process the phases started at once, wherever it went.

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

/// SIGKILLs everything the phases started: every descendant of milo (escaped ones are
/// re-parented to it, a subreaper) and every phase cgroup.
pub fn kill_phase_groups() {
    milo::executor::contain::kill_descendants();
}
