//! The live terminal UI: one more subscriber to the snapshots a run publishes.
//!
//! ```text
//! run ─► Views (watch: newest snapshot) ─► tui thread: state::App ─► draw ─► stderr
//!                                               ▲
//!             keys (q, space, +/-) ─► Stop / Control ─► pacer (src/control.rs)
//! ```
//!
//! It runs on its own thread, reads snapshots without ever blocking the run (a `watch` channel
//! keeps only the newest), and draws on stderr so that `--json -` can still go to stdout. A slow
//! or stuck terminal delays only the next frame: it cannot change a number, and at the end the
//! run waits for the UI at most [`FINISH_WAIT`] before writing its report. Keys reach the run
//! only through [`Stop`] and [`Control`], the same seams signals and tests use.
//!
//! The terminal is restored on every way out: the thread's guard on normal exit and on error,
//! a panic hook for a panic on the UI or the main thread, and the run's own graceful stop for
//! SIGINT/SIGTERM/SIGHUP (which ends the UI like any other end of run). A panic on an engine
//! thread while the UI is up is kept (its message and place) and printed once the terminal is
//! restored, so that it is neither scribbled over the screen nor lost with it.

mod draw;
mod keys;
mod state;
#[cfg(test)]
mod tests;

pub use draw::draw;
pub use keys::{action, Action};
pub use state::{App, Info, Panel, Point};

use std::io::{IsTerminal, Stderr, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use tokio::sync::watch;

use crate::control::Control;
use crate::record::Snapshot;
use crate::run::{Stop, Views};

/// Longest the end of a run waits for the UI to close (a terminal nobody reads blocks it).
pub const FINISH_WAIT: Duration = Duration::from_secs(2);

/// How often the UI wants a snapshot.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(500);

/// How long the loop waits for a key before looking for a snapshot again.
const TICK: Duration = Duration::from_millis(100);

/// Name of the UI's thread (the panic hook restores the terminal for panics on it).
const THREAD: &str = "metronome-tui";

/// Why the UI could not run (the run then prints progress lines instead).
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("cannot set up the terminal: {0}")]
    Setup(std::io::Error),
    #[error("cannot start the UI thread: {0}")]
    Thread(std::io::Error),
    #[error("terminal I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the terminal stopped taking output; the UI was left behind")]
    Stuck,
}

/// Whether a UI can be shown: stderr is a terminal that can address the cursor.
pub fn available() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var("TERM").map_or(true, |t| !t.is_empty() && t != "dumb")
}

/// Set while the terminal is in the UI's mode, so the panic hook knows to restore it.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set when the UI did not close within [`FINISH_WAIT`]: its terminal is not being read, and
/// writing to it again would block too.
static STUCK: AtomicBool = AtomicBool::new(false);
/// Panics on engine threads while the UI was up, printed once the terminal is restored.
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Most panic messages held (a panicking loop must not grow memory).
const HELD_MAX: usize = 8;

/// Leaves the alternate screen, shows the cursor and ends raw mode, once; then prints the panic
/// messages held while the UI was up.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) && !STUCK.load(Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(std::io::stderr(), LeaveAlternateScreen, cursor::Show);
        let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(PoisonError::into_inner));
        for message in held {
            let _ = writeln!(std::io::stderr(), "{message}");
        }
    }
}

/// Restores the terminal before a panic on the UI or main thread is printed; a panic on an
/// engine thread (caught by the run and reported) is held and printed after the UI closes.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().map(str::to_string);
            if matches!(name.as_deref(), Some(THREAD) | Some("main")) {
                restore();
            } else if ACTIVE.load(Ordering::SeqCst) {
                let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
                if held.len() < HELD_MAX {
                    held.push(format!(
                        "thread '{}' {info}",
                        name.as_deref().unwrap_or("<unnamed>")
                    ));
                }
                return;
            }
            previous(info);
        }));
    });
}

/// Restores the terminal when dropped: on every exit from the UI thread, errors included.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

fn enter() -> Result<(Terminal<CrosstermBackend<Stderr>>, Guard), TuiError> {
    install_panic_hook();
    enable_raw_mode().map_err(TuiError::Setup)?;
    ACTIVE.store(true, Ordering::SeqCst);
    let guard = Guard;
    execute!(std::io::stderr(), EnterAlternateScreen, cursor::Hide).map_err(TuiError::Setup)?;
    let terminal =
        Terminal::new(CrosstermBackend::new(std::io::stderr())).map_err(TuiError::Setup)?;
    Ok((terminal, guard))
}

