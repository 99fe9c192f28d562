//! The explorer driven headless: keys and appended events go in, what it
//! shows comes out. No terminal, no threads, no sleeps.

mod tui_support;

use evscope::image::{ImageOptions, MemoryImage};
use evscope::log::{self, SourceSpec};
use evscope::tui::app::Pane;
use evscope::tui::tree::{Label, Mark};
use evscope::value::Text;
use evscope::value::{PVal, PathSeg};
use std::sync::Arc;
use tui_support::{Fixture, Tally, line, sample};

/// The state after event `id`, folded from scratch (the oracle).
fn fold_to(fx: &Fixture, id: i64) -> PVal {
    let spec = SourceSpec::parse(&fx.path.display().to_string(), Default::default()).expect("spec");
    let mut image = MemoryImage::new(
        log::open(&spec).expect("open"),
        Arc::new(Tally),
        PVal::empty_obj(),
        ImageOptions {
            checkpoint_interval: Some(1_000_000),
            ..Default::default()
        },
    );
    image.load(&mut |_| {}).expect("load");
    let i = image.index_of(id).expect("id exists");
    image.state_after(i).expect("state")
}

fn key(k: &str) -> PathSeg {
    PathSeg::Key(Text::from(k))
}

#[test]
fn opens_on_the_last_event_and_steps() {
    let fx = Fixture::jsonl(&sample(20));
    let mut h = fx.headless(120, 30);
    assert_eq!(h.cursor_id(), Some(20));
    h.keys("k k");
    assert_eq!(h.cursor_id(), Some(18));
    h.keys("j");
    assert_eq!(h.cursor_id(), Some(19));
    h.keys("g");
    assert_eq!(h.cursor_id(), Some(1));
    h.keys("up");
    assert_eq!(h.cursor_id(), Some(1), "stops at the first event");
    h.keys("G");
    assert_eq!(h.cursor_id(), Some(20));
    h.keys("pageup");
    assert!(h.cursor_id() < Some(20));
    h.keys("pagedown pagedown");
    assert_eq!(h.cursor_id(), Some(20));
}

#[test]
fn every_step_shows_the_exact_state_and_diff() {
    let fx = Fixture::jsonl(&sample(30));
    let mut h = fx.headless(120, 30);
    let check = |h: &evscope::tui::headless::Headless, id: i64| {
        assert_eq!(h.cursor_id(), Some(id));
        let snap = h.app.snapshot.as_ref().expect("snapshot");
        assert_eq!(snap.after, fold_to(&fx, id), "state after {id}");
        let changed: Vec<String> = snap.changes.iter().map(|c| c.pointer()).collect();
        assert!(changed.contains(&"/count".to_string()), "{id}: {changed:?}");
    };
    // Forward across checkpoints (every 4 events), then backward.
    h.keys("g");
    for id in 1..=30 {
        check(&h, id);
        h.keys("j");
    }
    for id in (1..=30).rev() {
        check(&h, id);
        h.keys("k");
    }
}

#[test]
fn colon_jumps_to_an_id_or_names_the_nearest() {
    let fx = Fixture::jsonl(&sample(50));
    let mut h = fx.headless(120, 30);
    h.keys(":");
    h.type_text("17");
    h.keys("enter");
    assert_eq!(h.cursor_id(), Some(17));
    assert!(h.screen().contains("State after #17"));
    h.keys(":");
    h.type_text("999");
    h.keys("enter");
    assert_eq!(h.cursor_id(), Some(17));
    assert!(h.screen().contains("no event with id 999"), "{}", h.screen());
    h.keys(":");
    h.type_text("5");
    h.keys("esc");
    assert_eq!(h.cursor_id(), Some(17), "Esc cancels the prompt");
}

