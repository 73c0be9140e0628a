//! Typed errors. Every variant says what went wrong, where, and how to fix it, because a load
//! generator that is misconfigured must refuse to send anything rather than measure the wrong thing.

use std::path::PathBuf;

/// Everything that can stop a run before (or instead of) sending load.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid URL '{url}': {reason} (expected an absolute http:// or https:// URL, e.g. http://127.0.0.1:8080/)")]
    Url { url: String, reason: String },

    #[error("invalid header '{header}': {reason} (expected 'Name: value', e.g. -H 'Accept: application/json')")]
    Header { header: String, reason: String },

    // The I/O error is part of the one-line message, not a `source`: anyhow's `{:#}` would
    // print it twice.
    #[error("cannot read body file '{}': {cause} (use -b @FILE with a readable file, or -b 'literal text')", path.display())]
    BodyFile {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("invalid {flag} '{value}': {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error("cannot read CA certificates from '{}': {reason} (give a PEM file with at least one CERTIFICATE block)", path.display())]
    CaCert { path: PathBuf, reason: String },

    #[error("cannot resolve '{host}': {reason} (check the host name in the URL)")]
    Resolve { host: String, reason: String },

    #[error("target {target} is unreachable: {reason} (is the server running and listening on that port?)")]
    Unreachable { target: String, reason: String },

    #[error("target {target} does not speak the protocol asked for: {reason}")]
    Protocol { target: String, reason: String },

    #[error("--max-connections needs {wanted} file descriptors but this process may open {limit} (less {reserve} kept for everything else): raise the limit (ulimit -n, or LimitNOFILE= for a service) or lower --max-connections / --max-in-flight")]
    FdLimit {
        wanted: usize,
        limit: u64,
        reserve: u64,
    },

    #[error("stopped while connecting to the target; nothing was sent")]
    Stopped,

    #[error("cannot write the report to '{}': {cause} (check that the directory exists and is writable)", path.display())]
    Report {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),

    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Shorthand for the most common validation failure.
    pub fn invalid(
        flag: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            flag,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
