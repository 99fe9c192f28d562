//! Between the App and the memory image: fetch what the App wants (the
//! state and diff at the cursor), the only part of a frame that reads the
//! source.
//!
//! Stepping must cost one reducer call, not a replay from the nearest
//! checkpoint (up to K calls, tens of milliseconds with a jq reducer). So
//! the fetcher keeps a window of consecutive states: entering a checkpoint
//! segment replays it once and keeps every state in it (O(1) clones of
//! persistent values that share structure); stepping inside the window is
//! free, and stepping forward past its end folds one more event. While
//! idle, the segment before the cursor's is replayed ahead of time, so
//! stepping backward rarely waits either.

use super::app::{App, Snapshot, Want};
use crate::diff::{diff, line_diff};
use crate::image::{MemoryImage, Status};
use crate::log::SourceError;
use crate::value::PVal;

/// The image and the number of times it was reset, behind one lock: a
/// window of states from before a reset must never be used after it.
pub struct Engine {
    pub image: MemoryImage,
    pub generation: u64,
}

impl Engine {
    pub fn new(image: MemoryImage) -> Engine {
        Engine { image, generation: 0 }
    }

    /// Forget everything folded (the log was truncated or replaced).
    pub fn reset(&mut self) {
        self.image.reset();
        self.generation += 1;
    }
}

/// Consecutive states: `states[k]` is the state after `start + k` entries.
struct Window {
    generation: u64,
    start: usize,
    states: Vec<PVal>,
}

/// Changes beyond this many are left out of the line diff (each change is
/// pretty-printed whole).
const LINE_DIFF_CHANGES: usize = 200;

#[derive(Default)]
pub struct Fetcher {
    /// Most recently used first; at most [`WINDOWS`].
    windows: Vec<Window>,
}

impl Fetcher {
    /// Fetch what the App wants until it wants nothing more (or a fetch
    /// did not satisfy it: a reset the App has not heard of yet).
    pub fn settle(&mut self, app: &mut App, engine: &mut Engine) {
        for _ in 0..4 {
            match app.want() {
                None => return,
                Some(Want::Snapshot(i)) => {
                    let snap = self.snapshot(engine, i);
                    app.set_snapshot(snap);
                    if app.want() == Some(Want::Snapshot(i)) {
                        return;
                    }
                }
                Some(Want::LineDiff) => {
                    let lines = app.snapshot.as_ref().map(|s| {
                        let n = s.changes.len().min(LINE_DIFF_CHANGES);
                        line_diff(&s.changes[..n])
                    });
                    app.set_lines(lines.unwrap_or_default());
                }
            }
        }
    }

    /// The event at index `i`, the state after it and what it changed.
    pub fn snapshot(&mut self, engine: &mut Engine, i: usize) -> Snapshot {
        let generation = engine.generation;
        let mut snap = Snapshot {
            index: i,
            generation,
            event: None,
            after: PVal::Null,
            changes: Vec::new().into(),
            lines: None,
            error: None,
        };
        let image = &mut engine.image;
        let ok = image.entry(i).is_some_and(|e| e.status == Status::Ok);
        let read = image.event(i).and_then(|ev| {
            snap.event = ev.ok();
            self.states(image, generation, i)
        });
        match read {
            Ok((before, after)) => {
                if ok {
                    snap.changes = diff(&before, &after).into();
                }
                snap.after = after;
            }
            Err(e) => {
                self.windows.clear();
                snap.error = Some(e.0);
            }
        }
        snap
    }

    /// The states before and after the entry at `i`.
    fn states(
        &mut self,
        image: &mut MemoryImage,
        generation: u64,
        i: usize,
    ) -> Result<(PVal, PVal), SourceError> {
        self.windows.retain(|w| w.generation == generation);
        let k = image.checkpoint_interval();
        for n in 0..self.windows.len() {
            let w = &mut self.windows[n];
            if i < w.start {
                continue;
            }
            let end = w.start + w.states.len(); // one past the last count held
            let found = if i + 1 < end {
                (w.states[i - w.start].clone(), w.states[i + 1 - w.start].clone())
            } else if i + 1 == end {
                // One step past the window: fold one event onward.
                let before = w.states[i - w.start].clone();
                let next = image.fold_range(i, before.clone(), i + 1)?;
                let after = next.into_iter().next().unwrap_or_else(|| before.clone());
                w.states.push(after.clone());
                if w.states.len() > 2 * k + 1 {
                    w.states.drain(..k);
                    w.start += k;
                }
                (before, after)
            } else {
                continue;
            };
            // Most recently used first.
            let w = self.windows.remove(n);
            self.windows.insert(0, w);
            return Ok(found);
        }
        let w = segment(image, generation, i / k)?;
        let found = match (w.states.get(i - w.start), w.states.get(i + 1 - w.start)) {
            (Some(b), Some(a)) => (b.clone(), a.clone()),
            _ => return Err(SourceError(format!("no event at position {i}"))),
        };
        self.windows.insert(0, w);
        self.windows.truncate(WINDOWS);
        Ok(found)
    }

    /// Work to do while nothing else happens: when the cursor is near the
    /// start of its window, replay the segment before it, so stepping back
    /// across a checkpoint does not wait for a replay. Returns true when it
    /// did something.
    pub fn prefetch(&mut self, engine: &mut Engine, cursor: Option<usize>) -> bool {
        let (generation, image) = (engine.generation, &mut engine.image);
        let (Some(i), Some(w)) = (cursor, self.windows.first()) else {
            return false;
        };
        let near_start =
            w.generation == generation && w.start > 0 && i >= w.start && i - w.start < PREFETCH_NEAR;
        if !near_start
            || self.windows.iter().any(|x| {
                x.generation == generation && x.start < w.start && x.start + x.states.len() > w.start
            })
        {
            return false;
        }
        let k = image.checkpoint_interval();
        match segment(image, generation, w.start / k - 1) {
            Ok(prev) => {
                self.windows.insert(1, prev);
                self.windows.truncate(WINDOWS);
                true
            }
            Err(_) => false,
        }
    }
}

/// Windows kept: the cursor's and one neighbour.
const WINDOWS: usize = 2;
/// How close to the start of its window the cursor must be for the
/// previous segment to be prefetched.
const PREFETCH_NEAR: usize = 256;

/// Every state of checkpoint segment `c`: a replay of up to K events from
/// the checkpoint.
fn segment(image: &mut MemoryImage, generation: u64, c: usize) -> Result<Window, SourceError> {
    let k = image.checkpoint_interval();
    let start = c * k;
    let base = image.state_after_count(start)?;
    let end = (start + k).min(image.len());
    let mut states = Vec::with_capacity(end.saturating_sub(start) + 1);
    states.push(base.clone());
    states.extend(image.fold_range(start, base, end)?);
    Ok(Window {
        generation,
        start,
        states,
    })
}
