//! Progress bars and warnings that do not tear each other apart on the terminal.
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::sync::Mutex;

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// A progress bar with ETA; warnings printed while it lives go above it.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    *ACTIVE.lock().unwrap() = Some(pb.clone());
    pb
}

/// Print a line (to stderr) without breaking an active progress bar.
pub fn note(msg: &str) {
    match ACTIVE.lock().unwrap().as_ref() {
        Some(pb) if !pb.is_finished() => pb.suspend(|| eprintln!("{msg}")),
        _ => eprintln!("{msg}"),
    }
}

pub fn warn(msg: &str) {
    note(&format!("warning: {msg}"));
}

/// Warn once per distinct message (e.g. the same defect seen on every epoch).
pub fn warn_once(msg: &str) {
    let mut seen = SEEN.lock().unwrap();
    if seen.get_or_insert_with(HashSet::new).insert(msg.to_string()) {
        drop(seen);
        warn(msg);
    }
}
