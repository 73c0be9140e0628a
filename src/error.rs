//! Typed errors. Every variant says what went wrong, where, and how to fix it, because a load
//! generator that is misconfigured must refuse to send anything rather than measure the wrong thing.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Everything that can stop a run before (or instead of) sending load.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid URL '{}': {reason} (expected an absolute http:// or https:// URL, e.g. http://127.0.0.1:8080/, or grpc(s)://host:port)", clip(url))]
    Url { url: String, reason: String },

    #[error("invalid header '{}': {reason} (expected 'Name: value', e.g. -H 'Accept: application/json')", clip(header))]
    Header { header: String, reason: String },

    // The I/O error is part of the one-line message, not a `source`: anyhow's `{:#}` would
    // print it twice.
    #[error("cannot read body file '{}': {cause} (use -b @FILE with a readable file, or -b 'literal text')", clip_path(path))]
    BodyFile {
        path: PathBuf,
        cause: crate::input::InputError,
    },

    #[error("invalid {flag} '{}': {reason}", clip(value))]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error("cannot read CA certificates from '{}': {reason} (give a PEM file with at least one CERTIFICATE block)", clip_path(path))]
    CaCert { path: PathBuf, reason: String },

    #[error(
        "cannot resolve '{}': {reason} (check the host name in the URL)",
        clip(host)
    )]
    Resolve { host: String, reason: String },

    #[error(
        "target {} is unreachable: {reason} (is the server running and listening on that port?)",
        clip(target)
    )]
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

    #[error("cannot write the report to '{}': {cause} (check that the directory exists and is writable)", clip_path(path))]
    Report {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),

    #[error(transparent)]
    Grpc(#[from] crate::grpc::schema::SchemaError),

    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),

    #[error(transparent)]
    Gate(#[from] crate::gate::GateError),

    #[error(transparent)]
    Compare(#[from] crate::gate::compare::CompareError),

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

/// The longest echo of user input in an error message, in characters.
pub const ECHO_LIMIT: usize = 80;

/// `text` as it is when short, else its first [`ECHO_LIMIT`] characters and `… (N bytes)`: an
/// error quotes what was wrong, but a 100 KB URL or a 300-digit number would bury the reason.
pub fn clip(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHO_LIMIT) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &text[..cut], text.len())),
    }
}

/// [`clip`] for a path.
pub fn clip_path(path: &Path) -> String {
    clip(&path.display().to_string()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_echoes_are_cut() {
        assert_eq!(clip("short"), "short");
        let exact = "x".repeat(ECHO_LIMIT);
        assert_eq!(clip(&exact), exact);
        let long = "é".repeat(50_000);
        let c = clip(&long);
        assert!(c.ends_with("… (100000 bytes)"), "{c}");
        assert_eq!(c.chars().filter(|&ch| ch == 'é').count(), ECHO_LIMIT);
        let e = Error::invalid("--rate", "9".repeat(300), "too big");
        assert!(e.to_string().len() < 200, "{e}");
        let e = Error::Url {
            url: format!("http://{}/", "a".repeat(100_000)),
            reason: "bad".into(),
        };
        assert!(e.to_string().contains("(100008 bytes)"), "{e}");
    }
}
