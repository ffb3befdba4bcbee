//! The views of a run. Every view is a subscriber of the one store and none slows the
//! pipeline: event views copy what they need into a channel inside the store listener and do
//! their formatting and writing on their own thread; the progress view only samples the
//! newest state.

pub mod json;
pub mod plain;
pub mod progress;
pub mod summary;

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use milo::Subscription;
use milo::pipeline::{PipelineAction, PipelineState};

/// A running view; `finish` is called once with the final state.
pub trait View: Send {
    /// Flushes everything and prints the view's ending (e.g. the summary); returns the first
    /// error writing the view's output (a closed pipe, as in `milo run --ui json | head`, is
    /// not one), so `milo run` can report it.
    fn finish(self: Box<Self>, state: &PipelineState) -> std::io::Result<()>;
}

/// The first write error worth reporting: a closed pipe is the reader's choice, not an error.
#[derive(Default)]
pub struct WriteStatus {
    error: Option<std::io::Error>,
    closed: bool,
}

impl WriteStatus {
    /// Whether writing should go on (nothing failed yet).
    pub fn ok(&self) -> bool {
        self.error.is_none() && !self.closed
    }

    /// Records the outcome of a write.
    pub fn record(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
            }
        }
    }

    /// The first error, if any.
    pub fn into_result(self) -> std::io::Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

/// How long a writer waits before looking for more items while a burst is going on.
pub const BATCH_WAIT: Duration = Duration::from_millis(1);

/// Most items written between two flushes.
const MAX_BATCH: usize = 4096;

/// Runs `write` on every item of `rx` and `flush` whenever no more items are waiting (and at
/// least every [`MAX_BATCH`] items), until the channel closes.
///
/// A lone item is written and flushed at once. During a burst (more than one item was waiting)
/// the writer sleeps [`BATCH_WAIT`] before looking again instead of blocking on the channel, so
/// the store's dispatch, which sends the items, does not pay a thread wake-up per item, and the
/// output goes out in a few large writes instead of one per line: a command printing a million
/// lines costs a few thousand wake-ups and writes, not a million. A line is delayed by at most
/// [`BATCH_WAIT`].
pub fn write_batched<T>(rx: mpsc::Receiver<T>, mut write: impl FnMut(T), mut flush: impl FnMut()) {
    while let Ok(first) = rx.recv() {
        write(first);
        let mut n = 1;
        let mut burst = false;
        while let Ok(item) = rx.try_recv() {
            write(item);
            burst = true;
            n += 1;
            if n == MAX_BATCH {
                flush();
                n = 0;
            }
        }
        flush();
        if burst {
            std::thread::sleep(BATCH_WAIT);
        }
    }
}

/// A store subscription feeding a writer thread through a channel.
pub struct Feed<T> {
    subscription: Subscription,
    tx: mpsc::Sender<T>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl<T: Send + 'static> Feed<T> {
    /// Subscribes `pick` (which turns an action and the state after it into an item, or
    /// nothing) and runs `write` on a thread over the items; `write` returns its first write
    /// error, which [`close`](Self::close) hands back.
    pub fn start<P, W>(store: &milo::Store<PipelineState, PipelineAction>, pick: P, write: W) -> Self
    where
        P: Fn(&PipelineAction, &Arc<PipelineState>) -> Option<T> + Send + Sync + 'static,
        W: FnOnce(mpsc::Receiver<T>) -> std::io::Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("milo-view".into())
            .spawn(move || write(rx))
            .ok();
        let sender = tx.clone();
        let subscription = store.subscribe(move |a, s| {
            if let Some(item) = pick(a, s) {
                let _ = sender.send(item);
            }
        });
        Self {
            subscription,
            tx,
            thread,
        }
    }

    /// Stops listening, waits until everything received has been written, and returns the
    /// writer's first error.
    pub fn close(self) -> std::io::Result<()> {
        drop(self.subscription);
        drop(self.tx);
        match self.thread.map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the view's writer thread panicked")),
            None => Err(std::io::Error::other("the view's writer thread could not be started")),
        }
    }
}
