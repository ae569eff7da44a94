//! The shared settings, resolved from flags and the config file, checked.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use shardline_core::default_state_dir;
use shardline_producer::{ProducerConfig, RetryPolicy, WhenRetriesRunOut};
use shardline_runner::{DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STATS_INTERVAL, Destination};

use crate::args::CommonArgs;
use crate::config::{CommonConfig, retries, seconds};

/// How long a record read from stdin may keep failing (an outage, long
/// throttling) before it is dead-lettered: stdin cannot be read again, so
/// holding it for good would stall the writer on the other end of the pipe
/// for as long as the outage lasts. Five minutes rides out a restart of
/// the endpoint or a failover.
pub const STDIN_DEAD_LETTER_AFTER: Duration = Duration::from_secs(300);
/// Bytes of records the producer holds at most, by default: far more than
/// 8 requests in flight need (8 × 500 records of ~400 bytes ≈ 1.6 MB), and
/// small enough that a blocked destination keeps the whole process within
/// 64 MiB (issue 7's goal; `docs/benchmarks.md`). The producer's memory
/// cap is this plus the copies of one full batch request; its own default
/// (64 MiB in all) suits a library user with memory to spare.
const DEFAULT_RECORD_MEMORY: usize = 8 * 1024 * 1024;

/// How long a batch may wait to fill (`batch_timeout`) unless a binary
/// says otherwise: 5 s. Log lines come fast enough to fill batches by count
/// sooner; a quiet log's lines wait at most this long. The library's own
/// default is shorter ([`shardline_producer::DEFAULT_LINGER`]).
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What differs between binaries in the shared settings.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// The binary's name: the state directory and messages use it.
    pub binary: &'static str,
    /// At most one batch in flight per partition key unless the config
    /// says otherwise (CDC: each row's changes in order).
    pub strict_ordering: bool,
    /// How long a batch may wait to fill unless the flags or the config
    /// say; `None`: [`DEFAULT_BATCH_TIMEOUT`] (for logs).
    pub linger: Option<Duration>,
    /// Batch requests in flight at once unless the config says; `None`:
    /// the producer's default (8). Also what a crash may send twice
    /// (`docs/reliability.md`): CDC keeps it at one batch.
    pub max_in_flight: Option<usize>,
}

/// The shared settings, resolved: flags override the config file, which
/// overrides the defaults: the runner's settings, and what the binary
/// itself uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The binary's name.
    pub binary: &'static str,
    /// What the run needs.
    pub run: shardline_runner::Settings,
    /// The config file's `parse_workers`, if set.
    pub parse_workers: Option<usize>,
    /// Where settled positions are saved.
    pub checkpoint_file: PathBuf,
    /// `--duration`: stop after this long.
    pub duration: Option<Duration>,
}

impl Settings {
    /// The input cannot be read again (stdin): unless `dead_letter_after`
    /// says otherwise, a record failing through an outage is dead-lettered
    /// after [`STDIN_DEAD_LETTER_AFTER`] rather than held for good.
    pub fn input_cannot_be_read_again(&mut self) {
        let retry = &mut self.run.producer.retry;
        if retry.when_retries_run_out == (WhenRetriesRunOut::Hold { limit: None }) {
            retry.when_retries_run_out = WhenRetriesRunOut::Hold {
                limit: Some(STDIN_DEAD_LETTER_AFTER),
            };
        }
    }

