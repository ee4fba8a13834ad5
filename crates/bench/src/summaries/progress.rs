//! Progress display for the benchmark's phases (drawn on stderr, hidden when it is not a
//! terminal, so test logs stay clean).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `steps` steps of one phase; the message says what runs now.
pub fn steps(phase: &str, steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {prefix} [{bar:30}] {pos}/{len} {wide_msg} ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(phase.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A spinner for one step of unknown length, such as a refresh.
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
