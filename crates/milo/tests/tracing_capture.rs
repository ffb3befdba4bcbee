//! `tracing` events emitted inside a phase become that phase's `@@PHASE_LOG` lines (this test
//! binary installs a global subscriber, so it holds this one test only).

use milo::capture::Stream;
use milo::pipeline::{Phase, PhaseContext, Pipeline, phase_log_layer};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn tracing_events_inside_phases_are_captured_as_their_log_lines() {
    let subscriber = tracing_subscriber::registry().with(phase_log_layer());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let pipeline = Pipeline::new(
        "traced",
        [
            Phase::new("sync", |_: &PhaseContext| {
                tracing::info!(files = 3, "scanned the tree");
                tracing::warn!("one file is empty");
                Ok::<_, String>(())
            }),
            Phase::new_async("async", |_cx: PhaseContext| async move {
                let span = tracing::info_span!("inner");
                let _e = span.enter();
                tracing::error!(code = 7, "nested event");
                Ok::<_, String>(())
            })
            .depends_on(["sync"])
            .parallel(true),
        ],
    )
    .unwrap()
    .capture_output(true);
    tracing::info!("outside any phase");
    let out = pipeline.run_blocking().unwrap();

    let lines = |name: &str| -> Vec<(Stream, String)> {
        out.state
            .phase(name)
            .unwrap()
            .logs
            .iter()
            .map(|l| (l.stream, l.line.to_string()))
            .collect()
    };
    assert_eq!(
        lines("sync"),
        [
            (Stream::Stdout, "INFO scanned the tree files=3".to_owned()),
            (Stream::Stderr, "WARN one file is empty".to_owned())
        ]
    );
    assert_eq!(
        lines("async"),
        [(Stream::Stderr, "ERROR nested event code=7".to_owned())]
    );
}
