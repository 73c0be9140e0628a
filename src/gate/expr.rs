//! The threshold language: one comparison over a figure of the report, optionally scoped to a
//! stage or to every window of the run.
//!
//! ```text
//! threshold := metric OP operand scope*
//! metric    := CLOCK "." STAT | COUNTER "." ("count" | "rate") | "rate." ("achieved" | "target")
//! CLOCK     := latency | service_time | send_lag | latency_ok
//! STAT      := pNN (p50, p90, p99, p999 = 99.9th, p9999, p99.9 …) | min | max | mean
//! COUNTER   := requests | ok | rejected | errors | http_errors | timeouts | dropped | cancelled
//! OP        := < | <= | > | >= | == | !=
//! operand   := NUMBER UNIT? | NUMBER "*" metric | metric
//! UNIT      := us | µs | ms | s (times) ; % (shares) ; /s (request rates)
//! scope     := "for each" DURATION | "stage=" NAME
//! ```
//!
//! Everything is checked before the run: an unknown name, a missing unit, a unit of the wrong
//! kind, or a share above 100 % is an [`ExprError`] with the column it was found at.

use std::fmt;
use std::time::Duration;

/// What a figure measures, which fixes the units its limit may be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Microseconds.
    Time,
    /// A share, 0 to 1.
    Share,
    /// A number of requests.
    Count,
    /// Requests per second.
    PerSecond,
}

/// One of the recorded clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Latency,
    ServiceTime,
    SendLag,
    /// Latency of successful (2xx/3xx) requests only.
    LatencyOk,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::Latency => "latency",
            Clock::ServiceTime => "service_time",
            Clock::SendLag => "send_lag",
            Clock::LatencyOk => "latency_ok",
        }
    }

    fn parse(s: &str) -> Option<Clock> {
        Some(match s {
            "latency" => Clock::Latency,
            "service_time" => Clock::ServiceTime,
            "send_lag" => Clock::SendLag,
            "latency_ok" => Clock::LatencyOk,
            _ => return None,
        })
    }
}

/// A summary of a clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    /// A quantile, 0 < q < 1.
    Quantile(f64),
    Min,
    Max,
    Mean,
}

/// Requests of one fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Completed requests (any outcome).
    Requests,
    Ok,
    Rejected,
    /// HTTP errors, timeouts, connect, transport and local errors.
    Errors,
    HttpErrors,
    Timeouts,
    Dropped,
    Cancelled,
}

impl Counter {
    fn parse(s: &str) -> Option<Counter> {
        Some(match s {
            "requests" => Counter::Requests,
            "ok" => Counter::Ok,
            "rejected" => Counter::Rejected,
            "errors" => Counter::Errors,
            "http_errors" => Counter::HttpErrors,
            "timeouts" => Counter::Timeouts,
            "dropped" => Counter::Dropped,
            "cancelled" => Counter::Cancelled,
            _ => return None,
        })
    }

    /// `dropped` and `cancelled` are shares of the scheduled requests; the others of the
    /// completed ones.
    pub fn of_scheduled(self) -> bool {
        matches!(self, Counter::Dropped | Counter::Cancelled)
    }
}

/// A figure a threshold looks at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    Clock(Clock, Stat),
    Count(Counter),
    /// The counter's share of the completed (or, for dropped/cancelled, scheduled) requests.
    Share(Counter),
    RateAchieved,
    RateTarget,
}

impl Metric {
    pub fn kind(&self) -> Kind {
        match self {
            Metric::Clock(..) => Kind::Time,
            Metric::Count(_) => Kind::Count,
            Metric::Share(_) => Kind::Share,
            Metric::RateAchieved | Metric::RateTarget => Kind::PerSecond,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// The right-hand side: a constant (in the metric's base unit) or a multiple of another figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    Const(f64),
    Scaled(f64, Metric),
}

/// Where a threshold is judged.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    /// The whole run.
    Run,
    /// The requests due in one stage of a multi-stage profile.
    Stage(String),
    /// Every window of this length (a whole number of seconds), each on its own.
    Each(Duration),
}

/// A parsed threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// As written.
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    pub operand: Operand,
    pub scope: Scope,
}

