//! The state tree as rows, in the manner of jless: the value is flattened
//! into one row per visible node (depth, path, what it is), so moving and
//! folding are index arithmetic over a `Vec`, not tree walks.
//!
//! Only expanded nodes are flattened, and a container shows at most
//! [`CHILD_LIMIT`] children (more on request) plus any child that is on a
//! changed or searched-for path, so a state with half a million users costs
//! a few hundred rows, not half a million, on every step.
//!
//! What is expanded is remembered by path ([`TreeMemory`]), not by row, so
//! it survives moving the event cursor. A node is open when the person
//! opened it, or when it is on the way to a change the event at the cursor
//! made (or is itself a changed container); a node the person closed stays
//! closed even then, and is marked as holding a change.

use crate::diff::{Change, Op};
use crate::value::{PVal, PathSeg, Text};
use std::collections::{BTreeSet, HashMap, HashSet};

/// A path from the root of the state.
pub type Path = Vec<PathSeg>;

/// Children a container shows before a "… N more" row.
pub const CHILD_LIMIT: usize = 100;
/// How many more children each "… N more" row reveals.
pub const MORE_STEP: usize = 1000;

/// How a row relates to the changes the event at the cursor made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    None,
    /// The event added this node.
    Added,
    /// The event replaced this value.
    Replaced,
    /// Inside a subtree the event added or replaced.
    Inside,
    /// A container that holds a change somewhere below it.
    Ancestor,
}

/// What a row shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// An object or array; `open` when its children follow.
    Container {
        array: bool,
        len: usize,
        open: bool,
    },
    Scalar(PVal),
    /// Children of the parent row that are not shown.
    More {
        hidden: usize,
    },
}

/// The name of a row's node within its parent.
#[derive(Clone, Debug, PartialEq)]
pub enum Label {
    Root,
    Key(Text),
    Index(usize),
    /// A "… N more" row.
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub depth: usize,
    /// The node's path (for a "more" row: its parent's path).
    pub path: Path,
    pub label: Label,
    pub node: Node,
    pub mark: Mark,
}

impl Row {
    pub fn is_open(&self) -> bool {
        matches!(self.node, Node::Container { open: true, .. })
    }

    pub fn is_container(&self) -> bool {
        matches!(self.node, Node::Container { .. })
    }
}

/// What the person did to the tree, kept across cursor moves.
#[derive(Clone, Debug, Default)]
pub struct TreeMemory {
    pub expanded: HashSet<Path>,
    pub collapsed: HashSet<Path>,
    /// Children shown in containers where "more" was asked for.
    pub limits: HashMap<Path, usize>,
    /// A path to reveal whatever is collapsed or elided (a search match).
    pub pin: Option<Path>,
}

impl TreeMemory {
    /// Open or close a node, remembering the choice.
    pub fn set_open(&mut self, path: &Path, open: bool) {
        if open {
            self.collapsed.remove(path);
            self.expanded.insert(path.clone());
        } else {
            self.expanded.remove(path);
            self.collapsed.insert(path.clone());
        }
    }

    /// Show more children of the container at `path`.
    pub fn show_more(&mut self, path: &Path) {
        let n = self.limits.entry(path.clone()).or_insert(CHILD_LIMIT);
        *n = n.saturating_add(MORE_STEP);
    }

    /// Reveal `path`: open its ancestors (as if the person had).
    pub fn reveal(&mut self, path: &Path) {
        for i in 0..path.len() {
            self.set_open(&path[..i].to_vec(), true);
        }
        self.pin = Some(path.clone());
    }
}

/// The changes, indexed for flattening.
struct Highlights {
    marks: HashMap<Path, Mark>,
    /// Paths with a change strictly below them.
    ancestors: HashSet<Path>,
    /// For each container, the children that must be shown even when the
    /// container is cut at its limit.
    wanted: HashMap<Path, BTreeSet<PathSeg>>,
}

impl Highlights {
    fn new(changes: &[Change], pin: Option<&Path>) -> Highlights {
        let mut h = Highlights {
            marks: HashMap::new(),
            ancestors: HashSet::new(),
            wanted: HashMap::new(),
        };
        let want = |path: &Path, h: &mut Highlights| {
            for i in 0..path.len() {
                let parent = path[..i].to_vec();
                h.wanted
                    .entry(parent.clone())
                    .or_default()
                    .insert(path[i].clone());
            }
        };
        for c in changes {
            for i in 0..c.path.len() {
                h.ancestors.insert(c.path[..i].to_vec());
            }
            match c.op {
                Op::Add => {
                    h.marks.insert(c.path.clone(), Mark::Added);
                }
                Op::Replace => {
                    h.marks.insert(c.path.clone(), Mark::Replaced);
                }
                Op::Remove => {}
            }
            if c.op != Op::Remove {
                want(&c.path, &mut h);
            } else if let Some((_, parent)) = c.path.split_last() {
                want(&parent.to_vec(), &mut h);
            }
        }
        if let Some(p) = pin {
            want(p, &mut h);
        }
        h
    }
}

