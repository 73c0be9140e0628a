//! Keys → actions: small predicates, so the event loop reads as a list of intents.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `q`, `Esc` or Ctrl-C: stop gracefully (a second time: cut what is in flight).
    Quit,
    /// `space`: pause or resume the schedule.
    Pause,
    /// `+` / `-`: the rate by 10 % of the plan.
    Rate(i32),
    /// `?` / `h`: the help overlay.
    Help,
    /// `tab` / arrows: the next or previous panel.
    Panel(isize),
}

/// The action of a key press (releases and repeats of other kinds are ignored).
pub fn action(key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => Action::Quit,
        KeyCode::Char(' ') => Action::Pause,
        KeyCode::Char('+') | KeyCode::Char('=') => Action::Rate(1),
        KeyCode::Char('-') | KeyCode::Char('_') => Action::Rate(-1),
        KeyCode::Char('?') | KeyCode::Char('h') => Action::Help,
        KeyCode::Tab | KeyCode::Right | KeyCode::Down => Action::Panel(1),
        KeyCode::BackTab | KeyCode::Left | KeyCode::Up => Action::Panel(-1),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
        action(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn keys_map_to_actions() {
        let none = KeyModifiers::NONE;
        assert_eq!(press(KeyCode::Char('q'), none), Some(Action::Quit));
        assert_eq!(
            press(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Action::Quit)
        );
        assert_eq!(press(KeyCode::Char('c'), none), None);
        assert_eq!(press(KeyCode::Char(' '), none), Some(Action::Pause));
        assert_eq!(press(KeyCode::Char('+'), none), Some(Action::Rate(1)));
        assert_eq!(press(KeyCode::Char('-'), none), Some(Action::Rate(-1)));
        assert_eq!(press(KeyCode::Tab, none), Some(Action::Panel(1)));
        assert_eq!(press(KeyCode::Left, none), Some(Action::Panel(-1)));
    }
}
