//! One sensor message → one record: the [`Process`] step of a sensor
//! pipeline.

use serde_json::{Map, Value};
use shardline_core::{Origin, Process, Processed, Record, SourceName};
use shardline_partition_key::{IotKey, PartitionKeyStrategy};
use shardline_validate::Validator;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::{Filter, TopicTemplate};

/// The field stamped with the time the reading was taken in (IoT Core's
/// `timestamp() AS ingestion_time`).
pub const INGESTION_TIME_FIELD: &str = "ingestion_time";

/// Turns sensor messages into records, in this order:
///
/// 1. a blank payload is skipped; one that is not a JSON object is
///    rejected;
/// 2. the topic's levels become fields ([`TopicTemplate`]), unless the
///    payload has a field of that name already (the device's own value
///    wins);
/// 3. the schema is checked: a failing reading is rejected (dead-lettered)
///    with the rule and the JSON path — before the filter, so that bad
///    data is seen, never filtered away unseen;
/// 4. the [`Filter`]: a reading it does not pass is skipped (counted);
/// 5. `ingestion_time` is set to now (UTC, milliseconds);
/// 6. the key strategy (default: device id + location hash, the IoT
///    key); a reading it cannot key is rejected.
///
/// ```
/// use serde_json::Value;
/// use shardline_iot::SensorRecords;
/// use shardline_core::{Origin, Process, Processed, SourceName};
///
/// let records = SensorRecords::new(SourceName::new("iot_sensors"), None);
/// let reading = br#"{"device_id": "sensor-001", "temperature": 25.5, "humidity": 60}"#;
/// let Processed::Record(record) =
///     records.process(reading, Origin::topic("sensors/factory-a/temperature"))
/// else {
///     panic!("not a record");
/// };
/// let sent: Value = serde_json::from_slice(&record.data)?;
/// assert_eq!(sent["location"], "factory-a");
/// assert!(sent["ingestion_time"].is_string());
/// assert!(record.partition_key.as_str().starts_with("sensor-001:"));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub struct SensorRecords {
    source: SourceName,
    template: Option<TopicTemplate>,
    validator: Option<Validator>,
    filter: Option<Filter>,
    key: Box<dyn PartitionKeyStrategy>,
}

impl std::fmt::Debug for SensorRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorRecords")
            .field("source", &self.source)
            .field("template", &self.template)
            .field("validator", &self.validator.as_ref().map(Validator::name))
            .field("filter", &self.filter)
            .field("key", &self.key.name())
            .finish()
    }
}

impl SensorRecords {
    /// Readings of `source`, checked by `validator` (usually
    /// [`Validator::iot_reading`]), with the default topic template
    /// ([`crate::DEFAULT_TOPIC_TEMPLATE`]), no filter and the IoT key.
    pub fn new(source: SourceName, validator: Option<Validator>) -> Self {
        SensorRecords {
            source,
            template: Some(TopicTemplate::default()),
            validator,
            filter: None,
            key: Box::new(IotKey::default()),
        }
    }

    /// The topic template; `None` adds no field from the topic.
    pub fn topic_template(mut self, template: Option<TopicTemplate>) -> Self {
        self.template = template;
        self
    }

    /// Only readings the filter keeps are sent (`None`: all).
    pub fn filter(mut self, filter: Option<Filter>) -> Self {
        self.filter = filter;
        self
    }

    /// How readings are keyed (default: device and location).
    pub fn key(mut self, key: Box<dyn PartitionKeyStrategy>) -> Self {
        self.key = key;
        self
    }

    /// The reading as it will be checked, filtered and keyed: the payload
    /// with the topic's fields added, or why it is not a reading.
    pub fn reading(&self, data: &[u8], origin: Origin<'_>) -> Result<Map<String, Value>, String> {
        let mut reading = match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(reading)) => reading,
            Ok(other) => {
                return Err(format!(
                    "a reading must be a JSON object, not {}",
                    kind(&other)
                ));
            }
            Err(e) => return Err(format!("not JSON: {e}")),
        };
        if let (Some(template), Some(topic)) = (&self.template, origin.topic) {
            for (name, level) in template.fields(topic).unwrap_or_default() {
                if !reading.contains_key(name) {
                    reading.insert(name.to_owned(), Value::String(level.to_owned()));
                }
            }
        }
        Ok(reading)
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Now, as `2024-01-15T10:30:00.123Z`.
fn now_text() -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| OffsetDateTime::now_utc().unix_timestamp().to_string())
}

