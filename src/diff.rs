//! Structural diff between two states.
//!
//! A diff is a list of [`Change`]s in the style of JSON Patch (RFC 6902):
//! applying them in order to the first state gives the second. Changes are
//! as deep as possible (a changed field, not its whole parent), arrays are
//! compared by index, and subtrees that share storage are skipped without
//! being looked at, so the cost follows the size of the change, not of the
//! state.

use crate::value::{DiffItem, Later, PObj, PVal, PathSeg, Slot, Text, to_pointer};
use std::sync::Arc;

/// What a change does at its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
}

impl Op {
    /// The op that undoes this one (with the change's old value).
    pub fn undone(self) -> Op {
        match self {
            Op::Add => Op::Remove,
            Op::Remove => Op::Add,
            Op::Replace => Op::Replace,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
        }
    }
}

/// One change: `add` has `value`, `remove` has `old`, `replace` has both.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub op: Op,
    pub path: Vec<PathSeg>,
    pub old: Option<PVal>,
    pub value: Option<PVal>,
}

impl Change {
    /// The RFC 6901 pointer of the changed place.
    pub fn pointer(&self) -> String {
        to_pointer(&self.path)
    }

    /// The change as printed by `evscope diff`:
    /// `{"op", "path", "old"?, "value"?}`.
    pub fn to_pval(&self) -> PVal {
        let mut o = PObj::new();
        o.insert(Text::from("op"), PVal::str(self.op.as_str()));
        o.insert(Text::from("path"), PVal::from(self.pointer()));
        if let Some(old) = &self.old {
            o.insert(Text::from("old"), old.clone());
        }
        if let Some(v) = &self.value {
            o.insert(Text::from("value"), v.clone());
        }
        PVal::Obj(o)
    }
}

/// The changes that turn `a` into `b`.
pub fn diff(a: &PVal, b: &PVal) -> Vec<Change> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(a, b, &mut path, &mut out);
    out
}