/// A running UI. [`Session::finish`] ends it and gives the terminal back.
pub struct Session {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), TuiError>>>,
}

impl Session {
    /// Starts the UI on its own thread, subscribed to `views`; its keys act on `stop` and
    /// `control`. The terminal is set up before this returns, so a failure leaves it as it was.
    pub fn start(
        info: Info,
        views: &Views,
        stop: Stop,
        control: Control,
    ) -> Result<Session, TuiError> {
        let (terminal, guard) = enter()?;
        let done = Arc::new(AtomicBool::new(false));
        let ui = Ui {
            app: App::new(info),
            rx: views.subscribe(),
            stop,
            control,
            done: done.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || {
                let _guard = guard;
                ui.run(terminal)
            })
            .map_err(TuiError::Thread)?;
        Ok(Session {
            done,
            thread: Some(thread),
        })
    }

    /// Ends the UI (the run is over) and waits until the terminal is restored.
    pub fn finish(mut self) -> Result<(), TuiError> {
        self.end()
    }

    fn end(&mut self) -> Result<(), TuiError> {
        self.done.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            restore();
            return Ok(());
        };
        // A UI blocked writing to a terminal nobody reads must not hold back the report.
        let waited = Instant::now();
        while !thread.is_finished() && waited.elapsed() < FINISH_WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !thread.is_finished() {
            STUCK.store(true, Ordering::SeqCst);
            return Err(TuiError::Stuck);
        }
        let result = match thread.join() {
            Ok(r) => r,
            // The UI thread panicked: the hook restored the terminal and printed why.
            Err(_) => Ok(()),
        };
        restore();
        result
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// The UI thread's state.
struct Ui {
    app: App,
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    stop: Stop,
    control: Control,
    done: Arc<AtomicBool>,
}

impl Ui {
    fn run<W: Write>(
        mut self,
        mut terminal: Terminal<CrosstermBackend<W>>,
    ) -> Result<(), TuiError> {
        let mut dirty = true;
        while !self.done.load(Ordering::SeqCst) {
            dirty |= self.take_snapshot();
            if dirty {
                terminal.draw(|f| draw(f, &self.app))?;
                dirty = false;
            }
            if event::poll(TICK)? {
                dirty |= self.on_event(event::read()?);
            }
        }
        Ok(())
    }

    /// Takes in the newest snapshot, if there is one not yet seen.
    fn take_snapshot(&mut self) -> bool {
        if !self.rx.has_changed().unwrap_or(false) {
            return false;
        }
        let snap = self.rx.borrow_and_update().clone();
        match snap {
            Some(s) => {
                self.app.push(s);
                true
            }
            None => false,
        }
    }

    fn on_event(&mut self, e: Event) -> bool {
        match e {
            Event::Key(k) => match action(k) {
                Some(a) => {
                    self.act(a);
                    true
                }
                None => false,
            },
            Event::Resize(..) => true,
            _ => false,
        }
    }

    fn act(&mut self, a: Action) {
        let app = &mut self.app;
        match a {
            Action::Quit => {
                app.stopping = app.stopping.saturating_add(1);
                if app.stopping == 1 {
                    self.stop.graceful.cancel();
                } else {
                    self.stop.abort.cancel();
                    app.say(
                        "stopping now: what is still in flight is cut (censored into the latency)",
                    );
                }
            }
            Action::Help => app.help = !app.help,
            Action::Panel(by) => app.panel = app.panel.next(by),
            Action::Pause | Action::Rate(_) if app.info.shape.is_closed_loop() => {
                app.say("closed loop (--rate max) has no schedule to pause or rescale");
            }
            Action::Pause if app.stopping > 0 => app.say("stopping: nothing left to pause"),
            Action::Pause => match self.control.toggle_pause(Instant::now()) {
                Ok(true) => app.say("paused: nothing is sent; the rest of the schedule waits"),
                Ok(false) => app.say("resumed: later requests are due later by the pause"),
                Err(e) => app.say(e.to_string()),
            },
            Action::Rate(steps) => match self.control.step_rate(steps, Instant::now()) {
                Ok(f) => app.say(format!("rate ×{f:.2} of the plan from now on")),
                Err(e) => app.say(e.to_string()),
            },
        }
    }
}
