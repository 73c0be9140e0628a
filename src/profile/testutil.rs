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

pub(super) fn tempdir() -> PathBuf {
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
pub(super) fn parse_with(text: &str, files: &[(&str, &str)]) -> Result<Profile, ProfileError> {
    let dir = tempdir();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    parse_str(text, &dir.join("test.toml"))
}
