//! Following a job's stdout or stderr file on the shared filesystem as it grows: the bytes
//! come out of an [`OutputReader`] while the job runs, and it ends once the job has ended
//! and the file has been read to its end.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use milo::executor::OutputReader;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// How often a file that did not grow is looked at again, at first and at most.
const FIRST: Duration = Duration::from_millis(25);
const MAX: Duration = Duration::from_millis(400);

/// Where the job is, for its followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Gate {
    /// Not started (or its start not reported yet): nothing is read, so that no line comes
    /// before the phase is shown running.
    Closed,
    /// Started: the file is read as it grows.
    Open,
    /// Over: the file is read to its end, then the reader ends.
    Done,
}

/// A reader of `path` that follows it from when `gate` opens until it is done (or its sender
/// goes away).
pub(crate) fn follow(path: PathBuf, mut gate: watch::Receiver<Gate>) -> OutputReader {
    let (reader, mut writer) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        while *gate.borrow_and_update() == Gate::Closed {
            if gate.changed().await.is_err() {
                break;
            }
        }
        let mut file: Option<std::fs::File> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let mut wait = FIRST;
        loop {
            // Read after looking at `done`: once it is true, this read gets everything.
            let finished = *gate.borrow_and_update() == Gate::Done;
            if file.is_none() {
                file = std::fs::File::open(&path).ok();
            }
            let mut grew = false;
            if let Some(f) = &mut file {
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            grew = true;
                            if writer.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            tracing::warn!("reading {}: {e}", path.display());
                            break;
                        }
                    }
                }
            }
            if finished {
                let _ = writer.shutdown().await;
                return;
            }
            wait = if grew { FIRST } else { (wait * 2).min(MAX) };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                changed = gate.changed() => {
                    if changed.is_err() {
                        // The job's handle is gone: one last read, then the end.
                        gate = watch::channel(Gate::Done).1;
                    }
                }
            }
        }
    });
    Box::new(reader)
}
