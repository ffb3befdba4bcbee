//! Terminal-safe text: [`sanitize`] turns text a phase controls (its output lines, errors,
//! names, descriptions) into text that can be written to a terminal without the terminal
//! acting on it.
//!
//! A phase's output is data, not instructions for the user's terminal: left raw, it could
//! clear the screen and forge milo's own lines, set the window title (OSC 0), write the
//! clipboard (OSC 52), or move the cursor back over earlier lines. Every view that writes
//! such text to a terminal passes it through [`sanitize`] first. The escape sequences are
//! parsed with [`vte`] (the parser of the Alacritty terminal), so the sequences are
//! recognised as a terminal would recognise them.
//!
//! What is kept: printable characters, and SGR (colour and style, `ESC [ … m`) with
//! [`Sgr::Keep`], closed by a reset at the end so a colour cannot leak into the next line.
//! A tab becomes four spaces. A newline becomes a space (a single line stays one line).
//! Everything else is dropped: every other CSI (cursor movement, erase, modes), OSC, DCS,
//! SOS/PM/APC strings, other escapes, and every other C0 and C1 control, `\r` included.

use std::borrow::Cow;

/// What [`sanitize`] does with SGR sequences (colours and styles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sgr {
    /// Keep them (for a colour terminal); a reset is appended when any was kept.
    Keep,
    /// Drop them too (for a terminal without colour, or plain text).
    Drop,
}

/// `s` with every control sequence and control character a terminal would act on removed
/// (see the [module docs](self)); borrowed when there was nothing to remove.
///
/// ```
/// use milo::text::{Sgr, sanitize};
///
/// // Erase the screen, move home, then print in green: only the colour may stay.
/// let forged = "\x1b[2J\x1b[H\x1b[32m✓\x1b[0m done";
/// assert_eq!(sanitize(forged, Sgr::Drop), "✓ done");
/// assert_eq!(sanitize(forged, Sgr::Keep), "\x1b[32m✓\x1b[0m done\x1b[0m");
/// // OSC 52 would write the clipboard; a bare `\r` would overwrite the line's start.
/// assert_eq!(sanitize("\x1b]52;c;ZXZpbA==\x07ok\rno", Sgr::Drop), "okno");
/// assert_eq!(sanitize("plain ✓ text", Sgr::Keep), "plain ✓ text");
/// ```
pub fn sanitize(s: &str, sgr: Sgr) -> Cow<'_, str> {
    if !needs_sanitizing(s) {
        return Cow::Borrowed(s);
    }
    let mut clean = Clean {
        out: String::with_capacity(s.len()),
        sgr,
        coloured: false,
    };
    let mut parser = vte::Parser::new();
    for &b in s.as_bytes() {
        parser.advance(&mut clean, b);
    }
    if clean.coloured {
        clean.out.push_str("\x1b[0m");
    }
    Cow::Owned(clean.out)
}

/// Whether `s` holds a C0 control, DEL or a C1 control (U+0080..U+009F, `C2 80`..`C2 9F` in
/// UTF-8): the only bytes that can start anything a terminal acts on.
fn needs_sanitizing(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c < 0x20 || c == 0x7f || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n))))
}

/// The [`vte::Perform`] that keeps the printable text (and SGR when asked).
struct Clean {
    out: String,
    sgr: Sgr,
    coloured: bool,
}

impl vte::Perform for Clean {
    fn print(&mut self, c: char) {
        // vte prints C1 controls that arrive UTF-8 encoded (U+0080..U+009F) as characters.
        if !c.is_control() {
            self.out.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\t' => self.out.push_str("    "),
            b'\n' => self.out.push(' '),
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, params: &vte::Params, intermediates: &[u8], ignore: bool, action: char) {
        if action != 'm' || !intermediates.is_empty() || ignore || self.sgr == Sgr::Drop {
            return;
        }
        self.out.push_str("\x1b[");
        for (i, param) in params.iter().enumerate() {
            if i > 0 {
                self.out.push(';');
            }
            for (j, sub) in param.iter().enumerate() {
                if j > 0 {
                    self.out.push(':');
                }
                self.out.push_str(&sub.to_string());
            }
        }
        self.out.push('m');
        self.coloured = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_but_text_and_sgr_is_dropped() {
        let cases = [
            ("\x1b[31mred\x1b[0m", "red"),
            ("a\tb", "a    b"),
            ("\x1b]0;title\x07x", "x"),
            ("\x1b]0;title\x1b\\x", "x"),
            ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
            ("\x1b]52;c;ZXZpbA==\x07clip", "clip"),
            ("cr\rlf\0", "crlf"),
            ("trailing\x1b", "trailing"),
            ("bell\x07 and backspace\x08", "bell and backspace"),
            ("two\nlines", "two lines"),
            ("\x1bPq#0;2;0;0;0#1!\x1b\\dcs", "dcs"),
            ("\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\after", "after"),
            ("\x1b[2J\x1b[H\x1b[?1049h\x1b[5A\x1b[Kmoved", "moved"),
            ("\x1b7\x1b8\x1bc\x1b(0saved", "saved"),
            // 8-bit C1 controls, UTF-8 encoded: CSI, OSC, NEL.
            ("\u{9b}2Jx\u{9d}0;t\u{7}y\u{85}z", "2Jx0;tyz"),
            ("naïve ✓ 日本", "naïve ✓ 日本"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize(input, Sgr::Drop), want, "{input:?}");
        }
    }

    #[test]
    fn sgr_is_kept_on_request_and_reset_at_the_end() {
        assert_eq!(sanitize("\x1b[1;31mred", Sgr::Keep), "\x1b[1;31mred\x1b[0m");
        assert_eq!(sanitize("\x1b[38:2:1:2:3mx", Sgr::Keep), "\x1b[38:2:1:2:3mx\x1b[0m");
        assert_eq!(sanitize("\x1b[mx", Sgr::Keep), "\x1b[0mx\x1b[0m");
        // Not SGR: a private mode, a cursor move.
        assert_eq!(sanitize("\x1b[?25l\x1b[2Ax", Sgr::Keep), "x");
        assert!(matches!(sanitize("clean", Sgr::Keep), Cow::Borrowed(_)));
    }
}
