//! The retry policy as the user wrote it, and its pure math: which outcomes are retried, how
//! long to wait before the next attempt (backoff, jitter, `Retry-After`), and the limits
//! (attempts, deadline, pending queue). Budget and breaker settings are parsed here too; their
//! state lives in [`super::budget`] and [`super::breaker`].
//!
//! One grammar for both front-ends: `--retry 'on=rejected,timeout attempts=4 backoff=exp:100ms..5s
//! jitter=full budget=10% retry_after=honour'` on the command line, and the same keys in a
//! profile's `[retry]` table (see docs/retry-storms.md).

use std::time::{Duration, SystemTime};

use crate::record::Class;
use crate::schedule::Rng;

/// Most attempts per logical request (first included).
pub const MAX_ATTEMPTS: u32 = 100;
/// Longest delay, Retry-After cap, window, cool-down or deadline accepted: a day.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);
/// Most pending retries a run may hold.
pub const MAX_QUEUE: usize = 10_000_000;
/// Default bound on pending retries.
pub const DEFAULT_QUEUE: usize = 100_000;

/// A mistake in a retry or recovery setting: which key, what was wrong, how to write it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}={value}: {reason}")]
pub struct SettingError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

impl SettingError {
    pub fn new(key: &str, value: &str, reason: impl Into<String>) -> Self {
        SettingError {
            key: key.to_string(),
            value: crate::error::clip(value).into_owned(),
            reason: reason.into(),
        }
    }
}

/// Which outcomes are retried: by class, and by status code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryOn {
    pub rejected: bool,
    pub timeout: bool,
    pub connect: bool,
    pub transport: bool,
    /// Any other error status (`http_error`).
    pub error: bool,
    /// Statuses retried whatever their class.
    pub statuses: Vec<u16>,
    /// gRPC status codes retried whatever their class (`grpc:UNAVAILABLE`, `grpc:14`).
    pub grpc: Vec<crate::grpc::Code>,
}

impl Default for RetryOn {
    fn default() -> Self {
        RetryOn {
            rejected: true,
            timeout: true,
            connect: true,
            transport: true,
            error: false,
            statuses: Vec::new(),
            grpc: Vec::new(),
        }
    }
}

impl RetryOn {
    fn parse(v: &str) -> Result<Self, String> {
        let mut on = RetryOn {
            rejected: false,
            timeout: false,
            connect: false,
            transport: false,
            error: false,
            statuses: Vec::new(),
            grpc: Vec::new(),
        };
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "rejected" => on.rejected = true,
                "timeout" => on.timeout = true,
                "connect" | "connect_error" => on.connect = true,
                "transport" | "transport_error" => on.transport = true,
                "error" | "http_error" => on.error = true,
                g if g.starts_with("grpc:") => match crate::grpc::Code::parse(&g[5..]) {
                    Some(crate::grpc::Code::OK) => {
                        return Err("grpc:OK is a success: only failures are retried".to_string())
                    }
                    Some(c) => on.grpc.push(c),
                    None => {
                        return Err(format!(
                            "unknown gRPC status '{}' (give grpc:NAME or grpc:NUMBER, e.g. grpc:UNAVAILABLE or grpc:14)",
                            crate::error::clip(&g[5..])
                        ))
                    }
                },
                code => match code.parse::<u16>() {
                    Ok(c) if (400..=599).contains(&c) => on.statuses.push(c),
                    Ok(c) if (100..=399).contains(&c) => {
                        return Err(format!(
                            "status {c} is not a failure: only 4xx and 5xx statuses are retried"
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "unknown outcome '{}' (give rejected, timeout, connect, transport, error or status codes such as 503, comma-separated)",
                            crate::error::clip(code)
                        ))
                    }
                },
            }
        }
        if !on.any() {
            return Err("retries nothing (give rejected, timeout, connect, transport, error or status codes, e.g. on=rejected,timeout)".to_string());
        }
        Ok(on)
    }

    fn any(&self) -> bool {
        self.rejected
            || self.timeout
            || self.connect
            || self.transport
            || self.error
            || !self.statuses.is_empty()
            || !self.grpc.is_empty()
    }

    /// Whether an attempt that ended with `class` (and `status`, 0 if none) is retried.
    pub fn covers(&self, class: Class, status: u16) -> bool {
        self.covers_coded(class, status, None)
    }

    /// [`RetryOn::covers`], for an answer that may carry a gRPC status too. A gRPC answer's
    /// class already follows its code (UNAVAILABLE is `rejected` by default), so `on=rejected`
    /// covers shed gRPC calls; `grpc:CODE` names codes one by one.
    pub fn covers_coded(&self, class: Class, status: u16, grpc: Option<crate::grpc::Code>) -> bool {
        if grpc.is_some_and(|c| self.grpc.contains(&c)) {
            return true;
        }
        if grpc.is_none() && status != 0 && self.statuses.contains(&status) {
            return true;
        }
        match class {
            Class::Rejected => self.rejected,
            Class::Timeout => self.timeout,
            Class::ConnectError => self.connect,
            Class::TransportError => self.transport,
            Class::HttpError => self.error,
            Class::Ok | Class::LocalError | Class::Cancelled => false,
        }
    }

    /// How it reads in reports: `rejected,timeout,503`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = [
            (self.rejected, "rejected"),
            (self.timeout, "timeout"),
            (self.connect, "connect"),
            (self.transport, "transport"),
            (self.error, "error"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect();
        parts.extend(self.statuses.iter().map(u16::to_string));
        parts.extend(self.grpc.iter().map(|c| format!("grpc:{}", c.name())));
        parts.join(",")
    }
}

