//! The direct engine: a reducer run straight on `PVal`, without jaq's
//! machinery of boxed iterators, contexts and path lists.
//!
//! jaq evaluates every sub-term through boxed iterators and clones its
//! context at every step, which costs tens of allocations per event for a
//! reducer of a few lines; folding a big log spends most of its time there.
//! This engine compiles the same parse tree (jaq's parser) once into an
//! [`Expr`] tree and evaluates it by pushing outputs into callbacks:
//! literals and object keys are built once at compile time, user-defined
//! and prelude functions are inlined, variables live in a stack, and a term
//! known to give exactly one output (most of a reducer) is evaluated as a
//! plain function call. Updates go through the same path-step helpers as
//! jaq (`value::jaq::update_index` and friends) and every value operation
//! is the very function jaq calls, so answers and error messages are the
//! same.
//!
//! It is only an accelerator, never a second semantics:
//!
//! - A program using anything it does not implement (a recursive
//!   definition with arguments, or one binding variables on its way to
//!   calling itself, `combinations`, `skip`, ...) does not compile here and
//!   runs on jaq entirely. A native it does not implement itself but takes
//!   only values is run by jaq for it (`reduce::jq::Bridge`).
//! - A run that meets a case it does not handle (an update inside `reduce`
//!   yielding several outputs, an update through `foreach`, a stack running
//!   low) stops with [`Flow::Bail`] and the event is run again on jaq. Runs
//!   are pure, so running again gives jaq's answer.
//!
//! Both are checked against jaq, outputs and error messages alike, on the
//! conformance cases (`tests/jq_conformance.rs`) and on random programs
//! (`tests.rs`).
//!
//! The step budget (`value::jaq::set_step_budget`) is charged by the same
//! value operations as in jaq but not by jaq's own bookkeeping, so a run
//! here may take a few steps fewer; the budget is a guard against runaway
//! programs, which it stops either way. Deep recursion is left to jaq
//! (past [`MAX_REC_DEPTH`] calls a run bails). A runaway program fails on
//! both engines, but jaq computes some parts of a term ahead (the input of
//! a `reduce` before its start value, ...), so the error that stops it
//! first may differ.

mod compile;
mod eval;
#[cfg(test)]
mod tests;

use crate::value::PVal;
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::Opt;
use std::sync::Arc;

pub(crate) use compile::compile;

/// A jq error.
pub(crate) type Error = jaq_core::Error<PVal>;

/// Why a run stopped before its end.
#[derive(Debug)]
pub(crate) enum Flow {
    /// A jq error.
    Err(Error),
    /// An error raised downstream of the `try` body with this token (so
    /// that `try` does not catch it), on its way back out.
    Through(u32, Error),
    /// Unwind to the `first`, `limit`, `label`, `reduce` or update with this
    /// token: it has all the outputs it wants.
    Stop(u32),
    /// The engine cannot finish this run as jaq would: run it on jaq.
    Bail,
}

impl From<Error> for Flow {
    fn from(e: Error) -> Self {
        Flow::Err(e)
    }
}

type R = Result<(), Flow>;
/// Where a term sends its outputs.
type Out<'o> = &'o mut dyn FnMut(&mut Env, PVal) -> R;

/// A compiled program.
pub(crate) struct Program {
    root: Expr,
    /// The bodies of recursive definitions ([`Kind::Rec`]).
    recs: Vec<Expr>,
}

/// How a run of the direct engine ended.
pub(crate) enum Outcome {
    /// Its last output (none when it had none).
    Done(Option<PVal>),
    /// Its first error.
    Error(Error),
    /// Run it on jaq instead.
    Bail,
}

impl Program {
    /// Run on `input` with `$event` = `event`, keeping the last output.
    pub(crate) fn run_last(&self, input: PVal, event: PVal) -> Outcome {
        let mut last = None;
        match self.run(input, event, &mut |v| {
            last = Some(v);
            Ok(())
        }) {
            Ok(()) => Outcome::Done(last),
            Err(Flow::Err(e)) => Outcome::Error(e),
            // A stray token would be a bug here; jaq answers instead.
            Err(_) => Outcome::Bail,
        }
    }

