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

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::schedule::{
    degrees, fmt_rate, fmt_secs, fresh_seed, Arrivals, Interpolate, Overlay, Shape, Stage,
    StageError, StageKind, StageRef,
};

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A profile (or shorthand) that cannot be used: where, what, and how to fix it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileError {
    /// The profile or CSV file; `None` for the command-line shorthand.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column (in characters), when known.
    pub column: Option<u32>,
    pub message: String,
    pub hint: String,
    /// The offending source line with a caret under the position.
    pub snippet: Option<String>,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => write!(f, "--shape")?,
        }
        if let Some(l) = self.line {
            if self.file.is_some() {
                write!(f, ":{l}")?;
            }
            if let Some(c) = self.column {
                if self.file.is_some() {
                    write!(f, ":{c}")?;
                } else {
                    write!(f, " at column {c}")?;
                }
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        write!(f, "\n  hint: {}", self.hint)
    }
}

impl std::error::Error for ProfileError {}

impl ProfileError {
    fn plain(file: Option<&Path>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        ProfileError {
            file: file.map(Path::to_path_buf),
            line: None,
            column: None,
            message: message.into(),
            hint: hint.into(),
            snippet: None,
        }
    }
}

/// `(line, column)`, both 1-based, of byte `offset` in `text` (columns count characters).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The line holding `span.start`, with carets under the span (clipped to the line).
fn snippet(text: &str, span: &Range<usize>) -> String {
    let start = floor_char(text, span.start.min(text.len()));
    let (line, col) = line_col(text, start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let src = text[line_start..line_end].trim_end_matches('\r');
    let end = floor_char(text, span.end.clamp(start, line_end));
    let width = text[start..end].chars().count().max(1);
    let gutter = line.to_string().len();
    format!(
        "{:>gutter$} |\n{line} | {src}\n{:>gutter$} | {}{}",
        "",
        "",
        " ".repeat(col - 1),
        "^".repeat(width.min(80)),
    )
}

/// Builds errors that point into one source text.
struct Ctx<'a> {
    text: &'a str,
    file: Option<&'a Path>,
}

impl Ctx<'_> {
    fn at(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ProfileError {
        let (line, column) = line_col(self.text, span.start);
        ProfileError {
            file: self.file.map(Path::to_path_buf),
            line: Some(line as u32),
            column: Some(column as u32),
            message: message.into(),
            hint: hint.into(),
            snippet: Some(snippet(self.text, &span)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The typed profile
// ---------------------------------------------------------------------------------------------

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
    /// The requests to send, picked by weight for each ticket ([`crate::schedule::Ticket::request`]
    /// indexes this list). Empty: the command line's URL, method, headers and body apply.
    pub requests: Vec<RequestDef>,
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
}

// ---------------------------------------------------------------------------------------------
// TOML model
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    name: Option<Spanned<String>>,
    description: Option<String>,
    arrivals: Option<Spanned<String>>,
    seed: Option<Spanned<i64>>,
    time_scale: Option<Spanned<f64>>,
    rate_scale: Option<Spanned<f64>>,
    #[serde(default)]
    stage: Vec<Spanned<StageToml>>,
    #[serde(default)]
    overlay: Vec<Spanned<StageToml>>,
    #[serde(default)]
    request: Vec<Spanned<RequestToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageToml {
    name: Option<Spanned<String>>,
    shape: Spanned<String>,
    duration: Option<Spanned<Secs>>,
    rate: Option<Spanned<Rate>>,
    from: Option<Spanned<Rate>>,
    to: Option<Spanned<Rate>>,
    steps: Option<Spanned<i64>>,
    hold: Option<Spanned<Secs>>,
    rates: Option<Spanned<Vec<Rate>>>,
    every: Option<Spanned<Secs>>,
    base: Option<Spanned<Rate>>,
    peak: Option<Spanned<Rate>>,
    amplitude: Option<Spanned<Rate>>,
    period: Option<Spanned<Secs>>,
    phase: Option<Spanned<f64>>,
    peak_at: Option<Spanned<Secs>>,
    rise: Option<Spanned<Secs>>,
    fall: Option<Spanned<Secs>>,
    at: Option<Spanned<Secs>>,
    start: Option<Spanned<Secs>>,
    file: Option<Spanned<String>>,
    interpolate: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestToml {
    name: Option<String>,
    weight: Option<Spanned<i64>>,
    method: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    headers: Option<Spanned<Headers>>,
    body: Option<Spanned<String>>,
    body_file: Option<Spanned<String>>,
}

/// A rate: a number (per second) or a string `500`, `500/s`, `30000/m`, `100/h`.
#[derive(Clone, Copy, Debug)]
struct Rate(f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(
            d,
            "a rate: requests per second as a number, or a string such as \"500/s\", \"30000/m\" or \"100/h\"",
            parse_rate,
        )
        .map(Rate)
    }
}

/// A number as it is, or a string read by `parse`: the one shape behind [`Rate`] and [`Secs`].
fn number_or_text<'de, D: Deserializer<'de>>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<f64, String>,
) -> Result<f64, D::Error> {
    struct V {
        expecting: &'static str,
        parse: fn(&str) -> Result<f64, String>,
    }
    impl Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V { expecting, parse })
}

/// A length: a string `30s`, `2m`, `1h 30m`, `250ms`, or a number of seconds.
#[derive(Clone, Copy, Debug)]
struct Secs(f64);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(
            d,
            "a duration such as \"30s\", \"2m\", \"1h 30m\" or a number of seconds",
            parse_secs,
        )
        .map(Secs)
    }
}

/// Headers as a table `{ Accept = "application/json" }` or a list `["Accept: application/json"]`.
#[derive(Clone, Debug)]
struct Headers(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table { Name = \"value\" } or a list [\"Name: value\"]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Headers, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, String>()? {
                    v.push((k, val));
                }
                Ok(Headers(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Headers, A::Error> {
                let mut v = Vec::new();
                while let Some(line) = s.next_element::<String>()? {
                    let (k, val) = line.split_once(':').ok_or_else(|| {
                        de::Error::custom(format!("header '{line}' is not 'Name: value'"))
                    })?;
                    v.push((k.trim().to_string(), val.trim().to_string()));
                }
                Ok(Headers(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `500`, `500/s`, `30000/m`, `100/h` → requests per second (0 allowed: a pause).
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    let s = raw.trim();
    let (num, per) = match s.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                "d" | "day" => 86_400.0,
                other => {
                    return Err(format!(
                        "unknown rate unit '/{other}' in '{raw}' (use /s, /m, /h or /d)"
                    ))
                }
            };
            (n.trim(), per)
        }
        None => (s, 1.0),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{raw}' is not a rate (e.g. 500, \"500/s\", \"30000/m\")"))?;
    Ok(n / per)
}

/// `30s`, `2m`, `1h 30m`, `250ms`, or plain seconds (`1.5`) → seconds.
pub fn parse_secs(raw: &str) -> Result<f64, String> {
    let s = raw.trim();
    if let Ok(x) = s.parse::<f64>() {
        return Ok(x);
    }
    humantime::parse_duration(s)
        .map(|d| d.as_secs_f64())
        .map_err(|e| format!("'{raw}' is not a duration ({e}; e.g. \"30s\", \"2m\", \"1h 30m\")"))
}

// ---------------------------------------------------------------------------------------------
// Shapes and their keys
// ---------------------------------------------------------------------------------------------

const SHAPES: &[&str] = &[
    "constant", "ramp", "step", "burst", "sine", "table", "replay",
];
const ALIASES: &[(&str, &str)] = &[
    ("const", "constant"),
    ("diurnal", "sine"),
    ("spike", "burst"),
];

/// Keys each shape takes (besides `name` and `shape`, and `start` on overlays).
fn shape_keys(shape: &str) -> &'static [&'static str] {
    match shape {
        "constant" => &["rate", "duration"],
        "ramp" => &["from", "to", "duration"],
        "step" => &["from", "to", "steps", "rates", "hold"],
        "burst" => &[
            "base", "peak", "hold", "rise", "fall", "every", "at", "duration",
        ],
        "sine" => &[
            "base",
            "amplitude",
            "period",
            "phase",
            "peak_at",
            "duration",
        ],
        "table" => &["rates", "every", "interpolate", "duration"],
        "replay" => &["file", "interpolate"],
        _ => &[],
    }
}

fn resolve_shape(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase();
    SHAPES
        .iter()
        .copied()
        .find(|k| *k == s)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == s).map(|(_, k)| *k))
}

/// The closest known word, for "did you mean".
fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&w, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn shapes_hint(word: &str) -> String {
    let list = "constant, ramp, step, burst (or spike), sine (or diurnal), table, replay";
    match suggest(
        word,
        SHAPES.iter().copied().chain(ALIASES.iter().map(|a| a.0)),
    ) {
        Some(s) => format!("did you mean \"{s}\"? shapes are {list}"),
        None => format!("shapes are {list}"),
    }
}

impl StageToml {
    /// Every key present, with its value's span.
    fn present(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut v = Vec::new();
        macro_rules! key {
            ($($f:ident),*) => {$(
                if let Some(x) = &self.$f {
                    v.push((stringify!($f), x.span()));
                }
            )*};
        }
        key!(
            duration,
            rate,
            from,
            to,
            steps,
            hold,
            rates,
            every,
            base,
            peak,
            amplitude,
            period,
            phase,
            peak_at,
            rise,
            fall,
            at,
            start,
            file,
            interpolate
        );
        v
    }

    fn span_of(&self, field: &str) -> Option<Range<usize>> {
        let key = match field {
            "shape" => return Some(self.shape.span()),
            "name" => return self.name.as_ref().map(Spanned::span),
            other => other,
        };
        self.present()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| s)
    }
}

