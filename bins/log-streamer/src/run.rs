//! The streamer: settings → producer → one pipeline per log file →
//! statistics → shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use shardline_metrics::cloudwatch::CloudWatch;
use shardline_metrics::prometheus::Exporter;
use shardline_metrics::{AlarmConfig, Metrics, Output, Reporter};
use shardline_producer::{
    BatchLimits, DeadLetterFile, FirehoseDestination, KinesisDestination, Producer, ProducerConfig,
    RetryPolicy,
};
use shardline_source::{
    CheckpointFile, DEFAULT_CHECKPOINT_INTERVAL, Pipeline, PipelineSummary, Sink, StdoutSink,
    default_state_dir,
};
use shardline_tail::{CHECKPOINT_KIND, StartAt, TailCheckpoints, TailConfig, TailSource};
use shardline_validate::{MaskRule, Masker};
use tokio::sync::watch;

use crate::RunArgs;
use crate::process::LogProcessor;
use crate::settings::{ConfigFile, LogFile, parse_log_files, seconds};

/// How long delivery may take after a stop before what is left is
/// dead-lettered (`shutdown_deadline`): inside the 30 s systemd and
/// Kubernetes give a service before killing it.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Seconds between statistics lines by default.
const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(10);
/// The seed's `parse_workers`.
const DEFAULT_PARSE_WORKERS: usize = 4;
/// Bytes of records the producer holds at most, by default: far more than
/// 8 requests in flight need (8 × 500 records of ~400 bytes ≈ 1.6 MB), and
/// small enough that a blocked destination keeps the whole process within
/// 64 MiB (issue 7's goal; `docs/benchmarks.md`). The producer's own
/// default (64 MiB) suits a library user with memory to spare.
const DEFAULT_QUEUE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    Kinesis(String),
    Firehose(String),
    Stdout,
}

impl Destination {
    fn label(&self) -> &str {
        match self {
            Destination::Kinesis(name) | Destination::Firehose(name) => name,
            Destination::Stdout => "stdout",
        }
    }
}

/// Every setting, from the config file and the flags.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) files: Vec<LogFile>,
    pub(crate) destination: Destination,
    region: Option<String>,
    endpoint_url: Option<String>,
    pub(crate) producer: ProducerConfig,
    parse_workers: usize,
    shutdown_timeout: Duration,
    tail: TailConfig,
    checkpoint_interval: Duration,
    checkpoint_file: PathBuf,
    dead_letter_file: PathBuf,
    stats_interval: Duration,
    masking: Option<Masker>,
    metrics_addr: Option<SocketAddr>,
    cloudwatch_namespace: Option<String>,
    alarms: AlarmConfig,
}

