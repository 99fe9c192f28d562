//! Deltas: what one checkpoint interval changed, kept as compact bytes.
//!
//! A checkpoint holds the path copies its interval made: several hundred
//! bytes an event when each event updates one entry of a big map. The same
//! changes written as (path, new value) take a few dozen bytes an event.
//! The image keeps a delta beside each interval; under the memory budget it
//! thins checkpoints first, and a seek crosses a thinned stretch by
//! applying deltas (a map update per change) instead of replaying events
//! (read, parse, run the reducer), several times faster.

//!
//! Deltas are written to a scratch file when the image has one (see
//! [`Spill`]): then they cost the memory budget nothing, and every
//! interval keeps its delta however long the log.

use super::snapshot::codec::{self, ReadTable, Reader, TextTable, Want};
use crate::diff::{Change, Composed};
use crate::value::PVal;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// The changes that turn the state at one checkpoint into the state at the
/// next, in the snapshot's change-list encoding, with the old values too:
/// a delta goes either way, so a seek starts from whichever kept
/// checkpoint is nearer, before or after. Compressed, in memory or in the
/// scratch file.
#[derive(Clone)]
pub(super) enum Delta {
    Held(Box<[u8]>),
    /// `len` bytes at `at` in `file`; `check`, for one read from a
    /// snapshot file (which nothing trusts), is the start of the bytes'
    /// BLAKE3 hash.
    Spilled {
        file: Arc<Spill>,
        at: u64,
        len: u32,
        check: Option<Check>,
    },
}

/// The first bytes of a delta's BLAKE3 hash.
pub(super) type Check = [u8; 16];

/// The check of `bytes`.
pub(super) fn check_of(bytes: &[u8]) -> Check {
    let mut out = [0; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

/// An unlinked scratch file the deltas are written to: it is gone when
/// evscope exits, whatever way. Read back by offset, through the page
/// cache, which is the system's to give back, not the process's.
pub(super) struct Spill {
    file: std::fs::File,
    end: AtomicU64,
    /// The directory a scratch file was made in (none for a snapshot's).
    dir: Option<std::path::PathBuf>,
}

impl Spill {
    /// A scratch file in `dir` (made if missing), or `None` when one cannot
    /// be made there.
    pub fn new(dir: &Path) -> Option<Arc<Spill>> {
        std::fs::create_dir_all(dir).ok()?;
        let file = tempfile::tempfile_in(dir).ok()?;
        Some(Spill::in_dir(file, Some(dir.to_path_buf())))
    }

    /// Deltas in `file`: a scratch file, or a snapshot's (opened read only,
    /// so nothing is ever written to it).
    pub fn of_file(file: std::fs::File) -> Arc<Spill> {
        Spill::in_dir(file, None)
    }

    fn in_dir(file: std::fs::File, dir: Option<std::path::PathBuf>) -> Arc<Spill> {
        Arc::new(Spill {
            file,
            end: AtomicU64::new(0),
            dir,
        })
    }

    fn put(&self, bytes: &[u8]) -> std::io::Result<u64> {
        let at = self.end.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.file.write_all_at(bytes, at)?;
        Ok(at)
    }

    fn get(&self, at: u64, len: u32) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0; len as usize];
        self.file.read_exact_at(&mut out, at)?;
        Ok(out)
    }
}

impl Delta {
    /// The changes that turn `a` into `b`, or `None` when they cannot be
    /// written (a value nested deeper than the codec allows).
    pub fn between(a: &PVal, b: &PVal) -> Option<Delta> {
        let changes = crate::diff::diff(a, b);
        let mut out = Vec::new();
        codec::put_changes(&mut out, &mut TextTable::default(), &changes, true).ok()?;
        Some(Delta::Held(
            lz4_flex::compress_prepend_size(&out).into_boxed_slice(),
        ))
    }

    /// The delta from `a` to `b` written to `spill` if there is one (see
    /// [`Delta::between`] and [`Delta::spill`]).
    pub fn made(a: &PVal, b: &PVal, spill: Option<&Arc<Spill>>) -> Option<Delta> {
        Delta::between(a, b).map(|d| d.spill(spill))
    }