fn rate_of(x: &Option<Spanned<Rate>>) -> Option<f64> {
    x.as_ref().map(|s| s.get_ref().0)
}

fn secs_of(x: &Option<Spanned<Secs>>) -> Option<f64> {
    x.as_ref().map(|s| s.get_ref().0)
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
    let bytes = std::fs::read(path).map_err(|e| {
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

/// Parses a profile from `text`; `path` names it in errors and anchors relative `file` and
/// `body_file` paths (its directory).
pub fn parse_str(text: &str, path: &Path) -> Result<Profile, ProfileError> {
    let ctx = Ctx {
        text,
        file: Some(path),
    };
    let raw: FileToml = toml::from_str(text).map_err(|e| toml_error(&ctx, &e))?;
    let dir = path.parent().unwrap_or(Path::new("."));

    if raw.stage.is_empty() {
        return Err(ctx.at(
            0..0,
            "the profile has no [[stage]]",
            "add at least one stage, e.g. [[stage]] with shape = \"constant\", rate = 100, duration = \"1m\"",
        ));
    }
    let mut stages = Vec::with_capacity(raw.stage.len());
    for s in &raw.stage {
        stages.push(build_stage(&ctx, s, false, None, dir)?);
    }
    let profile_len: f64 = stages.iter().map(|s: &Stage| s.kind.duration()).sum();
    let mut overlays = Vec::with_capacity(raw.overlay.len());
    for s in &raw.overlay {
        let start = secs_of(&s.get_ref().start).unwrap_or(0.0);
        if let Some(sp) = &s.get_ref().start {
            if !(start >= 0.0 && start < profile_len) {
                return Err(ctx.at(
                    sp.span(),
                    format!(
                        "the overlay starts at {}, outside the stages (0s to {})",
                        fmt_secs(start),
                        fmt_secs(profile_len)
                    ),
                    "`start` is an offset from the beginning of the profile, before its end",
                ));
            }
        }
        let rest = (profile_len - start).max(0.0);
        let stage = build_stage(&ctx, s, true, Some(rest), dir)?;
        overlays.push(Overlay { start, stage });
    }
    let spans_of = |e: &StageError| -> Range<usize> {
        let pick = |list: &[Spanned<StageToml>], i: usize| {
            list.get(i).map(|s| {
                s.get_ref()
                    .span_of(e.field)
                    .unwrap_or_else(|| s.get_ref().shape.span())
            })
        };
        match e.at {
            StageRef::Stage(i) => pick(&raw.stage, i),
            StageRef::Overlay(i) => pick(&raw.overlay, i),
            StageRef::Profile => match e.field {
                "time_scale" => raw.time_scale.as_ref().map(Spanned::span),
                "rate_scale" => raw.rate_scale.as_ref().map(Spanned::span),
                // Whole-profile totals: point at the first stage.
                _ => pick(&raw.stage, 0),
            },
        }
        .unwrap_or(0..0)
    };
    let shape = Shape::from_stages(stages, overlays)
        .map_err(|e| ctx.at(spans_of(&e), stage_message(&e), e.hint.clone()))?;

    let arrivals = match &raw.arrivals {
        None => Arrivals::Uniform,
        Some(a) => Arrivals::parse(a.get_ref().trim()).ok_or_else(|| {
            ctx.at(
                a.span(),
                format!("unknown arrival process \"{}\"", a.get_ref()),
                "arrivals = \"uniform\" (evenly spaced, the default) or \"poisson\" (random, same mean rate)",
            )
        })?,
    };
    let seed = match &raw.seed {
        None => None,
        Some(s) if *s.get_ref() < 0 => {
            return Err(ctx.at(
                s.span(),
                format!("seed {} is negative", s.get_ref()),
                "give a seed from 0 to 9223372036854775807",
            ))
        }
        Some(s) => Some(*s.get_ref() as u64),
    };
    let time_scale = raw.time_scale.as_ref().map_or(1.0, |s| *s.get_ref());
    let rate_scale = raw.rate_scale.as_ref().map_or(1.0, |s| *s.get_ref());
    let name = raw.name.as_ref().map_or_else(
        || {
            path.file_stem()
                .map_or("profile".to_string(), |s| s.to_string_lossy().into_owned())
        },
        |n| n.get_ref().clone(),
    );
    let shape = shape
        .with_scales(time_scale, rate_scale)
        .map_err(|e| ctx.at(spans_of(&e), stage_message(&e), e.hint.clone()))?
        .with_arrivals(arrivals, seed.unwrap_or_else(fresh_seed))
        .with_label(Some(name.clone()));

    let mut requests = Vec::with_capacity(raw.request.len());
    for r in &raw.request {
        requests.push(build_request(&ctx, r, dir)?);
    }
    Ok(Profile {
        name,
        description: raw.description,
        path: Some(path.to_path_buf()),
        shape,
        seed,
        requests,
    })
}

fn stage_message(e: &StageError) -> String {
    match e.at {
        StageRef::Stage(i) => format!("stage {}: {}", i + 1, e.reason),
        StageRef::Overlay(i) => format!("overlay {}: {}", i + 1, e.reason),
        StageRef::Profile => e.reason.clone(),
    }
}

/// A toml/serde error → file, line, column, message and a hint.
fn toml_error(ctx: &Ctx, e: &toml::de::Error) -> ProfileError {
    let msg = e.message().trim().to_string();
    let has = |w: &str| msg.contains(w);
    let hint = if msg.starts_with("unknown field") {
        let typo = did_you_mean_field(&msg);
        let section = if has("`shape`") && has("`rate`") {
            "stage keys depend on the shape; see docs/profiles.md"
        } else if has("`stage`") {
            "top-level keys are name, description, arrivals, seed, time_scale, rate_scale, and the [[stage]], [[overlay]] and [[request]] tables"
        } else {
            "remove the key or fix its spelling; see docs/profiles.md"
        };
        match typo {
            Some(t) => format!("did you mean `{t}`? {section}"),
            None => section.to_string(),
        }
    } else if msg.starts_with("missing field `shape`") {
        "every [[stage]] and [[overlay]] needs shape = \"constant\", \"ramp\", \"step\", \"burst\", \"sine\", \"table\" or \"replay\"".to_string()
    } else if msg.starts_with("missing field") {
        "add the missing key".to_string()
    } else if has("expected a sequence") {
        "stages, overlays and requests are arrays of tables: write [[stage]], [[overlay]], [[request]] (double brackets)".to_string()
    } else if has("not a rate") || has("rate unit") || has("expected a rate") {
        "rates are numbers of requests per second (500) or strings with a unit (\"500/s\", \"30000/m\", \"100/h\")".to_string()
    } else if has("not a duration") || has("expected a duration") {
        "durations are strings such as \"30s\", \"2m\", \"1h 30m\", \"250ms\", or numbers of seconds".to_string()
    } else if has("header") || has("Name = ") {
        "headers are a table { Accept = \"application/json\" } or a list [\"Accept: application/json\"]".to_string()
    } else if has("expected i64") {
        "give a whole number without quotes".to_string()
    } else if has("expected f64") {
        "give a number without quotes".to_string()
    } else if msg.starts_with("invalid type") {
        "check the value's type: names and paths are quoted strings, rates and scales are numbers"
            .to_string()
    } else {
        "fix the TOML syntax here: strings need quotes, keys are `key = value`, tables are [[stage]]".to_string()
    };
    let span = e.span().unwrap_or(0..0);
    ctx.at(span, msg, hint)
}

/// "unknown field `duratoin`, expected one of `name`, `duration`, …" → `duration`.
fn did_you_mean_field(msg: &str) -> Option<String> {
    let mut ticks = msg.split('`').skip(1).step_by(2);
    let word = ticks.next()?;
    suggest(word, ticks).map(str::to_string)
}

fn build_stage(
    ctx: &Ctx,
    spanned: &Spanned<StageToml>,
    overlay: bool,
    rest: Option<f64>,
    dir: &Path,
) -> Result<Stage, ProfileError> {
    let st = spanned.get_ref();
    let written = st.shape.get_ref();
    let shape = resolve_shape(written).ok_or_else(|| {
        ctx.at(
            st.shape.span(),
            format!("unknown shape \"{written}\""),
            shapes_hint(written),
        )
    })?;
    let allowed = shape_keys(shape);
    for (key, span) in st.present() {
        let ok = allowed.contains(&key) || (overlay && key == "start");
        if !ok {
            let extra = if key == "start" {
                " (`start` places an overlay; stages run in sequence)".to_string()
            } else {
                String::new()
            };
            return Err(ctx.at(
                span,
                format!("`{key}` does not apply to a {shape} stage{extra}"),
                format!(
                    "a {shape} stage takes: {}{}",
                    allowed.join(", "),
                    if overlay { ", start" } else { "" }
                ),
            ));
        }
    }
    let missing = |key: &str, example: &str| {
        ctx.at(
            st.shape.span(),
            format!(
                "a {shape} {} needs `{key}`",
                if overlay { "overlay" } else { "stage" }
            ),
            format!("add e.g. {key} = {example}"),
        )
    };
    let need_rate =
        |x: &Option<Spanned<Rate>>, key: &str| rate_of(x).ok_or_else(|| missing(key, "100"));
    let need_secs =
        |x: &Option<Spanned<Secs>>, key: &str| secs_of(x).ok_or_else(|| missing(key, "\"30s\""));
    // Overlays run to the end of the profile unless given a duration.
    let duration = || match (secs_of(&st.duration), rest) {
        (Some(d), _) => Ok(d),
        (None, Some(r)) => Ok(r),
        (None, None) => Err(missing("duration", "\"1m\"")),
    };
    let interpolate = || {
        match &st.interpolate {
        None => Ok(Interpolate::Linear),
        Some(s) => match s.get_ref().as_str() {
            "linear" => Ok(Interpolate::Linear),
            "step" => Ok(Interpolate::Step),
            other => Err(ctx.at(
                s.span(),
                format!("unknown interpolation \"{other}\""),
                "interpolate = \"linear\" (straight lines between points, the default) or \"step\" (hold each rate until the next point)",
            )),
        },
    }
    };
    let kind = match shape {
        "constant" => StageKind::Constant {
            rate: need_rate(&st.rate, "rate")?,
            duration: duration()?,
        },
        "ramp" => StageKind::Ramp {
            from: need_rate(&st.from, "from")?,
            to: need_rate(&st.to, "to")?,
            duration: duration()?,
        },
        "step" => {
            let hold = need_secs(&st.hold, "hold")?;
            let rates = match (&st.rates, &st.from) {
                (Some(r), None) if st.to.is_none() && st.steps.is_none() => {
                    r.get_ref().iter().map(|x| x.0).collect()
                }
                (None, Some(_)) => {
                    let from = need_rate(&st.from, "from")?;
                    let to = need_rate(&st.to, "to")?;
                    let steps = st.steps.as_ref().ok_or_else(|| missing("steps", "5"))?;
                    let n = *steps.get_ref();
                    if !(2..=100_000).contains(&n) {
                        return Err(ctx.at(
                            steps.span(),
                            format!("steps = {n}: a staircase from/to needs 2 to 100000 steps"),
                            "e.g. from = 100, to = 500, steps = 5 gives 100, 200, 300, 400, 500",
                        ));
                    }
                    (0..n)
                        .map(|i| from + (to - from) * i as f64 / (n - 1) as f64)
                        .collect()
                }
                (Some(r), _) => return Err(ctx.at(
                    r.span(),
                    "give either `rates` or `from`, `to` and `steps`, not both",
                    "rates = [100, 200, 400] lists the levels; from/to/steps spaces them evenly",
                )),
                (None, None) => return Err(missing("rates", "[100, 200, 400]")),
            };
            StageKind::Step { rates, hold }
        }
        "burst" => {
            let rise = secs_of(&st.rise).unwrap_or(0.0);
            StageKind::Burst {
                base: match (rate_of(&st.base), overlay) {
                    (Some(b), _) => b,
                    (None, true) => 0.0,
                    (None, false) => return Err(missing("base", "100")),
                },
                peak: need_rate(&st.peak, "peak")?,
                hold: need_secs(&st.hold, "hold")?,
                rise,
                fall: secs_of(&st.fall).unwrap_or(rise),
                every: secs_of(&st.every),
                at: secs_of(&st.at).unwrap_or(0.0),
                duration: duration()?,
            }
        }
        "sine" => {
            let duration = duration()?;
            let period = secs_of(&st.period).unwrap_or(duration);
            let phase = match (&st.phase, &st.peak_at) {
                (Some(p), Some(_)) => {
                    return Err(ctx.at(
                        p.span(),
                        "give either `phase` or `peak_at`, not both",
                        "phase (degrees) shifts the sine; peak_at (a time) puts its crest there",
                    ))
                }
                (Some(p), None) => degrees(*p.get_ref()),
                // base + A·cos(2π(t − peak_at)/P) = base + A·sin(2πt/P + π/2 − 2π·peak_at/P)
                (None, Some(at)) => {
                    std::f64::consts::FRAC_PI_2 - std::f64::consts::TAU * at.get_ref().0 / period
                }
                (None, None) => 0.0,
            };
            StageKind::Sine {
                base: need_rate(&st.base, "base")?,
                amplitude: need_rate(&st.amplitude, "amplitude")?,
                period,
                phase,
                duration,
            }
        }
        "table" => {
            let rates: Vec<f64> = st
                .rates
                .as_ref()
                .ok_or_else(|| missing("rates", "[120, 80, 60, 90]"))?
                .get_ref()
                .iter()
                .map(|x| x.0)
                .collect();
            let every = need_secs(&st.every, "every")?;
            let duration = match secs_of(&st.duration) {
                Some(d) => d,
                None if overlay => rest.unwrap_or(0.0),
                None => rates.len() as f64 * every,
            };
            StageKind::Table {
                rates,
                every,
                interpolate: interpolate()?,
                duration,
            }
        }
        "replay" => {
            let file = st
                .file
                .as_ref()
                .ok_or_else(|| missing("file", "\"traffic.csv\""))?;
            let csv_path = dir.join(file.get_ref());
            let text = std::fs::read_to_string(&csv_path).map_err(|e| {
                ctx.at(
                    file.span(),
                    format!("cannot read the replay file '{}': {e}", csv_path.display()),
                    "the path is relative to the profile's directory; the file holds `time,rate` rows",
                )
            })?;
            StageKind::Replay {
                points: parse_csv(&text, &csv_path)?,
                interpolate: interpolate()?,
            }
        }
        _ => unreachable!("resolve_shape returns known shapes"),
    };
    let name = st
        .name
        .as_ref()
        .map_or_else(|| written.trim().to_string(), |n| n.get_ref().clone());
    Ok(Stage { name, kind })
}

/// Reads `time,rate` rows. Times are seconds, durations (`1m30s`) or RFC 3339 timestamps, and are
/// rebased so the first row is at 0; rates are numbers or `500/m`-style strings. Blank lines,
/// `#` comments and one header line are skipped.
pub fn parse_csv(text: &str, path: &Path) -> Result<Vec<(f64, f64)>, ProfileError> {
    let at = |line: usize, message: String, hint: &str| ProfileError {
        file: Some(path.to_path_buf()),
        line: Some(line as u32),
        column: None,
        message,
        hint: hint.to_string(),
        snippet: None,
    };
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut header_seen = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() != 2 {
            return Err(at(
                line,
                format!("expected two columns `time,rate`, found {}", fields.len()),
                "each row is `time,rate`, e.g. `0,120` or `2024-05-01T00:00:00Z,120`",
            ));
        }
        let time = parse_csv_time(fields[0]);
        let rate = parse_rate(fields[1]);
        let (t, r) = match (time, rate) {
            (Some(t), Ok(r)) => (t, r),
            _ if points.is_empty() && !header_seen => {
                // A header such as `time,rate`.
                header_seen = true;
                continue;
            }
            (None, _) => {
                return Err(at(
                    line,
                    format!("'{}' is not a time", fields[0]),
                    "times are seconds (e.g. 90), durations (\"1m30s\") or RFC 3339 timestamps",
                ))
            }
            (_, Err(e)) => return Err(at(line, e, "rates are requests per second, e.g. 120")),
        };
        if !r.is_finite() || r < 0.0 {
            return Err(at(
                line,
                format!("rate {r} is not a finite number ≥ 0"),
                "rates are requests per second, e.g. 120",
            ));
        }
        if let Some(&(prev, _)) = points.last() {
            if t <= prev {
                return Err(at(
                    line,
                    format!(
                        "time {} is not after the previous row's {}",
                        fields[0],
                        fmt_secs(prev - points[0].0)
                    ),
                    "times must increase strictly: sort the rows and drop duplicates",
                ));
            }
        }
        points.push((t, r));
        if points.len() > crate::schedule::MAX_PIECES {
            return Err(at(
                line,
                "too many rows".to_string(),
                "resample to at most 500,000 rows",
            ));
        }
    }
    if points.len() < 2 {
        return Err(ProfileError::plain(
            Some(path),
            format!("the replay needs at least two rows, found {}", points.len()),
            "add `time,rate` rows covering the span to replay",
        ));
    }
    let t0 = points[0].0;
    for p in &mut points {
        p.0 -= t0;
    }
    Ok(points)
}

fn parse_csv_time(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Some(d.as_secs_f64());
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_secs_f64())
}

fn build_request(
    ctx: &Ctx,
    spanned: &Spanned<RequestToml>,
    dir: &Path,
) -> Result<RequestDef, ProfileError> {
    let r = spanned.get_ref();
    let weight = match &r.weight {
        None => 1,
        Some(w) if (1..=1_000_000).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            return Err(ctx.at(
                w.span(),
                format!("weight {} is out of range", w.get_ref()),
                "weights are whole numbers from 1 to 1000000, relative to the other requests",
            ))
        }
    };
    let method = match &r.method {
        None => "GET".to_string(),
        Some(m) => {
            let up = m.get_ref().trim().to_ascii_uppercase();
            http::Method::from_bytes(up.as_bytes()).map_err(|_| {
                ctx.at(
                    m.span(),
                    format!("\"{}\" is not an HTTP method", m.get_ref()),
                    "e.g. method = \"GET\", \"POST\", \"PUT\"",
                )
            })?;
            up
        }
    };
    if let (Some(_), Some(p)) = (&r.url, &r.path) {
        return Err(ctx.at(
            p.span(),
            "give either `url` or `path`, not both",
            "url replaces the command line's target; path is appended to its host",
        ));
    }
    if let Some(u) = &r.url {
        crate::plan::Target::parse(u.get_ref()).map_err(|e| {
            ctx.at(
                u.span(),
                e.to_string(),
                "url = \"http://host:port/path\"; or use path = \"/path\" on the command line's target",
            )
        })?;
    }
    if let Some(p) = &r.path {
        let ok =
            p.get_ref().starts_with('/') && p.get_ref().parse::<http::uri::PathAndQuery>().is_ok();
        if !ok {
            return Err(ctx.at(
                p.span(),
                format!("\"{}\" is not a path", p.get_ref()),
                "a path starts with '/', e.g. path = \"/api/items?page=2\"",
            ));
        }
    }
    let mut headers = Vec::new();
    if let Some(h) = &r.headers {
        for (k, v) in &h.get_ref().0 {
            let bad = http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err();
            if bad {
                return Err(ctx.at(
                    h.span(),
                    format!("invalid header '{k}: {v}'"),
                    "header names are tokens (letters, digits, '-'), values are visible ASCII",
                ));
            }
            headers.push((k.clone(), v.clone()));
        }
    }
    let (body, body_file) = match (&r.body, &r.body_file) {
        (Some(_), Some(f)) => {
            return Err(ctx.at(
                f.span(),
                "give either `body` or `body_file`, not both",
                "body is literal text; body_file names a file read at load time",
            ))
        }
        (Some(b), None) => (Some(Bytes::from(b.get_ref().clone())), None),
        (None, Some(f)) => {
            let p = dir.join(f.get_ref());
            let data = std::fs::read(&p).map_err(|e| {
                ctx.at(
                    f.span(),
                    format!("cannot read the body file '{}': {e}", p.display()),
                    "the path is relative to the profile's directory",
                )
            })?;
            (Some(Bytes::from(data)), Some(p))
        }
        (None, None) => (None, None),
    };
    Ok(RequestDef {
        name: r.name.clone(),
        weight,
        method,
        url: r.url.as_ref().map(|u| u.get_ref().clone()),
        path: r.path.as_ref().map(|p| p.get_ref().clone()),
        headers,
        body,
        body_file,
    })
}