impl Plan {
    pub(crate) fn new(args: &RunArgs, config: ConfigFile) -> anyhow::Result<Plan> {
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
        let stream = args.stream_name.clone().or(config.stream_name.clone());
        let delivery = args
            .delivery_stream
            .clone()
            .or(config.delivery_stream.clone());
        let sink = args.sink.clone().or(config.sink.clone());
        let destination = match (sink.as_deref(), stream, delivery) {
            (Some("stdout"), _, _) => Destination::Stdout,
            (Some("firehose") | None, None, Some(name)) => Destination::Firehose(name),
            (Some("kinesis") | None, Some(name), None) => Destination::Kinesis(name),
            (_, Some(_), Some(_)) => bail!("give --stream-name or --delivery-stream, not both"),
            (Some("firehose"), _, None) => bail!("--sink firehose needs --delivery-stream"),
            (Some(other), _, _) if other != "kinesis" => {
                bail!("unknown sink {other:?}: kinesis, firehose or stdout")
            }
            _ => bail!("no destination: give --stream-name, --delivery-stream or --sink stdout"),
        };
        let limits = match destination {
            Destination::Firehose(_) => BatchLimits::FIREHOSE,
            _ => BatchLimits::KINESIS,
        };
        let p = &config.producer;
        let mut producer = ProducerConfig::defaults_for(limits);
        if let Some(n) = args.batch_size.or(p.batch_size) {
            producer.batch_records = n;
        }
        if let Some(s) = args.batch_timeout.or(p.batch_timeout) {
            producer.linger = seconds("batch_timeout", s)?;
        }
        if let Some(n) = args.queue_maxsize.or(p.queue_maxsize) {
            producer.queue_max_records = n;
        }
        producer.queue_max_bytes = p.queue_max_bytes.unwrap_or(DEFAULT_QUEUE_MAX_BYTES);
        if let Some(n) = p.max_in_flight {
            producer.max_in_flight = n;
        }
        if args.aggregate || p.aggregate == Some(true) {
            if destination != Destination::Kinesis(destination.label().to_owned()) {
                bail!("aggregation is for Kinesis data streams");
            }
            producer.aggregate_max_bytes =
                Some(shardline_producer::aggregation::DEFAULT_AGGREGATE_MAX_BYTES);
        }
        if p.pack == Some(true) {
            producer.pack_max_bytes = Some(limits.max_record_bytes);
        }
        let mut retry = RetryPolicy::default();
        if let Some(n) = p.max_retries {
            retry.max_retries = u32::try_from(n).ok();
        }
        if let Some(s) = p.retry_initial_delay {
            retry.initial_delay = seconds("retry_initial_delay", s)?;
        }
        if let Some(s) = p.retry_max_delay {
            retry.max_delay = seconds("retry_max_delay", s)?;
        }
        producer.retry = retry;
        producer.strict_ordering = p.strict_ordering.unwrap_or(false);
        producer.rate_limit_percent = p.rate_limit_percent;
        producer.validate(limits).context("producer settings")?;

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
        if let Some(n) = t.max_line_bytes {
            tail.max_line_bytes = n;
        }
        let checkpoint_interval = match t.checkpoint_interval {
            Some(s) => seconds("checkpoint_interval", s)?,
            None => DEFAULT_CHECKPOINT_INTERVAL,
        };
        let state = || {
            default_state_dir()
                .map(|d| d.join("log-streamer"))
                .context("no state directory: set HOME or XDG_STATE_HOME, or give --checkpoint-file and --dead-letter-file")
        };
        let label = destination.label().replace('/', "_");
        let checkpoint_file = match args
            .checkpoint_file
            .clone()
            .or(config.checkpoint_file.clone())
        {
            Some(path) => path,
            None => state()?.join(format!("{label}.checkpoint.json")),
        };
        let dead_letter_file = match args
            .dead_letter_file
            .clone()
            .or(config.dead_letter_file.clone())
        {
            Some(path) => path,
            None => state()?.join(format!("{label}.dead-letters.ndjson")),
        };
        let stats_interval = match args.stats_interval.or(config.stats_interval) {
            Some(s) => seconds("stats_interval", s)?,
            None => DEFAULT_STATS_INTERVAL,
        };
        let masking = masker(&config)?;
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
        Ok(Plan {
            files,
            destination,
            region: args.region.clone().or(config.region.clone()),
            endpoint_url: args.endpoint_url.clone().or(config.endpoint_url.clone()),
            producer,
            parse_workers: args
                .parse_workers
                .or(p.parse_workers)
                .unwrap_or(DEFAULT_PARSE_WORKERS),
            shutdown_timeout: match p.shutdown_timeout {
                Some(s) => seconds("shutdown_timeout", s)?,
                None => DEFAULT_SHUTDOWN_TIMEOUT,
            },
            tail,
            checkpoint_interval,
            checkpoint_file,
            dead_letter_file,
            stats_interval,
            masking,
            metrics_addr,
            cloudwatch_namespace: args
                .cloudwatch_namespace
                .clone()
                .or(config.metrics.cloudwatch_namespace.clone()),
            alarms,
        })
    }

