//! The reading side: finds the watched files, follows them through
//! rotation and truncation, and cuts their bytes into lines. Runs on one
//! thread of its own ([`crate::TailSource`]); everything here is blocking.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use shardline_core::Input;

use crate::checkpoint::FileCheckpoint;
use crate::identity::{FINGERPRINT_BYTES, Fingerprint, Inode};
use crate::{StartAt, TailConfig, TailError, TailPosition};

/// Bytes read from a file at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Endings of compressed archives, which a glob matching a log's rotated
/// files (`app.log*`) also matches: logrotate's `compress` (gzip) and the
/// other `compresscmd`s. Their bytes are no log lines; they are left alone.
const COMPRESSED_ENDINGS: [&str; 6] = [".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip"];

/// What the settling side knows of a file.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) path: PathBuf,
    pub(crate) inode: Inode,
    pub(crate) fingerprint: Fingerprint,
    /// Bumped when the file is truncated: positions of older lines no
    /// longer mean anything.
    pub(crate) generation: u32,
    pub(crate) settled_offset: u64,
    pub(crate) settled_line: u64,
    /// The end of the last line handed out.
    pub(crate) emitted_offset: u64,
    /// The reader let the file go (rotated or deleted, read to its end).
    pub(crate) released: bool,
}

/// Settled positions by file id, shared with the acknowledgements.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) files: BTreeMap<u64, Tracked>,
}

impl Registry {
    pub(crate) fn settle(&mut self, position: &TailPosition) {
        if let Some(file) = self.files.get_mut(&position.file)
            && file.generation == position.generation
        {
            file.settled_offset = position.end;
            file.settled_line = position.line;
        }
    }

    /// The checkpoint of every file not yet fully settled and let go.
    pub(crate) fn checkpoint(&mut self) -> Vec<FileCheckpoint> {
        self.files
            .retain(|_, f| !(f.released && f.settled_offset >= f.emitted_offset));
        self.files
            .values()
            .map(|f| FileCheckpoint {
                path: f.path.clone(),
                inode: f.inode,
                fingerprint: f.fingerprint.clone(),
                offset: f.settled_offset,
                line: f.settled_line,
            })
            .collect()
    }
}

/// A file being read.
#[derive(Debug)]
struct Open {
    id: u64,
    file: File,
    path: Arc<Path>,
    inode: Inode,
    fingerprint: Fingerprint,
    generation: u32,
    /// The next byte to read.
    offset: u64,
    /// Lines handed out (the next line's number is `line + 1`).
    line: u64,
    /// Bytes after the last newline, and where they start.
    partial: Vec<u8>,
    partial_start: u64,
    /// Bytes of the current line beyond `max_line_bytes`, not kept.
    partial_dropped: u64,
    /// When the file was found no longer at a watched path.
    rotated_since: Option<Instant>,
    last_data: Instant,
}

/// A file closed for being idle ([`TailConfig::close_inactive`]): read to
/// its end and settled. Its entry stays in the registry, so the checkpoint
/// keeps its place.
#[derive(Debug)]
struct Closed {
    id: u64,
    path: PathBuf,
    inode: Inode,
    fingerprint: Fingerprint,
    generation: u32,
    offset: u64,
    line: u64,
}

pub(crate) struct Tailer {
    config: TailConfig,
    open: Vec<Open>,
    closed: Vec<Closed>,
    registry: Arc<Mutex<Registry>>,
    next_id: u64,
    /// Files at the first scan start where `config.start_at` says; later
    /// files are new and read from their beginning.
    first_scan: bool,
    /// Watched paths that did not exist or could not be read, reported once.
    reported: HashSet<PathBuf>,
    /// Files let go since [`Tailer::take_released`] was last called: no
    /// more lines will come from them.
    released: Vec<u64>,
    /// Compressed archives the glob matched, reported once.
    left_alone: HashSet<PathBuf>,
}

