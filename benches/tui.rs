//! The explorer measured in a real terminal (tmux at 200x50).
//!
//! Default: the time from a key press to the finished frame when stepping
//! through a 100k-event log, and the time to the first frame (and to the
//! end of the load) on the 1M-event log.
//!
//!     python3 scripts/gen_bench_log.py 100000 bench-data/bench-100000.jsonl
//!     python3 scripts/gen_bench_log.py 1000000 bench-data/bench-1000000.jsonl
//!     cargo bench --bench tui [-- --steps N]
//!
//! (The logs are generated when missing.) The explorer writes its own
//! timings when `EVSCOPE_FRAME_LOG` names a file: `key_frame_us` from the
//! moment its input thread read a key to the moment the frame was written
//! to the terminal. Each key is sent only after the previous frame was
//! logged, so every key gets a frame of its own.
//!
//! `--scale LOG`: the figures of a big log instead (first frame, a cold
//! load and its snapshot save, `evscope state` cold and warm, the reopen
//! from the snapshot cache, and the live tail at 1,000 appends a second);
//! see `tui/scale.rs` or `scripts/bench-scale.sh`:
//!
//!     cargo bench --bench tui -- --scale bench-data/bench-10m.jsonl
//!
//! `EVSCOPE_BIN` names the evscope binary to measure instead of the one
//! cargo built with the bench (say a copy in /tmp, so a rebuild of the tree
//! does not change it under the measurement).

#[path = "tui/scale.rs"]
mod scale;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// The terminal the explorer is measured in.
pub const WIDTH: u16 = 200;
pub const HEIGHT: u16 = 50;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The evscope binary: `$EVSCOPE_BIN`, else the one cargo built.
pub fn evscope_bin() -> PathBuf {
    std::env::var_os("EVSCOPE_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_evscope")))
}

/// The reducer the benchmark logs are folded with.
pub fn bench_reducer() -> PathBuf {
    root().join("assets/examples/bench.jq")
}

fn ensure_log(n: usize) -> Result<PathBuf, String> {
    let path = root().join(format!("bench-data/bench-{n}.jsonl"));
    if !path.exists() {
        eprintln!("generating {} ...", path.display());
        let _ = std::fs::create_dir_all(root().join("bench-data"));
        let ok = Command::new("python3")
            .arg(root().join("scripts/gen_bench_log.py"))
            .arg(n.to_string())
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("could not generate {}", path.display()));
        }
    }
    Ok(path)
}

/// Quote for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The load average (1, 5, 15 minutes), as /proc/loadavg says it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The explorer running in a tmux server of its own.
pub struct Session {
    socket: String,
    frames: PathBuf,
    stderr: PathBuf,
    dir: tempfile::TempDir,
    /// When `tmux new-session` was run.
    pub spawned: Instant,
}

impl Session {
    fn start(log: &Path) -> Result<Session, String> {
        Session::launch(log, &[], &[])
    }

    /// Start the explorer on `log` with the bench reducer, `env` set and
    /// `args` after the others. Its stderr goes to a file (shown if it
    /// exits early); `exec` makes the pane's process the explorer itself.
    /// Without `EVSCOPE_CACHE_DIR` in `env`, the snapshot cache is an empty
    /// directory that goes with the session.
    pub fn launch(log: &Path, env: &[(&str, &Path)], args: &[&str]) -> Result<Session, String> {
        let bin = evscope_bin();
        if !bin.is_file() {
            return Err(format!(
                "no evscope binary at {} (build it, or set EVSCOPE_BIN)",
                bin.display()
            ));
        }
        if !log.is_file() {
            return Err(format!("no log at {}", log.display()));
        }
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let frames = dir.path().join("frames.log");
        let stderr = dir.path().join("stderr.log");
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("evscope-bench-{}-{n}", std::process::id());
        let mut cmd = format!(
            "exec env EVSCOPE_FRAME_LOG={} XDG_CONFIG_HOME={}",
            sh_quote(&frames.to_string_lossy()),
            sh_quote(&dir.path().to_string_lossy()),
        );
        // A snapshot cache of its own unless one is given: a measured load
        // is a full fold, and nothing is left in ~/.cache.
        if !env.iter().any(|(k, _)| *k == "EVSCOPE_CACHE_DIR") {
            let cache = dir.path().join("cache");
            cmd += &format!(" EVSCOPE_CACHE_DIR={}", sh_quote(&cache.to_string_lossy()));
        }
        for (k, v) in env {
            cmd += &format!(" {k}={}", sh_quote(&v.to_string_lossy()));
        }
        cmd += &format!(
            " {} {} --reducer {}",
            sh_quote(&bin.to_string_lossy()),
            sh_quote(&log.to_string_lossy()),
            sh_quote(&bench_reducer().to_string_lossy())
        );
        for a in args {
            cmd += &format!(" {}", sh_quote(a));
        }
        cmd += &format!(" 2>{}", sh_quote(&stderr.to_string_lossy()));
        let (w, h) = (WIDTH.to_string(), HEIGHT.to_string());
        let s = Session {
            socket,
            frames,
            stderr,
            dir,
            spawned: Instant::now(),
        };
        let out = Command::new("tmux")
            .args(["-L", &s.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &w, "-y", &h, "-s", "b", &cmd])
            .output()
            .map_err(|e| format!("cannot run tmux (apt-get install tmux): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tmux new-session failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(s)
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "b"])
    }

