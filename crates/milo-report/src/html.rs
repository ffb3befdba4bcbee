//! [`render_html`]: one self-contained HTML page for a run — inline CSS, SVG and a little
//! vanilla JavaScript, nothing fetched from the network.
//!
//! The page holds, in order:
//! * a header: pipeline, run, status, elapsed time, parameters, for a `milo watch` cycle
//!   what triggered it (`<p class="trigger">`, up to 20 changed paths), error;
//! * the Gantt chart (`<svg class="gantt">`): one row per phase in execution order, one
//!   `<rect class="bar" data-phase=… data-attempt=…>` per attempt coloured by its status
//!   (an incremental phase that did not run: one thin `bar fresh` of class `s-up_to_date` or
//!   `s-restored` where it completed, labelled `up to date` or `restored`; the reason of
//!   every incremental phase is in its tooltip and `data-reason`),
//!   dashed lines for the waits between retries, the critical path outlined (`critical`
//!   class), a time axis; hovering a bar shows phase, attempt, start, duration and error
//!   (a JavaScript tooltip, or the SVG `<title>` without JavaScript). The chart's
//!   `data-x0` and `data-px-per-sec` give the mapping from seconds to `x`;
//! * the dependency graph (`<svg class="graph">`), parallel phases dashed and marked `∥`;
//! * the phase table: status (`up to date` / `restored` for the phases that did not run),
//!   the reason of incremental phases, attempts, duration, share of the run, and with
//!   history the median duration and a sparkline of earlier runs; a matrix phase's
//!   instances under one `<tr class="group" data-group=…>` with the group's status and
//!   counts (`4 instances: 3 completed, 1 failed`), each instance a `tr.member`, indented;
//! * each phase's logs in a `<details>`, stderr lines marked.
//!
//! Every piece of text is escaped ([`escape`]); no data is placed inside the `<script>`, so a
//! log line such as `</script><script>…` stays text. The script ends by setting
//! `data-bars` and `data-drawn` (bars laid out with a width) and `data-ok="1"` on `<body>`,
//! which lets a headless browser prove it ran cleanly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use milo::capture::Stream;
use milo::pipeline::Row;

use crate::model::{ReportPhase, ReportRun};

/// Width of the Gantt chart, px.
pub const GANTT_WIDTH: f64 = 1100.0;
/// Where the time axis starts in the Gantt chart (left of it: the phase names), px.
pub const GANTT_X0: f64 = 210.0;
const GANTT_RIGHT: f64 = 20.0;
const GANTT_TOP: f64 = 34.0;
const ROW_H: f64 = 26.0;
const BAR_H: f64 = 16.0;
const LABEL_CHARS: usize = 27;

const NODE_W: f64 = 156.0;
const NODE_H: f64 = 30.0;
const COL_W: f64 = 200.0;
const NODE_ROW: f64 = 44.0;
const NODE_CHARS: usize = 19;

/// Lines of one phase's log put in the page at most (half from the start, half from the
/// end); `milo logs` prints them all.
pub const MAX_LOG_LINES: usize = 20_000;