impl Tailer {
    /// Opens the files of `resume` (where they are now, even renamed) and
    /// the watched files.
    pub(crate) fn new(
        config: TailConfig,
        registry: Arc<Mutex<Registry>>,
        resume: Option<Vec<FileCheckpoint>>,
    ) -> Result<Self, TailError> {
        let resuming = resume.is_some();
        let mut tailer = Tailer {
            config,
            open: Vec::new(),
            closed: Vec::new(),
            registry,
            next_id: 0,
            first_scan: !resuming,
            reported: HashSet::new(),
            released: Vec::new(),
            left_alone: HashSet::new(),
        };
        for checkpoint in resume.unwrap_or_default() {
            tailer.resume(&checkpoint);
        }
        tailer.scan_checked()?;
        Ok(tailer)
    }

    fn resume(&mut self, checkpoint: &FileCheckpoint) {
        let Some((path, file)) = locate(checkpoint) else {
            tracing::warn!(
                file = %checkpoint.path.display(),
                offset = checkpoint.offset,
                "a file in the checkpoint is gone (deleted, or its start rewritten); \
                 whatever it held after the checkpoint cannot be read"
            );
            return;
        };
        if path != checkpoint.path {
            tracing::info!(
                was = %checkpoint.path.display(),
                now = %path.display(),
                "found a checkpointed file renamed; reading it to its end"
            );
        }
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (offset, line) = if size < checkpoint.offset {
            tracing::warn!(file = %path.display(), "truncated since the checkpoint; reading it again from its start");
            (0, 0)
        } else {
            (checkpoint.offset, checkpoint.line)
        };
        let open = self.track(file, &path, checkpoint.inode, offset, line);
        if let Some(open) = open {
            self.open.push(open);
        }
    }

