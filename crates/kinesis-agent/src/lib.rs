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
//!
//! Where the agent drops a line silently (a `LOGTOJSON` line that does not
//! match its pattern), [`Processing::convert`] says why ([`NoMatch`]), so
//! the caller can dead-letter it instead.

#![warn(missing_docs)]

mod convert;
mod json;
mod key;
mod patterns;

pub use convert::{
    Flag, JsonFormat, NoMatch, OptionError, Processing, ProcessingOption, SingleLineOption,
};
pub use key::PartitionKeyOption;
pub use patterns::LogFormat;