#[test]
fn filter_hides_rows_but_states_stay_exact() {
    let fx = Fixture::jsonl(&sample(30));
    let mut h = fx.headless(120, 30);
    h.keys(":");
    h.type_text("10");
    h.keys("enter f ctrl-u");
    h.type_text("type:Withdrawn");
    h.keys("enter");
    let list = &h.app.list;
    assert_eq!(list.visible_len(), 10);
    // Event 10 is Deposited (10 % 3 == 1): the cursor moved to the nearest
    // shown event before it, 8.
    assert_eq!(h.cursor_id(), Some(8));
    assert_eq!(h.app.snapshot.as_ref().expect("snap").after, fold_to(&fx, 8));
    h.keys("j");
    assert_eq!(h.cursor_id(), Some(11));
    let state = h.app.snapshot.as_ref().expect("snap").after.clone();
    assert_eq!(state, fold_to(&fx, 11), "the fold did not skip hidden events");
    assert_eq!(state.get_path(&[key("count")]), Some(&PVal::Int(11)));
    let screen = h.screen();
    assert!(screen.contains("filter type:Withdrawn: 10 of 30"), "{screen}");
    assert!(!screen.contains(" Deposited "), "{screen}");
    // New events that match join the list; others stay hidden.
    fx.append(&(line(31, "Deposited", "acc-1", "{}") + &line(33, "Withdrawn", "acc-0", "{}")));
    h.poll().expect("poll");
    assert_eq!(h.app.list.visible_len(), 11);
    // An empty filter shows everything again, the cursor on the same event.
    h.keys("f ctrl-u enter");
    assert_eq!(h.app.list.visible_len(), 32);
    assert_eq!(h.cursor_id(), Some(11));
}

#[test]
fn follow_moves_with_appends_at_the_end() {
    let fx = Fixture::jsonl(&sample(10));
    let mut h = fx.headless(120, 30);
    assert_eq!(h.cursor_id(), Some(10));
    fx.append(&(line(11, "Opened", "acc-9", "{}") + &line(12, "Opened", "acc-9", "{}")));
    h.poll().expect("poll");
    assert_eq!(
        h.cursor_id(),
        Some(12),
        "following: the cursor moved to the new last event"
    );
    assert_eq!(h.app.list.new_count, 0);
    assert!(h.screen().contains("State after #12"));
    assert!(h.screen().contains("following"));
}

#[test]
fn away_from_the_end_a_badge_counts_new_events() {
    let fx = Fixture::jsonl(&sample(10));
    let mut h = fx.headless(120, 30);
    h.keys("k");
    fx.append(&(line(11, "Opened", "acc-9", "{}") + &line(12, "Opened", "acc-9", "{}")));
    h.poll().expect("poll");
    fx.append(&line(13, "Opened", "acc-9", "{}"));
    h.poll().expect("poll");
    assert_eq!(h.cursor_id(), Some(9), "the cursor stays put");
    assert_eq!(h.app.list.new_count, 3);
    assert!(h.screen().contains("+3 new"), "{}", h.screen());
    h.keys("G");
    assert_eq!(h.cursor_id(), Some(13));
    assert!(!h.screen().contains("new "), "{}", h.screen());
    // Following again from the end.
    fx.append(&line(14, "Opened", "acc-9", "{}"));
    h.poll().expect("poll");
    assert_eq!(h.cursor_id(), Some(14));
}

#[test]
fn follow_off_keeps_the_cursor_even_at_the_end() {
    let fx = Fixture::jsonl(&sample(10));
    let mut h = fx.headless(120, 30);
    h.keys("F");
    assert!(!h.app.list.follow);
    fx.append(&line(11, "Opened", "acc-9", "{}"));
    h.poll().expect("poll");
    assert_eq!(h.cursor_id(), Some(10));
    assert!(h.screen().contains("+1 new"));
    h.keys("F");
    assert_eq!(h.cursor_id(), Some(11), "turning follow on goes to the end");
}

#[test]
fn tree_remembers_what_was_opened_and_closed() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(120, 40);
    let row = |h: &evscope::tui::headless::Headless, name: &str| {
        h.app
            .tree
            .rows
            .iter()
            .position(|r| r.label == Label::Key(Text::from(name)))
            .expect("row exists")
    };
    // `by_type` changes at every event, so it opens by itself; close it.
    h.keys("tab");
    assert_eq!(h.app.focus, Pane::Tree);
    let i = row(&h, "by_type");
    h.app.tree.select(i);
    assert!(h.app.tree.rows[i].is_open());
    h.keys("h");
    let i = row(&h, "by_type");
    assert!(!h.app.tree.rows[i].is_open());
    assert_eq!(
        h.app.tree.rows[i].mark,
        Mark::Ancestor,
        "still marked as holding a change"
    );
    // Step to other events: it stays closed, the selection stays on it.
    h.keys("[ [ [");
    assert_eq!(h.cursor_id(), Some(9));
    let i = row(&h, "by_type");
    assert!(!h.app.tree.rows[i].is_open());
    assert_eq!(h.app.tree.selected, i);
    // Open it again by hand: it stays open.
    h.keys("enter");
    h.keys("] ]");
    assert!(h.app.tree.rows[row(&h, "by_type")].is_open());
}

