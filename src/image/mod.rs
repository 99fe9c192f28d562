//! The memory image: every state of the fold, kept cheaply.
//!
//! The image reads its log once, keeping for each record a small index
//! entry (id, type, stream, time, where the body is, and whether it was
//! invalid or made the reducer fail) rather than the parsed event. It keeps
//! a checkpoint (an O(1) clone of the persistent state) every K events, so
//! the state after any event is the nearest checkpoint before it plus at
//! most K-1 reducer steps over bodies read again from the source.
//! New records are folded onto the last state without refolding.
//!
//! Memory: checkpoints share structure, but each keeps the path copies made
//! in its interval. Under a memory budget the image *thins* checkpoints far
//! from the focus (the cursor, or the end while loading): each round keeps
//! only every 2^level-th of them. A seek into a thinned stretch replays from
//! the nearest kept checkpoint and rebuilds the ones it passes, so the
//! stretch the user is looking at becomes dense again. Answers never change;
//! only the time a far seek takes does.

mod delta;
mod index;
pub mod snapshot;

use crate::value::Text;
use delta::{Delta, FAR_JOB, Far, Piece};

pub use index::Index;

use crate::diff::{Change, diff};
use crate::log::{Change as LogChange, Event, Invalid, Loc, LogSource, Record, SourceError};
use crate::reduce::Reducer;
use crate::value::PVal;
use std::collections::HashMap;
use std::sync::Arc;

/// The checkpoint spacing the cost model picks from: powers of two in
/// this range. On the 1M benchmark log (`benches/fold.rs`, one run each in
/// a slow minute) 512 seeks at p99 9.5 ms and folds 130k events/s at
/// 825 MB; 1024 at 15.6 ms, 157k, 798 MB; 256 at 6.5 ms, 104k, 848 MB.
pub const MIN_AUTO_INTERVAL: usize = 64;
pub const MAX_AUTO_INTERVAL: usize = 512;

/// The cost model times the reducer on this many first events (a multiple
/// of [`MAX_AUTO_INTERVAL`]) before it picks the spacing; until then
/// checkpoints are [`MIN_AUTO_INTERVAL`] apart.
const CALIBRATION_EVENTS: usize = 4096;

/// What the cost model aims at: replaying one interval (the most a seek
/// replays after reaching the checkpoint before its target) takes about
/// this long.
const TARGET_INTERVAL_REPLAY: std::time::Duration = std::time::Duration::from_millis(10);

/// The checkpoint spacing for a reducer that takes `per_event` to fold an
/// event: the largest power of two whose replay stays within
/// [`TARGET_INTERVAL_REPLAY`], within [`MIN_AUTO_INTERVAL`] ..
/// [`MAX_AUTO_INTERVAL`]. A replay also reads and parses each body again,
/// which on the benchmark logs costs about what the reducer does, so an
/// event replayed is counted as twice its fold.
pub fn interval_for(per_event: std::time::Duration) -> usize {
    let replay = per_event.as_nanos().saturating_mul(2).max(1);
    let fits = TARGET_INTERVAL_REPLAY.as_nanos() / replay;
    let fits = usize::try_from(fits).unwrap_or(usize::MAX);
    let pow2 = match fits {
        0 => 1,
        n => 1 << n.ilog2(),
    };
    pow2.clamp(MIN_AUTO_INTERVAL, MAX_AUTO_INTERVAL)
}

/// Default memory budget: checkpoints are thinned to stay under it.
pub const DEFAULT_MEMORY_BUDGET: usize = 1 << 30;

/// Give freed pages back to the system after thinning freed this much.
const TRIM_AFTER: usize = 64 << 20;

/// A seek that replays intervals without deltas makes them again for the
/// last this many before its target.
const REMAKE_NEAR: usize = 16;

/// Replaying an interval costs about this many times applying its delta
/// (reading and parsing bodies and running the reducer, against a map
/// update a change; measured on the benchmark logs).
const REPLAY_COST: usize = 4;

/// The share of the budget (%) the image keeps its live bytes under (see
/// [`Fold::keep_to_budget`]).
const LIVE_SHARE: usize = 72;

/// A seek crossing many intervals checks the budget every this many
/// (a short one only once it is done).
const BUDGET_CHECK_EVERY: usize = 64;

/// Checkpoints this close to the focus are never thinned.
const NEAR_FOCUS: usize = 4;

/// A checkpoint thinned at a multiple of this many intervals is kept whole
/// in the scratch file (a far state, see `Fold::far`) rather than dropped:
/// far apart (past level 6 of thinning), a seek would otherwise cross
/// hundreds of intervals by deltas. On the 10M benchmark log, 128 against
/// 256 (two runs against four): seek p50 128-129 ms against 145-177, p99
/// 191-197 against 243-332, 146 far states (374 MB of scratch file) against
/// 69 (177 MB), the fold within the machine's noise; 32 took the fold from
/// 130k to 58k events/s (encoding whole states on the second core). Once
/// encoding was faster (foldhash), 64 against 128 on one machine on one
/// day: 294 far states (752 MB) against 148 (379 MB), the seeks' deltas
/// from the far state applied in 10.0 ms against 15.3 (median), seek p50
/// 63.1 against 69.9 ms, p99 100.6 against 109.7; the fold 87k against
/// 100k events/s, within that day's noise (86k-113k). Once a seek read
/// only a far state's head (see `delta::Far`), crossing the deltas from it
/// was most of a far seek (about 1 ms a delta, composed on one core while
/// the other applies): 32 against 64, traced on the 10M log on one night,
/// seek p50 13.2-15.2 ms against 27.6-28.3, p99 26.1-31.0 against
/// 51.3-55.6; 599 far states (2.6 GB of scratch file) against 288; the
/// fold 55,500 events/s with far states made on the deltas' thread and
/// 61,500 on a thread of their own, against 72,600-78,800 at 64.
const FAR_EVERY: usize = 32;

/// A far state's bytes are read in this many times faster than deltas'
/// are crossed (the bytes a read takes at once: its head, see
/// `delta::Far`). On the 10M benchmark log (2.6 MB far states read whole
/// then, 16.6 KB deltas) a far state was read lazily in 13-15 ms (median)
/// inside a seek, and a delta is crossed in about 0.85 ms, from a far state or from a
/// kept checkpoint alike: composed on a second thread while this one
/// applies, the changes below members put off in unread leaves (see
/// `Composed::apply`; a leaf shared with the checkpoint gets a leaf over
/// it). Before those, at 4 and with the deltas from a far state counted
/// half, a seek crossed up to 56 deltas from a kept checkpoint (2.3-3 ms
/// each) rather than read one: 42 took 92 ms.
const FAR_BYTES_PER_DELTA_BYTE: usize = 10;

/// A load that folds at least this many records settles the image at its
/// end (see [`Fold::settle`]).
const SETTLE_AFTER: usize = 1 << 16;

/// A seek crosses a run of at least this many deltas composed (one pass
/// over the state, see [`crate::diff::Composed`]) rather than one by one.
const COMPOSE_FROM: usize = 2;

/// A seek composes the deltas it crosses this many at a time, applying
/// each batch while the next is composed (see [`cross`]).
const COMPOSE_BATCH: usize = 4;

/// After an event the reducer could not fold in place (see
/// [`Reducer::apply_owned`]), the fold copies for this many events before
/// it tries again: going back costs a replay of the events since the last
/// checkpoint, which a reducer that often fails must not pay often.
const OWNED_BACKOFF: usize = 4096;

/// What happened to a record when it was folded.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Folded normally.
    Ok,
    /// The line or row could not be read; it is skipped by the fold.
    Invalid(Box<Invalid>),
    /// The reducer failed on this event; the state was left unchanged.
    ReducerError(Text),
}

/// What the image keeps about each record.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: i64,
    /// The event type (empty for an invalid record).
    pub ty: Text,
    pub stream: Option<Text>,
    pub time: Option<Text>,
    pub loc: Loc,
    pub status: Status,
}

impl Entry {
    pub fn is_invalid(&self) -> bool {
        matches!(self.status, Status::Invalid(_))
    }
}

/// Tuning for the image.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Events between checkpoints (at least 1); `None`: the cost model
    /// picks it from the reducer's speed on the first events (see
    /// [`interval_for`]).
    pub checkpoint_interval: Option<usize>,
    /// Thin checkpoints far from the focus when the process holds more
    /// than this many bytes (see [`crate::alloc::used_bytes`]).
    pub memory_budget: Option<usize>,
    /// Where to write the deltas (an unlinked scratch file, gone when the
    /// image is); `None`, or a directory where no file can be made: they
    /// are kept in memory, and dropped far from the focus under the budget.
    pub scratch_dir: Option<std::path::PathBuf>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            checkpoint_interval: None,
            memory_budget: Some(DEFAULT_MEMORY_BUDGET),
            scratch_dir: Some(default_scratch_dir()),
        }
    }
}

/// Where deltas are written by default: the cache directory (see
/// [`snapshot::cache_dir`]), else the system's temporary directory.
pub fn default_scratch_dir() -> std::path::PathBuf {
    snapshot::cache_dir().unwrap_or_else(std::env::temp_dir)
}

/// Why an event id could not be found: the nearest ids on each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingId {
    pub id: i64,
    pub before: Option<i64>,
    pub after: Option<i64>,
}

impl std::fmt::Display for MissingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no event with id {}", self.id)?;
        match (self.before, self.after) {
            (None, None) => write!(f, " (the log has no events)"),
            (Some(b), Some(a)) => write!(f, "; nearest ids: {b} and {a}"),
            (Some(b), None) => write!(f, "; the last id is {b}"),
            (None, Some(a)) => write!(f, "; the first id is {a}"),
        }
    }
}

