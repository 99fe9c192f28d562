//! The event index: what the image keeps about every record, packed.
//!
//! A log of ten million events has ten million index entries, so each one
//! must be small. An entry is stored as columns in chunks of 2^16: the id,
//! the type and stream as numbers into a table of names (a log has few
//! distinct ones), the time as an integer, and where the body is (byte
//! offset, length and line of a JSONL line, or a SQLite rowid). That is 40
//! bytes an entry in the chunk being filled, where a struct of `Arc`s and
//! enums took about 160 with its time string.
//!
//! A full chunk is packed (see [`Col`]): each column keeps only what varies,
//! as fixed-width bit fields read in O(1). Ids that count up by one, line
//! numbers that follow positions and a type from a handful take no bits or
//! two; offsets that grow by about a line's length take the bits of the
//! difference; times that fall on whole seconds are stored in seconds. On
//! the benchmark logs an entry packs to about 8 bytes (80 MB rather than
//! 400 for ten million events). Chunks never move once packed, so the
//! index grows without the copy (and the double footprint) of one vector
//! doubling.
//!
//! Whatever does not pack is kept beside the columns, by position: the
//! status of records that are invalid or made the reducer fail (few), a
//! time that does not print back from its integer exactly as it was
//! written, and a place of the other kind than the log's.
//! [`Index::get`] rebuilds the full [`Entry`].

use super::snapshot::codec::{Corrupt, Reader, put_bytes, put_varint, put_zigzag};
use super::{Entry, Status};
use crate::calendar::{civil_from_days, days_from_civil};
use crate::log::Loc;
use crate::value::Text;
use std::collections::HashMap;

const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;

/// `time` column: no time.
const TIME_NONE: i64 = i64::MIN;
/// `time` column: look in `odd_times`.
const TIME_ODD: i64 = i64::MIN + 1;
/// `stream` column: no stream.
const NO_STREAM: u32 = u32::MAX;

/// The chunk being filled: plain columns.
#[derive(Default)]
struct Open {
    id: Vec<i64>,
    ty: Vec<u32>,
    stream: Vec<u32>,
    time: Vec<i64>,
    /// Byte offset of a line, or the rowid of a row.
    pos: Vec<u64>,
    /// Length of a line (0 for a row).
    len: Vec<u32>,
    /// Line number minus (position + 1): 0 while every line holds a record.
    line: Vec<u32>,
}

impl Open {
    fn with_capacity(n: usize) -> Open {
        Open {
            id: Vec::with_capacity(n),
            ty: Vec::with_capacity(n),
            stream: Vec::with_capacity(n),
            time: Vec::with_capacity(n),
            pos: Vec::with_capacity(n),
            len: Vec::with_capacity(n),
            line: Vec::with_capacity(n),
        }
    }
}

