//! Rates (`500/s`, `30000/m`) and durations (`30s`, `1h 30m`) written as text → numbers: the
//! value syntax shared by profile files, replay CSVs and the shorthand.

/// `500`, `500/s`, `30000/m`, `100/h` → requests per second (0 allowed: a pause).
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    let s = raw.trim();
    let (num, per) = match s.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                "d" | "day" => 86_400.0,
                other => {
                    return Err(format!(
                        "unknown rate unit '/{other}' in '{raw}' (use /s, /m, /h or /d)"
                    ))
                }
            };
            (n.trim(), per)
        }
        None => (s, 1.0),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{raw}' is not a rate (e.g. 500, \"500/s\", \"30000/m\")"))?;
    Ok(n / per)
}

/// `30s`, `2m`, `1h 30m`, `250ms`, or plain seconds (`1.5`) → seconds.
pub fn parse_secs(raw: &str) -> Result<f64, String> {
    let s = raw.trim();
    if let Ok(x) = s.parse::<f64>() {
        return Ok(x);
    }
    humantime::parse_duration(s)
        .map(|d| d.as_secs_f64())
        .map_err(|e| format!("'{raw}' is not a duration ({e}; e.g. \"30s\", \"2m\", \"1h 30m\")"))
}
