//! Text shared by the views: one line per finished phase, one line per matrix phase (its
//! instances counted by status), and the end-of-run summary (slowest phases, every failed
//! phase with its error and last log lines, each matrix phase as one line).
//!
//! Everything a phase controls (names, errors, log lines) goes through
//! [`Palette::clean`], so it cannot act on the terminal; the palette also colours symbols,
//! statuses and durations when colour is on.

use std::fmt::Write;

use milo::format_duration;
use milo::pipeline::{GroupCounts, PhaseStatus, PipelineState, Row, Status, Verdict};

use crate::color::{BOLD, DIM, Palette};

/// How many of a failed phase's last log lines are shown under it.
pub const FAILED_TAIL: usize = 10;

/// A symbol for a phase status.
pub fn symbol(status: Status) -> &'static str {
    match status {
        Status::Pending => "·",
        Status::Queued => "◷",
        Status::Running => "▶",
        Status::Completed => "✓",
        Status::Failed => "✗",
        Status::Skipped => "↷",
        Status::Retrying => "↻",
        Status::Cancelled => "⊘",
    }
}

/// The word for a status in counts: the status itself (`pending` for phases that never
/// started, as `milo show`, `milo replay` and the report say).
pub fn status_word(status: Status) -> &'static str {
    status.as_str()
}

/// Seconds as a compact duration.
pub fn secs(s: f64) -> String {
    format_duration(std::time::Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(std::time::Duration::MAX))
}

/// `✓ name  1.2s` plus `: error` for failures and skips.
pub fn finished_line(p: &PhaseStatus, paint: Palette) -> String {
    let mut line = format!(
        "{} {}  {}",
        paint.paint(Palette::status_style(p.status), symbol(p.status)),
        paint.clean(&p.name),
        paint.paint(DIM, secs(p.elapsed))
    );
    if let Some(run) = &p.reused_from {
        let _ = write!(line, "  {}", paint.paint(DIM, format!("(from run {run})")));
    }
    if let Some(verdict) = p.fresh() {
        let _ = write!(line, "  {}", paint.paint(DIM, format!("({})", fresh_word(verdict))));
    }
    if let Some(state) = p.service {
        let _ = write!(line, "  {}", paint.paint(DIM, format!("(service, {state})")));
    }
    if p.attempt > 1 {
        let _ = write!(line, "  ({} attempts)", p.attempt);
    }
    if let (Status::Failed | Status::Skipped, Some(e)) = (p.status, &p.error) {
        let _ = write!(
            line,
            ": {}",
            paint.paint(Palette::status_style(p.status), paint.clean(e))
        );
    }
    line
}

/// `up to date` or `restored`: what a phase that did not need to run is shown as.
pub fn fresh_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Restored => "restored",
        _ => "up to date",
    }
}

/// For an incremental phase: whether it ran and why, such as `ran: src/main.c changed`,
/// `up to date` or `restored: output build/app was deleted (restored from cache)`.
pub fn explanation(p: &PhaseStatus) -> Option<String> {
    let d = p.decision.as_ref()?;
    Some(match d.verdict {
        Verdict::Run if p.started_at.is_some() => format!("ran: {}", d.reason),
        Verdict::Run => format!("would run: {}", d.reason),
        Verdict::UpToDate => "up to date".to_owned(),
        Verdict::Restored => format!("restored: {}", d.reason),
    })
}

/// The last lines a phase logged, indented under it.
pub fn tail(p: &PhaseStatus, n: usize, paint: Palette) -> Vec<String> {
    let skip = p.logs.len().saturating_sub(n);
    p.logs
        .iter()
        .skip(skip)
        .map(|l| format!("    {} {}", paint.paint(DIM, "│"), paint.clean(&l.line)))
        .collect()
}

/// `✗ test  4 instances: 3 completed, 1 failed`: a matrix phase's instances as one line, with
/// the group's status ([`GroupCounts::status`]) and how many instances stand at each status.
pub fn group_line(name: &str, c: &GroupCounts, paint: Palette) -> String {
    let status = c.status();
    let counts: Vec<String> = c
        .nonzero()
        .into_iter()
        .map(|(n, s)| paint.paint(Palette::status_style(s), format!("{n} {}", status_word(s))))
        .collect();
    let instances = if c.total == 1 { "instance" } else { "instances" };
    format!(
        "{} {}  {} {instances}: {}",
        paint.paint(Palette::status_style(status), symbol(status)),
        paint.paint(BOLD, paint.clean(name)),
        c.total,
        counts.join(", ")
    )
}

