//! The generated sources `multi-source` runs, and `shardline put` too:
//! web logs, IoT readings and database changes, each paired with the
//! records step that turns it into records (parsed and validated, keyed
//! per source) and started as a pipeline of a [`Runner`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use shardline_cdc::{ChangeRecords, Decoder, Format, KeyBy};
use shardline_core::SourceName;
use shardline_generate::{Generated, Kind};
use shardline_iot::SensorRecords;
use shardline_log_parser::{LogParser, LogRecords};
use shardline_partition_key::WebLogKey;
use shardline_runner::Runner;
use shardline_validate::{IotLimits, Validator};

/// One generated source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// Apache access lines, parsed into JSON, keyed by client.
    Web,
    /// Sensor readings, checked against their schema, keyed by device.
    Iot,
    /// Debezium change events, keyed by table and primary key.
    Db,
}

impl Generator {
    /// Its name in statistics and dead letters.
    pub fn name(self) -> &'static str {
        match self {
            Generator::Web => "web_logs",
            Generator::Iot => "iot_sensors",
            Generator::Db => "database_cdc",
        }
    }

    /// Starts it in `running` at `rate` inputs a second; returns its count
    /// of inputs made.
    pub fn spawn(self, running: &mut Runner, rate: u32) -> anyhow::Result<Arc<AtomicU64>> {
        let name = self.name();
        let made = match self {
            Generator::Web => {
                let source = Generated::new(Kind::WebLogs, rate);
                let made = source.made();
                let records = LogRecords::new(
                    LogParser::apache(),
                    SourceName::new(name),
                    Box::new(WebLogKey::default()),
                )
                .validator(Some(Validator::web_log()?));
                let pipeline = running.pipeline(name, source, Arc::new(records));
                running.spawn(name, pipeline);
                made
            }
            Generator::Iot => {
                let source = Generated::new(Kind::Sensors, rate);
                let made = source.made();
                let records = SensorRecords::new(
                    SourceName::new(name),
                    Some(Validator::iot_reading(IotLimits::default())?),
                );
                let pipeline = running.pipeline(name, source, Arc::new(records));
                running.spawn(name, pipeline);
                made
            }
            Generator::Db => {
                let source = Generated::new(Kind::Changes, rate);
                let made = source.made();
                let decoder = Decoder::new(Format::Debezium).key_columns(
                    shardline_cdc::table_columns("inventory.customers:id;inventory.orders:id")?,
                );
                let records =
                    ChangeRecords::new(decoder, SourceName::new(name)).key_by(KeyBy::PrimaryKey);
                let pipeline = running.pipeline(name, source, Arc::new(records));
                running.spawn(name, pipeline);
                made
            }
        };
        Ok(made)
    }
}
