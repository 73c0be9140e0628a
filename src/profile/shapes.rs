//! The shape vocabulary, defined once for profile files and the shorthand: every shape's name,
//! aliases and keys (value kind, whether required, an example), how the shorthand writes its
//! leading keys, and the builder that turns the keys' values into a [`StageKind`].
//!
//! A front-end reads a stage's keys as written into [`Keys`] (checking each against
//! [`ShapeDef::takes`] and parsing it by its [`Kind`]), then calls [`ShapeDef::build`]. Errors
//! that need a position or the front-end's own syntax (a missing key, reading a replay file)
//! go back through [`FrontEnd`]. Adding a shape means a [`StageKind`] in the schedule and one
//! entry in [`SHAPES`].

use std::ops::Range;

use super::error::{suggest, ProfileError};
use crate::schedule::{degrees, phase_peaking_at, staircase, Interpolate, StageKind};

/// What a key's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Requests per second: `500`, `"30000/m"`.
    Rate,
    /// A length: `"30s"`, `"1h 30m"`, or seconds.
    Secs,
    /// A list of rates.
    Rates,
    /// A whole number.
    Count,
    /// An angle in degrees.
    Degrees,
    /// A word or a path.
    Text,
}

/// One key a shape takes.
#[derive(Debug)]
pub(super) struct Key {
    pub name: &'static str,
    pub kind: Kind,
    /// Needed in a stage (an overlay's `duration` defaults to the rest of the profile, a burst
    /// overlay's `base` to 0); a step needs either `rates` or `from`, `to` and `steps`.
    pub required: bool,
    /// A value as written in a profile file, for "add e.g. …" hints.
    pub example: &'static str,
    /// What the value is, for errors: "the time at the peak".
    pub about: &'static str,
}

const fn key(
    name: &'static str,
    kind: Kind,
    required: bool,
    example: &'static str,
    about: &'static str,
) -> Key {
    Key {
        name,
        kind,
        required,
        example,
        about,
    }
}

const DURATION: Key = key(
    "duration",
    Kind::Secs,
    true,
    "\"1m\"",
    "the length of the stage",
);
const INTERPOLATE: Key = key(
    "interpolate",
    Kind::Text,
    false,
    "\"step\"",
    "linear or step",
);

/// How the shorthand writes a shape's leading keys, before the `,key=value` options.
#[derive(Debug)]
pub(super) enum Spec {
    /// `RATE@DURATION` → `rate`, `duration`.
    Rate,
    /// `A->B@DURATION` (any of `seps` between the two rates) → `keys`, `duration`.
    Pair {
        seps: &'static [&'static str],
        keys: [&'static str; 2],
    },
    /// `FROM->TO@STEPSxHOLD` → `from`, `to`, `steps`, `hold`; or `R|R|…@HOLD` → `rates`, `hold`.
    Staircase,
    /// `R|R|…[@DURATION]` → `rates`, `duration`.
    List,
    /// `PATH` → `file`.
    Path,
}

impl Spec {
    /// The keys written in the spec (never as options).
    pub(super) fn keys(&self) -> &'static [&'static str] {
        match self {
            Spec::Rate => &["rate", "duration"],
            Spec::Pair {
                keys: ["from", "to"],
                ..
            } => &["from", "to", "duration"],
            Spec::Pair {
                keys: ["base", "peak"],
                ..
            } => &["base", "peak", "duration"],
            Spec::Pair { .. } => &["base", "amplitude", "duration"],
            Spec::Staircase => &["from", "to", "steps", "rates", "hold"],
            Spec::List => &["rates", "duration"],
            Spec::Path => &["file"],
        }
    }
}

/// A shape: its names, keys, shorthand and builder.
pub(super) struct ShapeDef {
    /// The canonical name, as [`StageKind::shape_name`] gives it.
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Every key the shape takes besides `name` (and `start` on overlays), in the order hints
    /// list them.
    pub keys: &'static [Key],
    /// The shorthand's leading keys.
    pub spec: Spec,
    /// How the shorthand's spec is written, e.g. `FROM->TO/s@DURATION`.
    pub written: &'static str,
    /// A shorthand example, e.g. `ramp:50->1000/s@2m`.
    pub example: &'static str,
    build: fn(&Keys) -> Result<StageKind, ProfileError>,
}

