//! The headless commands against the bundled logs and bad input.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn bank() -> (String, String, String) {
    (
        s(&example("bank.jsonl")),
        s(&example("bank.db")),
        s(&example("bank.jq")),
    )
}

fn ids(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["id"].as_i64())
        .collect()
}

fn state_at(log: &str, reducer: &str, id: i64) -> Value {
    let (code, out, err) = evscope(&["state", log, "--reducer", reducer, "--at", &id.to_string(), "-c"]);
    assert_eq!(code, 0, "{err}");
    json(&out)
}

/// Apply evscope's change list with the independent json-patch crate.
fn apply_changes(state: &Value, changes: &Value) -> Value {
    let ops: Vec<Value> = changes
        .as_array()
        .expect("diff prints an array")
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("old");
            c
        })
        .collect();
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).expect("diff is an RFC 6902 patch");
    let mut doc = state.clone();
    json_patch::patch(&mut doc, &patch).expect("patch applies");
    doc
}

#[test]
fn jsonl_and_sqlite_give_the_same_state() {
    let (jsonl, db, r) = bank();
    let (c1, a, _) = evscope(&["state", &jsonl, "--reducer", &r]);
    let (c2, b, _) = evscope(&["state", &db, "--reducer", &r]);
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(a, b);
    assert!(json(&a).is_object());
    // Pretty by default, keys sorted; -c is one line.
    assert!(a.lines().count() > 1);
    let (_, c, _) = evscope(&["state", &db, "--reducer", &r, "-c"]);
    assert_eq!(c.trim_end().lines().count(), 1);
    assert_eq!(json(&a), json(&c));
}

#[test]
fn diff_at_an_event_applies_to_the_state_before_it() {
    for name in ["saas", "bank", "cart"] {
        let log = example(&format!("{name}.jsonl"));
        let r = s(&example(&format!("{name}.jq")));
        let all = ids(&log);
        for k in [1, all.len() / 2, all.len() - 1] {
            let (prev, id) = (all[k - 1], all[k]);
            let (code, out, err) = evscope(&["diff", &s(&log), "--reducer", &r, "--at", &id.to_string()]);
            assert_eq!(code, 0, "{err}");
            let changes = json(&out);
            let before = state_at(&s(&log), &r, prev);
            let after = state_at(&s(&log), &r, id);
            assert_eq!(apply_changes(&before, &changes), after, "{name} event {id}");
        }
    }
}

