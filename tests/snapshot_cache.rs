//! The snapshot cache: a reopened log answers exactly as a fresh fold,
//! whatever happened to the log, the reducer or the cache file meanwhile.
//!
//! Every test runs the binary with its own cache directory
//! (`EVSCOPE_CACHE_DIR`), saves even tiny logs (`EVSCOPE_CACHE_MIN_EVENTS=1`)
//! and asks what the cache did (`EVSCOPE_DEBUG_CACHE=1`, on stderr), so a
//! test fails if the cache is never used as well as if it is trusted when
//! it should not be.

mod common;
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A temporary directory holding the logs and the cache.
struct Env {
    dir: tempfile::TempDir,
}

/// What one run printed.
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cache_dir(&self) -> PathBuf {
        self.path("cache")
    }

    /// The snapshot files in the cache directory.
    fn snapshots(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.cache_dir()) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "evsnap"))
            .collect();
        v.sort();
        v
    }

    /// The one snapshot file.
    fn snapshot(&self) -> PathBuf {
        let v = self.snapshots();
        assert_eq!(v.len(), 1, "expected one snapshot, found {v:?}");
        v[0].clone()
    }

    fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evscope"));
        cmd.args(args)
            .env("EVSCOPE_CACHE_DIR", self.cache_dir())
            .env("EVSCOPE_CACHE_MIN_EVENTS", "1")
            .env("EVSCOPE_DEBUG_CACHE", "1")
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run evscope");
        Run {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The queries compared between a cached and a fresh run: the last state,
/// the state at several ids, a diff at an event and between two, and the
/// problems `check` reports.
fn queries(ids: &[i64]) -> Vec<Vec<String>> {
    let mut q = vec![vec!["state".to_string(), "-c".into()]];
    for id in ids {
        q.push(vec!["state".into(), "-c".into(), "--at".into(), id.to_string()]);
        q.push(vec!["diff".into(), "-c".into(), "--at".into(), id.to_string()]);
    }
    if let [a, .., b] = ids {
        q.push(vec![
            "diff".into(),
            "-c".into(),
            "--from".into(),
            a.to_string(),
            "--to".into(),
            b.to_string(),
        ]);
    }
    q.push(vec!["check".into(), "--json".into()]);
    q
}

/// Run one query on `log` (the subcommand first, then the log, then the
/// rest), with the cache or without it.
fn query(env: &Env, q: &[String], log: &str, extra: &[&str], cached: bool) -> Run {
    let mut args: Vec<&str> = vec![q[0].as_str(), log];
    args.extend(q[1..].iter().map(String::as_str));
    args.extend_from_slice(extra);
    if !cached {
        args.push("--no-cache");
    }
    env.run(&args)
}

/// Every query gives the same exit code, output and warnings with the cache
/// as without it. Returns the cache's debug lines of all the cached runs.
fn assert_same_answers(env: &Env, log: &str, extra: &[&str], ids: &[i64]) -> String {
    let mut debug = String::new();
    for q in queries(ids) {
        let cached = query(env, &q, log, extra, true);
        let fresh = query(env, &q, log, extra, false);
        assert_eq!(
            cached.code, fresh.code,
            "{q:?}: exit codes differ\n{}",
            cached.err
        );
        assert_eq!(cached.out, fresh.out, "{q:?}: outputs differ\n{}", cached.err);
        let warnings = |r: &Run| {
            r.err
                .lines()
                .filter(|l| !l.starts_with("evscope: cache:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(warnings(&cached), warnings(&fresh), "{q:?}: messages differ");
        assert!(
            !fresh.err.contains("evscope: cache:"),
            "--no-cache used the cache: {}",
            fresh.err
        );
        debug.push_str(&cached.err);
    }
    debug
}

/// The first `n` lines of the bank log as a new JSONL file.
fn bank_jsonl(env: &Env, name: &str, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(example("bank.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().take(n).collect();
    let path = env.path(name);
    std::fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
    path
}

/// Append lines `from..to` of the bank log to `path`.
fn append_bank_lines(path: &Path, from: usize, to: usize) {
    let text = std::fs::read_to_string(example("bank.jsonl")).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for line in text.lines().skip(from).take(to - from) {
        writeln!(f, "{line}").unwrap();
    }
}

/// A copy of the bank database holding its first `n` rows.
fn bank_db(env: &Env, name: &str, n: i64) -> PathBuf {
    let path = env.path(name);
    std::fs::copy(example("bank.db"), &path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM events WHERE id > ?1", [n]).unwrap();
    conn.execute_batch("VACUUM").unwrap();
    path
}

/// Copy rows `from+1..=to` of the bank database into `path`.
fn append_bank_rows(path: &Path, from: i64, to: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute("ATTACH ?1 AS src", [s(&example("bank.db"))])
        .unwrap();
    conn.execute(
        "INSERT INTO events SELECT * FROM src.events WHERE id > ?1 AND id <= ?2 ORDER BY id",
        [from, to],
    )
    .unwrap();
}

fn reducer() -> String {
    s(&example("bank.jq"))
}

const IDS: [i64; 5] = [1, 159, 400, 777, 1000];

/// Fold once so the snapshot is saved; returns the debug output.
fn prime(env: &Env, log: &str, extra: &[&str]) -> String {
    let mut args = vec!["state", log, "-c"];
    args.extend_from_slice(extra);
    let r = env.run(&args);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.err.contains("evscope: cache: saved"), "not saved: {}", r.err);
    r.err
}

#[test]
fn a_cached_reopen_answers_like_a_fresh_fold() {
    let env = Env::new();
    let r = reducer();
    for log in [
        bank_jsonl(&env, "bank.jsonl", 1000),
        bank_db(&env, "bank.db", 1000),
    ] {
        let log = s(&log);
        prime(&env, &log, &["--reducer", &r]);
        let debug = assert_same_answers(&env, &log, &["--reducer", &r], &IDS);
        // Every cached run restored all 1000 events from the snapshot (a
        // test that would pass without the cache fails here).
        let runs = queries(&IDS).len();
        assert_eq!(
            debug.matches("evscope: cache: restored 1000 events").count(),
            runs,
            "{debug}"
        );
        assert!(!debug.contains("saved"), "nothing new, nothing to save: {debug}");
    }
    assert_eq!(env.snapshots().len(), 2);
}

#[test]
fn invalid_lines_and_a_last_line_without_newline_survive_a_restore() {
    let env = Env::new();
    // bad.jsonl has invalid lines and ends without a newline.
    let log = env.path("bad.jsonl");
    std::fs::copy(example("bad.jsonl"), &log).unwrap();
    let log = s(&log);
    prime(&env, &log, &[]);
    let debug = assert_same_answers(&env, &log, &[], &[1, 4, 11]);
    assert!(debug.contains("restored 11 events"), "{debug}");
    // Opened by another spelling of its path: the invalid lines' places
    // name the file as it was named this time.
    let other = format!("{}/./bad.jsonl", env.dir.path().display());
    let debug = assert_same_answers(&env, &other, &[], &[1, 4, 11]);
    assert!(debug.contains("restored 11 events"), "{debug}");
    // The last line, read without its newline, is extended: the snapshot
    // ended inside a line that changed.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"x\"}}\n{\"id\":99,\"type\":\"T\"}\n").unwrap();
    let debug = assert_same_answers(&env, &log, &[], &[1, 99]);
    assert!(debug.contains("ignored a snapshot"), "{debug}");
}

#[test]
fn events_appended_after_the_snapshot_are_folded_on_top_of_it() {
    let env = Env::new();
    let r = reducer();
    let jsonl = bank_jsonl(&env, "bank.jsonl", 600);
    let db = bank_db(&env, "bank.db", 600);
    for log in [&jsonl, &db] {
        prime(&env, &s(log), &["--reducer", &r]);
    }
    append_bank_lines(&jsonl, 600, 1000);
    append_bank_rows(&db, 600, 1000);
    for log in [&jsonl, &db] {
        let log = s(log);
        // The first reopen restores 600 events and folds 400 more (and,
        // 400 being many, saves the longer log); the answers include the
        // appended events and equal a fresh fold's.
        let first = env.run(&["state", &log, "-c", "--reducer", &r]);
        assert!(first.err.contains("restored 600 events"), "{}", first.err);
        assert!(first.err.contains("saved 1000 events"), "{}", first.err);
        let debug = assert_same_answers(&env, &log, &["--reducer", &r], &IDS);
        assert!(debug.contains("restored 1000 events"), "{debug}");
    }
}

#[test]
fn a_few_appended_events_do_not_rewrite_a_big_snapshot() {
    let env = Env::new();
    let r = reducer();
    let log = bank_jsonl(&env, "bank.jsonl", 990);
    let log_s = s(&log);
    prime(&env, &log_s, &["--reducer", &r]);
    append_bank_lines(&log, 990, 1000);
    let debug = assert_same_answers(&env, &log_s, &["--reducer", &r], &[1, 995, 1000]);
    assert!(debug.contains("restored 990 events"), "{debug}");
    assert!(!debug.contains("saved"), "{debug}");
}

#[test]
fn a_truncated_jsonl_log_is_detected() {
    let env = Env::new();
    let r = reducer();
    let log = bank_jsonl(&env, "bank.jsonl", 1000);
    let log_s = s(&log);
    prime(&env, &log_s, &["--reducer", &r]);
    // Cut to its first 600 lines, in place.
    let text = std::fs::read_to_string(&log).unwrap();
    let keep: usize = text.lines().take(600).map(|l| l.len() + 1).sum();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(keep as u64)
        .unwrap();
    let first = env.run(&["state", &log_s, "-c", "--reducer", &r]);
    assert!(first.err.contains("ignored a snapshot"), "{}", first.err);
    assert!(first.err.contains("truncated"), "{}", first.err);
    assert!(first.err.contains("saved 600 events"), "{}", first.err);
    let debug = assert_same_answers(&env, &log_s, &["--reducer", &r], &[1, 159, 600]);
    assert!(debug.contains("restored 600 events"), "{debug}");
}

#[test]
fn a_rewritten_jsonl_log_of_the_same_or_larger_size_is_detected() {
    let env = Env::new();
    let r = reducer();
    let log = bank_jsonl(&env, "bank.jsonl", 1000);
    let log_s = s(&log);
    let original = std::fs::read_to_string(&log).unwrap();
    // The same lines in reverse order: the same size, other content,
    // written in place (same inode).
    let reversed: String = original.lines().rev().map(|l| format!("{l}\n")).collect();
    assert_eq!(reversed.len(), original.len());
    // One amount changed, same length, everything else equal.
    let one_digit = original.replacen("\"amount\":105000", "\"amount\":105001", 1);
    assert_ne!(one_digit, original);
    // Other content, longer.
    let longer = format!(
        "{reversed}{}",
        original
            .lines()
            .take(10)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    for (what, text) in [
        ("reversed", &reversed),
        ("one digit", &one_digit),
        ("longer", &longer),
    ] {
        std::fs::write(&log, &original).unwrap();
        prime(&env, &log_s, &["--reducer", &r]);
        std::fs::write(&log, text).unwrap();
        let first = env.run(&["state", &log_s, "-c", "--reducer", &r, "--at", "1"]);
        assert!(first.err.contains("ignored a snapshot"), "{what}: {}", first.err);
        let debug = assert_same_answers(&env, &log_s, &["--reducer", &r], &[1, 400, 1000]);
        assert!(debug.contains("restored"), "{what}: {debug}");
    }
}

#[test]
fn a_replaced_log_file_is_detected() {
    let env = Env::new();
    let r = reducer();
    let log = bank_jsonl(&env, "bank.jsonl", 1000);
    let log_s = s(&log);
    prime(&env, &log_s, &["--reducer", &r]);
    // Byte for byte the same content, but a new file renamed over the old
    // one (as editors and log rotation do): another inode, not trusted.
    let copy = bank_jsonl(&env, "new.jsonl", 1000);
    std::fs::rename(&copy, &log).unwrap();
    let first = env.run(&["state", &log_s, "-c", "--reducer", &r]);
    assert!(first.err.contains("ignored a snapshot"), "{}", first.err);
    assert_same_answers(&env, &log_s, &["--reducer", &r], &[1, 1000]);
}

#[test]
fn deleted_rows_and_a_replaced_database_are_detected() {
    let env = Env::new();
    let r = reducer();
    let db = bank_db(&env, "bank.db", 1000);
    let db_s = s(&db);
    let cases: [(&str, &dyn Fn()); 3] = [
        ("rows deleted in the middle", &|| {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute("DELETE FROM events WHERE id IN (10, 500)", [])
                .unwrap();
        }),
        ("the last rows deleted", &|| {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute("DELETE FROM events WHERE id > 900", []).unwrap();
        }),
        ("the file replaced", &|| {
            let other = bank_db(&env, "other.db", 1000);
            std::fs::rename(&other, &db).unwrap();
        }),
    ];
    for (what, change) in cases {
        let fresh = bank_db(&env, "fresh.db", 1000);
        std::fs::rename(&fresh, &db).unwrap();
        prime(&env, &db_s, &["--reducer", &r]);
        change();
        let first = env.run(&["state", &db_s, "-c", "--reducer", &r]);
        assert!(first.err.contains("ignored a snapshot"), "{what}: {}", first.err);
        let debug = assert_same_answers(&env, &db_s, &["--reducer", &r], &[1, 9, 11, 499, 501, 900]);
        assert!(debug.contains("restored"), "{what}: {debug}");
    }
}

#[test]
fn another_reducer_or_initial_state_never_uses_the_snapshot() {
    let env = Env::new();
    let r = reducer();
    let log = s(&bank_jsonl(&env, "bank.jsonl", 1000));
    prime(&env, &log, &["--reducer", &r]);
    // The same reducer with one more step: another program text.
    let changed = env.path("changed.jq");
    let text = std::fs::read_to_string(&r).unwrap();
    std::fs::write(&changed, format!("{text}\n| .seen = ((.seen // 0) + 1)\n")).unwrap();
    let changed = s(&changed);
    for extra in [
        vec!["--reducer", changed.as_str()],
        vec!["--reducer", r.as_str(), "--init", r#"{"accounts":{},"seen":0}"#],
        vec!["--reducer-expr", ".n += 1"],
    ] {
        let first = env.run(&[&["state", log.as_str(), "-c"][..], &extra].concat());
        assert!(first.err.contains("no snapshot at"), "{extra:?}: {}", first.err);
        assert!(!first.err.contains("restored"), "{extra:?}: {}", first.err);
        let debug = assert_same_answers(&env, &log, &extra, &[1, 500, 1000]);
        assert!(debug.contains("restored 1000 events"), "{extra:?}: {debug}");
    }
    // One snapshot per reducer, none overwritten.
    assert_eq!(env.snapshots().len(), 4);
    let again = env.run(&["state", &log, "-c", "--reducer", &r]);
    assert!(again.err.contains("restored 1000 events"), "{}", again.err);
}

#[test]
fn a_corrupt_snapshot_is_ignored_and_replaced() {
    let env = Env::new();
    let r = reducer();
    let log = s(&bank_jsonl(&env, "bank.jsonl", 1000));
    prime(&env, &log, &["--reducer", &r]);
    let good = std::fs::read(env.snapshot()).unwrap();
    let mut garbage = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..good.len() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x5a;
        b
    };
    // The header (88 bytes, the payload's length at 48) and the payload;
    // the deltas after it are checked on their own (see below).
    let payload_end = 88 + u64::from_le_bytes(good[48..56].try_into().unwrap()) as usize;
    assert!(payload_end < good.len(), "no deltas after the payload");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a byte flipped in the header", flip(20)),
        ("a byte flipped in the middle", flip(payload_end / 2)),
        ("the payload's last byte flipped", flip(payload_end - 1)),
        ("truncated by half", good[..payload_end / 2].to_vec()),
        ("one byte short of the payload", good[..payload_end - 1].to_vec()),
        ("empty", Vec::new()),
        ("random garbage", garbage),
        (
            "garbage after a valid header",
            [&good[..96], &vec![7u8; 5000][..]].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let path = env.snapshot();
        std::fs::write(&path, &bytes).unwrap();
        let first = env.run(&["state", &log, "-c", "--reducer", &r, "--at", "400"]);
        assert_eq!(first.code, 0, "{what}: {}", first.err);
        assert!(first.err.contains("ignored a snapshot"), "{what}: {}", first.err);
        assert!(
            first.err.contains("saved 1000 events"),
            "{what}: replaced: {}",
            first.err
        );
        assert_eq!(std::fs::read(env.snapshot()).unwrap().len(), good.len(), "{what}");
        let debug = assert_same_answers(&env, &log, &["--reducer", &r], &[1, 400, 1000]);
        assert!(debug.contains("restored 1000 events"), "{what}: {debug}");
    }
    // Damage after the payload (the deltas, their table, the trailer) does
    // not cost the snapshot, only its deltas: the answers stay the same.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a byte flipped in the deltas", flip(payload_end + 3)),
        ("the last byte flipped", flip(good.len() - 1)),
        ("one byte short", good[..good.len() - 1].to_vec()),
        ("one byte more", [&good[..], &[0]].concat()),
        ("the deltas cut off", good[..payload_end].to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(env.snapshot(), &bytes).unwrap();
        let debug = assert_same_answers(&env, &log, &["--reducer", &r], &[1, 400, 1000]);
        assert!(debug.contains("restored 1000 events"), "{what}: {debug}");
        assert!(!debug.contains("ignored a snapshot"), "{what}: {debug}");
    }
}

#[test]
fn a_snapshot_of_another_log_copied_over_is_refused() {
    let env = Env::new();
    let r = reducer();
    let a = s(&bank_jsonl(&env, "a.jsonl", 1000));
    let b = s(&bank_jsonl(&env, "b.jsonl", 500));
    prime(&env, &a, &["--reducer", &r]);
    let snap_a = env.snapshot();
    prime(&env, &b, &["--reducer", &r]);
    let snap_b = env.snapshots().into_iter().find(|p| *p != snap_a).unwrap();
    // A's snapshot under B's name: its header names another key.
    std::fs::copy(&snap_a, &snap_b).unwrap();
    let first = env.run(&["state", &b, "-c", "--reducer", &r]);
    assert!(first.err.contains("ignored a snapshot"), "{}", first.err);
    assert!(first.err.contains("another log or reducer"), "{}", first.err);
    assert_same_answers(&env, &b, &["--reducer", &r], &[1, 500]);
}

#[test]
fn small_logs_no_cache_and_standard_input_write_nothing() {
    let env = Env::new();
    let r = reducer();
    let log = s(&bank_jsonl(&env, "bank.jsonl", 1000));
    // Below the threshold (1000 < 5000): folded, not saved.
    let small = env.run_env(
        &["state", &log, "-c", "--reducer", &r],
        &[("EVSCOPE_CACHE_MIN_EVENTS", "5000")],
    );
    assert_eq!(small.code, 0, "{}", small.err);
    assert!(!small.err.contains("saved"), "{}", small.err);
    let off = env.run(&["state", &log, "-c", "--reducer", &r, "--no-cache"]);
    assert_eq!(off.code, 0, "{}", off.err);
    assert!(env.snapshots().is_empty());
    let text = std::fs::read(&log).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evscope"))
        .args(["state", "-", "-c", "--reducer", &r])
        .env("EVSCOPE_CACHE_DIR", env.cache_dir())
        .env("EVSCOPE_CACHE_MIN_EVENTS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&text)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert!(env.snapshots().is_empty());
}

#[test]
fn a_cache_directory_that_cannot_be_written_only_warns() {
    let env = Env::new();
    let r = reducer();
    let log = s(&bank_jsonl(&env, "bank.jsonl", 1000));
    let expected = env.run(&["state", &log, "-c", "--reducer", &r, "--no-cache"]);
    // A regular file where the directory should be.
    let blocker = env.path("blocker");
    std::fs::write(&blocker, "").unwrap();
    let cache = blocker.join("evscope");
    let got = env.run_env(
        &["state", &log, "-c", "--reducer", &r],
        &[("EVSCOPE_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert_eq!(got.code, 0, "{}", got.err);
    assert_eq!(got.out, expected.out);
    assert!(
        got.err.contains("warning: could not save the snapshot cache"),
        "{}",
        got.err
    );
}

#[test]
fn the_default_cache_directory_follows_xdg_and_home() {
    let env = Env::new();
    let r = reducer();
    let log = s(&bank_jsonl(&env, "bank.jsonl", 1000));
    let xdg = env.path("xdg");
    let home = env.path("home");
    let run = |vars: &[(&str, &Path)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evscope"));
        cmd.args(["state", &log, "-c", "--reducer", &r])
            .env_remove("EVSCOPE_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("EVSCOPE_CACHE_MIN_EVENTS", "1");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        assert!(cmd.output().unwrap().status.success());
    };
    run(&[("XDG_CACHE_HOME", &xdg), ("HOME", &home)]);
    assert!(xdg.join("evscope").read_dir().unwrap().next().is_some());
    assert!(!home.join(".cache").exists());
    run(&[("HOME", &home)]);
    assert!(home.join(".cache/evscope").read_dir().unwrap().next().is_some());
    // Never next to the log.
    let beside: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "evsnap"))
        .collect();
    assert!(beside.is_empty());
}