/// Escapes `s` for HTML text and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab are not allowed in HTML text.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A duration for people (`850ms`, `2.5s`, `3m20s`).
pub fn format_secs(secs: f64) -> String {
    // Saturating: a damaged record never panics a report.
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    milo::format_duration(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// A CSS class for a status: known statuses as themselves, anything else `other`.
fn status_class(status: &str) -> &'static str {
    match status {
        "completed" => "completed",
        "failed" => "failed",
        "retried" => "retried",
        "retrying" => "retrying",
        "skipped" => "skipped",
        "cancelled" => "cancelled",
        "running" => "running",
        "pending" => "pending",
        "interrupted" => "interrupted",
        "up_to_date" => "up_to_date",
        "restored" => "restored",
        _ => "other",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A number for an SVG attribute.
fn num(x: f64) -> String {
    let x = if x.is_finite() { x } else { 0.0 };
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// A tick step giving about `target` ticks over `span` seconds (1, 2 or 5 × 10ⁿ).
fn tick_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow)
}

/// The CSS class of a phase's state: its verdict when it did not run, else its status.
fn phase_class(p: &ReportPhase) -> &'static str {
    status_class(p.fresh().unwrap_or(&p.status))
}

/// How a segment's state reads: `up to date` / `restored` for the one of a phase that did not
/// run, else its status.
fn segment_label(status: &str) -> &str {
    milo_history::cli::state_label(status, Some(status))
}

/// The report page of `run`.
pub fn render_html(run: &ReportRun) -> String {
    let critical = run.critical_path();
    let mut on_path = vec![false; run.phases.len()];
    for &i in &critical {
        on_path[i] = true;
    }
    let title = match run.run {
        Some(id) => format!("{} — run {id}", run.pipeline),
        None => run.pipeline.clone(),
    };
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(h, "<title>milo report: {}</title>", escape(&title));
    let _ = writeln!(h, "<style>{CSS}</style>\n</head>");
    let _ = writeln!(
        h,
        "<body data-pipeline=\"{}\" data-status=\"{}\">",
        escape(&run.pipeline),
        escape(&run.status)
    );
    header(&mut h, run, &title, &critical);
    h.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    gantt(&mut h, run, &on_path);
    legend(&mut h, run);
    h.push_str("</section>\n");
    h.push_str("<section id=\"graph\">\n<h2>Dependencies</h2>\n");
    graph(&mut h, run, &critical);
    h.push_str("</section>\n");
    h.push_str("<section id=\"phases\">\n<h2>Phases</h2>\n");
    table(&mut h, run, &on_path);
    h.push_str("</section>\n");
    h.push_str("<section id=\"logs\">\n<h2>Logs</h2>\n");
    logs(&mut h, run);
    h.push_str("</section>\n");
    h.push_str("<div id=\"tip\" class=\"tip\" hidden></div>\n");
    let _ = writeln!(h, "<script>{JS}</script>\n</body>\n</html>");
    h
}

fn header(h: &mut String, run: &ReportRun, title: &str, critical: &[usize]) {
    let _ = writeln!(
        h,
        "<header>\n<h1>{} <span class=\"badge s-{}\">{}</span></h1>",
        escape(title),
        status_class(&run.status),
        escape(&run.status)
    );
    h.push_str("<p class=\"summary\">");
    let _ = write!(h, "elapsed <b>{}</b>", format_secs(run.elapsed));
    if let Some(t) = run.started_at {
        let _ = write!(h, " · started {}", escape(&milo_history::cli::timestamp(t)));
    }
    let attempts: u32 = run.phases.iter().map(|p| p.attempts).sum();
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let _ = write!(
        h,
        " · {} · {}",
        plural(run.phases.len(), "phase"),
        plural(attempts as usize, "attempt")
    );
    if let Some(counts) = run.decision_summary() {
        let _ = write!(h, " · <span class=\"decisions\">{}</span>", escape(&counts));
    }
    if !critical.is_empty() {
        let names: Vec<&str> = critical.iter().map(|&i| run.phases[i].name.as_str()).collect();
        let _ = write!(h, " · critical path: {}", escape(&names.join(" → ")));
    }
    h.push_str("</p>\n");
    if !run.params.is_empty() {
        h.push_str("<p class=\"params\">parameters:");
        for (name, value) in &run.params {
            let _ = write!(h, " <code>{}={}</code>", escape(name), escape(value));
        }
        h.push_str("</p>\n");
    }
    if let Some(t) = &run.trigger {
        trigger(h, t);
    }
    if let Some(e) = &run.error {
        let _ = writeln!(h, "<pre class=\"error\">{}</pre>", escape(e));
    }
    h.push_str("</header>\n");
}

/// How many changed paths the report names before `(+N more)`: a page has room for more than
/// `milo show`'s line.
const SHOWN_TRIGGER_PATHS: usize = 20;

/// `trigger: watch cycle 3 — src/a.c, src/b.h changed`, each path in `<code>`.
fn trigger(h: &mut String, t: &milo_history::Trigger) {
    let _ = write!(h, "<p class=\"trigger\">trigger: watch cycle {}", t.watch_cycle);
    if let Some(list) = t.changed_list(SHOWN_TRIGGER_PATHS, |p| format!("<code>{}</code>", escape(p))) {
        let _ = write!(h, " — {list} changed");
    }
    h.push_str("</p>\n");
}

fn gantt(h: &mut String, run: &ReportRun, on_path: &[bool]) {
    let span = run.span();
    let scale = (GANTT_WIDTH - GANTT_X0 - GANTT_RIGHT) / span;
    let x_of = |t: f64| GANTT_X0 + t.clamp(0.0, span) * scale;
    let rows = run.phases.len().max(1) as f64;
    let height = GANTT_TOP + rows * ROW_H + 8.0;
    let _ = writeln!(
        h,
        "<div class=\"scroll\"><svg class=\"gantt\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" data-x0=\"{x0}\" data-px-per-sec=\"{sc}\" data-span=\"{sp}\" role=\"img\" aria-label=\"Gantt chart of the run\">",
        w = num(GANTT_WIDTH),
        ht = num(height),
        x0 = num(GANTT_X0),
        sc = scale,
        sp = span,
    );
    // Time axis.
    let step = tick_step(span, 10.0);
    let mut t = 0.0;
    let mut n = 0;
    h.push_str("<g class=\"axis\">");
    while t <= span + step * 1e-9 && n <= 100 {
        let x = num(x_of(t));
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{x}\" x2=\"{x}\" y1=\"{}\" y2=\"{}\"/><text class=\"tick\" x=\"{x}\" y=\"{}\">{}</text>",
            num(GANTT_TOP - 6.0),
            num(height - 4.0),
            num(GANTT_TOP - 12.0),
            if n == 0 {
                "0".to_owned()
            } else {
                escape(&format_secs(t))
            },
        );
        n += 1;
        t = step * f64::from(n);
    }
    h.push_str("</g>\n");
    for (i, p) in run.phases.iter().enumerate() {
        let y = GANTT_TOP + i as f64 * ROW_H;
        let crit = if on_path[i] { " critical" } else { "" };
        let _ = write!(
            h,
            "<g class=\"row{crit}\" data-phase=\"{}\" data-row=\"{i}\"><rect class=\"row-bg{}\" x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            escape(&p.name),
            if i % 2 == 1 { " odd" } else { "" },
            num(y),
            num(GANTT_WIDTH),
            num(ROW_H),
        );
        let _ = write!(
            h,
            "<text class=\"label\" x=\"{}\" y=\"{}\"><title>{}</title>{}{}</text>",
            num(GANTT_X0 - 10.0),
            num(y + ROW_H / 2.0 + 4.0),
            escape(&p.name),
            if on_path[i] { "★ " } else { "" },
            escape(&truncate(&p.name, LABEL_CHARS)),
        );
        let bar_y = y + (ROW_H - BAR_H) / 2.0;
        for (k, s) in p.segments.iter().enumerate() {
            if let Some(next) = p.segments.get(k + 1)
                && next.start > s.end
            {
                let _ = write!(
                    h,
                    "<line class=\"wait\" data-phase=\"{}\" x1=\"{}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\"><title>waiting {} before attempt {}</title></line>",
                    escape(&p.name),
                    num(x_of(s.end)),
                    num(x_of(next.start)),
                    escape(&format_secs(next.start - s.end)),
                    next.attempt,
                    yy = num(y + ROW_H / 2.0),
                );
            }
            let x = x_of(s.start);
            let width = (x_of(s.end) - x).max(0.0);
            let fresh = matches!(s.status.as_str(), "up_to_date" | "restored");
            let mut tip = if fresh {
                format!(
                    "{} · {}\nat +{}",
                    p.name,
                    segment_label(&s.status),
                    format_secs(s.start)
                )
            } else {
                format!(
                    "{} · attempt {} · {}\nstart +{} · duration {}",
                    p.name,
                    s.attempt,
                    s.status,
                    format_secs(s.start),
                    format_secs(s.duration())
                )
            };
            if let Some(r) = &p.reason {
                let _ = write!(tip, "\n{r}");
            }
            if let Some(e) = &s.error {
                let _ = write!(tip, "\n{e}");
            }
            // Only incremental phases have these attributes: the others' bars stay as they were.
            let mut extra = String::new();
            if fresh {
                let _ = write!(extra, " data-label=\"{}\"", escape(segment_label(&s.status)));
            }
            if let Some(r) = &p.reason {
                let _ = write!(extra, " data-reason=\"{}\"", escape(r));
            }
            let _ = write!(
                h,
                "<rect class=\"bar{} s-{}{crit}\" data-phase=\"{}\" data-attempt=\"{}\" data-status=\"{}\" data-start=\"{}\" data-end=\"{}\" data-error=\"{}\"{extra} x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\"><title>{}</title></rect>",
                if fresh { " fresh" } else { "" },
                status_class(&s.status),
                escape(&p.name),
                s.attempt,
                escape(&s.status),
                s.start,
                s.end,
                escape(s.error.as_deref().unwrap_or("")),
                num(x),
                num(bar_y),
                num(width.max(if fresh { 3.0 } else { 1.0 })),
                num(BAR_H),
                escape(&tip),
            );
            if fresh {
                let _ = write!(
                    h,
                    "<text class=\"note fresh-label\" data-phase=\"{}\" x=\"{}\" y=\"{}\">{}</text>",
                    escape(&p.name),
                    num((x + 7.0).min(GANTT_WIDTH - GANTT_RIGHT - 60.0)),
                    num(y + ROW_H / 2.0 + 4.0),
                    escape(segment_label(&s.status)),
                );
            }
        }
        if p.segments.is_empty() {
            let note = match &p.reused_from {
                Some(from) => format!("reused from run {from}"),
                None => p.status.clone(),
            };
            let _ = write!(
                h,
                "<text class=\"note\" x=\"{}\" y=\"{}\">{}</text>",
                num(GANTT_X0 + 4.0),
                num(y + ROW_H / 2.0 + 4.0),
                escape(&note)
            );
        }
        h.push_str("</g>\n");
    }
    h.push_str("</svg></div>\n");
}

