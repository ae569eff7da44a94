//! IoT sensor readings → records, as the seeds' IoT Core rule does it
//! (`shared/seeds/002_…` §6.2):
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

mod filter;
mod records;
mod topic;

pub use filter::{Filter, FilterError, MAX_FILTER_BYTES, MAX_FILTER_NESTING};
pub use records::{INGESTION_TIME_FIELD, SensorRecords};
pub use topic::{DEFAULT_TOPIC_TEMPLATE, TemplateError, TopicTemplate};
