//! The help overlay, generated from the keymap in use, so it shows the
//! keys that really work (a user's overrides included).

use super::super::app::App;
use super::super::keymap::{Action, Keymap};
use super::theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

pub struct HelpOverlay<'a> {
    pub app: &'a App,
}

/// The help text: one line per action, then the mouse and the keymap file.
pub fn help_lines(keymap: &Keymap) -> Vec<Line<'static>> {
    let width = Action::ALL
        .iter()
        .map(|a| keymap.keys_label(*a).chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line> = Action::ALL
        .iter()
        .map(|a| {
            let keys = keymap.keys_label(*a);
            let pad = width.saturating_sub(keys.chars().count());
            Line::from(vec![
                Span::styled(
                    format!(" {keys}{} ", " ".repeat(pad)),
                    Style::new().fg(Color::Cyan),
                ),
                Span::raw(a.describe()),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " mouse: click a row, wheel scrolls the pane under it",
        theme::DIM,
    ));
    lines.push(Line::styled(
        match &keymap.origin {
            Some(p) => format!(" keys from {}", p.display()),
            None => " default keys; change them in ~/.config/evscope/keymap.toml".to_string(),
        },
        theme::DIM,
    ));
    lines.push(Line::styled(" any key closes this help", theme::DIM));
    lines
}

impl Widget for HelpOverlay<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = help_lines(&self.app.keymap);
        let want_w = lines.iter().map(|l| l.width()).max().unwrap_or(0) as u16 + 2;
        let want_h = lines.len() as u16 + 2;
        let w = want_w.min(area.width);
        let h = want_h.min(area.height.saturating_sub(1));
        if w < 4 || h < 3 {
            return;
        }
        let r = Rect::new(
            area.x + (area.width - w) / 2,
            area.y + (area.height.saturating_sub(1) - h) / 2,
            w,
            h,
        );
        Clear.render(r, buf);
        Paragraph::new(lines)
            .block(
                Block::bordered()
                    .title(" Keys ")
                    .title_style(Style::new().add_modifier(Modifier::BOLD))
                    .border_style(Style::new().fg(Color::Cyan)),
            )
            .render(r, buf);
    }
}
