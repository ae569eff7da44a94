//! Settings → runner → one pipeline (slot, file or stdin) → shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use shardline_cdc::{ChangeRecords, Classifier, Decoder, Encoding, Format, KeyBy, TableFilter};
use shardline_cli::{CommonConfig, Defaults, Settings, seconds};
use shardline_core::{CheckpointFile, SourceName};
use shardline_pipeline::DEFAULT_CHECKPOINT_INTERVAL;
use shardline_postgres::{SlotConfig, SlotSource};
use shardline_runner::Runner;
use shardline_tail::{LinesSource, StartAt, TailCheckpoints, TailConfig, TailSource};

use crate::Args;

/// Each row's changes must stay in order through retries: at most one
/// batch in flight per partition key (the producer's strict ordering).
/// Batches wait at most 100 ms to fill — the KPL's `RecordMaxBufferedTime`
/// default — rather than the 5 s log-streamer waits: change consumers expect
/// seconds at most, and a slot round waits for what it read to settle
/// before peeking far ahead (`docs/benchmarks.md`: 5 s made aggregated
/// runs of small transactions 30× slower).
const DEFAULTS: Defaults = Defaults {
    binary: "cdc-forwarder",
    strict_ordering: true,
    linger: Some(Duration::from_millis(100)),
    max_in_flight: Some(CDC_MAX_IN_FLIGHT),
};
/// One batch request in flight unless `[producer] max_in_flight` says
/// otherwise. Kinesis has no idempotent put, so a crash may send again
/// what was in flight: with one request that is one batch (500 changes),
/// where the producer's default of 8 may repeat 4,000. Changes arrive in
/// commit order and strict ordering already holds a row's batches one at a
/// time, so more requests bought no speed (`docs/benchmarks.md`:
/// cdc-forwarder at 1 and 8 in flight).
const CDC_MAX_IN_FLIGHT: usize = 1;
/// The source's name in statistics (`by_source`) and dead letters.
const DEFAULT_SOURCE_NAME: &str = "database_cdc";
/// The slot read when none is named.
const DEFAULT_SLOT: &str = "shardline";

/// `[postgres]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresSection {
    url: Option<String>,
    slot: Option<String>,
    create_slot: Option<bool>,
    /// Create the slot anew past a checkpoint (`--accept-slot-gap`).
    accept_slot_gap: Option<bool>,
    tables: Option<String>,
    exclude_tables: Option<String>,
    /// Rows asked for per round beyond those not yet settled.
    max_changes: Option<usize>,
    /// Seconds between rounds that find nothing.
    poll_interval: Option<f64>,
    /// Seconds a query may take (0: no limit).
    statement_timeout: Option<f64>,
}

/// `[cdc]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CdcSection {
    input: Option<String>,
    from: Option<PathBuf>,
    critical_fields: Option<String>,
    key_columns: Option<String>,
    partition_key: Option<String>,
    output: Option<String>,
    /// The source's name in statistics and dead letters.
    source_name: Option<String>,
    /// Seconds between checkpoints.
    checkpoint_interval: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    postgres: PostgresSection,
    #[serde(default)]
    cdc: CdcSection,
}

/// Where changes come from.
#[derive(Debug)]
enum Input {
    Postgres(SlotConfig),
    File(PathBuf, Format),
    Stdin(Format),
}

#[derive(Debug)]
struct Plan {
    settings: Settings,
    input: Input,
    records: RecordsPlan,
    source_name: String,
    checkpoint_interval: Duration,
    once: bool,
}

#[derive(Debug)]
struct RecordsPlan {
    classifier: Classifier,
    key_columns: shardline_cdc::KeyColumns,
    tables: TableFilter,
    key_by: KeyBy,
    encoding: Encoding,
}

