//! Where the panes go. One function, used both to draw and to find what a
//! mouse click hit, so the two always agree.
//!
//! - Wide (≥ 100 columns): the event list on the left, the state above the
//!   diff on the right.
//! - Narrow but tall enough: the three panes stacked.
//! - Tiny: only the focused pane (Tab shows the others).
//!
//! The status bar is always the last line. Panes that do not fit get an
//! empty `Rect`, which every pane draws as nothing.

use super::app::Pane;
use ratatui::layout::{Constraint, Layout, Rect};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Areas {
    pub events: Rect,
    pub tree: Rect,
    pub diff: Rect,
    pub status: Rect,
}

pub const WIDE: u16 = 100;
pub const STACKED_MIN_HEIGHT: u16 = 18;

pub fn areas(screen: Rect, focus: Pane) -> Areas {
    let mut a = Areas::default();
    if screen.height == 0 || screen.width == 0 {
        return a;
    }
    let [body, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(screen);
    a.status = status;
    if screen.width >= WIDE && body.height >= 8 {
        let left = (body.width * 2 / 5).clamp(30, 72);
        let [events, right] = Layout::horizontal([Constraint::Length(left), Constraint::Min(0)]).areas(body);
        let [tree, diff] =
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(right);
        (a.events, a.tree, a.diff) = (events, tree, diff);
    } else if body.height >= STACKED_MIN_HEIGHT {
        let [events, tree, diff] = Layout::vertical([
            Constraint::Percentage(30),
            Constraint::Percentage(40),
            Constraint::Percentage(30),
        ])
        .areas(body);
        (a.events, a.tree, a.diff) = (events, tree, diff);
    } else {
        match focus {
            Pane::Events => a.events = body,
            Pane::Tree => a.tree = body,
            Pane::Diff => a.diff = body,
        }
    }
    a
}
