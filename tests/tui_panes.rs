//! The panes drawn into ratatui's `TestBackend`, checked with insta
//! snapshots; colours that carry meaning are checked cell by cell.

mod tui_support;

use evscope::tui::headless::Headless;
use evscope::tui::panes;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use tui_support::{Fixture, line, sample};

fn terminal(h: &Headless) -> Terminal<TestBackend> {
    let (w, ht) = h.app.size;
    let mut t = Terminal::new(TestBackend::new(w, ht)).expect("terminal");
    t.draw(|f| panes::render(f, &h.app, &h.engine.image))
        .expect("draw");
    t
}

fn jump(h: &mut Headless, id: i64) {
    h.keys(":");
    h.type_text(&id.to_string());
    h.keys("enter");
}

/// Where `text` starts on screen (column, row), by cells.
fn find(buf: &Buffer, text: &str) -> (u16, u16) {
    let area = buf.area;
    for y in 0..area.height {
        let cells: Vec<&str> = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
        let row: String = cells.concat();
        if let Some(byte) = row.find(text) {
            // Map the byte offset back to a column (every cell here is one
            // symbol of one or more bytes).
            let mut seen = 0;
            for (x, c) in cells.iter().enumerate() {
                if seen == byte {
                    return (x as u16, y);
                }
                seen += c.len();
            }
        }
    }
    panic!(
        "{text:?} is not on screen:\n{}",
        evscope::tui::headless::buffer_text(buf)
    );
}

fn fg_at(buf: &Buffer, text: &str) -> (Color, Modifier) {
    let (x, y) = find(buf, text);
    let cell = &buf[(x, y)];
    (cell.fg, cell.modifier)
}

#[test]
fn wide_layout() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(110, 24);
    jump(&mut h, 7);
    insta::assert_snapshot!(terminal(&h).backend());
}

#[test]
fn stacked_layout_on_a_narrow_terminal() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(70, 30);
    jump(&mut h, 7);
    insta::assert_snapshot!(terminal(&h).backend());
}

#[test]
fn tiny_terminal_shows_the_focused_pane() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(40, 12);
    jump(&mut h, 7);
    h.keys("tab");
    insta::assert_snapshot!(terminal(&h).backend());
}

#[test]
fn help_overlay() {
    let fx = Fixture::jsonl(&sample(3));
    let mut h = fx.headless(100, 36);
    h.keys("?");
    insta::assert_snapshot!(terminal(&h).backend());
}

#[test]
fn line_diff() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(110, 24);
    jump(&mut h, 7);
    h.keys("d");
    insta::assert_snapshot!(terminal(&h).backend());
}

#[test]
fn prompt_and_filter() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(110, 16);
    h.keys("f ctrl-u");
    h.type_text("acc-1");
    h.keys("enter f");
    insta::assert_snapshot!(terminal(&h).backend());
}

#[test]
fn changed_paths_are_coloured() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(110, 30);
    jump(&mut h, 4);
    let buf = h.render();
    // Event 4 replaced /count and /streams/acc-1/n...
    assert_eq!(fg_at(&buf, "count: 4"), (Color::Yellow, Modifier::BOLD));
    assert_eq!(fg_at(&buf, "n: 4").0, Color::Yellow);
    // ...holds changes in `streams` (a yellow container)...
    assert_eq!(fg_at(&buf, "streams: {").0, Color::Yellow);
    // ...and the diff pane says so in colour.
    assert_eq!(fg_at(&buf, "~ /count").0, Color::Yellow);
    // Unchanged keys are plain.
    assert_eq!(fg_at(&buf, "acc-0: {").0, Color::Cyan);
    // Event 1 added the stream acc-1: green.
    jump(&mut h, 1);
    let buf = h.render();
    assert_eq!(fg_at(&buf, "acc-1: {").0, Color::Green);
    assert_eq!(fg_at(&buf, "+ /streams").0, Color::Green);
}

#[test]
fn invalid_events_and_reducer_errors_are_coloured() {
    let text = sample(2)
        + "{broken\n"
        + &line(4, "Oops", "acc-1", r#"{"fail":true}"#)
        + &line(5, "Opened", "acc-1", "{}");
    let fx = Fixture::jsonl(&text);
    let mut h = fx.headless(110, 16);
    jump(&mut h, 4);
    insta::assert_snapshot!(terminal(&h).backend());
    let buf = h.render();
    assert_eq!(fg_at(&buf, "✗3").0, Color::Red);
    assert_eq!(fg_at(&buf, "invalid: ").0, Color::Red);
    assert_eq!(fg_at(&buf, "!4").0, Color::Magenta);
    assert_eq!(fg_at(&buf, "boom: this event says fail").0, Color::Magenta);
    assert_eq!(
        fg_at(&buf, " 5 09:").0,
        Color::Reset,
        "a good event is not coloured"
    );
}

#[test]
fn hostile_text_is_drawn_escaped() {
    let fx = Fixture::jsonl(&String::from_utf8_lossy(
        &std::fs::read(tui_support::example("hostile.jsonl")).expect("hostile.jsonl"),
    ));
    let mut h = fx.headless(120, 40);
    jump(&mut h, 13);
    let screen = h.screen();
    insta::assert_snapshot!(screen);
    for visible in ["Keys^[[2J", "hostile-7<U+202E>", "Note<U+2028>Type"] {
        assert!(screen.contains(visible), "{visible} missing:\n{screen}");
    }
    jump(&mut h, 1);
    let screen = h.screen();
    assert!(screen.contains("^[]52;c;aGVsbG8=^G"), "{screen}");
    assert!(screen.contains("^[]0;pwned^G"), "{screen}");
    // No cell holds a control or bidi character, on any event.
    for id in 1..=18 {
        jump(&mut h, id);
        let buf = h.render();
        for cell in buf.content() {
            for c in cell.symbol().chars() {
                assert!(
                    !c.is_control()
                        && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'),
                    "event {id}: U+{:04X} reached a cell",
                    c as u32
                );
            }
        }
    }
}

#[test]
fn nothing_panics_at_tiny_sizes() {
    let text =
        String::from_utf8_lossy(&std::fs::read(tui_support::example("hostile.jsonl")).expect("hostile"))
            .into_owned()
            + "{broken\n";
    let fx = Fixture::jsonl(&text);
    for (w, ht) in [
        (20, 10),
        (0, 0),
        (1, 1),
        (2, 2),
        (10, 3),
        (30, 5),
        (200, 4),
        (5, 60),
        (20, 10),
        (99, 17),
        (100, 9),
    ] {
        let mut h = fx.headless(w, ht);
        for keys in [
            "",
            "g",
            "tab",
            "tab",
            "d",
            "?",
            "j",
            "f",
            "x enter",
            "/",
            "enter G h l enter",
            "k k",
        ] {
            h.keys(keys);
            let _ = h.render();
        }
        h.keys(":");
        h.type_text("10");
        h.keys("enter");
        let _ = h.render();
    }
}
