//! Thin binary: parse flags, build a runtime, run, print, exit with a documented code.
//! Exit codes: 0 ok, 2 bad input or target unreachable before the start, 3 untrustworthy
//! measurement, 4 internal error (a panic in the engine; the report is still written), 130
//! stopped before the start, 1 a threshold failed or a clear regression against the baseline
//! (3 and 4 take precedence).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use metronome::cli::{Cli, Command, CompareArgs, DemoArgs, ProfileCommand, RunArgs, ServeArgs};
use metronome::gate::compare::{self, Side};
use metronome::gate::until::{UntilConfident, UntilReport};
use metronome::gate::windows::{Seen, Watcher};
use metronome::gate::{junit, Gate};
use metronome::report::JsonOut;
use metronome::serve::Server;
use metronome::{demo, tui, Control, Plan, Report, Stop, Views};

const EXIT_BAD_INPUT: u8 = 2;
/// Stopped by a signal before the clock started (128 + SIGINT, as shells report it).
const EXIT_STOPPED: u8 = 130;

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(&format!("error: {e:#}\n"));
            let stopped = matches!(
                e.downcast_ref::<metronome::Error>(),
                Some(metronome::Error::Stopped)
            );
            ExitCode::from(if stopped {
                EXIT_STOPPED
            } else {
                EXIT_BAD_INPUT
            })
        }
    }
}

/// Writes to stdout without `print!`, which panics (exit 101) when stdout is closed or full. A
/// closed pipe (`metronome ... | head`) is a quiet end: the reader has what it wanted. Any other
/// failure (`> /dev/full`: no space) is one line on stderr; either way the exit code stays the
/// command's own, since what was measured or checked does not change with where it is printed.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => say(&format!("error: cannot write to stdout: {e}\n")),
    }
}

/// Writes to stderr, ignoring failure: there is nowhere left to report it.
fn say(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// One glibc malloc arena instead of one per thread: the hot path allocates little, but the
/// per-interval windows and per-connection buffers are allocated on one runtime thread and freed
/// on another, and per-thread arenas then hold on to the freed memory. Measured at maximum rate on
/// 2 threads: RSS 21-22 MiB with per-thread arenas, 14.6 MiB with one, same CPU per request
/// (docs/performance.md).
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called first thing, before any other thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Serve(args) => serve(args),
        Command::Demo(args) => demo(args),
        Command::Profile(cmd) => profile(cmd),
        Command::Compare(args) => compare_reports(args),
    }
}

/// `profile show` / `profile check`: read and validate only, never a request.
fn profile(cmd: ProfileCommand) -> anyhow::Result<u8> {
    match cmd {
        ProfileCommand::Show(args) => {
            let p = args.profile()?;
            emit(&metronome::profile::show(
                &p,
                args.width.into(),
                args.height.into(),
            ));
            Ok(0)
        }
        ProfileCommand::Check(args) => {
            let mut bad = 0;
            for file in &args.files {
                match metronome::profile::check(file) {
                    Ok(p) => emit(&format!("{}: ok ({})\n", file.display(), check_line(&p))),
                    Err(e) => {
                        say(&format!("error: {e}\n"));
                        bad += 1;
                    }
                }
            }
            Ok(if bad > 0 { EXIT_BAD_INPUT } else { 0 })
        }
    }
}

fn check_line(p: &metronome::profile::Profile) -> String {
    let s = &p.shape;
    let requests = match p.requests.len() {
        0 => String::new(),
        1 => ", 1 request".to_string(),
        n => format!(", a mix of {n} requests"),
    };
    let retry = p
        .retry
        .as_ref()
        .map(|r| format!("; retries {}", r.describe()))
        .unwrap_or_default();
    format!(
        "{} stage(s), {} requests over {}, peak {}/s{requests}{retry}",
        s.stages().len(),
        s.total(),
        humantime::format_duration(Duration::from_millis(s.duration().as_millis() as u64)),
        s.peak_rate().map_or("-".to_string(), |r| format!("{r:.0}"))
    )
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let n = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // One core: a current-thread runtime avoids the work-stealing scheduler's wake-up machinery.
    let mut b = if n <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(n);
        b
    };
    b.enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    let plan = args.plan()?;
    // Thresholds and the baseline are checked before anything is sent.
    let gate = args.gate(&plan)?;
    let baseline = args.baseline.as_deref().map(compare::load).transpose()?;
    let limits = compare::Limits::parse(&args.max_regression).map_err(|reason| {
        metronome::Error::invalid("--max-regression", args.max_regression.join(" "), reason)
    })?;
    // Claimed before anything is sent: an unwritable path is bad input, not a lost report.
    let json = args
        .json
        .as_deref()
        .map(|path| JsonOut::claim(path, &args.inputs()))
        .transpose()?;
    let junit_out = args
        .junit
        .as_deref()
        .map(|path| JsonOut::claim(path, &args.inputs()))
        .transpose()?;
    let rt = runtime(args.threads.map(usize::from))?;
    let until = args.until_confident()?;
    let max_duration = plan.shape.duration();
    let ui = (!args.no_tui && !args.quiet).then(|| tui::Info::for_plan(&plan));
    let (mut report, seen, confident) = rt.block_on(run_live(plan, ui, &gate, until.as_ref()))?;
    if let Some(rule) = &until {
        let at_end = confident.and_then(|h| h.join().ok()).flatten();
        report.until_confident = Some(UntilReport::new(
            rule,
            report_interval(&report, rule),
            at_end,
            max_duration,
        ));
    }
    let mut seen = seen
        .map(|h| h.join().map(Watcher::into_seen).unwrap_or_default())
        .unwrap_or_else(Seen::default);
    seen.finish(report.elapsed_s);
    judge(&mut report, &gate, &seen, baseline.map(|b| (b, limits)))?;
    let code = finish(&report, json)?;
    if let Some(out) = junit_out {
        out.write_text(&junit::render("metronome run", &junit::run_cases(&report)))?;
    }
    Ok(code)
}

