use std::path::Path;
use std::sync::Arc;

use super::*;

/// The lines of `text` as the reader hands them out from file `file`.
fn lines(file: u64, text: &str) -> Vec<Input<TailPosition>> {
    let path: Arc<Path> = Arc::from(Path::new("app.log"));
    let mut offset = 0u64;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let start = offset;
            offset += line.len() as u64 + 1;
            let number = i as u64 + 1;
            Input {
                data: Bytes::copy_from_slice(line.as_bytes()),
                position: TailPosition {
                    file,
                    generation: 0,
                    path: path.clone(),
                    start,
                    end: offset,
                    line: number,
                    first_line: number,
                    dropped: 0,
                },
            }
        })
        .collect()
}

/// Every event of `text` under `rule`, as text.
fn events(rule: MultiLine, text: &str) -> Vec<String> {
    let mut joiner = Joiner::new(&rule, 1 << 20);
    let now = Instant::now();
    let mut out = joiner.join(lines(0, text), now);
    out.extend(joiner.flush(now, true));
    out.iter()
        .map(|input| String::from_utf8_lossy(&input.data).into_owned())
        .collect()
}

const JAVA: &str = "\
2024-01-15 10:30:45.123 INFO  [main] c.e.App - Starting
2024-01-15 10:30:46.001 ERROR [http-nio-8080-exec-1] c.e.OrderController - Order failed
java.lang.IllegalStateException: stock is negative
\tat com.example.Stock.take(Stock.java:42)
\tat com.example.OrderController.place(OrderController.java:87)
\tat java.base/java.lang.Thread.run(Thread.java:833)
Caused by: java.sql.SQLException: deadlock detected
\tat org.postgresql.Driver.execute(Driver.java:120)
\t... 2 more
2024-01-15 10:30:47.500 WARN  [main] c.e.App - Slow request: 2300 ms
";

#[test]
fn a_start_pattern_joins_a_java_trace_to_its_log_line() {
    let rule = MultiLine::start_pattern(r"^\d{4}-").unwrap();
    let events = events(rule, JAVA);
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(
        events[0],
        "2024-01-15 10:30:45.123 INFO  [main] c.e.App - Starting"
    );
    assert!(events[1].starts_with("2024-01-15 10:30:46.001 ERROR"));
    assert!(events[1].ends_with("\t... 2 more"));
    assert_eq!(events[1].lines().count(), 8);
    assert!(events[2].starts_with("2024-01-15 10:30:47.500 WARN"));
}

#[test]
fn the_java_preset_joins_the_same_trace_without_a_pattern() {
    let by_pattern = events(MultiLine::start_pattern(r"^\d{4}-").unwrap(), JAVA);
    assert_eq!(events(MultiLine::preset(Preset::Java), JAVA), by_pattern);
    // A trace printed on its own (printStackTrace) after an unrelated line.
    let text = "Exception in thread \"main\" java.lang.NullPointerException: x is null\n\
                \tat Main.main(Main.java:5)\n\
                Done.\n";
    assert_eq!(
        events(MultiLine::preset(Preset::Java), text),
        [
            "Exception in thread \"main\" java.lang.NullPointerException: x is null\n\tat Main.main(Main.java:5)",
            "Done."
        ]
    );
}

