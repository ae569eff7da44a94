//! The dead-letter sink: where every record that cannot be delivered goes,
//! with its reason — and the way back in ([`replay`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;
use shardline_partition_key::{ExplicitHashKey, PartitionKey};

use crate::outcome::DeadLetterReason;
use crate::record::{Record, SourceName};

/// The file mode of a dead-letter file: it holds record data, so only its
/// owner may read it.
pub const DEAD_LETTER_FILE_MODE: u32 = 0o600;

/// How a dead letter's `data` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataEncoding {
    /// The data was UTF-8 and is written as text.
    Utf8,
    /// The data was not UTF-8 and is written as standard base64.
    Base64,
}

/// One line of a dead-letter file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The original record data.
    pub data: String,
    /// How `data` is written: as text, or base64.
    pub data_encoding: DataEncoding,
    /// The record's partition key.
    pub partition_key: String,
    /// Its explicit hash key, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
    /// The source it came from.
    pub source: String,
    /// Where it was going, e.g. `kinesis:orders`.
    pub destination: String,
    /// Why it was not delivered.
    pub reason: DeadLetterReason,
    /// The service's error code of the last failure, if any.
    pub error_code: Option<String>,
    /// The last error, one line, if any.
    pub error_message: Option<String>,
    /// Attempts made to deliver it.
    pub attempts: u32,
    /// RFC 3339 times of the first and last attempt, if any was made.
    pub first_attempt: Option<String>,
    /// When it was last tried (RFC 3339), if ever.
    pub last_attempt: Option<String>,
    /// When it was dead-lettered (RFC 3339).
    pub dead_lettered_at: String,
    /// What the source knows of it, e.g. `file` and `line` for a log line
    /// that did not parse.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

/// Formats a time as RFC 3339 UTC, e.g. `2026-11-22T00:30:00.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let time: time::OffsetDateTime = time.into();
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl DeadLetter {
    /// A time as dead letters write it: RFC 3339 in UTC, e.g.
    /// `2026-11-22T00:30:00.123Z`.
    pub fn format_time(time: SystemTime) -> String {
        rfc3339(time)
    }

    /// Encodes `data` as text when it is UTF-8, as base64 otherwise.
    pub fn encode_data(data: &[u8]) -> (String, DataEncoding) {
        match std::str::from_utf8(data) {
            Ok(text) => (text.to_owned(), DataEncoding::Utf8),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(data),
                DataEncoding::Base64,
            ),
        }
    }

    /// A record a source rejects before sending (a line that does not
    /// parse, a reading that fails validation), with the reason and what
    /// the source knows of where it came from.
    pub fn rejected(
        data: &[u8],
        source: &SourceName,
        message: impl Into<String>,
        context: BTreeMap<String, String>,
    ) -> Self {
        let (data, data_encoding) = Self::encode_data(data);
        DeadLetter {
            data,
            data_encoding,
            partition_key: String::new(),
            explicit_hash_key: None,
            source: source.as_str().to_owned(),
            destination: String::new(),
            reason: DeadLetterReason::Rejected,
            error_code: None,
            error_message: Some(message.into()),
            attempts: 0,
            first_attempt: None,
            last_attempt: None,
            dead_lettered_at: rfc3339(SystemTime::now()),
            context,
        }
    }

    /// The original data bytes.
    pub fn data_bytes(&self) -> Result<Vec<u8>, ReplayError> {
        match self.data_encoding {
            DataEncoding::Utf8 => Ok(self.data.clone().into_bytes()),
            DataEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .map_err(|e| ReplayError::Data(e.to_string())),
        }
    }

    /// The record to send again. A rejected record without a partition key
    /// gets `-`.
    pub fn to_record(&self) -> Result<Record, ReplayError> {
        let partition_key = PartitionKey::new_or_hashed(&self.partition_key);
        let explicit_hash_key = self
            .explicit_hash_key
            .as_deref()
            .map(ExplicitHashKey::parse)
            .transpose()
            .map_err(|e| ReplayError::Data(e.to_string()))?;
        Ok(Record {
            data: Bytes::from(self.data_bytes()?),
            partition_key,
            explicit_hash_key,
            source: SourceName::new(&self.source),
        })
    }
}

