//! Human-readable views: the progress line (one per snapshot) and the final summary.

use std::fmt::Write;

use super::{Report, Stats};
use crate::record::{Ending, Snapshot, Tickets};

/// `850µs`, `12.35ms`, `1.802s`: whole microseconds, milliseconds with two decimals, seconds with
/// three; the unit chosen by size.
pub fn format_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.3}s", us as f64 / 1e6)
    }
}

/// One line per snapshot on stderr: what was sent and how it went in the last interval (rates
/// per second whatever the interval's length).
pub fn progress_line(snap: &Snapshot, prev: &Tickets) -> String {
    let w = &snap.interval;
    let c = &w.counts;
    let rej = if c.completed > 0 {
        100.0 * c.rejected as f64 / c.completed as f64
    } else {
        0.0
    };
    let q = |h: &hdrhistogram::Histogram<u64>, p: f64| {
        if h.is_empty() {
            "-".to_string()
        } else {
            format_us(h.value_at_quantile(p))
        }
    };
    let target = if snap.target_rate.is_finite() {
        format!("{:.0}/s", snap.target_rate)
    } else {
        "max".to_string()
    };
    let secs = snap.interval_len.as_secs_f64().max(1e-3);
    let sent = snap.tickets.sent.saturating_sub(prev.sent) as f64 / secs;
    let stage = snap
        .stage
        .as_deref()
        .map(|s| format!("{s} "))
        .unwrap_or_default();
    let k = &snap.connections;
    let mut line = format!(
        "[{:>4}s] {stage}target {target} sent {sent:.0}/s ok {} rej {:.1}% err {} | latency p50 {} p99 {} | send-lag p99 {} | conns {} (opened {}, peak {}",
        snap.at.as_secs(),
        c.ok,
        rej,
        c.errors(),
        q(&w.clocks.latency, 0.5),
        q(&w.clocks.latency, 0.99),
        q(&w.clocks.send_lag, 0.99),
        k.open,
        k.opened,
        k.peak_open,
    );
    if k.closed_by_peer + k.reconnects > 0 {
        let _ = write!(
            line,
            ", closed by peer {}, reconnects {}",
            k.closed_by_peer, k.reconnects
        );
    }
    line.push(')');
    if let Some(r) = &snap.retry {
        let t = &snap.tickets;
        let retries = t.sent_retries.saturating_sub(prev.sent_retries) as f64;
        let sent = t.sent.saturating_sub(prev.sent) as f64;
        let logical = t.scheduled.saturating_sub(t.retries) as f64
            - prev.scheduled.saturating_sub(prev.retries) as f64;
        let amp = if logical > 0.0 {
            format!("×{:.2}", sent / logical)
        } else {
            "-".to_string()
        };
        let _ = write!(
            line,
            " | retries {:.0}/s amplification {amp}, pending {}, gave up {}",
            retries / secs,
            r.pending,
            r.gave_up
        );
        if r.short_circuited > 0 {
            let _ = write!(line, ", short-circuited {}", r.short_circuited);
        }
    }
    let st = &snap.steering;
    if st.paused {
        line.push_str(" | PAUSED");
    } else if st.factor != 1.0 && st.changes > 0 {
        let _ = write!(line, " | rate ×{:.2}", st.factor);
    }
    let dropped = snap.tickets.dropped.saturating_sub(prev.dropped);
    if dropped > 0 {
        let _ = write!(line, " | DROPPED {dropped}");
    }
    line
}

