//! The shape vocabulary shared by profile files and the shorthand: known shape names, their
//! aliases, and the hint listing them when a name is unknown.

use super::error::suggest;

const SHAPES: &[&str] = &[
    "constant", "ramp", "step", "burst", "sine", "table", "replay",
];
const ALIASES: &[(&str, &str)] = &[
    ("const", "constant"),
    ("diurnal", "sine"),
    ("spike", "burst"),
];

pub(super) fn resolve_shape(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase();
    SHAPES
        .iter()
        .copied()
        .find(|k| *k == s)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == s).map(|(_, k)| *k))
}

pub(super) fn shapes_hint(word: &str) -> String {
    let list = "constant, ramp, step, burst (or spike), sine (or diurnal), table, replay";
    match suggest(
        word,
        SHAPES.iter().copied().chain(ALIASES.iter().map(|a| a.0)),
    ) {
        Some(s) => format!("did you mean \"{s}\"? shapes are {list}"),
        None => format!("shapes are {list}"),
    }
}