/// Folded events and their checkpoints: everything but the source.
struct Fold {
    reducer: Arc<dyn Reducer>,
    init: PVal,
    interval: usize,
    /// While the cost model times the reducer: the time spent so far.
    calibration: Option<std::time::Duration>,
    /// What the cost model measured: the reducer's time an event.
    event_cost: Option<std::time::Duration>,
    entries: Index,
    /// `checkpoints[c]` is the state after the first `c * interval`
    /// entries, or `None` where it was thinned. `checkpoints[0]` is always
    /// the initial state.
    checkpoints: Vec<Option<PVal>>,
    /// `deltas[c]` turns checkpoint `c`'s state into checkpoint `c + 1`'s,
    /// or is `None` where it was dropped under the budget (or not made).
    deltas: Vec<Option<Delta>>,
    /// Bytes the deltas hold in memory.
    delta_bytes: usize,
    /// Bytes the deltas take in the scratch file.
    spilled_bytes: usize,
    /// Far checkpoints kept whole in a file (saved with a restored
    /// snapshot, or thinned to the scratch file), by checkpoint index, read
    /// in when a seek is nearer one of them than any kept checkpoint (see
    /// [`MemoryImage::read_in_far`]).
    far: std::collections::BTreeMap<usize, Far>,
    /// Checkpoints thinned to far states not made yet: they stay in memory
    /// (the delta maker holds them anyway) until theirs is, so that a seek
    /// meanwhile finds them rather than a long crossing.
    far_pending: std::collections::BTreeSet<usize>,
    /// How many times a seek read in a far state.
    far_reads: usize,
    maker: delta::Maker,
    /// The checkpoint index the user is looking at; thinning spares it.
    focus: usize,
    /// How many thinning rounds ran: far checkpoints are kept only at
    /// multiples of 2^level.
    thin_level: u32,
    budget: Option<usize>,
    /// About how many records the source has left to read.
    unread: u64,
    /// Bytes to leave free for something outside the image (a snapshot
    /// being written).
    set_aside: usize,
    /// Bytes freed by thinning since freed pages were last given back.
    freed_since_trim: usize,
    /// The state after the last entry.
    last: PVal,
    /// The events folded cleanly since the last checkpoint, so that the
    /// state before the last one can be had again after folding in place
    /// lost it; `None` while that checkpoint is not known (after a
    /// snapshot restore, until the next one).
    since_checkpoint: Option<Vec<PVal>>,
    /// Events to fold by copying before folding in place again.
    owned_backoff: usize,
    /// True while ids are strictly ascending (binary search works).
    ascending: bool,
    /// id → first index, built when ids stop being ascending.
    by_id: HashMap<i64, usize>,
    invalid: usize,
    errors: usize,
}

impl Fold {
    /// Thin far checkpoints while the process holds more than the budget.
    /// A seek passes `wait: false`: while states thinned before are still
    /// being freed, the count overstates what is held, and it looks again
    /// next time rather than wait for them (freeing a few megabytes takes
    /// milliseconds).
    fn keep_to_budget(&mut self, wait: bool) {
        let Some(budget) = self.budget else { return };
        if !wait && graveyard::pending() {
            return;
        }
        // The count is of bytes asked for; freed memory not yet reused
        // (holes thinning leaves among live nodes) and jemalloc's size
        // classes add to it in the resident set: 14% on the 1M benchmark
        // log, and up to 75% over the live count at the end of the 10M
        // one, whose peaks come while thinned states are still being freed
        // (both stay under the budget at this share). Aim below the budget
        // by that much.
        // Room is kept for the index entries of the records not read yet:
        // the index only grows, and in fresh pages (see
        // `alloc::release_free_memory`), so the checkpoints must leave it
        // that room now.
        let limit = self.limit(budget);
        if crate::alloc::used_bytes() <= limit {
            return;
        }
        let before = crate::alloc::used_bytes();
        // Checkpoints made since the last round follow the current rule too.
        self.thin();
        // Each round halves the far checkpoints, evenly; the budget wins
        // over seek time, as far as keeping only the first, the last and
        // those around the focus.
        // Count only what is really held: wait for the states dropped so
        // far to be freed, and for the delta maker to let go of those it
        // was given (a thinned checkpoint waiting there to be diffed is not
        // freed by thinning it; counting it would thin a level too far).
        // A seek waits for neither: it goes further only when nothing is
        // on its way out, and otherwise leaves it to the next check.
        if !wait {
            self.collect_deltas(false);
            let settled = |f: &Fold| !graveyard::pending() && !f.maker.busy();
            if settled(self)
                && crate::alloc::used_bytes() > limit
                && (self.checkpoints.len() >> self.thin_level) > 1
            {
                self.thin_level += 1;
                self.thin();
            }
            let used = crate::alloc::used_bytes();
            if settled(self) && used > limit {
                self.drop_far_deltas(used - limit);
            }
            return;
        }
        graveyard::wait();
        if crate::alloc::used_bytes() > limit {
            self.collect_deltas(true);
        }
        while crate::alloc::used_bytes() > limit && (self.checkpoints.len() >> self.thin_level) > 1 {
            self.thin_level += 1;
            self.thin();
            graveyard::wait();
        }
        // Then deltas, farthest from the focus first.
        let used = crate::alloc::used_bytes();
        if used > limit {
            self.drop_far_deltas(used - limit);
        }
        self.freed_since_trim += before.saturating_sub(crate::alloc::used_bytes());
        // Only while the index still has records to take in (it grows in
        // fresh pages); afterwards jemalloc's own decay gives pages back
        // without a seek waiting for it.
        if self.freed_since_trim > TRIM_AFTER && self.unread > 0 {
            crate::alloc::release_free_memory();
            self.freed_since_trim = 0;
        }
    }

    /// After a long fold: the checkpoints made since its last round of
    /// thinning go as the current level says, and this waits until they
    /// are freed. Otherwise the first seek elsewhere drops them all at
    /// once (hundreds on the 10M log, a quarter of a second to free) and
    /// the next far seek waits for that (see `read_in_far`).
    fn settle(&mut self) {
        if self.thin_level > 0 {
            self.thin();
            graveyard::wait();
        }
    }

    /// Keep checkpoint 0, the last one, those near the focus, and the far
    /// ones at multiples of 2^level, the current thinning level.
    fn thin(&mut self) {
        let mut dropped = Vec::new();
        let mut far = Vec::new();
        let to_file = self.maker.spills();
        for c in 0..self.checkpoints.len() {
            // One waiting for its far state goes once that is made.
            if !self.thinned(c) || self.far_pending.contains(&c) {
                continue;
            }
            if let Some(state) = self.checkpoints[c].take() {
                match to_file && c.is_multiple_of(FAR_EVERY) && !self.far.contains_key(&c) {
                    true => far.push((c, state)),
                    false => dropped.push(state),
                }
            }
        }
        graveyard::bury(dropped);
        for (c, state) in far {
            self.checkpoints[c] = Some(state.clone());
            self.far_pending.insert(c);
            self.queue_delta(c | FAR_JOB, PVal::Null, state);
        }
    }

    /// True when thinning at the current level drops checkpoint `c`: all
    /// but checkpoint 0, the last one, those near the focus, and those at
    /// multiples of 2^level.
    fn thinned(&self, c: usize) -> bool {
        let step = 1usize << self.thin_level.min(62);
        let last = self.checkpoints.len().saturating_sub(1);
        !(c == 0 || c == last || c.abs_diff(self.focus) <= NEAR_FOCUS || c.is_multiple_of(step))
    }

    /// Throw away what the delta maker was given to make: the intervals it
    /// was for are gone.
    fn forget_jobs(&mut self) {
        self.maker.forget();
        self.far_pending.clear();
    }

    /// The live bytes the image may hold under `budget` (see
    /// [`Fold::keep_to_budget`]).
    fn limit(&self, budget: usize) -> usize {
        let reserve = self.entries.room_for(self.unread).saturating_add(self.set_aside);
        (budget / 100 * LIVE_SHARE).saturating_sub(reserve)
    }

    /// Drop deltas, farthest from the focus first, until `need` bytes are
    /// freed; those near the focus stay.
    fn drop_far_deltas(&mut self, mut need: usize) {
        let (mut lo, mut hi) = (0, self.deltas.len());
        while need > 0 && lo < hi {
            let c = if self.focus.abs_diff(lo) >= self.focus.abs_diff(hi - 1) {
                lo += 1;
                lo - 1
            } else {
                hi -= 1;
                hi
            };
            if c.abs_diff(self.focus) <= NEAR_FOCUS {
                break;
            }
            // Those in the scratch file cost nothing here.
            if let Some(d) = self.deltas[c].take_if(|d| d.bytes() > 0) {
                need = need.saturating_sub(d.bytes());
                self.delta_bytes -= d.bytes();
            }
        }
    }

    /// Have the delta for interval `c` made, from `a` (the state at
    /// checkpoint `c`) to `b` (at `c + 1`).
    fn queue_delta(&mut self, c: usize, a: PVal, b: PVal) {
        if let Some((c, made)) = self.maker.queue(c, a, b) {
            self.set_made(c, made);
        }
    }

    /// Keep the deltas made so far; with `wait`, all those queued.
    fn collect_deltas(&mut self, wait: bool) {
        for (c, made) in self.maker.collect(wait) {
            self.set_made(c, made);
        }
    }

