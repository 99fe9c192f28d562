//! Native jq filters for `PVal`.
//!
//! jaq-json's natives (`length`, `has`, `tojson`, ...) only work on
//! jaq-json's own value type, so evscope provides its own, with jq 1.6's
//! semantics. Of jaq-core's and jaq-std's natives only a reviewed
//! allowlist is used: nothing that reads the environment, files or other
//! inputs, halts the process or writes to the terminal.

use crate::value::jaq::{MAX_DEPTH, Res, Vector, arr, array_indices, err, kind_dump, split_str, write_json};
use crate::value::{PObj, PVal, Text};
use jaq_core::box_iter::box_once;
use jaq_core::native::{Filter, Fun, bome, run, v};
use jaq_core::path::Opt;
use jaq_core::{RunPtr, ValR, ValT as _};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

/// The data kind jaq runs evscope programs with: `PVal`s, and as global
/// data only the program's look-up table.
pub(crate) struct D;

impl jaq_core::DataT for D {
    type V<'a> = PVal;
    type Data<'a> = LutRef<'a>;
}

/// The program's look-up table, as the global data of a run.
///
/// jaq clones it on every call of a definition, which makes its `clone` the
/// one place that sees every level of a recursive program: there it checks
/// the stack, and unwinds the run (see `reduce::jq::guarded`) before jaq
/// can overflow it, which would abort the whole process.
pub(crate) struct LutRef<'a>(pub(crate) &'a jaq_core::Lut<D>);

/// Stack that must stay free when a definition is called.
const STACK_RESERVE: usize = 256 * 1024;

/// The unwind payload of a run stopped for lack of stack.
pub(crate) struct StackExhausted;

impl Clone for LutRef<'_> {
    fn clone(&self) -> Self {
        if stacker::remaining_stack().is_some_and(|r| r < STACK_RESERVE) {
            // `resume_unwind` skips the panic hook: nothing is printed.
            std::panic::resume_unwind(Box::new(StackExhausted));
        }
        LutRef(self.0)
    }
}

impl<'a> jaq_core::data::HasLut<'a, D> for LutRef<'a> {
    fn lut(&self) -> &'a jaq_core::Lut<D> {
        self.0
    }
}

/// jaq-std natives evscope keeps (the rest is replaced or unsafe here).
const STD_KEEP: &[&str] = &[
    "floor",
    "round",
    "ceil",
    "utf8bytelength",
    "explode",
    "implode",
    "ascii_downcase",
    "ascii_upcase",
    "sort",
    "sort_by",
    "group_by",
    "min_by_or_empty",
    "max_by_or_empty",
    "now",
    "fromdateiso8601",
    "todateiso8601",
    "strftime",
    "gmtime",
    "strptime",
    "mktime",
    // libm
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cbrt",
    "cos",
    "cosh",
    "erf",
    "erfc",
    "exp",
    "exp10",
    "exp2",
    "expm1",
    "fabs",
    "frexp",
    "ilogb",
    "j0",
    "j1",
    "lgamma",
    "log",
    "log10",
    "log1p",
    "log2",
    "modf",
    "nearbyint",
    "rint",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "tgamma",
    "trunc",
    "y0",
    "y1",
    "atan2",
    "copysign",
    "fdim",
    "fmax",
    "fmin",
    "fmod",
    "hypot",
    "jn",
    "ldexp",
    "nextafter",
    "pow",
    "remainder",
    "scalbln",
    "yn",
    "fma",
];

/// Every native filter an evscope program can call.
pub(crate) fn funs() -> Vec<Fun<D>> {
    // jaq-core's generic natives; `range` and `limit` are wrapped by jq 1.6
    // definitions in the prelude, so they move to private names.
    let core = jaq_core::funs::<D>().filter_map(|(name, args, f)| match name {
        "range" => Some(("_range", args, f)),
        "limit" => Some(("_limit", args, f)),
        // jq 1.6's `last(f)` is null for an empty `f` (prelude).
        "keys_unsorted" | "key_values" | "last" => None,
        _ => Some((name, args, f)),
    });
    let std = jaq_std::funs::<D>().filter(|(name, _, _)| STD_KEEP.contains(name));
    let own = own().into_vec().into_iter().map(run::<D>);
    core.chain(std).chain(own).collect()
}

