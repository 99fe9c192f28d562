//! From jaq's parse tree to the direct engine's [`Expr`].
//!
//! Names resolve as jaq resolves them: definitions in scope (innermost
//! first, the prelude outermost), then the natives in the order jaq was
//! given them. Definitions are inlined at every call, their bodies compiled
//! in the scope where they were defined plus their parameters; a filter
//! parameter is the caller's term, compiled where it is used in the
//! caller's scope. Variables get levels: the height of the variable stack
//! where they are bound.

use super::{By, Expr, Fold, Kind, Native, Part, Pat, Program};
use crate::reduce::jq::Bridge;
use crate::reduce::natives;
use crate::value::PVal;
use crate::value::Text;
use crate::value::jaq::arr;
use jaq_core::ValT as _;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::path::{Opt, Part as JPart};
use std::rc::Rc;
use std::sync::Arc;

/// Why a program does not run on the direct engine.
pub(crate) type Unsupported = String;
type C<T> = Result<T, Unsupported>;

/// Compiled terms a program may have (inlining can multiply them).
const MAX_NODES: usize = 20_000;
/// How deeply calls may nest when inlined.
const MAX_INLINE_DEPTH: usize = 64;

/// A native's name and arguments (`true` for a value argument, `false` for
/// a filter), in jaq's order.
pub(crate) type NativeSig = (&'static str, Vec<bool>);

/// Compile `code` (already accepted by jaq), with the prelude's definitions
/// and the natives jaq was given. `bridge` gives a jaq program running a
/// native this engine does not implement itself.
pub(crate) fn compile(
    code: &str,
    prelude: &'static [Def<&'static str>],
    natives: &[NativeSig],
    bridge: &mut dyn FnMut(&'static str, usize) -> Option<Arc<Bridge>>,
) -> C<Program> {
    let term = jaq_core::load::parse(code, |p| p.term()).ok_or("does not parse")?;
    let mut scope = Scope::default();
    for def in prelude {
        let fun = Fun::Def(def, scope.clone());
        scope = scope.push(Bind::Fun(def.name, def.args.len(), Rc::new(fun)));
    }
    let scope = scope.push(Bind::Var("$event", 0));
    let mut c = Compiler {
        natives,
        bridge,
        bridges: Vec::new(),
        nodes: 0,
        inline_depth: 0,
        recs: Vec::new(),
    };
    let root = c.term(&term, &scope, 1)?;
    let recs = c.recs.into_iter().map(|r| {
        r.unwrap_or(Expr {
            kind: Kind::Id,
            single: true,
            blind: false,
        })
    });
    Ok(Program {
        root,
        recs: recs.collect(),
    })
}

#[derive(Clone)]
enum Bind<'s> {
    Var(&'s str, usize),
    Label(&'s str, usize),
    Fun(&'s str, usize, Rc<Fun<'s>>),
}

enum Fun<'s> {
    /// A definition and the scope it was defined in.
    Def(&'s Def<&'s str>, Scope<'s>),
    /// A filter argument and the scope of the call.
    Arg(&'s Term<&'s str>, Scope<'s>),
    /// The definition with arguments being compiled: calling it is
    /// recursion, which this engine does not do.
    Recursive,
    /// The definition without arguments being compiled, as recursive body
    /// `slot`, compiled for a stack `depth` high.
    SelfCall(usize, usize),
}

/// What is in scope, innermost first.
#[derive(Clone, Default)]
struct Scope<'s>(Option<Rc<(Bind<'s>, Scope<'s>)>>);

impl<'s> Scope<'s> {
    fn push(&self, b: Bind<'s>) -> Scope<'s> {
        Scope(Some(Rc::new((b, self.clone()))))
    }

    fn iter(&self) -> impl Iterator<Item = &Bind<'s>> {
        let mut cur = self.0.as_deref();
        std::iter::from_fn(move || {
            let (b, rest) = cur?;
            cur = rest.0.as_deref();
            Some(b)
        })
    }

    fn var(&self, name: &str) -> Option<usize> {
        self.iter().find_map(|b| match b {
            Bind::Var(x, level) if *x == name => Some(*level),
            _ => None,
        })
    }

    fn label(&self, name: &str) -> Option<usize> {
        self.iter().find_map(|b| match b {
            Bind::Label(x, level) if *x == name => Some(*level),
            _ => None,
        })
    }

    fn fun(&self, name: &str, arity: usize) -> Option<Rc<Fun<'s>>> {
        self.iter().find_map(|b| match b {
            Bind::Fun(x, n, f) if *x == name && *n == arity => Some(f.clone()),
            _ => None,
        })
    }
}

struct Compiler<'a> {
    natives: &'a [NativeSig],
    bridge: &'a mut dyn FnMut(&'static str, usize) -> Option<Arc<Bridge>>,
    bridges: Vec<((&'static str, usize), Arc<Bridge>)>,
    nodes: usize,
    inline_depth: usize,
    /// The bodies of recursive definitions (`None` while compiling, or
    /// when the definition turned out not to call itself).
    recs: Vec<Option<Expr>>,
}

impl<'a> Compiler<'a> {
    fn mk(&mut self, kind: Kind) -> C<Expr> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err("too many terms once inlined".into());
        }
        let single = single(&kind);
        let blind = blind(&kind);
        Ok(Expr { kind, single, blind })
    }

    /// Compile `t` in scope `sc` where `depth` variables are bound at run
    /// time.
    fn term<'s>(&mut self, t: &'s Term<&'s str>, sc: &Scope<'s>, depth: usize) -> C<Expr> {
        let kind = match t {
            Term::Id => Kind::Id,
            Term::Recurse => Kind::Recurse,
            Term::Num(n) => Kind::Lit(match n.parse::<isize>() {
                Ok(i) => PVal::from(i),
                Err(_) => PVal::from_num(n).map_err(|_| "a number jaq cannot read")?,
            }),
            Term::Str(fmt, parts) => return self.string(*fmt, parts, sc, depth),
            Term::Arr(None) => Kind::Lit(arr(Default::default())),
            Term::Arr(Some(t)) => Kind::Arr(Box::new(self.term(t, sc, depth)?)),
            Term::Obj(entries) if entries.is_empty() => Kind::Lit(PVal::empty_obj()),
            Term::Obj(entries) => {
                let mut kvs = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    kvs.push(self.obj_entry(k, v.as_ref(), sc, depth)?);
                }
                return self.fold_obj(kvs);
            }
            Term::Neg(t) => {
                let f = self.term(t, sc, depth)?;
                if let Kind::Lit(x) = &f.kind
                    && let Ok(y) = -x.clone()
                {
                    Kind::Lit(y)
                } else {
                    Kind::Neg(Box::new(f))
                }
            }
            Term::BinOp(l, op, r) => return self.binop(l, op, r, sc, depth),
            // A label is bound like a variable (as in jaq), to a token of
            // the run: `break` finds the label of its own activation.
            Term::Label(x, t) => {
                let body = self.term(t, &sc.push(Bind::Label(x, depth)), depth + 1)?;
                Kind::Label(Box::new(body), depth)
            }
            Term::Break(x) => Kind::Break(sc.label(x).ok_or("unknown label")?),
            Term::Fold(name, xs, pat, args) => {
                let xs = self.term(xs, sc, depth)?;
                let (mut inner, mut n) = (sc.clone(), 0);
                let pat = self.pattern(pat, sc, depth, &mut inner, &mut n)?;
                let (init, update, extract) = match (*name, &args[..]) {
                    ("reduce", [init, update]) | ("foreach", [init, update]) => (init, update, None),
                    ("foreach", [init, update, extract]) => (init, update, Some(extract)),
                    _ => return Err("bad fold".into()),
                };
                let fold = Fold {
                    xs,
                    pat,
                    init: self.term(init, sc, depth)?,
                    update: self.term(update, &inner, depth + n)?,
                    extract: match extract {
                        Some(e) => Some(self.term(e, &inner, depth + n)?),
                        None => None,
                    },
                    level: depth,
                };
                if *name == "reduce" {
                    Kind::Reduce(Box::new(fold))
                } else {
                    Kind::Foreach(Box::new(fold))
                }
            }
            Term::TryCatch(t, c) => Kind::Try(
                Box::new(self.term(t, sc, depth)?),
                match c {
                    Some(c) => Some(Box::new(self.term(c, sc, depth)?)),
                    None => None,
                },
            ),
            Term::IfThenElse(if_thens, else_) => {
                let mut acc = match else_ {
                    Some(e) => self.term(e, sc, depth)?,
                    None => self.mk(Kind::Id)?,
                };
                for (c, t) in if_thens.iter().rev() {
                    let c = self.term(c, sc, depth)?;
                    let t = self.term(t, sc, depth)?;
                    acc = self.mk(Kind::Ite(Box::new(c), Box::new(t), Box::new(acc)))?;
                }
                return Ok(acc);
            }
            Term::Def(defs, t) => {
                let mut sc = sc.clone();
                for def in defs {
                    let fun = Fun::Def(def, sc.clone());
                    sc = sc.push(Bind::Fun(def.name, def.args.len(), Rc::new(fun)));
                }
                return self.term(t, &sc, depth);
            }
            Term::Call(name, args) => return self.call(name, args, sc, depth),
            Term::Var(x) => Kind::Var(sc.var(x).ok_or("unknown variable")?),
            Term::Path(head, parts) => {
                let head = self.term(head, sc, depth)?;
                let mut steps = Vec::with_capacity(parts.0.len());
                for (part, opt) in &parts.0 {
                    let part = match part {
                        JPart::Index(i) => Part::Index(self.term(i, sc, depth)?),
                        JPart::Range(None, None) => Part::Iter,
                        JPart::Range(from, upto) => Part::Range(
                            self.opt_term(from.as_ref(), sc, depth)?,
                            self.opt_term(upto.as_ref(), sc, depth)?,
                        ),
                    };
                    steps.push((part, *opt));
                }
                Kind::Path(Box::new(head), steps)
            }
        };
        self.mk(kind)
    }

    fn opt_term<'s>(
        &mut self,
        t: Option<&'s Term<&'s str>>,
        sc: &Scope<'s>,
        depth: usize,
    ) -> C<Option<Expr>> {
        t.map(|t| self.term(t, sc, depth)).transpose()
    }

    fn binop<'s>(
        &mut self,
        l: &'s Term<&'s str>,
        op: &'s BinaryOp<&'s str>,
        r: &'s Term<&'s str>,
        sc: &Scope<'s>,
        depth: usize,
    ) -> C<Expr> {
        use BinaryOp as B;
        let kind = match op {
            B::Pipe(None) => Kind::Pipe(
                Box::new(self.term(l, sc, depth)?),
                Box::new(self.term(r, sc, depth)?),
            ),
            B::Pipe(Some(Pattern::Var(x))) => {
                let src = self.term(l, sc, depth)?;
                let body = self.term(r, &sc.push(Bind::Var(x, depth)), depth + 1)?;
                Kind::Bind(Box::new(src), Box::new(body), depth)
            }
            B::Pipe(Some(pat)) => {
                let src = self.term(l, sc, depth)?;
                let (mut inner, mut n) = (sc.clone(), 0);
                let pat = self.pattern(pat, sc, depth, &mut inner, &mut n)?;
                let body = self.term(r, &inner, depth + n)?;
                Kind::BindPat(Box::new(src), Box::new(pat), Box::new(body), depth)
            }
            B::Comma => Kind::Comma(
                Box::new(self.term(l, sc, depth)?),
                Box::new(self.term(r, sc, depth)?),
            ),
            B::Alt => Kind::Alt(
                Box::new(self.term(l, sc, depth)?),
                Box::new(self.term(r, sc, depth)?),
            ),
            B::Or | B::And => Kind::Logic(
                Box::new(self.term(l, sc, depth)?),
                matches!(op, B::Or),
                Box::new(self.term(r, sc, depth)?),
            ),
            B::Math(op) => {
                let (l, r) = (self.term(l, sc, depth)?, self.term(r, sc, depth)?);
                if let (Kind::Lit(x), Kind::Lit(y)) = (&l.kind, &r.kind)
                    && let Ok(z) = op.run(x.clone(), y.clone())
                {
                    Kind::Lit(z)
                } else {
                    Kind::Math(Box::new(l), *op, Box::new(r))
                }
            }
            B::Cmp(op) => Kind::Cmp(
                Box::new(self.term(l, sc, depth)?),
                *op,
                Box::new(self.term(r, sc, depth)?),
            ),
            B::Assign => Kind::Assign(
                Box::new(self.term(l, sc, depth)?),
                Box::new(self.term(r, sc, depth)?),
            ),
            B::Update => Kind::Update(
                Box::new(self.term(l, sc, depth)?),
                Box::new(self.term(r, sc, depth)?),
            ),
            B::UpdateMath(op) => Kind::UpdateMath(
                Box::new(self.term(l, sc, depth)?),
                *op,
                Box::new(self.term(r, sc, depth)?),
            ),
            B::UpdateAlt => Kind::UpdateAlt(
                Box::new(self.term(l, sc, depth)?),
                Box::new(self.term(r, sc, depth)?),
            ),
        };
        self.mk(kind)
    }

    /// A binding pattern; its variables are added to `inner`, counted by
    /// `n` (the first at level `depth`). A key term is compiled in the scope
    /// outside the pattern, for the stack as it is when it runs: with the
    /// variables before it bound.
    fn pattern<'s>(
        &mut self,
        p: &'s Pattern<&'s str>,
        sc: &Scope<'s>,
        depth: usize,
        inner: &mut Scope<'s>,
        n: &mut usize,
    ) -> C<Pat> {
        Ok(match p {
            Pattern::Var(x) => {
                *inner = inner.push(Bind::Var(x, depth + *n));
                *n += 1;
                Pat::Var
            }
            Pattern::Arr(ps) => {
                let mut entries = Vec::with_capacity(ps.len());
                for (i, p) in ps.iter().enumerate() {
                    let key = self.mk(Kind::Lit(PVal::from(i as isize)))?;
                    entries.push((key, self.pattern(p, sc, depth, inner, n)?));
                }
                Pat::Idx(entries)
            }
            Pattern::Obj(es) => {
                let mut entries = Vec::with_capacity(es.len());
                for (k, p) in es {
                    let key = self.term(k, sc, depth + *n)?;
                    entries.push((key, self.pattern(p, sc, depth, inner, n)?));
                }
                Pat::Idx(entries)
            }
        })
    }

    /// One entry of an object construction, as jaq reads it: `$x` is
    /// `"x": $x`, a key alone `k` is `k: .[k]`.
    fn obj_entry<'s>(
        &mut self,
        k: &'s Term<&'s str>,
        v: Option<&'s Term<&'s str>>,
        sc: &Scope<'s>,
        depth: usize,
    ) -> C<(Expr, Expr)> {
        Ok(match (k, v) {
            (Term::Var(x), None) => {
                let key = self.mk(Kind::Lit(PVal::from(x[1..].to_string())))?;
                (key, self.term(k, sc, depth)?)
            }
            (k, None) => {
                let key = self.term(k, sc, depth)?;
                let index = self.term(k, sc, depth)?;
                let head = self.mk(Kind::Id)?;
                let value = self.mk(Kind::Path(
                    Box::new(head),
                    vec![(Part::Index(index), Opt::Essential)],
                ))?;
                (key, value)
            }
            (k, Some(v)) => (self.term(k, sc, depth)?, self.term(v, sc, depth)?),
        })
    }

    /// An object construction; a literal when all its keys and values are.
    fn fold_obj(&mut self, kvs: Vec<(Expr, Expr)>) -> C<Expr> {
        let mut lit = crate::value::PObj::new();
        for (k, v) in &kvs {
            match (&k.kind, &v.kind) {
                (Kind::Lit(PVal::Str(k)), Kind::Lit(v)) => {
                    lit.insert(k.clone(), v.clone());
                }
                _ => return self.mk(Kind::Obj(kvs)),
            }
        }
        self.mk(Kind::Lit(PVal::Obj(lit)))
    }

    /// A string literal or interpolation, shaped as jaq compiles it: a
    /// single part is that part, several are added up.
    fn string<'s>(
        &mut self,
        fmt: Option<&'s str>,
        parts: &'s [StrPart<&'s str, Term<&'s str>>],
        sc: &Scope<'s>,
        depth: usize,
    ) -> C<Expr> {
        let single_part = parts.len() == 1;
        let mut out: Vec<Expr> = Vec::with_capacity(parts.len());
        for part in parts {
            let e = match part {
                StrPart::Str(s) => self.mk(Kind::Lit(PVal::from(s.to_string())))?,
                StrPart::Char(c) => self.mk(Kind::Lit(PVal::from(c.to_string())))?,
                StrPart::Term(f) => {
                    let f = self.term(f, sc, depth)?;
                    let fmt = match fmt {
                        None => self.mk(Kind::ToString)?,
                        Some(name) => self.call(name, &[], sc, depth)?,
                    };
                    self.mk(Kind::Pipe(Box::new(f), Box::new(fmt)))?
                }
            };
            // Adjacent literals join at compile time (the parts are all
            // strings, whose addition is concatenation).
            if let (
                Some(Expr {
                    kind: Kind::Lit(PVal::Str(a)),
                    ..
                }),
                Kind::Lit(PVal::Str(b)),
            ) = (out.last_mut(), &e.kind)
            {
                *a = Text::from(format!("{a}{b}"));
                continue;
            }
            out.push(e);
        }
        match out.len() {
            0 => self.mk(Kind::Lit(PVal::from(String::new()))),
            1 if single_part || matches!(out[0].kind, Kind::Lit(_)) => Ok(out.pop().ok_or("")?),
            _ => self.mk(Kind::Str(out)),
        }
    }

    fn call<'s>(
        &mut self,
        name: &'s str,
        args: &'s [Term<&'s str>],
        sc: &Scope<'s>,
        depth: usize,
    ) -> C<Expr> {
        let Some(fun) = sc.fun(name, args.len()) else {
            return self.native(name, args, sc, depth);
        };
        match &*fun {
            Fun::Recursive => Err(format!("recursive definition {name} with arguments")),
            // A definition without arguments calling itself where the stack
            // is as high as where its body starts (it binds no variable on
            // the way, as `def r: ., (f | r)`) runs its one compiled body.
            Fun::SelfCall(slot, d) if *d == depth => self.mk(Kind::Rec(*slot)),
            Fun::SelfCall(..) => Err(format!("recursive definition {name} binding variables")),
            Fun::Arg(t, arg_scope) => self.term(t, arg_scope, depth),
            Fun::Def(def, def_scope) if def.args.is_empty() => {
                self.inline_depth += 1;
                if self.inline_depth > MAX_INLINE_DEPTH {
                    return Err("calls nested too deeply".into());
                }
                let slot = self.recs.len();
                self.recs.push(None);
                let body_sc = def_scope.push(Bind::Fun(def.name, 0, Rc::new(Fun::SelfCall(slot, depth))));
                let body = self.term(&def.body, &body_sc, depth)?;
                self.inline_depth -= 1;
                if contains_rec(&body, slot) {
                    self.recs[slot] = Some(body);
                    self.mk(Kind::Rec(slot))
                } else {
                    Ok(body)
                }
            }
            Fun::Def(def, def_scope) => {
                self.inline_depth += 1;
                if self.inline_depth > MAX_INLINE_DEPTH {
                    return Err("calls nested too deeply".into());
                }
                let mut body_sc =
                    def_scope.push(Bind::Fun(def.name, def.args.len(), Rc::new(Fun::Recursive)));
                let mut values = Vec::new();
                let mut level = depth;
                for (param, arg) in def.args.iter().zip(args) {
                    if param.starts_with('$') {
                        // Evaluated in the caller's scope, with the value
                        // arguments before it bound (at run time).
                        values.push(self.term(arg, sc, level)?);
                        body_sc = body_sc.push(Bind::Var(param, level));
                        level += 1;
                    } else {
                        body_sc = body_sc.push(Bind::Fun(param, 0, Rc::new(Fun::Arg(arg, sc.clone()))));
                    }
                }
                let body = self.term(&def.body, &body_sc, level)?;
                self.inline_depth -= 1;
                if values.is_empty() {
                    Ok(body)
                } else {
                    self.mk(Kind::Call(values, Box::new(body), depth))
                }
            }
        }
    }

    fn native<'s>(
        &mut self,
        name: &'s str,
        args: &'s [Term<&'s str>],
        sc: &Scope<'s>,
        depth: usize,
    ) -> C<Expr> {
        let Some((name, sig)) = self
            .natives
            .iter()
            .find(|(n, a)| *n == name && a.len() == args.len())
        else {
            return Err(format!("undefined {name}/{}", args.len()));
        };
        let name: &'static str = name;
        let kind = match (name, &sig[..], args) {
            ("error_empty", [], []) => Kind::ErrorEmpty,
            ("path", [false], [f]) => Kind::PathOf(Box::new(self.term(f, sc, depth)?)),
            ("first", [false], [f]) => Kind::First(Box::new(self.term(f, sc, depth)?)),
            ("_limit", [true, false], [n, f]) => Kind::Limit(
                Box::new(self.term(n, sc, depth)?),
                Box::new(self.term(f, sc, depth)?),
            ),
            ("_range", [true, true, true], [from, upto, by]) => Kind::Range(Box::new([
                self.term(from, sc, depth)?,
                self.term(upto, sc, depth)?,
                self.term(by, sc, depth)?,
            ])),
            ("sort_by" | "group_by" | "min_by_or_empty" | "max_by_or_empty", [false], [f]) => {
                let by = match name {
                    "sort_by" => By::Sort,
                    "group_by" => By::Group,
                    "min_by_or_empty" => By::Min,
                    _ => By::Max,
                };
                Kind::By(by, Box::new(self.term(f, sc, depth)?))
            }
            _ if sig.iter().all(|var| *var) => {
                let native = match natives::plain(name, args.len()) {
                    Some(p) => Native::Own(p),
                    None => Native::Jaq(self.bridge(name, args.len())?),
                };
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.term(a, sc, depth)?);
                }
                Kind::Native(native, values)
            }
            _ => return Err(format!("native {name} takes a filter")),
        };
        self.mk(kind)
    }

    fn bridge(&mut self, name: &'static str, arity: usize) -> C<Arc<Bridge>> {
        if let Some((_, b)) = self.bridges.iter().find(|(k, _)| *k == (name, arity)) {
            return Ok(b.clone());
        }
        let b = (self.bridge)(name, arity).ok_or_else(|| format!("no bridge to {name}"))?;
        self.bridges.push(((name, arity), b.clone()));
        Ok(b)
    }
}