    /// The same delta written to `spill`, or kept in memory when writing
    /// fails (a full disk costs memory, not answers).
    pub fn spill(self, spill: Option<&Arc<Spill>>) -> Delta {
        let (Delta::Held(bytes), Some(file)) = (&self, spill) else {
            return self;
        };
        let Ok(len) = u32::try_from(bytes.len()) else {
            return self;
        };
        match file.put(bytes) {
            Ok(at) => Delta::Spilled {
                file: file.clone(),
                at,
                len,
                check: None,
            },
            Err(_) => self,
        }
    }

    /// Bytes that are not a delta (for tests of what happens then).
    #[cfg(test)]
    pub fn garbage() -> Delta {
        Delta::Held(Box::new([7, 0, 0, 0, 1, 2, 3]))
    }

    /// Heap bytes the delta holds.
    pub fn bytes(&self) -> usize {
        match self {
            Delta::Held(b) => b.len(),
            Delta::Spilled { .. } => 0,
        }
    }

    /// Bytes the delta takes in the scratch file.
    pub fn spilled_bytes(&self) -> usize {
        match self {
            Delta::Held(_) => 0,
            Delta::Spilled { len, .. } => *len as usize,
        }
    }

    /// Apply the changes to `state`, which must be the state the delta was
    /// made from, in place.
    pub fn apply(&self, state: &mut PVal) -> Result<(), String> {
        for c in self.changes()? {
            crate::diff::apply_change(state, c.op, &c.path, c.value)?;
        }
        Ok(())
    }

    /// Undo the changes on `state`, which must be the state the delta
    /// leads to, in place: it becomes the state the delta was made from.
    pub fn undo(&self, state: &mut PVal) -> Result<(), String> {
        // Last change first: array indexes are those of the state each
        // change was made on.
        for c in self.changes()?.into_iter().rev() {
            crate::diff::apply_change(state, c.op.undone(), &c.path, c.old)?;
        }
        Ok(())
    }

    /// The delta as stored (compressed), checked when it has a check.
    pub fn packed(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        match self {
            Delta::Held(b) => Ok(std::borrow::Cow::Borrowed(b)),
            Delta::Spilled { file, at, len, check } => {
                let read = file.get(*at, *len).map_err(|e| format!("reading deltas: {e}"))?;
                match check {
                    Some(c) if *c != check_of(&read) => Err("a delta does not match its hash".into()),
                    _ => Ok(std::borrow::Cow::Owned(read)),
                }
            }
        }
    }

    /// The changes, each with its old value.
    pub fn changes(&self) -> Result<Vec<Change>, String> {
        self.read(&mut |r, table| codec::get_changes(r, table, true))
    }

    /// Each change in turn, with the values `want` asks for (see
    /// [`codec::visit_changes`]).
    fn visit(&self, want: Want, each: &mut codec::EachChange<'_>) -> Result<(), String> {
        self.read(&mut |r, table| codec::visit_changes(r, table, true, want, each))
    }