/// A native of evscope's own, as a plain function of its input and its
/// arguments (in the order they are written). The same table serves jaq
/// (through `own`) and the direct engine (`reduce::direct`), so both run
/// the very same code.
#[derive(Clone, Copy)]
pub(crate) enum Plain {
    /// `f`: one output from the input.
    V0(fn(PVal) -> ValR<PVal>),
    /// `f($a)`.
    V1(fn(PVal, PVal) -> ValR<PVal>),
    /// `f($a; $b; $c)`.
    V3(fn(PVal, PVal, PVal, PVal) -> ValR<PVal>),
    /// `f`: any number of outputs.
    Many0(fn(PVal) -> Res<Vec<PVal>>),
}

/// Declares evscope's own natives once: `own` gives them to jaq, `plain`
/// to the direct engine.
macro_rules! own_natives {
    ($($name:literal: $kind:ident $f:expr;)*) => {
        fn own() -> Box<[Filter<RunPtr<D>>]> {
            Box::new([$(($name, v(own_natives!(@arity $kind)), own_natives!(@jaq $kind $f))),*])
        }

        /// evscope's own native `name/arity`, if there is one.
        pub(crate) fn plain(name: &str, arity: usize) -> Option<Plain> {
            $(
                if name == $name && arity == own_natives!(@arity $kind) {
                    return Some(Plain::$kind($f));
                }
            )*
            None
        }
    };
    (@arity V0) => { 0 };
    (@arity V1) => { 1 };
    (@arity V3) => { 3 };
    (@arity Many0) => { 0 };
    (@jaq V0 $f:expr) => {
        |cv| {
            let f: fn(PVal) -> ValR<PVal> = $f;
            bome(f(cv.1))
        }
    };
    (@jaq V1 $f:expr) => {
        |mut cv| {
            let f: fn(PVal, PVal) -> ValR<PVal> = $f;
            let a = cv.0.pop_var();
            bome(f(cv.1, a))
        }
    };
    (@jaq V3 $f:expr) => {
        |mut cv| {
            let f: fn(PVal, PVal, PVal, PVal) -> ValR<PVal> = $f;
            let c = cv.0.pop_var();
            let b = cv.0.pop_var();
            let a = cv.0.pop_var();
            bome(f(cv.1, a, b, c))
        }
    };
    (@jaq Many0 $f:expr) => {
        |cv| {
            let f: fn(PVal) -> Res<Vec<PVal>> = $f;
            match f(cv.1) {
                Ok(out) => Box::new(out.into_iter().map(Ok)),
                Err(e) => bome(Err(e)),
            }
        }
    };
}

own_natives! {
    "true": V0 |_| Ok(PVal::Bool(true));
    "false": V0 |_| Ok(PVal::Bool(false));
    "null": V0 |_| Ok(PVal::Null);
    "not": V0 |v| Ok(PVal::Bool(!v.as_bool()));
    "type": V0 |v| Ok(type_of(&v));
    "length": V0 length;
    "keys": V0 keys;
    "keys_unsorted": V0 keys;
    "has": V1 |v, k| has(&v, &k);
    "contains": V1 |a, b| contains_checked(&a, &b);
    "indices": V1 |v, i| indices(&v, &i);
    "tojson": V0 |v| tojson(&v);
    "fromjson": V0 |v| fromjson(&v);
    "tonumber": V0 tonumber;
    "tostring": V0 |v| Ok(v.into_string());
    "add": V0 add;
    "join": V1 |v, sep| join(v, &sep);
    "flatten": V0 |v| flatten(v, -1.0);
    "flatten": V1 |v, d| flatten_checked(v, &d);
    "reverse": V0 reverse;
    "to_entries": V0 to_entries;
    "from_entries": V0 from_entries;
    "delpaths": V1 delpaths;
    "tostream": Many0 |v| {
        let mut out = Vec::new();
        tostream(v, &mut Vec::new(), &mut out, 0).map(|()| out)
    };
    "split": V1 |v, sep| split1(&v, &sep);
    "ltrimstr": V1 |v, x| Ok(trim(v, &x, true));
    "rtrimstr": V1 |v, x| Ok(trim(v, &x, false));
    "startswith": V1 |v, x| affix(&v, &x, true);
    "endswith": V1 |v, x| affix(&v, &x, false);
    "_match_impl": V3 |v, re, flags, test| match_impl(&v, &re, &flags, test.as_bool());
    "nan": V0 |_| Ok(PVal::Float(f64::NAN));
    "infinite": V0 |_| Ok(PVal::Float(f64::INFINITY));
    "isnan": V0 |v| float_test(&v, f64::is_nan);
    "isinfinite": V0 |v| float_test(&v, f64::is_infinite);
    "isnormal": V0 |v| float_test(&v, f64::is_normal);
    "@text": V0 |v| Ok(v.into_string());
    "@json": V0 |v| tojson(&v);
    "@html": V0 |v| Ok(PVal::from(html(&v.to_jq_string())));
    "@uri": V0 |v| Ok(PVal::from(uri(&v.to_jq_string())));
    "@csv": V0 |v| csv_tsv(&v, true);
    "@tsv": V0 |v| csv_tsv(&v, false);
    "@sh": V0 |v| sh(&v);
    "@base64": V0 |v| Ok(PVal::from(base64_encode(v.to_jq_string().as_bytes())));
    "@base64d": V0 |v| base64_decode(&v);
}