/// Where dead letters are written. `write` must return only once the
/// letters are durable: a record counts as settled — and a source may move
/// its checkpoint past it — as soon as it returns `Ok`.
///
/// The producer calls `write` on a blocking thread (never on the async
/// runtime), one call at a time.
///
/// Three sinks come with the crate: a [`DeadLetterFile`], a Tokio channel
/// (`tokio::sync::mpsc::Sender<DeadLetter>`, for a caller that keeps its
/// own outbox), and any boxed sink.
pub trait DeadLetterSink: Send + 'static {
    /// Writes `letters`, returning once they are durable.
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()>;
}

impl DeadLetterSink for Box<dyn DeadLetterSink> {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        (**self).write(letters)
    }
}

/// Letters go to the channel's receiver, which owns them from then on:
/// `write` waits while the channel is full, and fails (the records are then
/// not settled) once the receiver is gone. Call it from a blocking thread,
/// as the producer does; on the async runtime it panics.
impl DeadLetterSink for tokio::sync::mpsc::Sender<DeadLetter> {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        for letter in letters {
            self.blocking_send(letter.clone()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the dead-letter channel's receiver is gone",
                )
            })?;
        }
        Ok(())
    }
}

/// An NDJSON dead-letter file: one [`DeadLetter`] per line, appended,
/// created with mode 0600, synced to disk after every write.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: File,
}

impl DeadLetterFile {
    /// Opens (creating if needed) `path` for appending. Its directory is
    /// created too, and synced when the file is new, so that the file
    /// itself survives a crash.
    ///
    /// The file is made private (mode 0600) if it is not: a log rotation
    /// may have created it readable by others. A last line left torn by a
    /// write that was cut short (a crash, a full disk) is ended, so that
    /// the next letter starts a line of its own and only the torn one is
    /// unreadable.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(DEAD_LETTER_FILE_MODE)
            .open(path)?;
        let metadata = file.metadata()?;
        if metadata.permissions().mode() & 0o777 != DEAD_LETTER_FILE_MODE {
            file.set_permissions(std::fs::Permissions::from_mode(DEAD_LETTER_FILE_MODE))?;
        }
        if let Some(last) = metadata.len().checked_sub(1) {
            let mut byte = [0u8; 1];
            file.read_exact_at(&mut byte, last)?;
            if byte != *b"\n" {
                (&file).write_all(b"\n")?;
                file.sync_data()?;
            }
        }
        if !existed {
            File::open(parent)?.sync_all()?;
        }
        Ok(DeadLetterFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DeadLetterSink for DeadLetterFile {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        let mut out = BufWriter::new(&self.file);
        for letter in letters {
            serde_json::to_writer(&mut out, letter)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        drop(out);
        self.file.sync_data()
    }
}

/// Why a dead-letter file cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file could not be read.
    #[error("reading the dead-letter file: {0}")]
    Io(#[from] std::io::Error),
    /// A letter's `data` does not decode as its `data_encoding` says.
    #[error("the dead letter's data or key cannot be decoded: {0}")]
    Data(String),
}

/// A line of a dead-letter file that is not a dead letter: a write cut
/// short by a crash or a full disk, or a hand edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Its number, from 1.
    pub line: usize,
    /// Why it is not a dead letter.
    pub message: String,
}

/// What [`replay`] read from a dead-letter file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    /// Every dead letter, in file order.
    pub letters: Vec<DeadLetter>,
    /// The lines that were not dead letters; the letters around them are
    /// read all the same.
    pub bad_lines: Vec<BadLine>,
}

