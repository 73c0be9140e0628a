//! Verdicts as JUnit XML (`--junit FILE`), the format every CI system shows as test results:
//! one test case per threshold, one for the trust verdict, one per gated baseline figure. An
//! untrustworthy measurement exits 3 whatever the other cases say, so it has a failing case of
//! its own (for `compare`: any untrustworthy input), and the CI shows why the build failed.

use std::fmt::Write;

use super::compare::Comparison;
use super::GateVerdict;
use crate::report::Report;

/// One test case.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub class: &'static str,
    /// The failure message, if it failed.
    pub failure: Option<String>,
    /// What was observed (shown as system-out).
    pub output: String,
}

/// The cases of a finished run.
pub fn run_cases(report: &Report) -> Vec<Case> {
    let v = &report.verdict;
    let mut cases = vec![Case {
        name: "measurement is trustworthy".into(),
        class: "metronome.trust",
        failure: (!v.trustworthy).then(|| v.reasons.join("; ")),
        output: format!(
            "send-lag p99 {}us; scheduled {}, sent {}, dropped {}",
            report.send_lag_us.p99,
            report.counts.scheduled,
            report.counts.sent,
            report.counts.dropped
        ),
    }];
    if let Some(t) = &report.thresholds {
        cases.extend(threshold_cases(t));
    }
    if let Some(c) = &report.baseline {
        cases.extend(compare_cases(c));
    }
    cases
}

fn threshold_cases(t: &GateVerdict) -> Vec<Case> {
    t.results
        .iter()
        .map(|j| {
            let observed = match (j.observed, j.limit) {
                (Some(o), Some(l)) => format!(
                    "observed {o} {} (95% interval {}..{}), limit {l}; scope {}",
                    j.unit,
                    j.low.map_or("?".into(), |x| x.to_string()),
                    j.high.map_or("?".into(), |x| x.to_string()),
                    j.scope
                ),
                _ => j.note.clone().unwrap_or_default(),
            };
            Case {
                name: j.threshold.clone(),
                class: "metronome.threshold",
                failure: (!j.passed).then(|| format!("threshold breached: {observed}")),
                output: observed,
            }
        })
        .collect()
}

/// The cases of `metronome compare`: the inputs' trust, then one per gated figure.
pub fn compare_run_cases(c: &Comparison) -> Vec<Case> {
    let untrustworthy: Vec<&str> = c
        .warnings
        .iter()
        .filter(|w| w.contains("UNTRUSTWORTHY"))
        .map(String::as_str)
        .collect();
    let mut cases = vec![Case {
        name: "every input measurement is trustworthy".into(),
        class: "metronome.trust",
        failure: (!c.trustworthy).then(|| untrustworthy.join("; ")),
        output: format!("base {}; new {}", c.base.join(", "), c.new.join(", ")),
    }];
    cases.extend(compare_cases(c));
    cases
}

/// One case per gated figure of a comparison.
pub fn compare_cases(c: &Comparison) -> Vec<Case> {
    c.rows
        .iter()
        .filter(|r| r.max_regression.is_some())
        .map(|r| {
            let output = format!(
                "base {:?}, new {:?}, change {:?} (95% {:?}..{:?}), allowed {:?}",
                r.base, r.new, r.change, r.change_low, r.change_high, r.max_regression
            );
            Case {
                name: format!("{} does not regress", r.metric),
                class: "metronome.baseline",
                failure: r
                    .regressed
                    .then(|| format!("clear regression beyond the allowed: {output}")),
                output,
            }
        })
        .collect()
}

/// A `<testsuites>` document with one suite.
pub fn render(suite: &str, cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"metronome\" tests=\"{}\" failures=\"{failures}\">",
        cases.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
        escape(suite),
        cases.len()
    );
    for c in cases {
        let _ = writeln!(
            s,
            "    <testcase name=\"{}\" classname=\"{}\">",
            escape(&c.name),
            c.class
        );
        if let Some(f) = &c.failure {
            let _ = writeln!(
                s,
                "      <failure message=\"{}\">{}</failure>",
                escape(f),
                escape(f)
            );
        }
        let _ = writeln!(s, "      <system-out>{}</system-out>", escape(&c.output));
        let _ = writeln!(s, "    </testcase>");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// XML text and attribute escaping; characters XML 1.0 cannot hold become U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_xml_cannot_hold() {
        assert_eq!(
            escape("a<b & \"c\" \u{1}"),
            "a&lt;b &amp; &quot;c&quot; \u{FFFD}"
        );
        let xml = render(
            "s",
            &[Case {
                name: "latency.p99 < 5ms".into(),
                class: "metronome.threshold",
                failure: Some("x > y".into()),
                output: "o".into(),
            }],
        );
        assert!(xml.contains("failures=\"1\""));
        assert!(xml.contains("latency.p99 &lt; 5ms"));
    }
}