#[test]
fn diff_between_two_events_applies() {
    let (jsonl, _, r) = bank();
    let all = ids(Path::new(&jsonl));
    let (a, b) = (all[10], all[all.len() - 5]);
    let (code, out, err) = evscope(&[
        "diff",
        &jsonl,
        "--reducer",
        &r,
        "--from",
        &a.to_string(),
        "--to",
        &b.to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let changes = json(&out);
    assert!(!changes.as_array().unwrap().is_empty());
    assert_eq!(
        apply_changes(&state_at(&jsonl, &r, a), &changes),
        state_at(&jsonl, &r, b)
    );
    // Changes are as deep as possible: no change replaces the whole state.
    assert!(changes.as_array().unwrap().iter().all(|c| c["path"] != ""));
    // Backwards works too.
    let (_, back, _) = evscope(&[
        "diff",
        &jsonl,
        "--reducer",
        &r,
        "--from",
        &b.to_string(),
        "--to",
        &a.to_string(),
    ]);
    assert_eq!(
        apply_changes(&state_at(&jsonl, &r, b), &json(&back)),
        state_at(&jsonl, &r, a)
    );
}

#[test]
fn a_reducer_error_changes_nothing_and_is_reported() {
    let (jsonl, _, r) = bank();
    let (code, out, _) = evscope(&["check", &jsonl, "--reducer", &r, "--json"]);
    assert_eq!(code, 1, "bank has overdrafts, so check fails");
    let errors: Vec<Value> = out
        .lines()
        .map(json)
        .filter(|v| v["kind"] == "reducer_error")
        .collect();
    assert!(!errors.is_empty());
    let first = &errors[0];
    assert!(
        first["message"].as_str().unwrap().contains("overdraft"),
        "{first}"
    );
    let id = first["id"].as_i64().unwrap();
    let (code, out, err) = evscope(&["diff", &jsonl, "--reducer", &r, "--at", &id.to_string()]);
    assert_eq!(code, 0);
    assert_eq!(json(&out), Value::Array(vec![]));
    assert!(err.contains("reducer failed"), "{err}");
    let (_, text, _) = evscope(&["check", &jsonl, "--reducer", &r]);
    assert!(text.contains(&format!("event {id}")), "{text}");
    assert!(text.contains("reducer errors"), "{text}");
}

#[test]
fn clean_logs_pass_check() {
    for name in ["saas", "cart"] {
        let (code, out, err) = evscope(&[
            "check",
            &s(&example(&format!("{name}.db"))),
            "--reducer",
            &s(&example(&format!("{name}.jq"))),
        ]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(
            out.contains("0 invalid, 0 reducer errors, 0 duplicate ids"),
            "{out}"
        );
    }
}

#[test]
fn events_filters() {
    let log = example("saas.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text.lines().map(json).collect();
    let ty = lines[3]["type"].as_str().unwrap().to_string();
    let want: Vec<&Value> = lines
        .iter()
        .filter(|v| {
            v["type"] == ty.as_str() && v["id"].as_i64() >= Some(100) && v["id"].as_i64() <= Some(900)
        })
        .collect();
    let (code, out, err) = evscope(&["events", &s(&log), "--type", &ty, "--from", "100", "--to", "900"]);
    assert_eq!(code, 0, "{err}");
    let got: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["id"], w["id"]);
        assert_eq!(g["data"], w["data"]);
        assert_eq!(g["type"], ty.as_str());
    }
    // --limit and --stream, on the SQLite copy.
    let stream = lines[0]["stream"].as_str().unwrap();
    let (_, out, _) = evscope(&[
        "events",
        &s(&example("saas.db")),
        "--stream",
        stream,
        "--limit",
        "2",
    ]);
    let got: Vec<Value> = out.lines().map(json).collect();
    assert!(!got.is_empty() && got.len() <= 2);
    assert!(got.iter().all(|v| v["stream"] == stream));
    // Several types.
    let (_, out, _) = evscope(&[
        "events",
        &s(&log),
        "--type",
        "UserSignedUp",
        "--type",
        "PlanChanged",
        "--limit",
        "50",
    ]);
    assert!(
        out.lines()
            .map(json)
            .all(|v| v["type"] == "UserSignedUp" || v["type"] == "PlanChanged")
    );
}

#[test]
fn standard_input_is_a_jsonl_source() {
    let (jsonl, _, r) = bank();
    let bytes = std::fs::read(&jsonl).unwrap();
    let (code, from_stdin, err) = evscope_stdin(&["state", "-", "--reducer", &r, "-c"], Some(&bytes));
    assert_eq!(code, 0, "{err}");
    let (_, from_file, _) = evscope(&["state", &jsonl, "--reducer", &r, "-c"]);
    assert_eq!(from_stdin, from_file);
    let (code, out, _) = evscope_stdin(&["events", "-", "--limit", "3"], Some(&bytes));
    assert_eq!((code, out.lines().count()), (0, 3));
}

#[test]
fn default_reducer_merges_data_per_stream() {
    let log = b"{\"id\":1,\"type\":\"A\",\"stream\":\"s1\",\"data\":{\"x\":1,\"n\":{\"a\":1}}}\n\
{\"id\":2,\"type\":\"B\",\"stream\":\"s1\",\"data\":{\"y\":2,\"n\":{\"b\":2}}}\n\
{\"id\":3,\"type\":\"C\",\"data\":{\"z\":3}}\n";
    let (code, out, err) = evscope_stdin(&["state", "-", "-c"], Some(log));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&out),
        serde_json::json!({"s1": {"x": 1, "y": 2, "n": {"a": 1, "b": 2}}, "C": {"z": 3}})
    );
}

