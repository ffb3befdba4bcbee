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

/// A reader of `path` that follows it until `done` turns true (or its sender goes away).
pub(crate) fn follow(path: PathBuf, mut done: watch::Receiver<bool>) -> OutputReader {
    let (reader, mut writer) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut file: Option<std::fs::File> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let mut wait = FIRST;
        loop {
            // Read after looking at `done`: once it is true, this read gets everything.
            let finished = *done.borrow_and_update();
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
                changed = done.changed() => {
                    if changed.is_err() {
                        // The job's handle is gone: one last read, then the end.
                        done = watch::channel(true).1;
                    }
                }
            }
        }
    });
    Box::new(reader)
}
