//! `tracing` events emitted inside a phase become that phase's `@@PHASE_LOG` lines.
//!
//! Each attempt of an in-process handler runs inside a `milo.phase` span that names the
//! attempt's line sink. Install [`phase_log_layer`] in your subscriber to route events from
//! inside such spans (and their child spans) into the phase's log:
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! let subscriber = tracing_subscriber::registry().with(milo::pipeline::phase_log_layer());
//! let _guard = tracing::subscriber::set_default(subscriber);
//! ```
//!
//! Events at `WARN` and `ERROR` go to the `stderr` stream, the others to `stdout`. Events
//! outside any phase are left to the rest of the subscriber.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::phase::LineSink;
use crate::capture::Stream;

/// The name of the span each handler attempt runs in.
pub const PHASE_SPAN: &str = "milo.phase";

static SINKS: LazyLock<Mutex<HashMap<u64, LineSink>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Set while an event is being turned into a log line, so a dispatch that itself logs
    /// cannot recurse.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps a phase's sink reachable from its span; dropping it forgets the sink.
pub(crate) struct SinkGuard(Option<u64>);

impl Drop for SinkGuard {
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            SINKS.lock().remove(&key);
        }
    }
}

/// The span for one attempt of phase `name`, whose events go to `sink`.
pub(crate) fn phase_span(name: &str, attempt: u32, sink: &LineSink) -> (tracing::Span, SinkGuard) {
    if !tracing::enabled!(target: "milo", Level::INFO) {
        return (tracing::Span::none(), SinkGuard(None));
    }
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    // Registered before the span exists: the layer looks the sink up when the span is created.
    SINKS.lock().insert(key, sink.clone());
    let guard = SinkGuard(Some(key));
    let span = tracing::info_span!(target: "milo", "milo.phase", phase = name, attempt, milo_sink = key);
    (span, guard)
}

/// The layer that turns events inside phase spans into phase log lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseLogLayer;

/// A [`PhaseLogLayer`] to add to a `tracing_subscriber` registry.
pub fn phase_log_layer() -> PhaseLogLayer {
    PhaseLogLayer
}

struct PhaseSink(LineSink);

struct KeyVisitor(Option<u64>);

impl Visit for KeyVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "milo_sink" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S> Layer<S> for PhaseLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != PHASE_SPAN {
            return;
        }
        let mut key = KeyVisitor(None);
        attrs.record(&mut key);
        let Some(sink) = key.0.and_then(|k| SINKS.lock().get(&k).cloned()) else {
            return;
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(PhaseSink(sink));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if FORWARDING.with(Cell::get) {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else { return };
        for span in scope {
            let sink = span.extensions().get::<PhaseSink>().map(|s| s.0.clone());
            if let Some(sink) = sink {
                let mut v = LineVisitor {
                    message: String::new(),
                    fields: String::new(),
                };
                event.record(&mut v);
                let level = *event.metadata().level();
                let stream = if level <= Level::WARN {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                };
                let line = format!("{level} {}{}", v.message, v.fields);
                FORWARDING.with(|f| f.set(true));
                sink(stream, line);
                FORWARDING.with(|f| f.set(false));
                return;
            }
        }
    }
}
