//! `agent.json`: the agent's settings and its flows, read as the agent
//! reads them, with every key accounted for — used, accepted with a
//! warning that names it (it has no meaning for shardline), or an error
//! that names it.

use serde_json::Value;
use serde_json::value::RawValue;

use crate::convert::{OptionError, Processing, ProcessingOption};
use crate::key::PartitionKeyOption;

/// The agent's defaults for a flow's buffer, as its documentation gives
/// them (<https://docs.aws.amazon.com/streams/latest/dev/writing-with-agents.html>):
/// a buffer is sent when it is this old...
pub const DEFAULT_MAX_BUFFER_AGE_MILLIS: u64 = 60_000;
/// ... or holds this many records (the most `PutRecords` takes) ...
pub const DEFAULT_MAX_BUFFER_SIZE_RECORDS: u64 = 500;
/// ... or this many bytes (5 MiB, `PutRecords`' request limit).
pub const DEFAULT_MAX_BUFFER_SIZE_BYTES: u64 = 5 * 1024 * 1024;

/// Where a flow's records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `kinesisStream`.
    Kinesis(String),
    /// `deliveryStream` (Amazon Data Firehose).
    Firehose(String),
}

/// Where a file never seen before is read from (`initialPosition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialPosition {
    /// `START_OF_FILE`.
    StartOfFile,
    /// `END_OF_FILE` (the agent's default): only lines written from now on.
    #[default]
    EndOfFile,
}

/// One flow: files matching a pattern into one stream.
#[derive(Debug)]
pub struct Flow {
    /// `filePattern`: a glob of the files to tail (rotated files included).
    pub file_pattern: String,
    /// `kinesisStream` or `deliveryStream`.
    pub destination: Destination,
    /// `partitionKeyOption` (Kinesis only).
    pub partition_key: PartitionKeyOption,
    /// `initialPosition`.
    pub initial_position: InitialPosition,
    /// `multiLineStartPattern`: a line matching it starts a record.
    pub multi_line_start_pattern: Option<String>,
    /// `skipHeaderLines`: lines skipped at the start of each file.
    pub skip_header_lines: u64,
    /// `truncatedRecordTerminator`: ends a record cut to the record size
    /// limit (default a newline).
    pub truncated_record_terminator: String,
    /// `maxBufferAgeMillis`.
    pub max_buffer_age_millis: u64,
    /// `maxBufferSizeRecords`.
    pub max_buffer_size_records: u64,
    /// `maxBufferSizeBytes`.
    pub max_buffer_size_bytes: u64,
    /// `dataProcessingOptions`, compiled.
    pub processing: Processing,
    /// The options as read, for reports and conversion.
    pub processing_options: Vec<ProcessingOption>,
}

/// `agent.json`, read.
#[derive(Debug)]
pub struct AgentConfig {
    /// `flows`.
    pub flows: Vec<Flow>,
    /// `kinesis.endpoint`.
    pub kinesis_endpoint: Option<String>,
    /// `firehose.endpoint`.
    pub firehose_endpoint: Option<String>,
    /// `cloudwatch.endpoint`.
    pub cloudwatch_endpoint: Option<String>,
    /// `cloudwatch.emitMetrics` (the agent's default is on).
    pub cloudwatch_emit_metrics: bool,
    /// `cloudwatch.namespace` (the agent's default `AWSKinesisAgent`).
    pub cloudwatch_namespace: String,
    /// Keys accepted but not used, each with why: for a warning at start.
    pub ignored: Vec<Ignored>,
}

/// A key shardline accepts and does not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Where: `agent.json` or `flows[N]`.
    pub place: String,
    /// The key.
    pub key: String,
    /// Why it has no meaning for shardline, and what does the job.
    pub why: &'static str,
}

