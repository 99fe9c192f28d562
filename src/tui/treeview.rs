//! The state pane's view: the flattened rows of the state at the cursor,
//! the selected row and the scroll, and the moves jless taught people
//! (`h`/`l`, Enter/Space, parent, siblings).
//!
//! The selection is kept by path, so rebuilding the rows (a new event at
//! the cursor, a node opened) leaves it on the same node when it still
//! exists, else on its nearest shown ancestor.

use super::tree::{self, Mark, Node, Path, Row, TreeMemory};
use crate::diff::Change;
use crate::value::PVal;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct TreeView {
    pub memory: TreeMemory,
    pub rows: Vec<Row>,
    pub selected: usize,
    pub offset: usize,
    state: PVal,
    changes: Arc<[Change]>,
    selected_path: Path,
}

impl TreeView {
    /// Show a new state (and the changes that led to it).
    pub fn show(&mut self, state: PVal, changes: Arc<[Change]>) {
        self.state = state;
        self.changes = changes;
        self.rebuild();
    }

    /// Flatten again after the state or the memory changed.
    pub fn rebuild(&mut self) {
        self.rows = tree::flatten(&self.state, &self.changes, &self.memory);
        self.selected = tree::find_row(&self.rows, &self.selected_path).unwrap_or(0);
        self.remember_selection();
    }

    pub fn state(&self) -> &PVal {
        &self.state
    }

    pub fn selected_path(&self) -> &Path {
        &self.selected_path
    }

    fn remember_selection(&mut self) {
        if let Some(r) = self.rows.get(self.selected)
            && r.label != tree::Label::None
        {
            self.selected_path = r.path.clone();
        }
    }

    /// Select row `i` (clamped).
    pub fn select(&mut self, i: usize) {
        self.selected = i.min(self.rows.len().saturating_sub(1));
        self.remember_selection();
    }

    pub fn move_by(&mut self, delta: isize) {
        self.select(self.selected.saturating_add_signed(delta));
    }

    /// Select the first row the event added or replaced, if any.
    pub fn select_first_change(&mut self) -> bool {
        match self
            .rows
            .iter()
            .position(|r| matches!(r.mark, Mark::Added | Mark::Replaced))
        {
            Some(i) => {
                self.select(i);
                true
            }
            None => false,
        }
    }

    /// Select the row showing `path` (after revealing it).
    pub fn select_path(&mut self, path: &Path) {
        self.selected_path = path.clone();
        self.rebuild();
    }

    fn current(&self) -> Option<&Row> {
        self.rows.get(self.selected)
    }

    /// Enter/Space: open or close a container; on a "… more" row, show more.
    pub fn toggle(&mut self) {
        let Some(row) = self.current().cloned() else {
            return;
        };
        match row.node {
            Node::Container { open, .. } => {
                self.memory.set_open(&row.path, !open);
                self.rebuild();
            }
            Node::More { .. } => self.show_more(&row.path),
            Node::Scalar(_) => {}
        }
    }

    /// `l`: open a closed container, or step into an open one.
    pub fn expand(&mut self) {
        let Some(row) = self.current().cloned() else {
            return;
        };
        match row.node {
            Node::Container { open: false, .. } => {
                self.memory.set_open(&row.path, true);
                self.rebuild();
            }
            Node::Container { open: true, len, .. } if len > 0 => self.select(self.selected + 1),
            Node::More { .. } => self.show_more(&row.path),
            _ => {}
        }
    }

    /// `h`: close an open container, or go to the parent.
    pub fn collapse(&mut self) {
        let Some(row) = self.current().cloned() else {
            return;
        };
        if row.is_open() && row.label != tree::Label::Root {
            self.memory.set_open(&row.path, false);
            self.rebuild();
        } else {
            self.parent();
        }
    }

    pub fn parent(&mut self) {
        if let Some(p) = tree::parent_row(&self.rows, self.selected) {
            self.select(p);
        }
    }

    pub fn sibling(&mut self, forward: bool) {
        if let Some(s) = tree::sibling_row(&self.rows, self.selected, forward) {
            self.select(s);
        }
    }

    /// Reveal more children of the container at `path`; the selection
    /// lands on the first newly shown child.
    fn show_more(&mut self, path: &Path) {
        let keep = self.selected;
        self.memory.show_more(path);
        self.rows = tree::flatten(&self.state, &self.changes, &self.memory);
        self.select(keep);
    }

    /// Scroll so the selection is on screen in a pane `height` rows tall;
    /// `jumped` puts it a third of the way down when it was off screen, to
    /// show what surrounds a change.
    pub fn scroll_into_view(&mut self, height: usize, jumped: bool) {
        let height = height.max(1);
        self.offset = self.offset.min(self.rows.len().saturating_sub(height));
        let s = self.selected;
        if s < self.offset || s >= self.offset + height {
            self.offset = if jumped {
                s.saturating_sub(height / 3)
            } else if s < self.offset {
                s
            } else {
                s + 1 - height
            };
        }
    }
}
