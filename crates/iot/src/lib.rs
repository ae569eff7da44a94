//! IoT sensor readings → records, as an AWS IoT Core rule like this one
//! does it:
//!
//! ```sql
//! SELECT *, timestamp() AS ingestion_time, topic(2) AS location
//! FROM 'sensors/+/temperature' WHERE temperature > 0 AND temperature < 100
//! ```
//!
//! - [`TopicTemplate`]: topic levels as fields (`sensors/<location>/<metric>`);
//! - [`Filter`]: the WHERE clause in a small documented form;
//! - [`SensorRecords`]: the [`Process`](shardline_core::Process) step of
//!   a sensor pipeline — parse, add topic fields, check the IoT schema,
//!   filter, stamp `ingestion_time`, key by device and location.
//!
//! # Example
//!
//! ```
//! use shardline_core::{Origin, Process, Processed, SourceName};
//! use shardline_iot::{Filter, SensorRecords, TopicTemplate};
//!
//! let records = SensorRecords::new(SourceName::new("iot_sensors"), None)
//!     .topic_template(Some(TopicTemplate::default()))
//!     .filter(Some(Filter::parse("temperature > 0 && temperature < 100")?));
//! let topic = Origin::topic("sensors/factory-a/temperature");
//!
//! let Processed::Record(record) = records.process(br#"{"device_id": "sensor-001", "temperature": 25.5}"#, topic) else {
//!     panic!("not sent");
//! };
//! let sent: serde_json::Value = serde_json::from_slice(&record.data)?;
//! assert_eq!(sent["location"], "factory-a");
//! // The WHERE clause: a reading it does not pass is not sent.
//! assert!(matches!(records.process(br#"{"device_id": "sensor-001", "temperature": 120}"#, topic), Processed::Skip));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod filter;
mod records;
mod topic;

pub use filter::{Filter, FilterError, MAX_FILTER_BYTES, MAX_FILTER_NESTING};
pub use records::{INGESTION_TIME_FIELD, SensorRecords};
pub use topic::{DEFAULT_TOPIC_TEMPLATE, TemplateError, TopicTemplate};
