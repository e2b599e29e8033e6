//! The live progress display: a bar over the measured window (or the request count) with the
//! running request and error counts. It only reads the workers' atomic counters, and is
//! hidden when stdout is not a terminal (pipes, CI, tests).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the bar counts towards.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// A measured window of this length.
    Time(Duration),
    /// This many measured requests.
    Requests(u64),
}

/// A progress bar, or nothing when it must not be shown.
pub struct Progress {
    bar: Option<ProgressBar>,
    goal: Goal,
}

impl Progress {
    /// A bar towards `goal`, shown only if `wanted` and stdout is a terminal.
    pub fn new(wanted: bool, goal: Goal) -> Self {
        let bar = (wanted && std::io::stdout().is_terminal()).then(|| {
            let length = match goal {
                Goal::Time(window) => window.as_millis() as u64,
                Goal::Requests(n) => n,
            };
            let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("warming up");
            bar
        });
        Self { bar, goal }
    }

    /// Shows the counts so far; `measure_start` is when measuring began.
    pub fn update(&self, measure_start: Instant, done: u64, ok: u64) {
        let Some(bar) = &self.bar else { return };
        let now = Instant::now();
        if now < measure_start {
            bar.tick();
            return;
        }
        let position = match self.goal {
            Goal::Time(_) => (now - measure_start).as_millis() as u64,
            Goal::Requests(_) => done,
        };
        bar.set_position(position);
        let rate = done as f64 / (now - measure_start).as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{done} requests, {} errors, {rate:.0} req/s",
            done - ok.min(done)
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
