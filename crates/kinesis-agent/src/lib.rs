//! Amazon Kinesis Agent compatibility: the records the agent makes, byte
//! for byte, so that a switch from the agent to shardline changes nothing
//! downstream (consumers, Athena tables, Firehose transformations).
//!
//! - [`Processing`]: a flow's `dataProcessingOptions` — `SINGLELINE`,
//!   `CSVTOJSON`, `LOGTOJSON` (`COMMONAPACHELOG`, `COMBINEDAPACHELOG`,
//!   `APACHEERRORLOG`, `SYSLOG`, `RFC3339SYSLOG`, or a `matchPattern`),
//!   `ADDMETADATA` — with the agent's keys, key order, string values,
//!   `null`s, JSON escapes and trailing newline.
//! - [`PartitionKeyOption`]: `RANDOM` or `DETERMINISTIC` keys.
//! - [`AgentConfig`]: `agent.json` — its flows and settings, every key
//!   used, accepted with a reason it has no meaning for shardline
//!   ([`Ignored`]), or an error that names it.
//!
//! Where the agent drops a line silently (a `LOGTOJSON` line that does not
//! match its pattern), [`Processing::convert`] says why ([`NoMatch`]), so
//! the caller can dead-letter it instead.

#![warn(missing_docs)]

mod config;
mod convert;
mod json;
mod key;
mod patterns;

pub use config::{
    AgentConfig, ConfigError, DEFAULT_MAX_BUFFER_AGE_MILLIS, DEFAULT_MAX_BUFFER_SIZE_BYTES,
    DEFAULT_MAX_BUFFER_SIZE_RECORDS, Destination, Flow, Ignored, InitialPosition,
};
pub use convert::{
    Flag, JsonFormat, NoMatch, OptionError, Processing, ProcessingOption, SingleLineOption,
};
pub use key::PartitionKeyOption;
pub use patterns::LogFormat;