/// Reads a dead-letter file back, one [`DeadLetter`] per line, to replay
/// them into a sink (`to_record`, then send). A line that is not a dead
/// letter is reported in [`Replay::bad_lines`] and skipped.
pub fn replay(path: &Path) -> Result<Replay, ReplayError> {
    let reader = BufReader::new(File::open(path)?);
    let mut read = Replay::default();
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(letter) => read.letters.push(letter),
            Err(e) => read.bad_lines.push(BadLine {
                line: index + 1,
                message: e.to_string(),
            }),
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq/dead.ndjson");
        let mut sink = DeadLetterFile::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, DEAD_LETTER_FILE_MODE);

        let source = SourceName::new("web_logs");
        let mut context = BTreeMap::new();
        context.insert("file".to_owned(), "/var/log/access.log".to_owned());
        let text = DeadLetter::rejected(b"not a log line", &source, "at byte 3", context);
        let binary = DeadLetter::rejected(&[0xff, 0x00, 0xfe], &source, "binary", BTreeMap::new());
        assert_eq!(binary.data_encoding, DataEncoding::Base64);
        sink.write(&[text.clone(), binary.clone()]).unwrap();

        let read = replay(&path).unwrap();
        assert!(read.bad_lines.is_empty());
        assert_eq!(read.letters, [text, binary.clone()]);
        assert_eq!(binary.data_bytes().unwrap(), [0xff, 0x00, 0xfe]);
        let record = read.letters[1].to_record().unwrap();
        assert_eq!(&record.data[..], [0xff, 0x00, 0xfe]);
        assert_eq!(record.source.as_str(), "web_logs");
    }

    fn letter(n: u32) -> DeadLetter {
        DeadLetter::rejected(
            format!("line {n}").as_bytes(),
            &SourceName::new("web_logs"),
            "not a log line",
            BTreeMap::new(),
        )
    }

    #[test]
    fn a_boxed_sink_writes_through_to_the_file_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        let mut boxed: Box<dyn DeadLetterSink> = Box::new(DeadLetterFile::open(&path).unwrap());
        // The box is a sink itself: it can be handed on as one.
        fn write_twice(mut sink: impl DeadLetterSink, letters: &[DeadLetter]) {
            sink.write(letters).unwrap();
            sink.write(letters).unwrap();
        }
        let (one, two) = (letter(1), letter(2));
        boxed.write(std::slice::from_ref(&one)).unwrap();
        write_twice(boxed, std::slice::from_ref(&two));
        assert_eq!(replay(&path).unwrap().letters, [one, two.clone(), two]);
    }

    #[test]
    fn a_channel_sink_hands_letters_on_and_fails_once_its_receiver_is_gone() {
        let (mut sink, mut inbox) = tokio::sync::mpsc::channel(1);
        // The producer calls `write` on a blocking thread; so does this.
        let letters = [letter(1), letter(2)];
        let sent = letters.clone();
        let writer = std::thread::spawn(move || {
            let written = sink.write(&sent);
            (sink, written)
        });
        // The channel holds one: the second waits until the first is read.
        assert_eq!(inbox.blocking_recv().as_ref(), Some(&letters[0]));
        assert_eq!(inbox.blocking_recv().as_ref(), Some(&letters[1]));
        let (mut sink, written) = writer.join().unwrap();
        assert!(written.is_ok());
        drop(inbox);
        let gone = sink.write(&[letter(3)]).unwrap_err();
        assert_eq!(gone.kind(), std::io::ErrorKind::BrokenPipe);
    }

    /// A bad line is reported with its number, and the letters around it
    /// are still read.
    #[test]
    fn a_bad_line_is_reported_with_its_number_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        let one = letter(1);
        let good = serde_json::to_string(&one).unwrap();
        std::fs::write(&path, format!("\n{{\"not\": \"a letter\"}}\n{good}\n")).unwrap();
        let read = replay(&path).unwrap();
        assert_eq!(read.letters, [one]);
        assert_eq!(read.bad_lines.len(), 1);
        assert_eq!(read.bad_lines[0].line, 2);
        assert!(!read.bad_lines[0].message.is_empty());
    }

    /// A write cut short (a crash, a full disk) leaves a torn last line.
    /// Opening the file again ends it, so the next letter starts a line of
    /// its own: only the torn letter is unreadable, not the next one too.
    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_letter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        let (one, three) = (letter(1), letter(3));
        let mut content = serde_json::to_vec(&one).unwrap();
        content.push(b'\n');
        let torn = serde_json::to_vec(&letter(2)).unwrap();
        content.extend_from_slice(torn.get(..torn.len() / 2).unwrap());
        std::fs::write(&path, content).unwrap();
        let mut sink = DeadLetterFile::open(&path).unwrap();
        sink.write(std::slice::from_ref(&three)).unwrap();
        let read = replay(&path).unwrap();
        assert_eq!(read.letters, [one, three]);
        assert_eq!(read.bad_lines.len(), 1);
        assert_eq!(read.bad_lines[0].line, 2);
    }

    /// A file that was made readable by others (a log rotation that
    /// created it 0644) is made private again when it is opened.
    #[test]
    fn an_existing_file_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _sink = DeadLetterFile::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, DEAD_LETTER_FILE_MODE);
    }
}
