//! The TOML profile file: its raw serde model (stages and overlays as plain key tables, checked
//! and parsed against the shape table in `shapes`), the rate/duration/header value readers, and
//! the validation that compiles it into a [`Profile`] with errors pointing at the offending key.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::csv::parse_csv;
use super::error::{stage_message, suggest, Ctx, ProfileError};
use super::shapes::{
    is_shape_key, resolve_shape, shape_list, shapes_hint, FrontEnd, Given, Key, Keys, Kind,
    ShapeDef, Value,
};
use super::units::{parse_rate, parse_secs};
use super::{Profile, RequestDef};
use crate::input::{read_bounded, read_text, MAX_BODY, MAX_CSV};
use crate::schedule::{
    fmt_secs, fresh_seed, Arrivals, Overlay, Shape, Stage, StageError, StageRef,
};

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
    stage: Vec<Spanned<StageTable>>,
    #[serde(default)]
    overlay: Vec<Spanned<StageTable>>,
    #[serde(default)]
    request: Vec<Spanned<RequestToml>>,
    retry: Option<Spanned<StageTable>>,
    recovery: Option<Spanned<StageTable>>,
    /// `"FIGURE" = "OP LIMIT [scope]"` or a list of them (see docs/ci.md).
    thresholds: Option<StageTable>,
}

/// A `[[stage]]` or `[[overlay]]` table as written: every key with its span and raw value, in
/// file order. Which keys belong and what their values are comes from the shape's entry in
/// [`super::shapes::SHAPES`], not from this type.
struct StageTable(Vec<(Spanned<String>, Spanned<toml::Value>)>);

impl<'de> Deserialize<'de> for StageTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StageTable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StageTable, A::Error> {
                let mut keys: Vec<(Spanned<String>, Spanned<toml::Value>)> = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    keys.push(entry);
                }
                keys.sort_by_key(|(k, _)| k.span().start);
                Ok(StageTable(keys))
            }
        }
        d.deserialize_map(V)
    }
}

impl StageTable {
    fn get(&self, key: &str) -> Option<&Spanned<toml::Value>> {
        self.0
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)
    }

    /// The span of `key`'s value, if given.
    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.get(key).map(Spanned::span)
    }
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
    call: Option<Spanned<String>>,
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
        stages.push(build_stage(&ctx, s, None, dir)?);
    }
    let profile_len: f64 = stages.iter().map(|s: &Stage| s.kind.duration()).sum();
    let overlays = build_overlays(&ctx, &raw.overlay, profile_len, dir)?;
    let spans_of = |e: &StageError| -> Range<usize> {
        let pick = |list: &[Spanned<StageTable>], i: usize| {
            list.get(i).and_then(|s| {
                let table = s.get_ref();
                table.span_of(e.field).or_else(|| table.span_of("shape"))
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

    // Body files already read, by canonical path.
    let mut bodies = HashMap::new();
    let mut requests = Vec::with_capacity(raw.request.len());
    for r in &raw.request {
        requests.push(build_request(&ctx, r, dir, &mut bodies)?);
    }
    let retry = match &raw.retry {
        None => None,
        Some(t) => Some(settings(&ctx, t, "retry", |pairs| {
            crate::retry::Policy::from_pairs(pairs)
        })?),
    };
    let recovery = match &raw.recovery {
        None => None,
        Some(t) => {
            let spec = settings(&ctx, t, "recovery", |pairs| {
                crate::report::recovery::RecoverySpec::from_pairs(pairs)
            })?;
            if let Err(e) = spec.trigger_end(&shape) {
                let span = t.get_ref().span_of("after").unwrap_or(t.span());
                return Err(ctx.at(
                    span,
                    format!("[recovery] {e}"),
                    "after = a time since the start (\"30s\") or the name of a [[stage]]"
                        .to_string(),
                ));
            }
            Some(spec)
        }
    };
    let thresholds = match &raw.thresholds {
        Some(t) => build_thresholds(&ctx, t, path, &shape)?,
        None => Vec::new(),
    };
    Ok(Profile {
        name,
        description: raw.description,
        path: Some(path.to_path_buf()),
        shape,
        seed,
        requests,
        thresholds,
        retry,
        recovery,
    })
}

/// A `[retry]` or `[recovery]` table → its settings, through the same `key=value` grammar as the
/// command line's `--retry` / `--recovery`, with errors pointing at the offending value.
fn settings<T>(
    ctx: &Ctx,
    table: &Spanned<StageTable>,
    name: &str,
    build: impl FnOnce(Vec<(&str, &str)>) -> Result<T, crate::retry::SettingError>,
) -> Result<T, ProfileError> {
    let hint = format!("see docs/retry-storms.md for the [{name}] keys and their values");
    let mut texts = Vec::with_capacity(table.get_ref().0.len());
    for (k, v) in &table.get_ref().0 {
        let text = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s.clone()),
                        toml::Value::Integer(i) => parts.push(i.to_string()),
                        _ => {
                            return Err(ctx.at(
                                v.span(),
                                format!(
                                    "[{name}] {}: a list of names or numbers was expected",
                                    k.get_ref()
                                ),
                                hint,
                            ))
                        }
                    }
                }
                parts.join(",")
            }
            _ => {
                return Err(ctx.at(
                    v.span(),
                    format!(
                        "[{name}] {}: a string or a number was expected",
                        k.get_ref()
                    ),
                    hint,
                ))
            }
        };
        texts.push((k.get_ref().as_str(), text));
    }
    build(texts.iter().map(|(k, v)| (*k, v.as_str())).collect()).map_err(|e| {
        let span = table
            .get_ref()
            .0
            .iter()
            .find(|(k, _)| k.get_ref() == &e.key)
            .map_or(table.span(), |(k, v)| {
                if e.value.is_empty() {
                    k.span()
                } else {
                    v.span()
                }
            });
        ctx.at(span, format!("[{name}] {e}"), hint)
    })
}

