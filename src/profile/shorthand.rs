//! The one-line `--shape` shorthand (`50->1000/s@2m; 1000@1m + burst:…`) → a [`Shape`], with
//! errors pointing at the column of the offending token.

use std::path::Path;

use super::csv::parse_csv;
use super::error::{stage_message, Ctx, ProfileError};
use super::shapes::{resolve_shape, shapes_hint};
use super::units::{parse_rate, parse_secs};
use crate::schedule::{
    degrees, fmt_secs, phase_peaking_at, staircase, Interpolate, Overlay, Shape, Stage, StageKind,
    StageRef,
};

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
                    rates: staircase(from, to, steps),
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
                (None, Some(at)) => phase_peaking_at(at, period),
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
