//! The terminal's modes: [`TerminalGuard`] enters raw mode and the alternate screen, and puts
//! the terminal back however the TUI ends.
//!
//! Restoring happens in three places, each idempotent through one process-wide flag: the
//! guard's `Drop` (normal end, `q`, an error, unwinding), and a panic hook installed once per
//! process that restores before chaining to the previous hook, so the panic message lands on
//! the normal screen. A panic caught elsewhere (a phase handler, a reducer inside the store)
//! also runs the hook; the TUI notices with [`TerminalGuard::take_interrupted`] and enters its
//! modes again.

use std::io::{self, IsTerminal, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};

use crate::TuiError;

/// Whether the terminal is in the TUI's modes right now.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set when the panic hook restored the terminal while a guard was alive.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Holds the terminal in raw mode on the alternate screen until dropped.
#[derive(Debug)]
pub(crate) struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    /// Checks that stdout is a terminal, installs the panic hook and enters the TUI's modes.
    pub(crate) fn enter() -> Result<Self, TuiError> {
        if !io::stdout().is_terminal() {
            return Err(TuiError::NotATerminal);
        }
        install_panic_hook();
        INTERRUPTED.store(false, Ordering::SeqCst);
        let guard = TerminalGuard { _private: () };
        enter_modes()?;
        Ok(guard)
    }

    /// Whether a panic hook restored the terminal since the last call; if so, the modes are
    /// entered again and the caller must redraw everything.
    pub(crate) fn take_interrupted(&self) -> Result<bool, TuiError> {
        if INTERRUPTED.swap(false, Ordering::SeqCst) {
            enter_modes()?;
            return Ok(true);
        }
        Ok(false)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        INTERRUPTED.store(false, Ordering::SeqCst);
    }
}

fn enter_modes() -> Result<(), TuiError> {
    // Mark active first so a failure half way still restores what was changed.
    ACTIVE.store(true, Ordering::SeqCst);
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, Hide)?;
    Ok(())
}

/// Leaves raw mode and the alternate screen if the TUI had entered them. Safe to call from a
/// panic hook and more than once; errors are ignored because there is nothing left to do.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let mut out = io::stdout();
        let _ = execute!(out, Show, LeaveAlternateScreen);
        let _ = out.flush();
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) {
                restore();
                INTERRUPTED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}
