//! Scheduling quality: milo's makespan on DAGs of sleeping phases, against the DAG's critical
//! path (the best any scheduler can do with enough workers) and against running ready phases
//! in waves, as the original does (each wave waits for its slowest phase).
//!
//! `cargo run --release -p milo --example scheduling` prints a Markdown table (BENCHMARKS.md).

// Printing the table is this example's job.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::time::Duration;

use milo::pipeline::{Phase, PhaseContext, Pipeline, Status};

/// A phase: name, seconds, dependencies.
type Spec = (&'static str, f64, &'static [&'static str]);

fn dags() -> Vec<(&'static str, Vec<Spec>)> {
    vec![
        (
            "issue example: A 0.1, B 0.5 roots; C 0.4 after A; D 0.05 after B, C",
            vec![
                ("A", 0.1, &[]),
                ("B", 0.5, &[]),
                ("C", 0.4, &["A"]),
                ("D", 0.05, &["B", "C"]),
            ],
        ),
        (
            "two chains, long and short steps out of phase",
            vec![
                ("x1", 0.3, &[]),
                ("x2", 0.05, &["x1"]),
                ("x3", 0.3, &["x2"]),
                ("y1", 0.05, &[]),
                ("y2", 0.3, &["y1"]),
                ("y3", 0.05, &["y2"]),
            ],
        ),
        (
            "fan-out with a straggler; follow-ups of the fast branches",
            vec![
                ("root", 0.05, &[]),
                ("slow", 0.4, &["root"]),
                ("a", 0.1, &["root"]),
                ("b", 0.1, &["root"]),
                ("a2", 0.2, &["a"]),
                ("b2", 0.2, &["b"]),
                ("end", 0.05, &["slow", "a2", "b2"]),
            ],
        ),
        (
            "build/test matrix: compile 3 targets, test each as soon as it is built",
            vec![
                ("fetch", 0.05, &[]),
                ("build-linux", 0.3, &["fetch"]),
                ("build-mac", 0.15, &["fetch"]),
                ("build-win", 0.2, &["fetch"]),
                ("test-linux", 0.1, &["build-linux"]),
                ("test-mac", 0.3, &["build-mac"]),
                ("test-win", 0.2, &["build-win"]),
                ("release", 0.05, &["test-linux", "test-mac", "test-win"]),
            ],
        ),
    ]
}

fn pipeline(specs: &[Spec]) -> Result<Pipeline, milo::pipeline::PipelineError> {
    let phases = specs.iter().map(|&(name, secs, deps)| {
        Phase::new_async(name, move |_: PhaseContext| async move {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            Ok::<_, String>(())
        })
        .depends_on(deps.iter().copied())
        .parallel(true)
    });
    Ok(Pipeline::new("dag", phases)?.jobs(64))
}

/// The longest path through the DAG, by duration.
fn critical_path(specs: &[Spec]) -> f64 {
    let mut finish: HashMap<&str, f64> = HashMap::new();
    // Specs list dependencies before dependents.
    for &(name, secs, deps) in specs {
        let start = deps.iter().map(|d| finish[d]).fold(0.0, f64::max);
        finish.insert(name, start + secs);
    }
    finish.values().copied().fold(0.0, f64::max)
}

/// Waves: every phase of a level starts together and the next level waits for the slowest.
fn waves(specs: &[Spec]) -> f64 {
    let mut level: HashMap<&str, usize> = HashMap::new();
    let mut longest: Vec<f64> = Vec::new();
    for &(name, secs, deps) in specs {
        let l = deps.iter().map(|d| level[d] + 1).max().unwrap_or(0);
        level.insert(name, l);
        if longest.len() <= l {
            longest.resize(l + 1, 0.0);
        }
        longest[l] = longest[l].max(secs);
    }
    longest.iter().sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("| DAG | critical path | waves | milo | milo / critical path | waves / milo |");
    println!("|---|---|---|---|---|---|");
    for (title, specs) in dags() {
        let critical = critical_path(&specs);
        let waves = waves(&specs);
        // Best of three runs, to keep scheduler noise of a loaded machine out.
        let mut milo = f64::INFINITY;
        for _ in 0..3 {
            let out = pipeline(&specs)?.run_blocking()?;
            if out.state.status != Status::Completed {
                return Err(format!("the run ended {}", out.state.status).into());
            }
            milo = milo.min(out.state.elapsed);
        }
        println!(
            "| {title} | {critical:.3} s | {waves:.3} s | {milo:.3} s | {:.3}× | {:.2}× |",
            milo / critical,
            waves / milo
        );
    }
    Ok(())
}