    /// Registers an opened file and returns it, ready to read at `offset`.
    fn track(
        &mut self,
        file: File,
        path: &Path,
        inode: Inode,
        offset: u64,
        line: u64,
    ) -> Option<Open> {
        let fingerprint = match Fingerprint::of(&file) {
            Ok(fingerprint) => fingerprint,
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot read the file's first bytes: {e}");
                return None;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.lock().files.insert(
            id,
            Tracked {
                path: path.to_path_buf(),
                inode,
                fingerprint: fingerprint.clone(),
                generation: 0,
                settled_offset: offset,
                settled_line: line,
                emitted_offset: offset,
                released: false,
            },
        );
        Some(Open {
            id,
            file,
            path: Arc::from(path),
            inode,
            fingerprint,
            generation: 0,
            offset,
            line,
            partial: Vec::new(),
            partial_start: offset,
            partial_dropped: 0,
            rotated_since: None,
            last_data: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first scan: a watched plain path that is missing (with `once`)
    /// or unreadable is an error, not a silent wait.
    fn scan_checked(&mut self) -> Result<(), TailError> {
        let watched = self.config.watch.clone();
        if !is_glob(&watched) {
            let path = Path::new(&watched);
            match File::open(path) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(TailError::PermissionDenied(path.to_path_buf()));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if self.config.once && self.open.is_empty() {
                        return Err(TailError::NotFound(path.to_path_buf()));
                    }
                    if self.open.is_empty() && self.closed.is_empty() {
                        tracing::warn!(
                            file = %path.display(),
                            "no such file yet; waiting for it to appear"
                        );
                    }
                }
                Err(e) => {
                    return Err(TailError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    });
                }
            }
        }
        self.scan();
        if !self.config.once && is_glob(&watched) && self.open.is_empty() && self.closed.is_empty()
        {
            tracing::warn!(
                pattern = watched.as_str(),
                "no file matches yet; waiting for one to appear"
            );
        }
        Ok(())
    }

    /// Looks for the watched files: new ones are opened, those no longer
    /// at a watched path are marked rotated (read to their end, then let
    /// go).
    pub(crate) fn scan(&mut self) {
        let now = Instant::now();
        let mut seen = HashSet::new();
        let glob = is_glob(&self.config.watch);
        for path in expand(&self.config.watch) {
            if glob && is_compressed(&path) {
                if self.left_alone.insert(path.clone()) {
                    tracing::info!(file = %path.display(), "a compressed archive; not read");
                }
                continue;
            }
            let metadata = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            let inode = Inode::of(&metadata);
            seen.insert(inode);
            if let Some(open) = self.open.iter_mut().find(|o| o.inode == inode) {
                if open.rotated_since.take().is_some() || *open.path != *path {
                    open.path = Arc::from(path.as_path());
                }
                // Learn a young file's first bytes even while reading lags:
                // they tie a copytruncate copy to it.
                if open.fingerprint.len < FINGERPRINT_BYTES
                    && metadata.len() > open.fingerprint.len
                    && let Ok(fingerprint) = Fingerprint::of(&open.file)
                {
                    open.fingerprint = fingerprint;
                    let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(tracked) = registry.files.get_mut(&open.id) {
                        tracked.fingerprint = open.fingerprint.clone();
                    }
                }
                continue;
            }
            if let Some(at) = self.closed.iter().position(|c| c.inode == inode) {
                if metadata.len() != self.closed.get(at).map_or(0, |c| c.offset) {
                    self.reopen(at, &path);
                } else if let Some(closed) = self.closed.get_mut(at) {
                    closed.path.clone_from(&path);
                }
                continue;
            }
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) => {
                    if self.reported.insert(path.clone()) {
                        tracing::error!(
                            file = %path.display(),
                            "cannot open: {e}{}",
                            if e.kind() == io::ErrorKind::PermissionDenied { PERMISSION_ADVICE } else { "" }
                        );
                    }
                    continue;
                }
            };
            self.reported.remove(&path);
            let (offset, line) = if self.first_scan && self.config.start_at == StartAt::End {
                match count_lines(&file, metadata.len()) {
                    Ok(lines) => (metadata.len(), lines),
                    Err(_) => (0, 0),
                }
            } else {
                (0, 0)
            };
            if let Some(open) = self.track(file, &path, inode, offset, line) {
                tracing::info!(file = %path.display(), offset, "following");
                self.open.push(open);
            }
        }
        for open in &mut self.open {
            if !seen.contains(&open.inode) && open.rotated_since.is_none() {
                tracing::info!(file = %open.path.display(), "rotated or deleted; reading it to its end");
                open.rotated_since = Some(now);
            }
        }
        // A closed file no longer matched (renamed away, deleted) may have
        // grown just before it went: found where it is now, it is read to
        // its end like any rotated file. Otherwise it was read whole, and
        // its place leaves the checkpoint.
        let (kept, gone): (Vec<Closed>, Vec<Closed>) = std::mem::take(&mut self.closed)
            .into_iter()
            .partition(|c| seen.contains(&c.inode));
        self.closed = kept;
        for closed in gone {
            let found = locate(&FileCheckpoint {
                path: closed.path.clone(),
                inode: closed.inode,
                fingerprint: closed.fingerprint.clone(),
                offset: closed.offset,
                line: closed.line,
            })
            .filter(|(_, file)| file_len(file).is_ok_and(|len| len != closed.offset));
            match found {
                Some((path, file)) => {
                    tracing::info!(file = %path.display(), "changed and rotated; reading it to its end");
                    self.open.push(reopened(closed, file, &path, Some(now)));
                }
                None => {
                    let mut registry = self.lock();
                    if let Some(tracked) = registry.files.get_mut(&closed.id) {
                        tracked.emitted_offset = closed.offset;
                        tracked.released = true;
                    }
                }
            }
        }
        self.first_scan = false;
    }

    /// Opens the closed file `self.closed[at]` again, now at `path`, where
    /// it was left; a truncation is then found as for any open file.
    fn reopen(&mut self, at: usize, path: &Path) {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                if self.reported.insert(path.to_path_buf()) {
                    tracing::error!(file = %path.display(), "cannot open again: {e}");
                }
                return;
            }
        };
        self.reported.remove(path);
        let closed = self.closed.swap_remove(at);
        tracing::info!(file = %path.display(), offset = closed.offset, "changed; following again");
        self.open.push(reopened(closed, file, path, None));
    }

    /// Whether `open` may be closed for being idle: a glob's file, not
    /// rotated, read to its end with no partial line, idle for
    /// `close_inactive`, and everything read from it settled.
    fn inactive(&self, open: &Open) -> bool {
        is_glob(&self.config.watch)
            && !self.config.once
            && open.rotated_since.is_none()
            && open.partial.is_empty()
            && open.partial_dropped == 0
            && open.last_data.elapsed() >= self.config.close_inactive
            && file_len(&open.file).is_ok_and(|len| len == open.offset)
            && self
                .lock()
                .files
                .get(&open.id)
                .is_some_and(|t| t.generation == open.generation && t.settled_offset >= open.offset)
    }

    /// The files let go since the last call: their last lines have been
    /// handed out.
    pub(crate) fn take_released(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.released)
    }

    /// Reads up to the batch limits from every file in turn. Returns the
    /// lines read; releases rotated files that are done. `at_end` lets a
    /// `--once` run hand out partial last lines.
    pub(crate) fn read(&mut self, at_end: bool) -> Vec<Input<TailPosition>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut index = 0;
        while index < self.open.len() {
            if let Some(copy) = self.copy_on_truncation(index) {
                self.open.push(copy);
            }
            let Some(open) = self.open.get_mut(index) else {
                break;
            };
            let result = read_file(open, &self.config, &mut out, &mut bytes, &self.registry);
            if let Err(e) = result {
                tracing::warn!(file = %open.path.display(), "reading failed: {e}; retrying");
            }
            let idle = open.last_data.elapsed();
            let rotated_done = open.rotated_since.is_some_and(|since| {
                self.config.once
                    || (idle >= self.config.rotate_wait
                        && since.elapsed() >= self.config.rotate_wait)
            });
            let at_eof = file_len(&open.file).is_ok_and(|len| len <= open.offset);
            if at_eof
                && (rotated_done || at_end)
                && (!open.partial.is_empty() || open.partial_dropped > 0)
            {
                emit_partial(open, &mut out);
            }
            if at_eof && rotated_done {
                let open = self.open.remove(index);
                let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tracked) = registry.files.get_mut(&open.id) {
                    tracked.emitted_offset = open.offset;
                    tracked.released = true;
                }
                tracing::info!(file = %open.path.display(), "read to its end; let go");
                self.released.push(open.id);
                continue;
            }
            if let Some(last) = out.last()
                && last.position.file == open.id
            {
                let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tracked) = registry.files.get_mut(&open.id) {
                    tracked.emitted_offset = last.position.end;
                }
            }
            if self.open.get(index).is_some_and(|open| self.inactive(open)) {
                let open = self.open.remove(index);
                tracing::info!(
                    file = %open.path.display(),
                    idle = ?self.config.close_inactive,
                    "idle: closed until it changes"
                );
                self.closed.push(Closed {
                    id: open.id,
                    path: open.path.to_path_buf(),
                    inode: open.inode,
                    fingerprint: open.fingerprint,
                    generation: open.generation,
                    offset: open.offset,
                    line: open.line,
                });
                continue;
            }
            index += 1;
        }
        out
    }
}

