//! evscope: a terminal explorer for event-sourced systems.
//!
//! The library is the UI-free engine: log sources (`log`), the persistent
//! JSON value (`value`), jq reducers (`reduce`), the memory image of every
//! state (`image`) and structural diffs (`diff`). The command line (`cli`)
//! and the interactive explorer (`tui`, with its live `demo`) are thin
//! faces over it.

pub mod alloc;
pub mod calendar;
pub mod cli;
pub mod demo;
pub mod diff;
pub mod image;
pub mod log;
pub mod reduce;
pub mod tui;
pub mod value;