/// One column of a full chunk, packed: the value at `i` is
/// `base + step * i + scale * field(i)`, where the fields are `width` bits
/// each. `step` follows a column that grows steadily (ids, offsets, times),
/// `scale` one whose values share a factor (times on whole seconds), and
/// `width` is what is left. Values are taken as i64 bit patterns. The
/// ranges are found in i128; the sums are then done modulo 2^64, which is
/// exact, as every value and every field fits 64 bits.
struct Col {
    base: u64,
    step: u64,
    scale: u64,
    width: u32,
    words: Box<[u64]>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Col {
    /// Pack `values` (at most a chunk's worth); `grows`: try a step (for
    /// columns that tend to grow steadily: ids, times, offsets, streams).
    fn pack(values: &[i64], grows: bool) -> Col {
        let n = values.len();
        let at = |i: usize| i128::from(values[i]);
        // Without a step the spread always fits 64 bits; a steady step can
        // take it down to a few (or none).
        let steady = match n {
            0 | 1 => 0,
            _ if !grows => 0,
            _ => (at(n - 1) - at(0)) / (n as i128 - 1),
        };
        // The range of the values, and of what the step leaves.
        let lo = values.iter().copied().min().unwrap_or(0);
        let hi = values.iter().copied().max().unwrap_or(0);
        let plain = (i128::from(lo), i128::from(hi));
        let sloped = (steady != 0 && n > 0).then(|| {
            let (mut lo, mut hi, mut off) = (i128::MAX, i128::MIN, 0i128);
            for &v in values {
                let r = i128::from(v) - off;
                (lo, hi) = (lo.min(r), hi.max(r));
                off += steady;
            }
            (lo, hi)
        });
        let spread = |(lo, hi): (i128, i128)| u64::try_from(hi - lo).ok();
        // What is left at `i` over `base` with `step`, modulo 2^64 (exact
        // where the spread fits 64 bits).
        let rest_with = |step: u64, base: u64, i: usize| {
            (values[i] as u64)
                .wrapping_sub(step.wrapping_mul(i as u64))
                .wrapping_sub(base)
        };
        // The common factor of what is left at the first `m` values.
        let factor_of = |step: u64, base: u64, m: usize| {
            (0..m)
                .fold(0, |g, i| {
                    if g == 1 {
                        1
                    } else {
                        gcd(g, rest_with(step, base, i))
                    }
                })
                .max(1)
        };
        // From the first values (checked on all while packing).
        let factor = |step: u64, base: u64| factor_of(step, base, n.min(64));
        // The layout that leaves the narrower fields: plain, or with the
        // step. The plain spread of i64 values always fits 64 bits.
        let plain = (0u64, plain.0 as u64, spread(plain).unwrap_or(u64::MAX));
        let plain = (plain.0, plain.1, plain.2, factor(plain.0, plain.1));
        let sloped = sloped
            .and_then(|s| Some((steady as u64, s.0 as u64, spread(s)?)))
            .map(|(step, base, spread)| (step, base, spread, factor(step, base)));
        let (step, base, spread, scale) = match sloped {
            Some(s) if s.2 / s.3 < plain.2 / plain.3 => s,
            _ => plain,
        };
        let rest = |i: usize| rest_with(step, base, i);
        // Packed with that factor if every value has it, else without.
        let pack = |scale: u64| {
            let width = u64::BITS - (spread / scale).leading_zeros();
            let w = width as usize;
            let mut words = vec![0u64; (n * w).div_ceil(64)].into_boxed_slice();
            if w > 0 {
                for i in 0..n {
                    let field = match scale {
                        1 => rest(i),
                        _ if rest(i) % scale != 0 => return None,
                        _ => rest(i) / scale,
                    };
                    let (k, off) = (i * w / 64, i * w % 64);
                    words[k] |= field << off;
                    if off + w > 64 {
                        words[k + 1] |= field >> (64 - off);
                    }
                }
            }
            Some((scale, width, words))
        };
        // Most often the factor of the first values is that of all; when it
        // is not, find that of all.
        let whole = || factor_of(step, base, n);
        let (scale, width, words) = match scale {
            0 | 1 => None,
            s => pack(s),
        }
        .or_else(|| pack(whole()))
        .expect("packing with the factor of all values succeeds");
        Col {
            base,
            step,
            scale,
            width,
            words,
        }
    }

    #[inline]
    fn get(&self, i: usize) -> i64 {
        let field = match self.width {
            0 => 0,
            w => {
                let (bit, w) = (i * w as usize, w as usize);
                let (k, off) = (bit / 64, bit % 64);
                let mut f = self.words[k] >> off;
                if off + w > 64 {
                    f |= self.words[k + 1] << (64 - off);
                }
                if w < 64 { f & ((1u64 << w) - 1) } else { f }
            }
        };
        self.base
            .wrapping_add(self.step.wrapping_mul(i as u64))
            .wrapping_add(self.scale.wrapping_mul(field)) as i64
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Col>() + self.words.len() * 8
    }

    /// Append the column as it is (for a snapshot).
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, self.base);
        put_varint(out, self.step);
        put_varint(out, self.scale);
        out.push(self.width as u8);
        for w in self.words.iter() {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Read a column of `n` values written by [`Col::put`]: any bytes give
    /// a column that reads without fault (its words are exactly what its
    /// width needs), if not the values written.
    fn read(r: &mut Reader<'_>, n: usize) -> Result<Col, Corrupt> {
        let (base, step, scale) = (r.varint()?, r.varint()?, r.varint()?);
        let width = u32::from(r.u8()?);
        if width > 64 {
            return Err(Corrupt::new("bad column width"));
        }
        let bytes = r.take((n * width as usize).div_ceil(64) * 8)?;
        let words = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        Ok(Col {
            base,
            step,
            scale,
            width,
            words,
        })
    }
}

/// A full chunk, packed.
struct Packed {
    id: Col,
    ty: Col,
    stream: Col,
    time: Col,
    pos: Col,
    len: Col,
    line: Col,
}

impl Packed {
    /// The first `m` entries of `o`, packed.
    fn of(o: &Open, m: usize) -> Packed {
        let wide =
            |v: &[u32], grows| Col::pack(&v[..m].iter().map(|&x| i64::from(x)).collect::<Vec<_>>(), grows);
        Packed {
            id: Col::pack(&o.id[..m], true),
            ty: wide(&o.ty, false),
            // Numbered as first seen: in a log where new streams keep
            // starting, the numbers grow with the position.
            stream: wide(&o.stream, true),
            time: Col::pack(&o.time[..m], true),
            pos: Col::pack(&o.pos[..m].iter().map(|&x| x as i64).collect::<Vec<_>>(), true),
            len: wide(&o.len, false),
            line: wide(&o.line, false),
        }
    }

    fn cols(&self) -> [&Col; 7] {
        [
            &self.id,
            &self.ty,
            &self.stream,
            &self.time,
            &self.pos,
            &self.len,
            &self.line,
        ]
    }

    fn read(r: &mut Reader<'_>, n: usize) -> Result<Packed, Corrupt> {
        let mut col = || Col::read(r, n);
        Ok(Packed {
            id: col()?,
            ty: col()?,
            stream: col()?,
            time: col()?,
            pos: col()?,
            len: col()?,
            line: col()?,
        })
    }

    /// The first `n` values of each column, as a chunk being filled (with
    /// room for `capacity`).
    fn unpack(&self, n: usize, capacity: usize) -> Open {
        let mut o = Open::with_capacity(capacity);
        for j in 0..n {
            o.id.push(self.id.get(j));
            o.ty.push(self.ty.get(j) as u32);
            o.stream.push(self.stream.get(j) as u32);
            o.time.push(self.time.get(j));
            o.pos.push(self.pos.get(j) as u64);
            o.len.push(self.len.get(j) as u32);
            o.line.push(self.line.get(j) as u32);
        }
        o
    }

