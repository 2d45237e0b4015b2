//! One module per state type with work of its own; `super::step` holds the one match.

pub mod choice;
pub mod fail;
pub mod map;
pub mod parallel;
pub mod pass;
pub mod task;
pub mod wait;
