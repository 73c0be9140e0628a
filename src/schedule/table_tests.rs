//! Schedule math as tables, with no clock: counts per stage, intended times at chosen `n`,
//! fractional carry, no drift, Poisson statistics, the request mix, and the cost per ticket.

use std::time::{Duration, Instant};

use super::*;

fn st(name: &str, kind: StageKind) -> Stage {
    Stage {
        name: name.to_string(),
        kind,
    }
}

fn constant(rate: f64, duration: f64) -> StageKind {
    StageKind::Constant { rate, duration }
}

fn ramp(from: f64, to: f64, duration: f64) -> StageKind {
    StageKind::Ramp { from, to, duration }
}

fn sine(base: f64, amplitude: f64, period: f64, duration: f64) -> StageKind {
    StageKind::Sine {
        base,
        amplitude,
        period,
        phase: 0.0,
        duration,
    }
}

fn burst(base: f64, peak: f64, every: Option<f64>, at: f64, duration: f64) -> StageKind {
    StageKind::Burst {
        base,
        peak,
        hold: 2.0,
        rise: 1.0,
        fall: 1.0,
        every,
        at,
        duration,
    }
}

fn shape(kinds: Vec<StageKind>) -> Shape {
    let stages = kinds.into_iter().map(|k| st(k.shape_name(), k)).collect();
    Shape::from_stages(stages, Vec::new()).unwrap()
}

fn offsets(shape: &Shape) -> Vec<f64> {
    let start = Instant::now();
    Schedule::new(shape.clone(), start)
        .map(|t| (t.intended() - start).as_secs_f64())
        .collect()
}

fn us(shape: &Shape, n: u64) -> u128 {
    shape.offset_of(n).unwrap().as_micros()
}

#[test]
fn counts_per_shape_table() {
    // (shape, expected total)
    let table: Vec<(Shape, u64)> = vec![
        (shape(vec![constant(100.0, 10.0)]), 1000),
        (shape(vec![ramp(50.0, 400.0, 3.0)]), 675),
        (shape(vec![ramp(0.0, 100.0, 10.0)]), 500),
        (shape(vec![ramp(100.0, 0.0, 10.0)]), 500),
        (
            shape(vec![StageKind::Step {
                rates: vec![100.0, 200.0, 300.0],
                hold: 10.0,
            }]),
            6000,
        ),
        (shape(vec![burst(10.0, 110.0, Some(10.0), 3.0, 30.0)]), 1200),
        (shape(vec![burst(10.0, 110.0, None, 3.0, 30.0)]), 600),
        (shape(vec![sine(100.0, 50.0, 10.0, 20.0)]), 2000),
        (
            shape(vec![StageKind::Table {
                rates: vec![100.0, 200.0],
                every: 10.0,
                interpolate: Interpolate::Linear,
                duration: 20.0,
            }]),
            3000,
        ),
        (
            shape(vec![StageKind::Table {
                rates: vec![100.0, 200.0],
                every: 10.0,
                interpolate: Interpolate::Step,
                duration: 25.0,
            }]),
            3500,
        ),
        (
            shape(vec![StageKind::Replay {
                points: vec![(0.0, 100.0), (10.0, 300.0), (20.0, 100.0)],
                interpolate: Interpolate::Linear,
            }]),
            4000,
        ),
    ];
    for (s, want) in table {
        assert_eq!(s.total(), want, "{}", s.describe());
        let offs = offsets(&s);
        assert_eq!(offs.len() as u64, want, "{}", s.describe());
        assert!(
            offs.windows(2).all(|w| w[0] <= w[1]),
            "monotone: {}",
            s.describe()
        );
        assert!(offs.last().unwrap() < &s.duration().as_secs_f64());
    }
}

