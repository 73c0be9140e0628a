//! Reading input files with a size limit.
//!
//! Every file a run reads (a `-b @FILE` body, a profile, its `body_file`s and replay CSVs, the
//! `--cacert` PEM) goes through [`read_bounded`]: `std::fs::read("/dev/zero")` grows until the
//! OOM killer ends the process, and a 10 GB body would be held in memory whole for the whole run.
//! A regular file larger than its limit is refused from its metadata without reading it; a FIFO
//! (`<(cmd)`, `/dev/stdin` from a pipe) is read, but never beyond the limit; anything else (a
//! device, a directory, a socket) is refused, since it has no end to read to.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// The largest request body: 64 MiB (`-b @FILE`, a profile's `body_file`).
pub const MAX_BODY: u64 = 64 << 20;
/// The largest profile file: 16 MiB (profiles are a few KB; tables of 500 000 rates fit).
pub const MAX_PROFILE: u64 = 16 << 20;
/// The largest replay CSV: 64 MiB (the 500 000 rows a curve may hold, with room to spare).
pub const MAX_CSV: u64 = 64 << 20;
/// The largest `--cacert` PEM: 16 MiB (a full public CA bundle is about 250 KB).
pub const MAX_CACERT: u64 = 16 << 20;

/// Why an input file could not be read. The path is named by the caller's error.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Io(#[from] std::io::Error),

    #[error("it is {0}, not a regular file or a pipe")]
    NotAFile(&'static str),

    #[error("{}, the limit for {what}; use a smaller file", too_large(*size, *cap))]
    TooLarge {
        what: &'static str,
        /// The file's size when known (a regular file), else `None` (a pipe, cut at the limit).
        size: Option<u64>,
        cap: u64,
    },

    #[error("it is not UTF-8 text (save it as UTF-8)")]
    NotUtf8,
}

/// Reads all of `path`, at most `cap` bytes of it; `what` names the input in the error ("a
/// request body"). Follows symlinks.
pub fn read_bounded(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    let known = if kind.is_file() {
        if meta.len() > cap {
            return Err(InputError::TooLarge {
                what,
                size: Some(meta.len()),
                cap,
            });
        }
        true
    } else if kind.is_fifo() {
        false
    } else {
        return Err(InputError::NotAFile(kind_name(&kind)));
    };
    let mut data = Vec::with_capacity(if known { meta.len() as usize } else { 0 });
    // One byte more than allowed tells "exactly at the limit" from "over it" (a regular file
    // may also have grown since its metadata was read).
    file.take(cap.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Err(InputError::TooLarge {
            what,
            size: None,
            cap,
        });
    }
    Ok(data)
}

/// [`read_bounded`] for a text file.
pub fn read_text(path: &Path, cap: u64, what: &'static str) -> Result<String, InputError> {
    String::from_utf8(read_bounded(path, cap, what)?).map_err(|_| InputError::NotUtf8)
}

fn too_large(size: Option<u64>, cap: u64) -> String {
    match size {
        Some(n) => format!("it is {}, above {}", fmt_bytes(n), fmt_bytes(cap)),
        None => format!("it holds more than {}", fmt_bytes(cap)),
    }
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// `64 MiB`, `1.5 KiB`, `12 bytes`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut x = n as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit < UNITS.len() - 1 {
        x /= 1024.0;
        unit += 1;
    }
    let shown = format!("{x:.1}");
    let shown = shown.strip_suffix(".0").unwrap_or(&shown);
    format!("{shown} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own, removed when the test ends.
    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("metronome-input-")
            .tempdir()
            .unwrap()
    }

    #[test]
    fn regular_files_up_to_the_limit() {
        let tmp = dir();
        let p = tmp.path().join("ten");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10, "a body").unwrap(), b"0123456789");
        let e = read_bounded(&p, 9, "a body").unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: Some(10),
                    cap: 9,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "it is 10 bytes, above 9 bytes, the limit for a body; use a smaller file"
        );
        assert!(matches!(
            read_bounded(&p.with_extension("missing"), 10, "x"),
            Err(InputError::Io(_))
        ));
    }

    #[test]
    fn endless_and_odd_files_are_refused() {
        let e = read_bounded(Path::new("/dev/zero"), MAX_BODY, "a body").unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let e = read_bounded(&std::env::temp_dir(), MAX_BODY, "a body").unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn a_fifo_is_read_up_to_the_limit() {
        let tmp = dir();
        let p = tmp.path().join("fifo");
        let _ = std::fs::remove_file(&p);
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = |p: std::path::PathBuf, n: usize| {
            std::thread::spawn(move || {
                use std::io::Write;
                // The reader may stop early and close: a broken pipe is expected then.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .and_then(|mut f| f.write_all(&vec![b'x'; n]));
            })
        };
        let w = writer(p.clone(), 100);
        assert_eq!(read_bounded(&p, 100, "a body").unwrap().len(), 100);
        w.join().unwrap();
        let w = writer(p.clone(), 1 << 20);
        let e = read_bounded(&p, 1000, "a body").unwrap_err();
        assert!(
            matches!(e, InputError::TooLarge { size: None, .. }),
            "{e:?}"
        );
        w.join().unwrap();
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn sizes_in_words() {
        assert_eq!(fmt_bytes(12), "12 bytes");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(MAX_BODY), "64 MiB");
    }
}