// ---------------------------------------------------------------------------------------------
// Shorthand
// ---------------------------------------------------------------------------------------------

/// A token of the shorthand with its byte offset in the input.
#[derive(Clone, Copy)]
struct Tok<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Tok<'a> {
    fn trim(self) -> Tok<'a> {
        let lead = self.s.len() - self.s.trim_start().len();
        Tok {
            s: self.s.trim(),
            at: self.at + lead,
        }
    }
    /// Splits at every `sep` (with offsets).
    fn split(self, sep: char) -> Vec<Tok<'a>> {
        let mut out = Vec::new();
        let mut from = 0;
        for (i, c) in self.s.char_indices() {
            if c == sep {
                out.push(Tok {
                    s: &self.s[from..i],
                    at: self.at + from,
                });
                from = i + c.len_utf8();
            }
        }
        out.push(Tok {
            s: &self.s[from..],
            at: self.at + from,
        });
        out
    }
    /// Splits once at the first `sep` (a string).
    fn split_once(self, sep: &str) -> Option<(Tok<'a>, Tok<'a>)> {
        let i = self.s.find(sep)?;
        Some((
            Tok {
                s: &self.s[..i],
                at: self.at,
            },
            Tok {
                s: &self.s[i + sep.len()..],
                at: self.at + i + sep.len(),
            },
        ))
    }
}

