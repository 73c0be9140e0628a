//! What `metronome profile show` prints: the summary table of a [`Profile`] and a braille plot of
//! its rate curve.

use super::Profile;
use crate::schedule::{fmt_rate, fmt_secs, Arrivals, Shape};

/// Braille dot bits for (column 0/1, row 0..4 from the top).
const DOTS: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];

/// The rate curve as a terminal plot of `width × height` characters (axes and labels included):
/// braille dots, 2 × 4 per character; each dot column spans the min–max of the rate over its
/// time slice, so short bursts and fast oscillations still show. Stage starts are marked `┴` on
/// the time axis, with the stage names below.
pub fn render_plot(shape: &Shape, width: usize, height: usize) -> String {
    let Some(c) = shape.curve() else {
        return format!("{}: no rate curve (closed loop)\n", shape.describe());
    };
    let width = width.clamp(30, 400);
    let height = height.clamp(6, 200);
    let peak = c.peak().max(f64::MIN_POSITIVE);
    let labels = [
        format!("{}/s", fmt_rate(peak)),
        format!("{}/s", fmt_rate(peak / 2.0)),
        "0/s".to_string(),
    ];
    let margin = labels.iter().map(|l| l.chars().count()).max().unwrap_or(3) + 1;
    let pw = width - margin - 1; // plot columns (characters)
    let ph = height - 3; // plot rows (characters): axis, times and names below
    let (cols, rows) = (pw * 2, ph * 4);
    let total = c.duration_secs();
    let mut grid = vec![vec![0u8; pw]; ph];
    let to_row = |r: f64| -> usize {
        let y = (r / peak * (rows - 1) as f64).round() as usize;
        (rows - 1) - y.min(rows - 1)
    };
    let mut prev: Option<(usize, usize)> = None;
    for x in 0..cols {
        let t0 = total * x as f64 / cols as f64;
        let t1 = total * (x + 1) as f64 / cols as f64;
        let (lo, hi) = c.rate_range(t0, t1);
        let (mut top, mut bottom) = (to_row(hi), to_row(lo));
        if let Some((pt, pb)) = prev {
            // Join to the previous column so steep edges are continuous.
            if pb < top {
                top = pb;
            }
            if pt > bottom {
                bottom = pt;
            }
        }
        prev = Some((to_row(hi), to_row(lo)));
        for y in top..=bottom {
            grid[y / 4][x / 2] |= DOTS[x % 2][y % 4];
        }
    }
    let mut out = String::new();
    for (i, row) in grid.iter().enumerate() {
        let label = if i == 0 {
            &labels[0]
        } else if i == ph / 2 && ph > 2 {
            &labels[1]
        } else {
            ""
        };
        let tick = if label.is_empty() { '│' } else { '┤' };
        out.push_str(&format!("{label:>w$} {tick}", w = margin - 1));
        for &b in row {
            out.push(char::from_u32(0x2800 + u32::from(b)).unwrap_or(' '));
        }
        out.push('\n');
    }
    // Time axis with stage starts.
    let col_of = |t: f64| ((t / total) * pw as f64).round() as usize;
    let mut axis: Vec<char> = vec!['─'; pw];
    for s in c.stages().iter().skip(1) {
        let x = col_of(s.start);
        if x < pw {
            axis[x] = '┴';
        }
    }
    out.push_str(&format!("{:>w$} └", labels[2], w = margin - 1));
    out.extend(axis);
    out.push('\n');
    // Time labels: start, middle, end.
    let mut line = vec![' '; pw + 2];
    let place = |x: usize, s: &str, line: &mut Vec<char>| {
        let s: Vec<char> = s.chars().collect();
        let x = x.min(line.len().saturating_sub(s.len()));
        if line[x..x + s.len()].iter().all(|c| *c == ' ') {
            line[x..x + s.len()].copy_from_slice(&s);
        }
    };
    place(0, "0s", &mut line);
    let end = fmt_secs(total);
    place(pw + 1 - end.chars().count().min(pw), &end, &mut line);
    let mid = fmt_secs(total / 2.0);
    place(
        (pw / 2).saturating_sub(mid.chars().count() / 2),
        &mid,
        &mut line,
    );
    out.push_str(&" ".repeat(margin));
    out.push_str(line.iter().collect::<String>().trim_end());
    out.push('\n');
    // Stage names under their starts (those that fit).
    let mut names = vec![' '; pw + 1];
    for s in c.stages() {
        let x = col_of(s.start);
        let n: Vec<char> = s.name.chars().collect();
        let room = names.len().saturating_sub(x);
        if room >= 2 && names[x..].iter().take(n.len().min(room)).all(|c| *c == ' ') {
            let k = n.len().min(room - 1);
            names[x..x + k].copy_from_slice(&n[..k]);
        }
    }
    out.push_str(&" ".repeat(margin + 1));
    out.push_str(names.iter().collect::<String>().trim_end());
    out.push('\n');
    out
}

