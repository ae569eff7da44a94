//! The streamer: settings → runner → one pipeline per log file →
//! shutdown → summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use shardline_cli::{CommonArgs, CommonConfig, Defaults, Settings, seconds};
use shardline_core::CheckpointFile;
use shardline_pipeline::{DEFAULT_CHECKPOINT_INTERVAL, parse_threads};
use shardline_runner::Runner;
use shardline_tail::{
    BATCHES_AHEAD, CHECKPOINT_KIND, StartAt, TailCheckpoints, TailConfig, TailSource,
};
use shardline_validate::{MaskRule, Masker};

use crate::RunArgs;
use crate::process::records_for;
use crate::settings::{ConfigFile, LogFile, parse_log_files};
use shardline_log_parser::LogRecords;

/// Threads parsing a batch at once by default (`parse_workers`).
const DEFAULT_PARSE_WORKERS: usize = 4;
/// What a batch being parsed takes, in batches' worth of lines: its lines,
/// and the records made of them, up to twice the lines' bytes with their
/// keys and bookkeeping (a 189-byte application log line becomes a
/// 277-byte record; heaptrack found about 10 MB of batches ahead of the
/// producer at full speed with two parse threads, against 9 MiB by this
/// count).
const PARSED_BATCH_LINES_WORTH: usize = 3;
/// Log lines are independent: no per-key order to keep by default.
const DEFAULTS: Defaults = Defaults {
    binary: "log-streamer",
    strict_ordering: false,
    linger: None,
    max_in_flight: None,
};

/// Every setting, from the config file and the flags.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) files: Vec<LogFile>,
    pub(crate) settings: Settings,
    parse_workers: usize,
    tail: TailConfig,
    checkpoint_interval: Duration,
    masking: Option<Masker>,
}

impl Plan {
    pub(crate) fn new(
        args: &RunArgs,
        common: CommonConfig,
        config: ConfigFile,
    ) -> anyhow::Result<Plan> {
        let mut files = match &args.log_files {
            Some(json) => parse_log_files(json)?,
            None => config.log_files.clone(),
        };
        // Checkpoints name files by absolute path: a restart from another
        // directory finds them.
        for file in &mut files {
            let absolute = std::path::absolute(&file.path)
                .with_context(|| format!("log file path {}", file.path))?;
            file.path = absolute.to_string_lossy().into_owned();
        }
        if files.is_empty() {
            bail!(
                "no log files: give --log-files '[{{\"path\": ..., \"type\": ...}}]' or log_files in --config"
            );
        }
        let settings = Settings::new(&args.common, common, DEFAULTS)?;
        let t = &config.tail;
        let mut tail = TailConfig::new(String::new());
        tail.once = args.once;
        tail.start_at = if args.once || args.from_beginning || t.from_beginning == Some(true) {
            StartAt::Beginning
        } else {
            StartAt::End
        };
        if let Some(s) = t.poll_interval {
            tail.poll_interval = seconds("poll_interval", s)?;
        }
        if let Some(s) = t.rotate_wait {
            tail.rotate_wait = seconds("rotate_wait", s)?;
        }
        if let Some(s) = t.close_inactive {
            tail.close_inactive = seconds("close_inactive", s)?;
        }
        if let Some(n) = t.max_line_bytes {
            tail.max_line_bytes = n;
        }
        let checkpoint_interval = match t.checkpoint_interval {
            Some(s) => seconds("checkpoint_interval", s)?,
            None => DEFAULT_CHECKPOINT_INTERVAL,
        };
        let masking = masker(&config)?;
        Ok(Plan {
            files,
            parse_workers: args
                .parse_workers
                .or(settings.parse_workers)
                .unwrap_or(DEFAULT_PARSE_WORKERS),
            settings,
            tail,
            checkpoint_interval,
            masking,
        })
    }

    /// The memory batches ahead of the producer take at most, outside its
    /// `queue_max_bytes`: for each file, the batches of lines read ahead
    /// and those being parsed with their records.
    pub(crate) fn intake_bytes(&self) -> usize {
        let batches = BATCHES_AHEAD + parse_threads(self.parse_workers) * PARSED_BATCH_LINES_WORTH;
        self.files.len() * batches * self.tail.max_batch_bytes
    }

    pub(crate) fn processor(&self, file: &LogFile) -> anyhow::Result<LogRecords> {
        records_for(file, self.masking.clone(), self.tail.max_line_bytes)
            .with_context(|| format!("log file {}", file.path))
    }
}