    /// Resolves the flags, the config file and the binary's defaults.
    pub fn new(
        args: &CommonArgs,
        config: CommonConfig,
        defaults: Defaults,
    ) -> anyhow::Result<Self> {
        let destination = destination(args, &config)?;
        let limits = destination.limits();
        let p = &config.producer;
        let mut producer = ProducerConfig::defaults_for(limits);
        if let Some(n) = args.batch_size.or(p.batch_size) {
            producer.batch_records = n;
        }
        if let Some(s) = args.batch_timeout.or(p.batch_timeout) {
            producer.linger = seconds("batch_timeout", s)?;
        } else {
            producer.linger = defaults.linger.unwrap_or(DEFAULT_BATCH_TIMEOUT);
        }
        if let Some(n) = args.queue_maxsize.or(p.queue_maxsize) {
            producer.queue_max_records = n;
        }
        if let Some(n) = p.max_in_flight.or(defaults.max_in_flight) {
            producer.max_in_flight = n;
        }
        if args.aggregate || p.aggregate == Some(true) {
            if !matches!(destination, Destination::Kinesis(_)) {
                bail!("aggregation is for Kinesis data streams");
            }
            producer.aggregate_max_bytes = Some(
                p.aggregate_max_bytes
                    .unwrap_or(shardline_producer::aggregation::DEFAULT_AGGREGATE_MAX_BYTES),
            );
        } else if p.aggregate_max_bytes.is_some() {
            bail!(
                "aggregate_max_bytes is set but aggregation is off: add --aggregate or aggregate = true"
            );
        }
        if p.pack == Some(true) {
            if !matches!(destination, Destination::Firehose(_)) {
                bail!("packing is for Firehose delivery streams");
            }
            producer.pack_max_bytes = Some(limits.max_record_bytes);
        }
        let mut retry = RetryPolicy::default();
        if let Some(n) = p.max_retries {
            retry.max_retries = retries(n)?;
        }
        if let Some(s) = p.retry_initial_delay {
            retry.initial_delay = seconds("retry_initial_delay", s)?;
        }
        if let Some(s) = p.retry_max_delay {
            retry.max_delay = seconds("retry_max_delay", s)?;
        }
        retry.when_retries_run_out = match p.dead_letter_after {
            None => WhenRetriesRunOut::Hold { limit: None },
            Some(0.0) => WhenRetriesRunOut::DeadLetter,
            Some(s) => WhenRetriesRunOut::Hold {
                limit: Some(seconds("dead_letter_after", s)?),
            },
        };
        producer.retry = retry;
        producer.strict_ordering = p.strict_ordering.unwrap_or(defaults.strict_ordering);
        producer.rate_limit_percent = p.rate_limit_percent;
        if let Some(on) = p.adaptive_shard_rate {
            producer.adaptive_shard_rate = on;
        }
        if let Some(on) = p.adaptive_concurrency {
            producer.adaptive_concurrency = on;
        }
        // Set last: the copies a full request makes depend on aggregation
        // and packing.
        producer.queue_max_bytes = p
            .queue_max_bytes
            .unwrap_or_else(|| DEFAULT_RECORD_MEMORY + producer.full_request_copy_bytes());
        producer.validate(limits).context("producer settings")?;

        let state = || {
            default_state_dir()
                .map(|d| d.join(defaults.binary))
                .context("no state directory: set HOME or XDG_STATE_HOME, or give --checkpoint-file and --dead-letter-file")
        };
        let label = destination.label().replace('/', "_");
        let checkpoint_file = match args.checkpoint_file.clone().or(config.checkpoint_file) {
            Some(path) => path,
            None => state()?.join(format!("{label}.checkpoint.json")),
        };
        let dead_letter_file = match args.dead_letter_file.clone().or(config.dead_letter_file) {
            Some(path) => path,
            None => state()?.join(format!("{label}.dead-letters.ndjson")),
        };
        let stats_interval = match args.stats_interval.or(config.stats_interval) {
            Some(s) => seconds("stats_interval", s)?,
            None => DEFAULT_STATS_INTERVAL,
        };
        let metrics_addr = args
            .metrics_addr
            .clone()
            .or(config.metrics.address.clone())
            .map(|a| shardline_metrics::prometheus::parse_addr(&a))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let alarms = config.metrics.alarms.clone();
        if alarms.critical_below > alarms.warning_below {
            bail!("metrics.alarms: critical_below must not exceed warning_below");
        }
        let mut run = shardline_runner::Settings::new(destination, dead_letter_file);
        run.region = args.region.clone().or(config.region);
        run.endpoint_url = args.endpoint_url.clone().or(config.endpoint_url);
        run.producer = producer;
        run.shutdown_timeout = match p.shutdown_timeout {
            Some(s) => seconds("shutdown_timeout", s)?,
            None => DEFAULT_SHUTDOWN_TIMEOUT,
        };
        run.stats_interval = stats_interval;
        run.metrics_addr = metrics_addr;
        run.cloudwatch_namespace = args
            .cloudwatch_namespace
            .clone()
            .or(config.metrics.cloudwatch_namespace);
        run.alarms = alarms;
        Ok(Settings {
            binary: defaults.binary,
            run,
            parse_workers: p.parse_workers,
            checkpoint_file,
            duration: args
                .duration
                .map(|s| seconds("--duration", s))
                .transpose()?,
        })
    }
}

