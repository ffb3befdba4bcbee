//! The history subcommands of `milo`, on plain parameters: each writes what to print to
//! `out` and returns the exit status, so the `milo` command only parses arguments and
//! calls them.
//!
//! * [`history`]: `milo history [-n N] [--json]`, recent runs.
//! * [`show`]: `milo show [RUN] [--json]`, one run's phases (and for a `milo watch` cycle,
//!   `trigger: watch cycle 3 — src/a.c changed`), a matrix phase's instances indented under
//!   one group line with their counts (`test  failed  4 instances: 1 completed, 1 failed, 2
//!   pending`, the summary's words): an incremental phase that did
//!   not run reads `up to date` or `restored` instead of `completed`, every incremental
//!   phase is followed by its reason (`— src/main.c changed`), and the run's line counts
//!   them (`3 ran, 17 up to date (2 restored)`).
//! * [`logs`]: `milo logs [RUN] PHASE [--stream stdout|stderr]`, a phase's full output
//!   (without RUN: from the newest run that ran PHASE).
//! * [`replay`]: `milo replay [RUN] [--json]`, verify the journal and print the replayed
//!   timeline (exit 1 naming the first bad entry when it was tampered with).
//! * [`prune`]: `milo history prune`, delete old runs by a [`Prune`] policy (or say which
//!   would go) and optionally vacuum the file.
//! * [`open_for_run`] and [`resume`] for `milo run`: open the history or warn once and run
//!   without it, and turn `--resume [RUN]` into `RunOptions::reuse`; [`warn_unrecorded`]
//!   when recording fails mid-run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use milo::capture::Stream;
use milo::format_duration;
use milo::pipeline::{GroupCounts, Pipeline, Row, Status};

use crate::{
    History, HistoryError, PhaseRecord, Prune, Pruned, ResumePlan, RunDetail, RunId, RunSummary, Verification,
    default_db_path, parse_run,
};

/// The database for pipeline file `file`: `db` if given, else `.milo/history.db` beside it.
pub fn db_path(file: &Path, db: Option<&Path>) -> PathBuf {
    db.map_or_else(|| default_db_path(file), Path::to_owned)
}

/// How long `milo run` waits for another process's lock on the history before it warns and
/// runs unrecorded. Another `milo run` holds the lock for a batch at a time (at most 50 ms).
pub const RUN_START_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the history for `milo run`, waiting at most [`RUN_START_WAIT`] for a lock. On any
/// failure it prints one warning to stderr and returns `None`: the run goes on without
/// history.
pub fn open_for_run(file: &Path, db: Option<&Path>) -> Option<History> {
    match History::open_waiting(&db_path(file, db), RUN_START_WAIT) {
        Ok(h) => Some(h),
        Err(e) => {
            warn(&e);
            None
        }
    }
}

/// Prints `warning: {error}` (and that the run goes on without history) to stderr.
pub fn warn(error: &HistoryError) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "warning: {error}\n  = note: running without run history"
    );
}

/// Prints `warning: {error}` for a recording that failed after the run started (the run
/// itself is unaffected) to stderr. A [`HistoryError::Retention`] (the run was recorded, only
/// deleting old runs failed) says so instead.
pub fn warn_unrecorded(error: &HistoryError) {
    let note = if matches!(error, HistoryError::Retention { .. }) {
        ""
    } else {
        "\n  = note: the run went on, but the run history holds only part of it"
    };
    let _ = writeln!(std::io::stderr().lock(), "warning: {error}{note}");
}

/// The parameter values of the run `milo run --resume [RUN]` of pipeline `pipeline` resumes
/// (empty for a run without parameters): the resumed run gets them again unless `-p` says
/// otherwise. Errors as [`resume`]'s.
pub fn resume_params(
    history: &History,
    run: Option<&str>,
    pipeline: &str,
) -> Result<Vec<(String, String)>, HistoryError> {
    let id = history.resolve(parse_run(run)?, Some(pipeline))?;
    Ok(history.run(Some(id))?.params)
}

