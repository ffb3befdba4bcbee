//! `--ui json`: every dispatched action as one JSON object per line on stdout, in dispatch
//! order, and nothing else on stdout. Lines are flushed as soon as no more are waiting (see
//! [`write_batched`]): a lone action is on stdout at once, a burst goes out in large writes.
//! A failed write (a full disk) stops the writing, not the run, and is reported at the end.
//!
//! A pipeline with matrix phases says which instances make each one: its `@@PIPELINE_START`
//! payload carries `"groups": {"test": ["test[python=3.12]", …]}` (instances in declaration
//! order); every other line is the action as dispatched.

use std::cell::RefCell;
use std::io::{BufWriter, Write};
use std::sync::mpsc;

use milo::pipeline::{PipelineAction, PipelineState, Row};

use super::{Feed, View, WriteStatus, write_batched};

pub struct JsonView {
    feed: Feed<Line>,
}

/// One line of the stream: an action, or the pipeline's start with its groups.
enum Line {
    Action(PipelineAction),
    /// A line already written out.
    Text(String),
}

/// `@@PIPELINE_START` with the pipeline's groups, when it has any.
fn with_groups(action: &PipelineAction, state: &PipelineState) -> Option<String> {
    let PipelineAction::PipelineStart { .. } = action else {
        return None;
    };
    let def = state.def();
    let groups: serde_json::Map<String, serde_json::Value> = def
        .rows()
        .into_iter()
        .filter_map(|row| match row {
            Row::Group { name, members } => Some((
                name.to_string(),
                members
                    .iter()
                    .filter_map(|&i| def.phases.get(i))
                    .map(|p| serde_json::Value::from(&*p.name))
                    .collect(),
            )),
            Row::Phase(_) => None,
        })
        .collect();
    if groups.is_empty() {
        return None;
    }
    let mut line = serde_json::to_value(action).ok()?;
    let payload = line.get_mut("payload")?;
    payload.as_object_mut()?.insert("groups".into(), groups.into());
    // `type` first, as on every other line.
    Some(format!(r#"{{"type":"@@PIPELINE_START","payload":{payload}}}"#))
}

impl JsonView {
    pub fn start(store: &milo::Store<PipelineState, PipelineAction>) -> Self {
        let feed = Feed::start(
            store,
            |a, s| {
                Some(match with_groups(a, s) {
                    Some(text) => Line::Text(text),
                    None => Line::Action(a.clone()),
                })
            },
            |rx: mpsc::Receiver<Line>| {
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
                            let written = match &action {
                                Line::Action(a) => serde_json::to_writer(&mut *out, a),
                                Line::Text(text) => out.write_all(text.as_bytes()).map_err(serde_json::Error::io),
                            }
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
