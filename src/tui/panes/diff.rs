//! What the event at the cursor did: its data, then each change with its
//! path and old and new values (added green, removed red, replaced both),
//! or (`d`) a line diff of the changed subtrees. A reducer error or an
//! invalid event says so here.

use super::super::app::{App, LogView, Pane, Snapshot};
use super::super::sanitize::{json_text, sanitize_max};
use super::{pane_block, theme};
use crate::diff::{Change, LineTag, Op};
use crate::image::Status;
use crate::value::PVal;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

pub struct DiffPane<'a> {
    pub app: &'a App,
    pub log: &'a dyn LogView,
}

impl Widget for DiffPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < 3 || area.height < 3 {
            return;
        }
        let app = self.app;
        let entry = app.cursor_entry(self.log);
        let title = match &entry {
            Some(e) => format!(
                " {} #{} {} ",
                if app.line_diff { "Line diff" } else { "Diff" },
                e.id,
                sanitize_max(&e.ty, 40)
            ),
            None => " Diff ".to_string(),
        };
        let block = pane_block(app, Pane::Diff, title);
        let inner = block.inner(area);
        block.render(area, buf);
        let room = inner.width as usize;
        let mut lines: Vec<Line> = Vec::new();
        // The first two lines: the event's data, and how it went.
        let snap = app.snapshot.as_ref().filter(|s| Some(s.index) == app.list.cursor);
        if let Some(e) = &entry {
            let data = snap
                .and_then(|s| s.event.as_ref())
                .map(|ev| json_text(&ev.data, room));
            lines.push(Line::from(vec![
                Span::styled("data ", theme::DIM),
                Span::raw(data.unwrap_or_default()),
            ]));
            lines.push(match &e.status {
                Status::Ok => match snap {
                    Some(s) if s.error.is_some() => Line::styled("could not compute the state", theme::ERROR),
                    Some(s) if s.changes.is_empty() => Line::styled("no change to the state", theme::DIM),
                    Some(s) => Line::styled(
                        format!(
                            "{} change{}",
                            s.changes.len(),
                            if s.changes.len() == 1 { "" } else { "s" }
                        ),
                        theme::DIM,
                    ),
                    None => Line::styled("…", theme::DIM),
                },
                Status::Invalid(_) => Line::styled("invalid event, skipped by the fold:", theme::INVALID),
                Status::ReducerError(_) => {
                    Line::styled("reducer error (the state is unchanged):", theme::REDUCER_ERROR)
                }
            });
        }
        let height = inner.height as usize;
        let skip = app.diff_offset;
        // A problem event changed nothing: its message, wrapped, is the body.
        let problem = match entry.as_ref().map(|e| &e.status) {
            Some(Status::Invalid(inv)) => Some((format!("{}: {}", inv.place, inv.reason), theme::INVALID)),
            Some(Status::ReducerError(msg)) => Some((msg.to_string(), theme::REDUCER_ERROR)),
            _ => None,
        };
        let body: Vec<Line> = match (snap, problem) {
            (_, Some((text, style))) => wrap(&sanitize_max(&text, 4000), room)
                .into_iter()
                .skip(skip.saturating_sub(2))
                .take(height)
                .map(|l| Line::styled(l, style))
                .collect(),
            (Some(s), None) if app.line_diff => line_diff_lines(s, skip.saturating_sub(2), height, room),
            (Some(s), None) => s
                .changes
                .iter()
                .skip(skip.saturating_sub(2))
                .take(height)
                .map(|c| change_line(c, room))
                .collect(),
            (None, None) => Vec::new(),
        };
        let visible: Vec<Line> = lines.into_iter().skip(skip).chain(body).take(height).collect();
        Paragraph::new(visible).render(inner, buf);
    }
}

fn pointer(c: &Change) -> String {
    let p = c.pointer();
    if p.is_empty() { "/".to_string() } else { p }
}

fn value_text(v: Option<&PVal>, room: usize) -> String {
    v.map(|v| json_text(v, room)).unwrap_or_default()
}

/// `+ /path value`, `- /path old`, `~ /path old → new`.
fn change_line(c: &Change, room: usize) -> Line<'static> {
    let path = sanitize_max(&pointer(c), room).into_owned();
    match c.op {
        Op::Add => Line::from(vec![
            Span::styled(format!("+ {path} "), theme::ADDED),
            Span::styled(value_text(c.value.as_ref(), room), theme::INSIDE),
        ]),
        Op::Remove => Line::from(vec![
            Span::styled(format!("- {path} "), theme::REMOVED),
            Span::styled(value_text(c.old.as_ref(), room), theme::REMOVED),
        ]),
        Op::Replace => Line::from(vec![
            Span::styled(format!("~ {path} "), theme::REPLACED),
            Span::styled(value_text(c.old.as_ref(), room), theme::REMOVED),
            Span::styled(" → ", theme::DIM),
            Span::styled(value_text(c.value.as_ref(), room), theme::INSIDE),
        ]),
    }
}

fn line_diff_lines(s: &Snapshot, skip: usize, height: usize, room: usize) -> Vec<Line<'static>> {
    let Some(lines) = &s.lines else {
        return vec![Line::styled("…", theme::DIM)];
    };
    lines
        .iter()
        .skip(skip)
        .take(height)
        .map(|l| {
            let text = sanitize_max(&l.text, room);
            match l.tag {
                LineTag::Header => Line::styled(format!("@@ {text}"), theme::REPLACED),
                LineTag::Delete => Line::styled(format!("- {text}"), theme::REMOVED),
                LineTag::Insert => Line::styled(format!("+ {text}"), theme::INSIDE),
                LineTag::Equal => Line::styled(format!("  {text}"), Style::new()),
            }
        })
        .collect()
}

/// Cut text into lines of at most `width` characters (a message from the
/// log has no reliable spaces to break at, so this does not look for any).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}