/// `type`, sharing one string per type name.
fn type_of(v: &PVal) -> PVal {
    static NAMES: OnceLock<Vec<(&'static str, Text)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        ["null", "boolean", "number", "string", "array", "object"]
            .into_iter()
            .map(|n| (n, Text::from(n)))
            .collect()
    });
    let name = v.type_name();
    names
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| PVal::str(name), |(_, s)| PVal::Str(s.clone()))
}

type Values = Box<dyn Iterator<Item = PVal>>;

fn iter_values(v: PVal) -> Res<Values> {
    match v {
        PVal::Arr(a) => Ok(Box::new(Arc::unwrap_or_clone(a).into_iter())),
        PVal::Obj(o) => Ok(Box::new(o.into_iter().map(|(_, v)| v))),
        v => Err(err(format!("Cannot iterate over {}", kind_dump(&v)))),
    }
}

fn length(v: PVal) -> ValR<PVal> {
    Ok(match v {
        PVal::Null => PVal::Int(0),
        PVal::Bool(_) => return Err(err(format!("{} has no length", kind_dump(&v)))),
        PVal::Int(i) => i.checked_abs().map_or(PVal::Float((i as f64).abs()), PVal::Int),
        PVal::Float(f) => PVal::from(f.abs()),
        PVal::Str(s) => PVal::from(s.chars().count()),
        PVal::Arr(a) => PVal::from(a.len()),
        PVal::Obj(o) => PVal::from(o.len()),
    })
}

fn keys(v: PVal) -> ValR<PVal> {
    match v {
        PVal::Obj(o) => Ok(o.keys().map(|k| PVal::Str(k.clone())).collect()),
        PVal::Arr(a) => Ok((0..a.len()).map(PVal::from).collect()),
        v => Err(err(format!("{} has no keys", kind_dump(&v)))),
    }
}

fn has(v: &PVal, k: &PVal) -> ValR<PVal> {
    Ok(PVal::Bool(match (v, k) {
        (PVal::Obj(o), PVal::Str(k)) => o.contains_key(k),
        (PVal::Arr(a), PVal::Int(i)) => *i >= 0 && (*i as u64) < a.len() as u64,
        (PVal::Arr(a), PVal::Float(f)) => *f > -1.0 && f.trunc() < a.len() as f64,
        (PVal::Null, _) => false,
        (v, k) => {
            return Err(err(format!(
                "Cannot check whether {} has a {} key",
                v.type_name(),
                k.type_name()
            )));
        }
    }))
}

/// jq's kind of a value for `contains`: true and false differ.
use crate::value::order::rank as contains_kind;

fn contains_checked(a: &PVal, b: &PVal) -> ValR<PVal> {
    if contains_kind(a) != contains_kind(b) {
        return Err(err(format!(
            "{} and {} cannot have their containment checked",
            kind_dump(a),
            kind_dump(b)
        )));
    }
    contains(a, b, 0).map(PVal::Bool)
}

/// A string up to its first NUL, as C's `strstr` sees it (jq 1.6 compares
/// strings in `contains` that way).
fn c_str(s: &str) -> &str {
    s.split('\0').next().unwrap_or("")
}

