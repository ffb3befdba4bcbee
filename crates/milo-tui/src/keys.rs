//! Terminal key events to the detail reducer's [`Key`]s.
//!
//! The reducer owns every decision about what a key does; this only translates. Ctrl-C and
//! Ctrl-D arrive as key events in raw mode and mean the same as `q`; `j`/`k` and Page Up/Down
//! are offered as the usual aliases of ↓/↑. →/Tab and ←/Shift-Tab select the next and previous
//! phase: in the overview as ↓/↑, and with the logs open as "close, move, open" (Esc, ↓/↑,
//! Enter), so the log pane switches to the neighbouring phase in one key.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use milo::pipeline::Key;

/// What the translation of a key depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// Log lines per page, for Page Up/Down.
    pub(crate) page: usize,
    /// Whether the selected phase's logs are open.
    pub(crate) expanded: bool,
    /// The selected phase's position and the number of phases.
    pub(crate) selected: usize,
    pub(crate) phases: usize,
}

/// The reducer keys for one key event, or an empty list for keys the view ignores.
pub(crate) fn translate(event: &KeyEvent, cx: Context) -> Vec<Key> {
    let page = cx.page;
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
        KeyCode::Right | KeyCode::Tab => return neighbour(cx, Key::Down),
        KeyCode::Left | KeyCode::BackTab => return neighbour(cx, Key::Up),
        KeyCode::PageUp => return vec![Key::Up; page.max(1)],
        KeyCode::PageDown => return vec![Key::Down; page.max(1)],
        KeyCode::Char('Q') => Key::Char('q'),
        KeyCode::Char(c @ ('g' | 'G' | 'f' | 'q')) => Key::Char(c),
        _ => return Vec::new(),
    };
    vec![key]
}

/// The keys that select the next (`Down`) or previous (`Up`) phase, keeping the logs open if
/// they are; nothing at either end of the list.
fn neighbour(cx: Context, direction: Key) -> Vec<Key> {
    let at_end = match direction {
        Key::Up => cx.selected == 0,
        _ => cx.selected + 1 >= cx.phases,
    };
    if at_end {
        Vec::new()
    } else if cx.expanded {
        vec![Key::Esc, direction, Key::Enter]
    } else {
        vec![direction]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(page: usize) -> Context {
        Context {
            page,
            expanded: false,
            selected: 1,
            phases: 3,
        }
    }

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_map_to_the_reducer() {
        assert_eq!(translate(&press(KeyCode::Up), cx(5)), [Key::Up]);
        assert_eq!(translate(&press(KeyCode::Char('j')), cx(5)), [Key::Down]);
        assert_eq!(translate(&press(KeyCode::Enter), cx(5)), [Key::Enter]);
        assert_eq!(translate(&press(KeyCode::Char('G')), cx(5)), [Key::Char('G')]);
        assert_eq!(translate(&press(KeyCode::Char('g')), cx(5)), [Key::Char('g')]);
        assert_eq!(translate(&press(KeyCode::Char('Q')), cx(5)), [Key::Char('q')]);
        assert_eq!(translate(&press(KeyCode::PageDown), cx(3)), [Key::Down; 3]);
        assert!(translate(&press(KeyCode::Char('x')), cx(5)).is_empty());
    }

    #[test]
    fn arrows_and_tab_select_the_neighbouring_phase_with_the_logs_open() {
        let open = Context {
            expanded: true,
            ..cx(5)
        };
        assert_eq!(
            translate(&press(KeyCode::Right), open),
            [Key::Esc, Key::Down, Key::Enter]
        );
        assert_eq!(translate(&press(KeyCode::Tab), open), [Key::Esc, Key::Down, Key::Enter]);
        assert_eq!(translate(&press(KeyCode::Left), open), [Key::Esc, Key::Up, Key::Enter]);
        assert_eq!(
            translate(&press(KeyCode::BackTab), open),
            [Key::Esc, Key::Up, Key::Enter]
        );
        assert_eq!(translate(&press(KeyCode::Right), cx(5)), [Key::Down]);
        assert_eq!(translate(&press(KeyCode::Left), cx(5)), [Key::Up]);
        // Nothing past either end, so the logs stay open where they are.
        let last = Context { selected: 2, ..open };
        assert!(translate(&press(KeyCode::Right), last).is_empty());
        let first = Context { selected: 0, ..open };
        assert!(translate(&press(KeyCode::Left), first).is_empty());
    }

    #[test]
    fn ctrl_c_quits() {
        let ev = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(translate(&ev, cx(5)), [Key::Char('q')]);
        let ev = KeyEvent::new(KeyCode::Char('f'), KeyModifiers::CONTROL);
        assert!(translate(&ev, cx(5)).is_empty());
    }

    #[test]
    fn releases_are_ignored() {
        let mut ev = press(KeyCode::Char('q'));
        ev.kind = KeyEventKind::Release;
        assert!(translate(&ev, cx(5)).is_empty());
    }
}
