//! Deterministic, realistic log lines.
//!
//! Access lines mix IPv4 and IPv6 clients, API and page paths with query
//! strings, browser, crawler and tool user agents, `-` referers and sizes,
//! and a few escaped quotes, so that an Apache combined line averages about
//! 195 bytes — the size the parser's performance goal is stated for.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The seed every corpus is generated from.
pub const SEED: u64 = 0x5_4a2d_11e5;

/// The custom Nginx format the benchmarks compile (an `upstream`-style
/// format with ISO time and timings).
pub const NGINX_CUSTOM_FORMAT: &str = r#"$remote_addr - $remote_user [$time_iso8601] "$request" $status $body_bytes_sent $request_time "$http_referer" "$http_user_agent""#;

const METHODS: [&str; 6] = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const PATHS: [&str; 8] = [
    "/index.html",
    "/api/v1/products/{id}?page={n}&sort=price",
    "/api/v1/users/{id}/orders",
    "/static/js/app.{id}.min.js",
    "/images/catalog/{id}/thumbnail_large.webp",
    "/search?q=wireless+headphones&category={n}",
    "/checkout/cart/{id}",
    "/health",
];
const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/7.68.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "python-requests/2.31.0",
];
const REFERERS: [&str; 4] = [
    "-",
    "https://www.example.com/",
    "https://www.example.com/shop/category/electronics?ref=\\\"nav\\\"",
    "https://www.google.com/search?q=example",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const STATUSES: [u16; 8] = [200, 200, 200, 200, 304, 404, 201, 500];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items
        .get(rng.random_range(0..items.len()))
        .copied()
        .unwrap_or_default()
}

fn client(rng: &mut StdRng) -> String {
    if rng.random_bool(0.1) {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.random::<u16>(),
            rng.random::<u16>(),
            rng.random::<u16>()
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            rng.random_range(1..224u8),
            rng.random::<u8>(),
            rng.random::<u8>(),
            rng.random_range(1..255u8)
        )
    }
}

fn request(rng: &mut StdRng) -> String {
    let path = pick(rng, &PATHS)
        .replace("{id}", &rng.random_range(1..100_000u32).to_string())
        .replace("{n}", &rng.random_range(1..20u32).to_string());
    format!("{} {path} HTTP/1.1", pick(rng, &METHODS))
}

fn clf_time(rng: &mut StdRng) -> String {
    format!(
        "{:02}/{}/2024:{:02}:{:02}:{:02} +0000",
        rng.random_range(1..29u8),
        pick(rng, &MONTHS),
        rng.random_range(0..24u8),
        rng.random_range(0..60u8),
        rng.random_range(0..60u8)
    )
}

fn size(rng: &mut StdRng, status: u16) -> String {
    if status == 304 {
        "-".to_owned()
    } else {
        rng.random_range(0..60_000u32).to_string()
    }
}

fn status(rng: &mut StdRng) -> u16 {
    STATUSES
        .get(rng.random_range(0..STATUSES.len()))
        .copied()
        .unwrap_or(200)
}

/// `n` Apache combined lines.
pub fn apache_combined(n: usize) -> Vec<String> {
    apache_combined_lines(n).collect()
}

/// The lines of [`apache_combined`], one at a time (for corpora too large
/// to hold).
pub fn apache_combined_lines(n: usize) -> impl Iterator<Item = String> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..n).map(move |_| {
        let status = status(&mut rng);
        format!(
            r#"{} - - [{}] "{}" {status} {} "{}" "{}""#,
            client(&mut rng),
            clf_time(&mut rng),
            request(&mut rng),
            size(&mut rng, status),
            pick(&mut rng, &REFERERS),
            pick(&mut rng, &AGENTS)
        )
    })
}

