//! The byte-level pieces of the snapshot format: varints, strings, string
//! tables and a compact binary encoding of [`PVal`].
//!
//! Everything read is bounds-checked and every failure is a [`Corrupt`]
//! error, never a panic: a snapshot file is only a cache and may be
//! truncated, flipped or replaced by anything.

use crate::diff::{Change, Op};
use crate::value::{LeafSource, PObj, PVal, PathSeg, SMALL_MAX, Small, Text, leaf_sizes};
use std::collections::HashMap;
use std::sync::Arc;

/// The string tables' hashing: foldhash, several times faster than the
/// standard library's SipHash on short strings (SipHash was a quarter of
/// encoding a whole state), and seeded per process all the same.
type Hashing = foldhash::fast::RandomState;

/// Why a snapshot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub String);

impl Corrupt {
    pub fn new(what: impl Into<String>) -> Corrupt {
        Corrupt(what.into())
    }
}

/// Nesting deeper than this is neither written nor read: a state this deep
/// is simply not cached, and a file claiming it is corrupt (so a crafted
/// file cannot exhaust the stack).
pub const MAX_DEPTH: usize = 2048;
/// Below this much stack left, recursion continues on a new segment of
/// [`STACK_GROWTH`] bytes.
const STACK_RED_ZONE: usize = 64 * 1024;
const STACK_GROWTH: usize = 1024 * 1024;
/// The stack is looked at every this many levels, not at every value (it
/// was 2% of decoding a state): a level's frames take a few hundred bytes,
/// far less than [`STACK_RED_ZONE`] over this many.
/// (At every level in a debug build, whose frames are many times larger.)
const STACK_CHECK_EVERY: usize = if cfg!(debug_assertions) { 1 } else { 16 };

/// Run `f`, a step `depth` levels down a value, on a new stack segment
/// when little of this one is left (looked at every [`STACK_CHECK_EVERY`]
/// levels).
fn down<T>(depth: usize, f: impl FnOnce() -> T) -> T {
    match depth.is_multiple_of(STACK_CHECK_EVERY) {
        true => stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, f),
        false => f(),
    }
}

// ---------------------------------------------------------------------
// Writing

/// `v` as a LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A signed number, zigzag-encoded so small magnitudes stay short.
#[inline]
pub fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

// ---------------------------------------------------------------------
// Reading

/// A cursor over a snapshot's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, Corrupt> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or_else(|| Corrupt::new("unexpected end"))?;
        self.at += 1;
        Ok(b)
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(Corrupt::new("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(Corrupt::new("varint overflow"));
            }
        }
    }

    #[inline]
    pub fn zigzag(&mut self) -> Result<i64, Corrupt> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A length that must fit in what is left (each counted item takes at
    /// least `min_each` bytes), so garbage cannot ask for a huge allocation.
    pub fn len(&mut self, min_each: usize) -> Result<usize, Corrupt> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_each.max(1)) <= self.remaining() => Ok(n),
            _ => Err(Corrupt::new("length out of range")),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        if n > self.remaining() {
            return Err(Corrupt::new("unexpected end"));
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = self.len(1)?;
        self.take(n)
    }

    pub fn str(&mut self) -> Result<&'a str, Corrupt> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Corrupt::new("invalid UTF-8"))
    }

    pub fn u64_le(&mut self) -> Result<u64, Corrupt> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

// ---------------------------------------------------------------------
// String tables
//
// Names (event types and streams) and reducer error messages are written
// once, in a table before the index, and refer to by number.

/// A table of strings keyed by content (for strings that repeat without
/// sharing an allocation, such as a reducer's error messages).
#[derive(Default)]
pub struct ArcTable {
    map: HashMap<Text, u64, Hashing>,
    strings: Vec<Text>,
}

impl ArcTable {
    pub fn put(&mut self, out: &mut Vec<u8>, s: &Text) {
        let k = match self.map.get(s) {
            Some(&k) => k,
            None => {
                let k = self.strings.len() as u64;
                self.map.insert(s.clone(), k);
                self.strings.push(s.clone());
                k
            }
        };
        put_varint(out, k);
    }

    pub fn strings(&self) -> &[Text] {
        &self.strings
    }
}

/// Write a table: its length, then each string.
pub fn put_table(out: &mut Vec<u8>, strings: &[Text]) {
    put_varint(out, strings.len() as u64);
    for s in strings {
        put_bytes(out, s.as_bytes());
    }
}

/// Read a table written by [`put_table`].
pub fn get_table(r: &mut Reader<'_>) -> Result<Vec<Text>, Corrupt> {
    let n = r.len(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Text::from(r.str()?));
    }
    Ok(out)
}

/// The string a table index read from `r` refers to.
#[inline]
pub fn get_ref(r: &mut Reader<'_>, table: &[Text]) -> Result<Text, Corrupt> {
    usize::try_from(r.varint()?)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
        .ok_or_else(|| Corrupt::new("string reference out of range"))
}

/// The writing side of the inline string table used inside a state: a
/// string is written either as a reference to one written before (varint
/// k >= 1: the k-th) or as 0 followed by its bytes, which makes it the next
/// entry. A state is written in one go, so its table can be built as it
/// goes; the repeated keys of a large state then cost a byte or two each
/// and share one allocation when read back.
///
/// Inside the leaf-sized parts of a big object (see [`CHUNKED`]) each
/// part's table starts with the object's shared strings, numbered first;
/// one map serves all the parts, each string marked with the part that
/// numbered it (one lookup a string).
#[derive(Default)]
pub struct TextTable<'s> {
    /// Each string's number, the part it was numbered in above
    /// [`PART_SHIFT`] (0 outside parts).
    map: HashMap<&'s str, u64, Hashing>,
    /// The part being written, shifted (0 outside parts).
    part: u64,
    /// The number of the next new string.
    next: u64,
    /// Where the parts of big objects go when they are written apart
    /// (see [`put_far`]), compressed one by one; `None`: inline.
    apart: Option<Vec<u8>>,
}

/// Where a string's part starts in its [`TextTable`] entry.
const PART_SHIFT: u32 = 40;
/// The part of the strings every part of a big object shares.
const ALL_PARTS: u64 = (1 << (64 - PART_SHIFT)) - 1;
/// A big object of more parts than this is written whole.
const MAX_PARTS: usize = (ALL_PARTS - 1) as usize;

impl<'s> TextTable<'s> {
    #[inline]
    pub fn put(&mut self, out: &mut Vec<u8>, s: &'s str) {
        let new = self.part | (self.next + 1);
        match self.map.entry(s) {
            std::collections::hash_map::Entry::Occupied(e) if matches!(*e.get() >> PART_SHIFT, p if p << PART_SHIFT == self.part || p == ALL_PARTS) =>
            {
                return put_varint(out, *e.get() & ((1 << PART_SHIFT) - 1));
            }
            std::collections::hash_map::Entry::Occupied(mut e) => *e.get_mut() = new,
            std::collections::hash_map::Entry::Vacant(e) => drop(e.insert(new)),
        }
        self.next += 1;
        out.push(0);
        put_bytes(out, s.as_bytes());
    }