/// What the retry policy did, and how the logical requests ended.
fn retries(s: &mut String, r: &Report) {
    let Some(x) = &r.retry else { return };
    let l = &x.logical;
    let g = &l.gave_up;
    let _ = writeln!(s);
    let _ = writeln!(s, "  retry      {}", x.policy);
    let _ = writeln!(
        s,
        "  attempts   first {}, retries {} (rejected {}, timeout {}, connect {}, transport {}, error {}): amplification ×{:.2} overall, ×{:.2} at peak; offered {:.1}/s for a target of {}",
        x.first_attempts,
        x.retries,
        x.retries_by_reason.rejected,
        x.retries_by_reason.timeout,
        x.retries_by_reason.connect_error,
        x.retries_by_reason.transport_error,
        x.retries_by_reason.http_error,
        x.amplification,
        x.peak_amplification,
        r.rate.offered,
        r.rate.target.map_or("-".to_string(), |t| format!("{t:.1}/s"))
    );
    let _ = writeln!(
        s,
        "  logical    {} requests: succeeded {} first try + {} after retries ({}), failed {}, gave up {} (attempts {}, budget {}, deadline {}, queue full {}), short-circuited {}, unfinished {}, dropped {}",
        l.started,
        l.succeeded_first_try,
        l.succeeded_after_retry,
        pct(l.succeeded_first_try + l.succeeded_after_retry, l.ended),
        l.failed,
        g.attempts_exhausted + g.budget + g.deadline + g.queue_full,
        g.attempts_exhausted,
        g.budget,
        g.deadline,
        g.queue_full,
        l.short_circuited,
        l.unfinished,
        l.dropped
    );
    let e = &x.end_to_end_us;
    let _ = writeln!(
        s,
        "  end-to-end p50 {} p99 {} p99.9 {} max {} (first attempt's intended start to final outcome)",
        format_us(e.p50),
        format_us(e.p99),
        format_us(e.p999),
        format_us(e.max)
    );
    if let Some(b) = &x.breaker {
        let _ = writeln!(
            s,
            "  breaker    opened {} times, {} probes, closed again {} times",
            b.opened, b.probes, b.closed
        );
    }
}

/// Whether the target recovered (shown with a retry policy, a recovery setting, or a degraded
/// run of several stages).
fn recovery(s: &mut String, r: &Report) {
    let x = &r.recovery;
    let shown = r.retry.is_some() || x.trigger_end_s.is_some() || x.status != "never_degraded";
    if !shown {
        return;
    }
    let rule = format!(
        "success ratio ≥ {:.1}% for {}s",
        x.threshold * 100.0,
        x.hold_s
    );
    let from = match x.trigger_end_s {
        Some(t) => format!("after the trigger ended at {t:.1}s"),
        None => "after it degraded".to_string(),
    };
    let line = match (
        x.status,
        x.degraded_at_s,
        x.recovered_at_s,
        x.recovery_time_s,
    ) {
        ("never_degraded", ..) => format!("never degraded ({rule})"),
        ("recovered", Some(d), Some(at), Some(t)) => format!(
            "degraded at {d:.0}s; {from}, recovered at {at:.0}s: recovery time {t:.1}s ({rule})"
        ),
        ("unconfirmed", Some(d), Some(at), _) => format!(
            "degraded at {d:.0}s; {from}, back above the threshold at {at:.0}s but the schedule ended before it held for {}s: recovery UNCONFIRMED ({rule})",
            x.hold_s
        ),
        ("not_judged", Some(d), ..) => format!(
            "degraded at {d:.0}s; NOT JUDGED: the run ended before the trigger did ({rule})"
        ),
        (_, Some(d), ..) => format!(
            "degraded at {d:.0}s and DID NOT RECOVER {from} by the end of the schedule ({rule})"
        ),
        _ => format!("not judged ({rule})"),
    };
    let _ = writeln!(s, "  recovery   {line}");
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "0.0%".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

/// Latency p50/p99/max per outcome group, when there is more than one group.
fn by_outcome(s: &mut String, r: &Report) {
    let b = &r.latency_by_outcome_us;
    let groups = [
        ("ok", &b.ok),
        ("rejected", &b.rejected),
        ("error", &b.error),
        ("timeout", &b.timeout),
        ("cancelled", &b.cancelled),
    ];
    if groups.iter().filter(|(_, st)| st.count > 0).count() < 2 {
        return;
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {:<10} {:>9} {:>10} {:>10} {:>10}   latency by outcome",
        "outcome", "count", "p50", "p99", "max"
    );
    for (name, st) in groups.iter().filter(|(_, st)| st.count > 0) {
        let _ = writeln!(
            s,
            "  {:<10} {:>9} {:>10} {:>10} {:>10}",
            name,
            st.count,
            format_us(st.p50),
            format_us(st.p99),
            format_us(st.max)
        );
    }
}

/// One line per stage of a multi-stage profile: what it asked for and what it saw.
fn stages(s: &mut String, r: &Report) {
    let p = &r.profile;
    if !p.stages.iter().any(|st| st.results.is_some()) {
        return;
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {:<14} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "stage", "target", "done", "rej", "err", "dropped", "lat p50", "lat p99", "lag p99"
    );
    for st in &p.stages {
        let Some(x) = &st.results else { continue };
        let _ = writeln!(
            s,
            "  {:<14} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}",
            st.name.chars().take(14).collect::<String>(),
            st.target_requests,
            x.completed,
            pct(x.rejected, x.completed),
            x.errors,
            x.dropped,
            format_us(x.latency_us.p50),
            format_us(x.latency_us.p99),
            format_us(x.send_lag_p99_us)
        );
    }
}

/// The final summary. An untrustworthy run says so first, in capitals.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    warnings(&mut s, r);
    header(&mut s, r);
    counts(&mut s, r);
    clocks(&mut s, r);
    intervals(&mut s, r);
    by_outcome(&mut s, r);
    stages(&mut s, r);
    retries(&mut s, r);
    recovery(&mut s, r);
    footer(&mut s, r);
    until_confident(&mut s, r);
    thresholds(&mut s, r);
    baseline(&mut s, r);
    s
}