#[test]
fn closed_form_intended_times_to_the_microsecond() {
    // (shape, n, expected µs) — expected values from the exact inverse.
    let up = shape(vec![ramp(0.0, 100.0, 10.0)]); // N = 5t²
    let down = shape(vec![ramp(100.0, 0.0, 10.0)]); // N = 100t − 5t²
    let mid = shape(vec![ramp(50.0, 400.0, 3.0)]);
    let b = shape(vec![burst(10.0, 110.0, Some(10.0), 3.0, 30.0)]);
    let step = shape(vec![StageKind::Step {
        rates: vec![100.0, 200.0, 300.0],
        hold: 10.0,
    }]);
    let table: Vec<(&Shape, u64, u128)> = vec![
        (&up, 0, 0),
        (&up, 5, 1_000_000),
        (&up, 20, 2_000_000),
        (&up, 250, 7_071_067),
        (&up, 499, 9_989_994),
        (&down, 1, 10_005),
        (&down, 250, 2_928_932),
        (&down, 499, 9_552_786),
        (&mid, 600, 2_807_071),
        (&b, 29, 2_900_000),  // base 10/s before the first burst at 3 s
        (&b, 30, 3_000_000),  // the rise starts
        (&b, 35, 3_231_662),  // 10τ + 50τ² = 5
        (&b, 100, 4_090_909), // at the peak: 4 s + 10/110
        (&step, 999, 9_990_000),
        (&step, 1000, 10_000_000),
        (&step, 1001, 10_005_000),
        (&step, 3001, 20_003_333),
    ];
    for (s, n, want) in table {
        assert_eq!(us(s, n), want, "{} n={n}", s.describe());
    }
    // The sequential schedule agrees with random access.
    for s in [&up, &down, &mid, &b, &step] {
        let start = Instant::now();
        for (i, t) in Schedule::new(s.clone(), start).enumerate() {
            assert_eq!(
                t.intended() - start,
                s.offset_of(i as u64).unwrap(),
                "{} n={i}",
                s.describe()
            );
        }
    }
}

#[test]
fn fractional_counts_carry_across_stage_boundaries() {
    // Stage 1 ends at area 2.5: requests at 0, 0.4, 0.8 s; the next is due half a request into
    // stage 2 (k6's doneSoFar), not at its start; stage 3 likewise starts at area 4.5. The run
    // ends at area 8.5: 8 whole requests.
    let s = shape(vec![
        constant(2.5, 1.0),
        constant(1.0, 2.0),
        constant(4.0, 1.0),
    ]);
    let offs = offsets(&s);
    let want = [0.0, 0.4, 0.8, 1.5, 2.5, 3.125, 3.375, 3.625];
    assert_eq!(offs.len(), want.len(), "{offs:?}");
    for (o, w) in offs.iter().zip(want) {
        assert!((o - w).abs() < 1e-9, "{offs:?}");
    }
    let spans = s.stages();
    assert_eq!(
        spans.iter().map(|x| x.requests).collect::<Vec<_>>(),
        [3, 2, 3]
    );
    // A ramp that starts mid-request: 3 requests in 0.75 s at 4/s, then a ramp 4→8 over 1 s.
    let r = shape(vec![constant(4.0, 0.75), ramp(4.0, 8.0, 1.0)]);
    // Request 3 is at area 3: 0 into the ramp. Request 4 at area 4: 4τ + 2τ² = 1.
    let t4 = 0.75 + 2.0 / (4.0 + (16.0f64 + 8.0).sqrt());
    assert_eq!(r.offset_of(3).unwrap(), Duration::from_millis(750));
    assert!((r.offset_of(4).unwrap().as_secs_f64() - t4).abs() < 1e-9);
}

#[test]
fn stage_counts_and_names() {
    let stages = vec![
        st("warm-up", constant(50.0, 30.0)),
        st("climb", ramp(50.0, 1000.0, 120.0)),
        st("hold", constant(1000.0, 60.0)),
    ];
    let s = Shape::from_stages(stages, Vec::new()).unwrap();
    let spans = s.stages();
    assert_eq!(
        spans.iter().map(|x| x.requests).collect::<Vec<_>>(),
        [1500, 63_000, 60_000]
    );
    assert_eq!(s.total(), 124_500);
    assert_eq!(s.duration(), Duration::from_secs(210));
    assert_eq!(s.peak_rate(), Some(1000.0));
    let at = |secs: u64| s.stage_at(Duration::from_secs(secs));
    assert_eq!(at(0), Some((0, "warm-up")));
    assert_eq!(at(29), Some((0, "warm-up")));
    assert_eq!(at(30), Some((1, "climb")));
    assert_eq!(at(209), Some((2, "hold")));
    assert_eq!(at(210), None);
    assert_eq!(s.rate_at(Duration::from_secs(90)), 525.0);
    assert_eq!(s.describe(), "3 stages: warm-up → climb → hold");
    assert_eq!(Shape::MaxCount(3).stage_at(Duration::ZERO), None);
}