const THRESHOLD_HINT: &str = "write thresholds as \"latency.p99\" = \"< 250ms\", or a list: \"errors.count\" = [\"== 0\", \"== 0 for each 1s\"]";

/// The `[thresholds]` table: each `"FIGURE" = "OP LIMIT [scope]"` (or a list of them) is one
/// threshold, checked here (its expression, and a `stage=NAME` against the profile's stages) so
/// that `profile check` catches what `run` would refuse, and an error points at the file, line
/// and column of the offending part.
fn build_thresholds(
    ctx: &Ctx,
    table: &StageTable,
    path: &Path,
    shape: &Shape,
) -> Result<Vec<(String, String)>, ProfileError> {
    let mut out = Vec::new();
    for (key, value) in &table.0 {
        let texts: Vec<&str> = match value.get_ref() {
            toml::Value::String(s) => vec![s.as_str()],
            toml::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let is_list = matches!(value.get_ref(), toml::Value::Array(_));
        if texts.is_empty()
            || (is_list
                && value
                    .get_ref()
                    .as_array()
                    .is_some_and(|a| a.len() != texts.len()))
        {
            return Err(ctx.at(
                value.span(),
                format!(
                    "threshold of '{}' is not a string or a list of strings",
                    key.get_ref()
                ),
                THRESHOLD_HINT,
            ));
        }
        // Where each string's text starts in the file: after the value's opening quote, or,
        // in a list, where the item is found after the previous one.
        let mut cursor = value.span().start;
        for text in texts {
            let content = if is_list {
                let found = ctx
                    .text
                    .get(cursor..value.span().end)
                    .and_then(|rest| rest.find(text))
                    .map(|i| cursor + i);
                if let Some(at) = found {
                    cursor = at + text.len();
                }
                found
            } else {
                Some(value.span().start + 1)
            };
            let expr = format!("{} {}", key.get_ref(), text);
            let key_len = key.get_ref().len();
            // Byte `i` of the expression → its offset in the file.
            let place = |i: usize| -> usize {
                if i > key_len {
                    content.map_or(value.span().start, |c| c + (i - key_len - 1))
                } else {
                    let quoted = ctx
                        .text
                        .get(key.span().start..)
                        .is_some_and(|t| t.starts_with('"'));
                    key.span().start + usize::from(quoted) + i
                }
            };
            let threshold = crate::gate::parse(&expr).map_err(|e| {
                let i = expr
                    .char_indices()
                    .nth(e.column)
                    .map_or(expr.len(), |(b, _)| b);
                let at = place(i);
                ctx.at(
                    at..at + 1,
                    format!("invalid threshold '{expr}': {}", e.message),
                    e.hint.clone(),
                )
            })?;
            if let crate::gate::Scope::Stage(name) = &threshold.scope {
                if let Err(reason) = crate::gate::stage_known(name, shape.stages()) {
                    let at = place(expr.rfind(name.as_str()).unwrap_or(0));
                    return Err(ctx.at(
                        at..at + name.len(),
                        format!("invalid threshold '{expr}': {reason}"),
                        "name one of the profile's [[stage]]s (their `name`), or judge the figure over the whole run",
                    ));
                }
            }
            let (line, col) = ctx.line_col(content.unwrap_or(value.span().start));
            out.push((format!("{}:{line}:{col}", path.display()), expr));
        }
    }
    Ok(out)
}

const RATE_HINT: &str = "rates are numbers of requests per second (500) or strings with a unit (\"500/s\", \"30000/m\", \"100/h\")";
const SECS_HINT: &str =
    "durations are strings such as \"30s\", \"2m\", \"1h 30m\", \"250ms\", or numbers of seconds";

/// The `[[overlay]]`s, each placed at its `start` within the stages' `profile_len`.
fn build_overlays(
    ctx: &Ctx,
    overlays: &[Spanned<StageTable>],
    profile_len: f64,
    dir: &Path,
) -> Result<Vec<Overlay>, ProfileError> {
    let mut out = Vec::with_capacity(overlays.len());
    for s in overlays {
        let given = s.get_ref().get("start");
        let start = match given {
            Some(v) => value::<Secs>(ctx, v, SECS_HINT)?.0,
            None => 0.0,
        };
        if let Some(sp) = given.filter(|_| !(start >= 0.0 && start < profile_len)) {
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
        let rest = (profile_len - start).max(0.0);
        let stage = build_stage(ctx, s, Some(rest), dir)?;
        out.push(Overlay { start, stage });
    }
    Ok(out)
}

/// A toml/serde error → file, line, column, message and a hint.
fn toml_error(ctx: &Ctx, e: &toml::de::Error) -> ProfileError {
    let msg = e.message().trim().to_string();
    let has = |w: &str| msg.contains(w);
    let hint = if msg.starts_with("unknown field") {
        let typo = did_you_mean_field(&msg);
        let section = if has("`stage`") {
            "top-level keys are name, description, arrivals, seed, time_scale, rate_scale, and the [[stage]], [[overlay]] and [[request]] tables"
        } else {
            "remove the key or fix its spelling; see docs/profiles.md"
        };
        match typo {
            Some(t) => format!("did you mean `{t}`? {section}"),
            None => section.to_string(),
        }
    } else if msg.starts_with("missing field") {
        "add the missing key".to_string()
    } else if has("expected a sequence") {
        "stages, overlays and requests are arrays of tables: write [[stage]], [[overlay]], [[request]] (double brackets)".to_string()
    } else if has("not a rate") || has("rate unit") || has("expected a rate") {
        RATE_HINT.to_string()
    } else if has("not a duration") || has("expected a duration") {
        SECS_HINT.to_string()
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

/// A `[[stage]]` (`rest` is `None`) or an `[[overlay]]` (`rest`: the time from its start to
/// the end of the stages) → a [`Stage`].
fn build_stage(
    ctx: &Ctx,
    spanned: &Spanned<StageTable>,
    rest: Option<f64>,
    dir: &Path,
) -> Result<Stage, ProfileError> {
    let table = spanned.get_ref();
    let (shape, written) = stage_shape(ctx, spanned)?;
    let front = TomlStage {
        ctx,
        shape_span: written.span(),
        overlay: rest.is_some(),
        dir,
    };
    let keys = Keys {
        shape,
        values: read_keys(ctx, table, shape, rest.is_some())?,
        rest,
        front: &front,
    };
    let kind = shape.build(&keys)?;
    let name = match table.get("name") {
        Some(n) => value::<String>(ctx, n, "give the stage's name as a quoted string")?,
        None => written.get_ref().trim().to_string(),
    };
    Ok(Stage { name, kind })
}

/// The stage's `shape` as written and the shape it names.
fn stage_shape(
    ctx: &Ctx,
    spanned: &Spanned<StageTable>,
) -> Result<(&'static ShapeDef, Spanned<String>), ProfileError> {
    let Some(v) = spanned.get_ref().get("shape") else {
        return Err(ctx.at(
            spanned.span(),
            "missing field `shape`",
            format!(
                "every [[stage]] and [[overlay]] needs a shape: {}",
                shape_list()
            ),
        ));
    };
    let hint = format!("shape = \"constant\"; shapes are {}", shape_list());
    let written: String = value(ctx, v, &hint)?;
    let shape = resolve_shape(&written).ok_or_else(|| {
        ctx.at(
            v.span(),
            format!("unknown shape \"{written}\""),
            shapes_hint(&written),
        )
    })?;
    Ok((shape, Spanned::new(v.span(), written)))
}

/// Every key of the stage but `shape`, `name` (and an overlay's `start`), checked against the
/// shape and parsed by its kind.
fn read_keys(
    ctx: &Ctx,
    table: &StageTable,
    shape: &'static ShapeDef,
    overlay: bool,
) -> Result<Vec<Given>, ProfileError> {
    let mut values = Vec::new();
    for (name, v) in &table.0 {
        match name.get_ref().as_str() {
            "shape" | "name" => continue,
            "start" if overlay => continue,
            _ => {}
        }
        let key = shape
            .takes(name.get_ref())
            .ok_or_else(|| foreign_key(ctx, shape, name, v, overlay))?;
        values.push(Given::new(key, v.span(), key_value(ctx, key, v)?));
    }
    Ok(values)
}

/// The error for a key the shape does not take: another shape's key, an overlay's `start` on a
/// stage, or an unknown key (with "did you mean").
fn foreign_key(
    ctx: &Ctx,
    shape: &ShapeDef,
    name: &Spanned<String>,
    v: &Spanned<toml::Value>,
    overlay: bool,
) -> ProfileError {
    let extra: &[&str] = if overlay {
        &["name", "start"]
    } else {
        &["name"]
    };
    let names = shape.key_names();
    let key = name.get_ref();
    let shape_name = shape.name;
    if key == "start" {
        let message = format!(
            "`start` does not apply to a {shape_name} stage (`start` places an overlay; stages run in sequence)"
        );
        ctx.at(v.span(), message, shape.takes_hint(&names, extra))
    } else if is_shape_key(key) {
        let message = format!("`{key}` does not apply to a {shape_name} stage");
        ctx.at(v.span(), message, shape.takes_hint(&names, extra))
    } else {
        let message = format!("unknown field `{key}` in a {shape_name} stage");
        ctx.at(
            name.span(),
            message,
            shape.unknown_key_hint(key, &names, extra),
        )
    }
}

/// A key's value, parsed by its kind.
fn key_value(ctx: &Ctx, key: &Key, v: &Spanned<toml::Value>) -> Result<Value, ProfileError> {
    Ok(match key.kind {
        Kind::Rate => Value::Number(value::<Rate>(ctx, v, RATE_HINT)?.0),
        Kind::Secs => Value::Number(value::<Secs>(ctx, v, SECS_HINT)?.0),
        Kind::Degrees => Value::Number(value::<f64>(ctx, v, "give a number without quotes")?),
        Kind::Count => Value::Count(value::<i64>(ctx, v, "give a whole number without quotes")?),
        Kind::Rates => {
            let hint = format!("a list of rates, e.g. {} = {}", key.name, key.example);
            let rates: Vec<Rate> = value(ctx, v, &hint)?;
            Value::Numbers(rates.into_iter().map(|r| r.0).collect())
        }
        Kind::Text => {
            let hint = format!("a quoted string, e.g. {} = {}", key.name, key.example);
            Value::Text(value(ctx, v, &hint)?)
        }
    })
}

/// `v` read as a `T`; a wrong type or value points at it.
fn value<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    v: &Spanned<toml::Value>,
    hint: &str,
) -> Result<T, ProfileError> {
    v.get_ref()
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| ctx.at(v.span(), e.message().trim().to_string(), hint))
}

/// The profile file's side of building a stage: errors point into the file, and replay files
/// are found next to the profile.
struct TomlStage<'a> {
    ctx: &'a Ctx<'a>,
    shape_span: Range<usize>,
    overlay: bool,
    dir: &'a Path,
}

impl FrontEnd for TomlStage<'_> {
    fn error(&self, span: Range<usize>, message: String, hint: String) -> ProfileError {
        self.ctx.at(span, message, hint)
    }

    fn missing(&self, shape: &ShapeDef, key: &Key) -> ProfileError {
        let what = if self.overlay { "overlay" } else { "stage" };
        self.ctx.at(
            self.shape_span.clone(),
            format!("a {} {what} needs `{}`", shape.name, key.name),
            format!("add e.g. {} = {}", key.name, key.example),
        )
    }

    fn replay(&self, file: &str, span: Range<usize>) -> Result<Vec<(f64, f64)>, ProfileError> {
        read_replay(self.ctx, &self.dir.join(file), span)
    }
}