/// The wait before retry number `n` (1-based), before jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backoff {
    /// Retry at once.
    Immediate,
    Fixed(Duration),
    /// `base × multiplier^(n−1)`, at most `cap`.
    Exponential {
        base: Duration,
        cap: Duration,
        multiplier: f64,
    },
}

impl Backoff {
    fn parse(v: &str) -> Result<Self, String> {
        let hint = "give none (immediate), fixed:200ms, or exp:100ms..5s (base..cap)";
        let v = v.trim();
        if v == "none" || v == "immediate" || v == "0" {
            return Ok(Backoff::Immediate);
        }
        if let Some(d) = v.strip_prefix("fixed:") {
            return Ok(Backoff::Fixed(delay(d, hint)?));
        }
        if let Some(r) = v
            .strip_prefix("exp:")
            .or_else(|| v.strip_prefix("exponential:"))
        {
            let (base, cap) = match r.split_once("..") {
                Some((b, c)) => (delay(b, hint)?, delay(c, hint)?),
                // No cap: the default policy's 10 s, or the base itself when that is longer.
                None => {
                    let base = delay(r, hint)?;
                    (base, base.max(Duration::from_secs(10)))
                }
            };
            if base.is_zero() {
                return Err(format!("the base must be above zero ({hint})"));
            }
            if cap < base {
                return Err(format!("the cap is below the base ({hint})"));
            }
            return Ok(Backoff::Exponential {
                base,
                cap,
                multiplier: 2.0,
            });
        }
        Err(format!("unknown backoff ({hint})"))
    }

    /// The delay before retry `n` (1-based), before jitter.
    pub fn delay(&self, n: u32) -> Duration {
        match *self {
            Backoff::Immediate => Duration::ZERO,
            Backoff::Fixed(d) => d,
            Backoff::Exponential {
                base,
                cap,
                multiplier,
            } => {
                let exp = multiplier.powi(i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX));
                let secs = base.as_secs_f64() * exp;
                Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
            }
        }
    }

    /// The smallest and largest delays (for decorrelated jitter).
    fn bounds(&self) -> (Duration, Duration) {
        match *self {
            Backoff::Immediate => (Duration::ZERO, Duration::ZERO),
            Backoff::Fixed(d) => (d, d),
            Backoff::Exponential { base, cap, .. } => (base, cap),
        }
    }

    fn describe(&self) -> String {
        match *self {
            Backoff::Immediate => "immediate".to_string(),
            Backoff::Fixed(d) => format!("fixed:{}", fmt(d)),
            Backoff::Exponential {
                base,
                cap,
                multiplier,
            } => format!("exp:{}..{} ×{multiplier}", fmt(base), fmt(cap)),
        }
    }
}

/// Randomisation of the backoff, so clients that failed together do not retry together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// `d/2` plus uniform in `[0, d/2]`.
    Equal,
    /// Uniform in `[base, 3 × previous]`, at most the cap (AWS's "decorrelated jitter").
    Decorrelated,
}

