//! The persistent JSON value the memory image is made of.
//!
//! `PVal` is an immutable JSON value whose arrays are `imbl` vectors and
//! whose objects are [`PObj`], a persistent B+ tree of our own (see
//! `pmap.rs` for why): cloning is O(1) and an update copies only the path it
//! touches, so every state of a fold can be kept cheaply. Object keys are
//! kept sorted, which is also the order `evscope state` prints.

pub mod hot;
pub(crate) mod jaq;
pub(crate) mod json;
pub(crate) mod order;
mod path;
mod pmap;
mod serde_impl;

pub use path::{PathSeg, parse_pointer, pointer_escape, to_pointer};

use std::sync::Arc;

/// A persistent array. It sits behind an `Arc` so that `PVal` stays 24
/// bytes (an `imbl::Vector` is 64): object nodes hold many values inline.
/// Build one with `PVal::arr(iter)`; update with `Arc::make_mut`.
pub type PArr = Arc<imbl::Vector<PVal>>;
pub use pmap::{DiffItem, Later, LeafSource, PObj, PutOff, SMALL_MAX, Slot, Small, leaf_sizes};

/// The strings and object keys of a [`PVal`]: a shared string behind one
/// thin pointer (length and count live with the bytes). Half the size of an
/// `Text`, it takes an object's B-tree node (six entries of key and
/// value) from 272 bytes to 224, which the allocator serves from its
/// 224-byte class rather than its 320: states and checkpoints are mostly
/// such nodes.
pub type Text = arcstr::ArcStr;

/// A JSON value with O(1) clone.
#[derive(Clone, Debug, Default)]
pub enum PVal {
    #[default]
    Null,
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// Any other number (jq numbers are doubles).
    Float(f64),
    Str(Text),
    Arr(PArr),
    Obj(PObj),
}

impl PVal {
    /// The jq type name of the value.
    pub fn type_name(&self) -> &'static str {
        match self {
            PVal::Null => "null",
            PVal::Bool(_) => "boolean",
            PVal::Int(_) | PVal::Float(_) => "number",
            PVal::Str(_) => "string",
            PVal::Arr(_) => "array",
            PVal::Obj(_) => "object",
        }
    }

    /// A string value.
    pub fn str(s: &str) -> PVal {
        PVal::Str(Text::from(s))
    }

    /// An array of the given values.
    pub fn arr(items: impl IntoIterator<Item = PVal>) -> PVal {
        PVal::Arr(Arc::new(items.into_iter().collect()))
    }

    /// An empty object.
    pub fn empty_obj() -> PVal {
        PVal::Obj(PObj::new())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PVal::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_obj(&self) -> Option<&PObj> {
        match self {
            PVal::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_arr(&self) -> Option<&PArr> {
        match self {
            PVal::Arr(a) => Some(a),
            _ => None,
        }
    }

    /// The value as f64, for numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PVal::Int(i) => Some(*i as f64),
            PVal::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// True when both values share the same storage (so are equal without
    /// looking inside). Scalars are compared by value.
    pub fn ptr_eq(&self, other: &PVal) -> bool {
        match (self, other) {
            (PVal::Arr(a), PVal::Arr(b)) => Arc::ptr_eq(a, b) || a.ptr_eq(b),
            (PVal::Obj(a), PVal::Obj(b)) => a.ptr_eq(b),
            (PVal::Str(a), PVal::Str(b)) => Text::ptr_eq(a, b),
            (PVal::Null, PVal::Null) => true,
            (PVal::Bool(a), PVal::Bool(b)) => a == b,
            (PVal::Int(a), PVal::Int(b)) => a == b,
            _ => false,
        }
    }

    /// A number from an f64, kept as an integer when it is one.
    pub fn from_f64(f: f64) -> PVal {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
            PVal::Int(f as i64)
        } else {
            PVal::Float(f)
        }
    }

    /// The value at a path, if there is one.
    pub fn get_path(&self, path: &[PathSeg]) -> Option<&PVal> {
        let mut cur = self;
        for seg in path {
            cur = match (cur, seg) {
                (PVal::Obj(o), PathSeg::Key(k)) => o.get(k)?,
                (PVal::Arr(a), PathSeg::Index(i)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Compact JSON text (keys sorted).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".into())
    }

    /// Pretty JSON text with two-space indentation (keys sorted).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "null".into())
    }

    /// Parse JSON text.
    pub fn from_json(s: &str) -> Result<PVal, serde_json::Error> {
        match json::parse(s) {
            Some(v) => Ok(v),
            None => serde_json::from_str(s),
        }
    }

    /// Convert to a `serde_json::Value` (for tests and interop).
    pub fn to_serde(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Convert from a `serde_json::Value`.
    pub fn from_serde(v: &serde_json::Value) -> PVal {
        match v {
            serde_json::Value::Null => PVal::Null,
            serde_json::Value::Bool(b) => PVal::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => PVal::Int(i),
                None => PVal::from_f64(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => PVal::str(s),
            serde_json::Value::Array(a) => PVal::arr(a.iter().map(PVal::from_serde)),
            serde_json::Value::Object(o) => PVal::Obj(
                o.iter()
                    .map(|(k, v)| (Text::from(k.as_str()), PVal::from_serde(v)))
                    .collect(),
            ),
        }
    }
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<PVal>() <= 24);

impl std::fmt::Display for PVal {
    /// Compact JSON, as jq prints a value inside a string interpolation.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl From<bool> for PVal {
    fn from(b: bool) -> Self {
        PVal::Bool(b)
    }
}

impl From<i64> for PVal {
    fn from(i: i64) -> Self {
        PVal::Int(i)
    }
}

impl From<&str> for PVal {
    fn from(s: &str) -> Self {
        PVal::str(s)
    }
}

impl From<String> for PVal {
    fn from(s: String) -> Self {
        PVal::Str(Text::from(s))
    }
}
