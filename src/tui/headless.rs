//! The explorer without a terminal or threads: what the runtime does, done
//! synchronously, for tests and measurements. Feed it keys and messages,
//! let it poll the source the way the worker would, and draw it into a
//! buffer of any size.

use super::app::{App, Msg, SourceInfo};
use super::fetch::{Engine, Fetcher};
use super::keymap::{Key, Keymap};
use crate::image::MemoryImage;
use crate::log::{Change, SourceError};
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyEvent, KeyModifiers};
use ratatui::layout::Rect;

pub struct Headless {
    pub app: App,
    pub engine: Engine,
    pub fetcher: Fetcher,
}

impl Headless {
    /// An explorer over `image` with the default keys, on a screen of
    /// `width` x `height`. Nothing is loaded yet (see [`Headless::load`]).
    pub fn new(image: MemoryImage, width: u16, height: u16) -> Headless {
        let info = SourceInfo {
            source: image.describe_source(),
            reducer: "reducer test".to_string(),
        };
        let mut h = Headless {
            app: App::new(Keymap::defaults(), info),
            engine: Engine::new(image),
            fetcher: Fetcher::default(),
        };
        h.send(Msg::Resize(width, height));
        h
    }

    /// Deliver a message, then fetch what the App wants (as a frame would).
    pub fn send(&mut self, msg: Msg) {
        self.app.update(msg, &self.engine.image);
        self.fetcher.settle(&mut self.app, &mut self.engine);
    }

    /// Fold the whole log, as the worker's initial load does.
    pub fn load(&mut self) -> Result<(), SourceError> {
        self.engine.image.load(&mut |_| {})?;
        self.send(Msg::Loaded);
        Ok(())
    }

    /// Ask the source for news and fold it, as the worker's tail does.
    pub fn poll(&mut self) -> Result<Change, SourceError> {
        let change = self.engine.image.poll()?;
        match &change {
            Change::None => {}
            Change::Appended => {
                self.engine.image.load(&mut |_| {})?;
                self.send(Msg::Appended);
            }
            Change::Reset(why) => {
                self.engine.reset();
                self.send(Msg::Reset(why.clone()));
                self.load()?;
            }
        }
        Ok(change)
    }

    /// Press keys given as keymap names, separated by spaces: `"j j G"`,
    /// `"ctrl-d"`, `"enter"`.
    pub fn keys(&mut self, keys: &str) {
        for k in keys.split_whitespace() {
            match Key::parse(k) {
                Ok(key) => self.press(key),
                Err(e) => panic!("bad key in a test script: {e}"),
            }
        }
    }

    /// Type text into an open prompt, character by character.
    pub fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.press(Key {
                code: ratatui::crossterm::event::KeyCode::Char(c),
                ctrl: false,
                alt: false,
            });
        }
    }

    fn press(&mut self, key: Key) {
        let mut mods = KeyModifiers::NONE;
        if key.ctrl {
            mods |= KeyModifiers::CONTROL;
        }
        if key.alt {
            mods |= KeyModifiers::ALT;
        }
        self.send(Msg::Key(KeyEvent::new(key.code, mods)));
    }

    /// The id of the event at the cursor.
    pub fn cursor_id(&self) -> Option<i64> {
        self.app
            .list
            .cursor
            .and_then(|i| self.engine.image.entry(i))
            .map(|e| e.id)
    }

    /// Draw the whole screen into a buffer.
    pub fn render(&self) -> Buffer {
        let (w, h) = self.app.size;
        let area = Rect::new(0, 0, w, h);
        let mut buf = Buffer::empty(area);
        super::panes::draw(&self.app, &self.engine.image, area, &mut buf);
        buf
    }

    /// The screen as text, one line per row (trailing spaces trimmed).
    pub fn screen(&self) -> String {
        buffer_text(&self.render())
    }
}

/// A buffer's symbols as lines of text.
pub fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
