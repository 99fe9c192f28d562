//! Log sources against real files: JSONL files and SQLite databases written
//! in temporary directories (with rusqlite, read-write, as an application
//! would), read back through `evscope::log`.

use evscope::log::{self, Change, Event, Invalid, Loc, LogSource, Mapping, Record, SourceKind, SourceSpec};
use evscope::value::PVal;
use evscope::value::Text;
use rusqlite::Connection;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- helpers

fn spec(kind: SourceKind, path: &Path, display: &str, mapping: Mapping) -> SourceSpec {
    SourceSpec {
        kind,
        path: path.to_path_buf(),
        display: display.to_string(),
        mapping,
        accept_partial_last_line: true,
    }
}

fn jsonl(path: &Path) -> SourceSpec {
    spec(SourceKind::Jsonl, path, "events.jsonl", Mapping::default())
}

fn tail(path: &Path) -> SourceSpec {
    SourceSpec {
        accept_partial_last_line: false,
        ..jsonl(path)
    }
}

fn sqlite(path: &Path) -> SourceSpec {
    spec(SourceKind::Sqlite, path, "app.db", Mapping::default())
}

fn read(src: &mut dyn LogSource, limit: Option<usize>) -> Vec<Record> {
    let mut out = Vec::new();
    let n = src.read_new(limit, &mut |r| out.push(r)).expect("read_new");
    assert_eq!(n, out.len());
    out
}

fn read_all(src: &mut dyn LogSource) -> Vec<Record> {
    read(src, None)
}

fn events(recs: &[Record]) -> Vec<Event> {
    recs.iter().filter_map(|r| r.body.clone().ok()).collect()
}

fn invalids(recs: &[Record]) -> Vec<Invalid> {
    recs.iter().filter_map(|r| r.body.clone().err()).collect()
}

fn ids(recs: &[Record]) -> Vec<i64> {
    recs.iter().map(Record::id).collect()
}

fn json(s: &str) -> PVal {
    PVal::from_json(s).expect("test JSON")
}

fn ev(id: i64, ty: &str, data: &str) -> Event {
    Event {
        id,
        ty: Text::from(ty),
        data: json(data),
        stream: None,
        time: None,
        meta: None,
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).expect("write fixture");
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(bytes).expect("append");
}

fn open_jsonl(dir: &Path, content: &[u8]) -> (PathBuf, Box<dyn LogSource>) {
    let path = dir.join("events.jsonl");
    write(&path, content);
    let src = log::open(&jsonl(&path)).expect("open jsonl");
    (path, src)
}

fn reason_of(recs: &[Record], id: i64) -> String {
    invalids(recs)
        .into_iter()
        .find(|i| i.id == id)
        .map(|i| i.reason)
        .unwrap_or_else(|| panic!("no invalid record {id} in {recs:?}"))
}

// ------------------------------------------------------------------ JSONL

