//! SQLite tables: one row per event, in ascending id order.
//!
//! Reliability (DESIGN "Reliability rules"):
//! - The database is opened through a `file:` URI we build ourselves with
//!   `mode=ro` and `SQLITE_OPEN_READ_ONLY` (never `immutable=1`, never
//!   `SQLITE_OPEN_CREATE`), a short busy timeout, `trusted_schema` off,
//!   double-quoted string literals off, defensive mode on, no checkpoint on
//!   close and `query_only` on. The bundled SQLite is built with
//!   `SQLITE_USE_URI`, so passing the user's path as-is would let a file
//!   named `file:x?immutable=1` change how it is opened; the URI we build
//!   percent-encodes the path.
//! - Rows are read in pages (`WHERE (id, rowid) > (?, ?) ORDER BY id,
//!   rowid LIMIT n`); each page is collected, then its statement is reset
//!   before any record reaches the caller, so no read transaction (and, in
//!   rollback-journal mode, no SHARED lock) outlives a call.
//! - Table and column names come from flags: they are looked up in the
//!   schema (the name is a bound value of `pragma_table_info`), and then
//!   only the names as the schema spells them are used, quoted as
//!   identifiers. Values are always bound.
//!
//! WAL databases: a read-only connection still needs the `-shm` index and
//! the `-wal` file. When they are missing (the last writer closed cleanly)
//! SQLite creates them (an empty `-wal` and a 32 KiB `-shm`) if the
//! directory is writable, and leaves them there; the database file itself
//! is never written (it is opened `O_RDONLY`). When they are missing and
//! the directory is not writable, opening fails; the message says so.
//!
//! Value rules: `id` must be an INTEGER (SQLite orders other values
//! differently, so they are invalid rows). `type` must be TEXT (valid
//! UTF-8). `data` and `meta`: TEXT or a BLOB holding JSON text is parsed;
//! other TEXT (or a UTF-8 BLOB) is taken as a JSON string, except text
//! that starts with `{` or `[` and does not parse (broken JSON: the row is
//! invalid); INTEGER/REAL are numbers; NULL is `null` (`meta`: absent). A BLOB that is not UTF-8 —
//! e.g. SQLite's binary JSONB — makes the row invalid. `stream`/`time`:
//! TEXT, or a number as its text; NULL is absent.
//!
//! Known limits: rows whose id is NULL are read first (SQL sorts NULL
//! first) and reported invalid, but NULL-id rows added later are not seen;
//! a row with a non-numeric id sorts after every number, so rows with
//! numeric ids appended after it are not seen by the tail; deleting rows
//! other than the last one read is not noticed by `poll`. Tables need a
//! rowid (views and WITHOUT ROWID tables are refused).

use super::*;
use crate::value::Text;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql, ffi};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for a lock held by a writer.
const BUSY_TIMEOUT: Duration = Duration::from_millis(200);
/// Rows per page when the id column is indexed.
const PAGE_ROWS: usize = 2_000;
/// Rows per page when every page needs a full scan and sort (no index on
/// the id column): fewer, bigger pages.
const PAGE_ROWS_UNINDEXED: usize = 50_000;