/// `milo run --resume [RUN]`: the plan for `pipeline`, and a one-line note for stderr
/// (`resuming run 4: 3 phases reused (a, b, c), 2 to run (d, e)`). Errors (no such run,
/// run completed, other pipeline) should stop the command with exit status 2.
pub fn resume(history: &History, run: Option<&str>, pipeline: &Pipeline) -> Result<(ResumePlan, String), HistoryError> {
    let plan = history.resume_plan(parse_run(run)?, pipeline)?;
    let mut reused: Vec<&str> = plan.reuse.keys().map(String::as_str).collect();
    let order = pipeline.execution_order();
    let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    reused.sort_by_key(|n| rank.get(n).copied().unwrap_or(usize::MAX));
    let note = format!(
        "resuming run {}: {} reused{}, {} to run{}",
        plan.run,
        count(reused.len(), "phase"),
        list(&reused),
        plan.rerun.len(),
        list(&plan.rerun.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    Ok((plan, note))
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

fn json_out(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<u8, HistoryError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| HistoryError::Output(e.into()))?;
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    Ok(0)
}

/// `milo history [-n N] [--json]`: the `limit` most recent runs, newest first.
pub fn history(db: &Path, limit: usize, json: bool, out: &mut dyn Write) -> Result<u8, HistoryError> {
    let h = History::open_existing(db)?;
    let runs = h.runs(limit)?;
    if json {
        return json_out(out, &runs);
    }
    if runs.is_empty() {
        writeln!(out, "no runs recorded yet")?;
        return Ok(0);
    }
    let name_w = runs
        .iter()
        .map(|r| r.pipeline.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let statuses: Vec<String> = runs
        .iter()
        .map(|r| {
            let mut status = r.status.to_string();
            if let Some(from) = r.resumed_from {
                let _ = write!(status, " ↻{from}");
            }
            if let Some(t) = &r.trigger {
                let _ = write!(status, " watch #{}", t.watch_cycle);
            }
            status
        })
        .collect();
    // Padding counts characters, and every character here is one column wide (`↻` too).
    let status_w = statuses.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(11);
    let mut text = format!(
        "{:>5}  {:<name_w$}  {:<status_w$}  {:<20}  {:>8}  FAILED PHASE\n",
        "RUN", "PIPELINE", "STATUS", "STARTED", "DURATION"
    );
    for (r, status) in runs.iter().zip(&statuses) {
        let line = format!(
            "{:>5}  {:<name_w$}  {:<status_w$}  {:<20}  {:>8}  {}",
            r.id,
            r.pipeline,
            status,
            timestamp(r.started_at),
            r.duration.map(secs).unwrap_or_default(),
            r.failed_phase.as_deref().unwrap_or(""),
        );
        let _ = writeln!(text, "{}", line.trim_end());
    }
    let mut legend = Vec::new();
    if runs.iter().any(|r| r.resumed_from.is_some()) {
        legend.push("↻N: resumed run N (`milo run --resume N`), reusing its completed phases");
    }
    if runs.iter().any(|r| r.trigger.is_some()) {
        legend.push("watch #N: cycle N of a `milo watch` (`milo show RUN` names the changes that started it)");
    }
    if !legend.is_empty() {
        let _ = writeln!(text, "\n{}", legend.join("\n"));
    }
    out.write_all(text.as_bytes())?;
    Ok(0)
}

/// `milo show [RUN] [--json]`: one run's phases with status, attempts and durations.
pub fn show(db: &Path, run: Option<&str>, json: bool, out: &mut dyn Write) -> Result<u8, HistoryError> {
    let h = History::open_existing(db)?;
    let detail = h.show(parse_run(run)?)?;
    if json {
        return json_out(out, &detail);
    }
    // The resumed run may have been pruned since: the number stays, marked as gone.
    let resumed_gone = detail
        .run
        .resumed_from
        .is_some_and(|from| matches!(h.resolve(Some(from), None), Err(HistoryError::NoSuchRun(_))));
    out.write_all(render_show(&detail, resumed_gone).as_bytes())?;
    Ok(0)
}

fn header(r: &RunSummary, resumed_gone: bool) -> String {
    let mut s = format!("run {} · {} · {}", r.id, r.pipeline, r.status);
    if let Some(code) = r.exit_code {
        let _ = write!(s, " (exit {code})");
    }
    let _ = write!(s, " · started {}", timestamp(r.started_at));
    if let Some(d) = r.duration {
        let _ = write!(s, " · {}", secs(d));
    }
    s.push('\n');
    if let Some(file) = &r.pipeline_file {
        let _ = writeln!(s, "file: {file}");
    }
    if !r.params.is_empty() {
        let shown: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "params: {}", shown.join(" "));
    }
    if let Some(t) = &r.trigger {
        // The paths are file names as the watcher saw them: terminal-safe, one line.
        let what = t.describe(crate::trigger::SHOWN_TRIGGER_PATHS);
        let _ = writeln!(s, "trigger: {}", milo::text::sanitize(&what, milo::text::Sgr::Drop));
    }
    if let Some(from) = r.resumed_from {
        let gone = if resumed_gone {
            " (since pruned from the history)"
        } else {
            ""
        };
        let _ = writeln!(s, "resumes run {from}{gone}");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "error: {e}");
    }
    if let Some(e) = &r.recording_error {
        let _ = writeln!(s, "incomplete: the history holds only part of this run: {e}");
    }
    s
}

/// How a phase's state reads: `up to date` / `restored` for an incremental phase that
/// completed without running, else its status.
pub fn state_label<'a>(status: &'a str, fresh: Option<&str>) -> &'a str {
    match fresh {
        Some("up_to_date") => "up to date",
        Some("restored") => "restored",
        _ => status,
    }
}