const PERMISSION_ADVICE: &str =
    " (permission denied: the user running shardline needs read access, e.g. `chmod 644 FILE`)";

impl Tailer {
    /// copytruncate copies a file and truncates it: whatever the copy holds
    /// past what was read is found there. When `self.open[index]` was
    /// truncated, looks among its siblings for a file (not followed yet)
    /// that starts with the same bytes and reaches at least as far. The copy
    /// takes over the file's id — lines in flight settle into it, and its
    /// checkpoint keeps their place — and is read on from the same offset
    /// as a rotated file; the truncated file starts over under a new id.
    fn copy_on_truncation(&mut self, index: usize) -> Option<Open> {
        let open = self.open.get(index)?;
        let size = file_len(&open.file).ok()?;
        if size >= open.offset && open.fingerprint.matches(&open.file) {
            return None;
        }
        let followed: HashSet<Inode> = self
            .open
            .iter()
            .map(|o| o.inode)
            .chain(self.closed.iter().map(|c| c.inode))
            .collect();
        let dir = open.path.parent().filter(|d| !d.as_os_str().is_empty())?;
        let (path, file, inode) = std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
            let path = entry.path();
            let metadata = std::fs::metadata(&path).ok()?;
            let inode = Inode::of(&metadata);
            if !metadata.is_file() || followed.contains(&inode) || metadata.len() < open.offset {
                return None;
            }
            let file = File::open(&path).ok()?;
            open.fingerprint
                .matches(&file)
                .then_some((path, file, inode))
        })?;
        tracing::info!(
            file = %open.path.display(),
            copy = %path.display(),
            offset = open.offset,
            "truncated; reading the rest of its copy"
        );
        let new_id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        let open = self.open.get_mut(index)?;
        let fingerprint = Fingerprint::of(&open.file).ok()?;
        let copy = Open {
            id: open.id,
            file,
            path: Arc::from(path.as_path()),
            inode,
            fingerprint: open.fingerprint.clone(),
            generation: open.generation,
            offset: open.offset,
            line: open.line,
            partial: std::mem::take(&mut open.partial),
            partial_start: open.partial_start,
            partial_dropped: std::mem::take(&mut open.partial_dropped),
            rotated_since: Some(now),
            last_data: now,
        };
        let original = Tracked {
            path: open.path.to_path_buf(),
            inode: open.inode,
            fingerprint: fingerprint.clone(),
            generation: 0,
            settled_offset: 0,
            settled_line: 0,
            emitted_offset: 0,
            released: false,
        };
        open.id = new_id;
        open.generation = 0;
        open.offset = 0;
        open.line = 0;
        open.partial_start = 0;
        open.fingerprint = fingerprint;
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tracked) = registry.files.get_mut(&copy.id) {
            tracked.path = path;
            tracked.inode = inode;
        }
        registry.files.insert(new_id, original);
        Some(copy)
    }
}