    /// What `read` makes of the change list, which must take all the bytes.
    fn read<T>(
        &self,
        read: &mut dyn FnMut(&mut Reader<'_>, &mut ReadTable) -> Result<T, codec::Corrupt>,
    ) -> Result<T, String> {
        let packed = self.packed()?;
        let bytes = lz4_flex::decompress_size_prepended(&packed).map_err(|e| e.to_string())?;
        // The bytes are checked (or this process's own): the big objects
        // in them keep them, and their parts are read when first asked
        // for (a far state's, mostly: see `ReadTable::lazily`).
        let bytes = Arc::new(bytes);
        let mut r = Reader::new(&bytes);
        let out = read(&mut r, &mut ReadTable::lazily(bytes.clone())).map_err(|e| e.0)?;
        match r.remaining() {
            0 => Ok(out),
            n => Err(format!("{n} bytes after the changes")),
        }
    }
}

/// Marks a job of the delta maker as a far state (the whole state at the
/// checkpoint in the other bits), not a delta for an interval.
pub(super) const FAR_JOB: usize = 1 << (usize::BITS - 1);

/// A whole state (a far state, see `Fold::far`), written by
/// [`codec::put_far`] with its big objects' parts compressed one by one
/// after its head, and stored as a delta is: in memory or in the scratch
/// file. Read from the scratch file, only its head is read at once, and
/// each part when the state is first looked into there: a seek far into
/// the 10M benchmark log reads about 210 KB, not a whole state (4.3 MB
/// here, 7 MB decompressed). Read from a
/// snapshot file (checked against its hash), it is read whole.
#[derive(Clone)]
pub(super) struct Far {
    stored: Delta,
    /// The bytes a read takes at once: the head, or all of it.
    read_bytes: usize,
}

impl Far {
    /// `state` written as a far state, to `spill` if there is one (see
    /// [`Delta::spill`]); `None` when it cannot be written (nested deeper
    /// than the codec allows).
    pub fn of(state: &PVal, spill: Option<&Arc<Spill>>) -> Option<Far> {
        let bytes = codec::put_far(state).ok()?;
        let head = 4 + codec::far_head_len(&bytes).ok()?;
        let stored = Delta::Held(bytes.into_boxed_slice()).spill(spill);
        let read_bytes = match &stored {
            Delta::Spilled { .. } => head,
            Delta::Held(b) => b.len(),
        };
        Some(Far { stored, read_bytes })
    }

    /// The far state saved at `at` in a snapshot's `file`, `len` bytes,
    /// with its check (read whole and checked).
    pub fn saved(file: Arc<Spill>, at: u64, len: u32, check: Check) -> Far {
        Far {
            stored: Delta::Spilled {
                file,
                at,
                len,
                check: Some(check),
            },
            read_bytes: len as usize,
        }
    }

    /// Bytes not a far state (for tests of what happens then).
    #[cfg(test)]
    pub fn garbage() -> Far {
        Far {
            stored: Delta::garbage(),
            read_bytes: 7,
        }
    }

    /// Heap bytes it holds.
    pub fn bytes(&self) -> usize {
        self.stored.bytes()
    }

    /// Bytes it takes in the scratch file.
    pub fn spilled_bytes(&self) -> usize {
        self.stored.spilled_bytes()
    }

    /// The bytes a read of it takes at once (see [`Far`]).
    pub fn read_bytes(&self) -> usize {
        self.read_bytes
    }

    /// All its bytes, as stored, checked when it has a check.
    pub fn packed(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        self.stored.packed()
    }

    /// The state, its big objects' parts read when first asked for.
    pub fn read(&self) -> Result<PVal, String> {
        let corrupt = |e: codec::Corrupt| e.0;
        if let Delta::Spilled {
            file,
            at,
            len,
            check: None,
        } = &self.stored
        {
            // Its head (with its length), as long as it was made.
            let len = *len as usize;
            let end = self.read_bytes.min(len);
            let first = file
                .get(*at, end as u32)
                .map_err(|e| format!("reading a far state: {e}"))?;
            if codec::far_head_len(&first).map_err(corrupt)?.saturating_add(4) != end {
                return Err("a far state's head is not the length it was made".into());
            }
            let head = &first[4..];
            let area = FarArea {
                file: file.clone(),
                at: at + end as u64,
                len: (len - end) as u64,
            };
            return codec::get_far(head, Arc::new(area)).map_err(corrupt);
        }
        let bytes = self.stored.packed()?.into_owned();
        let end = codec::far_head_len(&bytes).map_err(corrupt)?.saturating_add(4);
        if end > bytes.len() {
            return Err("a far state's head runs past its end".into());
        }
        let bytes = Arc::new(bytes);
        let area = codec::InMemory {
            bytes: bytes.clone(),
            from: end,
        };
        codec::get_far(&bytes[4..end], Arc::new(area)).map_err(corrupt)
    }
}

/// The parts' area of a far state in the scratch file: `len` bytes at `at`.
struct FarArea {
    file: Arc<Spill>,
    at: u64,
    len: u64,
}

impl codec::PartBytes for FarArea {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, at: u64, len: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        if at.saturating_add(len as u64) > self.len {
            return Err(std::io::Error::other("a part past the end of its area"));
        }
        out.resize(len, 0);
        self.file.file.read_exact_at(out, self.at + at)
    }
}