/// A threshold that cannot be used: where (0-based character column), what, and how to fix it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprError {
    pub expr: String,
    pub column: usize,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = crate::error::clip(&self.expr);
        write!(
            f,
            "invalid threshold '{shown}' at column {}: {}",
            self.column + 1,
            self.message
        )?;
        if shown.len() == self.expr.len() {
            write!(f, "\n    {}\n    {}^", self.expr, " ".repeat(self.column))?;
        }
        write!(f, "\n  hint: {}", self.hint)
    }
}

impl std::error::Error for ExprError {}

const METRIC_HINT: &str = "a figure is CLOCK.STAT (latency, service_time, send_lag, latency_ok with p50, p90, p99, p999, p9999, min, max, mean), COUNTER.count or COUNTER.rate (requests, ok, rejected, errors, http_errors, timeouts, dropped, cancelled), rate.achieved or rate.target; e.g. latency.p99 < 250ms";

/// A cursor over the expression's characters.
struct Lexer<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            text,
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn err(&self, at: usize, message: impl Into<String>, hint: impl Into<String>) -> ExprError {
        ExprError {
            expr: self.text.to_string(),
            column: at,
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.chars.len()
    }

    /// A run of characters satisfying `f`.
    fn take(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        let matches = self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars());
        if matches {
            self.pos += n;
        }
        matches
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Parses one threshold.
pub fn parse(text: &str) -> Result<Threshold, ExprError> {
    let mut lx = Lexer::new(text);
    lx.skip_ws();
    if lx.at_end() {
        return Err(lx.err(0, "the threshold is empty", METRIC_HINT));
    }
    let metric = metric(&mut lx)?;
    lx.skip_ws();
    let op = op(&mut lx)?;
    lx.skip_ws();
    let operand = operand(&mut lx, metric)?;
    let mut scope = Scope::Run;
    while !lx.at_end() {
        let at = lx.pos;
        let next = scope_clause(&mut lx)?;
        if scope != Scope::Run {
            return Err(lx.err(
                at,
                "a threshold has one scope",
                "write one threshold per scope, e.g. one with stage=peak and one with for each 1s",
            ));
        }
        scope = next;
    }
    if matches!(scope, Scope::Stage(_)) {
        stage_supports(&lx, metric, operand)?;
    }
    Ok(Threshold {
        text: text.trim().to_string(),
        metric,
        op,
        operand,
        scope,
    })
}

fn metric(lx: &mut Lexer) -> Result<Metric, ExprError> {
    let at = lx.pos;
    let word = lx.take(is_ident);
    if word.is_empty() {
        return Err(lx.err(at, "expected a figure", METRIC_HINT));
    }
    let (head, tail) = word.split_once('.').unwrap_or((word.as_str(), ""));
    let tail_at = at + head.chars().count() + 1;
    if let Some(clock) = Clock::parse(head) {
        return stat(tail).map(|s| Metric::Clock(clock, s)).ok_or_else(|| {
            lx.err(
                tail_at,
                format!("unknown statistic '{tail}' of {head}"),
                "use p50, p90, p95, p99, p999 (99.9th), p9999, p99.9, min, max or mean",
            )
        });
    }
    if let Some(counter) = Counter::parse(head) {
        return match tail {
            "count" => Ok(Metric::Count(counter)),
            "rate" => Ok(Metric::Share(counter)),
            _ => Err(lx.err(
                tail_at,
                format!("unknown field '{tail}' of {head}"),
                format!("{head}.count (a number of requests) or {head}.rate (a share, e.g. < 1%)"),
            )),
        };
    }
    if head == "rate" {
        return match tail {
            "achieved" => Ok(Metric::RateAchieved),
            "target" => Ok(Metric::RateTarget),
            _ => Err(lx.err(
                tail_at,
                format!("unknown field '{tail}' of rate"),
                "rate.achieved or rate.target (requests per second), e.g. rate.achieved >= 0.99 * rate.target",
            )),
        };
    }
    Err(lx.err(at, format!("unknown figure '{word}'"), METRIC_HINT))
}

/// `p99` → 0.99, `p999` → 0.999, `p99.9` → 0.999, `p5` → 0.05.
fn stat(s: &str) -> Option<Stat> {
    match s {
        "min" => return Some(Stat::Min),
        "max" => return Some(Stat::Max),
        "mean" => return Some(Stat::Mean),
        _ => {}
    }
    let digits = s.strip_prefix('p')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    // Beyond two digits only the report's own names (p999, p9999, p995…): p100 is no percentile.
    let pct: f64 = if digits.contains('.') || digits.len() <= 2 {
        digits.parse().ok()?
    } else if let Some(rest) = digits.strip_prefix("99") {
        format!("99.{rest}").parse().ok()?
    } else {
        return None;
    };
    // Rounded so that p999 is exactly 0.999, as the report's own figure.
    (pct > 0.0 && pct < 100.0).then_some(Stat::Quantile((pct * 1e6).round() / 1e8))
}

fn op(lx: &mut Lexer) -> Result<Op, ExprError> {
    let at = lx.pos;
    for (s, op) in [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if lx.eat(s) {
            return Ok(op);
        }
    }
    let hint = if lx.peek() == Some('=') {
        "write == for equality"
    } else {
        "compare with <, <=, >, >=, == or !="
    };
    Err(lx.err(at, "expected a comparison", hint))
}

fn operand(lx: &mut Lexer, lhs: Metric) -> Result<Operand, ExprError> {
    let at = lx.pos;
    if lx.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
        let m = metric(lx)?;
        same_kind(lx, at, lhs, m)?;
        return Ok(Operand::Scaled(1.0, m));
    }
    let number = lx.take(|c| c.is_ascii_digit() || c == '.' || c == 'e' || c == '-');
    let x: f64 = number
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| {
            lx.err(
                at,
                if number.is_empty() {
                    "expected a number or a figure".to_string()
                } else {
                    format!("'{number}' is not a number of zero or more")
                },
                "e.g. latency.p99 < 250ms, errors.count == 0, rejected.rate < 1%",
            )
        })?;
    let after_number = lx.pos;
    lx.skip_ws();
    if lx.eat("*") {
        lx.skip_ws();
        let m_at = lx.pos;
        let m = metric(lx)?;
        same_kind(lx, m_at, lhs, m)?;
        return Ok(Operand::Scaled(x, m));
    }
    // The unit is written right after the number (250ms, 1%, 500/s).
    lx.pos = after_number;
    let unit_at = lx.pos;
    let unit = lx.take(|c| c.is_alphabetic() || c == '%' || c == '/' || c == 'µ');
    scale(lx, lhs.kind(), x, &unit, unit_at).map(Operand::Const)
}

