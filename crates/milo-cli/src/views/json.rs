//! `--ui json`: every dispatched action as one JSON object per line on stdout, in dispatch
//! order, and nothing else on stdout. Lines are flushed as soon as no more are waiting (see
//! [`write_batched`]): a lone action is on stdout at once, a burst goes out in large writes.

use std::io::{BufWriter, Write};
use std::sync::mpsc;

use milo::pipeline::{PipelineAction, PipelineState};

use super::{Feed, View, write_batched};

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
                let out = std::cell::RefCell::new(BufWriter::with_capacity(64 * 1024, stdout.lock()));
                // A closed stdout must not stop the run: after an error, keep draining.
                let ok = std::cell::Cell::new(true);
                write_batched(
                    rx,
                    |action| {
                        if ok.get() {
                            let mut out = out.borrow_mut();
                            ok.set(serde_json::to_writer(&mut *out, &action).is_ok() && out.write_all(b"\n").is_ok());
                        }
                    },
                    || {
                        if ok.get() {
                            ok.set(out.borrow_mut().flush().is_ok());
                        }
                    },
                );
            },
        );
        Self { feed }
    }
}

impl View for JsonView {
    fn finish(self: Box<Self>, _state: &PipelineState) {
        self.feed.close();
    }
}
