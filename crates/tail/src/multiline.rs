//! Multi-line events: the lines of a stack trace, joined into one.
//!
//! A [`MultiLine`] rule says which lines start an event; the lines after a
//! start are joined to it with `\n` until the next start, until nothing new
//! came from its file for [`MultiLine::flush_after`], or until the file is
//! read to its end in a `--once` run. An event is handed out as one
//! [`Input`] whose position spans its lines, so a checkpoint never lands
//! inside an event: a crash between a start line and its continuation reads
//! the whole event again.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use regex::bytes::Regex;
use shardline_core::Input;

use crate::TailPosition;

/// How long an event waits for another line of its file by default before
/// it is handed out: 1 s, Kinesis Agent's and Fluent Bit's multi-line flush
/// default.
pub const DEFAULT_MULTI_LINE_FLUSH: Duration = Duration::from_secs(1);

/// Which lines start an event.
#[derive(Clone)]
pub enum StartRule {
    /// A line that matches starts a new event (Kinesis Agent's
    /// `multiLineStartPattern`); the others join the event before them.
    Pattern(Regex),
    /// A language's stack traces join the line logged before them.
    Preset(Preset),
}

impl fmt::Debug for StartRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartRule::Pattern(regex) => f.debug_tuple("Pattern").field(&regex.as_str()).finish(),
            StartRule::Preset(preset) => f.debug_tuple("Preset").field(preset).finish(),
        }
    }
}

/// The built-in rules: a line starts an event unless it belongs to the
/// stack trace of the language named.
///
/// - `java`: indented frames (`\tat …`), `Caused by:`, `Suppressed:`,
///   `... 12 more`, and an exception's header (`java.lang.IllegalStateException:
///   …`, a dotted class name ending in `Exception`, `Error` or `Throwable`)
///   join the line before.
/// - `python`: `Traceback (most recent call last):`, its indented lines, the
///   exception line after them (`ValueError: …`), and the lines that chain
///   exceptions (`During handling of the above exception…`, `The above
///   exception was the direct cause…`) join the line before.
/// - `go`: after a line starting `panic: ` or `fatal error: `, the
///   goroutine dumps that follow (`goroutine 1 [running]:`, function lines,
///   indented file lines, `created by …`, `exit status 2`) join it.
///
/// In all three, blank lines join the event before them; they are left off
/// its end when it is handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Java and JVM stack traces.
    Java,
    /// Python tracebacks.
    Python,
    /// Go panics and goroutine dumps.
    Go,
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "java" => Ok(Preset::Java),
            "python" => Ok(Preset::Python),
            "go" => Ok(Preset::Go),
            other => Err(format!(
                "unknown multi_line preset {other:?}: java, python or go"
            )),
        }
    }
}

/// How a file's lines are joined into events.
#[derive(Debug, Clone)]
pub struct MultiLine {
    /// Which lines start an event.
    pub start: StartRule,
    /// An event with no new line from its file for this long is handed out.
    pub flush_after: Duration,
}

impl MultiLine {
    /// Events that start at lines matching `pattern`; an invalid pattern is
    /// an error that quotes it.
    pub fn start_pattern(pattern: &str) -> Result<Self, regex::Error> {
        Ok(MultiLine {
            start: StartRule::Pattern(Regex::new(pattern)?),
            flush_after: DEFAULT_MULTI_LINE_FLUSH,
        })
    }

    /// Events as `preset` writes them.
    pub fn preset(preset: Preset) -> Self {
        MultiLine {
            start: StartRule::Preset(preset),
            flush_after: DEFAULT_MULTI_LINE_FLUSH,
        }
    }
}

/// Where a Python traceback or a Go panic stands, for the next line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Trace {
    #[default]
    None,
    /// Inside a traceback: more indented lines, or its exception line.
    Python { after_indented: bool },
    /// Inside a Go panic's goroutine dump.
    Go,
}

/// Java: an indented line, a chained cause, an elided-frames line, or an
/// exception's header.
const JAVA_CONTINUES: &str = r"^(?:[ \t]+\S|Caused by: |Suppressed: |[ \t]*\.\.\. \d+ (?:more|common frames omitted)|(?:[a-zA-Z_$][\w$]*\.)+[\w$]*(?:Exception|Error|Throwable)(?::|$))";
/// Go, inside a panic: a goroutine header, an indented file line, a
/// function line (`main.main()`, `net/http.(*conn).serve(0xc0001, …)`),
/// `created by`, a signal line, the exit status.
const GO_CONTINUES: &str = r"^(?:[ \t]+\S|goroutine \d+ \[|created by |\[signal |exit status \d+|[\w./\-]+\.[\w.()*\[\]\-]+\(.*\)$)";

/// The presets' patterns, compiled on first use. They are constants the
/// unit tests compile; should one ever fail, its lines are not joined.
static JAVA: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(JAVA_CONTINUES).ok());
static GO: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(GO_CONTINUES).ok());

fn matches(regex: &LazyLock<Option<Regex>>, line: &[u8]) -> bool {
    regex.as_ref().is_some_and(|r| r.is_match(line))
}