struct Short<'a> {
    input: &'a str,
}

impl Short<'_> {
    fn err(&self, tok: Tok, message: impl Into<String>, hint: impl Into<String>) -> ProfileError {
        let ctx = Ctx {
            text: self.input,
            file: None,
        };
        let mut e = ctx.at(tok.at..tok.at + tok.s.len(), message, hint);
        e.file = None;
        e
    }

    fn rate(&self, t: Tok, unit: f64) -> Result<f64, ProfileError> {
        let t = t.trim();
        let s = t.s;
        if s.contains('/') {
            parse_rate(s).map_err(|m| self.err(t, m, "rates are like 500, 500/s, 30000/m"))
        } else {
            s.parse::<f64>().map(|x| x / unit).map_err(|_| {
                self.err(
                    t,
                    format!("'{s}' is not a rate"),
                    "rates are like 500, 500/s, 30000/m",
                )
            })
        }
    }

    fn secs(&self, t: Tok) -> Result<f64, ProfileError> {
        let t = t.trim();
        parse_secs(t.s).map_err(|m| self.err(t, m, "durations are like 30s, 2m, 1h30m, 250ms"))
    }

    /// The unit of the last rate in a list (`50->1000/s`): applies to bare numbers before it.
    fn unit_of(&self, last: Tok) -> f64 {
        match last.s.trim().split_once('/') {
            Some((_, u)) => parse_rate(&format!("1/{u}")).map_or(1.0, |r| 1.0 / r),
            None => 1.0,
        }
    }
}

/// Parses the command-line shorthand for a shape (uniform arrivals, seed 0, no scaling; apply
/// `--arrivals`, `--seed`, `--time-scale` and `--rate-scale` with [`Shape::with_arrivals`] and
/// [`Shape::with_scales`]).
///
/// ```text
/// shape    := stages ( '+' overlay )*
/// stages   := stage ( ';' stage )*
/// stage    := [ KIND ':' ] SPEC ( ',' KEY '=' VALUE )*
///
/// 500/s@30s                                   constant (unit: /s /m /h /d; default /s)
/// 50->1000/s@2m                               ramp
/// step:100->500/s@5x30s                       step: 5 steps of 30 s (100, 200, …, 500)
/// step:100|200|400@30s                        step: listed levels, 30 s each
/// burst:200->2000/s@10m,hold=30s,rise=5s,every=2m,at=1m,fall=5s
/// sine:1000~800/s@24h,period=24h,peak_at=14h  (or phase=DEGREES; period defaults to @)
/// table:120|80|60|90/s,every=6h,interpolate=step   (@DURATION optional: one cycle)
/// replay:traffic.csv,interpolate=step
/// … + burst:0->3000/s,hold=1m,every=1h,start=30m   overlay (@DURATION optional: to the end)
/// ```
/// Any stage takes `name=…`.
pub fn parse_shorthand(input: &str) -> Result<Shape, ProfileError> {
    let sh = Short { input };
    let whole = Tok { s: input, at: 0 };
    if input.trim().is_empty() {
        return Err(sh.err(
            whole,
            "empty shape",
            "e.g. --shape '50->1000/s@2m' or --shape '100/s@30s; 100->500/s@1m'",
        ));
    }
    // '+' starts an overlay when a letter follows (so 1e+3 stays a number).
    let mut parts = Vec::new();
    let mut from = 0;
    for (i, c) in input.char_indices() {
        if c == '+' {
            let next = input[i + 1..].trim_start();
            if next.starts_with(|c: char| c.is_ascii_alphabetic()) {
                parts.push(Tok {
                    s: &input[from..i],
                    at: from,
                });
                from = i + 1;
            }
        }
    }
    parts.push(Tok {
        s: &input[from..],
        at: from,
    });
    let mut stages = Vec::new();
    let mut stage_toks = Vec::new();
    for t in parts[0].split(';') {
        let t = t.trim();
        if t.s.is_empty() {
            return Err(sh.err(t, "empty stage", "stages are separated by ';'"));
        }
        stages.push(short_stage(&sh, t, None)?);
        stage_toks.push(t);
    }
    let total: f64 = stages.iter().map(|s: &Stage| s.kind.duration()).sum();
    let mut overlays = Vec::new();
    let mut overlay_toks = Vec::new();
    for t in &parts[1..] {
        let t = t.trim();
        let (o_start, stage) = {
            let start_tok = short_opts(&sh, t)?
                .into_iter()
                .find(|(k, _)| k.s == "start")
                .map(|(_, v)| v);
            let start = start_tok.map(|v| sh.secs(v)).transpose()?.unwrap_or(0.0);
            if let Some(v) = start_tok {
                if !(start >= 0.0 && start < total) {
                    return Err(sh.err(
                        v,
                        format!(
                            "the overlay starts at {}, outside the stages (0s to {})",
                            fmt_secs(start),
                            fmt_secs(total)
                        ),
                        "start=TIME is an offset from the beginning, before the end of the stages",
                    ));
                }
            }
            (start, short_stage(&sh, t, Some((total - start).max(0.0)))?)
        };
        overlays.push(Overlay {
            start: o_start,
            stage,
        });
        overlay_toks.push(t);
    }
    Shape::from_stages(stages, overlays).map_err(|e| {
        let tok = match e.at {
            StageRef::Stage(i) => stage_toks[i],
            StageRef::Overlay(i) => overlay_toks[i],
            StageRef::Profile => whole,
        };
        // Point at the option that carries the field, if one does.
        let tok = short_opts(&sh, tok)
            .ok()
            .and_then(|o| o.into_iter().find(|(k, _)| k.s == e.field).map(|(_, v)| v))
            .unwrap_or(tok);
        sh.err(tok, stage_message(&e), e.hint)
    })
}

/// `KEY=VALUE` options after the first comma of a stage.
fn short_opts<'a>(sh: &Short, t: Tok<'a>) -> Result<Vec<(Tok<'a>, Tok<'a>)>, ProfileError> {
    let mut out = Vec::new();
    for o in t.split(',').into_iter().skip(1) {
        let o = o.trim();
        let (k, v) = o.split_once("=").ok_or_else(|| {
            sh.err(
                o,
                format!("'{}' is not an option", o.s),
                "options are key=value, e.g. hold=30s, every=2m",
            )
        })?;
        out.push((k.trim(), v.trim()));
    }
    Ok(out)
}

