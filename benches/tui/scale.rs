//! `cargo bench --bench tui -- --scale LOG`: the figures of a big log, each
//! in the real explorer in tmux at 200x50, folded by
//! `assets/examples/bench.jq`.
//!
//! LOG is copied to a temporary directory first (the live tail appends to
//! the copy, never to LOG), and the snapshot cache lives in temporary
//! directories too, so every run starts cold. In order:
//!
//! 1. **Open, empty cache**: the time to the first frame (`first_frame_us`
//!    in the frame log), to the end of the load (`loaded_us`), and until the
//!    snapshot file appears in `$EVSCOPE_CACHE_DIR`; the explorer's peak
//!    RSS (VmHWM). Then `q`.
//! 2. **Headless** (unless `--no-headless`): `evscope state COPY --reducer
//!    bench.jq > file` under `/usr/bin/time -v`, cold (an empty cache
//!    directory of its own, so it includes saving the snapshot) and warm
//!    (that cache present): wall time, peak RSS, what the cache did
//!    (`EVSCOPE_DEBUG_CACHE=1`), and whether both printed the same state.
//! 3. **Reopen** with the cache of 1: first frame, `loaded_us`, and the time
//!    from starting tmux until the status bar says "● live".
//! 4. **Live tail**, in that same session a second after it is live: this
//!    process appends `--rate` events a second (default 1,000) for
//!    `--tail-secs` seconds (default 10), one `write` of one line each, to
//!    the copy. They continue the generator's log: Credited and LoggedIn
//!    for users alive at the end of it (read from its last 8 MB), ids after
//!    its last id, times a few seconds apart after its last time. Meanwhile
//!    a thread polls the status bar (`tmux capture-pane` of the last line,
//!    then `--poll-ms` of sleep, default 5) for the event count ("X/Y": Y is
//!    the number of events the explorer knows). An event counts as shown by
//!    the first poll whose Y includes it; its latency is from the end of its
//!    `write` to the end of that poll, an upper bound (the lower bound, to
//!    the start of the poll before, is printed too). If the frame log has
//!    `frame_unix_us T events N` lines (one per frame drawn: wall-clock
//!    time after the frame was written, events the frame showed), the exact
//!    figures are printed as well.
//!
//! The load average is printed before each step: the machine is shared.

use super::{Session, bench_reducer, evscope_bin, load_average, report};
use evscope::calendar::{civil_from_days, days_from_civil};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: cargo bench --bench tui -- --scale LOG [--tail-secs S] [--rate N] \
                     [--poll-ms MS] [--timeout-secs S] [--no-headless] [--keep]";

pub struct Options {
    pub log: PathBuf,
    /// How long the live tail appends.
    pub tail_secs: f64,
    /// Appended events a second.
    pub rate: u32,
    /// Sleep between two polls of the status bar.
    pub poll_ms: u64,
    /// How long a full load may take.
    pub timeout: Duration,
    /// Run `evscope state` cold and warm.
    pub headless: bool,
    /// Leave the temporary directory (the copy with the appended events,
    /// the caches, the printed states).
    pub keep: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            log: PathBuf::new(),
            tail_secs: 10.0,
            rate: 1000,
            poll_ms: 5,
            timeout: Duration::from_secs(1800),
            headless: true,
            keep: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value\n{USAGE}"));
            let number = |v: &String| -> Result<f64, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n > 0.0)
                    .ok_or_else(|| format!("{a}: not a positive number: {v}\n{USAGE}"))
            };
            match a.as_str() {
                "--bench" => {}
                "--scale" => o.log = PathBuf::from(value()?),
                "--tail-secs" => o.tail_secs = number(value()?)?,
                "--rate" => o.rate = number(value()?)? as u32,
                "--poll-ms" => o.poll_ms = number(value()?)? as u64,
                "--timeout-secs" => o.timeout = Duration::from_secs_f64(number(value()?)?),
                "--no-headless" => o.headless = false,
                "--keep" => o.keep = true,
                _ => return Err(format!("unknown argument {a}\n{USAGE}")),
            }
        }
        if o.log.as_os_str().is_empty() {
            return Err(USAGE.into());
        }
        if o.rate == 0 {
            return Err(format!("--rate must be at least 1\n{USAGE}"));
        }
        Ok(o)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn us_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn mb(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} MB"))
}

