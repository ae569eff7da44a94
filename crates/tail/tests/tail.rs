//! Following files through rotation, truncation and restarts, through the
//! `Source` contract only: what is read, what is settled, what a restart
//! reads again.

// Test code: a failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline_core::{CheckpointFile, Input, Source};
use shardline_tail::{
    CHECKPOINT_KIND, StartAt, TailCheckpoints, TailConfig, TailPosition, TailSource,
};

/// How long a test waits for lines it expects before it fails.
const DEADLINE: Duration = Duration::from_secs(20);

fn config(watch: &Path) -> TailConfig {
    let mut config = TailConfig::new(watch.to_string_lossy());
    config.start_at = StartAt::Beginning;
    config.poll_interval = Duration::from_millis(10);
    config.rotate_wait = Duration::from_millis(300);
    config
}

fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn lines(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!("{prefix} {n}")).collect()
}

fn text(inputs: &[Input<TailPosition>]) -> Vec<String> {
    inputs
        .iter()
        .map(|i| String::from_utf8_lossy(&i.data).into_owned())
        .collect()
}

/// Reads until `count` lines have come, or fails at the deadline.
async fn read_lines(source: &mut TailSource, count: usize) -> Vec<Input<TailPosition>> {
    let started = Instant::now();
    let mut read = Vec::new();
    while read.len() < count {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, source.read()).await {
            Ok(Ok(Some(batch))) => read.extend(batch),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("reading: {e}"),
            Err(_) => panic!("{} of {count} lines within {DEADLINE:?}", read.len()),
        }
    }
    read
}

/// A run that reads the first `read` lines of `log`, settles the first
/// `settle` of them, checkpoints and stops.
async fn run_and_stop(dir: &Path, log: &Path, read: usize, settle: usize) {
    let mut source = TailSource::start(config(log), checkpoints(dir, false), false).unwrap();
    let inputs = read_lines(&mut source, read).await;
    let mut settler = source.settler();
    settler(
        inputs
            .into_iter()
            .take(settle)
            .map(|i| i.position)
            .collect(),
    );
    source.checkpoint().await.unwrap();
}

fn checkpoints(dir: &Path, resume: bool) -> Arc<TailCheckpoints> {
    let file = CheckpointFile::new(dir.join("tail.checkpoint.json"), CHECKPOINT_KIND);
    Arc::new(if resume {
        TailCheckpoints::open(file).unwrap()
    } else {
        TailCheckpoints::fresh(file)
    })
}

#[tokio::test]
async fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, lines("old", 0..50));
    let mut source =
        TailSource::start(config(&log), checkpoints(dir.path(), false), false).unwrap();
    let mut read = read_lines(&mut source, 50).await;
    // The writer renames the file and still writes to it for a moment,
    // then opens a new one.
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, lines("old", 50..60));
    append(&log, lines("new", 0..40));
    read.extend(read_lines(&mut source, 50).await);
    let read = text(&read);
    let old: Vec<&String> = read.iter().filter(|l| l.starts_with("old")).collect();
    let new: Vec<&String> = read.iter().filter(|l| l.starts_with("new")).collect();
    assert_eq!(
        old,
        lines("old", 0..60).iter().collect::<Vec<_>>(),
        "each file in order, once"
    );
    assert_eq!(new, lines("new", 0..40).iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn copytruncate_rotation_reads_the_file_again_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, lines("before", 0..30));
    let mut source =
        TailSource::start(config(&log), checkpoints(dir.path(), false), false).unwrap();
    let read = read_lines(&mut source, 30).await;
    assert_eq!(text(&read), lines("before", 0..30));
    // logrotate's copytruncate: the file is copied away and cut to zero,
    // and the writer goes on at its start.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, lines("after", 0..20));
    let read = read_lines(&mut source, 20).await;
    assert_eq!(text(&read), lines("after", 0..20));
    let first = &read[0].position;
    assert_eq!(
        (first.start, first.line),
        (0, 1),
        "numbered from the start again"
    );
}

#[tokio::test]
async fn a_restart_reads_again_exactly_what_was_not_settled() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, lines("line", 0..100));
    // Only the first 60 settle before the process stops.
    run_and_stop(dir.path(), &log, 100, 60).await;

    append(&log, lines("line", 100..110));
    let mut source = TailSource::start(config(&log), checkpoints(dir.path(), true), true).unwrap();
    let read = read_lines(&mut source, 50).await;
    assert_eq!(text(&read), lines("line", 60..110));
    assert_eq!(read[0].position.line, 61, "line numbers carry on");
}