/// Flatten `state` into rows, given the changes of the event at the cursor
/// and what the person opened and closed.
pub fn flatten(state: &PVal, changes: &[Change], memory: &TreeMemory) -> Vec<Row> {
    let hl = Highlights::new(changes, memory.pin.as_ref());
    let mut rows = Vec::new();
    let mut path = Vec::new();
    let inherited = Inherited {
        mark: Mark::None,
        open_levels: 0,
    };
    push_node(
        &mut rows,
        &mut path,
        Label::Root,
        state,
        0,
        inherited,
        &hl,
        memory,
    );
    rows
}

/// Levels below an added or replaced container that open by themselves.
const OPEN_INSIDE_CHANGE: usize = 2;

/// What a node gets from its parent.
#[derive(Clone, Copy)]
struct Inherited {
    mark: Mark,
    /// How many more levels of an added/replaced subtree open by themselves.
    open_levels: usize,
}

#[allow(clippy::too_many_arguments)]
fn push_node(
    rows: &mut Vec<Row>,
    path: &mut Path,
    label: Label,
    value: &PVal,
    depth: usize,
    inherited: Inherited,
    hl: &Highlights,
    memory: &TreeMemory,
) {
    let own = hl.marks.get(path).copied();
    let mark = match (own, inherited.mark) {
        (Some(m), _) => m,
        (None, Mark::Added | Mark::Replaced | Mark::Inside) => Mark::Inside,
        _ if hl.ancestors.contains(path) => Mark::Ancestor,
        _ => Mark::None,
    };
    let (array, len) = match value {
        PVal::Obj(o) => (false, o.len()),
        PVal::Arr(a) => (true, a.len()),
        _ => {
            rows.push(Row {
                depth,
                path: path.clone(),
                label,
                node: Node::Scalar(value.clone()),
                mark,
            });
            return;
        }
    };
    let auto = path.is_empty()
        || hl.ancestors.contains(path)
        || own.is_some()
        || (mark == Mark::Inside && inherited.open_levels > 0)
        || memory
            .pin
            .as_ref()
            .is_some_and(|p| p.len() > path.len() && p.starts_with(path));
    let open = !memory.collapsed.contains(path) && (auto || memory.expanded.contains(path));
    rows.push(Row {
        depth,
        path: path.clone(),
        label,
        node: Node::Container { array, len, open },
        mark,
    });
    if !open {
        return;
    }
    let limit = memory.limits.get(path).copied().unwrap_or(CHILD_LIMIT);
    let wanted = hl.wanted.get(path);
    let child_mark = Inherited {
        mark: if mark == Mark::Ancestor { Mark::None } else { mark },
        open_levels: match mark {
            Mark::Added | Mark::Replaced => OPEN_INSIDE_CHANGE,
            Mark::Inside => inherited.open_levels.saturating_sub(1),
            _ => 0,
        },
    };
    let mut shown = 0usize;
    match value {
        PVal::Obj(o) => {
            let mut last: Option<Text> = None;
            for (k, v) in o.iter().take(limit) {
                path.push(PathSeg::Key(k.clone()));
                push_node(
                    rows,
                    path,
                    Label::Key(k.clone()),
                    v,
                    depth + 1,
                    child_mark,
                    hl,
                    memory,
                );
                path.pop();
                last = Some(k.clone());
                shown += 1;
            }
            if len > shown {
                // Every key not yet shown sorts after `last`.
                let extra: Vec<Text> = wanted
                    .into_iter()
                    .flatten()
                    .filter_map(|s| match s {
                        PathSeg::Key(k) if last.as_ref().is_none_or(|l| k > l) && o.contains_key(k) => {
                            Some(k.clone())
                        }
                        _ => None,
                    })
                    .collect();
                push_more(rows, path, depth + 1, len - shown - extra.len());
                for k in extra {
                    if let Some(v) = o.get(&k) {
                        path.push(PathSeg::Key(k.clone()));
                        push_node(rows, path, Label::Key(k), v, depth + 1, child_mark, hl, memory);
                        path.pop();
                    }
                }
            }
        }
        PVal::Arr(a) => {
            for (i, v) in a.iter().take(limit).enumerate() {
                path.push(PathSeg::Index(i));
                push_node(rows, path, Label::Index(i), v, depth + 1, child_mark, hl, memory);
                path.pop();
                shown += 1;
            }
            if len > shown {
                let extra: Vec<usize> = wanted
                    .into_iter()
                    .flatten()
                    .filter_map(|s| match s {
                        PathSeg::Index(i) if *i >= shown && *i < len => Some(*i),
                        _ => None,
                    })
                    .collect();
                push_more(rows, path, depth + 1, len - shown - extra.len());
                for i in extra {
                    if let Some(v) = a.get(i) {
                        path.push(PathSeg::Index(i));
                        push_node(rows, path, Label::Index(i), v, depth + 1, child_mark, hl, memory);
                        path.pop();
                    }
                }
            }
        }
        _ => {}
    }
}

