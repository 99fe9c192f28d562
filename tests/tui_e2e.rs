//! The explorer in a real terminal: tmux runs the built binary, `send-keys`
//! types, `capture-pane` reads the screen. Every wait is for a condition on
//! the screen, polled every 50 ms up to a generous deadline, never a fixed
//! sleep. Each test has its own tmux server (`-L`), so they run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/examples")
        .join(name)
}

/// A tmux server with one pane running a shell script.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Run `evscope ARGS` in a pane of `w` x `h`; when it exits the pane
    /// prints `EXIT=<status>` and `stty -a`, then stays open.
    fn start(args: &[&str], env: &[(&str, &str)], w: u16, h: u16) -> Tmux {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = format!(
            "evscope-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut script = String::from("#!/bin/sh\n");
        // Keys from a user keymap must not change what the tests type.
        script += &format!(
            "export XDG_CONFIG_HOME={}\n",
            quote(&dir.path().display().to_string())
        );
        for (k, v) in env {
            script += &format!("export {k}={}\n", quote(v));
        }
        // An inner script records its pid and becomes evscope (exec), so
        // the pid file holds evscope's pid; the outer one reports after it.
        let argv: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let inner = format!(
            "echo $$ > {}\nexec {} {}\n",
            quote(&dir.path().join("pid").display().to_string()),
            quote(env!("CARGO_BIN_EXE_evscope")),
            argv.join(" ")
        );
        let inner_path = dir.path().join("inner.sh");
        std::fs::write(&inner_path, inner).expect("write script");
        script += &format!(
            "sh {}\necho EXIT=$?\nstty -a\necho STTY-DONE\nexec sleep 600\n",
            quote(&inner_path.display().to_string())
        );
        let path = dir.path().join("run.sh");
        std::fs::write(&path, script).expect("write script");
        let t = Tmux { socket, dir };
        let out = t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            "-s",
            "e2e",
            "sh",
            &path.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "e2e"]).stdout).into_owned()
    }

    fn display(&self, format: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["display-message", "-p", "-t", "e2e", format]).stdout)
            .trim()
            .to_string()
    }

    /// Type keys (tmux key names: `k`, `Enter`, `C-c`...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        assert!(self.tmux(&args).status.success());
    }

    /// Type literal text.
    fn text(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", "e2e", "-l", text])
                .status
                .success()
        );
    }

    /// Wait until the screen satisfies `ok`; return that screen.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            if start.elapsed() > DEADLINE {
                panic!("timed out waiting for {what}; the screen is:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for evscope to exit with `status` and the shell to print
    /// `stty -a` after it.
    fn wait_exit(&self, status: i32) -> String {
        let tag = format!("EXIT={status}");
        self.wait(&tag, |s| s.contains(&tag) && s.contains("STTY-DONE"))
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait(&format!("{text:?}"), |s| s.contains(text))
    }

    /// The pid of evscope (recorded by the script that became it).
    fn evscope_pid(&self) -> i32 {
        let pid = std::fs::read_to_string(self.dir.path().join("pid")).expect("pid file");
        pid.trim().parse().expect("a pid")
    }
}

/// Send a signal with the shell's `kill` (no procps needed).
fn kill(sig: &str, pid: i32) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .status()
        .expect("sh");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// The process state letter from /proc (`T`: stopped).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces: the state follows
    // the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The shell printed `stty -a` after evscope exited: the terminal must be
/// back in cooked mode (canonical input, echo).
fn assert_cooked(screen: &str) {
    let words: Vec<&str> = screen.split_whitespace().collect();
    for flag in ["icanon", "echo", "isig"] {
        assert!(words.contains(&flag), "{flag} is off after exit:\n{screen}");
    }
}

