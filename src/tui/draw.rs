//! The screen, one small function per panel. Pure: a frame is drawn from an [`App`] only.
//!
//! ```text
//! header    target, profile and stage, elapsed/total, rates, generator health
//! charts    rates over time │ latency over time (from intended start; service p99 beside)
//! panels    distribution │ status and errors │ profile curve with a cursor at now
//! footer    keys, or the last message
//! ```
//! Below 120 columns, the panels that do not fit are reached with `tab`; on short screens the
//! panels give way to the charts.

use hdrhistogram::Histogram;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Chart, Clear, Dataset, GraphType, LineGauge, Paragraph, Row, Table, Wrap,
};
use ratatui::Frame;

use super::state::{App, Panel, Point};
use crate::record::Snapshot;
use crate::report::format_us;
use crate::schedule::fmt_secs;

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let snap = app.latest.as_deref();
    let note = snap.and_then(|s| app.info.note(s.stage.as_deref()));
    let header = header_lines(app, snap, note);
    // Each header line wraps onto as many rows as it needs on a narrow screen, up to half of it.
    let rows: u16 = header
        .iter()
        .map(|l| wrapped_rows(l, area.width))
        .sum::<u16>()
        + 1;
    let header_rows = rows.min((area.height / 2).max(2));
    let [top, body, footer] = Layout::vertical([
        Constraint::Length(header_rows),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, app, snap, header, top);
    draw_body(f, app, body);
    draw_footer(f, app, footer);
    if app.help {
        draw_help(f, app, area);
    }
}

/// Rows `line` takes when wrapped at `width` columns.
fn wrapped_rows(line: &Line, width: u16) -> u16 {
    let w = line.width().max(1);
    u16::try_from(w.div_ceil(usize::from(width.max(1)))).unwrap_or(u16::MAX)
}

/// A foreground colour, or plain text under `NO_COLOR`.
fn fg(app: &App, c: Color) -> Style {
    if app.info.color {
        Style::new().fg(c)
    } else {
        Style::new()
    }
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

fn rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.1}k/s", r / 1000.0)
    } else {
        format!("{r:.0}/s")
    }
}

fn pct(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

fn q_us(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        format_us(h.value_at_quantile(q))
    }
}

/// The header's text lines (the progress gauge goes between the first and the others).
fn header_lines(app: &App, snap: Option<&Snapshot>, note: Option<&str>) -> Vec<Line<'static>> {
    let stage = snap
        .and_then(|s| s.stage.as_deref())
        .map(|s| format!(" · stage {s}"))
        .unwrap_or_default();
    let mut lines = vec![
        Line::from(vec![
            Span::styled("metronome ", bold()),
            Span::raw(format!("{}  ", app.info.target)),
            Span::styled(format!("{}{stage}", app.info.profile), fg(app, Color::Cyan)),
        ]),
        rates_line(app, snap),
        health_line(app, snap),
    ];
    if let Some(n) = note {
        lines.push(Line::from(Span::styled(
            n.to_string(),
            fg(app, Color::Yellow),
        )));
    }
    lines
}

fn draw_header(
    f: &mut Frame,
    app: &App,
    snap: Option<&Snapshot>,
    lines: Vec<Line<'static>>,
    area: Rect,
) {
    let mut heights: Vec<Constraint> = lines
        .iter()
        .map(|l| Constraint::Length(wrapped_rows(l, area.width)))
        .collect();
    heights.insert(1, Constraint::Length(1));
    let rows = Layout::vertical(heights).split(area);
    let mut lines = lines.into_iter();
    for (i, row) in rows.iter().enumerate() {
        if i == 1 {
            draw_progress(f, app, snap, *row);
        } else if let Some(line) = lines.next() {
            f.render_widget(Paragraph::new(line).wrap(Wrap { trim: false }), *row);
        }
    }
}