/// What the maker made for a job: a delta, or a far state (see
/// [`FAR_JOB`]).
pub(super) enum Piece {
    Delta(Delta),
    Far(Far),
}

/// Make what job `c` asks for: the far state `b`, or the delta from `a`
/// to `b`; `None` when it cannot be written.
fn make(c: usize, a: &PVal, b: &PVal, spill: Option<&Arc<Spill>>) -> Option<Piece> {
    match c & FAR_JOB != 0 {
        true => Far::of(b, spill).map(Piece::Far),
        false => Delta::made(a, b, spill).map(Piece::Delta),
    }
}

/// The deltas of a run of intervals composed into one pass over the state
/// (see [`Composed`]): forward, or undone (the last first) when not. Each
/// change is pushed as it is read, with only the value that way needs.
pub(super) fn composed(run: &[Option<Delta>], forward: bool) -> Result<Composed, String> {
    fn delta(d: &Option<Delta>) -> Result<&Delta, String> {
        d.as_ref().ok_or_else(|| "a delta is missing".into())
    }
    let mut on = Composed::default();
    let pushed = |r: Result<(), String>| r.map_err(codec::Corrupt::new);
    if forward {
        for d in run {
            delta(d)?.visit(Want::New, &mut |op, path, _, value| {
                pushed(on.push(op, path, value))
            })?;
        }
        return Ok(on);
    }
    // Undone: the last delta first (each one's changes gathered, since
    // they are undone last first), without its new values.
    for d in run.iter().rev() {
        let mut changes = Vec::new();
        delta(d)?.visit(Want::Old, &mut |op, path, old, value| {
            changes.push(Change {
                op,
                path: path.to_vec(),
                old,
                value,
            });
            Ok(())
        })?;
        on.push_undo(changes)?;
    }
    Ok(on)
}

/// A delta to make: generation, interval, the states at its two ends, and
/// the scratch file to write it to.
type Job = (u64, usize, PVal, PVal, Option<Arc<Spill>>);
/// What was made for job `c` of generation `generation`.
type Made = (u64, usize, Option<Piece>);
/// The maker threads' ends: where deltas' jobs go, where far states' go,
/// and where what they made comes back.
type Channels = (Sender<Job>, Sender<Job>, Receiver<Made>);

/// Makes deltas on a thread of its own, and far states on another.
/// Diffing the states at two checkpoints costs about half what folding
/// their interval did (imbl's diff walks down to every changed entry), and
/// the fold keeps only one core busy: on the other, deltas cost the fold
/// nothing. Writing a far state (a whole state) costs tens of
/// milliseconds: on the deltas' thread, the fold waited for it whenever
/// the budget made it wait for the deltas queued.
#[derive(Default)]
pub(super) struct Maker {
    thread: Option<Channels>,
    /// Where the deltas made are written, if anywhere.
    spill: Option<Arc<Spill>>,
    /// Bumped when the image forgets its intervals (a reset, a snapshot
    /// restore): deltas made for the old ones are thrown away.
    generation: u64,
    pending: usize,
}

impl Maker {
    /// A maker that writes the deltas it makes to `spill`.
    pub fn new(spill: Option<Arc<Spill>>) -> Maker {
        Maker {
            spill,
            ..Maker::default()
        }
    }