/// The number in the event list's title (`Events · 1,803`).
fn event_count(screen: &str) -> Option<usize> {
    let rest = &screen[screen.find("Events · ")? + "Events · ".len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

fn bank_args(log: &str) -> Vec<String> {
    vec![
        log.to_string(),
        "--reducer".into(),
        example("bank.jq").display().to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn scrub_and_jump_in_a_bundled_log() {
    let args = bank_args(&example("bank.jsonl").display().to_string());
    let t = Tmux::start(&strs(&args), &[], 120, 35);
    t.wait_for("1,000/1,000");
    t.wait_for("● live");
    t.keys(&["k", "k", "k"]);
    t.wait_for("Diff #997 ");
    t.wait_for("997/1,000");
    t.keys(&["g"]);
    t.wait_for("Diff #1 AccountOpened");
    t.keys(&[":"]);
    t.wait_for("jump to id:");
    t.text("500");
    t.keys(&["Enter"]);
    t.wait_for("Diff #500 ");
    let screen = t.wait_for("500/1,000");
    assert!(screen.contains("State after #500"), "{screen}");
    t.keys(&["G"]);
    t.wait_for("Diff #1000 ");
}

#[test]
fn quit_leaves_the_alternate_screen_in_cooked_mode() {
    let args = bank_args(&example("bank.db").display().to_string());
    let t = Tmux::start(&strs(&args), &[], 100, 30);
    t.wait_for("● live");
    assert_eq!(
        t.display("#{alternate_on}"),
        "1",
        "the explorer draws on the alternate screen"
    );
    t.keys(&["q"]);
    let screen = t.wait_exit(0);
    assert_cooked(&screen);
    assert_eq!(t.display("#{alternate_on}"), "0");
    assert!(
        !screen.contains("Events ·"),
        "the explorer's frame is gone:\n{screen}"
    );
}

#[test]
fn a_panic_restores_the_terminal() {
    let args = bank_args(&example("bank.jsonl").display().to_string());
    let env = [("EVSCOPE_TEST_PANIC", "1"), ("RUST_BACKTRACE", "0")];
    let t = Tmux::start(&strs(&args), &env, 100, 30);
    let screen = t.wait_exit(101);
    assert_cooked(&screen);
    assert!(
        screen.contains("EVSCOPE_TEST_PANIC"),
        "the panic message is readable:\n{screen}"
    );
    assert_eq!(t.display("#{alternate_on}"), "0");
}

#[test]
fn sigterm_sighup_and_sigint_restore_the_terminal() {
    for (sig, status) in [("TERM", 143), ("HUP", 129), ("INT", 130)] {
        let args = bank_args(&example("bank.jsonl").display().to_string());
        let t = Tmux::start(&strs(&args), &[], 100, 30);
        t.wait_for("● live");
        let pid = t.evscope_pid();
        kill(sig, pid);
        let screen = t.wait_exit(status);
        assert_cooked(&screen);
        assert_eq!(t.display("#{alternate_on}"), "0");
    }
}

#[test]
fn ctrl_z_suspends_and_fg_redraws() {
    let args = bank_args(&example("bank.jsonl").display().to_string());
    let t = Tmux::start(&strs(&args), &[], 100, 30);
    t.wait_for("● live");
    let pid = t.evscope_pid();
    t.keys(&["C-z"]);
    // Stopped, with the terminal given back.
    t.wait("the process to stop with the terminal restored", |_| {
        proc_state(pid) == Some('T') && t.display("#{alternate_on}") == "0"
    });
    // What `fg` does: continue it. It takes the terminal again and redraws.
    kill("CONT", pid);
    t.wait("the explorer to redraw", |s| {
        s.contains("● live") && t.display("#{alternate_on}") == "1"
    });
    t.keys(&["k"]);
    t.wait_for("999/1,000");
    t.keys(&["q"]);
    assert_cooked(&t.wait_exit(0));
}

#[test]
fn live_tail_of_sqlite_follows_and_badges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bank.db");
    std::fs::copy(example("bank.db"), &db).expect("copy");
    let args = bank_args(&db.display().to_string());
    let t = Tmux::start(&strs(&args), &[], 120, 35);
    t.wait_for("● live");
    t.wait_for("1,000/1,000");
    // Another process (this test) appends while evscope watches.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    let insert = |ty: &str| {
        conn.execute(
            "INSERT INTO events(type, stream, time, data) VALUES (?1, 'account-1', '2026-02-01T00:00:00Z', '{}')",
            [ty],
        )
        .expect("insert");
    };
    insert("TailFollowed");
    // Following: the new event becomes the cursor.
    t.wait_for("Diff #1001 TailFollowed");
    t.wait_for("1,001/1,001");
    // Away from the end, the cursor stays and a badge counts arrivals.
    t.keys(&["k"]);
    t.wait_for("1,000/1,001");
    insert("TailBadged");
    insert("TailBadged");
    let screen = t.wait_for("+2 new");
    assert!(screen.contains("1,000/1,003"), "{screen}");
    assert!(screen.contains("Events · 1,003"), "{screen}");
}

#[test]
fn live_tail_of_jsonl_folds_complete_lines_only() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("bank.jsonl");
    std::fs::copy(example("bank.jsonl"), &log).expect("copy");
    let args = bank_args(&log.display().to_string());
    let t = Tmux::start(&strs(&args), &[], 120, 35);
    t.wait_for("● live");
    t.wait_for("1,000/1,000");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open log");
    f.write_all(br#"{"id":1001,"type":"TailLine","stream":"account-1","data":{}}"#)
        .expect("append");
    f.flush().expect("flush");
    // Half a line is not an event yet...
    f.write_all(b"\n{\"id\":1002,\"type\":\"Half").expect("append");
    f.flush().expect("flush");
    t.wait_for("Diff #1001 TailLine");
    t.wait_for("1,001/1,001");
    // ...until its newline arrives.
    f.write_all(b"Done\",\"data\":{}}\n").expect("append");
    f.flush().expect("flush");
    t.wait_for("Diff #1002 HalfDone");
    // Truncation is detected and said.
    std::fs::write(
        &log,
        br#"{"id":1,"type":"Fresh","data":{}}"#.iter().chain(b"\n").copied().collect::<Vec<u8>>(),
    )
    .expect("truncate");
    t.wait_for("1/1 ");
    t.wait_for("Diff #1 Fresh");
}

#[test]
fn hostile_text_is_drawn_escaped() {
    let t = Tmux::start(&[&example("hostile.jsonl").display().to_string()], &[], 150, 40);
    t.wait_for("● live");
    let title = t.display("#{pane_title}");
    let screen = t.wait_for("Keys^[[2J");
    assert!(screen.contains("hostile-7<U+202E>"), "{screen}");
    assert!(screen.contains("Note<U+2028>Type"), "{screen}");
    t.keys(&[":"]);
    t.text("1");
    t.keys(&["Enter"]);
    t.wait_for("Diff #1 Note");
    // The event's data is drawn once it is fetched, after the title.
    let screen = t.wait_for("^[]52;c;aGVsbG8=^G");
    assert!(
        screen.contains("^[]52;c;aGVsbG8=^G"),
        "OSC 52 shown escaped:\n{screen}"
    );
    assert!(
        screen.contains("^[]0;pwned^G"),
        "title sequence shown escaped:\n{screen}"
    );
    t.keys(&[":"]);
    t.text("2");
    t.keys(&["Enter"]);
    t.wait_for("Diff #2 Note");
    let screen = t.wait_for("^[[31mred^[[0m");
    assert!(
        screen.contains("● live"),
        "the screen was not cleared by the data:\n{screen}"
    );
    // Nothing reached the terminal as a sequence: the title is unchanged
    // and no clipboard buffer was set.
    assert_eq!(t.display("#{pane_title}"), title);
    let buffers = t.tmux(&["list-buffers"]);
    assert!(
        String::from_utf8_lossy(&buffers.stdout).trim().is_empty(),
        "a clipboard buffer was set"
    );
    t.keys(&["q"]);
    assert_cooked(&t.wait_exit(0));
}

#[test]
fn the_bundled_demo_appends_live() {
    let t = Tmux::start(&[], &[], 120, 35);
    t.wait_for("live demo");
    t.wait_for("1,800/1,800");
    // The writer appends about once a second; following, the cursor moves.
    t.wait_for("1,801/1,801");
    t.wait_for("Diff #1801 ");
    t.keys(&["q"]);
    assert_cooked(&t.wait_exit(0));
}

#[test]
fn demo_writes_a_database_another_explorer_tails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.db");
    let mut writer = Command::new(env!("CARGO_BIN_EXE_evscope"))
        .args(["demo", "--db", &db.display().to_string(), "--every-ms", "200"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run evscope demo");
    // The database and its reducer appear before the first append.
    let start = Instant::now();
    while !(db.exists() && db.with_extension("jq").exists()) {
        assert!(start.elapsed() < DEADLINE, "evscope demo wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let reducer = db.with_extension("jq").display().to_string();
    let t = Tmux::start(&[&db.display().to_string(), "--reducer", &reducer], &[], 120, 35);
    t.wait_for("● live");
    t.wait("events beyond the bundled 1,800", |s| {
        event_count(s).is_some_and(|n| n > 1800)
    });
    let _ = writer.kill();
    let _ = writer.wait();
    // The demo never writes over an existing file.
    let again = Command::new(env!("CARGO_BIN_EXE_evscope"))
        .args(["demo", "--db", &db.display().to_string()])
        .output()
        .expect("run evscope demo");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never touches an existing one"));
}