    pub(crate) fn processor(&self, file: &LogFile) -> anyhow::Result<LogProcessor> {
        Ok(
            LogProcessor::new(file, self.masking.clone(), self.tail.max_line_bytes)
                .with_context(|| format!("log file {}", file.path))?
                .newline_delimited(matches!(self.destination, Destination::Firehose(_))),
        )
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

/// `log-streamer validate-config FILE`.
pub(crate) fn validate_config(path: &Path) -> anyhow::Result<ExitCode> {
    let config = ConfigFile::load(path)?;
    let args = RunArgs {
        stream_name: None,
        delivery_stream: None,
        region: None,
        endpoint_url: None,
        log_files: None,
        config: Some(path.to_path_buf()),
        sink: None,
        once: false,
        from_beginning: false,
        resume_from_checkpoint: false,
        generate_test_logs: false,
        generate_rate: 1,
        duration: None,
        checkpoint_file: None,
        dead_letter_file: None,
        stats_interval: None,
        metrics_addr: None,
        cloudwatch_namespace: None,
        aggregate: false,
        parse_workers: None,
        batch_size: None,
        batch_timeout: None,
        queue_maxsize: None,
    };
    let plan = Plan::new(&args, config)?;
    for file in &plan.files {
        plan.processor(file)?;
    }
    println!(
        "{}: ok — {} log file(s) to {:?}, batches of {} records / {:?}",
        path.display(),
        plan.files.len(),
        plan.destination,
        plan.producer.batch_records,
        plan.producer.linger,
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let plan = Plan::new(&args, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(stream(args, plan))
}

async fn sdk_config(plan: &Plan) -> anyhow::Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &plan.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &plan.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        bail!("no AWS region: give --region or set AWS_REGION");
    }
    Ok(sdk)
}

async fn sink(
    plan: &Plan,
    sdk: Option<&aws_config::SdkConfig>,
    dead_letters: DeadLetterFile,
) -> anyhow::Result<Sink> {
    let Some(sdk) = sdk.filter(|_| plan.destination != Destination::Stdout) else {
        return Ok(Sink::Stdout(StdoutSink::new(dead_letters)));
    };
    let builder = match &plan.destination {
        Destination::Kinesis(name) => {
            let client = aws_sdk_kinesis::Client::new(sdk);
            client
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .map_err(|e| aws_error(e, &format!("Kinesis stream {name}")))?;
            Producer::builder(KinesisDestination::new(&client, name), dead_letters)
        }
        Destination::Firehose(name) => {
            let client = aws_sdk_firehose::Client::new(sdk);
            client
                .describe_delivery_stream()
                .delivery_stream_name(name)
                .send()
                .await
                .map_err(|e| aws_error(e, &format!("Firehose delivery stream {name}")))?;
            Producer::builder(FirehoseDestination::new(&client, name), dead_letters)
        }
        Destination::Stdout => bail!("stdout has no producer"),
    };
    Ok(Sink::Producer(
        builder.config(plan.producer.clone()).build()?,
    ))
}

/// A clear message for the start-up check of the destination.
fn aws_error<E, R>(error: aws_sdk_kinesis::error::SdkError<E, R>, what: &str) -> anyhow::Error
where
    E: std::error::Error + aws_sdk_kinesis::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_kinesis::error::SdkError;
    let detail = aws_sdk_kinesis::error::DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ResourceNotFoundException") => {
                anyhow::anyhow!("{what} does not exist (in this account and region)")
            }
            Some(code) => anyhow::anyhow!(
                "{what}: {code}: {}",
                service.err().message().unwrap_or_default()
            ),
            None => anyhow::anyhow!("{what}: {detail}"),
        },
        _ if detail.contains("credentials") => anyhow::anyhow!(
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available ({detail})"
        ),
        _ => anyhow::anyhow!("cannot reach {what}: {detail}"),
    }
}