fn same_kind(lx: &Lexer, at: usize, lhs: Metric, rhs: Metric) -> Result<(), ExprError> {
    if lhs.kind() == rhs.kind() {
        Ok(())
    } else {
        Err(lx.err(
            at,
            "the two sides measure different things",
            "compare a time with a time, a rate with a rate, e.g. rate.achieved >= 0.99 * rate.target",
        ))
    }
}

/// The limit in the figure's base unit (µs, share, count, per second).
fn scale(lx: &Lexer, kind: Kind, x: f64, unit: &str, at: usize) -> Result<f64, ExprError> {
    let bad = |msg: String, hint: &str| Err(lx.err(at, msg, hint));
    match kind {
        Kind::Time => match unit {
            "us" | "µs" => Ok(x),
            "ms" => Ok(x * 1e3),
            "s" => Ok(x * 1e6),
            "" if x == 0.0 => Ok(0.0),
            "" => bad(
                "a time needs a unit".into(),
                "write the unit: us, ms or s, e.g. 250ms",
            ),
            _ => bad(
                format!("unknown time unit '{unit}'"),
                "use us, ms or s, e.g. 250ms",
            ),
        },
        Kind::Share => {
            let share = match unit {
                "%" => x / 100.0,
                "" => x,
                _ => {
                    return bad(
                        format!("'{unit}' is not a share"),
                        "write a share as 1% or 0.01",
                    )
                }
            };
            if share > 1.0 {
                bad(
                    format!("{x}{unit} is more than 100 %"),
                    "write a share as 1% or 0.01",
                )
            } else {
                Ok(share)
            }
        }
        Kind::Count => match unit {
            "" => Ok(x),
            _ => bad(
                format!("a count takes no unit ('{unit}')"),
                "e.g. errors.count == 0; for a share use errors.rate < 1%",
            ),
        },
        Kind::PerSecond => match unit {
            "" | "/s" => Ok(x),
            _ => bad(
                format!("'{unit}' is not a rate unit"),
                "requests per second: 500 or 500/s",
            ),
        },
    }
}

