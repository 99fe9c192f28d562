//! Event log sources: where events come from and how they are normalized.
//!
//! A source streams *records* in log order. Each record is either a
//! normalized [`Event`] or an [`Invalid`] line/row that could not be read.
//! Sources remember how far they have read, so [`LogSource::read_new`] is
//! "give me the events after the last one you gave me" (the basis of both
//! the initial load and the live tail). Bodies can be read again later by
//! their [`Loc`] (byte offset in a JSONL file, rowid in SQLite), so the
//! memory image need not keep every event parsed in memory.

pub mod jsonl;
pub mod spec;
pub mod sqlite;

pub use spec::{Mapping, SourceKind, SourceSpec};

use crate::value::PVal;
use crate::value::Text;

/// A normalized event: what the reducer sees as `$event`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: i64,
    pub ty: Text,
    pub data: PVal,
    pub stream: Option<Text>,
    pub time: Option<Text>,
    pub meta: Option<PVal>,
}

/// The keys of an event object, shared by every event (built once).
fn event_keys() -> &'static [Text; 6] {
    static KEYS: std::sync::OnceLock<[Text; 6]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| ["data", "id", "meta", "stream", "time", "type"].map(Text::from))
}

impl Event {
    /// The event as the JSON object `{id, type, data, stream?, time?, meta?}`.
    pub fn to_pval(&self) -> PVal {
        // Inserted in key order, with the shared keys: this runs for every
        // event folded.
        let [data, id, meta, stream, time, ty] = event_keys();
        let mut o = crate::value::PObj::new();
        o.insert(data.clone(), self.data.clone());
        o.insert(id.clone(), PVal::Int(self.id));
        if let Some(m) = &self.meta {
            o.insert(meta.clone(), m.clone());
        }
        if let Some(s) = &self.stream {
            o.insert(stream.clone(), PVal::Str(s.clone()));
        }
        if let Some(t) = &self.time {
            o.insert(time.clone(), PVal::Str(t.clone()));
        }
        o.insert(ty.clone(), PVal::Str(self.ty.clone()));
        PVal::Obj(o)
    }
}

/// Where a record lives in its source, so its body can be read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// A JSONL line: byte offset of its first byte, its length without the
    /// newline, and its 1-based line number.
    Line { offset: u64, len: u32, line: u64 },
    /// A SQLite row.
    Row { rowid: i64 },
}

/// A line or row that could not be read as an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The id the record would have (the id column or field when it could
    /// be read, else the JSONL line number or the SQLite rowid).
    pub id: i64,
    /// Human-readable place: `events.jsonl:12` or `app.db: table events, rowid 5`.
    pub place: String,
    /// Why it could not be read.
    pub reason: String,
}

impl std::fmt::Display for Invalid {
    /// `events.jsonl:12: invalid JSON: ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.reason)
    }
}

/// One record of a log, in log order.
#[derive(Clone, Debug)]
pub struct Record {
    pub loc: Loc,
    pub body: Result<Event, Invalid>,
}

impl Record {
    /// The record's id (the event's, or the one its invalid line/row would
    /// have).
    pub fn id(&self) -> i64 {
        match &self.body {
            Ok(e) => e.id,
            Err(i) => i.id,
        }
    }
}

/// What a poll of the source found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing new.
    None,
    /// New records may have been appended.
    Appended,
    /// The log was truncated, replaced or rotated: everything must be
    /// reloaded from the start (the message says what happened).
    Reset(String),
}

/// An error that stops a source from being read at all (missing file,
/// missing table or column, I/O failure). Per-record problems are
/// [`Invalid`] records instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A readable event log.
pub trait LogSource: Send {
    /// A short description for messages and the status bar
    /// (e.g. `sqlite:app.db (table events)` or `jsonl:events.jsonl`).
    fn describe(&self) -> String;

