//! stepgate: a self-hosted AWS Step Functions.
//!
//! Data flow: a definition is parsed and checked by [`asl`] (pure), compiled into a
//! [`asl::Machine`]; the [`engine`] runs executions of it by calling
//! [`interpreter::step`] (pure: no I/O, no clock) for one state at a time and carrying
//! out the effects it returns (Task calls through [`connectors`], timers, branches),
//! recording history events as AWS names them. [`config`] supplies the local function
//! table and limits; `main.rs` is the CLI on top.

pub mod api;
pub mod asl;
pub mod config;
pub mod connectors;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod interpreter;
pub mod memory;
pub mod metrics;
pub mod mock;
pub mod service;
pub mod store;
pub mod time;
pub mod triggers;
