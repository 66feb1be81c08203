//! Live progress of a run: on a terminal, one spinner line per app showing its phase and
//! the step in flight (indicatif); otherwise (CI, a pipe, a log file) one plain line per
//! phase change, so a log reads as a timeline.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The display of one run.
#[derive(Debug)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

/// One app's line.
#[derive(Debug)]
pub struct AppLine {
    key: String,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Spinners on a terminal, plain lines elsewhere.
    pub fn new() -> Self {
        Self {
            multi: std::io::stderr().is_terminal().then(MultiProgress::new),
        }
    }

    /// The run is over: leave the cursor below the spinners.
    pub fn done(&self) {
        if self.multi.is_some() {
            errln!();
        }
    }

    /// A line for an app.
    pub fn app(&self, key: &str) -> AppLine {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<32} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(key.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        AppLine {
            key: key.to_string(),
            bar,
        }
    }
}

impl AppLine {
    /// The app entered a phase.
    pub fn phase(&self, phase: &str, reason: Option<&str>) {
        let text = match reason {
            Some(r) => format!("{phase}: {r}"),
            None => phase.to_string(),
        };
        match &self.bar {
            Some(b) => b.set_message(text),
            None => errln!("{}: {text}", self.key),
        }
    }

    /// The step in flight (terminal only; the journal has every step).
    pub fn step(&self, phase: &str, step: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{phase} · {step}"));
        }
    }

    /// A failure worth a line of its own.
    pub fn error(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(format!("{}: {text}", self.key)),
            None => errln!("{}: {text}", self.key),
        }
    }

    /// The app is done (its spinner stops with the final phase).
    pub fn finish(&self, phase: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(phase.to_string());
        }
    }
}
