//! `milo watch`: run the pipeline (or the targets), then again for every batch of changes to
//! the phases' `sources`, each cycle one incremental run (one run in the history) that runs
//! only the phases whose key changed and their dependents; services stay up across cycles
//! and are restarted when a dependency of theirs ran again or their own sources changed.
//!
//! Changes come from `milo_watch::Watcher` (events, or `--poll`), filtered by its `Rules`:
//! `.milo/`, `.git/`, declared outputs and `.gitignore`d paths never count, and only paths
//! that are some phase's `sources` do. A change during a cycle is kept for the next one; if it
//! affects a running phase (its own sources or those of a phase it depends on) that declares
//! `on_change = "restart"`, that phase is interrupted at once (it ends `cancelled` and runs
//! again in the next cycle). `q`, Ctrl-C or SIGTERM stop the cycle, the services and milo.
//!
//! On a terminal (standard input is a tty) the watch holds it in raw mode through a
//! [`RawMode`] guard, so `q` acts at a single keypress and Ctrl-C arrives as a key (handled
//! as SIGINT is); output processing stays on, so every `\n` still reaches the screen as
//! `\r\n`. The guard restores the terminal however the watch ends. Without a terminal, `q`
//! then Enter on standard input stops it.
//!
//! With `--ui tui` one TUI (`milo_tui::run_tui_cycles`) stays up across the cycles instead:
//! the loop sends it each cycle's store, what changed, the services up and whether it waits,
//! through a `tokio::sync::watch` channel, and prints none of its own lines meanwhile (a
//! phase interrupted or a watcher warning becomes the TUI's note). The TUI owns the terminal
//! and its keys, so neither `RawMode` nor a key reader runs; its `q` cancels the loop's
//! `quit` token, as does the TUI ending for any reason. The loop closes the channel once the
//! services are stopped, and says `milo: watch stopped …` after the TUI has given the
//! terminal back.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use milo::pipeline::{Eta, Interrupts, Pipeline, PipelineState, RunOptions, ServicePool, Status};
use milo_cache::Cache;
use milo_tui::{Cycle, WatchStatus};
use tokio::sync::watch as channel;
use tokio_util::sync::CancellationToken;

use crate::cli::{Ui, WatchArgs};
use crate::config::OnChange;
use crate::error::CliError;
use crate::views::View;
use crate::views::json::JsonView;
use crate::views::plain::PlainView;
use crate::views::progress::ProgressView;
use crate::{build, color, config, incremental, signals};

/// How many changed paths a cycle's header names before `(+N more)`.
const SHOWN_PATHS: usize = 5;

/// What the watch loop knows about the phases.
struct Phases {
    names: Vec<Arc<str>>,
    /// Each phase and everything it depends on, transitively (indices).
    upstream: Vec<Vec<usize>>,
    /// Phases with `on_change = "restart"`.
    restart: Vec<usize>,
    /// Service phases.
    services: Vec<usize>,
}

impl Phases {
    fn new(file: &config::PipelineFile, pipeline: &Pipeline) -> Self {
        let def = pipeline.def();
        let names: Vec<Arc<str>> = def.phases.iter().map(|p| p.name.clone()).collect();
        let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for &i in def.order() {
            let mut all: BTreeSet<usize> = BTreeSet::from([i]);
            for &d in &def.phases[i].deps {
                all.extend(upstream[d].iter().copied());
            }
            upstream[i] = all.into_iter().collect();
        }
        let on_change = |name: &str| {
            file.phases
                .iter()
                .find(|p| p.name == name)
                .map_or(OnChange::Queue, |p| p.on_change)
        };
        let restart = (0..names.len())
            .filter(|&i| on_change(&names[i]) == OnChange::Restart)
            .collect();
        let services = (0..names.len()).filter(|&i| def.phases[i].service).collect();
        Self {
            names,
            upstream,
            restart,
            services,
        }
    }

    /// Whether a change of one of `paths` can change phase `i`'s key or one of its
    /// dependencies'.
    fn affected(&self, cache: &Cache, i: usize, paths: &[PathBuf]) -> bool {
        self.upstream[i]
            .iter()
            .any(|&u| paths.iter().any(|p| cache.is_source(&self.names[u], p)))
    }
}

