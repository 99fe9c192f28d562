//! JSONL files: one JSON object per line, in file order.
//!
//! Reading is a loop over a large buffer: newlines are found with `memchr`
//! and each line is deserialized straight into an envelope (no intermediate
//! `serde_json::Value`): `data` and `meta` become [`PVal`]s, the other
//! fields small scalars, and unknown fields are skipped unparsed. The fast
//! reader of `value::json` reads the lines it can (nearly all of a typical
//! log; object keys and types are shared between events rather than
//! allocated for each); any other line, errors included, goes through
//! serde_json, so both give the same events and the same reasons.
//!
//! Field names: each event field has a list of aliases (see [`ALIASES`]);
//! when a line has several aliases of one field the first in the list wins,
//! whatever their order in the line. A [`Mapping`] field overrides the list
//! and is then the only name tried.
//!
//! Value rules:
//! - `id`: a JSON integer, or a string of ASCII digits (optionally with a
//!   leading `-`), since some exporters write 64-bit ids as strings so that
//!   JavaScript does not round them. A float (even `3.0`), any other string,
//!   `null`, etc. make the line invalid. A line without an id gets its
//!   1-based line number.
//! - `type`: a string, required.
//! - `data`: any JSON; missing means `null`.
//! - `stream`, `time`: a string, or a number (kept as its JSON text);
//!   `null` means absent; anything else makes the line invalid.
//! - `meta`: any JSON; `null` means absent (as a SQL NULL does).
//!
//! Blank lines (only whitespace) are skipped but still counted for line
//! numbers. A UTF-8 byte order mark at the start of the file is ignored.
//! Lines end with `\n`; a `\r` before it is JSON whitespace and harmless.

use super::*;
use crate::value::Text;
use crate::value::json::{Interner, Reader};
use memchr::memchr;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

/// Default field aliases, in priority order.
pub const ALIASES: [(&str, &[&str]); 6] = [
    ("id", &["id", "global_position", "position", "seq"]),
    ("type", &["type", "event_type", "eventType"]),
    ("data", &["data", "payload", "body"]),
    (
        "stream",
        &["stream", "stream_id", "streamId", "stream_name", "aggregate_id"],
    ),
    ("time", &["time", "timestamp", "created_at", "date"]),
    ("meta", &["meta", "metadata", "metaData"]),
];

/// Size of a read from the file. Lines longer than this grow the buffer.
const CHUNK: usize = 1 << 20;
/// How many bytes at the start of the file identify it across polls.
const FINGERPRINT_LEN: usize = 256;
/// Longest excerpt of a bad value quoted in a reason.
const QUOTE_MAX: usize = 40;
/// Bytes hashed at the start of the file and just before a resume
/// position, for [`LogSource::identity_at`].
const IDENTITY_EDGE: u64 = 4096;
/// Evenly spaced samples hashed between them (a rewrite of the middle of
/// the file that keeps its size is caught when it touches one), and their
/// length. A few dozen small reads: milliseconds even on a cold cache,
/// where hashing a whole 1.6 GB file would take seconds.
const IDENTITY_SAMPLES: u64 = 32;
const IDENTITY_SAMPLE_LEN: u64 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Id = 0,
    Ty = 1,
    Data = 2,
    Stream = 3,
    Time = 4,
    Meta = 5,
}

const FIELDS: [Field; 6] = [
    Field::Id,
    Field::Ty,
    Field::Data,
    Field::Stream,
    Field::Time,
    Field::Meta,
];

/// The accepted key names of every field, resolved from the mapping.
struct Names {
    /// `names[field]` = the accepted keys, in priority order.
    names: [Vec<Box<str>>; 6],
}

impl Names {
    fn new(m: &Mapping) -> Names {
        let over = [&m.id, &m.ty, &m.data, &m.stream, &m.time, &m.meta];
        let names = std::array::from_fn(|i| match over[i] {
            Some(name) => vec![Box::from(name.as_str())],
            None => ALIASES[i].1.iter().map(|s| Box::from(*s)).collect(),
        });
        Names { names }
    }

    /// Which field a key names and its priority (0 = highest).
    fn lookup(&self, key: &str) -> Option<(Field, u8)> {
        for f in FIELDS {
            for (rank, name) in self.names[f as usize].iter().enumerate() {
                if **name == *key {
                    return Some((f, rank as u8));
                }
            }
        }
        None
    }

