//! Threads, the terminal, and the loop that ties them together.
//!
//! One `mpsc` channel carries everything that happens: keys, mouse and
//! resizes (input thread), load progress, appends and resets (worker
//! thread), and signals (signal thread). The main thread blocks on it,
//! drains whatever queued up, updates the App, fetches what it wants and
//! draws once: no ticks, and a redraw only when something happened.
//!
//! Why the image sits behind `Arc<Mutex<Engine>>` rather than inside the
//! worker: every frame reads the log index (the visible list rows) and a
//! seek reads event bodies, which needs `&mut MemoryImage`. Sending those
//! as requests to the worker would mean copying rows per frame and waiting
//! for a thread that may be mid-batch anyway. So the worker folds in small
//! batches (about 10 ms each) and lets go of the lock between them; the UI
//! raises `ui_waiting` before locking, and the worker steps aside while it
//! is set, so a key press waits at most one batch.
//!
//! Terminal hygiene: raw mode, the alternate screen and mouse capture are
//! undone on quit, on error (a guard's `Drop`), on panic (the hook restores
//! first, then prints, then exits, so a panic on any thread never leaves a
//! raw terminal), and on SIGTERM/SIGHUP/SIGINT. Ctrl-Z (a key in raw mode)
//! or SIGTSTP restores the terminal and stops the process; on `fg` it sets
//! the terminal up again and redraws.

