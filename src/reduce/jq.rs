//! The jq reducer, run by jaq directly on `PVal`.
//!
//! A program is compiled once (with evscope's prelude, `prelude.jq`, and
//! natives, `natives.rs`); each event then runs it with `.` = the state and
//! `$event` = the event, and its last output is the new state.
//!
//! jaq is the engine of reference. The same program is also compiled for
//! evscope's direct engine (`reduce::direct`), several times faster on
//! typical reducers, which runs the events whenever it can and gives the
//! same answers and messages; what it cannot run goes to jaq.
//!
//! Semantics follow jq 1.6 (the reference implementation). Known
//! differences, each pinned by `DEVIATIONS` in `tests/jq_conformance.rs`:
//!
//! - Objects keep their keys sorted, so `keys_unsorted`, `to_entries`,
//!   `.[]`, `add` and `tojson` see keys in sorted order, not insertion
//!   order.
//! - `.[] |= empty` (and `(.[] | select(f)) |= empty`) removes exactly the
//!   selected array elements; jq 1.6 shifts indices while deleting and
//!   removes the wrong ones. `del(...)` behaves as in jq.
//! - `reduce`/`foreach` whose update yields several outputs continue with
//!   each of them (jaq), jq 1.6 keeps the last; an update yielding nothing
//!   ends the reduction without output (jq 1.6 gives null).
//! - With multiple-output operands, `a + b` (and other binary operators and
//!   string interpolation) enumerate `b` inside `a`; jq does the reverse.
//! - `error(null)` is an ordinary error with message `null` (jq 1.6 treats
//!   it like `empty` inside `try`).
//! - Integers stay exact 64-bit integers (jq rounds them to doubles beyond
//!   2^53) and have no negative zero; regular expressions use fancy-regex,
//!   not Oniguruma (no `l` flag, Rust's Unicode classes).
//! - Updates through `first(f)`/`limit(n; f)` are errors (paths work).
//! - Extensions: `if` without `else` and `ascii` are accepted.
//! - No access to the environment, files or other inputs: `env`, `$ENV`,
//!   `input`, `inputs`, `input_filename`, `input_line_number`,
//!   `get_search_list` and modules are compile errors saying so (`$__loc__`
//!   is not supported either). `debug`/`stderr` pass values through
//!   silently; `halt` and `halt_error` raise an ordinary (catchable) error
//!   instead of exiting. `localtime`/`strflocaltime` use UTC.
//! - Guards: one event may perform at most 10 million value operations;
//!   recursion is stopped with an error before the thread's stack runs out
//!   (about 850 levels of a simple recursive definition on a 2 MiB stack,
//!   4000 on 8 MiB, in release builds); the recursive built-ins reject
//!   values nested deeper than 1000 levels.

use super::Reducer;
use super::direct::{self, Outcome};
use super::natives::{self, LutRef, StackExhausted};
use crate::value::PVal;
use crate::value::jaq::set_step_budget;
use jaq_core::compile::Undefined;
use jaq_core::load::parse::{Def, Term};
use jaq_core::load::{self, Arena, File, Lexer, Loader, Parser};
use jaq_core::{Ctx, Vars};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

type D = natives::D;
type Program = jaq_core::Filter<D>;

/// Value operations one event may perform before it counts as runaway.
const STEP_BUDGET: u64 = 10_000_000;

const PRELUDE: &str = include_str!("prelude.jq");

/// Names a reducer may not use: they would read the environment, files or
/// other inputs. Using one is a compile error that says so.
const DISABLED: &[&str] = &[
    "env",
    "$ENV",
    "input",
    "inputs",
    "input_filename",
    "input_line_number",
    "get_search_list",
];

/// A reducer program that did not compile, with where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct CompileError {
    /// File name or `--reducer-expr`.
    pub origin: String,
    /// 1-based line and column of the problem.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A compiled jq reducer.
pub struct JqReducer {
    source: String,
    main: Program,
    /// The same program on the direct engine (`reduce::direct`), when it
    /// runs there; events it gives up on run on `main`.
    direct: Option<direct::Program>,
    /// The program `init` when the source defines a top-level 0-ary `init`.
    init: Option<Program>,
}