/// A closed file opened again as `file` at `path`, where it was left.
fn reopened(closed: Closed, file: File, path: &Path, rotated_since: Option<Instant>) -> Open {
    Open {
        id: closed.id,
        file,
        path: Arc::from(path),
        inode: closed.inode,
        fingerprint: closed.fingerprint,
        generation: closed.generation,
        offset: closed.offset,
        line: closed.line,
        partial: Vec::new(),
        partial_start: closed.offset,
        partial_dropped: 0,
        rotated_since,
        last_data: Instant::now(),
    }
}

fn file_len(file: &File) -> io::Result<u64> {
    file.metadata().map(|m| m.len())
}

/// Reads what `open` holds past its offset into lines, within the batch
/// limits. Detects truncation first.
fn read_file(
    open: &mut Open,
    config: &TailConfig,
    out: &mut Vec<Input<TailPosition>>,
    bytes: &mut usize,
    registry: &Mutex<Registry>,
) -> io::Result<()> {
    let size = file_len(&open.file)?;
    if size < open.offset || !open.fingerprint.matches(&open.file) {
        tracing::warn!(file = %open.path.display(), "truncated (copytruncate?); reading it again from its start");
        open.generation += 1;
        open.offset = 0;
        open.line = 0;
        open.partial.clear();
        open.partial_start = 0;
        open.partial_dropped = 0;
        open.fingerprint = Fingerprint::of(&open.file)?;
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tracked) = registry.files.get_mut(&open.id) {
            tracked.generation = open.generation;
            tracked.fingerprint = open.fingerprint.clone();
            tracked.settled_offset = 0;
            tracked.settled_line = 0;
            tracked.emitted_offset = 0;
        }
    } else if open.fingerprint.len < FINGERPRINT_BYTES && size > open.fingerprint.len {
        open.fingerprint = Fingerprint::of(&open.file)?;
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tracked) = registry.files.get_mut(&open.id) {
            tracked.fingerprint = open.fingerprint.clone();
        }
    }
    while open.offset < size
        && out.len() < config.max_batch_lines
        && *bytes < config.max_batch_bytes
    {
        // A buffer of its own for each read: the lines in it are handed out
        // as slices of it, not copies.
        let want = usize::try_from(size - open.offset)
            .unwrap_or(READ_CHUNK)
            .min(READ_CHUNK);
        let mut fresh = BytesMut::zeroed(want);
        let n = open.file.read_at(&mut fresh, open.offset)?;
        if n == 0 {
            break;
        }
        fresh.truncate(n);
        let chunk = fresh.freeze();
        open.last_data = Instant::now();
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', &chunk) {
            let piece = chunk.get(start..newline).unwrap_or_default();
            let line_start = if open.partial.is_empty() && open.partial_dropped == 0 {
                open.offset + start as u64
            } else {
                open.partial_start
            };
            let data = if open.partial.is_empty() && open.partial_dropped == 0 {
                // A whole line in this chunk: cut at the limit too.
                let keep = piece.len().min(config.max_line_bytes);
                open.partial_dropped = (piece.len() - keep) as u64;
                chunk.slice(start..start + keep)
            } else {
                append_capped(open, piece, config.max_line_bytes);
                Bytes::from(std::mem::take(&mut open.partial))
            };
            let end = open.offset + newline as u64 + 1;
            push_line(open, data, line_start, end, out);
            *bytes += newline - start + 1;
            start = newline + 1;
            if out.len() >= config.max_batch_lines || *bytes >= config.max_batch_bytes {
                break;
            }
        }
        let rest = chunk.get(start..).unwrap_or_default();
        let complete_to = start;
        if out.len() >= config.max_batch_lines || *bytes >= config.max_batch_bytes {
            // Stop after the last whole line; the rest is read again.
            open.offset += complete_to as u64;
            return Ok(());
        }
        if !rest.is_empty() {
            if open.partial.is_empty() && open.partial_dropped == 0 {
                open.partial_start = open.offset + start as u64;
            }
            append_capped(open, rest, config.max_line_bytes);
        }
        open.offset += n as u64;
    }
    Ok(())
}