    /// Read the records after the last one returned so far (all of them on
    /// the first call), in log order, passing each to `sink`. Returns how
    /// many records were read. Reads at most `limit` records when given.
    ///
    /// JSONL: lines after the last complete line read; a last line without
    /// a newline is returned only when the spec accepts partial last lines
    /// (otherwise it waits for its newline). SQLite: rows after the last
    /// one read in (id, rowid) order, fetched in pages; no SQLite
    /// statement or read transaction stays open when this returns.
    fn read_new(&mut self, limit: Option<usize>, sink: &mut dyn FnMut(Record)) -> Result<usize, SourceError>;

    /// Read one record again by its location.
    fn read_at(&mut self, loc: Loc) -> Result<Record, SourceError>;

    /// Cheaply check whether the log changed since the last read.
    ///
    /// `Appended` also when the last `read_new` stopped at its limit with
    /// records left, and after a `rewind`. `Reset` when what was read is
    /// stale (truncated, replaced, rewritten, rows deleted). An error when
    /// the log cannot be looked at (e.g. the file is gone).
    fn poll(&mut self) -> Result<Change, SourceError>;

    /// Forget the read position, so the next `read_new` starts from the
    /// beginning (after a [`Change::Reset`]).
    fn rewind(&mut self);

    /// About how many records are left to read, when the source can tell
    /// cheaply (the memory image keeps room for their index entries).
    fn unread_hint(&self) -> Option<u64> {
        None
    }

    /// Where reading stopped: the next `read_new` goes on after it. With
    /// [`LogSource::identity_at`] and [`LogSource::resume`] this lets a
    /// snapshot of the folded records be reused by a later process.
    fn position(&self) -> Result<ResumePos, SourceError> {
        Err(unsupported(self, "resume positions"))
    }

    /// A fingerprint of the log up to `pos` (from the log as it is now): if
    /// it equals the one taken when `pos` was saved, the records before
    /// `pos` are taken to be the same. An error when the log no longer
    /// reaches `pos` (truncated, rows deleted) or cannot be looked at.
    fn identity_at(&mut self, pos: &ResumePos) -> Result<LogIdentity, SourceError> {
        let _ = pos;
        Err(unsupported(self, "log identities"))
    }

    /// Go on reading after `pos` (from [`LogSource::position`], possibly of
    /// an earlier process) as if everything before it had been read.
    fn resume(&mut self, pos: &ResumePos) -> Result<(), SourceError> {
        let _ = pos;
        Err(unsupported(self, "resuming"))
    }
}

fn unsupported<S: LogSource + ?Sized>(source: &S, what: &str) -> SourceError {
    SourceError(format!(
        "{}: this source does not support {what}",
        source.describe()
    ))
}

/// Where a source stopped reading.
#[derive(Clone, Debug, PartialEq)]
pub enum ResumePos {
    /// A JSONL file: the byte offset after the last line consumed, the
    /// number of lines consumed (blank ones too), and whether the last one
    /// was taken without its newline (at the end of a file not being
    /// appended to).
    Line { offset: u64, line: u64, partial: bool },
    /// A SQLite table: the id value and rowid of the last row read, `None`
    /// when nothing was read.
    Row { last: Option<(RowKey, i64)> },
}

/// An id column value exactly as SQLite stored it (rows are read in
/// (id, rowid) order, and the next page compares with this very value).
#[derive(Clone, Debug, PartialEq)]
pub enum RowKey {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// A fingerprint of a log up to a position: a hash of what identifies the
/// file (device, inode), of samples of its bytes (JSONL) or of its rows and
/// their count (SQLite). Equal identities mean "same log, same records".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogIdentity(pub [u8; 32]);

/// Open a source from its spec.
pub fn open(spec: &SourceSpec) -> Result<Box<dyn LogSource>, SourceError> {
    match spec.kind {
        SourceKind::Jsonl => Ok(Box::new(jsonl::JsonlSource::open(spec)?)),
        SourceKind::Sqlite => Ok(Box::new(sqlite::SqliteSource::open(spec)?)),
    }
}