    /// Run on `input` with `$event` = `event`, passing every output to `out`.
    pub(crate) fn run(&self, input: PVal, event: PVal, out: &mut dyn FnMut(PVal) -> R) -> R {
        let mut env = Env::new(event, &self.recs);
        self.root.run(&mut env, input, &mut |_, v| out(v))
    }
}

/// The state of a run: the values of the variables in scope, innermost
/// last (a variable's compiled level is its index), and fresh tokens.
pub(crate) struct Env<'p> {
    vars: Vec<PVal>,
    /// The program's recursive bodies.
    recs: &'p [Expr],
    /// How many recursive calls are under way.
    rec_depth: usize,
    next_token: u32,
    /// Below this stack address a run gives up ([`Flow::Bail`]) rather than
    /// risk overflowing the thread's stack.
    stack_floor: usize,
}

/// Stack a run keeps free; jaq takes over below it (with its own guards).
const STACK_RESERVE: usize = 256 * 1024;

thread_local! {
    /// The variable stack of the last run on this thread, kept for the next
    /// (a run per event should not allocate one).
    static SPARE_VARS: std::cell::Cell<Vec<PVal>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Recursive calls a run may nest before it gives up ([`Flow::Bail`]):
/// deeper recursion is left to jaq, whose guards decide when it is too
/// deep, so both engines stop programs alike.
const MAX_REC_DEPTH: usize = 400;

impl<'p> Env<'p> {
    fn new(event: PVal, recs: &'p [Expr]) -> Env<'p> {
        let here = stack_address();
        let stack_floor = match stacker::remaining_stack() {
            Some(left) => here.saturating_sub(left) + STACK_RESERVE,
            None => 0,
        };
        let mut vars = SPARE_VARS.take();
        vars.clear();
        vars.push(event);
        Env {
            vars,
            recs,
            rec_depth: 0,
            next_token: 0,
            stack_floor,
        }
    }

    /// A token no other part of this run uses.
    fn token(&mut self) -> u32 {
        self.next_token += 1;
        self.next_token
    }

    /// One recursive call deeper, or `Bail` past [`MAX_REC_DEPTH`].
    fn enter_rec(&mut self) -> R {
        if self.rec_depth >= MAX_REC_DEPTH {
            return Err(Flow::Bail);
        }
        self.rec_depth += 1;
        Ok(())
    }

    /// `Bail` when the stack runs low.
    #[inline]
    fn check_stack(&self) -> R {
        if stack_address() < self.stack_floor {
            Err(Flow::Bail)
        } else {
            Ok(())
        }
    }
}

impl Drop for Env<'_> {
    fn drop(&mut self) {
        let mut vars = std::mem::take(&mut self.vars);
        vars.clear();
        SPARE_VARS.set(vars);
    }
}

/// Roughly the current stack pointer.
#[inline(always)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// A compiled term. `single` is true when the term always gives exactly one
/// output or an error (so it can be evaluated as a function, [`Expr::eval1`]).
/// `blind` is true when it never reads its input (`$x.a == "b"`), which
/// then need not be cloned for it.
pub(crate) struct Expr {
    kind: Kind,
    single: bool,
    blind: bool,
}

/// A native filter the direct engine calls with values.
pub(crate) enum Native {
    /// One of evscope's own (`reduce::natives::plain`).
    Own(crate::reduce::natives::Plain),
    /// Another native, run by jaq: a program `name($__a0; ...)` whose
    /// global variables are the arguments.
    Jaq(Arc<crate::reduce::jq::Bridge>),
}

pub(crate) enum Part {
    /// `.[k]`
    Index(Expr),
    /// `.[]`
    Iter,
    /// `.[from:upto]`
    Range(Option<Expr>, Option<Expr>),
}

/// A reduction: `reduce`/`foreach xs as $x (init; update; extract)`.
pub(crate) struct Fold {
    xs: Expr,
    /// What each output of `xs` binds (`$x`, or a destructuring).
    pat: Pat,
    init: Expr,
    update: Expr,
    /// `foreach`'s third argument.
    extract: Option<Expr>,
    /// The level of the first variable bound.
    level: usize,
}

/// A binding pattern: `$x`, `[p, ...]` or `{(k): p, ...}`.
pub(crate) enum Pat {
    Var,
    /// Sub-patterns, each binding the value at its key (the key term runs
    /// on the value destructured).
    Idx(Vec<(Expr, Pat)>),
}

pub(crate) enum Kind {
    /// `.`
    Id,
    /// A value built at compile time.
    Lit(PVal),
    /// A variable, by level.
    Var(usize),
    /// `tostring` as string interpolation applies it.
    ToString,
    /// String interpolation of two parts or more: the concatenation.
    Str(Vec<Expr>),
    /// `[f]`
    Arr(Box<Expr>),
    /// `{(k): v, ...}` with at least one entry.
    Obj(Vec<(Expr, Expr)>),
    /// `-f`
    Neg(Box<Expr>),
    /// `f | g`
    Pipe(Box<Expr>, Box<Expr>),
    /// `f as $x | g`, `$x` at `level`.
    Bind(Box<Expr>, Box<Expr>, usize),
    /// `f as [$a, {b: $c}] | g`, the variables from `level` up.
    BindPat(Box<Expr>, Box<Pat>, Box<Expr>, usize),
    /// A call of an inlined definition: its value arguments, bound from
    /// `level` up (each over the outputs of the one before), then its body.
    Call(Vec<Expr>, Box<Expr>, usize),
    /// `f, g`
    Comma(Box<Expr>, Box<Expr>),
    /// `f // g`
    Alt(Box<Expr>, Box<Expr>),
    /// `f and g` (`false`), `f or g` (`true`)
    Logic(Box<Expr>, bool, Box<Expr>),
    Math(Box<Expr>, Math, Box<Expr>),
    Cmp(Box<Expr>, Cmp, Box<Expr>),
    /// `if c then t else e end`
    Ite(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `try f catch g`
    Try(Box<Expr>, Option<Box<Expr>>),
    /// `f[k]...` (head, then the steps).
    Path(Box<Expr>, Vec<(Part, Opt)>),
    /// `p = f`
    Assign(Box<Expr>, Box<Expr>),
    /// `p |= f`
    Update(Box<Expr>, Box<Expr>),
    /// `p op= f`
    UpdateMath(Box<Expr>, Math, Box<Expr>),
    /// `p //= f`
    UpdateAlt(Box<Expr>, Box<Expr>),
    Reduce(Box<Fold>),
    Foreach(Box<Fold>),
    /// `label $x | f`, the label's token bound at `level`.
    Label(Box<Expr>, usize),
    /// `break $x`, with the level of the label.
    Break(usize),
    /// `..`
    Recurse,
    /// `first(f)`
    First(Box<Expr>),
    /// `_limit($n; f)`
    Limit(Box<Expr>, Box<Expr>),
    /// `path(f)`
    PathOf(Box<Expr>),
    /// `error_empty`: an error whose value is the input.
    ErrorEmpty,
    /// A call of recursive body `slot` (of [`Program`]).
    Rec(usize),
    /// `_range($from; $upto; $by)`
    Range(Box<[Expr; 3]>),
    /// A native called with the outputs of its value arguments.
    Native(Native, Vec<Expr>),
    /// One of jaq's natives on an array by a filter (`sort_by(f)`, ...).
    By(By, Box<Expr>),
}

/// The natives taking an array and a filter giving each element's key.
#[derive(Clone, Copy)]
pub(crate) enum By {
    Sort,
    Group,
    Min,
    Max,
}
