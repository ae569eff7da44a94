//! The change-data-capture event model of shardline.
//!
//! A [`ChangeEvent`] is one row change — INSERT, UPDATE, DELETE, TRUNCATE,
//! or a snapshot READ — with its before and after images, key, transaction,
//! log position and sequence within the transaction, classified (new record, record deleted, critical field change, general
//! update; [`Classifier`]). [`Decoder`]s read the formats CDC tools write —
//! Debezium, AWS DMS, Maxwell, wal2json format-version 2 — and shardline's
//! own; [`encode`] writes the normalized JSON and the Debezium envelope.
//! [`ChangeRecords`] is the pipeline step that turns change lines into
//! keyed records, with a [`TableFilter`].
//! The format is documented in `docs/cdc.md`.
//!
//! ```
//! use shardline_cdc::{Classifier, Decoded, Decoder, Format, ChangeType};
//!
//! let mut decoder = Decoder::new(Format::Maxwell)
//!     .classifier(Classifier::parse("shop.orders:status").unwrap());
//! let line = br#"{"database":"shop","table":"orders","type":"update","ts":1705314645,
//!     "xid":8812,"data":{"id":7,"status":"paid","total":30},"old":{"status":"new"}}"#;
//! let Decoded::Change(event) = decoder.decode(line).unwrap() else { unreachable!() };
//! assert_eq!(event.change_type, ChangeType::CriticalFieldChange);
//! assert_eq!(event.changed_columns.as_deref(), Some(&["status".to_owned()][..]));
//! assert_eq!(event.timestamp.as_deref(), Some("2024-01-15T10:30:45Z"));
//! ```

#![warn(missing_docs)]

mod classify;
pub mod decode;
pub mod encode;
mod event;
mod records;
mod tables;

pub use classify::{Classifier, CriticalFieldsError, table_columns};
pub use decode::{DecodeError, Decoded, Decoder, Format, KeyColumns};
pub use event::{BeforeImage, ChangeEvent, ChangeType, Operation, Row};
pub use records::{ChangeRecords, Encoding, KeyBy};
pub use tables::{TableFilter, TablePattern, TablePatternError};
