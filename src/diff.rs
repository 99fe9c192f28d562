//! Structural diff between two states.
//!
//! A diff is a list of [`Change`]s in the style of JSON Patch (RFC 6902):
//! applying them in order to the first state gives the second. Changes are
//! as deep as possible (a changed field, not its whole parent), arrays are
//! compared by index, and subtrees that share storage are skipped without
//! being looked at, so the cost follows the size of the change, not of the
//! state.

use crate::value::{PObj, PVal, PathSeg, parse_pointer, to_pointer};
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
        o.insert(Arc::from("op"), PVal::str(self.op.as_str()));
        o.insert(Arc::from("path"), PVal::from(self.pointer()));
        if let Some(old) = &self.old {
            o.insert(Arc::from("old"), old.clone());
        }
        if let Some(v) = &self.value {
            o.insert(Arc::from("value"), v.clone());
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
        let tokens: Vec<String> = c
            .path
            .iter()
            .map(|s| match s {
                PathSeg::Key(k) => k.to_string(),
                PathSeg::Index(i) => i.to_string(),
            })
            .collect();
        state = apply_one(state, &tokens, c.op, c.value.as_ref())
            .map_err(|e| format!("{} {}: {e}", c.op.as_str(), c.pointer()))?;
    }
    Ok(state)
}

/// Apply one operation given by a JSON pointer string.
pub fn apply_pointer(base: PVal, op: Op, pointer: &str, value: Option<&PVal>) -> Result<PVal, String> {
    let tokens = parse_pointer(pointer)?;
    apply_one(base, &tokens, op, value)
}

fn apply_one(node: PVal, tokens: &[String], op: Op, value: Option<&PVal>) -> Result<PVal, String> {
    let Some((first, rest)) = tokens.split_first() else {
        return match op {
            Op::Remove => Err("cannot remove the root".into()),
            _ => value.cloned().ok_or_else(|| "missing value".to_string()),
        };
    };
    match node {
        PVal::Obj(mut o) => {
            let key: Arc<str> = Arc::from(first.as_str());
            if rest.is_empty() {
                match op {
                    Op::Add => {
                        o.insert(key, value.cloned().ok_or("missing value")?);
                    }
                    Op::Replace => {
                        if !o.contains_key(&key) {
                            return Err(format!("no member {first:?} to replace"));
                        }
                        o.insert(key, value.cloned().ok_or("missing value")?);
                    }
                    Op::Remove => {
                        o.remove(&key)
                            .ok_or_else(|| format!("no member {first:?} to remove"))?;
                    }
                }
            } else {
                let inner = o
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| format!("no member {first:?}"))?;
                o.insert(key, apply_one(inner, rest, op, value)?);
            }
            Ok(PVal::Obj(o))
        }
        PVal::Arr(mut a) => {
            let v = Arc::make_mut(&mut a);
            let idx = if first == "-" {
                v.len()
            } else {
                first
                    .parse::<usize>()
                    .map_err(|_| format!("{first:?} is not an array index"))?
            };
            if rest.is_empty() {
                match op {
                    Op::Add if idx <= v.len() => v.insert(idx, value.cloned().ok_or("missing value")?),
                    Op::Replace if idx < v.len() => v[idx] = value.cloned().ok_or("missing value")?,
                    Op::Remove if idx < v.len() => {
                        v.remove(idx);
                    }
                    _ => return Err(format!("index {idx} out of bounds (length {})", v.len())),
                }
            } else {
                let inner = v
                    .get(idx)
                    .cloned()
                    .ok_or_else(|| format!("index {idx} out of bounds"))?;
                v[idx] = apply_one(inner, rest, op, value)?;
            }
            Ok(PVal::Arr(a))
        }
        other => Err(format!("cannot descend into a {}", other.type_name())),
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