/// Whether a term never reads its input (conservatively: literals,
/// variables, and paths, comparisons and arithmetic of those).
fn blind(kind: &Kind) -> bool {
    match kind {
        Kind::Lit(_) | Kind::Var(_) => true,
        Kind::Path(head, steps) => head.blind && steps.iter().all(|(p, _)| p.plain()),
        Kind::Math(l, _, r) | Kind::Cmp(l, _, r) | Kind::Alt(l, r) | Kind::Logic(l, _, r) => {
            l.blind && r.blind
        }
        // The right side reads the left side's outputs.
        Kind::Pipe(l, _) => l.blind,
        Kind::Neg(f) => f.blind,
        _ => false,
    }
}

/// Whether a term always gives exactly one output or an error.
fn single(kind: &Kind) -> bool {
    match kind {
        Kind::Id | Kind::Lit(_) | Kind::Var(_) | Kind::ToString | Kind::ErrorEmpty | Kind::Arr(_) => true,
        Kind::Str(parts) => parts.iter().all(|p| p.single),
        Kind::Obj(kvs) => kvs.iter().all(|(k, v)| k.single && v.single),
        Kind::Neg(f) => f.single,
        Kind::Pipe(l, r) | Kind::Bind(l, r, _) | Kind::Alt(l, r) | Kind::Logic(l, _, r) => {
            l.single && r.single
        }
        Kind::Math(l, _, r) | Kind::Cmp(l, _, r) => l.single && r.single,
        Kind::Call(args, body, _) => args.iter().all(|a| a.single) && body.single,
        Kind::Ite(c, t, e) => c.single && t.single && e.single,
        Kind::Try(body, Some(catch)) => body.single && catch.single,
        Kind::Path(head, parts) => {
            head.single
                && parts.iter().all(|(part, opt)| {
                    matches!(opt, Opt::Essential)
                        && match part {
                            Part::Index(i) => i.single,
                            Part::Iter => false,
                            Part::Range(from, upto) => {
                                from.as_ref().is_none_or(|e| e.single)
                                    && upto.as_ref().is_none_or(|e| e.single)
                            }
                        }
                })
        }
        Kind::Assign(p, f) | Kind::UpdateMath(p, _, f) | Kind::UpdateAlt(p, f) => {
            f.single && update_single(p, true)
        }
        Kind::Update(p, f) => update_single(p, f.single),
        Kind::Reduce(fold) => fold.init.single && fold.update.single,
        Kind::Native(Native::Own(p), args) => {
            !matches!(p, natives::Plain::Many0(_)) && args.iter().all(|a| a.single)
        }
        Kind::By(by, _) => matches!(by, By::Sort | By::Group),
        Kind::Try(_, None)
        | Kind::Rec(_)
        | Kind::BindPat(..)
        | Kind::Comma(..)
        | Kind::Foreach(_)
        | Kind::Label(..)
        | Kind::Break(_)
        | Kind::Recurse
        | Kind::First(_)
        | Kind::Limit(..)
        | Kind::PathOf(_)
        | Kind::Range(_)
        | Kind::Native(Native::Jaq(_), _) => false,
    }
}

