//! Lines from a stream that cannot be read again (stdin, a pipe).

use std::collections::BTreeMap;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use shardline_core::{Input, Position, Source, SourceError};

/// Lines handed to the pipeline at once at most.
const MAX_BATCH_LINES: usize = 1024;

/// A line's number (from 1) in the stream `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePosition {
    /// The stream's name (`stdin`).
    pub name: &'static str,
    /// The line's number.
    pub line: u64,
}

impl Position for LinePosition {
    fn describe(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("input".to_owned(), self.name.to_owned()),
            ("line".to_owned(), self.line.to_string()),
        ])
    }
}

/// Each line of a reader (without its `\n` or `\r\n`) until it ends.
/// There is nothing to checkpoint: what was read cannot be read again, so
/// a stop before everything settled is reported by the pipeline (records
/// neither delivered nor dead-lettered), not hidden.
#[derive(Debug)]
pub struct LinesSource<R> {
    reader: BufReader<R>,
    name: &'static str,
    /// The line being read, and the lines read for the next batch: kept
    /// here, not in `read`'s future, so that a cancelled read (the pipeline
    /// reads inside a `select!`) loses none of them.
    line: Vec<u8>,
    batch: Vec<Input<LinePosition>>,
    lines: u64,
    ended: bool,
}

impl<R: AsyncRead + Unpin + Send> LinesSource<R> {
    /// Lines of `reader`, called `name` in dead letters.
    pub fn new(reader: R, name: &'static str) -> Self {
        LinesSource {
            reader: BufReader::new(reader),
            name,
            line: Vec::new(),
            batch: Vec::new(),
            lines: 0,
            ended: false,
        }
    }

    fn take_line(&mut self) -> Input<LinePosition> {
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        }
        self.lines += 1;
        Input {
            data: std::mem::take(&mut self.line).into(),
            position: LinePosition {
                name: self.name,
                line: self.lines,
            },
        }
    }
}

#[async_trait::async_trait]
impl<R: AsyncRead + Unpin + Send> Source for LinesSource<R> {
    type Position = LinePosition;

    async fn read(&mut self) -> Result<Option<Vec<Input<LinePosition>>>, SourceError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            // `read_until` keeps what it read in `self.line`, and whole
            // lines wait in `self.batch`: a cancelled read loses nothing.
            let n = self.reader.read_until(b'\n', &mut self.line).await?;
            if n == 0 {
                self.ended = true;
                if !self.line.is_empty() {
                    let line = self.take_line();
                    self.batch.push(line);
                }
                break;
            }
            if self.line.last() == Some(&b'\n') {
                let line = self.take_line();
                self.batch.push(line);
            }
            if self.batch.len() >= MAX_BATCH_LINES || self.reader.buffer().is_empty() {
                break;
            }
        }
        let batch = std::mem::take(&mut self.batch);
        Ok(if batch.is_empty() && self.ended {
            None
        } else {
            Some(batch)
        })
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<LinePosition>) + Send> {
        Box::new(|_| {})
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_numbered_and_the_last_needs_no_newline() {
        let mut source = LinesSource::new(&b"a\r\nb\n\nlast"[..], "stdin");
        let mut lines = Vec::new();
        while let Some(batch) = source.read().await.unwrap() {
            lines.extend(batch);
        }
        let data: Vec<&[u8]> = lines.iter().map(|i| &i.data[..]).collect();
        assert_eq!(data, [&b"a"[..], b"b", b"", b"last"]);
        assert_eq!(lines[3].position.describe()["line"], "4");
        assert!(source.read().await.unwrap().is_none());
    }

    /// A reader that is not ready every other time it is polled, a few
    /// bytes at a time: a pipe, or stdin through Tokio's blocking pool.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        ready: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.ready = !self.ready;
            if !self.ready {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            let end = (self.at + 7).min(self.data.len());
            let chunk = self.data.get(self.at..end).unwrap_or_default().to_vec();
            buf.put_slice(&chunk);
            self.at = end;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// The pipeline reads inside a `select!`: a read dropped while it
    /// waits for more input must lose no line it had already taken.
    #[tokio::test]
    async fn a_cancelled_read_loses_no_line() {
        let text: String = (1..=500).map(|i| format!("line {i}\n")).collect();
        let reader = Trickle {
            data: text.into_bytes(),
            at: 0,
            ready: false,
        };
        let mut source = LinesSource::new(reader, "stdin");
        let (mut lines, mut cancelled) = (Vec::new(), 0);
        loop {
            // Polled once: a read that has to wait is dropped (no timer:
            // which reads are dropped is the same on every run).
            tokio::select! {
                biased;
                read = source.read() => match read {
                    Ok(Some(batch)) => lines.extend(batch),
                    Ok(None) => break,
                    Err(e) => panic!("{e}"),
                },
                () = std::future::ready(()) => cancelled += 1,
            }
        }
        assert!(
            cancelled > 0,
            "no read was cancelled: the test proves nothing"
        );
        let numbers: Vec<u64> = lines.iter().map(|input| input.position.line).collect();
        assert_eq!(numbers, (1..=500).collect::<Vec<_>>());
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, input)| input.data == format!("line {}", i + 1).as_bytes())
        );
    }
}
