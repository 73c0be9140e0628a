//! Helpers shared by the profile unit tests: the example profiles, scratch directories, and
//! parsing a profile text with files next to it.

use std::path::{Path, PathBuf};

use super::{parse_str, Profile, ProfileError};

pub(super) fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// A directory removed when the test ends (parse tests run thousands of times).
pub(super) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("metronome-profile-")
        .tempdir()
        .unwrap()
}

/// Parses `text` as if it were `DIR/test.toml`, with `files` written next to it.
pub(super) fn parse_with(text: &str, files: &[(&str, &str)]) -> Result<Profile, ProfileError> {
    let tmp = tempdir();
    let dir = tmp.path();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    parse_str(text, &dir.join("test.toml"))
}