impl Jitter {
    fn parse(v: &str) -> Result<Self, String> {
        match v.trim() {
            "none" => Ok(Jitter::None),
            "full" => Ok(Jitter::Full),
            "equal" => Ok(Jitter::Equal),
            "decorrelated" => Ok(Jitter::Decorrelated),
            _ => Err("unknown jitter (give none, full, equal or decorrelated)".to_string()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
        }
    }
}

/// Whether a server's `Retry-After` (or gRPC pushback) is obeyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    Ignore,
    /// Wait at least what the server asked, up to `cap`.
    Honour {
        cap: Duration,
    },
}

/// Retries allowed as a share of first attempts over a sliding window, plus a floor per second
/// (the classic client-side retry budget).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetSpec {
    /// Retries per first attempt, in [0, 1].
    pub ratio: f64,
    /// Retries per second always allowed.
    pub min_per_sec: f64,
    pub window: Duration,
}

/// A client circuit breaker: opens when the failure ratio over a sliding window reaches `ratio`
/// (with at least `min_volume` attempts in it), fails fast while open, and after `cooldown` lets
/// `probes` attempts through (half-open): all succeed → closed, one fails → open again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSpec {
    pub ratio: f64,
    pub window: Duration,
    pub min_volume: u64,
    pub cooldown: Duration,
    pub probes: u32,
}

/// A client retry policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub on: RetryOn,
    /// Most attempts per logical request, the first included (1: no retries).
    pub attempts: u32,
    pub backoff: Backoff,
    pub jitter: Jitter,
    pub retry_after: RetryAfter,
    pub budget: Option<BudgetSpec>,
    /// Give up when the next attempt would start later than this after the first one's intended
    /// start.
    pub deadline: Option<Duration>,
    /// Most retries waiting for their due time; beyond, the request gives up (counted).
    pub queue: usize,
    pub breaker: Option<BreakerSpec>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            on: RetryOn::default(),
            attempts: 3,
            backoff: Backoff::Exponential {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(10),
                multiplier: 2.0,
            },
            jitter: Jitter::Full,
            retry_after: RetryAfter::Honour {
                cap: Duration::from_secs(60),
            },
            budget: None,
            deadline: None,
            queue: DEFAULT_QUEUE,
            breaker: None,
        }
    }
}

/// Every key the grammar knows, for "did you mean" and the error hint.
pub const KEYS: &[&str] = &[
    "on",
    "attempts",
    "backoff",
    "multiplier",
    "jitter",
    "retry_after",
    "retry_after_max",
    "budget",
    "budget_min",
    "budget_window",
    "deadline",
    "queue",
    "breaker",
    "breaker_window",
    "breaker_min",
    "breaker_cooldown",
    "breaker_probes",
];

impl Policy {
    /// Parses `key=value` pairs separated by spaces (`--retry`). `none` alone means no policy.
    pub fn parse(spec: &str) -> Result<Option<Policy>, SettingError> {
        let spec = spec.trim();
        if spec == "none" || spec == "off" {
            return Ok(None);
        }
        let pairs = split_pairs(spec)?;
        Policy::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map(Some)
    }