fn short_stage(sh: &Short, t: Tok, rest: Option<f64>) -> Result<Stage, ProfileError> {
    let head = t.split(',')[0].trim();
    let opts = short_opts(sh, t)?;
    // KIND: prefix, if the text before ':' is a word.
    let (kind, spec) = match head.split_once(":") {
        Some((k, s)) if k.s.chars().all(|c| c.is_ascii_alphabetic()) && !k.s.is_empty() => {
            let k = k.trim();
            let shape = resolve_shape(k.s)
                .ok_or_else(|| sh.err(k, format!("unknown shape \"{}\"", k.s), shapes_hint(k.s)))?;
            (Some((shape, k)), s.trim())
        }
        _ => (None, head),
    };
    let shape = kind.map_or_else(
        || {
            if spec.s.contains("->") {
                "ramp"
            } else {
                "constant"
            }
        },
        |k| k.0,
    );
    let allowed: &[&str] = match shape {
        "burst" => &["hold", "rise", "fall", "every", "at"],
        "sine" => &["period", "phase", "peak_at"],
        "table" => &["every", "interpolate"],
        "replay" => &["interpolate"],
        _ => &[],
    };
    let mut name = None;
    let mut get = std::collections::HashMap::new();
    for (k, v) in &opts {
        match k.s {
            "name" => name = Some(v.s.to_string()),
            "start" if rest.is_some() => {}
            key if allowed.contains(&key) => {
                get.insert(key, *v);
            }
            key => {
                let mut keys: Vec<&str> = allowed.to_vec();
                keys.push("name");
                if rest.is_some() {
                    keys.push("start");
                }
                return Err(sh.err(
                    *k,
                    format!("`{key}` does not apply to a {shape} stage"),
                    format!("a {shape} stage takes: {}", keys.join(", ")),
                ));
            }
        }
    }
    // SPEC '@' DURATION (optional for overlays, tables and replays).
    let (body, dur_tok) = match spec.split_once("@") {
        Some((b, d)) => (b.trim(), Some(d.trim())),
        None => (spec, None),
    };
    let duration = |what: &str| -> Result<f64, ProfileError> {
        match (dur_tok, rest) {
            (Some(d), _) => sh.secs(d),
            (None, Some(r)) => Ok(r),
            (None, None) => Err(sh.err(
                spec,
                format!("the {what} needs a duration: add @DURATION"),
                "e.g. 500/s@30s, 50->1000/s@2m",
            )),
        }
    };
    let opt_secs = |k: &str| get.get(k).map(|v| sh.secs(*v)).transpose();
    let pair = |sep: &str, example: &str| -> Result<(f64, f64), ProfileError> {
        let (a, b) = body.split_once(sep).ok_or_else(|| {
            sh.err(
                body,
                format!("expected {example}"),
                format!("a {shape} is written {example}"),
            )
        })?;
        let unit = sh.unit_of(b);
        Ok((sh.rate(a, unit)?, sh.rate(b, unit)?))
    };
    let list = |tok: Tok| -> Result<Vec<f64>, ProfileError> {
        let items = tok.split('|');
        let unit = sh.unit_of(*items.last().unwrap_or(&tok));
        items.into_iter().map(|x| sh.rate(x, unit)).collect()
    };
    let interpolate = || -> Result<Interpolate, ProfileError> {
        match get.get("interpolate") {
            None => Ok(Interpolate::Linear),
            Some(v) if v.s == "linear" => Ok(Interpolate::Linear),
            Some(v) if v.s == "step" => Ok(Interpolate::Step),
            Some(v) => Err(sh.err(
                *v,
                "unknown interpolation",
                "interpolate=linear or interpolate=step",
            )),
        }
    };
    let kind = match shape {
        "constant" => StageKind::Constant {
            rate: sh.rate(body, 1.0)?,
            duration: duration("constant rate")?,
        },
        "ramp" => {
            let (from, to) = pair("->", "FROM->TO/s@DURATION, e.g. 50->1000/s@2m")?;
            StageKind::Ramp {
                from,
                to,
                duration: duration("ramp")?,
            }
        }
        "step" => {
            let d = dur_tok.ok_or_else(|| {
                sh.err(
                    spec,
                    "a step needs @STEPSxHOLD or @HOLD",
                    "e.g. step:100->500/s@5x30s or step:100|200|400@30s",
                )
            })?;
            if body.s.contains("->") {
                let (from, to) = pair("->", "FROM->TO/s@STEPSxHOLD, e.g. 100->500/s@5x30s")?;
                let (n, hold) = d.split_once("x").ok_or_else(|| {
                    sh.err(d, "expected STEPSxHOLD", "e.g. @5x30s: 5 steps of 30 s")
                })?;
                let steps: u32 = n
                    .trim()
                    .s
                    .parse()
                    .ok()
                    .filter(|n| (2..=100_000).contains(n))
                    .ok_or_else(|| {
                        sh.err(
                            n,
                            "steps must be a whole number from 2 to 100000",
                            "e.g. @5x30s",
                        )
                    })?;
                StageKind::Step {
                    rates: (0..steps)
                        .map(|i| from + (to - from) * f64::from(i) / f64::from(steps - 1))
                        .collect(),
                    hold: sh.secs(hold)?,
                }
            } else {
                StageKind::Step {
                    rates: list(body)?,
                    hold: sh.secs(d)?,
                }
            }
        }
        "burst" => {
            let (base, peak) = pair("->", "BASE->PEAK/s@DURATION,hold=…")?;
            let rise = opt_secs("rise")?.unwrap_or(0.0);
            StageKind::Burst {
                base,
                peak,
                hold: opt_secs("hold")?.ok_or_else(|| {
                    sh.err(
                        t,
                        "a burst needs hold=DURATION (time at the peak)",
                        "e.g. burst:100->1000/s@5m,hold=30s",
                    )
                })?,
                rise,
                fall: opt_secs("fall")?.unwrap_or(rise),
                every: opt_secs("every")?,
                at: opt_secs("at")?.unwrap_or(0.0),
                duration: duration("burst")?,
            }
        }
        "sine" => {
            let (base, amplitude) = if body.s.contains('~') {
                pair("~", "BASE~AMPLITUDE/s@DURATION")?
            } else {
                pair("±", "BASE~AMPLITUDE/s@DURATION")?
            };
            let duration = duration("sine")?;
            let period = opt_secs("period")?.unwrap_or(duration);
            let phase = match (get.get("phase"), opt_secs("peak_at")?) {
                (Some(p), None) => degrees(p.s.parse::<f64>().map_err(|_| {
                    sh.err(
                        *p,
                        "phase is in degrees",
                        "e.g. phase=90 starts at the crest",
                    )
                })?),
                (None, Some(at)) => {
                    std::f64::consts::FRAC_PI_2 - std::f64::consts::TAU * at / period
                }
                (None, None) => 0.0,
                (Some(p), Some(_)) => {
                    return Err(sh.err(
                        *p,
                        "give phase or peak_at, not both",
                        "phase=DEGREES or peak_at=TIME",
                    ))
                }
            };
            StageKind::Sine {
                base,
                amplitude,
                period,
                phase,
                duration,
            }
        }
        "table" => {
            let rates = list(body)?;
            let every = opt_secs("every")?.ok_or_else(|| {
                sh.err(
                    t,
                    "a table needs every=DURATION (the spacing of its points)",
                    "e.g. table:120|80|60|90/s,every=6h",
                )
            })?;
            let duration = match (dur_tok, rest) {
                (Some(d), _) => sh.secs(d)?,
                (None, Some(r)) => r,
                (None, None) => rates.len() as f64 * every,
            };
            StageKind::Table {
                rates,
                every,
                interpolate: interpolate()?,
                duration,
            }
        }
        "replay" => {
            let path = Path::new(body.s);
            let text = std::fs::read_to_string(path).map_err(|e| {
                sh.err(
                    body,
                    format!("cannot read '{}': {e}", body.s),
                    "replay:PATH names a CSV of time,rate rows",
                )
            })?;
            StageKind::Replay {
                points: parse_csv(&text, path)?,
                interpolate: interpolate()?,
            }
        }
        _ => unreachable!("known shapes"),
    };
    Ok(Stage {
        name: name.unwrap_or_else(|| shape.to_string()),
        kind,
    })
}

// ---------------------------------------------------------------------------------------------
// Show: plot and summary
// ---------------------------------------------------------------------------------------------

/// Braille dot bits for (column 0/1, row 0..4 from the top).
const DOTS: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];