/// `lo–hi`, with `?` for a side the data cannot bound and `*` when not resolved.
fn interval_cell(i: Option<crate::gate::confidence::Interval>) -> String {
    let Some(i) = i else { return "-".into() };
    let b = |x: Option<u64>| x.map_or("?".to_string(), format_us);
    let mark = if i.resolved { "" } else { " *" };
    format!("{}..{}{mark}", b(i.low), b(i.high))
}

/// The 95 % interval of every percentile of the three clocks.
fn intervals(s: &mut String, r: &Report) {
    let c = &r.confidence_us;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  95% intervals (distribution-free; * = not resolved: unbounded, or wider than {:.0}% of the figure)",
        c.resolved_width * 100.0
    );
    let (l, t, g) = (c.latency.all(), c.service_time.all(), c.send_lag.all());
    for (k, (name, _)) in crate::gate::confidence::PERCENTILES.iter().enumerate() {
        let name = match *name {
            "p999" => "p99.9",
            "p9999" => "p99.99",
            other => other,
        };
        let _ = writeln!(
            s,
            "  {:<8} {:>22} {:>22} {:>22}",
            name,
            interval_cell(l[k]),
            interval_cell(t[k]),
            interval_cell(g[k])
        );
    }
}

/// Every threshold: observed (and interval), limit, pass or fail.
/// Whether `--until-confident` pinned its figure down.
fn until_confident(s: &mut String, r: &Report) {
    let Some(u) = &r.until_confident else { return };
    let interval = u.interval.map_or("no data".to_string(), |i| {
        let b = |x: Option<u64>| x.map_or("?".to_string(), format_us);
        format!("{} in {}..{}", format_us(i.value), b(i.low), b(i.high))
    });
    let _ = match (u.reached, u.reached_at_s) {
        (true, Some(at)) => writeln!(
            s,
            "  confident  {} ±{}% reached at {at:.1}s, run stopped there ({interval})",
            u.figure,
            u.within * 100.0
        ),
        (true, None) => writeln!(
            s,
            "  confident  {} ±{}% reached by the end ({interval})",
            u.figure,
            u.within * 100.0
        ),
        (false, _) => writeln!(
            s,
            "  confident  {} ±{}% NOT reached within --max-duration {}s ({interval}): run longer or at a higher rate",
            u.figure,
            u.within * 100.0,
            u.max_duration_s
        ),
    };
}

