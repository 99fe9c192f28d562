//! The command line: clap definitions and the headless commands.
//!
//! Output goes to stdout, messages to stderr. Exit codes: 0 success, 1 a
//! runtime failure (unreadable log, unknown id, problems found by `check`),
//! 2 bad usage (bad flags, a reducer that does not compile, bad `--init`).

mod cache;
pub mod commands;
mod explore;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub use commands::run;

#[derive(Parser, Debug)]
#[command(
    name = "evscope",
    version,
    about = "Explore event-sourced logs: fold them with a jq reducer, scrub through every state, diff any two.",
    args_conflicts_with_subcommands = true,
    after_help = "SOURCE is a path (.db .sqlite .sqlite3 → SQLite; .jsonl .ndjson → JSONL), \
                  sqlite:PATH or jsonl:PATH; - reads JSONL from standard input."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The log to explore (none: the bundled live demo).
    pub source: Option<String>,

    #[command(flatten)]
    pub mapping: MappingArgs,

    #[command(flatten)]
    pub reducer: ReducerArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the state after an event (default: the last) as JSON, keys sorted.
    State {
        source: String,
        /// The event id to stop after.
        #[arg(long)]
        at: Option<i64>,
        /// Compact output (one line).
        #[arg(short, long)]
        compact: bool,
        #[command(flatten)]
        mapping: MappingArgs,
        #[command(flatten)]
        reducer: ReducerArgs,
    },
    /// Print the changes an event made (--at), or between two events (--from/--to), as a JSON array.
    Diff {
        source: String,
        /// The event whose changes to print.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        at: Option<i64>,
        /// Compare the state after this event...
        #[arg(long, requires = "to")]
        from: Option<i64>,
        /// ...with the state after this one.
        #[arg(long, requires = "from")]
        to: Option<i64>,
        /// Compact output (one line).
        #[arg(short, long)]
        compact: bool,
        #[command(flatten)]
        mapping: MappingArgs,
        #[command(flatten)]
        reducer: ReducerArgs,
    },
    /// Print normalized events as JSON lines.
    Events {
        source: String,
        /// Only events with id >= A.
        #[arg(long)]
        from: Option<i64>,
        /// Only events with id <= B.
        #[arg(long)]
        to: Option<i64>,
        /// Only events of this type (repeatable).
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Only events of this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Print at most N events.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[command(flatten)]
        mapping: MappingArgs,
    },
    /// Report invalid events, reducer errors and duplicate ids; exit 1 if there are any.
    Check {
        source: String,
        /// One JSON object per problem instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        mapping: MappingArgs,
        #[command(flatten)]
        reducer: ReducerArgs,
    },
    /// Write the live demo log to a new SQLite file and keep appending to it (Ctrl-C stops).
    ///
    /// It also writes the demo's reducer next to it (PATH with the extension .jq) and prints
    /// the command that opens the log from another terminal.
    Demo {
        /// Where to write the demo database (must not exist yet).
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// Milliseconds between appended events.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        every_ms: u64,
    },
}

/// How to find the events in the source.
#[derive(Args, Debug, Clone, Default)]
pub struct MappingArgs {
    /// SQLite table holding the events.
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Column or field holding the event id.
    #[arg(long, value_name = "NAME")]
    pub id_col: Option<String>,
    /// Column or field holding the event type.
    #[arg(long, value_name = "NAME")]
    pub type_col: Option<String>,
    /// Column or field holding the event data.
    #[arg(long, value_name = "NAME")]
    pub data_col: Option<String>,
    /// Column or field holding the stream.
    #[arg(long, value_name = "NAME")]
    pub stream_col: Option<String>,
    /// Column or field holding the time.
    #[arg(long, value_name = "NAME")]
    pub time_col: Option<String>,
    /// Column or field holding the metadata.
    #[arg(long, value_name = "NAME")]
    pub meta_col: Option<String>,
}

/// Which reducer folds the events.
#[derive(Args, Debug, Clone, Default)]
pub struct ReducerArgs {
    /// A jq reducer file: `.` is the state, `$event` the event; may define `init`.
    #[arg(long, value_name = "FILE", conflicts_with = "reducer_expr")]
    pub reducer: Option<PathBuf>,
    /// A jq reducer given inline.
    #[arg(long, value_name = "PROGRAM")]
    pub reducer_expr: Option<String>,
    /// The initial state as JSON (default: the reducer's `init`, else {}).
    #[arg(long, value_name = "JSON")]
    pub init: Option<String>,
    /// Events between checkpoints (a seek replays at most this many after the
    /// checkpoint before its target); `auto` times the reducer on the first 4096
    /// events and picks a power of two from 64 to 512 whose replay takes about 10 ms.
    #[arg(long, value_name = "N|auto", default_value = "auto", value_parser = parse_spacing)]
    pub checkpoint_every: Spacing,
    /// Memory budget: past it, checkpoints far from the cursor are thinned
    /// (far seeks get slower, answers never change). K, M, G suffixes; `none` for no limit.
    /// The changes between checkpoints go to an unlinked scratch file in the cache
    /// directory (the temporary directory with --no-cache), outside the budget.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_budget)]
    pub memory: Budget,
    /// Neither read nor write the snapshot cache (folded logs of 100,000+ events saved in
    /// $EVSCOPE_CACHE_DIR, else $XDG_CACHE_HOME/evscope or ~/.cache/evscope).
    #[arg(long)]
    pub no_cache: bool,
}

/// A checkpoint spacing from the command line (`None`: the cost model's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Spacing(pub Option<usize>);

fn parse_spacing(text: &str) -> Result<Spacing, String> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(Spacing(None));
    }
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Spacing(Some(n))),
        _ => Err(format!(
            "{text:?} is not a number of events (at least 1) or `auto`"
        )),
    }
}

/// A memory budget from the command line (`None`: unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget(pub Option<usize>);

impl Default for Budget {
    fn default() -> Self {
        Budget(Some(crate::image::DEFAULT_MEMORY_BUDGET))
    }
}

fn parse_budget(text: &str) -> Result<Budget, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Budget(None));
    }
    crate::alloc::parse_size(text).map(|n| Budget(Some(n)))
}

impl ReducerArgs {
    /// The memory image's options from these flags.
    pub fn image_options(&self) -> Result<crate::image::ImageOptions, String> {
        Ok(crate::image::ImageOptions {
            checkpoint_interval: self.checkpoint_every.0,
            memory_budget: self.memory.0,
            scratch_dir: Some(match self.no_cache {
                true => std::env::temp_dir(),
                false => crate::image::default_scratch_dir(),
            }),
        })
    }
}
