//! The jq reducer, run by jaq directly on `PVal`.
//! (Placeholder: the real implementation lands with the jaq ValT work.)

use super::Reducer;
use crate::value::PVal;

/// A reducer program that did not compile, with where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct CompileError {
    /// File name or `--reducer-expr`.
    pub origin: String,
    /// 1-based line and column of the problem.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A compiled jq reducer.
pub struct JqReducer {
    source: String,
}

impl JqReducer {
    /// Compile `code`; `origin` names it in error messages.
    pub fn compile(code: &str, origin: &str) -> Result<JqReducer, CompileError> {
        let _ = origin;
        Ok(JqReducer {
            source: code.to_string(),
        })
    }

    /// The value of a 0-ary `init` defined in the program, if it defines one.
    pub fn init(&self) -> Result<Option<PVal>, String> {
        Ok(None)
    }

    /// The program text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl Reducer for JqReducer {
    fn apply(&self, state: &PVal, _event: &PVal) -> Result<PVal, String> {
        Ok(state.clone())
    }
}