/// An `agent.json` shardline cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not JSON, or a value of the wrong type.
    #[error("agent.json: {0}")]
    Json(#[from] serde_json::Error),
    /// A key neither the agent nor shardline knows.
    #[error("{place}: unknown key `{key}`")]
    UnknownKey {
        /// Where.
        place: String,
        /// The key.
        key: String,
    },
    /// A required key is missing, or keys contradict each other.
    #[error("{place}: {message}")]
    Invalid {
        /// Where.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// `dataProcessingOptions` cannot run.
    #[error("{place}: dataProcessingOptions: {source}")]
    Processing {
        /// Where.
        place: String,
        /// Why.
        source: OptionError,
    },
}

/// The agent's settings shardline has no use for, and why.
const IGNORED_SETTINGS: &[(&str, &str)] = &[
    (
        "checkpointFile",
        "the agent's checkpoints are a SQLite database; shardline keeps its own (--checkpoint-file)",
    ),
    (
        "checkpointTimeToLiveDays",
        "shardline keeps a file's checkpoint as long as the file exists",
    ),
    (
        "shutdownTimeoutMillis",
        "shardline drains for a bounded time on SIGTERM and keeps only settled input checkpointed",
    ),
    (
        "maxSendingThreads",
        "shardline sends from one async runtime; requests in flight adapt to the service",
    ),
    (
        "maxSendingThreadsPerCore",
        "shardline sends from one async runtime; requests in flight adapt to the service",
    ),
    (
        "sendingThreadsKeepAliveMillis",
        "shardline has no sending thread pool",
    ),
    (
        "sendingThreadsMaxQueueSize",
        "the producer's queue is bounded by bytes and records (--queue-maxsize)",
    ),
    (
        "maxConnections",
        "the AWS SDK for Rust pools connections itself",
    ),
    (
        "connectionTimeoutMillis",
        "the AWS SDK for Rust's defaults apply",
    ),
    (
        "connectionTTLMillis",
        "the AWS SDK for Rust's defaults apply",
    ),
    (
        "socketTimeoutMillis",
        "the AWS SDK for Rust's defaults apply",
    ),
    ("useTcpKeepAlive", "the AWS SDK for Rust's defaults apply"),
    (
        "useHttpGzip",
        "Kinesis and Firehose take no compressed requests",
    ),
    (
        "log.emitMetrics",
        "shardline prints statistics every --stats-interval seconds",
    ),
    (
        "log.emitInternalMetrics",
        "shardline prints statistics every --stats-interval seconds",
    ),
    (
        "log.statusReportingPeriodSeconds",
        "shardline prints statistics every --stats-interval seconds",
    ),
    (
        "cloudwatch.metricsBufferTimeMillis",
        "shardline publishes its metrics every statistics interval",
    ),
    (
        "cloudwatch.metricsQueueSize",
        "shardline publishes its metrics every statistics interval",
    ),
    (
        "cloudwatch.tagInstance",
        "shardline's metrics carry a DataSource dimension instead",
    ),
    (
        "kinesis.region",
        "the region comes from --region, AWS_REGION or the profile",
    ),
    (
        "firehose.region",
        "the region comes from --region, AWS_REGION or the profile",
    ),
    (
        "sts.endpoint",
        "credentials come from the standard AWS chain (AWS_ENDPOINT_URL_STS)",
    ),
    (
        "assumeRoleARN",
        "credentials come from the standard AWS chain: set role_arn in a profile (AWS_PROFILE)",
    ),
    (
        "assumeRoleExternalId",
        "credentials come from the standard AWS chain: set external_id in a profile",
    ),
    (
        "awsAccessKeyId",
        "credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID, a profile or the instance role",
    ),
    (
        "awsSecretAccessKey",
        "credentials come from the standard AWS chain: AWS_SECRET_ACCESS_KEY, a profile or the instance role",
    ),
    (
        "userDefinedCredentialsProvider.classname",
        "a Java class cannot run in shardline: use a credential_process in a profile",
    ),
    (
        "userDefinedCredentialsProvider.location",
        "a Java class cannot run in shardline: use a credential_process in a profile",
    ),
];

/// A flow's keys shardline has no use for, and why.
const IGNORED_FLOW_KEYS: &[(&str, &str)] = &[
    (
        "minTimeBetweenFilePollsMillis",
        "shardline is told of file changes as they happen",
    ),
    (
        "maxTimeBetweenFileTrackerRefreshMillis",
        "shardline is told of file changes as they happen",
    ),
    (
        "retryInitialBackoffMillis",
        "the producer's backoff applies (docs/producer.md)",
    ),
    (
        "retryMaxBackoffMillis",
        "the producer's backoff applies (docs/producer.md)",
    ),
    (
        "publishQueueCapacity",
        "the producer's queue is bounded by bytes and records",
    ),
    (
        "waitOnFullPublishQueueMillis",
        "reading waits while the producer's queue is full",
    ),
    (
        "waitOnEmptyPublishQueueMillis",
        "reading waits while the producer's queue is full",
    ),
    (
        "waitOnFullRetryQueueMillis",
        "reading waits while the producer's queue is full",
    ),
    (
        "aggregatedRecordSizeBytes",
        "Firehose records are packed up to the service's limits",
    ),
    (
        "log.emitInternalMetrics",
        "shardline prints statistics every --stats-interval seconds",
    ),
];

/// A key not used: listed in `ignored` with its reason if `table` has it,
/// an error that names it otherwise.
fn ignore(
    table: &[(&str, &'static str)],
    place: &str,
    key: &str,
    ignored: &mut Vec<Ignored>,
) -> Result<(), ConfigError> {
    let (_, why) =
        table
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or_else(|| ConfigError::UnknownKey {
                place: place.to_owned(),
                key: key.to_owned(),
            })?;
    ignored.push(Ignored {
        place: place.to_owned(),
        key: key.to_owned(),
        why,
    });
    Ok(())
}

fn string(value: &Value, place: &str, key: &str) -> Result<String, ConfigError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::Invalid {
            place: place.to_owned(),
            message: format!("`{key}` is a string"),
        })
}

/// A number the agent also takes as text (`"500"`).
fn number(value: &Value, place: &str, key: &str) -> Result<u64, ConfigError> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| ConfigError::Invalid {
            place: place.to_owned(),
            message: format!("`{key}` is a whole number"),
        })
}

