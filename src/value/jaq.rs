//! jaq's value traits for `PVal`, so jq programs run directly on the
//! persistent value (no conversion per event).
//!
//! Semantics follow jq 1.6 where jq and jaq differ: paths through `null`
//! are created on update, `.[k]` on `null` is `null`, object `+` merges,
//! `*` merges deeply, `-` removes array elements, string `*` number
//! repeats, string `/` string splits, division by zero is an error, and
//! integer arithmetic stays exact in i64 (falling back to f64).
//!
//! Error messages imitate jq's wording ("Cannot index number with ...").

use super::{PArr, PObj, PVal, Text};

/// The vector inside a `PArr`.
pub(crate) type Vector = imbl::Vector<PVal>;

/// A result whose error is a jq error (`ValR<T>` is only for `T = PVal`).
pub(crate) type Res<T> = Result<T, Error<PVal>>;

/// An array value from a vector.
pub(crate) fn arr(v: Vector) -> PVal {
    PVal::Arr(Arc::new(v))
}
use jaq_core::box_iter::{BoxIter, box_once};
use jaq_core::path::Opt;
use jaq_core::{Error, ValR, ValX};
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::Arc;

/// Deepest nesting the recursive helpers here accept before failing
/// (instead of overflowing the stack).
pub const MAX_DEPTH: usize = 1000;

/// Longest array `.[i] = x` may grow, and the longest string `*` may
/// build: larger requests are errors rather than an out-of-memory abort.
const MAX_ARRAY_GROW: i64 = 1 << 24;
const MAX_REPEAT_BYTES: usize = 1 << 28;

thread_local! {
    /// Steps left before the running program is considered runaway.
    /// Each value operation (arithmetic, indexing, iteration, update)
    /// costs one; see [`set_step_budget`].
    static FUEL: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Set how many value operations the program run next on this thread may
/// perform before every further operation fails.
pub fn set_step_budget(steps: u64) {
    FUEL.with(|f| f.set(steps));
}

/// Message of the error raised when the step budget is exhausted.
pub const STEP_LIMIT_MESSAGE: &str = "reducer exceeded its step limit (runaway program?)";

/// Stack that must stay free below any value operation: jaq recurses on
/// the native stack, so a program recursing deeply over values is stopped
/// with an error here instead of overflowing the stack (which would abort
/// the process). Recursion that touches no value is caught when a
/// definition is called (`reduce::natives::LutRef`).
const STACK_RESERVE: usize = 192 * 1024;

/// Consume one step; an error once the budget is spent or the stack runs
/// low.
#[inline]
pub(crate) fn step() -> Result<(), Error<PVal>> {
    FUEL.with(|f| {
        let n = f.get();
        if n == 0 {
            return Err(err(STEP_LIMIT_MESSAGE));
        }
        f.set(n - 1);
        // Every 8th step: a few levels of jaq's recursion fit in the reserve.
        if n % 8 == 0 && stacker::remaining_stack().is_some_and(|r| r < STACK_RESERVE) {
            return Err(err("reducer recursion too deep"));
        }
        Ok(())
    })
}

/// An error whose message is `msg`.
pub(crate) fn err(msg: impl Into<String>) -> Error<PVal> {
    Error::new(PVal::Str(Text::from(msg.into())))
}

/// `kind (value)` as jq writes a value in an error message: the value's
/// JSON, cut to 11 bytes plus "..." when longer than 14 bytes.
pub(crate) fn kind_dump(v: &PVal) -> String {
    let json = v.to_jq_json();
    let shown = if json.len() > 14 {
        let mut end = 11;
        while !json.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &json[..end])
    } else {
        json
    };
    format!("{} ({})", v.type_name(), shown)
}

/// A number from an f64: whole values within ±2^53 become `Int` (so they
/// index and print as integers); `-0.0` stays a float as in jq.
pub(crate) fn num(f: f64) -> PVal {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 && !(f == 0.0 && f.is_sign_negative()) {
        PVal::Int(f as i64)
    } else {
        PVal::Float(f)
    }
}

