//! The headless commands: `state`, `diff`, `events`, `check`.

use super::{Cli, Command, MappingArgs, ReducerArgs};
use crate::image::{MemoryImage, Status};
use crate::log::{self, Mapping, SourceSpec};
use crate::reduce::{DEFAULT_REDUCER, JqReducer, Reducer};
use crate::value::PVal;
use clap::Parser;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// A failure with its exit code and message.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub(crate) fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<log::SourceError> for Failure {
    fn from(e: log::SourceError) -> Failure {
        Failure::runtime(e.0)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::runtime(format!("writing output: {e}"))
    }
}

/// Parse the command line, run it, and return the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match dispatch(cli) {
        Ok(()) => 0,
        Err(f) if f.code == 0 => 0,
        Err(f) => {
            eprintln!("evscope: {}", f.message);
            f.code
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    // The explorer and the demo writer own the terminal: they run before
    // stdout is locked for the printers (a panic or signal handler on
    // another thread must be able to write to it to restore the terminal).
    match &cli.command {
        None => return super::explore::explore(cli.source.as_deref(), &cli.mapping, &cli.reducer),
        Some(Command::Demo { db, every_ms }) => return super::explore::demo(db, *every_ms),
        _ => {}
    }
    let out = io::stdout();
    let mut out = io::BufWriter::new(out.lock());
    let result = match cli.command {
        Some(Command::State {
            source,
            at,
            compact,
            mapping,
            reducer,
        }) => cmd_state(&mut out, &source, at, compact, &mapping, &reducer),
        Some(Command::Diff {
            source,
            at,
            from,
            to,
            compact,
            mapping,
            reducer,
        }) => cmd_diff(&mut out, &source, at, from.zip(to), compact, &mapping, &reducer),
        Some(Command::Events {
            source,
            from,
            to,
            types,
            stream,
            limit,
            mapping,
        }) => {
            let filter = EventFilter {
                from,
                to,
                types,
                stream,
                limit,
            };
            cmd_events(&mut out, &source, &filter, &mapping)
        }
        Some(Command::Check {
            source,
            json,
            mapping,
            reducer,
        }) => cmd_check(&mut out, &source, json, &mapping, &reducer),
        // Handled above, before stdout is locked.
        None | Some(Command::Demo { .. }) => Ok(()),
    };
    let flushed = out.flush();
    match (result, flushed) {
        (Err(f), _) => Err(quiet_broken_pipe(f)),
        (Ok(()), Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        (Ok(()), Err(e)) => Err(e.into()),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// A reader that went away (`evscope events x | head`) is not an error.
fn quiet_broken_pipe(f: Failure) -> Failure {
    if f.message.contains("Broken pipe") {
        Failure {
            code: 0,
            message: String::new(),
        }
    } else {
        f
    }
}

pub(crate) fn to_mapping(m: &MappingArgs) -> Mapping {
    Mapping {
        table: m.table.clone(),
        id: m.id_col.clone(),
        ty: m.type_col.clone(),
        data: m.data_col.clone(),
        stream: m.stream_col.clone(),
        time: m.time_col.clone(),
        meta: m.meta_col.clone(),
    }
}

/// An opened source. Standard input is first copied to a temporary file
/// (kept alive here) so bodies can be read again by offset.
struct Opened {
    source: Box<dyn log::LogSource>,
    /// The parsed SOURCE (`None` for standard input, which is not cached).
    spec: Option<SourceSpec>,
    _spool: Option<tempfile::NamedTempFile>,
}

fn open_source(arg: &str, mapping: &MappingArgs) -> Result<Opened, Failure> {
    if arg == "-" {
        let mut spool = tempfile::NamedTempFile::new().map_err(|e| {
            Failure::runtime(format!("cannot create a temporary file for standard input: {e}"))
        })?;
        let mut buf = Vec::new();
        io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::runtime(format!("<stdin>: {e}")))?;
        spool
            .write_all(&buf)
            .and_then(|_| spool.flush())
            .map_err(|e| Failure::runtime(format!("cannot spool standard input: {e}")))?;
        let spec = SourceSpec {
            kind: log::SourceKind::Jsonl,
            path: spool.path().to_path_buf(),
            display: "<stdin>".to_string(),
            mapping: to_mapping(mapping),
            accept_partial_last_line: true,
        };
        let source = log::open(&spec)?;
        return Ok(Opened {
            source,
            spec: None,
            _spool: Some(spool),
        });
    }
    let spec = SourceSpec::parse(arg, to_mapping(mapping)).map_err(|e| Failure::usage(e.0))?;
    if spec.kind == log::SourceKind::Jsonl && mapping.table.is_some() {
        return Err(Failure::usage(format!(
            "{arg}: --table applies to SQLite sources only"
        )));
    }
    Ok(Opened {
        source: log::open(&spec)?,
        spec: Some(spec),
        _spool: None,
    })
}

/// The compiled reducer and the initial state, from the reducer flags.
pub struct LoadedReducer {
    pub reducer: Arc<dyn Reducer>,
    pub init: PVal,
    /// How to name it (file name, `--reducer-expr`, or `default`).
    pub name: String,
    /// The program text (part of the snapshot cache's key).
    pub program: String,
}

/// Compile the reducer (before anything is read) and work out the initial
/// state: `--init`, else the program's `init`, else `{}`.
pub fn load_reducer(args: &ReducerArgs) -> Result<LoadedReducer, Failure> {
    let (code, name) = if let Some(path) = &args.reducer {
        let code = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("{}: cannot read reducer: {e}", path.display())))?;
        (code, path.display().to_string())
    } else if let Some(expr) = &args.reducer_expr {
        (expr.clone(), "--reducer-expr".to_string())
    } else {
        (DEFAULT_REDUCER.to_string(), "default".to_string())
    };
    let jq = JqReducer::compile(&code, &name)
        .map_err(|e| Failure::usage(format!("reducer does not compile: {e}")))?;
    let init = match &args.init {
        Some(text) => {
            PVal::from_json(text).map_err(|e| Failure::usage(format!("--init is not valid JSON: {e}")))?
        }
        None => jq
            .init()
            .map_err(|e| Failure::usage(format!("{name}: `init` failed: {e}")))?
            .unwrap_or_else(PVal::empty_obj),
    };
    Ok(LoadedReducer {
        reducer: Arc::new(jq),
        init,
        name,
        program: code,
    })
}