/// `N(t)` evaluated independently of the curve code, for the sine checks.
fn sine_area(base: f64, amp: f64, period: f64, t: f64) -> f64 {
    let w = std::f64::consts::TAU / period;
    base * t + amp / w * (1.0 - (w * t).cos())
}

#[test]
fn sine_times_invert_the_integral() {
    let (base, amp, period) = (100.0, 80.0, 7.0);
    let s = shape(vec![sine(base, amp, period, 30.0)]);
    let offs = offsets(&s);
    assert_eq!(offs.len() as u64, s.total());
    assert_eq!(s.total(), sine_area(base, amp, period, 30.0).floor() as u64);
    for (n, t) in offs.iter().enumerate() {
        // |N(tₙ) − n| ≤ r·1 ns: the solution is exact to well under a microsecond.
        let err = (sine_area(base, amp, period, *t) - n as f64).abs();
        assert!(err < 1e-6, "n={n} t={t} err={err}");
    }
    // A curve with rate 0 at its troughs (amplitude = base) still inverts.
    let z = shape(vec![sine(50.0, 50.0, 4.0, 8.0)]);
    let offs = offsets(&z);
    assert_eq!(offs.len(), 400);
    for (n, t) in offs.iter().enumerate() {
        assert!((sine_area(50.0, 50.0, 4.0, *t) - n as f64).abs() < 1e-6);
    }
    assert_eq!(z.peak_rate(), Some(100.0));
}

#[test]
fn overlays_add_and_same_period_sines_merge() {
    let base = vec![st("day", sine(100.0, 50.0, 10.0, 20.0))];
    let spike = Overlay {
        start: 5.0,
        stage: st(
            "spike",
            StageKind::Burst {
                base: 0.0,
                peak: 100.0,
                hold: 1.0,
                rise: 0.0,
                fall: 0.0,
                every: None,
                at: 0.0,
                duration: 15.0,
            },
        ),
    };
    let s = Shape::from_stages(base.clone(), vec![spike]).unwrap();
    assert_eq!(s.total(), 2100);
    let offs = offsets(&s);
    assert_eq!(offs.len(), 2100);
    for (n, t) in offs.iter().enumerate() {
        let spike_area = (t - 5.0).clamp(0.0, 1.0) * 100.0;
        let err = (sine_area(100.0, 50.0, 10.0, *t) + spike_area - n as f64).abs();
        assert!(err < 1e-6, "n={n} t={t} err={err}");
    }
    let c = s.curve().unwrap();
    assert!(
        (c.rate_at(5.5) - (100.0 + 50.0 * (1.1 * std::f64::consts::PI).sin() + 100.0)).abs() < 1e-9
    );
    // A second sine of the same period adds as a phasor (here: doubles the amplitude).
    let twin = Overlay {
        start: 0.0,
        stage: st("twin", sine(100.0, 50.0, 10.0, 20.0)),
    };
    let s2 = Shape::from_stages(base.clone(), vec![twin]).unwrap();
    assert!((s2.peak_rate().unwrap() - 300.0).abs() < 1e-9);
    assert_eq!(s2.total(), 4000);
    // Different periods do not mix.
    let other = Overlay {
        start: 0.0,
        stage: st("other", sine(10.0, 5.0, 3.0, 20.0)),
    };
    let e = Shape::from_stages(base, vec![other]).unwrap_err();
    assert_eq!(e.at, StageRef::Overlay(0));
}

#[test]
fn no_drift_over_a_day() {
    // A day-long ramp 0 → 10,000/s: N = b·t²/2 with b = 10000/86400. Exact values from a
    // 40-digit computation.
    let s = shape(vec![ramp(0.0, 10_000.0, 86_400.0)]);
    assert_eq!(s.total(), 432_000_000);
    for (n, exact_ns) in [
        (1_000_000u64, 4_156_921_938_165.3f64),
        (123_456_789, 46_188_021_325_014.6),
        (431_999_000, 86_399_899_999_942.1),
    ] {
        let got = s.offset_of(n).unwrap().as_nanos() as f64;
        assert!(
            (got - exact_ns).abs() <= 1000.0,
            "n={n}: {got} vs {exact_ns}"
        );
    }
    // 24 one-hour stages: the last request is exactly where the closed form puts it.
    let hours: Vec<StageKind> = (0..24)
        .map(|h| constant(100.0 + 10.0 * h as f64, 3600.0))
        .collect();
    let s = shape(hours);
    let before: f64 = (0..23).map(|h| (100.0 + 10.0 * h as f64) * 3600.0).sum();
    assert_eq!(s.total(), (before + 330.0 * 3600.0) as u64);
    let last = s.total() - 1;
    let want = 23.0 * 3600.0 + (last as f64 - before) / 330.0;
    assert!((s.offset_of(last).unwrap().as_secs_f64() - want).abs() < 1e-6);
}

