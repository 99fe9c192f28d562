//! Helpers shared by the integration tests: running the binary, running
//! `/usr/bin/jq` as the oracle, and comparing JSON with number tolerance.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A bundled example file.
pub fn example(name: &str) -> PathBuf {
    root().join("assets/examples").join(name)
}

/// Run evscope with arguments; returns (exit code, stdout, stderr).
pub fn evscope(args: &[&str]) -> (i32, String, String) {
    evscope_stdin(args, None)
}

pub fn evscope_stdin(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evscope"));
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run evscope");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    let out: Output = child.wait_with_output().expect("wait evscope");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Split a reducer file into its leading top-level definitions and its main
/// expression (enough of jq's grammar for our reducers: strings, comments
/// and brackets are skipped; a top-level `def` ends at its `;`, counting the
/// defs nested inside it).
pub fn split_defs(program: &str) -> (String, String) {
    let b = program.as_bytes();
    let (mut i, mut depth, mut pending) = (0usize, 0i32, 0i32);
    let mut end_of_defs = 0usize;
    while i < b.len() {
        let c = b[i];
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if pending == 0 && depth == 0 && !c.is_ascii_whitespace() {
            if program[i..].starts_with("def ") {
                pending = 1;
                i += 4;
                continue;
            }
            break; // the main expression starts here
        }
        match c {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b';' if depth == 0 => {
                pending -= 1;
                if pending == 0 {
                    end_of_defs = i + 1;
                }
            }
            b'd' if depth == 0
                && program[i..].starts_with("def ")
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) =>
            {
                pending += 1;
            }
            _ => {}
        }
        i += 1;
    }
    (
        program[..end_of_defs].to_string(),
        program[end_of_defs..].to_string(),
    )
}

/// The state jq computes for a JSONL log, as DESIGN.md defines the fold:
/// `jq -n -S 'reduce inputs as $event (INIT; . as $s | try (REDUCER) catch $s)'`.
pub fn jq_fold(reducer: &str, init: Option<&str>, jsonl: &[u8]) -> serde_json::Value {
    let (defs, main) = split_defs(reducer);
    let init = match init {
        Some(i) => i.to_string(),
        None if defs.contains("def init:") => "init".to_string(),
        None => "{}".to_string(),
    };
    let program = format!("{defs}\nreduce inputs as $event ({init}; . as $s | try ({main}\n) catch $s)");
    let mut child = Command::new("/usr/bin/jq")
        .args(["-n", "-S", "-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/jq");
    let mut pipe = child.stdin.take().expect("jq stdin");
    let data = jsonl.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&data));
    let out = child.wait_with_output().expect("wait jq");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "jq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("jq printed JSON")
}

/// JSON equality where numbers match within a relative 1e-9 (jq prints
/// doubles with 17 significant digits; integers beyond 2^53 lose precision).
pub fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (V::Array(x), V::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The first `n` lines of a JSONL text (with their newlines).
pub fn first_lines(text: &[u8], n: usize) -> Vec<u8> {
    let mut count = 0;
    for (i, &c) in text.iter().enumerate() {
        if c == b'\n' {
            count += 1;
            if count == n {
                return text[..=i].to_vec();
            }
        }
    }
    text.to_vec()
}

/// sha256-free checksum of a file's bytes (FNV-1a 64), for read-only checks.
pub fn checksum(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A tiny deterministic PRNG (xorshift64*), so generated logs are stable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}