fn thresholds(s: &mut String, r: &Report) {
    let Some(v) = &r.thresholds else { return };
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  thresholds {}",
        if v.passed { "passed" } else { "FAILED" }
    );
    for j in &v.results {
        let show = |x: f64| match j.unit {
            "us" => format_us(x.max(0.0).round() as u64),
            "share" => format!("{:.2}%", x * 100.0),
            "per_second" => format!("{x:.1}/s"),
            _ => format!("{x}"),
        };
        let observed = match (j.observed, j.limit) {
            (Some(o), Some(l)) => {
                let interval = match (j.low, j.high) {
                    (None, None) => String::new(),
                    (lo, hi) => format!(
                        " [{}, {}]",
                        lo.map_or("?".into(), show),
                        hi.map_or("?".into(), show)
                    ),
                };
                let clear = if j.clear == Some(false) {
                    ", within noise of the limit"
                } else {
                    ""
                };
                format!("observed {}{interval}, limit {}{clear}", show(o), show(l))
            }
            _ => String::new(),
        };
        let windows = j
            .windows
            .as_ref()
            .map(|w| {
                let first = w
                    .first_failed_at_s
                    .map(|t| format!(", first at {t:.0}s"))
                    .unwrap_or_default();
                let pending = if w.pending > 0 {
                    format!(", {} pending before the first response", w.pending)
                } else {
                    String::new()
                };
                format!(
                    " ({} of {} windows failed{first}, {} missed{pending})",
                    w.failed, w.judged, w.missed
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {} {}  {observed}{windows}",
            if j.passed { "  pass" } else { "  FAIL" },
            j.threshold
        );
        if let Some(n) = &j.note {
            let _ = writeln!(s, "         {n}");
        }
    }
    if let Some(t) = &v.aborted_by {
        let _ = writeln!(s, "  the run was stopped early by --abort-on-fail: {t}");
    }
}

/// The comparison with `--baseline`.
fn baseline(s: &mut String, r: &Report) {
    let Some(c) = &r.baseline else { return };
    let _ = writeln!(s);
    s.push_str(&crate::gate::compare::render(c));
}

/// What must be read first: an untrustworthy verdict, an internal error, a run that only failed.
fn warnings(s: &mut String, r: &Report) {
    let v = &r.verdict;
    if !v.trustworthy {
        let _ = writeln!(
            s,
            "!! UNTRUSTWORTHY MEASUREMENT: the generator did not keep its schedule !!"
        );
        for reason in &v.reasons {
            let _ = writeln!(s, "!!   - {reason}");
        }
        let _ = writeln!(s);
    }
    if r.ending == Ending::InternalError {
        let _ = writeln!(
            s,
            "!! INTERNAL ERROR: a task of metronome panicked; the report below is incomplete !!"
        );
    }
    let c = &r.counts;
    if c.completed > 0 && c.ok + c.rejected + c.http_error == 0 {
        let top = r
            .errors
            .first()
            .map(|e| format!(": {} ×{}", e.message, e.count))
            .unwrap_or_default();
        let _ = writeln!(s, "!! EVERY REQUEST FAILED{top}");
        let _ = writeln!(s);
    }
}

/// Target, connections, the shape, arrivals, the request mix and the rates.
fn header(s: &mut String, r: &Report) {
    let k = &r.connections;
    let _ = writeln!(
        s,
        "metronome {}: {} {} ({}, {} connections warm, up to {}; {} workers used)",
        r.tool.version,
        r.method,
        r.target,
        r.protocol.name(),
        k.warm,
        k.max,
        r.settings.concurrency
    );
    let p = &r.profile;
    let _ = writeln!(
        s,
        "  profile    {} for {:.3}s ({:?})",
        p.shape, r.duration_s, r.ending
    );
    if p.arrivals == "poisson" || p.requests.len() > 1 {
        let _ = writeln!(
            s,
            "  arrivals   {}, seed {} (--seed {} repeats this run's schedule)",
            p.arrivals, p.seed, p.seed
        );
    }
    if p.requests.len() > 1 {
        let mix: Vec<String> = p
            .requests
            .iter()
            .map(|q| {
                let n = q.name.as_deref().unwrap_or("");
                format!("{n} {} {} ×{}", q.method, q.path, q.weight)
                    .trim()
                    .to_string()
            })
            .collect();
        let _ = writeln!(s, "  requests   {}", mix.join("; "));
    }
    let _ = match r.rate.target {
        Some(t) => writeln!(
            s,
            "  rate       target {t:.1}/s, achieved {:.1}/s",
            r.rate.achieved
        ),
        None => writeln!(
            s,
            "  rate       achieved {:.1}/s (closed loop: no target; latency here is service time and hides queueing, use a fixed --rate to measure latency)",
            r.rate.achieved
        ),
    };
    steering(s, r);
}

/// Pauses and rate changes, when there were any: the rates above exclude the paused time.
fn steering(s: &mut String, r: &Report) {
    let c = &r.control;
    if c.changes.is_empty() {
        return;
    }
    let list: Vec<String> = c
        .changes
        .iter()
        .map(|x| match x.action {
            crate::control::Action::Rate => {
                format!("{:.1}s rate ×{:.2}", x.at_s, x.rate_factor)
            }
            a => format!("{:.1}s {a:?}", x.at_s).to_lowercase(),
        })
        .collect();
    let _ = writeln!(
        s,
        "  steering   paused {} time(s) for {:.3}s (excluded from the schedule and the rates), rate ×{:.2} at the end; {}",
        c.pauses,
        c.paused_s,
        c.rate_factor,
        list.join(", ")
    );
}

/// Requests by fate and outcome, connections, the error sample and status codes.
fn counts(s: &mut String, r: &Report) {
    let c = &r.counts;
    let _ = writeln!(
        s,
        "  requests   scheduled {}, sent {}, completed {}, dropped {}, cancelled {}, unsent at stop {}{}",
        c.scheduled,
        c.sent,
        c.completed,
        c.dropped,
        c.cancelled,
        c.unsent_at_stop,
        if c.retries + c.short_circuited > 0 {
            format!(
                " (attempts: {} retries, {} short-circuited)",
                c.retries, c.short_circuited
            )
        } else {
            String::new()
        }
    );
    if r.rate.sent_after_schedule > 0 {
        let _ = writeln!(
            s,
            "             {} sent after the schedule's window (late; not in the achieved rate)",
            r.rate.sent_after_schedule
        );
    }
    let _ = writeln!(
        s,
        "  outcomes   ok {} ({}), rejected {} ({}), http errors {}, timeouts {}, connect errors {}, transport errors {}, local errors {}",
        c.ok,
        pct(c.ok, c.completed),
        c.rejected,
        pct(c.rejected, c.completed),
        c.http_error,
        c.timeout,
        c.connect_error,
        c.transport_error,
        c.local_error
    );
    let k = &r.connections;
    let connects = if r.connect_us.count == 0 {
        String::new()
    } else {
        format!(
            "; {} opened during the run, connect p50 {} p99 {}",
            r.connect_us.count,
            format_us(r.connect_us.p50),
            format_us(r.connect_us.p99)
        )
    };
    // Said only when the server's limit is the one in force: it explains more connections, or
    // send lag at the cap, that --max-streams alone would not.
    let streams = match k.peer_max_streams {
        Some(n) if n < r.settings.max_streams as u64 => {
            format!("; {n} streams each (the server's SETTINGS_MAX_CONCURRENT_STREAMS)")
        }
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "  conns      opened {} (peak {} open, cap {}), closed by peer {}, reconnects {}, failed {}{connects}{streams}",
        k.opened, k.peak_open, k.max, k.closed_by_peer, k.reconnects, k.failed,
    );
    for e in &r.errors {
        let _ = writeln!(s, "  error      {} ×{}: {}", e.class, e.count, e.message);
    }
    if !r.status_codes.is_empty() {
        let codes: Vec<String> = r
            .status_codes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "  status     {}", codes.join(", "));
    }
    grpc(s, r);
}