/// C's `(intmax_t)d` on x86: truncation, with NaN and out-of-range values
/// giving `i64::MIN` (jq 1.6 computes `%` this way).
fn c_trunc_i64(f: f64) -> i64 {
    // 2^63: the first double outside i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

fn type_error2(l: &PVal, r: &PVal, what: &str) -> Error<PVal> {
    err(format!("{} and {} {}", kind_dump(l), kind_dump(r), what))
}

fn index_error(v: &PVal, k: &PVal) -> Error<PVal> {
    match k {
        PVal::Str(s) => err(format!("Cannot index {} with string \"{}\"", v.type_name(), s)),
        _ => err(format!("Cannot index {} with {}", v.type_name(), k.type_name())),
    }
}

pub(crate) fn iterate_error(v: &PVal) -> Error<PVal> {
    err(format!("Cannot iterate over {}", kind_dump(v)))
}

// ---------------------------------------------------------------------------
// JSON text as jq 1.6 writes it

impl PVal {
    /// Compact JSON as jq 1.6's `tojson` writes it: jq's number format
    /// (`1e+17`, `1e-05`, `-0`, NaN as `null`, infinities as ±DBL_MAX) and
    /// jq's string escapes. Keys are sorted (PVal objects are).
    pub fn to_jq_json(&self) -> String {
        let mut out = String::new();
        if write_json(self, &mut out, 0).is_err() {
            out.clear();
            out.push_str("\"<value nested too deeply>\"");
        }
        out
    }

    /// `tostring`: strings as they are, anything else as [`Self::to_jq_json`].
    pub fn to_jq_string(&self) -> Text {
        match self {
            PVal::Str(s) => s.clone(),
            v => Text::from(v.to_jq_json()),
        }
    }
}

/// Write `v` as compact jq JSON; `Err` when nested deeper than
/// [`MAX_DEPTH`].
pub(crate) fn write_json(v: &PVal, out: &mut String, depth: usize) -> Result<(), ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    match v {
        PVal::Null => out.push_str("null"),
        PVal::Bool(true) => out.push_str("true"),
        PVal::Bool(false) => out.push_str("false"),
        PVal::Int(i) => write_int(*i, out),
        PVal::Float(f) => write_f64(*f, out),
        PVal::Str(s) => write_str(s, out),
        PVal::Arr(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out, depth + 1)?;
            }
            out.push(']');
        }
        PVal::Obj(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write_json(x, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// An integer as jq prints it. jq holds numbers as doubles, so integers
/// of 17 digits or more print as the double they round to (`1e+17`).
pub(crate) fn write_int(i: i64, out: &mut String) {
    if i.unsigned_abs() < 10_000_000_000_000_000 {
        let _ = write!(out, "{i}");
    } else {
        write_f64(i as f64, out);
    }
}

/// A double as jq 1.6 prints it: the shortest round-trip digits, in
/// exponent form when the decimal point would be 4+ places left of the
/// first digit or more than 15 places right of the last one.
pub(crate) fn write_f64(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("null");
        return;
    }
    let f = if f.is_infinite() {
        if f > 0.0 { f64::MAX } else { f64::MIN }
    } else {
        f
    };
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.25e-7".
    let text = format!("{f:e}");
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (mantissa, exp) = body.split_once('e').unwrap_or((body, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let nd = digits.len() as i32;
    let decpt = exp + 1;
    if neg {
        out.push('-');
    }
    if decpt <= -4 || decpt > nd + 15 {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..-decpt {
            out.push('0');
        }
        out.push_str(&digits);
    } else if nd <= decpt {
        out.push_str(&digits);
        for _ in 0..decpt - nd {
            out.push('0');
        }
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
}

/// A JSON string literal with jq's escapes (control characters and DEL as
/// `\u00XX`, everything else above ASCII kept as UTF-8).
pub(crate) fn write_str(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\t' => "\\t",
            b'\r' => "\\r",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

// ---------------------------------------------------------------------------
// Indexing and slicing

/// Element `i` of an array (negative counts from the end), `null` when out
/// of range.
fn arr_get(a: &PArr, i: i64) -> PVal {
    let i = if i < 0 { i + a.len() as i64 } else { i };
    if i < 0 {
        return PVal::Null;
    }
    a.get(i as usize).cloned().unwrap_or(PVal::Null)
}

/// A slice bound: `None` for null, else the number.
fn bound(v: Option<&PVal>) -> Result<Option<f64>, Error<PVal>> {
    match v {
        None | Some(PVal::Null) => Ok(None),
        Some(PVal::Int(i)) => Ok(Some(*i as f64)),
        Some(PVal::Float(f)) => Ok(Some(*f)),
        Some(_) => Err(err("Start and end indices of an array slice must be numbers")),
    }
}

/// jq 1.6's slice arithmetic: negative bounds count from the end, bounds
/// are clamped, the start is truncated and the end rounded up.
fn slice_bounds(len: usize, from: Option<&PVal>, upto: Option<&PVal>) -> Res<(usize, usize)> {
    let lenf = len as f64;
    let mut s = bound(from)?.unwrap_or(0.0);
    let mut e = bound(upto)?.unwrap_or(lenf);
    if s.is_nan() {
        s = 0.0;
    }
    if e.is_nan() {
        e = lenf;
    }
    if s < 0.0 {
        s += lenf;
    }
    if e < 0.0 {
        e += lenf;
    }
    s = s.clamp(0.0, lenf);
    e = e.min(lenf).max(s);
    let start = s as usize;
    let mut end = e as usize;
    if e > end as f64 {
        end += 1;
    }
    Ok((start, end.min(len).max(start)))
}

/// The `{"start": s, "end": e}` object jq uses as the path of a slice.
fn slice_key(o: &PObj) -> Result<(Option<&PVal>, Option<&PVal>), Error<PVal>> {
    match (o.get("start"), o.get("end")) {
        (Some(s), Some(e)) => Ok((Some(s), Some(e))),
        _ => Err(err("Start and end indices of an array slice must be numbers")),
    }
}

fn slice_arr(a: &PArr, s: usize, e: usize) -> PArr {
    Arc::new(a.skip(s).take(e - s))
}

/// Codepoint slice of a string.
fn slice_str(s: &str, from: Option<&PVal>, upto: Option<&PVal>) -> ValR<PVal> {
    let len = s.chars().count();
    let (a, b) = slice_bounds(len, from, upto)?;
    let mut idx = s.char_indices().map(|(i, _)| i).chain(std::iter::once(s.len()));
    let start = idx.nth(a).unwrap_or(s.len());
    let end = if b > a {
        idx.nth(b - a - 1).unwrap_or(s.len())
    } else {
        start
    };
    Ok(PVal::str(&s[start..end]))
}

/// Positions where `needle` occurs in `hay` as a contiguous run (jq's
/// `.[array]` and `indices(array)`).
pub(crate) fn array_indices(hay: &PArr, needle: &PArr) -> PVal {
    let n = needle.len();
    let mut out = Vector::new();
    if n > 0 && hay.len() >= n {
        for i in 0..=hay.len() - n {
            if (0..n).all(|j| hay.get(i + j) == needle.get(j)) {
                out.push_back(PVal::Int(i as i64));
            }
        }
    }
    arr(out)
}

impl PVal {
    /// `.[k]` with jq 1.6's rules.
    pub(crate) fn jq_index(&self, k: &PVal) -> ValR<PVal> {
        match (self, k) {
            (PVal::Obj(o), PVal::Str(s)) => Ok(o.get(s).cloned().unwrap_or(PVal::Null)),
            (PVal::Arr(a), PVal::Int(i)) => Ok(arr_get(a, *i)),
            (PVal::Arr(a), PVal::Float(f)) => Ok(if f.fract() == 0.0 && f.is_finite() {
                arr_get(a, *f as i64)
            } else {
                PVal::Null
            }),
            (PVal::Null, PVal::Str(_) | PVal::Int(_) | PVal::Float(_) | PVal::Obj(_)) => Ok(PVal::Null),
            (PVal::Arr(a), PVal::Obj(o)) => {
                let (s, e) = slice_key(o)?;
                let (s, e) = slice_bounds(a.len(), s, e)?;
                Ok(PVal::Arr(slice_arr(a, s, e)))
            }
            (PVal::Str(st), PVal::Obj(o)) => {
                let (s, e) = slice_key(o)?;
                slice_str(st, s, e)
            }
            (PVal::Arr(a), PVal::Arr(b)) => Ok(array_indices(a, b)),
            (v, k) => Err(index_error(v, k)),
        }
    }
}

// ---------------------------------------------------------------------------
// Updates (`|=` and friends)
//
// The update of one path step, shared by jaq (`ValT::map_index` and
// friends) and evscope's direct engine (`reduce::direct`), so both update
// alike. They are generic over the error type: the update function `f`
// gives the new value, `None` to delete (jq 1.6 deletes a path whose update
// yields nothing), or an error, which ends the update.

fn neg_index_error() -> Error<PVal> {
    err("Out of bounds negative array index")
}

/// `.[i] |= f` on an array (or null, as an empty array).
fn update_arr<E: From<Error<PVal>>>(
    mut a: Vector,
    i: i64,
    f: impl FnOnce(PVal) -> Result<Option<PVal>, E>,
) -> Result<PVal, E> {
    let i = if i < 0 { i + a.len() as i64 } else { i };
    if i < 0 {
        return Err(neg_index_error().into());
    }
    if (i as usize) < a.len() {
        let i = i as usize;
        // Take the element out so a uniquely owned child can be updated in
        // place instead of copied.
        let cur = match a.get_mut(i) {
            Some(slot) => std::mem::take(slot),
            None => PVal::Null,
        };
        match f(cur)? {
            Some(y) => {
                if let Some(slot) = a.get_mut(i) {
                    *slot = y;
                }
            }
            None => {
                a.remove(i);
            }
        }
    } else if let Some(y) = f(PVal::Null)? {
        if i >= MAX_ARRAY_GROW {
            return Err(err("Array index too large").into());
        }
        while (a.len() as i64) < i {
            a.push_back(PVal::Null);
        }
        a.push_back(y);
    }
    Ok(arr(a))
}

/// `.[k] |= f` on an object (or null, as an empty object).
fn update_obj<E>(mut o: PObj, k: &Text, f: impl FnOnce(PVal) -> Result<Option<PVal>, E>) -> Result<PVal, E> {
    match o.get_mut(k) {
        Some(slot) => {
            // Take the value out so a uniquely owned child can be updated
            // in place; on an error `o` is dropped, so the hole is never
            // seen.
            match f(std::mem::take(slot))? {
                Some(y) => *slot = y,
                None => {
                    o.remove(k);
                }
            }
        }
        None => {
            if let Some(y) = f(PVal::Null)? {
                o.insert(k.clone(), y);
            }
        }
    }
    Ok(PVal::Obj(o))
}

/// `.[s:e] |= f` on an array: the update must give an array, which
/// replaces the slice; no output deletes it.
fn update_slice<E: From<Error<PVal>>>(
    a: PArr,
    from: Option<&PVal>,
    upto: Option<&PVal>,
    f: impl FnOnce(PVal) -> Result<Option<PVal>, E>,
) -> Result<PVal, E> {
    let (s, e) = slice_bounds(a.len(), from, upto)?;
    let mut out = a.take(s);
    match f(PVal::Arr(slice_arr(&a, s, e)))? {
        Some(PVal::Arr(new)) => out.append(Arc::unwrap_or_clone(new)),
        Some(_) => {
            return Err(err("A slice of an array can only be assigned another array").into());
        }
        None => {}
    }
    out.append(a.skip(e));
    Ok(arr(out))
}

/// `v | .[index] |= f` (without counting a step).
pub(crate) fn update_index<E: From<Error<PVal>>>(
    v: PVal,
    index: &PVal,
    opt: Opt,
    f: impl FnOnce(PVal) -> Result<Option<PVal>, E>,
) -> Result<PVal, E> {
    match (v, index) {
        (PVal::Obj(o), PVal::Str(k)) => update_obj(o, k, f),
        (PVal::Null, PVal::Str(k)) => update_obj(PObj::new(), k, f),
        (PVal::Arr(a), PVal::Int(i)) => update_arr(Arc::unwrap_or_clone(a), *i, f),
        (PVal::Arr(a), PVal::Float(x)) => update_arr(Arc::unwrap_or_clone(a), c_trunc_i64(*x), f),
        (PVal::Null, PVal::Int(i)) => update_arr(Vector::new(), *i, f),
        (PVal::Null, PVal::Float(x)) => update_arr(Vector::new(), c_trunc_i64(*x), f),
        (PVal::Arr(a), PVal::Obj(o)) => {
            let (s, e) = slice_key(o)?;
            update_slice(a, s, e, f)
        }
        (PVal::Null, PVal::Obj(o)) => {
            let (s, e) = slice_key(o)?;
            update_slice(Arc::new(Vector::new()), s, e, f)
        }
        (PVal::Str(s), PVal::Obj(_)) => opt.fail(PVal::Str(s), |_| {
            err("Cannot update field at object index of string").into()
        }),
        (v, k) => opt.fail(v, |v| index_error(&v, k).into()),
    }
}

/// `v | .[] |= f` (without counting a step). Every element is updated from
/// its original value; elements whose update yields nothing are removed
/// (see the module docs of reduce::jq for how this differs from jq 1.6).
pub(crate) fn update_values<E: From<Error<PVal>>>(
    v: PVal,
    opt: Opt,
    mut f: impl FnMut(PVal) -> Result<Option<PVal>, E>,
) -> Result<PVal, E> {
    match v {
        PVal::Arr(a) => {
            let mut out = Vector::new();
            for x in Arc::unwrap_or_clone(a) {
                if let Some(y) = f(x)? {
                    out.push_back(y);
                }
            }
            Ok(arr(out))
        }
        PVal::Obj(o) => {
            let mut out = o.clone();
            for (k, v) in o {
                match f(v)? {
                    Some(y) => {
                        if let Some(slot) = out.get_mut(&k) {
                            *slot = y;
                        }
                    }
                    None => {
                        out.remove(&k);
                    }
                }
            }
            Ok(PVal::Obj(out))
        }
        v => opt.fail(v, |v| iterate_error(&v).into()),
    }
}

/// `v | .[from:upto] |= f` (without counting a step).
pub(crate) fn update_range<E: From<Error<PVal>>>(
    v: PVal,
    from: Option<&PVal>,
    upto: Option<&PVal>,
    opt: Opt,
    f: impl FnOnce(PVal) -> Result<Option<PVal>, E>,
) -> Result<PVal, E> {
    match v {
        PVal::Arr(a) => update_slice(a, from, upto, f),
        PVal::Null => update_slice(Arc::new(Vector::new()), from, upto, f),
        v => opt.fail(v, |v| {
            err(format!(
                "Cannot update field at object index of {}",
                v.type_name()
            ))
            .into()
        }),
    }
}

/// The first output of jaq's update function, as the shared update
/// helpers take it.
fn first_of<'a, I: Iterator<Item = ValX<'a, PVal>>>(
    mut it: I,
) -> Result<Option<PVal>, jaq_core::Exn<'a, PVal>> {
    it.next().transpose()
}

// ---------------------------------------------------------------------------
// jaq's value traits

impl From<isize> for PVal {
    fn from(i: isize) -> Self {
        PVal::Int(i as i64)
    }
}

impl From<usize> for PVal {
    fn from(u: usize) -> Self {
        i64::try_from(u).map_or(PVal::Float(u as f64), PVal::Int)
    }
}

impl From<f64> for PVal {
    fn from(f: f64) -> Self {
        num(f)
    }
}

impl From<jaq_core::val::Range<PVal>> for PVal {
    /// The path of a slice, as jq writes it: `{"start": s, "end": e}`.
    fn from(r: jaq_core::val::Range<PVal>) -> Self {
        let mut o = PObj::new();
        o.insert(Text::from("start"), r.start.unwrap_or_default());
        o.insert(Text::from("end"), r.end.unwrap_or_default());
        PVal::Obj(o)
    }
}

impl FromIterator<PVal> for PVal {
    fn from_iter<I: IntoIterator<Item = PVal>>(iter: I) -> Self {
        arr(iter.into_iter().collect())
    }
}

impl std::ops::Add for PVal {
    type Output = ValR<PVal>;
    fn add(self, rhs: PVal) -> ValR<PVal> {
        step()?;
        use PVal::*;
        match (self, rhs) {
            (Null, x) | (x, Null) => Ok(x),
            (Int(a), Int(b)) => Ok(a.checked_add(b).map_or_else(|| num(a as f64 + b as f64), Int)),
            (a @ (Int(_) | Float(_)), b @ (Int(_) | Float(_))) => {
                Ok(num(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)))
            }
            (Str(a), Str(b)) => Ok(if a.is_empty() {
                Str(b)
            } else if b.is_empty() {
                Str(a)
            } else {
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(&a);
                s.push_str(&b);
                Str(Text::from(s))
            }),
            (Arr(mut a), Arr(b)) => {
                if a.is_empty() {
                    return Ok(Arr(b));
                }
                Arc::make_mut(&mut a).append(Arc::unwrap_or_clone(b));
                Ok(Arr(a))
            }
            (Obj(mut a), Obj(b)) => {
                // Right wins; walk the smaller map.
                if a.len() >= b.len() {
                    for (k, v) in b {
                        a.insert(k, v);
                    }
                    Ok(Obj(a))
                } else {
                    let mut b = b;
                    for (k, v) in a {
                        b.or_insert(k, v);
                    }
                    Ok(Obj(b))
                }
            }
            (a, b) => Err(type_error2(&a, &b, "cannot be added")),
        }
    }
}

impl std::ops::Sub for PVal {
    type Output = ValR<PVal>;
    fn sub(self, rhs: PVal) -> ValR<PVal> {
        step()?;
        use PVal::*;
        match (self, rhs) {
            (Int(a), Int(b)) => Ok(a.checked_sub(b).map_or_else(|| num(a as f64 - b as f64), Int)),
            (a @ (Int(_) | Float(_)), b @ (Int(_) | Float(_))) => {
                Ok(num(a.as_f64().unwrap_or(0.0) - b.as_f64().unwrap_or(0.0)))
            }
            (Arr(a), Arr(b)) => Ok(a.iter().filter(|x| !b.contains(x)).cloned().collect()),
            (a, b) => Err(type_error2(&a, &b, "cannot be subtracted")),
        }
    }
}

/// Deep merge: nested objects merge, anything else from `b` wins.
fn deep_merge(mut a: PObj, b: PObj, depth: usize) -> Res<PObj> {
    if depth > MAX_DEPTH {
        return Err(err("object nested too deeply to merge"));
    }
    for (k, bv) in b {
        match (a.get_mut(&k), bv) {
            (Some(PVal::Obj(av)), PVal::Obj(bo)) => {
                let av = std::mem::take(av);
                let merged = deep_merge(av, bo, depth + 1)?;
                a.insert(k, PVal::Obj(merged));
            }
            (_, bv) => {
                a.insert(k, bv);
            }
        }
    }
    Ok(a)
}

/// `"ab" * n` as jq 1.6 does it: `n - 1` truncated extra copies, null when
/// that is negative.
fn repeat(s: &Text, n: f64) -> ValR<PVal> {
    let extra = (n - 1.0).trunc();
    if extra.is_nan() || extra < 0.0 {
        return Ok(PVal::Null);
    }
    let copies = extra + 1.0;
    if copies * s.len() as f64 > MAX_REPEAT_BYTES as f64 {
        return Err(err("Repeat string result too long"));
    }
    Ok(PVal::Str(Text::from(s.repeat(copies as usize))))
}

impl std::ops::Mul for PVal {
    type Output = ValR<PVal>;
    fn mul(self, rhs: PVal) -> ValR<PVal> {
        step()?;
        use PVal::*;
        match (self, rhs) {
            (Int(a), Int(b)) => Ok(a.checked_mul(b).map_or_else(|| num(a as f64 * b as f64), Int)),
            (a @ (Int(_) | Float(_)), b @ (Int(_) | Float(_))) => {
                Ok(num(a.as_f64().unwrap_or(0.0) * b.as_f64().unwrap_or(0.0)))
            }
            (Str(s), n @ (Int(_) | Float(_))) | (n @ (Int(_) | Float(_)), Str(s)) => {
                repeat(&s, n.as_f64().unwrap_or(0.0))
            }
            (Obj(a), Obj(b)) => Ok(Obj(deep_merge(a, b, 0)?)),
            (a, b) => Err(type_error2(&a, &b, "cannot be multiplied")),
        }
    }
}

/// `"a,b" / ","`: jq's split (an empty input gives `[]`, an empty
/// separator splits into characters).
pub(crate) fn split_str(s: &str, sep: &str) -> PVal {
    if s.is_empty() {
        return arr(Vector::new());
    }
    if sep.is_empty() {
        return s.chars().map(|c| PVal::str(c.encode_utf8(&mut [0; 4]))).collect();
    }
    s.split(sep).map(PVal::str).collect()
}

impl std::ops::Div for PVal {
    type Output = ValR<PVal>;
    fn div(self, rhs: PVal) -> ValR<PVal> {
        step()?;
        use PVal::*;
        match (self, rhs) {
            (a @ (Int(_) | Float(_)), b @ (Int(_) | Float(_))) => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                if y == 0.0 {
                    return Err(type_error2(
                        &a,
                        &b,
                        "cannot be divided because the divisor is zero",
                    ));
                }
                if let (Int(p), Int(q)) = (&a, &b)
                    && let (Some(0), Some(d)) = (p.checked_rem(*q), p.checked_div(*q))
                {
                    return Ok(Int(d));
                }
                Ok(num(x / y))
            }
            (Str(a), Str(b)) => Ok(split_str(&a, &b)),
            (a, b) => Err(type_error2(&a, &b, "cannot be divided")),
        }
    }
}

impl std::ops::Rem for PVal {
    type Output = ValR<PVal>;
    fn rem(self, rhs: PVal) -> ValR<PVal> {
        step()?;
        use PVal::*;
        let int = |v: &PVal| match v {
            Int(i) => Some(*i),
            Float(f) => Some(c_trunc_i64(*f)),
            _ => None,
        };
        match (int(&self), int(&rhs)) {
            (Some(_), Some(0)) => Err(type_error2(
                &self,
                &rhs,
                "cannot be divided (remainder) because the divisor is zero",
            )),
            (Some(a), Some(b)) => Ok(Int(a.wrapping_rem(b))),
            _ => Err(type_error2(&self, &rhs, "cannot be divided (remainder)")),
        }
    }
}

impl std::ops::Neg for PVal {
    type Output = ValR<PVal>;
    fn neg(self) -> ValR<PVal> {
        step()?;
        match self {
            PVal::Int(i) => Ok(i.checked_neg().map_or(PVal::Float(-(i as f64)), PVal::Int)),
            PVal::Float(f) => Ok(num(-f)),
            v => Err(err(format!("{} cannot be negated", kind_dump(&v)))),
        }
    }
}

/// An object key: a string, else jq's error.
pub(crate) fn object_key(k: PVal) -> Res<Text> {
    match k {
        PVal::Str(k) => Ok(k),
        k => Err(err(format!("Object keys must be strings, not {}", kind_dump(&k)))),
    }
}

impl jaq_core::ValT for PVal {
    fn from_num(n: &str) -> ValR<Self> {
        if n.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = n.parse::<i64>()
        {
            return Ok(PVal::Int(i));
        }
        n.parse::<f64>()
            .map(|f| if f.is_infinite() { PVal::Float(f) } else { num(f) })
            .map_err(|_| err(format!("cannot parse {n} as a number")))
    }

    fn from_map<I: IntoIterator<Item = (Self, Self)>>(iter: I) -> ValR<Self> {
        step()?;
        let mut o = PObj::new();
        for (k, v) in iter {
            o.insert(object_key(k)?, v);
        }
        Ok(PVal::Obj(o))
    }

    fn key_values(self) -> BoxIter<'static, ValR<(Self, Self), Self>> {
        if let Err(e) = step() {
            return box_once(Err(e));
        }
        match self {
            PVal::Arr(a) => Box::new(
                Arc::unwrap_or_clone(a)
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Ok((PVal::Int(i as i64), v))),
            ),
            PVal::Obj(o) => Box::new(o.into_iter().map(|(k, v)| Ok((PVal::Str(k), v)))),
            v => box_once(Err(iterate_error(&v))),
        }
    }

    fn values(self) -> Box<dyn Iterator<Item = ValR<Self>>> {
        if let Err(e) = step() {
            return box_once(Err(e));
        }
        match self {
            PVal::Arr(a) => Box::new(Arc::unwrap_or_clone(a).into_iter().map(Ok)),
            PVal::Obj(o) => Box::new(o.into_iter().map(|(_, v)| Ok(v))),
            v => box_once(Err(iterate_error(&v))),
        }
    }

    fn index(self, index: &Self) -> ValR<Self> {
        step()?;
        self.jq_index(index)
    }

    fn range(self, range: jaq_core::val::Range<&Self>) -> ValR<Self> {
        step()?;
        match self {
            PVal::Null => Ok(PVal::Null),
            PVal::Arr(a) => {
                let (s, e) = slice_bounds(a.len(), range.start, range.end)?;
                Ok(PVal::Arr(slice_arr(&a, s, e)))
            }
            PVal::Str(s) => slice_str(&s, range.start, range.end),
            v => Err(err(format!("Cannot index {} with object", v.type_name()))),
        }
    }

    fn map_values<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        step()?;
        update_values(self, opt, |v| first_of(f(v)))
    }

    fn map_index<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        index: &Self,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        step()?;
        update_index(self, index, opt, |v| first_of(f(v)))
    }

    fn map_range<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        range: jaq_core::val::Range<&Self>,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        step()?;
        update_range(self, range.start, range.end, opt, |v| first_of(f(v)))
    }

    fn as_bool(&self) -> bool {
        !matches!(self, PVal::Null | PVal::Bool(false))
    }

    fn into_string(self) -> Self {
        match self {
            PVal::Str(_) => self,
            v => PVal::Str(Text::from(v.to_jq_json())),
        }
    }
}