    /// A table for the parts of a big object that share `shared`.
    fn for_parts(shared: &[&'s str]) -> TextTable<'s> {
        let mut map = HashMap::with_capacity_and_hasher(shared.len(), Hashing::default());
        for (i, s) in shared.iter().enumerate() {
            map.insert(*s, (ALL_PARTS << PART_SHIFT) | (i as u64 + 1));
        }
        TextTable {
            map,
            part: 0,
            next: 0,
            apart: None,
        }
    }

    /// Start the next part: its own strings are numbered after the shared.
    fn next_part(&mut self, shared: usize) {
        self.part += 1 << PART_SHIFT;
        self.next = shared as u64;
    }
}

/// The reading side of [`TextTable`].
pub struct ReadTable {
    /// The shared strings of a big object's part, numbered before the
    /// part's own (see [`CHUNKED`]).
    base: Option<Arc<[Text]>>,
    /// The bytes being read, when held where the leaves of a big object
    /// can keep them to be read later (see [`ReadTable::lazily`]).
    owner: Option<Arc<Vec<u8>>>,
    /// The parts' area of a far state being read (see [`CHUNKED_APART`]).
    apart: Option<Arc<dyn PartBytes>>,
    strings: Vec<Text>,
    /// How many times each string was referred to, up to [`HOT_AFTER`].
    refs: Vec<u8>,
    /// The entries of the objects being read (see [`PObj::from_sorted_tail`]).
    entries: Vec<(Text, PVal)>,
}

/// A table's lists hold at most this many items to be kept for the next.
const SPARE_MAX: usize = 1 << 20;

/// The lists of a [`ReadTable`].
type Lists = (Vec<Text>, Vec<u8>, Vec<(Text, PVal)>);

/// A string referred to this many times is swapped for a static one (see
/// [`crate::value::hot`]): the clones after it cost no atomic operation.
const HOT_AFTER: u8 = 4;

thread_local! {
    /// The lists of the last table dropped on this thread, emptied, for the
    /// next one: a whole state's are megabytes, which allocated afresh for
    /// every far seek were page faults on the seek's path.
    static SPARE: std::cell::Cell<Lists> = Default::default();
}

impl Default for ReadTable {
    fn default() -> ReadTable {
        let (strings, refs, entries) = SPARE.take();
        ReadTable {
            base: None,
            owner: None,
            apart: None,
            strings,
            refs,
            entries,
        }
    }
}

impl Drop for ReadTable {
    fn drop(&mut self) {
        let (mut strings, mut refs, mut entries) = (
            std::mem::take(&mut self.strings),
            std::mem::take(&mut self.refs),
            std::mem::take(&mut self.entries),
        );
        if strings.capacity() <= SPARE_MAX && entries.capacity() <= SPARE_MAX {
            strings.clear();
            refs.clear();
            entries.clear();
            SPARE.set((strings, refs, entries));
        }
    }
}

impl ReadTable {
    /// A table for reading from `bytes`, which it keeps: a big object read
    /// with it has its leaves read when first asked for (see
    /// [`PObj::lazy`]), from these bytes, which must not change and must
    /// have been checked (a part that fails to read then is a bug).
    pub fn lazily(bytes: Arc<Vec<u8>>) -> ReadTable {
        let mut t = ReadTable::default();
        if u32::try_from(bytes.len()).is_ok() {
            t.owner = Some(bytes);
        }
        t
    }

    /// The bytes `r` reads, when this table holds them.
    fn owner_of(&self, r: &Reader<'_>) -> Option<&Arc<Vec<u8>>> {
        self.owner
            .as_ref()
            .filter(|o| std::ptr::eq(o.as_ptr(), r.buf.as_ptr()) && o.len() == r.buf.len())
    }

    #[inline]
    pub fn get(&mut self, r: &mut Reader<'_>) -> Result<Text, Corrupt> {
        match r.varint()? {
            0 => {
                let s: Text = Text::from(r.str()?);
                self.strings.push(s.clone());
                self.refs.push(0);
                Ok(s)
            }
            k => {
                let mut i = usize::try_from(k - 1).unwrap_or(usize::MAX);
                if let Some(base) = &self.base {
                    match base.get(i) {
                        Some(s) => return Ok(s.clone()),
                        None => i -= base.len(),
                    }
                }
                let (Some(s), Some(n)) = (self.strings.get_mut(i), self.refs.get_mut(i)) else {
                    return Err(Corrupt::new("string reference out of range"));
                };
                if *n < HOT_AFTER {
                    *n += 1;
                    if *n == HOT_AFTER
                        && let Some(hot) = crate::value::hot::hot(s)
                    {
                        *s = hot;
                    }
                }
                Ok(s.clone())
            }
        }
    }
}

// ---------------------------------------------------------------------
// Values

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STR: u8 = 5;
const ARR: u8 = 6;
const OBJ: u8 = 7;
/// An object of more than [`CHUNKED_FROM`] members, written in leaf-sized
/// parts (as [`leaf_sizes`] cuts it) that can be read one by one, when
/// first asked for: its member count; the strings more than one part
/// uses, numbered first in each part's table; the count of parts; then
/// each part's first key, byte length, and bytes (its member count, then
/// its members, with a string table of its own). A seek far into a big
/// log reads a whole state: this way it reads only the parts it changes.
const CHUNKED: u8 = 8;
/// A big object of a far state (see [`put_far`]), its parts stored apart:
/// as [`CHUNKED`] up to the count of parts, then where the first part
/// starts in the parts' area, then each part's first key, length, and
/// length compressed; the parts themselves, each compressed on its own,
/// follow one another in the area. A seek into a far state reads only
/// this much of it, and each part it goes into when it goes into it.
const CHUNKED_APART: u8 = 9;
/// Objects with more members than this are written in parts.
pub const CHUNKED_FROM: usize = 64;
/// The parts of a big object sampled for the strings they share.
const SAMPLE_EVERY: usize = 8;

/// Append `v`. Object keys come out in their (sorted) order; strings go
/// through `table`. Fails only when the value is nested deeper than
/// [`MAX_DEPTH`].
pub fn put_value<'s>(out: &mut Vec<u8>, table: &mut TextTable<'s>, v: &'s PVal) -> Result<(), String> {
    put_value_at(out, table, v, 0)
}

fn put_value_at<'s>(
    out: &mut Vec<u8>,
    table: &mut TextTable<'s>,
    v: &'s PVal,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("the state is nested deeper than {MAX_DEPTH} levels"));
    }
    // Deep values on a thread with a small stack (the explorer's worker).
    down(depth, || put_node(out, table, v, depth))
}

