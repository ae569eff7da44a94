//! Settings → runner → one MQTT pipeline → shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use shardline_cli::{CommonConfig, Defaults, Settings};
use shardline_core::SourceName;
use shardline_iot::{Filter, SensorRecords, TopicTemplate};
use shardline_mqtt::{MqttConfig, MqttSource, TlsFiles};
use shardline_partition_key::{KeySpec, PartitionKeyStrategy};
use shardline_runner::Runner;
use shardline_validate::{IotLimits, Validator};

use crate::Args;

/// A message is acknowledged to the broker only once its record is
/// settled, so the time a batch may wait to fill is time the broker holds
/// the message unacknowledged (and may send it again). 50 ms, half the
/// KPL's `RecordMaxBufferedTime`, keeps that short; log-streamer's 5 s is
/// for logs. Measured in docs/benchmarks.md: 10 ms and 50 ms deliver at the
/// same rate into kinesalite.
const DEFAULTS: Defaults = Defaults {
    binary: "sensor-forwarder",
    strict_ordering: false,
    linger: Some(Duration::from_millis(50)),
    max_in_flight: None,
};
/// The source's name in statistics (`by_source`) and dead letters.
pub(crate) const DEFAULT_SOURCE_NAME: &str = "iot_sensors";
const DEFAULT_MQTT_URL: &str = "mqtt://127.0.0.1:1883";
/// The topics of a temperature rule: `FROM 'sensors/+/temperature'`.
const DEFAULT_TOPIC: &str = "sensors/+/temperature";
const DEFAULT_CLIENT_ID: &str = "shardline-sensor-forwarder";

/// `[mqtt]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MqttSection {
    url: Option<String>,
    topics: Option<Vec<String>>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

/// `[sensors]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SensorsSection {
    pub(crate) topic_template: Option<String>,
    pub(crate) filter: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) temperature_min: Option<f64>,
    pub(crate) temperature_max: Option<f64>,
    pub(crate) partition_key: Option<String>,
    /// The source's name in statistics and dead letters.
    pub(crate) source_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    mqtt: MqttSection,
    #[serde(default)]
    sensors: SensorsSection,
}

/// The key strategy of `--partition-key` ([`KeySpec`]).
pub(crate) fn key_for(spec: &str) -> anyhow::Result<Box<dyn PartitionKeyStrategy>> {
    Ok(spec.parse::<KeySpec>()?.strategy())
}

/// Readings → records, as the flags and `[sensors]` say.
pub(crate) fn processor(
    sensors: &SensorsSection,
    args: Option<&Args>,
) -> anyhow::Result<SensorRecords> {
    let pick = |flag: Option<&Option<String>>, config: &Option<String>| {
        flag.and_then(Option::as_deref)
            .or(config.as_deref())
            .map(str::to_owned)
    };
    let template = match pick(args.map(|a| &a.topic_template), &sensors.topic_template) {
        None => Some(TopicTemplate::default()),
        Some(text) if text == "none" => None,
        Some(text) => Some(TopicTemplate::parse(&text)?),
    };
    let filter = match pick(args.map(|a| &a.filter), &sensors.filter) {
        Some(text) => Some(Filter::parse(&text)?),
        None => None,
    };
    let defaults = IotLimits::default();
    let limits = IotLimits {
        temperature_min: args
            .and_then(|a| a.temperature_min)
            .or(sensors.temperature_min)
            .unwrap_or(defaults.temperature_min),
        temperature_max: args
            .and_then(|a| a.temperature_max)
            .or(sensors.temperature_max)
            .unwrap_or(defaults.temperature_max),
        ..defaults
    };
    if limits.temperature_min.is_nan()
        || limits.temperature_max.is_nan()
        || limits.temperature_min > limits.temperature_max
    {
        bail!(
            "temperature range {} to {} is empty",
            limits.temperature_min,
            limits.temperature_max
        );
    }
    let validator = match pick(args.map(|a| &a.schema), &sensors.schema).as_deref() {
        None | Some("builtin") => Some(Validator::iot_reading(limits)?),
        Some("none") => None,
        Some(path) => Some(Validator::from_file(std::path::Path::new(path))?),
    };
    let key = key_for(
        pick(args.map(|a| &a.partition_key), &sensors.partition_key)
            .as_deref()
            .unwrap_or("iot"),
    )?;
    let name = sensors
        .source_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SOURCE_NAME.to_owned());
    Ok(SensorRecords::new(SourceName::new(&name), validator)
        .topic_template(template)
        .filter(filter)
        .key(key))
}

