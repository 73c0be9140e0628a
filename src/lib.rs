//! # metronome
//!
//! An open-loop, coordinated-omission-correct load generator.
//!
//! A closed-loop tool waits for a slow response before sending the next request, so it stops
//! measuring exactly when the target is in trouble. metronome fixes every request's *intended*
//! start from the schedule before the run, never waits on responses, and measures from that
//! instant. Three clocks per request are kept apart: **latency** (completion − intended start),
//! **service time** (completion − send) and **send lag** (send − intended start, the generator's
//! own lateness).
//!
//! ## Data flow
//! ```text
//! cli ─► plan::Plan ─► schedule::Schedule ─► dispatch::pace ─► backlog (bounded)
//!                                                      │ full ⇒ dropped, counted
//!                                                      ▼
//!        dispatch::Crew (workers on demand) ─► transport::http (connections on demand)
//!                                                      │ Outcome (failures and cuts included)
//!                                                      ▼
//!                                   record::Recorder ─► 1 s windows, totals, progress line
//!                                                      ▼
//!                                   report::{text, json} and the verdict
//! ```
//! - [`schedule`] is the only place a [`schedule::Ticket`] (and its intended time) is made.
//! - [`record::Outcome`] is the only place the three clocks are computed.
//! - [`run::run`] wires the pipeline and owns shutdown; [`report::Report`] is a pure function of
//!   the final measurement and carries the generator-health verdict.
//! - [`serve`] is the built-in target used by `metronome demo` and the tests.

pub mod cli;
pub mod control;
pub mod demo;
pub mod dispatch;
pub mod error;
pub mod gate;
pub mod grpc;
pub mod input;
pub mod plan;
pub mod profile;
pub mod record;
pub mod report;
pub mod retry;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod transport;
pub mod tui;

pub use control::Control;
pub use error::Error;
pub use plan::Plan;
pub use report::Report;
pub use run::{run, run_steered, run_with, Stop, Views};