fn put_node<'s>(
    out: &mut Vec<u8>,
    table: &mut TextTable<'s>,
    v: &'s PVal,
    depth: usize,
) -> Result<(), String> {
    match v {
        PVal::Null => out.push(NULL),
        PVal::Bool(false) => out.push(FALSE),
        PVal::Bool(true) => out.push(TRUE),
        PVal::Int(i) => {
            out.push(INT);
            put_zigzag(out, *i);
        }
        PVal::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        PVal::Str(s) => {
            out.push(STR);
            table.put(out, s);
        }
        PVal::Arr(a) => {
            out.push(ARR);
            put_varint(out, a.len() as u64);
            for x in a.iter() {
                put_value_at(out, table, x, depth + 1)?;
            }
        }
        PVal::Obj(o) if o.len() > CHUNKED_FROM && o.len() / SMALL_MAX < MAX_PARTS => {
            put_chunked(out, table.apart.as_mut(), o, depth)?
        }
        PVal::Obj(o) => {
            out.push(OBJ);
            put_varint(out, o.len() as u64);
            for (k, x) in o.iter() {
                table.put(out, k);
                put_value_at(out, table, x, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// A big object in parts (see [`CHUNKED`]); with `apart`, each part's
/// bytes are compressed onto its end instead (see [`CHUNKED_APART`]).
fn put_chunked<'s>(
    out: &mut Vec<u8>,
    mut apart: Option<&mut Vec<u8>>,
    o: &'s PObj,
    depth: usize,
) -> Result<(), String> {
    out.push(if apart.is_some() { CHUNKED_APART } else { CHUNKED });
    put_varint(out, o.len() as u64);
    let sizes: Vec<usize> = leaf_sizes(o.len()).collect();
    // The strings of more than one part (in the order first met), as a
    // sample of every eighth part finds them: a string missed is written
    // in each part that has it, which costs bytes, never answers.
    let mut met: HashMap<&'s str, (usize, bool), Hashing> = HashMap::default();
    let mut order = Vec::new();
    let mut members = o.iter();
    for (part, &n) in sizes.iter().enumerate() {
        if part % SAMPLE_EVERY != 0 {
            members.by_ref().take(n).for_each(drop);
            continue;
        }
        // Not the object's own keys: each is in one part only.
        for v in members.by_ref().take(n).map(|(_, v)| v) {
            let mut note = |s: &'s str| match met.entry(s) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().1 |= e.get().0 != part,
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert((part, false));
                    order.push(s);
                }
            };
            strings_of(v, depth + 1, &mut note);
        }
    }
    let shared: Vec<&'s str> = order.into_iter().filter(|s| met[s].1).collect();
    put_varint(out, shared.len() as u64);
    for s in &shared {
        put_bytes(out, s.as_bytes());
    }
    put_varint(out, sizes.len() as u64);
    if let Some(area) = &apart {
        put_varint(out, area.len() as u64);
    }
    let mut members = o.iter();
    let mut table = TextTable::for_parts(&shared);
    let mut body = Vec::new();
    for n in sizes {
        table.next_part(shared.len());
        body.clear();
        put_varint(&mut body, n as u64);
        let mut first = None;
        for (k, v) in members.by_ref().take(n) {
            first.get_or_insert(k);
            table.put(&mut body, k);
            put_value_at(&mut body, &mut table, v, depth + 1)?;
        }
        put_bytes(out, first.map_or("", |k| k.as_str()).as_bytes());
        match apart.as_deref_mut() {
            // Its first key, its length and its bytes.
            None => {
                let len = u32::try_from(body.len())
                    .map_err(|_| "a part of a big object is over 4 GB".to_string())?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&body);
            }
            // Its first key, its length and its length compressed.
            Some(area) => {
                let at = area.len();
                area.resize(at + lz4_flex::block::get_maximum_output_size(body.len()), 0);
                let packed =
                    lz4_flex::block::compress_into(&body, &mut area[at..]).map_err(|e| e.to_string())?;
                area.truncate(at + packed);
                put_varint(out, body.len() as u64);
                put_varint(out, packed as u64);
            }
        }
    }
    Ok(())
}

/// Each string `v` puts in its table (not those of big objects in it,
/// which have tables of their own).
fn strings_of<'s>(v: &'s PVal, depth: usize, each: &mut dyn FnMut(&'s str)) {
    if depth > MAX_DEPTH {
        return;
    }
    down(depth, || match v {
        PVal::Str(s) => each(s),
        PVal::Arr(a) => a.iter().for_each(|x| strings_of(x, depth + 1, each)),
        PVal::Obj(o) if o.len() <= CHUNKED_FROM => {
            for (k, x) in o.iter() {
                each(k);
                strings_of(x, depth + 1, each);
            }
        }
        _ => {}
    })
}

/// Read a value written by [`put_value`].
pub fn get_value(r: &mut Reader<'_>, table: &mut ReadTable) -> Result<PVal, Corrupt> {
    get_value_at(r, table, 0)
}

fn get_value_at(r: &mut Reader<'_>, table: &mut ReadTable, depth: usize) -> Result<PVal, Corrupt> {
    if depth > MAX_DEPTH {
        return Err(Corrupt::new("value nested too deep"));
    }
    down(depth, || get_node(r, table, depth))
}

fn get_node(r: &mut Reader<'_>, table: &mut ReadTable, depth: usize) -> Result<PVal, Corrupt> {
    Ok(match r.u8()? {
        NULL => PVal::Null,
        FALSE => PVal::Bool(false),
        TRUE => PVal::Bool(true),
        INT => PVal::Int(r.zigzag()?),
        FLOAT => PVal::Float(f64::from_bits(r.u64_le()?)),
        STR => PVal::Str(table.get(r)?),
        ARR => {
            let n = r.len(1)?;
            let mut items = imbl::Vector::new();
            for _ in 0..n {
                items.push_back(get_value_at(r, table, depth + 1)?);
            }
            PVal::Arr(Arc::new(items))
        }
        OBJ => {
            let n = r.len(2)?;
            // Room for them at once (up to a bound: `n` is only as
            // trustworthy as the file).
            if n <= SMALL_MAX {
                return small_object(r, table, n, depth);
            }
            table.entries.reserve(n.min(1 << 16));
            let from = table.entries.len();
            for _ in 0..n {
                let k = table.get(r)?;
                let v = member(r, table, depth)?;
                // On an error the object's entries are left in the list,
                // which is dropped with the table.
                table.entries.push((k, v));
            }
            // Written in key order: built in one pass (out of order, from a
            // damaged file, they are inserted one by one instead).
            PVal::Obj(PObj::from_sorted_tail(&mut table.entries, from))
        }
        CHUNKED => get_chunked(r, table, depth)?,
        CHUNKED_APART => get_apart(r, table)?,
        t => return Err(Corrupt::new(format!("unknown value tag {t}"))),
    })
}

/// A big object written in parts (see [`CHUNKED`]): lazily when `table`
/// holds the bytes, else all now.
fn get_chunked(r: &mut Reader<'_>, table: &mut ReadTable, depth: usize) -> Result<PVal, Corrupt> {
    let (n, base, mut sizes) = chunked_head(r, false)?;
    let bad = || Corrupt::new("a big object's part is not the size it must be");
    if let Some(owner) = table.owner_of(r).cloned() {
        let mut leaves = Vec::with_capacity(sizes.len());
        for want in sizes {
            let first = Text::from(r.str()?);
            let body = part_body(r)?;
            let at = r.at - body.len();
            if Reader::new(body).varint()? != want as u64 {
                return Err(bad());
            }
            // The owner's length fits in a u32 (see `ReadTable::lazily`).
            leaves.push((first, at as u32));
        }
        let src = Arc::new(Parts { bytes: owner, base });
        return Ok(PVal::Obj(PObj::lazy(n, src, leaves)));
    }
    let mut part = ReadTable::default();
    part.base = Some(base);
    let from = table.entries.len();
    table.entries.reserve(n.min(1 << 16));
    for want in sizes.by_ref() {
        r.bytes()?;
        let mut p = Reader::new(part_body(r)?);
        part.strings.clear();
        part.refs.clear();
        let entries = &mut table.entries;
        let n = part_members(&mut p, &mut part, depth, &mut |k, v| entries.push((k, v)))?;
        if n != want || p.remaining() != 0 {
            return Err(bad());
        }
    }
    Ok(PVal::Obj(PObj::from_sorted_tail(&mut table.entries, from)))
}

/// The head of a big object written in parts, up to its count of parts:
/// its member count, the strings its parts share, and the size of each
/// part.
fn chunked_head(
    r: &mut Reader<'_>,
    apart: bool,
) -> Result<(usize, Arc<[Text]>, impl ExactSizeIterator<Item = usize> + use<>), Corrupt> {
    // Its members follow (two bytes each at least), unless they are stored
    // apart: then the count of parts, which must fit, bounds them.
    let n = match apart {
        false => r.len(2)?,
        true => usize::try_from(r.varint()?).map_err(|_| Corrupt::new("length out of range"))?,
    };
    let g = r.len(1)?;
    let mut base = Vec::with_capacity(g);
    for _ in 0..g {
        let s = Text::from(r.str()?);
        // Shared by many parts: static when the pool has room, so that
        // the many clones cost no atomic operations.
        base.push(crate::value::hot::hot(&s).unwrap_or(s));
    }
    let parts = r.len(3)?;
    let sizes = leaf_sizes(n);
    if parts != sizes.len() {
        return Err(Corrupt::new("a big object's parts do not add up"));
    }
    Ok((n, base.into(), sizes))
}

/// A big object of a far state, its parts stored apart (see
/// [`CHUNKED_APART`]): read when first asked for, from the parts' area
/// `table` reads them from.
fn get_apart(r: &mut Reader<'_>, table: &mut ReadTable) -> Result<PVal, Corrupt> {
    let (n, base, sizes) = chunked_head(r, true)?;
    let Some(area) = table.apart.clone() else {
        return Err(Corrupt::new(
            "a big object's parts are stored apart, without their area",
        ));
    };
    let mut at = r.varint()?;
    let mut leaves = Vec::with_capacity(sizes.len());
    let mut places = Vec::with_capacity(sizes.len());
    for (i, want) in sizes.enumerate() {
        let first = Text::from(r.str()?);
        let (len, packed) = (r.varint()?, r.varint()?);
        // A part holds `want` members (a byte each at least); lz4 writes
        // at most its maximum output for them, and makes at most 255 bytes
        // of a byte.
        let sizes = u32::try_from(len).ok().zip(u32::try_from(packed).ok());
        let Some((len, packed)) = sizes.filter(|&(len, packed)| {
            let (len, packed) = (len as usize, packed as usize);
            len >= want
                && packed <= lz4_flex::block::get_maximum_output_size(len)
                && len <= packed.saturating_mul(255) + 16
        }) else {
            return Err(Corrupt::new("a big object's part is not the size it must be"));
        };
        places.push(Place { at, packed, len });
        at = at.saturating_add(u64::from(packed));
        leaves.push((first, i as u32));
    }
    if at > area.len() {
        return Err(Corrupt::new("a big object's parts run past their area"));
    }
    let src = Arc::new(Apart {
        area,
        base,
        places: places.into(),
    });
    Ok(PVal::Obj(PObj::lazy(n, src, leaves)))
}

/// Where the bytes of a far state's parts are (see [`CHUNKED_APART`]):
/// in memory, or in a file, read as needed.
pub trait PartBytes: Send + Sync {
    /// The area's length.
    fn len(&self) -> u64;
    /// Its `len` bytes from `at`, which lie within it, into `out`.
    fn read(&self, at: u64, len: usize, out: &mut Vec<u8>) -> std::io::Result<()>;
}

/// A parts' area in memory: `bytes` from `from` on.
pub struct InMemory {
    pub bytes: Arc<Vec<u8>>,
    pub from: usize,
}

impl PartBytes for InMemory {
    fn len(&self) -> u64 {
        self.bytes.len().saturating_sub(self.from) as u64
    }

    fn read(&self, at: u64, len: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        let at = usize::try_from(at).ok().and_then(|a| a.checked_add(self.from));
        let part = at.and_then(|a| self.bytes.get(a..a.checked_add(len)?));
        let part = part.ok_or_else(|| std::io::Error::other("a part past the end of its area"))?;
        out.clear();
        out.extend_from_slice(part);
        Ok(())
    }
}

/// A part of a big object stored apart: where in the area, how long
/// compressed and not.
#[derive(Clone, Copy)]
struct Place {
    at: u64,
    packed: u32,
    len: u32,
}

/// The parts of a big object stored apart (see [`get_apart`]).
struct Apart {
    area: Arc<dyn PartBytes>,
    base: Arc<[Text]>,
    places: Box<[Place]>,
}

impl Apart {
    fn read(&self, i: u32) -> Result<Small, Corrupt> {
        let place = self
            .places
            .get(i as usize)
            .ok_or_else(|| Corrupt::new("no such part"))?;
        let body = PACKED.with_borrow_mut(|packed| {
            self.area
                .read(place.at, place.packed as usize, packed)
                .map_err(|e| Corrupt::new(format!("reading a part: {e}")))?;
            lz4_flex::block::decompress(packed, place.len as usize).map_err(|e| Corrupt::new(e.to_string()))
        })?;
        if body.len() != place.len as usize {
            return Err(Corrupt::new("a big object's part is not the size it must be"));
        }
        let body = Arc::new(body);
        match part_at(&body, 0, &self.base)? {
            (entries, end) if end == body.len() => Ok(entries),
            _ => Err(Corrupt::new("bytes after a big object's part")),
        }
    }
}

thread_local! {
    /// The compressed bytes of the last part read on this thread, for the
    /// next one's.
    static PACKED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl LeafSource for Apart {
    fn entries(&self, at: u32) -> Small {
        // The area is the process's own scratch file or bytes checked
        // against their hash, which never change: a part that does not
        // read back is a bug, or the file failing under us.
        self.read(at)
            .unwrap_or_else(|e| panic!("a far state's part no longer reads back: {}", e.0))
    }
}

/// A far state written with its big objects' parts apart: the length of
/// the rest (its head), then the rest compressed, then the parts' area.
pub fn put_far(state: &PVal) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    let mut table = TextTable {
        apart: Some(Vec::new()),
        ..TextTable::default()
    };
    put_value(&mut head, &mut table, state)?;
    let area = table.apart.take().unwrap_or_default();
    let head = lz4_flex::compress_prepend_size(&head);
    let len = u32::try_from(head.len()).map_err(|_| "a far state's head is over 4 GB".to_string())?;
    let mut out = Vec::with_capacity(4 + head.len() + area.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&area);
    Ok(out)
}

/// The length of a far state's head (see [`put_far`]) from its first four
/// bytes.
pub fn far_head_len(first: &[u8]) -> Result<usize, Corrupt> {
    let len: [u8; 4] = first
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Corrupt::new("a far state cut short"))?;
    Ok(u32::from_le_bytes(len) as usize)
}