/// Whether updating through path `p` with an update function that gives
/// exactly one output (`f_single`) gives exactly one output or an error.
pub(super) fn update_single(p: &Expr, f_single: bool) -> bool {
    match &p.kind {
        Kind::Id | Kind::Recurse => f_single,
        Kind::Path(head, parts) => {
            parts.iter().all(|(part, _)| match part {
                Part::Index(i) => i.single,
                Part::Iter => true,
                Part::Range(from, upto) => {
                    from.as_ref().is_none_or(|e| e.single) && upto.as_ref().is_none_or(|e| e.single)
                }
            }) && update_single(head, true)
        }
        Kind::Pipe(l, r) => update_single(l, update_single(r, f_single)),
        Kind::Bind(src, body, _) => src.single && update_single(body, f_single),
        Kind::Call(args, body, _) => args.iter().all(|a| a.single) && update_single(body, f_single),
        Kind::Ite(c, t, e) => c.single && update_single(t, f_single) && update_single(e, f_single),
        Kind::Alt(l, r) => update_single(l, f_single) && update_single(r, f_single),
        Kind::Limit(n, _) => n.single,
        Kind::Native(_, args) => args.iter().all(|a| a.single),
        Kind::Range(args) => args.iter().all(|a| a.single),
        Kind::Comma(..)
        | Kind::Break(_)
        | Kind::Reduce(_)
        | Kind::Foreach(_)
        | Kind::BindPat(..)
        | Kind::Rec(_) => false,
        // Everything else is not a path: updating it is an error.
        _ => true,
    }
}

