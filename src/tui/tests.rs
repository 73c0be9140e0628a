//! Render tests: fixed snapshots drawn on ratatui's `TestBackend`. The key figures appear, and
//! no size (1×1 included) makes a panel panic.

use std::sync::Arc;
use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::{draw, App, Info, Panel};
use crate::control::Status;
use crate::record::{Snapshot, Tally, Tickets};
use crate::schedule::Shape;

fn info(shape: Shape) -> Info {
    Info {
        target: "GET http://127.0.0.1:8080/".into(),
        profile: "demo".into(),
        shape,
        notes: vec![("ramp".into(), "the queue fills up".into())],
        color: true,
        max_send_lag: Duration::from_millis(5),
        grpc: false,
    }
}

fn ramp() -> Shape {
    crate::profile::parse_shorthand("400/s@5s,name=under; 400->1100/s@10s,name=ramp")
        .expect("shape parses")
}

/// The `i`-th second of a run at 800/s: 5 % rejected, latency 5–60 ms, send lag ~80 µs.
fn snapshot(i: u64, totals: &mut Tally) -> Snapshot {
    let mut interval = Tally::default();
    let c = &mut interval.counts;
    c.ok = 760;
    c.rejected = 40;
    c.completed = 800;
    c.status[200] = 760;
    c.status[503] = 40;
    for k in 0..800u64 {
        let _ = interval.clocks.latency.record(5_000 + k * 70);
        let _ = interval.clocks.service_time.record(5_000 + k * 60);
        let _ = interval.clocks.send_lag.record(80 + k % 7);
    }
    totals.add(&interval);
    let tickets = Tickets {
        scheduled: 800 * i,
        sent: 800 * i,
        ..Tickets::default()
    };
    Snapshot {
        at: Duration::from_secs(i),
        interval_len: Duration::from_secs(1),
        interval,
        totals: totals.clone(),
        tickets,
        backlog: 0,
        workers: 40,
        connections: Default::default(),
        target_rate: 800.0,
        stage: Some("ramp".into()),
        health: Default::default(),
        cpu: Duration::from_millis(120 * i),
        retry: None,
        steering: Status {
            factor: 1.0,
            position: Duration::from_secs(i),
            ..Status::default()
        },
    }
}