fn legend(h: &mut String, run: &ReportRun) {
    h.push_str("<p class=\"legend\">");
    for s in [
        "completed",
        "failed",
        "retried",
        "skipped",
        "cancelled",
        "running",
        "interrupted",
    ] {
        let label = if s == "retried" { "failed attempt (retried)" } else { s };
        let _ = write!(h, "<span><i class=\"sw s-{s}\"></i>{label}</span>");
    }
    if run.phases.iter().any(|p| p.fresh().is_some()) {
        h.push_str("<span><i class=\"sw s-up_to_date\"></i>up to date (did not run)</span><span><i class=\"sw s-restored\"></i>restored from the cache</span>");
    }
    h.push_str("<span><i class=\"sw crit\"></i>critical path ★</span><span><i class=\"sw wait\"></i>wait before retry</span></p>\n");
}

fn graph(h: &mut String, run: &ReportRun, critical: &[usize]) {
    if run.phases.is_empty() {
        h.push_str("<p class=\"muted\">No phases.</p>\n");
        return;
    }
    let index: HashMap<&str, usize> = run
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    // Column = longest chain of dependencies before the phase (phases are in execution
    // order, so dependencies come first; a guard keeps odd input finite).
    let mut level = vec![0usize; run.phases.len()];
    for _ in 0..2 {
        for (i, p) in run.phases.iter().enumerate() {
            level[i] = p
                .depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()))
                .filter(|&&j| j != i)
                .map(|&j| level[j] + 1)
                .max()
                .unwrap_or(0)
                .min(run.phases.len());
        }
    }
    let columns = level.iter().max().map_or(1, |m| m + 1);
    let mut row = vec![0usize; run.phases.len()];
    let mut per_col = vec![0usize; columns];
    for (i, &l) in level.iter().enumerate() {
        row[i] = per_col[l];
        per_col[l] += 1;
    }
    let rows = per_col.iter().copied().max().unwrap_or(1);
    let width = 20.0 + columns as f64 * COL_W;
    let height = 20.0 + rows as f64 * NODE_ROW;
    let pos = |i: usize| (10.0 + level[i] as f64 * COL_W, 10.0 + row[i] as f64 * NODE_ROW);
    let on_path = |a: usize, b: usize| critical.windows(2).any(|w| w[0] == a && w[1] == b);
    let _ = writeln!(
        h,
        "<div class=\"scroll\"><svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"Dependency graph\">",
        w = num(width),
        ht = num(height)
    );
    h.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"9\" markerHeight=\"9\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"arrowhead\"/></marker></defs>\n");
    for (i, p) in run.phases.iter().enumerate() {
        for d in &p.depends_on {
            let Some(&j) = index.get(d.as_str()) else { continue };
            let (x1, y1) = pos(j);
            let (x2, y2) = pos(i);
            let (x1, y1) = (x1 + NODE_W, y1 + NODE_H / 2.0);
            let y2 = y2 + NODE_H / 2.0;
            let mid = (x1 + x2) / 2.0;
            let _ = writeln!(
                h,
                "<path class=\"edge{}\" data-from=\"{}\" data-to=\"{}\" d=\"M{} {} C{} {} {} {} {} {}\" marker-end=\"url(#arrow)\"/>",
                if on_path(j, i) { " critical" } else { "" },
                escape(d),
                escape(&p.name),
                num(x1),
                num(y1),
                num(mid),
                num(y1),
                num(mid),
                num(y2),
                num(x2),
                num(y2),
            );
        }
    }
    for (i, p) in run.phases.iter().enumerate() {
        let (x, y) = pos(i);
        let mut classes = format!("node s-{}", phase_class(p));
        if critical.contains(&i) {
            classes.push_str(" critical");
        }
        if p.parallel {
            classes.push_str(" parallel");
        }
        let mut tip = format!("{} · {}", p.name, p.state_label());
        if let Some(r) = &p.reason {
            let _ = write!(tip, "\n{r}");
        }
        if p.parallel {
            tip.push_str(" · parallel");
        }
        if !p.depends_on.is_empty() {
            let _ = write!(tip, "\ndepends on {}", p.depends_on.join(", "));
        }
        if !p.description.is_empty() {
            let _ = write!(tip, "\n{}", p.description);
        }
        let label = format!(
            "{}{}",
            if p.parallel { "∥ " } else { "" },
            truncate(&p.name, NODE_CHARS)
        );
        let _ = writeln!(
            h,
            "<g class=\"{classes}\" data-node=\"{}\"><title>{}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/><text x=\"{}\" y=\"{}\">{}</text></g>",
            escape(&p.name),
            escape(&tip),
            num(x),
            num(y),
            num(NODE_W),
            num(NODE_H),
            num(x + NODE_W / 2.0),
            num(y + NODE_H / 2.0 + 4.0),
            escape(&label),
        );
    }
    h.push_str("</svg></div>\n<p class=\"legend\"><span>∥ / dashed: parallel phase (may run alongside other parallel phases)</span><span>bold: on the critical path</span></p>\n");
}

