//! The event index: what the image keeps about every record, packed.
//!
//! A log of ten million events has ten million index entries, so each one
//! must be small. An entry is stored as columns in chunks of 2^16: the id,
//! the type and stream as numbers into a table of names (a log has few
//! distinct ones), the time as an integer, and where the body is (byte
//! offset, length and line of a JSONL line, or a SQLite rowid). That is 40
//! bytes an entry, where a struct of `Arc`s and enums took about 160 with
//! its time string. Chunks never move once full, so the index grows without
//! the copy (and the double footprint) of one vector doubling.
//!
//! Whatever does not pack is kept beside the columns, by position: the
//! status of records that are invalid or made the reducer fail (few), a
//! time that does not print back from its integer exactly as it was
//! written, and a place of the other kind than the log's.
//! [`Index::get`] rebuilds the full [`Entry`].

use super::{Entry, Status};
use crate::calendar::{civil_from_days, days_from_civil};
use crate::log::Loc;
use std::collections::HashMap;
use std::sync::Arc;

const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;

/// `time` column: no time.
const TIME_NONE: i64 = i64::MIN;
/// `time` column: look in `odd_times`.
const TIME_ODD: i64 = i64::MIN + 1;
/// `stream` column: no stream.
const NO_STREAM: u32 = u32::MAX;

#[derive(Default)]
struct Chunk {
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

impl Chunk {
    fn with_capacity(n: usize) -> Chunk {
        Chunk {
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
    names: Vec<Arc<str>>,
    name_ids: HashMap<Arc<str>, u32>,
    /// Statuses other than `Ok`, by ascending position.
    statuses: Vec<(usize, Status)>,
    form: Option<TimeForm>,
    odd_times: HashMap<usize, Arc<str>>,
    /// Whether the log's places are rows (learnt from the first record).
    rows: Option<bool>,
    odd_locs: HashMap<usize, Loc>,
}

impl Index {
    /// Bytes an entry takes in the columns.
    pub const ENTRY_BYTES: usize = 40;

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = Index::default();
    }

    fn name_id(&mut self, s: &Arc<str>) -> u32 {
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
        self.odd_times.insert(at, Arc::from(t));
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
        ty: &Arc<str>,
        stream: Option<&Arc<str>>,
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
    pub fn add_names(&mut self, names: &[Arc<str>]) -> Vec<u32> {
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
        if self.chunks.last().is_none_or(|c| c.id.len() == CHUNK) {
            // The first chunk grows as needed (most logs are small); the
            // next ones are made whole, so growing leaves no freed buffers
            // behind.
            let chunk = if self.chunks.is_empty() {
                Chunk::default()
            } else {
                Chunk::with_capacity(CHUNK)
            };
            self.chunks.push(chunk);
        }
        let c = self.chunks.last_mut().expect("a chunk was just ensured");
        c.id.push(id);
        c.ty.push(ty);
        c.stream.push(stream);
        c.time.push(time);
        c.pos.push(pos);
        c.len.push(len);
        c.line.push(line);
        self.len += 1;
    }

    fn at(&self, i: usize) -> Option<(&Chunk, usize)> {
        (i < self.len).then(|| (&self.chunks[i >> CHUNK_BITS], i & (CHUNK - 1)))
    }

    /// The id of the record at `i`.
    pub fn id(&self, i: usize) -> Option<i64> {
        self.at(i).map(|(c, j)| c.id[j])
    }

    /// Where the record at `i` lives in its source.
    pub fn loc(&self, i: usize) -> Option<Loc> {
        let (c, j) = self.at(i)?;
        if let Some(loc) = self.odd_locs.get(&i) {
            return Some(*loc);
        }
        Some(if self.rows == Some(true) {
            Loc::Row {
                rowid: c.pos[j] as i64,
            }
        } else {
            Loc::Line {
                offset: c.pos[j],
                len: c.len[j],
                line: i as u64 + 1 + u64::from(c.line[j]),
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

    /// The records that are invalid or made the reducer fail, by position.
    pub fn problems(&self) -> &[(usize, Status)] {
        &self.statuses
    }

    /// The type of the record at `i`.
    pub fn ty(&self, i: usize) -> Option<&Arc<str>> {
        self.at(i).map(|(c, j)| &self.names[c.ty[j] as usize])
    }

    /// The stream of the record at `i`.
    pub fn stream(&self, i: usize) -> Option<&Arc<str>> {
        let (c, j) = self.at(i)?;
        self.names.get(c.stream[j] as usize)
    }

    /// The time of the record at `i`, as written in the log.
    pub fn time(&self, i: usize) -> Option<Arc<str>> {
        let (c, j) = self.at(i)?;
        match c.time[j] {
            TIME_NONE => None,
            TIME_ODD => self.odd_times.get(&i).cloned(),
            ns => {
                let mut s = String::with_capacity(32);
                format_time(ns, self.form?, &mut s);
                Some(Arc::from(s))
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
        self.chunks.iter().flat_map(|c| c.id.iter().copied())
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
            match c.id[j].cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }
}

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
        let ty: Arc<str> = Arc::from("T");
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
                Some(Arc::from(out))
            }),
            "[ -~]{0,24}".prop_map(|s| Some(Arc::from(s))),
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
            1 => "[a-z ]{0,12}".prop_map(|m| Status::ReducerError(Arc::from(m))),
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
                ty: Arc::from(ty),
                stream: stream.map(Arc::from),
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

    #[test]
    fn chunks_fill_and_search_finds_every_id() {
        let mut ix = Index::default();
        let ty: Arc<str> = Arc::from("T");
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
    }
}
