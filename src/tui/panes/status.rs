//! The last line: a prompt while one is open; otherwise a message or the
//! source and reducer, the cursor position, the problem counts, and the
//! load / live / follow state with the "+N new" badge.

use super::super::app::{App, Level, LogView};
use super::super::sanitize::sanitize_max;
use super::{grouped, theme};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

pub struct StatusBar<'a> {
    pub app: &'a App,
    pub log: &'a dyn LogView,
}

const BAR: Style = Style::new().bg(Color::Indexed(236)).fg(Color::Gray);

impl Widget for StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 {
            return;
        }
        buf.set_style(area, BAR);
        let app = self.app;
        if let Some(p) = &app.prompt {
            let line = Line::from(vec![
                Span::styled(p.kind.label(), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(sanitize_max(&p.text, 200).into_owned()),
                Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            ]);
            buf.set_line(area.x, area.y, &line, area.width);
            return;
        }
        let right = right_part(app, self.log);
        let right_w = right.width() as u16;
        let left = match &app.message {
            Some((text, level)) => Line::from(Span::styled(
                format!(" {}", sanitize_max(text, 300)),
                if *level == Level::Error {
                    theme::ERROR
                } else {
                    Style::new().fg(Color::White)
                },
            )),
            None => Line::from(vec![
                Span::styled(" evscope ", Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(sanitize_max(&app.info.source, 80).into_owned()),
                Span::styled(" · ", theme::DIM),
                Span::raw(sanitize_max(&app.info.reducer, 60).into_owned()),
                Span::styled("  ? help", theme::DIM),
            ]),
        };
        // The right part (counts, live state) matters most; the left part
        // gets what is left of a narrow screen.
        let left_w = area.width.saturating_sub(right_w);
        buf.set_line(area.x, area.y, &left, left_w);
        let x = area.x + area.width.saturating_sub(right_w);
        buf.set_line(x, area.y, &right, area.width.min(right_w));
    }
}

fn right_part(app: &App, log: &dyn LogView) -> Line<'static> {
    let mut spans = Vec::new();
    let pos = app
        .list
        .cursor
        .map(|i| grouped(i + 1))
        .unwrap_or_else(|| "-".into());
    spans.push(Span::raw(format!("{pos}/{} ", grouped(app.list.known))));
    let (inv, err) = (log.invalid_count(), log.error_count());
    if inv > 0 {
        spans.push(Span::styled(
            format!("✗{} invalid ", grouped(inv)),
            theme::INVALID,
        ));
    }
    if err > 0 {
        spans.push(Span::styled(
            format!("!{} errors ", grouped(err)),
            theme::REDUCER_ERROR,
        ));
    }
    if app.loading {
        let pct = app
            .progress
            .map(|p| format!(" {:.0}%", p * 100.0))
            .unwrap_or_default();
        spans.push(Span::styled(
            format!("◌ loading{pct} "),
            Style::new().fg(Color::Yellow),
        ));
    } else if app.live {
        spans.push(Span::styled("● live ", Style::new().fg(Color::Green)));
    }
    if app.list.new_count > 0 {
        spans.push(Span::styled(
            format!(" +{} new ", grouped(app.list.new_count)),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(" "));
    }
    spans.push(match (app.list.follow, app.list.at_end()) {
        (true, true) => Span::styled("following ", Style::new().fg(Color::Cyan)),
        (true, false) => Span::styled("follow on ", theme::DIM),
        (false, _) => Span::styled("follow off ", theme::DIM),
    });
    Line::from(spans)
}