fn contains(a: &PVal, b: &PVal, depth: usize) -> Res<bool> {
    if depth > MAX_DEPTH {
        return Err(err("value nested too deeply for contains"));
    }
    Ok(match (a, b) {
        (PVal::Obj(ao), PVal::Obj(bo)) => {
            for (k, bv) in bo {
                match ao.get(k) {
                    Some(av) if contains(av, bv, depth + 1)? => {}
                    _ => return Ok(false),
                }
            }
            true
        }
        (PVal::Arr(aa), PVal::Arr(ba)) => {
            for bv in ba.iter() {
                let mut found = false;
                for av in aa.iter() {
                    if contains(av, bv, depth + 1)? {
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Ok(false);
                }
            }
            true
        }
        (PVal::Str(x), PVal::Str(y)) => c_str(x).contains(c_str(y)),
        (x, y) => contains_kind(x) == contains_kind(y) && x == y,
    })
}

/// `indices($i)` as in jq 1.6: subarray positions for arrays, byte offsets
/// of non-overlapping occurrences for strings, null for null.
fn indices(v: &PVal, i: &PVal) -> ValR<PVal> {
    match (v, i) {
        (PVal::Null, _) => Ok(PVal::Null),
        (PVal::Arr(a), PVal::Arr(b)) => Ok(array_indices(a, b)),
        (PVal::Arr(a), x) => Ok(array_indices(a, &Arc::new(Vector::unit(x.clone())))),
        (PVal::Str(s), PVal::Str(n)) => {
            if n.is_empty() {
                return Err(err("Cannot determine the indices of an empty string"));
            }
            let mut out = Vector::new();
            let mut at = 0;
            while let Some(found) = s[at..].find(&**n) {
                out.push_back(PVal::from(at + found));
                at += found + n.len();
            }
            Ok(arr(out))
        }
        (v, i) => Err(err(format!(
            "Cannot index {} with {}",
            v.type_name(),
            i.type_name()
        ))),
    }
}

fn tojson(v: &PVal) -> ValR<PVal> {
    let mut out = String::new();
    write_json(v, &mut out, 0).map_err(|()| err("value nested too deeply for tojson"))?;
    Ok(PVal::from(out))
}

fn fromjson(v: &PVal) -> ValR<PVal> {
    match v {
        PVal::Str(s) => PVal::from_json(s).map_err(|e| err(format!("{e} (while parsing '{s}')"))),
        v => Err(err(format!("{} only strings can be parsed", kind_dump(v)))),
    }
}

fn tonumber(v: PVal) -> ValR<PVal> {
    match v {
        PVal::Int(_) | PVal::Float(_) => Ok(v),
        PVal::Str(ref s) => {
            let t = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
            // Rust also accepts "inf" and "nan"; jq's number syntax does not.
            let plain = !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
            match t.parse::<f64>() {
                Ok(f) if plain => Ok(if f.is_finite() {
                    PVal::from(f)
                } else {
                    PVal::Float(f)
                }),
                _ => Err(err(format!("{} cannot be parsed as a number", kind_dump(&v)))),
            }
        }
        v => Err(err(format!("{} cannot be parsed as a number", kind_dump(&v)))),
    }
}

/// `add`, concatenating runs of strings in one buffer (a naive fold would
/// copy the growing string at every step).
fn add(v: PVal) -> ValR<PVal> {
    let mut acc = PVal::Null;
    let mut buf: Option<String> = None;
    for x in iter_values(v)? {
        if let Some(b) = buf.as_mut() {
            match x {
                PVal::Str(s) => {
                    b.push_str(&s);
                    continue;
                }
                PVal::Null => continue,
                other => {
                    acc = PVal::from(std::mem::take(b));
                    buf = None;
                    acc = (acc + other)?;
                    continue;
                }
            }
        }
        if let (PVal::Str(a), PVal::Str(b)) = (&acc, &x) {
            let mut s = String::with_capacity(a.len() + b.len());
            s.push_str(a);
            s.push_str(b);
            buf = Some(s);
            acc = PVal::Null;
            continue;
        }
        acc = (acc + x)?;
    }
    Ok(match buf {
        Some(b) => PVal::from(b),
        None => acc,
    })
}

/// `join($sep)` as in jq 1.6: null joins as "", numbers and booleans as
/// their JSON text; arrays and objects are errors.
fn join(v: PVal, sep: &PVal) -> ValR<PVal> {
    let mut out = String::new();
    for (i, x) in iter_values(v)?.enumerate() {
        if i > 0 {
            match sep {
                PVal::Str(s) => out.push_str(s),
                PVal::Null => {}
                other => {
                    return Err(err(format!(
                        "{} and {} cannot be added",
                        kind_dump(&PVal::from(out)),
                        kind_dump(other)
                    )));
                }
            }
        }
        match &x {
            PVal::Null => {}
            PVal::Str(s) => out.push_str(s),
            PVal::Bool(_) | PVal::Int(_) | PVal::Float(_) => out.push_str(&x.to_jq_json()),
            other => {
                return Err(err(format!(
                    "{} and {} cannot be added",
                    kind_dump(&PVal::from(out)),
                    kind_dump(other)
                )));
            }
        }
    }
    Ok(PVal::from(out))
}

fn flatten_checked(v: PVal, d: &PVal) -> ValR<PVal> {
    match d.as_f64() {
        Some(d) if d < 0.0 => Err(err("flatten depth must not be negative")),
        Some(d) => flatten(v, d),
        None => Err(err("flatten depth must be a number")),
    }
}

/// Flatten nested arrays `depth` levels (a negative depth: all levels).
fn flatten(v: PVal, depth: f64) -> ValR<PVal> {
    fn go(items: Values, depth: f64, out: &mut Vector, level: usize) -> Res<()> {
        if level > MAX_DEPTH {
            return Err(err("array nested too deeply to flatten"));
        }
        for x in items {
            match x {
                PVal::Arr(a) if depth != 0.0 => go(
                    Box::new(Arc::unwrap_or_clone(a).into_iter()),
                    depth - 1.0,
                    out,
                    level + 1,
                )?,
                x => out.push_back(x),
            }
        }
        Ok(())
    }
    let mut out = Vector::new();
    go(iter_values(v)?, depth, &mut out, 0)?;
    Ok(arr(out))
}

fn reverse(v: PVal) -> ValR<PVal> {
    match v {
        PVal::Arr(a) => Ok(a.iter().rev().cloned().collect()),
        PVal::Null => Ok(arr(Vector::new())),
        v => Err(err(format!("Cannot index {} with number", v.type_name()))),
    }
}

fn to_entries(v: PVal) -> ValR<PVal> {
    let entry = |k: PVal, v: PVal| {
        let mut o = PObj::new();
        o.insert(Text::from("key"), k);
        o.insert(Text::from("value"), v);
        PVal::Obj(o)
    };
    match v {
        PVal::Obj(o) => Ok(o.into_iter().map(|(k, v)| entry(PVal::Str(k), v)).collect()),
        PVal::Arr(a) => Ok(a
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, v)| entry(PVal::from(i), v))
            .collect()),
        v => Err(err(format!("{} has no keys", kind_dump(&v)))),
    }
}