fn push_more(rows: &mut Vec<Row>, parent: &Path, depth: usize, hidden: usize) {
    if hidden > 0 {
        rows.push(Row {
            depth,
            path: parent.clone(),
            label: Label::None,
            node: Node::More { hidden },
            mark: Mark::None,
        });
    }
}

/// The row of the parent of row `i`.
pub fn parent_row(rows: &[Row], i: usize) -> Option<usize> {
    let depth = rows.get(i)?.depth;
    (0..i).rev().find(|&j| rows[j].depth < depth)
}

/// The next (or previous) row at the same depth under the same parent.
pub fn sibling_row(rows: &[Row], i: usize, forward: bool) -> Option<usize> {
    let depth = rows.get(i)?.depth;
    if forward {
        for (j, r) in rows.iter().enumerate().skip(i + 1) {
            if r.depth < depth {
                return None;
            }
            if r.depth == depth {
                return Some(j);
            }
        }
        None
    } else {
        for j in (0..i).rev() {
            if rows[j].depth < depth {
                return None;
            }
            if rows[j].depth == depth {
                return Some(j);
            }
        }
        None
    }
}

/// The row showing `path`, or the row of its nearest shown ancestor.
pub fn find_row(rows: &[Row], path: &Path) -> Option<usize> {
    for len in (0..=path.len()).rev() {
        let prefix = &path[..len];
        if let Some(i) = rows
            .iter()
            .position(|r| r.label != Label::None && r.path == prefix)
        {
            return Some(i);
        }
    }
    None
}

/// Nodes the search looks at before giving up (it walks the whole state).
const SEARCH_BUDGET: usize = 5_000_000;

/// The path of the next node (in document order, wrapping around) after
/// `from` (before it when `!forward`) whose key or scalar value contains
/// `query`, ignoring ASCII case.
pub fn search(state: &PVal, query: &str, from: &Path, forward: bool) -> Option<Path> {
    let needle = query.to_lowercase();
    if needle.is_empty() {
        return None;
    }
    let mut walk = Walk {
        needle,
        from,
        forward,
        first: None,
        last_before: None,
        after: None,
        last: None,
        budget: SEARCH_BUDGET,
    };
    let mut path = Vec::new();
    walk.node(state, &mut path, None);
    if forward {
        walk.after.or(walk.first)
    } else {
        walk.last_before.or(walk.last)
    }
}

struct Walk<'a> {
    needle: String,
    from: &'a Path,
    forward: bool,
    first: Option<Path>,
    last_before: Option<Path>,
    after: Option<Path>,
    last: Option<Path>,
    budget: usize,
}