/// The end-of-run summary: the run's status and counts, the slowest phases, the services,
/// every failed phase with its last lines, and each matrix phase as one [`group_line`] with
/// its failed, skipped and cancelled instances beneath it.
pub fn summary(state: &PipelineState, paint: Palette) -> String {
    let mut out = String::new();
    let count = |s: Status| state.phases.iter().filter(|p| p.status == s).count();
    let fresh = state.phases.iter().filter(|p| p.fresh().is_some()).count();
    let incremental = state.phases.iter().any(|p| p.decision.is_some());
    let mut counts = if !incremental {
        vec![format!("{} completed", count(Status::Completed))]
    } else {
        // `3 ran, 17 up to date (2 restored)`: up to date counts the restored ones too.
        let mut counts = vec![format!("{} ran", count(Status::Completed) - fresh)];
        if fresh > 0 {
            let restored = state
                .phases
                .iter()
                .filter(|p| p.fresh() == Some(Verdict::Restored))
                .count();
            let restored = if restored > 0 {
                format!(" ({restored} restored)")
            } else {
                String::new()
            };
            counts.push(format!("{fresh} up to date{restored}"));
        }
        counts
    };
    for s in [Status::Failed, Status::Skipped, Status::Cancelled, Status::Pending] {
        let n = count(s);
        if n > 0 {
            counts.push(paint.paint(Palette::status_style(s), format!("{n} {}", status_word(s))));
        }
    }
    let style = Palette::status_style(state.status);
    let _ = writeln!(
        out,
        "{} {} {} in {} — {}",
        paint.paint(style, symbol(state.status)),
        paint.paint(BOLD, paint.clean(&state.name)),
        paint.paint(style, state.status),
        secs(state.elapsed),
        counts.join(", ")
    );
    let mut ran: Vec<_> = state
        .phases
        .iter()
        .filter(|p| p.started_at.is_some() && p.reused_from.is_none() && p.fresh().is_none())
        .collect();
    ran.sort_by(|a, b| b.elapsed.total_cmp(&a.elapsed).then_with(|| a.name.cmp(&b.name)));
    if ran.len() > 1 {
        let slowest: Vec<String> = ran
            .iter()
            .take(3)
            .map(|p| format!("{} {}", paint.clean(&p.name), paint.paint(DIM, secs(p.elapsed))))
            .collect();
        let _ = writeln!(out, "  slowest: {}", slowest.join(" · "));
    }
    let services: Vec<String> = state
        .phases_in_order()
        .filter_map(|p| p.service.map(|s| format!("{} {s}", paint.clean(&p.name))))
        .collect();
    if !services.is_empty() {
        let _ = writeln!(out, "  services: {}", services.join(" · "));
    }
    for row in state.def().rows() {
        match row {
            Row::Phase(i) => {
                let Some(p) = state.phases.get(i).filter(|p| p.status == Status::Failed) else {
                    continue;
                };
                let _ = writeln!(out, "  {}", finished_line(p, paint));
                for line in tail(p, FAILED_TAIL, paint) {
                    let _ = writeln!(out, "  {line}");
                }
            }
            Row::Group { name, members } => {
                let _ = writeln!(out, "  {}", group_line(&name, &GroupCounts::of(state, &members), paint));
                // The instances that did not complete, each with its error (and last lines).
                for p in members.iter().filter_map(|&i| state.phases.get(i)) {
                    if !matches!(p.status, Status::Failed | Status::Skipped | Status::Cancelled) {
                        continue;
                    }
                    let _ = writeln!(out, "      {}", finished_line(p, paint));
                    if p.status == Status::Failed {
                        for line in tail(p, FAILED_TAIL, paint) {
                            let _ = writeln!(out, "      {line}");
                        }
                    }
                }
            }
        }
    }
    if let (Status::Failed, Some(e)) = (state.status, &state.error)
        && !state.phases.iter().any(|p| p.status == Status::Failed)
    {
        let _ = writeln!(out, "  {}", paint.clean(e));
    }
    out
}

