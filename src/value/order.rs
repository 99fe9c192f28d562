//! jq's equality and total order: null < false < true < numbers < strings <
//! arrays < objects; objects compare by their sorted key sets, then by values.

use super::PVal;
use std::cmp::Ordering;

/// A value's place in jq's order of kinds (false and true are kinds of
/// their own): 0 null, 1 false, 2 true, 3 number, 4 string, 5 array, 6 object.
pub(crate) fn rank(v: &PVal) -> u8 {
    match v {
        PVal::Null => 0,
        PVal::Bool(false) => 1,
        PVal::Bool(true) => 2,
        PVal::Int(_) | PVal::Float(_) => 3,
        PVal::Str(_) => 4,
        PVal::Arr(_) => 5,
        PVal::Obj(_) => 6,
    }
}

/// Compare two numbers; NaN sorts below every other number (as in jq).
fn cmp_num(a: &PVal, b: &PVal) -> Ordering {
    match (a, b) {
        (PVal::Int(x), PVal::Int(y)) => x.cmp(y),
        _ => {
            let x = a.as_f64().unwrap_or(f64::NAN);
            let y = b.as_f64().unwrap_or(f64::NAN);
            match (x.is_nan(), y.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            }
        }
    }
}

impl Ord for PVal {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.ptr_eq(other) {
            return Ordering::Equal;
        }
        let (ra, rb) = (rank(self), rank(other));
        if ra != rb {
            return ra.cmp(&rb);
        }
        match (self, other) {
            (PVal::Str(a), PVal::Str(b)) => a.cmp(b),
            (PVal::Arr(a), PVal::Arr(b)) => a.iter().cmp(b.iter()),
            (PVal::Obj(a), PVal::Obj(b)) => a.keys().cmp(b.keys()).then_with(|| a.values().cmp(b.values())),
            (a, b) if ra == 3 => cmp_num(a, b),
            _ => Ordering::Equal,
        }
    }
}

impl PartialOrd for PVal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PVal {
    /// Equality walks only what differs: `PObj::diff_each` skips the nodes two
    /// objects share, so comparing two states costs the size of their
    /// difference, not of the states (`cmp` would visit every key).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PVal::Obj(a), PVal::Obj(b)) => {
                a.len() == b.len() && !a.diff_each(b, |_| std::ops::ControlFlow::Break(()))
            }
            (PVal::Arr(a), PVal::Arr(b)) => {
                a.len() == b.len() && (a.ptr_eq(b) || a.iter().zip(b.iter()).all(|(x, y)| x == y))
            }
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for PVal {}