use super::app::{App, Msg, SourceInfo};
use super::fetch::{Engine, Fetcher};
use super::keymap::Keymap;
use super::panes;
use crate::image::MemoryImage;
use crate::image::snapshot::{Restore, SnapshotCache};
use crate::log::Loc;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use signal_hook::consts::signal::{SIGCONT, SIGHUP, SIGINT, SIGTERM, SIGTSTP};
use std::io::{self, IsTerminal, Stdout, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the live tail asks the source whether it grew.
pub const TAIL_POLL: Duration = Duration::from_millis(100);
/// How long the worker holds the lock per batch while folding.
const BATCH_TIME: Duration = Duration::from_millis(10);
/// Records per `load_batch` call inside a batch.
const BATCH_RECORDS: usize = 256;
/// Progress messages at most this often (each one redraws).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What the explorer is opened on.
pub struct Options {
    pub image: MemoryImage,
    pub info: SourceInfo,
    /// A JSONL file whose size gives the load progress as a fraction.
    pub progress_file: Option<PathBuf>,
    /// When the process started, for the first-frame timing.
    pub started: Instant,
    /// The snapshot cache: restored from before the first load, saved to
    /// after it.
    pub cache: Option<SnapshotCache>,
}

/// Everything the main loop waits for.
enum Input {
    Msg(Msg, Instant),
    Signal(i32),
}

struct Shared {
    engine: Mutex<Engine>,
    ui_waiting: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    /// The UI's lock: announce it so the worker steps aside.
    fn lock_ui(&self) -> MutexGuard<'_, Engine> {
        self.ui_waiting.store(true, Ordering::SeqCst);
        let g = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        self.ui_waiting.store(false, Ordering::SeqCst);
        g
    }

    fn lock_worker(&self) -> MutexGuard<'_, Engine> {
        while self.ui_waiting.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Exit status after the explorer closes.
pub enum Exit {
    Quit,
    Signal(i32),
}

/// Run the explorer until the person quits or a signal ends it.
pub fn run(opts: Options) -> Result<Exit, String> {
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        return Err(
            "the explorer needs a terminal; for scripts use `evscope state`, `diff`, `events` or `check`"
                .to_string(),
        );
    }
    let (keymap, keymap_msg) = Keymap::load();
    let frame_log = FrameLog::from_env(opts.started);
    let mut app = App::new(keymap, opts.info);
    if let Some(m) = keymap_msg {
        app.message = Some((m, super::app::Level::Error));
    }
    let shared = Arc::new(Shared {
        engine: Mutex::new(Engine::new(opts.image)),
        ui_waiting: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel::<Input>();

    install_panic_hook();
    let mut guard = TerminalGuard::enter().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let size = guard.terminal.size().map_err(|e| e.to_string())?;
    app.size = (size.width, size.height);
    spawn_signals(tx.clone())?;
    spawn_input(tx.clone());

    let mut fetcher = Fetcher::default();
    let mut frame_log = frame_log;
    // The first frame, before anything is read.
    draw(&mut guard, &shared, &mut app, &mut fetcher)?;
    frame_log.first_frame();
    if cfg!(debug_assertions) && std::env::var_os("EVSCOPE_TEST_PANIC").is_some_and(|v| v == "1") {
        panic!(
            "EVSCOPE_TEST_PANIC=1: a deliberate panic after the first frame (tests check the terminal is restored)"
        );
    }
    spawn_worker(shared.clone(), tx.clone(), opts.progress_file, opts.cache);
    drop(tx);

    let exit = main_loop(&mut guard, &shared, &mut app, &mut fetcher, &rx, &mut frame_log);
    shared.stop.store(true, Ordering::SeqCst);
    exit
}

fn main_loop(
    guard: &mut TerminalGuard,
    shared: &Shared,
    app: &mut App,
    fetcher: &mut Fetcher,
    rx: &Receiver<Input>,
    frame_log: &mut FrameLog,
) -> Result<Exit, String> {
    let mut pending: Option<Input> = None;
    loop {
        // Idle work (prefetching states) only while no input waits.
        while pending.is_none() {
            match rx.try_recv() {
                Ok(input) => pending = Some(input),
                Err(mpsc::TryRecvError::Disconnected) => return Ok(Exit::Quit),
                Err(mpsc::TryRecvError::Empty) => {
                    let mut engine = shared.lock_ui();
                    if !fetcher.prefetch(&mut engine, app.list.cursor) {
                        break;
                    }
                }
            }
        }
        let first = match pending.take() {
            Some(input) => input,
            None => match rx.recv() {
                Ok(input) => input,
                Err(_) => return Ok(Exit::Quit),
            },
        };
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut key_at: Option<Instant> = None;
        let mut loaded = false;
        {
            let engine = shared.lock_ui();
            for input in batch {
                match input {
                    Input::Signal(SIGTSTP) => app.suspend = true,
                    Input::Signal(SIGCONT) => guard.needs_clear = true,
                    Input::Signal(sig) => return Ok(Exit::Signal(sig)),
                    Input::Msg(msg, at) => {
                        if matches!(msg, Msg::Key(_)) {
                            key_at = key_at.or(Some(at));
                        }
                        loaded |= matches!(msg, Msg::Loaded);
                        app.update(msg, &engine.image);
                    }
                }
            }
        }
        if app.quit {
            return Ok(Exit::Quit);
        }
        if app.suspend {
            app.suspend = false;
            guard.suspend().map_err(|e| format!("suspend: {e}"))?;
        }
        let times = draw(guard, shared, app, fetcher)?;
        if let Some(at) = key_at {
            frame_log.key_frame(at.elapsed(), times);
        }
        if loaded {
            frame_log.loaded();
        }
        frame_log.frame(app.list.known);
    }
}

fn draw(
    guard: &mut TerminalGuard,
    shared: &Shared,
    app: &mut App,
    fetcher: &mut Fetcher,
) -> Result<DrawTimes, String> {
    if guard.needs_clear {
        guard.needs_clear = false;
        guard.redraw_all().map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    let mut engine = shared.lock_ui();
    let locked = t0.elapsed();
    fetcher.settle(app, &mut engine);
    let settled = t0.elapsed();
    let image = &engine.image;
    guard
        .terminal
        .draw(|f| panes::render(f, app, image))
        .map_err(|e| format!("drawing: {e}"))?;
    Ok(DrawTimes {
        lock: locked,
        settle: settled - locked,
        draw: t0.elapsed() - settled,
    })
}

/// Where a frame's time went (for the frame log).
#[derive(Clone, Copy, Default)]
struct DrawTimes {
    /// Waiting for the worker to let go of the image.
    lock: Duration,
    /// Fetching states and diffs.
    settle: Duration,
    /// Building the frame and writing it to the terminal.
    draw: Duration,
}

/// Owns the terminal while the explorer runs; `Drop` puts it back.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    needs_clear: bool,
}

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        setup_terminal()?;
        let terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(t) => t,
            Err(e) => {
                restore_terminal();
                return Err(e);
            }
        };
        Ok(TerminalGuard {
            terminal,
            needs_clear: false,
        })
    }

    /// Clear the screen and forget what is on it, so the next frame is
    /// drawn whole. (Not `Terminal::clear`: it asks the terminal where the
    /// cursor is, and the input thread would eat the answer.)
    fn redraw_all(&mut self) -> io::Result<()> {
        execute!(io::stdout(), Clear(ClearType::All))?;
        self.terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(())
    }

    /// Ctrl-Z: give the terminal back, stop, and take it again on `fg`.
    fn suspend(&mut self) -> io::Result<()> {
        restore_terminal();
        signal_hook::low_level::emulate_default_handler(SIGTSTP)?;
        setup_terminal()?;
        self.needs_clear = true;
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // After a panic the hook has restored already (and exits).
        if !std::thread::panicking() {
            restore_terminal();
        }
    }
}

