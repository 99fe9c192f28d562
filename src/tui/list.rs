//! The event list's cursor, scroll, filter and follow state.
//!
//! The cursor is an index into the whole log, never into the filtered
//! list: filtering hides rows, it does not change which state the cursor
//! shows. The filter keeps the sorted indexes of the rows it lets through
//! (extended incrementally as events arrive), so a million-event list
//! moves by index arithmetic and only visible rows are ever looked at.

use super::app::LogView;
use crate::image::{Entry, Status};

/// Which events the list shows.
#[derive(Clone, Debug)]
pub struct Filter {
    /// What the person typed (see [`Filter::matches`]).
    pub text: String,
    /// Indexes of the entries that match, ascending.
    pub rows: Vec<usize>,
}

impl Filter {
    /// `type:T` and `stream:S` match exactly; `is:invalid` and `is:error`
    /// pick out problem events; anything else matches a type or stream
    /// containing it (ASCII case ignored).
    pub fn matches(text: &str, e: &Entry) -> bool {
        if let Some(t) = text.strip_prefix("type:") {
            return *e.ty == *t;
        }
        if let Some(s) = text.strip_prefix("stream:") {
            return e.stream.as_deref() == Some(s);
        }
        match text {
            "is:invalid" => return e.is_invalid(),
            "is:error" => return matches!(e.status, Status::ReducerError(_)),
            _ => {}
        }
        contains_ignore_case(&e.ty, text)
            || e.stream.as_deref().is_some_and(|s| contains_ignore_case(s, text))
    }
}

/// Substring test ignoring ASCII case, without allocating (it runs over
/// every entry of the log when a filter is set).
pub fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The list state (see the module comment).
#[derive(Clone, Debug)]
pub struct EventList {
    /// Index of the event at the cursor; None while no row is visible.
    pub cursor: Option<usize>,
    /// First row on screen, in visible-row numbers.
    pub offset: usize,
    pub filter: Option<Filter>,
    /// Move with new events when the cursor is on the last row.
    pub follow: bool,
    /// Visible events that arrived while the cursor was not following.
    pub new_count: usize,
    /// Entries seen so far.
    pub known: usize,
    /// Count arrivals in `new_count` (off during the initial load).
    pub counting: bool,
    /// After a reload, put the cursor back on this id when it reappears.
    pub restore_id: Option<i64>,
}

impl Default for EventList {
    fn default() -> Self {
        EventList {
            cursor: None,
            offset: 0,
            filter: None,
            follow: true,
            new_count: 0,
            known: 0,
            counting: false,
            restore_id: None,
        }
    }
}

impl EventList {
    /// Rows the list shows.
    pub fn visible_len(&self) -> usize {
        match &self.filter {
            Some(f) => f.rows.len(),
            None => self.known,
        }
    }

    /// The entry index of visible row `v`.
    pub fn abs(&self, v: usize) -> Option<usize> {
        match &self.filter {
            Some(f) => f.rows.get(v).copied(),
            None => (v < self.known).then_some(v),
        }
    }

    /// The visible row of entry `i`, or where it would be.
    pub fn vis(&self, i: usize) -> Result<usize, usize> {
        match &self.filter {
            Some(f) => f.rows.binary_search(&i),
            None if i < self.known => Ok(i),
            None => Err(self.known),
        }
    }

    pub fn cursor_vis(&self) -> Option<usize> {
        self.cursor.and_then(|c| self.vis(c).ok())
    }

    /// True when the cursor is on the last visible row (or nothing is
    /// visible yet, so the first event to arrive is "the end").
    pub fn at_end(&self) -> bool {
        match self.cursor_vis() {
            Some(v) => v + 1 >= self.visible_len(),
            None => true,
        }
    }

    /// Put the cursor on visible row `v` (clamped).
    pub fn set_cursor_vis(&mut self, v: usize) {
        let n = self.visible_len();
        self.cursor = if n == 0 { None } else { self.abs(v.min(n - 1)) };
        if self.at_end() {
            self.new_count = 0;
        }
    }

    /// Move the cursor by `delta` visible rows.
    pub fn move_by(&mut self, delta: isize) {
        let Some(v) = self.cursor_vis() else {
            self.set_cursor_vis(0);
            return;
        };
        self.set_cursor_vis(v.saturating_add_signed(delta));
    }

    pub fn last(&mut self) {
        self.set_cursor_vis(self.visible_len().saturating_sub(1));
    }

    /// Catch up with the log: extend the filter over new entries, move the
    /// cursor if it follows, count arrivals otherwise.
    pub fn sync(&mut self, log: &dyn LogView) {
        let len = log.len();
        if len < self.known {
            self.forget_rows(None);
        }
        if len == self.known {
            return;
        }
        let was_at_end = self.at_end();
        let before = self.visible_len();
        if let Some(f) = &mut self.filter {
            for i in self.known..len {
                if log.entry(i).is_some_and(|e| Filter::matches(&f.text, &e)) {
                    f.rows.push(i);
                }
            }
        }
        self.known = len;
        let added = self.visible_len() - before;
        if let Some(id) = self.restore_id
            && let Ok(i) = log.index_of(id)
            && self.vis(i).is_ok()
        {
            self.cursor = Some(i);
            self.restore_id = None;
        } else if self.cursor.is_none() {
            if self.follow {
                self.last();
            } else {
                self.set_cursor_vis(0);
            }
        } else if self.follow && was_at_end {
            self.last();
        } else if self.counting {
            self.new_count += added;
        }
        if self.at_end() {
            self.new_count = 0;
        }
    }

    /// The log was reset: forget every row, remember where the cursor was.
    pub fn forget_rows(&mut self, log_id: Option<i64>) {
        if !self.follow || !self.at_end() {
            self.restore_id = self.restore_id.or(log_id);
        }
        self.cursor = None;
        self.offset = 0;
        self.known = 0;
        self.new_count = 0;
        self.counting = false;
        if let Some(f) = &mut self.filter {
            f.rows.clear();
        }
    }

    /// Show only the entries matching `text` (None or empty: all). The
    /// cursor stays on its event when it is still shown, else moves to the
    /// nearest shown one before it (or after, when there is none before).
    pub fn set_filter(&mut self, text: Option<&str>, log: &dyn LogView) {
        self.filter = text.filter(|t| !t.is_empty()).map(|t| Filter {
            text: t.to_string(),
            rows: (0..self.known)
                .filter(|&i| log.entry(i).is_some_and(|e| Filter::matches(t, &e)))
                .collect(),
        });
        self.new_count = 0;
        match self.cursor.map(|c| self.vis(c)) {
            Some(Ok(_)) => {}
            Some(Err(at)) => self.set_cursor_vis(at.saturating_sub(1)),
            None => self.set_cursor_vis(0),
        }
        if self.visible_len() == 0 {
            self.cursor = None;
        }
    }

    /// Scroll so the cursor is on screen in a list `height` rows tall.
    pub fn scroll_into_view(&mut self, height: usize) {
        let height = height.max(1);
        let n = self.visible_len();
        self.offset = self.offset.min(n.saturating_sub(height));
        if let Some(v) = self.cursor_vis() {
            if v < self.offset {
                self.offset = v;
            } else if v >= self.offset + height {
                self.offset = v + 1 - height;
            }
        }
    }
}