/// The id value of the last row read, as SQLite stored it, so the next
/// page compares with exactly the same value.
#[derive(Clone, Debug, PartialEq)]
enum KeyVal {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl KeyVal {
    fn from_ref(v: ValueRef<'_>) -> KeyVal {
        match v {
            ValueRef::Null => KeyVal::Null,
            ValueRef::Integer(i) => KeyVal::Int(i),
            ValueRef::Real(f) => KeyVal::Real(f),
            ValueRef::Text(t) => KeyVal::Text(t.to_vec()),
            ValueRef::Blob(b) => KeyVal::Blob(b.to_vec()),
        }
    }
}

impl From<&KeyVal> for RowKey {
    fn from(k: &KeyVal) -> RowKey {
        match k {
            KeyVal::Null => RowKey::Null,
            KeyVal::Int(i) => RowKey::Int(*i),
            KeyVal::Real(f) => RowKey::Real(*f),
            KeyVal::Text(t) => RowKey::Text(t.clone()),
            KeyVal::Blob(b) => RowKey::Blob(b.clone()),
        }
    }
}

impl From<&RowKey> for KeyVal {
    fn from(k: &RowKey) -> KeyVal {
        match k {
            RowKey::Null => KeyVal::Null,
            RowKey::Int(i) => KeyVal::Int(*i),
            RowKey::Real(f) => KeyVal::Real(*f),
            RowKey::Text(t) => KeyVal::Text(t.clone()),
            RowKey::Blob(b) => KeyVal::Blob(b.clone()),
        }
    }
}

/// Feed one SQLite value to a hash, with its type (so `1`, `1.0` and
/// `'1'` differ) and its length (so values cannot run into each other).
fn hash_value(h: &mut blake3::Hasher, v: ValueRef<'_>) {
    let (tag, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match v {
        ValueRef::Null => (0, (&[][..]).into()),
        ValueRef::Integer(i) => (1, i.to_le_bytes().to_vec().into()),
        ValueRef::Real(f) => (2, f.to_bits().to_le_bytes().to_vec().into()),
        ValueRef::Text(t) => (3, t.into()),
        ValueRef::Blob(b) => (4, b.into()),
    };
    h.update(&[tag]);
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(&bytes);
}

/// Rows hashed at each end of what was read, for
/// [`LogSource::identity_at`]: the last ones catch a rewritten or
/// shortened tail, the first ones a table refilled with other rows.
const IDENTITY_ROWS: i64 = 64;

impl KeyVal {
    fn value_ref(&self) -> ValueRef<'_> {
        match self {
            KeyVal::Null => ValueRef::Null,
            KeyVal::Int(i) => ValueRef::Integer(*i),
            KeyVal::Real(f) => ValueRef::Real(*f),
            KeyVal::Text(t) => ValueRef::Text(t),
            KeyVal::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl ToSql for KeyVal {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(self.value_ref()))
    }
}

/// `name` quoted as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The table and columns resolved against the schema, and the SQL built
/// from them (names as the schema spells them, quoted).
struct Schema {
    table: String,
    /// `SELECT rowid, id, type, data, stream, time, meta FROM t` (NULL for
    /// an absent optional column).
    select: String,
    /// The id column, quoted.
    id: String,
    /// The rowid alias (`rowid`, `_rowid_` or `oid`: the first the table
    /// does not use as a column name).
    rowid: &'static str,
    /// Column names for messages: id, type, data, stream, time, meta.
    names: [Option<String>; 6],
    page_rows: usize,
}

impl Schema {
    fn col(&self, i: usize) -> &str {
        self.names[i].as_deref().unwrap_or("?")
    }

    /// The condition "after the last row read", using ?1 (its id) and ?2
    /// (its rowid).
    fn after(&self, last: &Option<(KeyVal, i64)>) -> String {
        let (id, rowid) = (&self.id, self.rowid);
        match last {
            None => "1".into(),
            // NULL ids sort first: more NULL-id rows, then any other id.
            Some((KeyVal::Null, _)) => {
                format!("({id} IS NULL AND {rowid} > ?2) OR {id} IS NOT NULL")
            }
            Some(_) => format!("({id}, {rowid}) > (?1, ?2)"),
        }
    }

    /// The condition "the last row read or before it" (the complement of
    /// [`Schema::after`], NULL ids included), using ?1 and ?2 likewise.
    fn upto(&self, last: &Option<(KeyVal, i64)>) -> String {
        let (id, rowid) = (&self.id, self.rowid);
        match last {
            None => "0".into(),
            Some((KeyVal::Null, _)) => format!("{id} IS NULL AND {rowid} <= ?2"),
            Some(_) => format!("{id} IS NULL OR ({id}, {rowid}) <= (?1, ?2)"),
        }
    }
}

/// An open SQLite table and how far it has been read.
pub struct SqliteSource {
    path: PathBuf,
    display: String,
    mapping: Mapping,
    /// `None` after a rewind: reopened (and the schema checked again) on
    /// the next use, as the path may now name another file.
    conn: Option<(Connection, Schema)>,
    dev_ino: (u64, u64),
    /// Id value and rowid of the last row read.
    last: Option<(KeyVal, i64)>,
    /// `PRAGMA data_version` when last looked at.
    data_version: i64,
    /// The last `read_new` reached the end of the table.
    drained: bool,
}

/// Bind the key of the last row read to ?1 (its id) and ?2 (its rowid),
/// and `limit` to ?3, as far as the statement uses them.
fn bind(st: &mut rusqlite::Statement<'_>, last: &Option<(KeyVal, i64)>, limit: i64) -> rusqlite::Result<()> {
    let (key, rowid) = match last {
        Some((k, r)) => (k, *r),
        None => (&KeyVal::Null, 0),
    };
    for i in 1..=st.parameter_count() {
        match i {
            1 => st.raw_bind_parameter(i, key)?,
            2 => st.raw_bind_parameter(i, rowid)?,
            _ => st.raw_bind_parameter(i, limit)?,
        }
    }
    Ok(())
}

/// Run a query bound with [`bind`] and convert every row.
fn query_rows<T>(
    conn: &Connection,
    sql: &str,
    last: &Option<(KeyVal, i64)>,
    limit: i64,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut st = conn.prepare_cached(sql)?;
    bind(&mut st, last, limit)?;
    let mut rows = st.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(row)?);
    }
    // `rows` and `st` drop here: the statement is reset, which ends its
    // read transaction.
    Ok(out)
}