/// The rate curve as a terminal plot of `width × height` characters (axes and labels included):
/// braille dots, 2 × 4 per character; each dot column spans the min–max of the rate over its
/// time slice, so short bursts and fast oscillations still show. Stage starts are marked `┴` on
/// the time axis, with the stage names below.
pub fn render_plot(shape: &Shape, width: usize, height: usize) -> String {
    let Some(c) = shape.curve() else {
        return format!("{}: no rate curve (closed loop)\n", shape.describe());
    };
    let width = width.clamp(30, 400);
    let height = height.clamp(6, 200);
    let peak = c.peak().max(f64::MIN_POSITIVE);
    let labels = [
        format!("{}/s", fmt_rate(peak)),
        format!("{}/s", fmt_rate(peak / 2.0)),
        "0/s".to_string(),
    ];
    let margin = labels.iter().map(|l| l.chars().count()).max().unwrap_or(3) + 1;
    let pw = width - margin - 1; // plot columns (characters)
    let ph = height - 3; // plot rows (characters): axis, times and names below
    let (cols, rows) = (pw * 2, ph * 4);
    let total = c.duration_secs();
    let mut grid = vec![vec![0u8; pw]; ph];
    let to_row = |r: f64| -> usize {
        let y = (r / peak * (rows - 1) as f64).round() as usize;
        (rows - 1) - y.min(rows - 1)
    };
    let mut prev: Option<(usize, usize)> = None;
    for x in 0..cols {
        let t0 = total * x as f64 / cols as f64;
        let t1 = total * (x + 1) as f64 / cols as f64;
        let (lo, hi) = c.rate_range(t0, t1);
        let (mut top, mut bottom) = (to_row(hi), to_row(lo));
        if let Some((pt, pb)) = prev {
            // Join to the previous column so steep edges are continuous.
            if pb < top {
                top = pb;
            }
            if pt > bottom {
                bottom = pt;
            }
        }
        prev = Some((to_row(hi), to_row(lo)));
        for y in top..=bottom {
            grid[y / 4][x / 2] |= DOTS[x % 2][y % 4];
        }
    }
    let mut out = String::new();
    for (i, row) in grid.iter().enumerate() {
        let label = if i == 0 {
            &labels[0]
        } else if i == ph / 2 && ph > 2 {
            &labels[1]
        } else {
            ""
        };
        let tick = if label.is_empty() { '│' } else { '┤' };
        out.push_str(&format!("{label:>w$} {tick}", w = margin - 1));
        for &b in row {
            out.push(char::from_u32(0x2800 + u32::from(b)).unwrap_or(' '));
        }
        out.push('\n');
    }
    // Time axis with stage starts.
    let col_of = |t: f64| ((t / total) * pw as f64).round() as usize;
    let mut axis: Vec<char> = vec!['─'; pw];
    for s in c.stages().iter().skip(1) {
        let x = col_of(s.start);
        if x < pw {
            axis[x] = '┴';
        }
    }
    out.push_str(&format!("{:>w$} └", labels[2], w = margin - 1));
    out.extend(axis);
    out.push('\n');
    // Time labels: start, middle, end.
    let mut line = vec![' '; pw + 2];
    let place = |x: usize, s: &str, line: &mut Vec<char>| {
        let s: Vec<char> = s.chars().collect();
        let x = x.min(line.len().saturating_sub(s.len()));
        if line[x..x + s.len()].iter().all(|c| *c == ' ') {
            line[x..x + s.len()].copy_from_slice(&s);
        }
    };
    place(0, "0s", &mut line);
    let end = fmt_secs(total);
    place(pw + 1 - end.chars().count().min(pw), &end, &mut line);
    let mid = fmt_secs(total / 2.0);
    place(
        (pw / 2).saturating_sub(mid.chars().count() / 2),
        &mid,
        &mut line,
    );
    out.push_str(&" ".repeat(margin));
    out.push_str(line.iter().collect::<String>().trim_end());
    out.push('\n');
    // Stage names under their starts (those that fit).
    let mut names = vec![' '; pw + 1];
    for s in c.stages() {
        let x = col_of(s.start);
        let n: Vec<char> = s.name.chars().collect();
        let room = names.len().saturating_sub(x);
        if room >= 2 && names[x..].iter().take(n.len().min(room)).all(|c| *c == ' ') {
            let k = n.len().min(room - 1);
            names[x..x + k].copy_from_slice(&n[..k]);
        }
    }
    out.push_str(&" ".repeat(margin + 1));
    out.push_str(names.iter().collect::<String>().trim_end());
    out.push('\n');
    out
}

/// Stages with their span, expected requests and peak, the totals, the arrival process and the
/// request mix: the text half of `metronome profile show`.
pub fn summary(profile: &Profile) -> String {
    let shape = &profile.shape;
    let mut out = String::new();
    out.push_str(&format!("profile    {}", profile.name));
    if let Some(p) = &profile.path {
        out.push_str(&format!(" ({})", p.display()));
    }
    out.push('\n');
    if let Some(d) = &profile.description {
        out.push_str(&format!("           {d}\n"));
    }
    let Some(c) = shape.curve() else {
        out.push_str(&format!("shape      {}\n", shape.describe()));
        return out;
    };
    let seed = match profile.seed {
        Some(s) => format!("seed {s}"),
        None => format!("seed {} (drawn; set `seed` to repeat)", c.seed()),
    };
    // The seed matters for Poisson arrivals and for picking from a request mix.
    if c.arrivals() == Arrivals::Poisson || profile.requests.len() > 1 {
        out.push_str(&format!("arrivals   {}, {seed}\n", c.arrivals().name()));
    } else {
        out.push_str(&format!("arrivals   {}\n", c.arrivals().name()));
    }
    if c.time_scale() != 1.0 || c.rate_scale() != 1.0 {
        out.push_str(&format!(
            "scaling    time ×{} ({} of profile time runs in {}), rate ×{}\n",
            fmt_rate(c.time_scale()),
            fmt_secs(c.duration_secs() * c.time_scale()),
            fmt_secs(c.duration_secs()),
            c.rate_scale()
        ));
    }
    out.push('\n');
    let approx = if c.arrivals() == Arrivals::Poisson {
        "~"
    } else {
        ""
    };
    let rows: Vec<[String; 7]> = c
        .stages()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            [
                (i + 1).to_string(),
                s.name.clone(),
                fmt_secs(s.start),
                fmt_secs(s.end - s.start),
                format!("{approx}{}", s.requests),
                format!("{}/s", fmt_rate(s.peak)),
                s.description.clone(),
            ]
        })
        .collect();
    let head = [
        "#", "stage", "start", "duration", "requests", "peak", "shape",
    ];
    let mut w = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let fmt_row = |r: &[String; 7]| {
        format!(
            "{:>w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4],
            w5 = w[5]
        )
    };
    out.push_str(&fmt_row(&head.map(String::from)));
    for r in &rows {
        out.push_str(&fmt_row(r));
    }
    for (i, o) in c.overlays().iter().enumerate() {
        out.push_str(&format!(
            "{:>w0$}  overlay {}: {} from {}\n",
            "+",
            i + 1,
            o.stage.kind.describe(c.time_scale(), c.rate_scale()),
            fmt_secs(o.start / c.time_scale()),
            w0 = w[0]
        ));
    }
    let total = c.total();
    out.push_str(&format!(
        "\ntotal      {approx}{total} requests in {}, mean {}/s, peak {}/s\n",
        fmt_secs(c.duration_secs()),
        fmt_rate(total as f64 / c.duration_secs()),
        fmt_rate(c.peak())
    ));
    if !profile.requests.is_empty() {
        let sum: u64 = profile.requests.iter().map(|r| u64::from(r.weight)).sum();
        out.push_str("\nrequests\n");
        for r in &profile.requests {
            let target = r
                .url
                .as_deref()
                .or(r.path.as_deref())
                .unwrap_or("(command-line URL)");
            let body = match (&r.body_file, &r.body) {
                (Some(f), _) => format!(", body from {}", f.display()),
                (None, Some(b)) => format!(", body {} bytes", b.len()),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {:>5.1}%  {} {}{}{}\n",
                100.0 * f64::from(r.weight) / sum as f64,
                r.method,
                target,
                if r.headers.is_empty() {
                    String::new()
                } else {
                    format!(", {} header(s)", r.headers.len())
                },
                body
            ));
        }
    }
    out
}