#[test]
fn changed_paths_are_marked_and_opened() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(120, 40);
    h.keys(":");
    h.type_text("7");
    h.keys("enter");
    let rows = &h.app.tree.rows;
    let find = |path: &[&str]| {
        let p: Vec<PathSeg> = path.iter().map(|k| key(k)).collect();
        rows.iter().find(|r| r.path == p).expect("row shown")
    };
    assert_eq!(find(&["count"]).mark, Mark::Replaced);
    assert_eq!(find(&["streams"]).mark, Mark::Ancestor);
    assert!(find(&["streams"]).is_open());
    assert_eq!(find(&["streams", "acc-1", "n"]).mark, Mark::Replaced);
    // The selection jumped to the first change.
    let sel = &rows[h.app.tree.selected];
    assert!(matches!(sel.mark, Mark::Added | Mark::Replaced));
}

#[test]
fn reducer_errors_and_invalid_lines_are_shown() {
    let text = sample(3)
        + "{not json\n"
        + &line(5, "Oops", "acc-1", r#"{"fail":true}"#)
        + &line(6, "Opened", "acc-1", "{}");
    let fx = Fixture::jsonl(&text);
    let mut h = fx.headless(120, 30);
    h.keys(":");
    h.type_text("5");
    h.keys("enter");
    let screen = h.screen();
    assert!(
        screen.contains("reducer error (the state is unchanged):"),
        "{screen}"
    );
    assert!(screen.contains("boom: this event says fail"), "{screen}");
    assert!(screen.contains("!1 errors"), "{screen}");
    assert!(screen.contains("✗1 invalid"), "{screen}");
    assert!(h.app.snapshot.as_ref().expect("snap").changes.is_empty());
    h.keys("k");
    assert!(h.screen().contains("invalid event"), "{}", h.screen());
}

#[test]
fn a_truncated_log_is_read_again_and_said_so() {
    let fx = Fixture::jsonl(&sample(10));
    let mut h = fx.headless(120, 30);
    std::fs::write(&fx.path, sample(4)).expect("truncate");
    let change = h.poll().expect("poll");
    assert!(matches!(change, evscope::log::Change::Reset(_)), "{change:?}");
    assert_eq!(h.app.list.known, 4);
    assert_eq!(h.cursor_id(), Some(4));
    assert_eq!(h.app.snapshot.as_ref().expect("snap").after, fold_to(&fx, 4));
    assert!(h.screen().contains("reading the log again"), "{}", h.screen());
}

#[test]
fn search_finds_events_and_tree_nodes() {
    let fx = Fixture::jsonl(&sample(12));
    let mut h = fx.headless(120, 40);
    h.keys("g /");
    h.type_text("withdrawn");
    h.keys("enter");
    assert_eq!(h.cursor_id(), Some(2));
    h.keys("n");
    assert_eq!(h.cursor_id(), Some(5));
    h.keys("N");
    assert_eq!(h.cursor_id(), Some(2));
    // In the tree pane, `/` searches keys and values of the state.
    h.keys("G tab /");
    h.type_text("acc-2");
    h.keys("enter");
    let path = h.app.tree.selected_path().clone();
    assert_eq!(path, vec![key("streams"), key("acc-2")]);
}

#[test]
fn mouse_click_selects_a_row() {
    use ratatui::crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    let fx = Fixture::jsonl(&sample(10));
    let mut h = fx.headless(120, 30);
    h.keys("g");
    // Row 0 is the top border; row 3 shows the third event.
    let click = MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row: 3,
        modifiers: KeyModifiers::NONE,
    };
    h.send(evscope::tui::app::Msg::Mouse(click));
    assert_eq!(h.cursor_id(), Some(3));
    let scroll = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        ..click
    };
    h.send(evscope::tui::app::Msg::Mouse(scroll));
    assert_eq!(h.cursor_id(), Some(6));
}

#[test]
fn help_lists_the_keys_of_the_keymap() {
    let fx = Fixture::jsonl(&sample(3));
    let mut h = fx.headless(120, 40);
    h.keys("?");
    let screen = h.screen();
    assert!(screen.contains("jump to an event id"), "{screen}");
    assert!(screen.contains("q, ctrl-c"), "{screen}");
    h.keys("j");
    assert!(!h.app.help, "any key closes the help");
    assert_eq!(h.cursor_id(), Some(3), "and does nothing else");
    h.keys("q");
    assert!(h.app.quit);
}
