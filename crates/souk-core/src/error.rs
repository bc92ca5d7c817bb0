//! The errors core can report: bad input naming its field, and refused state transitions.

use std::fmt;

/// A state machine refused an event in the state it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The state the subject was in, e.g. `released`.
    pub state: String,
    /// What was asked, e.g. `renew`.
    pub event: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} while {}", self.event, self.state)
    }
}

/// Everything core can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An input value is not acceptable; `field` names it as the API spells it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A transition is not allowed in the current state.
    #[error("{0}")]
    Refused(Refused),
}

impl Error {
    /// Shorthand for an [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for an [`Error::Refused`].
    pub fn refused(state: impl fmt::Display, event: impl Into<String>) -> Self {
        Error::Refused(Refused {
            state: state.to_string(),
            event: event.into(),
        })
    }
}