    /// Keep what the maker made for job `c` (see [`FAR_JOB`]).
    fn set_made(&mut self, c: usize, made: Option<Piece>) {
        match made {
            Some(Piece::Far(far)) => self.set_far(c, Some(far)),
            _ if c & FAR_JOB != 0 => self.set_far(c, None),
            Some(Piece::Delta(d)) => self.set_delta(c, Some(d)),
            None => self.set_delta(c, None),
        }
    }

    /// Keep `far` (in the scratch file only) as the far state for job `c`.
    fn set_far(&mut self, c: usize, far: Option<Far>) {
        let c = c & !FAR_JOB;
        if let Some(d) = far.filter(|d| d.bytes() == 0) {
            self.far.insert(c, d);
        }
        // Made (or failed): the checkpoint goes as thinning said, unless a
        // seek since wants it where it is.
        if self.far_pending.remove(&c)
            && self.thinned(c)
            && let Some(state) = self.checkpoints.get_mut(c).and_then(Option::take)
        {
            graveyard::bury(vec![state]);
        }
    }

    /// Keep `delta` as the one for interval `c`.
    fn set_delta(&mut self, c: usize, delta: Option<Delta>) {
        let Some(slot) = self.deltas.get_mut(c) else {
            return;
        };
        let old = std::mem::replace(slot, delta);
        if let Some(d) = old {
            self.delta_bytes -= d.bytes();
            self.spilled_bytes -= d.spilled_bytes();
        }
        if let Some(d) = slot {
            self.delta_bytes += d.bytes();
            self.spilled_bytes += d.spilled_bytes();
        }
    }

    fn push(&mut self, record: Record) {
        let index = self.entries.len();
        let id = record.id();
        if self.ascending && index > 0 && self.entries.id(index - 1).is_some_and(|prev| prev >= id) {
            self.ascending = false;
            for (i, e) in self.entries.ids().enumerate() {
                self.by_id.entry(e).or_insert(i);
            }
        }
        if !self.ascending {
            self.by_id.entry(id).or_insert(index);
        }
        match record.body {
            Ok(event) => {
                let started = self.calibration.map(|_| std::time::Instant::now());
                let ev = event.to_pval();
                let applied = self.fold_event(&ev);
                if let (Some(spent), Some(t)) = (&mut self.calibration, started) {
                    *spent += t.elapsed();
                }
                let status = match applied {
                    Ok(next) => {
                        self.last = next;
                        if let Some(since) = &mut self.since_checkpoint {
                            since.push(ev);
                        }
                        Status::Ok
                    }
                    Err(msg) => {
                        self.errors += 1;
                        Status::ReducerError(Text::from(msg))
                    }
                };
                let (ty, stream, time) = (&event.ty, event.stream.as_ref(), event.time.as_deref());
                self.entries.push_parts(id, ty, stream, time, record.loc, status);
            }
            Err(invalid) => {
                self.invalid += 1;
                let status = Status::Invalid(Box::new(invalid));
                self.entries
                    .push_parts(id, &empty_name(), None, None, record.loc, status);
            }
        }
        if self.entries.len().is_multiple_of(self.interval) {
            let before = self.checkpoints.last().cloned().flatten();
            self.deltas.push(None);
            if let Some(before) = before {
                self.queue_delta(self.deltas.len() - 1, before, self.last.clone());
            }
            self.collect_deltas(false);
            self.checkpoints.push(Some(self.last.clone()));
            self.since_checkpoint = Some(Vec::new());
            self.focus = self.checkpoints.len() - 1;
            if self.entries.len() == CALIBRATION_EVENTS
                && let Some(spent) = self.calibration.take()
            {
                let per_event = spent / CALIBRATION_EVENTS as u32;
                self.event_cost = Some(per_event);
                self.regrid(interval_for(per_event));
            }
            self.keep_to_budget(true);
        }
    }

    /// What going on from checkpoint `c` to checkpoint `want` costs, in
    /// deltas applied: a missing one counts as the replay it takes.
    fn forward_cost(&self, c: usize, want: usize) -> usize {
        (c..want)
            .map(|m| if self.deltas[m].is_some() { 1 } else { REPLAY_COST })
            .sum()
    }

    /// The state after `ev` folded onto the last state, which is left as it
    /// was on an error. In place where it can be (the nodes not shared with
    /// a checkpoint are updated without copying them and freeing the old
    /// ones); when the reducer cannot fold the event that way, the state
    /// before it is made again from the last checkpoint and the event is
    /// folded as usual.
    fn fold_event(&mut self, ev: &PVal) -> Result<PVal, String> {
        // The way back: the last checkpoint (never thinned) and the events
        // since; without them, copy.
        let way_back = self.since_checkpoint.is_some() && matches!(self.checkpoints.last(), Some(Some(_)));
        if self.owned_backoff > 0 || !way_back {
            self.owned_backoff = self.owned_backoff.saturating_sub(1);
            return self.reducer.apply(&self.last, ev);
        }
        if let Some(next) = self.reducer.apply_owned(std::mem::take(&mut self.last), ev) {
            return Ok(next);
        }
        self.owned_backoff = OWNED_BACKOFF;
        // From the last checkpoint (there: checked above); every event
        // since folded cleanly the first time (a reducer is deterministic).
        let mut state = self.checkpoints.last().cloned().flatten().unwrap_or_default();
        for e in self.since_checkpoint.as_deref().unwrap_or_default() {
            state = self.reducer.apply(&state, e).unwrap_or(state);
        }
        self.last = state;
        self.reducer.apply(&self.last, ev)
    }

    /// Space the checkpoints `k` events apart, a multiple of the interval
    /// now, keeping those that fall on the new grid and making the deltas
    /// between them.
    fn regrid(&mut self, k: usize) {
        if k == self.interval || !k.is_multiple_of(self.interval) {
            return;
        }
        let ratio = k / self.interval;
        self.forget_jobs();
        let old = std::mem::take(&mut self.checkpoints);
        self.checkpoints = old.into_iter().step_by(ratio).collect();
        self.deltas = std::iter::repeat_with(|| None)
            .take(self.checkpoints.len().saturating_sub(1))
            .collect();
        self.delta_bytes = 0;
        self.spilled_bytes = 0;
        self.interval = k;
        self.thin_level = 0;
        self.focus = self.checkpoints.len().saturating_sub(1);
        for c in 0..self.deltas.len() {
            if let (Some(a), Some(b)) = (self.checkpoints[c].clone(), self.checkpoints[c + 1].clone()) {
                self.queue_delta(c, a, b);
            }
        }
    }
}

/// The type an invalid record has: none.
fn empty_name() -> Text {
    static EMPTY: std::sync::OnceLock<Text> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Text::from("")).clone()
}

/// Read the record at `index` again from `source`, checking that it is the
/// one the index knows (an invalid record gives its problem back).
fn read_again(
    source: &mut dyn LogSource,
    entries: &Index,
    index: usize,
) -> Result<Result<Event, Invalid>, SourceError> {
    let (Some(id), Some(loc)) = (entries.id(index), entries.loc(index)) else {
        return Err(SourceError(format!("no event at position {index}")));
    };
    if let Status::Invalid(inv) = entries.status(index) {
        return Ok(Err((**inv).clone()));
    }
    match source.read_at(loc)?.body {
        Ok(ev) if ev.id == id => Ok(Ok(ev)),
        Ok(ev) => Err(SourceError(format!(
            "{}: the event at this position changed (id {} is now {}); the log was rewritten",
            source.describe(),
            id,
            ev.id
        ))),
        Err(inv) => Err(SourceError(format!(
            "{}: the event read earlier can no longer be read ({}); the log was rewritten",
            inv.place, inv.reason
        ))),
    }
}

/// Dropping states on a thread of its own: freeing the nodes a big
/// checkpoint holds alone takes milliseconds (about 2 ms a megabyte) that a
/// seek need not wait for.
mod graveyard {
    use crate::value::PVal;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::Sender;
    use std::sync::{Mutex, OnceLock};

    static PENDING: AtomicUsize = AtomicUsize::new(0);

    /// What the dropping thread is sent.
    #[expect(dead_code, reason = "held only to be dropped there")]
    enum Grave {
        /// States, counted until freed.
        States(Vec<PVal>),
        /// Anything else, not counted.
        Other(Box<dyn Send>),
    }