/// `from_entries` as in jq 1.6: the key is the first truthy of `key`,
/// `name`, `Name`, `Key`; the value is `value` if present, else `Value`.
fn from_entries(v: PVal) -> ValR<PVal> {
    let mut out = PObj::new();
    for e in iter_values(v)? {
        let field = |name: &str| e.clone().index(&PVal::str(name));
        let mut key = PVal::Null;
        for name in ["key", "name", "Name", "Key"] {
            let k = field(name)?;
            if k.as_bool() {
                key = k;
                break;
            }
        }
        let value = if has(&e, &PVal::str("value"))?.as_bool() {
            field("value")?
        } else {
            field("Value")?
        };
        match key {
            PVal::Str(k) => {
                out.insert(k, value);
            }
            k => return Err(err(format!("Cannot use {} as object key", kind_dump(&k)))),
        }
    }
    Ok(PVal::Obj(out))
}

/// Set the child at `k` of `v` to `new` (jq's setpath for one step).
fn set_child(v: PVal, k: &PVal, new: PVal) -> ValR<PVal> {
    v.map_index(k, Opt::Essential, |_| box_once(Ok(new.clone())))
        .map_err(|e| {
            e.get_err()
                .unwrap_or_else(|_| err("unexpected control flow in delpaths"))
        })
}

