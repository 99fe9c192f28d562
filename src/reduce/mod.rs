//! Reducers: the jq program that folds events into state.
//!
//! For each event the program runs with `.` = the state before the event and
//! `$event` = the normalized event; its last output is the state after it.
//! An error or no output is a *reducer error* recorded on that event; the
//! state is left unchanged (see `image`).

mod direct;
pub mod jq;
mod natives;

pub use jq::{CompileError, JqReducer};

use crate::value::PVal;

/// The built-in default reducer (see `assets/default-reducer.jq`).
pub const DEFAULT_REDUCER: &str = include_str!("../../assets/default-reducer.jq");

/// Folds one event into a state.
pub trait Reducer: Send + Sync {
    /// The state after `event`, or the message of the error it raised.
    fn apply(&self, state: &PVal, event: &PVal) -> Result<PVal, String>;
}