fn append_capped(open: &mut Open, piece: &[u8], cap: usize) {
    let room = cap.saturating_sub(open.partial.len());
    let keep = piece.len().min(room);
    open.partial
        .extend_from_slice(piece.get(..keep).unwrap_or_default());
    open.partial_dropped += (piece.len() - keep) as u64;
}

fn push_line(
    open: &mut Open,
    mut data: Bytes,
    start: u64,
    end: u64,
    out: &mut Vec<Input<TailPosition>>,
) {
    if data.last() == Some(&b'\r') {
        data.truncate(data.len() - 1);
    }
    open.line += 1;
    let dropped = std::mem::take(&mut open.partial_dropped);
    open.partial_start = end;
    out.push(Input {
        data,
        position: TailPosition {
            file: open.id,
            generation: open.generation,
            path: open.path.clone(),
            start,
            end,
            line: open.line,
            first_line: open.line,
            dropped,
        },
    });
}

/// The last line of a file let go (or of a `--once` run) that has no
/// newline.
fn emit_partial(open: &mut Open, out: &mut Vec<Input<TailPosition>>) {
    let data = Bytes::from(std::mem::take(&mut open.partial));
    let start = open.partial_start;
    let end = open.offset;
    push_line(open, data, start, end, out);
}

/// Finds a checkpointed file where it was, or renamed in the same
/// directory: same device and inode, same first bytes.
fn locate(checkpoint: &FileCheckpoint) -> Option<(PathBuf, File)> {
    let matches = |path: &Path| -> Option<File> {
        let metadata = std::fs::metadata(path).ok()?;
        if !metadata.is_file() || Inode::of(&metadata) != checkpoint.inode {
            return None;
        }
        let file = File::open(path).ok()?;
        checkpoint.fingerprint.matches(&file).then_some(file)
    };
    if let Some(file) = matches(&checkpoint.path) {
        return Some((checkpoint.path.clone(), file));
    }
    let dir = checkpoint
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())?;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let path = entry.path();
        matches(&path).map(|file| (path, file))
    })
}

/// Whether a watched path is a glob pattern (has `*`, `?` or `[`).
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn is_compressed(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    COMPRESSED_ENDINGS
        .iter()
        .any(|ending| name.ends_with(ending))
}

fn expand(pattern: &str) -> Vec<PathBuf> {
    if !is_glob(pattern) {
        return vec![PathBuf::from(pattern)];
    }
    match glob::glob(pattern) {
        Ok(paths) => paths.flatten().collect(),
        Err(e) => {
            tracing::error!("bad glob pattern {pattern}: {e}");
            Vec::new()
        }
    }
}

/// Lines in the first `len` bytes of `file`.
fn count_lines(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0; READ_CHUNK];
    let mut offset = 0;
    let mut lines = 0;
    while offset < len {
        let want = usize::try_from(len - offset)
            .unwrap_or(READ_CHUNK)
            .min(READ_CHUNK);
        let n = file.read_at(buf.get_mut(..want).unwrap_or_default(), offset)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', buf.get(..n).unwrap_or_default()).count() as u64;
        offset += n as u64;
    }
    Ok(lines)
}
