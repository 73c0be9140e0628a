//! Load profiles: TOML files and the command-line shorthand → a typed [`Profile`] whose
//! [`Shape`] the schedule runs.
//!
//! A profile file holds stages in sequence (`[[stage]]`), shapes added on top (`[[overlay]]`),
//! the arrival process and seed, time and rate scales, and the request(s) to send
//! (`[[request]]`, one or a weighted mix). Every key is checked: an unknown key, a wrong type, a
//! negative or NaN rate, a zero-length stage, an unreadable or non-monotonic CSV or an unknown
//! shape is a [`ProfileError`] naming the file, line and column, with a hint. See
//! `docs/profiles.md` for the format and the shorthand grammar.
//!
//! - [`check`] / [`load`] / [`parse_str`]: file → [`Profile`];
//! - [`parse_shorthand`]: `--shape 'ramp:50->1000/s@2m'` → [`Shape`];
//! - [`summary`] and [`render_plot`]: what `metronome profile show` prints.
//!
//! One job per file: `file` (the TOML model and its validation), `shorthand` (the `--shape`
//! parser), `csv` (replay files), `units` (rate and duration text), `shapes` (the one table of
//! shapes: names, aliases, keys and the builders both front-ends use), `error` ([`ProfileError`]
//! and its snippets) and `show` (summary and plot).

mod csv;
mod error;
mod file;
mod shapes;
mod shorthand;
mod show;
#[cfg(test)]
mod testutil;
mod units;

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::schedule::Shape;

pub use csv::parse_csv;
pub(crate) use error::suggest;
use error::Ctx;
pub use error::ProfileError;
pub use file::parse_str;
pub use shorthand::parse_shorthand;
pub use show::{render_plot, show, summary};
pub use units::{parse_rate, parse_secs};

/// A validated load profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `name` from the file, or the file's stem.
    pub name: String,
    pub description: Option<String>,
    /// The file it came from.
    pub path: Option<PathBuf>,
    /// The compiled curve with arrivals, seed and scales applied.
    pub shape: Shape,
    /// The seed as written in the file; `None` means a fresh one was drawn (see
    /// [`Shape::seed`] for the one in use; reports print it so the run can be repeated).
    pub seed: Option<u64>,
    /// The client retry policy of the `[retry]` table, if any.
    pub retry: Option<crate::retry::Policy>,
    /// How recovery is judged (`[recovery]`), if given.
    pub recovery: Option<crate::report::recovery::RecoverySpec>,
    /// The requests to send, picked by weight for each ticket ([`crate::schedule::Ticket::request`]
    /// indexes this list). Empty: the command line's URL, method, headers and body apply.
    pub requests: Vec<RequestDef>,
    /// The `[thresholds]`, checked: (where written as `FILE:LINE:COL`, the expression).
    pub thresholds: Vec<(String, String)>,
}

impl Profile {
    /// The weights of the request mix, for [`crate::schedule::Schedule::with_mix`].
    pub fn weights(&self) -> Vec<u32> {
        self.requests.iter().map(|r| r.weight).collect()
    }
}

/// One request of a profile's mix.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestDef {
    pub name: Option<String>,
    /// Relative weight (≥ 1).
    pub weight: u32,
    /// Upper-case method, `GET` by default.
    pub method: String,
    /// An absolute URL, replacing the command line's target.
    pub url: Option<String>,
    /// A path and query (`/api/items?page=2`) on the command line's target.
    pub path: Option<String>,
    /// `(name, value)` pairs, validated as HTTP headers.
    pub headers: Vec<(String, String)>,
    /// The body: literal text, or the content of `body_file` read at load time.
    pub body: Option<Bytes>,
    /// Where the body came from, resolved against the profile's directory.
    pub body_file: Option<PathBuf>,
    /// A gRPC method (`package.Service/Method`), for grpc:// targets; the body is its JSON.
    pub call: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Reads and validates a profile file without sending anything (`metronome profile check`).
pub fn check(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
    load(path.as_ref())
}

