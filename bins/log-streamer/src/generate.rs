//! `--generate-test-logs`: the lab's mode — realistic Apache, Nginx and
//! application lines appended to the configured files at a steady rate,
//! with a small share of malformed lines.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::settings::LogKind;

/// The share of generated lines that are malformed on purpose (1 in 50):
/// enough to see dead letters in every run, well under the lab's 5%
/// parse-failure bar.
pub(crate) const MALFORMED_ONE_IN: u32 = 50;

const IPS: [&str; 8] = [
    "192.168.1.100",
    "10.0.0.50",
    "203.0.113.10",
    "198.51.100.7",
    "2001:db8::1",
    "172.16.4.20",
    "192.168.1.101",
    "10.1.2.3",
];
const REQUESTS: [(&str, &str); 8] = [
    ("GET", "/index.html"),
    ("GET", "/api/orders"),
    ("POST", "/api/users"),
    ("DELETE", "/api/orders/123"),
    ("GET", "/images/logo.png"),
    ("PUT", "/api/users/42"),
    ("GET", "/search?q=kinesis&page=2"),
    ("GET", "/health"),
];
const STATUSES: [u16; 8] = [200, 200, 200, 201, 204, 304, 404, 500];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
    "curl/7.68.0",
    "axios/0.21.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
];
const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
const LOGGERS: [(&str, &str); 3] = [
    ("com.example.UserService", "User login successful"),
    ("com.example.OrderService", "Order processing delayed"),
    ("com.example.PaymentService", "Payment \"authorized\""),
];

fn pick<T: Copy + Default>(rng: &mut impl Rng, items: &[T]) -> T {
    items.choose(rng).copied().unwrap_or_default()
}

/// One line of `kind` at `now`.
pub(crate) fn line(kind: LogKind, rng: &mut impl Rng, now: time::OffsetDateTime, n: u64) -> String {
    if rng.random_ratio(1, MALFORMED_ONE_IN) {
        return match rng.random_range(0..3) {
            0 => "this is not a log line".to_owned(),
            1 => format!(
                "{} - - [not a date] \"GET / HTTP/1.1\" abc",
                pick(rng, &IPS)
            ),
            _ => "{\"timestamp\": \"2024-01-15T10:30:45Z\", \"level\": ".to_owned(),
        };
    }
    match kind {
        LogKind::Application => {
            let (logger, message) = pick(rng, &LOGGERS);
            let timestamp = now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            serde_json::json!({
                "timestamp": timestamp,
                "level": pick(rng, &LEVELS),
                "logger": logger,
                "message": message,
                "user_id": rng.random_range(10_000..20_000),
                "request_id": format!("req-{n:06}"),
            })
            .to_string()
        }
        _ => {
            let (method, path) = pick(rng, &REQUESTS);
            let clf = time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
            );
            let timestamp = now.format(&clf).unwrap_or_default();
            let size = rng.random_range(0..50_000);
            format!(
                "{} - - [{timestamp}] \"{method} {path} HTTP/1.1\" {} {size} \"{}\" \"{}\"",
                pick(rng, &IPS),
                pick(rng, &STATUSES),
                if rng.random_ratio(1, 2) {
                    "-"
                } else {
                    "https://example.com/"
                },
                pick(rng, &AGENTS),
            )
        }
    }
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