fn scope_clause(lx: &mut Lexer) -> Result<Scope, ExprError> {
    let at = lx.pos;
    if lx.eat("for") {
        lx.skip_ws();
        if !lx.eat("each") {
            return Err(lx.err(lx.pos, "expected 'each' after 'for'", "e.g. for each 1s"));
        }
        lx.skip_ws();
        let d_at = lx.pos;
        let text = lx.take(|c| c.is_ascii_alphanumeric());
        let d = humantime::parse_duration(&text).map_err(|_| {
            lx.err(
                d_at,
                format!("'{text}' is not a duration"),
                "e.g. for each 1s",
            )
        })?;
        if d.is_zero() || d.subsec_nanos() != 0 {
            return Err(lx.err(
                d_at,
                format!("windows of '{text}' are not whole seconds"),
                "windows are whole seconds (the run's snapshots come once a second), e.g. for each 1s or for each 5s",
            ));
        }
        return Ok(Scope::Each(d));
    }
    if lx.eat("stage") {
        lx.skip_ws();
        if !lx.eat("=") {
            return Err(lx.err(lx.pos, "expected '=' after 'stage'", "e.g. stage=peak"));
        }
        lx.skip_ws();
        let n_at = lx.pos;
        let name = lx.take(|c| !c.is_whitespace());
        if name.is_empty() {
            return Err(lx.err(n_at, "expected a stage name", "e.g. stage=peak"));
        }
        return Ok(Scope::Stage(name));
    }
    Err(lx.err(
        at,
        "unexpected text after the threshold",
        "a threshold may end with a scope: for each 1s, or stage=NAME",
    ))
}