/// Reads and validates a profile file.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let bytes =
        crate::input::read_bounded(path, crate::input::MAX_PROFILE, "a profile").map_err(|e| {
            ProfileError::plain(
                Some(path),
                format!("cannot read the profile: {e}"),
                "give the path of a readable TOML profile, e.g. profiles/ramp.toml",
            )
        })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let ctx = Ctx {
                text: &text,
                file: Some(path),
            };
            return Err(ctx.at(
                good..good + 1,
                "the profile is not valid UTF-8",
                "save the file as UTF-8 text",
            ));
        }
    };
    parse_str(&text, path)
}

#[cfg(test)]
mod tests {
    use super::testutil::tempdir;
    use super::*;
    use crate::schedule::{Arrivals, Schedule};
    use std::time::{Duration, Instant};

    #[test]
    fn examples_mean_what_they_say() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let load = |n: &str| check(dir.join(n)).unwrap();
        let ramp = load("ramp.toml");
        let counts: Vec<u64> = ramp.shape.stages().iter().map(|s| s.requests).collect();
        assert_eq!(counts, [1500, 63_000, 60_000, 15_000]);
        assert_eq!(ramp.shape.duration(), Duration::from_secs(240));
        assert_eq!(
            ramp.shape.stage_at(Duration::from_secs(100)),
            Some((1, "ramp-up"))
        );
        let d = load("diurnal.toml");
        assert_eq!(d.shape.duration(), Duration::from_secs(24 * 60));
        assert_eq!(d.shape.arrivals(), Arrivals::Poisson);
        assert_eq!((d.seed, d.shape.seed()), (Some(20_240_501), 20_240_501));
        // Peak at 14:00 of profile time = 14 min of run time: base + amplitude.
        let r = d.shape.rate_at(Duration::from_secs(14 * 60));
        assert!((r - 500.0).abs() < 1e-6, "{r}");
        assert!(
            d.shape.describe().starts_with("diurnal ("),
            "{}",
            d.shape.describe()
        );
        let t = load("diurnal-table.toml");
        // 00:00 → 400/s × 0.3; 12:00 (6 min at ×120) → 1500 × 0.3.
        assert!((t.shape.rate_at(Duration::ZERO) - 120.0).abs() < 1e-9);
        assert!((t.shape.rate_at(Duration::from_secs(360)) - 450.0).abs() < 1e-9);
        let rep = load("replay.toml");
        assert_eq!(rep.shape.duration(), Duration::from_secs(120));
        assert!((rep.shape.rate_at(Duration::from_secs(60)) - 400.0).abs() < 1e-9);
        let mix = load("mixed.toml");
        assert_eq!(mix.weights(), [7, 2, 1]);
        assert_eq!(mix.requests[2].method, "POST");
        assert_eq!(
            mix.requests[2].body.as_deref(),
            Some(&b"{\"item\": 42, \"quantity\": 1}\n"[..])
        );
        assert_eq!(
            mix.requests[1].headers,
            [
                ("Accept".to_string(), "application/json".to_string()),
                ("X-Load-Test".to_string(), "metronome".to_string())
            ]
        );
        assert!((mix.shape.rate_at(Duration::from_secs(90)) - 500.0).abs() < 1e-9);
        // The mix is seeded by the profile: same picks every time.
        let picks = |p: &Profile| -> Vec<u32> {
            Schedule::new(p.shape.clone(), Instant::now())
                .with_mix(&p.weights())
                .take(1000)
                .map(|t| t.request())
                .collect()
        };
        let a = picks(&mix);
        assert_eq!(a, picks(&load("mixed.toml")));
        let share0 = a.iter().filter(|&&r| r == 0).count();
        assert!((620..=780).contains(&share0), "{share0}");
        let b = load("burst.toml");
        assert_eq!(b.shape.peak_rate(), Some(3000.0));
    }

    #[test]
    fn unreadable_files() {
        let e = check("/nonexistent/profile.toml").unwrap_err();
        assert_eq!(e.line, None);
        assert!(e.message.contains("cannot read"), "{e}");
        let dir = tempdir();
        let p = dir.path().join("latin1.toml");
        std::fs::write(&p, b"name = \"caf\xe9\"\n").unwrap();
        let e = check(&p).unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(12)), "{e}");
    }
}