    /// The last line of the screen (the status bar).
    pub fn status_bar(&self) -> String {
        let last = (HEIGHT - 1).to_string();
        self.tmux(&["capture-pane", "-p", "-t", "b", "-S", &last, "-E", &last])
    }

    /// Whether the explorer is still running.
    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "b"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The explorer's process id (the pane runs it through `exec`).
    pub fn pid(&self) -> Option<u32> {
        self.tmux(&["list-panes", "-t", "b", "-F", "#{pane_pid}"])
            .trim()
            .parse()
            .ok()
    }

    /// The explorer's peak RSS so far, in MB (VmHWM).
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// The frame log's whole text.
    pub fn frame_log(&self) -> String {
        std::fs::read_to_string(&self.frames).unwrap_or_default()
    }

    pub fn lines(&self, what: &str) -> Vec<u64> {
        self.frame_log()
            .lines()
            .filter_map(|l| l.strip_prefix(what)?.trim().parse().ok())
            .collect()
    }

    /// Poll `f` every 2 ms until it gives a value; an error after
    /// `deadline`, or when the explorer has exited (with its stderr).
    pub fn wait<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> Result<T, String> {
        let start = Instant::now();
        let mut checked = Instant::now();
        loop {
            if let Some(v) = f() {
                return Ok(v);
            }
            if start.elapsed() > deadline {
                return Err(format!("timed out after {deadline:?} waiting for {what}"));
            }
            if checked.elapsed() > Duration::from_millis(250) {
                checked = Instant::now();
                if !self.alive() {
                    let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                    return Err(format!(
                        "the explorer exited while waiting for {what}: {}",
                        err.trim()
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Press `q` and wait for the explorer to exit.
    pub fn quit(&self, deadline: Duration) -> Result<Duration, String> {
        let t = Instant::now();
        self.tmux(&["send-keys", "-t", "b", "q"]);
        while self.alive() {
            if t.elapsed() > deadline {
                return Err(format!("the explorer did not quit within {deadline:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(t.elapsed())
    }

    /// A scratch directory that lives as long as the session.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// One line of percentiles of microsecond figures, in ms.
pub fn report(label: &str, mut v: Vec<u64>) {
    v.sort_unstable();
    println!(
        "{label:<28} n={:<5} p50={:>7.2} ms  p90={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99),
        percentile(&v, 1.0)
    );
}

fn steps(log: &Path, n: usize) -> Result<(), String> {
    let s = Session::start(log)?;
    s.wait("the load to finish", Duration::from_secs(600), || {
        s.screen().contains("● live").then_some(())
    })?;
    let mut all = Vec::new();
    for (label, key) in [("step back (k)", "k"), ("step forward (j)", "j")] {
        let mut times = Vec::new();
        for _ in 0..n {
            let before = s.lines("key_frame_us").len();
            s.tmux(&["send-keys", "-t", "b", key]);
            let t = s.wait("a frame", Duration::from_secs(10), || {
                let l = s.lines("key_frame_us");
                (l.len() > before).then(|| l[l.len() - 1])
            })?;
            times.push(t);
        }
        all.extend(times.iter().copied());
        report(label, times);
    }
    report("step, both directions", all);
    for part in ["lock_us", "settle_us", "draw_us"] {
        report(&format!("  of which {part}"), s.lines(&format!("  {part}")));
    }
    Ok(())
}

fn first_frame(log: &Path) -> Result<(), String> {
    let s = Session::start(log)?;
    let first = s.wait("the first frame", Duration::from_secs(60), || {
        s.lines("first_frame_us").first().copied()
    })?;
    let loaded = s.wait("the load to finish", Duration::from_secs(900), || {
        s.lines("loaded_us").first().copied()
    })?;
    println!("first frame                  {:>8.1} ms", first as f64 / 1000.0);
    println!("whole log folded and drawn   {:>8.1} ms", loaded as f64 / 1000.0);
    Ok(())
}

fn default_run(args: &[String]) -> Result<(), String> {
    let n = match args.iter().position(|a| a == "--steps") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or("--steps needs a number")?,
        None => 500,
    };
    let small = ensure_log(100_000)?;
    println!("# stepping, {}", small.display());
    steps(&small, n)?;
    let big = ensure_log(1_000_000)?;
    println!("# opening, {}", big.display());
    first_frame(&big)
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.iter().any(|a| a == "--scale") {
        scale::Options::parse(&args).and_then(|o| scale::run(&o))
    } else {
        default_run(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench tui: {e}");
            ExitCode::FAILURE
        }
    }
}