/// Every shape, in the order hints list them.
pub(super) static SHAPES: &[ShapeDef] = &[
    ShapeDef {
        name: "constant",
        aliases: &["const"],
        keys: &[key("rate", Kind::Rate, true, "100", "the rate"), DURATION],
        spec: Spec::Rate,
        written: "RATE/s@DURATION",
        example: "500/s@30s",
        build: build_constant,
    },
    ShapeDef {
        name: "ramp",
        aliases: &[],
        keys: &[
            key("from", Kind::Rate, true, "100", "the first rate"),
            key("to", Kind::Rate, true, "100", "the last rate"),
            DURATION,
        ],
        spec: Spec::Pair {
            seps: &["->"],
            keys: ["from", "to"],
        },
        written: "FROM->TO/s@DURATION",
        example: "50->1000/s@2m",
        build: build_ramp,
    },
    ShapeDef {
        name: "step",
        aliases: &[],
        keys: &[
            key("from", Kind::Rate, false, "100", "the first level"),
            key("to", Kind::Rate, false, "100", "the last level"),
            key(
                "steps",
                Kind::Count,
                false,
                "5",
                "a whole number from 2 to 100000",
            ),
            key("rates", Kind::Rates, false, "[100, 200, 400]", "the levels"),
            key(
                "hold",
                Kind::Secs,
                true,
                "\"30s\"",
                "the time at each level",
            ),
        ],
        spec: Spec::Staircase,
        written: "FROM->TO/s@STEPSxHOLD or R|R|…@HOLD",
        example: "step:100->500/s@5x30s or step:100|200|400@30s",
        build: build_step,
    },
    ShapeDef {
        name: "burst",
        aliases: &["spike"],
        keys: &[
            key("base", Kind::Rate, true, "100", "the rate between bursts"),
            key("peak", Kind::Rate, true, "100", "the rate at the peak"),
            key("hold", Kind::Secs, true, "\"30s\"", "the time at the peak"),
            key("rise", Kind::Secs, false, "\"5s\"", "the time to rise"),
            key("fall", Kind::Secs, false, "\"5s\"", "the time to fall"),
            key("every", Kind::Secs, false, "\"2m\"", "the period"),
            key(
                "at",
                Kind::Secs,
                false,
                "\"1m\"",
                "the start of the first burst",
            ),
            DURATION,
        ],
        spec: Spec::Pair {
            seps: &["->"],
            keys: ["base", "peak"],
        },
        written: "BASE->PEAK/s@DURATION,hold=…",
        example: "burst:100->1000/s@5m,hold=30s",
        build: build_burst,
    },
    ShapeDef {
        name: "sine",
        aliases: &["diurnal"],
        keys: &[
            key("base", Kind::Rate, true, "100", "the mean rate"),
            key(
                "amplitude",
                Kind::Rate,
                true,
                "100",
                "the swing around the base",
            ),
            key("period", Kind::Secs, false, "\"24h\"", "the period"),
            key("phase", Kind::Degrees, false, "90", "an angle in degrees"),
            key(
                "peak_at",
                Kind::Secs,
                false,
                "\"14h\"",
                "the time of the crest",
            ),
            DURATION,
        ],
        spec: Spec::Pair {
            seps: &["~", "±"],
            keys: ["base", "amplitude"],
        },
        written: "BASE~AMPLITUDE/s@DURATION",
        example: "sine:1000~800/s@24h,peak_at=14h",
        build: build_sine,
    },
    ShapeDef {
        name: "table",
        aliases: &[],
        keys: &[
            key("rates", Kind::Rates, true, "[120, 80, 60, 90]", "the rates"),
            key(
                "every",
                Kind::Secs,
                true,
                "\"30s\"",
                "the spacing of its points",
            ),
            INTERPOLATE,
            DURATION,
        ],
        spec: Spec::List,
        written: "R|R|…/s[@DURATION],every=…",
        example: "table:120|80|60|90/s,every=6h",
        build: build_table,
    },
    ShapeDef {
        name: "replay",
        aliases: &[],
        keys: &[
            key(
                "file",
                Kind::Text,
                true,
                "\"traffic.csv\"",
                "a CSV of time,rate rows",
            ),
            INTERPOLATE,
        ],
        spec: Spec::Path,
        written: "PATH",
        example: "replay:traffic.csv,interpolate=step",
        build: build_replay,
    },
];