    /// Builds a policy from `(key, value)` pairs (the command line's or a profile table's).
    /// A key given twice is refused (the second would silently win); settings are checked
    /// together at the end.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Policy, SettingError> {
        let mut p = Policy::default();
        let mut multiplier = None;
        let mut budget_ratio = None;
        let mut budget_min = None;
        let mut budget_window = None;
        let mut retry_after = Some(true);
        let mut retry_after_max = None;
        let mut breaker_ratio = None;
        let mut breaker = BreakerSpec {
            ratio: 0.5,
            window: Duration::from_secs(10),
            min_volume: 20,
            cooldown: Duration::from_secs(5),
            probes: 1,
        };
        let mut breaker_keys = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in pairs {
            let err = |reason: String| SettingError::new(key, value, reason);
            let v = value.trim();
            if seen.contains(&key) {
                return Err(err(format!(
                    "{key} is given twice (give each setting once; for several outcomes: on=rejected,timeout)"
                )));
            }
            seen.push(key);
            match key {
                "on" => p.on = RetryOn::parse(v).map_err(err)?,
                "attempts" => p.attempts = attempts(v).map_err(err)?,
                "backoff" => p.backoff = Backoff::parse(v).map_err(err)?,
                "multiplier" => {
                    multiplier = Some(number_at_least(v, 1.0, "1 (e.g. 2)").map_err(err)?)
                }
                "jitter" => p.jitter = Jitter::parse(v).map_err(err)?,
                "retry_after" => {
                    retry_after = Some(match v {
                        "honour" | "honor" | "yes" | "true" => true,
                        "ignore" | "no" | "false" => false,
                        _ => return Err(err("give honour or ignore".to_string())),
                    })
                }
                "retry_after_max" => retry_after_max = Some(delay(v, "e.g. 30s").map_err(err)?),
                "budget" => {
                    budget_ratio = match v {
                        "none" | "off" => Some(None),
                        _ => Some(Some(share(v).map_err(err)?)),
                    }
                }
                "budget_min" => budget_min = Some(per_second(v).map_err(err)?),
                "budget_window" => budget_window = Some(window(v).map_err(err)?),
                "deadline" => p.deadline = Some(window(v).map_err(err)?),
                "queue" => p.queue = queue(v).map_err(err)?,
                "breaker" => {
                    breaker_ratio = match v {
                        "none" | "off" => Some(None),
                        _ => Some(Some(share(v).and_then(nonzero_share).map_err(err)?)),
                    }
                }
                "breaker_window" => {
                    breaker.window = window(v).map_err(err)?;
                    breaker_keys.push(key);
                }
                "breaker_min" => {
                    breaker.min_volume = whole(v, 1, 1_000_000_000).map_err(err)?;
                    breaker_keys.push(key);
                }
                "breaker_cooldown" => {
                    breaker.cooldown = window(v).map_err(err)?;
                    breaker_keys.push(key);
                }
                "breaker_probes" => {
                    breaker.probes = whole(v, 1, 1_000_000).map_err(err)? as u32;
                    breaker_keys.push(key);
                }
                _ => {
                    let hint = crate::profile::suggest(key, KEYS.iter().copied())
                        .map(|k| format!("did you mean {k}? "))
                        .unwrap_or_default();
                    return Err(SettingError::new(
                        key,
                        value,
                        format!("unknown retry setting ({hint}known: {})", KEYS.join(", ")),
                    ));
                }
            }
        }
        if let Some(m) = multiplier {
            match &mut p.backoff {
                Backoff::Exponential { multiplier, .. } => *multiplier = m,
                _ => {
                    return Err(SettingError::new(
                        "multiplier",
                        &m.to_string(),
                        "only exponential backoff has a multiplier (give backoff=exp:100ms..5s)",
                    ))
                }
            }
        }
        p.retry_after = match (retry_after, retry_after_max) {
            (Some(false), Some(_)) => {
                return Err(SettingError::new(
                    "retry_after_max",
                    "",
                    "has no effect with retry_after=ignore",
                ))
            }
            (Some(false), None) => RetryAfter::Ignore,
            (_, cap) => RetryAfter::Honour {
                cap: cap.unwrap_or(Duration::from_secs(60)),
            },
        };
        p.budget = match budget_ratio.flatten() {
            Some(ratio) => Some(BudgetSpec {
                ratio,
                min_per_sec: budget_min.unwrap_or(10.0),
                window: budget_window.unwrap_or(Duration::from_secs(10)),
            }),
            None if budget_min.is_some() || budget_window.is_some() => {
                return Err(SettingError::new(
                    if budget_min.is_some() {
                        "budget_min"
                    } else {
                        "budget_window"
                    },
                    "",
                    "needs a budget (e.g. budget=10%)",
                ))
            }
            None => None,
        };
        p.breaker = match breaker_ratio.flatten() {
            Some(ratio) => Some(BreakerSpec { ratio, ..breaker }),
            None => {
                if let Some(k) = breaker_keys.first() {
                    return Err(SettingError::new(
                        k,
                        "",
                        "needs a breaker (e.g. breaker=50%: open at a 50% failure ratio)",
                    ));
                }
                None
            }
        };
        Ok(p)
    }

    /// Whether retry number `n` (1-based) is allowed by the attempt limit.
    pub fn allows_attempt(&self, next_attempt: u16) -> bool {
        u32::from(next_attempt) < self.attempts
    }

    /// The delay before the attempt after `prev` (whose own backoff was `prev_backoff`), with
    /// jitter drawn from `rng` and the server's `Retry-After` applied.
    pub fn delay(
        &self,
        retry_number: u32,
        prev_backoff: Duration,
        retry_after: Option<Duration>,
        rng: &mut Rng,
    ) -> Duration {
        let d = self.backoff.delay(retry_number);
        let jittered = match self.jitter {
            Jitter::None => d,
            Jitter::Full => scale(d, rng.next_f64()),
            Jitter::Equal => d / 2 + scale(d / 2, rng.next_f64()),
            Jitter::Decorrelated => {
                let (base, cap) = self.backoff.bounds();
                let prev = prev_backoff.max(base);
                let hi = prev.saturating_mul(3).min(cap).max(base);
                base + scale(hi - base, rng.next_f64())
            }
        };
        match (self.retry_after, retry_after) {
            (RetryAfter::Honour { cap }, Some(ra)) => jittered.max(ra.min(cap)),
            _ => jittered,
        }
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "on={} attempts={} backoff={}",
            self.on.describe(),
            self.attempts,
            self.backoff.describe(),
        );
        if self.backoff != Backoff::Immediate {
            s += &format!(" jitter={}", self.jitter.name());
        }
        match self.retry_after {
            RetryAfter::Ignore => s += " retry_after=ignore",
            RetryAfter::Honour { cap } => s += &format!(" retry_after=honour(≤{})", fmt(cap)),
        }
        if let Some(b) = &self.budget {
            s += &format!(
                " budget={}%+{}/s over {}",
                b.ratio * 100.0,
                b.min_per_sec,
                fmt(b.window)
            );
        }
        if let Some(d) = self.deadline {
            s += &format!(" deadline={}", fmt(d));
        }
        if let Some(b) = &self.breaker {
            s += &format!(
                " breaker={}% over {} (min {}, cool-down {}, {} probe{})",
                b.ratio * 100.0,
                fmt(b.window),
                b.min_volume,
                fmt(b.cooldown),
                b.probes,
                if b.probes == 1 { "" } else { "s" }
            );
        }
        s
    }
}

