//! Text shared by the views: one line per finished phase, and the end-of-run summary (slowest
//! phases, every failed phase with its error and last log lines).

use std::fmt::Write;

use milo::format_duration;
use milo::pipeline::{PhaseStatus, PipelineState, Status};

/// How many of a failed phase's last log lines are shown under it.
pub const FAILED_TAIL: usize = 10;

/// A symbol for a phase status.
pub fn symbol(status: Status) -> &'static str {
    match status {
        Status::Pending => "·",
        Status::Running => "▶",
        Status::Completed => "✓",
        Status::Failed => "✗",
        Status::Skipped => "↷",
        Status::Retrying => "↻",
        Status::Cancelled => "⊘",
    }
}

/// Seconds as a compact duration.
pub fn secs(s: f64) -> String {
    format_duration(std::time::Duration::from_secs_f64(s.max(0.0)))
}

/// `✓ name  1.2s` plus `: error` for failures and skips.
pub fn finished_line(p: &PhaseStatus) -> String {
    let mut line = format!("{} {}  {}", symbol(p.status), p.name, secs(p.elapsed));
    if let Some(run) = &p.reused_from {
        let _ = write!(line, "  (from run {run})");
    }
    if p.attempt > 1 {
        let _ = write!(line, "  ({} attempts)", p.attempt);
    }
    if let (Status::Failed | Status::Skipped, Some(e)) = (p.status, &p.error) {
        let _ = write!(line, ": {e}");
    }
    line
}

/// The last lines a phase logged, indented under it.
pub fn tail(p: &PhaseStatus, n: usize) -> Vec<String> {
    let skip = p.logs.len().saturating_sub(n);
    p.logs.iter().skip(skip).map(|l| format!("    │ {}", l.line)).collect()
}

/// The end-of-run summary.
pub fn summary(state: &PipelineState) -> String {
    let mut out = String::new();
    let count = |s: Status| state.phases.iter().filter(|p| p.status == s).count();
    let mut counts = vec![format!("{} completed", count(Status::Completed))];
    for (s, name) in [
        (Status::Failed, "failed"),
        (Status::Skipped, "skipped"),
        (Status::Cancelled, "cancelled"),
        (Status::Pending, "not run"),
    ] {
        let n = count(s);
        if n > 0 {
            counts.push(format!("{n} {name}"));
        }
    }
    let _ = writeln!(
        out,
        "{} {} {} in {} — {}",
        symbol(state.status),
        state.name,
        state.status,
        secs(state.elapsed),
        counts.join(", ")
    );
    let mut ran: Vec<_> = state
        .phases
        .iter()
        .filter(|p| p.started_at.is_some() && p.reused_from.is_none())
        .collect();
    ran.sort_by(|a, b| b.elapsed.total_cmp(&a.elapsed).then_with(|| a.name.cmp(&b.name)));
    if ran.len() > 1 {
        let slowest: Vec<String> = ran
            .iter()
            .take(3)
            .map(|p| format!("{} {}", p.name, secs(p.elapsed)))
            .collect();
        let _ = writeln!(out, "  slowest: {}", slowest.join(" · "));
    }
    for p in state.phases_in_order().filter(|p| p.status == Status::Failed) {
        let _ = writeln!(out, "  {}", finished_line(p));
        for line in tail(p, FAILED_TAIL) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let (Status::Failed, Some(e)) = (state.status, &state.error)
        && !state.phases.iter().any(|p| p.status == Status::Failed)
    {
        let _ = writeln!(out, "  {e}");
    }
    out
}