fn draw_progress(f: &mut Frame, app: &App, snap: Option<&Snapshot>, area: Rect) {
    let planned = app.info.planned().as_secs_f64();
    let (elapsed, position) = snap.map_or((0.0, 0.0), |s| {
        (s.at.as_secs_f64(), s.steering.position.as_secs_f64())
    });
    let ratio = if planned > 0.0 {
        (position / planned).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let label = if planned > 0.0 {
        format!(
            "{} of {} elapsed, schedule at {}",
            fmt_secs(elapsed),
            fmt_secs(planned),
            fmt_secs(position)
        )
    } else {
        format!("{} elapsed", fmt_secs(elapsed))
    };
    let gauge = LineGauge::default()
        .filled_style(fg(app, Color::Green))
        .ratio(ratio)
        .label(label);
    f.render_widget(gauge, area);
}

fn rates_line(app: &App, snap: Option<&Snapshot>) -> Line<'static> {
    let Some(s) = snap else {
        return Line::raw("connecting: warming connections before the clock starts…");
    };
    let p = app.points.back().copied().unwrap_or_default();
    let i = &s.interval.counts;
    let t = &s.totals.counts;
    let target = if s.target_rate.is_finite() {
        rate(s.target_rate)
    } else {
        "max".into()
    };
    let mut spans = steering_spans(app, s);
    spans.push(Span::raw(format!(
        "target {target}  achieved {}  ",
        rate(p.first())
    )));
    if let Some(r) = &s.retry {
        // A retry policy: what the target is really offered, and by how much retries multiply it.
        let amp = p
            .amplification()
            .map_or("-".to_string(), |a| format!("×{a:.2}"));
        spans.push(Span::styled(
            format!(
                "offered {} (retries {}, {amp}; pending {}, gave up {}{})  ",
                rate(p.sent),
                rate(p.retries),
                r.pending,
                r.gave_up,
                if r.short_circuited > 0 {
                    format!(", short-circuited {}", r.short_circuited)
                } else {
                    String::new()
                }
            ),
            bold().patch(fg(app, Color::Magenta)),
        ));
    }
    spans.extend([
        Span::styled(format!("ok {}  ", rate(p.ok)), fg(app, Color::Green)),
        Span::styled(
            format!(
                "rejected {:.1}% now, {:.1}% overall  ",
                pct(i.rejected, i.completed),
                pct(t.rejected, t.completed)
            ),
            fg(app, Color::Yellow),
        ),
        Span::styled(
            format!("errors {}  timeouts {}", t.errors() - t.timeout, t.timeout),
            fg(app, Color::Red),
        ),
    ]);
    Line::from(spans)
}

/// `PAUSED` or the rate factor, first on the line so a narrow screen still shows it.
fn steering_spans(app: &App, s: &Snapshot) -> Vec<Span<'static>> {
    let st = &s.steering;
    let style = bold().patch(fg(app, Color::Magenta));
    if st.paused {
        vec![Span::styled("PAUSED  ", style)]
    } else if st.changes > 0 && st.factor != 1.0 {
        vec![Span::styled(format!("rate ×{:.2}  ", st.factor), style)]
    } else {
        Vec::new()
    }
}

/// Why the generator's own figures cannot be trusted right now, if they cannot.
fn distrust(app: &App, s: &Snapshot) -> Option<String> {
    let lag_p99 = s.interval.clocks.send_lag.value_at_quantile(0.99);
    let limit = app.info.max_send_lag.as_micros() as u64;
    if !s.health.panics.is_empty() {
        Some(format!("a task panicked ({})", s.health.panics.join(", ")))
    } else if s.tickets.dropped > 0 {
        Some(format!(
            "{} requests dropped (backlog full)",
            s.tickets.dropped
        ))
    } else if s.health.timer_fallback {
        Some("no precise timer".into())
    } else if !s.interval.clocks.send_lag.is_empty() && lag_p99 > limit {
        Some(format!(
            "send lag p99 {} above {}",
            format_us(lag_p99),
            format_us(limit)
        ))
    } else {
        None
    }
}