    /// Make the delta from `a` to `b` for interval `c`: on the thread, or
    /// here (returned at once) when there is none.
    pub fn queue(&mut self, c: usize, a: PVal, b: PVal) -> Option<(usize, Option<Piece>)> {
        if self.thread.is_none() {
            self.thread = spawn();
        }
        let Some((deltas, fars, _)) = &self.thread else {
            return Some((c, make(c, &a, &b, self.spill.as_ref())));
        };
        let tx = if c & FAR_JOB != 0 { fars } else { deltas };
        match tx.send((self.generation, c, a, b, self.spill.clone())) {
            Ok(()) => {
                self.pending += 1;
                None
            }
            Err(back) => {
                let (_, c, a, b, _) = back.0;
                self.thread = None;
                Some((c, make(c, &a, &b, self.spill.as_ref())))
            }
        }
    }

    /// True when what it makes goes to a scratch file.
    pub fn spills(&self) -> bool {
        self.spill.is_some()
    }

    /// The deltas made since the last call; with `wait`, all those queued.
    pub fn collect(&mut self, wait: bool) -> Vec<(usize, Option<Piece>)> {
        let mut out = Vec::new();
        let Some((_, _, rx)) = &self.thread else {
            return out;
        };
        while self.pending > 0 {
            let got = if wait { rx.recv().ok() } else { rx.try_recv().ok() };
            let Some((generation, c, delta)) = got else { break };
            self.pending -= 1;
            if generation == self.generation {
                out.push((c, delta));
            }
        }
        out
    }

    /// True while deltas queued are not collected yet.
    pub fn busy(&self) -> bool {
        self.pending > 0
    }

    /// Forget what is queued: the intervals it was for are gone.
    pub fn forget(&mut self) {
        self.generation += 1;
    }

    /// Write what is made from now on to a fresh scratch file beside the
    /// old one. The old one (unlinked already) goes, and its disk space
    /// with it, once no delta written to it is held: after a reset the
    /// image holds none, and a session on a log rewritten again and again
    /// would otherwise keep every fold it ever made on disk. When no new
    /// file can be made, the old one goes on being written.
    pub fn renew_spill(&mut self) {
        let fresh = self
            .spill
            .as_ref()
            .and_then(|s| s.dir.as_deref())
            .and_then(Spill::new);
        if fresh.is_some() {
            self.spill = fresh;
        }
    }

    /// The scratch file written to now.
    #[cfg(test)]
    pub fn spill(&self) -> Option<&Arc<Spill>> {
        self.spill.as_ref()
    }
}

