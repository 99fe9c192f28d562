//! `PObj`: the persistent object of a [`PVal`], a copy-on-write B+ tree.
//!
//! Entries live in leaves of up to [`LEAF_MAX`]; branches hold up to
//! [`KIDS_MAX`] shared children and the keys that separate them. Cloning
//! is O(1); an update copies only the nodes on its path that are shared
//! and changes the rest in place. The shape is that of the
//! `imbl::OrdMap` this replaces (leaves of 6 entries, 224 bytes; branches
//! of 7 children, 160), so a state costs the memory it did.
//!
//! Why not `imbl::OrdMap`: it can only be built by inserting entries one by
//! one. A seek far into a big log reads a whole state from the scratch file
//! (see `image`), and on the 10M benchmark log the 100,000 inserts of its
//! biggest object were half the time that took. Here a map is built from
//! sorted entries bottom up ([`PObj::from_sorted`]), in one pass, with full
//! nodes. The diff skips the subtrees two maps share, as `imbl`'s did, so a
//! diff and an equality cost the size of the difference.
//!
//! A map can also be built with its leaves not read yet ([`PObj::lazy`]):
//! each is read from its source the first time anything looks at it (once,
//! whichever thread asks first) and made an ordinary leaf when changed. A
//! far seek reads a whole state this way, then changes the part its
//! deltas touch; until every leaf is read the map keeps its source's bytes.
//! A change to a member's value that need not read it ([`PObj::slot`])
//! waits in the unread leaf and is made when the leaf is read: a far
//! seek's deltas then read only the leaves they add members to or remove
//! them from.

use super::{PVal, Text};
use arrayvec::ArrayVec;
use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

/// Entries in a leaf, at most.
const LEAF_MAX: usize = 6;
/// Children of a branch, at most.
const KIDS_MAX: usize = 7;
const SEPS_MAX: usize = KIDS_MAX - 1;

type Entry = (Text, PVal);

/// The entries of a map that fits in one leaf (see [`PObj::from_small`]).
pub type Small = ArrayVec<Entry, LEAF_MAX>;
/// The most entries a [`Small`] holds.
pub const SMALL_MAX: usize = LEAF_MAX;

#[derive(Clone)]
struct Leaf(Body);

/// A leaf's entries, or where to read them from when first asked for.
#[derive(Clone)]
enum Body {
    Ready(ArrayVec<Entry, LEAF_MAX>),
    Lazy(Lazy),
}

/// A leaf not read yet (see [`PObj::lazy`]): read once, by whichever
/// thread first asks; a change to its members' values waits in `later`
/// until then (see [`PObj::slot`]); any other change reads it into an
/// ordinary leaf.
#[derive(Clone)]
struct Lazy {
    read: OnceLock<Box<Small>>,
    src: Arc<dyn LeafSource>,
    at: u32,
    /// Changes to the values of members, in the order they were made.
    later: Vec<(Text, Arc<dyn Later>)>,
}

impl Lazy {
    /// The entries from the source, with the changes put off made.
    fn load(&self) -> Small {
        let mut entries = self.src.entries(self.at);
        for (key, change) in &self.later {
            let made = match find_in(&entries, key) {
                Ok(i) => change.apply(&mut entries[i].1),
                Err(_) => Err(format!("no member {key:?}")),
            };
            // Put off only by changes that were applied to this state
            // before (a delta's): not applying now is a bug.
            if let Err(e) = made {
                panic!("a change put off until its leaf was read does not apply: {e}");
            }
        }
        entries
    }
}

/// Where the leaves of a map made by [`PObj::lazy`] are read from.
pub trait LeafSource: Send + Sync {
    /// The entries of the leaf at `at`, in key order. A source holds bytes
    /// that were checked when it was made: failing here is a bug.
    fn entries(&self, at: u32) -> Small;

    /// Whether the leaf at `at` has `key`, when that is known without
    /// reading it (a change put off to a member that is not there is
    /// otherwise found only when the leaf is read).
    fn has(&self, _at: u32, _key: &str) -> Option<bool> {
        None
    }
}

/// A change to one member's value that can wait until the member is read
/// (see [`PObj::slot`]); made by reference, since every copy of the map
/// that shares the leaf makes it when it reads it.
pub trait Later: Send + Sync {
    fn apply(&self, value: &mut PVal) -> Result<(), String>;
}

/// Where a change to one member's value goes (see [`PObj::slot`]).
pub enum Slot<'a> {
    /// The member's value: change it now.
    Here(&'a mut PVal),
    /// There is no such member.
    Missing,
    /// The member's leaf is not read yet: the change waits in it.
    Later(PutOff<'a>),
}

/// A member whose leaf is not read yet (see [`Slot::Later`]).
pub struct PutOff<'a> {
    list: &'a mut Vec<(Text, Arc<dyn Later>)>,
    key: Text,
}

impl PutOff<'_> {
    /// Make `change` to the member's value when its leaf is read (the
    /// member is taken to be there: see [`PObj::slot`]).
    pub fn put_off(self, change: Arc<dyn Later>) {
        self.list.push((self.key, change));
    }
}

/// Child `i` holds the keys from `seps[i - 1]` (inclusive) up to `seps[i]`
/// (exclusive). Every leaf is at the same depth.
#[derive(Clone)]
struct Branch {
    seps: ArrayVec<Text, SEPS_MAX>,
    kids: Kids,
}

#[derive(Clone)]
enum Kids {
    Leaves(ArrayVec<Arc<Leaf>, KIDS_MAX>),
    Branches(ArrayVec<Arc<Branch>, KIDS_MAX>),
}

#[derive(Clone)]
enum Root {
    Leaf(Arc<Leaf>),
    Branch(Arc<Branch>),
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Leaf>() + 16 <= 224 && std::mem::size_of::<Branch>() + 16 <= 160);

/// The same code for either kind of children (`$k` is the list of them).
macro_rules! with_kids {
    ($kids:expr, $k:ident => $e:expr) => {
        match $kids {
            Kids::Leaves($k) => $e,
            Kids::Branches($k) => $e,
        }
    };
}

/// What an insert below did.
enum Ins<N> {
    Added,
    Replaced(PVal),
    /// The node split: the new right half, and its first key.
    Split(Text, Arc<N>),
}

/// A leaf or a branch.
trait Node: Clone + Sized {
    /// A node (other than the root) left with fewer than this many items
    /// is merged with a neighbour or takes some of its items.
    const MIN: usize;
    /// Entries of a leaf, children of a branch.
    fn size(&self) -> usize;
    fn underfull(&self) -> bool {
        self.size() < Self::MIN
    }
    fn insert(&mut self, key: Text, value: PVal) -> Ins<Self>;
    fn remove(&mut self, key: &str) -> Option<PVal>;
    /// With `right`, its neighbour after `sep`: merged into this one when
    /// both fit (`None`), else their items shared evenly (the new `sep`).
    fn balance(&mut self, right: &mut Self, sep: &Text) -> Option<Text>;
    fn kids(list: ArrayVec<Arc<Self>, KIDS_MAX>) -> Kids;
    fn root(node: Arc<Self>) -> Root;
}