impl ShapeDef {
    /// The key named `name`, if this shape takes it.
    pub(super) fn takes(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Builds the stage from its keys' values.
    pub(super) fn build(&self, keys: &Keys) -> Result<StageKind, ProfileError> {
        (self.build)(keys)
    }

    /// "a burst stage takes base, peak, hold and duration; optionally rise, fall, every, at" —
    /// the keys in `names` only (the shorthand lists its options).
    pub(super) fn takes_hint(&self, names: &[&str], extra: &[&str]) -> String {
        let pick = |required: bool| -> Vec<&str> {
            let listed = self.keys.iter().filter(|k| names.contains(&k.name));
            let mut v: Vec<&str> = listed
                .filter(|k| k.required == required)
                .map(|k| k.name)
                .collect();
            if !required {
                v.extend(extra);
            }
            v
        };
        let (need, may) = (pick(true), pick(false));
        match (need.is_empty(), may.is_empty()) {
            (false, false) => format!(
                "a {} stage takes {}; optionally {}",
                self.name,
                need.join(", "),
                may.join(", ")
            ),
            (false, true) => format!("a {} stage takes {}", self.name, need.join(", ")),
            (true, _) => format!("a {} stage takes only {}", self.name, may.join(", ")),
        }
    }

    /// The error for `key`, which this shape does not take, with "did you mean" among its keys.
    pub(super) fn unknown_key_hint(&self, key: &str, names: &[&str], extra: &[&str]) -> String {
        let candidates = names.iter().chain(extra).copied();
        let takes = self.takes_hint(names, extra);
        match suggest(key, candidates) {
            Some(s) => format!("did you mean `{s}`? {takes}"),
            None => takes,
        }
    }

    /// Every key name, for [`ShapeDef::takes_hint`].
    pub(super) fn key_names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.name).collect()
    }
}

/// The shape named `s` (canonical or alias, any case).
pub(super) fn resolve_shape(s: &str) -> Option<&'static ShapeDef> {
    let s = s.trim().to_ascii_lowercase();
    SHAPES
        .iter()
        .find(|d| d.name == s || d.aliases.contains(&s.as_str()))
}

/// True if some shape takes a key of this name.
pub(super) fn is_shape_key(name: &str) -> bool {
    SHAPES.iter().any(|d| d.takes(name).is_some())
}

/// "constant, ramp, step, burst (or spike), sine (or diurnal), table, replay".
pub(super) fn shape_list() -> String {
    let named: Vec<String> = SHAPES
        .iter()
        .map(
            |d| match d.aliases.iter().find(|a| !d.name.starts_with(**a)) {
                Some(a) => format!("{} (or {a})", d.name),
                None => d.name.to_string(),
            },
        )
        .collect();
    named.join(", ")
}

