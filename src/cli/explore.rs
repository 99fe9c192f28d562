//! Launching the explorer (`evscope [SOURCE]`) and the demo writer
//! (`evscope demo --db PATH`).

use super::commands::{Failure, load_reducer, to_mapping};
use super::{MappingArgs, ReducerArgs};
use crate::demo;
use crate::image::{ImageOptions, MemoryImage};
use crate::log::{self, SourceKind, SourceSpec};
use crate::reduce::JqReducer;
use crate::tui::{self, Exit, app::SourceInfo};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// `evscope [SOURCE]`: the explorer on SOURCE, or the live demo.
pub fn explore(source: Option<&str>, mapping: &MappingArgs, reducer: &ReducerArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let options = reducer.image_options().map_err(Failure::usage)?;
    let Some(source) = source else {
        return explore_demo(options, started);
    };
    if source == "-" {
        return Err(Failure::usage(
            "the explorer reads keys from the terminal and tails a file, so it cannot read standard input; \
             save the events to a .jsonl file and open that",
        ));
    }
    // Compile first: a reducer error is reported before anything is read.
    let r = load_reducer(reducer)?;
    let mut spec = SourceSpec::parse(source, to_mapping(mapping)).map_err(|e| Failure::usage(e.0))?;
    if spec.kind == SourceKind::Jsonl && mapping.table.is_some() {
        return Err(Failure::usage(format!(
            "{source}: --table applies to SQLite sources only"
        )));
    }
    // The explorer tails the file: a last line without its newline may be
    // half written, so it waits for the next poll.
    spec.accept_partial_last_line = false;
    let progress_file = (spec.kind == SourceKind::Jsonl).then(|| spec.path.clone());
    // The worker restores from it before loading and saves to it after.
    let cache = super::cache::open(Some(&spec), &r.program, &r.init, reducer.no_cache);
    let image = MemoryImage::new(log::open(&spec)?, r.reducer, r.init, options);
    let info = SourceInfo {
        source: image.describe_source(),
        reducer: format!("reducer {}", r.name),
    };
    finish(tui::run(tui::Options {
        image,
        info,
        progress_file,
        started,
        cache,
    }))
}

/// `evscope` with no source: the bundled demo log in a temporary database,
/// with a writer appending to it while the explorer shows it.
fn explore_demo(options: ImageOptions, started: Instant) -> Result<(), Failure> {
    let dir = tempfile::tempdir()
        .map_err(|e| Failure::runtime(format!("cannot create a temporary directory for the demo: {e}")))?;
    let path = dir.path().join("evscope-demo.db");
    demo::write_demo_db(&path).map_err(Failure::runtime)?;
    let reducer = JqReducer::compile(demo::DEMO_REDUCER, "saas.jq")
        .map_err(|e| Failure::runtime(format!("the demo reducer does not compile: {e}")))?;
    let init = reducer
        .init()
        .map_err(|e| Failure::runtime(format!("the demo reducer's init failed: {e}")))?
        .unwrap_or_else(crate::value::PVal::empty_obj);
    let spec = SourceSpec::parse(&format!("sqlite:{}", path.display()), Default::default())
        .map_err(|e| Failure::runtime(e.0))?;
    let source = log::open(&spec)?;
    let image = MemoryImage::new(source, Arc::new(reducer), init, options);
    let info = SourceInfo {
        source: "live demo (a SaaS watching SQL queries; an event a second)".to_string(),
        reducer: "reducer saas.jq".to_string(),
    };
    // Dropping the writer stops it; the directory goes after it.
    let writer = demo::Writer::spawn(&path, demo::DEMO_INTERVAL);
    let result = tui::run(tui::Options {
        image,
        info,
        progress_file: None,
        started,
        // A new temporary database each time: nothing to reuse.
        cache: None,
    });
    drop(writer);
    drop(dir);
    finish(result)
}

fn finish(result: Result<Exit, String>) -> Result<(), Failure> {
    match result {
        Ok(Exit::Quit) => Ok(()),
        Ok(Exit::Signal(sig)) => Err(Failure {
            code: 128 + sig,
            message: format!("stopped by signal {sig}"),
        }),
        Err(e) => Err(Failure::runtime(e)),
    }
}

/// `evscope demo --db PATH`: write the demo log and its reducer, then keep
/// appending in the foreground until interrupted.
pub fn demo(db: &Path, every_ms: u64) -> Result<(), Failure> {
    if every_ms == 0 {
        return Err(Failure::usage("--every-ms must be at least 1"));
    }
    demo::write_demo_db(db).map_err(|e| {
        Failure::runtime(format!(
            "{e} (the demo writes a new file and never touches an existing one)"
        ))
    })?;
    let reducer = db.with_extension("jq");
    let reducer_note = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&reducer)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(demo::DEMO_REDUCER.as_bytes())
                .map_err(|e| Failure::runtime(format!("{}: {e}", reducer.display())))?;
            String::new()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            format!(" ({} already existed and was left as it is)", reducer.display())
        }
        Err(e) => return Err(Failure::runtime(format!("{}: {e}", reducer.display()))),
    };
    eprintln!(
        "evscope: writing the demo log to {db}, one event every {every_ms} ms; Ctrl-C stops.\n\
         evscope: in another terminal: evscope {db} --reducer {r}{reducer_note}",
        db = db.display(),
        r = reducer.display(),
    );
    let stop = AtomicBool::new(false);
    demo::run_writer(db, Duration::from_millis(every_ms), &stop).map_err(Failure::runtime)
}