/// The single boolean an `EXISTS` query returns.
fn query_bool(conn: &Connection, sql: &str, last: &Option<(KeyVal, i64)>) -> rusqlite::Result<bool> {
    let v = query_rows(conn, sql, last, 0, |r| r.get::<_, bool>(0))?;
    Ok(v.first().copied().unwrap_or(false))
}

impl SqliteSource {
    /// Open the database at `spec.path` read-only and check the table and
    /// columns named by `spec.mapping` (or the defaults).
    pub fn open(spec: &SourceSpec) -> Result<SqliteSource, SourceError> {
        let mut src = SqliteSource {
            path: spec.path.clone(),
            display: spec.display.clone(),
            mapping: spec.mapping.clone(),
            conn: None,
            dev_ino: (0, 0),
            last: None,
            data_version: 0,
            drained: false,
        };
        src.ensure_open()?;
        Ok(src)
    }

    fn table_name(&self) -> &str {
        match &self.conn {
            Some((_, s)) => &s.table,
            None => self.mapping.table.as_deref().unwrap_or("events"),
        }
    }

    /// An SQLite error as a message naming the file, with a hint for the
    /// cases a read-only reader runs into.
    fn sql_err(&self, e: rusqlite::Error) -> SourceError {
        let d = &self.display;
        if let rusqlite::Error::SqliteFailure(f, msg) = &e {
            let text = msg.clone().unwrap_or_else(|| f.to_string());
            match f.extended_code {
                ffi::SQLITE_READONLY_ROLLBACK => {
                    return SourceError(format!(
                        "{d}: {text}: a writer crashed and left a hot journal that must be rolled \
                         back, which a read-only reader cannot do; open the database once with \
                         sqlite3 (read-write) to recover it"
                    ));
                }
                ffi::SQLITE_READONLY_CANTINIT
                | ffi::SQLITE_READONLY_DIRECTORY
                | ffi::SQLITE_READONLY_RECOVERY
                | ffi::SQLITE_CANTOPEN
                    if is_wal(&self.path) =>
                {
                    // SQLite's own text ("attempt to write a readonly
                    // database") would suggest evscope tried to write.
                    return SourceError(format!(
                        "{d}: cannot read this WAL-mode database: SQLite needs its -wal and -shm \
                         files next to it, and they are missing and cannot be created (is the \
                         directory read-only?); copy the database to a writable directory"
                    ));
                }
                _ => {}
            }
            return match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => SourceError(format!(
                    "{d}: the database is locked by a writer (waited {} ms)",
                    BUSY_TIMEOUT.as_millis()
                )),
                _ => SourceError(format!("{d}: {text}")),
            };
        }
        SourceError(format!("{d}: {e}"))
    }

    /// Open the connection and resolve the schema, if not done yet.
    fn ensure_open(&mut self) -> Result<(), SourceError> {
        if self.conn.is_some() {
            return Ok(());
        }
        // Check the file first: SQLite's "unable to open database file"
        // does not say why, and we never let it create a missing file.
        let meta =
            std::fs::metadata(&self.path).map_err(|e| SourceError(format!("{}: {e}", self.display)))?;
        if meta.is_dir() {
            return Err(SourceError(format!("{}: is a directory", self.display)));
        }
        let conn = open_read_only(&self.path).map_err(|e| self.sql_err(e))?;
        let schema = self.resolve(&conn)?;
        let data_version = data_version(&conn).map_err(|e| self.sql_err(e))?;
        self.dev_ino = (meta.dev(), meta.ino());
        self.data_version = data_version;
        self.conn = Some((conn, schema));
        Ok(())
    }

    /// Find the table and columns and build the SQL.
    fn resolve(&self, conn: &Connection) -> Result<Schema, SourceError> {
        let d = &self.display;
        let want = self.mapping.table.as_deref().unwrap_or("events");
        let tables = query_rows(
            conn,
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            &None,
            0,
            |r| r.get::<_, String>(0),
        )
        .map_err(|e| self.sql_err(e))?;
        // SQLite matches names case-insensitively (ASCII); prefer an exact
        // match.
        let table = tables
            .iter()
            .find(|t| *t == want)
            .or_else(|| tables.iter().find(|t| t.eq_ignore_ascii_case(want)))
            .cloned()
            .ok_or_else(|| {
                SourceError(format!(
                    "{d}: no table {want:?} ({})",
                    if tables.is_empty() {
                        "the database has no tables".to_string()
                    } else {
                        format!("tables: {}", tables.join(", "))
                    }
                ))
            })?;
        // The table name is a bound value here, never spliced.
        let columns = query_rows(
            conn,
            "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
            &Some((KeyVal::Text(table.clone().into_bytes()), 0)),
            0,
            |r| r.get::<_, String>(0),
        )
        .map_err(|e| self.sql_err(e))?;
        let find = |name: &str| {
            columns
                .iter()
                .find(|c| *c == name)
                .or_else(|| columns.iter().find(|c| c.eq_ignore_ascii_case(name)))
                .cloned()
        };
        let missing = |name: &str| {
            SourceError(format!(
                "{d}: table {table} has no column {name:?} (columns: {})",
                columns.join(", ")
            ))
        };
        let m = &self.mapping;
        // Required columns, then optional ones: a name given by a flag must
        // exist; a default one is used when present.
        let mut names: [Option<String>; 6] = Default::default();
        for (i, (flag, default)) in [(&m.id, "id"), (&m.ty, "type"), (&m.data, "data")]
            .into_iter()
            .enumerate()
        {
            let name = flag.as_deref().unwrap_or(default);
            names[i] = Some(find(name).ok_or_else(|| missing(name))?);
        }
        for (i, (flag, defaults)) in [
            (&m.stream, &["stream"][..]),
            (&m.time, &["time", "inserted_at"][..]),
            (&m.meta, &["meta"][..]),
        ]
        .into_iter()
        .enumerate()
        {
            names[3 + i] = match flag {
                Some(name) => Some(find(name).ok_or_else(|| missing(name))?),
                None => defaults.iter().find_map(|n| find(n)),
            };
        }
        let rowid = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|r| find(r).is_none())
            .ok_or_else(|| {
                SourceError(format!(
                    "{d}: table {table} has columns named rowid, _rowid_ and oid, so its rowid \
                     cannot be read"
                ))
            })?;
        let q = |n: &Option<String>| n.as_deref().map_or("NULL".to_string(), ident);
        let select = format!(
            "SELECT {rowid}, {}, {}, {}, {}, {}, {} FROM {}",
            q(&names[0]),
            q(&names[1]),
            q(&names[2]),
            q(&names[3]),
            q(&names[4]),
            q(&names[5]),
            ident(&table)
        );
        // Views and WITHOUT ROWID tables have no rowid to re-read rows by.
        if conn.prepare(&format!("{select} LIMIT 0")).is_err() {
            return Err(SourceError(format!(
                "{d}: {table} has no rowid (it is a view or a WITHOUT ROWID table); \
                 evscope needs one to re-read rows"
            )));
        }
        let id = q(&names[0]);
        let mut schema = Schema {
            table,
            select,
            id,
            rowid,
            names,
            page_rows: PAGE_ROWS,
        };
        // Without an index on the id column every page is a full scan and
        // sort, so use fewer, larger pages.
        let plan = format!(
            "EXPLAIN QUERY PLAN {} WHERE {} ORDER BY {}, {rowid} LIMIT ?3",
            schema.select,
            schema.after(&Some((KeyVal::Int(0), 0))),
            schema.id
        );
        let sorts = query_rows(conn, &plan, &None, 1, |r| r.get::<_, String>(3))
            .is_ok_and(|details| details.iter().any(|d| d.contains("TEMP B-TREE")));
        if sorts {
            schema.page_rows = PAGE_ROWS_UNINDEXED;
        }
        Ok(schema)
    }

    fn place(&self, table: &str, rowid: i64) -> String {
        format!("{}: table {table}, rowid {rowid}", self.display)
    }
}