/// `3 ran, 17 up to date (2 restored)`: the phases that ran (started at least once) and those
/// that were up to date (restored ones included, and counted apart).
pub fn decision_counts(ran: usize, fresh: usize, restored: usize) -> String {
    let mut s = format!("{ran} ran, {fresh} up to date");
    if restored > 0 {
        let _ = write!(s, " ({restored} restored)");
    }
    s
}

/// `  — why` for an incremental phase: its reason (terminal-safe, one line), unless it only
/// repeats the state label.
fn reason_suffix(reason: Option<&str>, label: &str) -> String {
    match reason.map(|r| milo::text::sanitize(r, milo::text::Sgr::Drop)) {
        Some(r) if !r.is_empty() && r != label => format!("  — {r}"),
        _ => String::new(),
    }
}

fn render_show(d: &RunDetail, resumed_gone: bool) -> String {
    let mut s = header(&d.run, resumed_gone);
    if d.phases.iter().any(|p| p.verdict.is_some()) {
        // The run's summary line counts the phases that did not run.
        let ran = d.phases.iter().filter(|p| p.attempts > 0).count();
        let fresh = d.phases.iter().filter(|p| p.fresh().is_some()).count();
        let restored = d.phases.iter().filter(|p| p.fresh() == Some("restored")).count();
        let first = s.find('\n').unwrap_or(s.len());
        s.insert_str(first, &format!(" · {}", decision_counts(ran, fresh, restored)));
    }
    let rows = d.rows();
    // A group's members are indented under its line.
    let name_w = d
        .phases
        .iter()
        .map(|p| p.name.chars().count() + if p.group.is_some() { INDENT.len() } else { 0 })
        .chain(rows.iter().filter_map(|r| match r {
            Row::Group { name, .. } => Some(name.chars().count()),
            Row::Phase(_) => None,
        }))
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(
        s,
        "\n{:<name_w$}  {:<11}  {:>8}  {:>8}  {:>7}",
        "PHASE", "STATUS", "ATTEMPTS", "DURATION", "LINES"
    );
    for row in rows {
        match row {
            Row::Phase(i) => phase_line(&mut s, &d.phases[i], "", name_w),
            Row::Group { name, members } => {
                let counts = group_counts(members.iter().map(|&i| d.phases[i].status.as_str()));
                let line = format!(
                    "{name:<name_w$}  {:<11}  {}",
                    counts.status().as_str(),
                    counts.describe()
                );
                let _ = writeln!(s, "{line}");
                for i in members {
                    phase_line(&mut s, &d.phases[i], INDENT, name_w);
                }
            }
        }
    }
    s
}

