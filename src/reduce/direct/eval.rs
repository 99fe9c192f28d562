//! Evaluation of [`Expr`]: outputs (`run`, and `eval1` for a term with
//! exactly one), updates (`update`, as jaq's `TermId::update`) and paths
//! (`paths`, as jaq's `TermId::paths`).
//!
//! Outputs are pushed into callbacks in the order jaq yields them. jaq's
//! output streams go on after an error, but every consumer here stops at
//! the first one (as every consumer in jaq does, directly or through its
//! own consumer), so an error simply unwinds. A callback that runs the
//! rest of the program is called with the variable stack as the rest of
//! the program expects it: a binder takes its variable off while it
//! passes an output on.

use super::{By, Env, Error, Expr, Flow, Fold, Kind, Native, Out, Part, Pat, R};
use crate::reduce::natives::Plain;
use crate::value::jaq::{self as vj, Vector, arr};
use crate::value::{PObj, PVal};
use jaq_core::ValT;
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::Opt;
use std::cmp::Ordering;

/// Where paths go: the value at the path, and the path.
type POut<'o> = &'o mut dyn FnMut(&mut Env, PVal, &mut Vec<PVal>) -> R;

/// The update function of an update, as jaq passes it down a path.
///
/// It is a term (or the rest of an update) compiled where the update
/// starts, so it runs with the variables of that place: the path may call
/// it from inside bindings of its own (`(. as $y | .a) |= f`), whose
/// variables are set aside meanwhile.
pub(super) struct Upd<'a> {
    kind: UpdKind<'a>,
    /// The height of the variable stack where the update function belongs.
    depth: usize,
}