struct Loaded {
    /// Never dropped: a headless command exits right after printing, and
    /// freeing the index of a 10M-event log entry by entry would add a
    /// quarter of a second to every answer.
    image: std::mem::ManuallyDrop<MemoryImage>,
    _opened_spool: Option<tempfile::NamedTempFile>,
}

fn load_image(source: &str, mapping: &MappingArgs, reducer: &ReducerArgs) -> Result<Loaded, Failure> {
    let options = reducer.image_options().map_err(Failure::usage)?;
    // Compile first: a reducer error is reported before anything is read.
    let r = load_reducer(reducer)?;
    let opened = open_source(source, mapping)?;
    let cache = super::cache::open(opened.spec.as_ref(), &r.program, &r.init, reducer.no_cache);
    let mut image = MemoryImage::new(opened.source, r.reducer, r.init, options);
    // A valid snapshot leaves only what was appended since to fold.
    let restored = cache.as_ref().and_then(|c| super::cache::restore(c, &mut image));
    let mut progress = Progress::new();
    let loaded = image.load(&mut |n| progress.show(n));
    progress.finish();
    loaded?;
    if let Some(c) = &cache {
        super::cache::save(c, &mut image, restored);
    }
    Ok(Loaded {
        image: std::mem::ManuallyDrop::new(image),
        _opened_spool: opened._spool,
    })
}

