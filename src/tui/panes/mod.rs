//! Drawing. Each pane is a small widget over borrowed state
//! (`impl Widget for Pane<'_>`): drawing reads the App and the log index
//! and changes nothing. Every piece of text from the log goes through
//! `sanitize` on its way to a cell.

mod diff;
mod events;
mod help;
mod state;
mod status;

use super::app::{App, LogView, Pane};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Widget};

/// Colours that carry meaning, in one place.
pub mod theme {
    use ratatui::style::{Color, Modifier, Style};

    pub const ADDED: Style = Style::new().fg(Color::Green).add_modifier(Modifier::BOLD);
    pub const REMOVED: Style = Style::new().fg(Color::Red);
    pub const REPLACED: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    /// Inside an added or replaced subtree.
    pub const INSIDE: Style = Style::new().fg(Color::Green);
    /// A container holding a change.
    pub const ANCESTOR: Style = Style::new().fg(Color::Yellow);
    pub const INVALID: Style = Style::new().fg(Color::Red);
    pub const REDUCER_ERROR: Style = Style::new().fg(Color::Magenta);
    pub const DIM: Style = Style::new().fg(Color::DarkGray);
    pub const KEY: Style = Style::new().fg(Color::Cyan);
    pub const ERROR: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
}

/// Draw the whole screen.
pub fn render(frame: &mut Frame, app: &App, log: &dyn LogView) {
    let area = frame.area();
    draw(app, log, area, frame.buffer_mut());
}

/// Draw into any buffer (what `render` and the tests use).
pub fn draw(app: &App, log: &dyn LogView, area: Rect, buf: &mut Buffer) {
    let a = super::layout::areas(area, app.focus);
    events::EventsPane { app, log }.render(a.events, buf);
    state::StatePane { app }.render(a.tree, buf);
    diff::DiffPane { app, log }.render(a.diff, buf);
    status::StatusBar { app, log }.render(a.status, buf);
    if app.help {
        help::HelpOverlay { app }.render(area, buf);
    }
}

/// A pane's frame, brighter when it has the focus.
fn pane_block<'a>(app: &App, pane: Pane, title: String) -> Block<'a> {
    let style = if app.focus == pane {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Block::bordered()
        .border_style(style)
        .title(title)
        .title_style(Style::new().add_modifier(Modifier::BOLD))
}

/// The selected row's look: reversed in the focused pane, a grey band in
/// the others (so the eye finds the focus).
fn selected_style(app: &App, pane: Pane) -> Style {
    if app.focus == pane {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().bg(Color::Indexed(238))
    }
}

/// 1234567 → "1,234,567".
pub fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn grouping() {
        assert_eq!(super::grouped(0), "0");
        assert_eq!(super::grouped(999), "999");
        assert_eq!(super::grouped(1000), "1,000");
        assert_eq!(super::grouped(1234567), "1,234,567");
    }
}