/// Open `path` strictly read-only, hardened (see the module docs).
fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(file_uri(path), flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    use rusqlite::config::DbConfig as C;
    for (opt, on) in [
        (C::SQLITE_DBCONFIG_DQS_DML, false),
        (C::SQLITE_DBCONFIG_DQS_DDL, false),
        (C::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (C::SQLITE_DBCONFIG_DEFENSIVE, true),
        // A read-only connection cannot checkpoint anyway; say so.
        (C::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true),
        (C::SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, false),
        (C::SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, false),
    ] {
        conn.set_db_config(opt, on)?;
    }
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// `file://` + the absolute path, percent-encoded, + `?mode=ro`.
fn file_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file://");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// Whether the file's header says WAL mode (read/write versions 2).
fn is_wal(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head[18] == 2 && head[19] == 2)
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// A value as described in a reason.
fn describe(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("integer {i}"),
        ValueRef::Real(f) => format!("real {f:?}"),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            match s.char_indices().nth(40) {
                Some((cut, _)) => format!("text {:?}...", &s[..cut]),
                None => format!("text {s:?}"),
            }
        }
        ValueRef::Blob(b) => format!("a BLOB of {} bytes", b.len()),
    }
}

fn utf8<'a>(col: &str, bytes: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "column {col:?} is not valid UTF-8 (at byte {})",
            e.valid_up_to() + 1
        )
    })
}