/// The number of events in the status bar ("cursor/known": the known part).
fn status_count(bar: &str) -> Option<usize> {
    bar.split_whitespace().rev().find_map(|tok| {
        let (pos, known) = tok.split_once('/')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b',');
        if !(pos == "-" || digits(pos)) || !digits(known) {
            return None;
        }
        known.replace(',', "").parse().ok()
    })
}

/// The snapshot file in a cache directory (not a temporary one being
/// written), with its size.
fn snapshot_file(dir: &Path) -> Option<(PathBuf, u64)> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name();
        let meta = e.metadata().ok()?;
        (meta.is_file() && !name.to_string_lossy().starts_with('.')).then(|| (e.path(), meta.len()))
    })
}

pub fn run(o: &Options) -> Result<(), String> {
    let meta = std::fs::metadata(&o.log).map_err(|e| format!("{}: {e}", o.log.display()))?;
    let bin = evscope_bin();
    let bin_meta = std::fs::metadata(&bin).map_err(|e| {
        format!(
            "no evscope binary at {} ({e}); build it or set EVSCOPE_BIN",
            bin.display()
        )
    })?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# scale: {} ({:.0} MB)", o.log.display(), meta.len() as f64 / 1e6);
    println!(
        "binary {} ({} bytes, modified at {} s since the epoch), tmux {}x{}, {cores} cores, load average {}",
        bin.display(),
        bin_meta.len(),
        bin_meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or("?".into(), |d| d.as_secs().to_string()),
        super::WIDTH,
        super::HEIGHT,
        load_average()
    );

    let work = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let name = o.log.file_name().ok_or("LOG names no file")?;
    let log = work.path().join(name);
    let t = Instant::now();
    std::fs::copy(&o.log, &log)
        .map_err(|e| format!("copying {} to {}: {e}", o.log.display(), log.display()))?;
    println!(
        "copied to {} in {:.1} s (the tail appends to the copy)",
        log.display(),
        t.elapsed().as_secs_f64()
    );
    let cache_tui = work.path().join("cache-tui");
    let cache_cli = work.path().join("cache-cli");
    for d in [&cache_tui, &cache_cli] {
        std::fs::create_dir(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut sum = Summary {
        load_start: load_average(),
        ..Summary::default()
    };

    println!(
        "\n## 1. open with an empty snapshot cache (full fold)   [load average {}]",
        load_average()
    );
    cold_open(o, &log, &cache_tui, &mut sum)?;

    if o.headless {
        println!(
            "\n## 2. evscope state, cold then warm   [load average {}]",
            load_average()
        );
        sum.cold = Some(headless(
            "cold (empty cache dir)",
            &log,
            &cache_cli,
            &work.path().join("state-cold.json"),
        )?);
        sum.warm = Some(headless(
            "warm (cache present)",
            &log,
            &cache_cli,
            &work.path().join("state-warm.json"),
        )?);
        let read = |name: &str| std::fs::read(work.path().join(name)).ok();
        let same = matches!(
            (read("state-cold.json"), read("state-warm.json")),
            (Some(a), Some(b)) if a == b
        );
        println!(
            "cold and warm printed the same state: {}",
            if same { "yes" } else { "NO" }
        );
        sum.same_state = Some(same);
    }

    // Read before the reopen, so it is not part of any figure.
    let tail = LogTail::read(&log)?;
    println!(
        "\n## 3. reopen with the snapshot cache   [load average {}]",
        load_average()
    );
    let s = Session::launch(&log, &[("EVSCOPE_CACHE_DIR", &cache_tui)], &[])?;
    let reopen = open(o, &s, true)?;
    println!("peak RSS so far                      {:>10}", mb(reopen.rss_mb));
    sum.reopen = Some(reopen);

    println!("\n## 4. live tail   [load average {}]", load_average());
    std::thread::sleep(Duration::from_secs(1));
    live_tail(o, &s, &log, &tail, &mut sum)?;
    println!("peak RSS of the explorer             {:>10}", mb(s.peak_rss_mb()));
    s.quit(Duration::from_secs(30))?;
    drop(s);

    sum.load_end = load_average();
    sum.print(o);
    if o.keep {
        println!("kept {}", work.keep().display());
    }
    Ok(())
}

/// What one opening of the log showed.
struct Open {
    /// Process start to the first frame (frame log).
    first_us: u64,
    /// tmux started to the status bar on screen.
    first_seen: Duration,
    /// Process start to the first frame after the load (frame log).
    loaded_us: u64,
    /// tmux started to "● live" on screen (polled every 10 ms).
    live_seen: Option<Duration>,
    events: Option<usize>,
    rss_mb: Option<f64>,
}

/// Wait for the explorer's first frame and for the end of its load.
/// `watch_live`: also poll the screen for "● live" meanwhile (not during
/// a long fold: each `capture-pane` takes CPU from it).
fn open(o: &Options, s: &Session, watch_live: bool) -> Result<Open, String> {
    let first_seen = s.wait("the first frame on screen", Duration::from_secs(60), || {
        s.status_bar().contains("evscope").then(|| s.spawned.elapsed())
    })?;
    let first_us = s.wait("first_frame_us", Duration::from_secs(10), || {
        s.lines("first_frame_us").first().copied()
    })?;
    println!(
        "first frame                          {:>10.1} ms (on screen {:.1} ms after starting tmux)",
        us_ms(first_us),
        ms(first_seen)
    );
    let live_seen = if watch_live {
        let mut last = Instant::now();
        Some(s.wait("\"● live\" in the status bar", o.timeout, || {
            if last.elapsed() < Duration::from_millis(10) {
                return None;
            }
            last = Instant::now();
            s.status_bar().contains("● live").then(|| s.spawned.elapsed())
        })?)
    } else {
        None
    };
    let loaded_us = s.wait("the load to finish", o.timeout, || {
        s.lines("loaded_us").first().copied()
    })?;
    let rss_mb = s.peak_rss_mb();
    println!(
        "last state reached (loaded_us)       {:>10.1} ms{}",
        us_ms(loaded_us),
        live_seen.map_or(String::new(), |d| format!(
            " (\"● live\" on screen {:.1} ms after starting tmux)",
            ms(d)
        ))
    );
    let events = status_count(&s.status_bar());
    println!(
        "events shown                         {:>10}",
        events.map_or("?".into(), |c| c.to_string())
    );
    Ok(Open {
        first_us,
        first_seen,
        loaded_us,
        live_seen,
        events,
        rss_mb,
    })
}

fn cold_open(o: &Options, log: &Path, cache: &Path, sum: &mut Summary) -> Result<(), String> {
    let s = Session::launch(log, &[("EVSCOPE_CACHE_DIR", cache)], &[])?;
    let cold = open(o, &s, false)?;
    let loaded_at = Instant::now();
    println!("peak RSS at that frame               {:>10}", mb(cold.rss_mb));
    let (file, size) = s.wait("the snapshot file", Duration::from_secs(900), || {
        snapshot_file(cache)
    })?;
    let saved = loaded_at.elapsed();
    let rss = s.peak_rss_mb();
    println!(
        "snapshot saved after the load        {:>10.1} ms ({:.0} MB, {})",
        ms(saved),
        size as f64 / 1e6,
        file.display()
    );
    println!("peak RSS after the save              {:>10}", mb(rss));
    s.quit(Duration::from_secs(60))?;
    sum.events = cold.events;
    sum.cold_open = Some((cold, saved, rss));
    Ok(())
}

/// One `evscope state` run.
struct Headless {
    wall: Duration,
    rss_mb: Option<f64>,
}

fn headless(label: &str, log: &Path, cache: &Path, out: &Path) -> Result<Headless, String> {
    let bin = evscope_bin();
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.is_file() {
        let mut c = Command::new(time);
        c.arg("-v").arg(&bin);
        c
    } else {
        println!("(no /usr/bin/time: apt-get install time; peak RSS not measured)");
        Command::new(&bin)
    };
    let stdout = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    cmd.arg("state")
        .arg(log)
        .arg("--reducer")
        .arg(bench_reducer())
        .env("EVSCOPE_CACHE_DIR", cache)
        .env("EVSCOPE_DEBUG_CACHE", "1")
        .stdin(Stdio::null())
        .stdout(stdout);
    let t = Instant::now();
    let result = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    let wall = t.elapsed();
    let err = String::from_utf8_lossy(&result.stderr);
    if !result.status.success() {
        return Err(format!(
            "evscope state failed ({}): {}",
            result.status,
            err.trim()
        ));
    }
    let field = |name: &str| {
        err.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let rss_mb = field("Maximum resident set size (kbytes):")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0);
    let elapsed = field("Elapsed (wall clock) time (h:mm:ss or m:ss):").unwrap_or_else(|| "?".into());
    println!(
        "{label:<24} wall {:>8.2} s (time -v: {elapsed}), peak RSS {}",
        wall.as_secs_f64(),
        mb(rss_mb)
    );
    for l in err.lines().filter(|l| l.starts_with("evscope:")) {
        println!("    {l}");
    }
    Ok(Headless { wall, rss_mb })
}

/// What the live tail appends after: the end of the generated log.
struct LogTail {
    last_id: u64,
    /// Seconds since the epoch of the last event's time.
    last_time: i64,
    /// (stream, e-mail) of users alive at the end of the log.
    users: Vec<(String, String)>,
}

impl LogTail {
    /// Read the last 8 MB of `log`: the last id and time, and each user
    /// whose last event there is not a deletion.
    fn read(log: &Path) -> Result<LogTail, String> {
        let err = |e: std::io::Error| format!("{}: {e}", log.display());
        let mut f = File::open(log).map_err(err)?;
        let len = f.metadata().map_err(err)?.len();
        let start = len.saturating_sub(8 << 20);
        f.seek(SeekFrom::Start(start)).map_err(err)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(err)?;
        if bytes.last() != Some(&b'\n') {
            return Err(format!("{} does not end with a newline", log.display()));
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        if start > 0 {
            lines.next(); // most likely cut
        }
        let mut last_id = None;
        let mut last_time = None;
        let mut users: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for line in lines {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(id) = v["id"].as_u64() {
                last_id = Some(last_id.map_or(id, |l: u64| l.max(id)));
            }
            if let Some(t) = v["time"].as_str().and_then(parse_time) {
                last_time = Some(t);
            }
            if let (Some(stream), Some(email)) = (v["stream"].as_str(), v["data"]["email"].as_str()) {
                let alive = v["type"].as_str() != Some("UserDeleted");
                users.insert(stream.to_string(), (email.to_string(), alive));
            }
        }
        let users: Vec<_> = users
            .into_iter()
            .filter(|(_, (_, alive))| *alive)
            .map(|(s, (e, _))| (s, e))
            .collect();
        match (last_id, last_time) {
            (Some(last_id), Some(last_time)) if !users.is_empty() => Ok(LogTail {
                last_id,
                last_time,
                users,
            }),
            _ => Err(format!(
                "{}: no ids, times or live users in its last 8 MB (not a log from scripts/gen_bench_log.py?)",
                log.display()
            )),
        }
    }

    /// `n` more events: Credited (55%) or LoggedIn for live users, the way
    /// the generator writes them, each a line with its newline.
    fn events(&self, n: usize) -> Vec<String> {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut t = self.last_time;
        (1..=n as u64)
            .map(|i| {
                let id = self.last_id + i;
                t += (next() % 4) as i64;
                let ts = format_time(t);
                let (stream, email) = &self.users[(next() % self.users.len() as u64) as usize];
                let stream = serde_json::to_string(stream).unwrap_or_default();
                let email = serde_json::to_string(email).unwrap_or_default();
                if next() % 100 < 55 {
                    let amount = (next() % 500) * 10 + 10;
                    format!(
                        "{{\"id\":{id},\"type\":\"Credited\",\"stream\":{stream},\"time\":\"{ts}\",\
                         \"data\":{{\"email\":{email},\"amount\":{amount}}}}}\n"
                    )
                } else {
                    let ip = next() as u32;
                    let [a, b, c, d] = ip.to_be_bytes();
                    format!(
                        "{{\"id\":{id},\"type\":\"LoggedIn\",\"stream\":{stream},\"time\":\"{ts}\",\
                         \"data\":{{\"email\":{email},\"ip\":\"{a}.{b}.{c}.{d}\"}}}}\n"
                    )
                }
            })
            .collect()
    }
}

/// `2026-01-05T09:00:00Z` → seconds since the epoch.
fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some(days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

fn format_time(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// One look at the status bar.
struct Poll {
    start: Instant,
    end: Instant,
    count: Option<usize>,
}

fn live_tail(o: &Options, s: &Session, log: &Path, tail: &LogTail, sum: &mut Summary) -> Result<(), String> {
    let n0 = s.wait(
        "the event count in the status bar",
        Duration::from_secs(10),
        || status_count(&s.status_bar()),
    )?;
    let m = ((o.tail_secs * o.rate as f64).round() as usize).max(1);
    let lines = tail.events(m);
    println!(
        "{n0} events shown; appending {m} events ({} a second for {} s, ids {}..={}), polling the status bar with {} ms between polls",
        o.rate,
        o.tail_secs,
        tail.last_id + 1,
        tail.last_id + m as u64,
        o.poll_ms
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    // Instants and the wall clock the explorer's frame log would use.
    let (base_i, base_wall) = (Instant::now(), SystemTime::now());
    let stop = AtomicBool::new(false);
    let interval = Duration::from_secs_f64(1.0 / o.rate as f64);
    let (writes, polls, lag) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let mut polls = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let start = Instant::now();
                let count = status_count(&s.status_bar());
                polls.push(Poll {
                    start,
                    end: Instant::now(),
                    count,
                });
                std::thread::sleep(Duration::from_millis(o.poll_ms));
            }
            polls
        });
        std::thread::sleep(Duration::from_millis(100));
        let mut writes = Vec::with_capacity(m);
        let mut lag = Duration::ZERO;
        let t0 = Instant::now();
        let mut failed = None;
        for (i, line) in lines.iter().enumerate() {
            let due = t0 + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else {
                lag = lag.max(now - due);
            }
            if let Err(e) = file.write_all(line.as_bytes()) {
                failed = Some(format!("appending to {}: {e}", log.display()));
                break;
            }
            writes.push(Instant::now());
        }
        // Until the last event is shown (or 15 s more).
        let target = n0 + writes.len();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) && status_count(&s.status_bar()).unwrap_or(0) < target {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::SeqCst);
        let polls = poller.join().unwrap_or_default();
        match failed {
            Some(e) => Err(e),
            None => Ok((writes, polls, lag)),
        }
    })?;

    let span = writes
        .last()
        .zip(writes.first())
        .map_or(Duration::ZERO, |(l, f)| *l - *f);
    println!(
        "wrote {} events in {:.2} s ({:.0}/s; at most {:.1} ms behind schedule)",
        writes.len(),
        span.as_secs_f64(),
        writes.len().saturating_sub(1) as f64 / span.as_secs_f64().max(1e-9),
        ms(lag)
    );
    let periods: Vec<u64> = polls
        .windows(2)
        .map(|w| (w[1].start - w[0].start).as_micros() as u64)
        .collect();
    report("poll period", periods.clone());
    report(
        "  of which capture-pane",
        polls
            .iter()
            .map(|p| (p.end - p.start).as_micros() as u64)
            .collect(),
    );
    let counts: Vec<usize> = polls.iter().filter_map(|p| p.count).collect();
    if counts.windows(2).any(|w| w[1] < w[0]) {
        println!("WARNING: the event count went down during the tail (a reload?)");
    }

    // For each event, the first poll whose count includes it.
    let mut upper = Vec::with_capacity(writes.len());
    let mut lower = Vec::with_capacity(writes.len());
    let mut j = 0;
    for (k, w) in writes.iter().enumerate() {
        let target = n0 + k + 1;
        while j < polls.len() && polls[j].count.is_none_or(|c| c < target) {
            j += 1;
        }
        let Some(p) = polls.get(j) else { break };
        upper.push(p.end.saturating_duration_since(*w).as_micros() as u64);
        let before = j.checked_sub(1).map_or(*w, |i| polls[i].start);
        lower.push(before.saturating_duration_since(*w).as_micros() as u64);
    }
    let missing = writes.len() - upper.len();
    report("write → shown (upper bound)", upper.clone());
    report("write → shown (lower bound)", lower);
    if missing > 0 {
        println!("{missing} events were never seen in the status bar");
    }

    // Exact figures, when the explorer logs them.
    let frames: Vec<(u64, usize)> = s
        .frame_log()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "frame_unix_us").then_some(())?;
            let t = w.next()?.parse().ok()?;
            (w.next()? == "events").then_some(())?;
            Some((t, w.next()?.parse().ok()?))
        })
        .collect();
    let exact = if frames.is_empty() {
        println!(
            "(no `frame_unix_us T events N` lines in the frame log: the figures above are from polling)"
        );
        None
    } else {
        let mut lat = Vec::new();
        let mut j = 0;
        for (k, w) in writes.iter().enumerate() {
            let wall = base_wall + (*w - base_i);
            let w_us = wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            while j < frames.len() && frames[j].1 < n0 + k + 1 {
                j += 1;
            }
            let Some(f) = frames.get(j) else { break };
            lat.push(f.0.saturating_sub(w_us));
        }
        report("write → frame (frame log)", lat.clone());
        Some(lat)
    };

    let bar = s.status_bar();
    println!("status bar at the end: {}", bar.trim());
    let end = status_count(&bar);
    if end != Some(n0 + writes.len()) {
        println!(
            "WARNING: expected {} events at the end, the status bar says {end:?}",
            n0 + writes.len()
        );
    }
    if bar.contains("invalid") || bar.contains("errors") {
        println!("WARNING: the status bar reports invalid events or reducer errors");
    }
    periods_summary(&periods, sum);
    sum.tail = Some(TailFigures {
        upper,
        exact,
        missing,
        rate: o.rate,
        secs: o.tail_secs,
    });
    Ok(())
}

