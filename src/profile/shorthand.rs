//! The one-line `--shape` shorthand (`50->1000/s@2m; 1000@1m + burst:…`) → a [`Shape`], with
//! errors pointing at the column of the offending token.

use std::ops::Range;
use std::path::Path;

use super::csv::parse_csv;
use super::error::{stage_message, Ctx, ProfileError};
use super::shapes::{
    resolve_shape, shapes_hint, FrontEnd, Given, Key, Keys, Kind, ShapeDef, Spec, Value,
};
use super::units::{parse_rate, parse_secs};
use crate::schedule::{fmt_secs, Overlay, Shape, Stage, StageRef};

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
        self.err_at(span(tok), message, hint)
    }

    fn err_at(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ProfileError {
        let ctx = Ctx {
            text: self.input,
            file: None,
        };
        ctx.at(span, message, hint)
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

    /// Two rates separated by one of `seps` (`50->1000/s`), each with its token; the unit of
    /// the second applies to the first.
    fn pair<'a>(
        &self,
        shape: &ShapeDef,
        body: Tok<'a>,
        seps: &[&str],
    ) -> Result<[(Tok<'a>, f64); 2], ProfileError> {
        let split = seps.iter().find_map(|sep| body.split_once(sep));
        let (a, b) = split.ok_or_else(|| {
            self.err(
                body,
                format!("expected {}", shape.written),
                format!(
                    "a {} is written {}, e.g. {}",
                    shape.name, shape.written, shape.example
                ),
            )
        })?;
        let unit = self.unit_of(b);
        Ok([
            (a.trim(), self.rate(a, unit)?),
            (b.trim(), self.rate(b, unit)?),
        ])
    }

    /// Rates separated by `|`; the unit of the last applies to all.
    fn list(&self, tok: Tok) -> Result<Vec<f64>, ProfileError> {
        let items = tok.split('|');
        let unit = self.unit_of(*items.last().unwrap_or(&tok));
        items.into_iter().map(|x| self.rate(x, unit)).collect()
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
    let parts = split_overlays(input);
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
        let o_start = overlay_start(&sh, t, total)?;
        let stage = short_stage(&sh, t, Some((total - o_start).max(0.0)))?;
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

/// The stages, then each overlay: `+` starts an overlay when a letter follows (so `1e+3` stays
/// a number).
fn split_overlays(input: &str) -> Vec<Tok<'_>> {
    let mut parts = Vec::new();
    let mut from = 0;
    for (i, c) in input.char_indices() {
        let letter_next = || {
            input[i + 1..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_alphabetic())
        };
        if c == '+' && letter_next() {
            parts.push(Tok {
                s: &input[from..i],
                at: from,
            });
            from = i + 1;
        }
    }
    parts.push(Tok {
        s: &input[from..],
        at: from,
    });
    parts
}

/// An overlay's `start=` (0 when not given), within the stages' `total` length.
fn overlay_start(sh: &Short, t: Tok, total: f64) -> Result<f64, ProfileError> {
    let opts = short_opts(sh, t)?;
    let Some((_, v)) = opts.into_iter().find(|(k, _)| k.s == "start") else {
        return Ok(0.0);
    };
    let start = sh.secs(v)?;
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
    Ok(start)
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

/// One stage (or overlay, with `rest` the time from its start to the end of the stages):
/// `[KIND:]SPEC[@DURATION](,KEY=VALUE)*`.
fn short_stage(sh: &Short, t: Tok, rest: Option<f64>) -> Result<Stage, ProfileError> {
    let head = t.split(',')[0].trim();
    let (shape, spec) = stage_shape(sh, head)?;
    let opts = short_opts(sh, t)?;
    let options = check_options(sh, shape, &opts, rest.is_some())?;
    let mut values = read_spec(sh, shape, spec)?;
    for (key, v) in options {
        values.push(Given::new(key, span(v), option_value(sh, key, v)?));
    }
    let front = ShortStage { sh, stage: t, spec };
    let keys = Keys {
        shape,
        values,
        rest,
        front: &front,
    };
    let kind = shape.build(&keys)?;
    let name = opts.iter().rev().find(|(k, _)| k.s == "name");
    Ok(Stage {
        name: name.map_or(shape.name, |(_, v)| v.s).to_string(),
        kind,
    })
}

/// The shape of a stage and its spec: `KIND:` when the text before `:` is a word, else a ramp
/// when the spec has `->` and a constant rate otherwise.
fn stage_shape<'a>(
    sh: &Short,
    head: Tok<'a>,
) -> Result<(&'static ShapeDef, Tok<'a>), ProfileError> {
    match head.split_once(":") {
        Some((k, spec)) if !k.s.is_empty() && k.s.chars().all(|c| c.is_ascii_alphabetic()) => {
            let shape = resolve_shape(k.s)
                .ok_or_else(|| sh.err(k, format!("unknown shape \"{}\"", k.s), shapes_hint(k.s)))?;
            Ok((shape, spec.trim()))
        }
        _ => {
            let name = if head.s.contains("->") {
                "ramp"
            } else {
                "constant"
            };
            Ok((resolve_shape(name).expect("a known shape"), head))
        }
    }
}

/// The `key=value` options that the shape takes as options (not in its spec), the last of each
/// key winning; `name` (and an overlay's `start`) are read elsewhere.
fn check_options<'a>(
    sh: &Short,
    shape: &'static ShapeDef,
    opts: &[(Tok<'a>, Tok<'a>)],
    overlay: bool,
) -> Result<Vec<(&'static Key, Tok<'a>)>, ProfileError> {
    let in_spec = shape.spec.keys();
    let names: Vec<&str> = shape
        .key_names()
        .into_iter()
        .filter(|k| !in_spec.contains(k))
        .collect();
    let extra: &[&str] = if overlay {
        &["name", "start"]
    } else {
        &["name"]
    };
    let mut out: Vec<(&'static Key, Tok<'a>)> = Vec::new();
    for (k, v) in opts {
        if extra.contains(&k.s) {
            continue;
        }
        let Some(key) = shape.takes(k.s).filter(|key| names.contains(&key.name)) else {
            return Err(sh.err(
                *k,
                format!("`{}` does not apply to a {} stage", k.s, shape.name),
                shape.unknown_key_hint(k.s, &names, extra),
            ));
        };
        out.retain(|(seen, _)| seen.name != key.name);
        out.push((key, *v));
    }
    Ok(out)
}

/// An option's value, parsed by its key's kind.
fn option_value(sh: &Short, key: &Key, v: Tok) -> Result<Value, ProfileError> {
    let not_a = || {
        sh.err(
            v,
            format!("{} must be {}", key.name, key.about),
            format!("e.g. {}={}", key.name, key.example.trim_matches('"')),
        )
    };
    Ok(match key.kind {
        Kind::Rate => Value::Number(sh.rate(v, 1.0)?),
        Kind::Secs => Value::Number(sh.secs(v)?),
        Kind::Rates => Value::Numbers(sh.list(v)?),
        Kind::Degrees => Value::Number(v.s.parse().map_err(|_| not_a())?),
        Kind::Count => Value::Count(v.s.parse().map_err(|_| not_a())?),
        Kind::Text => Value::Text(v.s.to_string()),
    })
}

/// The keys written in the spec (`50->1000/s@2m` → `from`, `to`, `duration`).
fn read_spec(sh: &Short, shape: &'static ShapeDef, spec: Tok) -> Result<Vec<Given>, ProfileError> {
    let (body, at) = match spec.split_once("@") {
        Some((b, d)) => (b.trim(), Some(d.trim())),
        None => (spec, None),
    };
    let key = |name: &str| shape.takes(name).expect("spec keys are the shape's");
    let mut out = Vec::new();
    match &shape.spec {
        Spec::Rate => out.push(Given::new(
            key("rate"),
            span(body),
            Value::Number(sh.rate(body, 1.0)?),
        )),
        Spec::Pair { seps, keys } => {
            let [a, b] = sh.pair(shape, body, seps)?;
            out.push(Given::new(key(keys[0]), span(a.0), Value::Number(a.1)));
            out.push(Given::new(key(keys[1]), span(b.0), Value::Number(b.1)));
        }
        Spec::Staircase => return read_staircase(sh, shape, spec, body, at),
        Spec::List => out.push(Given::new(
            key("rates"),
            span(body),
            Value::Numbers(sh.list(body)?),
        )),
        // A replay's length is its file's; text after '@' is not read.
        Spec::Path => {
            let file = Value::Text(body.s.to_string());
            return Ok(vec![Given::new(key("file"), span(body), file)]);
        }
    }
    if let Some(d) = at {
        out.push(Given::new(
            key("duration"),
            span(d),
            Value::Number(sh.secs(d)?),
        ));
    }
    Ok(out)
}

/// `FROM->TO@STEPSxHOLD` or `R|R|…@HOLD`.
fn read_staircase(
    sh: &Short,
    shape: &'static ShapeDef,
    spec: Tok,
    body: Tok,
    at: Option<Tok>,
) -> Result<Vec<Given>, ProfileError> {
    let key = |name: &str| shape.takes(name).expect("spec keys are the shape's");
    let d = at.ok_or_else(|| {
        sh.err(
            spec,
            "a step needs @STEPSxHOLD or @HOLD",
            format!("e.g. {}", shape.example),
        )
    })?;
    if !body.s.contains("->") {
        let rates = Given::new(key("rates"), span(body), Value::Numbers(sh.list(body)?));
        return Ok(vec![
            rates,
            Given::new(key("hold"), span(d), Value::Number(sh.secs(d)?)),
        ]);
    }
    let [from, to] = sh.pair(shape, body, &["->"])?;
    let (n, hold) = d
        .split_once("x")
        .ok_or_else(|| sh.err(d, "expected STEPSxHOLD", "e.g. @5x30s: 5 steps of 30 s"))?;
    let n = n.trim();
    let steps = n.s.parse().map_err(|_| {
        let message = format!("steps must be {}", key("steps").about);
        sh.err(n, message, "e.g. @5x30s: 5 steps of 30 s")
    })?;
    Ok(vec![
        Given::new(key("from"), span(from.0), Value::Number(from.1)),
        Given::new(key("to"), span(to.0), Value::Number(to.1)),
        Given::new(key("steps"), span(n), Value::Count(steps)),
        Given::new(key("hold"), span(hold), Value::Number(sh.secs(hold)?)),
    ])
}

fn span(t: Tok) -> Range<usize> {
    t.at..t.at + t.s.len()
}

/// The shorthand's side of building a stage: errors point into the `--shape` argument, and
/// replay paths are relative to the current directory.
struct ShortStage<'a> {
    sh: &'a Short<'a>,
    /// The whole stage, and its spec.
    stage: Tok<'a>,
    spec: Tok<'a>,
}

