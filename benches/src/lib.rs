//! Corpora and baselines for shardline's benchmarks.
//!
//! - [`corpus`]: realistic log lines, generated deterministically (a fixed
//!   seed), so every run measures the same bytes;
//! - [`regex_baseline`]: the straightforward parser a shipper would write —
//!   a `regex` per format, owned `String`s, `serde_json` — producing the same
//!   JSON as `shardline-log-parser`, measured in the same run so figures are
//!   ratios rather than wall times;
//! - [`noop`]: a destination that accepts everything and counts it, for the
//!   producer's own overhead and its billing units.
//!
//! # Example
//!
//! ```
//! use shardline_benches::corpus;
//!
//! // The same lines on every run: figures compare across runs.
//! let lines = corpus::apache_combined(100);
//! assert_eq!(lines, corpus::apache_combined(100));
//! assert!(corpus::mean_len(&lines) > 100.0);
//! ```

pub mod corpus;
pub mod noop;
pub mod regex_baseline;