enum UpdKind<'a> {
    /// `|= f`: the outputs of `f` on the old value.
    Run(&'a Expr),
    /// `= $y`
    Const(&'a PVal),
    /// `op= $y`
    Math(Math, &'a PVal),
    /// `//= $y`
    Alt(&'a PVal),
    /// An update further down a path (`l | r` updates `l` with `r`'s
    /// update, ...).
    Then(&'a dyn Fn(&mut Env, PVal, Out) -> R),
}

impl<'a> Upd<'a> {
    /// An update function belonging where `env` is now.
    fn new(kind: UpdKind<'a>, env: &Env) -> Upd<'a> {
        Upd {
            kind,
            depth: env.vars.len(),
        }
    }

    fn then(f: &'a dyn Fn(&mut Env, PVal, Out) -> R, env: &Env) -> Upd<'a> {
        Upd::new(UpdKind::Then(f), env)
    }

    /// All outputs of the update function on `v`.
    fn all(&self, env: &mut Env, v: PVal, out: Out) -> R {
        match self.kind {
            UpdKind::Run(_) | UpdKind::Then(_) if env.vars.len() != self.depth => {
                let depth = self.depth;
                let saved = env.vars.split_off(depth);
                let r = self.all_here(env, v, &mut |env, y| {
                    let mine = env.vars.split_off(depth);
                    env.vars.extend(saved.iter().cloned());
                    let r = out(env, y);
                    env.vars.truncate(depth);
                    env.vars.extend(mine);
                    r
                });
                env.vars.truncate(depth);
                env.vars.extend(saved);
                r
            }
            _ => self.all_here(env, v, out),
        }
    }

    fn all_here(&self, env: &mut Env, v: PVal, out: Out) -> R {
        match self.kind {
            UpdKind::Run(f) => f.run(env, v, out),
            UpdKind::Then(f) => f(env, v, out),
            _ => {
                let y = self.one(v)?;
                out(env, y)
            }
        }
    }

    /// The first output of the update function on `v` (`None`: no output).
    fn first(&self, env: &mut Env, v: PVal) -> Result<Option<PVal>, Flow> {
        match self.kind {
            UpdKind::Run(_) | UpdKind::Then(_) if env.vars.len() != self.depth => {
                let saved = env.vars.split_off(self.depth);
                let r = self.first_here(env, v);
                env.vars.truncate(self.depth);
                env.vars.extend(saved);
                r
            }
            _ => self.first_here(env, v),
        }
    }

    fn first_here(&self, env: &mut Env, v: PVal) -> Result<Option<PVal>, Flow> {
        match self.kind {
            UpdKind::Run(f) if f.single => f.eval1(env, v).map(Some),
            UpdKind::Run(_) | UpdKind::Then(_) => first(env, |env, out| self.all_here(env, v, out)),
            _ => self.one(v).map(Some),
        }
    }

    /// The output of a constant update function.
    fn one(&self, v: PVal) -> Result<PVal, Flow> {
        Ok(match self.kind {
            UpdKind::Const(y) => y.clone(),
            UpdKind::Math(op, y) => op.run(v, y.clone())?,
            UpdKind::Alt(y) => {
                if v.as_bool() {
                    v
                } else {
                    y.clone()
                }
            }
            UpdKind::Run(_) | UpdKind::Then(_) => return Err(Flow::Bail),
        })
    }
}

/// The first output of `run`, stopping it there.
fn first(env: &mut Env, run: impl FnOnce(&mut Env, Out) -> R) -> Result<Option<PVal>, Flow> {
    let tok = env.token();
    let mut slot = None;
    match run(env, &mut |_, y| {
        slot = Some(y);
        Err(Flow::Stop(tok))
    }) {
        Ok(()) => Ok(None),
        Err(Flow::Stop(t)) if t == tok => Ok(slot),
        Err(f) => Err(f),
    }
}

/// The output of `run` for a step that should give at most one: a second
/// output, or an error (or `break`) after the first, is [`Flow::Bail`]
/// (jaq would go on with the first output before meeting it).
fn one_or_none(env: &mut Env, run: impl FnOnce(&mut Env, Out) -> R) -> Result<Option<PVal>, Flow> {
    let mut slot = None;
    let r = run(env, &mut |_, y| {
        if slot.is_some() {
            return Err(Flow::Bail);
        }
        slot = Some(y);
        Ok(())
    });
    match r {
        Ok(()) => Ok(slot),
        Err(_) if slot.is_some() => Err(Flow::Bail),
        Err(e) => Err(e),
    }
}

/// `out(y)` with the variables from `level` up taken off (the binder's,
/// which the rest of the program does not see).
fn pass(env: &mut Env, level: usize, y: PVal, out: Out) -> R {
    if env.vars.len() == level + 1 {
        let x = env.vars.pop();
        let r = out(env, y);
        env.vars.extend(x);
        r
    } else {
        let saved = env.vars.split_off(level);
        let r = out(env, y);
        env.vars.extend(saved);
        r
    }
}

/// [`pass`] for paths.
fn pass_path(env: &mut Env, level: usize, y: PVal, path: &mut Vec<PVal>, out: POut) -> R {
    let saved = env.vars.split_off(level);
    let r = out(env, y, path);
    env.vars.extend(saved);
    r
}

fn path_error(v: PVal) -> Flow {
    Flow::Err(Error::path_expr(v))
}

/// A path step with its index values.
#[derive(Clone)]
enum Key {
    Index(PVal),
    Iter,
    Range(Option<PVal>, Option<PVal>),
}

impl Expr {
    /// What to run this term on when its input is `v`: `v`, or null for a
    /// term that never reads its input (so `v` is not cloned).
    #[inline]
    fn input(&self, v: &PVal) -> PVal {
        if self.blind { PVal::Null } else { v.clone() }
    }

    /// Evaluate a term with exactly one output (`self.single`).
    pub(super) fn eval1(&self, env: &mut Env, v: PVal) -> Result<PVal, Flow> {
        debug_assert!(self.single);
        env.check_stack()?;
        Ok(match &self.kind {
            Kind::Id => v,
            Kind::Lit(x) => x.clone(),
            Kind::Var(l) => env.vars[*l].clone(),
            Kind::ToString => v.into_string(),
            Kind::ErrorEmpty => return Err(Flow::Err(Error::new(v))),
            Kind::Arr(f) => {
                let mut items = Vector::new();
                f.run(env, v, &mut |_, x| {
                    items.push_back(x);
                    Ok(())
                })?;
                arr(items)
            }
            Kind::Str(parts) => {
                let mut vals = Vec::with_capacity(parts.len());
                for p in parts {
                    vals.push(p.eval1(env, p.input(&v))?);
                }
                concat(vals)?
            }
            Kind::Obj(kvs) => {
                let mut o = PObj::new();
                for (k, x) in kvs {
                    let k = k.eval1(env, k.input(&v))?;
                    let x = x.eval1(env, x.input(&v))?;
                    vj::step()?;
                    o.insert(vj::object_key(k)?, x);
                }
                PVal::Obj(o)
            }
            Kind::Neg(f) => (-f.eval1(env, v)?)?,
            Kind::Pipe(l, r) => {
                let x = l.eval1(env, v)?;
                r.eval1(env, x)?
            }
            Kind::Bind(src, body, level) => {
                let x = src.eval1(env, src.input(&v))?;
                env.vars.push(x);
                let r = body.eval1(env, v);
                env.vars.truncate(*level);
                r?
            }
            Kind::Call(args, body, level) => {
                for a in args {
                    match a.eval1(env, a.input(&v)) {
                        Ok(x) => env.vars.push(x),
                        Err(e) => {
                            env.vars.truncate(*level);
                            return Err(e);
                        }
                    }
                }
                let r = body.eval1(env, v);
                env.vars.truncate(*level);
                r?
            }
            Kind::Alt(l, r) => {
                let x = l.eval1(env, l.input(&v))?;
                if x.as_bool() { x } else { r.eval1(env, v)? }
            }
            Kind::Logic(l, stop, r) => {
                let x = l.eval1(env, l.input(&v))?;
                if x.as_bool() == *stop {
                    PVal::Bool(*stop)
                } else {
                    PVal::Bool(r.eval1(env, v)?.as_bool())
                }
            }
            Kind::Math(l, op, r) => {
                let x = l.eval1(env, l.input(&v))?;
                let y = r.eval1(env, v)?;
                op.run(x, y)?
            }
            Kind::Cmp(l, op, r) => {
                if let Some(b) = cmp_plain(l, *op, r, &env.vars) {
                    return Ok(PVal::Bool(b?));
                }
                let x = l.eval1(env, l.input(&v))?;
                let y = r.eval1(env, v)?;
                PVal::Bool(op.run(&x, &y))
            }
            Kind::Ite(c, t, e) => {
                if c.eval1(env, c.input(&v))?.as_bool() {
                    t.eval1(env, v)?
                } else {
                    e.eval1(env, v)?
                }
            }
            Kind::Try(body, Some(catch)) => match body.eval1(env, v) {
                Err(Flow::Err(e)) => catch.eval1(env, e.into_val())?,
                r => r?,
            },
            Kind::Path(head, steps) if steps.iter().all(|(p, _)| p.plain()) => match &head.kind {
                Kind::Var(l) => index_plain(&env.vars[*l], steps, &env.vars)?,
                Kind::Id => index_plain(&v, steps, &env.vars)?,
                _ => {
                    let y = head.eval1(env, v)?;
                    index_plain(&y, steps, &env.vars)?
                }
            },
            Kind::Path(head, steps) => {
                let mut keys = Vec::with_capacity(steps.len());
                let y = head.eval1(env, head.input(&v))?;
                for (part, _) in steps {
                    keys.push(part.key1(env, &v)?);
                }
                drop(v);
                let mut y = y;
                for key in keys {
                    y = match key {
                        Key::Index(k) => y.index(&k)?,
                        Key::Range(from, upto) => y.range(from.as_ref()..upto.as_ref())?,
                        Key::Iter => return Err(Flow::Bail),
                    };
                }
                y
            }
            Kind::Assign(p, f) => {
                let y = f.eval1(env, f.input(&v))?;
                p.update1(env, v, &Upd::new(UpdKind::Const(&y), env))?
            }
            Kind::UpdateMath(p, op, f) => {
                let y = f.eval1(env, f.input(&v))?;
                p.update1(env, v, &Upd::new(UpdKind::Math(*op, &y), env))?
            }
            Kind::UpdateAlt(p, f) => {
                let y = f.eval1(env, f.input(&v))?;
                p.update1(env, v, &Upd::new(UpdKind::Alt(&y), env))?
            }
            Kind::Update(p, f) => p.update1(env, v, &Upd::new(UpdKind::Run(f), env))?,
            Kind::Reduce(fold) => {
                let mut acc = fold.init.eval1(env, fold.init.input(&v))?;
                fold.xs.run(env, v, &mut |env, x| {
                    bind_pat(&fold.pat, env, x, &mut |env| {
                        acc = fold.update.eval1(env, std::mem::take(&mut acc))?;
                        Ok(())
                    })
                })?;
                acc
            }
            Kind::Native(Native::Own(p), args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(a.eval1(env, a.input(&v))?);
                }
                call_plain(*p, v, vals)?
            }
            Kind::By(by, f) => by_filter(*by, f, env, v)?.ok_or(Flow::Bail)?,
            _ => return Err(Flow::Bail),
        })
    }

    /// Push every output of the term on `v` to `out`.
    pub(super) fn run(&self, env: &mut Env, v: PVal, out: Out) -> R {
        if self.single {
            let y = self.eval1(env, v)?;
            return out(env, y);
        }
        env.check_stack()?;
        match &self.kind {
            Kind::Str(parts) => {
                if !all_have_items(parts.iter(), env, &v)? {
                    return Ok(());
                }
                each_combo(parts, env, &v, &mut Vec::new(), &mut |env, vals| {
                    let s = concat(vals.to_vec())?;
                    out(env, s)
                })
            }
            Kind::Obj(kvs) => {
                if !all_have_items(kvs.iter().flat_map(|(k, x)| [k, x]), env, &v)? {
                    return Ok(());
                }
                self.obj(kvs, env, &v, PObj::new(), out)
            }
            Kind::Neg(f) => f.run(env, v, &mut |env, x| out(env, (-x)?)),
            Kind::Pipe(l, r) => l.run(env, v, &mut |env, x| r.run(env, x, out)),
            Kind::Bind(src, body, level) => {
                let level = *level;
                src.run(env, v.clone(), &mut |env, x| {
                    env.vars.push(x);
                    let r = body.run(env, v.clone(), &mut |env, y| pass(env, level, y, out));
                    env.vars.truncate(level);
                    r
                })
            }
            Kind::BindPat(src, pat, body, level) => {
                let level = *level;
                src.run(env, v.clone(), &mut |env, x| {
                    bind_pat(pat, env, x, &mut |env| {
                        body.run(env, v.clone(), &mut |env, y| pass(env, level, y, out))
                    })
                })
            }
            Kind::Call(args, body, level) => {
                let level = *level;
                bind_args(args, env, &v, &mut |env| {
                    body.run(env, v.clone(), &mut |env, y| pass(env, level, y, out))
                })
            }
            Kind::Comma(l, r) => {
                l.run(env, v.clone(), out)?;
                r.run(env, v, out)
            }
            Kind::Alt(l, r) => {
                let mut any = false;
                l.run(env, v.clone(), &mut |env, x| {
                    if x.as_bool() {
                        any = true;
                        out(env, x)
                    } else {
                        Ok(())
                    }
                })?;
                if any { Ok(()) } else { r.run(env, v, out) }
            }
            Kind::Logic(l, stop, r) => l.run(env, v.clone(), &mut |env, x| {
                if x.as_bool() == *stop {
                    out(env, PVal::Bool(*stop))
                } else {
                    r.run(env, v.clone(), &mut |env, y| out(env, PVal::Bool(y.as_bool())))
                }
            }),
            Kind::Math(l, op, r) => {
                if !all_have_items([&**r].into_iter(), env, &v)? {
                    return Ok(());
                }
                l.run(env, v.clone(), &mut |env, x| {
                    r.run(env, v.clone(), &mut |env, y| out(env, op.run(x.clone(), y)?))
                })
            }
            Kind::Cmp(l, op, r) => {
                if !all_have_items([&**r].into_iter(), env, &v)? {
                    return Ok(());
                }
                l.run(env, v.clone(), &mut |env, x| {
                    r.run(env, v.clone(), &mut |env, y| out(env, PVal::Bool(op.run(&x, &y))))
                })
            }
            Kind::Ite(c, t, e) => c.run(env, v.clone(), &mut |env, x| {
                if x.as_bool() { t } else { e }.run(env, v.clone(), out)
            }),
            Kind::Try(body, catch) => {
                let tok = env.token();
                let r = body.run(env, v, &mut |env, x| {
                    out(env, x).map_err(|f| match f {
                        Flow::Err(e) => Flow::Through(tok, e),
                        f => f,
                    })
                });
                match r {
                    Err(Flow::Through(t, e)) if t == tok => Err(Flow::Err(e)),
                    Err(Flow::Err(e)) => match catch {
                        Some(c) => c.run(env, e.into_val(), out),
                        None => Ok(()),
                    },
                    r => r,
                }
            }
            Kind::Path(head, steps) => {
                let input = v.clone();
                head.run(env, v, &mut |env, y| {
                    key_combos(steps, env, &input, &mut |env, keys| {
                        walk(steps, keys, env, y.clone(), out)
                    })
                })
            }
            Kind::Assign(p, f) => f.run(env, v.clone(), &mut |env, y| {
                p.update(env, v.clone(), &Upd::new(UpdKind::Const(&y), env), out)
            }),
            Kind::UpdateMath(p, op, f) => f.run(env, v.clone(), &mut |env, y| {
                p.update(env, v.clone(), &Upd::new(UpdKind::Math(*op, &y), env), out)
            }),
            Kind::UpdateAlt(p, f) => f.run(env, v.clone(), &mut |env, y| {
                p.update(env, v.clone(), &Upd::new(UpdKind::Alt(&y), env), out)
            }),
            Kind::Update(p, f) => p.update(env, v, &Upd::new(UpdKind::Run(f), env), out),
            Kind::Reduce(fold) => fold.init.run(env, v.clone(), &mut |env, init| match fold_run(
                fold, env, &v, init, None,
            ) {
                Ok(Some(acc)) => out(env, acc),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }),
            Kind::Foreach(fold) => fold.init.run(env, v.clone(), &mut |env, init| {
                fold_run(fold, env, &v, init, Some(&mut *out)).map(|_| ())
            }),
            Kind::Label(body, level) => {
                let level = *level;
                let tok = env.token();
                env.vars.push(PVal::from(tok as usize));
                let r = body.run(env, v, &mut |env, y| pass(env, level, y, out));
                env.vars.truncate(level);
                match r {
                    Err(Flow::Stop(t)) if t == tok => Ok(()),
                    r => r,
                }
            }
            Kind::Break(level) => Err(break_to(env, *level)),
            Kind::Recurse => recurse(env, v, out),
            Kind::First(f) => {
                let tok = env.token();
                match f.run(env, v, &mut |env, x| {
                    out(env, x)?;
                    Err(Flow::Stop(tok))
                }) {
                    Err(Flow::Stop(t)) if t == tok => Ok(()),
                    r => r,
                }
            }
            Kind::Limit(n, f) => n.run(env, v.clone(), &mut |env, n| {
                limit(env, n, &mut |env, out| f.run(env, v.clone(), out), out)
            }),
            Kind::PathOf(f) => f.paths(env, v, &mut Vec::new(), &mut |env, _, p| {
                out(env, arr(p.iter().cloned().collect()))
            }),
            Kind::Range(args) => each_combo(&args[..], env, &v, &mut Vec::new(), &mut |env, vals| {
                range(env, &vals[0], &vals[1], &vals[2], out)
            }),
            Kind::Native(native, args) => {
                each_combo(args, env, &v, &mut Vec::new(), &mut |env, vals| match native {
                    Native::Own(Plain::Many0(f)) => {
                        for y in f(v.clone())? {
                            out(env, y)?;
                        }
                        Ok(())
                    }
                    Native::Own(p) => {
                        let y = call_plain(*p, v.clone(), vals.to_vec())?;
                        out(env, y)
                    }
                    Native::Jaq(b) => b.run(v.clone(), vals, &mut |y| out(env, y)),
                })
            }
            Kind::Rec(slot) => {
                let recs = env.recs;
                env.enter_rec()?;
                let r = recs[*slot].run(env, v, out);
                env.rec_depth -= 1;
                r
            }
            Kind::By(by, f) => match by_filter(*by, f, env, v)? {
                Some(y) => out(env, y),
                None => Ok(()),
            },
            // Single terms are evaluated above.
            _ => Err(Flow::Bail),
        }
    }

    /// An object construction with generators: entries from `kvs` on.
    fn obj(&self, kvs: &[(Expr, Expr)], env: &mut Env, v: &PVal, acc: PObj, out: Out) -> R {
        let Some(((k, x), rest)) = kvs.split_first() else {
            return out(env, PVal::Obj(acc));
        };
        k.run(env, v.clone(), &mut |env, k| {
            x.run(env, v.clone(), &mut |env, x| {
                vj::step()?;
                let mut acc = acc.clone();
                acc.insert(vj::object_key(k.clone())?, x);
                self.obj(rest, env, v, acc, out)
            })
        })
    }

    /// The single output of an update that has exactly one.
    fn update1(&self, env: &mut Env, v: PVal, f: &Upd) -> Result<PVal, Flow> {
        if let Kind::Path(head, steps) = &self.kind
            && matches!(head.kind, Kind::Id)
        {
            if steps.iter().all(|(p, _)| p.plain()) {
                return update_plain(steps, env, v, f);
            }
            if steps.iter().all(|(p, _)| p.single()) {
                let mut keys = Vec::with_capacity(steps.len());
                for (part, _) in steps {
                    keys.push(part.key1(env, &v)?);
                }
                return update_steps(steps, &keys, env, v, f);
            }
        }
        let mut slot = None;
        self.update(env, v, f, &mut |_, y| {
            slot = Some(y);
            Ok(())
        })?;
        slot.ok_or(Flow::Bail)
    }

    /// Push every output of `v | self |= f` (with `f` as given) to `out`.
    pub(super) fn update(&self, env: &mut Env, v: PVal, f: &Upd, out: Out) -> R {
        env.check_stack()?;
        match &self.kind {
            Kind::Id => f.all(env, v, out),
            Kind::Path(head, steps) => {
                let input = v.clone();
                // All paths the index terms give, in jaq's order; an error
                // ends the list.
                let mut paths: Vec<Result<Vec<Key>, Error>> = Vec::new();
                let r = key_combos(steps, env, &input, &mut |_, keys| {
                    paths.push(Ok(keys.to_vec()));
                    Ok(())
                });
                drop(input);
                match r {
                    Ok(()) => {}
                    Err(Flow::Err(e)) => paths.push(Err(e)),
                    // jaq would meet it only when updating there.
                    Err(_) => return Err(Flow::Bail),
                }
                let at_paths = |env: &mut Env, mut w: PVal, out: Out| {
                    for keys in &paths {
                        match keys {
                            Ok(keys) => w = update_steps(steps, keys, env, w, f)?,
                            Err(e) => return Err(Flow::Err(e.clone())),
                        }
                    }
                    out(env, w)
                };
                match head.kind {
                    Kind::Id => at_paths(env, v, out),
                    _ => head.update(env, v, &Upd::then(&at_paths, env), out),
                }
            }
            Kind::Pipe(l, r) => {
                let then = |env: &mut Env, w, out: Out| r.update(env, w, f, out);
                l.update(env, v, &Upd::then(&then, env), out)
            }
            Kind::Comma(l, r) => l.update(env, v, f, &mut |env, w| r.update(env, w, f, out)),
            Kind::Bind(src, body, level) => {
                let level = *level;
                if src.single {
                    let x = src.eval1(env, src.input(&v))?;
                    env.vars.push(x);
                    let r = body.update(env, v, f, &mut |env, y| pass(env, level, y, out));
                    env.vars.truncate(level);
                    return r;
                }
                let input = v.clone();
                fold_updates(env, v, out, |env, step| {
                    src.run(env, input.clone(), &mut |env, x| {
                        env.vars.push(x);
                        let r = step(env, &mut |env, acc, out| body.update(env, acc, f, out));
                        env.vars.truncate(level);
                        r
                    })
                })
            }
            Kind::BindPat(src, pat, body, _) => {
                let input = v.clone();
                fold_updates(env, v, out, |env, step| {
                    src.run(env, input.clone(), &mut |env, x| {
                        bind_pat(pat, env, x, &mut |env| {
                            step(env, &mut |env, acc, out| body.update(env, acc, f, out))
                        })
                    })
                })
            }
            Kind::Reduce(fold) => {
                let level = fold.level;
                let mut binds = Vec::new();
                let r = fold.xs.run(env, v.clone(), &mut |env, x| {
                    bind_pat(&fold.pat, env, x, &mut |env| {
                        binds.push(env.vars[level..].to_vec());
                        Ok(())
                    })
                });
                let err = match r {
                    Ok(()) => None,
                    Err(Flow::Err(e)) => Some(e),
                    // jaq would meet it only when updating there.
                    Err(_) => return Err(Flow::Bail),
                };
                let rest =
                    |env: &mut Env, w, out: Out| fold_update(fold, &binds, err.as_ref(), 0, env, w, f, out);
                fold.init.update(env, v, &Upd::then(&rest, env), out)
            }
            Kind::Call(args, body, level) => {
                let level = *level;
                if args.iter().all(|a| a.single) {
                    for a in args {
                        match a.eval1(env, a.input(&v)) {
                            Ok(x) => env.vars.push(x),
                            Err(e) => {
                                env.vars.truncate(level);
                                return Err(e);
                            }
                        }
                    }
                    let r = body.update(env, v, f, &mut |env, y| pass(env, level, y, out));
                    env.vars.truncate(level);
                    return r;
                }
                let input = v.clone();
                fold_updates(env, v, out, |env, step| {
                    bind_args(args, env, &input, &mut |env| {
                        step(env, &mut |env, acc, out| body.update(env, acc, f, out))
                    })
                })
            }
            Kind::Ite(c, t, e) => {
                if c.single {
                    let x = c.eval1(env, c.input(&v))?;
                    return if x.as_bool() { t } else { e }.update(env, v, f, out);
                }
                let input = v.clone();
                fold_updates(env, v, out, |env, step| {
                    c.run(env, input.clone(), &mut |env, x| {
                        let branch = if x.as_bool() { t } else { e };
                        step(env, &mut |env, acc, out| branch.update(env, acc, f, out))
                    })
                })
            }
            Kind::Alt(l, r) => {
                let chosen = if any_true(l, env, v.clone())? { l } else { r };
                chosen.update(env, v, f, out)
            }
            Kind::Recurse => recurse_update(env, v, f, out),
            Kind::Break(level) => Err(break_to(env, *level)),
            Kind::Limit(n, _) => {
                n.run(env, v.clone(), &mut |_, _| Err(path_error(v.clone())))?;
                out(env, v)
            }
            Kind::Native(_, args) => {
                each_combo(args, env, &v, &mut Vec::new(), &mut |_, _| {
                    Err(path_error(v.clone()))
                })?;
                out(env, v)
            }
            Kind::Range(args) => {
                each_combo(&args[..], env, &v, &mut Vec::new(), &mut |_, _| {
                    Err(path_error(v.clone()))
                })?;
                out(env, v)
            }
            Kind::Foreach(_) => Err(Flow::Bail),
            Kind::Rec(slot) => {
                let recs = env.recs;
                env.enter_rec()?;
                let r = recs[*slot].update(env, v, f, out);
                env.rec_depth -= 1;
                r
            }
            // Not a path.
            _ => Err(path_error(v)),
        }
    }

    /// Push every path of the term on `v` (at `path`) to `out`.
    pub(super) fn paths(&self, env: &mut Env, v: PVal, path: &mut Vec<PVal>, out: POut) -> R {
        env.check_stack()?;
        match &self.kind {
            Kind::Id => out(env, v, path),
            Kind::Path(head, steps) => {
                let input = v.clone();
                head.paths(env, v, path, &mut |env, y, path| {
                    key_combos(steps, env, &input, &mut |env, keys| {
                        walk_paths(steps, keys, env, y.clone(), path, out)
                    })
                })
            }
            Kind::Pipe(l, r) => l.paths(env, v, path, &mut |env, y, path| r.paths(env, y, path, out)),
            Kind::Comma(l, r) => {
                l.paths(env, v.clone(), path, out)?;
                r.paths(env, v, path, out)
            }
            Kind::Bind(src, body, level) => {
                let level = *level;
                src.run(env, v.clone(), &mut |env, x| {
                    env.vars.push(x);
                    let r = body.paths(env, v.clone(), path, &mut |env, y, path| {
                        pass_path(env, level, y, path, out)
                    });
                    env.vars.truncate(level);
                    r
                })
            }
            Kind::BindPat(src, pat, body, level) => {
                let level = *level;
                src.run(env, v.clone(), &mut |env, x| {
                    bind_pat(pat, env, x, &mut |env| {
                        body.paths(env, v.clone(), path, &mut |env, y, path| {
                            pass_path(env, level, y, path, out)
                        })
                    })
                })
            }
            Kind::Reduce(fold) | Kind::Foreach(fold) => {
                let foreach = matches!(self.kind, Kind::Foreach(_));
                fold.init.paths(env, v.clone(), path, &mut |env, i, p| {
                    fold_paths(fold, foreach, env, &v, (i, p.clone()), out)
                })
            }
            Kind::Call(args, body, level) => {
                let level = *level;
                bind_args(args, env, &v, &mut |env| {
                    body.paths(env, v.clone(), path, &mut |env, y, path| {
                        pass_path(env, level, y, path, out)
                    })
                })
            }
            Kind::Alt(l, r) => {
                let chosen = if any_true(l, env, v.clone())? { l } else { r };
                chosen.paths(env, v, path, out)
            }
            Kind::Ite(c, t, e) => c.run(env, v.clone(), &mut |env, x| {
                if x.as_bool() { t } else { e }.paths(env, v.clone(), path, out)
            }),
            Kind::Try(body, catch) => {
                let tok = env.token();
                let r = body.paths(env, v, path, &mut |env, y, path| {
                    out(env, y, path).map_err(|f| match f {
                        Flow::Err(e) => Flow::Through(tok, e),
                        f => f,
                    })
                });
                match r {
                    Err(Flow::Through(t, e)) if t == tok => Err(Flow::Err(e)),
                    Err(Flow::Err(e)) => match catch {
                        Some(c) => c.run(env, e.into_val(), &mut |_, x| Err(path_error(x))),
                        None => Ok(()),
                    },
                    r => r,
                }
            }
            Kind::Label(body, level) => {
                let level = *level;
                let tok = env.token();
                env.vars.push(PVal::from(tok as usize));
                let r = body.paths(env, v, path, &mut |env, y, path| {
                    pass_path(env, level, y, path, out)
                });
                env.vars.truncate(level);
                match r {
                    Err(Flow::Stop(t)) if t == tok => Ok(()),
                    r => r,
                }
            }
            Kind::Break(level) => Err(break_to(env, *level)),
            Kind::Recurse => recurse_paths(env, v, path, out),
            Kind::First(f) => {
                let tok = env.token();
                match f.paths(env, v, path, &mut |env, y, path| {
                    out(env, y, path)?;
                    Err(Flow::Stop(tok))
                }) {
                    Err(Flow::Stop(t)) if t == tok => Ok(()),
                    r => r,
                }
            }
            Kind::Limit(n, f) => n.run(env, v.clone(), &mut |env, n| {
                limit_paths(env, n, f, &v, path, out)
            }),
            Kind::Native(_, args) => each_combo(args, env, &v, &mut Vec::new(), &mut |_, _| {
                Err(path_error(v.clone()))
            }),
            Kind::Range(args) => each_combo(&args[..], env, &v, &mut Vec::new(), &mut |_, _| {
                Err(path_error(v.clone()))
            }),
            Kind::Rec(slot) => {
                let recs = env.recs;
                env.enter_rec()?;
                let r = recs[*slot].paths(env, v, path, out);
                env.rec_depth -= 1;
                r
            }
            // Not a path.
            _ => Err(path_error(v)),
        }
    }
}

impl Part {
    /// An index by a literal or a variable: it cannot fail nor read the
    /// input, so it need not be computed ahead.
    pub(super) fn plain(&self) -> bool {
        matches!(
            self,
            Part::Index(Expr {
                kind: Kind::Lit(_) | Kind::Var(_),
                ..
            })
        )
    }

    fn single(&self) -> bool {
        match self {
            Part::Index(i) => i.single,
            Part::Iter => true,
            Part::Range(from, upto) => {
                from.as_ref().is_none_or(|e| e.single) && upto.as_ref().is_none_or(|e| e.single)
            }
        }
    }

    /// The key of this step from its single index term(s) on `v`.
    fn key1(&self, env: &mut Env, v: &PVal) -> Result<Key, Flow> {
        Ok(match self {
            Part::Index(i) => Key::Index(value_on(i, env, v)?),
            Part::Iter => Key::Iter,
            Part::Range(from, upto) => Key::Range(
                from.as_ref().map(|e| value_on(e, env, v)).transpose()?,
                upto.as_ref().map(|e| value_on(e, env, v)).transpose()?,
            ),
        })
    }
}

static NULL: PVal = PVal::Null;

/// The key of a plain step ([`Part::plain`]).
fn plain_key<'a>(part: &'a Part, vars: &'a [PVal]) -> Result<&'a PVal, Flow> {
    match part {
        Part::Index(Expr {
            kind: Kind::Lit(k), ..
        }) => Ok(k),
        Part::Index(Expr {
            kind: Kind::Var(l), ..
        }) => Ok(&vars[*l]),
        _ => Err(Flow::Bail),
    }
}

/// `y[k1][k2]...` for plain steps ([`Part::plain`]) by reference, as long as
/// the steps look up objects (or null): the value reached and how many
/// steps it took (fewer than all when the next one must be taken the
/// general way).
fn walk_plain<'a>(
    y: &'a PVal,
    steps: &'a [(Part, Opt)],
    vars: &'a [PVal],
) -> Result<(&'a PVal, usize), Flow> {
    let mut cur = y;
    for (i, (part, _)) in steps.iter().enumerate() {
        let k = plain_key(part, vars)?;
        cur = match (cur, k) {
            (PVal::Obj(o), PVal::Str(s)) => o.get(s).unwrap_or(&NULL),
            (PVal::Null, PVal::Str(_) | PVal::Int(_) | PVal::Float(_)) => &NULL,
            _ => return Ok((cur, i)),
        };
        vj::step()?;
    }
    Ok((cur, steps.len()))
}

/// `y[k1][k2]...` for plain steps ([`Part::plain`]), by reference while the
/// steps look up objects (or null), so only the result is cloned.
fn index_plain(y: &PVal, steps: &[(Part, Opt)], vars: &[PVal]) -> Result<PVal, Flow> {
    let (cur, i) = walk_plain(y, steps, vars)?;
    index_rest(cur, &steps[i..], vars)
}

/// The rest of [`index_plain`] from a step [`walk_plain`] stopped at (or
/// none), the general way (arrays, errors).
fn index_rest(cur: &PVal, steps: &[(Part, Opt)], vars: &[PVal]) -> Result<PVal, Flow> {
    let Some(((part, _), rest)) = steps.split_first() else {
        return Ok(cur.clone());
    };
    vj::step()?;
    let mut y = cur.jq_index(plain_key(part, vars)?)?;
    for (part, _) in rest {
        y = y.index(plain_key(part, vars)?)?;
    }
    Ok(y)
}

/// `l op r` when one side is a literal and the other a plain path from a
/// variable (`$event.type == "X"`), comparing without cloning either;
/// `None` for any other comparison.
fn cmp_plain(l: &Expr, op: Cmp, r: &Expr, vars: &[PVal]) -> Option<Result<bool, Flow>> {
    let (path, lit, lit_left) = match (&l.kind, &r.kind) {
        (Kind::Path(head, steps), Kind::Lit(y)) => ((head, steps), y, false),
        (Kind::Lit(x), Kind::Path(head, steps)) => ((head, steps), x, true),
        _ => return None,
    };
    let (Kind::Var(level), steps) = (&path.0.kind, path.1) else {
        return None;
    };
    if !steps.iter().all(|(p, _)| p.plain()) {
        return None;
    }
    let cmp = |x: &PVal| if lit_left { op.run(lit, x) } else { op.run(x, lit) };
    Some(match walk_plain(&vars[*level], steps, vars) {
        Ok((x, i)) if i == steps.len() => Ok(cmp(x)),
        Ok((x, i)) => index_rest(x, &steps[i..], vars).map(|y| cmp(&y)),
        Err(e) => Err(e),
    })
}

/// `w | path |= f` along plain steps ([`Part::plain`]).
fn update_plain(steps: &[(Part, Opt)], env: &mut Env, w: PVal, f: &Upd) -> Result<PVal, Flow> {
    let Some(((part, opt), rest)) = steps.split_first() else {
        return Err(Flow::Bail);
    };
    let var_key;
    let key = match part {
        Part::Index(Expr {
            kind: Kind::Lit(k), ..
        }) => k,
        Part::Index(Expr {
            kind: Kind::Var(l), ..
        }) => {
            var_key = env.vars[*l].clone();
            &var_key
        }
        _ => return Err(Flow::Bail),
    };
    vj::step()?;
    vj::update_index(w, key, *opt, |c| {
        if rest.is_empty() {
            f.first(env, c)
        } else {
            update_plain(rest, env, c, f).map(Some)
        }
    })
}

/// The single output of `e` on `v`, without cloning `v` when `e` does not
/// read it.
fn value_on(e: &Expr, env: &mut Env, v: &PVal) -> Result<PVal, Flow> {
    match &e.kind {
        Kind::Lit(x) => Ok(x.clone()),
        Kind::Var(l) => Ok(env.vars[*l].clone()),
        _ => e.eval1(env, e.input(v)),
    }
}

/// Call every combination of the keys the steps' index terms give on `v`,
/// in jaq's order (the first step's outputs outermost). With generators
/// among them, the outputs are gathered first, as jaq gathers them: a step
/// without any gives no paths at all, even when another failed.
fn key_combos(steps: &[(Part, Opt)], env: &mut Env, v: &PVal, f: &mut dyn FnMut(&mut Env, &[Key]) -> R) -> R {
    if steps.iter().all(|(p, _)| p.single()) {
        let mut keys = Vec::with_capacity(steps.len());
        for (part, _) in steps {
            keys.push(part.key1(env, v)?);
        }
        return f(env, &keys);
    }
    // Each step's keys, up to the first error.
    let mut all: Vec<(Vec<Key>, Option<Error>)> = Vec::with_capacity(steps.len());
    for (part, _) in steps {
        let mut keys = Vec::new();
        let r = match part {
            Part::Iter => {
                keys.push(Key::Iter);
                Ok(())
            }
            Part::Index(i) => i.run(env, v.clone(), &mut |_, k| {
                keys.push(Key::Index(k));
                Ok(())
            }),
            Part::Range(from, upto) => {
                let mut froms = Vec::new();
                let mut r = match from {
                    Some(e) => e.run(env, v.clone(), &mut |_, x| {
                        froms.push(Some(x));
                        Ok(())
                    }),
                    None => {
                        froms.push(None);
                        Ok(())
                    }
                };
                // jaq pairs each start with each end.
                if r.is_ok() {
                    for from in &froms {
                        r = match upto {
                            Some(e) => e.run(env, v.clone(), &mut |_, y| {
                                keys.push(Key::Range(from.clone(), Some(y)));
                                Ok(())
                            }),
                            None => {
                                keys.push(Key::Range(from.clone(), None));
                                Ok(())
                            }
                        };
                        if r.is_err() {
                            break;
                        }
                    }
                }
                r
            }
        };
        match r {
            Ok(()) => all.push((keys, None)),
            Err(Flow::Err(e)) => all.push((keys, Some(e))),
            Err(flow) => return Err(flow),
        }
    }
    if all.iter().any(|(keys, e)| keys.is_empty() && e.is_none()) {
        return Ok(());
    }
    fn go(
        all: &[(Vec<Key>, Option<Error>)],
        cur: &mut Vec<Key>,
        env: &mut Env,
        f: &mut dyn FnMut(&mut Env, &[Key]) -> R,
    ) -> R {
        let Some(((keys, e), rest)) = all.split_first() else {
            return f(env, cur);
        };
        for k in keys {
            cur.push(k.clone());
            let r = go(rest, cur, env, f);
            cur.pop();
            r?;
        }
        match e {
            // The combination with the error: its path is the error, once
            // every later step has an output.
            Some(e) => Err(Flow::Err(e.clone())),
            None => Ok(()),
        }
    }
    go(&all, &mut Vec::with_capacity(steps.len()), env, f)
}

/// Run the steps from `steps[i]` on `y` with their keys.
fn walk(steps: &[(Part, Opt)], keys: &[Key], env: &mut Env, y: PVal, out: Out) -> R {
    let Some(((_, opt), rest)) = steps.split_first() else {
        return out(env, y);
    };
    let optional = matches!(opt, Opt::Optional);
    let (key, keys) = (&keys[0], &keys[1..]);
    match key {
        Key::Index(k) => match y.index(k) {
            Ok(z) => walk(rest, keys, env, z, out),
            Err(_) if optional => Ok(()),
            Err(e) => Err(e.into()),
        },
        Key::Range(from, upto) => match y.range(from.as_ref()..upto.as_ref()) {
            Ok(z) => walk(rest, keys, env, z, out),
            Err(_) if optional => Ok(()),
            Err(e) => Err(e.into()),
        },
        Key::Iter => {
            if let Err(e) = vj::step() {
                return if optional { Ok(()) } else { Err(e.into()) };
            }
            match &y {
                PVal::Arr(a) => {
                    for z in a.iter() {
                        walk(rest, keys, env, z.clone(), out)?;
                    }
                    Ok(())
                }
                PVal::Obj(o) => {
                    for z in o.values() {
                        walk(rest, keys, env, z.clone(), out)?;
                    }
                    Ok(())
                }
                _ if optional => Ok(()),
                _ => Err(Flow::Err(vj::iterate_error(&y))),
            }
        }
    }
}

/// The paths from `steps[i]` on `y` (at `path`).
fn walk_paths(
    steps: &[(Part, Opt)],
    keys: &[Key],
    env: &mut Env,
    y: PVal,
    path: &mut Vec<PVal>,
    out: POut,
) -> R {
    let Some(((_, opt), rest)) = steps.split_first() else {
        return out(env, y, path);
    };
    let optional = matches!(opt, Opt::Optional);
    let (key, keys) = (&keys[0], &keys[1..]);
    let (z, k) = match key {
        Key::Index(k) => (y.index(k), k.clone()),
        Key::Range(from, upto) => (
            y.range(from.as_ref()..upto.as_ref()),
            PVal::from(jaq_core::val::Range {
                start: from.clone(),
                end: upto.clone(),
            }),
        ),
        Key::Iter => {
            if let Err(e) = vj::step() {
                return if optional { Ok(()) } else { Err(e.into()) };
            }
            let children: Vec<(PVal, PVal)> = match &y {
                PVal::Arr(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, z)| (PVal::from(i), z.clone()))
                    .collect(),
                PVal::Obj(o) => o.iter().map(|(k, z)| (PVal::Str(k.clone()), z.clone())).collect(),
                _ if optional => return Ok(()),
                _ => return Err(Flow::Err(vj::iterate_error(&y))),
            };
            for (k, z) in children {
                path.push(k);
                let r = walk_paths(rest, keys, env, z, path, out);
                path.pop();
                r?;
            }
            return Ok(());
        }
    };
    match z {
        Ok(z) => {
            path.push(k);
            let r = walk_paths(rest, keys, env, z, path, out);
            path.pop();
            r
        }
        Err(_) if optional => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `w | path |= f` along one path: the steps with their keys.
fn update_steps(steps: &[(Part, Opt)], keys: &[Key], env: &mut Env, w: PVal, f: &Upd) -> Result<PVal, Flow> {
    let Some(((_, opt), rest)) = steps.split_first() else {
        return Err(Flow::Bail);
    };
    let (key, keys) = (&keys[0], &keys[1..]);
    let mut child = |c: PVal| -> Result<Option<PVal>, Flow> {
        if rest.is_empty() {
            f.first(env, c)
        } else {
            update_steps(rest, keys, env, c, f).map(Some)
        }
    };
    vj::step()?;
    match key {
        Key::Index(k) => vj::update_index(w, k, *opt, child),
        Key::Iter => vj::update_values(w, *opt, &mut child),
        Key::Range(from, upto) => vj::update_range(w, from.as_ref(), upto.as_ref(), *opt, child),
    }
}

/// Bind the value arguments of a call (each over the outputs of the ones
/// before, all on `v`) and call `f` with them bound.
fn bind_args(args: &[Expr], env: &mut Env, v: &PVal, f: &mut dyn FnMut(&mut Env) -> R) -> R {
    let Some((a, rest)) = args.split_first() else {
        return f(env);
    };
    let level = env.vars.len();
    if a.single {
        let x = a.eval1(env, v.clone())?;
        env.vars.push(x);
        let r = bind_args(rest, env, v, f);
        env.vars.truncate(level);
        return r;
    }
    a.run(env, v.clone(), &mut |env, x| {
        env.vars.push(x);
        let r = bind_args(rest, env, v, f);
        env.vars.truncate(level);
        r
    })
}

/// Call `f` with every combination of the outputs of `args` on `v` (the
/// first argument's outermost), as jaq passes arguments to a native.
fn each_combo(
    args: &[Expr],
    env: &mut Env,
    v: &PVal,
    vals: &mut Vec<PVal>,
    f: &mut dyn FnMut(&mut Env, &[PVal]) -> R,
) -> R {
    let Some((a, rest)) = args.split_first() else {
        return f(env, vals);
    };
    a.run(env, v.clone(), &mut |env, x| {
        vals.push(x);
        let r = each_combo(rest, env, v, vals, f);
        vals.pop();
        r
    })
}

/// jaq's reduction of an update over bindings (`f as $x | p`, a call with
/// value arguments, `if` with several conditions): starting from `v`, each
/// binding updates the result of the one before. `bindings` calls its
/// `step` once per binding, with the update to make; an update giving no
/// output ends the reduction without output, several is [`Flow::Bail`].
#[allow(clippy::type_complexity)]
fn fold_updates(
    env: &mut Env,
    v: PVal,
    out: Out,
    bindings: impl FnOnce(&mut Env, &mut dyn FnMut(&mut Env, &mut dyn FnMut(&mut Env, PVal, Out) -> R) -> R) -> R,
) -> R {
    let tok = env.token();
    let mut acc = Some(v);
    let r = bindings(env, &mut |env, update| {
        let cur = acc.take().ok_or(Flow::Bail)?;
        match one_or_none(env, |env, out| update(env, cur, out))? {
            Some(y) => {
                acc = Some(y);
                Ok(())
            }
            None => Err(Flow::Stop(tok)),
        }
    });
    match r {
        Ok(()) => out(env, acc.ok_or(Flow::Bail)?),
        Err(Flow::Stop(t)) if t == tok => Ok(()),
        Err(e) => Err(e),
    }
}

/// The unwinding of `break` to the label bound at `level`.
fn break_to(env: &Env, level: usize) -> Flow {
    match env.vars.get(level) {
        Some(PVal::Int(tok)) => Flow::Stop(*tok as u32),
        _ => Flow::Bail,
    }
}

/// Whether each of `terms` gives at least an output or an error on `v`.
///
/// jaq pairs every output of the left operand of `+`, `==`, ... with every
/// output of the right one (and so the parts of an object construction or
/// of a string interpolation): when one of them gives nothing, nothing
/// comes out, not even the errors of the others.
fn all_have_items<'e>(terms: impl Iterator<Item = &'e Expr>, env: &mut Env, v: &PVal) -> Result<bool, Flow> {
    for t in terms {
        if t.single {
            continue;
        }
        let tok = env.token();
        match t.run(env, v.clone(), &mut |_, _| Err(Flow::Stop(tok))) {
            Ok(()) => return Ok(false),
            Err(Flow::Bail) => return Err(Flow::Bail),
            // An output, an error, a `break`: all are items.
            Err(_) => {}
        }
    }
    Ok(true)
}

/// Whether `l` on `v` gives a true value or an error (jaq's test for
/// updating or taking the paths of `l // r`).
fn any_true(l: &Expr, env: &mut Env, v: PVal) -> Result<bool, Flow> {
    let tok = env.token();
    match l.run(env, v, &mut |_, x| {
        if x.as_bool() { Err(Flow::Stop(tok)) } else { Ok(()) }
    }) {
        Ok(()) => Ok(false),
        Err(Flow::Bail) => Err(Flow::Bail),
        Err(_) => Ok(true),
    }
}

/// One reduction of `reduce`/`foreach` from `init`. For `reduce` (no
/// `out`), the final value, or `None` when an update gave no output; for
/// `foreach`, each step's outputs go to `out`.
fn fold_run(
    fold: &Fold,
    env: &mut Env,
    v: &PVal,
    init: PVal,
    mut out: Option<Out>,
) -> Result<Option<PVal>, Flow> {
    let tok = env.token();
    let level = fold.level;
    let mut acc = Some(init);
    let r = fold.xs.run(env, v.clone(), &mut |env, x| {
        bind_pat(&fold.pat, env, x, &mut |env| {
            let cur = acc.take().ok_or(Flow::Bail)?;
            let next = if fold.update.single {
                Some(fold.update.eval1(env, cur)?)
            } else {
                one_or_none(env, |env, out| fold.update.run(env, cur, out))?
            };
            let Some(next) = next else {
                return Err(Flow::Stop(tok));
            };
            if let Some(out) = out.as_mut() {
                match &fold.extract {
                    Some(e) => e.run(env, next.clone(), &mut |env, y| pass(env, level, y, *out))?,
                    None => pass(env, level, next.clone(), *out)?,
                }
            }
            acc = Some(next);
            Ok(())
        })
    });
    match r {
        Ok(()) => Ok(acc),
        Err(Flow::Stop(t)) if t == tok => Ok(None),
        Err(e) => Err(e),
    }
}

/// The paths of one reduction of `reduce`/`foreach` (as [`fold_run`]) from
/// the value and path `init`.
fn fold_paths(fold: &Fold, foreach: bool, env: &mut Env, v: &PVal, init: (PVal, Vec<PVal>), out: POut) -> R {
    let tok = env.token();
    let level = fold.level;
    let mut acc = Some(init);
    let r = fold.xs.run(env, v.clone(), &mut |env, x| {
        bind_pat(&fold.pat, env, x, &mut |env| {
            let (cur, mut path) = acc.take().ok_or(Flow::Bail)?;
            let mut slot = None;
            let r = fold.update.paths(env, cur, &mut path, &mut |_, y, p| {
                if slot.is_some() {
                    return Err(Flow::Bail);
                }
                slot = Some((y, p.clone()));
                Ok(())
            });
            match r {
                Ok(()) => {}
                Err(_) if slot.is_some() => return Err(Flow::Bail),
                Err(e) => return Err(e),
            }
            let Some((next, mut path)) = slot else {
                return Err(Flow::Stop(tok));
            };
            if foreach {
                match &fold.extract {
                    Some(e) => e.paths(env, next.clone(), &mut path, &mut |env, y, p| {
                        pass_path(env, level, y, p, out)
                    })?,
                    None => pass_path(env, level, next.clone(), &mut path, out)?,
                }
            }
            acc = Some((next, path));
            Ok(())
        })
    });
    match r {
        Ok(()) if foreach => Ok(()),
        Ok(()) => match acc {
            Some((y, mut path)) => out(env, y, &mut path),
            None => Err(Flow::Bail),
        },
        Err(Flow::Stop(t)) if t == tok => Ok(()),
        Err(e) => Err(e),
    }
}

/// jaq's update through `reduce xs as $x (init; update)`: `init` is updated
/// by updating, at its paths, the `update` of the first binding, whose
/// paths are updated by the update of the next binding, ..., and the last
/// by `f`. `binds` are the values each binding puts on the stack (from
/// `fold.level`), up to the first error, `err`.
#[allow(clippy::too_many_arguments)]
fn fold_update(
    fold: &Fold,
    binds: &[Vec<PVal>],
    err: Option<&Error>,
    i: usize,
    env: &mut Env,
    w: PVal,
    f: &Upd,
    out: Out,
) -> R {
    let Some(frame) = binds.get(i) else {
        return match err {
            Some(e) => Err(Flow::Err(e.clone())),
            None => f.all(env, w, out),
        };
    };
    let level = fold.level;
    env.vars.extend(frame.iter().cloned());
    let rest = |env: &mut Env, w, out: Out| fold_update(fold, binds, err, i + 1, env, w, f, out);
    // The rest belongs where the bindings are not.
    let mut next = Upd::then(&rest, env);
    next.depth = level;
    let r = fold
        .update
        .update(env, w, &next, &mut |env, y| pass(env, level, y, out));
    env.vars.truncate(level);
    r
}

/// Bind the variables of `pat` to `x` (each binding in turn, as jaq makes
/// them) and call `k` with them bound.
fn bind_pat(pat: &Pat, env: &mut Env, x: PVal, k: &mut dyn FnMut(&mut Env) -> R) -> R {
    match pat {
        Pat::Var => {
            let level = env.vars.len();
            env.vars.push(x);
            let r = k(env);
            env.vars.truncate(level);
            r
        }
        Pat::Idx(entries) => bind_entries(entries, env, &x, k),
    }
}

fn bind_entries(entries: &[(Expr, Pat)], env: &mut Env, x: &PVal, k: &mut dyn FnMut(&mut Env) -> R) -> R {
    let Some(((key, pat), rest)) = entries.split_first() else {
        return k(env);
    };
    key.run(env, x.clone(), &mut |env, i| {
        let part = x.clone().index(&i)?;
        bind_pat(pat, env, part, &mut |env| bind_entries(rest, env, x, k))
    })
}

/// `..`: the value, then the recursion into each of its children.
fn recurse(env: &mut Env, v: PVal, out: Out) -> R {
    env.check_stack()?;
    out(env, v.clone())?;
    if vj::step().is_err() {
        // jaq drops the error of iterating (as it drops scalars').
        return Ok(());
    }
    match &v {
        PVal::Arr(a) => a.iter().try_for_each(|x| recurse(env, x.clone(), out)),
        PVal::Obj(o) => o.values().try_for_each(|x| recurse(env, x.clone(), out)),
        _ => Ok(()),
    }
}

/// The paths of `..`.
fn recurse_paths(env: &mut Env, v: PVal, path: &mut Vec<PVal>, out: POut) -> R {
    env.check_stack()?;
    out(env, v.clone(), path)?;
    if vj::step().is_err() {
        return Ok(());
    }
    let children: Vec<(PVal, PVal)> = match &v {
        PVal::Arr(a) => a
            .iter()
            .enumerate()
            .map(|(i, z)| (PVal::from(i), z.clone()))
            .collect(),
        PVal::Obj(o) => o.iter().map(|(k, z)| (PVal::Str(k.clone()), z.clone())).collect(),
        _ => return Ok(()),
    };
    for (k, z) in children {
        path.push(k);
        let r = recurse_paths(env, z, path, out);
        path.pop();
        r?;
    }
    Ok(())
}

/// `.. |= f`: the children first (each its first output, or removed), then
/// `f` on the result.
fn recurse_update(env: &mut Env, v: PVal, f: &Upd, out: Out) -> R {
    env.check_stack()?;
    vj::step()?;
    let w = vj::update_values(v, Opt::Optional, |c| {
        first(env, |env, out| recurse_update(env, c, f, out))
    })?;
    f.all(env, w, out)
}

/// jaq's `limit($n; f)` native: at most `n` outputs of `f`, counting down
/// with jq arithmetic (so odd `n` behave as in jaq).
fn limit(env: &mut Env, n: PVal, f: &mut dyn FnMut(&mut Env, Out) -> R, out: Out) -> R {
    let zero = PVal::Int(0);
    if n <= zero || n.partial_cmp(&zero) != Some(Ordering::Greater) {
        return Ok(());
    }
    let mut n = (n - PVal::Int(1))?;
    let tok = env.token();
    let r = f(env, &mut |env, x| {
        out(env, x)?;
        if n > PVal::Int(0) {
            n = (std::mem::take(&mut n) - PVal::Int(1))?;
            Ok(())
        } else {
            Err(Flow::Stop(tok))
        }
    });
    match r {
        Err(Flow::Stop(t)) if t == tok => Ok(()),
        r => r,
    }
}

fn limit_paths(env: &mut Env, n: PVal, f: &Expr, v: &PVal, path: &mut Vec<PVal>, out: POut) -> R {
    let zero = PVal::Int(0);
    if n <= zero || n.partial_cmp(&zero) != Some(Ordering::Greater) {
        return Ok(());
    }
    let mut n = (n - PVal::Int(1))?;
    let tok = env.token();
    let r = f.paths(env, v.clone(), path, &mut |env, y, path| {
        out(env, y, path)?;
        if n > PVal::Int(0) {
            n = (std::mem::take(&mut n) - PVal::Int(1))?;
            Ok(())
        } else {
            Err(Flow::Stop(tok))
        }
    });
    match r {
        Err(Flow::Stop(t)) if t == tok => Ok(()),
        r => r,
    }
}

/// jaq's `range($from; $upto; $by)` native.
fn range(env: &mut Env, from: &PVal, upto: &PVal, by: &PVal, out: Out) -> R {
    let cmp = by.partial_cmp(&PVal::Int(0)).unwrap_or(Ordering::Equal);
    let mut x = from.clone();
    loop {
        let go = match cmp {
            Ordering::Greater => x < *upto,
            Ordering::Less => x > *upto,
            Ordering::Equal => x != *upto,
        };
        if !go {
            return Ok(());
        }
        out(env, x.clone())?;
        x = (x + by.clone())?;
    }
}

/// The concatenation of interpolated parts (added up from the right, as
/// jaq adds them; for strings that is joining them).
fn concat(vals: Vec<PVal>) -> Result<PVal, Flow> {
    if vals.iter().all(|v| matches!(v, PVal::Str(_))) {
        let mut s = String::new();
        for v in &vals {
            if let PVal::Str(x) = v {
                s.push_str(x);
            }
        }
        return Ok(PVal::from(s));
    }
    let mut it = vals.into_iter().rev();
    let mut acc = it.next().unwrap_or_else(|| PVal::from(String::new()));
    for x in it {
        acc = (x + acc)?;
    }
    Ok(acc)
}

/// jaq-std's `sort_by(f)`, `group_by(f)`, `min_by_or_empty(f)` and
/// `max_by_or_empty(f)`: the key of an element is the list of the outputs
/// of `f` on it; the first error ends the whole.
fn by_filter(by: By, f: &Expr, env: &mut Env, v: PVal) -> Result<Option<PVal>, Flow> {
    use jaq_std::ValT as _;
    let xs: Vec<PVal> = v.into_seq().map_err(|v| Error::typ(v, "array"))?;
    let key = |env: &mut Env, x: PVal| -> Result<Vec<PVal>, Flow> {
        let mut ys = Vec::new();
        f.run(env, x, &mut |_, y| {
            ys.push(y);
            Ok(())
        })?;
        Ok(ys)
    };
    Ok(Some(match by {
        By::Sort => {
            // Keys in element order (stopping at the first error), then the
            // sort jaq-std does.
            let mut keys = Vec::with_capacity(xs.len());
            for x in &xs {
                keys.push(key(env, x.clone())?);
            }
            let mut pairs: Vec<(Vec<PVal>, PVal)> = keys.into_iter().zip(xs).collect();
            pairs.sort_by_cached_key(|(k, _)| k.clone());
            arr(pairs.into_iter().map(|(_, x)| x).collect())
        }
        By::Group => {
            let mut yx = Vec::with_capacity(xs.len());
            for x in xs {
                yx.push((key(env, x.clone())?, x));
            }
            yx.sort_by(|(y1, _), (y2, _)| y1.cmp(y2));
            let mut grouped = Vector::new();
            let mut yx = yx.into_iter();
            if let Some((mut group_y, first_x)) = yx.next() {
                let mut group = Vector::from_iter([first_x]);
                for (y, x) in yx {
                    if group_y != y {
                        grouped.push_back(arr(std::mem::take(&mut group)));
                        group_y = y;
                    }
                    group.push_back(x);
                }
                if !group.is_empty() {
                    grouped.push_back(arr(group));
                }
            }
            arr(grouped)
        }
        By::Min | By::Max => {
            let mut it = xs.into_iter();
            let Some(first) = it.next() else {
                return Ok(None);
            };
            let mut my = key(env, first.clone())?;
            let mut mx = first;
            for x in it {
                let y = key(env, x.clone())?;
                let replace = match by {
                    By::Min => y < my,
                    _ => y >= my,
                };
                if replace {
                    (mx, my) = (x, y);
                }
            }
            mx
        }
    }))
}

fn call_plain(p: Plain, v: PVal, mut vals: Vec<PVal>) -> Result<PVal, Flow> {
    let mut arg = || vals.pop().ok_or(Flow::Bail);
    Ok(match p {
        Plain::V0(f) => f(v)?,
        Plain::V1(f) => {
            let a = arg()?;
            f(v, a)?
        }
        Plain::V3(f) => {
            let c = arg()?;
            let b = arg()?;
            let a = arg()?;
            f(v, a, b, c)?
        }
        Plain::Many0(_) => return Err(Flow::Bail),
    })
}
