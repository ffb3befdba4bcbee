//! Terminal key events to the detail reducer's [`Key`]s.
//!
//! The reducer owns every decision about what a key does; this only translates. Ctrl-C and
//! Ctrl-D arrive as key events in raw mode and mean the same as `q`; `j`/`k` and Page Up/Down
//! are offered as the usual aliases of ↓/↑. →/Tab and ←/Shift-Tab select the next and previous
//! row: in the overview as ↓/↑, and with the logs open as "close, move, open" (Esc, ↓/↑ as
//! often as it takes to reach the neighbouring phase's row, passing over groups' rows, Enter),
//! so the log pane switches to the neighbouring phase in one key.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use milo::pipeline::{Key, PipelineViewState, VisibleRow};

/// What the translation of a key depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// Log lines per page, for Page Up/Down.
    pub(crate) page: usize,
    /// Whether the selected phase's logs are open.
    pub(crate) expanded: bool,
    /// How many rows down and up the nearest phase's row is (not a group's: it has no logs),
    /// if there is one.
    pub(crate) next_phase: Option<usize>,
    pub(crate) prev_phase: Option<usize>,
    /// Whether the selection is on the last and the first visible row.
    pub(crate) at_last: bool,
    pub(crate) at_first: bool,
}

impl Context {
    /// The context of a key pressed while `view` is shown.
    pub(crate) fn of(view: &PipelineViewState) -> Self {
        let rows = view.visible_rows();
        let at = view.selected_row;
        let is_phase = |row: &VisibleRow| matches!(row, VisibleRow::Phase { .. });
        Context {
            page: view.log_height,
            expanded: view.expanded,
            next_phase: rows.iter().skip(at + 1).position(is_phase).map(|d| d + 1),
            prev_phase: rows
                .get(..at.min(rows.len()))
                .and_then(|r| r.iter().rev().position(is_phase))
                .map(|d| d + 1),
            at_last: at + 1 >= rows.len(),
            at_first: at == 0,
        }
    }
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

/// The keys that select the next (`Down`) or previous (`Up`) row, or with the logs open the
/// next or previous phase keeping them open; nothing at either end of the list.
fn neighbour(cx: Context, direction: Key) -> Vec<Key> {
    let (at_end, phase) = match direction {
        Key::Up => (cx.at_first, cx.prev_phase),
        _ => (cx.at_last, cx.next_phase),
    };
    match (cx.expanded, phase) {
        (true, Some(steps)) => {
            let mut keys = vec![Key::Esc];
            keys.extend(std::iter::repeat_n(direction, steps));
            keys.push(Key::Enter);
            keys
        }
        (true, None) => Vec::new(),
        (false, _) if at_end => Vec::new(),
        (false, _) => vec![direction],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The middle one of three phases selected.
    fn cx(page: usize) -> Context {
        Context {
            page,
            expanded: false,
            next_phase: Some(1),
            prev_phase: Some(1),
            at_last: false,
            at_first: false,
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
        let last = Context {
            next_phase: None,
            at_last: true,
            ..open
        };
        assert!(translate(&press(KeyCode::Right), last).is_empty());
        let first = Context {
            prev_phase: None,
            at_first: true,
            ..open
        };
        assert!(translate(&press(KeyCode::Left), first).is_empty());
    }

    #[test]
    fn with_the_logs_open_arrows_pass_over_a_groups_row_to_the_next_phase() {
        use milo::pipeline::{Phase, PhaseGroup, Pipeline};
        let ok = |_: &milo::pipeline::PhaseContext| Ok::<_, String>(());
        let g = std::sync::Arc::new(PhaseGroup {
            name: "t".into(),
            max_parallel: None,
            fail_fast: false,
        });
        let pipeline = Pipeline::new(
            "p",
            [
                Phase::new("a", ok),
                Phase::new("t[x=1]", ok).depends_on(["a"]).group(g.clone()),
                Phase::new("t[x=2]", ok).depends_on(["a"]).group(g),
                Phase::new("z", ok).depends_on(["t[x=1]", "t[x=2]"]),
            ],
        )
        .expect("a pipeline");
        let mut view = PipelineViewState::new(pipeline.store().expect("a store").get_state());
        view.expanded = true;
        // a, ▸ t, z: from a's logs, → opens z's (two rows down), ← from z back to a's.
        assert_eq!(
            translate(&press(KeyCode::Right), Context::of(&view)),
            [Key::Esc, Key::Down, Key::Down, Key::Enter]
        );
        view.selected_row = 2;
        assert_eq!(
            translate(&press(KeyCode::Left), Context::of(&view)),
            [Key::Esc, Key::Up, Key::Up, Key::Enter]
        );
        assert!(translate(&press(KeyCode::Right), Context::of(&view)).is_empty());
        // In the overview → stops on the group's row.
        view.expanded = false;
        view.selected_row = 0;
        assert_eq!(translate(&press(KeyCode::Right), Context::of(&view)), [Key::Down]);
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