// The reducer is shared with worker threads: the compiled filter is plain
// data (terms and function pointers), so this holds; keep it checked.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<JqReducer>();
};

impl JqReducer {
    /// Compile `code`; `origin` names it in error messages.
    pub fn compile(code: &str, origin: &str) -> Result<JqReducer, CompileError> {
        let main = compile_program(code, origin)?;
        let init = match init_prefix(code) {
            Some(prefix) => Some(compile_program(&format!("{prefix}\ninit"), origin)?),
            None => None,
        };
        Ok(JqReducer {
            source: code.to_string(),
            main,
            direct: compile_direct(code).ok(),
            init,
        })
    }

    /// Whether events run on the direct engine (else all on jaq).
    pub fn runs_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// [`Reducer::apply`] on jaq only (to compare the engines).
    #[cfg(test)]
    pub(crate) fn apply_on_jaq(&self, state: &PVal, event: &PVal) -> Result<PVal, String> {
        run_last(&self.main, state.clone(), event.clone())?
            .ok_or_else(|| "reducer produced no output".to_string())
    }

    /// The value of a 0-ary `init` defined in the program, if it defines one
    /// (run with input null and `$event` null; its last output).
    pub fn init(&self) -> Result<Option<PVal>, String> {
        let Some(init) = &self.init else {
            return Ok(None);
        };
        match run_last(init, PVal::Null, PVal::Null)? {
            Some(v) => Ok(Some(v)),
            None => Err("init produced no output".to_string()),
        }
    }

    /// The program text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl Reducer for JqReducer {
    fn apply(&self, state: &PVal, event: &PVal) -> Result<PVal, String> {
        let last = match &self.direct {
            Some(d) => match guarded(STEP_BUDGET, || Ok(d.run_last(state.clone(), event.clone())))? {
                Outcome::Done(last) => last,
                Outcome::Error(e) => return Err(error_message(e)),
                Outcome::Bail => run_last(&self.main, state.clone(), event.clone())?,
            },
            None => run_last(&self.main, state.clone(), event.clone())?,
        };
        last.ok_or_else(|| "reducer produced no output".to_string())
    }

    fn apply_owned(&self, state: PVal, event: &PVal) -> Option<PVal> {
        let Some(d) = &self.direct else {
            return self.apply(&state, event).ok();
        };
        match guarded(STEP_BUDGET, || Ok(d.run_last(state, event.clone()))) {
            Ok(Outcome::Done(last)) => last,
            _ => None,
        }
    }
}

/// Run an arbitrary jq program on `input` with `$event` = null and return
/// all its outputs, or the message of the first error (a compile error as
/// `origin:line:col: message`). Used by tests and tools. Runs on the direct
/// engine when the program compiles there, as a reducer would.
pub fn run_filter(code: &str, input: &PVal) -> Result<Vec<PVal>, String> {
    let program = compile_program(code, "<filter>").map_err(|e| e.to_string())?;
    if let Ok(d) = compile_direct(code) {
        let mut out = Vec::new();
        let r = guarded(STEP_BUDGET, || {
            Ok(d.run(input.clone(), PVal::Null, &mut |v| {
                out.push(v);
                Ok(())
            }))
        })?;
        match r {
            Ok(()) => return Ok(out),
            Err(direct::Flow::Err(e)) => return Err(error_message(e)),
            Err(_) => {}
        }
    }
    run_filter_on_jaq(&program, input)
}

/// [`run_filter`] on jaq only (to compare the engines).
#[doc(hidden)]
pub fn run_filter_jaq(code: &str, input: &PVal) -> Result<Vec<PVal>, String> {
    let program = compile_program(code, "<filter>").map_err(|e| e.to_string())?;
    run_filter_on_jaq(&program, input)
}