/// A `data`/`meta` value (see the module docs).
fn json_value(col: &str, v: ValueRef<'_>) -> Result<PVal, String> {
    Ok(match v {
        ValueRef::Null => PVal::Null,
        ValueRef::Integer(i) => PVal::Int(i),
        ValueRef::Real(f) => PVal::from_f64(f),
        ValueRef::Text(t) => json_text(col, utf8(col, t)?)?,
        ValueRef::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => json_text(col, s)?,
            Err(_) => {
                return Err(format!(
                    "column {col:?} holds a BLOB of {} bytes that is neither JSON text nor UTF-8 \
                     (SQLite's binary JSONB format is not supported; store JSON as text)",
                    b.len()
                ));
            }
        },
    })
}

/// Text that is JSON is parsed; other text is a JSON string. But text
/// that starts like an object or array and does not parse is broken JSON
/// (truncated, say), and taking it as a string would silently give a wrong
/// state: the row is invalid instead.
fn json_text(col: &str, s: &str) -> Result<PVal, String> {
    match PVal::from_json(s) {
        Ok(v) => Ok(v),
        Err(e) if s.trim_start().starts_with(['{', '[']) => {
            Err(format!("column {col:?} holds invalid JSON: {e}"))
        }
        Err(_) => Ok(PVal::str(s)),
    }
}

