//! `shardline`: a Kinesis data stream's life in one command — create it,
//! look at it, scale it, load it with test data, read it back (KPL
//! aggregates opened into their user records) and watch its CloudWatch
//! metrics. Every call goes through the official AWS SDK, with the
//! standard AWS environment (credentials, `AWS_REGION`,
//! `AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL_CLOUDWATCH`).

mod output;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use aws_config::BehaviorVersion;
use clap::{CommandFactory, Parser, Subcommand};
use multi_source::Generator;
use shardline_cli::{CommonArgs, Defaults, Settings};
use shardline_runner::Runner;
use shardline_streams::{
    Capacity, DEFAULT_RETENTION_HOURS, Progress, ReadOptions, Scaled, StartAt, StreamReader,
    StreamSpec,
};

/// `put` sends as the other binaries do; batches wait at most 100 ms so a
/// slow rate still shows up at once.
const PUT_DEFAULTS: Defaults = Defaults {
    binary: "shardline",
    strict_ordering: false,
    linger: Some(Duration::from_millis(100)),
    max_in_flight: None,
};

#[derive(Debug, Parser)]
#[command(name = "shardline", version, about, long_about = None)]
struct Cli {
    /// AWS region (default: from the environment or the profile).
    #[arg(long, global = true, env = "AWS_REGION", hide_env_values = true)]
    region: Option<String>,
    /// Endpoint of the services (a local emulator); the SDK also reads
    /// AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_CLOUDWATCH.
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates a stream and waits until it is ACTIVE. Running it again on
    /// a stream of the same shape changes nothing.
    CreateStream {
        /// The stream's name.
        name: String,
        /// Provisioned shards (each takes 1,000 records or 1 MiB a second).
        #[arg(
            long,
            required_unless_present = "on_demand",
            conflicts_with = "on_demand"
        )]
        shards: Option<u32>,
        /// Hours the stream keeps records (24 to 8760).
        #[arg(long, default_value_t = DEFAULT_RETENTION_HOURS)]
        retention_hours: u32,
        /// Turn on the shard-level metrics IncomingRecords, OutgoingRecords,
        /// WriteProvisionedThroughputExceeded and ReadProvisionedThroughputExceeded.
        #[arg(long)]
        enhanced_monitoring: bool,
        /// Let Kinesis size the stream (on-demand capacity) instead of
        /// --shards.
        #[arg(long)]
        on_demand: bool,
    },
    /// Shows a stream: status, retention, open and closed shards with their
    /// hash-key ranges, shard-level metrics.
    Describe {
        /// The stream's name.
        name: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Changes a stream's open shards to N equal hash-key ranges and waits
    /// until it is ACTIVE again (UpdateShardCount; where the endpoint lacks
    /// it, shards are split and merged one at a time).
    Scale {
        /// The stream's name.
        name: String,
        /// Open shards wanted (half to twice the current count).
        #[arg(long)]
        shards: u32,
    },
    /// Prints a stream's records, one JSON object a line: shard,
    /// sequence_number, sub_sequence_number, partition_key,
    /// explicit_hash_key, arrival and data (text, or base64 with
    /// "data_encoding": "base64" when it is not UTF-8).
    ///
    /// Every shard is read, a reshard's parents before their children;
    /// records sent with KPL aggregation (`--aggregate`) are printed as the
    /// records that were aggregated.
    Read {
        /// The stream's name.
        name: String,
        /// Where to begin: trim-horizon (the oldest record), latest,
        /// at-timestamp:T (RFC 3339 or seconds since the epoch), or
        /// after-sequence:SEQ (with --shard).
        #[arg(long, default_value = "trim-horizon")]
        from: String,
        /// Keep reading new records until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// Read this shard only.
        #[arg(long)]
        shard: Option<String>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Print records exactly as stored: aggregates not opened.
        #[arg(long)]
        raw: bool,
    },
    /// Sends generated test data to a stream at a steady rate: web access
    /// logs, sensor readings or database changes, each parsed and keyed as
    /// the forwarders do it (one in 50 is malformed on purpose and goes to
    /// the dead-letter file).
    Put {
        /// The stream's name.
        name: String,
        /// Records a second.
        #[arg(long, default_value_t = 10)]
        rate: u32,
        /// Seconds to run.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// What to send.
        #[arg(long, value_enum, default_value = "web")]
        source: Generator,
        /// KPL aggregation: many records in each stored record.
        #[arg(long)]
        aggregate: bool,
        /// Where records that cannot be sent are written (default:
        /// $XDG_STATE_HOME/shardline/shardline/<stream>.dead-letters.ndjson).
        #[arg(long)]
        dead_letter_file: Option<std::path::PathBuf>,
    },
    /// Shows a stream's CloudWatch metrics over the last minutes:
    /// IncomingRecords, IncomingBytes, WriteProvisionedThroughputExceeded
    /// (sums), GetRecords.IteratorAgeMilliseconds (highest) and
    /// PutRecords.Latency (mean).
    Metrics {
        /// The stream's name.
        name: String,
        /// How far back to look.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deletes a stream and every record it holds.
    DeleteStream {
        /// The stream's name.
        name: String,
    },
    #[command(flatten)]
    Shell(shardline_cli::ShellCommand),
}

fn main() -> ExitCode {
    shardline_cli::main("shardline", || {
        let cli = Cli::parse();
        if let Command::Shell(shell) = &cli.command {
            shell.run(Cli::command())?;
            return Ok(ExitCode::SUCCESS);
        }
        shardline_cli::block_on(run(cli))
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Put {
        name,
        rate,
        duration,
        source,
        aggregate,
        dead_letter_file,
    } = cli.command
    {
        let common = CommonArgs {
            stream_name: Some(name),
            region: cli.region,
            endpoint_url: cli.endpoint_url,
            duration: Some(duration),
            aggregate,
            dead_letter_file,
            ..CommonArgs::default()
        };
        return put(&common, source, rate).await;
    }
    let sdk = sdk_config(cli.region.as_deref(), cli.endpoint_url.as_deref()).await?;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    match cli.command {
        Command::CreateStream {
            name,
            shards,
            retention_hours,
            enhanced_monitoring,
            on_demand,
        } => {
            let spec = StreamSpec {
                capacity: match (on_demand, shards) {
                    (false, Some(n)) => Capacity::Provisioned(n),
                    _ => Capacity::OnDemand,
                },
                retention_hours,
                enhanced_monitoring,
            };
            let created =
                shardline_streams::create_stream(&kinesis, &name, &spec, &mut progress(&name))
                    .await?;
            for note in &created.notes {
                eprintln!("shardline: {note}");
            }
            let info = shardline_streams::describe(&kinesis, &name).await?;
            println!(
                "{} {name}: {}, {}, retention {} hours",
                if created.new {
                    "created"
                } else {
                    "already there:"
                },
                info.status,
                output::open_shards(info.open_shards),
                info.retention_hours
            );
        }
        Command::Describe { name, json } => {
            let info = shardline_streams::describe(&kinesis, &name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", output::stream_table(&info));
            }
        }
        Command::Scale { name, shards } => {
            let scaled =
                shardline_streams::scale(&kinesis, &name, shards, &mut progress(&name)).await?;
            let how = match scaled {
                Scaled::Already => "already had them".to_owned(),
                Scaled::UpdateShardCount => "UpdateShardCount, uniform scaling".to_owned(),
                Scaled::SplitAndMerge { splits, merges } => format!(
                    "the endpoint has no UpdateShardCount: {} and {}",
                    output::count(splits, "split"),
                    output::count(merges, "merge")
                ),
            };
            println!("{name}: {} ({how})", output::open_shards(shards as usize));
        }
        Command::Read {
            name,
            from,
            follow,
            shard,
            limit,
            raw,
        } => {
            let options = ReadOptions {
                start: from.parse::<StartAt>()?,
                shard,
                deaggregate: !raw,
            };
            let reader = StreamReader::with_options(&kinesis, &name, options)?;
            return read(reader, follow, limit).await;
        }
        Command::Metrics {
            name,
            minutes,
            json,
        } => {
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
            let window = Duration::from_secs(minutes.saturating_mul(60));
            let figures = shardline_streams::stream_metrics(&cloudwatch, &name, window).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                print!("{}", output::metrics_table(&name, minutes, &figures));
            }
        }
        Command::DeleteStream { name } => {
            shardline_streams::delete_stream(&kinesis, &name).await?;
            println!("deleting {name}");
        }
        Command::Put { .. } | Command::Shell(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The SDK configuration: region and credentials from the environment or
/// the profile, the endpoint from `--endpoint-url` or the environment.
async fn sdk_config(
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> anyhow::Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        anyhow::bail!("no AWS region: pass --region or set AWS_REGION");
    }
    Ok(sdk)
}

/// A progress line on stderr while a stream changes: rewritten in place
/// on a terminal, one line per change of status otherwise.
fn progress(name: &str) -> impl FnMut(&Progress) + Send + use<> {
    let name = name.to_owned();
    let terminal = std::io::stderr().is_terminal();
    let mut last: Option<(String, Option<usize>)> = None;
    move |p: &Progress| {
        let now = (p.status.clone(), p.open_shards);
        if last.as_ref() == Some(&now) && !terminal {
            return;
        }
        let shards = p
            .open_shards
            .map(|n| format!(", {}", output::open_shards(n)))
            .unwrap_or_default();
        let line = format!(
            "{name}: {}{shards} ({:.0} s)",
            p.status,
            p.elapsed.as_secs_f64()
        );
        if terminal {
            eprint!("\r\x1b[2K{line}");
            if p.status == "ACTIVE" {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
        last = Some(now);
    }
}

/// Prints records as JSON lines until the stream is read to its newest
/// record (or, following, until Ctrl-C), or `limit` records.
async fn read(
    mut reader: StreamReader,
    follow: bool,
    limit: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed: u64 = 0;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let records = reader.poll().await?;
        for record in &records {
            if limit.is_some_and(|limit| printed >= limit) {
                break;
            }
            let line = output::record_json(record);
            if let Err(e) = writeln!(out, "{line}") {
                return closed_pipe(e);
            }
            printed += 1;
        }
        if let Err(e) = out.flush() {
            return closed_pipe(e);
        }
        if limit.is_some_and(|limit| printed >= limit) || (!follow && reader.caught_up()) {
            break;
        }
        let due = reader.next_due().unwrap_or_else(|| {
            tokio::time::Instant::now() + shardline_streams::GET_RECORDS_INTERVAL
        });
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            _ = &mut interrupted => break,
        }
    }
    if reader.misplaced() > 0 {
        eprintln!(
            "shardline: skipped {} aggregated records stored in a shard that does not hold \
             their key (a KCL consumer skips them too; the producer sent them again): \
             --raw shows everything as stored",
            reader.misplaced()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A reader that stopped reading (`| head`) is not an error.
fn closed_pipe(error: std::io::Error) -> anyhow::Result<ExitCode> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(ExitCode::SUCCESS);
    }
    Err(error).context("writing the records")
}

/// Sends generated records for the run's duration, then prints the run's
/// statistics.
async fn put(common: &CommonArgs, source: Generator, rate: u32) -> anyhow::Result<ExitCode> {
    let settings = Settings::new(common, Default::default(), PUT_DEFAULTS)?;
    let mut running = Runner::start(settings.run.clone()).await?;
    let shutdown = shardline_cli::shutdown("shardline", settings.duration)?;
    let made = source.spawn(&mut running, rate)?;
    eprintln!(
        "shardline: sending {} at {rate} a second to {:?}; dead letters in {}",
        source.name(),
        settings.run.destination,
        settings.run.dead_letter_file.display()
    );
    let summary = running.run(shutdown).await?;
    let code = shardline_cli::finish("shardline", &settings.run.destination, &summary);
    eprintln!(
        "shardline: generated {}",
        made.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` prints no environment variable's value: some hold secrets.
    #[test]
    fn help_prints_no_environment_value() {
        let shown = shardline_cli::env_values_shown(&super::Cli::command());
        assert!(
            shown.is_empty(),
            "--help would print the value of {shown:?}"
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
