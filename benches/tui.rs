//! The explorer measured in a real terminal (tmux): the time from a key
//! press to the finished frame when stepping through a 100k-event log, and
//! the time to the first frame (and to the end of the load) on the
//! 1M-event log.
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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ensure_log(n: usize) -> PathBuf {
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
        assert!(ok, "could not generate {}", path.display());
    }
    path
}

struct Session {
    socket: String,
    frames: PathBuf,
    _dir: tempfile::TempDir,
}

impl Session {
    fn start(log: &Path) -> Session {
        let dir = tempfile::tempdir().expect("tempdir");
        let frames = dir.path().join("frames.log");
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("evscope-bench-{}-{n}", std::process::id());
        let cmd = format!(
            "EVSCOPE_FRAME_LOG='{}' XDG_CONFIG_HOME='{}' '{}' '{}' --reducer '{}'",
            frames.display(),
            dir.path().display(),
            env!("CARGO_BIN_EXE_evscope"),
            log.display(),
            root().join("assets/examples/bench.jq").display()
        );
        let s = Session {
            socket,
            frames,
            _dir: dir,
        };
        s.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "-s",
            "b",
            &cmd,
        ]);
        s
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn lines(&self, what: &str) -> Vec<u64> {
        let text = std::fs::read_to_string(&self.frames).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix(what)?.trim().parse().ok())
            .collect()
    }

    fn wait<T>(&self, what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(start.elapsed() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
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

fn report(label: &str, mut v: Vec<u64>) {
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

fn steps(log: &Path, n: usize) {
    let s = Session::start(log);
    s.wait("the load to finish", Duration::from_secs(600), || {
        s.tmux(&["capture-pane", "-p", "-t", "b"])
            .contains("● live")
            .then_some(())
    });
    let mut all = Vec::new();
    for (label, key) in [("step back (k)", "k"), ("step forward (j)", "j")] {
        let mut times = Vec::new();
        for _ in 0..n {
            let before = s.lines("key_frame_us").len();
            s.tmux(&["send-keys", "-t", "b", key]);
            let t = s.wait("a frame", Duration::from_secs(10), || {
                let l = s.lines("key_frame_us");
                (l.len() > before).then(|| l[l.len() - 1])
            });
            times.push(t);
        }
        all.extend(times.iter().copied());
        report(label, times);
    }
    report("step, both directions", all);
    for part in ["lock_us", "settle_us", "draw_us"] {
        report(&format!("  of which {part}"), s.lines(&format!("  {part}")));
    }
}

fn first_frame(log: &Path) {
    let s = Session::start(log);
    let first = s.wait("the first frame", Duration::from_secs(60), || {
        s.lines("first_frame_us").first().copied()
    });
    let loaded = s.wait("the load to finish", Duration::from_secs(900), || {
        s.lines("loaded_us").first().copied()
    });
    println!("first frame                  {:>8.1} ms", first as f64 / 1000.0);
    println!("whole log folded and drawn   {:>8.1} ms", loaded as f64 / 1000.0);
}

fn main() {
    // `cargo bench` passes `--bench`; take only `--steps N`.
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--steps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let small = ensure_log(100_000);
    println!("# stepping, {}", small.display());
    steps(&small, n);
    let big = ensure_log(1_000_000);
    println!("# opening, {}", big.display());
    first_frame(&big);
}