/// A stage keeps a short summary: latency p50/p90/p99/p99.9/max, send-lag p99 and the counts.
fn stage_supports(lx: &Lexer, m: Metric, rhs: Operand) -> Result<(), ExprError> {
    let ok = |m: Metric| match m {
        Metric::Clock(Clock::Latency, Stat::Quantile(q)) => {
            [0.5, 0.9, 0.99, 0.999].iter().any(|x| (q - x).abs() < 1e-9)
        }
        Metric::Clock(Clock::Latency, Stat::Max) => true,
        Metric::Clock(Clock::SendLag, Stat::Quantile(q)) => (q - 0.99).abs() < 1e-9,
        Metric::Count(c) | Metric::Share(c) => !matches!(
            c,
            Counter::HttpErrors | Counter::Timeouts | Counter::Cancelled
        ),
        _ => false,
    };
    let rhs_ok = match rhs {
        Operand::Const(_) => true,
        Operand::Scaled(_, m) => ok(m),
    };
    if ok(m) && rhs_ok {
        Ok(())
    } else {
        Err(lx.err(
            0,
            "a stage keeps only latency p50/p90/p99/p999/max, send_lag.p99 and the counts of requests, ok, rejected, errors and dropped",
            "judge this figure over the whole run, or use one a stage keeps (e.g. latency.p99 < 250ms stage=peak)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_thresholds() {
        let s = Duration::from_secs(1);
        let cases: Vec<(&str, Metric, Op, Operand, Scope)> = vec![
            (
                "latency.p99 < 250ms",
                Metric::Clock(Clock::Latency, Stat::Quantile(0.99)),
                Op::Lt,
                Operand::Const(250_000.0),
                Scope::Run,
            ),
            (
                "service_time.p999<1s",
                Metric::Clock(Clock::ServiceTime, Stat::Quantile(0.999)),
                Op::Lt,
                Operand::Const(1e6),
                Scope::Run,
            ),
            (
                "rejected.rate < 1%",
                Metric::Share(Counter::Rejected),
                Op::Lt,
                Operand::Const(0.01),
                Scope::Run,
            ),
            (
                "errors.count == 0",
                Metric::Count(Counter::Errors),
                Op::Eq,
                Operand::Const(0.0),
                Scope::Run,
            ),
            (
                "send_lag.p99 < 5ms",
                Metric::Clock(Clock::SendLag, Stat::Quantile(0.99)),
                Op::Lt,
                Operand::Const(5000.0),
                Scope::Run,
            ),
            (
                "rate.achieved >= 0.99 * rate.target",
                Metric::RateAchieved,
                Op::Ge,
                Operand::Scaled(0.99, Metric::RateTarget),
                Scope::Run,
            ),
            (
                "latency_ok.p99.9 <= 300us",
                Metric::Clock(Clock::LatencyOk, Stat::Quantile(0.999)),
                Op::Le,
                Operand::Const(300.0),
                Scope::Run,
            ),
            (
                "latency.p99 < 250ms stage=peak",
                Metric::Clock(Clock::Latency, Stat::Quantile(0.99)),
                Op::Lt,
                Operand::Const(250_000.0),
                Scope::Stage("peak".into()),
            ),
            (
                "errors.count == 0 for each 1s",
                Metric::Count(Counter::Errors),
                Op::Eq,
                Operand::Const(0.0),
                Scope::Each(s),
            ),
            (
                "latency.max < service_time.max",
                Metric::Clock(Clock::Latency, Stat::Max),
                Op::Lt,
                Operand::Scaled(1.0, Metric::Clock(Clock::ServiceTime, Stat::Max)),
                Scope::Run,
            ),
        ];
        for (text, metric, op, operand, scope) in cases {
            let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (t.metric, t.op, t.operand, t.scope),
                (metric, op, operand, scope),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_thresholds_say_where() {
        // (expression, 0-based column, part of the message)
        let cases = [
            ("", 0, "empty"),
            ("latency.p100 < 1s", 8, "unknown statistic"),
            ("latncy.p99 < 1s", 0, "unknown figure"),
            ("latency.p99 = 1s", 12, "expected a comparison"),
            ("latency.p99 < 250", 17, "needs a unit"),
            ("latency.p99 < 250xs", 17, "unknown time unit"),
            ("rejected.rate < 150%", 19, "more than 100"),
            ("errors.count == 0ms", 17, "takes no unit"),
            ("errors.total == 0", 7, "unknown field"),
            (
                "rate.achieved >= 0.99 * latency.p99",
                24,
                "different things",
            ),
            ("latency.p99 < 1s for 1s", 21, "expected 'each'"),
            ("latency.p99 < 1s for each 500ms", 26, "whole seconds"),
            ("latency.p99 < 1s banana", 17, "unexpected text"),
            ("latency.p99 < -3ms", 14, "not a number"),
            ("latency.p99 < 1s stage=a for each 1s", 25, "one scope"),
            ("latency.p95 < 1s stage=peak", 0, "a stage keeps"),
        ];
        for (text, column, needle) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.column, column, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
            assert!(e.to_string().contains("hint:"), "{e}");
        }
    }

    #[test]
    fn percentile_names() {
        let q = |s: &str| match stat(s) {
            Some(Stat::Quantile(q)) => q,
            other => panic!("{s}: {other:?}"),
        };
        assert!((q("p50") - 0.5).abs() < 1e-12);
        assert!((q("p999") - 0.999).abs() < 1e-12);
        assert!((q("p9999") - 0.9999).abs() < 1e-12);
        assert!((q("p99.9") - 0.999).abs() < 1e-12);
        assert!((q("p5") - 0.05).abs() < 1e-12);
        assert_eq!(stat("p0"), None);
        assert_eq!(stat("px"), None);
    }
}