/// `n` Nginx `main` lines (combined + `"$http_x_forwarded_for"`).
pub fn nginx_main(n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..n)
        .map(|_| {
            let status = status(&mut rng);
            let forwarded = if rng.random_bool(0.3) {
                client(&mut rng)
            } else {
                "-".to_owned()
            };
            format!(
                r#"{} - - [{}] "{}" {status} {} "{}" "{}" "{forwarded}""#,
                client(&mut rng),
                clf_time(&mut rng),
                request(&mut rng),
                size(&mut rng, status).replace('-', "0"),
                pick(&mut rng, &REFERERS).replace("\\\"", "\\x22"),
                pick(&mut rng, &AGENTS)
            )
        })
        .collect()
}

/// `n` lines in [`NGINX_CUSTOM_FORMAT`].
pub fn nginx_custom(n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..n)
        .map(|_| {
            let status = status(&mut rng);
            format!(
                r#"{} - - [2024-01-{:02}T{:02}:{:02}:{:02}+09:00] "{}" {status} {} {}.{:03} "{}" "{}""#,
                client(&mut rng),
                rng.random_range(1..29u8),
                rng.random_range(0..24u8),
                rng.random_range(0..60u8),
                rng.random_range(0..60u8),
                request(&mut rng),
                size(&mut rng, status).replace('-', "0"),
                rng.random_range(0..3u8),
                rng.random_range(0..1000u16),
                pick(&mut rng, &REFERERS).replace("\\\"", "\\x22"),
                pick(&mut rng, &AGENTS)
            )
        })
        .collect()
}

/// `n` JSON application-log lines of the documented shape.
pub fn application(n: usize) -> Vec<String> {
    application_lines(n).collect()
}

/// The lines of [`application`], one at a time.
pub fn application_lines(n: usize) -> impl Iterator<Item = String> {
    const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
    const LOGGERS: [&str; 3] = [
        "com.example.UserService",
        "com.example.OrderService",
        "com.example.PaymentGateway",
    ];
    const MESSAGES: [&str; 4] = [
        "User login successful",
        "Order processing delayed",
        "Payment authorised",
        "Cache miss for \\\"product:42\\\"",
    ];
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..n).map(move |i| {
            format!(
                r#"{{"timestamp": "2024-01-15T10:{:02}:{:02}.{:03}Z", "level": "{}", "logger": "{}", "message": "{}", "user_id": {}, "request_id": "req-{i:06}", "duration_ms": {}}}"#,
                rng.random_range(0..60u8),
                rng.random_range(0..60u8),
                rng.random_range(0..1000u16),
                pick(&mut rng, &LEVELS),
                pick(&mut rng, &LOGGERS),
                pick(&mut rng, &MESSAGES),
                rng.random_range(1..1_000_000u32),
                rng.random_range(0..5000u32),
            )
    })
}

/// `n` lines of a Java service's log (logback's pattern layout): one event
/// in five is an ERROR with a stack trace of 4 to 16 lines under it (an
/// exception header, frames, sometimes a cause), the others one line each.
pub fn java_lines(n: usize) -> impl Iterator<Item = String> {
    const LOGGERS: [&str; 3] = [
        "c.e.orders.OrderController",
        "c.e.orders.OrderService",
        "c.e.payments.PaymentGateway",
    ];
    const MESSAGES: [&str; 3] = [
        "Order processed in 12 ms",
        "Cache miss for product:42",
        "Payment authorised for order 8812",
    ];
    const FRAMES: [&str; 4] = [
        "\tat com.example.orders.OrderService.place(OrderService.java:88)",
        "\tat com.example.orders.OrderController.create(OrderController.java:41)",
        "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)",
        "\tat java.base/java.lang.Thread.run(Thread.java:840)",
    ];
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut pending: Vec<String> = Vec::new();
    let mut event = 0u64;
    std::iter::from_fn(move || {
        if pending.is_empty() {
            event += 1;
            let time = format!(
                "2024-01-15 10:{:02}:{:02}.{:03}",
                rng.random_range(0..60u8),
                rng.random_range(0..60u8),
                rng.random_range(0..1000u16)
            );
            let thread = rng.random_range(1..200u16);
            if event.is_multiple_of(5) {
                pending.push(format!(
                    "{time} ERROR [http-nio-8080-exec-{thread}] c.e.orders.OrderController - Order {event} failed"
                ));
                pending.push(format!(
                    "java.lang.IllegalStateException: stock is negative for order {event}"
                ));
                for _ in 0..rng.random_range(2..8u8) {
                    pending.push(pick(&mut rng, &FRAMES).to_owned());
                }
                if rng.random_bool(0.5) {
                    pending.push("Caused by: java.sql.SQLException: deadlock detected".to_owned());
                    for _ in 0..rng.random_range(1..6u8) {
                        pending.push(pick(&mut rng, &FRAMES).to_owned());
                    }
                    pending.push("\t... 42 common frames omitted".to_owned());
                }
            } else {
                pending.push(format!(
                    "{time} INFO  [http-nio-8080-exec-{thread}] {} - {}",
                    pick(&mut rng, &LOGGERS),
                    pick(&mut rng, &MESSAGES)
                ));
            }
            pending.reverse();
        }
        pending.pop()
    })
    .take(n)
}

