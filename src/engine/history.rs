//! Execution history: events named and shaped as AWS's GetExecutionHistory returns them. The
//! core draws their ids (always: AWS quotes them in error causes, "entered at the event id
//! #2") and builds the events themselves only when the caller asked for a history.

pub use crate::store::Event;