#[tokio::test]
async fn a_file_renamed_away_before_its_lines_settled_is_found_and_finished_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, lines("old", 0..40));
    run_and_stop(dir.path(), &log, 40, 10).await;

    // While the process is down the file is rotated by rename.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, lines("new", 0..5));
    let mut source = TailSource::start(config(&log), checkpoints(dir.path(), true), true).unwrap();
    let read = text(&read_lines(&mut source, 35).await);
    let old: Vec<String> = read
        .iter()
        .filter(|l| l.starts_with("old"))
        .cloned()
        .collect();
    let new: Vec<String> = read
        .iter()
        .filter(|l| l.starts_with("new"))
        .cloned()
        .collect();
    assert_eq!(old, lines("old", 10..40));
    assert_eq!(new, lines("new", 0..5));
}

#[tokio::test]
async fn a_file_truncated_while_down_is_read_from_its_start_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, lines("first", 0..20));
    run_and_stop(dir.path(), &log, 20, 20).await;

    std::fs::write(&log, "").unwrap();
    append(&log, lines("second", 0..3));
    let mut source = TailSource::start(config(&log), checkpoints(dir.path(), true), true).unwrap();
    assert_eq!(
        text(&read_lines(&mut source, 3).await),
        lines("second", 0..3)
    );
}

#[tokio::test]
async fn a_line_longer_than_the_limit_is_cut_and_says_how_much_was_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, ["x".repeat(300), "short".to_owned()]);
    let mut config = config(&log);
    config.max_line_bytes = 100;
    config.once = true;
    let mut source = TailSource::start(config, checkpoints(dir.path(), false), false).unwrap();
    let read = read_lines(&mut source, 2).await;
    assert_eq!(read[0].data.len(), 100);
    assert_eq!(read[0].position.dropped, 200);
    assert_eq!(text(&read[1..]), ["short"]);
}

/// Whether this process holds a descriptor open on `path`.
fn held_open(path: &Path) -> bool {
    let path = std::fs::canonicalize(path).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

/// Waits until `what` holds, or fails at the deadline.
async fn wait_for(what: &str, mut until: impl FnMut() -> bool) {
    let started = Instant::now();
    while !until() {
        assert!(started.elapsed() < DEADLINE, "{what} within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Regression (issue 20, item 10): every file a glob matched stayed open
/// and was read on every pass for as long as it was matched — dated
/// archives included.
#[tokio::test]
async fn an_idle_file_of_a_glob_is_closed_and_opened_again_where_it_was_when_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app-2026-12-01.log");
    let live = dir.path().join("app-2026-12-06.log");
    append(&archive, lines("archive", 0..3));
    append(&live, lines("live", 0..2));
    let mut config = config(&dir.path().join("app-*.log"));
    config.close_inactive = Duration::from_millis(300);
    let checkpoints = checkpoints(dir.path(), false);
    let mut source = TailSource::start(config, checkpoints.clone(), false).unwrap();
    let read = read_lines(&mut source, 5).await;
    assert!(held_open(&archive) && held_open(&live));

    // Settled and idle: both are closed; the checkpoint keeps their place.
    source.settler()(read.into_iter().map(|i| i.position).collect());
    wait_for("the idle files closed", || {
        !held_open(&archive) && !held_open(&live)
    })
    .await;
    source.checkpoint().await.unwrap();
    let saved = std::fs::read_to_string(dir.path().join("tail.checkpoint.json")).unwrap();
    assert!(saved.contains("app-2026-12-01.log"), "{saved}");

    // The live file grows: it is opened again and read from where it was.
    append(&live, lines("live", 2..4));
    let more = read_lines(&mut source, 2).await;
    assert_eq!(text(&more), lines("live", 2..4));
    assert_eq!(more[0].position.line, 3);
    assert!(held_open(&live) && !held_open(&archive));

    // The archive is deleted: its place leaves the checkpoint.
    std::fs::remove_file(&archive).unwrap();
    source.settler()(more.into_iter().map(|i| i.position).collect());
    let file = dir.path().join("tail.checkpoint.json");
    let mut dropped = false;
    for _ in 0..200 {
        source.checkpoint().await.unwrap();
        if !std::fs::read_to_string(&file)
            .unwrap()
            .contains("app-2026-12-01.log")
        {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dropped, "the deleted archive is still checkpointed");
}

/// A closed file that grows and is renamed out of the glob before a scan
/// sees it grow is found where it went and read to its end: its new lines
/// are not taken as read.
#[tokio::test]
async fn a_closed_file_that_grows_and_is_renamed_away_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app-1.log");
    append(&log, lines("old", 0..2));
    let mut config = config(&dir.path().join("app-*.log"));
    config.close_inactive = Duration::from_millis(200);
    let mut source = TailSource::start(config, checkpoints(dir.path(), false), false).unwrap();
    let read = read_lines(&mut source, 2).await;
    source.settler()(read.into_iter().map(|i| i.position).collect());
    wait_for("the idle file closed", || !held_open(&log)).await;
    // The writer adds lines, and the file is rotated out of the pattern.
    append(&log, lines("new", 0..3));
    std::fs::rename(&log, dir.path().join("app-1.log.1")).unwrap();
    let more = read_lines(&mut source, 3).await;
    assert_eq!(text(&more), lines("new", 0..3));
}

/// Whether this process holds a descriptor on a deleted file once at
/// `path`.
fn held_deleted(path: &Path) -> bool {
    let gone = format!("{} (deleted)", path.display());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == gone))
}

/// A file deleted while lines in it were still unread is read to its end
/// through the descriptor held on it, then let go: its descriptor closed.
#[tokio::test]
async fn a_file_deleted_while_open_is_read_to_its_end_then_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    let log = dir_path.join("app.log");
    append(&log, lines("first", 0..3));
    let mut config = config(&log);
    config.max_batch_lines = 100;
    let mut source = TailSource::start(config, checkpoints(&dir_path, false), false).unwrap();
    assert_eq!(
        text(&read_lines(&mut source, 3).await),
        lines("first", 0..3)
    );
    // More than a batch, and the file deleted before a read sees them.
    append(&log, lines("last", 0..1000));
    std::fs::remove_file(&log).unwrap();
    assert!(held_deleted(&log));
    let rest = read_lines(&mut source, 1000).await;
    assert_eq!(text(&rest), lines("last", 0..1000));
    wait_for("the deleted file let go", || !held_deleted(&log)).await;
}

