//! The explorer's state and how messages change it.
//!
//! `App::update(msg, log)` does no I/O: it reads the in-memory index of the
//! log (through [`LogView`]) and changes the App. What needs the source
//! (the state and diff at the cursor, which replay events read from disk) is
//! asked for with [`App::want`] and handed back with [`App::set_snapshot`];
//! the runtime and the headless tests run that loop (see `fetch`), so tests
//! drive the App with keys and appends, no threads, no sleeps.

use super::keymap::{Action, Keymap};
use super::layout::{self, Areas};
use super::list::EventList;
use super::treeview::TreeView;
use crate::diff::{Change, DiffLine};
use crate::image::{Entry, MemoryImage, MissingId};
use crate::log::Event;
use crate::value::PVal;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent};
use ratatui::layout::Rect;
use std::sync::Arc;

/// Everything that can happen to the explorer.
#[derive(Clone, Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// The worker folded another batch of the initial load (fraction of
    /// the file read, when known).
    Progress(Option<f64>),
    /// The initial load is done; from now on arrivals are live appends.
    Loaded,
    /// The tail folded newly appended events.
    Appended,
    /// The log was truncated or replaced and is being read again.
    Reset(String),
    /// The source could not be read (the message says why).
    SourceError(String),
    /// Draw again (after a resume from suspend).
    Redraw,
}

/// The in-memory part of the log the App may read while updating.
pub trait LogView {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn entry(&self, i: usize) -> Option<Entry>;
    fn index_of(&self, id: i64) -> Result<usize, MissingId>;
    fn invalid_count(&self) -> usize;
    fn error_count(&self) -> usize;
}

impl LogView for MemoryImage {
    fn len(&self) -> usize {
        MemoryImage::len(self)
    }
    fn entry(&self, i: usize) -> Option<Entry> {
        MemoryImage::entry(self, i)
    }
    fn index_of(&self, id: i64) -> Result<usize, MissingId> {
        MemoryImage::index_of(self, id)
    }
    fn invalid_count(&self) -> usize {
        MemoryImage::invalid_count(self)
    }
    fn error_count(&self) -> usize {
        MemoryImage::error_count(self)
    }
}

/// The state and changes at one event, as fetched from the image.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub index: usize,
    /// The log generation it belongs to (bumped on every reset).
    pub generation: u64,
    /// The event read again from the source (None for an invalid one).
    pub event: Option<Event>,
    /// The state after the event.
    pub after: PVal,
    pub changes: Arc<[Change]>,
    /// The line diff, once asked for.
    pub lines: Option<Arc<[DiffLine]>>,
    /// Why the state could not be computed (the log was rewritten...).
    pub error: Option<String>,
}

/// What the App needs from the image before it can draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Snapshot(usize),
    LineDiff,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Events,
    Tree,
    Diff,
}

/// A line of text being typed at the bottom of the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKind {
    Jump,
    Search,
    Filter,
}

impl PromptKind {
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::Jump => "jump to id: ",
            PromptKind::Search => "search: ",
            PromptKind::Filter => {
                "filter (type, stream, type:T, stream:S, is:error, is:invalid; empty: all): "
            }
        }
    }
}

/// How the status bar says something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// Names shown in the status bar.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub source: String,
    pub reducer: String,
}

/// What the last search looked for, so `n`/`N` can repeat it.
#[derive(Clone, Debug)]
struct LastSearch {
    in_tree: bool,
    text: String,
}

pub struct App {
    pub keymap: Keymap,
    pub info: SourceInfo,
    pub size: (u16, u16),
    pub focus: Pane,
    pub list: EventList,
    pub tree: TreeView,
    pub snapshot: Option<Snapshot>,
    pub diff_offset: usize,
    pub line_diff: bool,
    pub prompt: Option<Prompt>,
    pub help: bool,
    pub message: Option<(String, Level)>,
    /// Set while the initial load (or a reload) runs.
    pub loading: bool,
    pub progress: Option<f64>,
    /// The live tail is running (the initial load finished).
    pub live: bool,
    /// Bumped on every reset of the log; snapshots of older ones are stale.
    pub generation: u64,
    pub quit: bool,
    /// Ctrl-Z was pressed: the runtime suspends and clears it.
    pub suspend: bool,
    last_search: Option<LastSearch>,
}