pub fn watch(args: WatchArgs) -> Result<u8, CliError> {
    let file = config::load_with(
        &args.file.file,
        &config::ParamInputs::new(args.params.params.clone(), true),
    )?;
    let mut pipeline = build::pipeline(&file, &args.targets)?;
    super::print_warnings(&file);
    let flags = incremental::Flags {
        watched: Some(file.dir.clone()),
        ..incremental::Flags::default()
    };
    let Some(cache) = incremental::open(&file, &pipeline, &flags)? else {
        return Err(CliError::usage(
            format!(
                "`milo watch` has nothing to watch: no phase of {} has `sources`",
                file.path.display()
            ),
            Some("add the files each phase reads, such as `sources = [\"src/**\"]`; `milo run` runs it once".into()),
        ));
    };
    pipeline = pipeline.incremental(cache.clone());
    if let Some(j) = args.jobs {
        pipeline = pipeline.jobs(j as usize);
    }
    let ui = match args.ui {
        Ui::Tui if !std::io::stdout().is_terminal() => {
            return Err(CliError::usage(
                "--ui tui needs a terminal, but standard output is not one",
                Some("run `milo watch --ui tui` in a terminal, or use --ui plain or --ui json when piping".into()),
            ));
        }
        Ui::Tui => {
            pipeline = pipeline.capture_output(true);
            Ui::Tui
        }
        Ui::Auto | Ui::Progress if std::io::stderr().is_terminal() && pipeline.captures_output() => Ui::Progress,
        Ui::Auto | Ui::Progress => Ui::Plain,
        other => other,
    };
    let phases = Phases::new(&file, &pipeline);
    let never: Vec<PathBuf> = phases.names.iter().flat_map(|n| cache.outputs_of(n)).collect();
    let wanted = {
        let (cache, names) = (cache.clone(), phases.names.clone());
        move |p: &Path| names.iter().any(|n| cache.is_source(n, p))
    };
    // The cache remembers each phase's source walk and is told of every change instead of
    // walking the tree again every cycle.
    let rules = milo_watch::Rules::new(file.dir.clone(), never, wanted).on_every_change({
        let cache = cache.clone();
        move |paths| cache.changed(paths)
    });
    let mode = if args.poll {
        milo_watch::Mode::Poll(Duration::from_millis(args.poll_interval.max(10)))
    } else {
        milo_watch::Mode::Events
    };
    let history = if args.no_history {
        None
    } else {
        milo_history::cli::open_for_run(&args.file.file, args.db.as_deref())
    };
    let medians = history
        .as_ref()
        .and_then(|h| h.median_durations(pipeline.name()).ok())
        .unwrap_or_default();
    let session = Session {
        eta: Eta::new(medians, pipeline.job_limit()),
        pipeline,
        cache,
        phases,
        ui,
        root: file.dir.clone(),
        history,
        screen: None,
        record: milo_history::RecordOptions {
            pipeline_file: Some(args.file.file.display().to_string()),
            resumed_from: None,
            params: config::resolved_params(&file),
            trigger: None,
            keep_runs: Some(args.keep_runs),
        },
    };
    drop(file);
    // Declared before the runtime: dropped after it, on every way out of this function. The
    // TUI puts the terminal in its own modes and reads the keys itself.
    let raw = if ui == Ui::Tui { None } else { RawMode::enable() };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("could not start the async runtime: {e}")))?;
    let keys = raw.is_some();
    runtime.block_on(session.run(rules, mode, Duration::from_millis(args.debounce.max(1)), keys))
}

struct Session {
    pipeline: Pipeline,
    cache: Arc<Cache>,
    phases: Phases,
    ui: Ui,
    eta: Eta,
    root: PathBuf,
    history: Option<milo_history::History>,
    record: milo_history::RecordOptions,
    /// With `--ui tui`: what the TUI shows, until the watch has ended.
    screen: Option<channel::Sender<WatchStatus>>,
}