/// Read a far state (see [`put_far`]) from its head (compressed, without
/// its length), its parts to be read from `area` when first asked for.
pub fn get_far(head: &[u8], area: Arc<dyn PartBytes>) -> Result<PVal, Corrupt> {
    let bytes = lz4_flex::decompress_size_prepended(head).map_err(|e| Corrupt::new(e.to_string()))?;
    let mut r = Reader::new(&bytes);
    let mut table = ReadTable::default();
    table.apart = Some(area);
    let v = get_value(&mut r, &mut table)?;
    match r.remaining() {
        0 => Ok(v),
        n => Err(Corrupt::new(format!("{n} bytes after a far state"))),
    }
}

/// The bytes of a part of a big object, after its first key.
fn part_body<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], Corrupt> {
    let mut n = [0; 4];
    n.copy_from_slice(r.take(4)?);
    r.take(u32::from_le_bytes(n) as usize)
}

/// The parts of a big object read lazily (see [`get_chunked`]).
struct Parts {
    bytes: Arc<Vec<u8>>,
    base: Arc<[Text]>,
}

impl Parts {
    fn read(&self, at: u32) -> Result<Small, Corrupt> {
        part_at(&self.bytes, at as usize, &self.base).map(|(entries, _)| entries)
    }
}

/// The members of the part of a big object at `at` in `bytes` (which big
/// objects inside it keep, to be read lazily), its strings numbered after
/// `base`; and where in `bytes` it ends.
fn part_at(bytes: &Arc<Vec<u8>>, at: usize, base: &Arc<[Text]>) -> Result<(Small, usize), Corrupt> {
    let mut r = Reader { buf: bytes, at };
    let mut table = ReadTable::default();
    table.base = Some(base.clone());
    table.owner = Some(bytes.clone());
    let mut entries = Small::new();
    part_members(&mut r, &mut table, 0, &mut |k, v| entries.push((k, v)))?;
    Ok((entries, r.at))
}