    fn sender() -> Option<&'static Mutex<Sender<Grave>>> {
        static TX: OnceLock<Option<Mutex<Sender<Grave>>>> = OnceLock::new();
        TX.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Grave>();
            let spawned = std::thread::Builder::new()
                .name("evscope-drop".into())
                .spawn(move || {
                    for grave in rx {
                        let counted = matches!(grave, Grave::States(_));
                        drop(grave);
                        if counted {
                            PENDING.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                });
            spawned.ok().map(|_| Mutex::new(tx))
        })
        .as_ref()
    }

    /// Drop `what` on the dropping thread when there is one, without
    /// counting it as a burial (for what is small and need not be waited
    /// for, such as a seek's composed deltas once applied).
    pub fn drop_later(what: impl Send + 'static) {
        let Some(tx) = sender() else { return };
        let sent = tx.lock().map(|tx| tx.send(Grave::Other(Box::new(what))));
        if let Ok(Err(back)) = sent {
            drop(back);
        }
    }

    /// Drop these states, on the dropping thread when there is one.
    pub fn bury(states: Vec<PVal>) {
        if states.is_empty() {
            return;
        }
        let Some(tx) = sender() else { return };
        PENDING.fetch_add(1, Ordering::AcqRel);
        let sent = tx.lock().map(|tx| tx.send(Grave::States(states)));
        if let Ok(Err(back)) = sent {
            PENDING.fetch_sub(1, Ordering::AcqRel);
            drop(back);
        }
    }

    /// True while something buried is not freed yet.
    pub fn pending() -> bool {
        backlog() > 0
    }

    /// How many burials are not freed yet.
    pub fn backlog() -> usize {
        PENDING.load(Ordering::Acquire)
    }

    /// Wait until everything buried so far is freed.
    pub fn wait() {
        wait_until(0);
    }

    /// Wait until no more than `left` burials are still to be freed.
    pub fn wait_until(left: usize) {
        while backlog() > left {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

/// Every state of a log folded through a reducer.
pub struct MemoryImage {
    source: Box<dyn LogSource>,
    fold: Fold,
    /// Recently read bodies by index (seeking reads neighbours repeatedly).
    cache: HashMap<usize, Event>,
}

const CACHE_LIMIT: usize = 4096;

/// Replays of at least this many events read on a second thread.
const PARALLEL_REPLAY: usize = 2048;

/// One step of a replay: the event (id and `$event` value) applied to
/// `state`, or nothing for a record the first fold skipped.
fn replay_step(reducer: &dyn Reducer, state: PVal, item: Option<&(i64, PVal)>) -> Result<PVal, SourceError> {
    let Some((id, event)) = item else { return Ok(state) };
    reducer.apply(&state, event).map_err(|msg| {
        SourceError(format!(
            "the reducer failed on event {id} when replayed ({msg}), but not when first folded; is it deterministic?"
        ))
    })
}

/// Replay `items` onto `state`, `each` seeing the state after every one.
/// With `in_place`, the reducer updates the state in place where it can
/// (see [`Reducer::apply_owned`]; the nodes shared with a checkpoint or
/// with a state `each` kept are copied, the others are not); at the first
/// event it cannot fold that way, the state before it is made again from
/// `state` and the rest are folded as usual (`in_place` turns false).
fn replay_items(
    reducer: &dyn Reducer,
    mut state: PVal,
    items: &[Option<(i64, PVal)>],
    in_place: &mut bool,
    each: &mut dyn FnMut(&PVal),
) -> Result<PVal, SourceError> {
    let base = in_place.then(|| state.clone());
    for (p, item) in items.iter().enumerate() {
        if let (Some(base), Some((_, event)), true) = (&base, item, *in_place) {
            match reducer.apply_owned(state, event) {
                Some(next) => {
                    state = next;
                    each(&state);
                    continue;
                }
                None => {
                    *in_place = false;
                    state = base.clone();
                    for it in &items[..p] {
                        state = replay_step(reducer, state, it.as_ref())?;
                    }
                }
            }
        }
        state = replay_step(reducer, state, item.as_ref())?;
        each(&state);
    }
    Ok(state)
}

/// What stopped [`cross`].
#[derive(Debug)]
enum Crossing {
    /// The state to start from could not be had.
    Start,
    /// A delta did not compose or apply.
    Delta,
}

/// The state `start` makes, carried across the run of `deltas` (which
/// must all be there): forward, or undone from the last when not. The
/// deltas are composed on a second thread, [`COMPOSE_BATCH`] at a time,
/// while this one makes the start (a far state read, say) and then
/// applies each batch as it comes: the two cores share the work, and a
/// state read lazily is changed without reading most of it (see
/// `Composed::apply`). Without a second thread, all here.
fn cross(
    deltas: &[Option<Delta>],
    forward: bool,
    start: impl FnOnce() -> Result<PVal, Crossing>,
) -> Result<PVal, Crossing> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let batches = move || {
            // Undoing goes from the last delta back.
            let order: Vec<&[Option<Delta>]> = match forward {
                true => deltas.chunks(COMPOSE_BATCH).collect(),
                false => deltas.rchunks(COMPOSE_BATCH).collect(),
            };
            for run in order {
                let composed = delta::composed(run, forward);
                let failed = composed.is_err();
                if tx.send(composed).is_err() || failed {
                    return;
                }
            }
        };
        let composing = std::thread::Builder::new()
            .name("evscope-compose".into())
            .spawn_scoped(scope, batches.clone());
        // No thread to be had: here, once the start is made.
        let here = composing.is_err().then_some(batches);
        let mut state = start()?;
        if let Some(batches) = here {
            batches();
        }
        let mut left = deltas.len().div_ceil(COMPOSE_BATCH);
        for composed in rx.iter().take(left) {
            // The state is this crossing's alone: changed in place.
            let on = composed.map_err(|_| Crossing::Delta)?;
            on.apply(&mut state).map_err(|_| Crossing::Delta)?;
            // Freeing a few thousand changes is not the seek's to wait for.
            graveyard::drop_later(on);
            left -= 1;
        }
        // The thread ended without all of them.
        match left {
            0 => Ok(state),
            _ => Err(Crossing::Delta),
        }
    })
}

impl MemoryImage {
    /// An image of `source` folded by `reducer` from `init`. Nothing is read
    /// until [`MemoryImage::load`].
    pub fn new(
        source: Box<dyn LogSource>,
        reducer: Arc<dyn Reducer>,
        init: PVal,
        options: ImageOptions,
    ) -> MemoryImage {
        MemoryImage {
            source,
            fold: Fold {
                reducer,
                last: init.clone(),
                since_checkpoint: Some(Vec::new()),
                owned_backoff: 0,
                checkpoints: vec![Some(init.clone())],
                deltas: Vec::new(),
                delta_bytes: 0,
                spilled_bytes: 0,
                far: Default::default(),
                far_pending: Default::default(),
                far_reads: 0,
                maker: delta::Maker::new(options.scratch_dir.as_deref().and_then(delta::Spill::new)),
                focus: 0,
                thin_level: 0,
                budget: options.memory_budget,
                freed_since_trim: 0,
                unread: 0,
                set_aside: 0,
                init,
                interval: options.checkpoint_interval.unwrap_or(MIN_AUTO_INTERVAL).max(1),
                calibration: match options.checkpoint_interval {
                    None => Some(std::time::Duration::ZERO),
                    Some(_) => None,
                },
                event_cost: None,
                entries: Index::default(),
                ascending: true,
                by_id: HashMap::new(),
                invalid: 0,
                errors: 0,
            },
            cache: HashMap::new(),
        }
    }

    /// Read and fold everything the source has that was not read yet;
    /// `progress` is called with the number of entries after each batch.
    /// Returns how many records were added.
    pub fn load(&mut self, progress: &mut dyn FnMut(usize)) -> Result<usize, SourceError> {
        // Reading and parsing run on a second thread, folding on this one:
        // the machine has two cores and the reducer is the slower half.
        const BATCH: usize = 4096;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(Vec<Record>, u64), SourceError>>(8);
        let source = &mut self.source;
        let fold = &mut self.fold;
        std::thread::scope(|scope| {
            scope.spawn(move || {
                loop {
                    let mut batch = Vec::with_capacity(BATCH);
                    let read = source.read_new(Some(BATCH), &mut |r| batch.push(r));
                    let done = !matches!(read, Ok(n) if n > 0);
                    let unread = source.unread_hint().unwrap_or(0);
                    let msg = read.map(|_| (batch, unread));
                    // A closed channel means the folding side stopped: so do we.
                    if tx.send(msg).is_err() || done {
                        return;
                    }
                }
            });
            let mut added = 0;
            for msg in rx {
                let (batch, unread) = msg?;
                fold.unread = unread;
                added += batch.len();
                for r in batch {
                    fold.push(r);
                }
                progress(fold.entries.len());
            }
            // The log is read: seeks can use every delta from now on.
            fold.collect_deltas(true);
            if added >= SETTLE_AFTER {
                fold.settle();
            }
            Ok(added)
        })
    }

    /// Once a long load in batches is done: see [`Fold::settle`].
    pub fn settle(&mut self) {
        self.fold.settle();
    }

    /// Read and fold at most `max` new records; returns how many were
    /// added (0 when the source has nothing new). A caller that must stay
    /// responsive (the explorer's worker) loads in such steps.
    pub fn load_batch(&mut self, max: usize) -> Result<usize, SourceError> {
        let fold = &mut self.fold;
        let read = self.source.read_new(Some(max.max(1)), &mut |r| fold.push(r));
        self.fold.unread = self.source.unread_hint().unwrap_or(0);
        read
    }

    /// Check the source for changes and fold what is new. On a reset
    /// (truncation, replacement) the image is rebuilt from the start.
    pub fn refresh(&mut self) -> Result<LogChange, SourceError> {
        let change = self.poll()?;
        match &change {
            LogChange::None => {}
            LogChange::Appended => {
                self.load(&mut |_| {})?;
            }
            LogChange::Reset(_) => {
                self.reset();
                self.load(&mut |_| {})?;
            }
        }
        Ok(change)
    }

    /// Ask the source, cheaply, whether the log changed (nothing is folded).
    pub fn poll(&mut self) -> Result<LogChange, SourceError> {
        self.source.poll()
    }

