//! Fold, seek and diff on a big JSONL log, reported (not asserted).
//!
//!   python3 scripts/gen_bench_log.py 1000000 bench-data/1m.jsonl
//!   cargo bench --bench fold -- bench-data/1m.jsonl assets/examples/bench.jq
//!
//! or simply `scripts/bench.sh`. Prints events/s for the fold (checkpoints
//! on), peak RSS (VmHWM), and p50/p99 of `state_after` at random events and
//! of the diff at a random cursor.

use evscope::image::{ImageOptions, MemoryImage};
use evscope::log::{self, Mapping, SourceSpec};
use evscope::reduce::{JqReducer, Reducer};
use evscope::value::PVal;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static ALLOC: evscope::alloc::CountingAlloc = evscope::alloc::CountingAlloc;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    evscope::alloc::CountingAlloc::mark_installed();
    // `cargo bench` passes `--bench`; ignore flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let log_path = args
        .first()
        .cloned()
        .unwrap_or_else(|| "bench-data/1m.jsonl".into());
    let reducer_path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "assets/examples/bench.jq".into());
    // EVSCOPE_CHECKPOINT_EVERY=N; unset (or `auto`): the cost model picks.
    let interval: Option<usize> = std::env::var("EVSCOPE_CHECKPOINT_EVERY")
        .ok()
        .and_then(|s| s.parse().ok());
    // EVSCOPE_MEMORY=2G, or =none for no budget (default: the CLI's default).
    let budget = match std::env::var("EVSCOPE_MEMORY") {
        Ok(v) if v.eq_ignore_ascii_case("none") => None,
        Ok(v) => Some(evscope::alloc::parse_size(&v).expect("EVSCOPE_MEMORY is a size")),
        Err(_) => Some(evscope::image::DEFAULT_MEMORY_BUDGET),
    };
    if !std::path::Path::new(&log_path).exists() {
        eprintln!(
            "{log_path} does not exist; generate it with: python3 scripts/gen_bench_log.py 1000000 {log_path}"
        );
        std::process::exit(1);
    }
    let code = std::fs::read_to_string(&reducer_path).expect("reducer file");
    let reducer = JqReducer::compile(&code, &reducer_path).unwrap_or_else(|e| panic!("{e}"));
    let init = reducer.init().ok().flatten().unwrap_or_else(PVal::empty_obj);
    let reducer: Arc<dyn Reducer> = Arc::new(reducer);
    let spec = SourceSpec::parse(&log_path, Mapping::default()).expect("source");
    let source = log::open(&spec).expect("open");
    let mut image = MemoryImage::new(
        source,
        reducer,
        init,
        ImageOptions {
            checkpoint_interval: interval,
            memory_budget: budget,
            // EVSCOPE_SCRATCH=none: deltas in memory.
            scratch_dir: match std::env::var("EVSCOPE_SCRATCH").as_deref() {
                Ok("none") => None,
                _ => Some(evscope::image::default_scratch_dir()),
            },
        },
    );

    let t = Instant::now();
    // EVSCOPE_TRACE=N: print live heap and resident set every N events.
    let trace: usize = std::env::var("EVSCOPE_TRACE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut next_trace = trace;
    image
        .load(&mut |n| {
            if trace > 0 && n >= next_trace {
                next_trace += trace;
                eprintln!(
                    "{n} events: live heap {} MB, RSS {} MB",
                    evscope::alloc::used_bytes() >> 20,
                    evscope::alloc::rss_bytes().unwrap_or(0) >> 20
                );
            }
        })
        .expect("load");
    let secs = t.elapsed().as_secs_f64();
    let n = image.len();
    println!(
        "log: {log_path} ({n} events), reducer: {reducer_path}, checkpoint every {} ({}), memory budget {}",
        image.checkpoint_interval(),
        match image.event_cost() {
            Some(cost) => format!(
                "picked by the cost model: reducer {:.1} µs an event",
                cost.as_secs_f64() * 1e6
            ),
            None => "set".to_string(),
        },
        budget.map_or("none".to_string(), |b| format!("{} MB", b >> 20))
    );
    println!(
        "fold: {:.2} s, {:.0} events/s, {} checkpoints, {} reducer errors, {} invalid",
        secs,
        n as f64 / secs,
        image.checkpoint_count(),
        image.error_count(),
        image.invalid_count()
    );
    println!(
        "peak RSS after fold: {:.0} MB (live heap now {} MB)",
        peak_rss_mb(),
        evscope::alloc::used_bytes() >> 20
    );
    let (deltas, held, spilled) = image.delta_stats();
    println!(
        "deltas: {deltas} intervals, {:.1} MB in memory, {:.1} MB in the scratch file ({:.0} bytes an event)",
        held as f64 / (1 << 20) as f64,
        spilled as f64 / (1 << 20) as f64,
        (held + spilled) as f64 / (deltas * image.checkpoint_interval()).max(1) as f64
    );

    let (far, far_bytes, far_heads) = image.far_stats();
    println!(
        "far states: {far} in the scratch file, {:.1} MB (a seek reads {:.0} KB of one at once)",
        far_bytes as f64 / (1 << 20) as f64,
        far_heads as f64 / far.max(1) as f64 / 1024.0
    );
    let index = image.entries().bytes();
    println!(
        "index: {:.1} MB ({:.1} bytes an entry)",
        index as f64 / (1 << 20) as f64,
        index as f64 / n.max(1) as f64
    );

    let level_before = image.thin_level();
    // Seeks at pseudo-random events.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let samples: usize = std::env::var("EVSCOPE_SEEKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut seek = Vec::with_capacity(samples);
    let mut diffs = Vec::with_capacity(samples);
    for _ in 0..samples {
        let i = (next() % n.max(1) as u64) as usize;
        let t = Instant::now();
        let _state = image.state_after(i).expect("seek");
        seek.push(t.elapsed().as_secs_f64() * 1000.0);
        // The diff at a cursor once its two states are at hand (the
        // explorer keeps them; `after` is `before` with the event applied).
        let (before, after) = image.states_around(i).expect("seek");
        let t = Instant::now();
        let changes = evscope::diff::diff(&before, &after);
        diffs.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(changes);
    }
    seek.sort_by(|a, b| a.total_cmp(b));
    diffs.sort_by(|a, b| a.total_cmp(b));
    println!(
        "thinning level after the fold: {level_before}, after the seeks: {} ({} checkpoints)",
        image.thin_level(),
        image.checkpoint_count()
    );
    println!(
        "seek (state at a random event, {samples} samples): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&seek, 0.5),
        percentile(&seek, 0.99)
    );
    println!(
        "diff of the event at the cursor: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&diffs, 0.5),
        percentile(&diffs, 0.99)
    );
    println!("peak RSS: {:.0} MB", peak_rss_mb());
    // What a state costs on its own, sharing nothing: the last one,
    // parsed afresh from its JSON. Last, so that it is not in the peak.
    let text = image.last_state().to_json();
    let before = evscope::alloc::used_bytes();
    let whole = PVal::from_json(&text).expect("a state parses back");
    println!(
        "a whole state on its own: {:.1} MB in memory ({:.1} MB as JSON)",
        evscope::alloc::used_bytes().saturating_sub(before) as f64 / (1 << 20) as f64,
        text.len() as f64 / (1 << 20) as f64
    );
    drop((whole, text));
}