async fn stream(args: RunArgs, plan: Plan) -> anyhow::Result<ExitCode> {
    let dead_letters = DeadLetterFile::open(&plan.dead_letter_file)
        .with_context(|| format!("dead-letter file {}", plan.dead_letter_file.display()))?;
    // One SDK configuration (region, credentials, endpoints) for every
    // AWS client, loaded only when one is needed.
    let sdk = if plan.destination != Destination::Stdout || plan.cloudwatch_namespace.is_some() {
        Some(sdk_config(&plan).await?)
    } else {
        None
    };
    let sink = sink(&plan, sdk.as_ref(), dead_letters).await?;
    let checkpoint = CheckpointFile::new(&plan.checkpoint_file, CHECKPOINT_KIND);
    let checkpoints = Arc::new(if args.resume_from_checkpoint {
        TailCheckpoints::open(checkpoint)?
    } else {
        TailCheckpoints::fresh(checkpoint)
    });
    let metrics = Arc::new(Metrics::with_alarms(plan.alarms.clone()));
    let stats_of = {
        let sink = sink.clone();
        Arc::new(move || sink.stats()) as shardline_metrics::StatsProvider
    };
    let prometheus = match plan.metrics_addr {
        Some(addr) => {
            let exporter = Exporter::new(metrics.clone(), stats_of.clone());
            let (bound, task) = shardline_metrics::prometheus::serve(addr, exporter)
                .await
                .with_context(|| format!("serving metrics on {addr}"))?;
            eprintln!("log-streamer: Prometheus metrics on http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };
    let cloudwatch = match (&plan.cloudwatch_namespace, &sdk) {
        (Some(namespace), Some(sdk)) => Some(CloudWatch::new(
            aws_sdk_cloudwatch::Client::new(sdk),
            namespace.clone(),
        )),
        _ => None,
    };

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

    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for file in &plan.files {
        let processor = Arc::new(plan.processor(file)?);
        let mut tail = plan.tail.clone();
        tail.watch = file.path.clone();
        let source = TailSource::start(tail, checkpoints.clone(), args.resume_from_checkpoint)?;
        let name = file.source_name();
        let pipeline = Pipeline::new(
            source,
            processor,
            sink.clone(),
            shardline_producer::SourceName::new(&name),
            metrics.source(&name),
        )
        .workers(plan.parse_workers)
        .checkpoint_interval(plan.checkpoint_interval);
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let result = pipeline.run(stop).await;
            let _ = done.send((name, result));
        });
    }
    eprintln!(
        "log-streamer: {} file(s) → {:?}; checkpoints in {}, dead letters in {}",
        plan.files.len(),
        plan.destination,
        checkpoints.path().display(),
        plan.dead_letter_file.display()
    );

    // Statistics, alarms and CloudWatch every interval; with no interval,
    // alarms and CloudWatch still run every DEFAULT_STATS_INTERVAL, quietly.
    let (report_stop, report_rx) = watch::channel(false);
    let reporter = {
        let (interval, output) = if plan.stats_interval.is_zero() {
            (DEFAULT_STATS_INTERVAL, Output::Quiet)
        } else {
            (plan.stats_interval, Output::detect())
        };
        let mut reporter =
            Reporter::new(metrics.clone(), stats_of.clone(), interval).output(output);
        if let Some(cloudwatch) = cloudwatch {
            reporter = reporter.cloudwatch(cloudwatch);
        }
        tokio::spawn(reporter.run(report_rx))
    };

    let mut signals = Signals::new()?;
    let deadline = args
        .duration
        .map(|s| seconds("--duration", s))
        .transpose()?;
    drop(done_tx);
    let running = plan.files.len();
    let mut results = Vec::new();
    let stopped_by = tokio::select! {
        () = collect(&mut done_rx, &mut results, running), if args.once => "end of input",
        signal = signals.next() => signal,
        _ = sleep_or_forever(deadline) => "--duration",
    };
    tracing::info!("stopping: {stopped_by}");

    // Stop writing test lines first, then reading; deliver what is read.
    generating.store(false, Ordering::Relaxed);
    for generator in generators {
        if let Ok(Err(e)) = generator.join() {
            tracing::error!("generating test logs failed: {e}");
        }
    }
    let _ = stop_tx.send(true);
    let shutdown = async {
        if let Sink::Producer(producer) = &sink {
            producer.shutdown(plan.shutdown_timeout).await;
        }
    };
    let drain = async {
        let ((), ()) = tokio::join!(shutdown, collect(&mut done_rx, &mut results, running));
    };
    tokio::select! {
        () = drain => {}
        signal = signals.next() => {
            eprintln!("\nlog-streamer: {signal} again; exiting now (the checkpoint holds only settled lines)");
            std::process::exit(130);
        }
    }
    // The last interval is reported (and published) before the summary.
    let _ = report_stop.send(true);
    let _ = reporter.await;
    if let Some(task) = prometheus {
        task.abort();
    }

    let mut failed = false;
    if results.len() < running {
        failed = true;
        eprintln!("log-streamer: a pipeline ended without a result");
    }
    for (name, result) in results {
        match result {
            Ok(PipelineSummary { acks, .. }) if acks.failed == 0 => {}
            Ok(summary) => {
                failed = true;
                eprintln!(
                    "log-streamer: {name}: {} record(s) neither delivered nor dead-lettered ({}); they will be read again",
                    summary.acks.failed,
                    summary.acks.first_failure.unwrap_or_default()
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("log-streamer: {name}: {e}");
            }
        }
    }
    let snapshot = metrics.snapshot(&sink.stats());
    let summary = serde_json::to_string_pretty(&snapshot)?;
    if plan.destination == Destination::Stdout {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

type PipelineResult = (
    String,
    Result<PipelineSummary, shardline_source::PipelineError>,
);

/// Receives pipeline results until `running` have ended.
async fn collect(
    done: &mut tokio::sync::mpsc::UnboundedReceiver<PipelineResult>,
    results: &mut Vec<PipelineResult>,
    running: usize,
) {
    while results.len() < running {
        match done.recv().await {
            Some(result) => results.push(result),
            None => return,
        }
    }
}

async fn sleep_or_forever(deadline: Option<Duration>) {
    match deadline {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// SIGINT and SIGTERM.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