/// `summary` followed by the plot: what `metronome profile show FILE` prints.
pub fn show(profile: &Profile, width: usize, height: usize) -> String {
    format!(
        "{}\n{}",
        summary(profile),
        render_plot(&profile.shape, width, height)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Rng, Schedule};
    use std::time::{Duration, Instant};

    fn examples() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        v.sort();
        v
    }

    fn tempdir() -> PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "metronome-profile-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Parses `text` as if it were `DIR/test.toml`, with `files` written next to it.
    fn parse_with(text: &str, files: &[(&str, &str)]) -> Result<Profile, ProfileError> {
        let dir = tempdir();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        parse_str(text, &dir.join("test.toml"))
    }

    #[test]
    fn every_example_parses_and_shows() {
        let all = examples();
        assert!(all.len() >= 8, "{all:?}");
        for p in all {
            let prof = check(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!prof.shape.is_closed_loop());
            assert!(prof.shape.total() > 0);
            let sum = summary(&prof);
            assert!(sum.contains(&prof.name), "{sum}");
            assert!(sum.contains("total"), "{sum}");
            for (w, h) in [(80, 16), (40, 8), (120, 30)] {
                let plot = render_plot(&prof.shape, w, h);
                let lines: Vec<&str> = plot.lines().collect();
                assert_eq!(lines.len(), h, "{}:\n{plot}", p.display());
                for l in &lines {
                    assert!(l.chars().count() <= w, "{} ({w}): {l:?}", p.display());
                }
            }
            // Stage counts add up to the total (uniform profiles).
            if prof.shape.arrivals() == Arrivals::Uniform {
                let stages: u64 = prof.shape.stages().iter().map(|s| s.requests).sum();
                assert_eq!(stages, prof.shape.total(), "{}", p.display());
            }
        }
    }

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

    /// (profile text, line, column, words the message must contain)
    const BAD: &[(&str, usize, usize, &str)] = &[
        // Unknown keys.
        ("colour = \"red\"\n[[stage]]\nshape = \"constant\"\nrate = 1\nduration = \"1s\"\n", 1, 1, "unknown field `colour`"),
        ("[[stage]]\nshape = \"constant\"\nrate = 10\nduratoin = \"1m\"\n", 4, 1, "unknown field `duratoin`"),
        ("[[stage]]\nshape = \"constant\"\nrate = 10\nduration = \"1m\"\n[[request]]\nmethd = \"GET\"\n", 6, 1, "unknown field `methd`"),
        // Wrong types.
        ("[[stage]]\nshape = \"constant\"\nrate = true\nduration = \"1m\"\n", 3, 8, "invalid type"),
        ("[[stage]]\nshape = \"constant\"\nrate = 10\nduration = [1]\n", 4, 12, "invalid type"),
        ("seed = \"x\"\n[[stage]]\nshape = \"constant\"\nrate = 1\nduration = \"1s\"\n", 1, 8, "invalid type"),
        ("[[stage]]\nshape = \"constant\"\nrate = \"fast\"\nduration = \"1m\"\n", 3, 8, "not a rate"),
        ("[[stage]]\nshape = \"constant\"\nrate = \"5/fortnight\"\nduration = \"1m\"\n", 3, 8, "unknown rate unit"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"forever\"\n", 4, 12, "not a duration"),
        // Bad values.
        ("[[stage]]\nshape = \"constant\"\nrate = -5\nduration = \"1m\"\n", 3, 8, "not a finite number ≥ 0"),
        ("[[stage]]\nshape = \"constant\"\nrate = nan\nduration = \"1m\"\n", 3, 8, "not a finite number ≥ 0"),
        ("[[stage]]\nshape = \"ramp\"\nfrom = 1\nto = inf\nduration = \"1m\"\n", 4, 6, "not a finite number ≥ 0"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"0s\"\n", 4, 12, "above zero"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[stage]]\nshape = \"ramp\"\nfrom = 1\nto = 2\nduration = 0\n", 9, 12, "stage 2"),
        ("[[stage]]\nshape = \"sine\"\nbase = 10\namplitude = 20\nperiod = \"1m\"\nduration = \"1m\"\n", 4, 13, "negative"),
        ("[[stage]]\nshape = \"burst\"\nbase = 10\npeak = 20\nhold = \"10s\"\nevery = \"5s\"\nduration = \"1m\"\n", 6, 9, "do not fit"),
        ("[[stage]]\nshape = \"constant\"\nrate = 0.01\nduration = \"1s\"\n", 3, 8, "no request"),
        ("[[stage]]\nshape = \"constant\"\nrate = 20000000\nduration = \"1s\"\n", 3, 8, "above the limit"),
        ("[[stage]]\nshape = \"step\"\nfrom = 1\nto = 5\nsteps = 1\nhold = \"1s\"\n", 5, 9, "2 to 100000 steps"),
        // Unknown shape, keys that do not belong, missing keys.
        ("[[stage]]\nshape = \"rmap\"\nfrom = 1\nto = 5\nduration = \"1m\"\n", 2, 9, "unknown shape \"rmap\""),
        ("[[stage]]\nshape = \"ramp\"\nrate = 5\nduration = \"1m\"\n", 3, 8, "does not apply to a ramp"),
        ("[[stage]]\nshape = \"ramp\"\nfrom = 5\nduration = \"1m\"\n", 2, 9, "needs `to`"),
        ("[[stage]]\nrate = 5\nduration = \"1m\"\n", 1, 1, "missing field `shape`"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\nstart = \"1s\"\n", 5, 9, "does not apply"),
        ("name = \"x\"\n", 1, 1, "no [[stage]]"),
        // Syntax.
        ("[[stage]]\nshape = \"constant\"\nrate = \nduration = \"1m\"\n", 3, 8, ""),
        ("[[stage]\nshape = \"constant\"\n", 1, 9, "unclosed"),
        ("[stage]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n", 1, 1, "invalid type"),
        // Top level.
        ("arrivals = \"poison\"\n[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n", 1, 12, "unknown arrival process"),
        ("time_scale = 0\n[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n", 1, 14, "time_scale"),
        ("rate_scale = -1\n[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n", 1, 14, "rate_scale"),
        ("seed = -3\n[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n", 1, 8, "negative"),
        // Overlays.
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[overlay]]\nshape = \"burst\"\npeak = 5\nhold = \"1s\"\nstart = \"2m\"\n", 9, 9, "outside the stages"),
        // Requests.
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[request]]\nmethod = \"G T\"\n", 6, 10, "not an HTTP method"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[request]]\nurl = \"ftp://x/\"\n", 6, 7, "invalid URL"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[request]]\npath = \"api\"\n", 6, 8, "not a path"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[request]]\nweight = 0\n", 6, 10, "weight 0"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[request]]\nbody_file = \"missing.json\"\n", 6, 13, "cannot read the body file"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[request]]\nheaders = [\"NoColon\"]\n", 6, 11, "Name: value"),
        ("[[stage]]\nshape = \"constant\"\nrate = 5\nduration = \"1m\"\n[[request]]\nheaders = { \"Bad Name\" = \"x\" }\n", 6, 11, "invalid header"),
        // Replay files.
        ("[[stage]]\nshape = \"replay\"\nfile = \"nope.csv\"\n", 3, 8, "cannot read the replay file"),
    ];

    #[test]
    fn bad_input_names_line_and_column() {
        for (text, line, col, words) in BAD {
            let e = parse_with(text, &[]).expect_err(text);
            assert_eq!(
                (e.line, e.column),
                (Some(*line as u32), Some(*col as u32)),
                "{text:?}\n{e}"
            );
            assert!(e.message.contains(words), "{text:?}: {e}");
            assert!(!e.hint.is_empty(), "{e}");
            let shown = e.to_string();
            assert!(
                shown.contains(&format!("test.toml:{line}:{col}: ")),
                "{shown}"
            );
            assert!(shown.contains("hint: "), "{shown}");
        }
    }

    #[test]
    fn suggestions_for_typos() {
        let e = parse_with(
            "[[stage]]\nshape = \"constant\"\nrate = 1\nduratoin = \"1m\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.hint.starts_with("did you mean `duration`?"), "{e}");
        let e = parse_with("arivals = \"poisson\"\n", &[]).unwrap_err();
        assert!(e.hint.starts_with("did you mean `arrivals`?"), "{e}");
        let e = parse_with("[[stage]]\nshape = \"constant\"\nrate = \"fast\"\n", &[]).unwrap_err();
        assert!(e.hint.contains("\"500/s\""), "{e}");
        let e = parse_with("[[stage]]\nshape = \"rmap\"\n", &[]).unwrap_err();
        assert!(e.hint.contains("did you mean \"ramp\""), "{e}");
        let e = parse_with("[[stage]]\nshape = \"diurnl\"\n", &[]).unwrap_err();
        assert!(e.hint.contains("\"diurnal\""), "{e}");
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let profile = "[[stage]]\nshape = \"replay\"\nfile = \"r.csv\"\n";
        // (csv, line, words)
        let table: &[(&str, usize, &str)] = &[
            ("time,rate\n0,10\n5,20\n5,30\n", 4, "not after"),
            ("0,10\n10,5\n7,1\n", 3, "not after"),
            ("0,10\n5,-1\n", 2, "not a finite number"),
            ("0,10\n5,abc\n", 2, "not a rate"),
            ("0,10\n5\n", 2, "two columns"),
            ("# comment\n\n0,10\nsoon,5\n", 4, "not a time"),
            ("0,10,3\n", 1, "two columns"),
        ];
        for (csv, line, words) in table {
            let e = parse_with(profile, &[("r.csv", csv)]).expect_err(csv);
            assert!(e.file.as_ref().unwrap().ends_with("r.csv"), "{e}");
            assert_eq!(e.line, Some(*line as u32), "{csv:?}: {e}");
            assert!(e.message.contains(words), "{csv:?}: {e}");
            assert!(e.to_string().contains(&format!("r.csv:{line}: ")), "{e}");
        }
        let e = parse_with(profile, &[("r.csv", "time,rate\n0,10\n")]).unwrap_err();
        assert!(e.message.contains("at least two rows"), "{e}");
        // Timestamps and durations are rebased to the first row.
        let p = parse_with(
            profile,
            &[(
                "r.csv",
                "ts,rps\n2024-05-01T00:00:00Z,100\n2024-05-01T00:01:00Z,300\n2024-05-01T00:02:00Z,100\n",
            )],
        )
        .unwrap();
        assert_eq!(p.shape.total(), 24_000);
        let p = parse_with(profile, &[("r.csv", "0s,100\n1m,100/s\n1m30s,6000/m\n")]).unwrap();
        assert_eq!(p.shape.duration(), Duration::from_secs(90));
        assert_eq!(p.shape.total(), 9000);
    }

    #[test]
    fn toml_stage_keys_table() {
        // (stage body, expected total, expected duration s)
        let table: &[(&str, u64, u64)] = &[
            ("shape = \"constant\"\nrate = \"6000/m\"\nduration = 10", 1000, 10),
            ("shape = \"ramp\"\nfrom = 0\nto = 100\nduration = \"10s\"", 500, 10),
            ("shape = \"step\"\nfrom = 100\nto = 300\nsteps = 3\nhold = \"10s\"", 6000, 30),
            ("shape = \"step\"\nrates = [100, 300]\nhold = \"10s\"", 4000, 20),
            ("shape = \"burst\"\nbase = 10\npeak = 110\nrise = \"1s\"\nhold = \"2s\"\nevery = \"10s\"\nat = \"3s\"\nduration = \"30s\"", 1200, 30),
            ("shape = \"spike\"\nbase = 10\npeak = 110\nhold = \"2s\"\nduration = \"30s\"", 500, 30),
            ("shape = \"sine\"\nbase = 100\namplitude = 50\nperiod = \"10s\"\nduration = \"20s\"", 2000, 20),
            ("shape = \"diurnal\"\nbase = 100\namplitude = 50\nduration = \"20s\"\nphase = 90", 2000, 20),
            ("shape = \"table\"\nrates = [100, 200]\nevery = \"10s\"", 3000, 20),
            ("shape = \"table\"\nrates = [100, 200]\nevery = \"10s\"\ninterpolate = \"step\"\nduration = \"25s\"", 3500, 25),
        ];
        for (body, total, secs) in table {
            let p = parse_with(&format!("[[stage]]\n{body}\n"), &[])
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(p.shape.total(), *total, "{body}");
            assert_eq!(p.shape.duration(), Duration::from_secs(*secs), "{body}");
        }
        // peak_at puts the crest there.
        let p = parse_with(
            "[[stage]]\nshape = \"sine\"\nbase = 100\namplitude = 50\nperiod = \"24h\"\npeak_at = \"14h\"\nduration = \"24h\"\n",
            &[],
        )
        .unwrap();
        assert!((p.shape.rate_at(Duration::from_secs(14 * 3600)) - 150.0).abs() < 1e-9);
        assert!((p.shape.rate_at(Duration::from_secs(2 * 3600)) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn shorthand_table() {
        // (shorthand, total, duration s)
        let dir = tempdir();
        let csv = dir.join("r.csv");
        std::fs::write(&csv, "0,100\n10,300\n20,100\n").unwrap();
        let replay = format!("replay:{}", csv.display());
        let replay_step = format!("replay:{},interpolate=step", csv.display());
        let table: Vec<(&str, u64, u64)> = vec![
            ("500/s@30s", 15_000, 30),
            ("500@30s", 15_000, 30),
            ("30000/m@1m", 30_000, 60),
            ("const:100@10s", 1000, 10),
            ("0->100/s@10s", 500, 10),
            ("ramp:0->100@10s", 500, 10),
            ("step:100->300/s@3x10s", 6000, 30),
            ("step:100|300@10s", 4000, 20),
            (
                "burst:10->110/s@30s,rise=1s,hold=2s,every=10s,at=3s",
                1200,
                30,
            ),
            ("spike:10->110@30s,hold=2s", 500, 30),
            ("sine:100~50/s@20s,period=10s", 2000, 20),
            ("sine:100±50/s@20s,period=10s,phase=90", 2000, 20),
            ("table:100|200/s,every=10s", 3000, 20),
            ("table:100|200@25s,every=10s,interpolate=step", 3500, 25),
            (&replay, 4000, 20),
            (&replay_step, 4000, 20),
            (
                "50/s@30s; 50->1000/s@2m; 1000@1m",
                1500 + 63_000 + 60_000,
                210,
            ),
            (
                "sine:100~50/s@20s,period=10s + burst:0->100/s,hold=1s,start=5s",
                2100,
                20,
            ),
            (" 100 / s @ 10s ; 200@10s ", 3000, 20),
            ("1e+3/s@1s", 1000, 1),
        ];
        for (s, total, secs) in table {
            let shape = parse_shorthand(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(shape.total(), total, "{s}");
            assert_eq!(shape.duration(), Duration::from_secs(secs), "{s}");
        }
        let named = parse_shorthand("100@10s,name=warm; 0->100@10s,name=climb").unwrap();
        assert_eq!(named.stage_at(Duration::from_secs(15)), Some((1, "climb")));
    }

    #[test]
    fn shorthand_errors_point_at_the_column() {
        // (input, column, words)
        let table: &[(&str, usize, &str)] = &[
            ("", 1, "empty"),
            ("fast@10s", 1, "not a rate"),
            ("100@soon", 5, "not a duration"),
            ("100", 1, "needs a duration"),
            ("rmap:1->2@1m", 1, "unknown shape"),
            ("100@10s;;200@1s", 9, "empty stage"),
            ("burst:1->2@1m,hld=1s", 15, "does not apply"),
            ("burst:1->2@1m", 1, "hold="),
            ("-5@10s", 1, "not a finite number"),
            ("100@10s; 0->-5@10s", 10, "stage 2"),
            ("step:1->5@ax1s", 11, "2 to 100000"),
            ("sine:10~20@1m", 1, "negative"),
            ("burst:1->2@1m,hold=10s,every=5s", 30, "do not fit"),
            ("100@10s,rise", 9, "not an option"),
            ("replay:/nonexistent/x.csv", 8, "cannot read"),
            ("100@10s + burst:0->5,hold=1s,start=1h", 36, "outside"),
        ];
        for (s, col, words) in table {
            let e = parse_shorthand(s).expect_err(s);
            assert_eq!(e.column, Some(*col as u32), "{s:?}: {e}");
            assert!(e.message.contains(words), "{s:?}: {e}");
            assert!(e.file.is_none());
            assert!(e.to_string().starts_with("--shape"), "{e}");
        }
    }

    #[test]
    fn plot_draws_the_curve() {
        let s = parse_shorthand("0->100/s@10s; 100@10s").unwrap();
        let plot = render_plot(&s, 40, 10);
        let lines: Vec<&str> = plot.lines().collect();
        assert_eq!(lines.len(), 10);
        assert!(lines[0].starts_with("100/s ┤"), "{plot}");
        assert!(lines[7].starts_with("  0/s └"), "{plot}");
        assert!(lines[7].contains('┴'), "stage boundary marked: {plot}");
        assert!(
            lines[8].trim_start().starts_with("0s") && lines[8].ends_with("20s"),
            "{plot}"
        );
        assert!(
            lines[9].contains("ramp") && lines[9].contains("constant"),
            "{plot}"
        );
        // The top row is lit only in the second half (the constant 100/s).
        let top: Vec<char> = lines[0].chars().skip(7).collect();
        let half = top.len() / 2;
        assert!(top[..half - 2].iter().all(|c| *c == '\u{2800}'), "{plot}");
        assert!(top[half + 1..].iter().all(|c| *c != '\u{2800}'), "{plot}");
        assert!(render_plot(&Shape::MaxCount(3), 40, 10).contains("closed loop"));
    }

    /// Random and truncated TOML: every input gives a profile or an error, never a panic.
    #[test]
    fn fuzzed_profiles_error_and_never_panic() {
        let mut rng = Rng::new(0x5eed);
        let mut seen_err = 0;
        let try_parse = |text: &str, path: &Path| {
            let r = std::panic::catch_unwind(|| parse_str(text, path));
            match r {
                Ok(Ok(p)) => {
                    let _ = render_plot(&p.shape, 60, 10);
                    let _ = summary(&p);
                    false
                }
                Ok(Err(e)) => {
                    let _ = e.to_string();
                    true
                }
                Err(_) => panic!("parser panicked on:\n{text}"),
            }
        };
        let alphabet = b"[]=\"'#.,{}\n -0123456789abcdefxyz_ea\xc3\xa9nan inf";
        for path in examples() {
            let text = std::fs::read_to_string(&path).unwrap();
            let bytes = text.as_bytes();
            // Truncated at every 7th byte.
            for cut in (0..bytes.len()).step_by(7) {
                let t = String::from_utf8_lossy(&bytes[..cut]);
                seen_err += usize::from(try_parse(&t, &path));
            }
            // Flipped and replaced bytes.
            for _ in 0..300 {
                let mut b = bytes.to_vec();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] = if rng.below(2) == 0 {
                        b[i] ^ (1 << rng.below(8))
                    } else {
                        alphabet[rng.below(alphabet.len() as u64) as usize]
                    };
                }
                let t = String::from_utf8_lossy(&b);
                seen_err += usize::from(try_parse(&t, &path));
            }
        }
        // Pure noise built from TOML-ish pieces.
        let pieces = [
            "[[stage]]\n",
            "[[overlay]]\n",
            "[[request]]\n",
            "shape = ",
            "\"ramp\"",
            "\"burst\"",
            "\"sine\"",
            "\"table\"",
            "\"step\"",
            "rate = ",
            "from = ",
            "to = ",
            "duration = ",
            "\"1m\"",
            "\"0s\"",
            "-1",
            "1e308",
            "nan",
            "inf",
            "0",
            "7",
            "[1, 2]",
            "every = ",
            "hold = ",
            "steps = ",
            "rates = ",
            "period = ",
            "amplitude = ",
            "base = ",
            "peak = ",
            "start = ",
            "\"1ms\"",
            "\"366d\"",
            "time_scale = ",
            "rate_scale = ",
            "\n",
            "{}",
            "9223372036854775807",
        ];
        let dir = tempdir().join("noise.toml");
        for _ in 0..3000 {
            let mut t = String::new();
            for _ in 0..rng.below(40) {
                t.push_str(pieces[rng.below(pieces.len() as u64) as usize]);
            }
            seen_err += usize::from(try_parse(&t, &dir));
        }
        assert!(seen_err > 3000, "most mutations are errors ({seen_err})");
    }

    #[test]
    fn fuzzed_shorthand_never_panics() {
        let mut rng = Rng::new(11);
        let seeds = [
            "50/s@30s; 50->1000/s@2m; 1000@1m",
            "step:100->500/s@5x30s",
            "burst:200->2000/s@10m,hold=30s,rise=5s,every=2m,at=1m",
            "sine:1000~800/s@24h,period=24h,peak_at=14h + burst:0->3000/s,hold=1m,every=1h",
            "table:120|80|60|90/s,every=6h,interpolate=step",
        ];
        let alphabet = "0123456789@;,+->|~=:/smhx.e ".as_bytes();
        for s in seeds {
            for cut in 0..=s.len() {
                if s.is_char_boundary(cut) {
                    let _ = parse_shorthand(&s[..cut]);
                }
            }
            for _ in 0..500 {
                let mut b = s.as_bytes().to_vec();
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] = alphabet[rng.below(alphabet.len() as u64) as usize];
                }
                let t = String::from_utf8_lossy(&b).into_owned();
                let r = std::panic::catch_unwind(|| parse_shorthand(&t).map(|_| ()));
                assert!(r.is_ok(), "shorthand parser panicked on {t:?}");
            }
        }
    }

    #[test]
    fn errors_render_with_a_caret() {
        let e = parse_with(
            "[[stage]]\nshape = \"constant\"\nrate = -5\nduration = \"1m\"\n",
            &[],
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("3 | rate = -5\n  |        ^^"), "{s}");
        let e = parse_shorthand("100@10s; 0->-5@10s").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("1 | 100@10s; 0->-5@10s\n  |          ^"), "{s}");
    }

    #[test]
    fn unreadable_files() {
        let e = check("/nonexistent/profile.toml").unwrap_err();
        assert_eq!(e.line, None);
        assert!(e.message.contains("cannot read"), "{e}");
        let dir = tempdir();
        let p = dir.join("latin1.toml");
        std::fs::write(&p, b"name = \"caf\xe9\"\n").unwrap();
        let e = check(&p).unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(12)), "{e}");
    }
}