    fn key(&self, f: Field, rank: u8) -> &str {
        self.names[f as usize].get(rank as usize).map_or("?", |s| &**s)
    }

    /// `"type", "event_type" or "eventType"`, for "missing" messages.
    fn list(&self, f: Field) -> String {
        let quoted: Vec<String> = self.names[f as usize].iter().map(|n| format!("{n:?}")).collect();
        match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            Some((last, _)) => last.clone(),
            None => String::new(),
        }
    }
}

/// A field value that is expected to be a scalar. Containers are skipped
/// unparsed and only their kind is kept, for the error message.
#[derive(Debug)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    Big(u64),
    Float(f64),
    Str(Text),
    Array,
    Object,
}

impl Scalar {
    /// How the value is described in a reason.
    fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => format!("number {i}"),
            Scalar::Big(u) => format!("number {u}"),
            Scalar::Float(f) => format!("number {f:?}"),
            Scalar::Str(s) => format!("string {}", quote(s)),
            Scalar::Array => "an array".into(),
            Scalar::Object => "an object".into(),
        }
    }

    /// A number as the text it has in JSON (for stream/time).
    fn number_text(&self) -> Option<String> {
        match self {
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Big(u) => Some(u.to_string()),
            Scalar::Float(f) => Some(PVal::Float(*f).to_json()),
            _ => None,
        }
    }
}

/// A string for a message: JSON-quoted (so control characters are escaped)
/// and shortened.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Scalar, E> {
        Ok(i64::try_from(u).map_or(Scalar::Big(u), Scalar::Int))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(Text::from(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// The fields of one line, each with the priority of the key it came from.
#[derive(Default)]
struct Envelope {
    id: Option<(u8, Scalar)>,
    ty: Option<(u8, Scalar)>,
    data: Option<(u8, PVal)>,
    stream: Option<(u8, Scalar)>,
    time: Option<(u8, Scalar)>,
    meta: Option<(u8, PVal)>,
}

/// A line is either an object (an envelope) or some other JSON value.
enum Parsed {
    Object(Envelope),
    Other(&'static str),
}

/// Deserializes a map key into the field it names, without allocating.
struct KeySeed<'a>(&'a Names);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<(Field, u8)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<(Field, u8)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.0.lookup(s))
    }
}

/// Store `v` in `slot` when its key has at least the priority of the one
/// already there (equal priority: a duplicate key, and the later one wins,
/// as in jq). Lower-priority values are skipped without being built.
fn take<'de, A, T>(map: &mut A, slot: &mut Option<(u8, T)>, rank: u8) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: serde::Deserialize<'de>,
{
    match slot {
        Some((r, _)) if *r < rank => {
            map.next_value::<IgnoredAny>()?;
        }
        _ => *slot = Some((rank, map.next_value::<T>()?)),
    }
    Ok(())
}

