//! Where the JSON report goes, claimed *before* the run.
//!
//! A report path that cannot be written must be refused before a single request is sent: found
//! out at the end, it would lose everything measured (and a bad path is bad input, exit 2). So the
//! file is claimed up front as `<FILE>.tmp` beside its destination, which proves the directory is
//! writable, and renamed over `<FILE>` only when the report is complete. A run that fails or is
//! killed never truncates an earlier report, and a reader never sees half a file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Report;
use crate::error::Error;

/// The destination of `--json FILE` (`-` for stdout).
#[derive(Debug)]
pub enum JsonOut {
    Stdout,
    File(Claimed),
}

/// A claimed `<FILE>.tmp`; removed again if dropped before [`JsonOut::write`] renamed it.
#[derive(Debug)]
pub struct Claimed {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl JsonOut {
    /// Claims `path` for the report: `-` is stdout; anything else must be a file we can create.
    pub fn claim(path: &Path) -> Result<JsonOut, Error> {
        if path == Path::new("-") {
            return Ok(JsonOut::Stdout);
        }
        let refuse = |cause: std::io::Error| Error::Report {
            path: path.to_path_buf(),
            cause,
        };
        if path.is_dir() {
            return Err(refuse(std::io::Error::other("it is a directory")));
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(refuse)?;
        Ok(JsonOut::File(Claimed {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        }))
    }

    /// Writes the whole report, then (for a file) renames it into place.
    pub fn write(self, report: &Report) -> Result<(), Error> {
        let mut json = report.to_json();
        json.push('\n');
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
                std::fs::rename(&c.tmp, &c.path).map_err(refuse)?;
                // Renamed: nothing left to clean up.
                c.tmp = PathBuf::new();
                Ok(())
            }
        }
    }

    /// Whether the report goes to stdout (the text report then goes to stderr).
    pub fn is_stdout(&self) -> bool {
        matches!(self, JsonOut::Stdout)
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

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("metronome-json-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn unwritable_destinations_are_refused_up_front() {
        let e = JsonOut::claim(Path::new("/nonexistent-dir/x/report.json")).unwrap_err();
        assert!(e.to_string().contains("cannot write the report"), "{e}");
        let e = JsonOut::claim(&std::env::temp_dir()).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn an_abandoned_claim_leaves_an_earlier_report_alone() {
        let d = dir();
        let path = d.join("keep.json");
        std::fs::write(&path, "{\"earlier\":true}").unwrap();
        let claim = JsonOut::claim(&path).unwrap();
        assert!(d.join("keep.json.tmp").exists());
        drop(claim);
        assert!(!d.join("keep.json.tmp").exists(), "the claim is cleaned up");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"earlier\":true}"
        );
    }
}