fn sparkline(p: &ReportPhase) -> String {
    if p.history.is_empty() {
        return String::new();
    }
    let mut points: Vec<f64> = p.history.clone();
    let current = p.duration().filter(|_| p.reused_from.is_none() && p.fresh().is_none());
    if let Some(d) = current {
        points.push(d);
    }
    let (w, ht) = (120.0, 22.0);
    let max = points.iter().copied().fold(0.0, f64::max).max(1e-9);
    let n = points.len();
    let x = |k: usize| {
        if n == 1 {
            w / 2.0
        } else {
            2.0 + k as f64 * (w - 4.0) / (n - 1) as f64
        }
    };
    let y = |d: f64| ht - 2.0 - (d / max) * (ht - 4.0);
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(k, &d)| format!("{},{}", num(x(k)), num(y(d))))
        .collect();
    let mut s = format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" data-points=\"{n}\"><title>{}</title><polyline points=\"{}\"/>",
        escape(&points.iter().map(|d| format_secs(*d)).collect::<Vec<_>>().join(", ")),
        coords.join(" ")
    );
    if let Some(d) = current {
        let _ = write!(
            s,
            "<circle class=\"now\" cx=\"{}\" cy=\"{}\" r=\"2.5\"/>",
            num(x(n - 1)),
            num(y(d))
        );
    }
    s.push_str("</svg>");
    s
}