/// Reads and parses a replay CSV named in the profile (relative to the profile's directory).
fn read_replay(
    ctx: &Ctx,
    csv_path: &Path,
    span: Range<usize>,
) -> Result<Vec<(f64, f64)>, ProfileError> {
    let text = read_text(csv_path, MAX_CSV, "a replay file").map_err(|e| {
        ctx.at(
            span,
            format!("cannot read the replay file '{}': {e}", csv_path.display()),
            "the path is relative to the profile's directory; the file holds `time,rate` rows",
        )
    })?;
    parse_csv(&text, csv_path)
}

fn build_request(
    ctx: &Ctx,
    spanned: &Spanned<RequestToml>,
    dir: &Path,
    bodies: &mut HashMap<PathBuf, Bytes>,
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
            if let Some(reason) = crate::plan::reserved_header(k) {
                return Err(ctx.at(
                    h.span(),
                    format!("header '{k}' is set by metronome"),
                    reason,
                ));
            }
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
            let cannot = |e: &dyn std::fmt::Display| {
                ctx.at(
                    f.span(),
                    format!("cannot read the body file '{}': {e}", p.display()),
                    "the path is relative to the profile's directory",
                )
            };
            // One read per file, however many requests of the mix name it.
            let key = p.canonicalize().map_err(|e| cannot(&e))?;
            let data = match bodies.get(&key) {
                Some(data) => data.clone(),
                None => {
                    let data = Bytes::from(
                        read_bounded(&key, MAX_BODY, "a request body").map_err(|e| cannot(&e))?,
                    );
                    bodies.insert(key, data.clone());
                    data
                }
            };
            (Some(data), Some(p))
        }
        (None, None) => (None, None),
    };
    if let Some(c) = &r.call {
        crate::grpc::schema::CallName::parse(c.get_ref()).map_err(|e| {
            ctx.at(
                c.span(),
                e.to_string(),
                "call = \"package.Service/Method\", on a grpc:// target",
            )
        })?;
        if r.url.is_some() || r.path.is_some() {
            return Err(ctx.at(
                c.span(),
                "a gRPC call takes no `url` or `path`",
                "the target is the command line's grpc:// URL; call names the method",
            ));
        }
    }
    Ok(RequestDef {
        call: r.call.as_ref().map(|c| c.get_ref().clone()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::testutil::{examples, parse_with, tempdir};
    use crate::profile::{render_plot, summary};
    use crate::schedule::Rng;
    use std::time::Duration;

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
        let tmp = tempdir();
        let dir = tmp.path().join("noise.toml");
        for _ in 0..3000 {
            let mut t = String::new();
            for _ in 0..rng.below(40) {
                t.push_str(pieces[rng.below(pieces.len() as u64) as usize]);
            }
            seen_err += usize::from(try_parse(&t, &dir));
        }
        assert!(seen_err > 3000, "most mutations are errors ({seen_err})");
    }
}
