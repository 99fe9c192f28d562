//! The interactive explorer: a thin face over the memory image.
//!
//! - `app`: the App state and `update(msg)` (no I/O), `list` and
//!   `treeview` its two cursors, `tree` the flattened JSON tree;
//! - `fetch`: fetches what the App wants from the image (states, diffs);
//! - `keymap`: actions and keys as data (`assets/keymap.toml`);
//! - `layout` and `panes`: drawing, which reads and never changes;
//! - `sanitize`: untrusted text made safe to draw;
//! - `runtime`: the terminal, the threads and the one channel;
//! - `headless`: the same loop without terminal or threads, for tests.

pub mod app;
pub mod fetch;
pub mod headless;
pub mod keymap;
pub mod layout;
pub mod list;
pub mod panes;
pub mod runtime;
pub mod sanitize;
pub mod tree;
pub mod treeview;

pub use runtime::{Exit, Options, run};