/// How much a group's members are indented under its line.
const INDENT: &str = "  ";

/// How the members of a group with these recorded statuses stand (`milo show`, the report):
/// `interrupted` (the recording stopped mid-run) counts as `cancelled`.
pub fn group_counts<'a>(statuses: impl IntoIterator<Item = &'a str>) -> GroupCounts {
    GroupCounts::of_statuses(statuses.into_iter().map(status_of))
}

/// A recorded status as the core's.
fn status_of(status: &str) -> Status {
    match status {
        "queued" => Status::Queued,
        "running" => Status::Running,
        "retrying" => Status::Retrying,
        "completed" => Status::Completed,
        "failed" => Status::Failed,
        "skipped" => Status::Skipped,
        "cancelled" | "interrupted" => Status::Cancelled,
        _ => Status::Pending,
    }
}

/// One phase's line of `milo show`, its name after `indent`.
fn phase_line(s: &mut String, p: &PhaseRecord, indent: &str, name_w: usize) {
    let label = state_label(&p.status, p.fresh());
    let name = format!("{indent}{}", p.name);
    let mut line = format!(
        "{:<name_w$}  {:<11}  {:>8}  {:>8}  {:>7}",
        name,
        label,
        p.attempts,
        p.duration.map(secs).unwrap_or_default(),
        p.log_count
    );
    if let Some(from) = &p.reused_from {
        let _ = write!(line, "  from run {from}");
    }
    line.push_str(&reason_suffix(p.reason.as_deref(), label));
    if !p.job_ids.is_empty() {
        let _ = write!(line, "  job {}", p.job_ids.join(","));
    }
    if let Some(e) = p.error.as_deref().filter(|e| !e.is_empty()) {
        let first = e.lines().next().unwrap_or("");
        let _ = write!(line, "  {first}");
    }
    let _ = writeln!(s, "{}", line.trim_end());
}

