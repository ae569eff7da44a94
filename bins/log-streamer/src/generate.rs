//! `--generate-test-logs`: the lab's mode — realistic Apache, Nginx and
//! application lines appended to the configured files at a steady rate,
//! with a small share of malformed lines (`shardline-generate`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shardline_generate::{LineShape, log_line};

use crate::settings::LogKind;

/// Line `n` of an entry of `kind`.
fn line(kind: LogKind, rng: &mut impl rand::Rng, now: time::OffsetDateTime, n: u64) -> String {
    let shape = match kind {
        LogKind::Application => LineShape::Application,
        _ => LineShape::Access,
    };
    log_line(shape, rng, now, n)
}

/// Appends `rate` lines per second to `path` while `running`; returns the
/// lines written.
pub(crate) fn run(
    path: &Path,
    kind: LogKind,
    rate: u32,
    running: &Arc<AtomicBool>,
) -> std::io::Result<u64> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut rng = rand::rng();
    let started = Instant::now();
    let mut written = 0u64;
    let rate = u64::from(rate.max(1));
    while running.load(Ordering::Relaxed) {
        let due = started.elapsed().as_millis() as u64 * rate / 1000;
        if written < due {
            // Reopened for each burst, as a logging library that survives
            // rotation does.
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let now = time::OffsetDateTime::now_utc();
            let mut text = String::new();
            while written < due {
                written += 1;
                text.push_str(&line(kind, &mut rng, now, written));
                text.push('\n');
            }
            file.write_all(text.as_bytes())?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(written)
}