impl App {
    pub fn new(keymap: Keymap, info: SourceInfo) -> App {
        App {
            keymap,
            info,
            size: (80, 24),
            focus: Pane::Events,
            list: EventList::default(),
            tree: TreeView::default(),
            snapshot: None,
            diff_offset: 0,
            line_diff: false,
            prompt: None,
            help: false,
            message: None,
            loading: true,
            progress: None,
            live: false,
            generation: 0,
            quit: false,
            suspend: false,
            last_search: None,
        }
    }

    /// Where each pane is on the current screen.
    pub fn areas(&self) -> Areas {
        layout::areas(Rect::new(0, 0, self.size.0, self.size.1), self.focus)
    }

    pub fn update(&mut self, msg: Msg, log: &dyn LogView) {
        if let Msg::Reset(reason) = &msg {
            // Before catching up with the log: its rows are not the ones the
            // list knew any more. The id comes from what was on screen.
            let id = self
                .snapshot
                .as_ref()
                .and_then(|s| s.event.as_ref())
                .map(|e| e.id);
            self.generation += 1;
            self.list.forget_rows(id);
            self.snapshot = None;
            self.loading = true;
            self.live = false;
            self.message = Some((format!("{reason}; reading the log again"), Level::Error));
        }
        self.list.sync(log);
        match msg {
            Msg::Key(key) => self.on_key(key, log),
            Msg::Mouse(m) => self.on_mouse(m, log),
            Msg::Resize(w, h) => self.size = (w, h),
            Msg::Progress(p) => self.progress = p,
            Msg::Loaded => {
                self.loading = false;
                self.live = true;
                self.progress = None;
                self.list.counting = true;
            }
            Msg::Appended | Msg::Redraw => {}
            Msg::Reset(_) => {}
            Msg::SourceError(e) => self.message = Some((e, Level::Error)),
        }
        self.fit(false);
    }