fn walk(a: &PVal, b: &PVal, path: &mut Vec<PathSeg>, out: &mut Vec<Change>) {
    if a.ptr_eq(b) {
        return;
    }
    match (a, b) {
        (PVal::Obj(x), PVal::Obj(y)) => {
            // The diff skips nodes the two maps share.
            x.diff_each(y, |item| {
                match item {
                    DiffItem::Add(k, v) => out.push(Change {
                        op: Op::Add,
                        path: child(path, PathSeg::Key(k.clone())),
                        old: None,
                        value: Some(v.clone()),
                    }),
                    DiffItem::Remove(k, v) => out.push(Change {
                        op: Op::Remove,
                        path: child(path, PathSeg::Key(k.clone())),
                        old: Some(v.clone()),
                        value: None,
                    }),
                    DiffItem::Update { old, new } => {
                        path.push(PathSeg::Key(old.0.clone()));
                        walk(old.1, new.1, path, out);
                        path.pop();
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
        }
        (PVal::Arr(x), PVal::Arr(y)) => {
            let common = x.len().min(y.len());
            for i in 0..common {
                let (p, q) = (&x[i], &y[i]);
                if !p.ptr_eq(q) {
                    path.push(PathSeg::Index(i));
                    walk(p, q, path, out);
                    path.pop();
                }
            }
            for (i, v) in y.iter().enumerate().skip(common) {
                out.push(Change {
                    op: Op::Add,
                    path: child(path, PathSeg::Index(i)),
                    old: None,
                    value: Some(v.clone()),
                });
            }
            // Remove from the end so every index is valid when applied.
            for i in (common..x.len()).rev() {
                out.push(Change {
                    op: Op::Remove,
                    path: child(path, PathSeg::Index(i)),
                    old: Some(x[i].clone()),
                    value: None,
                });
            }
        }
        _ => {
            if a != b || a.type_name() != b.type_name() {
                out.push(Change {
                    op: Op::Replace,
                    path: path.clone(),
                    old: Some(a.clone()),
                    value: Some(b.clone()),
                });
            }
        }
    }
}

fn child(path: &[PathSeg], seg: PathSeg) -> Vec<PathSeg> {
    let mut p = Vec::with_capacity(path.len() + 1);
    p.extend_from_slice(path);
    p.push(seg);
    p
}

/// Apply changes as an RFC 6902 patch (ignoring `old`). Used to check diffs
/// and by anything that wants to move a state forward by a change list.
pub fn apply(base: &PVal, changes: &[Change]) -> Result<PVal, String> {
    let mut state = base.clone();
    for c in changes {
        apply_change(&mut state, c.op, &c.path, c.value.clone())?;
    }
    Ok(state)
}

/// Apply one change to `state` in place. Only the nodes on its path are
/// copied, and only those `state` still shares with another value, so a
/// run of changes onto one state costs about what the same updates made by
/// a reducer would.
pub fn apply_change(state: &mut PVal, op: Op, path: &[PathSeg], value: Option<PVal>) -> Result<(), String> {
    let fail = |e: String| format!("{} {}: {e}", op.as_str(), to_pointer(path));
    let Some((last, parents)) = path.split_last() else {
        return match (op, value) {
            (Op::Remove, _) => Err(fail("cannot remove the root".into())),
            (_, Some(v)) => {
                *state = v;
                Ok(())
            }
            (_, None) => Err(fail("missing value".into())),
        };
    };
    let mut node = state;
    for seg in parents {
        node = match (node, seg) {
            (PVal::Obj(o), PathSeg::Key(k)) => o
                .get_mut(k.as_str())
                .ok_or_else(|| fail(format!("no member {k:?}")))?,
            (PVal::Arr(a), PathSeg::Index(i)) => {
                let len = a.len();
                Arc::make_mut(a)
                    .get_mut(*i)
                    .ok_or_else(|| fail(format!("index {i} out of bounds (length {len})")))?
            }
            (other, _) => return Err(fail(format!("cannot descend into a {}", other.type_name()))),
        };
    }
    match (node, last) {
        (PVal::Obj(o), PathSeg::Key(k)) => match (op, value) {
            (Op::Remove, _) => o
                .remove(k.as_str())
                .map(drop)
                .ok_or_else(|| fail(format!("no member {k:?} to remove"))),
            (Op::Add, Some(v)) => {
                o.insert(k.clone(), v);
                Ok(())
            }
            (Op::Replace, Some(v)) => match o.get_mut(k.as_str()) {
                Some(slot) => {
                    *slot = v;
                    Ok(())
                }
                None => Err(fail(format!("no member {k:?} to replace"))),
            },
            (_, None) => Err(fail("missing value".into())),
        },
        (PVal::Arr(a), PathSeg::Index(i)) => {
            let (i, len) = (*i, a.len());
            let v = Arc::make_mut(a);
            match (op, value) {
                (Op::Add, Some(x)) if i <= len => v.insert(i, x),
                (Op::Replace, Some(x)) if i < len => v[i] = x,
                (Op::Remove, _) if i < len => drop(v.remove(i)),
                (Op::Add | Op::Replace, None) => return Err(fail("missing value".into())),
                _ => return Err(fail(format!("index {i} out of bounds (length {len})"))),
            }
            Ok(())
        }
        (other, _) => Err(fail(format!("cannot change a member of a {}", other.type_name()))),
    }
}

/// The net effect of changes applied one after another, kept as a tree of
/// the places they touch: crossing many deltas then costs one pass over the
/// state, in key order, that visits each changed place once, rather than a
/// walk from the root for every change (a map update whose path copies are
/// copied again by the next one). A place changed by several changes is
/// set once, to its last value.
///
/// Changes below an array index are kept as they come and applied in
/// order (an insertion moves the indexes after it).
#[derive(Debug, Default)]
pub struct Composed {
    root: Pending,
}

/// What the changes pushed so far do at one place.
#[derive(Clone, Debug)]
enum Pending {
    /// Changed below: the members in `keys` as they say, then the changes
    /// in `ops`, in order (relative paths; once there is one, every later
    /// change below goes there too, to keep the order).
    Under {
        keys: Keys,
        ops: Vec<(Op, Vec<PathSeg>, Option<PVal>)>,
    },
    /// Set to this value; later changes below are applied to it here.
    /// `must`: the place had to be there before (the first change of it
    /// replaced or removed it), as applying the changes one by one checks.
    Set { value: PVal, must: bool },
    /// Removed (`must` as for `Set`).
    Gone { must: bool },
}

/// The members of a place that changes went below, in key order: a short
/// sorted list while they are few, as most objects' are (a B-tree node
/// for each changed member of a big map cost more to make and free than
/// applying the changes), a B-tree once they are many (a list would move
/// its tail on every insert).
#[derive(Clone, Debug)]
enum Keys {
    List(Vec<(Text, Arc<Pending>)>),
    Tree(std::collections::BTreeMap<Text, Arc<Pending>>),
}

/// A list of members becomes a tree at this many.
const KEYS_LIST_MAX: usize = 16;

impl Keys {
    fn is_empty(&self) -> bool {
        match self {
            Keys::List(l) => l.is_empty(),
            Keys::Tree(t) => t.is_empty(),
        }
    }

    /// What is pending at member `k`, made empty if nothing was. (Each is
    /// its own: shared only once applied, by a leaf that puts it off.)
    fn entry(&mut self, k: &Text) -> &mut Pending {
        if let Keys::List(l) = self
            && l.len() >= KEYS_LIST_MAX
        {
            *self = Keys::Tree(std::mem::take(l).into_iter().collect());
        }
        let slot = match self {
            Keys::List(l) => {
                let i = match l.binary_search_by(|(m, _)| m.cmp(k)) {
                    Ok(i) => i,
                    Err(i) => {
                        l.insert(i, (k.clone(), Arc::default()));
                        i
                    }
                };
                &mut l[i].1
            }
            Keys::Tree(t) => t.entry(k.clone()).or_default(),
        };
        Arc::make_mut(slot)
    }

    /// The members, in key order (one of the two is empty).
    fn sorted(&self) -> impl Iterator<Item = (&Text, &Arc<Pending>)> {
        let (list, tree) = match self {
            Keys::List(l) => (&l[..], None),
            Keys::Tree(t) => (&[][..], Some(t)),
        };
        list.iter().map(|(k, p)| (k, p)).chain(tree.into_iter().flatten())
    }
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::List(Vec::new())
    }
}

impl Default for Pending {
    fn default() -> Pending {
        Pending::Under {
            keys: Default::default(),
            ops: Vec::new(),
        }
    }
}

impl Composed {
    /// Add one change, made after those pushed before. Fails when it could
    /// not apply whatever the state (a change below a removed place).
    pub fn push(&mut self, op: Op, path: &[PathSeg], value: Option<PVal>) -> Result<(), String> {
        let fail = |e: &str| format!("{} {}: {e}", op.as_str(), to_pointer(path));
        let mut node = &mut self.root;
        let mut rest = path;
        loop {
            let Some((seg, tail)) = rest.split_first() else {
                let must = match node {
                    Pending::Set { must, .. } | Pending::Gone { must } => *must,
                    Pending::Under { keys, ops } => op != Op::Add || !keys.is_empty() || !ops.is_empty(),
                };
                *node = match (op, value) {
                    (Op::Remove, _) => Pending::Gone { must },
                    (_, Some(value)) => Pending::Set { value, must },
                    (_, None) => return Err(fail("missing value")),
                };
                return Ok(());
            };
            match node {
                Pending::Set { value: v, .. } => return apply_change(v, op, rest, value),
                Pending::Gone { .. } => return Err(fail("below a removed place")),
                Pending::Under { keys, ops } => match seg {
                    PathSeg::Key(k) if ops.is_empty() => {
                        node = keys.entry(k);
                        rest = tail;
                    }
                    _ => {
                        ops.push((op, rest.to_vec(), value));
                        return Ok(());
                    }
                },
            }
        }
    }

    /// Add the changes of `changes`, in order.
    pub fn push_all(&mut self, changes: Vec<Change>) -> Result<(), String> {
        changes
            .into_iter()
            .try_for_each(|c| self.push(c.op, &c.path, c.value))
    }

    /// Add what undoes `changes` (made in order, with their old values):
    /// the last first, each one reversed.
    pub fn push_undo(&mut self, changes: Vec<Change>) -> Result<(), String> {
        changes
            .into_iter()
            .rev()
            .try_for_each(|c| self.push(c.op.undone(), &c.path, c.old))
    }

    /// Apply the changes pushed to `state`, which must be the state the
    /// first was made on; in place (what is shared is copied). A change to
    /// the value of a member whose leaf is not read yet (a far state's,
    /// read lazily) waits in the leaf until it is read (see
    /// [`PObj::slot`]): a far seek then reads only the leaves whose members
    /// it adds or removes.
    pub fn apply(&self, state: &mut PVal) -> Result<(), String> {
        apply_pending(state, &self.root, &mut Vec::new())
    }
}

/// The changes below one member, put off until its leaf is read.
struct PutOffChanges(Arc<Pending>);

impl Later for PutOffChanges {
    fn apply(&self, value: &mut PVal) -> Result<(), String> {
        apply_pending(value, &self.0, &mut Vec::new())
    }
}

fn apply_pending(v: &mut PVal, node: &Pending, at: &mut Vec<PathSeg>) -> Result<(), String> {
    let (keys, ops) = match node {
        Pending::Set { value, .. } => {
            *v = value.clone();
            return Ok(());
        }
        Pending::Gone { .. } => return Err("cannot remove the root".into()),
        Pending::Under { keys, ops } => (keys, ops),
    };
    if !keys.is_empty() {
        let PVal::Obj(o) = v else {
            return Err(format!(
                "{}: cannot change a member of a {}",
                to_pointer(at),
                v.type_name()
            ));
        };
        let missing = |at: &[PathSeg], k: &Text| format!("{}: no member {k:?}", to_pointer(at));
        // Members that must be there (replaced, or changed below) first,
        // in one walk down the map; then those added or removed, which
        // change its shape. Each member's changes are its own, so the
        // order between members does not matter.
        let stays = |p: &Pending| !matches!(p, Pending::Set { must: false, .. } | Pending::Gone { .. });
        let mut failed = None;
        o.slots(keys.sorted().filter(|(_, p)| stays(p)), |(k, child), slot| {
            let made = match slot {
                Slot::Here(slot) => {
                    at.push(PathSeg::Key(k.clone()));
                    // Deep states on a thread with a small stack.
                    let made = stacker::maybe_grow(64 * 1024, 1024 * 1024, || apply_pending(slot, child, at));
                    at.pop();
                    made
                }
                Slot::Missing => Err(missing(at, k)),
                Slot::Later(leaf) => {
                    leaf.put_off(Arc::new(PutOffChanges(child.clone())));
                    Ok(())
                }
            };
            failed = made.err();
            failed.is_none()
        });
        if let Some(e) = failed {
            return Err(e);
        }
        for (k, child) in keys.sorted() {
            match &**child {
                Pending::Set { value, must: false } => drop(o.insert(k.clone(), value.clone())),
                Pending::Gone { must } => match o.remove(k.as_str()) {
                    None if *must => return Err(missing(at, k)),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    for (op, path, value) in ops {
        apply_change(v, *op, path, value.clone()).map_err(|e| format!("{}: {e}", to_pointer(at)))?;
    }
    Ok(())
}

/// One line of a line diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineTag {
    /// The path of the change the following lines belong to.
    Header,
    Equal,
    Delete,
    Insert,
}

/// A line of the text diff of changed subtrees, for the explorer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    pub tag: LineTag,
    pub text: String,
}

/// A line diff of the pretty-printed changed subtrees (via `similar`): for
/// each change, a header with its path, then the old subtree's lines against
/// the new one's.
pub fn line_diff(changes: &[Change]) -> Vec<DiffLine> {
    let mut out = Vec::new();
    for c in changes {
        let pointer = c.pointer();
        out.push(DiffLine {
            tag: LineTag::Header,
            text: format!(
                "{} {}",
                c.op.as_str(),
                if pointer.is_empty() { "/" } else { &pointer }
            ),
        });
        let old = c
            .old
            .as_ref()
            .map(|v| v.to_json_pretty() + "\n")
            .unwrap_or_default();
        let new = c
            .value
            .as_ref()
            .map(|v| v.to_json_pretty() + "\n")
            .unwrap_or_default();
        let text = similar::TextDiff::from_lines(&old, &new);
        for change in text.iter_all_changes() {
            let tag = match change.tag() {
                similar::ChangeTag::Equal => LineTag::Equal,
                similar::ChangeTag::Delete => LineTag::Delete,
                similar::ChangeTag::Insert => LineTag::Insert,
            };
            out.push(DiffLine {
                tag,
                text: change.value().trim_end_matches('\n').to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> PVal {
        PVal::from_json(s).unwrap()
    }

    #[test]
    fn deepest_paths_and_apply() {
        let a = v(r#"{"users":{"a@b.c":{"n":1,"tags":["x","y"]}},"gone":true,"arr":[1,2,3]}"#);
        let b = v(r#"{"users":{"a@b.c":{"n":2,"tags":["x"]},"d/e":{}},"arr":[1,5],"new":null}"#);
        let d = diff(&a, &b);
        let rendered: Vec<String> = d.iter().map(|c| c.to_pval().to_json()).collect();
        assert!(
            rendered.contains(&r#"{"old":1,"op":"replace","path":"/users/a@b.c/n","value":2}"#.to_string())
        );
        assert!(rendered.contains(&r#"{"op":"add","path":"/users/d~1e","value":{}}"#.to_string()));
        assert!(rendered.contains(&r#"{"old":"y","op":"remove","path":"/users/a@b.c/tags/1"}"#.to_string()));
        assert!(rendered.contains(&r#"{"old":3,"op":"remove","path":"/arr/2"}"#.to_string()));
        assert_eq!(apply(&a, &d).unwrap(), b);
        assert!(diff(&b, &b).is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Changes to many members of a big object, composed, give what
        /// they give one by one, whether the object is held alone or shared
        /// with the state it came from (which never changes); a change that
        /// cannot apply fails either way.
        #[test]
        fn composed_changes_to_many_members_apply_as_one_by_one(
            size in 0usize..300,
            changes in proptest::collection::vec((0u16..320, 0u8..5, -5i64..5), 1..500),
            shared in proptest::bool::ANY,
            fails in proptest::bool::ANY,
        ) {
            let key = |i: u16| PathSeg::Key(Text::from(format!("m{i:03}")));
            let n = || PathSeg::Key(Text::from("n"));
            let object = || {
                let mut o = PObj::new();
                for i in 0..size as u16 {
                    let mut inner = PObj::new();
                    inner.insert(Text::from("n"), PVal::Int(i64::from(i)));
                    o.insert(Text::from(format!("m{i:03}")), PVal::Obj(inner));
                }
                PVal::Obj(o)
            };
            let base = object();
            let mut one_by_one = base.clone();
            let mut composed = Composed::default();
            for (m, what, x) in changes {
                // Over the first three quarters and a few more, so that the
                // last members are left alone.
                let m = m % (size as u16 * 3 / 4 + 10);
                let (op, path, value) = match what {
                    0 => (Op::Add, vec![key(m)], Some(PVal::Int(x))),
                    1 => (Op::Remove, vec![key(m)], None),
                    2 => (Op::Replace, vec![key(m), n()], Some(PVal::Int(x))),
                    3 => (Op::Add, vec![key(m), PathSeg::Key(Text::from("x"))], Some(PVal::Int(x))),
                    _ => (Op::Replace, vec![key(m)], Some(PVal::Obj(PObj::new()))),
                };
                // Only changes that apply in turn, as a log's deltas do.
                if apply_change(&mut one_by_one, op, &path, value.clone()).is_ok() {
                    composed.push(op, &path, value).unwrap();
                }
            }
            if fails {
                composed.push(Op::Replace, &[key(999), n()], Some(PVal::Null)).unwrap();
            }
            let mut state = match shared {
                true => base.clone(),
                false => object(),
            };
            match composed.apply(&mut state) {
                Ok(()) => {
                    proptest::prop_assert!(!fails);
                    proptest::prop_assert_eq!(state.to_json(), one_by_one.to_json());
                }
                Err(e) => proptest::prop_assert!(fails && e.contains("no member"), "{e}"),
            }
            proptest::prop_assert_eq!(base.to_json(), object().to_json());
        }
    }

    #[test]
    fn a_composed_change_that_could_not_apply_fails_as_it_would_alone() {
        let key = |k: &str| PathSeg::Key(Text::from(k));
        // Replacing or removing a member that is not there.
        for op in [Op::Replace, Op::Remove] {
            let mut c = Composed::default();
            c.push(op, &[key("a"), key("b")], Some(PVal::Int(1))).unwrap();
            let mut s = v(r#"{"a":{"c":1}}"#);
            assert!(c.apply(&mut s).unwrap_err().contains("no member"), "{op:?}");
        }
        // Added, then replaced: fine whether or not it was there.
        let mut c = Composed::default();
        c.push(Op::Add, &[key("a"), key("b")], Some(PVal::Int(1)))
            .unwrap();
        c.push(Op::Replace, &[key("a"), key("b")], Some(PVal::Int(2)))
            .unwrap();
        let mut s = v(r#"{"a":{"c":1}}"#);
        c.apply(&mut s).unwrap();
        assert_eq!(s, v(r#"{"a":{"c":1,"b":2}}"#));
        // Below a removed member; into a member that is not an object.
        let mut c = Composed::default();
        c.push(Op::Remove, &[key("a")], None).unwrap();
        assert!(c.push(Op::Add, &[key("a"), key("b")], Some(PVal::Null)).is_err());
        let mut c = Composed::default();
        c.push(Op::Add, &[key("a"), key("b")], Some(PVal::Null)).unwrap();
        assert!(
            c.apply(&mut v(r#"{"a":[1]}"#))
                .unwrap_err()
                .contains("member of a array")
        );
        // Changes below an index keep their order.
        let mut c = Composed::default();
        c.push(Op::Add, &[key("a"), PathSeg::Index(0)], Some(PVal::Int(0)))
            .unwrap();
        c.push(Op::Replace, &[key("a"), PathSeg::Index(1)], Some(PVal::Int(9)))
            .unwrap();
        let mut s = v(r#"{"a":[1,2]}"#);
        c.apply(&mut s).unwrap();
        assert_eq!(s, v(r#"{"a":[0,9,2]}"#));
    }

    #[test]
    fn root_and_type_changes() {
        let d = diff(&v("1"), &v(r#""1""#));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].pointer(), "");
        assert_eq!(apply(&v("1"), &d).unwrap(), v(r#""1""#));
        assert!(diff(&v("1"), &v("1.0")).is_empty());
    }

    #[test]
    fn line_diff_marks_lines() {
        let d = diff(&v(r#"{"a":{"x":1,"y":2}}"#), &v(r#"{"a":{"x":1,"y":3}}"#));
        let lines = line_diff(&d);
        assert_eq!(lines[0].text, "replace /a/y");
        assert!(lines.iter().any(|l| l.tag == LineTag::Delete && l.text == "2"));
        assert!(lines.iter().any(|l| l.tag == LineTag::Insert && l.text == "3"));
    }
}