impl Walk<'_> {
    /// Returns false to stop the walk.
    fn node(&mut self, v: &PVal, path: &mut Path, key: Option<&str>) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        let hit = key.is_some_and(|k| k.to_lowercase().contains(&self.needle))
            || match v {
                PVal::Str(s) => s.to_lowercase().contains(&self.needle),
                PVal::Obj(_) | PVal::Arr(_) => false,
                other => other.to_json().contains(&self.needle),
            };
        if hit {
            if self.first.is_none() {
                self.first = Some(path.clone());
            }
            if path.as_slice() > self.from.as_slice() {
                if self.forward {
                    self.after = Some(path.clone());
                    return false;
                }
            } else if path.as_slice() < self.from.as_slice() {
                self.last_before = Some(path.clone());
            }
            self.last = Some(path.clone());
        }
        match v {
            PVal::Obj(o) => {
                for (k, child) in o.iter() {
                    path.push(PathSeg::Key(k.clone()));
                    let go = self.node(child, path, Some(k));
                    path.pop();
                    if !go {
                        return false;
                    }
                }
            }
            PVal::Arr(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    let go = self.node(child, path, None);
                    path.pop();
                    if !go {
                        return false;
                    }
                }
            }
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff;

    fn v(s: &str) -> PVal {
        PVal::from_json(s).expect("json")
    }

    fn key(k: &str) -> PathSeg {
        PathSeg::Key(Text::from(k))
    }

    fn shown(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| {
                let label = match &r.label {
                    Label::Root => ".".to_string(),
                    Label::Key(k) => k.to_string(),
                    Label::Index(i) => i.to_string(),
                    Label::None => "…".to_string(),
                };
                format!(
                    "{}{label}{}",
                    "  ".repeat(r.depth),
                    if r.is_open() { "/" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn changes_open_their_ancestors_and_are_marked() {
        let a = v(r#"{"users":{"a":{"n":1},"b":{"n":1}},"stats":{"n":2}}"#);
        let b = v(r#"{"users":{"a":{"n":2},"b":{"n":1}},"stats":{"n":2}}"#);
        let rows = flatten(&b, &diff(&a, &b), &TreeMemory::default());
        assert_eq!(
            shown(&rows),
            ["./", "  stats", "  users/", "    a/", "      n", "    b"]
        );
        assert_eq!(rows[4].mark, Mark::Replaced);
        assert_eq!(rows[2].mark, Mark::Ancestor);
        assert_eq!(rows[1].mark, Mark::None);
    }

    #[test]
    fn closed_by_hand_stays_closed() {
        let a = v(r#"{"users":{"a":{"n":1}}}"#);
        let b = v(r#"{"users":{"a":{"n":2}}}"#);
        let mut mem = TreeMemory::default();
        mem.set_open(&vec![key("users")], false);
        let rows = flatten(&b, &diff(&a, &b), &mem);
        assert_eq!(shown(&rows), ["./", "  users"]);
        assert_eq!(rows[1].mark, Mark::Ancestor);
    }

    #[test]
    fn big_containers_are_cut_but_show_changed_children() {
        let mut o = crate::value::PObj::new();
        for i in 0..1000 {
            o.insert(Text::from(format!("k{i:04}")), PVal::Int(i));
        }
        let a = PVal::Obj(o.clone());
        o.insert(Text::from("k0900"), PVal::Int(-1));
        let b = PVal::Obj(o);
        let rows = flatten(&b, &diff(&a, &b), &TreeMemory::default());
        assert_eq!(rows.len(), 1 + CHILD_LIMIT + 1 + 1);
        assert_eq!(rows[CHILD_LIMIT + 1].node, Node::More { hidden: 899 });
        assert_eq!(rows[CHILD_LIMIT + 2].label, Label::Key(Text::from("k0900")));
        let mut mem = TreeMemory::default();
        mem.show_more(&vec![]);
        assert_eq!(flatten(&b, &[], &mem).len(), 1001);
    }

    #[test]
    fn moves_by_index() {
        let s = v(r#"{"a":{"x":1,"y":2},"b":3}"#);
        let mut mem = TreeMemory::default();
        mem.set_open(&vec![key("a")], true);
        let rows = flatten(&s, &[], &mem);
        assert_eq!(shown(&rows), ["./", "  a/", "    x", "    y", "  b"]);
        assert_eq!(parent_row(&rows, 3), Some(1));
        assert_eq!(sibling_row(&rows, 1, true), Some(4));
        assert_eq!(sibling_row(&rows, 4, false), Some(1));
        assert_eq!(sibling_row(&rows, 3, true), None);
        assert_eq!(find_row(&rows, &vec![key("a"), key("zz")]), Some(1));
    }

    #[test]
    fn search_wraps_in_document_order() {
        let s = v(r#"{"a":{"name":"Ada"},"b":{"name":"adam"},"c":"x"}"#);
        let first = search(&s, "ADA", &vec![], true).expect("match");
        assert_eq!(first, vec![key("a"), key("name")]);
        let second = search(&s, "ada", &first, true).expect("match");
        assert_eq!(second, vec![key("b"), key("name")]);
        assert_eq!(search(&s, "ada", &second, true), Some(first.clone()));
        assert_eq!(search(&s, "ada", &first, false), Some(second));
        assert_eq!(search(&s, "nothing", &vec![], true), None);
    }
}