    /// Forget everything folded and read the log again from its start on
    /// the next load (after the log was truncated or replaced).
    pub fn reset(&mut self) {
        self.source.rewind();
        let f = &mut self.fold;
        f.entries.clear();
        f.checkpoints = vec![Some(f.init.clone())];
        f.deltas.clear();
        f.delta_bytes = 0;
        f.spilled_bytes = 0;
        f.far.clear();
        f.forget_jobs();
        // Nothing held is in the scratch file now: a fresh one from here
        // on, and the old one's disk space goes back.
        f.maker.renew_spill();
        f.focus = 0;
        f.thin_level = 0;
        // A cost model still timing starts again with the events.
        if f.calibration.is_some() {
            f.calibration = Some(std::time::Duration::ZERO);
        }
        f.last = f.init.clone();
        f.since_checkpoint = Some(Vec::new());
        f.ascending = true;
        f.by_id.clear();
        f.invalid = 0;
        f.errors = 0;
        self.cache.clear();
    }

    pub fn describe_source(&self) -> String {
        self.source.describe()
    }

    /// Number of records (valid and invalid).
    pub fn len(&self) -> usize {
        self.fold.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fold.entries.is_empty()
    }

    /// The index of every record.
    pub fn entries(&self) -> &Index {
        &self.fold.entries
    }

    /// The index entry of the record at `index`.
    pub fn entry(&self, index: usize) -> Option<Entry> {
        self.fold.entries.get(index)
    }

    pub fn invalid_count(&self) -> usize {
        self.fold.invalid
    }

    pub fn error_count(&self) -> usize {
        self.fold.errors
    }

    pub fn checkpoint_interval(&self) -> usize {
        self.fold.interval
    }

    /// The reducer's time an event, as the cost model measured it on the
    /// first events (`None` when the spacing was set, or not picked yet).
    pub fn event_cost(&self) -> Option<std::time::Duration> {
        self.fold.event_cost
    }

    /// How many thinning rounds ran (far checkpoints are kept every
    /// 2^this-th).
    pub fn thin_level(&self) -> u32 {
        self.fold.thin_level
    }

    pub fn checkpoint_count(&self) -> usize {
        self.fold.checkpoints.iter().filter(|c| c.is_some()).count()
    }

    /// Keep `bytes` free within the memory budget for something outside
    /// the image (0: no longer), thinning now if need be.
    pub fn set_aside(&mut self, bytes: usize) {
        self.fold.set_aside = bytes;
        if bytes > 0 && self.fold.budget.is_some() {
            self.fold.keep_to_budget(true);
            // What thinning freed must leave the resident set now, or the
            // room is only on paper.
            graveyard::wait();
            crate::alloc::release_free_memory();
        }
    }

    /// How many intervals have a delta, the bytes they hold in memory and
    /// those they take in the scratch file.
    pub fn delta_stats(&self) -> (usize, usize, usize) {
        let n = self.fold.deltas.iter().filter(|d| d.is_some()).count();
        (n, self.fold.delta_bytes, self.fold.spilled_bytes)
    }

    /// How many far states (see `Fold::far`) are kept in files, their
    /// bytes there, and the bytes a seek reads of them at once (their
    /// heads, see `delta::Far`).
    pub fn far_stats(&self) -> (usize, usize, usize) {
        let far = self.fold.far.values();
        let bytes = far.clone().map(Far::spilled_bytes).sum();
        let heads = far.map(Far::read_bytes).sum();
        (self.fold.far.len(), bytes, heads)
    }

    /// The initial state.
    pub fn init(&self) -> &PVal {
        &self.fold.init
    }

    /// The state after the last event.
    pub fn last_state(&self) -> &PVal {
        &self.fold.last
    }

    /// The index of the event with this id (its first occurrence), or the
    /// nearest ids when there is none.
    pub fn index_of(&self, id: i64) -> Result<usize, MissingId> {
        let entries = &self.fold.entries;
        if self.fold.ascending {
            entries.search_id(id).map_err(|i| MissingId {
                id,
                before: i.checked_sub(1).and_then(|j| entries.id(j)),
                after: entries.id(i),
            })
        } else if let Some(&i) = self.fold.by_id.get(&id) {
            Ok(i)
        } else {
            let before = entries.ids().filter(|&x| x < id).max();
            let after = entries.ids().filter(|&x| x > id).min();
            Err(MissingId { id, before, after })
        }
    }

