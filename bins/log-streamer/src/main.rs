//! `log-streamer`: tails Apache, Nginx and application logs into Amazon
//! Kinesis Data Streams or Amazon Data Firehose (or stdout), through
//! rotation and crashes, with nothing lost. The seeds' log-streaming lab,
//! with its flags.
//!
//! This binary only reads settings and wires crates together: tailing is
//! `shardline-tail`, parsing `shardline-log-parser`, validation and masking
//! `shardline-validate`, keys `shardline-partition-key`, delivery
//! `shardline-producer`, acknowledgements and checkpoints
//! `shardline-source`, statistics `shardline-metrics`.

mod generate;
mod keys;
mod process;
mod run;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "log-streamer",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks a config file (sources, formats, keys, schemas, masking,
    /// producer settings) without reading or sending anything.
    ValidateConfig { file: PathBuf },
    /// How a key strategy spreads sample lines over N shards: each shard's
    /// share, the hottest keys and a hot-shard warning.
    Keys(keys::KeysArgs),
}

/// Running the streamer (the default command).
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Kinesis data stream to send to.
    #[arg(long)]
    pub(crate) stream_name: Option<String>,
    /// Firehose delivery stream to send to instead.
    #[arg(long, conflicts_with = "stream_name")]
    pub(crate) delivery_stream: Option<String>,
    #[arg(long, env = "AWS_REGION")]
    pub(crate) region: Option<String>,
    /// Endpoint of the service (a local emulator); the SDK also reads
    /// AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_FIREHOSE.
    #[arg(long)]
    pub(crate) endpoint_url: Option<String>,
    /// The seed's JSON list: [{"path": "...", "type": "apache"|"nginx"|"application"|"custom", "format": "..."}].
    #[arg(long)]
    pub(crate) log_files: Option<String>,
    /// A TOML file holding every setting (flags override it).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// `stdout`: print each record's data, one per line, and send nothing.
    #[arg(long, value_parser = ["stdout", "kinesis", "firehose"])]
    pub(crate) sink: Option<String>,
    /// Read the files to their current end, deliver, checkpoint, exit.
    #[arg(long)]
    pub(crate) once: bool,
    /// Start files never seen before at their beginning (default: end).
    #[arg(long)]
    pub(crate) from_beginning: bool,
    /// Continue exactly where acknowledged work ended.
    #[arg(long)]
    pub(crate) resume_from_checkpoint: bool,
    /// Write realistic test lines into the configured files meanwhile.
    #[arg(long)]
    pub(crate) generate_test_logs: bool,
    /// Lines per second per file for --generate-test-logs.
    #[arg(long, default_value_t = 25)]
    pub(crate) generate_rate: u32,
    /// Stop after this many seconds.
    #[arg(long)]
    pub(crate) duration: Option<f64>,
    /// Default: $XDG_STATE_HOME/shardline/log-streamer/<stream>.checkpoint.json.
    #[arg(long)]
    pub(crate) checkpoint_file: Option<PathBuf>,
    /// Default: $XDG_STATE_HOME/shardline/log-streamer/<stream>.dead-letters.ndjson.
    #[arg(long)]
    pub(crate) dead_letter_file: Option<PathBuf>,
    /// Seconds between statistics lines (0: none).
    #[arg(long)]
    pub(crate) stats_interval: Option<f64>,
    /// Serve Prometheus metrics on this address (`HOST:PORT`, `:PORT`;
    /// loopback unless a host is given).
    #[arg(long)]
    pub(crate) metrics_addr: Option<String>,
    /// Publish the seeds' CloudWatch metrics under this namespace (e.g.
    /// `Shardline`); the SDK also reads AWS_ENDPOINT_URL_CLOUDWATCH.
    #[arg(long)]
    pub(crate) cloudwatch_namespace: Option<String>,
    /// KPL aggregation (Kinesis).
    #[arg(long)]
    pub(crate) aggregate: bool,
    #[arg(long)]
    pub(crate) parse_workers: Option<usize>,
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Seconds a batch may wait to fill.
    #[arg(long)]
    pub(crate) batch_timeout: Option<f64>,
    #[arg(long)]
    pub(crate) queue_maxsize: Option<usize>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::ValidateConfig { file }) => run::validate_config(&file),
        Some(Command::Keys(args)) => keys::run(&args),
        None => run::main(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("log-streamer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