fn app_with(n: u64, shape: Shape) -> App {
    let mut app = App::new(info(shape));
    let mut totals = Tally::default();
    for i in 1..=n {
        app.push(Arc::new(snapshot(i, &mut totals)));
    }
    app
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    t.draw(|f| draw(f, app)).expect("draws");
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn the_key_figures_are_on_an_80_by_24_screen() {
    let screen = render(&app_with(6, ramp()), 80, 24);
    for needle in [
        "stage ramp",
        "target 800/s",
        "achieved 800/s",
        "rejected 5.0% now, 5.0% overall",
        "send-lag p99",
        "on schedule",
        "latency p99",
        "service p99",
        "p99.9",
        "the queue fills up",
        "q quit",
    ] {
        assert!(
            screen.contains(needle),
            "{needle:?} missing from:\n{screen}"
        );
    }
}

#[test]
fn without_a_note_the_header_keeps_every_line() {
    let mut app = app_with(6, ramp());
    app.info.notes.clear();
    let screen = render(&app, 80, 24);
    for needle in [
        "stage ramp",
        "rejected 5.0% now",
        "generator on schedule",
        "send lag",
    ] {
        assert!(
            screen.contains(needle),
            "{needle:?} missing from:\n{screen}"
        );
    }
}

#[test]
fn a_wide_screen_shows_every_panel() {
    let screen = render(&app_with(6, ramp()), 200, 60);
    for needle in [
        "distribution",
        "status and errors",
        "503: 240",
        "profile (peak",
    ] {
        assert!(
            screen.contains(needle),
            "{needle:?} missing from:\n{screen}"
        );
    }
}

#[test]
fn tab_reaches_the_panels_that_do_not_fit() {
    let mut app = app_with(3, ramp());
    assert!(!render(&app, 80, 24).contains("profile (peak"));
    app.panel = Panel::Breakdown;
    assert!(render(&app, 80, 24).contains("profile (peak"));
}

#[test]
fn paused_dropped_and_help_are_said() {
    let mut app = App::new(info(ramp()));
    let mut totals = Tally::default();
    let mut s = snapshot(2, &mut totals);
    s.steering.paused = true;
    s.tickets.dropped = 12;
    app.push(Arc::new(s));
    app.help = true;
    let screen = render(&app, 100, 30);
    for needle in [
        "PAUSED",
        "UNTRUSTWORTHY: 12 requests dropped",
        "pause / resume",
    ] {
        assert!(
            screen.contains(needle),
            "{needle:?} missing from:\n{screen}"
        );
    }
}

#[test]
fn no_size_panics() {
    let shapes = [
        ramp(),
        Shape::MaxFor(Duration::from_secs(3)),
        Shape::constant(1.0, Duration::from_millis(1500)).expect("shape"),
    ];
    for shape in shapes {
        for n in [0, 1, 600] {
            let mut app = app_with(n, shape.clone());
            for help in [false, true] {
                app.help = help;
                for (w, h) in [
                    (1, 1),
                    (2, 1),
                    (20, 5),
                    (40, 10),
                    (80, 24),
                    (81, 17),
                    (200, 60),
                ] {
                    render(&app, w, h);
                }
            }
        }
    }
}

#[test]
fn without_colour_the_screen_has_no_colour() {
    let mut app = app_with(3, ramp());
    app.info.color = false;
    let mut t = Terminal::new(TestBackend::new(80, 24)).expect("test backend");
    t.draw(|f| draw(f, &app)).expect("draws");
    let buf = t.backend().buffer();
    let coloured = buf
        .content()
        .iter()
        .filter(|c| c.fg != ratatui::style::Color::Reset)
        .count();
    assert_eq!(coloured, 0);
}

#[test]
fn a_retry_policy_shows_offered_load_retries_and_amplification() {
    // 800 first attempts a second, and from the 3rd second 1 200 retries a second on top.
    let mut app = App::new(info(ramp()));
    let mut totals = Tally::default();
    let mut retries = 0;
    for i in 1..=6u64 {
        let mut s = snapshot(i, &mut totals);
        if i >= 3 {
            retries += 1200;
        }
        s.tickets.sent += retries;
        s.tickets.sent_retries = retries;
        s.retry = Some(crate::retry::RetryCounts {
            scheduled: retries,
            gave_up: 17,
            short_circuited: 0,
            pending: 42,
            by_reason: [retries, 0, 0],
        });
        app.push(Arc::new(s));
    }
    let screen = render(&app, 200, 60);
    for needle in [
        "achieved 800/s",
        "offered 2000/s (retries 1200/s, ×2.50; pending 42, gave up 17)",
        "retries",
    ] {
        assert!(
            screen.contains(needle),
            "{needle:?} missing from:\n{screen}"
        );
    }
    // Without a policy there is no retry figure at all.
    let plain = render(&app_with(6, ramp()), 200, 60);
    assert!(!plain.contains("offered"), "{plain}");
}

#[test]
fn rejections_are_charted_by_cause_when_both_occur() {
    let mut app = App::new(info(ramp()));
    let mut totals = Tally::default();
    for i in 1..=6u64 {
        let mut s = snapshot(i, &mut totals);
        // 40 rejected a second: 25 rate limited, 15 shed.
        s.interval.counts.status[429] = 25;
        s.interval.counts.status[503] = 15;
        app.push(Arc::new(s));
    }
    let points = app.points.back().copied().unwrap();
    assert_eq!((points.limited, points.unavailable), (25.0, 15.0));
    let screen = render(&app, 200, 60);
    assert!(screen.contains("429") && screen.contains("503"), "{screen}");
    // 503 alone: one "rejected" line, no breakdown.
    let plain = app_with(6, ramp());
    assert_eq!(plain.points.back().unwrap().limited, 0.0);
}

#[test]
fn grpc_rejections_are_charted_by_code_and_the_codes_listed() {
    use crate::grpc::Code;
    let mut app = App::new(Info {
        target: "gRPC metronome.demo.v1.Demo/Ping grpc://127.0.0.1:8080".into(),
        grpc: true,
        ..info(ramp())
    });
    let mut totals = Tally::default();
    for i in 1..=6u64 {
        let mut s = snapshot(i, &mut totals);
        let c = &mut s.interval.counts;
        // gRPC answers are HTTP 200: the causes are in the gRPC codes.
        c.status[429] = 0;
        c.status[503] = 0;
        c.grpc[usize::from(Code::OK.0)] = 760;
        c.grpc[usize::from(Code::RESOURCE_EXHAUSTED.0)] = 10;
        c.grpc[usize::from(Code::UNAVAILABLE.0)] = 30;
        s.totals.counts.grpc[usize::from(Code::OK.0)] = 760 * i;
        s.totals.counts.grpc[usize::from(Code::UNAVAILABLE.0)] = 30 * i;
        app.push(Arc::new(s));
    }
    let p = app.points.back().copied().unwrap();
    assert_eq!((p.limited, p.unavailable), (10.0, 30.0));
    let screen = render(&app, 200, 60);
    for want in ["exhausted", "unavailable", "UNAVAILABLE: 180", "Demo/Ping"] {
        assert!(screen.contains(want), "{want}: {screen}");
    }
}