fn spawn() -> Option<Channels> {
    let (done, rx) = channel::<Made>();
    let worker = |name: &str| {
        let (tx, jobs) = channel::<Job>();
        let done = done.clone();
        std::thread::Builder::new()
            .name(name.into())
            // The diff recurses once a level of nesting.
            .stack_size(64 << 20)
            .spawn(move || {
                for (generation, c, a, b, spill) in jobs {
                    // A closed channel means the image is gone: so are we.
                    if done
                        .send((generation, c, make(c, &a, &b, spill.as_ref())))
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .ok()
            .map(|_| tx)
    };
    let deltas = worker("evscope-delta")?;
    // Without a second thread, far states go with the deltas.
    let fars = worker("evscope-far").unwrap_or_else(|| deltas.clone());
    Some((deltas, fars, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> PVal {
        PVal::from_json(s).unwrap()
    }

    #[test]
    fn a_delta_turns_its_first_state_into_its_second() {
        let pairs = [
            (
                r#"{"a":1,"b":{"c":[1,2,3]}}"#,
                r#"{"a":2,"b":{"c":[1,5]},"d":null}"#,
            ),
            (r#"[1,[2,{"x":"y"}]]"#, r#"[1,[2,{"x":"z","w":[]}],3,4]"#),
            (r#"{"users":{"a@x":{"n":1}}}"#, r#"{"users":{"b@x":{"n":1}}}"#),
            ("1", r#""one""#),
            ("{}", "{}"),
            (r#"[1,2,3,4]"#, r#"[1]"#),
            (r#"{"a":[{"b":1},2]}"#, r#"{"a":[{"b":2},2,[3]],"c":{}}"#),
        ];
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path());
        assert!(spill.is_some() || !cfg!(unix));
        // Every delta kept in memory, then every one written to the file.
        for (spilled, (a, b)) in pairs
            .map(|p| (false, p))
            .into_iter()
            .chain(pairs.map(|p| (true, p)))
        {
            let (a, b) = (v(a), v(b));
            let d = Delta::between(&a, &b).unwrap();
            let d = match spilled {
                true => d.spill(spill.as_ref()),
                false => d,
            };
            assert_eq!(spilled && cfg!(unix), d.bytes() == 0, "{a} -> {b}");
            assert_eq!(d.spilled_bytes() > 0, spilled && cfg!(unix));
            let mut s = a.clone();
            d.apply(&mut s).unwrap();
            assert_eq!(s, b, "{a} -> {b}");
            d.undo(&mut s).unwrap();
            assert_eq!(s, a, "{a} <- {b}");
            // The first state is left alone (the delta copies what it changes).
            assert_eq!(a, v(&a.to_json()));
        }
    }

    #[test]
    fn a_far_state_in_the_scratch_file_reads_its_head_and_then_each_part_from_the_file() {
        let users: Vec<String> = (0..3000)
            .map(|i| {
                format!(
                    r#""user{i:05}@example.org":{{"n":{i},"plan":"{}"}}"#,
                    ["free", "pro"][i % 2]
                )
            })
            .collect();
        let state = v(&format!(r#"{{"users":{{{}}},"count":3000}}"#, users.join(",")));
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path()).unwrap();
        let far = Far::of(&state, Some(&spill)).unwrap();
        assert_eq!(far.bytes(), 0, "in the file, not in memory");
        assert!(
            far.read_bytes() * 8 < far.spilled_bytes(),
            "a read takes the head only"
        );
        let read = far.read().unwrap();
        assert_eq!(read.to_json(), state.to_json());
        // Changed like any state, the file's bytes left alone.
        let mut changed = far.read().unwrap();
        let mut expected = state.clone();
        for s in [&mut changed, &mut expected] {
            crate::diff::apply_change(
                s,
                crate::diff::Op::Remove,
                &[
                    crate::value::PathSeg::Key("users".into()),
                    crate::value::PathSeg::Key("user00007@example.org".into()),
                ],
                None,
            )
            .unwrap();
        }
        assert_eq!(changed, expected);
        assert_eq!(far.read().unwrap(), state);
        // Kept in memory (no scratch file): read whole, the same.
        let held = Far::of(&state, None).unwrap();
        assert_eq!(held.read_bytes(), held.bytes());
        assert_eq!(held.read().unwrap(), state);
        // Saved to a snapshot (checked against its hash): read whole, and a
        // damaged one is an error, not a state.
        let bytes = far.packed().unwrap().into_owned();
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&bytes, 5).unwrap();
        let file = Spill::of_file(file);
        let len = bytes.len() as u32;
        let saved = Far::saved(file.clone(), 5, len, check_of(&bytes));
        assert_eq!(saved.read().unwrap(), state);
        assert!(Far::saved(file.clone(), 5, len, [0; 16]).read().is_err());
        assert!(
            Far::saved(file, 6, len - 1, check_of(&bytes[1..]))
                .read()
                .is_err()
        );
        assert!(Far::garbage().read().is_err());
    }

    #[test]
    fn a_delta_applied_to_a_shared_state_leaves_the_other_owner_alone() {
        let a = v(r#"{"m":{"k1":{"x":1},"k2":{"x":2}}}"#);
        let b = v(r#"{"m":{"k1":{"x":1},"k2":{"x":3}}}"#);
        let d = Delta::between(&a, &b).unwrap();
        let kept = a.clone();
        let mut s = a;
        d.apply(&mut s).unwrap();
        assert_eq!(s, b);
        assert_eq!(kept, v(r#"{"m":{"k1":{"x":1},"k2":{"x":2}}}"#));
    }
}