/// Why `code` does not run on the direct engine (`Ok` when it does).
#[doc(hidden)]
pub fn direct_engine_support(code: &str) -> Result<(), String> {
    compile_program(code, "<filter>").map_err(|e| e.to_string())?;
    compile_direct(code).map(|_| ())
}

fn run_filter_on_jaq(program: &Program, input: &PVal) -> Result<Vec<PVal>, String> {
    guarded(STEP_BUDGET, || {
        let ctx = Ctx::<D>::new(LutRef(&program.lut), Vars::new([PVal::Null]));
        let mut out = Vec::new();
        for r in program.id.run((ctx, input.clone())) {
            out.push(r.map_err(exn_message)?);
        }
        Ok(out)
    })
}

/// Compile `code` (which jaq accepts) for the direct engine.
fn compile_direct(code: &str) -> Result<direct::Program, String> {
    let prelude = prelude().ok_or("no prelude")?;
    direct::compile(code, prelude, native_sigs(), &mut |name, arity| {
        Bridge::new(name, arity).map(std::sync::Arc::new)
    })
}

/// The natives jaq is given, by name and arguments (`true`: a value).
fn native_sigs() -> &'static [(&'static str, Vec<bool>)] {
    static SIGS: OnceLock<Vec<(&'static str, Vec<bool>)>> = OnceLock::new();
    SIGS.get_or_init(|| {
        natives::funs()
            .into_iter()
            .map(|(name, args, _)| {
                let args = args.iter().map(|a| matches!(a, jaq_core::Bind::Var(_))).collect();
                (name, args)
            })
            .collect()
    })
}

/// A native the direct engine does not implement, run by jaq: the program
/// `name($__a0; ...)`, whose global variables are the arguments.
pub(crate) struct Bridge {
    program: Program,
}

impl Bridge {
    fn new(name: &str, arity: usize) -> Option<Bridge> {
        let vars: Vec<String> = (0..arity).map(|i| format!("$__a{i}")).collect();
        let code = if arity == 0 {
            name.to_string()
        } else {
            format!("{name}({})", vars.join("; "))
        };
        let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
        let program = compile_with_vars(&code, "<native>", &vars).ok()?;
        Some(Bridge { program })
    }

    /// Push the outputs of the native on `input` with `args`.
    pub(crate) fn run(
        &self,
        input: PVal,
        args: &[PVal],
        out: &mut dyn FnMut(PVal) -> Result<(), direct::Flow>,
    ) -> Result<(), direct::Flow> {
        let ctx = Ctx::<D>::new(LutRef(&self.program.lut), Vars::new(args.iter().cloned()));
        for r in self.program.id.run((ctx, input)) {
            match r {
                Ok(v) => out(v)?,
                Err(e) => {
                    return Err(match e.get_err() {
                        Ok(e) => direct::Flow::Err(e),
                        Err(_) => direct::Flow::Bail,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Run `program`, keeping only its last output.
fn run_last(program: &Program, input: PVal, event: PVal) -> Result<Option<PVal>, String> {
    run_last_within(STEP_BUDGET, program, input, event)
}

fn run_last_within(steps: u64, program: &Program, input: PVal, event: PVal) -> Result<Option<PVal>, String> {
    guarded(steps, || {
        let ctx = Ctx::<D>::new(LutRef(&program.lut), Vars::new([event]));
        let mut last = None;
        for r in program.id.run((ctx, input)) {
            last = Some(r.map_err(exn_message)?);
        }
        Ok(last)
    })
}

/// Run `f` under the step budget, turning a run stopped for lack of stack
/// (or a panic inside jaq) into an error rather than taking the caller down.
fn guarded<T>(steps: u64, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    set_step_budget(steps);
    let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(if payload.is::<StackExhausted>() {
            "reducer recursion too deep".to_string()
        } else {
            "internal error in the jq engine".to_string()
        })
    });
    set_step_budget(u64::MAX);
    r
}

/// The message of an error: a string error is its text, any other error
/// value its JSON (as jq prints them).
fn error_message(e: jaq_core::Error<PVal>) -> String {
    match e.into_val() {
        PVal::Str(s) => s.to_string(),
        v => v.to_jq_json(),
    }
}

/// The message of an exception escaping the program (see [`error_message`]).
fn exn_message(e: jaq_core::Exn<PVal>) -> String {
    match e.get_err() {
        Ok(e) => error_message(e),
        // evscope defines no native that halts; should one appear, halting
        // still only ends this run.
        Err(e) => match e.get_halt() {
            Ok(code) => format!("halt({code})"),
            Err(_) => "internal error: unexpected control flow".to_string(),
        },
    }
}

// ---------------------------------------------------------------------------
// Compilation

fn prelude() -> Option<&'static [Def<&'static str>]> {
    static DEFS: OnceLock<Option<Vec<Def<&'static str>>>> = OnceLock::new();
    DEFS.get_or_init(|| load::parse(PRELUDE, |p| p.defs())).as_deref()
}

fn compile_program(code: &str, origin: &str) -> Result<Program, CompileError> {
    compile_with_vars(code, origin, &["$event"])
}

/// Compile `code` with the given global variables.
fn compile_with_vars(code: &str, origin: &str, vars: &[&str]) -> Result<Program, CompileError> {
    let at = |offset: Option<usize>, message: String| {
        let (line, column) = line_col(code, offset.unwrap_or(0));
        CompileError {
            origin: origin.to_string(),
            line,
            column,
            message,
        }
    };
    let Some(defs) = prelude() else {
        return Err(at(
            None,
            "internal error: evscope's jq prelude does not parse".into(),
        ));
    };
    let compiled = catch_unwind(AssertUnwindSafe(|| {
        let arena = Arena::default();
        let loader = Loader::new(defs.iter().cloned());
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| load_error(code, errs))?;
        jaq_core::Compiler::<_, D>::default()
            .with_funs(natives::funs())
            .with_global_vars(vars.iter().copied())
            .compile(modules)
            .map_err(|errs| undefined_error(code, errs))
    }));
    match compiled {
        Ok(Ok(program)) => Ok(program),
        Ok(Err((offset, message))) => Err(at(offset, message)),
        Err(_) => Err(at(None, "internal error while compiling".into())),
    }
}

/// Byte offset of `part` inside `whole`, if it is a slice of it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p + part.len() <= w + whole.len()).then(|| p - w)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(code: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(code.len());
    while !code.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

type Located = (Option<usize>, String);

/// The first (leftmost) of several located errors.
fn first_error(mut errs: Vec<Located>) -> Located {
    errs.sort_by_key(|(o, _)| o.unwrap_or(usize::MAX));
    errs.into_iter()
        .next()
        .unwrap_or((None, "syntax error".to_string()))
}

fn describe_token(found: &str) -> String {
    if found.is_empty() {
        "end of program".to_string()
    } else {
        let t: String = found.chars().take(20).collect();
        format!("`{t}`")
    }
}

fn load_error(code: &str, errs: load::Errors<&str, ()>) -> Located {
    use load::lex::Expect as L;
    let mut out = Vec::new();
    for (_file, e) in errs {
        match e {
            load::Error::Io(items) => {
                for (path, _) in items {
                    out.push((
                        offset_in(code, path),
                        "modules (import/include) are not available in evscope reducers".to_string(),
                    ));
                }
            }
            load::Error::Lex(items) => {
                for (expect, found) in items {
                    let what = match expect {
                        L::Digit => "expected a digit".to_string(),
                        L::Ident => "expected an identifier".to_string(),
                        L::Delim(open) => format!("unclosed `{open}`"),
                        L::Escape => "invalid escape sequence in string".to_string(),
                        L::Unicode => "invalid \\u escape in string".to_string(),
                        _ => format!("unexpected {}", describe_token(first_char(found))),
                    };
                    out.push((offset_in(code, found), format!("syntax error: {what}")));
                }
            }
            load::Error::Parse(items) => {
                for (expect, found) in items {
                    out.push((
                        offset_in(code, found),
                        format!(
                            "syntax error: unexpected {}, expected {}",
                            describe_token(found),
                            expect.as_str()
                        ),
                    ));
                }
            }
        }
    }
    first_error(out)
}

fn first_char(s: &str) -> &str {
    s.char_indices().nth(1).map_or(s, |(i, _)| &s[..i])
}

fn undefined_error(code: &str, errs: jaq_core::compile::Errors<&str, ()>) -> Located {
    let mut out = Vec::new();
    for (_file, items) in errs {
        for (name, undef) in items {
            let message = if DISABLED.contains(&name) {
                format!(
                    "{name} is disabled in evscope reducers: a reducer has no access to the \
                     environment, files or other inputs"
                )
            } else {
                match undef {
                    Undefined::Filter(arity) => format!("undefined function {name}/{arity}"),
                    Undefined::Var => format!("undefined variable {name}"),
                    Undefined::Label => format!("undefined label {name}"),
                    Undefined::Mod => format!("undefined module {name}"),
                    _ => format!("undefined symbol {name}"),
                }
            };
            out.push((offset_in(code, name), message));
        }
    }
    first_error(out)
}

/// When `code` defines a top-level 0-ary `init`, the text of its top-level
/// definitions (so that `prefix + "init"` evaluates it in their scope).
fn init_prefix(code: &str) -> Option<&str> {
    let Term::Def(defs, _) = load::parse(code, |p| p.term())? else {
        return None;
    };
    if !defs.iter().any(|d| d.name == "init" && d.args.is_empty()) {
        return None;
    }
    // The definitions end at the last top-level `;` before which the tokens
    // still parse as a sequence of definitions (the main body never starts
    // with `def`, or the parser would have taken it as one more definition).
    let tokens = Lexer::new(code).lex().ok()?;
    for (i, tok) in tokens.iter().enumerate().rev() {
        if tok.0 != ";" {
            continue;
        }
        if Parser::new(&tokens[..=i]).parse(|p| p.defs()).is_ok() {
            let end = offset_in(code, tok.0)? + tok.0.len();
            return Some(&code[..end]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> PVal {
        PVal::from_json(s).unwrap()
    }

    fn run1(code: &str, input: &str) -> Result<PVal, String> {
        let out = run_filter(code, &j(input))?;
        out.last().cloned().ok_or_else(|| "no output".to_string())
    }

    #[test]
    fn prelude_parses_and_compiles() {
        assert!(prelude().is_some(), "prelude.jq does not parse");
        assert!(JqReducer::compile(".", "t").is_ok());
    }

    #[test]
    fn apply_takes_the_last_output() {
        let r = JqReducer::compile(".n += $event.data.amount | ., .", "t").unwrap();
        let s = r.apply(&j(r#"{"n":1}"#), &j(r#"{"data":{"amount":2}}"#)).unwrap();
        assert_eq!(s, j(r#"{"n":3}"#));
        let r = JqReducer::compile("1, 2, 3", "t").unwrap();
        assert_eq!(r.apply(&PVal::Null, &PVal::Null).unwrap(), PVal::Int(3));
    }

    #[test]
    fn apply_owned_agrees_with_apply() {
        let ev = |n: i64| j(&format!(r#"{{"type":"T","data":{{"k":"a","n":{n}}}}}"#));
        for code in [
            ".[$event.data.k] += $event.data.n",
            ".[$event.data.k] += $event.data.n | if .a > 3 then error(\"big\") else . end",
            "if $event.data.n == 2 then empty else .x = $event.data.n end",
            // Runs on jaq only (a recursive definition with an argument).
            "def f(g): if g > 0 then f(g - 1) else g end; .n = f($event.data.n)",
        ] {
            let r = JqReducer::compile(code, "t").unwrap();
            let mut state = j("{}");
            for n in 0..5 {
                let safe = r.apply(&state, &ev(n));
                let owned = r.apply_owned(state.clone(), &ev(n));
                assert_eq!(owned, safe.clone().ok(), "{code} at {n}");
                if let Ok(next) = safe {
                    state = next;
                }
            }
        }
        let r = JqReducer::compile(".users[$event.data.k].n += 1", "t").unwrap();
        let state = r
            .apply_owned(j(r#"{"users":{"a":{"n":1},"b":{"n":1}}}"#), &ev(0))
            .unwrap();
        let next = r.apply_owned(state, &ev(0)).unwrap();
        assert_eq!(next, j(r#"{"users":{"a":{"n":3},"b":{"n":1}}}"#));
    }

    #[test]
    fn apply_errors() {
        let r = JqReducer::compile(r#"if $event.n > 1 then error("overdraft") else . end"#, "t").unwrap();
        assert_eq!(
            r.apply(&PVal::Null, &j(r#"{"n":2}"#)),
            Err("overdraft".to_string())
        );
        let r = JqReducer::compile(r#"error({"a":1})"#, "t").unwrap();
        assert_eq!(r.apply(&PVal::Null, &PVal::Null), Err(r#"{"a":1}"#.to_string()));
        let r = JqReducer::compile("empty", "t").unwrap();
        assert_eq!(
            r.apply(&PVal::Null, &PVal::Null),
            Err("reducer produced no output".to_string())
        );
        let r = JqReducer::compile("1, error(\"late\")", "t").unwrap();
        assert_eq!(r.apply(&PVal::Null, &PVal::Null), Err("late".to_string()));
    }

    #[test]
    fn null_paths_are_created() {
        assert_eq!(run1(".a.b += 1", "{}").unwrap(), j(r#"{"a":{"b":1}}"#));
        assert_eq!(run1(".[2] = 1", "null").unwrap(), j("[null,null,1]"));
        let r =
            JqReducer::compile(".users[$event.data.email] += {credits: $event.data.amount}", "t").unwrap();
        let ev = j(r#"{"data":{"email":"a@b.c","amount":5}}"#);
        assert_eq!(
            r.apply(&j("{}"), &ev).unwrap(),
            j(r#"{"users":{"a@b.c":{"credits":5}}}"#)
        );
    }

    #[test]
    fn environment_and_inputs_are_disabled() {
        for code in [
            "env",
            "$ENV",
            "input",
            "[inputs]",
            "input_filename",
            "input_line_number",
        ] {
            let e = JqReducer::compile(code, "--reducer-expr").err().unwrap();
            assert!(e.message.contains("disabled in evscope reducers"), "{code}: {e}");
            assert_eq!((e.line, e.column), (1, 1 + code.find(['e', '$', 'i']).unwrap()));
        }
        let e = JqReducer::compile("include \"x\"; .", "r.jq").err().unwrap();
        assert!(e.message.contains("modules"), "{e}");
    }

    #[test]
    fn halt_does_not_exit_and_debug_is_silent() {
        let r = JqReducer::compile("halt", "t").unwrap();
        assert!(r.apply(&PVal::Null, &PVal::Null).is_err());
        let r = JqReducer::compile(r#""bye" | halt_error"#, "t").unwrap();
        assert_eq!(r.apply(&PVal::Null, &PVal::Null), Err("bye".to_string()));
        let r = JqReducer::compile(r#"halt_error(1)"#, "t").unwrap();
        assert!(r.apply(&j(r#"{"x":1}"#), &PVal::Null).is_err());
        assert_eq!(
            run_filter("debug, stderr, debug(\"m\")", &PVal::Int(1)).unwrap(),
            vec![PVal::Int(1); 3]
        );
    }

    #[test]
    fn compile_error_positions() {
        let code = "def f: .a;\n\n  .x |= (f +\n    foo(1))";
        let e = JqReducer::compile(code, "r.jq").err().unwrap();
        assert_eq!(e.message, "undefined function foo/1");
        assert_eq!((e.line, e.column), (4, 5));
        assert_eq!(e.to_string(), "r.jq:4:5: undefined function foo/1");

        let code = "def f: 1;\n.a | ]";
        let e = JqReducer::compile(code, "r.jq").err().unwrap();
        assert!(e.message.starts_with("syntax error"), "{e}");
        assert_eq!((e.line, e.column), (2, 6));

        let code = ".a |\n  $nope";
        let e = JqReducer::compile(code, "x").err().unwrap();
        assert_eq!(
            (e.line, e.column, e.message.as_str()),
            (2, 3, "undefined variable $nope")
        );

        let e = JqReducer::compile("{a: (1 + }", "x").err().unwrap();
        assert!(e.message.starts_with("syntax error"), "{e}");
        let e = JqReducer::compile("\"abc", "x").err().unwrap();
        assert!(e.message.starts_with("syntax error"), "{e}");
        let e = JqReducer::compile("", "x").err().unwrap();
        assert_eq!((e.line, e.column), (1, 1));
    }

    #[test]
    fn init_is_found_and_evaluated() {
        let code = "# accounts\ndef init: {accounts: {}, n: (1 + 1)};\ndef add($x): . + $x;\n.n |= add(1)";
        let r = JqReducer::compile(code, "r.jq").unwrap();
        assert_eq!(r.init().unwrap(), Some(j(r#"{"accounts":{},"n":2}"#)));
        assert_eq!(r.apply(&j(r#"{"n":2}"#), &PVal::Null).unwrap(), j(r#"{"n":3}"#));

        let nested = "def f: def init: 5; init; def init: f + 1; .";
        let r = JqReducer::compile(nested, "r.jq").unwrap();
        assert_eq!(r.init().unwrap(), Some(PVal::Int(6)));

        for code in [".", "def init(x): x; .", "def f: 1; f", "(def init: 1; .)"] {
            let r = JqReducer::compile(code, "r.jq").unwrap();
            assert_eq!(r.init().unwrap(), None, "{code}");
        }
        let r = JqReducer::compile("def init: error(\"no\"); .", "r.jq").unwrap();
        assert_eq!(r.init(), Err("no".to_string()));
    }

    #[test]
    fn default_reducer() {
        let r = JqReducer::compile(super::super::DEFAULT_REDUCER, "default").unwrap();
        assert_eq!(r.init().unwrap(), None);
        let events = [
            r#"{"id":1,"type":"SignedUp","stream":"user-1","data":{"email":"a@b.c","tags":{"x":1}}}"#,
            r#"{"id":2,"type":"Renamed","stream":"user-1","data":{"name":"Ann","tags":{"y":2}}}"#,
            r#"{"id":3,"type":"Tick","data":{"n":1}}"#,
            r#"{"id":4,"type":"Tick","data":{"n":2}}"#,
            r#"{"id":5,"type":"Raw","stream":"s","data":[1,2]}"#,
            r#"{"id":6,"type":"Raw","stream":"s","data":{"k":1}}"#,
        ];
        let mut state = PVal::empty_obj();
        for e in events {
            state = r.apply(&state, &j(e)).unwrap();
        }
        assert_eq!(
            state,
            j(r#"{"user-1":{"email":"a@b.c","name":"Ann","tags":{"x":1,"y":2}},"Tick":{"n":2},"s":{"k":1}}"#)
        );
    }

    #[test]
    fn runaway_programs_stop() {
        let r = JqReducer::compile("last(range(1e12))", "t").unwrap();
        let e = run_last_within(100_000, &r.main, PVal::Null, PVal::Null).unwrap_err();
        assert!(e.contains("step limit"), "{e}");
        let r = JqReducer::compile("def f: .a | f; {a: .} | f", "t").unwrap();
        let e = run_last_within(100_000, &r.main, PVal::Null, PVal::Null).unwrap_err();
        assert!(e.contains("step limit"), "{e}");
        // The budget is per run: the next event runs normally.
        let r = JqReducer::compile(". + 1", "t").unwrap();
        assert_eq!(r.apply(&PVal::Int(1), &PVal::Null).unwrap(), PVal::Int(2));
    }

    /// Throughput of a typical reducer; run with
    /// `cargo test --release --lib -- --ignored --nocapture reducer_throughput`.
    #[test]
    #[ignore]
    fn reducer_throughput() {
        let code = ".users[$event.data.email] += {credits: $event.data.amount}";
        let r = JqReducer::compile(code, "bench").unwrap();
        let n = 200_000;
        let events: Vec<PVal> = (0..n)
            .map(|i| {
                j(&format!(
                    r#"{{"id":{i},"type":"CreditsAdded","stream":"user-{u}","data":{{"email":"user{u}@example.com","amount":{a}}}}}"#,
                    u = i % 50_000,
                    a = i % 100
                ))
            })
            .collect();
        let start = std::time::Instant::now();
        let mut state = PVal::empty_obj();
        for e in &events {
            state = r.apply(&state, e).unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!("{n} events in {secs:.3} s: {:.0} events/s", n as f64 / secs);
        let runaway = JqReducer::compile("last(range(1e12))", "t").unwrap();
        let start = std::time::Instant::now();
        assert!(runaway.apply(&PVal::Null, &PVal::Null).is_err());
        eprintln!(
            "a runaway event is stopped after {:.2} s",
            start.elapsed().as_secs_f64()
        );
        assert_eq!(
            state
                .as_obj()
                .and_then(|o| o.get("users"))
                .and_then(PVal::as_obj)
                .map(|u| u.len()),
            Some(50_000)
        );
    }

    #[test]
    fn recursion_without_values_is_an_error() {
        let t = std::thread::Builder::new().stack_size(2 << 20).spawn(|| {
            [
                "def f: f + 1; f",
                "def f: [f]; f",
                "def f: 1 + f; f",
                "def f: {a: f}; f",
            ]
            .map(|code| run_filter(code, &PVal::Int(1)))
        });
        for r in t.unwrap().join().unwrap() {
            assert_eq!(r, Err("reducer recursion too deep".to_string()));
        }
        // Tail recursion runs in constant stack.
        assert_eq!(
            run_filter("def f: if . < 100000 then . + 1 | f else . end; f", &PVal::Int(0)),
            Ok(vec![PVal::Int(100000)])
        );
    }

    #[test]
    #[ignore]
    fn recursion_depth_probe() {
        for stack in [2usize << 20, 8 << 20] {
            let t = std::thread::Builder::new().stack_size(stack).spawn(|| {
                let code = "def f: if . > 0 then (. - 1 | f) + 1 else 0 end; f";
                let mut n = 10;
                while run_filter(code, &PVal::Int(n)).is_ok() && n < 10_000_000 {
                    n = n * 5 / 4 + 1;
                }
                n
            });
            eprintln!("stack {stack}: fails at depth {}", t.unwrap().join().unwrap());
        }
    }

    #[test]
    fn deep_recursion_is_an_error() {
        // Runs on a thread with a small stack, as the fold's worker might.
        let t = std::thread::Builder::new().stack_size(2 << 20).spawn(|| {
            let code = "def f: if . > 0 then (. - 1 | f) + 1 else 0 end; f";
            (
                run_filter(code, &PVal::Int(50)),
                run_filter(code, &PVal::Int(1_000_000)),
            )
        });
        let (shallow, deep) = t.unwrap().join().unwrap();
        assert_eq!(shallow, Ok(vec![PVal::Int(50)]));
        let e = deep.unwrap_err();
        assert!(e.contains("too deep"), "{e}");
    }

    #[test]
    fn deep_values_do_not_crash() {
        let e = run_filter("reduce range(1200) as $i (null; [.]) | tojson", &PVal::Null).unwrap_err();
        assert!(e.contains("nested too deeply"), "{e}");
        // Objects too (built, printed, compared, dropped on a test
        // thread's small stack).
        let e = run_filter("reduce range(1200) as $i (null; {a: .}) | tojson", &PVal::Null).unwrap_err();
        assert!(e.contains("nested too deeply"), "{e}");
        let deep = || run_filter("reduce range(900) as $i (null; {a: ., b: $i})", &PVal::Null).unwrap();
        let (a, b) = (deep(), deep());
        assert!(a == b);
        assert!(crate::diff::diff(&a[0], &b[0]).is_empty());
        drop((a, b));
    }
}
