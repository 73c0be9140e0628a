//! Where the JSON report goes, claimed *before* the run.
//!
//! A report path that cannot be written must be refused before a single request is sent: found
//! out at the end, it would lose everything measured (and a bad path is bad input, exit 2). So the
//! destination is claimed up front:
//!
//! - **A regular file, or a name that does not exist yet**, is written atomically: a temporary
//!   file with a unique name is created (`O_EXCL`) beside the *real* destination (symlinks are
//!   followed, so the link stays a link), which proves the directory is writable; the report is
//!   written to it, synced, and renamed over the destination only when complete. A run that fails
//!   or is killed never truncates an earlier report, a reader never sees half a file, an existing
//!   file keeps its permissions, and no other file (say `FILE.tmp`) is touched.
//! - **Anything else** (`/dev/null`, a FIFO, a process substitution `>(jq .)`, i.e. `/dev/fd/N`,
//!   `/dev/stdout`) is opened for writing up front and written straight through: renaming over a
//!   device or a pipe would replace it with a regular file (as root, `/dev/null` itself).
//!
//! A destination that is one of the run's own inputs (the profile, a body file, the CA file) is
//! refused: the report would overwrite what it was measured with.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Report;
use crate::error::Error;

/// The destination of `--json FILE` (`-` for stdout).
#[derive(Debug)]
pub enum JsonOut {
    Stdout,
    /// A regular file (or a new one), replaced atomically.
    File(Claimed),
    /// A device, FIFO or `/dev/fd/N`, already open for writing.
    Stream {
        path: PathBuf,
        file: File,
    },
}

/// A claimed temporary file beside the destination; removed again if dropped before
/// [`JsonOut::write`] renamed it.
#[derive(Debug)]
pub struct Claimed {
    /// The destination as given, for messages.
    path: PathBuf,
    /// The real destination (symlinks followed): what the temporary file is renamed over.
    real: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

/// Makes temporary names unique within the process (the pid makes them unique across).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl JsonOut {
    /// Claims `path` for the report: `-` is stdout; `inputs` are the run's input files, which the
    /// report must not overwrite.
    pub fn claim(path: &Path, inputs: &[PathBuf]) -> Result<JsonOut, Error> {
        if path == Path::new("-") {
            return Ok(JsonOut::Stdout);
        }
        let refuse = |cause: std::io::Error| Error::Report {
            path: path.to_path_buf(),
            cause,
        };
        let real = resolve(path).map_err(refuse)?;
        let existing = match std::fs::metadata(&real) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(refuse(e)),
        };
        if let Some(meta) = &existing {
            if meta.is_dir() {
                return Err(refuse(std::io::Error::other("it is a directory")));
            }
            let same = |p: &PathBuf| {
                std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
            };
            if let Some(input) = inputs.iter().find(|p| same(p)) {
                return Err(refuse(std::io::Error::other(format!(
                    "it is an input of this run ({}); the report would overwrite it: give another --json FILE",
                    input.display()
                ))));
            }
        }
        let through = is_special_path(path) || existing.as_ref().is_some_and(|m| !m.is_file());
        if through {
            // Opening a FIFO waits for its reader; better before the run than after it.
            let file = OpenOptions::new().append(true).open(path).map_err(refuse)?;
            return Ok(JsonOut::Stream {
                path: path.to_path_buf(),
                file,
            });
        }
        let (tmp, file) = create_tmp(&real).map_err(refuse)?;
        let claimed = Claimed {
            path: path.to_path_buf(),
            real,
            tmp,
            file: Some(file),
        };
        if let (Some(meta), Some(file)) = (&existing, &claimed.file) {
            file.set_permissions(meta.permissions()).map_err(refuse)?;
        }
        Ok(JsonOut::File(claimed))
    }

    /// Writes the whole report: to stdout, straight through, or (for a file) to the temporary
    /// file, then renamed into place.
    pub fn write(self, report: &Report) -> Result<(), Error> {
        let mut json = report.to_json();
        json.push('\n');
        self.write_text(&json)
    }

    /// Writes `json` (any text: the JUnit file is claimed and written the same way).
    pub fn write_text(self, json: &str) -> Result<(), Error> {
        match self {
            JsonOut::Stdout => {
                std::io::stdout()
                    .lock()
                    .write_all(json.as_bytes())
                    .map_err(|cause| Error::Report {
                        path: PathBuf::from("-"),
                        cause,
                    })
            }
            JsonOut::Stream { path, mut file } => file
                .write_all(json.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|cause| Error::Report { path, cause }),
            JsonOut::File(mut c) => {
                let refuse = |cause| Error::Report {
                    path: c.path.clone(),
                    cause,
                };
                let mut file = c.file.take().ok_or_else(|| {
                    refuse(std::io::Error::other("the report was already written"))
                })?;
                file.write_all(json.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(refuse)?;
                drop(file);
                std::fs::rename(&c.tmp, &c.real).map_err(refuse)?;
                // Renamed: nothing left to clean up.
                c.tmp = PathBuf::new();
                Ok(())
            }
        }
    }
}