fn table(h: &mut String, run: &ReportRun, on_path: &[bool]) {
    let with_history = run.phases.iter().any(|p| !p.history.is_empty());
    h.push_str("<table class=\"phases\">\n<thead><tr><th>Phase</th><th>Status</th><th>Attempts</th><th>Duration</th><th>Share of run</th>");
    if with_history {
        h.push_str("<th>Median (earlier runs)</th><th>Earlier runs → this one</th>");
    }
    h.push_str("<th>Error</th></tr></thead>\n<tbody>\n");
    let columns = if with_history { 8 } else { 6 };
    for row in run.rows() {
        match row {
            Row::Phase(i) => phase_row(h, run, i, on_path, with_history, false),
            Row::Group { name, members } => {
                let counts = milo_history::cli::group_counts(members.iter().map(|&i| run.phases[i].status.as_str()));
                let status = counts.status().as_str();
                let _ = writeln!(
                    h,
                    "<tr class=\"group\" data-group=\"{}\"><td class=\"name\">{}</td><td><span class=\"badge s-{}\">{status}</span></td><td colspan=\"{}\" class=\"counts\">{}</td></tr>",
                    escape(&name),
                    escape(&name),
                    status_class(status),
                    columns - 2,
                    escape(&counts.describe())
                );
                for i in members {
                    phase_row(h, run, i, on_path, with_history, true);
                }
            }
        }
    }
    h.push_str("</tbody>\n</table>\n");
    if !with_history {
        h.push_str("<p class=\"muted\">No earlier runs of this pipeline in the history: medians and sparklines appear once there are.</p>\n");
    }
}