/// gRPC: per-code counts, messages per call and time to first message.
fn grpc(s: &mut String, r: &Report) {
    let Some(g) = &r.grpc else {
        return;
    };
    let codes: Vec<String> = r
        .grpc_status_codes
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(
        s,
        "  grpc       {} ({}); {}",
        g.call,
        g.schema,
        codes.join(", ")
    );
    let first = if g.time_to_first_message_us.count == 0 {
        String::new()
    } else {
        format!(
            ", first message p50 {} p99 {} after send",
            format_us(g.time_to_first_message_us.p50),
            format_us(g.time_to_first_message_us.p99)
        )
    };
    let flow = if g.flow_control_wait_us.count == 0 {
        String::new()
    } else {
        let stuck = if g.flow_control_stuck == 0 {
            String::new()
        } else {
            format!(
                "; {} calls timed out with a request message stuck on flow control (the server stopped reading)",
                g.flow_control_stuck
            )
        };
        format!(
            "; request messages waited on flow control p50 {} p99 {} each, p99 {} per call{stuck}",
            format_us(g.flow_control_wait_us.p50),
            format_us(g.flow_control_wait_us.p99),
            format_us(g.flow_control_wait_per_call_us.p99)
        )
    };
    let _ = writeln!(
        s,
        "  messages   {} received, {} per call{first}{flow}",
        g.messages, g.messages_per_call
    );
}

