//! `--ui json`: every dispatched action as one JSON object per line on stdout, in dispatch
//! order, each line flushed as soon as it is written, and nothing else on stdout.

use std::io::Write;
use std::sync::mpsc;

use milo::pipeline::{PipelineAction, PipelineState};

use super::{Feed, View};

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
                let mut out = stdout.lock();
                for action in rx.iter() {
                    let ok = serde_json::to_writer(&mut out, &action).is_ok()
                        && out.write_all(b"\n").is_ok()
                        && out.flush().is_ok();
                    if !ok {
                        // A closed stdout must not stop the run; keep draining.
                        for _ in rx.iter() {}
                        return;
                    }
                }
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