/// Stages with their span, expected requests and peak, the totals, the arrival process and the
/// request mix: the text half of `metronome profile show`.
pub fn summary(profile: &Profile) -> String {
    let shape = &profile.shape;
    let mut out = String::new();
    out.push_str(&format!("profile    {}", profile.name));
    if let Some(p) = &profile.path {
        out.push_str(&format!(" ({})", p.display()));
    }
    out.push('\n');
    if let Some(d) = &profile.description {
        out.push_str(&format!("           {d}\n"));
    }
    let Some(c) = shape.curve() else {
        out.push_str(&format!("shape      {}\n", shape.describe()));
        return out;
    };
    let seed = match profile.seed {
        Some(s) => format!("seed {s}"),
        None => format!("seed {} (drawn; set `seed` to repeat)", c.seed()),
    };
    // The seed matters for Poisson arrivals and for picking from a request mix.
    if c.arrivals() == Arrivals::Poisson || profile.requests.len() > 1 {
        out.push_str(&format!("arrivals   {}, {seed}\n", c.arrivals().name()));
    } else {
        out.push_str(&format!("arrivals   {}\n", c.arrivals().name()));
    }
    if c.time_scale() != 1.0 || c.rate_scale() != 1.0 {
        out.push_str(&format!(
            "scaling    time ×{} ({} of profile time runs in {}), rate ×{}\n",
            fmt_rate(c.time_scale()),
            fmt_secs(c.duration_secs() * c.time_scale()),
            fmt_secs(c.duration_secs()),
            c.rate_scale()
        ));
    }
    out.push('\n');
    let approx = if c.arrivals() == Arrivals::Poisson {
        "~"
    } else {
        ""
    };
    let rows: Vec<[String; 7]> = c
        .stages()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            [
                (i + 1).to_string(),
                s.name.clone(),
                fmt_secs(s.start),
                fmt_secs(s.end - s.start),
                format!("{approx}{}", s.requests),
                format!("{}/s", fmt_rate(s.peak)),
                s.description.clone(),
            ]
        })
        .collect();
    let head = [
        "#", "stage", "start", "duration", "requests", "peak", "shape",
    ];
    let mut w = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let fmt_row = |r: &[String; 7]| {
        format!(
            "{:>w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4],
            w5 = w[5]
        )
    };
    out.push_str(&fmt_row(&head.map(String::from)));
    for r in &rows {
        out.push_str(&fmt_row(r));
    }
    for (i, o) in c.overlays().iter().enumerate() {
        out.push_str(&format!(
            "{:>w0$}  overlay {}: {} from {}\n",
            "+",
            i + 1,
            o.stage.kind.describe(c.time_scale(), c.rate_scale()),
            fmt_secs(o.start / c.time_scale()),
            w0 = w[0]
        ));
    }
    let total = c.total();
    out.push_str(&format!(
        "\ntotal      {approx}{total} requests in {}, mean {}/s, peak {}/s\n",
        fmt_secs(c.duration_secs()),
        fmt_rate(total as f64 / c.duration_secs()),
        fmt_rate(c.peak())
    ));
    if !profile.requests.is_empty() {
        let sum: u64 = profile.requests.iter().map(|r| u64::from(r.weight)).sum();
        out.push_str("\nrequests\n");
        for r in &profile.requests {
            let target = r
                .url
                .as_deref()
                .or(r.path.as_deref())
                .unwrap_or("(command-line URL)");
            let body = match (&r.body_file, &r.body) {
                (Some(f), _) => format!(", body from {}", f.display()),
                (None, Some(b)) => format!(", body {} bytes", b.len()),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {:>5.1}%  {} {}{}{}\n",
                100.0 * f64::from(r.weight) / sum as f64,
                r.method,
                target,
                if r.headers.is_empty() {
                    String::new()
                } else {
                    format!(", {} header(s)", r.headers.len())
                },
                body
            ));
        }
    }
    out
}

/// `summary` followed by the plot: what `metronome profile show FILE` prints.
pub fn show(profile: &Profile, width: usize, height: usize) -> String {
    format!(
        "{}\n{}",
        summary(profile),
        render_plot(&profile.shape, width, height)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::testutil::examples;
    use crate::profile::{check, parse_shorthand};

    #[test]
    fn every_example_parses_and_shows() {
        let all = examples();
        assert!(all.len() >= 8, "{all:?}");
        for p in all {
            let prof = check(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!prof.shape.is_closed_loop());
            assert!(prof.shape.total() > 0);
            let sum = summary(&prof);
            assert!(sum.contains(&prof.name), "{sum}");
            assert!(sum.contains("total"), "{sum}");
            for (w, h) in [(80, 16), (40, 8), (120, 30)] {
                let plot = render_plot(&prof.shape, w, h);
                let lines: Vec<&str> = plot.lines().collect();
                assert_eq!(lines.len(), h, "{}:\n{plot}", p.display());
                for l in &lines {
                    assert!(l.chars().count() <= w, "{} ({w}): {l:?}", p.display());
                }
            }
            // Stage counts add up to the total (uniform profiles).
            if prof.shape.arrivals() == Arrivals::Uniform {
                let stages: u64 = prof.shape.stages().iter().map(|s| s.requests).sum();
                assert_eq!(stages, prof.shape.total(), "{}", p.display());
            }
        }
    }

    #[test]
    fn plot_draws_the_curve() {
        let s = parse_shorthand("0->100/s@10s; 100@10s").unwrap();
        let plot = render_plot(&s, 40, 10);
        let lines: Vec<&str> = plot.lines().collect();
        assert_eq!(lines.len(), 10);
        assert!(lines[0].starts_with("100/s ┤"), "{plot}");
        assert!(lines[7].starts_with("  0/s └"), "{plot}");
        assert!(lines[7].contains('┴'), "stage boundary marked: {plot}");
        assert!(
            lines[8].trim_start().starts_with("0s") && lines[8].ends_with("20s"),
            "{plot}"
        );
        assert!(
            lines[9].contains("ramp") && lines[9].contains("constant"),
            "{plot}"
        );
        // The top row is lit only in the second half (the constant 100/s).
        let top: Vec<char> = lines[0].chars().skip(7).collect();
        let half = top.len() / 2;
        assert!(top[..half - 2].iter().all(|c| *c == '\u{2800}'), "{plot}");
        assert!(top[half + 1..].iter().all(|c| *c != '\u{2800}'), "{plot}");
        assert!(render_plot(&Shape::MaxCount(3), 40, 10).contains("closed loop"));
    }
}