/// One phase's row of the table; a `member` (an instance under its group's row) is indented.
fn phase_row(h: &mut String, run: &ReportRun, i: usize, on_path: &[bool], with_history: bool, member: bool) {
    let p = &run.phases[i];
    let total = run.span();
    let classes: Vec<&str> = [(on_path[i], "critical"), (member, "member")]
        .into_iter()
        .filter_map(|(on, class)| on.then_some(class))
        .collect();
    let class = if classes.is_empty() {
        String::new()
    } else {
        format!(" class=\"{}\"", classes.join(" "))
    };
    let duration = p.duration();
    let share = duration.map(|d| (d / total * 100.0).clamp(0.0, 100.0));
    let _ = write!(
        h,
        "<tr data-phase=\"{}\"{}><td class=\"name\">{}{}{}</td><td><span class=\"badge s-{}\">{}</span>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
        escape(&p.name),
        class,
        if on_path[i] { "★ " } else { "" },
        escape(&p.name),
        if p.parallel {
            " <span class=\"par\" title=\"parallel\">∥</span>"
        } else {
            ""
        },
        phase_class(p),
        escape(p.state_label()),
        p.reused_from
            .as_ref()
            .map(|r| format!(" <span class=\"muted\">from run {}</span>", escape(r)))
            .unwrap_or_default()
            + &p.reason
                .as_deref()
                .filter(|r| *r != p.state_label())
                .map(|r| format!(" <span class=\"reason\">— {}</span>", escape(r)))
                .unwrap_or_default(),
        p.attempts,
        duration.map(format_secs).unwrap_or_default(),
    );
    match share {
        Some(s) => {
            let _ = write!(
                h,
                "<td class=\"share\"><span class=\"sharebar\" style=\"width:{}%\"></span>{s:.1}%</td>",
                num(s)
            );
        }
        None => h.push_str("<td></td>"),
    }
    if with_history {
        let _ = write!(
            h,
            "<td class=\"num\">{}</td><td>{}</td>",
            p.median().map(format_secs).unwrap_or_default(),
            sparkline(p)
        );
    }
    let err = p.error.as_deref().unwrap_or("");
    let first = err.lines().next().unwrap_or("");
    let _ = writeln!(
        h,
        "<td class=\"err\" title=\"{}\">{}</td></tr>",
        escape(err),
        escape(first)
    );
}

fn log_line(h: &mut String, l: &crate::model::LogLine) {
    let class = match l.stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let _ = writeln!(
        h,
        "<span class=\"ln {class}\" data-stream=\"{class}\"><span class=\"ts\">+{}</span>{}</span>",
        escape(&format_secs(l.timestamp)),
        escape(&l.line)
    );
}

fn logs(h: &mut String, run: &ReportRun) {
    let any = run.phases.iter().any(|p| !p.logs.is_empty());
    if !any {
        if run.phases.iter().any(|p| p.log_count > 0) {
            h.push_str("<p class=\"muted\">The logs are not part of a timeline file: build the report from the run history (<code>milo report RUN</code>) to include them.</p>\n");
        } else {
            h.push_str("<p class=\"muted\">No phase printed anything.</p>\n");
        }
        return;
    }
    for p in run.phases.iter().filter(|p| !p.logs.is_empty()) {
        let stderr = p.logs.iter().filter(|l| l.stream == Stream::Stderr).count();
        let open = if p.status == "failed" { " open" } else { "" };
        let _ = write!(
            h,
            "<details class=\"logs\" data-phase=\"{}\"{open}><summary><b>{}</b> — {} line{}",
            escape(&p.name),
            escape(&p.name),
            p.logs.len(),
            if p.logs.len() == 1 { "" } else { "s" },
        );
        if stderr > 0 {
            let _ = write!(h, ", <span class=\"stderr-count\">{stderr} on stderr</span>");
        }
        h.push_str("</summary>\n<pre>");
        if p.logs.len() <= MAX_LOG_LINES {
            for l in &p.logs {
                log_line(h, l);
            }
        } else {
            let half = MAX_LOG_LINES / 2;
            for l in &p.logs[..half] {
                log_line(h, l);
            }
            let _ = writeln!(
                h,
                "<span class=\"ln omitted\">… {} lines left out: `milo logs` prints them all …</span>",
                p.logs.len() - 2 * half
            );
            for l in &p.logs[p.logs.len() - half..] {
                log_line(h, l);
            }
        }
        h.push_str("</pre>\n</details>\n");
    }
}