/// A boolean the agent also takes as text (`"true"`).
fn boolean(value: &Value, place: &str, key: &str) -> Result<bool, ConfigError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => Ok(s.eq_ignore_ascii_case("true")),
        _ => Err(ConfigError::Invalid {
            place: place.to_owned(),
            message: format!("`{key}` is true or false"),
        }),
    }
}

impl AgentConfig {
    /// Reads `agent.json`'s text.
    ///
    /// ```
    /// use shardline_kinesis_agent::{AgentConfig, Destination};
    ///
    /// let config = AgentConfig::parse(r#"{
    ///   "cloudwatch.emitMetrics": false,
    ///   "flows": [{"filePattern": "/var/log/httpd/access_log*", "kinesisStream": "web"}]
    /// }"#).unwrap();
    /// assert_eq!(config.flows[0].destination, Destination::Kinesis("web".into()));
    /// ```
    pub fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        let top: serde_json::Map<String, Value> = serde_json::from_str(text)?;
        let place = "agent.json";
        let mut config = AgentConfig {
            flows: Vec::new(),
            kinesis_endpoint: None,
            firehose_endpoint: None,
            cloudwatch_endpoint: None,
            cloudwatch_emit_metrics: true,
            cloudwatch_namespace: "AWSKinesisAgent".to_owned(),
            ignored: Vec::new(),
        };
        // The flows' processing options are read again from the raw text,
        // so that ADDMETADATA's metadata keeps its key order.
        #[derive(serde::Deserialize)]
        struct RawFlows<'a> {
            #[serde(borrow, default)]
            flows: Vec<RawFlow<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct RawFlow<'a> {
            #[serde(borrow, default, rename = "dataProcessingOptions")]
            options: Option<&'a RawValue>,
        }
        let raw: RawFlows<'_> = serde_json::from_str(text)?;
        for (key, value) in &top {
            match key.as_str() {
                "flows" => {}
                "kinesis.endpoint" => config.kinesis_endpoint = Some(string(value, place, key)?),
                "firehose.endpoint" => config.firehose_endpoint = Some(string(value, place, key)?),
                "cloudwatch.endpoint" => {
                    config.cloudwatch_endpoint = Some(string(value, place, key)?);
                }
                "cloudwatch.emitMetrics" => {
                    config.cloudwatch_emit_metrics = boolean(value, place, key)?;
                }
                "cloudwatch.namespace" => config.cloudwatch_namespace = string(value, place, key)?,
                other => ignore(IGNORED_SETTINGS, place, other, &mut config.ignored)?,
            }
        }
        let flows = match top.get("flows") {
            Some(Value::Array(flows)) if !flows.is_empty() => flows,
            _ => {
                return Err(ConfigError::Invalid {
                    place: place.to_owned(),
                    message: "`flows` lists at least one flow".into(),
                });
            }
        };
        for (i, flow) in flows.iter().enumerate() {
            let place = format!("flows[{i}]");
            let options = raw.flows.get(i).and_then(|f| f.options);
            config
                .flows
                .push(Flow::parse(flow, options, &place, &mut config.ignored)?);
        }
        Ok(config)
    }
}