#[cfg(test)]
mod tests {
    use milo::pipeline::{Phase, Pipeline, PipelineAction};

    use super::*;

    #[test]
    fn phases_that_never_started_are_counted_as_pending() {
        let ok = |_: &milo::pipeline::PhaseContext| Ok::<_, String>(());
        let p = Pipeline::new("p", [Phase::new("a", ok), Phase::new("b", ok).depends_on(["a"])]).unwrap();
        let r = p.build_reducer();
        let mut s = r.apply(None, &PipelineAction::Init {});
        for a in [
            PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
            PipelineAction::PhaseStart {
                name: "a".into(),
                attempt: 1,
                timestamp: 0.0,
            },
            PipelineAction::PhaseFailed {
                name: "a".into(),
                error: "boom".into(),
                timestamp: 1.0,
            },
            PipelineAction::PipelineFailed {
                error: "phase a failed".into(),
                timestamp: 1.0,
            },
        ] {
            s = r.apply(Some(&s), &a);
        }
        let text = summary(&s, Palette::plain());
        assert!(
            text.starts_with("✗ p failed in 1s — 0 completed, 1 failed, 1 pending\n"),
            "{text}"
        );
    }

    #[test]
    fn up_to_date_and_restored_phases_are_shown_and_counted_apart() {
        use milo::pipeline::{Decision, Verdict};
        let ok = |_: &milo::pipeline::PhaseContext| Ok::<_, String>(());
        let p = Pipeline::new(
            "p",
            [
                Phase::new("a", ok),
                Phase::new("b", ok),
                Phase::new("c", ok),
                Phase::new("d", ok),
            ],
        )
        .unwrap();
        let r = p.build_reducer();
        let decision = |verdict, reason: &str| Decision {
            key: "k".into(),
            verdict,
            reason: reason.into(),
        };
        let mut actions = vec![PipelineAction::PipelineStart {
            started_at: None,
            name: "p".into(),
            timestamp: 0.0,
        }];
        for (name, verdict, reason) in [
            ("a", Verdict::UpToDate, "up to date"),
            ("b", Verdict::Restored, "output x was deleted (restored from cache)"),
            ("c", Verdict::Run, "src/c.txt changed"),
        ] {
            actions.push(PipelineAction::PhaseDecision {
                name: name.into(),
                decision: decision(verdict, reason),
                timestamp: 0.1,
            });
            if verdict == Verdict::Run {
                actions.push(PipelineAction::PhaseStart {
                    name: name.into(),
                    attempt: 1,
                    timestamp: 0.1,
                });
            }
            actions.push(PipelineAction::PhaseComplete {
                name: name.into(),
                result: std::sync::Arc::new(serde_json::Value::Null),
                timestamp: 0.2,
                reused_from: None,
            });
        }
        // `d` is not incremental.
        actions.push(PipelineAction::PhaseStart {
            name: "d".into(),
            attempt: 1,
            timestamp: 0.1,
        });
        actions.push(PipelineAction::PhaseComplete {
            name: "d".into(),
            result: std::sync::Arc::new(serde_json::Value::Null),
            timestamp: 0.3,
            reused_from: None,
        });
        actions.push(PipelineAction::PipelineComplete { timestamp: 0.3 });
        let mut s = r.apply(None, &PipelineAction::Init {});
        for a in &actions {
            s = r.apply(Some(&s), a);
        }
        let text = summary(&s, Palette::plain());
        assert!(
            text.starts_with("✓ p completed in 300ms — 2 ran, 2 up to date (1 restored)\n"),
            "{text}"
        );
        let line = |n: &str| finished_line(s.phase(n).unwrap(), Palette::plain());
        assert!(line("a").ends_with("(up to date)"), "{}", line("a"));
        assert!(line("b").ends_with("(restored)"), "{}", line("b"));
        assert!(!line("c").contains("up to date"), "{}", line("c"));
        assert_eq!(
            explanation(s.phase("c").unwrap()).as_deref(),
            Some("ran: src/c.txt changed")
        );
        assert_eq!(explanation(s.phase("d").unwrap()), None);
        // The slowest phases are the ones that ran.
        assert!(!text.contains("slowest: a") && !text.contains(" b "), "{text}");
    }
}