/// Delete one path (jq 1.6's `delpaths` for a single path).
fn delpath(v: PVal, path: &[PVal], depth: usize) -> ValR<PVal> {
    if depth > MAX_DEPTH {
        return Err(err("path too deep to delete"));
    }
    let Some((k, rest)) = path.split_first() else {
        return Ok(PVal::Null);
    };
    if !rest.is_empty() {
        let child = v.clone().index(k)?;
        if matches!(child, PVal::Null) {
            return Ok(v);
        }
        let child = delpath(child, rest, depth + 1)?;
        return set_child(v, k, child);
    }
    match (v, k) {
        (PVal::Null, _) => Ok(PVal::Null),
        (PVal::Obj(mut o), PVal::Str(k)) => {
            o.remove(k);
            Ok(PVal::Obj(o))
        }
        (PVal::Arr(a), PVal::Int(_) | PVal::Float(_)) => {
            let i = match k {
                PVal::Int(i) => *i,
                _ => k.as_f64().unwrap_or(0.0) as i64,
            };
            let i = if i < 0 { i + a.len() as i64 } else { i };
            let mut a = Arc::unwrap_or_clone(a);
            if i >= 0 && (i as u64) < a.len() as u64 {
                a.remove(i as usize);
            }
            Ok(arr(a))
        }
        (v @ PVal::Arr(_), PVal::Obj(_)) => {
            v.map_index(k, Opt::Essential, |_| std::iter::empty())
                .map_err(|e| {
                    e.get_err()
                        .unwrap_or_else(|_| err("unexpected control flow in delpaths"))
                })
        }
        (v @ (PVal::Obj(_) | PVal::Arr(_)), k) => Err(err(format!(
            "Cannot delete field at {} index of {}",
            k.type_name(),
            v.type_name()
        ))),
        (v, _) => Err(err(format!("Cannot delete fields from {}", v.type_name()))),
    }
}

/// `delpaths($paths)`: delete the paths from the last to the first in
/// sorted order, so deleting one never shifts another.
fn delpaths(v: PVal, paths: PVal) -> ValR<PVal> {
    let PVal::Arr(paths) = paths else {
        return Err(err("Paths must be specified as an array"));
    };
    let mut paths: Vec<PVal> = paths.iter().cloned().collect();
    paths.sort();
    let mut v = v;
    for p in paths.iter().rev() {
        let PVal::Arr(p) = p else {
            return Err(err("Path must be specified as an array"));
        };
        let p: Vec<PVal> = p.iter().cloned().collect();
        v = delpath(v, &p, 0)?;
    }
    Ok(v)
}

/// `tostream`: `[path, leaf]` for every leaf and `[path]` closing every
/// non-empty container after its last child.
fn tostream(v: PVal, path: &mut Vec<PVal>, out: &mut Vec<PVal>, depth: usize) -> Res<()> {
    if depth > MAX_DEPTH {
        return Err(err("value nested too deeply for tostream"));
    }
    let children: Vec<(PVal, PVal)> = match &v {
        PVal::Arr(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, x)| (PVal::from(i), x.clone()))
            .collect(),
        PVal::Obj(o) if !o.is_empty() => o.iter().map(|(k, x)| (PVal::Str(k.clone()), x.clone())).collect(),
        _ => {
            out.push(PVal::arr([path.iter().cloned().collect(), v]));
            return Ok(());
        }
    };
    let mut last = PVal::Null;
    for (k, x) in children {
        path.push(k.clone());
        tostream(x, path, out, depth + 1)?;
        path.pop();
        last = k;
    }
    let closing: PVal = path.iter().cloned().chain(std::iter::once(last)).collect();
    out.push(PVal::arr([closing]));
    Ok(())
}

fn split1(v: &PVal, sep: &PVal) -> ValR<PVal> {
    match (v, sep) {
        (PVal::Str(s), PVal::Str(sep)) => Ok(split_str(s, sep)),
        _ => Err(err("split input and separator must be strings")),
    }
}

/// `ltrimstr`/`rtrimstr`: anything that is not a matching string is
/// returned unchanged (jq 1.6).
fn trim(v: PVal, x: &PVal, left: bool) -> PVal {
    if let (PVal::Str(s), PVal::Str(x)) = (&v, x) {
        let rest = if left {
            s.strip_prefix(&**x)
        } else {
            s.strip_suffix(&**x)
        };
        if let Some(rest) = rest {
            return PVal::str(rest);
        }
    }
    v
}

fn affix(v: &PVal, x: &PVal, start: bool) -> ValR<PVal> {
    match (v, x) {
        (PVal::Str(s), PVal::Str(x)) => Ok(PVal::Bool(if start {
            s.starts_with(&**x)
        } else {
            s.ends_with(&**x)
        })),
        _ => Err(err(if start {
            "startswith() requires string inputs"
        } else {
            "endswith() requires string inputs"
        })),
    }
}

fn float_test(v: &PVal, f: fn(f64) -> bool) -> ValR<PVal> {
    match v {
        PVal::Int(i) => Ok(PVal::Bool(f(*i as f64))),
        PVal::Float(x) => Ok(PVal::Bool(f(*x))),
        v => Err(err(format!("{} number required", kind_dump(v)))),
    }
}