/// A `stream`/`time` value: text, or a number as its text; NULL is absent.
fn text_value(col: &str, v: ValueRef<'_>) -> Result<Option<Text>, String> {
    Ok(match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Text::from(i.to_string())),
        ValueRef::Real(f) => Some(Text::from(PVal::Float(f).to_json())),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(Text::from(utf8(col, t)?)),
    })
}

/// Turn one row (`rowid, id, type, data, stream, time, meta`) into its key
/// and record.
fn convert(
    schema: &Schema,
    place: &dyn Fn(i64) -> String,
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<((KeyVal, i64), Record)> {
    let rowid: i64 = row.get(0)?;
    let id_ref = row.get_ref(1)?;
    let key = (KeyVal::from_ref(id_ref), rowid);
    let loc = Loc::Row { rowid };
    let body = (|| {
        let id = match id_ref {
            ValueRef::Integer(i) => i,
            ValueRef::Null => return Err((rowid, format!("column {:?} is NULL", schema.col(0)))),
            other => {
                return Err((
                    rowid,
                    format!(
                        "column {:?} must be an integer, got {}",
                        schema.col(0),
                        describe(other)
                    ),
                ));
            }
        };
        let ty = match row.get_ref(2).map_err(|e| (id, e.to_string()))? {
            ValueRef::Text(t) => Text::from(utf8(schema.col(1), t).map_err(|e| (id, e))?),
            ValueRef::Null => return Err((id, format!("column {:?} is NULL", schema.col(1)))),
            other => {
                return Err((
                    id,
                    format!("column {:?} must be text, got {}", schema.col(1), describe(other)),
                ));
            }
        };
        let get = |i: usize| row.get_ref(i).map_err(|e| (id, e.to_string()));
        let data = json_value(schema.col(2), get(3)?).map_err(|e| (id, e))?;
        let stream = text_value(schema.col(3), get(4)?).map_err(|e| (id, e))?;
        let time = text_value(schema.col(4), get(5)?).map_err(|e| (id, e))?;
        let meta = match get(6)? {
            ValueRef::Null => None,
            v => Some(json_value(schema.col(5), v).map_err(|e| (id, e))?),
        };
        Ok(Event {
            id,
            ty,
            data,
            stream,
            time,
            meta,
        })
    })()
    .map_err(|(id, reason)| Invalid {
        id,
        place: place(rowid),
        reason,
    });
    Ok((key, Record { loc, body }))
}

impl LogSource for SqliteSource {
    fn describe(&self) -> String {
        format!("sqlite:{} (table {})", self.display, self.table_name())
    }

    fn read_new(&mut self, limit: Option<usize>, sink: &mut dyn FnMut(Record)) -> Result<usize, SourceError> {
        self.ensure_open()?;
        let mut count = 0;
        self.drained = false;
        while let Some((conn, schema)) = &self.conn {
            let want = match limit {
                Some(l) if l <= count => break,
                Some(l) => (l - count).min(schema.page_rows),
                None => schema.page_rows,
            };
            let sql = format!(
                "{} WHERE {} ORDER BY {}, {} LIMIT ?3",
                schema.select,
                schema.after(&self.last),
                schema.id,
                schema.rowid
            );
            let table = schema.table.clone();
            let place = |rowid| self.place(&table, rowid);
            // Collect the page, then let the statement go (ending the read
            // transaction) before handing records out.
            let page = query_rows(conn, &sql, &self.last, want as i64, |row| {
                convert(schema, &place, row)
            })
            .map_err(|e| self.sql_err(e))?;
            let n = page.len();
            if let Some((key, _)) = page.last() {
                self.last = Some(key.clone());
            }
            for (_, rec) in page {
                sink(rec);
            }
            count += n;
            if n < want {
                self.drained = true;
                break;
            }
        }
        Ok(count)
    }

    fn read_at(&mut self, loc: Loc) -> Result<Record, SourceError> {
        let Loc::Row { rowid } = loc else {
            return Err(SourceError(format!(
                "{}: {loc:?} is not a row of a SQLite table",
                self.display
            )));
        };
        self.ensure_open()?;
        let Some((conn, schema)) = &self.conn else {
            return Err(SourceError(format!("{}: not open", self.display)));
        };
        let sql = format!("{} WHERE {} = ?2", schema.select, schema.rowid);
        let place = |r| self.place(&schema.table, r);
        let key = Some((KeyVal::Null, rowid));
        let found = query_rows(conn, &sql, &key, 0, |row| convert(schema, &place, row))
            .map_err(|e| self.sql_err(e))?;
        match found.into_iter().next() {
            Some((_, rec)) => Ok(rec),
            None => Err(SourceError(format!(
                "{}: the row is no longer in the table (deleted)",
                place(rowid)
            ))),
        }
    }

    fn poll(&mut self) -> Result<Change, SourceError> {
        let meta =
            std::fs::metadata(&self.path).map_err(|e| SourceError(format!("{}: {e}", self.display)))?;
        let Some((conn, schema)) = &self.conn else {
            return Ok(Change::Appended);
        };
        if (meta.dev(), meta.ino()) != self.dev_ino {
            return Ok(Change::Reset(format!("{} was replaced", self.display)));
        }
        let dv = match data_version(conn) {
            Ok(v) => v,
            // A writer holds the lock: look again at the next poll.
            Err(e) if is_busy(&e) => return Ok(Change::None),
            Err(e) => return Err(self.sql_err(e)),
        };
        if dv == self.data_version && self.drained {
            return Ok(Change::None);
        }
        let (id, rowid) = (&schema.id, schema.rowid);
        let table = ident(&schema.table);
        let checks = (|| {
            // Is the last row read still there? If not, rows were deleted
            // (or the table rewritten) and what was read is stale.
            let gone = match &self.last {
                None => false,
                Some(_) => {
                    let sql =
                        format!("SELECT NOT EXISTS(SELECT 1 FROM {table} WHERE {rowid} = ?2 AND {id} IS ?1)");
                    query_bool(conn, &sql, &self.last)?
                }
            };
            let sql = format!(
                "SELECT EXISTS(SELECT 1 FROM {table} WHERE {})",
                schema.after(&self.last)
            );
            let newer = query_bool(conn, &sql, &self.last)?;
            Ok::<_, rusqlite::Error>((gone, newer))
        })();
        let (gone, newer) = match checks {
            Ok(c) => c,
            Err(e) if is_busy(&e) => return Ok(Change::None),
            Err(e) => return Err(self.sql_err(e)),
        };
        self.data_version = dv;
        if gone {
            return Ok(Change::Reset(format!(
                "rows were deleted from table {} in {}",
                schema.table, self.display
            )));
        }
        Ok(if newer { Change::Appended } else { Change::None })
    }

    /// The rowids after the last one read (the index lookup of the
    /// largest rowid is cheap). Exact when rows are read in rowid order, as
    /// in a log whose ids grow with its inserts; deleted rows make it an
    /// overestimate, which only makes the image keep more room.
    fn unread_hint(&self) -> Option<u64> {
        if self.drained {
            return Some(0);
        }
        let (conn, schema) = self.conn.as_ref()?;
        let rowid = schema.rowid;
        let sql = format!("SELECT min({rowid}), max({rowid}) FROM {}", ident(&schema.table));
        let (min, max): (Option<i64>, Option<i64>) = conn
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .ok()?;
        let (min, max) = (min?, max?);
        let done = self.last.as_ref().map_or(min - 1, |(_, r)| *r);
        u64::try_from(max.saturating_sub(done)).ok()
    }

    fn rewind(&mut self) {
        self.conn = None;
        self.last = None;
        self.drained = false;
    }

    fn position(&self) -> Result<ResumePos, SourceError> {
        Ok(ResumePos::Row {
            last: self.last.as_ref().map(|(k, r)| (RowKey::from(k), *r)),
        })
    }

    fn identity_at(&mut self, pos: &ResumePos) -> Result<LogIdentity, SourceError> {
        let ResumePos::Row { last } = pos else {
            return Err(SourceError(format!(
                "{}: {pos:?} is not a SQLite position",
                self.display
            )));
        };
        self.ensure_open()?;
        let Some((conn, schema)) = &self.conn else {
            return Err(SourceError(format!("{}: not open", self.display)));
        };
        let last: Option<(KeyVal, i64)> = last.as_ref().map(|(k, r)| (KeyVal::from(k), *r));
        let mut h = blake3::Hasher::new();
        h.update(b"evscope sqlite identity 1\0");
        h.update(&self.dev_ino.0.to_le_bytes());
        h.update(&self.dev_ino.1.to_le_bytes());
        for text in [&schema.table, &schema.select] {
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        let Some((key, rowid)) = &last else {
            // Nothing was read: only the file and the table identify it.
            return Ok(LogIdentity(*h.finalize().as_bytes()));
        };
        hash_value(&mut h, key.value_ref());
        h.update(&rowid.to_le_bytes());
        let (id, rid) = (&schema.id, schema.rowid);
        let table = ident(&schema.table);
        let checks = (|| {
            // The last row read is still there, with the same id.
            let sql = format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE {rid} = ?2 AND {id} IS ?1)");
            if !query_bool(conn, &sql, &last)? {
                return Ok(None);
            }
            // How many rows there are up to it: rows deleted or inserted
            // before it change the count. (Two counts, so each can use an
            // index on the id column.)
            let count_sql = match key {
                KeyVal::Null => format!("SELECT count(*) FROM {table} WHERE {}", schema.upto(&last)),
                _ => format!(
                    "SELECT (SELECT count(*) FROM {table} WHERE {id} IS NULL) + \
                     (SELECT count(*) FROM {table} WHERE ({id}, {rid}) <= (?1, ?2))"
                ),
            };
            let count = query_rows(conn, &count_sql, &last, 0, |r| r.get::<_, i64>(0))?;
            let mut rows = blake3::Hasher::new();
            rows.update(&count.first().copied().unwrap_or(0).to_le_bytes());
            // The rows at both ends of what was read, every column.
            for order in ["DESC", "ASC"] {
                let sql = format!(
                    "{} WHERE {} ORDER BY {id} {order}, {rid} {order} LIMIT ?3",
                    schema.select,
                    schema.upto(&last)
                );
                query_rows(conn, &sql, &last, IDENTITY_ROWS, |r| {
                    for i in 0..7 {
                        hash_value(&mut rows, r.get_ref(i)?);
                    }
                    Ok(())
                })?;
            }
            Ok::<_, rusqlite::Error>(Some(rows.finalize()))
        })();
        match checks {
            Ok(Some(rows)) => {
                h.update(rows.as_bytes());
                Ok(LogIdentity(*h.finalize().as_bytes()))
            }
            Ok(None) => Err(SourceError(format!(
                "{}: the last row read before was deleted or its id changed",
                self.place(&schema.table, *rowid)
            ))),
            Err(e) => Err(self.sql_err(e)),
        }
    }

    fn resume(&mut self, pos: &ResumePos) -> Result<(), SourceError> {
        let ResumePos::Row { last } = pos else {
            return Err(SourceError(format!(
                "{}: {pos:?} is not a SQLite position",
                self.display
            )));
        };
        self.ensure_open()?;
        self.last = last.as_ref().map(|(k, r)| (KeyVal::from(k), *r));
        self.drained = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("events"), r#""events""#);
        assert_eq!(ident(r#"a"; DROP TABLE x; --"#), r#""a""; DROP TABLE x; --""#);
    }

    #[test]
    fn uri_escapes_everything_but_plain_path_characters() {
        assert_eq!(
            file_uri(Path::new("/d/a b?c#d%e&f.db")),
            "file:///d/a%20b%3Fc%23d%25e%26f.db?mode=ro"
        );
        assert!(file_uri(Path::new("rel.db")).starts_with("file:///"));
    }

    #[test]
    fn json_columns() {
        let t = |s: &str| json_text("data", s);
        assert_eq!(t(r#"{"a":1}"#), Ok(PVal::from_json(r#"{"a":1}"#).unwrap()));
        assert_eq!(t("plain words"), Ok(PVal::str("plain words")));
        assert_eq!(t(""), Ok(PVal::str("")));
        assert_eq!(t("12"), Ok(PVal::Int(12)));
        assert!(t("  [1,").is_err());
    }
}
