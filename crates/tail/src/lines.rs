//! Lines from a stream that cannot be read again (stdin, a pipe).

use std::collections::BTreeMap;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use shardline_core::{Input, Position, Source, SourceError};

/// Lines handed to the pipeline at once at most.
const MAX_BATCH_LINES: usize = 1024;

/// A line's number (from 1) in the stream `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePosition {
    pub name: &'static str,
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
    line: Vec<u8>,
    lines: u64,
    ended: bool,
}

impl<R: AsyncRead + Unpin + Send> LinesSource<R> {
    pub fn new(reader: R, name: &'static str) -> Self {
        LinesSource {
            reader: BufReader::new(reader),
            name,
            line: Vec::new(),
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
        let mut batch = Vec::new();
        loop {
            // `read_until` keeps what it read in `self.line`: a cancelled
            // read loses nothing.
            let n = self.reader.read_until(b'\n', &mut self.line).await?;
            if n == 0 {
                self.ended = true;
                if !self.line.is_empty() {
                    batch.push(self.take_line());
                }
                break;
            }
            if self.line.last() == Some(&b'\n') {
                batch.push(self.take_line());
            }
            if batch.len() >= MAX_BATCH_LINES || self.reader.buffer().is_empty() {
                break;
            }
        }
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
}