fn setup_terminal() -> io::Result<()> {
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    Ok(())
}

/// Undo everything `setup_terminal` did; safe to call more than once.
pub fn restore_terminal() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableMouseCapture,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = out.flush();
}

/// A panic on any thread restores the terminal before the message is
/// printed (so it is readable), then ends the process: the UI cannot go on
/// in a cooked terminal, nor without its worker.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
        std::process::exit(101);
    }));
}

fn spawn_signals(tx: Sender<Input>) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT, SIGTSTP, SIGCONT])
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let ends = matches!(sig, SIGTERM | SIGHUP | SIGINT);
            if tx.send(Input::Signal(sig)).is_err() && ends {
                restore_terminal();
                std::process::exit(128 + sig);
            }
            if ends {
                // The main loop restores and exits; if it is stuck, do it here.
                std::thread::sleep(Duration::from_secs(2));
                restore_terminal();
                std::process::exit(128 + sig);
            }
        }
    });
    Ok(())
}

fn spawn_input(tx: Sender<Input>) {
    std::thread::spawn(move || {
        loop {
            let msg = match event::read() {
                Ok(Event::Key(k)) => Msg::Key(k),
                Ok(Event::Mouse(m)) => Msg::Mouse(m),
                Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(Input::Msg(msg, Instant::now())).is_err() {
                return;
            }
        }
    });
}

/// The fold and the live tail, off the UI thread.
fn spawn_worker(
    shared: Arc<Shared>,
    tx: Sender<Input>,
    progress_file: Option<PathBuf>,
    cache: Option<SnapshotCache>,
) {
    std::thread::spawn(move || {
        let send = |m: Msg| tx.send(Input::Msg(m, Instant::now())).is_ok();
        // Events restored from the snapshot cache: the fold below then
        // only reads what was appended since. The file is read and checked
        // without the lock (the slow part); installing it takes the lock.
        let mut restored = None;
        if let Some(cache) = &cache
            && let Ok(Some(snap)) = cache.read()
            && let Restore::Restored { events } = cache.install(&mut shared.lock_worker().image, snap)
        {
            restored = Some(events);
        }
        let file_size = progress_file
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len());
        // `Some(initial)`: folding until the source is drained; initial is
        // true for the first load (and reloads), false for appends.
        let mut draining = Some(true);
        let mut last_sent = Instant::now();
        while !shared.stop.load(Ordering::SeqCst) {
            let Some(initial) = draining else {
                std::thread::sleep(TAIL_POLL);
                let polled = shared.lock_worker().image.poll();
                match polled {
                    Ok(crate::log::Change::None) => {}
                    Ok(crate::log::Change::Appended) => draining = Some(false),
                    Ok(crate::log::Change::Reset(why)) => {
                        shared.lock_worker().reset();
                        restored = None;
                        if !send(Msg::Reset(why)) {
                            return;
                        }
                        draining = Some(true);
                    }
                    Err(e) => {
                        if !send(Msg::SourceError(e.0)) {
                            return;
                        }
                    }
                }
                continue;
            };
            let (added, progress) = {
                let mut engine = shared.lock_worker();
                let t0 = Instant::now();
                let mut added = Ok(0);
                while t0.elapsed() < BATCH_TIME {
                    match engine.image.load_batch(BATCH_RECORDS) {
                        Ok(0) => break,
                        Ok(n) => added = added.map(|a| a + n),
                        Err(e) => {
                            added = Err(e);
                            break;
                        }
                    }
                }
                let progress = match (
                    engine
                        .image
                        .len()
                        .checked_sub(1)
                        .and_then(|i| engine.image.entries().loc(i)),
                    file_size,
                ) {
                    (Some(Loc::Line { offset, .. }), Some(size)) if size > 0 => {
                        Some((offset as f64 / size as f64).min(1.0))
                    }
                    _ => None,
                };
                (added, progress)
            };
            let ok = match added {
                Err(e) => {
                    // Say so and try again after a pause (a locked or
                    // briefly missing file often recovers).
                    let sent = send(Msg::SourceError(e.0));
                    std::thread::sleep(TAIL_POLL * 5);
                    sent
                }
                Ok(0) => {
                    draining = None;
                    if initial {
                        shared.lock_worker().image.settle();
                    }
                    let sent = send(if initial { Msg::Loaded } else { Msg::Appended });
                    // After the first load, and after a reload (the log was
                    // replaced: its old snapshot is stale).
                    if initial && let Some(cache) = &cache {
                        save_snapshot(&shared, cache, restored);
                    }
                    sent
                }
                Ok(_) if last_sent.elapsed() >= PROGRESS_EVERY => {
                    last_sent = Instant::now();
                    send(if initial {
                        Msg::Progress(progress)
                    } else {
                        Msg::Appended
                    })
                }
                Ok(_) => true,
            };
            if !ok {
                return;
            }
        }
    });
}