fn masker(config: &ConfigFile) -> anyhow::Result<Option<Masker>> {
    let section = &config.masking;
    if section.fields.is_empty() {
        return Ok(None);
    }
    let needs_key = section.fields.values().any(|r| *r == MaskRule::KeyedHash);
    let key = match &section.key_env {
        Some(var) => std::env::var(var)
            .with_context(|| format!("masking.key_env names {var}, which is not set"))?
            .into_bytes(),
        None if needs_key => {
            bail!("keyed_hash masking needs masking.key_env: the variable holding the key")
        }
        None => Vec::new(),
    };
    let mut masker = Masker::new(key);
    for (path, rule) in &section.fields {
        masker = masker.rule(path, *rule);
    }
    Ok(Some(masker))
}

fn load(args: &RunArgs) -> anyhow::Result<Plan> {
    let (common, config) = args.common.config::<ConfigFile>()?;
    Plan::new(args, common, config)
}

/// `log-streamer validate-config FILE`.
pub(crate) fn validate_config(path: &Path) -> anyhow::Result<ExitCode> {
    let args = RunArgs {
        common: CommonArgs {
            config: Some(path.to_path_buf()),
            ..CommonArgs::default()
        },
        log_files: None,
        once: false,
        from_beginning: false,
        resume_from_checkpoint: false,
        generate_test_logs: false,
        generate_rate: 1,
        parse_workers: None,
    };
    let plan = load(&args)?;
    for file in &plan.files {
        plan.processor(file)?;
    }
    println!(
        "{}: ok — {} log file(s) to {:?}, batches of {} records / {:?}",
        path.display(),
        plan.files.len(),
        plan.settings.run.destination,
        plan.settings.run.producer.batch_records,
        plan.settings.run.producer.linger,
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = load(&args)?;
    shardline_cli::block_on(stream(args, plan))
}

async fn stream(args: RunArgs, plan: Plan) -> anyhow::Result<ExitCode> {
    let mut running = Runner::start(plan.settings.run.clone()).await?;
    shardline_cli::announce_metrics("log-streamer", &running);
    let shutdown = shardline_cli::shutdown("log-streamer", plan.settings.duration)?;
    let checkpoint = CheckpointFile::new(&plan.settings.checkpoint_file, CHECKPOINT_KIND);
    // Held to the end of the run: a second process on the same file is
    // refused instead of overwriting this one's positions.
    let _owned = checkpoint.lock()?;
    let checkpoints = Arc::new(if args.resume_from_checkpoint {
        TailCheckpoints::open(checkpoint)?
    } else {
        TailCheckpoints::fresh(checkpoint)
    });

    // The lab's generator writes before the tailers first look.
    let generating = Arc::new(AtomicBool::new(false));
    let mut generators = Vec::new();
    if args.generate_test_logs {
        generating.store(true, Ordering::Relaxed);
        for file in &plan.files {
            if shardline_tail::is_glob(&file.path) {
                bail!(
                    "--generate-test-logs needs plain paths, not the pattern {}",
                    file.path
                );
            }
            let (path, kind, rate) = (PathBuf::from(&file.path), file.kind, args.generate_rate);
            let running = generating.clone();
            generators.push(std::thread::spawn(move || {
                crate::generate::run(&path, kind, rate, &running)
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    for file in &plan.files {
        let processor = Arc::new(plan.processor(file)?);
        let mut tail = plan.tail.clone();
        tail.watch = file.path.clone();
        tail.multi_line = file.multi_line.clone();
        let source = TailSource::start(tail, checkpoints.clone(), args.resume_from_checkpoint)?;
        let name = file.source_name();
        let pipeline = running
            .pipeline(&name, source, processor)
            .workers(plan.parse_workers)
            .checkpoint_interval(plan.checkpoint_interval);
        running.spawn(&name, pipeline);
    }
    eprintln!(
        "log-streamer: {} file(s) → {:?}; checkpoints in {}, dead letters in {}",
        plan.files.len(),
        plan.settings.run.destination,
        checkpoints.path().display(),
        plan.settings.run.dead_letter_file.display()
    );
    let held = plan.settings.run.producer.queue_max_bytes;
    let intake = plan.intake_bytes();
    eprintln!(
        "log-streamer: data held in memory at most {} MiB: {} MiB of records and requests in flight (queue_max_bytes), {} MiB of lines read ahead and being parsed",
        (held + intake) >> 20,
        held >> 20,
        intake >> 20
    );

    // Test lines stop first, then reading; what was read is delivered.
    let generated = generating.clone();
    let stopping = async move {
        shutdown.await;
        generated.store(false, Ordering::Relaxed);
    };
    let summary = running.run(stopping).await?;
    generating.store(false, Ordering::Relaxed);
    for generator in generators {
        if let Ok(Err(e)) = generator.join() {
            tracing::error!("generating test logs failed: {e}");
        }
    }
    Ok(shardline_cli::finish(
        "log-streamer",
        &plan.settings.run.destination,
        &summary,
    ))
}