    /// What the App needs fetched before the next frame.
    pub fn want(&self) -> Option<Want> {
        let i = self.list.cursor?;
        let fresh = self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.index == i && s.generation == self.generation);
        if !fresh {
            // While a big log loads, the cursor riding at its end would ask
            // for a replay after every batch; wait for the load to finish.
            let riding = self.loading && self.list.follow && self.list.at_end();
            return (!riding).then_some(Want::Snapshot(i));
        }
        let s = self.snapshot.as_ref()?;
        (self.line_diff && s.lines.is_none() && s.error.is_none()).then_some(Want::LineDiff)
    }

    /// Take a fetched snapshot (ignored when the cursor moved on since).
    pub fn set_snapshot(&mut self, snap: Snapshot) {
        if Some(snap.index) != self.list.cursor || snap.generation != self.generation {
            return;
        }
        self.tree.show(snap.after.clone(), snap.changes.clone());
        // Stepping through events from the list, the eye wants what the
        // event changed; a person working in the tree keeps their place.
        let jumped = self.focus != Pane::Tree && self.tree.select_first_change();
        self.snapshot = Some(snap);
        self.diff_offset = 0;
        self.fit(jumped);
    }

    pub fn set_lines(&mut self, lines: Vec<DiffLine>) {
        if let Some(s) = &mut self.snapshot {
            s.lines = Some(lines.into());
        }
    }

    /// The entry at the cursor.
    pub fn cursor_entry(&self, log: &dyn LogView) -> Option<Entry> {
        self.list.cursor.and_then(|i| log.entry(i))
    }

    /// Keep the cursor and the tree selection on screen.
    fn fit(&mut self, jumped: bool) {
        let a = self.areas();
        self.list.scroll_into_view(inner_height(a.events));
        self.tree.scroll_into_view(inner_height(a.tree), jumped);
    }

    fn say(&mut self, text: impl Into<String>, level: Level) {
        self.message = Some((text.into(), level));
    }

    fn on_key(&mut self, key: KeyEvent, log: &dyn LogView) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if self.prompt.is_some() {
            self.on_prompt_key(key, log);
            return;
        }
        self.message = None;
        if self.help {
            self.help = false;
            return;
        }
        if key.code == KeyCode::Esc {
            return;
        }
        if let Some(action) = self.keymap.action(&key) {
            self.perform(action, log);
        }
    }

    fn page(&self) -> isize {
        let a = self.areas();
        let r = match self.focus {
            Pane::Events => a.events,
            Pane::Tree => a.tree,
            Pane::Diff => a.diff,
        };
        inner_height(r).saturating_sub(1).max(1) as isize
    }

    /// Do what an action means, in the focused pane.
    pub fn perform(&mut self, action: Action, log: &dyn LogView) {
        let page = self.page();
        match action {
            Action::Down => self.step(1),
            Action::Up => self.step(-1),
            Action::PageDown => self.step(page),
            Action::PageUp => self.step(-page),
            Action::First => self.step(isize::MIN),
            Action::Last => self.step(isize::MAX),
            Action::NextEvent => self.list.move_by(1),
            Action::PrevEvent => self.list.move_by(-1),
            Action::Jump => self.open_prompt(PromptKind::Jump, String::new()),
            Action::Search => self.open_prompt(PromptKind::Search, String::new()),
            Action::Filter => {
                let text = match &self.list.filter {
                    Some(f) => f.text.clone(),
                    None => self
                        .cursor_entry(log)
                        .map(|e| e.ty.to_string())
                        .unwrap_or_default(),
                };
                self.open_prompt(PromptKind::Filter, text)
            }
            Action::Follow => {
                self.list.follow = !self.list.follow;
                if self.list.follow {
                    self.list.last();
                }
            }
            Action::NextPane => self.cycle_pane(true),
            Action::PrevPane => self.cycle_pane(false),
            Action::Toggle => self.tree.toggle(),
            Action::Expand => self.tree.expand(),
            Action::Collapse => self.tree.collapse(),
            Action::Parent => self.tree.parent(),
            Action::NextSibling => self.tree.sibling(true),
            Action::PrevSibling => self.tree.sibling(false),
            Action::SearchNext => self.repeat_search(true, log),
            Action::SearchPrev => self.repeat_search(false, log),
            Action::LineDiff => {
                self.line_diff = !self.line_diff;
                self.diff_offset = 0;
            }
            Action::Help => self.help = true,
            Action::Quit => self.quit = true,
            Action::Suspend => self.suspend = true,
        }
    }

    /// Up/down/page/first/last in the focused pane (`isize::MIN`/`MAX`:
    /// first/last).
    fn step(&mut self, delta: isize) {
        match self.focus {
            Pane::Events => match delta {
                isize::MIN => self.list.set_cursor_vis(0),
                isize::MAX => self.list.last(),
                d => self.list.move_by(d),
            },
            Pane::Tree => match delta {
                isize::MIN => self.tree.select(0),
                isize::MAX => self.tree.select(usize::MAX),
                d => self.tree.move_by(d),
            },
            Pane::Diff => {
                self.diff_offset = match delta {
                    isize::MIN => 0,
                    isize::MAX => self.diff_len().saturating_sub(1),
                    d => self
                        .diff_offset
                        .saturating_add_signed(d)
                        .min(self.diff_len().saturating_sub(1)),
                }
            }
        }
    }

    /// Lines the diff pane has to scroll through.
    pub fn diff_len(&self) -> usize {
        match &self.snapshot {
            Some(s) if self.line_diff => s.lines.as_ref().map_or(0, |l| l.len()) + 2,
            Some(s) => s.changes.len() + 2,
            None => 0,
        }
    }

    fn cycle_pane(&mut self, forward: bool) {
        self.focus = match (self.focus, forward) {
            (Pane::Events, true) | (Pane::Diff, false) => Pane::Tree,
            (Pane::Tree, true) | (Pane::Events, false) => Pane::Diff,
            (Pane::Diff, true) | (Pane::Tree, false) => Pane::Events,
        };
    }

    fn open_prompt(&mut self, kind: PromptKind, text: String) {
        self.prompt = Some(Prompt { kind, text });
    }

    fn on_prompt_key(&mut self, key: KeyEvent, log: &dyn LogView) {
        let Some(prompt) = &mut self.prompt else { return };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => self.prompt = None,
            KeyCode::Char('c') if ctrl => self.prompt = None,
            KeyCode::Char('u') if ctrl => prompt.text.clear(),
            KeyCode::Backspace => {
                prompt.text.pop();
            }
            KeyCode::Enter => {
                let p = self.prompt.take();
                if let Some(p) = p {
                    self.submit(p, log);
                }
            }
            KeyCode::Char(c) if !ctrl && !c.is_control() => prompt.text.push(c),
            _ => {}
        }
    }

    fn submit(&mut self, p: Prompt, log: &dyn LogView) {
        let text = p.text.trim().to_string();
        match p.kind {
            PromptKind::Jump => self.jump(&text, log),
            PromptKind::Filter => {
                self.list.set_filter(Some(&text), log);
                if self.list.filter.is_some() && self.list.visible_len() == 0 {
                    self.say(format!("no event matches {text:?}"), Level::Error);
                }
            }
            PromptKind::Search => {
                if text.is_empty() {
                    return;
                }
                self.last_search = Some(LastSearch {
                    in_tree: self.focus != Pane::Events,
                    text,
                });
                self.repeat_search(true, log);
            }
        }
    }

    /// `:` — go to the event with this id (clearing a filter that hides it).
    fn jump(&mut self, text: &str, log: &dyn LogView) {
        let Ok(id) = text.parse::<i64>() else {
            if !text.is_empty() {
                self.say(format!("{text:?} is not an event id"), Level::Error);
            }
            return;
        };
        match log.index_of(id) {
            Ok(i) => {
                if self.list.vis(i).is_err() {
                    self.list.set_filter(None, log);
                    self.say(format!("filter cleared to show event {id}"), Level::Info);
                }
                self.list.cursor = Some(i);
                self.list.set_cursor_vis(self.list.vis(i).unwrap_or(0));
            }
            Err(missing) => self.say(missing.to_string(), Level::Error),
        }
    }

    fn repeat_search(&mut self, forward: bool, log: &dyn LogView) {
        let Some(s) = self.last_search.clone() else {
            self.say("nothing searched yet: press / first", Level::Info);
            return;
        };
        if s.in_tree {
            let from = self.tree.selected_path().clone();
            match super::tree::search(self.tree.state(), &s.text, &from, forward) {
                Some(path) => {
                    self.tree.memory.reveal(&path);
                    self.tree.select_path(&path);
                    self.fit(true);
                }
                None => self.say(
                    format!("{:?} is not in the state at this event", s.text),
                    Level::Error,
                ),
            }
        } else {
            self.search_events(&s.text, forward, log);
        }
    }

    /// Find the next shown event whose type or stream contains `text`, or
    /// whose id is `text` (wrapping around).
    fn search_events(&mut self, text: &str, forward: bool, log: &dyn LogView) {
        let n = self.list.visible_len();
        if n == 0 {
            return;
        }
        let start = self.list.cursor_vis().unwrap_or(0);
        let hit = |v: usize| {
            self.list.abs(v).and_then(|i| log.entry(i)).is_some_and(|e| {
                e.id.to_string() == text
                    || super::list::contains_ignore_case(&e.ty, text)
                    || e.stream
                        .as_deref()
                        .is_some_and(|s| super::list::contains_ignore_case(s, text))
            })
        };
        let found = (1..=n)
            .map(|k| {
                if forward {
                    (start + k) % n
                } else {
                    (start + n - k % n) % n
                }
            })
            .find(|&v| hit(v));
        match found {
            Some(v) => self.list.set_cursor_vis(v),
            None => self.say(format!("no event matches {text:?}"), Level::Error),
        }
    }

    fn on_mouse(&mut self, m: MouseEvent, _log: &dyn LogView) {
        use ratatui::crossterm::event::{MouseButton, MouseEventKind};
        let a = self.areas();
        let at = |r: Rect| {
            m.column >= r.x && m.column < r.right() && m.row >= r.y && m.row < r.bottom() && r.height > 0
        };
        let pane = if at(a.events) {
            Pane::Events
        } else if at(a.tree) {
            Pane::Tree
        } else if at(a.diff) {
            Pane::Diff
        } else {
            return;
        };
        let area = match pane {
            Pane::Events => a.events,
            Pane::Tree => a.tree,
            Pane::Diff => a.diff,
        };
        // Rows start below the pane's top border.
        let row = (m.row as usize).checked_sub(area.y as usize + 1);
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                self.focus = pane;
                match (pane, row) {
                    (Pane::Events, Some(r)) => self.list.set_cursor_vis(self.list.offset + r),
                    (Pane::Tree, Some(r)) => {
                        let i = self.tree.offset + r;
                        if i < self.tree.rows.len() {
                            let was = self.tree.selected;
                            self.tree.select(i);
                            if was == i {
                                self.tree.toggle();
                            }
                        }
                    }
                    _ => {}
                }
            }
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let d = if m.kind == MouseEventKind::ScrollDown {
                    3
                } else {
                    -3
                };
                match pane {
                    Pane::Events => self.list.move_by(d),
                    Pane::Tree => self.tree.move_by(d),
                    Pane::Diff => {
                        self.diff_offset = self
                            .diff_offset
                            .saturating_add_signed(d)
                            .min(self.diff_len().saturating_sub(1))
                    }
                }
            }
            _ => {}
        }
    }
}

/// Rows inside a bordered pane.
pub fn inner_height(r: Rect) -> usize {
    r.height.saturating_sub(2) as usize
}
