//! Terminal key events to the detail reducer's [`Key`]s.
//!
//! The reducer owns every decision about what a key does; this only translates. Ctrl-C and
//! Ctrl-D arrive as key events in raw mode and mean the same as `q`; `j`/`k` and Page Up/Down
//! are offered as the usual aliases of ↓/↑.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use milo::pipeline::Key;

/// The reducer keys for one key event, or an empty list for keys the view ignores.
pub(crate) fn translate(event: &KeyEvent, page: usize) -> Vec<Key> {
    if event.kind == KeyEventKind::Release {
        return Vec::new();
    }
    if event.modifiers.contains(KeyModifiers::CONTROL) {
        return match event.code {
            KeyCode::Char('c' | 'C' | 'd' | 'D') => vec![Key::Char('q')],
            _ => Vec::new(),
        };
    }
    let key = match event.code {
        KeyCode::Up | KeyCode::Char('k') => Key::Up,
        KeyCode::Down | KeyCode::Char('j') => Key::Down,
        KeyCode::Enter => Key::Enter,
        KeyCode::Char(' ') => Key::Space,
        KeyCode::Esc => Key::Esc,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => return vec![Key::Up; page.max(1)],
        KeyCode::PageDown => return vec![Key::Down; page.max(1)],
        KeyCode::Char('Q') => Key::Char('q'),
        KeyCode::Char(c @ ('g' | 'G' | 'f' | 'q')) => Key::Char(c),
        _ => return Vec::new(),
    };
    vec![key]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_map_to_the_reducer() {
        assert_eq!(translate(&press(KeyCode::Up), 5), [Key::Up]);
        assert_eq!(translate(&press(KeyCode::Char('j')), 5), [Key::Down]);
        assert_eq!(translate(&press(KeyCode::Enter), 5), [Key::Enter]);
        assert_eq!(translate(&press(KeyCode::Char('G')), 5), [Key::Char('G')]);
        assert_eq!(translate(&press(KeyCode::Char('g')), 5), [Key::Char('g')]);
        assert_eq!(translate(&press(KeyCode::Char('Q')), 5), [Key::Char('q')]);
        assert_eq!(translate(&press(KeyCode::PageDown), 3), [Key::Down; 3]);
        assert!(translate(&press(KeyCode::Char('x')), 5).is_empty());
    }

    #[test]
    fn ctrl_c_quits() {
        let ev = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(translate(&ev, 5), [Key::Char('q')]);
        let ev = KeyEvent::new(KeyCode::Char('f'), KeyModifiers::CONTROL);
        assert!(translate(&ev, 5).is_empty());
    }

    #[test]
    fn releases_are_ignored() {
        let mut ev = press(KeyCode::Char('q'));
        ev.kind = KeyEventKind::Release;
        assert!(translate(&ev, 5).is_empty());
    }
}