/// `milo logs [RUN] PHASE [--stream stdout|stderr]`: every line the phase printed, in order.
pub fn logs(
    db: &Path,
    run: Option<&str>,
    phase: &str,
    stream: Option<Stream>,
    out: &mut dyn Write,
) -> Result<u8, HistoryError> {
    let h = History::open_existing(db)?;
    let run = match parse_run(run)? {
        Some(id) => {
            let detail = h.show(Some(id))?;
            if !detail.phases.iter().any(|p| p.name == phase) {
                let names: Vec<&str> = detail.phases.iter().map(|p| p.name.as_str()).collect();
                return Err(HistoryError::NoSuchPhase {
                    run: id,
                    phase: phase.to_owned(),
                    available: format!("{}{}", quoted_list(&names), did_you_mean(phase, &names)),
                });
            }
            id
        }
        None => latest_run_with(&h, phase)?,
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    h.for_each_log(Some(run), phase, stream, |e| {
        buf.extend_from_slice(e.line.as_bytes());
        buf.push(b'\n');
        if buf.len() >= 64 * 1024 {
            out.write_all(&buf)?;
            buf.clear();
        }
        Ok(())
    })?;
    out.write_all(&buf)?;
    Ok(0)
}

/// The newest run in which `phase` ran; the newest run that has it at all when it never ran;
/// when the newest run is not that one (a `--only` run without it, say), a note on stderr says
/// which run the logs come from. No run with `phase`: [`HistoryError::UnknownPhase`], with a
/// suggestion.
fn latest_run_with(h: &History, phase: &str) -> Result<RunId, HistoryError> {
    let newest = h.run(None)?.id;
    // Every run the retention policy kept (100 per pipeline by default), newest first.
    let runs = h.runs(1_000_000)?;
    let mut never_ran = None;
    let mut newest_names = Vec::new();
    for summary in &runs {
        let detail = h.show(Some(summary.id))?;
        if summary.id == newest {
            newest_names = detail.phases.iter().map(|p| p.name.clone()).collect();
        }
        let Some(record) = detail.phases.iter().find(|p| p.name == phase) else {
            continue;
        };
        if record.status == "pending" {
            never_ran.get_or_insert(summary.id);
            continue;
        }
        note_other_run(newest, summary.id, phase);
        return Ok(summary.id);
    }
    if let Some(id) = never_ran {
        note_other_run(newest, id, phase);
        return Ok(id);
    }
    let names: Vec<&str> = newest_names.iter().map(String::as_str).collect();
    let mut all: Vec<&str> = Vec::new();
    let details: Vec<_> = runs.iter().filter_map(|r| h.show(Some(r.id)).ok()).collect();
    for d in &details {
        for p in &d.phases {
            if !all.contains(&p.name.as_str()) {
                all.push(&p.name);
            }
        }
    }
    Err(HistoryError::UnknownPhase {
        phase: phase.to_owned(),
        suggestion: closest(phase, &all).map(str::to_owned),
        run: newest,
        available: quoted_list(&names),
    })
}

fn note_other_run(newest: RunId, found: RunId, phase: &str) {
    if found != newest {
        let _ = writeln!(
            std::io::stderr().lock(),
            "note: the last run ({newest}) did not run `{phase}`; showing its output from run {found}"
        );
    }
}

/// `` `a`, `b` ``.
fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The name in `names` most like `word`, if it is close enough to be a likely typo.
fn closest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(word, n), *n))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// `"; did you mean `test`?"`, or nothing.
fn did_you_mean(word: &str, names: &[&str]) -> String {
    closest(word, names)
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default()
}

/// Parses `--stream`: `stdout` or `stderr`.
pub fn parse_stream(s: &str) -> Result<Stream, String> {
    match s {
        "stdout" => Ok(Stream::Stdout),
        "stderr" => Ok(Stream::Stderr),
        _ => Err(format!("`{s}` is not a stream: use stdout or stderr")),
    }
}

