//! [`ProfileError`] and how it is built and shown: file, line, column, a source snippet with a
//! caret under the offending span, and "did you mean" suggestions for the hint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::schedule::{StageError, StageRef};

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
    pub(super) fn plain(
        file: Option<&Path>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
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
pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) file: Option<&'a Path>,
}

impl Ctx<'_> {
    /// 1-based line and column of byte `offset`.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(self.text, offset)
    }

    pub(super) fn at(
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

pub(super) fn stage_message(e: &StageError) -> String {
    match e.at {
        StageRef::Stage(i) => format!("stage {}: {}", i + 1, e.reason),
        StageRef::Overlay(i) => format!("overlay {}: {}", i + 1, e.reason),
        StageRef::Profile => e.reason.clone(),
    }
}

/// The closest known word, for "did you mean".
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
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

#[cfg(test)]
mod tests {
    use crate::profile::parse_shorthand;
    use crate::profile::testutil::parse_with;

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
}
