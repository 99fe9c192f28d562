//! Structural diff between two states.
//!
//! A diff is a list of [`Change`]s in the style of JSON Patch (RFC 6902):
//! applying them in order to the first state gives the second. Changes are
//! as deep as possible (a changed field, not its whole parent), arrays are
//! compared by index, and subtrees that share storage are skipped without
//! being looked at, so the cost follows the size of the change, not of the
//! state.

use crate::value::{PObj, PVal, PathSeg, Text, to_pointer};
use std::sync::Arc;

/// What a change does at its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
}

impl Op {
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
            // OrdMap::diff skips nodes the two maps share.
            for item in x.diff(y) {
                match item {
                    imbl::ordmap::DiffItem::Add(k, v) => out.push(Change {
                        op: Op::Add,
                        path: child(path, PathSeg::Key(k.clone())),
                        old: None,
                        value: Some(v.clone()),
                    }),
                    imbl::ordmap::DiffItem::Remove(k, v) => out.push(Change {
                        op: Op::Remove,
                        path: child(path, PathSeg::Key(k.clone())),
                        old: Some(v.clone()),
                        value: None,
                    }),
                    imbl::ordmap::DiffItem::Update { old, new } => {
                        path.push(PathSeg::Key(old.0.clone()));
                        walk(old.1, new.1, path, out);
                        path.pop();
                    }
                }
            }
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
