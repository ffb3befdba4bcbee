//! `--ui json`: every dispatched action as one JSON object per line on stdout, in dispatch
//! order, and nothing else on stdout. Lines are flushed as soon as no more are waiting (see
//! [`write_batched`]): a lone action is on stdout at once, a burst goes out in large writes.
//! A failed write (a full disk) stops the writing, not the run, and is reported at the end.

use std::cell::RefCell;
use std::io::{BufWriter, Write};
use std::sync::mpsc;

use milo::pipeline::{PipelineAction, PipelineState};

use super::{Feed, View, WriteStatus, write_batched};

pub struct JsonView {
    feed: Feed<PipelineAction>,
}

impl JsonView {
    pub fn start(store: &milo::Store<PipelineState, PipelineAction>) -> Self {
        let feed = Feed::start(
            store,
            |a, _| Some(a.clone()),
            |rx: mpsc::Receiver<PipelineAction>| {
                let stdout = std::io::stdout();
                let out = RefCell::new(BufWriter::with_capacity(64 * 1024, stdout.lock()));
                // A closed stdout must not stop the run: after an error, keep draining.
                let status = RefCell::new(WriteStatus::default());
                write_batched(
                    rx,
                    |action| {
                        let mut status = status.borrow_mut();
                        if status.ok() {
                            let mut out = out.borrow_mut();
                            let written = serde_json::to_writer(&mut *out, &action)
                                .map_err(std::io::Error::from)
                                .and_then(|()| out.write_all(b"\n"));
                            status.record(written);
                        }
                    },
                    || {
                        let mut status = status.borrow_mut();
                        if status.ok() {
                            status.record(out.borrow_mut().flush());
                        }
                    },
                );
                let mut status = status.into_inner();
                if status.ok() {
                    status.record(out.into_inner().flush());
                }
                status.into_result()
            },
        );
        Self { feed }
    }
}

impl View for JsonView {
    fn finish(self: Box<Self>, _state: &PipelineState) -> std::io::Result<()> {
        self.feed.close()
    }
}