/// The members of one part of a big object at `r`, each handed to `each`
/// as it is read (at most [`SMALL_MAX`]); how many there were.
fn part_members(
    r: &mut Reader<'_>,
    table: &mut ReadTable,
    depth: usize,
    each: &mut impl FnMut(Text, PVal),
) -> Result<usize, Corrupt> {
    let n = r.len(2)?;
    if n > SMALL_MAX {
        return Err(Corrupt::new("a big object's part is too big"));
    }
    for _ in 0..n {
        let k = table.get(r)?;
        let v = member(r, table, depth)?;
        each(k, v);
    }
    Ok(n)
}

impl LeafSource for Parts {
    fn entries(&self, at: u32) -> Small {
        // The bytes were checked before the part's first key and size
        // were read from them; they are this object's alone and never
        // change. A part that does not read back is a bug in this file.
        self.read(at)
            .unwrap_or_else(|e| panic!("a big object's part no longer reads back: {}", e.0))
    }
}

/// The value of a member of an object at `depth`. Numbers, strings and
/// small objects (a user's record) are read here, in the caller's loop:
/// going down and back for each, the value was handed back through memory
/// and the caller stalled reading it again (the two hottest instructions of
/// decoding a far state).
#[inline(always)]
fn member(r: &mut Reader<'_>, table: &mut ReadTable, depth: usize) -> Result<PVal, Corrupt> {
    if let Some(v) = scalar(r, table)? {
        return Ok(v);
    }
    match r.buf.get(r.at).copied() {
        Some(OBJ) if depth < MAX_DEPTH => {
            let tag = r.at;
            r.at += 1;
            match r.len(2)? {
                n if n <= SMALL_MAX => small_object(r, table, n, depth + 1),
                // Only the tag and the length were read: again, below.
                _ => {
                    r.at = tag;
                    get_value_at(r, table, depth + 1)
                }
            }
        }
        _ => get_value_at(r, table, depth + 1),
    }
}

/// An object of `n` members, at most [`SMALL_MAX`], at `depth`: read into
/// one leaf, without going through the table's list.
#[inline(always)]
fn small_object(r: &mut Reader<'_>, table: &mut ReadTable, n: usize, depth: usize) -> Result<PVal, Corrupt> {
    let mut entries = Small::new();
    for _ in 0..n {
        let k = table.get(r)?;
        let v = match scalar(r, table)? {
            Some(v) => v,
            None => get_value_at(r, table, depth + 1)?,
        };
        entries.push((k, v));
    }
    Ok(PVal::Obj(PObj::from_small(entries)))
}

/// The number or string at `r`, read; `None` (nothing read) for any other
/// value.
#[inline(always)]
fn scalar(r: &mut Reader<'_>, table: &mut ReadTable) -> Result<Option<PVal>, Corrupt> {
    Ok(match r.buf.get(r.at).copied() {
        Some(INT) => {
            r.at += 1;
            Some(PVal::Int(r.zigzag()?))
        }
        Some(STR) => {
            r.at += 1;
            Some(PVal::Str(table.get(r)?))
        }
        _ => None,
    })
}

// ---------------------------------------------------------------------
// Change lists (checkpoints are stored as the changes from a later state)

/// Append a change list: its length, then each change's op, path and
/// (unless it removes) new value. With `olds`, the old value of a change
/// that removes or replaces is written too (before the new one), so the
/// list can also be undone; without, applying it needs only the new ones.
pub fn put_changes<'s>(
    out: &mut Vec<u8>,
    table: &mut TextTable<'s>,
    changes: &'s [Change],
    olds: bool,
) -> Result<(), String> {
    put_varint(out, changes.len() as u64);
    for c in changes {
        out.push(match c.op {
            Op::Add => 0,
            Op::Remove => 1,
            Op::Replace => 2,
        });
        put_varint(out, c.path.len() as u64);
        for seg in &c.path {
            match seg {
                PathSeg::Key(k) => {
                    out.push(0);
                    table.put(out, k);
                }
                PathSeg::Index(i) => {
                    out.push(1);
                    put_varint(out, *i as u64);
                }
            }
        }
        if olds && c.op != Op::Add {
            let v = c.old.as_ref().ok_or("a change without its old value")?;
            put_value(out, table, v)?;
        }
        if c.op != Op::Remove {
            let v = c.value.as_ref().ok_or("a change without its value")?;
            put_value(out, table, v)?;
        }
    }
    Ok(())
}

/// Which values of each change a reader of a change list wants (see
/// [`visit_changes`]): the other is stepped over, not built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Both (old values only where they were written).
    Both,
    /// The new values alone: to apply the changes.
    New,
    /// The old values alone: to undo them.
    Old,
}

/// Read a change list written by [`put_changes`] (with `olds` as it was
/// written).
pub fn get_changes(r: &mut Reader<'_>, table: &mut ReadTable, olds: bool) -> Result<Vec<Change>, Corrupt> {
    let mut out = Vec::new();
    visit_changes(r, table, olds, Want::Both, &mut |op, path, old, value| {
        out.push(Change {
            op,
            path: path.to_vec(),
            old,
            value,
        });
        Ok(())
    })?;
    Ok(out)
}

/// What [`visit_changes`] hands each change to.
pub type EachChange<'a> = dyn FnMut(Op, &[PathSeg], Option<PVal>, Option<PVal>) -> Result<(), Corrupt> + 'a;

/// Read a change list written by [`put_changes`] (with `olds` as it was
/// written), handing each change to `each` as it is read: its op, its
/// path (in a list reused from one change to the next), and the old and
/// new values `want` asks for (`None` for the other). No list of changes
/// is built, and the values not wanted are stepped over without building
/// them: composing deltas reads tens of thousands of changes a seek.
/// An error from `each` stops the reading and is returned.
pub fn visit_changes(
    r: &mut Reader<'_>,
    table: &mut ReadTable,
    olds: bool,
    want: Want,
    each: &mut EachChange<'_>,
) -> Result<(), Corrupt> {
    let n = r.len(2)?;
    let mut path = Vec::new();
    for _ in 0..n {
        let op = match r.u8()? {
            0 => Op::Add,
            1 => Op::Remove,
            2 => Op::Replace,
            _ => return Err(Corrupt::new("bad change")),
        };
        let len = r.len(2)?;
        path.clear();
        for _ in 0..len {
            path.push(match r.u8()? {
                0 => PathSeg::Key(table.get(r)?),
                1 => PathSeg::Index(usize::try_from(r.varint()?).map_err(|_| Corrupt::new("bad index"))?),
                _ => return Err(Corrupt::new("bad change")),
            });
        }
        let mut value_if = |wanted: bool| match wanted {
            true => get_value(r, table).map(Some),
            false => skip_value(r, table).map(|()| None),
        };
        let old = match olds && op != Op::Add {
            true => value_if(want != Want::New)?,
            false => None,
        };
        let value = match op != Op::Remove {
            true => value_if(want != Want::Old)?,
            false => None,
        };
        each(op, &path, old, value)?;
    }
    Ok(())
}

