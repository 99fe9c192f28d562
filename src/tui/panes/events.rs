//! The event list: id, time, type, stream; invalid events and reducer
//! errors marked and coloured. Only the rows on screen are looked at, so it
//! costs the same over a thousand events or a million.

use super::super::app::{App, LogView, Pane};
use super::super::sanitize::{sanitize, sanitize_max};
use super::{grouped, pane_block, selected_style, theme};
use crate::image::{Entry, Status};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

pub struct EventsPane<'a> {
    pub app: &'a App,
    pub log: &'a dyn LogView,
}

/// Widest type column before it is cut.
const TYPE_MAX: usize = 28;

impl Widget for EventsPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < 3 || area.height < 3 {
            return;
        }
        let (app, log) = (self.app, self.log);
        let list = &app.list;
        let total = grouped(list.known);
        let title = match &list.filter {
            Some(f) => format!(
                " Events · filter {}: {} of {total} ",
                sanitize_max(&f.text, 24),
                grouped(f.rows.len())
            ),
            None => format!(" Events · {total} "),
        };
        let block = pane_block(app, Pane::Events, title);
        let inner = block.inner(area);
        block.render(area, buf);
        let height = inner.height as usize;
        let rows: Vec<(usize, Entry)> = (list.offset..list.offset + height)
            .filter_map(|v| list.abs(v))
            .filter_map(|i| log.entry(i).map(|e| (i, e)))
            .collect();
        if rows.is_empty() {
            let text = if app.loading {
                "loading…"
            } else if list.filter.is_some() {
                "no event matches the filter (f, then Enter on an empty line, shows all)"
            } else {
                "no events yet"
            };
            Paragraph::new(Span::styled(text, theme::DIM)).render(inner, buf);
            return;
        }
        let id_w = rows
            .iter()
            .map(|(_, e)| e.id.to_string().len())
            .max()
            .unwrap_or(1);
        let time_w = match inner.width {
            w if w >= 72 => 20,
            w if w >= 40 => 8,
            _ => 0,
        };
        let time_w = if rows.iter().any(|(_, e)| e.time.is_some()) {
            time_w
        } else {
            0
        };
        let type_w = rows
            .iter()
            .map(|(_, e)| sanitize(&e.ty).chars().count())
            .max()
            .unwrap_or(0)
            .min(TYPE_MAX);
        for (y, (i, e)) in rows.iter().enumerate() {
            let line = row_line(e, id_w, time_w, type_w);
            let selected = list.cursor == Some(*i);
            let style = if selected {
                selected_style(app, Pane::Events)
            } else {
                Style::new()
            };
            let r = Rect::new(inner.x, inner.y + y as u16, inner.width, 1);
            buf.set_style(r, style);
            buf.set_line(r.x, r.y, &line, r.width);
        }
    }
}

fn row_line(e: &Entry, id_w: usize, time_w: usize, type_w: usize) -> Line<'static> {
    let (mark, color) = match &e.status {
        Status::Ok => (" ", Style::new()),
        Status::Invalid(_) => ("✗", theme::INVALID),
        Status::ReducerError(_) => ("!", theme::REDUCER_ERROR),
    };
    let mut spans = vec![
        Span::styled(mark, color),
        Span::styled(format!("{:>id_w$} ", e.id), color),
    ];
    if time_w > 0 {
        let t = e
            .time
            .as_deref()
            .map(|t| short_time(t, time_w))
            .unwrap_or_default();
        spans.push(Span::styled(format!("{t:<time_w$} "), theme::DIM));
    }
    match &e.status {
        Status::Invalid(inv) => {
            spans.push(Span::styled(
                format!("invalid: {}", sanitize_max(&inv.reason, 200)),
                color,
            ));
        }
        _ => {
            let ty = sanitize_max(&e.ty, TYPE_MAX);
            let pad = type_w.saturating_sub(ty.chars().count());
            spans.push(Span::styled(format!("{ty}{} ", " ".repeat(pad)), color));
            if let Some(s) = &e.stream {
                spans.push(Span::styled(sanitize_max(s, 200).into_owned(), theme::DIM));
            }
        }
    }
    Line::from(spans)
}

/// The time as wide as the column allows: whole, or only the clock part of
/// an ISO 8601 time (`2026-01-05T09:06:33Z` → `09:06:33`).
fn short_time(t: &str, width: usize) -> String {
    if width < 20
        && t.len() >= 19
        && t.is_char_boundary(11)
        && t.is_char_boundary(19)
        && matches!(t.as_bytes()[10], b'T' | b' ')
    {
        return sanitize_max(&t[11..19], width).into_owned();
    }
    sanitize_max(t, width).into_owned()
}