#[derive(Debug)]
struct Plan {
    settings: Settings,
    mqtt: MqttConfig,
    records: SensorRecords,
    source_name: String,
}

impl Plan {
    fn new(args: &Args, common: CommonConfig, config: ConfigFile) -> anyhow::Result<Plan> {
        let settings = Settings::new(&args.common, common, DEFAULTS)?;
        let mqtt = config.mqtt;
        let url = args
            .mqtt_url
            .clone()
            .or(mqtt.url)
            .unwrap_or_else(|| DEFAULT_MQTT_URL.to_owned());
        let topics = if !args.topics.is_empty() {
            args.topics.clone()
        } else {
            mqtt.topics
                .unwrap_or_else(|| vec![DEFAULT_TOPIC.to_owned()])
        };
        let username = args.mqtt_username.clone().or(mqtt.username);
        let password = args.mqtt_password.clone().or(mqtt.password);
        let credentials = match (username, password) {
            (Some(user), password) => Some((user, password.unwrap_or_default())),
            (None, Some(_)) => bail!("an MQTT password needs a username"),
            (None, None) => None,
        };
        let ca = args.mqtt_ca_file.clone().or(mqtt.ca_file);
        let cert = args.mqtt_cert_file.clone().or(mqtt.cert_file);
        let key = args.mqtt_key_file.clone().or(mqtt.key_file);
        let tls = match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
                ca,
                client: Some((cert, key)),
            }),
            (Some(ca), None, None) => Some(TlsFiles { ca, client: None }),
            (None, None, None) => None,
            _ => bail!("a client certificate needs its key file and the broker's CA file"),
        };
        let records = processor(&config.sensors, Some(args))?;
        Ok(Plan {
            settings,
            mqtt: MqttConfig {
                url,
                client_id: args
                    .client_id
                    .clone()
                    .or(mqtt.client_id)
                    .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
                topics,
                credentials,
                tls,
            },
            records,
            source_name: config
                .sensors
                .source_name
                .unwrap_or_else(|| DEFAULT_SOURCE_NAME.to_owned()),
        })
    }
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let (common, config) = args.common.config::<ConfigFile>()?;
    let plan = Plan::new(&args, common, config)?;
    shardline_cli::block_on(forward(plan))
}

async fn forward(plan: Plan) -> anyhow::Result<ExitCode> {
    let mut running = Runner::start(plan.settings.run.clone()).await?;
    shardline_cli::announce_metrics("sensor-forwarder", &running);
    let shutdown = shardline_cli::shutdown("sensor-forwarder", plan.settings.duration)?;
    let name = plan.source_name.clone();
    let source = MqttSource::start(plan.mqtt.clone())
        .await
        .with_context(|| format!("MQTT broker {}", plan.mqtt.url))?
        .report_redeliveries(running.counters(&name));
    let stats = source.stats();
    let pipeline = running.pipeline(&name, source, Arc::new(plan.records));
    running.spawn(&name, pipeline);
    eprintln!(
        "sensor-forwarder: {} topic(s) {} as client {} → {:?}; dead letters in {}",
        plan.mqtt.url,
        plan.mqtt.topics.join(", "),
        plan.mqtt.client_id,
        plan.settings.run.destination,
        plan.settings.run.dead_letter_file.display()
    );
    let summary = running.run(shutdown).await?;
    let code = shardline_cli::finish("sensor-forwarder", &plan.settings.run.destination, &summary);
    eprintln!(
        "sensor-forwarder: mqtt {}",
        serde_json::json!({
            "received": stats.received.load(Ordering::Relaxed),
            "redelivered": stats.redelivered.load(Ordering::Relaxed),
            "acknowledged": stats.acknowledged.load(Ordering::Relaxed),
            "reconnections": stats.reconnections.load(Ordering::Relaxed),
            "stale": stats.stale.load(Ordering::Relaxed),
        })
    );
    Ok(code)
}