impl Process for SensorRecords {
    fn process(&self, data: &[u8], origin: Origin<'_>) -> Processed {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Processed::Skip;
        }
        let reading = match self.reading(data, origin) {
            Ok(reading) => reading,
            Err(reason) => return Processed::Rejected(reason),
        };
        let mut reading = Value::Object(reading);
        if let Some(validator) = &self.validator
            && let Err(violations) = validator.validate(&reading)
        {
            return Processed::Rejected(validator.explain(&violations));
        }
        if let Some(filter) = &self.filter
            && !filter.matches(&reading)
        {
            return Processed::Skip;
        }
        if let Value::Object(fields) = &mut reading {
            fields.insert(INGESTION_TIME_FIELD.to_owned(), Value::String(now_text()));
        }
        let key = match self.key.key(&reading) {
            Ok(choice) => choice,
            Err(e) => return Processed::Rejected(e.to_string()),
        };
        let json = match serde_json::to_vec(&reading) {
            Ok(json) => json,
            Err(e) => return Processed::Rejected(format!("cannot write the reading: {e}")),
        };
        let mut record = Record::from_source(self.source.clone(), key.partition_key, json);
        record.explicit_hash_key = key.explicit_hash_key;
        Processed::Record(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_validate::IotLimits;

    fn records() -> SensorRecords {
        SensorRecords::new(
            SourceName::new("iot_sensors"),
            Some(Validator::iot_reading(IotLimits::default()).unwrap()),
        )
    }

    fn sent(processed: Processed) -> (Value, String) {
        match processed {
            Processed::Record(record) => (
                serde_json::from_slice(&record.data).unwrap(),
                record.partition_key.as_str().to_owned(),
            ),
            other => panic!("{other:?}"),
        }
    }

    const TOPIC: Origin<'static> = Origin::topic("sensors/factory-a/temperature");

    #[test]
    fn a_temperature_rules_result() {
        let (reading, key) = sent(records().process(
            br#"{"device_id": "sensor-001", "temperature": 25.5, "humidity": 60}"#,
            TOPIC,
        ));
        assert_eq!(reading["device_id"], "sensor-001");
        assert_eq!(reading["temperature"], 25.5);
        assert_eq!(reading["location"], "factory-a");
        assert_eq!(reading["metric"], "temperature");
        let at = reading["ingestion_time"].as_str().unwrap();
        assert!(
            OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
            "{at}"
        );
        // The same device at the same place: the same key.
        let (_, again) =
            sent(records().process(br#"{"device_id": "sensor-001", "temperature": 3}"#, TOPIC));
        assert_eq!(key, again);
        let (_, elsewhere) = sent(records().process(
            br#"{"device_id": "sensor-001", "temperature": 3}"#,
            Origin::topic("sensors/factory-b/temperature"),
        ));
        assert_ne!(key, elsewhere);
    }

    #[test]
    fn the_payload_wins_over_the_topic() {
        let (reading, _) = sent(records().process(
            br#"{"device_id": "d", "temperature": 1, "location": "lab"}"#,
            TOPIC,
        ));
        assert_eq!(reading["location"], "lab");
        // No template: no field from the topic.
        let (reading, _) = sent(
            records()
                .topic_template(None)
                .process(br#"{"device_id": "d", "temperature": 1}"#, TOPIC),
        );
        assert!(reading.get("location").is_none());
    }

    #[test]
    fn invalid_readings_name_the_rule_and_path() {
        let rejected = |data: &[u8]| match records().process(data, TOPIC) {
            Processed::Rejected(reason) => reason,
            other => panic!("{other:?}"),
        };
        let reason = rejected(br#"{"device_id": "d", "temperature": 20, "humidity": 140}"#);
        assert!(
            reason.contains("maximum") && reason.contains("/humidity"),
            "{reason}"
        );
        let reason = rejected(br#"{"temperature": 20}"#);
        assert!(reason.contains("required"), "{reason}");
        assert!(rejected(b"[1, 2]").contains("an array"));
        assert!(rejected(b"{\"device_id\":").contains("not JSON"));
        assert!(matches!(
            records().process(b" \r\n", TOPIC),
            Processed::Skip
        ));
    }

    #[test]
    fn the_filter_skips_after_the_schema() {
        let records = records().filter(Some(
            Filter::parse("temperature > 0 && temperature < 100").unwrap(),
        ));
        assert!(matches!(
            records.process(br#"{"device_id": "d", "temperature": -5}"#, TOPIC),
            Processed::Skip
        ));
        // Out of the schema's range: dead-lettered, not filtered away.
        assert!(matches!(
            records.process(br#"{"device_id": "d", "temperature": 150}"#, TOPIC),
            Processed::Rejected(_)
        ));
        assert!(matches!(
            records.process(br#"{"device_id": "d", "temperature": 50}"#, TOPIC),
            Processed::Record(_)
        ));
    }

    #[test]
    fn without_a_schema_a_reading_without_a_device_is_still_rejected() {
        let records = SensorRecords::new(SourceName::new("iot"), None);
        match records.process(br#"{"temperature": 20}"#, TOPIC) {
            Processed::Rejected(reason) => assert!(reason.contains("device_id"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
