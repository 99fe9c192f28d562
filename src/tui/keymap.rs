//! The keymap is data: `assets/keymap.toml` holds the defaults, a user file
//! overrides them, and the help overlay is generated from the result, so it
//! always shows the keys that really work.
//!
//! Actions are one enum whose serde names (`snake_case`) are the words the
//! file uses; keys print and parse both ways (`ctrl-c`, `pagedown`, `G`).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default keymap, embedded so the binary works from any directory.
pub const DEFAULT_KEYMAP: &str = include_str!("../../assets/keymap.toml");

/// Everything a key can do. The order here is the order of the help overlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Down,
    Up,
    PageDown,
    PageUp,
    First,
    Last,
    NextEvent,
    PrevEvent,
    Jump,
    Filter,
    Follow,
    NextPane,
    PrevPane,
    Toggle,
    Expand,
    Collapse,
    Parent,
    NextSibling,
    PrevSibling,
    Search,
    SearchNext,
    SearchPrev,
    LineDiff,
    Help,
    Quit,
    Suspend,
}

impl Action {
    pub const ALL: [Action; 26] = [
        Action::Down,
        Action::Up,
        Action::PageDown,
        Action::PageUp,
        Action::First,
        Action::Last,
        Action::NextEvent,
        Action::PrevEvent,
        Action::Jump,
        Action::Filter,
        Action::Follow,
        Action::NextPane,
        Action::PrevPane,
        Action::Toggle,
        Action::Expand,
        Action::Collapse,
        Action::Parent,
        Action::NextSibling,
        Action::PrevSibling,
        Action::Search,
        Action::SearchNext,
        Action::SearchPrev,
        Action::LineDiff,
        Action::Help,
        Action::Quit,
        Action::Suspend,
    ];

    /// One line for the help overlay.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Down => "next event / row (focused pane)",
            Action::Up => "previous event / row (focused pane)",
            Action::PageDown => "page down",
            Action::PageUp => "page up",
            Action::First => "first event / row",
            Action::Last => "last event / row",
            Action::NextEvent => "next event, from any pane",
            Action::PrevEvent => "previous event, from any pane",
            Action::Jump => "jump to an event id",
            Action::Filter => "filter events by type or stream",
            Action::Follow => "follow new events on/off",
            Action::NextPane => "next pane",
            Action::PrevPane => "previous pane",
            Action::Toggle => "collapse/expand the tree node",
            Action::Expand => "expand the tree node",
            Action::Collapse => "collapse (or go to parent)",
            Action::Parent => "go to the parent node",
            Action::NextSibling => "next sibling node",
            Action::PrevSibling => "previous sibling node",
            Action::Search => "search (tree: keys/values; list: type/stream)",
            Action::SearchNext => "next match",
            Action::SearchPrev => "previous match",
            Action::LineDiff => "structural / line diff",
            Action::Help => "this help",
            Action::Quit => "quit",
            Action::Suspend => "suspend (fg resumes)",
        }
    }

    /// The name used in keymap files.
    pub fn name(self) -> String {
        let debug = format!("{self:?}");
        let mut out = String::new();
        for (i, c) in debug.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }
}