/// The hint for an unknown shape name, with "did you mean".
pub(super) fn shapes_hint(word: &str) -> String {
    let list = shape_list();
    let names = SHAPES
        .iter()
        .flat_map(|d| std::iter::once(&d.name).chain(d.aliases));
    match suggest(word, names.copied()) {
        Some(s) => format!("did you mean \"{s}\"? shapes are {list}"),
        None => format!("shapes are {list}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The keys of one stage, as a front-end read them
// ---------------------------------------------------------------------------------------------

/// A key's value, parsed by its [`Kind`].
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    /// A rate, a length or degrees.
    Number(f64),
    Numbers(Vec<f64>),
    Count(i64),
    Text(String),
}

/// A key the stage gives: which, where it is written, and its parsed value.
#[derive(Clone, Debug)]
pub(super) struct Given {
    pub key: &'static Key,
    pub span: Range<usize>,
    pub value: Value,
}

impl Given {
    pub(super) fn new(key: &'static Key, span: Range<usize>, value: Value) -> Given {
        Given { key, span, value }
    }
}

/// What only the front-end knows: where errors point and how they are worded, and how a
/// replay file is found and read.
pub(super) trait FrontEnd {
    /// An error pointing at `span` of the source.
    fn error(&self, span: Range<usize>, message: String, hint: String) -> ProfileError;
    /// The error for a key the stage needs but does not give.
    fn missing(&self, shape: &ShapeDef, key: &Key) -> ProfileError;
    /// The `(time, rate)` points of the replay file `file`, written at `span`.
    fn replay(&self, file: &str, span: Range<usize>) -> Result<Vec<(f64, f64)>, ProfileError>;
}

/// One stage's keys: each given key with its span and parsed value.
pub(super) struct Keys<'a> {
    pub shape: &'static ShapeDef,
    pub values: Vec<Given>,
    /// For an overlay, the time from its start to the end of the stages: its default duration.
    pub rest: Option<f64>,
    pub front: &'a dyn FrontEnd,
}

impl Keys<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|g| g.key.name == name)
            .map(|g| &g.value)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn span(&self, name: &str) -> Range<usize> {
        let given = self.values.iter().find(|g| g.key.name == name);
        given.map_or(0..0, |g| g.span.clone())
    }

    fn number(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Some(Value::Number(x)) => Some(*x),
            _ => None,
        }
    }

    fn missing(&self, name: &str) -> ProfileError {
        let key = self
            .shape
            .takes(name)
            .expect("builders read their own keys");
        self.front.missing(self.shape, key)
    }

    /// A number the stage needs.
    fn need(&self, name: &str) -> Result<f64, ProfileError> {
        self.number(name).ok_or_else(|| self.missing(name))
    }

    fn rates(&self, name: &str) -> Result<Vec<f64>, ProfileError> {
        match self.get(name) {
            Some(Value::Numbers(v)) => Ok(v.clone()),
            _ => Err(self.missing(name)),
        }
    }

    fn text(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    fn error_at(&self, name: &str, message: String, hint: &str) -> ProfileError {
        self.front.error(self.span(name), message, hint.to_string())
    }

    /// `duration`, else (overlays) the rest of the profile.
    fn duration(&self) -> Result<f64, ProfileError> {
        match (self.number("duration"), self.rest) {
            (Some(d), _) => Ok(d),
            (None, Some(r)) => Ok(r),
            (None, None) => Err(self.missing("duration")),
        }
    }

    fn interpolate(&self) -> Result<Interpolate, ProfileError> {
        match self.text("interpolate") {
            None | Some("linear") => Ok(Interpolate::Linear),
            Some("step") => Ok(Interpolate::Step),
            Some(other) => Err(self.error_at(
                "interpolate",
                format!("unknown interpolation \"{other}\""),
                "interpolate is linear (straight lines between points, the default) or step (hold each rate until the next point)",
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Builders: keys → StageKind, one per shape
// ---------------------------------------------------------------------------------------------

fn build_constant(k: &Keys) -> Result<StageKind, ProfileError> {
    Ok(StageKind::Constant {
        rate: k.need("rate")?,
        duration: k.duration()?,
    })
}

fn build_ramp(k: &Keys) -> Result<StageKind, ProfileError> {
    Ok(StageKind::Ramp {
        from: k.need("from")?,
        to: k.need("to")?,
        duration: k.duration()?,
    })
}

/// Levels listed in `rates`, or `steps` levels evenly spaced from `from` to `to`.
fn build_step(k: &Keys) -> Result<StageKind, ProfileError> {
    let hold = k.need("hold")?;
    let listed = k.has("rates");
    let spaced = k.has("from") || k.has("to") || k.has("steps");
    let rates = match (listed, k.has("from")) {
        (true, _) if spaced => {
            return Err(k.error_at(
                "rates",
                "give either `rates` or `from`, `to` and `steps`, not both".to_string(),
                "rates = [100, 200, 400] lists the levels; from/to/steps spaces them evenly",
            ))
        }
        (true, _) => k.rates("rates")?,
        (false, true) => staircase(k.need("from")?, k.need("to")?, step_count(k)?),
        (false, false) => return Err(k.missing("rates")),
    };
    Ok(StageKind::Step { rates, hold })
}

fn step_count(k: &Keys) -> Result<u32, ProfileError> {
    let n = match k.get("steps") {
        Some(Value::Count(n)) => *n,
        _ => return Err(k.missing("steps")),
    };
    if !(2..=100_000).contains(&n) {
        return Err(k.error_at(
            "steps",
            format!("steps = {n}: a staircase from/to needs 2 to 100000 steps"),
            "e.g. from = 100, to = 500, steps = 5 gives 100, 200, 300, 400, 500",
        ));
    }
    Ok(n as u32)
}

fn build_burst(k: &Keys) -> Result<StageKind, ProfileError> {
    let base = match (k.number("base"), k.rest) {
        (Some(b), _) => b,
        (None, Some(_)) => 0.0,
        (None, None) => return Err(k.missing("base")),
    };
    let rise = k.number("rise").unwrap_or(0.0);
    Ok(StageKind::Burst {
        base,
        peak: k.need("peak")?,
        hold: k.need("hold")?,
        rise,
        fall: k.number("fall").unwrap_or(rise),
        every: k.number("every"),
        at: k.number("at").unwrap_or(0.0),
        duration: k.duration()?,
    })
}

fn build_sine(k: &Keys) -> Result<StageKind, ProfileError> {
    let duration = k.duration()?;
    let period = k.number("period").unwrap_or(duration);
    let phase = match (k.number("phase"), k.number("peak_at")) {
        (Some(_), Some(_)) => {
            return Err(k.error_at(
                "phase",
                "give either `phase` or `peak_at`, not both".to_string(),
                "phase (degrees) shifts the sine; peak_at (a time) puts its crest there",
            ))
        }
        (Some(p), None) => degrees(p),
        (None, Some(at)) => phase_peaking_at(at, period),
        (None, None) => 0.0,
    };
    Ok(StageKind::Sine {
        base: k.need("base")?,
        amplitude: k.need("amplitude")?,
        period,
        phase,
        duration,
    })
}

fn build_table(k: &Keys) -> Result<StageKind, ProfileError> {
    let rates = k.rates("rates")?;
    let every = k.need("every")?;
    // One cycle by default; an overlay runs to the end.
    let duration = match (k.number("duration"), k.rest) {
        (Some(d), _) => d,
        (None, Some(r)) => r,
        (None, None) => rates.len() as f64 * every,
    };
    Ok(StageKind::Table {
        rates,
        every,
        interpolate: k.interpolate()?,
        duration,
    })
}

fn build_replay(k: &Keys) -> Result<StageKind, ProfileError> {
    let file = k.text("file").ok_or_else(|| k.missing("file"))?;
    Ok(StageKind::Replay {
        points: k.front.replay(file, k.span("file"))?,
        interpolate: k.interpolate()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_used_once_and_spec_keys_are_keys() {
        let mut names: Vec<&str> = SHAPES
            .iter()
            .flat_map(|d| std::iter::once(&d.name).chain(d.aliases))
            .copied()
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a name or alias is used twice");
        for d in SHAPES {
            for k in d.spec.keys() {
                assert!(d.takes(k).is_some(), "{}: spec key {k}", d.name);
            }
            assert_eq!(resolve_shape(&d.name.to_uppercase()).unwrap().name, d.name);
        }
        assert_eq!(resolve_shape("diurnal").unwrap().name, "sine");
        assert_eq!(resolve_shape("spike").unwrap().name, "burst");
        assert_eq!(resolve_shape("const").unwrap().name, "constant");
        assert_eq!(
            shape_list(),
            "constant, ramp, step, burst (or spike), sine (or diurnal), table, replay"
        );
    }
}
