//! The progress bar of `incc bench`, on stderr and only when it is worth drawing.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// A bar on stderr for `total` steps, drawn only when stderr is a terminal and the steps,
/// judged by the first, will take more than a second (see [`Bar::step`]).
pub struct Bar {
    bar: ProgressBar,
    started: Instant,
    total: u64,
    shown: bool,
}

impl Bar {
    pub fn new(total: u64) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{msg:>8} [{bar:30}] {pos}/{len} {elapsed}<{eta}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar { bar, started: Instant::now(), total, shown: false }
    }

    /// One step done; the bar appears once the whole job looks longer than a second.
    pub fn step(&mut self, msg: &'static str) {
        self.bar.set_message(msg);
        self.bar.inc(1);
        let done = self.bar.position().max(1);
        let expected = self.started.elapsed().as_secs_f64() / done as f64 * self.total as f64;
        if !self.shown && expected > 1.0 && std::io::stderr().is_terminal() {
            self.shown = true;
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