const CSS: &str = r#"
:root{--fg:#1d2330;--muted:#6b7280;--bg:#fff;--row:#f6f7f9;--grid:#e3e6eb;--ok:#2e9d57;--fail:#d64545;--retry:#f0a33a;--skip:#9aa3ae;--cancel:#8c6bc8;--run:#3b82f6;--intr:#5b6470;--pend:#d5d9df;--crit:#111;--fresh:#14a3a3;--restored:#7c9a2e}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:20px 28px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px}
.summary,.muted{color:var(--muted)}.summary b{color:var(--fg)}
pre.error{background:#fdecec;border-left:4px solid var(--fail);padding:8px 12px;white-space:pre-wrap;margin:8px 0}
.scroll{overflow-x:auto;max-width:100%}
svg text{font:12px system-ui,sans-serif;fill:var(--fg)}
.gantt .row-bg{fill:transparent}.gantt .row-bg.odd{fill:var(--row)}
.gantt .grid{stroke:var(--grid);stroke-width:1}.gantt .tick{text-anchor:middle;fill:var(--muted);font-size:11px}
.gantt .label{text-anchor:end}.gantt .row.critical .label{font-weight:700}
.gantt .note{fill:var(--muted);font-style:italic}
.bar{stroke:rgba(0,0,0,.25);stroke-width:1;cursor:pointer}.bar:hover{opacity:.8}
.bar.critical{stroke:var(--crit);stroke-width:2.5}
.wait{stroke:var(--retry);stroke-width:2;stroke-dasharray:4 3}
.s-completed{fill:var(--ok);background:var(--ok)}.s-failed{fill:var(--fail);background:var(--fail)}
.s-retried,.s-retrying{fill:var(--retry);background:var(--retry)}.s-skipped{fill:var(--skip);background:var(--skip)}
.s-cancelled{fill:var(--cancel);background:var(--cancel)}.s-running{fill:var(--run);background:var(--run)}
.s-interrupted,.s-other{fill:var(--intr);background:var(--intr)}.s-pending{fill:var(--pend);background:var(--pend)}
.s-up_to_date{fill:var(--fresh);background:var(--fresh)}.s-restored{fill:var(--restored);background:var(--restored)}
.gantt .note.fresh-label{fill:var(--fresh);font-style:normal;font-size:11px}.reason{color:var(--muted);font-size:12px}
.badge{display:inline-block;color:#fff;border-radius:9px;padding:0 8px;font-size:12px;font-weight:600;vertical-align:middle}
.badge.s-pending{color:var(--fg)}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:var(--muted);font-size:12px;margin:6px 0}
.sw{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:5px;vertical-align:middle}
.sw.crit{background:#fff;border:2.5px solid var(--crit)}.sw.wait{height:0;border-top:2px dashed var(--retry)}
.graph .edge{fill:none;stroke:#9aa3ae;stroke-width:1.5}.graph .edge.critical{stroke:var(--crit);stroke-width:2.5}
.graph .arrowhead{fill:#9aa3ae}
.graph .node rect{stroke:rgba(0,0,0,.3);stroke-width:1}.graph .node text{text-anchor:middle;fill:#fff;font-weight:600}
.graph .node.s-pending text{fill:var(--fg)}
.graph .node.parallel rect{stroke-dasharray:5 3;stroke:#1d2330;stroke-width:1.5}
.graph .node.critical rect{stroke:var(--crit);stroke-width:3}
.graph .node.hl rect,.gantt .row.hl .row-bg{stroke:var(--run);stroke-width:2}
table.phases{border-collapse:collapse;width:100%}
table.phases th,table.phases td{border-bottom:1px solid var(--grid);padding:4px 8px;text-align:left;vertical-align:middle}
table.phases th{font-size:12px;color:var(--muted);font-weight:600}
table.phases tr.critical td.name{font-weight:700}
table.phases tr.member td.name{padding-left:1.5em}
table.phases tr.group td.counts{color:var(--muted)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.share{position:relative;min-width:110px;font-variant-numeric:tabular-nums}
.sharebar{position:absolute;left:0;top:20%;height:60%;background:rgba(59,130,246,.18);z-index:-1}
td.err{color:var(--fail);max-width:360px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.par{color:var(--run);font-weight:700}
.spark polyline{fill:none;stroke:var(--run);stroke-width:1.5}.spark .now{fill:var(--fail)}
details.logs{border:1px solid var(--grid);border-radius:6px;margin:6px 0}
details.logs summary{cursor:pointer;padding:6px 10px;background:var(--row)}
details.logs pre{margin:0;padding:8px 10px;max-height:480px;overflow:auto;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
.ln{display:block;white-space:pre-wrap;word-break:break-all;padding-left:6px;border-left:3px solid transparent}
.ln.stderr{color:#a61b1b;background:#fff4f4;border-left-color:var(--fail)}
.ln.omitted{color:var(--muted);font-style:italic}
.ts{color:var(--muted);margin-right:10px;user-select:none}
.stderr-count{color:var(--fail)}
.tip{position:fixed;z-index:10;pointer-events:none;background:#1d2330;color:#fff;padding:6px 9px;border-radius:5px;font-size:12px;max-width:480px;white-space:pre-wrap;box-shadow:0 2px 8px rgba(0,0,0,.3)}
.tip b{display:block}
"#;

const JS: &str = r#"
(function () {
  "use strict";
  function fmt(s) {
    s = Number(s);
    if (!isFinite(s) || s < 0) s = 0;
    if (s < 1) return Math.round(s * 1000) + "ms";
    if (s < 60) return s.toFixed(2).replace(/\.?0+$/, "") + "s";
    var m = Math.floor(s / 60), r = Math.round(s - m * 60);
    return m + "m" + (r ? r + "s" : "");
  }
  var tip = document.getElementById("tip");
  function move(e) {
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = Math.max(0, e.clientX - tip.offsetWidth - 14);
    if (y + tip.offsetHeight > window.innerHeight) y = Math.max(0, e.clientY - tip.offsetHeight - 14);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  function show(e) {
    var d = e.currentTarget.dataset;
    tip.textContent = "";
    var head = document.createElement("b");
    head.textContent = d.phase + (d.label ? " · " + d.label : " · attempt " + d.attempt + " · " + d.status);
    tip.appendChild(head);
    var start = Number(d.start), end = Number(d.end);
    tip.appendChild(document.createTextNode(d.label ? "at +" + fmt(start) : "start +" + fmt(start) + " · duration " + fmt(end - start)));
    if (d.reason) tip.appendChild(document.createTextNode("\n" + d.reason));
    if (d.error) tip.appendChild(document.createTextNode("\n" + d.error));
    tip.hidden = false;
    move(e);
  }
  function hide() { tip.hidden = true; }
  var bars = document.querySelectorAll("svg.gantt rect.bar");
  Array.prototype.forEach.call(bars, function (bar) {
    var t = bar.querySelector("title");
    if (t) bar.removeChild(t);
    bar.addEventListener("mouseenter", show);
    bar.addEventListener("mousemove", move);
    bar.addEventListener("mouseleave", hide);
  });
  var rows = {};
  Array.prototype.forEach.call(document.querySelectorAll("svg.gantt g.row"), function (r) { rows[r.dataset.phase] = r; });
  Array.prototype.forEach.call(document.querySelectorAll("svg.graph g.node"), function (n) {
    function on(flag) {
      n.classList.toggle("hl", flag);
      var r = rows[n.dataset.node];
      if (r) r.classList.toggle("hl", flag);
    }
    n.addEventListener("mouseenter", function () { on(true); });
    n.addEventListener("mouseleave", function () { on(false); });
  });
  var drawn = 0;
  Array.prototype.forEach.call(bars, function (bar) {
    if (bar.getBoundingClientRect().width > 0) drawn++;
  });
  document.body.dataset.bars = String(bars.length);
  document.body.dataset.drawn = String(drawn);
  document.body.dataset.ok = "1";
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{1b}[31mb"), "a\u{FFFD}[31mb");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0, 10.0), 1.0);
        assert_eq!(tick_step(7.0, 10.0), 1.0);
        assert!((tick_step(0.3, 10.0) - 0.05).abs() < 1e-12);
        assert_eq!(tick_step(130.0, 10.0), 20.0);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(num(f64::NAN), "0");
    }
}
