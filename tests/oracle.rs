//! States computed by evscope equal what `/usr/bin/jq` computes with
//! `reduce inputs as $event (INIT; . as $s | try (REDUCER) catch $s)`.

mod common;
use common::*;
use serde_json::Value;

/// Compare evscope's state after the k-th line of `log` with jq's.
fn assert_state_matches(log_arg: &str, jsonl: &[u8], reducer_file: Option<&str>, reducer: &str, k: usize) {
    let prefix = first_lines(jsonl, k);
    let last_line = prefix
        .split(|&c| c == b'\n')
        .rfind(|l| !l.is_empty())
        .expect("non-empty prefix");
    let id = serde_json::from_slice::<Value>(last_line).expect("line is JSON")["id"]
        .as_i64()
        .expect("line has an id");
    let expected = jq_fold(reducer, None, &prefix);
    let id_s = id.to_string();
    let mut args = vec!["state", log_arg, "--at", &id_s, "-c"];
    let expr;
    match reducer_file {
        Some(f) => args.extend(["--reducer", f]),
        None => {
            expr = reducer.to_string();
            args.extend(["--reducer-expr", &expr]);
        }
    }
    let (code, out, err) = evscope(&args);
    assert_eq!(code, 0, "evscope {args:?} failed: {err}");
    let got: Value = serde_json::from_str(&out).expect("evscope printed JSON");
    assert!(
        json_eq(&got, &expected),
        "state after id {id} of {log_arg} differs from jq\n evscope: {got}\n jq:      {expected}"
    );
}

fn check_bundled(name: &str) {
    let jsonl_path = example(&format!("{name}.jsonl"));
    let db_path = example(&format!("{name}.db"));
    let reducer_path = example(&format!("{name}.jq"));
    let jsonl = std::fs::read(&jsonl_path).expect("bundled log");
    let reducer = std::fs::read_to_string(&reducer_path).expect("bundled reducer");
    let lines = jsonl.iter().filter(|&&c| c == b'\n').count();
    let r = reducer_path.to_str().unwrap();
    for k in [1, lines / 3, (2 * lines) / 3, lines] {
        assert_state_matches(jsonl_path.to_str().unwrap(), &jsonl, Some(r), &reducer, k.max(1));
    }
    // The SQLite copy holds the same events.
    assert_state_matches(db_path.to_str().unwrap(), &jsonl, Some(r), &reducer, lines);
    assert_state_matches(db_path.to_str().unwrap(), &jsonl, Some(r), &reducer, lines / 2);
}

#[test]
fn saas_example_matches_jq() {
    check_bundled("saas");
}

#[test]
fn bank_example_matches_jq() {
    check_bundled("bank");
}

#[test]
fn cart_example_matches_jq() {
    check_bundled("cart");
}

/// A reducer that exercises paths through null, deletes, arrays, floats,
/// string functions and raised errors.
const RANDOM_REDUCER: &str = r#"
if $event.type == "set" then setpath($event.data.path; $event.data.value)
elif $event.type == "del" then delpaths([$event.data.path])
elif $event.type == "incr" then .counters[$event.data.key] += $event.data.n
elif $event.type == "push" then .lists[$event.data.key] += [$event.data.value]
elif $event.type == "pop" then .lists[$event.data.key] |= (if . == null then . else .[1:] end)
elif $event.type == "merge" then .merged = ((.merged // {}) * $event.data.obj)
elif $event.type == "float" then .floats[$event.data.key] = (((.floats[$event.data.key] // 0) + $event.data.x) * 1.5)
elif $event.type == "text" then .texts[$event.data.key] = ($event.data.s | ascii_downcase | split(" ") | map(select(length > 0)) | join("-"))
elif $event.type == "upcase" then .counters |= (if . == null then . else with_entries(.key |= ascii_upcase) end)
elif $event.type == "sum" then .sum = ([.counters[]?] | add)
elif $event.type == "fail" then error("boom at \($event.id)")
else . end
"#;

fn random_string(rng: &mut Rng) -> String {
    let pieces = [
        "a", "B", "ü", "中", "😀", " ", "x y", "/", "~", "\"", "\\", "Ω", "\t",
    ];
    (0..rng.below(5)).map(|_| *rng.pick(&pieces)).collect()
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::from(rng.below(2000) as i64 - 1000),
        3 => Value::from((rng.below(100_000) as f64) / 64.0 - 700.0),
        4 => Value::from(random_string(rng)),
        5 | 6 => Value::Object(
            (0..rng.below(4))
                .map(|_| {
                    (
                        rng.pick(&["k", "l", "ключ", "m/n", "p~q", ""]).to_string(),
                        random_value(rng, depth - 1),
                    )
                })
                .collect(),
        ),
        _ => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth - 1)).collect()),
    }
}

fn random_path(rng: &mut Rng) -> Value {
    let mut path = vec![Value::from("doc")];
    for _ in 0..rng.below(4) {
        if rng.below(3) == 0 {
            path.push(Value::from(rng.below(4) as i64));
        } else {
            path.push(Value::from(*rng.pick(&["a", "b", "ü", "x/y"])));
        }
    }
    Value::Array(path)
}

fn random_log(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let keys = ["alpha", "beta", "gamma", "δέλτα", "e/f"];
    let mut out = Vec::new();
    for id in 1..=n {
        let ty = *rng.pick(&[
            "set", "set", "del", "incr", "incr", "push", "pop", "merge", "float", "text", "upcase", "sum",
            "fail", "noop",
        ]);
        let key = *rng.pick(&keys);
        let data = match ty {
            "set" => serde_json::json!({"path": random_path(&mut rng), "value": random_value(&mut rng, 3)}),
            "del" => serde_json::json!({"path": random_path(&mut rng)}),
            "incr" => serde_json::json!({"key": key, "n": rng.below(50) as i64 - 10}),
            "push" => serde_json::json!({"key": key, "value": random_value(&mut rng, 2)}),
            "merge" => serde_json::json!({"obj": random_value(&mut rng, 3)}),
            "float" => serde_json::json!({"key": key, "x": (rng.below(1000) as f64) / 8.0}),
            "text" => {
                serde_json::json!({"key": key, "s": format!("Hello  {} World", random_string(&mut rng))})
            }
            _ => serde_json::json!({"key": key}),
        };
        let ev = serde_json::json!({"id": id, "type": ty, "data": data});
        out.extend_from_slice(ev.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[test]
fn random_logs_match_jq() {
    for seed in [1u64, 7, 42, 1234, 99_991, 31_337] {
        let log = random_log(seed, 250);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("random-{seed}.jsonl"));
        std::fs::write(&path, &log).unwrap();
        for k in [1, 17, 60, 125, 200, 250] {
            assert_state_matches(path.to_str().unwrap(), &log, None, RANDOM_REDUCER, k);
        }
    }
}

#[test]
fn split_defs_finds_the_main_expression() {
    let (d, m) = split_defs("# c\ndef init: {a: 1};\ndef f(x): def g: 1; x + g;\n.a += f(1)");
    assert_eq!(d.trim(), "# c\ndef init: {a: 1};\ndef f(x): def g: 1; x + g;");
    assert_eq!(m.trim(), ".a += f(1)");
    let (d, m) = split_defs(". + {x: \"def y;\"}");
    assert_eq!((d.as_str(), m.as_str()), ("", ". + {x: \"def y;\"}"));
}
