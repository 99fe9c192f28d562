//! The direct engine against jaq on random programs: the same outputs and
//! the same error messages, or the program does not run directly.

use crate::reduce::jq::{JqReducer, direct_engine_support, run_filter, run_filter_jaq};
use crate::reduce::{DEFAULT_REDUCER, Reducer};
use crate::value::PVal;
use crate::value::jaq::STEP_LIMIT_MESSAGE;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::sync::atomic::{AtomicUsize, Ordering};

const INPUTS: &[&str] = &[
    "null",
    "5",
    r#""ab""#,
    "[1,2,3]",
    r#"{"a":1,"b":[1,{"c":2}],"s":"x"}"#,
    r#"[1,{"a":2},null,"s",[3]]"#,
    r#"{"a":{"b":[3,4]},"k":"a","n":-2}"#,
];

/// Terms that can stand anywhere.
fn leaf() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        ".",
        ".a",
        ".b",
        ".[0]",
        ".[-1]",
        ".[]",
        ".[]?",
        ".a?",
        ".[1:]",
        ".[:2]",
        ".a.b",
        ".[.k]",
        "$x",
        "$event",
        "1",
        "-2",
        "2.5",
        "\"a\"",
        "\"\"",
        "null",
        "true",
        "false",
        "[1,2]",
        "{\"a\":1}",
        "{}",
        "[]",
        "length",
        "keys",
        "type",
        "tostring",
        "tonumber",
        "empty",
        "not",
        "add",
        "to_entries",
        "..",
        "[paths]",
        "range(3)",
        "error",
        "tojson",
        "reverse",
        "first",
        "last",
        "values",
        "nulls",
        "has(\"a\")",
        "ascii_downcase",
        "floor",
        "sort",
        "min",
        "any",
        "all",
        "flatten",
        "join(\",\")",
        "splits(\"b\")",
        "test(\"a\")",
        "ltrimstr(\"a\")",
        "@base64",
        "@csv",
        "input_line_number",
        "getpath([\"a\",\"b\"])",
        "paths(type == \"number\")",
        "leaf_paths",
        "tostream",
        "indices(1)",
        "utf8bytelength",
        "$__loc__",
        "infinite",
        "nan | isnan",
        "del(.a)",
        "to_entries",
        "with_entries(.value |= tostring)",
        "map_values(. + 1)",
        "[limit(2; .[])]",
        "isempty(.[])",
        "(1 as $q | [$q, $x])",
        "(. as [$q] | $q)",
        "(. as {a: $q, $b} | [$q, $b])",
        "(reduce (1,2) as $q (.; [., $q]))",
        "(.[]? as [$p, $q] | {$p, $q})",
        "(.a as {b: [$q]} | $q)",
        "[splits(\", *\"; null)]",
        "setpath([\"a\", 0]; 1)",
        "[paths(..)]",
        "[getpath([\"a\"], [\"b\", 1])]",
        "(. as {(\"a\", \"b\"): $q} | $q)",
        "[recurse]",
        "walk(if type == \"number\" then . + 1 else . end)",
        "[limit(5; repeat(1))]",
        "[.[]? | numbers | until(. > 100 or . < 1; . * 2)]",
        "[.[]? | numbers | [while(. < 10; . + 3)]]",
        "(def fac: if . <= 1 then 1 else . * (. - 1 | fac) end; [.[]? | numbers | fac])",
        "[recurse(.[]?; type != \"string\")]",
        "[.. | numbers]",
        "(def r: label $out | (., (.[]? | r)) | if . == 2 then break $out else . end; [r])",
        "(def r: if type == \"array\" then map(r) else [.] end; r)",
        "[paths(type == \"array\")]",
        "min_by(.a)",
        "sort_by(type)",
        "group_by(type)",
        "unique",
        "(to_entries | from_entries)",
    ])
    .prop_map(String::from)
}

/// Path expressions, for the left of updates and `path(...)`. (Not
/// `recurse`: `recurse |= [., .]` grows without end on either engine.)
fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        ".",
        ".a",
        ".b",
        ".[0]",
        ".[-1]",
        ".[5]",
        ".a.b",
        ".[]",
        ".[]?",
        ".a[1]",
        ".[$x]",
        ".[.k]",
        "(.a, .b)",
        ".a // .b",
        "if .a then .a else .b end",
        "first(.[])",
        "select(.a)",
        "..",
        "getpath([\"a\"])",
        ".[1:2]",
        ".a?",
        "(.a | .b)",
        "(. as $y | .a)",
        "empty",
        "error(\"p\")",
        ".[\"a\",\"b\"]",
        "limit(1; .[])",
        "$x",
        "1",
        "label $l | .a",
        "try .a",
        ".[.[]?]",
        "last(.[])",
        "to_entries",
        "(. as [$y] | .a)",
        "(.b as $x | .a)",
        "(. as {a: $y} | .[$y])",
        "(def at($k): .[$k]; at(\"a\"))",
        "(def at(f): .[f]; at(\"b\", \"a\"))",
        "getpath([\"a\",\"b\"])",
        "(reduce (\"a\", \"b\") as $k (.; .[$k]))",
        "(foreach (\"a\") as $k (.; .[$k]))",
        "(reduce .[]? as $k (.; .a))",
        "(. as $y | .a, .b)",
        "(label $f | .a, break $f)",
        "(def r: if type == \"object\" then .a | r else . end; r)",
    ])
    .prop_map(String::from)
}