/// Deserializes one line into a [`Parsed`].
struct LineSeed<'a>(&'a Names);

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = Parsed;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut env = Envelope::default();
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            match key {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some((Field::Id, r)) => take(&mut map, &mut env.id, r)?,
                Some((Field::Ty, r)) => take(&mut map, &mut env.ty, r)?,
                Some((Field::Data, r)) => take(&mut map, &mut env.data, r)?,
                Some((Field::Stream, r)) => take(&mut map, &mut env.stream, r)?,
                Some((Field::Time, r)) => take(&mut map, &mut env.time, r)?,
                Some((Field::Meta, r)) => take(&mut map, &mut env.meta, r)?,
            }
        }
        Ok(Parsed::Object(env))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Parsed::Other("an array"))
    }
    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Other("null"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Parsed, E> {
        Ok(Parsed::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Parsed, E> {
        Ok(Parsed::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Parsed, E> {
        Ok(Parsed::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Parsed, E> {
        Ok(Parsed::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Parsed, E> {
        Ok(Parsed::Other("a string"))
    }
}

/// serde_json's message without its "at line 1 column N" (a line is a
/// whole document here), as "invalid JSON: ... at column N".
fn json_reason(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    if e.column() > 0 {
        format!("invalid JSON: {msg} at column {}", e.column())
    } else {
        format!("invalid JSON: {msg}")
    }
}

/// Everything needed to turn one line into a record.
struct LineParser {
    names: Names,
    display: String,
    /// Keys and short strings seen lately, shared between events.
    strings: Interner,
    /// The top-level keys lines had and the fields they name, in the order
    /// they were first seen (the lines of a log mostly have the same keys
    /// in the same order).
    seen_keys: SeenKeys,
    /// Try the fast reader first (off only in tests, to compare).
    fast: bool,
}

/// Top-level keys and the fields they name ([`Names::lookup`]).
type SeenKeys = Vec<(Box<str>, Option<(Field, u8)>)>;

/// How many distinct top-level keys [`LineParser::seen_keys`] remembers.
const SEEN_KEYS: usize = 16;

impl LineParser {
    fn new(mapping: &Mapping, display: String) -> LineParser {
        LineParser {
            names: Names::new(mapping),
            display,
            strings: Interner::default(),
            seen_keys: Vec::new(),
            fast: true,
        }
    }

    /// Parse one line (`bytes` without its newline). `terminated` says
    /// whether a newline followed it. Returns `None` for a blank line.
    fn parse(
        &mut self,
        bytes: &[u8],
        offset: u64,
        line: u64,
        terminated: bool,
    ) -> Option<Result<Event, Invalid>> {
        let text = if offset == 0 {
            bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
        } else {
            bytes
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let line_id = i64::try_from(line).unwrap_or(i64::MAX);
        let invalid = |id: i64, reason: String| {
            let reason = if terminated {
                reason
            } else {
                format!("truncated last line (no newline at end of file): {reason}")
            };
            Invalid {
                id,
                place: format!("{}:{line}", self.display),
                reason,
            }
        };
        let text = match std::str::from_utf8(text) {
            Ok(t) => t,
            Err(e) => {
                let at = e.valid_up_to() + 1 + (bytes.len() - text.len());
                return Some(Err(invalid(
                    line_id,
                    format!("invalid UTF-8 at byte {at} of the line"),
                )));
            }
        };
        let fast = match self.fast {
            true => fast_envelope(&self.names, &mut self.seen_keys, &mut self.strings, text),
            false => None,
        };
        let parsed = match fast {
            Some(env) => Ok(Parsed::Object(env)),
            None => {
                let mut de = serde_json::Deserializer::from_str(text);
                LineSeed(&self.names)
                    .deserialize(&mut de)
                    .and_then(|p| de.end().map(|()| p))
            }
        };
        let env = match parsed {
            Ok(Parsed::Object(env)) => env,
            Ok(Parsed::Other(what)) => {
                return Some(Err(invalid(line_id, format!("not a JSON object (found {what})"))));
            }
            Err(e) => return Some(Err(invalid(line_id, json_reason(&e)))),
        };
        // From here on the line parsed, so it is not "truncated" even
        // without a newline: its problems are its own.
        Some(self.build(env, line_id).map_err(|(id, reason)| Invalid {
            id,
            place: format!("{}:{line}", self.display),
            reason,
        }))
    }

    /// Check the envelope's fields and build the event. Errors carry the
    /// best id known and the reason.
    fn build(&self, env: Envelope, line_id: i64) -> Result<Event, (i64, String)> {
        let n = &self.names;
        let id = match env.id {
            None => line_id,
            Some((r, v)) => match v {
                Scalar::Int(i) => i,
                Scalar::Str(ref s) if is_digits(s) => s.parse::<i64>().map_err(|_| {
                    (
                        line_id,
                        format!("{:?} is out of range: {}", n.key(Field::Id, r), quote(s)),
                    )
                })?,
                Scalar::Big(u) => {
                    return Err((line_id, format!("{:?} is out of range: {u}", n.key(Field::Id, r))));
                }
                other => {
                    return Err((
                        line_id,
                        format!(
                            "{:?} must be an integer, got {}",
                            n.key(Field::Id, r),
                            other.describe()
                        ),
                    ));
                }
            },
        };
        let ty = match env.ty {
            Some((_, Scalar::Str(s))) => s,
            Some((r, other)) => {
                return Err((
                    id,
                    format!(
                        "{:?} must be a string, got {}",
                        n.key(Field::Ty, r),
                        other.describe()
                    ),
                ));
            }
            None => {
                return Err((id, format!("missing type (no {} field)", n.list(Field::Ty))));
            }
        };
        let text_field = |f: Field, v: Option<(u8, Scalar)>| -> Result<Option<Text>, String> {
            match v {
                None | Some((_, Scalar::Null)) => Ok(None),
                Some((_, Scalar::Str(s))) => Ok(Some(s)),
                Some((r, other)) => match other.number_text() {
                    Some(t) => Ok(Some(Text::from(t))),
                    None => Err(format!(
                        "{:?} must be a string, got {}",
                        n.key(f, r),
                        other.describe()
                    )),
                },
            }
        };
        let stream = text_field(Field::Stream, env.stream).map_err(|e| (id, e))?;
        let time = text_field(Field::Time, env.time).map_err(|e| (id, e))?;
        let meta = match env.meta {
            None | Some((_, PVal::Null)) => None,
            Some((_, m)) => Some(m),
        };
        Ok(Event {
            id,
            ty,
            data: env.data.map_or(PVal::Null, |(_, d)| d),
            stream,
            time,
            meta,
        })
    }
}

/// The envelope of a line by the fast reader (`value::json`), or `None`
/// when serde_json must read it: the line is not an object, or not in the
/// subset the reader handles (any error among them), or a scalar field
/// holds a number other than a plain integer. Gives exactly the envelope
/// [`LineSeed`] would.
fn fast_envelope(
    names: &Names,
    seen_keys: &mut SeenKeys,
    strings: &mut Interner,
    text: &str,
) -> Option<Envelope> {
    let mut r = Reader::new(text, strings);
    r.ws();
    r.eat(b'{')?;
    r.ws();
    let mut env = Envelope::default();
    if r.peek()? == b'}' {
        r.eat(b'}')?;
    } else {
        let mut nth = 0;
        loop {
            let key = r.string()?;
            let field = lookup_seen(seen_keys, names, nth, &key);
            nth += 1;
            r.ws();
            r.eat(b':')?;
            r.ws();
            match field {
                None => r.skip()?,
                Some((Field::Id, k)) => fast_take(&mut r, &mut env.id, k, fast_scalar)?,
                Some((Field::Ty, k)) => fast_take(&mut r, &mut env.ty, k, fast_name)?,
                Some((Field::Data, k)) => fast_take(&mut r, &mut env.data, k, Reader::value)?,
                Some((Field::Stream, k)) => fast_take(&mut r, &mut env.stream, k, fast_scalar)?,
                Some((Field::Time, k)) => fast_take(&mut r, &mut env.time, k, fast_scalar)?,
                Some((Field::Meta, k)) => fast_take(&mut r, &mut env.meta, k, Reader::value)?,
            }
            r.ws();
            match r.peek()? {
                b',' => {
                    r.eat(b',')?;
                    r.ws();
                }
                b'}' => {
                    r.eat(b'}')?;
                    break;
                }
                _ => return None,
            }
        }
    }
    r.ws();
    r.at_end().then_some(env)
}

/// [`Names::lookup`] through the keys recent lines had: the `nth` key of
/// a line is most often the `nth` of the line before.
fn lookup_seen(seen: &mut SeenKeys, names: &Names, nth: usize, key: &str) -> Option<(Field, u8)> {
    if let Some((k, f)) = seen.get(nth)
        && **k == *key
    {
        return *f;
    }
    if let Some((_, f)) = seen.iter().find(|(k, _)| **k == *key) {
        return *f;
    }
    let f = names.lookup(key);
    if seen.len() < SEEN_KEYS {
        seen.push((Box::from(key), f));
    }
    f
}

/// [`take`] for the fast reader.
fn fast_take<'a, 'i, T>(
    r: &mut Reader<'a, 'i>,
    slot: &mut Option<(u8, T)>,
    rank: u8,
    read: impl FnOnce(&mut Reader<'a, 'i>) -> Option<T>,
) -> Option<()> {
    match slot {
        Some((k, _)) if *k < rank => r.skip(),
        _ => {
            *slot = Some((rank, read(r)?));
            Some(())
        }
    }
}

/// A [`Scalar`] by the fast reader: strings, plain integers, `null`,
/// booleans and containers (checked and skipped); `None` for any other
/// number.
fn fast_scalar(r: &mut Reader<'_, '_>) -> Option<Scalar> {
    Some(match r.peek()? {
        b'"' => Scalar::Str(Text::from(&*r.string()?)),
        b'{' => {
            r.skip()?;
            Scalar::Object
        }
        b'[' => {
            r.skip()?;
            Scalar::Array
        }
        b'-' | b'0'..=b'9' => Scalar::Int(r.plain_int()?),
        _ => match r.value()? {
            PVal::Null => Scalar::Null,
            PVal::Bool(b) => Scalar::Bool(b),
            _ => return None,
        },
    })
}

/// [`fast_scalar`] for the type, whose strings repeat: they are shared.
fn fast_name(r: &mut Reader<'_, '_>) -> Option<Scalar> {
    if r.peek()? == b'"' {
        let s = r.string()?;
        return Some(Scalar::Str(r.strings().name(&s)));
    }
    fast_scalar(r)
}

/// `-?[0-9]+`
fn is_digits(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An open JSONL file and how far it has been read.
pub struct JsonlSource {
    path: PathBuf,
    parser: LineParser,
    accept_partial: bool,
    /// The open file; `None` after a rewind (reopened on the next read, as
    /// the path may now name another file).
    file: Option<File>,
    /// Device and inode of `file`.
    dev_ino: (u64, u64),
    /// Bytes read from the file and not yet consumed are `buf[start..end]`;
    /// `buf[0]` is at file offset `buf_off`. `buf.len()` is the capacity.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    buf_off: u64,
    /// Lines consumed so far (the next line's number is `line + 1`).
    line: u64,
    /// The last line was taken without its newline (file not appended to):
    /// if the file grows it grew inside that line.
    took_partial: bool,
    /// The last `read_new` reached the end of the file.
    drained: bool,
    /// The first bytes of the file, to notice it being rewritten in place.
    fingerprint: Vec<u8>,
}

impl JsonlSource {
    /// The parts of a JSONL resume position (offset, line, partial).
    fn line_pos(&self, pos: &ResumePos) -> Result<(u64, u64, bool), SourceError> {
        match *pos {
            ResumePos::Line {
                offset,
                line,
                partial,
            } => Ok((offset, line, partial)),
            _ => Err(SourceError(format!(
                "{}: {pos:?} is not a JSONL position",
                self.display()
            ))),
        }
    }

    /// Open the file at `spec.path` (naming it `spec.display` in messages).
    pub fn open(spec: &SourceSpec) -> Result<JsonlSource, SourceError> {
        let mut src = JsonlSource {
            path: spec.path.clone(),
            parser: LineParser::new(&spec.mapping, spec.display.clone()),
            accept_partial: spec.accept_partial_last_line,
            file: None,
            dev_ino: (0, 0),
            buf: Vec::new(),
            start: 0,
            end: 0,
            buf_off: 0,
            line: 0,
            took_partial: false,
            drained: false,
            fingerprint: Vec::new(),
        };
        src.ensure_open()?;
        Ok(src)
    }

    fn display(&self) -> &str {
        &self.parser.display
    }

    fn io_err(&self, e: std::io::Error) -> SourceError {
        SourceError(format!("{}: {e}", self.display()))
    }

    /// Open the file if it is not open (first use, or after a rewind).
    fn ensure_open(&mut self) -> Result<(), SourceError> {
        if self.file.is_some() {
            return Ok(());
        }
        let file = File::open(&self.path).map_err(|e| self.io_err(e))?;
        let meta = file.metadata().map_err(|e| self.io_err(e))?;
        if meta.is_dir() {
            return Err(SourceError(format!("{}: is a directory", self.display())));
        }
        self.dev_ino = (meta.dev(), meta.ino());
        self.file = Some(file);
        Ok(())
    }

    /// Read more bytes into the buffer. Returns false at end of file.
    fn fill(&mut self) -> Result<bool, SourceError> {
        // Keep only the unconsumed tail (a partial line), at the front.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.buf_off += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < CHUNK {
            self.buf.resize(CHUNK, 0);
        } else if self.end == self.buf.len() {
            // A line longer than the buffer.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        loop {
            match file.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    /// Bytes of the file read so far (consumed or buffered).
    fn seen_len(&self) -> u64 {
        self.buf_off + self.end as u64
    }

    /// Read up to `len` bytes at `offset`, fewer at end of file.
    fn pread(&self, offset: u64, len: usize) -> Result<Vec<u8>, SourceError> {
        let Some(file) = self.file.as_ref() else {
            return Ok(Vec::new());
        };
        let mut out = vec![0; len];
        let mut got = 0;
        while got < len {
            match file.read_at(&mut out[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        out.truncate(got);
        Ok(out)
    }

    /// Remember the first bytes of the file (up to [`FINGERPRINT_LEN`]).
    fn update_fingerprint(&mut self) -> Result<(), SourceError> {
        let want = (FINGERPRINT_LEN as u64).min(self.seen_len()) as usize;
        if self.fingerprint.len() < want {
            self.fingerprint = self.pread(0, want)?;
        }
        Ok(())
    }
}

impl LogSource for JsonlSource {
    fn describe(&self) -> String {
        format!("jsonl:{}", self.display())
    }

    /// The bytes left in the file over the bytes a line took so far.
    fn unread_hint(&self) -> Option<u64> {
        let size = self.file.as_ref()?.metadata().ok()?.len();
        let done = self.buf_off + self.start as u64;
        let per_line = done.checked_div(self.line)?.max(1);
        Some(size.saturating_sub(done) / per_line)
    }

    fn read_new(&mut self, limit: Option<usize>, sink: &mut dyn FnMut(Record)) -> Result<usize, SourceError> {
        self.ensure_open()?;
        let mut count = 0;
        self.drained = false;
        loop {
            if limit.is_some_and(|l| count >= l) {
                break;
            }
            let (bytes, terminated) = match memchr(b'\n', &self.buf[self.start..self.end]) {
                Some(i) => (self.start..self.start + i, true),
                None => {
                    if self.fill()? {
                        continue;
                    }
                    self.drained = true;
                    // End of file: a last line without newline is taken
                    // only when the file is not being appended to.
                    if self.start == self.end || !self.accept_partial {
                        break;
                    }
                    self.took_partial = true;
                    (self.start..self.end, false)
                }
            };
            let offset = self.buf_off + bytes.start as u64;
            let len = bytes.len();
            self.line += 1;
            let parsed = self
                .parser
                .parse(&self.buf[bytes.clone()], offset, self.line, terminated);
            self.start = if terminated { bytes.end + 1 } else { bytes.end };
            if let Some(body) = parsed {
                let loc = Loc::Line {
                    offset,
                    // (A line over 4 GiB is not realistic; saturate.)
                    len: u32::try_from(len).unwrap_or(u32::MAX),
                    line: self.line,
                };
                sink(Record { loc, body });
                count += 1;
            }
            if !terminated {
                break;
            }
        }
        self.update_fingerprint()?;
        Ok(count)
    }

    fn read_at(&mut self, loc: Loc) -> Result<Record, SourceError> {
        let Loc::Line { offset, len, line } = loc else {
            return Err(SourceError(format!(
                "{}: {loc:?} is not a line of a JSONL file",
                self.display()
            )));
        };
        self.ensure_open()?;
        // One byte more than the line, to see whether a newline follows.
        let bytes = self.pread(offset, len as usize + 1)?;
        let terminated = match bytes.get(len as usize) {
            Some(b'\n') => true,
            None if bytes.len() == len as usize => false,
            _ => {
                return Err(SourceError(format!(
                    "{}:{line}: the line is no longer in the file (it was truncated or rewritten)",
                    self.display()
                )));
            }
        };
        let body = &bytes[..len as usize];
        match self.parser.parse(body, offset, line, terminated) {
            Some(body) => Ok(Record { loc, body }),
            None => Err(SourceError(format!(
                "{}:{line}: the line is blank now (the file was rewritten)",
                self.display()
            ))),
        }
    }

    fn poll(&mut self) -> Result<Change, SourceError> {
        let meta = std::fs::metadata(&self.path).map_err(|e| self.io_err(e))?;
        if self.file.is_none() {
            // Rewound: everything is new.
            return Ok(Change::Appended);
        }
        if (meta.dev(), meta.ino()) != self.dev_ino {
            return Ok(Change::Reset(format!("{} was replaced", self.display())));
        }
        let size = meta.len();
        if size < self.seen_len() {
            return Ok(Change::Reset(format!("{} was truncated", self.display())));
        }
        if !self.fingerprint.is_empty() && self.pread(0, self.fingerprint.len())? != self.fingerprint {
            return Ok(Change::Reset(format!(
                "{} was replaced (its first line changed)",
                self.display()
            )));
        }
        if size > self.seen_len() {
            if self.took_partial {
                return Ok(Change::Reset(format!(
                    "{}: its last line, read without a newline, was extended",
                    self.display()
                )));
            }
            return Ok(Change::Appended);
        }
        // Lines left unread by a `read_new` that stopped at its limit.
        if !self.drained {
            return Ok(Change::Appended);
        }
        Ok(Change::None)
    }

    fn position(&self) -> Result<ResumePos, SourceError> {
        Ok(ResumePos::Line {
            offset: self.buf_off + self.start as u64,
            line: self.line,
            partial: self.took_partial,
        })
    }

    fn identity_at(&mut self, pos: &ResumePos) -> Result<LogIdentity, SourceError> {
        let (offset, line, partial) = self.line_pos(pos)?;
        self.ensure_open()?;
        // The open file, not the path: the one `resume` will read.
        let size = match &self.file {
            Some(f) => f.metadata().map_err(|e| self.io_err(e))?.len(),
            None => 0,
        };
        if size < offset {
            return Err(SourceError(format!(
                "{} is shorter than the position read before ({size} < {offset} bytes): truncated",
                self.display()
            )));
        }
        if partial && size != offset {
            return Err(SourceError(format!(
                "{}: its last line, read without a newline, was extended",
                self.display()
            )));
        }
        let mut h = blake3::Hasher::new();
        h.update(b"evscope jsonl identity 1\0");
        for n in [self.dev_ino.0, self.dev_ino.1, offset, line, u64::from(partial)] {
            h.update(&n.to_le_bytes());
        }
        let edge = IDENTITY_EDGE.min(offset);
        let mut spans = vec![(0, edge), (offset - edge, edge)];
        for i in 1..=IDENTITY_SAMPLES {
            let at = (u128::from(offset) * u128::from(i) / u128::from(IDENTITY_SAMPLES + 1)) as u64;
            spans.push((at, IDENTITY_SAMPLE_LEN.min(offset - at)));
        }
        for (at, len) in spans {
            let bytes = self.pread(at, len as usize)?;
            if bytes.len() as u64 != len {
                return Err(SourceError(format!(
                    "{} was truncated while being read",
                    self.display()
                )));
            }
            h.update(&at.to_le_bytes());
            h.update(&bytes);
        }
        Ok(LogIdentity(*h.finalize().as_bytes()))
    }

    fn resume(&mut self, pos: &ResumePos) -> Result<(), SourceError> {
        let (offset, line, partial) = self.line_pos(pos)?;
        if partial && !self.accept_partial {
            // This reader waits for a last line's newline; the position
            // includes a line taken without one.
            return Err(SourceError(format!(
                "{}: the position includes a last line without its newline",
                self.display()
            )));
        }
        self.ensure_open()?;
        if let Some(f) = self.file.as_mut() {
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| SourceError(format!("{}: {e}", self.parser.display)))?;
        }
        self.start = 0;
        self.end = 0;
        self.buf_off = offset;
        self.line = line;
        self.took_partial = partial;
        self.drained = false;
        self.fingerprint.clear();
        self.update_fingerprint()
    }

    fn rewind(&mut self) {
        self.file = None;
        self.start = 0;
        self.end = 0;
        self.buf_off = 0;
        self.line = 0;
        self.took_partial = false;
        self.drained = false;
        self.fingerprint.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(m: Mapping) -> LineParser {
        LineParser::new(&m, "e.jsonl".into())
    }

    /// Lines from random fragments (aliases, unknown keys, values of every
    /// kind, broken JSON) read the same with and without the fast reader.
    #[test]
    fn fast_reader_agrees_with_serde() {
        let keys = [
            "id",
            "seq",
            "position",
            "type",
            "event_type",
            "eventType",
            "data",
            "payload",
            "body",
            "stream",
            "stream_id",
            "time",
            "timestamp",
            "meta",
            "metaData",
            "other",
            "ty\\u0070e",
            "",
        ];
        let values = [
            "1",
            "-7",
            "0",
            "12",
            "\"12\"",
            "\"-3\"",
            "\"x\"",
            "\"T\"",
            "1.5",
            "3.0",
            "1e2",
            "-0",
            "99999999999999999999",
            "18446744073709551615",
            "null",
            "true",
            "false",
            "[]",
            "[1,\"a\"]",
            "{}",
            "{\"a\":{\"b\":[1,2.5]},\"a\":3}",
            "\"J\\u00e9\\n\"",
            "\"\\ud800\"",
            "01",
            "[1,]",
            "{\"k\":}",
            "nul",
            "\"\\ud83d\\ude00\"",
            "\"\u{e9}t\u{e9}\"",
        ];
        let mut x: u64 = 0x853C_49E6_748F_EA9B;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut fast = parser(Mapping::default());
        let mut slow = parser(Mapping::default());
        slow.fast = false;
        let mut custom = parser(Mapping {
            ty: Some("data".into()),
            ..Mapping::default()
        });
        let mut custom_slow = parser(Mapping {
            ty: Some("data".into()),
            ..Mapping::default()
        });
        custom_slow.fast = false;
        let mut handled = 0;
        for _ in 0..30_000 {
            let ws = [" ", "", "", "\t", "\r"];
            let mut line = String::from(ws[next(ws.len())]);
            line.push('{');
            let n = next(7);
            for k in 0..n {
                if k > 0 {
                    line.push(',');
                }
                line.push_str(ws[next(ws.len())]);
                line.push_str(&format!("\"{}\"", keys[next(keys.len())]));
                line.push(':');
                line.push_str(values[next(values.len())]);
                line.push_str(ws[next(ws.len())]);
            }
            line.push('}');
            match next(20) {
                0 => line.push_str(" x"),
                1 => {
                    let mut cut = line.len() / 2;
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.truncate(cut);
                }
                2 => line = values[next(values.len())].to_string(),
                _ => {}
            }
            if fast_envelope(&fast.names, &mut fast.seen_keys, &mut fast.strings, &line).is_some() {
                handled += 1;
            }
            for (f, s) in [(&mut fast, &mut slow), (&mut custom, &mut custom_slow)] {
                let a = f.parse(line.as_bytes(), 5, 3, true);
                let b = s.parse(line.as_bytes(), 5, 3, true);
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{line}");
            }
        }
        assert!(handled > 5_000, "the fast reader read only {handled} lines");
    }

    #[test]
    fn aliases_resolve_by_priority_not_position() {
        let n = Names::new(&Mapping::default());
        assert_eq!(n.lookup("id"), Some((Field::Id, 0)));
        assert_eq!(n.lookup("seq"), Some((Field::Id, 3)));
        assert_eq!(n.lookup("metaData"), Some((Field::Meta, 2)));
        assert_eq!(n.lookup("Type"), None);
        let mut p = parser(Mapping::default());
        let e = p
            .parse(br#"{"body":1,"payload":2,"data":3,"payload":4}"#, 10, 2, true)
            .and_then(Result::err)
            .map(|i| i.reason);
        assert_eq!(
            e.as_deref(),
            Some(r#"missing type (no "type", "event_type" or "eventType" field)"#)
        );
        let ev = p
            .parse(br#"{"type":"T","body":1,"payload":2,"payload":4}"#, 10, 2, true)
            .and_then(Result::ok);
        assert_eq!(ev.map(|e| e.data), Some(PVal::Int(4)));
    }

    #[test]
    fn ids() {
        let mut p = parser(Mapping::default());
        let mut id = |line: &str| {
            p.parse(line.as_bytes(), 1, 7, true)
                .map(|r| r.map(|e| e.id).map_err(|i| i.reason))
        };
        assert_eq!(id(r#"{"type":"T"}"#), Some(Ok(7)));
        assert_eq!(id(r#"{"type":"T","id":-3}"#), Some(Ok(-3)));
        assert_eq!(id(r#"{"type":"T","id":"12"}"#), Some(Ok(12)));
        assert_eq!(
            id(r#"{"type":"T","id":"99999999999999999999"}"#),
            Some(Err(r#""id" is out of range: "99999999999999999999""#.into()))
        );
        assert_eq!(
            id(r#"{"type":"T","id":18446744073709551615}"#),
            Some(Err(r#""id" is out of range: 18446744073709551615"#.into()))
        );
        assert_eq!(
            id(r#"{"type":"T","id":3.0}"#),
            Some(Err(r#""id" must be an integer, got number 3.0"#.into()))
        );
        assert_eq!(
            id(r#"{"type":"T","id":null}"#),
            Some(Err(r#""id" must be an integer, got null"#.into()))
        );
        assert_eq!(id(" \t\r"), None);
    }

    #[test]
    fn long_values_are_shortened_and_escaped_in_reasons() {
        let mut p = parser(Mapping::default());
        let long = format!(r#"{{"type":"T","id":"a{}\u001b"}}"#, "b".repeat(100));
        let r = p
            .parse(long.as_bytes(), 1, 1, true)
            .and_then(Result::err)
            .map(|i| i.reason);
        assert_eq!(
            r.as_deref(),
            Some(r#""id" must be an integer, got string "abbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"..."#)
        );
        let esc = p
            .parse(br#"{"type":"T","stream":["\u001b[2J"]}"#, 1, 1, true)
            .and_then(Result::err)
            .map(|i| i.reason);
        assert_eq!(esc.as_deref(), Some(r#""stream" must be a string, got an array"#));
    }
}