    /// Ids that occur more than once, each with the indexes of its records.
    pub fn duplicate_ids(&self) -> Vec<(i64, Vec<usize>)> {
        let mut seen: HashMap<i64, Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, id) in self.fold.entries.ids().enumerate() {
            let slot = seen.entry(id).or_default();
            if slot.len() == 1 {
                order.push(id);
            }
            slot.push(i);
        }
        order
            .into_iter()
            .map(|id| (id, seen.remove(&id).unwrap_or_default()))
            .collect()
    }

    /// Read the event at an index again from the source (cached).
    pub fn event(&mut self, index: usize) -> Result<Result<Event, Invalid>, SourceError> {
        if let Some(ev) = self.cache.get(&index) {
            return Ok(Ok(ev.clone()));
        }
        let read = read_again(self.source.as_mut(), &self.fold.entries, index)?;
        if let Ok(ev) = &read {
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
            self.cache.insert(index, ev.clone());
        }
        Ok(read)
    }

    /// The state after the first `count` entries (count 0: the initial state).
    pub fn state_after_count(&mut self, count: usize) -> Result<PVal, SourceError> {
        let count = count.min(self.fold.entries.len());
        if count == self.fold.entries.len() {
            return Ok(self.fold.last.clone());
        }
        self.fold.collect_deltas(false);
        let k = self.fold.interval;
        let want = count / k;
        // The nearest kept checkpoint at or before the one we want.
        let (c, start) = (0..=want)
            .rev()
            .find_map(|c| self.fold.checkpoints.get(c).cloned().flatten().map(|s| (c, s)))
            .unwrap_or((0, self.fold.init.clone()));
        self.fold.focus = want;
        let (c, start) = match self.read_in_far(c, want) {
            Some(far) => far,
            None => (c, start),
        };
        // Back from the checkpoint after, when that is cheaper and every
        // delta on the way undoes; else on from the one before.
        let back = match c == want {
            true => Some(start.clone()),
            false => self
                .later_checkpoint(c, want)
                .and_then(|(h, later)| self.retreat(h, later, want)),
        };
        let state = match back {
            Some(state) => state,
            None => self.advance(c, start, want)?,
        };
        let state = self.replay(want * k, state, count, &mut |_| {})?;
        // What the seeks before this one thinned is freed by now, most
        // likely, so the count is true again.
        self.fold.keep_to_budget(false);
        // The user moved: the checkpoints rebuilt around the last place
        // they looked can go now, a few at a time (rather than all at once
        // when the budget is next crossed).
        if self.fold.thin_level > 0 {
            self.fold.thin();
        }
        Ok(state)
    }

    /// A far state (see `Fold::far`) at or before `want` and after `c`, the
    /// kept checkpoint a seek would start from, when reading it in and
    /// going on from there crosses less: it is read and kept as a
    /// checkpoint. Also one after `want` that undoing
    /// back from would cross less (it is only read in; the seek then finds
    /// it). A far state costs what deltas of a tenth as many bytes as a read
    /// of it takes at once do (see [`FAR_BYTES_PER_DELTA_BYTE`]).
    fn read_in_far(&mut self, c: usize, want: usize) -> Option<(usize, PVal)> {
        let f = &self.fold;
        if f.far.is_empty() || c >= want {
            return None;
        }
        let kept = f.deltas.iter().filter(|d| d.is_some()).count().max(1);
        let per_delta = ((f.delta_bytes + f.spilled_bytes) / kept).max(1);
        let cost = |d: &Far| d.read_bytes() / per_delta / FAR_BYTES_PER_DELTA_BYTE + 1;
        let forward = f.forward_cost(c, want);
        let after_kept = (want + 1..f.checkpoints.len()).find(|&h| f.checkpoints[h].is_some());
        let backward = after_kept.map_or(usize::MAX, |h| h - want);
        let best = forward.min(backward);
        let before = f
            .far
            .range(c + 1..=want)
            .next_back()
            .map(|(&d, far)| (d, want - d + cost(far)));
        let after = f
            .far
            .range(want + 1..after_kept.unwrap_or(usize::MAX))
            .next()
            .filter(|(d, _)| f.deltas[want..**d].iter().all(Option::is_some))
            .map(|(&d, far)| (d, d - want + cost(far)));
        let pick = [before, after]
            .into_iter()
            .flatten()
            .filter(|(_, n)| *n < best)
            .min_by_key(|(_, n)| *n)?
            .0;
        // A whole state is about to be allocated: with the states of more
        // than the last seek still being freed (the thread freeing them
        // fell behind), wait for the older ones, so that no more than one
        // seek's leftovers and the new state are in memory at once. (Not
        // for the last one too: it is freed beside the decoding.)
        graveyard::wait_until(1);
        // With every delta between there: straight to `want`, the far
        // state decoded on a second thread while this one composes them.
        self.fold.far_reads += 1;
        let f = &self.fold;
        let between = if pick <= want { pick..want } else { want..pick };
        if between.clone().all(|j| f.deltas[j].is_some()) {
            let far = &f.far[&pick];
            // The far state is read here (into this thread's arena, with
            // the rest of the image) while the first deltas are composed.
            let reached = cross(&f.deltas[between], pick <= want, || {
                far.read().map_err(|_| Crossing::Start)
            });
            match reached {
                Ok(state) => {
                    self.fold.checkpoints[want] = Some(state.clone());
                    return Some((want, state));
                }
                // A whole state that does not check out is forgotten.
                Err(Crossing::Start) => {
                    self.fold.far.remove(&pick);
                    return None;
                }
                // A delta that does not compose or apply: the way below,
                // one by one.
                Err(Crossing::Delta) => {}
            }
        }
        // A whole state that does not check out is forgotten, not used.
        let Ok(state) = self.fold.far[&pick].read() else {
            self.fold.far.remove(&pick);
            return None;
        };
        self.fold.checkpoints[pick] = Some(state.clone());
        (pick <= want).then_some((pick, state))
    }

    /// The nearest kept checkpoint after `want` when undoing the deltas
    /// from it back to `want` is cheaper than going on from checkpoint `c`
    /// (before it): every delta between must be there, and a missing one
    /// on the way forward counts as the replay it takes.
    fn later_checkpoint(&self, c: usize, want: usize) -> Option<(usize, PVal)> {
        let f = &self.fold;
        let forward = f.forward_cost(c, want);
        let (h, later) = (want + 1..f.checkpoints.len())
            .take(forward)
            .find_map(|h| f.checkpoints[h].clone().map(|s| (h, s)))?;
        (h - want < forward && f.deltas[want..h].iter().all(Option::is_some)).then_some((h, later))
    }

    /// The checkpoints a seek to checkpoint `want` rebuilds as it passes
    /// them: those near `want` (the user is looking there, so stepping
    /// around must be cheap again), and those on the grid of the current
    /// thinning level while the budget has room (a long replay after a
    /// snapshot restore, at level 0, must not hold one for every interval
    /// it passes).
    fn rebuilds(&self, want: usize) -> impl Fn(usize) -> bool + use<> {
        let step = 1usize << self.fold.thin_level.min(62);
        let limit = self.fold.budget.map_or(usize::MAX, |b| self.fold.limit(b));
        move |m: usize| {
            m.abs_diff(want) <= NEAR_FOCUS || (m.is_multiple_of(step) && crate::alloc::used_bytes() < limit)
        }
    }

    /// The state at checkpoint `want` from `state`, the one at checkpoint
    /// `h` after it, by undoing the deltas between, which must all be kept;
    /// `None` when one does not undo (it is forgotten).
    fn retreat(&mut self, h: usize, mut state: PVal, want: usize) -> Option<PVal> {
        // When one of them does not undo: one by one, to find which.
        if h - want >= COMPOSE_FROM
            && let Ok(s) = cross(&self.fold.deltas[want..h], false, || Ok(state.clone()))
        {
            self.fold.checkpoints[want] = Some(s.clone());
            return Some(s);
        }
        let keep = self.rebuilds(want);
        let mut rebuilt = Vec::new();
        for j in (want..h).rev() {
            let delta = self.fold.deltas[j].as_ref()?;
            // A delta that does not undo would be a bug, never an answer.
            if delta.undo(&mut state).is_err() {
                self.fold.set_delta(j, None);
                return None;
            }
            if keep(j) {
                rebuilt.push((j, state.clone()));
            }
            if (h - j).is_multiple_of(BUDGET_CHECK_EVERY) {
                self.fold.keep_to_budget(false);
            }
        }
        for (m, s) in rebuilt {
            self.fold.checkpoints[m] = Some(s);
        }
        Some(state)
    }

    /// The state at checkpoint `want` from `state`, the one at checkpoint
    /// `c`: across each interval by its delta where there is one, else by
    /// replaying its events (and making its delta on the way). The
    /// checkpoints passed are rebuilt as [`MemoryImage::rebuilds`] says.
    fn advance(&mut self, c: usize, start: PVal, want: usize) -> Result<PVal, SourceError> {
        self.advance_by(c, start, want, true)
    }

    /// [`MemoryImage::advance`], crossing runs of deltas composed when
    /// `compose` (else one by one).
    fn advance_by(&mut self, c: usize, start: PVal, want: usize, compose: bool) -> Result<PVal, SourceError> {
        let mut state = start.clone();
        let k = self.fold.interval;
        let keep = self.rebuilds(want);
        let mut rebuilt = Vec::new();
        let mut made = Vec::new();
        let mut j = c;
        while j < want {
            let run = (j..want).find(|&m| self.fold.deltas[m].is_none()).unwrap_or(want);
            if compose && run - j >= COMPOSE_FROM {
                let from = std::mem::take(&mut state);
                match cross(&self.fold.deltas[j..run], true, || Ok(from)) {
                    Ok(s) => state = s,
                    // One of them does not apply: one by one, to find which.
                    Err(_) => return self.advance_by(c, start, want, false),
                }
                j = run;
                if keep(j) {
                    rebuilt.push((j, state.clone()));
                }
                self.fold.keep_to_budget(false);
                continue;
            }
            if let Some(delta) = &self.fold.deltas[j] {
                // In place: the nodes copied by the deltas before this one
                // are this state's alone and are updated without copying.
                if delta.apply(&mut state).is_err() {
                    // A delta that does not apply would be a bug, never an
                    // answer: forget it and start again from `c`.
                    self.fold.set_delta(j, None);
                    return self.advance_by(c, start, want, compose);
                }
                j += 1;
                if keep(j) {
                    rebuilt.push((j, state.clone()));
                }
                // A long crossing copies much of the state; keep to the
                // budget on the way, not only once it is done.
                if (j - c).is_multiple_of(BUDGET_CHECK_EVERY) {
                    self.fold.keep_to_budget(false);
                }
                continue;
            }
            // A run of intervals without deltas: replay it in one go.
            let end = (j..want).find(|&m| self.fold.deltas[m].is_some()).unwrap_or(want);
            let mut done = j * k;
            let mut prev = state.clone();
            state = self.replay(j * k, state, end * k, &mut |s| {
                done += 1;
                if done.is_multiple_of(k) {
                    let m = done / k;
                    let before = std::mem::replace(&mut prev, s.clone());
                    // Only near the target, where the user steps around: a
                    // delta for every interval of a long replay would hold
                    // two states each until it ends (gigabytes on a big log).
                    if m + REMAKE_NEAR >= want {
                        made.push((m - 1, before, s.clone()));
                    }
                    if keep(m) {
                        rebuilt.push((m, s.clone()));
                    }
                }
            })?;
            j = end;
        }
        for (m, s) in rebuilt {
            if let Some(slot) = self.fold.checkpoints.get_mut(m) {
                *slot = Some(s);
            }
        }
        for (m, a, b) in made {
            self.fold.queue_delta(m, a, b);
        }
        Ok(state)
    }

    /// Fold the entries `from..to` onto `state` again (reading their bodies),
    /// skipping what the first fold skipped; `each` sees the state after
    /// every entry. This is the one place a fold is replayed.
    fn replay(
        &mut self,
        from: usize,
        state: PVal,
        to: usize,
        each: &mut dyn FnMut(&PVal),
    ) -> Result<PVal, SourceError> {
        let to = to.min(self.fold.entries.len());
        if to.saturating_sub(from) >= PARALLEL_REPLAY {
            return self.replay_parallel(from, state, to, each);
        }
        let reducer = self.fold.reducer.clone();
        let mut items = Vec::with_capacity(to.saturating_sub(from));
        for i in from..to {
            items.push(match *self.fold.entries.status(i) == Status::Ok {
                true => self.event(i)?.ok().map(|ev| (ev.id, ev.to_pval())),
                false => None,
            });
        }
        replay_items(reducer.as_ref(), state, &items, &mut true, each)
    }

    /// [`MemoryImage::replay`] of a long stretch: bodies are read and
    /// parsed on a second thread while this one runs the reducer, and the
    /// body cache is left alone (a long replay would only flush it).
    fn replay_parallel(
        &mut self,
        from: usize,
        mut state: PVal,
        to: usize,
        each: &mut dyn FnMut(&PVal),
    ) -> Result<PVal, SourceError> {
        const BATCH: usize = 512;
        type Msg = Result<Vec<Option<(i64, PVal)>>, SourceError>;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(8);
        let source = self.source.as_mut();
        let entries = &self.fold.entries;
        let reducer = &self.fold.reducer;
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut i = from;
                while i < to {
                    let end = (i + BATCH).min(to);
                    let batch: Msg = (i..end)
                        .map(|j| {
                            if *entries.status(j) != Status::Ok {
                                return Ok(None);
                            }
                            Ok(read_again(source, entries, j)?
                                .ok()
                                .map(|ev| (ev.id, ev.to_pval())))
                        })
                        .collect();
                    let failed = batch.is_err();
                    // A closed channel means the reducer side stopped.
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                    i = end;
                }
            });
            let mut in_place = true;
            for batch in rx {
                state = replay_items(reducer.as_ref(), state, &batch?, &mut in_place, each)?;
            }
            Ok(state)
        })
    }

    /// The states just before and just after the event at `index`. The
    /// second is the first with the event applied, so the two share every
    /// node the event did not touch and diffing them is cheap.
    pub fn states_around(&mut self, index: usize) -> Result<(PVal, PVal), SourceError> {
        let before = self.state_before(index)?;
        let after = self.replay(index, before.clone(), index + 1, &mut |_| {})?;
        Ok((before, after))
    }

    /// The state after the event at `index`.
    pub fn state_after(&mut self, index: usize) -> Result<PVal, SourceError> {
        self.state_after_count(index + 1)
    }

    /// The state just before the event at `index`.
    pub fn state_before(&mut self, index: usize) -> Result<PVal, SourceError> {
        self.state_after_count(index)
    }

    /// The changes the event at `index` made.
    pub fn changes_at(&mut self, index: usize) -> Result<Vec<Change>, SourceError> {
        let (before, after) = self.states_around(index)?;
        Ok(diff(&before, &after))
    }

    /// The states after `from + 1`, `from + 2`, ..., `to` entries, folded
    /// onward from `state`, which must be the state after the first `from`
    /// entries (e.g. from [`MemoryImage::state_after_count`]). The explorer
    /// keeps a window of consecutive states this way, so a step costs one
    /// reducer call instead of a replay from the nearest checkpoint.
    /// Entries that are invalid or failed when first folded are skipped, as
    /// the fold skipped them.
    pub fn fold_range(&mut self, from: usize, state: PVal, to: usize) -> Result<Vec<PVal>, SourceError> {
        let mut out = Vec::with_capacity(to.saturating_sub(from));
        self.replay(from, state, to, &mut |s| out.push(s.clone()))?;
        Ok(out)
    }

    /// The changes between the states after the events at `from` and `to`.
    pub fn changes_between(&mut self, from: usize, to: usize) -> Result<Vec<Change>, SourceError> {
        let a = self.state_after(from)?;
        let b = self.state_after(to)?;
        Ok(diff(&a, &b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{self, SourceKind, SourceSpec};
    use crate::reduce::JqReducer;

    /// Keeps a list per key, a count, and deletes keys: changes that add,
    /// replace and remove object members and array items.
    const REDUCER: &str = r#"
        if $event.type == "del" then del(.[$event.data.k])
        else .[$event.data.k] += [$event.data.v] | .n += 1
        | if ($event.data.v % 3) == 0 then .[$event.data.k] |= .[1:] else . end
        end"#;

    /// A JSONL log of `n` pseudo-random events, an image of it (checkpoint
    /// every 4, no budget) and the plain fold's states (`states[i]`: after
    /// `i` events).
    fn folded(dir: &std::path::Path, n: usize, seed: u64) -> (MemoryImage, Vec<PVal>) {
        folded_every(dir, n, seed, 4)
    }

    /// As [`folded`], with a checkpoint after every event.
    fn folded_every_event(dir: &std::path::Path, n: usize, seed: u64) -> (MemoryImage, Vec<PVal>) {
        folded_every(dir, n, seed, 1)
    }

    /// As [`folded`], with a checkpoint every `k` events.
    fn folded_every(dir: &std::path::Path, n: usize, seed: u64, k: usize) -> (MemoryImage, Vec<PVal>) {
        let options = ImageOptions {
            checkpoint_interval: Some(k),
            memory_budget: None,
            scratch_dir: Some(dir.to_path_buf()),
        };
        folded_with(dir, n, seed, options)
    }

    fn folded_with(
        dir: &std::path::Path,
        n: usize,
        seed: u64,
        options: ImageOptions,
    ) -> (MemoryImage, Vec<PVal>) {
        folded_keys(dir, n, seed, 13, options)
    }

    /// As [`folded_with`], the events spread over `keys` keys.
    fn folded_keys(
        dir: &std::path::Path,
        n: usize,
        seed: u64,
        keys: u64,
        options: ImageOptions,
    ) -> (MemoryImage, Vec<PVal>) {
        let mut x = seed | 1;
        let mut text = String::new();
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ty = if x.is_multiple_of(11) { "del" } else { "add" };
            let k = format!("k{}", (x >> 8) % keys);
            text += &format!(
                r#"{{"id":{},"type":"{ty}","data":{{"k":"{k}","v":{}}}}}"#,
                i + 1,
                x % 100
            );
            text.push('\n');
        }
        let path = dir.join("log.jsonl");
        std::fs::write(&path, &text).unwrap();
        let spec = SourceSpec {
            kind: SourceKind::Jsonl,
            path: path.clone(),
            display: "log.jsonl".into(),
            mapping: Default::default(),
            accept_partial_last_line: true,
        };
        let reducer = Arc::new(JqReducer::compile(REDUCER, "test").unwrap());
        let mut states = vec![PVal::empty_obj()];
        for line in text.lines() {
            let ev = PVal::from_json(line).unwrap();
            let next = reducer.apply(states.last().unwrap(), &ev).unwrap();
            states.push(next);
        }
        let mut image = MemoryImage::new(log::open(&spec).unwrap(), reducer, PVal::empty_obj(), options);
        image.load(&mut |_| {}).unwrap();
        (image, states)
    }

    #[test]
    fn seeks_across_thinned_checkpoints_by_deltas_or_replays_give_the_plain_fold() {
        let dir = tempfile::tempdir().unwrap();
        // Every delta kept; every other one dropped; none.
        for keep_every in [1, 2, 0] {
            let (mut image, states) = folded(dir.path(), 400, 7 + keep_every as u64);
            let intervals = image.fold.deltas.len();
            assert_eq!(image.delta_stats().0, intervals, "a delta for every interval");
            image.fold.thin_level = 3;
            image.fold.thin();
            for c in 0..intervals {
                if keep_every == 0 || c % keep_every != 0 {
                    image.fold.set_delta(c, None);
                }
            }
            assert!(image.checkpoint_count() < intervals / 4);
            // Just before a kept checkpoint, undoing from it is cheaper
            // than going on from the one before: with every delta kept.
            let back = image.later_checkpoint(8, 15).map(|(h, _)| h);
            assert_eq!(back, (keep_every == 1).then_some(16), "keep {keep_every}");
            assert_eq!(image.later_checkpoint(8, 9).map(|(h, _)| h), None);
            // A damaged delta is replayed over, not trusted.
            image.fold.set_delta(5, Some(Delta::garbage()));
            let kept = image.delta_stats().0;
            let n = states.len() - 1;
            for k in 0..n {
                let i = (k * 7919) % n;
                assert_eq!(
                    image.state_after(i).unwrap(),
                    states[i + 1],
                    "after {i}, keep {keep_every}"
                );
                assert_eq!(
                    image.state_before(i).unwrap(),
                    states[i],
                    "before {i}, keep {keep_every}"
                );
            }
            // Replays made missing deltas again (on the maker thread).
            image.fold.collect_deltas(true);
            if kept < intervals {
                assert!(image.delta_stats().0 > kept, "keep {keep_every}");
            }
        }
    }

    #[test]
    fn the_cost_model_picks_a_power_of_two_that_falls_as_the_reducer_slows() {
        let us = std::time::Duration::from_micros;
        assert_eq!(
            interval_for(std::time::Duration::from_nanos(50)),
            MAX_AUTO_INTERVAL
        );
        assert_eq!(interval_for(us(4)), 512);
        assert_eq!(interval_for(us(10)), 256);
        assert_eq!(interval_for(us(20)), 128);
        assert_eq!(interval_for(us(1000)), MIN_AUTO_INTERVAL);
        let mut prev = usize::MAX;
        for cost in (0..2000).map(|i| std::time::Duration::from_nanos(i * i)) {
            let k = interval_for(cost);
            assert!(k.is_power_of_two() && (MIN_AUTO_INTERVAL..=MAX_AUTO_INTERVAL).contains(&k));
            assert!(k <= prev, "{cost:?}");
            prev = k;
        }
    }

    #[test]
    fn a_spacing_picked_by_the_cost_model_gives_the_plain_fold() {
        let dir = tempfile::tempdir().unwrap();
        for budget in [None, Some(1)] {
            let options = ImageOptions {
                checkpoint_interval: None,
                memory_budget: budget,
                scratch_dir: None,
            };
            let n = CALIBRATION_EVENTS * 2 + 77;
            let (mut image, states) = folded_with(dir.path(), n, 11, options);
            let k = image.checkpoint_interval();
            assert!(k.is_power_of_two() && (MIN_AUTO_INTERVAL..=MAX_AUTO_INTERVAL).contains(&k));
            assert!(image.event_cost().is_some());
            assert_eq!(image.fold.checkpoints.len(), n / k + 1);
            assert_eq!(image.fold.deltas.len(), n / k);
            if budget.is_none() {
                // Every interval has its delta, those before the spacing
                // was picked too.
                image.fold.collect_deltas(true);
                assert_eq!(image.delta_stats().0, n / k);
            }
            for j in 0..300 {
                let i = (j * 7919) % n;
                assert_eq!(
                    image.state_after(i).unwrap(),
                    states[i + 1],
                    "after {i}, budget {budget:?}"
                );
            }
        }
        // Fewer events than the model times: checkpoints stay close.
        let options = ImageOptions {
            checkpoint_interval: None,
            memory_budget: None,
            scratch_dir: None,
        };
        let (mut image, states) = folded_with(dir.path(), 1000, 5, options);
        assert_eq!(image.checkpoint_interval(), MIN_AUTO_INTERVAL);
        assert_eq!(image.event_cost(), None);
        assert_eq!(image.state_after(500).unwrap(), states[501]);
    }

    /// Sums `n` into `.sum` and counts events in `.count`; fails on a
    /// negative `n`; cannot fold an event with `"copy": true` in place
    /// (what the direct engine does when it hands an event over to jaq).
    struct Picky;

    impl Reducer for Picky {
        fn apply(&self, state: &PVal, event: &PVal) -> Result<PVal, String> {
            let field = |k: &str| event.as_obj()?.get("data")?.as_obj()?.get(k).cloned();
            let n = match field("n") {
                Some(PVal::Int(n)) if n >= 0 => n,
                _ => return Err("negative".into()),
            };
            let mut s = state.clone();
            let PVal::Obj(o) = &mut s else {
                return Err("not an object".into());
            };
            let sum = match o.get("sum") {
                Some(PVal::Int(x)) => *x,
                _ => 0,
            };
            let count = match o.get("count") {
                Some(PVal::Int(x)) => *x,
                _ => 0,
            };
            o.insert(Text::from("sum"), PVal::Int(sum + n));
            o.insert(Text::from("count"), PVal::Int(count + 1));
            Ok(s)
        }

        fn apply_owned(&self, state: PVal, event: &PVal) -> Option<PVal> {
            let copy = event
                .as_obj()
                .and_then(|o| o.get("data")?.as_obj()?.get("copy").cloned());
            let copy = matches!(copy, Some(PVal::Bool(true)));
            match copy {
                true => None,
                false => self.apply(&state, event).ok(),
            }
        }
    }

    #[test]
    fn folding_in_place_falls_back_on_events_it_cannot_fold_and_gives_the_plain_fold() {
        let dir = tempfile::tempdir().unwrap();
        // Short logs (the fold, short replays) and a long one (replays on
        // a second thread, in batches).
        for (n, interval) in [(300, 8), (300, 1), (5000, 8192)] {
            let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ n as u64;
            let mut text = String::new();
            for i in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = if x.is_multiple_of(13) { -1 } else { (x % 50) as i64 };
                let copy = x.is_multiple_of(7);
                text += &format!(
                    r#"{{"id":{},"type":"t","data":{{"n":{v},"copy":{copy}}}}}"#,
                    i + 1
                );
                text.push('\n');
            }
            let path = dir.path().join("picky.jsonl");
            std::fs::write(&path, &text).unwrap();
            let spec = SourceSpec {
                kind: SourceKind::Jsonl,
                path,
                display: "picky.jsonl".into(),
                mapping: Default::default(),
                accept_partial_last_line: true,
            };
            let mut states = vec![PVal::empty_obj()];
            let mut errors = 0;
            for line in text.lines() {
                let ev = PVal::from_json(line).unwrap();
                let prev = states.last().unwrap().clone();
                states.push(Picky.apply(&prev, &ev).unwrap_or_else(|_| {
                    errors += 1;
                    prev
                }));
            }
            let options = ImageOptions {
                checkpoint_interval: Some(interval),
                memory_budget: None,
                scratch_dir: None,
            };
            let mut image = MemoryImage::new(
                log::open(&spec).unwrap(),
                Arc::new(Picky),
                PVal::empty_obj(),
                options,
            );
            image.load(&mut |_| {}).unwrap();
            assert_eq!(image.error_count(), errors, "{n}");
            assert_eq!(image.last_state(), states.last().unwrap(), "{n}");
            for k in 0..n.min(400) {
                let i = (k * 7919) % n;
                assert_eq!(image.state_after(i).unwrap(), states[i + 1], "{n}: after {i}");
            }
            // Every state of a replay, as `each` sees it.
            let mut seen = Vec::new();
            let last = image
                .replay(0, PVal::empty_obj(), n, &mut |s| seen.push(s.clone()))
                .unwrap();
            assert_eq!(&last, states.last().unwrap());
            assert_eq!(seen, states[1..], "{n}");
        }
    }

    #[test]
    fn far_checkpoints_thinned_to_the_scratch_file_are_read_in_by_seeks_near_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut image, states) = folded_every_event(dir.path(), 2100, 5);
        image.fold.focus = 0;
        image.fold.thin_level = 10;
        image.fold.thin();
        // In memory until its far state is made (a seek meanwhile finds it).
        assert!(image.fold.checkpoints[768].is_some());
        assert!(image.fold.checkpoints[769].is_none());
        image.fold.thin();
        image.fold.collect_deltas(true);
        // Kept: multiples of 1024 and the last; whole in the file: the
        // other multiples of FAR_EVERY.
        let far: Vec<usize> = image.fold.far.keys().copied().collect();
        let expected: Vec<usize> = (1..2100)
            .filter(|c| c % FAR_EVERY == 0 && c % 1024 != 0)
            .collect();
        assert_eq!(far, expected);
        assert!(far.contains(&768), "the seeks below go near 768");
        assert!(image.fold.checkpoints[768].is_none());
        assert_eq!(image.state_after(770).unwrap(), states[771]);
        assert_eq!(image.fold.far_reads, 1, "not read in");
        // Straight to the checkpoint at the seek (771 events), the deltas
        // from 768 composed.
        assert!(image.fold.checkpoints[771].is_some());
        assert!((760..780).all(|c| c == 771 || image.fold.checkpoints[c].is_none()));
        // (Thinned again once the user looks elsewhere; the file keeps it.)
        for i in [760, 1530, 300, 2000, 5, 1281, 255] {
            assert_eq!(image.state_after(i).unwrap(), states[i + 1], "after {i}");
            assert_eq!(image.state_before(i).unwrap(), states[i], "before {i}");
        }
        assert_eq!(image.fold.far.len(), expected.len());
        // Without a scratch file nothing is kept whole.
        let options = ImageOptions {
            checkpoint_interval: Some(1),
            memory_budget: None,
            scratch_dir: None,
        };
        let (mut image, _) = folded_with(dir.path(), 600, 5, options);
        image.fold.thin_level = 10;
        image.fold.thin();
        image.fold.collect_deltas(true);
        assert!(image.fold.far.is_empty());
    }

    #[test]
    fn far_states_of_a_big_map_are_read_lazily_and_crossed_in_batches_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let thinned = || {
            let options = ImageOptions {
                checkpoint_interval: Some(1),
                memory_budget: None,
                scratch_dir: Some(dir.path().to_path_buf()),
            };
            let (mut image, states) = folded_keys(dir.path(), 2100, 9, 400, options);
            image.fold.focus = 0;
            image.fold.thin_level = 10;
            image.fold.thin();
            image.fold.thin();
            image.fold.collect_deltas(true);
            assert!(image.fold.far.contains_key(&768) && image.fold.far.contains_key(&832));
            (image, states)
        };
        let (mut image, states) = thinned();
        let members = |s: &PVal| s.as_obj().map_or(0, |o| o.len());
        // Written in parts, so read lazily.
        assert!(members(&states[700]) > 4 * snapshot::codec::CHUNKED_FROM);
        // Back from 832 across 19 deltas (batches of COMPOSE_BATCH, the
        // last one short).
        assert_eq!(image.state_after(812).unwrap(), states[813]);
        assert_eq!(image.fold.far_reads, 1);
        assert!(
            image.fold.checkpoints[813].is_some(),
            "straight to the seek's checkpoint"
        );
        for i in [1000, 1100, 1530, 300, 2000, 1281, 700, 5, 1919] {
            let state = image.state_after(i).unwrap();
            assert_eq!(state, states[i + 1], "after {i}");
            assert_eq!(state.to_json(), states[i + 1].to_json(), "after {i}");
            assert_eq!(image.state_before(i).unwrap(), states[i], "before {i}");
        }
        assert!(image.fold.far_reads > 1);
        // On from 768 across 21.
        let (mut image, states) = thinned();
        assert_eq!(image.state_after(788).unwrap(), states[789]);
        assert_eq!(image.fold.far_reads, 1);
        assert!(
            image.fold.checkpoints[789].is_some(),
            "straight to the seek's checkpoint"
        );
        assert_eq!(image.state_before(788).unwrap(), states[788]);
    }

    #[test]
    fn settling_thins_what_the_fold_left_and_waits_for_it_to_be_freed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut image, states) = folded(dir.path(), 400, 3);
        let last = image.fold.checkpoints.len() - 1;
        assert_eq!(
            image.checkpoint_count(),
            last + 1,
            "no budget: every checkpoint kept"
        );
        image.fold.thin_level = 2;
        image.settle();
        assert!(!graveyard::pending());
        let kept: Vec<usize> = (0..=last)
            .filter(|&c| image.fold.checkpoints[c].is_some())
            .collect();
        let want: Vec<usize> = (0..=last)
            .filter(|&c| c % 4 == 0 || c + NEAR_FOCUS >= last)
            .collect();
        assert_eq!(kept, want);
        for i in (0..states.len() - 1).step_by(37) {
            assert_eq!(image.state_after(i).unwrap(), states[i + 1], "after {i}");
        }
    }

    #[test]
    fn a_reset_gives_the_scratch_file_back_and_folds_on_into_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut image, states) = folded_every_event(dir.path(), 600, 9);
        // Far states in the file too, not only deltas.
        image.fold.thin_level = 10;
        image.fold.thin();
        image.fold.thin();
        image.fold.collect_deltas(true);
        assert!(!image.fold.far.is_empty());
        let old = Arc::downgrade(image.fold.maker.spill().unwrap());
        image.reset();
        image.load(&mut |_| {}).unwrap();
        image.fold.collect_deltas(true);
        assert!(old.upgrade().is_none(), "the old scratch file is still open");
        let (count, held, spilled) = image.delta_stats();
        assert_eq!(count, 600);
        if cfg!(unix) {
            assert_eq!(held, 0, "deltas go to the fresh file");
            assert!(spilled > 0);
        }
        for i in [0, 17, 299, 598] {
            assert_eq!(image.state_after(i).unwrap(), states[i + 1], "after {i}");
        }
    }

    #[test]
    fn deltas_are_bytes_not_states() {
        let dir = tempfile::tempdir().unwrap();
        let (image, _) = folded(dir.path(), 400, 3);
        let (count, held, spilled) = image.delta_stats();
        assert_eq!(count, 100);
        // In the scratch file, not in memory.
        if cfg!(unix) {
            assert_eq!(held, 0);
        }
        let bytes = held + spilled;
        // A few changes an interval of four events: tens of bytes each.
        assert!(bytes < count * 400, "{bytes} bytes for {count} deltas");
    }
}