fn health_line(app: &App, snap: Option<&Snapshot>) -> Line<'static> {
    let Some(s) = snap else {
        return Line::raw("");
    };
    let secs = s.at.as_secs_f64().max(1e-3);
    let cpu = 100.0 * s.cpu.as_secs_f64() / secs;
    let verdict = match distrust(app, s) {
        Some(why) => Span::styled(
            format!("UNTRUSTWORTHY: {why}"),
            bold().patch(fg(app, Color::Red)),
        ),
        None => Span::styled("on schedule", fg(app, Color::Green)),
    };
    let figures = format!(
        "  send-lag p99 {}  dropped {}  in flight {}  backlog {}  conns {}  cpu {cpu:.0}%",
        q_us(&s.interval.clocks.send_lag, 0.99),
        s.tickets.dropped,
        s.in_flight(),
        s.backlog,
        s.connections.open,
    );
    Line::from(vec![Span::raw("generator "), verdict, Span::raw(figures)])
}

fn draw_body(f: &mut Frame, app: &App, area: Rect) {
    if area.height < 6 {
        draw_charts(f, app, area);
        return;
    }
    // The panels need 7 rows (a border, a header and four rows); the charts keep at least 9.
    let panels_h = if area.height >= 16 { 7 } else { 0 };
    let [charts, panels] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(panels_h)]).areas(area);
    draw_charts(f, app, charts);
    if panels_h > 0 {
        draw_panels(f, app, panels);
    }
}

fn draw_charts(f: &mut Frame, app: &App, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    draw_rates(f, app, left);
    draw_latency(f, app, right);
}

/// One line of a chart: its `(x, y)` points, name and colour.
type Series = (Vec<(f64, f64)>, &'static str, Color);

/// `(t, value)` pairs of one series.
fn series(points: &[Point], pick: impl Fn(&Point) -> Option<f64>) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter_map(|p| pick(p).map(|v| (p.t, v)))
        .collect()
}

fn x_bounds(points: &[Point]) -> [f64; 2] {
    let first = points.first().map_or(0.0, |p| p.t);
    let last = points.last().map_or(0.0, |p| p.t);
    [first, last.max(first + 10.0)]
}

fn y_max(sets: &[Series]) -> f64 {
    let m = sets
        .iter()
        .flat_map(|(data, ..)| data)
        .map(|&(_, v)| v)
        .fold(0.0_f64, f64::max);
    if m > 0.0 {
        m * 1.1
    } else {
        1.0
    }
}

/// A chart's axes: x bounds, y maximum, the y unit and, if not plain, the x labels.
struct Axes {
    x: [f64; 2],
    y: f64,
    unit: &'static str,
    x_labels: Option<[String; 2]>,
}

/// Markers that tell series apart without colour, and the glyph each draws.
const MARKERS: [(Marker, &str); 5] = [
    (Marker::Braille, "⣿"),
    (Marker::Dot, "•"),
    (Marker::Block, "█"),
    (Marker::Bar, "▄"),
    (Marker::HalfBlock, "▀"),
];

