//! The state at the cursor as a collapsible tree; the paths the event
//! changed are coloured (added green, replaced yellow, containers holding
//! a change yellow).

use super::super::app::{App, Pane};
use super::super::sanitize::{json_text, sanitize_max};
use super::super::tree::{Label, Mark, Node, Row};
use super::{grouped, pane_block, selected_style, theme};
use crate::value::PVal;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

pub struct StatePane<'a> {
    pub app: &'a App,
}

impl Widget for StatePane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < 3 || area.height < 3 {
            return;
        }
        let app = self.app;
        let snap = app.snapshot.as_ref().filter(|s| Some(s.index) == app.list.cursor);
        let title = match (snap, snap.and_then(|s| s.event.as_ref())) {
            (_, Some(ev)) => format!(" State after #{} ", ev.id),
            _ => " State ".to_string(),
        };
        let block = pane_block(app, Pane::Tree, title);
        let inner = block.inner(area);
        block.render(area, buf);
        let Some(snap) = snap else {
            let text = if app.list.cursor.is_none() && !app.loading {
                "no event selected"
            } else {
                "loading…"
            };
            Paragraph::new(Span::styled(text, theme::DIM)).render(inner, buf);
            return;
        };
        if let Some(e) = &snap.error {
            Paragraph::new(Span::styled(sanitize_max(e, 500).into_owned(), theme::ERROR))
                .wrap(ratatui::widgets::Wrap { trim: false })
                .render(inner, buf);
            return;
        }
        let tree = &app.tree;
        let width = inner.width as usize;
        for (y, row) in tree
            .rows
            .iter()
            .skip(tree.offset)
            .take(inner.height as usize)
            .enumerate()
        {
            let r = Rect::new(inner.x, inner.y + y as u16, inner.width, 1);
            if tree.offset + y == tree.selected {
                buf.set_style(r, selected_style(app, Pane::Tree));
            }
            buf.set_line(r.x, r.y, &row_line(row, width), r.width);
        }
    }
}

fn mark_style(mark: Mark) -> Style {
    match mark {
        Mark::None => Style::new(),
        Mark::Added => theme::ADDED,
        Mark::Replaced => theme::REPLACED,
        Mark::Inside => theme::INSIDE,
        Mark::Ancestor => theme::ANCESTOR,
    }
}

/// One row: indent, fold marker, label, value.
pub fn row_line(row: &Row, width: usize) -> Line<'static> {
    let style = mark_style(row.mark);
    let key_style = if row.mark == Mark::None { theme::KEY } else { style };
    let indent = "  ".repeat(row.depth.min(40));
    let marker = match row.node {
        Node::Container { open: true, .. } => "▾ ",
        Node::Container { open: false, .. } => "▸ ",
        _ => "  ",
    };
    let mut spans = vec![Span::raw(indent), Span::styled(marker, style)];
    // Nothing past the pane's width is drawn; don't escape it either.
    let room = width.saturating_sub(row.depth * 2 + 2).max(8);
    match &row.label {
        Label::Root => spans.push(Span::styled(". ", key_style)),
        Label::Key(k) => spans.push(Span::styled(format!("{}: ", sanitize_max(k, room)), key_style)),
        Label::Index(i) => spans.push(Span::styled(format!("{i}: "), key_style)),
        Label::None => {}
    }
    match &row.node {
        Node::Container { array, len, .. } => {
            let noun = match (array, len) {
                (true, 1) => "item",
                (true, _) => "items",
                (false, 1) => "key",
                (false, _) => "keys",
            };
            // The marker says open or closed; the brackets say what it is.
            let (l, r) = if *array { ("[", "]") } else { ("{", "}") };
            spans.push(Span::styled(l, style));
            spans.push(Span::styled(format!("{} {noun}", grouped(*len)), theme::DIM));
            spans.push(Span::styled(r, style));
        }
        Node::Scalar(v) => spans.push(Span::styled(scalar_text(v, room), style)),
        Node::More { hidden } => spans.push(Span::styled(
            format!("… {} more (Enter shows more)", grouped(*hidden)),
            theme::DIM,
        )),
    }
    Line::from(spans)
}

/// A scalar as JSON would show it, but with strings sanitized rather than
/// JSON-escaped so escapes look the same everywhere (`^[`, `<U+202E>`).
pub fn scalar_text(v: &PVal, room: usize) -> String {
    match v {
        PVal::Str(s) => format!("\"{}\"", sanitize_max(s, room)),
        other => json_text(other, room),
    }
}