const PYTHON: &str = "\
2024-01-15 10:30:45,123 INFO app: starting
2024-01-15 10:30:46,001 ERROR app: order failed
Traceback (most recent call last):
  File \"/srv/app/orders.py\", line 42, in place
    stock.take(n)
  File \"/srv/app/stock.py\", line 17, in take
    raise ValueError(\"stock is negative\")
ValueError: stock is negative

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/srv/app/orders.py\", line 44, in place
    db.rollback()
ConnectionError: server closed the connection
2024-01-15 10:30:47,500 WARNING app: slow request
";

#[test]
fn the_python_preset_joins_chained_tracebacks_and_their_exception_lines() {
    let events = events(MultiLine::preset(Preset::Python), PYTHON);
    assert_eq!(events.len(), 3, "{events:#?}");
    assert!(events[1].starts_with("2024-01-15 10:30:46,001 ERROR app: order failed\nTraceback"));
    assert!(events[1].contains("\nValueError: stock is negative\n\nDuring handling"));
    assert!(events[1].ends_with("\nConnectionError: server closed the connection"));
    assert_eq!(
        events[2],
        "2024-01-15 10:30:47,500 WARNING app: slow request"
    );
    // The same with a start pattern.
    let by_pattern = self::events(MultiLine::start_pattern(r"^\d{4}-").unwrap(), PYTHON);
    assert_eq!(events, by_pattern);
}

const GO: &str = "\
2024/01/15 10:30:45 listening on :8080
panic: runtime error: index out of range [5] with length 3

goroutine 18 [running]:
main.handler({0x6f6c88, 0xc00008e0f0}, 0xc000112000)
\t/srv/app/main.go:27 +0x1d
net/http.HandlerFunc.ServeHTTP(0x0?, {0x6f6c88?, 0xc00008e0f0?}, 0x0?)
\t/usr/local/go/src/net/http/server.go:2136 +0x29
net/http.(*conn).serve(0xc0001a2000, {0x6f7000, 0xc000100120})
\t/usr/local/go/src/net/http/server.go:1995 +0x612
created by net/http.(*Server).Serve in goroutine 1
\t/usr/local/go/src/net/http/server.go:3089 +0x5cb
exit status 2
2024/01/15 10:30:50 listening on :8080
";

#[test]
fn the_go_preset_joins_a_panic_and_its_goroutine_dump() {
    let events = events(MultiLine::preset(Preset::Go), GO);
    assert_eq!(events.len(), 3, "{events:#?}");
    assert!(events[1].starts_with("panic: runtime error"));
    assert!(events[1].contains("\n\ngoroutine 18 [running]:\nmain.handler("));
    assert!(events[1].ends_with("\nexit status 2"));
    assert_eq!(events[2], "2024/01/15 10:30:50 listening on :8080");
}

#[test]
fn an_event_spans_its_lines_and_keeps_what_dropped() {
    let rule = MultiLine::start_pattern("^start").unwrap();
    let mut joiner = Joiner::new(&rule, 20);
    let now = Instant::now();
    let mut input = lines(7, "start one\n  more\n  much more text here\nstart two\n");
    input[1].position.dropped = 3;
    let out = joiner.join(input, now);
    assert_eq!(out.len(), 1);
    let event = &out[0];
    // 20 bytes kept: "start one\n  more\n  m"; the rest counted.
    assert_eq!(&event.data[..], b"start one\n  more\n  m");
    let joined = "start one\n  more\n  much more text here".len();
    assert_eq!(event.position.dropped, 3 + (joined - 20) as u64);
    assert_eq!(
        (event.position.start, event.position.end),
        (0, joined as u64 + 1)
    );
    assert_eq!((event.position.first_line, event.position.line), (1, 3));
    let context = shardline_core::Position::describe(&event.position);
    assert_eq!(
        (context["line"].as_str(), context["last_line"].as_str()),
        ("1", "3")
    );
}

#[test]
fn an_event_is_handed_out_when_its_file_goes_quiet() {
    let rule = MultiLine::start_pattern("^start").unwrap();
    let mut joiner = Joiner::new(&rule, 1 << 20);
    let t0 = Instant::now();
    assert!(joiner.join(lines(1, "start\n  at a\n"), t0).is_empty());
    assert!(
        joiner
            .flush(t0 + Duration::from_millis(999), false)
            .is_empty()
    );
    // A line of another file does not keep this one waiting.
    let other = joiner.join(lines(2, "start b\n"), t0 + Duration::from_millis(500));
    assert!(other.is_empty());
    let due = joiner.flush(t0 + DEFAULT_MULTI_LINE_FLUSH, false);
    assert_eq!(due.len(), 1);
    assert_eq!(&due[0].data[..], b"start\n  at a");
    assert_eq!(joiner.flush(t0 + Duration::from_secs(2), false).len(), 1);
}

#[test]
fn lines_from_files_in_turn_join_within_their_own_file() {
    let rule = MultiLine::start_pattern("^start").unwrap();
    let mut joiner = Joiner::new(&rule, 1 << 20);
    let now = Instant::now();
    let mut input = Vec::new();
    for (a, b) in lines(1, "start a\n a1\nstart a2\n")
        .into_iter()
        .zip(lines(2, "start b\n b1\nstart b2\n"))
    {
        input.push(a);
        input.push(b);
    }
    let mut out = joiner.join(input, now);
    out.extend(joiner.flush(now, true));
    let text: Vec<(u64, &[u8])> = out.iter().map(|i| (i.position.file, &i.data[..])).collect();
    assert_eq!(
        text,
        [
            (1, &b"start a\n a1"[..]),
            (2, b"start b\n b1"),
            (1, b"start a2"),
            (2, b"start b2")
        ]
    );
}

#[test]
fn a_truncated_file_ends_the_event_it_was_in() {
    let rule = MultiLine::start_pattern("^start").unwrap();
    let mut joiner = Joiner::new(&rule, 1 << 20);
    let now = Instant::now();
    let mut input = lines(1, "start\n  a\n  b\n");
    input[2].position.generation = 1;
    let mut out = joiner.join(input, now);
    out.extend(joiner.flush(now, true));
    let text: Vec<&[u8]> = out.iter().map(|i| &i.data[..]).collect();
    assert_eq!(text, [&b"start\n  a"[..], b"  b"]);
}

#[test]
fn the_presets_compile_and_have_names() {
    assert!(super::JAVA.is_some() && super::GO.is_some());
    for (name, preset) in [
        ("java", Preset::Java),
        ("python", Preset::Python),
        ("go", Preset::Go),
    ] {
        assert_eq!(name.parse::<Preset>(), Ok(preset));
    }
    assert!(
        "rust"
            .parse::<Preset>()
            .unwrap_err()
            .contains("java, python or go")
    );
}

#[test]
fn a_file_let_go_hands_out_its_event() {
    let rule = MultiLine::start_pattern("^start").unwrap();
    let mut joiner = Joiner::new(&rule, 1 << 20);
    let now = Instant::now();
    assert!(joiner.join(lines(1, "start\n  a\n"), now).is_empty());
    assert!(joiner.join(lines(2, "start b\n"), now).is_empty());
    let done = joiner.finish(&[1]);
    assert_eq!(done.len(), 1);
    assert_eq!(&done[0].data[..], b"start\n  a");
    assert!(joiner.finish(&[1]).is_empty());
    assert_eq!(joiner.flush(now, true).len(), 1);
}