/// A chart in a titled box, with a line naming its series above the plot (wrapped on narrow
/// screens): in colour each name in its colour; under `NO_COLOR` each series drawn with its own
/// marker, and the name followed by that marker's glyph.
fn draw_chart(f: &mut Frame, app: &App, area: Rect, title: String, sets: &[Series], axes: Axes) {
    let Axes {
        x,
        y,
        unit,
        x_labels,
    } = axes;
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let marker = |i: usize| {
        if app.info.color {
            MARKERS[0]
        } else {
            MARKERS[i % MARKERS.len()]
        }
    };
    let names: Vec<Span> = sets
        .iter()
        .enumerate()
        .map(|(i, (_, name, color))| {
            let glyph = if app.info.color { "" } else { marker(i).1 };
            Span::styled(format!("{name}{glyph} "), fg(app, *color))
        })
        .collect();
    let names = Line::from(names);
    let rows = wrapped_rows(&names, inner.width).min(inner.height / 2);
    let [legend, plot] =
        Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(inner);
    f.render_widget(Paragraph::new(names).wrap(Wrap { trim: true }), legend);
    let datasets = sets
        .iter()
        .enumerate()
        .map(|(i, (data, name, color))| {
            Dataset::default()
                .name(*name)
                .marker(marker(i).0)
                .graph_type(GraphType::Line)
                .style(fg(app, *color))
                .data(data)
        })
        .collect();
    let x_axis = match x_labels {
        Some(l) => Axis::default().bounds(x).labels(l),
        None => Axis::default().bounds(x),
    };
    let chart = Chart::new(datasets)
        .x_axis(x_axis)
        .y_axis(
            Axis::default()
                .bounds([0.0, y])
                .labels([format!("0{unit}"), format!("{y:.0}{unit}")]),
        )
        // The names line above says which series is which; a legend box would cover the newest
        // points.
        .hidden_legend_constraints((Constraint::Length(0), Constraint::Length(0)));
    f.render_widget(chart, plot);
}

fn draw_rates(f: &mut Frame, app: &App, area: Rect) {
    let pts: Vec<Point> = app.points.iter().copied().collect();
    let mut sets = vec![
        (series(&pts, |p| Some(p.target)), "target", Color::Gray),
        (series(&pts, |p| Some(p.first())), "achieved", Color::White),
        (series(&pts, |p| Some(p.ok)), "ok", Color::Green),
        (
            series(&pts, |p| Some(p.rejected)),
            "rejected",
            Color::Yellow,
        ),
        (series(&pts, |p| Some(p.errors)), "errors", Color::Red),
        (
            series(&pts, |p| Some(p.timeouts)),
            "timeouts",
            Color::Magenta,
        ),
    ];
    // Rejections by cause, when both causes occur: rate limiting (429, RESOURCE_EXHAUSTED) and
    // shedding (503, UNAVAILABLE).
    if pts.iter().any(|p| p.limited > 0.0) && pts.iter().any(|p| p.unavailable > 0.0) {
        let (limited, unavailable) = if app.info.grpc {
            ("exhausted", "unavailable")
        } else {
            ("429", "503")
        };
        sets.push((
            series(&pts, |p| Some(p.limited)),
            limited,
            Color::LightYellow,
        ));
        sets.push((
            series(&pts, |p| Some(p.unavailable)),
            unavailable,
            Color::LightRed,
        ));
    }
    if pts.iter().any(|p| p.retries > 0.0) {
        sets.push((series(&pts, |p| Some(p.retries)), "retries", Color::Cyan));
    }
    let title = format!(
        "rates /s  (sent {})",
        rate(pts.last().map_or(0.0, |p| p.sent))
    );
    let axes = Axes {
        x: x_bounds(&pts),
        y: y_max(&sets),
        unit: "",
        x_labels: None,
    };
    draw_chart(f, app, area, title, &sets, axes);
}

fn draw_latency(f: &mut Frame, app: &App, area: Rect) {
    let pts: Vec<Point> = app.points.iter().copied().collect();
    let pick = |i: usize| move |p: &Point| p.latency.map(|l| l[i]);
    let sets = vec![
        (series(&pts, pick(0)), "p50", Color::Green),
        (series(&pts, pick(1)), "p90", Color::Cyan),
        (series(&pts, pick(2)), "p99", Color::Yellow),
        (series(&pts, pick(3)), "p99.9", Color::Red),
        (series(&pts, |p| p.service_p99), "service p99", Color::Blue),
    ];
    let now = app.latest.as_deref().map(|s| &s.interval.clocks);
    let title = match now {
        Some(c) if !c.latency.is_empty() => format!(
            "latency p99 {} (service {})",
            q_us(&c.latency, 0.99),
            q_us(&c.service_time, 0.99)
        ),
        _ => "latency (from intended start)".into(),
    };
    let axes = Axes {
        x: x_bounds(&pts),
        y: y_max(&sets),
        unit: "ms",
        x_labels: None,
    };
    draw_chart(f, app, area, title, &sets, axes);
}