/// Thresholds and the baseline comparison, once the run is over.
fn judge(
    report: &mut Report,
    gate: &Gate,
    seen: &Seen,
    baseline: Option<(Side, compare::Limits)>,
) -> anyhow::Result<()> {
    if !gate.is_empty() {
        report.thresholds = Some(gate.judge(report, seen));
    }
    if let Some((base, limits)) = baseline {
        let value = serde_json::to_value(&*report).context("cannot read back this run's report")?;
        let new = Side::from_json("this run", &value)?;
        report.baseline = Some(compare::compare(&[base], &[new], &limits));
    }
    Ok(())
}

/// Runs `plan` under the terminal UI when one is wanted and stderr is a terminal, else with the
/// progress lines (if the plan asks for them). The numbers are the same either way: the UI only
/// reads the snapshots the run publishes.
async fn run_live(
    mut plan: Plan,
    ui: Option<tui::Info>,
    gate: &Gate,
    until: Option<&UntilConfident>,
) -> anyhow::Result<Live> {
    let stop = Stop::new();
    let control = Control::new();
    let mut views = Views::default();
    let mut session = None;
    if let Some(info) = ui.filter(|_| tui::available()) {
        let live = Views::every(tui::SNAPSHOT_EVERY);
        match tui::Session::start(info, &live, stop.clone(), control.clone()) {
            Ok(s) => {
                session = Some(s);
                views = live;
                plan.progress = false;
            }
            Err(e) => say(&format!("warning: {e}; printing progress lines instead\n")),
        }
    }
    watch_signals(stop.clone(), plan.limits.grace, session.is_some());
    // Per-window thresholds and --abort-on-fail: one more snapshot subscriber.
    let watcher = if Watcher::needed(gate) {
        let w = Watcher::new(gate, stop.clone(), plan.shape.duration(), views.interval());
        Some(
            w.spawn(&views)
                .context("cannot start the thresholds' window watcher")?,
        )
    } else {
        None
    };
    let confident = match until {
        Some(rule) => Some(
            rule.spawn(&views, stop.clone())
                .context("cannot start the --until-confident watcher")?,
        ),
        None => None,
    };
    let report = metronome::run_steered(&plan, stop, views, control).await;
    if let Some(s) = session {
        match s.finish() {
            // Nobody reads that terminal: a warning on it would block too.
            Ok(()) | Err(metronome::tui::TuiError::Stuck) => {}
            Err(e) => say(&format!("warning: the terminal UI failed: {e}\n")),
        }
    }
    Ok((report?, watcher, confident))
}

/// A finished run, the window watcher's findings and when --until-confident was reached.
type Live = (
    Report,
    Option<std::thread::JoinHandle<Watcher>>,
    Option<std::thread::JoinHandle<Option<f64>>>,
);

/// The --until-confident figure's interval in the final report, from its lossless histograms.
fn report_interval(
    report: &Report,
    rule: &UntilConfident,
) -> Option<metronome::gate::confidence::Interval> {
    let clocks = metronome::record::Clocks {
        latency: report.histograms.latency.clone(),
        service_time: report.histograms.service_time.clone(),
        send_lag: report.histograms.send_lag.clone(),
        ..Default::default()
    };
    rule.interval(&clocks)
}

/// Writes the JSON report file first, so that nothing that happens to stdout can lose it, then
/// prints the text report (on stderr when the JSON goes to stdout).
fn finish(report: &Report, json: Option<JsonOut>) -> anyhow::Result<u8> {
    let text = report.to_text();
    match json {
        Some(JsonOut::Stdout) => {
            say(&text);
            let mut json = report.to_json();
            json.push('\n');
            emit(&json);
        }
        Some(file) => {
            let written = file.write(report);
            emit(&text);
            written?;
        }
        None => emit(&text),
    }
    Ok(report.exit_code())
}