fn periods_summary(periods: &[u64], sum: &mut Summary) {
    let mut p = periods.to_vec();
    p.sort_unstable();
    sum.poll = (pct(&p, 0.5), pct(&p, 1.0));
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

struct TailFigures {
    upper: Vec<u64>,
    exact: Option<Vec<u64>>,
    missing: usize,
    rate: u32,
    secs: f64,
}

#[derive(Default)]
struct Summary {
    load_start: String,
    load_end: String,
    events: Option<usize>,
    /// The open, the time from its load to its snapshot file, peak RSS
    /// after that.
    cold_open: Option<(Open, Duration, Option<f64>)>,
    cold: Option<Headless>,
    warm: Option<Headless>,
    same_state: Option<bool>,
    reopen: Option<Open>,
    tail: Option<TailFigures>,
    /// Poll period p50 and max, ms.
    poll: (f64, f64),
}

impl Summary {
    fn print(&self, o: &Options) {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "\n## summary: {} ({} events), load average {} at the start, {} at the end",
            o.log.display(),
            self.events.map_or("?".into(), |n| n.to_string()),
            self.load_start,
            self.load_end
        );
        println!("| figure | measured | target |");
        println!("|---|---|---|");
        if let Some((open, saved, rss)) = &self.cold_open {
            println!(
                "| first frame, empty cache | {:.1} ms (on screen {:.1} ms after starting tmux) | < 200 ms: {} |",
                us_ms(open.first_us),
                ms(open.first_seen),
                verdict(open.first_us < 200_000)
            );
            println!(
                "| full load, empty cache (to the frame after it) | {:.1} s, then snapshot saved in {:.1} s; explorer peak RSS {} | |",
                us_ms(open.loaded_us) / 1000.0,
                saved.as_secs_f64(),
                mb(*rss)
            );
        }
        if let Some(open) = &self.reopen {
            println!(
                "| first frame, reopen | {:.1} ms (on screen {:.1} ms after starting tmux) | < 200 ms: {} |",
                us_ms(open.first_us),
                ms(open.first_seen),
                verdict(open.first_us < 200_000)
            );
            println!(
                "| reopen: last state reached (loaded_us) | {:.2} s{} | < 2 s: {} |",
                us_ms(open.loaded_us) / 1000.0,
                open.live_seen.map_or(String::new(), |d| format!(
                    " (\"● live\" on screen {:.2} s after starting tmux)",
                    d.as_secs_f64()
                )),
                verdict(open.loaded_us < 2_000_000)
            );
        }
        if let Some(t) = &self.tail {
            let mut v = t.upper.clone();
            v.sort_unstable();
            let (p50, p99, max) = (pct(&v, 0.5), pct(&v, 0.99), pct(&v, 1.0));
            println!(
                "| live tail, {}/s for {} s: write → shown (poll every {:.1} ms p50, {:.1} ms max) | p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms{} | within 250 ms: {} |",
                t.rate,
                t.secs,
                self.poll.0,
                self.poll.1,
                if t.missing > 0 {
                    format!(", {} never seen", t.missing)
                } else {
                    String::new()
                },
                verdict(max < 250.0 && t.missing == 0)
            );
            if let Some(e) = &t.exact {
                let mut v = e.clone();
                v.sort_unstable();
                println!(
                    "| live tail, write → frame (frame log) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | within 250 ms: {} |",
                    pct(&v, 0.5),
                    pct(&v, 0.99),
                    pct(&v, 1.0),
                    verdict(pct(&v, 1.0) < 250.0)
                );
            }
        }
        for (label, h) in [("cold", &self.cold), ("warm", &self.warm)] {
            if let Some(h) = h {
                println!(
                    "| evscope state, {label} | {:.2} s, peak RSS {} | |",
                    h.wall.as_secs_f64(),
                    mb(h.rss_mb)
                );
            }
        }
        if let Some(same) = self.same_state {
            println!(
                "| cold and warm state identical | {} | |",
                if same { "yes" } else { "NO" }
            );
        }
    }
}