/// Splits `a=1 b=2` into pairs, refusing a word without `=`.
pub fn split_pairs(spec: &str) -> Result<Vec<(String, String)>, SettingError> {
    spec.split_whitespace()
        .map(|word| match word.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(SettingError::new(
                word,
                "",
                "expected key=value pairs separated by spaces, e.g. 'on=rejected,timeout attempts=4 backoff=exp:100ms..5s'",
            )),
        })
        .collect()
}

/// `d × x` for `x` in [0, 1], without the panics of `Duration::mul_f64`.
fn scale(d: Duration, x: f64) -> Duration {
    Duration::from_nanos((d.as_nanos() as f64 * x.clamp(0.0, 1.0)) as u64)
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A non-negative duration up to [`MAX_DELAY`].
fn delay(v: &str, hint: &str) -> Result<Duration, String> {
    let v = v.trim();
    if v.starts_with('-') {
        return Err(format!("a delay cannot be negative ({hint})"));
    }
    let d = humantime::parse_duration(v).map_err(|e| format!("{e} ({hint})"))?;
    if d > MAX_DELAY {
        return Err(format!("above the limit of one day ({hint})"));
    }
    Ok(d)
}

/// A duration above zero, up to a day.
fn window(v: &str) -> Result<Duration, String> {
    let d = delay(v, "e.g. 10s")?;
    if d.is_zero() {
        return Err("must be longer than zero (e.g. 10s)".to_string());
    }
    Ok(d)
}

fn attempts(v: &str) -> Result<u32, String> {
    let n = whole(v, 1, u64::from(MAX_ATTEMPTS))?;
    Ok(n as u32)
}

fn queue(v: &str) -> Result<usize, String> {
    Ok(whole(v, 1, MAX_QUEUE as u64)? as usize)
}

fn whole(v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {lo} to {hi}")),
    }
}

fn number_at_least(v: &str, lo: f64, hint: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= lo && x <= 1000.0 => Ok(x),
        _ => Err(format!("expected a number from {hint} up to 1000")),
    }
}

/// `10%` or `0.1`, in [0, 1].
pub fn share(v: &str) -> Result<f64, String> {
    let v = v.trim();
    let (num, div) = match v.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (v, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=1.0).contains(&(x / div)) => Ok(x / div),
        _ => Err(
            "expected a share from 0 to 1, or a percentage from 0% to 100% (e.g. 10%)".to_string(),
        ),
    }
}

fn nonzero_share(x: f64) -> Result<f64, String> {
    if x > 0.0 {
        Ok(x)
    } else {
        Err("must be above 0% (e.g. 50%)".to_string())
    }
}