    fn bytes(&self) -> usize {
        self.cols().iter().map(|c| c.bytes()).sum()
    }
}

enum Chunk {
    Open(Open),
    Packed(Box<Packed>),
}

/// One entry's columns, as numbers.
struct Row {
    ty: u32,
    stream: u32,
    time: i64,
    pos: u64,
    len: u32,
    line: u32,
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Open(o) => o.id.len(),
            Chunk::Packed(_) => CHUNK,
        }
    }

    #[inline]
    fn id(&self, j: usize) -> i64 {
        match self {
            Chunk::Open(o) => o.id[j],
            Chunk::Packed(p) => p.id.get(j),
        }
    }

    fn row(&self, j: usize) -> Row {
        match self {
            Chunk::Open(o) => Row {
                ty: o.ty[j],
                stream: o.stream[j],
                time: o.time[j],
                pos: o.pos[j],
                len: o.len[j],
                line: o.line[j],
            },
            Chunk::Packed(p) => Row {
                ty: p.ty.get(j) as u32,
                stream: p.stream.get(j) as u32,
                time: p.time.get(j),
                pos: p.pos.get(j) as u64,
                len: p.len.get(j) as u32,
                line: p.line.get(j) as u32,
            },
        }
    }
}

/// How the log writes its times, learnt from the first one that parses:
/// `2026-01-05T09:00:00Z`, `2026-01-05 09:00:00.123`, ... Times in this
/// form are stored as nanoseconds since 1970.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TimeForm {
    sep: u8,
    digits: u8,
    suffix: Suffix,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suffix {
    None,
    Z,
    Utc,
}

impl Suffix {
    fn text(self) -> &'static str {
        match self {
            Suffix::None => "",
            Suffix::Z => "Z",
            Suffix::Utc => "+00:00",
        }
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |n, &c| n * 10 + i64::from(c - b'0')))
}