/// Whether `e` calls recursive body `slot`.
fn contains_rec(e: &Expr, slot: usize) -> bool {
    fn any<'e>(mut es: impl Iterator<Item = &'e Expr>, slot: usize) -> bool {
        es.any(|e| contains_rec(e, slot))
    }
    let opt = |e: &Option<Expr>| e.as_ref().is_some_and(|e| contains_rec(e, slot));
    let pat = |p: &Pat| contains_rec_pat(p, slot);
    match &e.kind {
        Kind::Rec(s) => *s == slot,
        Kind::Id
        | Kind::Lit(_)
        | Kind::Var(_)
        | Kind::ToString
        | Kind::Break(_)
        | Kind::Recurse
        | Kind::ErrorEmpty => false,
        Kind::Str(es) => any(es.iter(), slot),
        Kind::Obj(kvs) => any(kvs.iter().flat_map(|(k, v)| [k, v]), slot),
        Kind::Arr(f)
        | Kind::Neg(f)
        | Kind::First(f)
        | Kind::PathOf(f)
        | Kind::Label(f, _)
        | Kind::By(_, f) => contains_rec(f, slot),
        Kind::Pipe(l, r)
        | Kind::Bind(l, r, _)
        | Kind::Comma(l, r)
        | Kind::Alt(l, r)
        | Kind::Logic(l, _, r)
        | Kind::Math(l, _, r)
        | Kind::Cmp(l, _, r)
        | Kind::Assign(l, r)
        | Kind::Update(l, r)
        | Kind::UpdateMath(l, _, r)
        | Kind::UpdateAlt(l, r)
        | Kind::Limit(l, r) => contains_rec(l, slot) || contains_rec(r, slot),
        Kind::BindPat(l, p, r, _) => contains_rec(l, slot) || pat(p) || contains_rec(r, slot),
        Kind::Call(args, body, _) => any(args.iter(), slot) || contains_rec(body, slot),
        Kind::Ite(c, t, e) => contains_rec(c, slot) || contains_rec(t, slot) || contains_rec(e, slot),
        Kind::Try(b, c) => contains_rec(b, slot) || c.as_ref().is_some_and(|c| contains_rec(c, slot)),
        Kind::Path(head, parts) => {
            contains_rec(head, slot)
                || parts.iter().any(|(p, _)| match p {
                    Part::Index(i) => contains_rec(i, slot),
                    Part::Iter => false,
                    Part::Range(from, upto) => opt(from) || opt(upto),
                })
        }
        Kind::Reduce(f) | Kind::Foreach(f) => {
            contains_rec(&f.xs, slot)
                || pat(&f.pat)
                || contains_rec(&f.init, slot)
                || contains_rec(&f.update, slot)
                || opt(&f.extract)
        }
        Kind::Range(args) => any(args.iter(), slot),
        Kind::Native(_, args) => any(args.iter(), slot),
    }
}

fn contains_rec_pat(p: &Pat, slot: usize) -> bool {
    match p {
        Pat::Var => false,
        Pat::Idx(entries) => entries
            .iter()
            .any(|(k, p)| contains_rec(k, slot) || contains_rec_pat(p, slot)),
    }
}