impl Session {
    /// `keys`: the terminal is in raw mode and single keys stop the watch.
    async fn run(
        mut self,
        rules: milo_watch::Rules,
        mode: milo_watch::Mode,
        debounce: Duration,
        keys: bool,
    ) -> Result<u8, CliError> {
        let mut watcher =
            milo_watch::Watcher::start(rules, mode, debounce).map_err(|e| CliError::usage(e.to_string(), None))?;
        let quit = CancellationToken::new();
        let done = CancellationToken::new();
        let signal_watch = tokio::spawn(signals::watch(quit.clone(), done.clone()));
        let tui = if self.ui == Ui::Tui {
            let (tx, rx) = channel::channel(WatchStatus::default());
            self.screen = Some(tx);
            let (quit, eta) = (quit.clone(), self.eta.clone());
            Some(tokio::spawn(async move {
                let outcome = milo_tui::run_tui_cycles(rx, quit.clone(), eta).await;
                // However the TUI ended, nobody could see or stop the watch any more.
                quit.cancel();
                outcome
            }))
        } else {
            if keys {
                quit_on_keys(quit.clone());
            } else {
                quit_on_q(quit.clone());
            }
            None
        };
        let pool = ServicePool::new();
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut cycle = 0u64;
        let mut result = Ok(0);
        loop {
            cycle += 1;
            // A service whose own sources changed starts anew.
            for &s in &self.phases.services {
                let name = &self.phases.names[s];
                if changed.iter().any(|p| self.cache.is_source(name, p)) {
                    pool.stop(name).await;
                }
            }
            if let Err(e) = self.announce(cycle, &changed, &pool) {
                result = Err(e);
                break;
            }
            let interrupts = Interrupts::new();
            let options = RunOptions {
                stop: quit.child_token(),
                services: Some(pool.clone()),
                interrupts: Some(interrupts.clone()),
                ..RunOptions::default()
            };
            let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
            let run = self.cycle(options, cycle, changed.iter().map(|p| self.rel(p)).collect());
            tokio::pin!(run);
            let ended = loop {
                tokio::select! {
                    ended = &mut run => break ended,
                    batch = watcher.next() => match batch {
                        Some(Ok(paths)) => {
                            self.interrupt_affected(&interrupts, &paths);
                            pending.extend(paths);
                        }
                        Some(Err(e)) => self.warn(&format!("the file watcher reported an error (changes may have been missed): {e}")),
                        None => {}
                    },
                }
            };
            pending.extend(watcher.drain());
            if let Err(e) = ended {
                result = Err(e);
                break;
            }
            if quit.is_cancelled() {
                break;
            }
            if !pending.is_empty() {
                changed = pending.into_iter().collect();
                continue;
            }
            self.waiting(&pool, keys);
            changed = tokio::select! {
                batch = watcher.next() => match batch {
                    Some(Ok(paths)) => paths,
                    Some(Err(e)) => {
                        self.warn(&format!("the file watcher reported an error (changes may have been missed): {e}"));
                        Vec::new()
                    }
                    None => break,
                },
                _ = quit.cancelled() => break,
            };
        }
        pool.stop_all().await;
        // Closing the channel ends the TUI, which gives the terminal back.
        self.screen = None;
        if let Some(tui) = tui {
            match tui.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => result = result.and(Err(CliError::Internal(format!("the TUI failed: {e}")))),
                Err(e) => result = result.and(Err(CliError::Internal(format!("the TUI stopped unexpectedly: {e}")))),
            }
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "milo: watch stopped after {cycle} cycle{}",
            if cycle == 1 { "" } else { "s" }
        );
        done.cancel();
        let _ = signal_watch.await;
        result
    }

    /// Interrupts the running phases with `on_change = "restart"` that `paths` affect.
    fn interrupt_affected(&self, interrupts: &Interrupts, paths: &[PathBuf]) {
        for &i in &self.phases.restart {
            let name = &self.phases.names[i];
            if self.phases.affected(&self.cache, i, paths) && interrupts.interrupt(name) {
                let line = format!(
                    "`{name}` interrupted (on_change = \"restart\"): {} changed",
                    self.shown(paths)
                );
                self.say(line);
            }
        }
    }

    /// The paths, relative to the root, at most [`SHOWN_PATHS`] of them.
    fn shown(&self, paths: &[PathBuf]) -> String {
        let mut out: Vec<String> = paths
            .iter()
            .take(SHOWN_PATHS)
            .map(|p| crate::color::Palette::plain().clean(&self.rel(p)).into_owned())
            .collect();
        if paths.len() > SHOWN_PATHS {
            out.push(format!("(+{} more)", paths.len() - SHOWN_PATHS));
        }
        out.join(", ")
    }

    fn rel(&self, p: &Path) -> String {
        match p.strip_prefix(&self.root) {
            // The root: events were lost, everything is checked again.
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => p.display().to_string(),
        }
    }

    /// Changes what the TUI shows, if there is one.
    fn show(&self, change: impl FnOnce(&mut WatchStatus)) {
        if let Some(screen) = &self.screen {
            screen.send_modify(change);
        }
    }

    /// One of the watch's messages: the TUI's note, or a `milo: …` line on stderr.
    fn say(&self, line: String) {
        if self.screen.is_some() {
            self.show(|s| s.note = Some(line));
        } else {
            let _ = writeln!(std::io::stderr().lock(), "milo: {line}");
        }
    }

    fn warn(&self, message: &str) {
        self.say(format!("warning: {message}"));
    }

    /// The cycle's first line: its number and what changed (the TUI shows them once the
    /// cycle's store exists, in [`Session::cycle`]).
    fn announce(&self, cycle: u64, changed: &[PathBuf], pool: &ServicePool) -> Result<(), CliError> {
        let out = match self.ui {
            Ui::Tui => {
                self.show(|s| s.services = pool.names().iter().map(|n| n.to_string()).collect());
                Ok(())
            }
            Ui::Json => {
                let line = serde_json::json!({
                    "type": "@@WATCH_CYCLE",
                    "payload": {
                        "cycle": cycle,
                        "changed": changed.iter().map(|p| self.rel(p)).collect::<Vec<_>>(),
                    }
                });
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").and_then(|()| out.flush())
            }
            _ => {
                let what = if changed.is_empty() {
                    String::new()
                } else {
                    format!(": {} changed", self.shown(changed))
                };
                let line = format!("milo: cycle {cycle}{what}");
                if self.ui == Ui::Progress {
                    writeln!(std::io::stderr().lock(), "{line}")
                } else {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{line}").and_then(|()| out.flush())
                }
            }
        };
        match out {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Io {
                action: "write the watch's output to",
                path: "stdout".into(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn waiting(&self, pool: &ServicePool, keys: bool) {
        let services = pool.names();
        if self.screen.is_some() {
            self.show(|s| {
                s.waiting = true;
                s.services = services.iter().map(|n| n.to_string()).collect();
            });
            return;
        }
        let up = if services.is_empty() {
            String::new()
        } else {
            format!(
                "; services up: {}",
                services.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            )
        };
        let how = if keys {
            "q or Ctrl-C"
        } else {
            "q then Enter, or Ctrl-C,"
        };
        let _ = writeln!(std::io::stderr().lock(), "milo: watching for changes{up} ({how} stops)");
    }

    /// One cycle, number `number` for a change of `changed` (relative paths): one run, recorded in the
    /// history, shown by the session's view.
    async fn cycle(
        &self,
        options: RunOptions,
        number: u64,
        changed: Vec<String>,
    ) -> Result<(Status, Arc<PipelineState>), CliError> {
        let store = self.pipeline.store().map_err(|e| CliError::Internal(e.to_string()))?;
        let record = milo_history::RecordOptions {
            trigger: Some(milo_history::Trigger::watch(number, changed.clone())),
            ..self.record.clone()
        };
        self.show(|s| {
            s.cycle = Some(Cycle {
                number,
                changed,
                store: store.clone(),
            });
            s.waiting = false;
            s.note = None;
        });
        let recorder = self
            .history
            .as_ref()
            .and_then(|h| match h.recorder(&self.pipeline, record) {
                Ok(r) => Some(r),
                Err(e) => {
                    milo_history::cli::warn(&e);
                    None
                }
            });
        let recording = recorder.as_ref().map(|r| r.subscribe(&store));
        let view: Option<Box<dyn View>> = match self.ui {
            Ui::Tui => None,
            Ui::Json => Some(Box::new(JsonView::start(&store))),
            Ui::Progress => Some(Box::new(ProgressView::start(
                &store,
                self.eta.clone(),
                color::for_stderr(),
            ))),
            _ => Some(Box::new(PlainView::start(&store, color::for_stdout()))),
        };
        let report = self.pipeline.run_with(&store, options).await;
        drop(recording);
        let status = report.as_ref().map_or(Status::Failed, |r| r.status);
        if let Some(recorder) = recorder
            && let Err(e) = recorder.finish(status, i32::from(super::run::exit_code(status)))
        {
            milo_history::cli::warn_unrecorded(&e);
        }
        let state = store.get_state();
        if let Some(view) = view {
            view.finish(&state).map_err(|source| CliError::Io {
                action: "write the watch's output to",
                path: "stdout".into(),
                source,
            })?;
        }
        report.map_err(|e| CliError::Internal(format!("the cycle stopped unexpectedly: {e}")))?;
        Ok((status, state))
    }
}

fn warn(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "milo: warning: {message}");
}

/// Cancels `quit` when a line `q` arrives on standard input (its end changes nothing: a
/// watch started with stdin closed runs until a signal).
fn quit_on_q(quit: CancellationToken) {
    let spawned = std::thread::Builder::new()
        .name("milo-watch-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                match line {
                    Ok(l) if l.trim() == "q" => {
                        quit.cancel();
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    if spawned.is_err() {
        warn("could not read standard input: only Ctrl-C stops the watch");
    }
}

/// The terminal on standard input in raw mode (no line editing, no echo, Ctrl-C a key) with
/// output processing kept on, for as long as this lives; dropping it restores the modes the
/// terminal had.
struct RawMode;

impl RawMode {
    /// Raw mode, if standard input is a terminal and it can be set (a warning if not).
    fn enable() -> Option<Self> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        if let Err(e) = crossterm::terminal::enable_raw_mode() {
            warn(&format!(
                "could not put the terminal in raw mode ({e}): stop the watch with q then Enter"
            ));
            return None;
        }
        let guard = RawMode;
        // crossterm's raw mode also turns off output processing; with it on again, every
        // `\n` milo and its phases write still starts the next line in the first column.
        let stdin = std::io::stdin();
        let kept = nix::sys::termios::tcgetattr(&stdin).and_then(|mut t| {
            use nix::sys::termios::{OutputFlags, SetArg, tcsetattr};
            t.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
            tcsetattr(&stdin, SetArg::TCSANOW, &t)
        });
        if let Err(e) = kept {
            // Output in raw mode would not return to the first column: better line mode.
            warn(&format!(
                "could not set the terminal's modes ({e}): stop the watch with q then Enter"
            ));
            return None;
        }
        Some(guard)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = crossterm::terminal::disable_raw_mode() {
            warn(&format!(
                "could not restore the terminal ({e}): run `stty sane` to fix it"
            ));
        }
    }
}

/// Reads single keys from the terminal (in raw mode): `q` cancels `quit`; Ctrl-C does what
/// SIGINT does (the first cancels `quit`, a second kills every process the phases started).
fn quit_on_keys(quit: CancellationToken) {
    use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, read};
    let spawned = std::thread::Builder::new()
        .name("milo-watch-keys".into())
        .spawn(move || {
            loop {
                match read() {
                    Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
                        match k.code {
                            KeyCode::Char('c') if ctrl => {
                                if quit.is_cancelled() {
                                    signals::kill_phase_groups();
                                }
                                quit.cancel();
                            }
                            KeyCode::Char('q' | 'Q') if !ctrl => quit.cancel(),
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    if spawned.is_err() {
        warn("could not read the terminal: only SIGINT or SIGTERM stops the watch");
    }
}
