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

    /// [`Reducer::apply`] on a state the caller gives up, so that the
    /// reducer may update it in place. On a state the caller still holds,
    /// an update copies every node on the paths it changes (persistent
    /// values), and the caller then frees the old ones; a state held only
    /// here (the nodes not shared with a checkpoint) is changed in place.
    ///
    /// `None` when the event does not fold cleanly (a reducer error, no
    /// output, or the fast engine giving up on it): the state is lost, and
    /// the caller gets the outcome and message from [`Reducer::apply`] on
    /// the state before the event (which it kept, or rebuilds from a
    /// checkpoint; runs are pure, so replaying events gives the same
    /// states).
    fn apply_owned(&self, state: PVal, event: &PVal) -> Option<PVal> {
        self.apply(&state, event).ok()
    }
}