fn draw_panels(f: &mut Frame, app: &App, area: Rect) {
    let all = area.width >= 120;
    if all {
        let cols = Layout::horizontal([Constraint::Ratio(1, 3); 3]).split(area);
        draw_panel(f, app, Panel::Distribution, cols[0]);
        draw_panel(f, app, Panel::Breakdown, cols[1]);
        draw_panel(f, app, Panel::Profile, cols[2]);
    } else {
        let [a, b] = Layout::horizontal([Constraint::Percentage(50); 2]).areas(area);
        let (left, right) = match app.panel {
            Panel::Distribution => (Panel::Distribution, Panel::Breakdown),
            Panel::Breakdown => (Panel::Breakdown, Panel::Profile),
            Panel::Profile => (Panel::Profile, Panel::Distribution),
        };
        draw_panel(f, app, left, a);
        draw_panel(f, app, right, b);
    }
}

fn draw_panel(f: &mut Frame, app: &App, panel: Panel, area: Rect) {
    match panel {
        Panel::Distribution => draw_distribution(f, app, area),
        Panel::Breakdown => draw_breakdown(f, app, area),
        Panel::Profile => draw_profile(f, app, area),
    }
}

fn draw_distribution(f: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title("distribution (whole run)");
    let Some(s) = app.latest.as_deref() else {
        f.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let c = &s.totals.clocks;
    // As many percentile columns as fit whole (a value such as "14.66ms" takes 7 columns).
    let inner = area.width.saturating_sub(2);
    let (names, qs): (&[&str], &[f64]) = if inner >= 8 + 5 * 8 {
        (&["p50", "p90", "p99", "p99.9"], &[0.5, 0.9, 0.99, 0.999])
    } else if inner >= 8 + 4 * 8 {
        (&["p50", "p99", "p99.9"], &[0.5, 0.99, 0.999])
    } else {
        (&["p50", "p99"], &[0.5, 0.99])
    };
    let row = |name: &'static str, h: &Histogram<u64>| {
        let mut cells = vec![name.to_string()];
        cells.extend(qs.iter().map(|&q| q_us(h, q)));
        cells.push(if h.is_empty() {
            "-".into()
        } else {
            format_us(h.max())
        });
        Row::new(cells)
    };
    let now = &s.interval.clocks.latency;
    let rows = vec![
        row("latency", &c.latency),
        row("  now", now),
        row("service", &c.service_time),
        row("send lag", &c.send_lag),
    ];
    let mut head = vec![""];
    head.extend_from_slice(names);
    head.push("max");
    let header = Row::new(head).style(bold());
    let mut widths = vec![Constraint::Length(8)];
    widths.extend(std::iter::repeat_n(Constraint::Fill(1), names.len() + 1));
    let t = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(block);
    f.render_widget(t, area);
}