/// `n` syslog lines: half RFC 3164 as `/var/log/syslog` holds them (no
/// PRI, a tag and process id), half RFC 5424 with structured data.
pub fn syslog_lines(n: usize) -> impl Iterator<Item = String> {
    const PROGRAMS: [&str; 4] = ["sshd", "CRON", "systemd", "nginx"];
    const MESSAGES: [&str; 4] = [
        "Accepted publickey for deploy from 10.0.0.5 port 52144 ssh2",
        "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)",
        "Started Session 42 of user deploy.",
        "GET /health 200 0.002",
    ];
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..n).map(move |i| {
        let (h, m, s) = (
            rng.random_range(0..24u8),
            rng.random_range(0..60u8),
            rng.random_range(0..60u8),
        );
        let program = pick(&mut rng, &PROGRAMS);
        let message = pick(&mut rng, &MESSAGES);
        let pid = rng.random_range(1..65536u32);
        if i % 2 == 0 {
            format!("Jan 15 {h:02}:{m:02}:{s:02} web-{} {program}[{pid}]: {message}", i % 8)
        } else {
            format!(
                r#"<{}>1 2024-01-15T{h:02}:{m:02}:{s:02}.{:06}Z web-{}.example.com {program} {pid} ID{} [origin ip="10.0.{}.{}" software="{program}"] {message}"#,
                rng.random_range(0..192u16),
                rng.random_range(0..1_000_000u32),
                i % 8,
                rng.random_range(1..100u8),
                rng.random_range(0..256u16),
                rng.random_range(0..256u16)
            )
        }
    })
}

/// The columns of [`csv_lines`].
pub const CSV_COLUMNS: [&str; 6] = ["time", "client", "method", "path", "status", "user_agent"];

/// `n` CSV lines of [`CSV_COLUMNS`]: a quoted user agent in each, one in
/// four with a comma or doubled quote inside a quoted field.
pub fn csv_lines(n: usize) -> impl Iterator<Item = String> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..n).map(move |i| {
        let path = if i % 4 == 0 {
            format!("\"/search?q=red,green&page={}\"", rng.random_range(1..50u8))
        } else {
            format!("/item/{}", rng.random_range(1..100_000u32))
        };
        let agent = pick(&mut rng, &AGENTS).replace('"', "\"\"");
        format!(
            "2024-01-15T10:{:02}:{:02}Z,10.0.{}.{},GET,{path},{},\"{agent}\"",
            rng.random_range(0..60u8),
            rng.random_range(0..60u8),
            rng.random_range(0..256u16),
            rng.random_range(0..256u16),
            pick(&mut rng, &["200", "200", "304", "404"]),
        )
    })
}

/// The mean length in bytes of `lines`.
pub fn mean_len(lines: &[String]) -> f64 {
    if lines.is_empty() {
        return 0.0;
    }
    let total: usize = lines.iter().map(String::len).sum();
    total as f64 / lines.len() as f64
}