fn program() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 64, 4, |inner| {
        let two = (inner.clone(), inner.clone());
        prop_oneof![
            two.clone().prop_map(|(a, b)| format!("({a} | {b})")),
            two.clone().prop_map(|(a, b)| format!("({a}, {b})")),
            two.clone().prop_map(|(a, b)| format!("({a} as $x | {b})")),
            two.clone()
                .prop_map(|(a, b)| format!("({a} as [$x, $q] | [{b}, $q])")),
            two.clone()
                .prop_map(|(a, b)| format!("({a} as {{a: $x, b: [$q]}} | [{b}, $q])")),
            two.clone()
                .prop_map(|(a, b)| format!("reduce {a} as [$x, $q] (0; [., $q, {b}])")),
            two.clone()
                .prop_map(|(a, b)| format!("[foreach {a} as {{$q}} (0; {b}; [$q, .])]")),
            (path(), inner.clone()).prop_map(|(p, a)| format!("({p} |= ({a} as $x | [$x, .]))")),
            (path(), inner.clone()).prop_map(|(p, a)| format!("({p} += ([{a}] as [$q] | $q))")),
            (
                two.clone(),
                prop::sample::select(vec![
                    "+", "-", "*", "/", "%", "==", "!=", "<", ">=", "and", "or", "//"
                ])
            )
                .prop_map(|((a, b), op)| format!("({a} {op} {b})")),
            (inner.clone(), two.clone()).prop_map(|(c, (a, b))| format!("(if {c} then {a} else {b} end)")),
            (inner.clone(), inner.clone()).prop_map(|(c, a)| format!("(if {c} then {a} end)")),
            two.clone().prop_map(|(a, b)| format!("(try {a} catch {b})")),
            inner.clone().prop_map(|a| format!("(try {a})")),
            inner.clone().prop_map(|a| format!("({a})?")),
            inner.clone().prop_map(|a| format!("[{a}]")),
            two.clone().prop_map(|(a, b)| format!("{{a: {a}, b: {b}}}")),
            two.clone().prop_map(|(a, b)| format!("{{({a}): {b}}}")),
            inner.clone().prop_map(|a| format!("{{$x, a: {a}}}")),
            two.clone().prop_map(|(a, b)| format!("\"<\\({a})-\\({b})>\"")),
            inner.clone().prop_map(|a| format!("@json \"v=\\({a})\"")),
            (
                path(),
                inner.clone(),
                prop::sample::select(vec!["=", "|=", "+=", "-=", "*=", "//="])
            )
                .prop_map(|(p, a, op)| format!("({p} {op} {a})")),
            path().prop_map(|p| format!("del({p})")),
            path().prop_map(|p| format!("[path({p})]")),
            inner.clone().prop_map(|a| format!("[.[]? | {a}]")),
            inner.clone().prop_map(|a| format!("map({a})")),
            inner
                .clone()
                .prop_map(|a| format!("[label $out | (label $in | {a}, break $out), 8]")),
            inner.clone().prop_map(|a| format!(
                "(def r: if type == \"array\" and length > 0 then .[1:] | r else {a} end; r)"
            )),
            inner.clone().prop_map(|a| format!("[recurse(.[]?) | {a}]")),
            inner.clone().prop_map(|a| format!("walk({a})")),
            inner.clone().prop_map(|a| format!(
                "(def r: label $l | ({a} | if type == \"array\" then .[]? | r else ., break $l end); [r])"
            )),
            inner.clone().prop_map(|a| format!("select({a})")),
            inner.clone().prop_map(|a| format!("first({a})")),
            inner.clone().prop_map(|a| format!("[limit(2; {a})]")),
            inner.clone().prop_map(|a| format!("error({a})")),
            two.clone()
                .prop_map(|(a, b)| format!("reduce {a} as $x (0; . + {b})")),
            two.clone()
                .prop_map(|(a, b)| format!("reduce {a} as $x ({b}; [., $x])")),
            two.clone()
                .prop_map(|(a, b)| format!("[foreach {a} as $x (0; {b}; [$x, .])]")),
            two.clone()
                .prop_map(|(a, b)| format!("[foreach {a} as $x ({b}; . + 1)]")),
            inner
                .clone()
                .prop_map(|a| format!("[label $out | {a}, break $out, 9]")),
            inner.clone().prop_map(|a| format!("(def f(g): [g, g]; f({a}))")),
            two.clone()
                .prop_map(|(a, b)| format!("(def f($v; g): [$v, g, $v]; f({a}; {b}))")),
            two.clone()
                .prop_map(|(a, b)| format!("(def f: {a}; def g: f | {b}; g, f)")),
            inner
                .clone()
                .prop_map(|a| format!("[range(0; 5; 2) as $i | {a}]")),
            inner.clone().prop_map(|a| format!("isempty({a})")),
            inner.clone().prop_map(|a| format!("any({a}; .)")),
            inner.prop_map(|a| format!("({a} | tostring | length)")),
        ]
    })
}