#[test]
fn init_from_flag_and_from_the_reducer_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.jsonl");
    std::fs::write(
        &log,
        "{\"id\":1,\"type\":\"inc\",\"data\":{}}\n{\"id\":2,\"type\":\"inc\",\"data\":{}}\n",
    )
    .unwrap();
    let r = dir.path().join("r.jq");
    std::fs::write(&r, "# counts events\ndef init: {n: 10};\n.n += 1\n").unwrap();
    let (code, out, err) = evscope(&["state", &s(&log), "--reducer", &s(&r), "-c"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out), serde_json::json!({"n": 12}));
    let (_, out, _) = evscope(&[
        "state",
        &s(&log),
        "--reducer",
        &s(&r),
        "--init",
        "{\"n\":100}",
        "-c",
    ]);
    assert_eq!(json(&out), serde_json::json!({"n": 102}));
    let (_, out, _) = evscope(&["state", &s(&log), "--reducer-expr", ".n += 1", "-c"]);
    assert_eq!(json(&out), serde_json::json!({"n": 2}));
    let (code, _, err) = evscope(&["state", &s(&log), "--reducer-expr", ".", "--init", "{nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("--init"), "{err}");
}

// ---------- bad input: a clear message, the right exit code, no panic ----------

fn assert_no_panic(err: &str) {
    assert!(!err.contains("panicked"), "evscope panicked: {err}");
}

#[test]
fn malformed_lines_are_reported_with_file_and_line() {
    let bad = example("bad.jsonl");
    let (code, out, err) = evscope(&["check", &s(&bad)]);
    assert_no_panic(&err);
    assert_eq!(code, 1);
    let name = "bad.jsonl:";
    let invalid: Vec<&str> = out.lines().filter(|l| l.contains("invalid event")).collect();
    assert!(invalid.len() >= 4, "{out}");
    assert!(invalid.iter().all(|l| l.contains(name)), "{out}");
    assert!(out.contains("UTF-8"), "bad UTF-8 is named: {out}");
    assert!(
        out.to_lowercase().contains("truncated") || out.contains("newline"),
        "truncated last line: {out}"
    );
    // The other commands still work and say what they skipped.
    let (code, out, err) = evscope(&["state", &s(&bad)]);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out).is_object());
    assert!(err.contains("invalid event"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let (code, _, err) = evscope(&["state", "/nonexistent/dir/events.jsonl"]);
    assert_no_panic(&err);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/dir/events.jsonl"), "{err}");
    let (code, _, err) = evscope(&["state", "/nonexistent/app.db"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/app.db"), "{err}");
    assert!(!Path::new("/nonexistent/app.db").exists());
}

#[test]
fn missing_tables_and_columns_are_named() {
    let (_, db, _) = bank();
    let (code, _, err) = evscope(&["state", &db, "--table", "nope"]);
    assert_no_panic(&err);
    assert_eq!(code, 1);
    assert!(err.contains("nope") && err.contains("events"), "{err}");
    let (code, _, err) = evscope(&["events", &db, "--type-col", "kind"]);
    assert_eq!(code, 1);
    assert!(err.contains("kind"), "{err}");
    let (code, _, err) = evscope(&["events", &db, "--table", "events\"; DROP TABLE events; --"]);
    assert_eq!(code, 1);
    assert_no_panic(&err);
}

#[test]
fn a_reducer_that_does_not_compile_is_reported_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("broken.jq");
    std::fs::write(&r, "# fine\n.a += 1\n| .b = (1 +\n").unwrap();
    // The log does not exist: the reducer is checked first.
    let (code, _, err) = evscope(&["state", "/nonexistent.jsonl", "--reducer", &s(&r)]);
    assert_no_panic(&err);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.jq:"), "names the file: {err}");
    assert!(
        err.contains(":3:") || err.contains(":4:"),
        "names the line: {err}"
    );
    let (code, _, err) = evscope(&[
        "state",
        "/nonexistent.jsonl",
        "--reducer-expr",
        "nosuchfunction(1)",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("nosuchfunction"), "{err}");
}

#[test]
fn an_unknown_id_names_the_nearest() {
    let (jsonl, _, r) = bank();
    let all = ids(Path::new(&jsonl));
    let past = all.last().unwrap() + 1000;
    let (code, _, err) = evscope(&["state", &jsonl, "--reducer", &r, "--at", &past.to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&past.to_string()) && err.contains(&all.last().unwrap().to_string()),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let (jsonl, _, _) = bank();
    assert_eq!(evscope(&["diff", &jsonl]).0, 2);
    assert_eq!(evscope(&["state", &jsonl, "--at", "notanumber"]).0, 2);
    assert_eq!(evscope(&["state", "events.txt"]).0, 2);
    assert_eq!(evscope(&["frobnicate-nothing", "--bogus"]).0, 2);
}

// ---------- never writes to the log ----------

fn copy_db(dir: &Path) -> PathBuf {
    let db = dir.join("bank.db");
    std::fs::copy(example("bank.db"), &db).unwrap();
    db
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_subcommand_leaves_the_database_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_db(dir.path());
    let before = checksum(&db);
    let dbs = s(&db);
    let r = s(&example("bank.jq"));
    for args in [
        vec!["state", &dbs, "--reducer", &r],
        vec!["state", &dbs, "--reducer", &r, "--at", "5"],
        vec!["diff", &dbs, "--reducer", &r, "--at", "5"],
        vec!["diff", &dbs, "--reducer", &r, "--from", "3", "--to", "9"],
        vec!["events", &dbs, "--limit", "10"],
        vec!["check", &dbs, "--reducer", &r],
        vec!["state", &dbs, "--table", "nope"],
    ] {
        let (_, _, err) = evscope(&args);
        assert_no_panic(&err);
        assert_eq!(checksum(&db), before, "{args:?} changed the database");
        assert_eq!(
            files_in(dir.path()),
            vec!["bank.db".to_string()],
            "{args:?} left files behind"
        );
    }
}

#[test]
fn reading_while_another_connection_inserts_changes_nothing_of_ours() {
    // Two copies get the same inserts; evscope reads one of them all along.
    // Afterwards both hold identical bytes: evscope wrote nothing.
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    let reference = dir.path().join("reference");
    std::fs::create_dir_all(&watched).unwrap();
    std::fs::create_dir_all(&reference).unwrap();
    let (a, b) = (copy_db(&watched), copy_db(&reference));
    let insert_all = |path: PathBuf| {
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            let max: i64 = conn
                .query_row("SELECT max(id) FROM events", [], |r| r.get(0))
                .unwrap();
            for i in 1..=300i64 {
                conn.execute(
                    "INSERT INTO events (id, type, stream, time, data) VALUES (?1, 'Deposited', 'account-1', '2026-02-01T00:00:00Z', ?2)",
                    rusqlite::params![max + i, format!("{{\"account\":\"account-1\",\"amount\":{i}}}")],
                )
                .unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            // Move everything into the database file; a reader may make the
            // checkpoint report busy for a moment.
            for _ in 0..200 {
                let busy: i64 = conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                    .unwrap();
                if busy == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let writer = insert_all(a.clone());
    let r = s(&example("bank.jq"));
    let mut runs = 0;
    while !writer.is_finished() || runs < 3 {
        for args in [
            vec!["state", a.to_str().unwrap(), "--reducer", &r, "-c"],
            vec!["events", a.to_str().unwrap()],
        ] {
            let (code, out, err) = evscope(&args);
            assert_no_panic(&err);
            // The writer may hold the database briefly; evscope either reads
            // a consistent snapshot or says it is busy.
            assert!(
                code == 0 || err.contains("locked") || err.contains("busy"),
                "{args:?}: {err}"
            );
            if code == 0 && args[0] == "state" {
                assert!(json(&out).is_object());
            }
        }
        runs += 1;
    }
    writer.join().unwrap();
    insert_all(b.clone()).join().unwrap();
    // Only the database file is compared: a WAL-mode reader may leave SQLite's
    // empty -wal/-shm companions behind, which hold none of the log.
    assert_eq!(
        checksum(&a),
        checksum(&b),
        "the watched database differs from the untouched copy"
    );
}

#[test]
fn a_memory_budget_changes_no_answer() {
    let (jsonl, _, r) = bank();
    for at in ["40", "400", "999"] {
        let (c1, a, _) = evscope(&["state", &jsonl, "--reducer", &r, "--at", at, "-c"]);
        let (c2, b, err) = evscope(&[
            "state",
            &jsonl,
            "--reducer",
            &r,
            "--at",
            at,
            "-c",
            "--memory",
            "1K",
            "--checkpoint-every",
            "3",
        ]);
        assert_eq!((c1, c2), (0, 0), "{err}");
        assert_eq!(a, b);
    }
    let (code, _, err) = evscope(&["state", &jsonl, "--memory", "lots"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = evscope(&["state", &jsonl, "--reducer", &r, "--memory", "none", "-c"]);
    assert_eq!(code, 0);
}
