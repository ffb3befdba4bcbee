//! Colour: whether a stream gets colours, and the [`Palette`] the views and error messages
//! paint with.
//!
//! The choice follows cargo's rules: `--color always|never` wins; with `--color auto` (the
//! default) a non-empty `NO_COLOR` turns colour off, else a non-empty `CLICOLOR_FORCE` other
//! than `0` turns it on, else `CLICOLOR=0` or `TERM=dumb` turn it off, else the stream gets
//! colour when it is a terminal. [`init`] records `--color` once, in `main`; views then ask
//! [`for_stdout`] or [`for_stderr`].

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::OnceLock;

use anstyle::{AnsiColor, Style};
use milo::pipeline::Status;
use milo::text::{Sgr, sanitize};

/// `--color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when the output is a terminal (and NO_COLOR, CLICOLOR_FORCE allow).
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Records `--color` for the whole process (the first call wins).
pub fn init(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// Whether a stream gets colour under `choice`, given whether it is a terminal and the
/// environment variable lookup `var` (see the [module docs](self)).
pub fn decide(choice: ColorChoice, is_terminal: bool, var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if set("NO_COLOR") => false,
        ColorChoice::Auto if set("CLICOLOR_FORCE") && var("CLICOLOR_FORCE").as_deref() != Some("0") => true,
        ColorChoice::Auto if var("CLICOLOR").as_deref() == Some("0") => false,
        ColorChoice::Auto if var("TERM").as_deref() == Some("dumb") => false,
        ColorChoice::Auto => is_terminal,
    }
}

fn palette(is_terminal: bool) -> Palette {
    let choice = CHOICE.get().copied().unwrap_or_default();
    Palette::new(decide(choice, is_terminal, |k| std::env::var(k).ok()))
}

/// The palette for what milo writes to stdout.
pub fn for_stdout() -> Palette {
    palette(std::io::stdout().is_terminal())
}

/// The palette for what milo writes to stderr.
pub fn for_stderr() -> Palette {
    palette(std::io::stderr().is_terminal())
}

/// Green: completed.
pub const GREEN: Style = AnsiColor::Green.on_default();
/// Red: failed, errors.
pub const RED: Style = AnsiColor::Red.on_default();
/// Yellow: retrying, skipped, attempts.
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
/// Cyan: the spinner, help.
pub const CYAN: Style = AnsiColor::Cyan.on_default();
/// Queued (waiting in a batch scheduler).
pub const BLUE: Style = AnsiColor::Blue.on_default();
/// Dim: durations, markers, secondary text.
pub const DIM: Style = Style::new().dimmed();
/// Bold: names.
pub const BOLD: Style = Style::new().bold();

/// Paints text with styles when colour is on; passes it through unchanged when it is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    on: bool,
}

impl Palette {
    /// A palette that paints (`on`) or not.
    pub const fn new(on: bool) -> Self {
        Self { on }
    }

    /// No colour.
    pub const fn plain() -> Self {
        Self::new(false)
    }

    /// Whether it paints.
    pub fn is_on(self) -> bool {
        self.on
    }

    /// `text` in `style` (nothing at all for an empty text).
    pub fn paint(self, style: Style, text: impl Display) -> String {
        let text = text.to_string();
        if self.on && !text.is_empty() {
            format!("{style}{text}{style:#}")
        } else {
            text
        }
    }

    /// Phase-controlled text made safe for the terminal: its own colours are kept when this
    /// palette paints, every other control sequence is dropped ([`milo::text::sanitize`]).
    pub fn clean(self, text: &str) -> std::borrow::Cow<'_, str> {
        sanitize(text, if self.on { Sgr::Keep } else { Sgr::Drop })
    }

    /// The style of a status symbol or word.
    pub fn status_style(status: Status) -> Style {
        match status {
            Status::Completed => GREEN,
            Status::Failed => RED.bold(),
            Status::Retrying | Status::Skipped => YELLOW,
            Status::Running => CYAN,
            Status::Queued => BLUE,
            Status::Cancelled | Status::Pending => DIM,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_flag_wins_then_no_color_then_clicolor_force_then_the_terminal() {
        use ColorChoice::*;
        assert!(decide(Always, false, env(&[("NO_COLOR", "1")])));
        assert!(!decide(Never, true, env(&[("CLICOLOR_FORCE", "1")])));
        assert!(decide(Auto, true, env(&[])));
        assert!(!decide(Auto, false, env(&[])));
        assert!(!decide(Auto, true, env(&[("NO_COLOR", "1")])));
        assert!(decide(Auto, true, env(&[("NO_COLOR", "")])));
        assert!(!decide(Auto, true, env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")])));
        assert!(decide(Auto, false, env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!decide(Auto, false, env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!decide(Auto, true, env(&[("CLICOLOR", "0")])));
        assert!(!decide(Auto, true, env(&[("TERM", "dumb")])));
    }
}
