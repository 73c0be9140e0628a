//! Replay files: `time,rate` CSV rows → the points of a replay stage, with errors naming the
//! file and line.

use std::path::Path;

use super::error::ProfileError;
use super::units::parse_rate;
use crate::schedule::fmt_secs;

/// Reads `time,rate` rows. Times are seconds, durations (`1m30s`) or RFC 3339 timestamps, and are
/// rebased so the first row is at 0; rates are numbers or `500/m`-style strings. Blank lines,
/// `#` comments and one header line are skipped.
pub fn parse_csv(text: &str, path: &Path) -> Result<Vec<(f64, f64)>, ProfileError> {
    let at = |line: usize, message: String, hint: &str| ProfileError {
        file: Some(path.to_path_buf()),
        line: Some(line as u32),
        column: None,
        message,
        hint: hint.to_string(),
        snippet: None,
    };
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut header_seen = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() != 2 {
            return Err(at(
                line,
                format!("expected two columns `time,rate`, found {}", fields.len()),
                "each row is `time,rate`, e.g. `0,120` or `2024-05-01T00:00:00Z,120`",
            ));
        }
        let time = parse_csv_time(fields[0]);
        let rate = parse_rate(fields[1]);
        let (t, r) = match (time, rate) {
            (Some(t), Ok(r)) => (t, r),
            _ if points.is_empty() && !header_seen => {
                // A header such as `time,rate`.
                header_seen = true;
                continue;
            }
            (None, _) => {
                return Err(at(
                    line,
                    format!("'{}' is not a time", fields[0]),
                    "times are seconds (e.g. 90), durations (\"1m30s\") or RFC 3339 timestamps",
                ))
            }
            (_, Err(e)) => return Err(at(line, e, "rates are requests per second, e.g. 120")),
        };
        if !r.is_finite() || r < 0.0 {
            return Err(at(
                line,
                format!("rate {r} is not a finite number ≥ 0"),
                "rates are requests per second, e.g. 120",
            ));
        }
        if let Some(&(prev, _)) = points.last() {
            if t <= prev {
                return Err(at(
                    line,
                    format!(
                        "time {} is not after the previous row's {}",
                        fields[0],
                        fmt_secs(prev - points[0].0)
                    ),
                    "times must increase strictly: sort the rows and drop duplicates",
                ));
            }
        }
        points.push((t, r));
        if points.len() > crate::schedule::MAX_PIECES {
            return Err(at(
                line,
                "too many rows".to_string(),
                "resample to at most 500,000 rows",
            ));
        }
    }
    if points.len() < 2 {
        return Err(ProfileError::plain(
            Some(path),
            format!("the replay needs at least two rows, found {}", points.len()),
            "add `time,rate` rows covering the span to replay",
        ));
    }
    let t0 = points[0].0;
    for p in &mut points {
        p.0 -= t0;
    }
    Ok(points)
}

fn parse_csv_time(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Some(d.as_secs_f64());
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use crate::profile::testutil::parse_with;
    use std::time::Duration;

    #[test]
    fn csv_errors_name_file_and_line() {
        let profile = "[[stage]]\nshape = \"replay\"\nfile = \"r.csv\"\n";
        // (csv, line, words)
        let table: &[(&str, usize, &str)] = &[
            ("time,rate\n0,10\n5,20\n5,30\n", 4, "not after"),
            ("0,10\n10,5\n7,1\n", 3, "not after"),
            ("0,10\n5,-1\n", 2, "not a finite number"),
            ("0,10\n5,abc\n", 2, "not a rate"),
            ("0,10\n5\n", 2, "two columns"),
            ("# comment\n\n0,10\nsoon,5\n", 4, "not a time"),
            ("0,10,3\n", 1, "two columns"),
        ];
        for (csv, line, words) in table {
            let e = parse_with(profile, &[("r.csv", csv)]).expect_err(csv);
            assert!(e.file.as_ref().unwrap().ends_with("r.csv"), "{e}");
            assert_eq!(e.line, Some(*line as u32), "{csv:?}: {e}");
            assert!(e.message.contains(words), "{csv:?}: {e}");
            assert!(e.to_string().contains(&format!("r.csv:{line}: ")), "{e}");
        }
        let e = parse_with(profile, &[("r.csv", "time,rate\n0,10\n")]).unwrap_err();
        assert!(e.message.contains("at least two rows"), "{e}");
        // Timestamps and durations are rebased to the first row.
        let p = parse_with(
            profile,
            &[(
                "r.csv",
                "ts,rps\n2024-05-01T00:00:00Z,100\n2024-05-01T00:01:00Z,300\n2024-05-01T00:02:00Z,100\n",
            )],
        )
        .unwrap();
        assert_eq!(p.shape.total(), 24_000);
        let p = parse_with(profile, &[("r.csv", "0s,100\n1m,100/s\n1m30s,6000/m\n")]).unwrap();
        assert_eq!(p.shape.duration(), Duration::from_secs(90));
        assert_eq!(p.shape.total(), 9000);
    }
}