impl Flow {
    fn parse(
        value: &Value,
        options: Option<&RawValue>,
        place: &str,
        ignored: &mut Vec<Ignored>,
    ) -> Result<Flow, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            place: place.to_owned(),
            message,
        };
        let fields = value
            .as_object()
            .ok_or_else(|| invalid("a flow is an object".into()))?;
        let mut file_pattern = None;
        let mut kinesis = None;
        let mut firehose = None;
        let mut flow = Flow {
            file_pattern: String::new(),
            destination: Destination::Kinesis(String::new()),
            partition_key: PartitionKeyOption::default(),
            initial_position: InitialPosition::default(),
            multi_line_start_pattern: None,
            skip_header_lines: 0,
            truncated_record_terminator: "\n".to_owned(),
            max_buffer_age_millis: DEFAULT_MAX_BUFFER_AGE_MILLIS,
            max_buffer_size_records: DEFAULT_MAX_BUFFER_SIZE_RECORDS,
            max_buffer_size_bytes: DEFAULT_MAX_BUFFER_SIZE_BYTES,
            processing: Processing::default(),
            processing_options: Vec::new(),
        };
        for (key, value) in fields {
            match key.as_str() {
                "filePattern" => file_pattern = Some(string(value, place, key)?),
                "kinesisStream" => kinesis = Some(string(value, place, key)?),
                "deliveryStream" => firehose = Some(string(value, place, key)?),
                "partitionKeyOption" => {
                    flow.partition_key = serde_json::from_value(value.clone()).map_err(|_| {
                        invalid(format!(
                            "`partitionKeyOption` is RANDOM or DETERMINISTIC, not {value}"
                        ))
                    })?;
                }
                "initialPosition" => {
                    flow.initial_position = match value.as_str() {
                        Some("START_OF_FILE") => InitialPosition::StartOfFile,
                        Some("END_OF_FILE") => InitialPosition::EndOfFile,
                        _ => {
                            return Err(invalid(format!(
                                "`initialPosition` is START_OF_FILE or END_OF_FILE, not {value}"
                            )));
                        }
                    };
                }
                "multiLineStartPattern" => {
                    let pattern = string(value, place, key)?;
                    regex::Regex::new(&pattern).map_err(|e| {
                        invalid(format!(
                            "`multiLineStartPattern` {pattern:?} does not compile: {e}"
                        ))
                    })?;
                    flow.multi_line_start_pattern = Some(pattern);
                }
                "skipHeaderLines" => flow.skip_header_lines = number(value, place, key)?,
                "truncatedRecordTerminator" => {
                    flow.truncated_record_terminator = string(value, place, key)?;
                }
                "maxBufferAgeMillis" => flow.max_buffer_age_millis = number(value, place, key)?,
                "maxBufferSizeRecords" => flow.max_buffer_size_records = number(value, place, key)?,
                "maxBufferSizeBytes" => flow.max_buffer_size_bytes = number(value, place, key)?,
                "dataProcessingOptions" => {
                    let text = options.map_or("[]", RawValue::get);
                    flow.processing_options = serde_json::from_str(text)
                        .map_err(|e| invalid(format!("dataProcessingOptions: {e}")))?;
                    flow.processing =
                        Processing::new(&flow.processing_options).map_err(|source| {
                            ConfigError::Processing {
                                place: place.to_owned(),
                                source,
                            }
                        })?;
                }
                other => ignore(IGNORED_FLOW_KEYS, place, other, ignored)?,
            }
        }
        flow.file_pattern =
            file_pattern.ok_or_else(|| invalid("`filePattern` is required".into()))?;
        flow.destination = match (kinesis, firehose) {
            (Some(stream), None) => Destination::Kinesis(stream),
            (None, Some(stream)) => {
                if fields.contains_key("partitionKeyOption") {
                    return Err(invalid(
                        "`partitionKeyOption` is for a kinesisStream; Firehose records have no key"
                            .into(),
                    ));
                }
                Destination::Firehose(stream)
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "a flow has kinesisStream or deliveryStream, not both".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "a flow needs kinesisStream or deliveryStream".into(),
                ));
            }
        };
        if flow.max_buffer_size_records == 0
            || flow.max_buffer_size_records > DEFAULT_MAX_BUFFER_SIZE_RECORDS
        {
            return Err(invalid(format!(
                "`maxBufferSizeRecords` is 1 to {DEFAULT_MAX_BUFFER_SIZE_RECORDS}, not {}",
                flow.max_buffer_size_records
            )));
        }
        Ok(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match AgentConfig::parse(text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_agent_s_example_configuration_reads() {
        let config = AgentConfig::parse(
            r#"{
  "checkpointFile": "/tmp/aws-kinesis-agent-checkpoints/main.log",
  "cloudwatch.emitMetrics": true,
  "cloudwatch.endpoint": "https://monitoring.us-west-2.amazonaws.com",
  "kinesis.endpoint": "https://kinesis.us-west-2.amazonaws.com",
  "awsAccessKeyId": "ACCESSKEY",
  "awsSecretAccessKey": "SECRETKEY",
  "flows": [
    {
      "filePattern": "/tmp/aws-kinesis-agent-test1.log*",
      "initialPosition": "END_OF_FILE",
      "kinesisStream": "aws-kinesis-agent-test1",
      "dataProcessingOptions": [
        {"optionName": "CSVTOJSON", "customFieldNames": ["field1", "field2", "field3"], "delimiter": "\\t"}
      ]
    },
    {
      "filePattern": "/tmp/aws-kinesis-agent-test2.log*",
      "initialPosition": "START_OF_FILE",
      "deliveryStream": "aws-kinesis-agent-test2",
      "maxBufferSizeRecords": "250",
      "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}]
    }
  ]
}"#,
        )
        .unwrap();
        assert_eq!(config.flows.len(), 2);
        assert_eq!(
            config.kinesis_endpoint.as_deref(),
            Some("https://kinesis.us-west-2.amazonaws.com")
        );
        let ignored: Vec<&str> = config.ignored.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            ignored,
            ["awsAccessKeyId", "awsSecretAccessKey", "checkpointFile"]
        );
        let [tsv, logs] = &config.flows[..] else {
            panic!("two flows")
        };
        assert_eq!(tsv.initial_position, InitialPosition::EndOfFile);
        assert_eq!(
            tsv.processing.convert(b"a\tb\tc\n").unwrap(),
            b"{\"field1\":\"a\",\"field2\":\"b\",\"field3\":\"c\"}\n"
        );
        assert_eq!(
            logs.destination,
            Destination::Firehose("aws-kinesis-agent-test2".into())
        );
        assert_eq!(logs.initial_position, InitialPosition::StartOfFile);
        assert_eq!(logs.max_buffer_size_records, 250);
        assert_eq!(logs.max_buffer_age_millis, DEFAULT_MAX_BUFFER_AGE_MILLIS);
    }

    #[test]
    fn unknown_keys_and_contradictions_are_errors_that_name_them() {
        let flow = r#""filePattern": "/a", "kinesisStream": "s""#;
        assert_eq!(
            error(&format!(
                r#"{{"flows": [{{{flow}}}], "kinesis.endpiont": "x"}}"#
            )),
            "agent.json: unknown key `kinesis.endpiont`"
        );
        assert_eq!(
            error(&format!(
                r#"{{"flows": [{{{flow}, "filepattern": "/b"}}]}}"#
            )),
            "flows[0]: unknown key `filepattern`"
        );
        assert!(error(r#"{"flows": []}"#).contains("at least one flow"));
        assert!(
            error(r#"{"flows": [{"kinesisStream": "s"}]}"#).contains("`filePattern` is required")
        );
        assert!(
            error(r#"{"flows": [{"filePattern": "/a"}]}"#)
                .contains("kinesisStream or deliveryStream")
        );
        assert!(
            error(r#"{"flows": [{"filePattern": "/a", "deliveryStream": "d", "partitionKeyOption": "RANDOM"}]}"#)
                .contains("Firehose records have no key")
        );
        assert!(
            error(&format!(
                r#"{{"flows": [{{{flow}, "partitionKeyOption": "HASHED"}}]}}"#
            ))
            .contains("RANDOM or DETERMINISTIC")
        );
        assert!(
            error(&format!(
                r#"{{"flows": [{{{flow}, "maxBufferSizeRecords": 501}}]}}"#
            ))
            .contains("1 to 500")
        );
        assert!(
            error(&format!(
                r#"{{"flows": [{{{flow}, "dataProcessingOptions": [{{"optionName": "LOGTOJSON"}}]}}]}}"#
            ))
            .contains("LOGTOJSON needs logFormat")
        );
    }

    #[test]
    fn metadata_keeps_the_file_s_key_order() {
        let config = AgentConfig::parse(
            r#"{"flows": [{"filePattern": "/a", "kinesisStream": "s",
                "dataProcessingOptions": [{"optionName": "ADDMETADATA",
                                           "metadata": {"zone": "b", "app": "web"}}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            config.flows[0].processing.convert(b"x\n").unwrap(),
            b"{\"metadata\":{\"zone\":\"b\",\"app\":\"web\"},\"data\":\"x\"}\n"
        );
    }
}