impl StartRule {
    /// Whether `line` starts a new event, given where the event before it
    /// stands; updates that for the next line.
    fn starts(&self, line: &[u8], trace: &mut Trace) -> bool {
        let blank = line.iter().all(u8::is_ascii_whitespace);
        let indented = matches!(line.first(), Some(b' ' | b'\t'));
        match self {
            StartRule::Pattern(regex) => regex.is_match(line),
            StartRule::Preset(Preset::Java) => !(blank || matches(&JAVA, line)),
            StartRule::Preset(Preset::Python) => {
                if line.starts_with(b"Traceback (most recent call last):") {
                    *trace = Trace::Python {
                        after_indented: false,
                    };
                    return false;
                }
                if line.starts_with(b"During handling of the above exception")
                    || line.starts_with(b"The above exception was the direct cause")
                {
                    *trace = Trace::Python {
                        after_indented: false,
                    };
                    return false;
                }
                match *trace {
                    _ if blank => false,
                    Trace::Python { .. } if indented => {
                        *trace = Trace::Python {
                            after_indented: true,
                        };
                        false
                    }
                    // The exception line ends the traceback.
                    Trace::Python {
                        after_indented: true,
                    } => {
                        *trace = Trace::None;
                        false
                    }
                    _ => {
                        *trace = Trace::None;
                        true
                    }
                }
            }
            StartRule::Preset(Preset::Go) => {
                if line.starts_with(b"panic: ") || line.starts_with(b"fatal error: ") {
                    let nested = *trace == Trace::Go;
                    *trace = Trace::Go;
                    return !nested;
                }
                if *trace == Trace::Go && (blank || matches(&GO, line)) {
                    return false;
                }
                *trace = Trace::None;
                true
            }
        }
    }
}

/// An event being joined.
#[derive(Debug)]
struct Pending {
    data: BytesMut,
    position: TailPosition,
    /// The length of `data` without the blank lines at its end.
    trimmed: usize,
    trace: Trace,
    last_line_at: Instant,
}

impl Pending {
    fn input(self) -> Input<TailPosition> {
        let mut data = self.data;
        data.truncate(self.trimmed);
        Input {
            data: data.freeze(),
            position: self.position,
        }
    }
}

/// Joins the lines of each file into events; one per `TailSource`.
#[derive(Debug)]
pub(crate) struct Joiner {
    rule: StartRule,
    flush_after: Duration,
    max_bytes: usize,
    /// The event being joined, by file id.
    pending: BTreeMap<u64, Pending>,
}

impl Joiner {
    /// Events of at most `max_bytes` (the reader's line cap): bytes past it
    /// are dropped and counted in the position's `dropped`, so the event is
    /// dead-lettered with that reason, as a long line is.
    pub(crate) fn new(multi_line: &MultiLine, max_bytes: usize) -> Self {
        Joiner {
            rule: multi_line.start.clone(),
            flush_after: multi_line.flush_after,
            max_bytes,
            pending: BTreeMap::new(),
        }
    }

    /// Takes lines as read, in order; returns the events they completed.
    pub(crate) fn join(
        &mut self,
        lines: Vec<Input<TailPosition>>,
        now: Instant,
    ) -> Vec<Input<TailPosition>> {
        let mut out = Vec::new();
        for line in lines {
            let file = line.position.file;
            let mut trace = Trace::None;
            if let Some(pending) = self.pending.get_mut(&file) {
                // A truncated file starts over: its event is done.
                if pending.position.generation == line.position.generation {
                    trace = pending.trace;
                    if !self.rule.starts(&line.data, &mut trace) {
                        append(pending, line, self.max_bytes, trace, now);
                        continue;
                    }
                } else {
                    self.rule.starts(&line.data, &mut trace);
                }
            } else {
                self.rule.starts(&line.data, &mut trace);
            }
            if let Some(done) = self.pending.remove(&file) {
                out.push(done.input());
            }
            let blank = line.data.iter().all(u8::is_ascii_whitespace);
            let data = BytesMut::from(&line.data[..]);
            self.pending.insert(
                file,
                Pending {
                    trimmed: if blank { 0 } else { data.len() },
                    data,
                    position: line.position,
                    trace,
                    last_line_at: now,
                },
            );
        }
        out
    }

    /// Hands out the events of files let go (rotated away and read to
    /// their end): nothing more will join them.
    pub(crate) fn finish(&mut self, files: &[u64]) -> Vec<Input<TailPosition>> {
        files
            .iter()
            .filter_map(|file| self.pending.remove(file))
            .map(Pending::input)
            .collect()
    }

    /// Hands out the events that waited [`MultiLine::flush_after`] for a
    /// new line, or all of them with `everything` (the end of a `--once`
    /// run).
    pub(crate) fn flush(&mut self, now: Instant, everything: bool) -> Vec<Input<TailPosition>> {
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| everything || now.duration_since(p.last_line_at) >= self.flush_after)
            .map(|(file, _)| *file)
            .collect();
        due.into_iter()
            .filter_map(|file| self.pending.remove(&file))
            .map(Pending::input)
            .collect()
    }
}

/// Joins `line` to `pending` with a `\n`, within `max_bytes`.
fn append(
    pending: &mut Pending,
    line: Input<TailPosition>,
    max_bytes: usize,
    trace: Trace,
    now: Instant,
) {
    let position = &mut pending.position;
    position.end = line.position.end;
    position.line = line.position.line;
    position.dropped += line.position.dropped;
    pending.trace = trace;
    pending.last_line_at = now;
    let data: Bytes = line.data;
    let room = max_bytes.saturating_sub(pending.data.len());
    let wanted = 1 + data.len();
    let kept = wanted.min(room);
    if kept > 0 {
        pending.data.extend_from_slice(b"\n");
        pending
            .data
            .extend_from_slice(data.get(..kept - 1).unwrap_or_default());
    }
    position.dropped += (wanted - kept) as u64;
    if !data.iter().all(u8::is_ascii_whitespace) {
        pending.trimmed = pending.data.len();
    }
}

#[cfg(test)]
mod tests;