// ---------------------------------------------------------------------------
// Formats

fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn uri(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn csv_tsv(v: &PVal, csv: bool) -> ValR<PVal> {
    let PVal::Arr(a) = v else {
        let what = if csv { "csv" } else { "tsv" };
        return Err(err(format!(
            "{} cannot be {what}-formatted, only an array can be",
            kind_dump(v)
        )));
    };
    let mut out = String::new();
    for (i, x) in a.iter().enumerate() {
        if i > 0 {
            out.push(if csv { ',' } else { '\t' });
        }
        match x {
            PVal::Null => {}
            PVal::Bool(_) | PVal::Int(_) | PVal::Float(_) => out.push_str(&x.to_jq_json()),
            PVal::Str(s) if csv => {
                out.push('"');
                out.push_str(&s.replace('"', "\"\""));
                out.push('"');
            }
            PVal::Str(s) => {
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
            x => return Err(err(format!("{} is not valid in a csv row", kind_dump(x)))),
        }
    }
    Ok(PVal::from(out))
}

fn sh(v: &PVal) -> ValR<PVal> {
    let items: Vec<&PVal> = match v {
        PVal::Arr(a) => a.iter().collect(),
        v => vec![v],
    };
    let mut out = String::new();
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match x {
            PVal::Str(s) => {
                out.push('\'');
                out.push_str(&s.replace('\'', "'\\''"));
                out.push('\'');
            }
            PVal::Arr(_) | PVal::Obj(_) => {
                return Err(err(format!("{} can not be escaped for shell", kind_dump(x))));
            }
            x => out.push_str(&x.to_jq_json()),
        }
    }
    Ok(PVal::from(out))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `@base64d` as jq 1.6 decodes: stop at the first `=`, padding optional,
/// a single leftover character is an error; bytes that are not UTF-8
/// become U+FFFD.
fn base64_decode(v: &PVal) -> ValR<PVal> {
    let s = v.to_jq_string();
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let (mut acc, mut n) = (0u32, 0);
    for b in s.bytes().take_while(|b| *b != b'=') {
        let Some(d) = B64.iter().position(|c| *c == b) else {
            return Err(err(format!("{} is not valid base64 data", kind_dump(v))));
        };
        acc = (acc << 6) | d as u32;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            (acc, n) = (0, 0);
        }
    }
    match n {
        1 => return Err(err(format!("{} trailing base64 byte found", kind_dump(v)))),
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    Ok(PVal::from(String::from_utf8_lossy(&out).into_owned()))
}

// ---------------------------------------------------------------------------
// Regular expressions (Oniguruma-like, via fancy-regex)

struct Flags {
    global: bool,
    skip_empty: bool,
    inline: String,
}

fn parse_flags(flags: &PVal) -> Res<Flags> {
    let text = match flags {
        PVal::Null => "",
        PVal::Str(s) => s,
        v => return Err(err(format!("{} is not a string", kind_dump(v)))),
    };
    let mut f = Flags {
        global: false,
        skip_empty: false,
        inline: String::new(),
    };
    for c in text.chars() {
        match c {
            'g' => f.global = true,
            'n' => f.skip_empty = true,
            'i' => f.inline.push('i'),
            'x' => f.inline.push('x'),
            // Oniguruma's multi-line mode is "dot matches newline".
            'p' => f.inline.push('s'),
            // `s` (single line) is already how `^`/`$` work; `l` (longest
            // match) has no equivalent and is accepted as a no-op.
            's' | 'l' => {}
            _ => return Err(err(format!("{text} is not a valid modifier string"))),
        }
    }
    Ok(f)
}

thread_local! {
    /// Recently compiled regexes: reducers call `test` with the same
    /// pattern for every event.
    static REGEX_CACHE: RefCell<Vec<(String, fancy_regex::Regex)>> = const { RefCell::new(Vec::new()) };
}

fn compiled(pattern: &str) -> Res<fancy_regex::Regex> {
    if let Some(re) = REGEX_CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|(p, _)| p == pattern)
            .map(|(_, r)| r.clone())
    }) {
        return Ok(re);
    }
    let re = fancy_regex::Regex::new(pattern)
        .map_err(|e| err(format!("{pattern} (at offset 0) is not a valid regex: {e}")))?;
    REGEX_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 32 {
            c.remove(0);
        }
        c.push((pattern.to_string(), re.clone()));
    });
    Ok(re)
}

