//! Strings that recur all over a state, made static.
//!
//! A [`Text`] is reference counted, and every clone and drop of one is an
//! atomic operation on its count. Decoding a state clones the strings it
//! repeats (an object's keys, values such as a plan's name) hundreds of
//! thousands of times: on the 10M benchmark log those atomic operations
//! were four fifths of reading the string table, 11% of the seeks'
//! time. A string the decoder meets often is swapped for a static one
//! from this pool (see [`arcstr::ArcStr::leak`]), whose clones
//! and drops touch no count. Static strings are never freed, so the pool
//! is bounded: short strings only, up to [`POOL_STRINGS`] of them and
//! [`POOL_BYTES`] in all; past that, strings stay counted.

use super::Text;
use std::collections::HashMap;
use std::sync::Mutex;

/// Strings at most this long are made static.
pub const POOL_STR_MAX: usize = 64;
/// At most this many strings are made static in a process.
pub const POOL_STRINGS: usize = 1 << 16;
/// At most this many bytes of strings are made static in a process.
pub const POOL_BYTES: usize = 2 << 20;

struct Pool {
    map: HashMap<&'static str, Text, foldhash::fast::RandomState>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// The static string equal to `s`: the pool's, or `s` itself made static
/// when the pool has room for it. `None` when `s` is too long or the pool
/// is full (then `s` stays as it is).
pub fn hot(s: &Text) -> Option<Text> {
    if Text::is_static(s) {
        return Some(s.clone());
    }
    if s.len() > POOL_STR_MAX {
        return None;
    }
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = guard.get_or_insert_with(|| Pool {
        map: HashMap::default(),
        bytes: 0,
    });
    if let Some(t) = pool.map.get(s.as_str()) {
        return Some(t.clone());
    }
    if pool.map.len() >= POOL_STRINGS || pool.bytes + s.len() > POOL_BYTES {
        return None;
    }
    // A copy is leaked, not `s`: its other clones may be anywhere and stay
    // counted (and freed) as before.
    let t = Text::from(s.as_str());
    let key: &'static str = t.leak();
    pool.bytes += s.len();
    pool.map.insert(key, t.clone());
    Some(t)
}

/// How many strings the pool holds, and their bytes.
#[cfg(test)]
fn pooled() -> (usize, usize) {
    let guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().map_or((0, 0), |p| (p.map.len(), p.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hot_string_is_static_equal_and_shared_and_long_ones_are_not_pooled() {
        let a = Text::from(format!("credits-{}", line!()).as_str());
        let h = hot(&a).expect("a short string is pooled");
        assert!(Text::is_static(&h));
        assert!(!Text::is_static(&a), "the string given stays counted");
        assert_eq!(h, a);
        let again = hot(&Text::from(a.as_str())).expect("pooled");
        assert!(Text::ptr_eq(&h, &again), "one static copy for equal strings");
        let long = Text::from("x".repeat(POOL_STR_MAX + 1).as_str());
        assert!(hot(&long).is_none());
        let (n, bytes) = pooled();
        assert!(n >= 1 && bytes >= a.len());
    }
}