/// Save the image to the snapshot cache after the initial load, when it is
/// worth it. The worker does it in short steps under the lock, so keys are
/// still answered; the tail waits until it is done (a second or two for
/// ten million events). A failure is silent: it is only a cache, and the
/// screen is not the place for it.
fn save_snapshot(shared: &Shared, cache: &SnapshotCache, restored: Option<usize>) {
    let len = shared.lock_worker().image.len();
    if !cache.should_save(restored, len) {
        return;
    }
    let _ = cache.save_in_steps(&mut |f| f(&mut shared.lock_worker().image));
}

/// Frame timings for measuring, written when `EVSCOPE_FRAME_LOG` names a
/// file: `first_frame_us N` (process start to the first frame on screen),
/// `loaded_us N` (to the first frame after the initial load), and one
/// `key_frame_us N` per frame that handled key presses (from the key being
/// read to the frame being written), followed by where its time went
/// (`lock_us`, `settle_us`, `draw_us`).
struct FrameLog {
    file: Option<std::fs::File>,
    started: Instant,
}

impl FrameLog {
    fn from_env(started: Instant) -> FrameLog {
        let file = std::env::var_os("EVSCOPE_FRAME_LOG")
            .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        FrameLog { file, started }
    }

    fn write(&mut self, what: &str, d: Duration) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{what} {}", d.as_micros());
        }
    }

    fn first_frame(&mut self) {
        self.write("first_frame_us", self.started.elapsed());
    }

    fn loaded(&mut self) {
        self.write("loaded_us", self.started.elapsed());
    }

    /// `frame_unix_us T events N`: a frame was written to the terminal at
    /// wall-clock time T (µs since the Unix epoch) showing N events, so
    /// another process can tell when what it appended was on screen.
    fn frame(&mut self, events: usize) {
        if let Some(f) = &mut self.file {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            let _ = writeln!(f, "frame_unix_us {t} events {events}");
        }
    }

    fn key_frame(&mut self, d: Duration, t: DrawTimes) {
        self.write("key_frame_us", d);
        self.write("  lock_us", t.lock);
        self.write("  settle_us", t.settle);
        self.write("  draw_us", t.draw);
    }
}