/// The three clocks side by side.
fn clocks(s: &mut String, r: &Report) {
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {:<8} {:>12} {:>14} {:>12}",
        "", "latency", "service time", "send lag"
    );
    type Pick = fn(&Stats) -> u64;
    let rows: [(&str, Pick); 9] = [
        ("p50", |x| x.p50),
        ("p90", |x| x.p90),
        ("p95", |x| x.p95),
        ("p99", |x| x.p99),
        ("p99.9", |x| x.p999),
        ("p99.99", |x| x.p9999),
        ("max", |x| x.max),
        ("min", |x| x.min),
        ("mean", |x| x.mean as u64),
    ];
    for (name, f) in rows {
        let _ = writeln!(
            s,
            "  {:<8} {:>12} {:>14} {:>12}",
            name,
            format_us(f(&r.latency_us)),
            format_us(f(&r.service_time_us)),
            format_us(f(&r.send_lag_us))
        );
    }
}

/// What the clocks mean, what was censored, and the verdict.
fn footer(s: &mut String, r: &Report) {
    let c = &r.counts;
    let v = &r.verdict;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  latency = completion - intended start; service time = completion - send; send lag = send - intended start."
    );
    if c.timeout + c.connect_error + c.transport_error + c.local_error > 0 {
        let _ = writeln!(
            s,
            "  failures and timeouts enter latency and service time at the moment they were known."
        );
    }
    if c.cancelled + c.unsent_at_stop > 0 {
        let _ = writeln!(
            s,
            "  {} requests unanswered at the end are censored into the latency at the cut (they took at least that long).",
            c.cancelled + c.unsent_at_stop
        );
    }
    let _ = if v.trustworthy && r.mode == super::Mode::ClosedLoop {
        writeln!(
            s,
            "  verdict    generator healthy; closed-loop run: read it for throughput, not latency"
        )
    } else if v.trustworthy {
        let sent = if r.counts.short_circuited > 0 {
            format!(
                "every scheduled request was sent or failed fast by the client's breaker ({} short-circuited)",
                r.counts.short_circuited
            )
        } else {
            "every scheduled request was sent".to_string()
        };
        writeln!(
            s,
            "  verdict    trustworthy: {sent}, send-lag p99 {} within {}",
            format_us(r.send_lag_us.p99),
            format_us(r.settings.max_send_lag_us)
        )
    } else {
        writeln!(s, "  verdict    UNTRUSTWORTHY (see the reasons at the top)")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_us(0), "0µs");
        assert_eq!(format_us(850), "850µs");
        assert_eq!(format_us(12_345), "12.35ms");
        assert_eq!(format_us(1_802_000), "1.802s");
    }
}