/// Load progress on stderr, only when stderr is a terminal (never in a pipe
/// or a log file), at most five times a second.
struct Progress {
    tty: bool,
    started: std::time::Instant,
    last: Option<std::time::Instant>,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            tty: io::stderr().is_terminal(),
            started: std::time::Instant::now(),
            last: None,
        }
    }

    fn show(&mut self, events: usize) {
        let now = std::time::Instant::now();
        if !self.tty
            || now.duration_since(self.started).as_millis() < 300
            || self.last.is_some_and(|t| now.duration_since(t).as_millis() < 200)
        {
            return;
        }
        self.last = Some(now);
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        eprint!(
            "\r\x1b[Kevscope: folding… {events} events ({:.0}/s)",
            events as f64 / secs
        );
    }

    fn finish(&mut self) {
        if self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// Say on stderr what the fold skipped among the first `count` entries, so
/// a state is never silently partial.
fn warn_skipped(image: &MemoryImage, source: &str, count: usize) {
    let problems = image.entries().problems().iter().take_while(|(i, _)| *i < count);
    let (inv, err) = problems.fold((0, 0), |(inv, err), (_, s)| match s {
        Status::Invalid(_) => (inv + 1, err),
        _ => (inv, err + 1),
    });
    if inv + err > 0 {
        eprintln!(
            "evscope: warning: {inv} invalid event{} and {err} reducer error{} were skipped; \
             run `evscope check {source}` for details",
            if inv == 1 { "" } else { "s" },
            if err == 1 { "" } else { "s" },
        );
    }
}

fn index_of(image: &MemoryImage, id: i64) -> Result<usize, Failure> {
    image.index_of(id).map_err(|m| Failure::runtime(m.to_string()))
}

/// Streamed, not built as one string first: a big state's text would
/// take tens of megabytes beside the state.
fn print_json(out: &mut dyn Write, v: &PVal, compact: bool) -> Result<(), Failure> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut *out);
    let written = if compact {
        serde_json::to_writer(&mut w, v)
    } else {
        serde_json::to_writer_pretty(&mut w, v)
    };
    written.map_err(std::io::Error::from)?;
    writeln!(w)?;
    w.flush()?;
    Ok(())
}

fn cmd_state(
    out: &mut dyn Write,
    source: &str,
    at: Option<i64>,
    compact: bool,
    mapping: &MappingArgs,
    reducer: &ReducerArgs,
) -> Result<(), Failure> {
    let mut loaded = load_image(source, mapping, reducer)?;
    let image = &mut loaded.image;
    let (state, upto) = match at {
        Some(id) => {
            let i = index_of(image, id)?;
            (image.state_after(i)?, i + 1)
        }
        None => (image.last_state().clone(), image.len()),
    };
    warn_skipped(image, source, upto);
    print_json(out, &state, compact)
}

fn cmd_diff(
    out: &mut dyn Write,
    source: &str,
    at: Option<i64>,
    range: Option<(i64, i64)>,
    compact: bool,
    mapping: &MappingArgs,
    reducer: &ReducerArgs,
) -> Result<(), Failure> {
    if at.is_none() && range.is_none() {
        return Err(Failure::usage("diff needs --at ID, or --from A --to B"));
    }
    let mut loaded = load_image(source, mapping, reducer)?;
    let image = &mut loaded.image;
    let (changes, upto) = if let Some(id) = at {
        let i = index_of(image, id)?;
        if let Some(e) = image.entry(i) {
            match &e.status {
                Status::Invalid(inv) => eprintln!(
                    "evscope: event {id} is invalid ({}: {}); it changed nothing",
                    inv.place, inv.reason
                ),
                Status::ReducerError(msg) => {
                    eprintln!("evscope: the reducer failed on event {id} ({msg}); it changed nothing")
                }
                Status::Ok => {}
            }
        }
        // Its own failure was reported above; count what came before it.
        (image.changes_at(i)?, i)
    } else if let Some((a, b)) = range {
        let (i, j) = (index_of(image, a)?, index_of(image, b)?);
        (image.changes_between(i, j)?, i.max(j) + 1)
    } else {
        (Vec::new(), 0)
    };
    warn_skipped(image, source, upto);
    let list = PVal::arr(changes.iter().map(|c| c.to_pval()));
    print_json(out, &list, compact)
}