impl FrontEnd for ShortStage<'_> {
    fn error(&self, span: Range<usize>, message: String, hint: String) -> ProfileError {
        self.sh.err_at(span, message, hint)
    }

    fn missing(&self, shape: &ShapeDef, key: &Key) -> ProfileError {
        if key.name == "duration" {
            return self.sh.err(
                self.spec,
                format!("a {} stage needs a duration: add @DURATION", shape.name),
                "e.g. 500/s@30s, 50->1000/s@2m",
            );
        }
        let placeholder = match key.kind {
            Kind::Rate => "RATE",
            Kind::Secs => "DURATION",
            Kind::Rates => "R|R|…",
            Kind::Count => "N",
            Kind::Degrees => "DEGREES",
            Kind::Text => "…",
        };
        self.sh.err(
            self.stage,
            format!(
                "a {} stage needs {}={placeholder} ({})",
                shape.name, key.name, key.about
            ),
            format!("e.g. {}", shape.example),
        )
    }

    fn replay(&self, file: &str, span: Range<usize>) -> Result<Vec<(f64, f64)>, ProfileError> {
        let path = Path::new(file);
        let text = std::fs::read_to_string(path).map_err(|e| {
            self.sh.err_at(
                span,
                format!("cannot read '{file}': {e}"),
                "replay:PATH names a CSV of time,rate rows",
            )
        })?;
        parse_csv(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::testutil::tempdir;
    use crate::schedule::Rng;
    use std::time::Duration;

    #[test]
    fn shorthand_table() {
        // (shorthand, total, duration s)
        let dir = tempdir();
        let csv = dir.path().join("r.csv");
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
}