/// A key with its modifiers (shift is folded into the character).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub fn from_event(ev: &KeyEvent) -> Key {
        let code = match ev.code {
            // Some terminals report shift-tab as BackTab, others as Tab + shift.
            KeyCode::Tab if ev.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            c => c,
        };
        Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        }
    }

    pub fn parse(s: &str) -> Result<Key, String> {
        let mut rest = s;
        let (mut ctrl, mut alt) = (false, false);
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-").filter(|r| !r.is_empty()) {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            _ => match rest.to_ascii_lowercase().as_str() {
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "enter" | "return" => KeyCode::Enter,
                "space" => KeyCode::Char(' '),
                "tab" => KeyCode::Tab,
                "backtab" | "shift-tab" => KeyCode::BackTab,
                "esc" | "escape" => KeyCode::Esc,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                f if f.starts_with('f') && f[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)) => {
                    KeyCode::F(f[1..].parse::<u8>().unwrap_or(1))
                }
                _ => return Err(format!("unknown key {s:?}")),
            },
        };
        Ok(Key { code, ctrl, alt })
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("shift-Tab"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Backspace => f.write_str("Backspace"),
            KeyCode::Delete => f.write_str("Delete"),
            KeyCode::F(n) => write!(f, "F{n}"),
            _ => f.write_str("?"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    #[serde(default)]
    keys: BTreeMap<Action, Vec<String>>,
}

/// Action ↔ keys, in both directions.
#[derive(Clone, Debug)]
pub struct Keymap {
    bindings: BTreeMap<Action, Vec<Key>>,
    /// The user file the keys came from, if any.
    pub origin: Option<PathBuf>,
}

impl Keymap {
    /// The built-in defaults.
    pub fn defaults() -> Keymap {
        // The embedded file is checked by a unit test, so this cannot fail
        // in a released binary; fall back to nothing rather than panic.
        Keymap::parse(DEFAULT_KEYMAP).unwrap_or(Keymap {
            bindings: BTreeMap::new(),
            origin: None,
        })
    }

    fn parse(text: &str) -> Result<Keymap, String> {
        let file: KeymapFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut bindings = BTreeMap::new();
        for (action, keys) in file.keys {
            let keys = keys
                .iter()
                .map(|k| Key::parse(k))
                .collect::<Result<Vec<_>, _>>()?;
            bindings.insert(action, keys);
        }
        Ok(Keymap {
            bindings,
            origin: None,
        })
    }

    /// The defaults patched by a user file's text: each action it names gets
    /// exactly the keys it gives, and those keys are taken from any other
    /// action so that one key never means two things.
    pub fn with_overrides(text: &str) -> Result<Keymap, String> {
        let user = Keymap::parse(text)?;
        let mut map = Keymap::defaults();
        for keys in user.bindings.values() {
            for list in map.bindings.values_mut() {
                list.retain(|k| !keys.contains(k));
            }
        }
        map.bindings.extend(user.bindings);
        Ok(map)
    }

    /// Where the user's keymap file lives.
    pub fn user_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
        Some(base.join("evscope").join("keymap.toml"))
    }

    /// The defaults with the user's file applied when there is one; a
    /// broken file gives the defaults and a message to show.
    pub fn load() -> (Keymap, Option<String>) {
        let Some(path) = Keymap::user_path() else {
            return (Keymap::defaults(), None);
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => match Keymap::with_overrides(&text) {
                Ok(map) => (
                    Keymap {
                        origin: Some(path),
                        ..map
                    },
                    None,
                ),
                Err(e) => (
                    Keymap::defaults(),
                    Some(format!("{}: {e}; using the default keys", path.display())),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Keymap::defaults(), None),
            Err(e) => (Keymap::defaults(), Some(format!("{}: {e}", path.display()))),
        }
    }

    /// The action a key press means, if any.
    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        let key = Key::from_event(ev);
        self.bindings
            .iter()
            .find(|(_, keys)| keys.contains(&key))
            .map(|(a, _)| *a)
    }

    /// The keys bound to an action, in file order.
    pub fn keys(&self, action: Action) -> &[Key] {
        self.bindings.get(&action).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The keys of an action as the help shows them (`j, ↓`).
    pub fn keys_label(&self, action: Action) -> String {
        let keys: Vec<String> = self.keys(action).iter().map(Key::to_string).collect();
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_parse_and_cover_every_action() {
        let map = Keymap::parse(DEFAULT_KEYMAP).expect("default keymap parses");
        for a in Action::ALL {
            assert!(!map.keys(a).is_empty(), "{a:?} has no key");
        }
    }

    #[test]
    fn keys_match_events() {
        let map = Keymap::defaults();
        assert_eq!(
            map.action(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            map.action(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Last)
        );
        assert_eq!(
            map.action(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action(&ev(KeyCode::Tab, KeyModifiers::SHIFT)),
            Some(Action::PrevPane)
        );
        assert_eq!(map.action(&ev(KeyCode::Char('x'), KeyModifiers::NONE)), None);
    }

    #[test]
    fn overrides_replace_and_steal_keys() {
        let map = Keymap::with_overrides("[keys]\nquit = [\"x\"]\ndown = [\"q\"]\n").expect("parses");
        assert_eq!(
            map.action(&ev(KeyCode::Char('x'), KeyModifiers::NONE)),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action(&ev(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(map.action(&ev(KeyCode::Char('j'), KeyModifiers::NONE)), None);
        assert_eq!(
            map.action(&ev(KeyCode::Char('k'), KeyModifiers::NONE)),
            Some(Action::Up)
        );
        assert!(Keymap::with_overrides("[keys]\nfly = [\"x\"]").is_err());
        assert!(Keymap::with_overrides("[keys]\nquit = [\"hyper-x\"]").is_err());
    }

    #[test]
    fn keys_print_and_parse_back() {
        for s in ["j", "G", "ctrl-c", "pagedown", "space", "backtab", "f5", ":"] {
            let k = Key::parse(s).expect(s);
            assert!(!k.to_string().is_empty());
        }
        assert_eq!(Action::PageDown.name(), "page_down");
    }
}