/// Step over a value written by [`put_value`] without building it. Its new
/// strings still go into `table`: the values after it may refer to them.
pub fn skip_value(r: &mut Reader<'_>, table: &mut ReadTable) -> Result<(), Corrupt> {
    skip_value_at(r, table, 0)
}

fn skip_value_at(r: &mut Reader<'_>, table: &mut ReadTable, depth: usize) -> Result<(), Corrupt> {
    if depth > MAX_DEPTH {
        return Err(Corrupt::new("value nested too deep"));
    }
    down(depth, || skip_node(r, table, depth))
}

fn skip_node(r: &mut Reader<'_>, table: &mut ReadTable, depth: usize) -> Result<(), Corrupt> {
    match r.u8()? {
        NULL | FALSE | TRUE => {}
        INT => drop(r.zigzag()?),
        FLOAT => drop(r.u64_le()?),
        STR => drop(table.get(r)?),
        ARR => {
            for _ in 0..r.len(1)? {
                skip_value_at(r, table, depth + 1)?;
            }
        }
        OBJ => {
            for _ in 0..r.len(2)? {
                drop(table.get(r)?);
                skip_value_at(r, table, depth + 1)?;
            }
        }
        // Its strings are its own: stepped over whole.
        CHUNKED => {
            r.len(2)?;
            for _ in 0..r.len(1)? {
                r.bytes()?;
            }
            for _ in 0..r.len(3)? {
                r.bytes()?;
                part_body(r)?;
            }
        }
        CHUNKED_APART => {
            r.varint()?;
            for _ in 0..r.len(1)? {
                r.bytes()?;
            }
            let parts = r.len(3)?;
            r.varint()?;
            for _ in 0..parts {
                r.bytes()?;
                r.varint()?;
                r.varint()?;
            }
        }
        t => return Err(Corrupt::new(format!("unknown value tag {t}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        let mut out = Vec::new();
        let nums = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        for n in nums {
            put_varint(&mut out, n);
        }
        for z in [0i64, -1, 1, i64::MIN, i64::MAX] {
            put_zigzag(&mut out, z);
        }
        let mut r = Reader::new(&out);
        for n in nums {
            assert_eq!(r.varint(), Ok(n));
        }
        for z in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(r.zigzag(), Ok(z));
        }
        assert!(r.varint().is_err());
        let eleven = [0xffu8; 11];
        assert!(Reader::new(&eleven).varint().is_err());
        assert!(Reader::new(&[0x80, 0x80]).varint().is_err());
    }

    /// An object of `n` records keyed by unique names, with strings every
    /// part shares (field names, plans), some shared by a few, unique
    /// ones, and a big object nested in one record.
    fn big(n: usize, seed: u64) -> PVal {
        let mut x = seed | 1;
        let mut members = Vec::new();
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut record = format!(
                r#"{{"plan":"{}","credits":{},"name":"José {}","ip":"10.0.{}.{}""#,
                ["free", "pro", "team"][(x % 3) as usize],
                x % 1000,
                x % 37,
                x % 256,
                i
            );
            if i == n / 2 {
                let inner: Vec<String> = (0..3 * CHUNKED_FROM)
                    .map(|j| format!(r#""in{j}":[{j},"plan"]"#))
                    .collect();
                record += &format!(r#","inner":{{{}}}"#, inner.join(","));
            }
            members.push(format!(r#""user-{i:05}-ø@example.org":{record}}}"#));
        }
        PVal::from_json(&format!("{{{}}}", members.join(","))).unwrap()
    }

    /// `v` read back from `out`, lazily: the reader, checked to have read
    /// it all.
    fn lazily(out: &[u8]) -> PVal {
        let bytes = Arc::new(out.to_vec());
        let mut r = Reader::new(&bytes);
        let v = get_value(&mut r, &mut ReadTable::lazily(bytes.clone())).unwrap();
        assert_eq!(r.remaining(), 0);
        v
    }

    /// A parts' area in memory that counts the parts read from it.
    struct CountedArea(InMemory, std::sync::atomic::AtomicUsize);

    impl PartBytes for CountedArea {
        fn len(&self) -> u64 {
            self.0.len()
        }

        fn read(&self, at: u64, len: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.read(at, len, out)
        }
    }

    #[test]
    fn a_far_state_whose_parts_do_not_compress_reads_back() {
        // Keys and values of unrelated bytes: lz4 makes each part a little
        // longer. (Keys this short also make a head shorter than two bytes
        // a member.)
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'0' + (x % 75) as u8)
                })
                .collect()
        };
        let members: Vec<String> = (0..200)
            .map(|_| {
                let (k, v) = (noise(3), noise(100));
                format!("{}:{}", PVal::str(&k).to_json(), PVal::str(&v).to_json())
            })
            .collect();
        let state = PVal::from_json(&format!("{{{}}}", members.join(","))).unwrap();
        let bytes = put_far(&state).unwrap();
        let end = 4 + far_head_len(&bytes).unwrap();
        let bytes = Arc::new(bytes);
        let area = Arc::new(InMemory {
            bytes: bytes.clone(),
            from: end,
        });
        assert_eq!(get_far(&bytes[4..end], area).unwrap().to_json(), state.to_json());
        let head = lz4_flex::decompress_size_prepended(&bytes[4..end]).unwrap();
        let mut r = Reader::new(&head);
        skip_value(&mut r, &mut ReadTable::default()).unwrap();
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn far_states_keep_their_big_objects_parts_apart_and_read_each_when_first_asked() {
        let state = PVal::from_json(&format!(
            r#"{{"users":{},"n":5,"deep":{{"more":{}}},"list":[{}]}}"#,
            big(700, 3).to_json(),
            big(300, 5).to_json(),
            big(100, 9).to_json()
        ))
        .unwrap();
        let bytes = put_far(&state).unwrap();
        let end = 4 + far_head_len(&bytes).unwrap();
        let bytes = Arc::new(bytes);
        let area = Arc::new(CountedArea(
            InMemory {
                bytes: bytes.clone(),
                from: end,
            },
            Default::default(),
        ));
        let reads = || area.1.load(std::sync::atomic::Ordering::Relaxed);
        // The head is a small part of it: every part is in the area.
        assert!(end * 8 < bytes.len(), "head {end} of {}", bytes.len());
        let read = get_far(&bytes[4..end], area.clone()).unwrap();
        assert_eq!(reads(), 0, "no part is read with the head");
        let field = |v: &PVal, k: &str| match v {
            PVal::Obj(o) => o.get(k).cloned(),
            _ => None,
        };
        let key = match field(&state, "users") {
            Some(PVal::Obj(o)) => o.keys().nth(350).unwrap().clone(),
            _ => unreachable!("the users are an object"),
        };
        let users = field(&read, "users").unwrap();
        assert_eq!(reads(), 0, "the big object is had from the head");
        assert_eq!(field(&users, &key), field(&field(&state, "users").unwrap(), &key));
        assert_eq!(reads(), 1, "one part read for one member");
        assert_eq!(read.to_json(), state.to_json());
        assert_eq!(read, state);
        let parts = reads();
        assert_eq!(read.to_json(), state.to_json());
        assert_eq!(reads(), parts, "each part is read once");
        // Its head steps over as a value, and reads nowhere but from an
        // area.
        let head = lz4_flex::decompress_size_prepended(&bytes[4..end]).unwrap();
        let mut r = Reader::new(&head);
        skip_value(&mut r, &mut ReadTable::default()).unwrap();
        assert_eq!(r.remaining(), 0);
        assert!(get_value(&mut Reader::new(&head), &mut ReadTable::default()).is_err());
        // A head cut or damaged anywhere: an error or some value, never a
        // panic (the parts are only for checked bytes).
        for at in (0..head.len()).step_by(37) {
            let mut bad = head.clone();
            bad[at] ^= 0x5a;
            let bad = lz4_flex::compress_prepend_size(&bad);
            let _ = get_far(&bad, area.clone());
            let cut = lz4_flex::compress_prepend_size(&head[..at]);
            assert!(get_far(&cut, area.clone()).is_err());
        }
        // A part's place past the area's end is an error.
        let short = Arc::new(InMemory {
            bytes: Arc::new(bytes[..bytes.len() - 1].to_vec()),
            from: end,
        });
        assert!(get_far(&bytes[4..end], short).is_err());
    }

    #[test]
    fn big_objects_are_written_in_parts_and_read_back_whole_or_lazily() {
        let v = big(700, 3);
        let mut out = Vec::new();
        put_value(&mut out, &mut TextTable::default(), &v).unwrap();
        assert_eq!(out[0], CHUNKED);
        let eager = get_value(&mut Reader::new(&out), &mut ReadTable::default()).unwrap();
        assert_eq!(eager, v);
        assert_eq!(eager.to_json(), v.to_json());
        let lazy = lazily(&out);
        assert_eq!(lazy.to_json(), v.to_json());
        assert_eq!(lazy, v);
        // Stepped over whole, with what comes after it read right.
        let mut two = out.clone();
        put_value(&mut two, &mut TextTable::default(), &PVal::str("after")).unwrap();
        let mut r = Reader::new(&two);
        skip_value(&mut r, &mut ReadTable::default()).unwrap();
        assert_eq!(
            get_value(&mut r, &mut ReadTable::default()).unwrap(),
            PVal::str("after")
        );
        // Cut or damaged anywhere, read whole: an error or some value,
        // never a panic (a lazy read is only for checked bytes).
        for at in (0..out.len()).step_by(61) {
            assert!(get_value(&mut Reader::new(&out[..at]), &mut ReadTable::default()).is_err());
            let mut bad = out.clone();
            bad[at] ^= 0x5a;
            let _ = get_value(&mut Reader::new(&bad), &mut ReadTable::default());
        }
    }

    #[test]
    fn a_lazily_read_object_changes_like_any_other_and_leaves_its_copies_alone() {
        let v = big(500, 11);
        let mut out = Vec::new();
        put_value(&mut out, &mut TextTable::default(), &v).unwrap();
        let lazy = lazily(&out);
        let kept = lazy.clone();
        let (PVal::Obj(mut a), PVal::Obj(mut b)) = (lazy, v.clone()) else {
            panic!("objects")
        };
        let keys: Vec<Text> = b.keys().cloned().collect();
        for (i, k) in keys.iter().enumerate().step_by(3) {
            match i % 4 {
                0 => assert_eq!(a.remove(k), b.remove(k)),
                1 => assert_eq!(
                    a.insert(k.clone(), PVal::from(i as i64)),
                    b.insert(k.clone(), PVal::from(i as i64))
                ),
                2 => {
                    let new = Text::from(format!("{k}+").as_str());
                    assert_eq!(a.insert(new.clone(), PVal::Null), b.insert(new, PVal::Null));
                }
                _ => {
                    *a.get_mut(k).unwrap() = PVal::Bool(true);
                    *b.get_mut(k).unwrap() = PVal::Bool(true);
                }
            }
        }
        assert_eq!(a.len(), b.len());
        assert_eq!(PVal::Obj(a).to_json(), PVal::Obj(b).to_json());
        assert_eq!(kept, v, "the copy made before the changes is as read");
        // Read by several threads at once, each leaf read once for all.
        let shared = lazily(&out);
        let want = v.to_json();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(shared.to_json(), want));
            }
        });
        assert_eq!(crate::diff::diff(&shared, &v), vec![]);
    }

    #[test]
    fn composed_changes_onto_a_lazily_read_object_give_what_they_give_on_it_read_whole() {
        use crate::diff::{Composed, Op, apply_change};
        use crate::value::PathSeg;
        let v = big(900, 5);
        let mut out = Vec::new();
        put_value(&mut out, &mut TextTable::default(), &v).unwrap();
        let keys: Vec<Text> = v.as_obj().unwrap().keys().cloned().collect();
        let key = |k: &Text| PathSeg::Key(k.clone());
        let field = |f: &str| PathSeg::Key(Text::from(f));
        // Changes below members (put off in unread leaves), members
        // replaced, added and removed (which read their leaves), and the
        // same member changed again, in an order that matters.
        let mut changes: Vec<(Op, Vec<PathSeg>, Option<PVal>)> = Vec::new();
        for (i, k) in keys.iter().enumerate().step_by(7) {
            changes.push((
                Op::Replace,
                vec![key(k), field("credits")],
                Some(PVal::Int(i as i64)),
            ));
            match i % 5 {
                0 => changes.push((Op::Add, vec![key(k), field("last")], Some(PVal::str("ip")))),
                1 => changes.push((Op::Replace, vec![key(k)], Some(PVal::Int(1)))),
                2 => changes.push((Op::Remove, vec![key(k)], None)),
                3 => changes.push((
                    Op::Add,
                    vec![PathSeg::Key(Text::from(format!("{k}~").as_str()))],
                    Some(PVal::Null),
                )),
                _ => changes.push((Op::Replace, vec![key(k), field("credits")], Some(PVal::Int(-1)))),
            }
        }
        let mut plain = v.clone();
        for (op, path, value) in &changes {
            apply_change(&mut plain, *op, path, value.clone()).unwrap();
        }
        let composed = |run: &[(Op, Vec<PathSeg>, Option<PVal>)]| {
            let mut c = Composed::default();
            for (op, path, value) in run {
                c.push(*op, path, value.clone()).unwrap();
            }
            c
        };
        // In two halves, so that the second finds changes of the first
        // still waiting.
        let mut lazy = lazily(&out);
        let kept = lazy.clone();
        let half = changes.len() / 2;
        for run in [&changes[..half], &changes[half..]] {
            composed(run).apply(&mut lazy).unwrap();
        }
        let mut at_once = lazily(&out);
        composed(&changes).apply(&mut at_once).unwrap();
        for got in [&lazy, &at_once] {
            assert_eq!(got.to_json(), plain.to_json());
            assert_eq!(crate::diff::diff(got, &plain), vec![]);
        }
        assert_eq!(kept, v, "the copy made before is as read");
        // A change below a member that is not there: an error where the
        // leaf is read; put off where it is not, it is a bug found when
        // the leaf is read (the bytes and the deltas are checked or this
        // process's own, so only a bug puts one off).
        let path = vec![PathSeg::Key(Text::from("user-00450-nobody")), field("credits")];
        let bad = composed(&[(Op::Replace, path, Some(PVal::Null))]);
        let mut eager = get_value(&mut Reader::new(&out), &mut ReadTable::default()).unwrap();
        assert!(bad.apply(&mut eager).unwrap_err().contains("no member"));
        let mut lazy = lazily(&out);
        bad.apply(&mut lazy).unwrap();
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lazy.to_json())).unwrap_err();
        assert!(read.downcast_ref::<String>().unwrap().contains("no member"));
    }

    #[test]
    fn values_round_trip() {
        let text = r#"{"a":[1,-2,3.5,"x",null,true,false,{"":"x"}],"b":{"a":"x","c":[]},"n":1e300}"#;
        let v = PVal::from_json(text).unwrap();
        let mut out = Vec::new();
        put_value(&mut out, &mut TextTable::default(), &v).unwrap();
        let back = get_value(&mut Reader::new(&out), &mut ReadTable::default()).unwrap();
        assert_eq!(back.to_json(), v.to_json());
        // Every truncation is an error, not a panic.
        for cut in 0..out.len() {
            assert!(get_value(&mut Reader::new(&out[..cut]), &mut ReadTable::default()).is_err());
        }
    }

    #[test]
    fn a_change_list_visited_for_one_side_skips_the_other_and_still_reads_its_strings() {
        // Strings first written inside an old value ("gone", "k") are
        // referred to by later changes: skipping the old values must still
        // put them in the table.
        let state = |t: &str| PVal::from_json(t).unwrap();
        let a = state(r#"{"u":{"x":{"k":"gone","n":[1,{"k":2}]},"y":1},"z":[true,2.5]}"#);
        let b = state(r#"{"u":{"y":"gone","w":{"k":"k"}},"z":[false,"gone",null]}"#);
        let changes = crate::diff::diff(&a, &b);
        let mut out = Vec::new();
        put_changes(&mut out, &mut TextTable::default(), &changes, true).unwrap();
        let all = get_changes(&mut Reader::new(&out), &mut ReadTable::default(), true).unwrap();
        assert_eq!(all.len(), changes.len());
        for want in [Want::Both, Want::New, Want::Old] {
            let mut r = Reader::new(&out);
            let mut seen = Vec::new();
            visit_changes(
                &mut r,
                &mut ReadTable::default(),
                true,
                want,
                &mut |op, path, old, value| {
                    seen.push((op, path.to_vec(), old, value));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(r.remaining(), 0);
            assert_eq!(seen.len(), all.len());
            for ((op, path, old, value), c) in seen.iter().zip(&all) {
                assert_eq!((*op, path), (c.op, &c.path));
                let json = |v: &Option<PVal>| v.as_ref().map(PVal::to_json);
                let (keep_old, keep_new) = (want != Want::New, want != Want::Old);
                assert_eq!(json(old), if keep_old { json(&c.old) } else { None });
                assert_eq!(json(value), if keep_new { json(&c.value) } else { None });
            }
            // Applied, the new values give `b`; undone, the old ones `a`.
            let mut s = a.clone();
            match want {
                Want::Old => {
                    s = b.clone();
                    for (op, path, old, _) in seen.into_iter().rev() {
                        crate::diff::apply_change(&mut s, op.undone(), &path, old).unwrap();
                    }
                    assert_eq!(s.to_json(), a.to_json());
                }
                _ => {
                    for (op, path, _, value) in seen {
                        crate::diff::apply_change(&mut s, op, &path, value).unwrap();
                    }
                    assert_eq!(s.to_json(), b.to_json());
                }
            }
        }
        // Every truncation is an error, not a panic, whichever side is read.
        for cut in 0..out.len() {
            for want in [Want::New, Want::Old] {
                let mut r = Reader::new(&out[..cut]);
                assert!(
                    visit_changes(
                        &mut r,
                        &mut ReadTable::default(),
                        true,
                        want,
                        &mut |_, _, _, _| Ok(())
                    )
                    .is_err()
                );
            }
        }
    }

    #[test]
    fn deep_values_are_refused_both_ways() {
        let mut bytes = [ARR, 1].repeat(MAX_DEPTH + 2);
        bytes.push(NULL);
        assert!(get_value(&mut Reader::new(&bytes), &mut ReadTable::default()).is_err());
        // As deep as allowed: read back on this (small) test thread.
        let ok = &bytes[2 * 2..];
        let v = get_value(&mut Reader::new(ok), &mut ReadTable::default()).unwrap();
        let mut out = Vec::new();
        put_value(&mut out, &mut TextTable::default(), &v).unwrap();
        assert_eq!(out, ok);
        // One level more is not written. (Built and dropped on a thread
        // with room: dropping a deep value recurses too.)
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let deeper = PVal::arr([PVal::arr([v])]);
                assert!(put_value(&mut Vec::new(), &mut TextTable::default(), &deeper).is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn strings_referred_to_often_come_back_static_and_the_rest_counted() {
        let hot = format!("plan-{}", line!());
        let cold = format!("name-{}", line!());
        let v = PVal::arr(
            (0..10)
                .map(|_| PVal::str(&hot))
                .chain([PVal::str(&cold), PVal::str(&cold)]),
        );
        let mut out = Vec::new();
        put_value(&mut out, &mut TextTable::default(), &v).unwrap();
        let back = get_value(&mut Reader::new(&out), &mut ReadTable::default()).unwrap();
        assert_eq!(back, v);
        let items: Vec<&Text> = back
            .as_arr()
            .unwrap()
            .iter()
            .map(|x| match x {
                PVal::Str(s) => s,
                _ => unreachable!(),
            })
            .collect();
        // The first reads and the first few references are counted; from
        // the HOT_AFTER-th reference on, one static string.
        let from = usize::from(HOT_AFTER);
        assert!(items[..from].iter().all(|s| !Text::is_static(s)));
        assert!(
            items[from..10]
                .iter()
                .all(|s| Text::is_static(s) && Text::ptr_eq(s, items[from]))
        );
        assert!(items[10..].iter().all(|s| !Text::is_static(s)));
    }

    #[test]
    fn deep_objects_of_one_member_are_read_on_a_small_stack() {
        // Each level a small object, read in its parent's loop: the stack
        // is still looked at as it goes down.
        let mut bytes = Vec::new();
        for _ in 0..MAX_DEPTH {
            bytes.extend([OBJ, 1, 0, 1, b'a']);
        }
        bytes.push(NULL);
        let small_stack = std::thread::Builder::new().stack_size(256 << 10);
        let read = small_stack
            .spawn(move || get_value(&mut Reader::new(&bytes), &mut ReadTable::default()))
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        // Looked at and dropped on a thread with room (both recurse).
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let mut depth = 0;
                let mut at = &read;
                while let Some(inner) = at.as_obj().and_then(|o| o.get("a")) {
                    depth += 1;
                    at = inner;
                }
                assert_eq!((depth, at), (MAX_DEPTH, &PVal::Null));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        let mut out = vec![ARR];
        put_varint(&mut out, u64::MAX / 2);
        assert!(get_value(&mut Reader::new(&out), &mut ReadTable::default()).is_err());
    }
}