struct EventFilter {
    from: Option<i64>,
    to: Option<i64>,
    types: Vec<String>,
    stream: Option<String>,
    limit: Option<usize>,
}

impl EventFilter {
    fn keeps(&self, ev: &log::Event) -> bool {
        self.from.is_none_or(|a| ev.id >= a)
            && self.to.is_none_or(|b| ev.id <= b)
            && (self.types.is_empty() || self.types.iter().any(|t| **t == *ev.ty))
            && self
                .stream
                .as_ref()
                .is_none_or(|s| ev.stream.as_deref() == Some(s.as_str()))
    }
}

fn cmd_events(
    out: &mut dyn Write,
    source: &str,
    filter: &EventFilter,
    mapping: &MappingArgs,
) -> Result<(), Failure> {
    let mut opened = open_source(source, mapping)?;
    let mut printed = 0usize;
    let mut write_err: Option<io::Error> = None;
    let mut invalid = 0usize;
    loop {
        if filter.limit.is_some_and(|n| printed >= n) || write_err.is_some() {
            break;
        }
        let n = opened.source.read_new(Some(65_536), &mut |rec| {
            if write_err.is_some() || filter.limit.is_some_and(|n| printed >= n) {
                return;
            }
            match rec.body {
                Ok(ev) => {
                    if filter.keeps(&ev) {
                        if let Err(e) = writeln!(out, "{}", ev.to_pval().to_json()) {
                            write_err = Some(e);
                        }
                        printed += 1;
                    }
                }
                Err(inv) => {
                    invalid += 1;
                    eprintln!(
                        "evscope: warning: {}: skipped invalid event: {}",
                        inv.place, inv.reason
                    );
                }
            }
        })?;
        if n == 0 {
            break;
        }
    }
    if let Some(e) = write_err {
        return Err(e.into());
    }
    let _ = invalid;
    Ok(())
}

fn cmd_check(
    out: &mut dyn Write,
    source: &str,
    json: bool,
    mapping: &MappingArgs,
    reducer: &ReducerArgs,
) -> Result<(), Failure> {
    let loaded = load_image(source, mapping, reducer)?;
    let image = &loaded.image;
    let mut problems = 0usize;
    let describe = image.describe_source();
    let entries = image.entries();
    for (i, status) in entries.problems() {
        let (id, ty) = (
            entries.id(*i).unwrap_or_default(),
            entries.ty(*i).cloned().unwrap_or_default(),
        );
        match status {
            Status::Ok => {}
            Status::Invalid(inv) => {
                problems += 1;
                if json {
                    let v = serde_json::json!({"kind": "invalid", "id": inv.id, "place": inv.place, "reason": inv.reason});
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(out, "{}: invalid event: {}", inv.place, inv.reason)?;
                }
            }
            Status::ReducerError(msg) => {
                problems += 1;
                if json {
                    let v = serde_json::json!({"kind": "reducer_error", "id": id, "type": &*ty, "message": &**msg});
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(out, "event {id} ({ty}): reducer error: {msg}")?;
                }
            }
        }
    }
    let dups = image.duplicate_ids();
    for (id, idxs) in &dups {
        problems += 1;
        if json {
            let v = serde_json::json!({"kind": "duplicate_id", "id": id, "count": idxs.len()});
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "event {id}: duplicate id ({} records)", idxs.len())?;
        }
    }
    let summary = format!(
        "{describe}: {} events, {} invalid, {} reducer errors, {} duplicate ids",
        image.len(),
        image.invalid_count(),
        image.error_count(),
        dups.len()
    );
    if json {
        eprintln!("evscope: {summary}");
    } else {
        writeln!(out, "{summary}")?;
    }
    if problems > 0 {
        out.flush()?;
        return Err(Failure {
            code: 1,
            message: format!("{problems} problem{} found", if problems == 1 { "" } else { "s" }),
        });
    }
    Ok(())
}