impl Plan {
    fn new(args: &Args, common: CommonConfig, config: ConfigFile) -> anyhow::Result<Plan> {
        let mut settings = Settings::new(&args.common, common, DEFAULTS)?;
        let (pg, cdc) = (config.postgres, config.cdc);
        let tables = TableFilter::parse(
            args.tables
                .as_deref()
                .or(pg.tables.as_deref())
                .unwrap_or(""),
            args.exclude_tables
                .as_deref()
                .or(pg.exclude_tables.as_deref())
                .unwrap_or(""),
        )?;
        let url = args.postgres_url.clone().or(pg.url);
        let format = args.input.clone().or(cdc.input);
        let from = args.from.clone().or(cdc.from);
        let input = match (url, format, from) {
            (Some(_), _, Some(_)) => bail!("give --postgres-url or --from, not both"),
            (Some(url), None | Some(_), None) => {
                let mut slot = SlotConfig::new(
                    url,
                    args.slot
                        .clone()
                        .or(pg.slot)
                        .unwrap_or_else(|| DEFAULT_SLOT.to_owned()),
                );
                slot.create_slot = args.create_slot || pg.create_slot == Some(true);
                slot.accept_slot_gap = args.accept_slot_gap || pg.accept_slot_gap == Some(true);
                if slot.accept_slot_gap && !slot.create_slot {
                    bail!("--accept-slot-gap applies to --create-slot: give both");
                }
                slot.tables = tables.clone();
                slot.once = args.once;
                if let Some(n) = pg.max_changes {
                    slot.max_changes = n;
                }
                if let Some(s) = pg.poll_interval {
                    slot.poll_interval = seconds("postgres.poll_interval", s)?;
                }
                if let Some(s) = pg.statement_timeout {
                    slot.statement_timeout = seconds("postgres.statement_timeout", s)?;
                }
                Input::Postgres(slot)
            }
            (None, Some(format), Some(from)) => {
                let format: Format = format.parse().map_err(anyhow::Error::msg)?;
                if from.as_os_str() == "-" {
                    Input::Stdin(format)
                } else {
                    Input::File(std::path::absolute(&from)?, format)
                }
            }
            (None, Some(_), None) => bail!("--input needs --from FILE or --from -"),
            (None, None, _) => bail!(
                "nothing to read: give --postgres-url URL (a wal2json slot) or --input FORMAT --from FILE|-"
            ),
        };
        let classifier = match args
            .critical_fields
            .as_deref()
            .or(cdc.critical_fields.as_deref())
        {
            Some(spec) => Classifier::parse(spec).context("--critical-fields")?,
            None => Classifier::new(),
        };
        let key_columns = match args.key_columns.as_deref().or(cdc.key_columns.as_deref()) {
            Some(spec) => shardline_cdc::table_columns(spec).context("--key-columns")?,
            None => shardline_cdc::KeyColumns::new(),
        };
        let key_by = match args
            .partition_key
            .as_deref()
            .or(cdc.partition_key.as_deref())
        {
            Some(text) => text.parse().map_err(anyhow::Error::msg)?,
            None => KeyBy::default(),
        };
        let encoding = match args.output.as_deref().or(cdc.output.as_deref()) {
            Some(text) => text.parse().map_err(anyhow::Error::msg)?,
            None => Encoding::default(),
        };
        if matches!(input, Input::Stdin(_)) {
            settings.input_cannot_be_read_again();
        }
        Ok(Plan {
            settings,
            input,
            records: RecordsPlan {
                classifier,
                key_columns,
                tables,
                key_by,
                encoding,
            },
            source_name: cdc
                .source_name
                .unwrap_or_else(|| DEFAULT_SOURCE_NAME.to_owned()),
            checkpoint_interval: match cdc.checkpoint_interval {
                Some(s) => seconds("cdc.checkpoint_interval", s)?,
                None => DEFAULT_CHECKPOINT_INTERVAL,
            },
            once: args.once,
        })
    }

    fn processor(&self, format: Format) -> ChangeRecords {
        let decoder = Decoder::new(format)
            .classifier(self.records.classifier.clone())
            .key_columns(self.records.key_columns.clone());
        ChangeRecords::new(decoder, SourceName::new(&self.source_name))
            .tables(self.records.tables.clone())
            .key_by(self.records.key_by)
            .encoding(self.records.encoding)
    }
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let (common, config) = args.common.config::<ConfigFile>()?;
    let plan = Plan::new(&args, common, config)?;
    shardline_cli::block_on(forward(plan))
}

async fn forward(plan: Plan) -> anyhow::Result<ExitCode> {
    let mut running = Runner::start(plan.settings.run.clone()).await?;
    shardline_cli::announce_metrics("cdc-forwarder", &running);
    let shutdown = shardline_cli::shutdown("cdc-forwarder", plan.settings.duration)?;
    let name = plan.source_name.clone();
    let checkpoint_file = &plan.settings.checkpoint_file;
    let mut slot_status = None;
    // Held to the end of the run: a second process on the same checkpoint
    // file is refused instead of overwriting this one's positions.
    let mut owned = Vec::new();
    match &plan.input {
        Input::Postgres(slot) => {
            let checkpoint =
                CheckpointFile::new(checkpoint_file, shardline_postgres::CHECKPOINT_KIND);
            owned.push(checkpoint.lock()?);
            let source = SlotSource::open(slot.clone(), checkpoint)
                .await
                .with_context(|| format!("replication slot {}", slot.slot))?
                .report_backlog(running.counters(&name));
            slot_status = Some(source.status());
            let processor = Arc::new(plan.processor(Format::Wal2json));
            let pipeline = running
                .pipeline(&name, source, processor)
                .checkpoint_interval(plan.checkpoint_interval);
            running.spawn(&name, pipeline);
        }
        Input::File(path, format) => {
            let checkpoint = CheckpointFile::new(checkpoint_file, shardline_tail::CHECKPOINT_KIND);
            owned.push(checkpoint.lock()?);
            let checkpoints = Arc::new(TailCheckpoints::open(checkpoint)?);
            let mut tail = TailConfig::new(path.to_string_lossy().into_owned());
            tail.once = plan.once;
            tail.start_at = StartAt::Beginning;
            let source = TailSource::start(tail, checkpoints, true)?;
            let pipeline = running
                .pipeline(&name, source, Arc::new(plan.processor(*format)))
                .checkpoint_interval(plan.checkpoint_interval);
            running.spawn(&name, pipeline);
        }
        Input::Stdin(format) => {
            let source = LinesSource::new(tokio::io::stdin(), "stdin");
            let pipeline = running.pipeline(&name, source, Arc::new(plan.processor(*format)));
            running.spawn(&name, pipeline);
        }
    }
    eprintln!(
        "cdc-forwarder: {} → {:?}; checkpoint {}, dead letters in {}",
        match &plan.input {
            Input::Postgres(slot) => format!("slot {}", slot.slot),
            Input::File(path, format) => format!("{format} lines of {}", path.display()),
            Input::Stdin(format) => format!("{format} lines of stdin"),
        },
        plan.settings.run.destination,
        checkpoint_file.display(),
        plan.settings.run.dead_letter_file.display()
    );
    let summary = running.run(shutdown).await?;
    drop(owned);
    let code = shardline_cli::finish("cdc-forwarder", &plan.settings.run.destination, &summary);
    if let Some(status) = slot_status {
        let status = status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        eprintln!("cdc-forwarder: slot {}", serde_json::to_string(&status)?);
    }
    Ok(code)
}
