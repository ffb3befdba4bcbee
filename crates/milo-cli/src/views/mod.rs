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

use milo::Subscription;
use milo::pipeline::{PipelineAction, PipelineState};

/// A running view; `finish` is called once with the final state.
pub trait View: Send {
    /// Flushes everything and prints the view's ending (e.g. the summary).
    fn finish(self: Box<Self>, state: &PipelineState);
}

/// A store subscription feeding a writer thread through a channel.
pub struct Feed<T> {
    subscription: Subscription,
    tx: mpsc::Sender<T>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Feed<T> {
    /// Subscribes `pick` (which turns an action and the state after it into an item, or
    /// nothing) and runs `write` on a thread over the items.
    pub fn start<P, W>(store: &milo::Store<PipelineState, PipelineAction>, pick: P, write: W) -> Self
    where
        P: Fn(&PipelineAction, &Arc<PipelineState>) -> Option<T> + Send + Sync + 'static,
        W: FnOnce(mpsc::Receiver<T>) + Send + 'static,
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

    /// Stops listening and waits until everything received has been written.
    pub fn close(self) {
        drop(self.subscription);
        drop(self.tx);
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }
}
