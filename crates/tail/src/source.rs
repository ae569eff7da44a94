//! [`TailSource`]: the tailer on its own thread, as a [`Source`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use shardline_core::{Input, Source, SourceError};
use tokio::sync::mpsc;

use crate::checkpoint::TailCheckpoints;
use crate::multiline::Joiner;
use crate::tailer::{Registry, Tailer};
use crate::{TailConfig, TailError, TailPosition};

/// Batches waiting between the reading thread and the pipeline: bounds
/// what is read ahead to two batches.
const READ_AHEAD_BATCHES: usize = 2;

/// Batches of lines a [`TailSource`] holds at most ahead of its reader:
/// those waiting, and the one its thread is cutting.
pub const BATCHES_AHEAD: usize = READ_AHEAD_BATCHES + 1;

/// Follows one watched path or glob; see the crate documentation.
#[derive(Debug)]
pub struct TailSource {
    watch: String,
    rx: mpsc::Receiver<Vec<Input<TailPosition>>>,
    registry: Arc<Mutex<Registry>>,
    checkpoints: Arc<TailCheckpoints>,
    stop: Arc<AtomicBool>,
}

impl TailSource {
    /// Opens the watched files — continuing from `checkpoints` if `resume`
    /// — and starts reading them on a thread of its own. A missing plain
    /// path is waited for, except with `once`; an unreadable one is an
    /// error.
    pub fn start(
        config: TailConfig,
        checkpoints: Arc<TailCheckpoints>,
        resume: bool,
    ) -> Result<Self, TailError> {
        let registry = Arc::new(Mutex::new(Registry::default()));
        let section = if resume {
            checkpoints.section(&config.watch)
        } else {
            None
        };
        let watch = config.watch.clone();
        let mut tailer = Tailer::new(config.clone(), registry.clone(), section)?;
        let (tx, rx) = mpsc::channel(READ_AHEAD_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let name = format!("tail {watch}");
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let mut last_scan = Instant::now();
            let mut joiner = config
                .multi_line
                .as_ref()
                .map(|rule| Joiner::new(rule, config.max_line_bytes));
            while !stopping.load(Ordering::Relaxed) {
                if last_scan.elapsed() >= config.poll_interval {
                    tailer.scan();
                    last_scan = Instant::now();
                }
                let mut batch = tailer.read(false);
                let idle = batch.is_empty();
                let mut at_end = false;
                if idle && config.once {
                    tailer.scan();
                    batch = tailer.read(true);
                    at_end = batch.is_empty();
                }
                let released = tailer.take_released();
                if let Some(joiner) = &mut joiner {
                    let now = Instant::now();
                    batch = joiner.join(batch, now);
                    batch.extend(joiner.finish(&released));
                    batch.extend(joiner.flush(now, at_end));
                }
                if at_end && batch.is_empty() {
                    break;
                }
                if !batch.is_empty() && tx.blocking_send(batch).is_err() {
                    break;
                }
                if idle && !config.once {
                    std::thread::sleep(config.poll_interval);
                }
            }
        });
        if let Err(e) = spawned {
            return Err(TailError::Io {
                path: watch.into(),
                source: e,
            });
        }
        Ok(TailSource {
            watch,
            rx,
            registry,
            checkpoints,
            stop,
        })
    }
}

impl Drop for TailSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl Source for TailSource {
    type Position = TailPosition;

    async fn read(&mut self) -> Result<Option<Vec<Input<TailPosition>>>, SourceError> {
        Ok(self.rx.recv().await)
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<TailPosition>) + Send> {
        let registry = self.registry.clone();
        Box::new(move |positions| {
            let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
            for position in &positions {
                registry.settle(position);
            }
        })
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        let files = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .checkpoint();
        let checkpoints = self.checkpoints.clone();
        let watch = self.watch.clone();
        tokio::task::spawn_blocking(move || checkpoints.save(&watch, files))
            .await
            .map_err(|e| SourceError::Other(format!("writing the checkpoint: {e}")))??;
        Ok(())
    }
}