/// `10`, `10/s`, `600/m`: a non-negative rate per second.
fn per_second(v: &str) -> Result<f64, String> {
    let v = v.trim();
    let (num, per) = match v.split_once('/') {
        Some((n, "s")) => (n, 1.0),
        Some((n, "m")) => (n, 60.0),
        Some((n, "h")) => (n, 3600.0),
        Some(_) => return Err("expected a rate such as 10/s".to_string()),
        None => (v, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=1e9).contains(&x) => Ok(x / per),
        _ => Err("expected a rate from 0 such as 10/s".to_string()),
    }
}

/// A `Retry-After` header value: delta-seconds (`120`) or an HTTP-date, as a wait from `now`.
/// A date in the past is no wait; anything else is ignored (`None`), as RFC 9110 asks.
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate at the cap later, not here.
        let secs = text
            .parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(MAX_DELAY.as_secs());
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_DELAY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy(spec: &str) -> Policy {
        Policy::parse(spec).unwrap().unwrap()
    }

    #[test]
    fn exponential_backoff_sequence_and_cap() {
        let p = policy("backoff=exp:100ms..1s jitter=none");
        let seq: Vec<_> = (1..=6).map(|n| p.backoff.delay(n)).collect();
        assert_eq!(
            seq,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        let p = policy("backoff=exp:10ms..10s multiplier=3 jitter=none");
        assert_eq!(p.backoff.delay(3), ms(90));
        // Huge exponents saturate at the cap instead of overflowing.
        assert_eq!(p.backoff.delay(10_000), Duration::from_secs(10));
        assert_eq!(policy("backoff=fixed:250ms").backoff.delay(7), ms(250));
        assert_eq!(policy("backoff=none").backoff.delay(3), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_in_its_bounds() {
        let mut rng = Rng::new(7);
        let table = [
            ("jitter=none", 400, 400),
            ("jitter=full", 0, 400),
            ("jitter=equal", 200, 400),
        ];
        for (j, lo, hi) in table {
            let p = policy(&format!("backoff=exp:100ms..10s {j}"));
            let mut seen = (u128::MAX, 0);
            for _ in 0..2000 {
                let d = p.delay(3, Duration::ZERO, None, &mut rng).as_millis();
                assert!((lo..=hi).contains(&d), "{j}: {d}");
                seen = (seen.0.min(d), seen.1.max(d));
            }
            if lo != hi {
                // The draws cover the range, not one corner of it.
                assert!(
                    seen.0 < lo + (hi - lo) / 10 && seen.1 > hi - (hi - lo) / 10,
                    "{j}: {seen:?}"
                );
            }
        }
        let p = policy("backoff=exp:100ms..1s jitter=decorrelated");
        for prev in [0, 100, 200, 500, 5000] {
            for _ in 0..500 {
                let d = p.delay(2, ms(prev), None, &mut rng);
                let hi = (prev.max(100) * 3).min(1000);
                assert!(d >= ms(100) && d <= ms(hi), "prev {prev}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_after_is_a_floor_up_to_its_cap() {
        let mut rng = Rng::new(1);
        let p = policy("backoff=fixed:100ms jitter=none retry_after_max=5s");
        assert_eq!(p.delay(1, ms(0), Some(ms(2000)), &mut rng), ms(2000));
        assert_eq!(p.delay(1, ms(0), Some(ms(50)), &mut rng), ms(100));
        assert_eq!(p.delay(1, ms(0), Some(ms(60_000)), &mut rng), ms(5000));
        let p = policy("backoff=fixed:100ms jitter=none retry_after=ignore");
        assert_eq!(p.delay(1, ms(0), Some(ms(2000)), &mut rng), ms(100));
    }

    #[test]
    fn retry_after_header_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let table: [(&[u8], Option<u64>); 9] = [
            (b"120", Some(120)),
            (b" 3 ", Some(3)),
            (b"0", Some(0)),
            (b"Sun, 06 Nov 1994 08:49:47 GMT", Some(10)),
            (b"Sunday, 06-Nov-94 08:50:37 GMT", Some(60)),
            (b"Sun Nov  6 08:49:57 1994", Some(20)),
            (b"Sun, 06 Nov 1994 08:40:00 GMT", Some(0)),
            (b"-5", None),
            (b"soon", None),
        ];
        for (v, want) in table {
            let got = parse_retry_after(v, now).map(|d| d.as_secs());
            assert_eq!(got, want, "{}", String::from_utf8_lossy(v));
        }
        assert_eq!(parse_retry_after(b"\xff", now), None);
        assert_eq!(
            parse_retry_after(b"99999999999999999999999", now),
            Some(MAX_DELAY)
        );
    }

    #[test]
    fn what_is_retried() {
        let p = policy("on=rejected,timeout,500");
        assert!(p.on.covers(Class::Rejected, 503));
        assert!(p.on.covers(Class::Timeout, 0));
        assert!(p.on.covers(Class::HttpError, 500));
        assert!(!p.on.covers(Class::HttpError, 404));
        assert!(!p.on.covers(Class::Ok, 200));
        assert!(!p.on.covers(Class::ConnectError, 0));
        assert!(!p.on.covers(Class::LocalError, 0));
        let g = policy("on=grpc:unavailable,grpc:13");
        let (ua, internal) = (crate::grpc::Code::UNAVAILABLE, crate::grpc::Code::INTERNAL);
        assert!(g.on.covers_coded(Class::Rejected, 200, Some(ua)));
        assert!(g.on.covers_coded(Class::HttpError, 200, Some(internal)));
        assert!(!g
            .on
            .covers_coded(Class::HttpError, 200, Some(crate::grpc::Code::NOT_FOUND)));
        assert_eq!(g.on.describe(), "grpc:UNAVAILABLE,grpc:INTERNAL");
        assert!(crate::retry::Policy::parse("on=grpc:NOPE").is_err());
        assert_eq!(p.on.describe(), "rejected,timeout,500");
        assert!(
            p.allows_attempt(2) && !p.allows_attempt(3),
            "3 attempts by default"
        );
    }

    #[test]
    fn a_full_spec_parses() {
        let p = policy("on=rejected attempts=4 backoff=exp:100ms..5s jitter=full budget=10% retry_after=honour deadline=30s queue=500 breaker=50% breaker_min=10 breaker_cooldown=2s");
        assert_eq!(p.attempts, 4);
        assert_eq!(p.budget.unwrap().ratio, 0.1);
        assert_eq!(p.budget.unwrap().min_per_sec, 10.0);
        assert_eq!(p.deadline, Some(Duration::from_secs(30)));
        assert_eq!(p.queue, 500);
        let b = p.breaker.unwrap();
        assert_eq!(
            (b.ratio, b.min_volume, b.cooldown),
            (0.5, 10, Duration::from_secs(2))
        );
        assert!(Policy::parse("none").unwrap().is_none());
        assert!(p.describe().contains("budget=10%"));
    }

    #[test]
    fn bad_settings_say_which_and_how() {
        let table = [
            ("backoff=fixed:-1s", "backoff", "negative"),
            ("backoff=exp:1s..100ms", "backoff", "cap is below"),
            ("backoff=exp:0s..1s", "backoff", "above zero"),
            ("backoff=linear", "backoff", "unknown backoff"),
            ("multiplier=0.5", "multiplier", "from 1"),
            (
                "backoff=fixed:1s multiplier=2",
                "multiplier",
                "only exponential",
            ),
            ("budget=1.5", "budget", "share from 0 to 1"),
            ("budget=-10%", "budget", "share"),
            ("attempts=0", "attempts", "from 1 to 100"),
            ("on=rejected,bogus", "on", "unknown outcome 'bogus'"),
            ("on=", "on", "retries nothing"),
            ("jitter=some", "jitter", "unknown jitter"),
            ("atempts=3", "atempts", "did you mean attempts"),
            ("attempts", "attempts", "key=value"),
            ("retry_after=maybe", "retry_after", "honour or ignore"),
            ("budget_min=5/s", "budget_min", "needs a budget"),
            ("breaker_min=5", "breaker_min", "needs a breaker"),
            ("breaker=0%", "breaker", "above 0%"),
            ("deadline=0s", "deadline", "longer than zero"),
            ("queue=0", "queue", "from 1"),
            ("backoff=fixed:2d", "backoff", "one day"),
            ("on=200", "on", "not a failure"),
            ("on=rejected,302", "on", "not a failure"),
            ("on=999", "on", "unknown outcome"),
            ("on=grpc:OK", "on", "success"),
            ("on=rejected on=timeout", "on", "given twice"),
        ];
        for (spec, key, words) in table {
            let e = Policy::parse(spec).unwrap_err();
            assert_eq!(e.key, key, "{spec}");
            assert!(e.to_string().contains(words), "{spec}: {e}");
        }
    }
}