/// One capture group as jq 1.6 reports it.
fn capture_obj(offset: i64, length: usize, string: PVal, name: Option<&str>) -> PVal {
    let mut o = PObj::new();
    o.insert(Text::from("offset"), PVal::Int(offset));
    o.insert(Text::from("length"), PVal::from(length));
    o.insert(Text::from("string"), string);
    o.insert(Text::from("name"), name.map_or(PVal::Null, PVal::str));
    PVal::Obj(o)
}

/// jq 1.6's `_match_impl(re; flags; test)`: with `test` a boolean, else an
/// array of match objects with codepoint offsets. An empty match reports no
/// captures and the search resumes one character later.
fn match_impl(input: &PVal, re: &PVal, flags: &PVal, test: bool) -> ValR<PVal> {
    let PVal::Str(s) = input else {
        return Err(err(format!(
            "{} cannot be matched, as it is not a string",
            kind_dump(input)
        )));
    };
    let PVal::Str(pattern) = re else {
        return Err(err(format!("{} is not a string", kind_dump(re))));
    };
    let flags = parse_flags(flags)?;
    let full = if flags.inline.is_empty() {
        pattern.to_string()
    } else {
        format!("(?{}){}", flags.inline, pattern)
    };
    let re = compiled(&full)?;
    let names: Vec<Option<&str>> = re.capture_names().collect();
    let mut out = Vector::new();
    let mut start = 0;
    // Byte offset and codepoint count of the last match start, so offsets
    // are counted incrementally.
    let (mut cur_b, mut cur_c) = (0usize, 0usize);
    // Codepoint offset of byte `b`, counted from a known position (groups in
    // a look-behind can start before their match).
    let chars_to = |b: usize, from_b: usize, from_c: usize| match s.get(from_b.min(b)..from_b.max(b)) {
        Some(part) if b >= from_b => from_c + part.chars().count(),
        Some(part) => from_c.saturating_sub(part.chars().count()),
        None => s.get(..b).map_or(0, |p| p.chars().count()),
    };
    loop {
        let caps = match re.captures_from_pos(s, start) {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(err(format!("regex error: {e}"))),
        };
        let Some(m) = caps.get(0) else { break };
        let empty = m.start() == m.end();
        if test && !(empty && flags.skip_empty) {
            return Ok(PVal::Bool(true));
        }
        let m_c = chars_to(m.start(), cur_b, cur_c);
        (cur_b, cur_c) = (m.start(), m_c);
        if empty {
            if !flags.skip_empty {
                let mut o = PObj::new();
                o.insert(Text::from("offset"), PVal::from(m_c));
                o.insert(Text::from("length"), PVal::Int(0));
                o.insert(Text::from("string"), PVal::str(""));
                o.insert(Text::from("captures"), arr(Vector::new()));
                out.push_back(PVal::Obj(o));
            }
            start = m.end() + s[m.end()..].chars().next().map_or(1, char::len_utf8);
        } else {
            let mut captures = Vector::new();
            for (i, name) in names.iter().enumerate().skip(1) {
                captures.push_back(match caps.get(i) {
                    Some(g) => capture_obj(
                        chars_to(g.start(), m.start(), m_c) as i64,
                        g.as_str().chars().count(),
                        PVal::str(g.as_str()),
                        *name,
                    ),
                    None => capture_obj(-1, 0, PVal::Null, *name),
                });
            }
            let mut o = PObj::new();
            o.insert(Text::from("offset"), PVal::from(m_c));
            o.insert(Text::from("length"), PVal::from(m.as_str().chars().count()));
            o.insert(Text::from("string"), PVal::str(m.as_str()));
            o.insert(Text::from("captures"), arr(captures));
            out.push_back(PVal::Obj(o));
            start = m.end();
        }
        if !flags.global || start >= s.len() {
            break;
        }
    }
    if test {
        return Ok(PVal::Bool(false));
    }
    Ok(arr(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "hello wörld"] {
            let enc = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&PVal::from(enc)).unwrap(), PVal::str(s));
        }
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert!(base64_decode(&PVal::str("Y")).is_err());
        assert!(base64_decode(&PVal::str("!!")).is_err());
    }

    #[test]
    fn type_names_are_shared() {
        assert_eq!(type_of(&PVal::Int(1)), PVal::str("number"));
        assert_eq!(type_of(&PVal::Null), PVal::str("null"));
    }
}