#[test]
fn sequential_sine_schedule_does_not_drift() {
    // One hour of a 1-minute sine at ~1000/s: 3.6 M tickets solved with warm starts agree with
    // the cold random-access solve and with the integral at the end.
    let s = shape(vec![sine(1000.0, 700.0, 60.0, 3600.0)]);
    let start = Instant::now();
    let mut sched = Schedule::new(s.clone(), start);
    let mut last = None;
    for t in sched.by_ref() {
        last = Some(t);
    }
    let last = last.unwrap();
    let n = last.seq();
    assert_eq!(n + 1, s.total());
    assert_eq!(s.total(), 3_600_000);
    let seq = (last.intended() - start).as_secs_f64();
    let random = s.offset_of(n).unwrap().as_secs_f64();
    assert!((seq - random).abs() < 1e-7, "{seq} vs {random}");
    assert!((sine_area(1000.0, 700.0, 60.0, seq) - n as f64).abs() < 1e-4);
    assert!(sched.next_ticket().is_none());
}

#[test]
fn poisson_mean_and_dispersion() {
    // 1000/s for 100 s, 1000 windows of 100 ms: counts ~ Poisson(100). Total within 4σ
    // (σ = √100000 ≈ 316); dispersion index var/mean within 1 ± 0.15 (its standard error is
    // √(2/999) ≈ 0.045, so ±3.3σ).
    let s = shape(vec![constant(1000.0, 100.0)]).with_arrivals(Arrivals::Poisson, 42);
    let offs = offsets(&s);
    let n = offs.len() as f64;
    assert!((n - 100_000.0).abs() < 4.0 * 316.3, "total {n}");
    let mut bins = vec![0f64; 1000];
    for t in &offs {
        bins[((t / 0.1) as usize).min(999)] += 1.0;
    }
    let mean = bins.iter().sum::<f64>() / 1000.0;
    let var = bins.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / 999.0;
    assert!((var / mean - 1.0).abs() < 0.15, "dispersion {}", var / mean);
    // Gaps are exponential: mean 1 ms, coefficient of variation 1.
    let gaps: Vec<f64> = offs.windows(2).map(|w| w[1] - w[0]).collect();
    let gm = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let gsd = (gaps.iter().map(|g| (g - gm).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
    assert!((gm - 0.001).abs() < 0.00002, "gap mean {gm}");
    assert!((gsd / gm - 1.0).abs() < 0.02, "gap cv {}", gsd / gm);
    assert!(offs.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn poisson_follows_a_ramp() {
    // Non-homogeneous: 0 → 2000/s over 50 s. Per-second counts against the expected
    // N(i+1) − N(i): Pearson's χ² over 50 bins has mean 50 and sd 10; accept below 90.
    let s = shape(vec![ramp(0.0, 2000.0, 50.0)]).with_arrivals(Arrivals::Poisson, 7);
    let offs = offsets(&s);
    let mut bins = [0f64; 50];
    for t in &offs {
        bins[(*t as usize).min(49)] += 1.0;
    }
    let c = s.curve().unwrap();
    let chi2: f64 = (0..50)
        .map(|i| {
            let e = c.cumulative(i as f64 + 1.0) - c.cumulative(i as f64);
            (bins[i] - e).powi(2) / e
        })
        .sum();
    assert!(chi2 < 90.0, "χ² {chi2}: {bins:?}");
    assert!((offs.len() as f64 - 50_000.0).abs() < 4.0 * 224.0);
}

#[test]
fn same_seed_same_schedule() {
    let make =
        |seed| shape(vec![sine(200.0, 100.0, 5.0, 10.0)]).with_arrivals(Arrivals::Poisson, seed);
    let start = Instant::now();
    let a: Vec<Ticket> = Schedule::new(make(9), start).with_mix(&[3, 1]).collect();
    let b: Vec<Ticket> = Schedule::new(make(9), start).with_mix(&[3, 1]).collect();
    let c: Vec<Ticket> = Schedule::new(make(10), start).with_mix(&[3, 1]).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // The mix follows its weights: 3:1.
    let ones = a.iter().filter(|t| t.request() == 1).count() as f64;
    let share = ones / a.len() as f64;
    let sd = (0.25 * 0.75 / a.len() as f64).sqrt();
    assert!((share - 0.25).abs() < 4.0 * sd, "share {share}");
    // No mix: always request 0; uniform arrivals ignore the seed.
    let u: Vec<Ticket> = Schedule::new(shape(vec![constant(10.0, 1.0)]), start)
        .with_mix(&[5])
        .collect();
    assert!(u.iter().all(|t| t.request() == 0));
    assert_eq!(
        offsets(&shape(vec![constant(10.0, 1.0)]).with_arrivals(Arrivals::Uniform, 1)),
        offsets(&shape(vec![constant(10.0, 1.0)]))
    );
}

#[test]
fn count_limited_poisson_sends_exactly_n() {
    let s = Shape::constant_count(100.0, 1000)
        .unwrap()
        .with_arrivals(Arrivals::Poisson, 3);
    assert_eq!(s.total(), 1000);
    let start = Instant::now();
    let mut sched = Schedule::new(s, start);
    assert_eq!(sched.by_ref().count(), 1000);
    assert!(sched.end() >= start + Duration::from_secs(9));
}

#[test]
fn time_and_rate_scales() {
    let day = Shape::from_stages(
        vec![st("day", sine(1000.0, 800.0, 86_400.0, 86_400.0))],
        Vec::new(),
    )
    .unwrap();
    assert_eq!(day.total(), 86_400_000);
    let fast = day.clone().with_scales(60.0, 1.0).unwrap();
    assert_eq!(fast.duration(), Duration::from_secs(24 * 60));
    assert_eq!(fast.total(), 1_440_000);
    assert!((fast.peak_rate().unwrap() - 1800.0).abs() < 1e-6);
    // The rate at run time t is the profile's rate at 60·t.
    let c = day.curve().unwrap();
    let f = fast.curve().unwrap();
    for t in [0.0, 100.0, 333.3, 1000.0] {
        assert!((f.rate_at(t) - c.rate_at(60.0 * t)).abs() < 1e-6);
    }
    let low = day.clone().with_scales(1.0, 0.3).unwrap();
    assert_eq!(low.duration(), day.duration());
    assert_eq!(low.total(), 25_920_000);
    assert!((low.peak_rate().unwrap() - 540.0).abs() < 1e-6);
    assert_eq!(low.rate_scale(), 0.3);
    let both = fast.clone().with_rate_scale(0.5).unwrap();
    assert_eq!((both.time_scale(), both.rate_scale()), (60.0, 0.5));
    assert_eq!(both.with_time_scale(1.0).unwrap().total(), day.total() / 2);
    // Scales replace earlier ones rather than compounding.
    let back = fast.with_scales(1.0, 1.0).unwrap();
    assert_eq!(back, day);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(
            day.clone().with_scales(bad, 1.0).unwrap_err().field,
            "time_scale"
        );
        assert_eq!(
            day.clone().with_scales(1.0, bad).unwrap_err().field,
            "rate_scale"
        );
    }
    assert_eq!(
        day.clone().with_scales(1.0, 1e5).unwrap_err().field,
        "rate_scale"
    );
    // The scaled curve is bounded like a written one: no scale makes a run that never ends or a
    // count that overflows, and a refused scale leaves the shape as it was.
    for tiny in [1e-300, 1e-30, 1e-3] {
        let e = day.clone().with_scales(tiny, 1.0).unwrap_err();
        assert_eq!(e.field, "time_scale", "{tiny}");
        assert!(e.reason.contains("366"), "{}", e.reason);
    }
    assert!(day.clone().with_scales(1.0 / 365.0, 1.0).is_ok());
    let year = Shape::from_stages(
        vec![st("year", constant(10_000.0, 300.0 * 86_400.0))],
        Vec::new(),
    )
    .unwrap();
    let e = year.clone().with_scales(1.0, 1000.0).unwrap_err();
    assert_eq!(e.field, "rate_scale");
    assert!(e.reason.contains("requests"), "{}", e.reason);
    assert_eq!(year.total(), 259_200_000_000);
}

#[test]
fn profile_level_errors() {
    assert_eq!(
        Shape::from_stages(Vec::new(), Vec::new())
            .unwrap_err()
            .field,
        "stage"
    );
    let e = Shape::from_stages(
        vec![st("a", constant(1.0, 1.0)), st("b", ramp(1.0, -3.0, 1.0))],
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!((e.at, e.field), (StageRef::Stage(1), "to"));
    // Zero requests in all.
    let e = Shape::from_stages(vec![st("a", constant(0.1, 1.0))], Vec::new()).unwrap_err();
    assert_eq!(e.field, "rate");
    // Bursts every millisecond for a day: refused, not 345 M pieces.
    let e = Shape::from_stages(
        vec![st(
            "b",
            StageKind::Burst {
                base: 1.0,
                peak: 2.0,
                hold: 0.0005,
                rise: 0.0,
                fall: 0.0,
                every: Some(0.001),
                at: 0.0,
                duration: 86_400.0,
            },
        )],
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(e.field, "every");
}

/// Measures the cost of generating intended times, per ticket, for every shape. Run with
/// `scripts/schedule-bench.sh` (release mode).
#[test]
#[ignore]
fn schedule_cost() {
    let day = 86_400.0;
    let cases: Vec<(&str, Shape)> = vec![
        (
            "constant",
            Shape::constant(100_000.0, Duration::from_secs(200)).unwrap(),
        ),
        ("ramp", shape(vec![ramp(1000.0, 200_000.0, 200.0)])),
        (
            "step",
            shape(vec![StageKind::Step {
                rates: (1..=20).map(|i| i as f64 * 10_000.0).collect(),
                hold: 10.0,
            }]),
        ),
        (
            "burst",
            shape(vec![StageKind::Burst {
                base: 50_000.0,
                peak: 200_000.0,
                hold: 2.0,
                rise: 1.0,
                fall: 1.0,
                every: Some(10.0),
                at: 0.0,
                duration: 200.0,
            }]),
        ),
        ("sine", shape(vec![sine(100_000.0, 80_000.0, 60.0, 200.0)])),
        (
            "table",
            shape(vec![StageKind::Table {
                rates: (0..24).map(|h| 50_000.0 + 4000.0 * h as f64).collect(),
                every: 200.0 / 24.0,
                interpolate: Interpolate::Linear,
                duration: 200.0,
            }]),
        ),
        (
            "replay",
            shape(vec![StageKind::Replay {
                points: (0..=200)
                    .map(|i| (i as f64, 100_000.0 + 50_000.0 * ((i % 7) as f64 / 7.0)))
                    .collect(),
                interpolate: Interpolate::Linear,
            }]),
        ),
        (
            "diurnal+burst",
            Shape::from_stages(
                vec![st("day", sine(100_000.0, 80_000.0, day, day))],
                vec![Overlay {
                    start: 0.0,
                    stage: st("spikes", burst(0.0, 50_000.0, Some(600.0), 60.0, day)),
                }],
            )
            .unwrap()
            .with_scales(432.0, 1.0)
            .unwrap(),
        ),
    ];
    let start = Instant::now();
    println!("schedule cost per ticket (release build):");
    println!(
        "{:<16} {:>12} {:>10} {:>10}",
        "shape", "tickets", "uniform", "poisson"
    );
    for (name, s) in cases {
        let mut cells = Vec::new();
        let mut count = 0;
        for arrivals in [Arrivals::Uniform, Arrivals::Poisson] {
            let s = s.clone().with_arrivals(arrivals, 1);
            // Best of three, so a busy neighbour does not inflate the figure.
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let mut sched = Schedule::new(s.clone(), start);
                let t0 = Instant::now();
                let mut n = 0u64;
                let mut acc = 0u64;
                while let Some(t) = sched.next_ticket() {
                    acc = acc.wrapping_add(t.seq());
                    n += 1;
                }
                std::hint::black_box(acc);
                best = best.min(t0.elapsed().as_nanos() as f64 / n as f64);
                count = n;
            }
            cells.push(best);
        }
        println!(
            "{name:<16} {count:>12} {:>7.1} ns {:>7.1} ns",
            cells[0], cells[1]
        );
    }
}