/// Read `YYYY-MM-DD?HH:MM:SS[.f…][Z|+00:00]` into nanoseconds and its form.
/// Anything else (and anything out of range) is None; the caller checks
/// that the result prints back to the same text.
fn parse_time(t: &str) -> Option<(i64, TimeForm)> {
    let b = t.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let sep = b[10];
    if sep != b'T' && sep != b' ' {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0i64;
    let mut n_digits = 0u8;
    if let Some(frac) = rest.strip_prefix(b".") {
        let k = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if k == 0 || k > 9 {
            return None;
        }
        nanos = digits(&frac[..k])? * 10i64.pow(9 - k as u32);
        n_digits = k as u8;
        rest = &frac[k..];
    }
    let suffix = match rest {
        b"" => Suffix::None,
        b"Z" => Suffix::Z,
        b"+00:00" => Suffix::Utc,
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    // i64 nanoseconds reach from 1677 to 2262.
    let ns = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    if ns <= TIME_ODD {
        return None;
    }
    Some((
        ns,
        TimeForm {
            sep,
            digits: n_digits,
            suffix,
        },
    ))
}

fn format_time(ns: i64, form: TimeForm, out: &mut String) {
    use std::fmt::Write;
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}{}{:02}:{:02}:{:02}",
        form.sep as char,
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if form.digits > 0 {
        let frac = nanos / 10i64.pow(9 - u32::from(form.digits));
        let _ = write!(out, ".{frac:0w$}", w = usize::from(form.digits));
    }
    out.push_str(form.suffix.text());
}

/// Every record's index entry, packed (see the module comment).
#[derive(Default)]
pub struct Index {
    len: usize,
    chunks: Vec<Chunk>,
    names: Vec<Text>,
    name_ids: HashMap<Text, u32>,
    /// Statuses other than `Ok`, by ascending position.
    statuses: Vec<(usize, Status)>,
    form: Option<TimeForm>,
    odd_times: HashMap<usize, Text>,
    /// Whether the log's places are rows (learnt from the first record).
    rows: Option<bool>,
    odd_locs: HashMap<usize, Loc>,
    /// Bytes the packed chunks take.
    packed_bytes: usize,
}

impl Index {
    /// Bytes an entry takes in the chunk being filled.
    const OPEN_ENTRY_BYTES: usize = 40;

    /// About the bytes `n` more entries will take: as much an entry as the
    /// packed chunks so far (16 before there are any), and a chunk being
    /// filled.
    pub fn room_for(&self, n: u64) -> usize {
        let each = match self.packed_bytes {
            0 => 16,
            b => b.div_ceil(self.len - self.len % CHUNK),
        };
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_mul(each)
            .saturating_add(CHUNK * Index::OPEN_ENTRY_BYTES)
    }

    /// Bytes the columns take.
    pub fn bytes(&self) -> usize {
        let open = match self.chunks.last() {
            Some(Chunk::Open(o)) => o.id.capacity() * Index::OPEN_ENTRY_BYTES,
            _ => 0,
        };
        self.packed_bytes + open
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = Index::default();
    }

    fn name_id(&mut self, s: &Text) -> u32 {
        if let Some(&n) = self.name_ids.get(s) {
            return n;
        }
        // u32::MAX is the "no stream" mark; a log with four billion
        // distinct names has other problems, but keep it correct.
        let n = u32::try_from(self.names.len())
            .unwrap_or(NO_STREAM - 1)
            .min(NO_STREAM - 1);
        if (n as usize) == self.names.len() {
            self.names.push(s.clone());
            self.name_ids.insert(s.clone(), n);
        }
        n
    }

    /// The time column's value for `t` at position `at`.
    fn pack_time(&mut self, at: usize, t: Option<&str>) -> i64 {
        let Some(t) = t else { return TIME_NONE };
        if let Some((ns, form)) = parse_time(t) {
            // Stored only if it prints back exactly: in the log's form (the
            // parse checked the date and the digits, so the form is all
            // that can differ).
            if *self.form.get_or_insert(form) == form {
                return ns;
            }
        }
        self.odd_times.insert(at, Text::from(t));
        TIME_ODD
    }

    /// Append an entry.
    #[cfg(test)]
    pub fn push(&mut self, e: &Entry) {
        self.push_parts(
            e.id,
            &e.ty,
            e.stream.as_ref(),
            e.time.as_deref(),
            e.loc,
            e.status.clone(),
        );
    }

    /// Append an entry given by its parts.
    pub fn push_parts(
        &mut self,
        id: i64,
        ty: &Text,
        stream: Option<&Text>,
        time: Option<&str>,
        loc: Loc,
        status: Status,
    ) {
        let ty = self.name_id(ty);
        let stream = stream.map(|s| self.name_id(s));
        self.push_ids(id, ty, stream, time, loc, status);
    }

    /// Add names to the table; returns the number of each, for
    /// [`Index::push_ids`].
    pub fn add_names(&mut self, names: &[Text]) -> Vec<u32> {
        names.iter().map(|s| self.name_id(s)).collect()
    }

    /// Append an entry whose type and stream are numbers from
    /// [`Index::add_names`].
    pub fn push_ids(
        &mut self,
        id: i64,
        ty: u32,
        stream: Option<u32>,
        time: Option<&str>,
        loc: Loc,
        status: Status,
    ) {
        let at = self.len;
        let stream = stream.unwrap_or(NO_STREAM);
        let time = self.pack_time(at, time);
        let rows = *self.rows.get_or_insert(matches!(loc, Loc::Row { .. }));
        let (pos, len, line) = match loc {
            Loc::Row { rowid } if rows => (rowid as u64, 0, 0),
            Loc::Line { offset, len, line } if !rows => {
                match line
                    .checked_sub(at as u64 + 1)
                    .and_then(|d| u32::try_from(d).ok())
                {
                    Some(d) => (offset, len, d),
                    None => {
                        self.odd_locs.insert(at, loc);
                        (0, 0, 0)
                    }
                }
            }
            _ => {
                self.odd_locs.insert(at, loc);
                (0, 0, 0)
            }
        };
        if status != Status::Ok {
            self.statuses.push((at, status));
        }
        let c = match self.chunks.last_mut() {
            Some(Chunk::Open(o)) => o,
            _ => {
                // The first chunk grows as needed (most logs are small); the
                // next ones are made whole, so growing leaves no freed
                // buffers behind.
                let open = match self.chunks.is_empty() {
                    true => Open::default(),
                    false => Open::with_capacity(CHUNK),
                };
                self.chunks.push(Chunk::Open(open));
                match self.chunks.last_mut() {
                    Some(Chunk::Open(o)) => o,
                    _ => unreachable!("an open chunk was just pushed"),
                }
            }
        };
        c.id.push(id);
        c.ty.push(ty);
        c.stream.push(stream);
        c.time.push(time);
        c.pos.push(pos);
        c.len.push(len);
        c.line.push(line);
        if c.id.len() == CHUNK {
            let packed = Packed::of(c, CHUNK);
            self.packed_bytes += packed.bytes();
            if let Some(last) = self.chunks.last_mut() {
                *last = Chunk::Packed(Box::new(packed));
            }
        }
        self.len += 1;
    }

    fn at(&self, i: usize) -> Option<(&Chunk, usize)> {
        (i < self.len).then(|| (&self.chunks[i >> CHUNK_BITS], i & (CHUNK - 1)))
    }

    fn row(&self, i: usize) -> Option<Row> {
        self.at(i).map(|(c, j)| c.row(j))
    }

    /// The id of the record at `i`.
    pub fn id(&self, i: usize) -> Option<i64> {
        self.at(i).map(|(c, j)| c.id(j))
    }

    /// Where the record at `i` lives in its source.
    pub fn loc(&self, i: usize) -> Option<Loc> {
        let r = self.row(i)?;
        if let Some(loc) = self.odd_locs.get(&i) {
            return Some(*loc);
        }
        Some(if self.rows == Some(true) {
            Loc::Row { rowid: r.pos as i64 }
        } else {
            Loc::Line {
                offset: r.pos,
                len: r.len,
                line: i as u64 + 1 + u64::from(r.line),
            }
        })
    }

    /// The status of the record at `i` (`Ok` past the end).
    pub fn status(&self, i: usize) -> &Status {
        static OK: Status = Status::Ok;
        match self.statuses.binary_search_by_key(&i, |(at, _)| *at) {
            Ok(k) => &self.statuses[k].1,
            Err(_) => &OK,
        }
    }

    /// The type and stream names, numbered by position.
    pub fn names(&self) -> &[Text] {
        &self.names
    }

    /// The records that are invalid or made the reducer fail, by position.
    pub fn problems(&self) -> &[(usize, Status)] {
        &self.statuses
    }

    /// The type of the record at `i`.
    pub fn ty(&self, i: usize) -> Option<&Text> {
        self.row(i).and_then(|r| self.names.get(r.ty as usize))
    }

    /// The stream of the record at `i`.
    pub fn stream(&self, i: usize) -> Option<&Text> {
        self.names.get(self.row(i)?.stream as usize)
    }

    /// The time of the record at `i`, as written in the log.
    pub fn time(&self, i: usize) -> Option<Text> {
        match self.row(i)?.time {
            TIME_NONE => None,
            TIME_ODD => self.odd_times.get(&i).cloned(),
            ns => {
                let mut s = String::with_capacity(32);
                format_time(ns, self.form?, &mut s);
                Some(Text::from(s))
            }
        }
    }

    /// The whole entry at `i`.
    pub fn get(&self, i: usize) -> Option<Entry> {
        Some(Entry {
            id: self.id(i)?,
            ty: self.ty(i)?.clone(),
            stream: self.stream(i).cloned(),
            time: self.time(i),
            loc: self.loc(i)?,
            status: self.status(i).clone(),
        })
    }

    /// The ids in order.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.chunks.iter().flat_map(|c| (0..c.len()).map(|j| c.id(j)))
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// Binary search on ids (valid only while they ascend).
    pub fn search_id(&self, id: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (c, j) = (&self.chunks[mid >> CHUNK_BITS], mid & (CHUNK - 1));
            match c.id(j).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }
}

/// What an index keeps beside its columns, read from a snapshot (see
/// [`Index::put_side`]).
pub struct Side {
    form: Option<TimeForm>,
    rows: Option<bool>,
    odd_times: HashMap<usize, Text>,
    odd_locs: HashMap<usize, Loc>,
    statuses: Vec<(usize, Status)>,
}

/// A place, as [`Index::put_side`] writes it.
fn put_loc(out: &mut Vec<u8>, loc: &Loc) {
    match *loc {
        Loc::Line { offset, len, line } => {
            out.push(0);
            put_varint(out, offset);
            put_varint(out, u64::from(len));
            put_varint(out, line);
        }
        Loc::Row { rowid } => {
            out.push(1);
            put_zigzag(out, rowid);
        }
    }
}

fn get_loc(r: &mut Reader<'_>) -> Result<Loc, Corrupt> {
    Ok(match r.u8()? {
        0 => Loc::Line {
            offset: r.varint()?,
            len: u32::try_from(r.varint()?).map_err(|_| Corrupt::new("bad line length"))?,
            line: r.varint()?,
        },
        1 => Loc::Row { rowid: r.zigzag()? },
        _ => return Err(Corrupt::new("bad place")),
    })
}

/// Positions below `upto` of `map`, in order.
fn sorted_below<T>(map: &HashMap<usize, T>, upto: usize) -> Vec<(usize, &T)> {
    let mut out: Vec<(usize, &T)> = map
        .iter()
        .filter(|(at, _)| **at < upto)
        .map(|(at, v)| (*at, v))
        .collect();
    out.sort_unstable_by_key(|(at, _)| *at);
    out
}

/// The first `m` entries of a chunk as a chunk being filled.
fn open_of(c: &Chunk, m: usize) -> Open {
    let mut o = Open::with_capacity(m);
    for j in 0..m {
        let r = c.row(j);
        o.id.push(c.id(j));
        o.ty.push(r.ty);
        o.stream.push(r.stream);
        o.time.push(r.time);
        o.pos.push(r.pos);
        o.len.push(r.len);
        o.line.push(r.line);
    }
    o
}

/// The snapshot's form of an index: its columns as they are packed, a
/// chunk at a time, and what is kept beside them. Reading it back is a
/// copy of the columns, not the parsing and packing of every entry again
/// (most of the time restoring a big log took).
impl Index {
    /// How many chunks hold the first `upto` entries.
    pub fn chunks_below(upto: usize) -> usize {
        upto.div_ceil(CHUNK)
    }

    /// How many of the first `upto` entries chunk `k` holds.
    pub fn entries_in_chunk(upto: usize, k: usize) -> usize {
        upto.saturating_sub(k.saturating_mul(CHUNK)).min(CHUNK)
    }

    /// Append chunk `k`, cut at the first `upto` entries of the index;
    /// returns how many entries it holds. A full packed chunk is copied as
    /// it is; a part of one, or the chunk being filled, is packed first.
    pub fn put_chunk(&self, k: usize, upto: usize, out: &mut Vec<u8>) -> usize {
        let m = Index::entries_in_chunk(upto.min(self.len), k);
        let Some(chunk) = self.chunks.get(k).filter(|_| m > 0) else {
            return 0;
        };
        let fresh;
        let packed = match chunk {
            Chunk::Packed(p) if m == CHUNK => p.as_ref(),
            Chunk::Open(o) => {
                fresh = Packed::of(o, m);
                &fresh
            }
            Chunk::Packed(_) => {
                fresh = Packed::of(&open_of(chunk, m), m);
                &fresh
            }
        };
        for col in packed.cols() {
            col.put(out);
        }
        m
    }

    /// Append what is kept beside the columns, for the first `upto`
    /// entries: the time form, the kind of place, times and places that
    /// did not pack, and statuses (written by `put_status`).
    pub fn put_side(
        &self,
        upto: usize,
        out: &mut Vec<u8>,
        put_status: &mut dyn FnMut(&mut Vec<u8>, &Status),
    ) {
        match self.form {
            None => out.push(0),
            Some(f) => {
                out.push(1);
                out.push(f.sep);
                out.push(f.digits);
                out.push(f.suffix as u8);
            }
        }
        out.push(match self.rows {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        let times = sorted_below(&self.odd_times, upto);
        put_varint(out, times.len() as u64);
        for (at, t) in times {
            put_varint(out, at as u64);
            put_bytes(out, t.as_bytes());
        }
        let locs = sorted_below(&self.odd_locs, upto);
        put_varint(out, locs.len() as u64);
        for (at, loc) in locs {
            put_varint(out, at as u64);
            put_loc(out, loc);
        }
        let statuses: Vec<_> = self.statuses.iter().take_while(|(at, _)| *at < upto).collect();
        put_varint(out, statuses.len() as u64);
        for (at, status) in statuses {
            put_varint(out, *at as u64);
            put_status(out, status);
        }
    }

    /// Read what [`Index::put_side`] wrote.
    pub fn read_side(
        r: &mut Reader<'_>,
        get_status: &mut dyn FnMut(&mut Reader<'_>) -> Result<Status, Corrupt>,
    ) -> Result<Side, Corrupt> {
        let form = match r.u8()? {
            0 => None,
            1 => {
                let (sep, digits) = (r.u8()?, r.u8()?);
                let suffix = match r.u8()? {
                    0 => Suffix::None,
                    1 => Suffix::Z,
                    2 => Suffix::Utc,
                    _ => return Err(Corrupt::new("bad time form")),
                };
                if !matches!(sep, b'T' | b' ') || digits > 9 {
                    return Err(Corrupt::new("bad time form"));
                }
                Some(TimeForm { sep, digits, suffix })
            }
            _ => return Err(Corrupt::new("bad time form")),
        };
        let rows = match r.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return Err(Corrupt::new("bad kind of place")),
        };
        let at = |r: &mut Reader<'_>| usize::try_from(r.varint()?).map_err(|_| Corrupt::new("bad position"));
        let mut odd_times = HashMap::new();
        for _ in 0..r.len(2)? {
            let i = at(r)?;
            odd_times.insert(i, Text::from(r.str()?));
        }
        let mut odd_locs = HashMap::new();
        for _ in 0..r.len(2)? {
            let i = at(r)?;
            odd_locs.insert(i, get_loc(r)?);
        }
        let mut statuses: Vec<(usize, Status)> = Vec::new();
        for _ in 0..r.len(2)? {
            let i = at(r)?;
            if statuses.last().is_some_and(|(last, _)| *last >= i) {
                return Err(Corrupt::new("statuses out of order"));
            }
            statuses.push((i, get_status(r)?));
        }
        Ok(Side {
            form,
            rows,
            odd_times,
            odd_locs,
            statuses,
        })
    }

    /// Read one chunk of `n` entries written by [`Index::put_chunk`].
    pub fn read_chunk(r: &mut Reader<'_>, n: usize) -> Result<ChunkRead, Corrupt> {
        if n == 0 || n > CHUNK {
            return Err(Corrupt::new("bad chunk size"));
        }
        Ok(ChunkRead(n, Packed::read(r, n)?))
    }

    /// An index of these names, chunks and side tables, checked to hold
    /// together: every chunk full but the last, names and statuses in
    /// range (what is out of it could only come from a damaged file).
    pub fn from_parts(names: Vec<Text>, chunks: Vec<ChunkRead>, side: Side) -> Result<Index, Corrupt> {
        let mut index = Index::default();
        index.add_names(&names);
        if index.names.len() != names.len() {
            return Err(Corrupt::new("a name twice"));
        }
        let count = chunks.len();
        let names = index.names.len() as i64;
        for (k, ChunkRead(n, packed)) in chunks.into_iter().enumerate() {
            if n != CHUNK && k + 1 != count {
                return Err(Corrupt::new("a chunk before the last is not full"));
            }
            for j in 0..n {
                let (ty, stream) = (packed.ty.get(j), packed.stream.get(j));
                if !(0..names).contains(&ty)
                    || !((0..names).contains(&stream) || stream == i64::from(NO_STREAM))
                {
                    return Err(Corrupt::new("a name out of range"));
                }
            }
            index.len += n;
            let chunk = match n {
                CHUNK => {
                    index.packed_bytes += packed.bytes();
                    Chunk::Packed(Box::new(packed))
                }
                // Whole, as `push_ids` makes them, after the first.
                _ => Chunk::Open(packed.unpack(n, if k == 0 { n } else { CHUNK })),
            };
            index.chunks.push(chunk);
        }
        if side.statuses.last().is_some_and(|(at, _)| *at >= index.len) {
            return Err(Corrupt::new("a status past the end"));
        }
        index.form = side.form;
        index.rows = side.rows;
        index.odd_times = side.odd_times;
        index.odd_locs = side.odd_locs;
        index.statuses = side.statuses;
        Ok(index)
    }
}

/// A chunk read from a snapshot: its entries and columns.
pub struct ChunkRead(usize, Packed);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Invalid;
    use proptest::prelude::*;

    #[test]
    fn times_round_trip_or_are_kept_as_written() {
        let times = [
            "2026-01-05T09:00:00Z",
            "2026-01-05T09:00:01Z",
            "1969-12-31T23:59:59Z",
            "2026-02-29T00:00:00Z", // no such day: kept as text
            "2024-02-29T00:00:00Z",
            "2026-01-05 09:00:00",
            "2026-01-05T09:00:00.123Z",
            "2026-01-05T09:00:00+00:00",
            "2026-01-05T09:00:00+02:00",
            "yesterday",
            "",
            "2400-01-01T00:00:00Z", // past i64 nanoseconds
            "0000-01-01T00:00:00Z",
            "2026-1-5T09:00:00Z",
        ];
        let mut ix = Index::default();
        let ty: Text = Text::from("T");
        for (n, t) in times.iter().enumerate() {
            ix.push_parts(
                n as i64,
                &ty,
                None,
                Some(t),
                Loc::Row { rowid: n as i64 },
                Status::Ok,
            );
        }
        ix.push_parts(99, &ty, None, None, Loc::Row { rowid: 99 }, Status::Ok);
        for (n, t) in times.iter().enumerate() {
            assert_eq!(ix.time(n).as_deref(), Some(*t));
        }
        assert_eq!(ix.time(times.len()), None);
        // Only the odd ones are kept as text.
        assert_eq!(ix.odd_times.len(), 10, "{:?}", ix.odd_times);
    }

    #[test]
    fn dates_convert_both_ways() {
        for days in -800_000..800_000i64 {
            if days % 997 == 0 {
                let (y, m, d) = civil_from_days(days);
                assert_eq!(days_from_civil(y, m, d), days);
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
    }

    fn entry_strategy() -> impl Strategy<Value = Entry> {
        let time = prop_oneof![
            Just(None),
            (0i64..4_000_000_000, 0u8..4).prop_map(|(s, d)| {
                let form = TimeForm {
                    sep: b'T',
                    digits: [0, 3, 6, 9][d as usize],
                    suffix: Suffix::Z,
                };
                let mut out = String::new();
                format_time(s * 1_000_000_007 % 4_000_000_000_000_000_000, form, &mut out);
                Some(Text::from(out))
            }),
            "[ -~]{0,24}".prop_map(|s| Some(Text::from(s))),
        ];
        let loc = prop_oneof![
            (0u64..1 << 40, 0u32..1000, 0u64..1 << 34).prop_map(|(offset, len, line)| Loc::Line {
                offset,
                len,
                line
            }),
            any::<i64>().prop_map(|rowid| Loc::Row { rowid }),
        ];
        let status = prop_oneof![
            4 => Just(Status::Ok),
            1 => "[a-z ]{0,12}".prop_map(|m| Status::ReducerError(Text::from(m))),
            1 => (any::<i64>(), "[a-z]{1,8}").prop_map(|(id, r)| Status::Invalid(Box::new(Invalid {
                id,
                place: "x.jsonl:1".into(),
                reason: r,
            }))),
        ];
        (
            any::<i64>(),
            "[A-Za-z]{0,6}",
            proptest::option::of("[a-z0-9-]{0,6}"),
            time,
            loc,
            status,
        )
            .prop_map(|(id, ty, stream, time, loc, status)| Entry {
                id,
                ty: Text::from(ty),
                stream: stream.map(Text::from),
                time,
                loc,
                status,
            })
    }

    proptest! {
        /// A time the parser takes prints back exactly as written (so it
        /// can be stored as an integer), and every real date is taken.
        #[test]
        fn parsed_times_print_back(
            y in 1678i64..2262, m in 1i64..13, d in 1i64..32, h in 0i64..24, mi in 0i64..60, s in 0i64..60,
            frac in proptest::option::of("[0-9]{1,9}"), sep in prop_oneof![Just('T'), Just(' ')],
            suffix in prop_oneof![Just(""), Just("Z"), Just("+00:00")],
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let t = format!("{y:04}-{m:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{suffix}");
            match parse_time(&t) {
                Some((ns, form)) => {
                    let mut back = String::new();
                    format_time(ns, form, &mut back);
                    prop_assert_eq!(back, t);
                }
                None => prop_assert!(d > days_in_month(y, m), "{} was refused", t),
            }
        }

        #[test]
        fn entries_come_back_as_pushed(entries in proptest::collection::vec(entry_strategy(), 0..300)) {
            let mut ix = Index::default();
            for e in &entries {
                ix.push(e);
            }
            prop_assert_eq!(ix.len(), entries.len());
            let back: Vec<Entry> = ix.iter().collect();
            prop_assert_eq!(&back, &entries);
            let ids: Vec<i64> = ix.ids().collect();
            prop_assert_eq!(ids, entries.iter().map(|e| e.id).collect::<Vec<_>>());
        }
    }

    fn col_strategy() -> impl Strategy<Value = Vec<i64>> {
        prop_oneof![
            // Anything at all.
            proptest::collection::vec(any::<i64>(), 0..300),
            // Near the ends of i64, where a step would overflow.
            proptest::collection::vec(prop_oneof![Just(i64::MIN), Just(i64::MAX), -2i64..2], 0..50),
            // Steady growth with noise, scaled: ids, offsets, times.
            (
                any::<i64>(),
                -1_000_000_000i64..1_000_000_000,
                0i64..1000,
                1i64..1_000_000_000,
                1usize..400
            )
                .prop_flat_map(|(start, step, noise, scale, n)| {
                    proptest::collection::vec(0..=noise, n).prop_map(move |ns| {
                        ns.iter()
                            .enumerate()
                            .map(|(i, r)| start.wrapping_add((step * i as i64 + r).wrapping_mul(scale)))
                            .collect()
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn a_packed_column_gives_back_every_value(values in col_strategy()) {
            for grows in [false, true] {
                let col = Col::pack(&values, grows);
                for (i, v) in values.iter().enumerate() {
                    prop_assert_eq!(col.get(i), *v, "at {} ({})", i, grows);
                }
            }
        }
    }

    #[test]
    fn steady_columns_pack_to_few_bits() {
        // Ids counting up (no bits); times in nanoseconds, a second apart
        // give or take two seconds (scale 10^9 after the step: 0..=2, two
        // bits); offsets about 180 apart give or take 60 (six bits).
        let ids: Vec<i64> = (1000..1000 + CHUNK as i64).collect();
        let times: Vec<i64> = (0..CHUNK as i64)
            .map(|i| 1_767_000_000_000_000_000 + (i + i % 3) * 1_000_000_000)
            .collect();
        let offsets: Vec<i64> = (0..CHUNK as i64).map(|i| i * 180 + (i * 7919) % 60).collect();
        let widths = [&ids, &times, &offsets].map(|v| Col::pack(v, true).width);
        assert_eq!(widths, [0, 2, 6]);
    }

    /// More than a chunk of entries, with every kind of field, comes back
    /// as pushed once packed.
    #[test]
    fn packed_chunks_give_back_every_entry() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let entries = proptest::collection::vec(entry_strategy(), CHUNK + 100)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut ix = Index::default();
        for e in &entries {
            ix.push(e);
        }
        assert!(matches!(ix.chunks[0], Chunk::Packed(_)));
        assert!(matches!(ix.chunks[1], Chunk::Open(_)));
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(ix.get(i).as_ref(), Some(e), "entry {i}");
        }
    }

    /// `n` entries with a bit of everything: ids that jump now and then,
    /// three types, streams on some, regular times and odd ones, lines
    /// with gaps and a row among them, reducer errors.
    fn mixed_entries(n: usize) -> Vec<Entry> {
        let names: Vec<Text> = ["Credited", "LoggedIn", "Deleted"].map(Text::from).to_vec();
        let stream = Text::from("user-1");
        let mut offset = 0;
        (0..n)
            .map(|i| {
                let len = 40 + (i % 13) as u32;
                let loc = match i % 9_001 {
                    500 => Loc::Row { rowid: i as i64 },
                    _ => Loc::Line {
                        offset,
                        len,
                        line: (i + 1 + i / 20_000) as u64,
                    },
                };
                offset += u64::from(len) + 1;
                let time = match i % 7_777 {
                    3 => Some(Text::from("yesterday")),
                    4 => None,
                    _ => Some(Text::from(format!(
                        "2026-01-05T{:02}:{:02}:{:02}Z",
                        i / 3600 % 24,
                        i / 60 % 60,
                        i % 60
                    ))),
                };
                Entry {
                    id: (i + 3 * (i / 10_000)) as i64 + 1,
                    ty: names[i % 3].clone(),
                    stream: (i % 4 == 0).then(|| stream.clone()),
                    time,
                    loc,
                    status: match i % 6_001 {
                        7 => Status::ReducerError(Text::from(format!("failed at {i}"))),
                        _ => Status::Ok,
                    },
                }
            })
            .collect()
    }

    /// The index `ix` cut at `upto` entries, written as a snapshot writes
    /// it and read back.
    fn written_and_read(ix: &Index, upto: usize) -> Index {
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for k in 0..Index::chunks_below(upto) {
            sizes.push(ix.put_chunk(k, upto, &mut out));
        }
        ix.put_side(upto, &mut out, &mut |out, status| match status {
            Status::ReducerError(m) => put_bytes(out, m.as_bytes()),
            _ => unreachable!("only reducer errors here"),
        });
        let mut r = Reader::new(&out);
        let chunks = sizes
            .iter()
            .map(|&n| Index::read_chunk(&mut r, n).unwrap())
            .collect();
        let side = Index::read_side(&mut r, &mut |r| Ok(Status::ReducerError(Text::from(r.str()?)))).unwrap();
        assert_eq!(r.remaining(), 0);
        Index::from_parts(ix.names().to_vec(), chunks, side).unwrap()
    }

    #[test]
    fn an_index_written_by_chunks_reads_back_whole_or_cut_and_grows_on() {
        let n = 2 * CHUNK + CHUNK / 2;
        let entries = mixed_entries(n + CHUNK);
        let mut ix = Index::default();
        for e in &entries[..n] {
            ix.push(e);
        }
        assert!(!ix.odd_times.is_empty() && !ix.odd_locs.is_empty() && !ix.statuses.is_empty());
        // Cut in the chunk being filled, at the end of a packed chunk,
        // inside one, in the first, nowhere.
        for upto in [n, n - 1, 2 * CHUNK, CHUNK + 100, 5, 0] {
            let mut back = written_and_read(&ix, upto);
            assert_eq!(back.len(), upto);
            assert!(back.iter().eq(entries[..upto].iter().cloned()), "cut at {upto}");
            assert_eq!(back.problems(), &ix.problems()[..back.problems().len()]);
            // Appending after a restore packs chunks as they fill.
            for e in &entries[upto..upto + CHUNK] {
                back.push(e);
            }
            assert!(
                back.iter().eq(entries[..upto + CHUNK].iter().cloned()),
                "grown from {upto}"
            );
            assert_eq!(back.search_id(entries[upto + 10].id), Ok(upto + 10));
        }
    }

    #[test]
    fn chunks_fill_and_search_finds_every_id() {
        let mut ix = Index::default();
        let ty: Text = Text::from("T");
        let n = CHUNK * 2 + 17;
        for i in 0..n {
            let loc = Loc::Line {
                offset: i as u64 * 10,
                len: 9,
                line: i as u64 + 1,
            };
            ix.push_parts(i as i64 * 2, &ty, None, None, loc, Status::Ok);
        }
        assert_eq!(ix.chunks.len(), 3);
        for i in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, n - 1] {
            assert_eq!(ix.search_id(i as i64 * 2), Ok(i));
            assert_eq!(ix.search_id(i as i64 * 2 + 1), Err(i + 1));
            assert_eq!(
                ix.loc(i),
                Some(Loc::Line {
                    offset: i as u64 * 10,
                    len: 9,
                    line: i as u64 + 1
                })
            );
        }
        assert_eq!(ix.search_id(-1), Err(0));
        assert!(ix.odd_locs.is_empty());
        // Ids two apart, offsets ten apart, lengths and lines the same:
        // nothing varies but the type's one name, so the packed chunks hold
        // only their headers.
        assert!(
            ix.bytes() < CHUNK * Index::OPEN_ENTRY_BYTES + 4096,
            "{} bytes",
            ix.bytes()
        );
    }
}