/// `/dev/...` and `/proc/...` names (`/dev/stdout`, `/dev/fd/N`) are written through even when
/// they lead to a regular file: that file is the shell's redirection, which a rename would
/// replace behind the shell's back.
fn is_special_path(path: &Path) -> bool {
    path.starts_with("/dev") || path.starts_with("/proc")
}

/// The real path `path` leads to, following symlinks (dangling ones too: the report is then
/// created where the link points), with the directory canonicalized.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => {
                let name = p
                    .file_name()
                    .ok_or_else(|| std::io::Error::other("the path names no file"))?
                    .to_owned();
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                return Ok(dir.canonicalize()?.join(name));
            }
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Creates `.NAME.metronome-PID-N.tmp` beside `real`, never an existing file.
fn create_tmp(real: &Path) -> std::io::Result<(PathBuf, File)> {
    let dir = real.parent().unwrap_or(Path::new("."));
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.metronome-{}-{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory of its own, removed when the test ends.
    fn dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("metronome-json-{name}-"))
            .tempdir()
            .unwrap()
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Claims and writes as `write` does, with a stand-in report text.
    fn put(out: JsonOut, text: &str) {
        match out {
            JsonOut::File(mut c) => {
                let mut f = c.file.take().unwrap();
                f.write_all(text.as_bytes()).unwrap();
                drop(f);
                std::fs::rename(&c.tmp, &c.real).unwrap();
                c.tmp = PathBuf::new();
            }
            JsonOut::Stream { mut file, .. } => file.write_all(text.as_bytes()).unwrap(),
            JsonOut::Stdout => unreachable!(),
        }
    }

    #[test]
    fn unwritable_destinations_are_refused_up_front() {
        let e = JsonOut::claim(Path::new("/nonexistent-dir/x/report.json"), &[]).unwrap_err();
        assert!(e.to_string().contains("cannot write the report"), "{e}");
        let e = JsonOut::claim(&std::env::temp_dir(), &[]).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn an_abandoned_claim_leaves_everything_alone() {
        let tmp = dir("abandoned");
        let d = tmp.path();
        let path = d.join("keep.json");
        std::fs::write(&path, "{\"earlier\":true}").unwrap();
        std::fs::write(d.join("keep.json.tmp"), "mine").unwrap();
        let claim = JsonOut::claim(&path, &[]).unwrap();
        assert_eq!(entries(d).len(), 3, "a temporary file beside it");
        drop(claim);
        assert_eq!(entries(d), ["keep.json", "keep.json.tmp"], "cleaned up");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"earlier\":true}"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("keep.json.tmp")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_file_is_replaced_keeping_its_mode_and_its_neighbours() {
        let tmp = dir("mode");
        let d = tmp.path();
        let path = d.join("r.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(d.join("r.json.tmp"), "not ours").unwrap();
        put(JsonOut::claim(&path, &[]).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            std::fs::read_to_string(d.join("r.json.tmp")).unwrap(),
            "not ours"
        );
        assert_eq!(entries(d), ["r.json", "r.json.tmp"]);
    }

    #[test]
    fn a_symlink_is_followed_not_replaced() {
        let tmp = dir("link");
        let d = tmp.path();
        let real = d.join("real.json");
        std::fs::write(&real, "old").unwrap();
        let link = d.join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        put(JsonOut::claim(&link, &[]).unwrap(), "new");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        // A dangling link: the report is created where it points.
        let dangling = d.join("dangling.json");
        std::os::unix::fs::symlink("target.json", &dangling).unwrap();
        put(JsonOut::claim(&dangling, &[]).unwrap(), "made");
        assert_eq!(
            std::fs::read_to_string(d.join("target.json")).unwrap(),
            "made"
        );
    }

    #[test]
    fn devices_are_written_through() {
        let out = JsonOut::claim(Path::new("/dev/null"), &[]).unwrap();
        assert!(matches!(out, JsonOut::Stream { .. }), "{out:?}");
        put(out, "{}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }

    #[test]
    fn inputs_of_the_run_are_refused() {
        let tmp = dir("inputs");
        let d = tmp.path();
        let profile = d.join("p.toml");
        std::fs::write(&profile, "x").unwrap();
        let link = d.join("alias.toml");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&profile, &link).unwrap();
        for dest in [&profile, &link, &d.join(".").join("p.toml")] {
            let e = JsonOut::claim(dest, std::slice::from_ref(&profile)).unwrap_err();
            assert!(e.to_string().contains("input of this run"), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&profile).unwrap(), "x");
    }
}