impl jaq_std::ValT for PVal {
    fn into_seq<S: FromIterator<Self>>(self) -> Result<S, Self> {
        match self {
            PVal::Arr(a) => Ok(Arc::unwrap_or_clone(a).into_iter().collect()),
            v => Err(v),
        }
    }

    fn is_int(&self) -> bool {
        match self {
            PVal::Int(_) => true,
            PVal::Float(f) => f.is_finite() && f.fract() == 0.0,
            _ => false,
        }
    }

    fn as_isize(&self) -> Option<isize> {
        match self {
            PVal::Int(i) => isize::try_from(*i).ok(),
            PVal::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as isize),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        PVal::as_f64(self)
    }

    fn is_utf8_str(&self) -> bool {
        matches!(self, PVal::Str(_))
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            PVal::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    fn as_sub_str(&self, sub: &[u8]) -> Self {
        if let PVal::Str(s) = self {
            // `sub` points into `s`: find its offset without unsafe code.
            let base = s.as_ptr() as usize;
            let at = sub.as_ptr() as usize;
            if at >= base && at + sub.len() <= base + s.len() {
                let start = at - base;
                if let Some(part) = s.get(start..start + sub.len()) {
                    return PVal::str(part);
                }
            }
        }
        PVal::Str(Text::from(String::from_utf8_lossy(sub)))
    }

    fn from_utf8_bytes(b: impl AsRef<[u8]> + Send + 'static) -> Self {
        PVal::Str(Text::from(String::from_utf8_lossy(b.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> String {
        let mut s = String::new();
        write_f64(x, &mut s);
        s
    }

    #[test]
    fn numbers_print_like_jq() {
        assert_eq!(f(1e17), "1e+17");
        assert_eq!(f(1e-5), "1e-05");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(1.5e300), "1.5e+300");
        assert_eq!(f(123456789012345678901234.0), "123456789012345690000000");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(3.0), "3");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(f64::INFINITY), "1.7976931348623157e+308");
        assert_eq!(f(f64::NAN), "null");
        assert_eq!(f(1e-7), "1e-07");
        assert_eq!(PVal::Int(10_000_000_000_000_000).to_jq_json(), "1e+16");
        assert_eq!(PVal::Int(-42).to_jq_json(), "-42");
    }

    #[test]
    fn strings_escape_like_jq() {
        let v = PVal::str("a\"\\\n\u{1}\u{7f}é\u{2028}");
        assert_eq!(v.to_jq_json(), "\"a\\\"\\\\\\n\\u0001\\u007fé\u{2028}\"");
    }

    #[test]
    fn messages_truncate_like_jq() {
        assert_eq!(kind_dump(&PVal::Int(5)), "number (5)");
        assert_eq!(
            kind_dump(&PVal::str("abcdefghijklmnop")),
            "string (\"abcdefghij...)"
        );
    }

    #[test]
    fn arithmetic() {
        assert_eq!((PVal::Int(1) + PVal::Int(2)).unwrap(), PVal::Int(3));
        assert_eq!(
            (PVal::Int(i64::MAX) + PVal::Int(1)).unwrap().as_f64(),
            Some(i64::MAX as f64 + 1.0)
        );
        assert_eq!((PVal::Int(1) / PVal::Int(2)).unwrap(), PVal::Float(0.5));
        assert_eq!((PVal::Int(4) / PVal::Int(2)).unwrap(), PVal::Int(2));
        assert!((PVal::Int(1) / PVal::Int(0)).is_err());
        assert_eq!((PVal::Int(-5) % PVal::Int(3)).unwrap(), PVal::Int(-2));
        assert_eq!((PVal::Int(i64::MIN) % PVal::Int(-1)).unwrap(), PVal::Int(0));
        assert_eq!((PVal::str("ab") * PVal::Int(3)).unwrap(), PVal::str("ababab"));
        assert_eq!((PVal::str("ab") * PVal::Int(0)).unwrap(), PVal::Null);
        assert!((PVal::str("ab") * PVal::Float(1e300)).is_err());
    }
}
