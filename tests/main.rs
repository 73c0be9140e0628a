//! One integration-test binary (one link step on a 2-core CI). Every test talks to a real server
//! on 127.0.0.1: metronome's own `serve`, or a TLS server the test starts.

mod common;

mod bad_input;
mod demo;
mod engine;
mod faults;
mod gates;
mod grpc;
mod open_loop;
mod profiles;
pub mod report_schema;
mod retries;
mod serve;
mod signals;
mod tls;
mod tui;