/// `milo replay [RUN] [--json]`: verifies the run's journal (its MAC chain, and the run,
/// phase and log rows against it), re-reduces it with the pipeline reducer and prints the
/// final timeline (`--json`: the timeline JSON). A tampered history prints what was changed
/// and returns 1; a journal that cannot be verified (an older milo's unkeyed chain, or a
/// journal key that is not here) says so and returns 1 too, with the timeline when it is
/// readable.
pub fn replay(db: &Path, run: Option<&str>, json: bool, out: &mut dyn Write) -> Result<u8, HistoryError> {
    let h = History::open_existing(db)?;
    let replay = h.replay(parse_run(run)?)?;
    let verdict = match &replay.verification {
        v @ Verification::Broken { .. } => format!("the journal was tampered with: {v}"),
        v @ Verification::Disagrees { .. } => format!("the history was tampered with: {v}"),
        v @ Verification::Unverified { .. } => format!("NOT VERIFIED: {v}"),
        v @ Verification::Intact { .. } => v.to_string(),
    };
    // Anything but a verified journal is exit status 1, so a script can rely on it.
    let code = u8::from(!replay.verification.is_intact());
    let Some(timeline) = replay.timeline() else {
        writeln!(out, "run {}: {verdict}", replay.run)?;
        return Ok(1);
    };
    if json {
        if code != 0 {
            let _ = writeln!(std::io::stderr().lock(), "warning: run {}: {verdict}", replay.run);
        }
        json_out(out, &timeline)?;
        return Ok(code);
    }
    let mut s = format!("run {}: {verdict}\n", replay.run);
    if let Some(e) = h.run(Some(replay.run))?.recording_error {
        let _ = writeln!(s, "incomplete: the history holds only part of this run: {e}");
    }
    let _ = writeln!(
        s,
        "{} · {} · {} · progress {:.0}%",
        timeline["pipeline"].as_str().unwrap_or(""),
        timeline["status"].as_str().unwrap_or(""),
        secs(timeline["elapsed"].as_f64().unwrap_or(0.0)),
        timeline["progress"].as_f64().unwrap_or(0.0) * 100.0
    );
    if let Some(e) = timeline["error"].as_str() {
        let _ = writeln!(s, "error: {e}");
    }
    let phases = timeline["phases"].as_array().cloned().unwrap_or_default();
    let by_name: HashMap<&str, &serde_json::Value> =
        phases.iter().filter_map(|p| Some((p["name"].as_str()?, p))).collect();
    let order: Vec<&str> = timeline["execution_order"]
        .as_array()
        .map(|o| o.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    let name_w = order.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(5);
    let _ = writeln!(
        s,
        "\n{:<name_w$}  {:<10}  {:>8}  {:>8}  {:>8}  {:>7}",
        "PHASE", "STATUS", "START", "ELAPSED", "ATTEMPTS", "LINES"
    );
    for name in order {
        let Some(p) = by_name.get(name) else { continue };
        let status = p["status"].as_str().unwrap_or("");
        let fresh = p["verdict"].as_str().filter(|_| status == "completed");
        let label = state_label(status, fresh);
        let mut line = format!(
            "{:<name_w$}  {:<10}  {:>8}  {:>8}  {:>8}  {:>7}",
            name,
            label,
            p["started_at"].as_f64().map(secs).unwrap_or_default(),
            secs(p["elapsed"].as_f64().unwrap_or(0.0)),
            p["attempt"].as_u64().unwrap_or(0),
            p["log_count"].as_u64().unwrap_or(0)
        );
        if let Some(from) = p["reused_from"].as_str() {
            let _ = write!(line, "  from run {from}");
        }
        line.push_str(&reason_suffix(p["reason"].as_str(), label));
        if let Some(e) = p["error"].as_str() {
            let _ = write!(line, "  {}", e.lines().next().unwrap_or(""));
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    out.write_all(s.as_bytes())?;
    Ok(code)
}

/// `milo history prune [--keep N] [--older-than D] [--pipeline NAME] [--dry-run] [--vacuum]`:
/// deletes the runs `policy` selects (see [`History::prune`]) and prints one line saying
/// what went (or would go), one naming the runs kept because they are still running, and
/// with `vacuum` one with the file's size before and after [`History::vacuum`].
pub fn prune(db: &Path, policy: &Prune, vacuum: bool, out: &mut dyn Write) -> Result<u8, HistoryError> {
    let h = History::open_existing(db)?;
    let pruned = h.prune(policy)?;
    let mut text = render_prune(&pruned, policy.pipeline.as_deref());
    if !pruned.dry_run && pruned.freed_bytes > 0 && pruned.returned_bytes == 0 && !vacuum {
        let _ = write!(
            text,
            "; {} freed inside the file for later runs (--vacuum shrinks the file)",
            bytes(pruned.freed_bytes)
        );
    } else if pruned.returned_bytes > 0 {
        let _ = write!(text, "; the file shrank by {}", bytes(pruned.returned_bytes));
    }
    text.push('\n');
    if !pruned.kept_running.is_empty() {
        let runs: Vec<String> = pruned
            .kept_running
            .iter()
            .map(|(run, pid)| format!("{run} (pid {pid})"))
            .collect();
        let _ = writeln!(
            text,
            "kept {} {}: still being recorded",
            if runs.len() == 1 { "run" } else { "runs" },
            runs.join(", ")
        );
    }
    if vacuum && !pruned.dry_run {
        let v = h.vacuum()?;
        let _ = writeln!(
            text,
            "vacuumed {}: {} -> {}",
            h.path().display(),
            bytes(v.before),
            bytes(v.after)
        );
    }
    out.write_all(text.as_bytes())?;
    Ok(0)
}

/// The first line of `milo history prune`, without its end.
fn render_prune(p: &Pruned, pipeline: Option<&str>) -> String {
    let of = pipeline.map(|p| format!(" of pipeline `{p}`")).unwrap_or_default();
    if p.runs.is_empty() {
        return match p.remaining {
            0 => format!("nothing to prune: the history has no runs{of}"),
            _ if !p.kept_running.is_empty() => {
                format!("nothing to prune{of}: the runs the policy selects are still being recorded")
            }
            1 => format!("nothing to prune: the 1 run{of} is within the policy"),
            n => format!("nothing to prune: all {n} runs{of} are within the policy"),
        };
    }
    let defs = match p.defs {
        0 => String::new(),
        1 => " and 1 unused pipeline definition".to_owned(),
        n => format!(" and {n} unused pipeline definitions"),
    };
    let runs = format!("{}{of} ({}){defs}", count(p.runs.len(), "run"), ranges(&p.runs));
    if p.dry_run {
        format!(
            "would delete {runs}, leaving {}; nothing was deleted (--dry-run)",
            count(p.remaining, "run")
        )
    } else {
        format!("deleted {runs}; {} left", count(p.remaining, "run"))
    }
}

/// `1-3, 7, 9-12`: ascending run ids as ranges, the first few only.
fn ranges(ids: &[RunId]) -> String {
    const SHOWN: usize = 8;
    let mut spans: Vec<(RunId, RunId)> = Vec::new();
    for &id in ids {
        match spans.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => spans.push((id, id)),
        }
    }
    let mut s = spans
        .iter()
        .take(SHOWN)
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(", ");
    if spans.len() > SHOWN {
        let _ = write!(
            s,
            " and {} more",
            ids.iter().filter(|&&id| id > spans[SHOWN - 1].1).count()
        );
    }
    s
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `1.2 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for people; saturating, so a damaged record never panics a command.
fn secs(s: f64) -> String {
    let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
    format_duration(std::time::Duration::try_from_secs_f64(s).unwrap_or(std::time::Duration::MAX))
}

/// `2026-11-28 21:35:55Z` for seconds since the Unix epoch (UTC).
pub fn timestamp(epoch: f64) -> String {
    let total = if epoch.is_finite() { epoch.max(0.0) as i64 } else { 0 };
    let (days, rem) = (total.div_euclid(86_400), total.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(0.0), "1970-01-01 00:00:00Z");
        assert_eq!(timestamp(1_709_210_096.5), "2024-02-29 12:34:56Z");
    }

    #[test]
    fn pruned_runs_read_as_ranges_and_sizes_in_binary_units() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        let many: Vec<RunId> = (1..=20).map(|i| i * 2).collect();
        assert_eq!(ranges(&many), "2, 4, 6, 8, 10, 12, 14, 16 and 12 more");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MiB");
    }

    #[test]
    fn run_selectors() {
        assert_eq!(parse_run(None).unwrap(), None);
        assert_eq!(parse_run(Some("last")).unwrap(), None);
        assert_eq!(parse_run(Some("12")).unwrap(), Some(12));
        assert!(matches!(parse_run(Some("x")), Err(HistoryError::BadRunSelector(_))));
    }
}