/// A glob that matches a log's compressed archives (`app.log*` matching
/// `app.log.2.gz`) leaves them alone: their bytes are no log lines.
#[tokio::test]
async fn compressed_archives_matched_by_a_glob_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, lines("live", 0..2));
    append(&dir.path().join("app.log.1"), lines("rotated", 0..2));
    for archive in [
        "app.log.2.gz",
        "app.log.3.bz2",
        "app.log.4.xz",
        "app.log.5.zst",
    ] {
        std::fs::write(dir.path().join(archive), b"\x1f\x8b\x08\x00compressed\n").unwrap();
    }
    let mut config = config(&dir.path().join("app.log*"));
    config.once = true;
    let mut source = TailSource::start(config, checkpoints(dir.path(), false), false).unwrap();
    let mut read = Vec::new();
    while let Some(batch) = source.read().await.unwrap() {
        read.extend(text(&batch));
    }
    read.sort();
    let mut want = [lines("live", 0..2), lines("rotated", 0..2)].concat();
    want.sort();
    assert_eq!(read, want);
}

/// A glob that matches a log's rotated names (`app.log*`): the rotated
/// file keeps its place through the rename and through a restart, so a
/// restart reads neither file again, only what was added.
#[tokio::test]
async fn a_glob_over_rotated_names_reads_nothing_twice_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, lines("before", 0..3));
    let config = config(&dir.path().join("app.log*"));
    let mut source =
        TailSource::start(config.clone(), checkpoints(dir.path(), false), false).unwrap();
    let mut read = read_lines(&mut source, 3).await;
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, lines("after", 0..2));
    read.extend(read_lines(&mut source, 2).await);
    assert_eq!(
        text(&read),
        [lines("before", 0..3), lines("after", 0..2)].concat()
    );
    source.settler()(read.into_iter().map(|i| i.position).collect());
    source.checkpoint().await.unwrap();
    drop(source);

    append(&log, lines("new", 0..2));
    let mut source = TailSource::start(config, checkpoints(dir.path(), true), true).unwrap();
    assert_eq!(text(&read_lines(&mut source, 2).await), lines("new", 0..2));
    // Nothing more comes: neither file is read again.
    let more = tokio::time::timeout(Duration::from_millis(500), source.read()).await;
    assert!(
        more.is_err(),
        "read again: {:?}",
        more.map(|r| r.map(|b| b.map(|b| text(&b))))
    );
}