/// `metronome compare`: reads the reports, prints the table, writes JSON/JUnit if asked; exit
/// 3 if an input was untrustworthy, 1 on a clear regression, else 0.
fn compare_reports(args: CompareArgs) -> anyhow::Result<u8> {
    let (base, new) = args.sides()?;
    let limits = args.limits()?;
    let inputs: Vec<std::path::PathBuf> = base.iter().chain(&new).cloned().collect();
    let json = args
        .json
        .as_deref()
        .map(|p| JsonOut::claim(p, &inputs))
        .transpose()?;
    let junit_out = args
        .junit
        .as_deref()
        .map(|p| JsonOut::claim(p, &inputs))
        .transpose()?;
    let load = |files: &[std::path::PathBuf]| {
        files
            .iter()
            .map(|f| compare::load(f))
            .collect::<Result<Vec<_>, _>>()
    };
    let (base, new) = (load(&base)?, load(&new)?);
    let c = compare::compare(&base, &new, &limits);
    let text = compare::render(&c);
    match json {
        Some(JsonOut::Stdout) => {
            say(&text);
            emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&c).unwrap_or_default()
            ));
        }
        Some(out) => {
            out.write_text(&format!(
                "{}\n",
                serde_json::to_string_pretty(&c).unwrap_or_default()
            ))?;
            emit(&text);
        }
        None => emit(&text),
    }
    if let Some(out) = junit_out {
        out.write_text(&junit::render(
            "metronome compare",
            &junit::compare_run_cases(&c),
        ))?;
    }
    Ok(c.exit_code())
}

/// First SIGINT/SIGTERM: stop scheduling and drain; second: stop waiting at once. `quiet`: say
/// nothing (the terminal UI shows the stop itself; a line would be printed over it).
fn watch_signals(stop: Stop, grace: std::time::Duration, quiet: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    // A hangup (the SSH session of a long game day dropped) stops the run like SIGTERM, so its
    // report is still written; unless hangups were ignored when we started (`nohup`).
    let mut hup = if hangup_ignored() {
        None
    } else {
        signal(SignalKind::hangup()).ok()
    };
    tokio::spawn(async move {
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        let mut seen = 0;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                _ = term.recv() => {}
                Some(()) = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            seen += 1;
            if quiet {
                if seen == 1 {
                    stop.graceful.cancel();
                    continue;
                }
                stop.abort.cancel();
                return;
            }
            // `say`, not `eprintln!`: after a hangup stderr may be gone, and that must not panic.
            if seen == 1 {
                say(&format!(
                    "stopping: nothing more is sent (requests already due but not yet sent are counted as unsent); waiting up to {} for those in flight (signal again to stop now)\n",
                    humantime::format_duration(grace)
                ));
                stop.graceful.cancel();
            } else {
                say("stopping now; unfinished requests are cut (censored into the latency) and counted as cancelled\n");
                stop.abort.cancel();
                return;
            }
        }
    });
}

/// Whether SIGHUP is ignored, as under `nohup`: then a hangup must not stop the run.
fn hangup_ignored() -> bool {
    // SAFETY: `sigaction` with a null new action only reads the current disposition into `old`,
    // a zeroed plain C struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let config = args.config();
    let rt = runtime(None)?;
    rt.block_on(async {
        let server = Server::start(config).await?;
        // Ctrl-C or SIGTERM (a container or service manager stopping it) ends it with its
        // summary; so does --duration. The handlers are in place before it says it listens.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        eprintln!(
            "metronome serve: listening on http://{} (HTTP/1.1 and h2c; gRPC metronome.demo.v1.Demo with reflection at grpc://{0}); Ctrl-C to stop",
            server.local_addr()
        );
        let stopped = async {
            match (term.as_mut(), int.as_mut()) {
                (Some(t), Some(i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        let until = async {
            match args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = until => {}
            _ = stopped => {}
        }
        let paths = server.received_by_path();
        let stats = server.shutdown().await;
        say(&format!("metronome serve: {}\n", stats.summary_line()));
        if paths.len() > 1 {
            let list: Vec<String> = paths.iter().map(|(p, n)| format!("{p} {n}")).collect();
            say(&format!("metronome serve: by path: {}\n", list.join(", ")));
        }
        Ok::<_, anyhow::Error>(0)
    })
}

fn demo(args: DemoArgs) -> anyhow::Result<u8> {
    let json = args
        .json
        .as_deref()
        .map(|path| JsonOut::claim(path, &[]))
        .transpose()?;
    let rt = runtime(None)?;
    let report = rt.block_on(async {
        let server = Server::start(demo::target_config()).await?;
        let url = if args.grpc {
            format!("grpc://{}", server.local_addr())
        } else {
            format!("http://{}/", server.local_addr())
        };
        say(&demo::intro(&url, args.grpc));
        let plan = demo::plan(&url, args.duration, args.grpc)?;
        let ui = (!args.no_tui).then(|| demo::ui_info(&plan, &url));
        let (report, ..) = run_live(plan, ui, &Gate::default(), None).await?;
        let stats = server.shutdown().await;
        say(&format!("built-in target: {}\n", stats.summary_line()));
        Ok::<_, anyhow::Error>(report)
    })?;
    finish(&report, json)
}