/// Where `key` is among `items` (by `key_of`), or would go. Unlike the
/// standard library's search this stops at an equal key: comparing two
/// strings costs more than the branch it saves.
fn search<T>(items: &[T], key: &str, key_of: impl Fn(&T) -> &str) -> Result<usize, usize> {
    let (mut lo, mut hi) = (0, items.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match key_of(&items[mid]).cmp(key) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

/// Where `key` is among a leaf's `entries`, or would go.
fn find_in(entries: &[Entry], key: &str) -> Result<usize, usize> {
    search(entries, key, |e| e.0.as_str())
}

/// The child whose range holds `key`, of a branch with `seps`.
fn slot(seps: &[Text], key: &str) -> usize {
    search(seps, key, |s| s.as_str()).map_or_else(|i| i, |i| i + 1)
}

impl Leaf {
    fn ready(entries: ArrayVec<Entry, LEAF_MAX>) -> Leaf {
        Leaf(Body::Ready(entries))
    }

    /// The entries, read first if they are not yet.
    #[inline]
    fn entries(&self) -> &[Entry] {
        match &self.0 {
            Body::Ready(e) => e,
            Body::Lazy(l) => l.read.get_or_init(|| Box::new(l.load())),
        }
    }

    /// The entries to change: a leaf not read yet becomes an ordinary one.
    fn entries_mut(&mut self) -> &mut ArrayVec<Entry, LEAF_MAX> {
        if let Body::Lazy(l) = &mut self.0 {
            let read = match l.read.take() {
                Some(e) => *e,
                None => l.load(),
            };
            self.0 = Body::Ready(read);
        }
        match &mut self.0 {
            Body::Ready(e) => e,
            Body::Lazy(_) => unreachable!("the leaf was made ready just above"),
        }
    }

    fn into_entries(self) -> ArrayVec<Entry, LEAF_MAX> {
        match self.0 {
            Body::Ready(e) => e,
            Body::Lazy(mut l) => match l.read.take() {
                Some(e) => *e,
                None => l.load(),
            },
        }
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        find_in(self.entries(), key)
    }
}

impl Node for Leaf {
    const MIN: usize = LEAF_MAX / 2;

    fn size(&self) -> usize {
        self.entries().len()
    }

    fn insert(&mut self, key: Text, value: PVal) -> Ins<Leaf> {
        let entries = self.entries_mut();
        match find_in(entries, &key) {
            Ok(i) => Ins::Replaced(std::mem::replace(&mut entries[i].1, value)),
            Err(i) => {
                if !entries.is_full() {
                    entries.insert(i, (key, value));
                    return Ins::Added;
                }
                let mid = LEAF_MAX / 2;
                let mut right: ArrayVec<Entry, LEAF_MAX> = entries.drain(mid..).collect();
                match i <= mid {
                    true => entries.insert(i, (key, value)),
                    false => right.insert(i - mid, (key, value)),
                }
                Ins::Split(right[0].0.clone(), Arc::new(Leaf::ready(right)))
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<PVal> {
        let entries = self.entries_mut();
        let i = find_in(entries, key).ok()?;
        Some(entries.remove(i).1)
    }

    fn balance(&mut self, right: &mut Leaf, _sep: &Text) -> Option<Text> {
        let (left, right) = (self.entries_mut(), right.entries_mut());
        let mut all: Vec<Entry> = left.drain(..).chain(right.drain(..)).collect();
        if all.len() <= LEAF_MAX {
            left.extend(all);
            return None;
        }
        let half = all.len() / 2;
        right.extend(all.drain(half..));
        left.extend(all);
        Some(right[0].0.clone())
    }

    fn kids(list: ArrayVec<Arc<Leaf>, KIDS_MAX>) -> Kids {
        Kids::Leaves(list)
    }

    fn root(node: Arc<Leaf>) -> Root {
        Root::Leaf(node)
    }
}

impl Kids {
    fn len(&self) -> usize {
        with_kids!(self, k => k.len())
    }
}

/// Put `kid`, split off with first key `sep`, after child `i`; when the
/// list is full, split it in two: the separator between the halves, and
/// the right half.
#[allow(clippy::type_complexity)]
fn put_kid<T>(
    seps: &mut ArrayVec<Text, SEPS_MAX>,
    kids: &mut ArrayVec<T, KIDS_MAX>,
    i: usize,
    sep: Text,
    kid: T,
) -> Option<(Text, ArrayVec<Text, SEPS_MAX>, ArrayVec<T, KIDS_MAX>)> {
    if !kids.is_full() {
        seps.insert(i, sep);
        kids.insert(i + 1, kid);
        return None;
    }
    // Seven children and the new one: four on the left, four on the right.
    let mid = KIDS_MAX.div_ceil(2);
    let mut right_seps: ArrayVec<Text, SEPS_MAX> = seps.drain(mid..).collect();
    let mut right_kids: ArrayVec<T, KIDS_MAX> = kids.drain(mid..).collect();
    let mut up = seps.pop().expect("a full branch has separators");
    if i < mid - 1 {
        seps.insert(i, sep);
        kids.insert(i + 1, kid);
        // The left half has one too many now: its last goes right.
        right_kids.insert(0, kids.pop().expect("a child"));
        right_seps.insert(0, std::mem::replace(&mut up, seps.pop().expect("a separator")));
    } else if i == mid - 1 {
        // The new child is the first of the right half.
        right_kids.insert(0, kid);
        right_seps.insert(0, std::mem::replace(&mut up, sep));
    } else {
        right_seps.insert(i - mid, sep);
        right_kids.insert(i - mid + 1, kid);
    }
    Some((up, right_seps, right_kids))
}

/// Child `i` of a branch is under half full: balance it with a neighbour.
fn rebalance<T: Node>(seps: &mut ArrayVec<Text, SEPS_MAX>, kids: &mut ArrayVec<Arc<T>, KIDS_MAX>, i: usize) {
    let l = i.saturating_sub(1);
    let r = l + 1;
    let (left, right) = kids.split_at_mut(r);
    let (x, y) = (Arc::make_mut(&mut left[l]), Arc::make_mut(&mut right[0]));
    match x.balance(y, &seps[l]) {
        Some(sep) => seps[l] = sep,
        None => {
            seps.remove(l);
            kids.remove(r);
        }
    }
}

/// [`Node::balance`] for two branches' lists of children, `sep` between.
fn balance_kids<T>(
    (ls, lk): (&mut ArrayVec<Text, SEPS_MAX>, &mut ArrayVec<T, KIDS_MAX>),
    (rs, rk): (&mut ArrayVec<Text, SEPS_MAX>, &mut ArrayVec<T, KIDS_MAX>),
    sep: &Text,
) -> Option<Text> {
    let mut seps: Vec<Text> = ls.drain(..).collect();
    seps.push(sep.clone());
    seps.extend(rs.drain(..));
    let mut kids: Vec<T> = lk.drain(..).chain(rk.drain(..)).collect();
    if kids.len() <= KIDS_MAX {
        ls.extend(seps);
        lk.extend(kids);
        return None;
    }
    let half = kids.len() / 2;
    rk.extend(kids.drain(half..));
    rs.extend(seps.drain(half..));
    let up = seps.pop().expect("separators between the halves");
    ls.extend(seps);
    lk.extend(kids);
    Some(up)
}

impl Node for Branch {
    const MIN: usize = KIDS_MAX.div_ceil(2);

    fn size(&self) -> usize {
        self.kids.len()
    }

    fn insert(&mut self, key: Text, value: PVal) -> Ins<Branch> {
        let i = slot(&self.seps, &key);
        let seps = &mut self.seps;
        with_kids!(&mut self.kids, kids => match Arc::make_mut(&mut kids[i]).insert(key, value) {
            Ins::Added => Ins::Added,
            Ins::Replaced(old) => Ins::Replaced(old),
            Ins::Split(sep, kid) => match put_kid(seps, kids, i, sep, kid) {
                None => Ins::Added,
                Some((up, seps, list)) => Ins::Split(up, Arc::new(Branch { seps, kids: Node::kids(list) })),
            },
        })
    }

    fn remove(&mut self, key: &str) -> Option<PVal> {
        let i = slot(&self.seps, key);
        let seps = &mut self.seps;
        with_kids!(&mut self.kids, kids => {
            let old = Arc::make_mut(&mut kids[i]).remove(key)?;
            if kids[i].underfull() && kids.len() > 1 {
                rebalance(seps, kids, i);
            }
            Some(old)
        })
    }

    fn balance(&mut self, right: &mut Branch, sep: &Text) -> Option<Text> {
        match (&mut self.kids, &mut right.kids) {
            (Kids::Leaves(a), Kids::Leaves(b)) => {
                balance_kids((&mut self.seps, a), (&mut right.seps, b), sep)
            }
            (Kids::Branches(a), Kids::Branches(b)) => {
                balance_kids((&mut self.seps, a), (&mut right.seps, b), sep)
            }
            // Every leaf is at the same depth.
            _ => unreachable!("neighbours at different depths"),
        }
    }

    fn kids(list: ArrayVec<Arc<Branch>, KIDS_MAX>) -> Kids {
        Kids::Branches(list)
    }

    fn root(node: Arc<Branch>) -> Root {
        Root::Branch(node)
    }
}

/// A persistent map from strings to values, keys in order.
#[derive(Clone, Default)]
pub struct PObj {
    root: Option<Root>,
    len: usize,
}

/// The root's insert, for either kind: the value replaced, if any, and
/// the new root above it when it split.
fn insert_at<T: Node>(root: &mut Arc<T>, key: Text, value: PVal) -> (Option<PVal>, Option<Root>) {
    match Arc::make_mut(root).insert(key, value) {
        Ins::Added => (None, None),
        Ins::Replaced(old) => (Some(old), None),
        Ins::Split(sep, right) => {
            let mut seps = ArrayVec::new();
            seps.push(sep);
            let mut list = ArrayVec::new();
            list.push(root.clone());
            list.push(right);
            let kids = T::kids(list);
            (None, Some(Root::Branch(Arc::new(Branch { seps, kids }))))
        }
    }
}

impl PObj {
    pub fn new() -> PObj {
        PObj::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when both share their storage (so are equal without looking).
    pub fn ptr_eq(&self, other: &PObj) -> bool {
        match (&self.root, &other.root) {
            (Some(Root::Leaf(a)), Some(Root::Leaf(b))) => Arc::ptr_eq(a, b),
            (Some(Root::Branch(a)), Some(Root::Branch(b))) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    pub fn get(&self, key: &str) -> Option<&PVal> {
        let mut b = match self.root.as_ref()? {
            Root::Leaf(l) => return l.find(key).ok().map(|i| &l.entries()[i].1),
            Root::Branch(b) => b,
        };
        loop {
            let i = slot(&b.seps, key);
            match &b.kids {
                Kids::Branches(bs) => b = &bs[i],
                Kids::Leaves(ls) => return ls[i].find(key).ok().map(|j| &ls[i].entries()[j].1),
            }
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value at `key` to change in place: the nodes on its path that
    /// are shared are copied first (also when the key is missing, as its
    /// insert would: callers look for a key to update it or add it).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut PVal> {
        let entries = Arc::make_mut(self.leaf_arc_mut(key)?).entries_mut();
        let i = find_in(entries, key).ok()?;
        Some(&mut entries[i].1)
    }

    /// The leaf where `key` is or would go, the branches on its path
    /// copied where shared (the leaf itself is the caller's to copy).
    fn leaf_arc_mut(&mut self, key: &str) -> Option<&mut Arc<Leaf>> {
        Some(match self.root.as_mut()? {
            Root::Leaf(l) => l,
            Root::Branch(b) => {
                let mut b = Arc::make_mut(b);
                loop {
                    let i = slot(&b.seps, key);
                    match &mut b.kids {
                        Kids::Branches(bs) => b = Arc::make_mut(&mut bs[i]),
                        Kids::Leaves(ls) => break &mut ls[i],
                    }
                }
            }
        })
    }

    /// Where a change to the value at `key` goes: the value, when its leaf
    /// is read; else the leaf, which keeps the change until it is read
    /// (the key is then taken to be there, without reading it: a caller
    /// that is not sure looks first). A far seek changes the accounts its
    /// deltas touch this way without reading them (see `image`). A leaf
    /// that is read and shared with another map (a kept checkpoint's) is
    /// not copied for the change either: a new unread leaf over it takes
    /// the change, and copies the entries only when read. The path is
    /// copied where shared, as by [`PObj::get_mut`].
    pub fn slot(&mut self, key: &Text) -> Slot<'_> {
        let big = matches!(self.root, Some(Root::Branch(_)));
        match self.leaf_arc_mut(key) {
            Some(leaf) => leaf_slot(leaf, key, big),
            None => Slot::Missing,
        }
    }

    /// [`PObj::slot`] for each of `items`, keyed by their first part, in
    /// one walk down the map: each node on the way is copied (where
    /// shared) and searched once, not once a key. `f` is handed each item
    /// with where its change goes, in key order, and stops the walk by
    /// returning false. Items not in strict key order are handed over one
    /// by one through [`PObj::slot`].
    pub fn slots<'k, T>(
        &mut self,
        items: impl IntoIterator<Item = (&'k Text, T)>,
        mut f: impl FnMut((&'k Text, T), Slot<'_>) -> bool,
    ) {
        let items: Vec<(&'k Text, T)> = items.into_iter().collect();
        let sorted = items.windows(2).all(|w| w[0].0 < w[1].0);
        let mut items = items.into_iter().peekable();
        match &mut self.root {
            // Whether `f` stopped the walk is all the walk says.
            Some(Root::Leaf(l)) if sorted => {
                slots_in_leaf(l, &mut items, None, false, &mut f);
            }
            Some(Root::Branch(b)) if sorted => {
                slots_in_branch(Arc::make_mut(b), &mut items, None, &mut f);
            }
            // Out of order, or no members (each is missing): one by one.
            _ => {
                for (k, item) in items {
                    if !f((k, item), self.slot(k)) {
                        return;
                    }
                }
            }
        }
    }

    /// Set `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: Text, value: PVal) -> Option<PVal> {
        let (old, grown) = match &mut self.root {
            None => {
                let mut es = ArrayVec::new();
                es.push((key, value));
                (None, Some(Root::Leaf(Arc::new(Leaf::ready(es)))))
            }
            Some(Root::Leaf(l)) => insert_at(l, key, value),
            Some(Root::Branch(b)) => insert_at(b, key, value),
        };
        if let Some(root) = grown {
            self.root = Some(root);
        }
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Set `key` to `value` unless it has one already.
    pub fn or_insert(&mut self, key: Text, value: PVal) {
        if !self.contains_key(&key) {
            self.insert(key, value);
        }
    }

    /// Remove `key`; the value it had, if any.
    pub fn remove(&mut self, key: &str) -> Option<PVal> {
        if !self.contains_key(key) {
            return None;
        }
        let old = match self.root.as_mut()? {
            Root::Leaf(l) => Arc::make_mut(l).remove(key),
            Root::Branch(b) => Arc::make_mut(b).remove(key),
        }?;
        self.len -= 1;
        // A root left with one child gives way to it; an empty one goes.
        loop {
            self.root = match &self.root {
                Some(Root::Branch(b)) if b.kids.len() == 1 => {
                    Some(with_kids!(&b.kids, k => Node::root(k[0].clone())))
                }
                Some(Root::Leaf(l)) if l.entries().is_empty() => None,
                _ => break,
            };
        }
        Some(old)
    }

    /// The map of a few entries, in one leaf when they are in key order
    /// (a decoder reads a small object's members straight into one);
    /// otherwise inserted one by one (the later of a key given twice kept).
    pub fn from_small(entries: Small) -> PObj {
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return entries.into_iter().collect();
        }
        let len = entries.len();
        PObj {
            root: (len > 0).then(|| Root::Leaf(Arc::new(Leaf::ready(entries)))),
            len,
        }
    }

    /// A map of `entries`, which are sorted by key with no key twice, built
    /// bottom up with full nodes. Entries out of order (from a damaged file,
    /// say) are not trusted: they are inserted one by one, the last of a
    /// key winning.
    pub fn from_sorted(mut entries: Vec<(Text, PVal)>) -> PObj {
        PObj::from_sorted_tail(&mut entries, 0)
    }

    /// [`PObj::from_sorted`] of the entries of `list` from `from` on, which
    /// are taken out of it (a decoder collects the entries of nested
    /// objects in one list this way, rather than one each).
    pub fn from_sorted_tail(list: &mut Vec<(Text, PVal)>, from: usize) -> PObj {
        if list[from..].windows(2).any(|w| w[0].0 >= w[1].0) {
            let mut o = PObj::new();
            for (k, v) in list.drain(from..) {
                o.insert(k, v);
            }
            return o;
        }
        let len = list.len() - from;
        let mut entries = list.drain(from..);
        if len <= LEAF_MAX {
            return PObj {
                root: (len > 0).then(|| Root::Leaf(Arc::new(Leaf::ready(entries.collect())))),
                len,
            };
        }
        // Leaves, each with its first key; then branches over them.
        let leaves: Vec<(Text, Arc<Leaf>)> = even_parts(len, LEAF_MAX)
            .map(|n| {
                let leaf: ArrayVec<Entry, LEAF_MAX> = entries.by_ref().take(n).collect();
                (leaf[0].0.clone(), Arc::new(Leaf::ready(leaf)))
            })
            .collect();
        PObj::over(leaves, len)
    }

    /// A map of `len` entries in `leaves` (each with its first key, in key
    /// order), with branches built over them.
    fn over(mut leaves: Vec<(Text, Arc<Leaf>)>, len: usize) -> PObj {
        if leaves.len() <= 1 {
            return PObj {
                root: leaves.pop().map(|(_, l)| Root::Leaf(l)),
                len,
            };
        }
        let mut level = branches_over(leaves);
        while level.len() > 1 {
            level = branches_over(level);
        }
        PObj {
            root: level.pop().map(|(_, b)| Root::Branch(b)),
            len,
        }
    }

    /// A map of `len` entries whose leaves are read from `src` only when
    /// first asked for: `leaves` gives each leaf's first key and where
    /// `src` finds it, in key order, with as many entries each as
    /// [`leaf_sizes`] says for `len`. Reading a far state this way builds
    /// only the branches over its biggest object; the leaves a seek then
    /// changes are read, the rest wait until something looks at them.
    pub fn lazy(len: usize, src: Arc<dyn LeafSource>, leaves: Vec<(Text, u32)>) -> PObj {
        let leaves = leaves
            .into_iter()
            .map(|(first, at)| {
                let lazy = Lazy {
                    read: OnceLock::new(),
                    src: src.clone(),
                    at,
                    later: Vec::new(),
                };
                (first, Arc::new(Leaf(Body::Lazy(lazy))))
            })
            .collect();
        PObj::over(leaves, len)
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            at: Cursor::new(self),
            left: self.len,
        }
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Text> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &PVal> {
        self.iter().map(|(_, v)| v)
    }
    /// Calls `f` with what differs from `self` to `other`, in key order,
    /// until it breaks; skips the subtrees the two share. An entry in both
    /// is an update only when the values are not equal. True when `f`
    /// broke off.
    pub fn diff_each<'a, 'b>(
        &'a self,
        other: &'b PObj,
        mut f: impl FnMut(DiffItem<'a, 'b>) -> std::ops::ControlFlow<()>,
    ) -> bool {
        use std::ops::ControlFlow::Break;
        if self.ptr_eq(other) {
            return false;
        }
        let mut a = Cursor::new(self);
        let mut b = Cursor::new(other);
        loop {
            let item = match (a.peek(), b.peek()) {
                (None, None) => return false,
                (Some((k, v)), None) => {
                    a.next();
                    DiffItem::Remove(k, v)
                }
                (None, Some((k, v))) => {
                    b.next();
                    DiffItem::Add(k, v)
                }
                (Some((ka, va)), Some((kb, vb))) => match ka.as_str().cmp(kb.as_str()) {
                    Ordering::Less => {
                        a.next();
                        DiffItem::Remove(ka, va)
                    }
                    Ordering::Greater => {
                        b.next();
                        DiffItem::Add(kb, vb)
                    }
                    Ordering::Equal => {
                        if let Some(h) = shared_here(&a, &b) {
                            a.skip(h);
                            b.skip(h);
                            continue;
                        }
                        a.next();
                        b.next();
                        if va.ptr_eq(vb) || va == vb {
                            continue;
                        }
                        DiffItem::Update {
                            old: (ka, va),
                            new: (kb, vb),
                        }
                    }
                },
            };
            if let Break(()) = f(item) {
                return true;
            }
        }
    }
}

/// The items at the front of `items` whose keys fall below `upper` (all
/// when none), handed to `f` with their slots in `b`'s subtree (see
/// [`PObj::slots`]); false when `f` stopped.
fn slots_in_branch<'k, T, I: Iterator<Item = (&'k Text, T)>>(
    b: &mut Branch,
    items: &mut std::iter::Peekable<I>,
    upper: Option<&str>,
    f: &mut impl FnMut((&'k Text, T), Slot<'_>) -> bool,
) -> bool {
    while let Some((k, _)) = items.peek() {
        if upper.is_some_and(|u| k.as_str() >= u) {
            break;
        }
        let i = slot(&b.seps, k);
        let below = b.seps.get(i).map_or(upper, |s| Some(s.as_str()));
        let went = match &mut b.kids {
            Kids::Branches(bs) => slots_in_branch(Arc::make_mut(&mut bs[i]), items, below, f),
            Kids::Leaves(ls) => slots_in_leaf(&mut ls[i], items, below, true, f),
        };
        if !went {
            return false;
        }
    }
    true
}

/// [`slots_in_branch`] for a leaf.
fn slots_in_leaf<'k, T, I: Iterator<Item = (&'k Text, T)>>(
    leaf: &mut Arc<Leaf>,
    items: &mut std::iter::Peekable<I>,
    upper: Option<&str>,
    big: bool,
    f: &mut impl FnMut((&'k Text, T), Slot<'_>) -> bool,
) -> bool {
    while let Some(item) = items.next_if(|(k, _)| upper.is_none_or(|u| k.as_str() < u)) {
        let slot = leaf_slot(leaf, item.0, big);
        if !f(item, slot) {
            return false;
        }
    }
    true
}

/// The slot of `key` in `leaf` (see [`PObj::slot`]), one of the leaves
/// of a map of more than one when `big`. Only there does a read leaf
/// shared with another map get a leaf over it: a small object (a user's
/// record, the state's top) is copied and changed at once, as it costs
/// little, so that what its changes do below is checked as they are made.
fn leaf_slot<'a>(leaf: &'a mut Arc<Leaf>, key: &Text, big: bool) -> Slot<'a> {
    let unread = |l: &Leaf| matches!(&l.0, Body::Lazy(l) if l.read.get().is_none());
    if big && !unread(leaf) && Arc::strong_count(leaf) > 1 {
        // Read and shared: changed through a leaf over it, read (copied)
        // only when asked for (which knows its keys: see `has` below).
        let over = Lazy {
            read: OnceLock::new(),
            src: leaf.clone(),
            at: 0,
            later: Vec::new(),
        };
        *leaf = Arc::new(Leaf(Body::Lazy(over)));
    }
    let leaf = Arc::make_mut(leaf);
    if unread(leaf) {
        let Body::Lazy(l) = &mut leaf.0 else {
            unreachable!("unread leaves are lazy")
        };
        // Changes put off never add or remove members: the source's keys
        // are the leaf's.
        if l.src.has(l.at, key) == Some(false) {
            return Slot::Missing;
        }
        return Slot::Later(PutOff {
            list: &mut l.later,
            key: key.clone(),
        });
    }
    let entries = leaf.entries_mut();
    match find_in(entries, key) {
        Ok(i) => Slot::Here(&mut entries[i].1),
        Err(_) => Slot::Missing,
    }
}

/// A leaf is the source of the unread leaves made over it (see
/// [`leaf_slot`]): its entries, copied.
impl LeafSource for Leaf {
    fn entries(&self, _: u32) -> Small {
        self.entries().iter().cloned().collect()
    }

    fn has(&self, _: u32, key: &str) -> Option<bool> {
        Some(self.find(key).is_ok())
    }
}

/// `n` items split into as few parts of at most `max` as can be, as even
/// as can be (so none is less than half full when there are two or more).
/// How many entries each leaf of a map of `len` entries built in one pass
/// holds (see [`PObj::from_sorted`] and [`PObj::lazy`]).
pub fn leaf_sizes(len: usize) -> impl ExactSizeIterator<Item = usize> {
    even_parts(len, LEAF_MAX)
}

fn even_parts(n: usize, max: usize) -> impl ExactSizeIterator<Item = usize> {
    let parts = n.div_ceil(max).max(1);
    let (each, extra) = (n / parts, n % parts);
    (0..parts).map(move |i| each + usize::from(i < extra))
}

/// One level of branches over `nodes` (each with its first key).
fn branches_over<T: Node>(nodes: Vec<(Text, Arc<T>)>) -> Vec<(Text, Arc<Branch>)> {
    let total = nodes.len();
    let mut it = nodes.into_iter();
    even_parts(total, KIDS_MAX)
        .map(|n| {
            let mut seps = ArrayVec::new();
            let mut list = ArrayVec::new();
            let mut first = None;
            for (k, kid) in it.by_ref().take(n) {
                match first {
                    None => first = Some(k),
                    Some(_) => seps.push(k),
                }
                list.push(kid);
            }
            let branch = Branch {
                seps,
                kids: T::kids(list),
            };
            (first.expect("a part is never empty"), Arc::new(branch))
        })
        .collect()
}

/// One difference between two maps (see [`PObj::diff_each`]).
pub enum DiffItem<'a, 'b> {
    Add(&'b Text, &'b PVal),
    Remove(&'a Text, &'a PVal),
    Update {
        old: (&'a Text, &'a PVal),
        new: (&'b Text, &'b PVal),
    },
}

/// The entries of a [`PObj`] in key order.
pub struct Iter<'a> {
    at: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Text, &'a PVal);

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.at.peek()?;
        self.at.next();
        self.left -= 1;
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// A place in a map, for [`Iter`] and [`PObj::diff_each`]: the branches
/// above the current leaf, each with the child being visited, and the
/// entry in it. The branches are on the heap: an iterator sits in the
/// frames of recursive functions, which must stay small (a one-leaf map
/// allocates nothing).
struct Cursor<'a> {
    stack: Vec<(&'a Branch, usize)>,
    leaf: &'a [Entry],
    /// The leaf, to tell whether two cursors are in the same one.
    at: *const Leaf,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(map: &'a PObj) -> Cursor<'a> {
        let mut c = Cursor {
            stack: Vec::new(),
            leaf: &[],
            at: std::ptr::null(),
            pos: 0,
        };
        match &map.root {
            Some(Root::Leaf(l)) => c.enter(l),
            Some(Root::Branch(b)) => c.descend(b),
            None => {}
        }
        c
    }

    fn enter(&mut self, leaf: &'a Leaf) {
        self.leaf = leaf.entries();
        self.at = leaf;
        self.pos = 0;
    }

    fn descend(&mut self, mut b: &'a Branch) {
        loop {
            self.stack.push((b, 0));
            match &b.kids {
                Kids::Branches(bs) => b = &bs[0],
                Kids::Leaves(ls) => return self.enter(&ls[0]),
            }
        }
    }

    fn peek(&self) -> Option<(&'a Text, &'a PVal)> {
        self.leaf.get(self.pos).map(|(k, v)| (k, v))
    }

    fn next(&mut self) {
        self.pos += 1;
        if self.pos >= self.leaf.len() {
            self.skip(0);
        }
    }

    /// The node of height `h` (a leaf is 0) that starts at the current
    /// entry, if one does: the leaf, or the branch `h` frames up, when the
    /// leaf and each branch below that one are first children.
    fn starting(&self, h: usize) -> Option<*const ()> {
        let n = self.stack.len();
        if self.pos != 0 || h > n || self.stack[n - h..].iter().any(|&(_, i)| i != 0) {
            return None;
        }
        match h {
            0 => Some(self.at as *const ()),
            _ => Some(self.stack[n - h].0 as *const Branch as *const ()),
        }
    }

    /// Past the node of height `h` the current entry is in (to the end
    /// when that is the root).
    fn skip(&mut self, h: usize) {
        self.stack.truncate(self.stack.len() - h);
        loop {
            let Some((b, i)) = self.stack.last_mut() else {
                self.leaf = &[];
                self.pos = 0;
                return;
            };
            *i += 1;
            let (b, at) = (*b, *i);
            if at < b.kids.len() {
                match &b.kids {
                    Kids::Leaves(ls) => self.enter(&ls[at]),
                    Kids::Branches(bs) => self.descend(&bs[at]),
                }
                return;
            }
            self.stack.pop();
        }
    }
}

/// The height of the biggest subtree both cursors start at and share.
fn shared_here(a: &Cursor<'_>, b: &Cursor<'_>) -> Option<usize> {
    let mut best = None;
    for h in 0..=a.stack.len().min(b.stack.len()) {
        match (a.starting(h), b.starting(h)) {
            (Some(x), Some(y)) if std::ptr::eq(x, y) => best = Some(h),
            _ => break,
        }
    }
    best
}

impl<'a> IntoIterator for &'a PObj {
    type Item = (&'a Text, &'a PVal);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for PObj {
    type Item = (Text, PVal);
    type IntoIter = std::vec::IntoIter<(Text, PVal)>;

    /// The entries, moved out of the nodes this map alone holds and cloned
    /// from those it shares.
    fn into_iter(self) -> Self::IntoIter {
        fn leaf(l: Arc<Leaf>, out: &mut Vec<Entry>) {
            match Arc::try_unwrap(l) {
                Ok(l) => out.extend(l.into_entries()),
                Err(l) => out.extend(l.entries().iter().cloned()),
            }
        }
        fn branch(b: Arc<Branch>, out: &mut Vec<Entry>) {
            let kids = Arc::try_unwrap(b).map_or_else(|b| b.kids.clone(), |b| b.kids);
            match kids {
                Kids::Leaves(ls) => ls.into_iter().for_each(|l| leaf(l, out)),
                Kids::Branches(bs) => bs.into_iter().for_each(|b| branch(b, out)),
            }
        }
        let mut out = Vec::with_capacity(self.len);
        match self.root {
            Some(Root::Leaf(l)) => leaf(l, &mut out),
            Some(Root::Branch(b)) => branch(b, &mut out),
            None => {}
        }
        out.into_iter()
    }
}

impl FromIterator<(Text, PVal)> for PObj {
    /// Sorted and built in one pass; of a key given twice, the last wins.
    fn from_iter<I: IntoIterator<Item = (Text, PVal)>>(iter: I) -> PObj {
        let mut v: Vec<Entry> = iter.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        // Keep the last of each run of one key (the sort is stable).
        let mut out: Vec<Entry> = Vec::with_capacity(v.len());
        for e in v {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        PObj::from_sorted(out)
    }
}

impl std::fmt::Debug for PObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Checks the tree's shape: keys in order and inside their branch's
    /// bounds, every leaf at one depth, no node but the root under half
    /// full (nor empty), the length right.
    fn check(m: &PObj) {
        struct Bounds<'a>(Option<&'a str>, Option<&'a str>);
        impl Bounds<'_> {
            fn holds(&self, k: &str) -> bool {
                self.0.is_none_or(|lo| lo <= k) && self.1.is_none_or(|hi| k < hi)
            }
        }
        fn leaf(l: &Leaf, at: &Bounds, root: bool, count: &mut usize) -> usize {
            assert!(!l.entries().is_empty());
            assert!(root || !l.underfull(), "leaf of {}", l.entries().len());
            assert!(l.entries().windows(2).all(|w| w[0].0 < w[1].0));
            assert!(l.entries().iter().all(|e| at.holds(&e.0)));
            *count += l.entries().len();
            0
        }
        fn branch(b: &Branch, at: &Bounds, root: bool, count: &mut usize) -> usize {
            let n = b.kids.len();
            assert_eq!(n, b.seps.len() + 1);
            assert!(n >= 2 && (root || !b.underfull()), "branch of {n}");
            assert!(b.seps.windows(2).all(|w| w[0] < w[1]));
            assert!(b.seps.iter().all(|s| at.holds(s)));
            let part = |i: usize| {
                let lo = if i == 0 {
                    at.0
                } else {
                    Some(b.seps[i - 1].as_str())
                };
                Bounds(lo, b.seps.get(i).map(|s| s.as_str()).or(at.1))
            };
            let depths: Vec<usize> = match &b.kids {
                Kids::Leaves(ls) => (0..n).map(|i| leaf(&ls[i], &part(i), false, count)).collect(),
                Kids::Branches(bs) => (0..n).map(|i| branch(&bs[i], &part(i), false, count)).collect(),
            };
            assert!(
                depths.windows(2).all(|w| w[0] == w[1]),
                "leaves at depths {depths:?}"
            );
            depths[0] + 1
        }
        let mut count = 0;
        match &m.root {
            Some(Root::Leaf(l)) => leaf(l, &Bounds(None, None), true, &mut count),
            Some(Root::Branch(b)) => branch(b, &Bounds(None, None), true, &mut count),
            None => 0,
        };
        assert_eq!(count, m.len());
        assert_eq!(m.iter().len(), m.len());
    }

    fn key(i: u16) -> Text {
        Text::from(format!("k{i:05}"))
    }

    fn same(m: &PObj, model: &BTreeMap<Text, i64>) {
        check(m);
        let got: Vec<(Text, i64)> = m
            .iter()
            .map(|(k, v)| match v {
                PVal::Int(i) => (k.clone(), *i),
                _ => panic!("not an int"),
            })
            .collect();
        let want: Vec<(Text, i64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(got, want);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, i64),
        Remove(u16),
        Bump(u16),
        Snapshot,
    }

    fn op(keys: u16) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..keys, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0..keys).prop_map(Op::Remove),
            2 => (0..keys).prop_map(Op::Bump),
            1 => Just(Op::Snapshot),
        ]
    }

    /// The naive diff: every key of either map, compared.
    fn naive_diff(a: &PObj, b: &PObj) -> Vec<String> {
        let mut keys: Vec<&Text> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| match (a.get(k), b.get(k)) {
                (Some(x), None) => Some(format!("-{k}={x}")),
                (None, Some(y)) => Some(format!("+{k}={y}")),
                (Some(x), Some(y)) if x != y => Some(format!("~{k}={x}>{y}")),
                _ => None,
            })
            .collect()
    }

    fn diff_of(a: &PObj, b: &PObj) -> Vec<String> {
        let mut out = Vec::new();
        a.diff_each(b, |item| {
            out.push(match item {
                DiffItem::Add(k, v) => format!("+{k}={v}"),
                DiffItem::Remove(k, v) => format!("-{k}={v}"),
                DiffItem::Update { old, new } => {
                    assert_eq!(old.0, new.0);
                    format!("~{}={}>{}", old.0, old.1, new.1)
                }
            });
            std::ops::ControlFlow::Continue(())
        });
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every operation agrees with a `BTreeMap`; clones taken along the
        /// way never change; the diff between any two of them is the naive
        /// one; a map built from sorted entries equals one built by inserts.
        #[test]
        fn behaves_as_a_sorted_map_and_keeps_old_versions(
            ops in prop::collection::vec(op(300), 1..600),
            start in 0usize..400,
        ) {
            let first: Vec<(Text, PVal)> = (0..start as u16).map(|i| (key(i * 2), PVal::Int(i64::from(i)))).collect();
            let mut model: BTreeMap<Text, i64> = (0..start as u16).map(|i| (key(i * 2), i64::from(i))).collect();
            let mut m = PObj::from_sorted(first);
            same(&m, &model);
            let mut versions = vec![(m.clone(), model.clone())];
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let had = m.insert(key(k), PVal::Int(v));
                        let want = model.insert(key(k), v);
                        prop_assert_eq!(had.map(|h| h.to_json()), want.map(|w| w.to_string()));
                    }
                    Op::Remove(k) => {
                        let had = m.remove(&key(k));
                        let want = model.remove(&key(k));
                        prop_assert_eq!(had.map(|h| h.to_json()), want.map(|w| w.to_string()));
                    }
                    Op::Bump(k) => {
                        match m.get_mut(&key(k)) {
                            Some(PVal::Int(i)) => *i = i.wrapping_add(1),
                            Some(_) => panic!("not an int"),
                            None => prop_assert!(!model.contains_key(&key(k))),
                        }
                        if let Some(i) = model.get_mut(&key(k)) {
                            *i = i.wrapping_add(1);
                        }
                    }
                    Op::Snapshot => versions.push((m.clone(), model.clone())),
                }
                prop_assert_eq!(m.get(&key(0)).map(|v| v.to_json()), model.get(&key(0)).map(|v| v.to_string()));
            }
            same(&m, &model);
            versions.push((m.clone(), model.clone()));
            for (v, vm) in &versions {
                same(v, vm);
                prop_assert_eq!(diff_of(v, &m), naive_diff(v, &m));
                prop_assert_eq!(diff_of(&m, v), naive_diff(&m, v));
                prop_assert_eq!(PVal::Obj(v.clone()) == PVal::Obj(m.clone()), vm == &model);
                let rebuilt = PObj::from_sorted(v.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
                same(&rebuilt, vm);
                prop_assert!(diff_of(&rebuilt, v).is_empty());
                let owned: Vec<(Text, PVal)> = v.clone().into_iter().collect();
                prop_assert_eq!(owned.len(), vm.len());
            }
        }

        /// `from_iter` sorts, and of a key given twice keeps the last;
        /// entries out of order given to `from_sorted` are inserted.
        #[test]
        fn builds_from_entries_in_any_order(entries in prop::collection::vec((0u16..200, any::<i64>()), 0..400)) {
            let model: BTreeMap<Text, i64> = entries.iter().map(|&(k, v)| (key(k), v)).collect();
            let pairs: Vec<(Text, PVal)> = entries.iter().map(|&(k, v)| (key(k), PVal::Int(v))).collect();
            same(&pairs.iter().cloned().collect::<PObj>(), &model);
            same(&PObj::from_sorted(pairs), &model);
        }
    }

    /// Leaves kept aside, counting how many times one is read.
    struct Counted {
        leaves: Vec<Small>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl LeafSource for Counted {
        fn entries(&self, at: u32) -> Small {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.leaves[at as usize].clone()
        }
    }

    /// `x` to `2x + 1`: made twice, in the wrong order against another
    /// change, it gives another answer.
    struct Twice;

    impl Later for Twice {
        fn apply(&self, value: &mut PVal) -> Result<(), String> {
            match value {
                PVal::Int(i) => *i = i.wrapping_mul(2).wrapping_add(1),
                _ => return Err("not an int".into()),
            }
            Ok(())
        }
    }

    /// A map of `model`'s entries whose leaves are read from a counting
    /// source.
    fn lazy_of(model: &BTreeMap<Text, i64>) -> (PObj, Arc<Counted>) {
        let mut entries = model.iter().map(|(k, v)| (k.clone(), PVal::Int(*v)));
        let leaves: Vec<Small> = leaf_sizes(model.len())
            .map(|n| entries.by_ref().take(n).collect())
            .collect();
        let firsts = leaves
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((l.first()?.0.clone(), i as u32)))
            .collect();
        let src = Arc::new(Counted {
            leaves,
            reads: Default::default(),
        });
        (PObj::lazy(model.len(), src.clone(), firsts), src)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        /// A map read lazily, changed through `slot` (put off in leaves not
        /// read yet) and by inserts and removes (which read them), agrees
        /// with a `BTreeMap`; copies taken along the way never change.
        #[test]
        fn changes_put_off_in_unread_leaves_are_made_in_order_when_read(
            ops in prop::collection::vec(op(300), 1..400),
            start in 1usize..300,
            plain in any::<bool>(),
        ) {
            let mut model: BTreeMap<Text, i64> = (0..start as u16).map(|i| (key(i * 2), i64::from(i))).collect();
            // Read from the start (changes to leaves shared with a copy
            // go to leaves over them), or lazily.
            let mut m = match plain {
                true => PObj::from_sorted(model.iter().map(|(k, v)| (k.clone(), PVal::Int(*v))).collect()),
                false => lazy_of(&model).0,
            };
            let mut versions = vec![(m.clone(), model.clone())];
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(m.insert(key(k), PVal::Int(v)).is_some(), model.insert(key(k), v).is_some());
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(m.remove(&key(k)).is_some(), model.remove(&key(k)).is_some());
                    }
                    // Through `slot`, as a delta's changes are made; a
                    // member that is not there is looked for first.
                    Op::Bump(k) if model.contains_key(&key(k)) => {
                        match m.slot(&key(k)) {
                            Slot::Here(v) => Twice.apply(v).unwrap(),
                            Slot::Later(leaf) => leaf.put_off(Arc::new(Twice)),
                            Slot::Missing => panic!("{} is there", key(k)),
                        }
                        let i = model.get_mut(&key(k)).unwrap();
                        *i = i.wrapping_mul(2).wrapping_add(1);
                    }
                    // A leaf over a read one knows its keys.
                    Op::Bump(k) if plain => prop_assert!(matches!(m.slot(&key(k)), Slot::Missing)),
                    Op::Bump(k) => prop_assert!(m.get(&key(k)).is_none()),
                    Op::Snapshot => versions.push((m.clone(), model.clone())),
                }
            }
            versions.push((m, model));
            for (v, vm) in &versions {
                same(v, vm);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        /// One walk for many keys hands each its slot in key order, as
        /// `slot` one key at a time does, and stops where told.
        #[test]
        fn slots_in_one_walk_are_the_slots_one_by_one(
            start in 0usize..400,
            reads in prop::collection::vec(0u16..800, 0..20),
            picks in prop::collection::btree_set(0u16..800, 0..200),
            stop in prop::option::of(0usize..200),
            scrambled in any::<bool>(),
        ) {
            let model: BTreeMap<Text, i64> = (0..start as u16).map(|i| (key(i * 2), i64::from(i))).collect();
            let (mut walked, _src) = lazy_of(&model);
            for r in &reads {
                walked.get(&key(*r));
            }
            let mut one_by_one = walked.clone();
            let mut keys: Vec<Text> = picks.iter().map(|&i| key(i)).collect();
            if scrambled {
                keys.reverse();
            }
            let limit = stop.unwrap_or(usize::MAX);
            // Here, put off, or missing; each key's change is made where
            // the key is there (a put-off for a missing key is dropped).
            let change = |k: &Text, slot: Slot<'_>| -> &'static str {
                let there = model.contains_key(k);
                match slot {
                    Slot::Here(v) => {
                        Twice.apply(v).unwrap();
                        "here"
                    }
                    Slot::Later(leaf) if there => {
                        leaf.put_off(Arc::new(Twice));
                        "later"
                    }
                    Slot::Later(_) => "later",
                    Slot::Missing => "missing",
                }
            };
            let mut seen = Vec::new();
            walked.slots(keys.iter().map(|k| (k, ())), |(k, ()), slot| {
                seen.push((k.clone(), change(k, slot)));
                seen.len() < limit
            });
            let mut want = Vec::new();
            // As the walk: each key handed over, then asked whether to go on.
            for k in &keys {
                want.push((k.clone(), change(k, one_by_one.slot(k))));
                if want.len() >= limit {
                    break;
                }
            }
            prop_assert_eq!(&seen, &want);
            for (k, how) in &seen {
                prop_assert_eq!(*how == "missing", !model.contains_key(k) && *how != "later");
            }
            let after: BTreeMap<Text, i64> = model
                .iter()
                .map(|(k, &v)| (k.clone(), if seen.iter().any(|(s, _)| s == k) { 2 * v + 1 } else { v }))
                .collect();
            same(&walked, &after);
            same(&one_by_one, &after);
        }
    }

    #[test]
    fn a_change_to_a_leaf_shared_with_a_copy_goes_to_a_leaf_over_it() {
        let model: BTreeMap<Text, i64> = (0..60u16).map(|i| (key(i), i64::from(i))).collect();
        let kept = PObj::from_sorted(model.iter().map(|(k, v)| (k.clone(), PVal::Int(*v))).collect());
        let mut m = kept.clone();
        let Slot::Later(leaf) = m.slot(&key(7)) else {
            panic!("a shared leaf is not changed in place")
        };
        leaf.put_off(Arc::new(Twice));
        assert!(matches!(m.slot(&Text::from("k00007x")), Slot::Missing));
        // Once made, the leaf over it is this map's alone and unread:
        // more changes wait in it, in order.
        let Slot::Later(leaf) = m.slot(&key(8)) else {
            panic!("the leaf over it takes changes unread")
        };
        leaf.put_off(Arc::new(Twice));
        assert_eq!(m.get(&key(7)), Some(&PVal::Int(15)));
        assert_eq!(m.get(&key(8)), Some(&PVal::Int(17)));
        // Read now, and still shared with nothing: changed in place.
        assert!(matches!(m.slot(&key(9)), Slot::Here(PVal::Int(9))));
        same(&kept, &model);
        // A copy of the copy, changed over the leaf over a leaf.
        let mut again = m.clone();
        let Slot::Later(leaf) = again.slot(&key(7)) else {
            panic!("shared again")
        };
        leaf.put_off(Arc::new(Twice));
        assert_eq!(again.get(&key(7)), Some(&PVal::Int(31)));
        assert_eq!(m.get(&key(7)), Some(&PVal::Int(15)));
        same(&kept, &model);
    }

    #[test]
    fn changes_to_members_of_unread_leaves_wait_and_reading_one_reads_one() {
        let model: BTreeMap<Text, i64> = (0..600u16).map(|i| (key(i), i64::from(i))).collect();
        let (mut m, src) = lazy_of(&model);
        let reads = || src.reads.load(std::sync::atomic::Ordering::Relaxed);
        let before = m.clone();
        for i in (0..600).step_by(5) {
            let Slot::Later(leaf) = m.slot(&key(i)) else {
                panic!("leaf of {} read", key(i))
            };
            leaf.put_off(Arc::new(Twice));
        }
        // Twice over for some: in order, when read.
        for i in (0..600).step_by(10) {
            let Slot::Later(leaf) = m.slot(&key(i)) else {
                panic!("leaf of {} read", key(i))
            };
            leaf.put_off(Arc::new(Twice));
        }
        assert_eq!(reads(), 0, "nothing read to change values");
        assert_eq!(m.get(&key(10)), Some(&PVal::Int(43)));
        assert_eq!(m.get(&key(5)), Some(&PVal::Int(11)));
        assert_eq!(reads(), 2, "one leaf read for each looked at");
        // Once read, a change is made at once.
        assert!(matches!(m.slot(&key(11)), Slot::Here(PVal::Int(11))));
        assert!(matches!(m.slot(&Text::from("k00010x")), Slot::Missing));
        let want: BTreeMap<Text, i64> = model
            .iter()
            .map(|(k, &v)| {
                let n = [v % 5 == 0, v % 10 == 0].iter().filter(|&&b| b).count();
                (k.clone(), (0..n).fold(v, |x, _| 2 * x + 1))
            })
            .collect();
        same(&m, &want);
        same(&before, &model);
    }

    #[test]
    fn a_diff_of_one_change_in_a_big_map_finds_only_it() {
        let n = 100_000u32;
        let big = PObj::from_sorted(
            (0..n)
                .map(|i| (Text::from(format!("u{i:06}")), PVal::Int(i64::from(i))))
                .collect(),
        );
        check(&big);
        let mut changed = big.clone();
        changed.insert(Text::from("u050000"), PVal::Int(-1));
        changed.insert(Text::from("u050000x"), PVal::Int(7));
        changed.remove("u099999");
        assert_eq!(
            diff_of(&big, &changed),
            ["~u050000=50000>-1", "+u050000x=7", "-u099999=99999"]
        );
        // Equal maps that share nothing compare equal, entry by entry.
        let copy: PObj = big.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(!copy.ptr_eq(&big));
        assert!(PVal::Obj(copy) == PVal::Obj(big));
    }
}