fn destination(args: &CommonArgs, config: &CommonConfig) -> anyhow::Result<Destination> {
    let stream = args.stream_name.clone().or(config.stream_name.clone());
    let delivery = args
        .delivery_stream
        .clone()
        .or(config.delivery_stream.clone());
    let sink = args.sink.clone().or(config.sink.clone());
    Ok(match (sink.as_deref(), stream, delivery) {
        (Some("stdout"), _, _) => Destination::Stdout,
        (Some("firehose") | None, None, Some(name)) => Destination::Firehose(name),
        (Some("kinesis") | None, Some(name), None) => Destination::Kinesis(name),
        (_, Some(_), Some(_)) => bail!("give --stream-name or --delivery-stream, not both"),
        (Some("firehose"), _, None) => bail!("--sink firehose needs --delivery-stream"),
        (Some(other), _, _) if other != "kinesis" => {
            bail!("unknown sink {other:?}: kinesis, firehose or stdout")
        }
        _ => bail!("no destination: give --stream-name, --delivery-stream or --sink stdout"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        binary: "test",
        strict_ordering: true,
        linger: Some(Duration::from_millis(100)),
        max_in_flight: Some(1),
    };

    fn args() -> CommonArgs {
        CommonArgs {
            checkpoint_file: Some("c".into()),
            dead_letter_file: Some("d".into()),
            ..CommonArgs::default()
        }
    }

    #[test]
    fn an_outage_holds_records_unless_the_input_cannot_be_read_again() {
        let kinesis = CommonArgs {
            stream_name: Some("s".into()),
            ..args()
        };
        let rule = |settings: &Settings| settings.run.producer.retry.when_retries_run_out;
        let mut settings = Settings::new(&kinesis, CommonConfig::default(), DEFAULTS).unwrap();
        assert_eq!(rule(&settings), WhenRetriesRunOut::Hold { limit: None });
        settings.input_cannot_be_read_again();
        assert_eq!(
            rule(&settings),
            WhenRetriesRunOut::Hold {
                limit: Some(STDIN_DEAD_LETTER_AFTER)
            }
        );
        let with = |after: f64| {
            let mut config = CommonConfig::default();
            config.producer.dead_letter_after = Some(after);
            let mut settings = Settings::new(&kinesis, config, DEFAULTS).unwrap();
            settings.input_cannot_be_read_again();
            rule(&settings)
        };
        // Set in the config: it stands, for stdin too.
        assert_eq!(with(0.0), WhenRetriesRunOut::DeadLetter);
        assert_eq!(
            with(30.0),
            WhenRetriesRunOut::Hold {
                limit: Some(Duration::from_secs(30))
            }
        );
    }

    #[test]
    fn destinations_resolve_and_conflicts_are_errors() {
        let kinesis = CommonArgs {
            stream_name: Some("s".into()),
            ..args()
        };
        let settings = Settings::new(&kinesis, CommonConfig::default(), DEFAULTS).unwrap();
        assert_eq!(settings.run.destination, Destination::Kinesis("s".into()));
        assert!(settings.run.producer.strict_ordering);
        assert_eq!(settings.run.producer.linger, Duration::from_millis(100));
        let waiting = CommonArgs {
            batch_timeout: Some(2.0),
            ..kinesis.clone()
        };
        let settings = Settings::new(&waiting, CommonConfig::default(), DEFAULTS).unwrap();
        assert_eq!(settings.run.producer.linger, Duration::from_secs(2));
        let stdout = CommonArgs {
            sink: Some("stdout".into()),
            ..kinesis.clone()
        };
        let settings = Settings::new(&stdout, CommonConfig::default(), DEFAULTS).unwrap();
        assert_eq!(settings.run.destination, Destination::Stdout);
        assert!(!settings.run.needs_aws());
        let firehose_aggregate = CommonArgs {
            delivery_stream: Some("f".into()),
            aggregate: true,
            ..args()
        };
        let e = Settings::new(&firehose_aggregate, CommonConfig::default(), DEFAULTS).unwrap_err();
        assert!(e.to_string().contains("aggregation"), "{e}");
        let e = Settings::new(&args(), CommonConfig::default(), DEFAULTS).unwrap_err();
        assert!(e.to_string().contains("no destination"), "{e}");
        let both = CommonConfig {
            stream_name: Some("s".into()),
            delivery_stream: Some("f".into()),
            ..CommonConfig::default()
        };
        assert!(Settings::new(&args(), both, DEFAULTS).is_err());
    }

    /// A binary with no settings of its own.
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {}

    fn with_config(toml: &str) -> anyhow::Result<Settings> {
        let (config, Own {}) = crate::config::parse_config::<Own>(toml)?;
        let kinesis = CommonArgs {
            stream_name: Some("s".into()),
            ..args()
        };
        Settings::new(&kinesis, config, DEFAULTS)
    }

    /// Out-of-range numbers in the config file are errors that name the
    /// setting: a duration too large for the clock used to panic, and a
    /// negative retry count other than -1 silently meant "retry forever".
    #[test]
    fn out_of_range_settings_are_errors_not_panics_or_guesses() {
        for setting in [
            "batch_timeout",
            "retry_initial_delay",
            "retry_max_delay",
            "shutdown_timeout",
        ] {
            let e = with_config(&format!("[producer]\n{setting} = 1e20"))
                .err()
                .unwrap_or_else(|| panic!("{setting} = 1e20 was taken"));
            assert!(e.to_string().contains(setting), "{e}");
        }
        for retries in ["-2", "-100", "4294967296"] {
            let e = with_config(&format!("[producer]\nmax_retries = {retries}"))
                .err()
                .unwrap_or_else(|| panic!("max_retries = {retries} was taken"));
            assert!(e.to_string().contains("max_retries"), "{e}");
        }
        let unlimited = with_config("[producer]\nmax_retries = -1").unwrap();
        assert_eq!(unlimited.run.producer.retry.max_retries, None);
        let five = with_config("[producer]\nmax_retries = 5").unwrap();
        assert_eq!(five.run.producer.retry.max_retries, Some(5));
    }

    /// The aggregate size is the KPL's default unless set, and setting it
    /// without aggregation is an error rather than a setting that does
    /// nothing.
    #[test]
    fn aggregate_size_needs_aggregation() {
        let default = with_config("[producer]\naggregate = true").unwrap();
        assert_eq!(
            default.run.producer.aggregate_max_bytes,
            Some(shardline_producer::aggregation::DEFAULT_AGGREGATE_MAX_BYTES)
        );
        let small =
            with_config("[producer]\naggregate = true\naggregate_max_bytes = 10240").unwrap();
        assert_eq!(small.run.producer.aggregate_max_bytes, Some(10_240));
        let e = with_config("[producer]\naggregate_max_bytes = 10240")
            .err()
            .unwrap_or_else(|| panic!("aggregate_max_bytes without aggregation was taken"));
        assert!(e.to_string().contains("aggregate_max_bytes"), "{e}");
    }
}