#[test]
fn jsonl_field_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"id":1,"type":"A","data":{"x":1},"stream":"s1","time":"t1","meta":{"m":1}}"#,
        r#"{"global_position":2,"event_type":"B","payload":[1],"stream_id":"s2","timestamp":"t2","metadata":{"m":2}}"#,
        r#"{"position":3,"eventType":"C","body":"b","streamId":"s3","created_at":"t3","metaData":{"m":3}}"#,
        r#"{"seq":4,"type":"D","stream_name":"s4","date":"t4"}"#,
        r#"{"seq":5,"type":"E","aggregate_id":"s5","data":null}"#,
        // Several aliases of one field: the first in the list wins,
        // wherever it is in the line.
        r#"{"seq":99,"payload":{"no":1},"id":6,"data":{"yes":1},"eventType":"no","type":"F"}"#,
        // Unknown fields are ignored.
        r#"{"id":7,"type":"G","extra":{"deep":[1,2,{"a":null}]},"x":"y"}"#,
    ];
    let (_, mut src) = open_jsonl(dir.path(), (lines.join("\n") + "\n").as_bytes());
    let got = events(&read_all(&mut *src));
    let with = |mut e: Event, stream: Option<&str>, time: Option<&str>, meta: Option<&str>| {
        e.stream = stream.map(Text::from);
        e.time = time.map(Text::from);
        e.meta = meta.map(json);
        e
    };
    assert_eq!(
        got,
        vec![
            with(
                ev(1, "A", r#"{"x":1}"#),
                Some("s1"),
                Some("t1"),
                Some(r#"{"m":1}"#)
            ),
            with(ev(2, "B", "[1]"), Some("s2"), Some("t2"), Some(r#"{"m":2}"#)),
            with(ev(3, "C", r#""b""#), Some("s3"), Some("t3"), Some(r#"{"m":3}"#)),
            with(ev(4, "D", "null"), Some("s4"), Some("t4"), None),
            with(ev(5, "E", "null"), Some("s5"), None, None),
            ev(6, "F", r#"{"yes":1}"#),
            ev(7, "G", "null"),
        ]
    );
}

#[test]
fn jsonl_mapping_overrides_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    write(
        &path,
        br#"{"n":10,"kind":"A","type":"ignored","data":{"a":1},"body":{"b":2},"at":"t"}
{"n":11,"type":"B"}
"#,
    );
    let mapping = Mapping {
        id: Some("n".into()),
        ty: Some("kind".into()),
        data: Some("body".into()),
        time: Some("at".into()),
        ..Mapping::default()
    };
    let mut src = log::open(&spec(SourceKind::Jsonl, &path, "events.jsonl", mapping)).unwrap();
    let recs = read_all(&mut *src);
    let mut a = ev(10, "A", r#"{"b":2}"#);
    a.time = Some(Text::from("t"));
    assert_eq!(events(&recs), vec![a]);
    // Only the mapped name is tried.
    assert_eq!(reason_of(&recs, 11), r#"missing type (no "kind" field)"#);
}

#[test]
fn jsonl_ids_from_line_numbers_and_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut src) = open_jsonl(
        dir.path(),
        b"{\"type\":\"A\"}\n\n   \t\r\n{\"type\":\"B\",\"data\":{\"k\":\"v\"}}\r\n{\"id\":\"42\",\"type\":\"C\"}\n{\"type\":\"D\"}\n",
    );
    let recs = read_all(&mut *src);
    // Blank lines are skipped but counted; a string of digits is an id.
    assert_eq!(ids(&recs), vec![1, 4, 42, 6]);
    assert_eq!(
        recs.iter().map(|r| r.loc).collect::<Vec<_>>(),
        vec![
            Loc::Line {
                offset: 0,
                len: 12,
                line: 1
            },
            Loc::Line {
                offset: 20,
                len: 30,
                line: 4
            },
            Loc::Line {
                offset: 51,
                len: 22,
                line: 5
            },
            Loc::Line {
                offset: 74,
                len: 12,
                line: 6
            },
        ]
    );
    assert_eq!(events(&recs)[1], ev(4, "B", r#"{"k":"v"}"#));
}

#[test]
fn jsonl_invalid_lines_do_not_stop_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut content = Vec::new();
    content.extend_from_slice(b"{\"id\":1,\"type\":\"ok\"}\n"); // 1
    content.extend_from_slice(b"{\"id\":2,\"type\":}\n"); // 2 bad JSON
    content.extend_from_slice(b"{\"id\":3,\"type\":\"caf\xC3\xA9\",\"data\":\"\xFF\xFE\"}\n"); // 3 bad UTF-8
    content.extend_from_slice(b"[1,2,3]\n"); // 4 not an object
    content.extend_from_slice(b"{\"id\":5,\"data\":{}}\n"); // 5 missing type
    content.extend_from_slice(b"{\"id\":1.5,\"type\":\"x\"}\n"); // 6 float id
    content.extend_from_slice(b"{\"id\":\"abc\",\"type\":\"x\"}\n"); // 7 string id
    content.extend_from_slice(b"{\"id\":8,\"type\":7}\n"); // 8 type not a string
    content.extend_from_slice(b"{\"id\":9,\"type\":\"x\",\"stream\":{\"a\":1}}\n"); // 9 stream object
    content.extend_from_slice(b"{\"id\":10,\"type\":\"x\"} trailing\n"); // 10 trailing garbage
    content.extend_from_slice(b"\"just a string\"\n"); // 11
    content.extend_from_slice(b"{\"id\":12,\"type\":\"ok\",\"stream\":7,\"time\":1700000000.5}\n"); // 12
    content.extend_from_slice(b"{\"id\":13,\"type\":\"x\",\"data\":{\"a\":"); // 13 truncated
    let (_, mut src) = open_jsonl(dir.path(), &content);
    let recs = read_all(&mut *src);
    assert_eq!(recs.len(), 13);
    let good = events(&recs);
    assert_eq!(good.len(), 2);
    assert_eq!(good[0], ev(1, "ok", "null"));
    assert_eq!(good[1].stream.as_deref(), Some("7"));
    assert_eq!(good[1].time.as_deref(), Some("1700000000.5"));

    let bad = invalids(&recs);
    let places: Vec<&str> = bad.iter().map(|i| i.place.as_str()).collect();
    assert_eq!(
        places,
        [
            "events.jsonl:2",
            "events.jsonl:3",
            "events.jsonl:4",
            "events.jsonl:5",
            "events.jsonl:6",
            "events.jsonl:7",
            "events.jsonl:8",
            "events.jsonl:9",
            "events.jsonl:10",
            "events.jsonl:11",
            "events.jsonl:13"
        ]
    );
    let reasons: Vec<&str> = bad.iter().map(|i| i.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "invalid JSON: expected value at column 16",
            "invalid UTF-8 at byte 32 of the line",
            "not a JSON object (found an array)",
            r#"missing type (no "type", "event_type" or "eventType" field)"#,
            r#""id" must be an integer, got number 1.5"#,
            r#""id" must be an integer, got string "abc""#,
            r#""type" must be a string, got number 7"#,
            r#""stream" must be a string, got an object"#,
            "invalid JSON: trailing characters at column 22",
            "not a JSON object (found a string)",
            "truncated last line (no newline at end of file): invalid JSON: EOF while parsing a value at column 32",
        ]
    );
    // The id is the field's when it could be read, else the line number.
    assert_eq!(
        bad.iter().map(|i| i.id).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    );
    assert_eq!(
        bad[0].to_string(),
        "events.jsonl:2: invalid JSON: expected value at column 16"
    );
}

#[test]
fn jsonl_last_line_without_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    write(&path, b"{\"type\":\"A\"}\n{\"type\":\"B\"}");
    // A file that is not being appended to: the last line counts.
    let mut src = log::open(&jsonl(&path)).unwrap();
    assert_eq!(ids(&read_all(&mut *src)), vec![1, 2]);
    // ...and if it then grows, it grew inside that line: start again.
    append(&path, b",\"data\":1}\n");
    assert!(matches!(src.poll().unwrap(), Change::Reset(m) if m.contains("last line")));

    // A live tail leaves it until its newline arrives.
    write(&path, b"{\"type\":\"A\"}\n{\"type\":\"B\"");
    let mut src = log::open(&tail(&path)).unwrap();
    assert_eq!(ids(&read_all(&mut *src)), vec![1]);
    assert_eq!(src.poll().unwrap(), Change::None);
    assert!(read_all(&mut *src).is_empty());
    append(&path, b",\"data\":{\"x\":");
    assert_eq!(src.poll().unwrap(), Change::Appended);
    assert!(read_all(&mut *src).is_empty());
    assert_eq!(src.poll().unwrap(), Change::None);
    append(&path, b"1}}\n{\"type\":\"C\"}\n");
    assert_eq!(src.poll().unwrap(), Change::Appended);
    let recs = read_all(&mut *src);
    assert_eq!(events(&recs), vec![ev(2, "B", r#"{"x":1}"#), ev(3, "C", "null")]);
    assert_eq!(
        recs[0].loc,
        Loc::Line {
            offset: 13,
            len: 27,
            line: 2
        }
    );
    assert_eq!(src.poll().unwrap(), Change::None);
}

#[test]
fn jsonl_incremental_reads_return_only_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    write(&path, b"");
    let mut src = log::open(&tail(&path)).unwrap();
    assert!(read_all(&mut *src).is_empty());
    assert_eq!(src.poll().unwrap(), Change::None);
    let mut next = 1;
    for batch in [3, 1, 5] {
        let mut text = String::new();
        for _ in 0..batch {
            text += &format!("{{\"type\":\"T\",\"data\":{{\"n\":{next}}}}}\n");
            next += 1;
        }
        append(&path, text.as_bytes());
        assert_eq!(src.poll().unwrap(), Change::Appended);
        let recs = read_all(&mut *src);
        let want: Vec<i64> = (next - batch..next).collect();
        assert_eq!(ids(&recs), want);
        assert_eq!(src.poll().unwrap(), Change::None);
    }
    // Reading with a limit leaves the rest for the next call, and poll
    // says there is more.
    src.rewind();
    assert_eq!(ids(&read(&mut *src, Some(4))), vec![1, 2, 3, 4]);
    assert_eq!(src.poll().unwrap(), Change::Appended);
    assert_eq!(ids(&read(&mut *src, Some(4))), vec![5, 6, 7, 8]);
    assert_eq!(ids(&read(&mut *src, Some(4))), vec![9]);
    assert_eq!(src.poll().unwrap(), Change::None);
}

#[test]
fn jsonl_poll_detects_truncation_and_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut src) = open_jsonl(dir.path(), b"{\"type\":\"A\"}\n{\"type\":\"B\"}\n");
    assert_eq!(read_all(&mut *src).len(), 2);
    assert_eq!(src.poll().unwrap(), Change::None);

    // Truncated (log rotated with copytruncate).
    write(&path, b"{\"type\":\"C\"}\n");
    assert_eq!(
        src.poll().unwrap(),
        Change::Reset("events.jsonl was truncated".into())
    );
    src.rewind();
    assert_eq!(events(&read_all(&mut *src)), vec![ev(1, "C", "null")]);
    assert_eq!(src.poll().unwrap(), Change::None);

    // Replaced by another file (rename over it).
    let other = dir.path().join("new.jsonl");
    write(&other, b"{\"type\":\"D\"}\n{\"type\":\"E\"}\n");
    fs::rename(&other, &path).unwrap();
    assert_eq!(
        src.poll().unwrap(),
        Change::Reset("events.jsonl was replaced".into())
    );
    src.rewind();
    assert_eq!(src.poll().unwrap(), Change::Appended);
    assert_eq!(ids(&read_all(&mut *src)), vec![1, 2]);

    // Rewritten in place, longer, with other first bytes.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"type\":\"X\"}\n{\"type\":\"Y\"}\n{\"type\":\"Z\"}\n")
        .unwrap();
    assert!(matches!(src.poll().unwrap(), Change::Reset(m) if m.contains("replaced")));

    // Removed: an error naming the file, not a silent "nothing new".
    fs::remove_file(&path).unwrap();
    let err = src.poll().unwrap_err().to_string();
    assert!(err.starts_with("events.jsonl: No such file"), "{err}");
}

#[test]
fn jsonl_read_at_returns_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut src) = open_jsonl(
        dir.path(),
        "\u{feff}{\"type\":\"A\",\"data\":{\"s\":\"é\"}}\nnot json\n\n{\"id\":9,\"type\":\"B\",\"meta\":[1]}\n{\"type\":".as_bytes(),
    );
    let recs = read_all(&mut *src);
    assert_eq!(recs.len(), 4);
    // The byte order mark is not part of the first event.
    assert_eq!(recs[0].body.as_ref().unwrap().data, json(r#"{"s":"é"}"#));
    for r in &recs {
        let again = src.read_at(r.loc).unwrap();
        assert_eq!(again.loc, r.loc);
        assert_eq!(again.body, r.body);
    }
    assert!(src.read_at(Loc::Row { rowid: 1 }).is_err());
    let gone = Loc::Line {
        offset: 10_000,
        len: 5,
        line: 99,
    };
    assert!(
        src.read_at(gone)
            .unwrap_err()
            .to_string()
            .starts_with("events.jsonl:99:")
    );
}

#[test]
fn jsonl_long_lines_and_many_lines() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(3 << 20);
    let mut text = String::new();
    for i in 0..5000 {
        text += &format!("{{\"id\":{i},\"type\":\"T\",\"data\":{{\"i\":{i}}}}}\n");
    }
    text += &format!("{{\"id\":5000,\"type\":\"Big\",\"data\":\"{big}\"}}\n");
    text += "{\"id\":5001,\"type\":\"T\"}\n";
    let (_, mut src) = open_jsonl(dir.path(), text.as_bytes());
    let recs = read_all(&mut *src);
    assert_eq!(ids(&recs), (0..=5001).collect::<Vec<_>>());
    assert_eq!(
        recs[5000].body.as_ref().unwrap().data.as_str().map(str::len),
        Some(big.len())
    );
    assert_eq!(src.read_at(recs[5000].loc).unwrap().body, recs[5000].body);
}

#[test]
fn jsonl_open_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = log::open(&jsonl(&dir.path().join("missing.jsonl")))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "events.jsonl: No such file or directory (os error 2)"
    );
    let err = log::open(&jsonl(dir.path())).err().unwrap();
    assert_eq!(err.to_string(), "events.jsonl: is a directory");
    // describe() uses the display name too.
    let path = dir.path().join("e.jsonl");
    write(&path, b"");
    let src = log::open(&spec(SourceKind::Jsonl, &path, "<stdin>", Mapping::default())).unwrap();
    assert_eq!(src.describe(), "jsonl:<stdin>");
}

#[test]
fn jsonl_garbage_never_panics_and_reads_back_alike() {
    // Deterministic pseudo-random bytes from a JSON-ish alphabet (plus
    // invalid UTF-8 and BOMs): every line is an event, an invalid record or
    // skipped, and read_at gives the same record again.
    let alphabet: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"\n",
        b"\n",
        b" ",
        b"\r",
        b"\\",
        b"1",
        b"-",
        b".5",
        b"e9",
        b"\"type\"",
        b"\"id\"",
        b"\"data\"",
        b"\"seq\"",
        b"\"stream\"",
        b"\"meta\"",
        b"null",
        b"true",
        b"\"x\"",
        b"\xff",
        b"\xc3",
        b"\xef\xbb\xbf",
        b"\\u0000",
        b"\\ud800",
        b"\t",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    for round in 0..200 {
        let mut content = Vec::new();
        let parts = next() % 200;
        for _ in 0..parts {
            content.extend_from_slice(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        write(&path, &content);
        for tail_mode in [false, true] {
            let spec = if tail_mode { tail(&path) } else { jsonl(&path) };
            let mut src = log::open(&spec).unwrap();
            let recs = read_all(&mut *src);
            let lines = content.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(recs.len() <= lines, "round {round}");
            for r in &recs {
                assert_eq!(src.read_at(r.loc).unwrap().body, r.body, "round {round}");
            }
            assert!(matches!(src.poll().unwrap(), Change::None), "round {round}");
        }
    }
}

// ----------------------------------------------------------------- SQLite

/// A read-write connection, as the application writing the log has.
fn writer(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

fn ecto_db(path: &Path) -> Connection {
    let c = writer(path);
    c.execute_batch(
        "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, \
         data TEXT, stream TEXT, inserted_at TEXT, meta TEXT);",
    )
    .unwrap();
    c
}

fn insert(c: &Connection, ty: &str, data: &str) {
    c.execute("INSERT INTO events(type, data) VALUES (?1, ?2)", (ty, data))
        .unwrap();
}

fn open_sqlite(path: &Path) -> Box<dyn LogSource> {
    log::open(&sqlite(path)).expect("open sqlite")
}

/// The bytes of a file, or None when it does not exist.
fn bytes(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

fn side(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn sqlite_default_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = ecto_db(&path);
    w.execute_batch(
        r#"INSERT INTO events(type, data, stream, inserted_at, meta) VALUES
             ('SignedUp', '{"email":"a@b.c"}', 'user-7', '2026-11-26T10:00:00Z', '{"by":"x"}'),
             ('Renamed', '{"name":"A"}', NULL, NULL, NULL);"#,
    )
    .unwrap();
    let mut src = open_sqlite(&path);
    assert_eq!(src.describe(), "sqlite:app.db (table events)");
    let recs = read_all(&mut *src);
    let mut first = ev(1, "SignedUp", r#"{"email":"a@b.c"}"#);
    first.stream = Some(Text::from("user-7"));
    first.time = Some(Text::from("2026-11-26T10:00:00Z"));
    first.meta = Some(json(r#"{"by":"x"}"#));
    assert_eq!(events(&recs), vec![first, ev(2, "Renamed", r#"{"name":"A"}"#)]);
    assert_eq!(recs[1].loc, Loc::Row { rowid: 2 });
    for r in &recs {
        assert_eq!(src.read_at(r.loc).unwrap().body, r.body);
    }
    let err = src.read_at(Loc::Row { rowid: 77 }).unwrap_err().to_string();
    assert_eq!(
        err,
        "app.db: table events, rowid 77: the row is no longer in the table (deleted)"
    );
}

#[test]
fn sqlite_time_column_prefers_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = writer(&path);
    w.execute_batch(
        "CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT, data TEXT, time INTEGER, inserted_at TEXT);
         INSERT INTO events VALUES (1, 'A', '{}', 1700000000, 'no'), (2, 'B', '{}', 1.5, 'no');",
    )
    .unwrap();
    let recs = read_all(&mut *open_sqlite(&path));
    let times: Vec<Option<String>> = events(&recs)
        .into_iter()
        .map(|e| e.time.map(|t| t.to_string()))
        .collect();
    assert_eq!(times, [Some("1700000000".into()), Some("1.5".into())]);
}

#[test]
fn sqlite_mapping_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = writer(&path);
    w.execute_batch(
        r#"CREATE TABLE "Log Entries"(seq INTEGER PRIMARY KEY, Kind TEXT, payload TEXT, agg TEXT, at TEXT, md TEXT, type TEXT);
           INSERT INTO "Log Entries" VALUES (5, 'A', '[1,2]', 'g', 'now', '{"a":1}', 'not this');"#,
    )
    .unwrap();
    let mapping = Mapping {
        table: Some("log entries".into()), // SQLite names are case-insensitive
        id: Some("seq".into()),
        ty: Some("kind".into()),
        data: Some("payload".into()),
        stream: Some("agg".into()),
        time: Some("at".into()),
        meta: Some("md".into()),
    };
    let mut src = log::open(&spec(SourceKind::Sqlite, &path, "app.db", mapping.clone())).unwrap();
    assert_eq!(src.describe(), "sqlite:app.db (table Log Entries)");
    let mut want = ev(5, "A", "[1,2]");
    want.stream = Some(Text::from("g"));
    want.time = Some(Text::from("now"));
    want.meta = Some(json(r#"{"a":1}"#));
    assert_eq!(events(&read_all(&mut *src)), vec![want]);

    // A mapped optional column must exist.
    let bad = Mapping {
        stream: Some("nope".into()),
        ..mapping
    };
    let err = log::open(&spec(SourceKind::Sqlite, &path, "app.db", bad))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        r#"app.db: table Log Entries has no column "nope" (columns: seq, Kind, payload, agg, at, md, type)"#
    );
}

#[test]
fn sqlite_data_column_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = writer(&path);
    w.execute_batch(
        r#"CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT, data);
           INSERT INTO events VALUES
             (1, 'text json', '{"a":[1,2.5,"x"]}'),
             (2, 'blob json', CAST('{"b":true}' AS BLOB)),
             (3, 'not json', 'hello world'),
             (4, 'null', NULL),
             (5, 'integer', 42),
             (6, 'real', 2.5),
             (7, 'json scalar text', '"quoted"'),
             (8, 'utf8 blob, not json', CAST('plain' AS BLOB)),
             (9, 'binary blob', x'8c0102ff'),
             (10, 'bad utf8 text', CAST(x'7bff7d' AS TEXT)),
             (11, 'broken json object', '{"a":'),
             (12, 'text that is not json', '{not json, says the log}x'),
             (13, 'deep', '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]');"#,
    )
    .unwrap();
    let recs = read_all(&mut *open_sqlite(&path));
    let data: Vec<(i64, PVal)> = events(&recs).into_iter().map(|e| (e.id, e.data)).collect();
    assert_eq!(
        data,
        vec![
            (1, json(r#"{"a":[1,2.5,"x"]}"#)),
            (2, json(r#"{"b":true}"#)),
            (3, PVal::str("hello world")),
            (4, PVal::Null),
            (5, PVal::Int(42)),
            (6, PVal::Float(2.5)),
            (7, PVal::str("quoted")),
            (8, PVal::str("plain")),
        ]
    );
    assert_eq!(
        reason_of(&recs, 9),
        r#"column "data" holds a BLOB of 4 bytes that is neither JSON text nor UTF-8 (SQLite's binary JSONB format is not supported; store JSON as text)"#
    );
    assert_eq!(
        reason_of(&recs, 10),
        r#"column "data" is not valid UTF-8 (at byte 2)"#
    );
    // Text that starts like JSON but is broken is not silently a string.
    assert_eq!(
        reason_of(&recs, 11),
        r#"column "data" holds invalid JSON: EOF while parsing a value at line 1 column 5"#
    );
    assert!(reason_of(&recs, 12).starts_with(r#"column "data" holds invalid JSON: key must be a string"#));
    assert!(reason_of(&recs, 13).contains("recursion limit exceeded"));
}

#[test]
fn sqlite_invalid_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = writer(&path);
    // No INTEGER PRIMARY KEY: the id column can hold anything.
    w.execute_batch(
        r#"CREATE TABLE events(id, type, data);
           INSERT INTO events VALUES (1, 'ok', '{}');
           INSERT INTO events VALUES (2, NULL, '{}');
           INSERT INTO events VALUES (3, CAST(x'41ff' AS TEXT), '{}');
           INSERT INTO events VALUES (4, 17, '{}');
           INSERT INTO events VALUES (4.5, 'x', '{}');
           INSERT INTO events VALUES ('abc', 'x', '{}');
           INSERT INTO events VALUES (NULL, 'x', '{}');
           INSERT INTO events VALUES (8, 'ok', '{}');"#,
    )
    .unwrap();
    let recs = read_all(&mut *open_sqlite(&path));
    // Log order is SQLite's: NULL, numbers, text.
    let got: Vec<(i64, String)> = recs
        .iter()
        .map(|r| match &r.body {
            Ok(e) => (e.id, format!("ok {}", e.ty)),
            Err(i) => (i.id, format!("{}: {}", i.place, i.reason)),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (7, r#"app.db: table events, rowid 7: column "id" is NULL"#.into()),
            (1, "ok ok".into()),
            (
                2,
                r#"app.db: table events, rowid 2: column "type" is NULL"#.into()
            ),
            (
                3,
                r#"app.db: table events, rowid 3: column "type" is not valid UTF-8 (at byte 2)"#.into()
            ),
            (
                4,
                r#"app.db: table events, rowid 4: column "type" must be text, got integer 17"#.into()
            ),
            (
                5,
                r#"app.db: table events, rowid 5: column "id" must be an integer, got real 4.5"#.into()
            ),
            (8, "ok ok".into()),
            (
                6,
                r#"app.db: table events, rowid 6: column "id" must be an integer, got text "abc""#.into()
            ),
        ]
    );
}

#[test]
fn sqlite_missing_table_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = writer(&path);
    w.execute_batch("CREATE TABLE b(x); CREATE TABLE a(y);").unwrap();
    let err = log::open(&sqlite(&path)).err().unwrap().to_string();
    assert_eq!(err, r#"app.db: no table "events" (tables: a, b)"#);

    w.execute_batch("CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT, data TEXT);")
        .unwrap();
    let err = log::open(&sqlite(&path)).err().unwrap().to_string();
    assert_eq!(
        err,
        r#"app.db: table events has no column "type" (columns: id, kind, data)"#
    );

    let empty = dir.path().join("empty.db");
    writer(&empty);
    let err = log::open(&sqlite(&empty)).err().unwrap().to_string();
    assert_eq!(err, r#"app.db: no table "events" (the database has no tables)"#);
}

#[test]
fn sqlite_injection_looking_names_are_only_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = writer(&path);
    w.execute_batch(
        r#"CREATE TABLE x(a); CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT, data TEXT);
           CREATE TABLE "we""ird; --"(id INTEGER PRIMARY KEY, "ty""pe" TEXT, data TEXT);
           INSERT INTO "we""ird; --" VALUES (1, 'Q', '{"q":"\"; DROP TABLE x"}');"#,
    )
    .unwrap();
    let before = bytes(&path);
    let evil = Mapping {
        table: Some(r#"events"; DROP TABLE x; --"#.into()),
        ..Mapping::default()
    };
    let err = log::open(&spec(SourceKind::Sqlite, &path, "app.db", evil))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        r#"app.db: no table "events\"; DROP TABLE x; --" (tables: events, we"ird; --, x)"#
    );
    let evil_col = Mapping {
        data: Some(r#"data" FROM events; DROP TABLE x; --"#.into()),
        ..Mapping::default()
    };
    assert!(
        log::open(&spec(SourceKind::Sqlite, &path, "app.db", evil_col))
            .err()
            .unwrap()
            .to_string()
            .starts_with(r#"app.db: table events has no column "data\" FROM"#)
    );
    // A table whose real name has quotes in it is read correctly.
    let odd = Mapping {
        table: Some(r#"we"ird; --"#.into()),
        ty: Some(r#"ty"pe"#.into()),
        ..Mapping::default()
    };
    let mut src = log::open(&spec(SourceKind::Sqlite, &path, "app.db", odd)).unwrap();
    assert_eq!(
        events(&read_all(&mut *src)),
        vec![ev(1, "Q", r#"{"q":"\"; DROP TABLE x"}"#)]
    );
    assert_eq!(bytes(&path), before);
    let n: i64 = w
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'x'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn sqlite_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = log::open(&sqlite(&missing)).err().unwrap().to_string();
    assert_eq!(err, "app.db: No such file or directory (os error 2)");
    assert!(!missing.exists(), "a missing database must not be created");

    let junk = dir.path().join("junk.db");
    write(&junk, &[b'x'; 4096]);
    let err = log::open(&sqlite(&junk)).err().unwrap().to_string();
    assert_eq!(err, "app.db: file is not a database");

    let view = dir.path().join("view.db");
    writer(&view)
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, type TEXT, data TEXT);
             CREATE VIEW events AS SELECT id, type, data FROM t;",
        )
        .unwrap();
    let err = log::open(&sqlite(&view)).err().unwrap().to_string();
    assert!(err.contains("no rowid"), "{err}");

    // Characters that mean something in a URI are just part of the name.
    let odd = dir.path().join("a?mode=rwc&immutable=1#x%20.db");
    let w = ecto_db(&odd);
    insert(&w, "A", "{}");
    assert_eq!(ids(&read_all(&mut *open_sqlite(&odd))), vec![1]);
    assert!(!dir.path().join("a").exists());
}

#[test]
fn sqlite_incremental_reads_and_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = ecto_db(&path);
    for i in 0..3 {
        insert(&w, "T", &format!("{{\"n\":{i}}}"));
    }
    let mut src = open_sqlite(&path);
    assert_eq!(ids(&read_all(&mut *src)), vec![1, 2, 3]);
    assert_eq!(src.poll().unwrap(), Change::None);
    for i in 3..5 {
        insert(&w, "T", &format!("{{\"n\":{i}}}"));
    }
    assert_eq!(src.poll().unwrap(), Change::Appended);
    assert_eq!(ids(&read_all(&mut *src)), vec![4, 5]);
    assert_eq!(src.poll().unwrap(), Change::None);
    assert!(read_all(&mut *src).is_empty());

    // Limits: the rest comes with the next call, and poll says so.
    for _ in 0..5 {
        insert(&w, "T", "{}");
    }
    assert_eq!(src.poll().unwrap(), Change::Appended);
    assert_eq!(ids(&read(&mut *src, Some(2))), vec![6, 7]);
    assert_eq!(src.poll().unwrap(), Change::Appended);
    assert_eq!(ids(&read(&mut *src, Some(10))), vec![8, 9, 10]);
    assert_eq!(src.poll().unwrap(), Change::None);

    // An update of an old row is not an append.
    w.execute("UPDATE events SET data = '{\"x\":1}' WHERE id = 2", [])
        .unwrap();
    assert_eq!(src.poll().unwrap(), Change::None);

    // Deleting the last rows read: what was read is stale.
    w.execute("DELETE FROM events WHERE id > 8", []).unwrap();
    assert_eq!(
        src.poll().unwrap(),
        Change::Reset("rows were deleted from table events in app.db".into())
    );
    src.rewind();
    assert_eq!(ids(&read_all(&mut *src)), (1..=8).collect::<Vec<_>>());

    // Replaced by another database file.
    let other = dir.path().join("other.db");
    let w2 = ecto_db(&other);
    insert(&w2, "New", "{}");
    drop(w2);
    fs::rename(&other, &path).unwrap();
    assert_eq!(src.poll().unwrap(), Change::Reset("app.db was replaced".into()));
    src.rewind();
    assert_eq!(events(&read_all(&mut *src)), vec![ev(1, "New", "{}")]);
}

#[test]
fn sqlite_pages_keep_duplicate_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = writer(&path);
    w.execute_batch(
        "CREATE TABLE events(id INTEGER, type TEXT, data TEXT); CREATE INDEX ev_id ON events(id);",
    )
    .unwrap();
    // 4,500 rows, ids in pairs (0,0,1,1,...), inserted out of order:
    // more than two pages, with page boundaries inside duplicate ids.
    let tx = w.unchecked_transaction().unwrap();
    for i in (0..4500i64).rev() {
        tx.execute("INSERT INTO events VALUES (?1, 'T', '{}')", [i / 2])
            .unwrap();
    }
    tx.commit().unwrap();
    let mut src = open_sqlite(&path);
    let recs = read_all(&mut *src);
    let want: Vec<i64> = (0..4500).map(|i| i / 2).collect();
    assert_eq!(ids(&recs), want);
    // Within one id, rowid order.
    let rowids: Vec<i64> = recs
        .iter()
        .map(|r| match r.loc {
            Loc::Row { rowid } => rowid,
            Loc::Line { .. } => -1,
        })
        .collect();
    assert!(rowids[0] < rowids[1]);
    w.execute("INSERT INTO events VALUES (2249, 'T', '{}')", [])
        .unwrap();
    assert_eq!(src.poll().unwrap(), Change::Appended);
    assert_eq!(ids(&read_all(&mut *src)), vec![2249]);
}

#[test]
fn sqlite_is_read_only_in_rollback_journal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = ecto_db(&path);
    for i in 0..50 {
        insert(&w, "T", &format!("{{\"n\":{i}}}"));
    }
    drop(w);
    let before = bytes(&path).unwrap();
    let files = dir_listing(dir.path());
    let mut src = open_sqlite(&path);
    let recs = read(&mut *src, Some(10));
    // Between calls no lock is held: a writer that will not wait at all
    // can commit.
    let w = writer(&path);
    w.busy_timeout(std::time::Duration::ZERO).unwrap();
    insert(&w, "T", "{}");
    let after_write = bytes(&path).unwrap();
    assert_ne!(after_write, before);
    read_all(&mut *src);
    src.poll().unwrap();
    src.read_at(recs[3].loc).unwrap();
    drop(src);
    assert_eq!(bytes(&path).unwrap(), after_write);
    assert_eq!(dir_listing(dir.path()), files);
    // Opening, reading, polling and closing without a writer.
    let mut src = open_sqlite(&path);
    read_all(&mut *src);
    assert_eq!(src.poll().unwrap(), Change::None);
    src.read_at(recs[0].loc).unwrap();
    src.rewind();
    read_all(&mut *src);
    drop(src);
    assert_eq!(bytes(&path).unwrap(), after_write);
    assert_eq!(dir_listing(dir.path()), files);
}

#[test]
fn sqlite_wal_writer_and_read_only_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let w = ecto_db(&path);
    let mode: String = w.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    // Keep the WAL growing during the test (no automatic checkpoint), so
    // any change in it is the reader's.
    w.execute_batch("PRAGMA wal_autocheckpoint=0;").unwrap();
    insert(&w, "T", "{}");
    let wal = side(&path, "-wal");
    let snapshot = || (bytes(&path), bytes(&wal), bytes(&side(&path, "-journal")));

    let before = snapshot();
    let mut src = open_sqlite(&path);
    let mut seen = ids(&read_all(&mut *src));
    assert_eq!(snapshot(), before);

    for round in 0..20 {
        let n = 1 + round % 3;
        for _ in 0..n {
            insert(&w, "T", &format!("{{\"round\":{round}}}"));
        }
        let state = snapshot();
        assert_eq!(src.poll().unwrap(), Change::Appended, "round {round}");
        let recs = read_all(&mut *src);
        assert_eq!(recs.len(), n as usize);
        for r in &recs {
            assert_eq!(src.read_at(r.loc).unwrap().body, r.body);
        }
        assert_eq!(src.poll().unwrap(), Change::None);
        // Nothing the reader did changed the database or the WAL.
        assert_eq!(snapshot(), state, "round {round}");
        seen.extend(ids(&recs));
    }
    let all: Vec<i64> = {
        let mut st = w.prepare("SELECT id FROM events ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(seen, all);

    // The reader closing does not checkpoint or delete the WAL.
    let state = snapshot();
    drop(src);
    assert_eq!(snapshot(), state);
    // The writer can still checkpoint and close cleanly.
    w.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(w);
    assert!(!wal.exists());

    // A WAL database whose -wal/-shm are gone (clean close): reading it
    // leaves the database file's bytes alone. (SQLite itself creates the
    // -shm index and an empty -wal for the read-only reader.)
    let before = bytes(&path);
    let mut src = open_sqlite(&path);
    assert_eq!(ids(&read_all(&mut *src)), all);
    assert_eq!(src.poll().unwrap(), Change::None);
    drop(src);
    assert_eq!(bytes(&path), before);
    assert_eq!(bytes(&wal).map(|b| b.len()), Some(0));
}

/// A WAL database in a directory the reader cannot write, without its
/// -shm file: SQLite cannot open it read-only; the message says why. Only
/// meaningful when not running as root (root can write anyway).
#[test]
fn sqlite_wal_in_read_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("ro");
    fs::create_dir(&sub).unwrap();
    let path = sub.join("app.db");
    let w = ecto_db(&path);
    w.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    insert(&w, "T", "{}");
    drop(w);
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o555)).unwrap();
    let privileged = fs::write(sub.join("probe"), b"").is_ok();
    let result = log::open(&sqlite(&path)).map(|mut s| ids(&read_all(&mut *s)));
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    if privileged {
        eprintln!("running with write access to read-only directories; skipped");
        assert_eq!(result.unwrap(), vec![1]);
        return;
    }
    let err = result.err().unwrap().to_string();
    eprintln!("{err}");
    assert!(err.starts_with("app.db: "), "{err}");
    assert!(err.contains("WAL-mode database"), "{err}");
    assert!(err.contains("-shm"), "{err}");
}

// ------------------------------------------------------------ both kinds

/// One event as text: id, type, data, stream, time, meta.
type Row = (
    i64,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn jsonl_and_sqlite_copies_give_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Row> = vec![
        (
            1,
            "SignedUp",
            r#"{"email":"a@b.c","tags":["x","y"]}"#,
            Some("user-7"),
            Some("2026-11-26T10:00:00Z"),
            Some(r#"{"ip":"::1"}"#),
        ),
        (
            2,
            "Deposited",
            r#"{"amount":42,"rate":0.5,"neg":-3}"#,
            Some("acct-1"),
            None,
            None,
        ),
        (
            5,
            "Noted",
            r#""just text""#,
            None,
            Some("2026-11-26T10:00:02Z"),
            None,
        ),
        (9, "Empty", "null", None, None, Some("[1,2]")),
        (
            10,
            "Nested",
            r#"{"a":{"b":{"c":[{"d":null},true,false,1e3]}},"u":"é\u0000\n"}"#,
            Some("s"),
            Some("t"),
            Some("{}"),
        ),
    ];
    let jsonl_path = dir.path().join("events.jsonl");
    let mut text = String::new();
    let db_path = dir.path().join("app.db");
    let w = writer(&db_path);
    w.execute_batch(
        "CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT, data TEXT, stream TEXT, time TEXT, meta TEXT)",
    )
    .unwrap();
    for (id, ty, data, stream, time, meta) in &rows {
        let mut line = format!(r#"{{"id":{id},"type":{ty:?},"data":{data}"#);
        if let Some(s) = stream {
            line += &format!(r#","stream":{s:?}"#);
        }
        if let Some(t) = time {
            line += &format!(r#","time":{t:?}"#);
        }
        if let Some(m) = meta {
            line += &format!(r#","meta":{m}"#);
        }
        text += &line;
        text += "}\n";
        w.execute(
            "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (id, ty, data, stream, time, meta),
        )
        .unwrap();
    }
    write(&jsonl_path, text.as_bytes());
    let from_jsonl = events(&read_all(&mut *log::open(&jsonl(&jsonl_path)).unwrap()));
    let from_sqlite = events(&read_all(&mut *open_sqlite(&db_path)));
    assert_eq!(from_jsonl.len(), rows.len());
    assert_eq!(from_jsonl, from_sqlite);
    // And as the reducer sees them.
    let a: Vec<String> = from_jsonl.iter().map(|e| e.to_pval().to_json()).collect();
    let b: Vec<String> = from_sqlite.iter().map(|e| e.to_pval().to_json()).collect();
    assert_eq!(a, b);
}

// ------------------------------------------------------------- throughput

/// `cargo test --release --test sources -- --ignored --nocapture jsonl_throughput`
#[test]
#[ignore]
fn jsonl_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.jsonl");
    let n = 1_000_000;
    let mut text = String::with_capacity(n * 180);
    for i in 0..n {
        text += &format!(
            r#"{{"id":{},"type":"{}","stream":"user-{}","time":"2026-11-26T10:{:02}:{:02}Z","data":{{"email":"user{}@example.com","amount":{},"currency":"EUR","note":"n{}"}}}}"#,
            i + 1,
            ["SignedUp", "Deposited", "Withdrew", "Renamed"][i % 4],
            i % 500_000,
            (i / 60) % 60,
            i % 60,
            i % 500_000,
            i % 1000,
            i
        );
        text.push('\n');
    }
    write(&path, text.as_bytes());
    let mb = text.len() as f64 / 1e6;
    drop(text);
    for _ in 0..3 {
        let mut src = log::open(&jsonl(&path)).unwrap();
        let start = std::time::Instant::now();
        let mut count = 0usize;
        let mut bad = 0usize;
        src.read_new(None, &mut |r| {
            count += 1;
            bad += r.body.is_err() as usize;
        })
        .unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!((count, bad), (n, 0));
        eprintln!(
            "jsonl: {count} lines, {mb:.0} MB ({:.0} bytes/line) in {secs:.3} s: {:.0} lines/s, {:.0} MB/s",
            mb * 1e6 / n as f64,
            count as f64 / secs,
            mb / secs
        );
    }
    // The same events in SQLite, for comparison.
    let db = dir.path().join("bench.db");
    let w = writer(&db);
    w.execute_batch(
        "CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT, stream TEXT, time TEXT, data TEXT);",
    )
    .unwrap();
    let tx = w.unchecked_transaction().unwrap();
    let mut src = log::open(&jsonl(&path)).unwrap();
    src.read_new(None, &mut |r| {
        let e = r.body.unwrap();
        tx.execute(
            "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5)",
            (
                e.id,
                &*e.ty,
                e.stream.as_deref(),
                e.time.as_deref(),
                e.data.to_json(),
            ),
        )
        .unwrap();
    })
    .unwrap();
    tx.commit().unwrap();
    let mut src = log::open(&sqlite(&db)).unwrap();
    let start = std::time::Instant::now();
    let count = src.read_new(None, &mut |_| {}).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "sqlite: {count} rows in {secs:.3} s: {:.0} rows/s",
        count as f64 / secs
    );
}

#[test]
fn sources_tell_about_how_many_records_are_left() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite: the rowids after the last one read.
    let db = dir.path().join("log.db");
    let c = ecto_db(&db);
    for i in 0..100 {
        insert(&c, "T", &format!(r#"{{"n":{i}}}"#));
    }
    let mut src = open_sqlite(&db);
    assert_eq!(read(src.as_mut(), Some(30)).len(), 30);
    assert_eq!(src.unread_hint(), Some(70));
    read_all(src.as_mut());
    assert_eq!(src.unread_hint(), Some(0));
    insert(&c, "T", "{}");
    assert_eq!(read(src.as_mut(), Some(0)).len(), 0);
    assert_eq!(src.unread_hint(), Some(1));
    // JSONL: the bytes left over the bytes a line took so far.
    let mut text = String::new();
    for i in 0..100 {
        text += &format!("{{\"id\":{},\"type\":\"T\",\"data\":{{}}}}\n", 100 + i);
    }
    let (_, mut src) = open_jsonl(dir.path(), text.as_bytes());
    assert_eq!(read(src.as_mut(), Some(40)).len(), 40);
    assert_eq!(src.unread_hint(), Some(60));
}