fn draw_breakdown(f: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title("status and errors (whole run)");
    let Some(s) = app.latest.as_deref() else {
        f.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let c = &s.totals.counts;
    let codes: Vec<String> = c
        .statuses()
        .map(|(code, n)| format!("{code}: {n} ({:.1}%)", pct(n, c.completed)))
        .collect();
    let mut lines = vec![Line::raw(format!(
        "completed {}  ok {}  rejected {}",
        c.completed, c.ok, c.rejected
    ))];
    lines.push(Line::raw(format!("status  {}", codes.join("  "))));
    let grpc: Vec<String> = c
        .grpc_statuses()
        .map(|(code, n)| format!("{}: {n} ({:.1}%)", code.name(), pct(n, c.completed)))
        .collect();
    if !grpc.is_empty() {
        lines.push(Line::raw(format!("grpc    {}", grpc.join("  "))));
    }
    lines.push(Line::styled(
        format!(
            "http errors {}  timeouts {}  connect {}  transport {}  local {}",
            c.http_error, c.timeout, c.connect_error, c.transport_error, c.local_error
        ),
        fg(app, Color::Red),
    ));
    let t = &s.tickets;
    lines.push(Line::raw(format!(
        "scheduled {}  sent {}  dropped {}  cancelled {}",
        t.scheduled, t.sent, t.dropped, t.cancelled
    )));
    let p = Paragraph::new(lines).block(block).wrap(Wrap { trim: true });
    f.render_widget(p, area);
}

fn draw_profile(f: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title("profile (target rate, cursor at now)");
    let Some(curve) = app.info.shape.curve() else {
        let p = Paragraph::new("closed loop (--rate max): no schedule").block(block);
        f.render_widget(p, area);
        return;
    };
    let total = curve.duration_secs().max(1e-3);
    let n = 200;
    let data: Vec<(f64, f64)> = (0..=n)
        .map(|i| {
            let t = total * f64::from(i) / f64::from(n);
            (t, curve.rate_at(t.min(total - 1e-9)))
        })
        .collect();
    let peak = curve.peak().max(1.0) * 1.1;
    let now = app
        .latest
        .as_deref()
        .map_or(0.0, |s| s.steering.position.as_secs_f64())
        .min(total);
    let cursor = vec![(now, 0.0), (now, peak)];
    let sets = vec![
        (data, "target", Color::Cyan),
        (cursor, "now", Color::Magenta),
    ];
    let axes = Axes {
        x: [0.0, total],
        y: peak,
        unit: "",
        x_labels: Some(["0s".to_string(), fmt_secs(total)]),
    };
    draw_chart(f, app, area, block_title(curve.peak()), &sets, axes);
}

fn block_title(peak: f64) -> String {
    format!("profile (peak {}; cursor at now)", rate(peak))
}

fn draw_footer(f: &mut Frame, app: &App, area: Rect) {
    let text = match app.message() {
        Some(m) => Span::styled(m.to_string(), bold().patch(fg(app, Color::Yellow))),
        None if app.stopping > 0 => Span::styled(
            "stopping: nothing more is sent; waiting for requests in flight (q again: cut them now)",
            fg(app, Color::Yellow),
        ),
        None => Span::raw("q quit · space pause · +/- rate ±10% · tab panels · ? help"),
    };
    f.render_widget(Paragraph::new(text), area);
}

const HELP: &[&str] = &[
    "q, Esc, Ctrl-C   stop sending; wait for requests in flight; full report after",
    "                 (again: cut what is still in flight)",
    "space            pause / resume the schedule: paused time is excluded and",
    "                 later requests are due that much later (not late)",
    "+ / -            rate ±10 % of the plan, from now on (recorded in the report)",
    "tab, arrows      the next panel when not all fit",
    "? or h           this help",
    "",
    "latency is from each request's intended start (what a user waited);",
    "service time from the actual send; send lag is the generator's lateness.",
];

fn draw_help(f: &mut Frame, app: &App, area: Rect) {
    let w = (HELP.iter().map(|l| l.len()).max().unwrap_or(0) + 4) as u16;
    let h = HELP.len() as u16 + 2;
    let [v] = Layout::vertical([Constraint::Length(h)])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w)])
        .flex(Flex::Center)
        .areas(v);
    let lines: Vec<Line> = HELP.iter().map(|l| Line::raw(*l)).collect();
    f.render_widget(Clear, r);
    let p = Paragraph::new(lines).block(
        Block::bordered()
            .title("keys")
            .border_style(fg(app, Color::Cyan)),
    );
    f.render_widget(p, r);
}
