//! evscope: a terminal explorer for event-sourced systems.
//!
//! The library is the UI-free engine: log sources (`log`), the persistent
//! JSON value (`value`), jq reducers (`reduce`), the memory image of every
//! state (`image`) and structural diffs (`diff`). The command line (`cli`)
//! is a thin face over it.

pub mod log;
pub mod reduce;
pub mod value;
pub mod diff;
pub mod image;
pub mod cli;