fn show(r: Result<Vec<PVal>, String>) -> String {
    match r {
        Ok(vs) => vs.iter().map(PVal::to_jq_json).collect::<Vec<_>>().join(" "),
        Err(e) => format!("error: {e}"),
    }
}

static DIRECT: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_agree(p in program(), input in prop::sample::select(INPUTS)) {
        let code = format!("(.a // 0) as $x | {p}");
        TOTAL.fetch_add(1, Ordering::Relaxed);
        if direct_engine_support(&code).is_ok() {
            DIRECT.fetch_add(1, Ordering::Relaxed);
            let input = PVal::from_json(input).unwrap();
            let direct = show(run_filter(&code, &input));
            let jaq = show(run_filter_jaq(&code, &input));
            // A runaway program stops with an error on both engines, but
            // where it is stopped depends on the order of evaluation.
            let runaway = ["reducer recursion too deep", STEP_LIMIT_MESSAGE]
                .iter()
                .any(|m| jaq == format!("error: {m}"));
            if !(runaway && direct.starts_with("error: ")) {
                prop_assert_eq!(direct, jaq, "{}", code);
            }
        }
    }
}

/// The generator must exercise the engine, not only jaq.
#[test]
fn random_programs_mostly_run_directly() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut direct, mut total) = (0, 0);
    for _ in 0..300 {
        let p = program().new_tree(&mut runner).unwrap().current();
        total += 1;
        if direct_engine_support(&format!("(.a // 0) as $x | {p}")).is_ok() {
            direct += 1;
        }
    }
    assert!(
        direct * 2 > total,
        "only {direct} of {total} random programs run directly"
    );
}

/// The bundled reducers run on the direct engine (the examples stand for
/// what reducers look like; one falling back to jaq would fold slowly).
#[test]
fn bundled_reducers_run_directly() {
    for (name, code) in [
        ("default", DEFAULT_REDUCER),
        ("bench", include_str!("../../../assets/examples/bench.jq")),
        ("bank", include_str!("../../../assets/examples/bank.jq")),
        ("cart", include_str!("../../../assets/examples/cart.jq")),
        ("saas", include_str!("../../../assets/examples/saas.jq")),
    ] {
        let r = JqReducer::compile(code, name).unwrap();
        assert!(r.runs_direct(), "{name}: {:?}", direct_engine_support(code));
    }
}

/// A fold with a reducer that updates the state in place where it can: the
/// answers equal jaq's, and the states before stay as they were.
#[test]
fn folding_leaves_earlier_states_alone() {
    let code = r#"
        $event.data.k as $k
        | .n += 1
        | .by[$k].count += 1
        | .by[$k].last = $event.data
        | if $event.data.drop then del(.by[$k]) else . end
        | .seen |= (. // []) + [$k]
    "#;
    let r = JqReducer::compile(code, "t").unwrap();
    assert!(r.runs_direct());
    let mut states = vec![PVal::empty_obj()];
    for i in 0..200 {
        let ev = PVal::from_json(&format!(
            r#"{{"data":{{"k":"k{}","drop":{}}}}}"#,
            i % 7,
            i % 11 == 0
        ))
        .unwrap();
        let before = states.last().unwrap().clone();
        let snapshot = before.to_jq_json();
        let next = r.apply(&before, &ev).unwrap();
        assert_eq!(
            before.to_jq_json(),
            snapshot,
            "event {i} changed the state before it"
        );
        assert_eq!(Ok(next.clone()), r.apply_on_jaq(&before, &ev), "event {i}");
        states.push(next);
    }
    assert_eq!(
        states.last().unwrap().as_obj().unwrap().get("n"),
        Some(&PVal::Int(200))
    );
}
