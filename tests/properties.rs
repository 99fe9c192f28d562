//! Properties of the core: diffs apply, checkpoints never change answers,
//! and the two kinds of source fold to the same states.

use evscope::diff::{apply, diff};
use evscope::image::{ImageOptions, MemoryImage};
use evscope::log::{self, Change, Event, Loc, LogSource, Record, SourceError, SourceKind, SourceSpec};
use evscope::reduce::{JqReducer, Reducer};
use evscope::value::PVal;
use evscope::value::Text;
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

// ---------- random JSON values ----------

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "a/b", "m~n", "", "ключ", "😀", "x y"]).prop_map(String::from)
}

fn leaf() -> impl Strategy<Value = PVal> {
    prop_oneof![
        Just(PVal::Null),
        any::<bool>().prop_map(PVal::Bool),
        (-5i64..5).prop_map(PVal::Int),
        any::<i64>().prop_map(PVal::Int),
        // Non-integral floats, so that an integer and a float never compare equal.
        (-1000i32..1000).prop_map(|i| PVal::Float(f64::from(i) + 0.25)),
        "[a-c\u{e9}\u{4e2d}/~]{0,4}".prop_map(PVal::from),
    ]
}

fn value() -> impl Strategy<Value = PVal> {
    leaf().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(PVal::arr),
            prop::collection::vec((key(), inner), 0..5).prop_map(|kvs| {
                PVal::Obj(
                    kvs.into_iter()
                        .map(|(k, v)| (evscope::value::Text::from(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

/// A value and a variant of it with one subtree replaced, so diffs are deep.
fn related_pair() -> impl Strategy<Value = (PVal, PVal)> {
    (value(), value(), any::<u64>()).prop_map(|(a, sub, seed)| {
        let b = replace_random_subtree(&a, sub, seed);
        (a, b)
    })
}

fn replace_random_subtree(v: &PVal, sub: PVal, seed: u64) -> PVal {
    match v {
        PVal::Obj(o) if !o.is_empty() && !seed.is_multiple_of(4) => {
            let k = o
                .keys()
                .nth((seed as usize / 4) % o.len())
                .cloned()
                .unwrap_or_else(|| Text::from("a"));
            let mut o = o.clone();
            let child = o.get(&k).cloned().unwrap_or(PVal::Null);
            o.insert(k, replace_random_subtree(&child, sub, seed / 7));
            PVal::Obj(o)
        }
        PVal::Arr(a) if !a.is_empty() && !seed.is_multiple_of(4) => {
            let i = (seed as usize / 4) % a.len();
            let mut a = a.clone();
            let child = a[i].clone();
            Arc::make_mut(&mut a)[i] = replace_random_subtree(&child, sub, seed / 7);
            PVal::Arr(a)
        }
        _ => sub,
    }
}

/// Apply our change list with an independent RFC 6902 implementation.
fn apply_with_json_patch(a: &PVal, changes: &[evscope::diff::Change]) -> serde_json::Value {
    let ops: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            let mut v = c.to_pval().to_serde();
            if let Some(o) = v.as_object_mut() {
                o.remove("old");
            }
            v
        })
        .collect();
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).expect("valid patch");
    let mut doc = a.to_serde();
    json_patch::patch(&mut doc, &patch).expect("patch applies");
    doc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn diff_applies_to_give_the_new_state((a, b) in related_pair()) {
        let changes = diff(&a, &b);
        prop_assert_eq!(&apply(&a, &changes).unwrap(), &b);
        prop_assert_eq!(apply_with_json_patch(&a, &changes), b.to_serde());
    }

    #[test]
    fn diff_of_unrelated_values_applies(a in value(), b in value()) {
        let changes = diff(&a, &b);
        prop_assert_eq!(apply_with_json_patch(&a, &changes), b.to_serde());
        prop_assert_eq!(changes.is_empty(), a == b);
    }

    #[test]
    fn diff_of_equal_states_is_empty(a in value()) {
        prop_assert!(diff(&a, &a).is_empty());
        let copy = PVal::from_json(&a.to_json()).unwrap();
        prop_assert!(diff(&a, &copy).is_empty());
    }
}

/// A chain of states, each the one before with a subtree replaced (so
/// later changes land below, above and beside earlier ones).
fn chain() -> impl Strategy<Value = Vec<PVal>> {
    (value(), prop::collection::vec((value(), any::<u64>()), 1..8)).prop_map(|(first, steps)| {
        let mut out = vec![first];
        for (sub, seed) in steps {
            let next = replace_random_subtree(out.last().unwrap(), sub, seed);
            out.push(next);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn composed_diffs_give_what_applying_them_one_by_one_gives(states in chain()) {
        let diffs: Vec<_> = states.windows(2).map(|w| diff(&w[0], &w[1])).collect();
        let (first, last) = (states.first().unwrap(), states.last().unwrap());
        let mut on = evscope::diff::Composed::default();
        for d in &diffs {
            on.push_all(d.clone()).unwrap();
        }
        // Applied to a state shared with another owner, which keeps its own.
        let mut s = first.clone();
        on.apply(&mut s).unwrap();
        prop_assert_eq!(&s, last);
        prop_assert_eq!(first, &states[0]);
        let mut back = evscope::diff::Composed::default();
        for d in diffs.iter().rev() {
            back.push_undo(d.clone()).unwrap();
        }
        let mut s = last.clone();
        back.apply(&mut s).unwrap();
        prop_assert_eq!(&s, first);
    }
}

// ---------- checkpoints ----------

/// A source over events held in memory, so the image can be tested alone.
/// The test keeps a handle on the records to append more later.
struct VecSource {
    records: Arc<Mutex<Vec<Record>>>,
    pos: usize,
}

impl VecSource {
    fn new(records: Vec<Record>) -> (VecSource, Arc<Mutex<Vec<Record>>>) {
        let shared = Arc::new(Mutex::new(records));
        (
            VecSource {
                records: shared.clone(),
                pos: 0,
            },
            shared,
        )
    }
}

impl LogSource for VecSource {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn read_new(&mut self, limit: Option<usize>, sink: &mut dyn FnMut(Record)) -> Result<usize, SourceError> {
        let records = self.records.lock().unwrap();
        let end = limit.map_or(records.len(), |n| (self.pos + n).min(records.len()));
        let n = end - self.pos;
        for r in &records[self.pos..end] {
            sink(r.clone());
        }
        self.pos = end;
        Ok(n)
    }
    fn read_at(&mut self, loc: Loc) -> Result<Record, SourceError> {
        match loc {
            Loc::Row { rowid } => Ok(self.records.lock().unwrap()[rowid as usize].clone()),
            _ => Err(SourceError("bad loc".into())),
        }
    }
    fn poll(&mut self) -> Result<Change, SourceError> {
        Ok(if self.records.lock().unwrap().len() > self.pos {
            Change::Appended
        } else {
            Change::None
        })
    }
    fn rewind(&mut self) {
        self.pos = 0;
    }
}

const TEST_REDUCER: &str = r#"
if $event.type == "set" then .kv[$event.data.k] = $event.data.v
elif $event.type == "add" then .n[$event.data.k] += $event.data.v
elif $event.type == "del" then del(.kv[$event.data.k])
elif $event.type == "push" then .list += [$event.data.v]
elif $event.type == "fail" then error("fail at \($event.id)")
elif $event.type == "two" then .two = ($event.data.v, $event.data.v + 1)
else . end
"#;

fn event_strategy() -> impl Strategy<Value = (String, String, i64)> {
    (
        // "two" has two outputs (the last is the new state); "fail" makes
        // folding in place go back to the last checkpoint.
        prop::sample::select(vec!["set", "add", "del", "push", "fail", "two", "other"]),
        prop::sample::select(vec!["a", "b", "c", "d"]),
        -100i64..100,
    )
        .prop_map(|(t, k, v)| (t.to_string(), k.to_string(), v))
}

fn records(events: &[(String, String, i64)]) -> Vec<Record> {
    events
        .iter()
        .enumerate()
        .map(|(i, (t, k, v))| {
            let data = PVal::from_json(&format!(r#"{{"k":"{k}","v":{v}}}"#)).unwrap();
            Record {
                loc: Loc::Row { rowid: i as i64 },
                body: Ok(Event {
                    id: i as i64 + 1,
                    ty: Text::from(t.as_str()),
                    data,
                    stream: None,
                    time: None,
                    meta: None,
                }),
            }
        })
        .collect()
}

fn plain_fold(reducer: &JqReducer, recs: &[Record]) -> Vec<PVal> {
    let mut state = PVal::empty_obj();
    let mut out = vec![state.clone()];
    for r in recs {
        if let Ok(ev) = &r.body
            && let Ok(next) = reducer.apply(&state, &ev.to_pval())
        {
            state = next;
        }
        out.push(state.clone());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_checkpoint_interval_gives_the_plain_fold(
        events in prop::collection::vec(event_strategy(), 0..120),
        interval in 1usize..40,
    ) {
        let reducer = JqReducer::compile(TEST_REDUCER, "test").unwrap();
        let recs = records(&events);
        let expected = plain_fold(&reducer, &recs);
        let mut image = MemoryImage::new(
            Box::new(VecSource::new(recs.clone()).0),
            Arc::new(JqReducer::compile(TEST_REDUCER, "test").unwrap()),
            PVal::empty_obj(),
            ImageOptions { checkpoint_interval: Some(interval), ..Default::default() },
        );
        image.load(&mut |_| {}).unwrap();
        prop_assert_eq!(image.len(), recs.len());
        prop_assert_eq!(image.last_state(), expected.last().unwrap());
        // Seek in a scrambled order, as a user scrubbing would.
        let n = recs.len();
        for k in 0..n {
            let i = (k * 7919) % n;
            prop_assert_eq!(&image.state_after(i).unwrap(), &expected[i + 1]);
            let changes = image.changes_at(i).unwrap();
            prop_assert_eq!(&apply(&expected[i], &changes).unwrap(), &expected[i + 1]);
        }
        let fails = events.iter().filter(|e| e.0 == "fail").count();
        prop_assert_eq!(image.error_count(), fails);
    }

    #[test]
    fn appending_extends_the_fold_without_refolding(
        events in prop::collection::vec(event_strategy(), 1..80),
        split in 0usize..80,
    ) {
        let reducer = JqReducer::compile(TEST_REDUCER, "test").unwrap();
        let recs = records(&events);
        let split = split.min(recs.len());
        let expected = plain_fold(&reducer, &recs);
        // A source that only has the first part, then gets the rest.
        let (source, shared) = VecSource::new(recs[..split].to_vec());
        let mut image = MemoryImage::new(
            Box::new(source),
            Arc::new(reducer),
            PVal::empty_obj(),
            ImageOptions { checkpoint_interval: Some(8), ..Default::default() },
        );
        image.load(&mut |_| {}).unwrap();
        prop_assert_eq!(image.last_state(), &expected[split]);
        shared.lock().unwrap().extend_from_slice(&recs[split..]);
        let change = image.refresh().unwrap();
        prop_assert_eq!(change, if split < recs.len() { Change::Appended } else { Change::None });
        prop_assert_eq!(image.len(), recs.len());
        prop_assert_eq!(image.last_state(), expected.last().unwrap());
        for i in 0..recs.len() {
            prop_assert_eq!(&image.state_after(i).unwrap(), &expected[i + 1]);
        }
    }
}

// ---------- JSONL and SQLite copies fold alike ----------

fn write_copies(
    dir: &std::path::Path,
    events: &[(String, String, i64)],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let jsonl = dir.join("log.jsonl");
    let db = dir.join("log.db");
    let mut text = String::new();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, type TEXT NOT NULL, data TEXT NOT NULL)",
    )
    .unwrap();
    for (i, (t, k, v)) in events.iter().enumerate() {
        let data = format!(r#"{{"k":"{k}","v":{v}}}"#);
        text.push_str(&format!(r#"{{"id":{},"type":"{t}","data":{data}}}"#, i + 1));
        text.push('\n');
        conn.execute(
            "INSERT INTO events (id, type, data) VALUES (?1, ?2, ?3)",
            rusqlite::params![i as i64 + 1, t, data],
        )
        .unwrap();
    }
    std::fs::write(&jsonl, text).unwrap();
    (jsonl, db)
}

fn image_of(path: &std::path::Path, kind: SourceKind) -> MemoryImage {
    let spec = SourceSpec {
        kind,
        path: path.to_path_buf(),
        display: path.display().to_string(),
        mapping: Default::default(),
        accept_partial_last_line: true,
    };
    let mut image = MemoryImage::new(
        log::open(&spec).unwrap(),
        Arc::new(JqReducer::compile(TEST_REDUCER, "test").unwrap()),
        PVal::empty_obj(),
        ImageOptions {
            checkpoint_interval: Some(5),
            ..Default::default()
        },
    );
    image.load(&mut |_| {}).unwrap();
    image
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn jsonl_and_sqlite_copies_fold_alike(events in prop::collection::vec(event_strategy(), 0..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (jsonl, db) = write_copies(dir.path(), &events);
        let mut a = image_of(&jsonl, SourceKind::Jsonl);
        let mut b = image_of(&db, SourceKind::Sqlite);
        prop_assert_eq!(a.len(), b.len());
        for i in 0..a.len() {
            prop_assert_eq!(a.state_after(i).unwrap(), b.state_after(i).unwrap());
        }
    }
}

// ---------- a memory budget changes speed, never answers ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_tiny_memory_budget_gives_the_plain_fold(
        events in prop::collection::vec(event_strategy(), 1..300),
        interval in 1usize..6,
        seeks in prop::collection::vec(any::<prop::sample::Index>(), 1..60),
        scratch in any::<bool>(),
    ) {
        let reducer = JqReducer::compile(TEST_REDUCER, "test").unwrap();
        let recs = records(&events);
        let expected = plain_fold(&reducer, &recs);
        // One byte: every checkpoint push is over budget, so far
        // checkpoints are thinned all the time (and far deltas dropped,
        // unless they are in a scratch file).
        let dir = tempfile::tempdir().unwrap();
        let mut image = MemoryImage::new(
            Box::new(VecSource::new(recs.clone()).0),
            Arc::new(reducer),
            PVal::empty_obj(),
            ImageOptions {
                checkpoint_interval: Some(interval),
                memory_budget: Some(1),
                scratch_dir: scratch.then(|| dir.path().to_path_buf()),
            },
        );
        image.load(&mut |_| {}).unwrap();
        let possible = recs.len() / interval + 1;
        if possible > 2 * 4 + 4 {
            prop_assert!(image.checkpoint_count() < possible, "nothing was thinned");
        }
        prop_assert_eq!(image.last_state(), expected.last().unwrap());
        // Seek around: each seek rebuilds checkpoints near it and thins far ones.
        for ix in seeks {
            let i = ix.index(recs.len());
            prop_assert_eq!(&image.state_after(i).unwrap(), &expected[i + 1]);
            prop_assert_eq!(&image.state_before(i).unwrap(), &expected[i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Seeks that replay thousands of events (read on a second thread)
    /// give the plain fold's states too, with and without a budget.
    #[test]
    fn long_replays_give_the_plain_fold(
        events in prop::collection::vec(event_strategy(), 2100..5000),
        tiny_budget in any::<bool>(),
        seeks in prop::collection::vec(any::<prop::sample::Index>(), 1..8),
    ) {
        let reducer = JqReducer::compile(TEST_REDUCER, "test").unwrap();
        let recs = records(&events);
        let expected = plain_fold(&reducer, &recs);
        let mut image = MemoryImage::new(
            Box::new(VecSource::new(recs.clone()).0),
            Arc::new(reducer),
            PVal::empty_obj(),
            ImageOptions {
                checkpoint_interval: Some(8192),
                memory_budget: tiny_budget.then_some(1),
                scratch_dir: None,
            },
        );
        image.load(&mut |_| {}).unwrap();
        for ix in seeks {
            let i = ix.index(recs.len());
            prop_assert_eq!(&image.state_after(i).unwrap(), &expected[i + 1]);
        }
        let i = recs.len() - 2;
        prop_assert_eq!(&image.state_before(i).unwrap(), &expected[i]);
    }
}
