//! Record hygiene before keying and sending: per-source validation and
//! field masking.
//!
//! - [`Validator`]: a JSON Schema (users edit schema files; the web
//!   log, application log, IoT reading and CDC event schemas are built in)
//!   plus the checks a schema cannot say, such as "not far in the future".
//!   An invalid record gets every [`Violation`]: the failing rule and the
//!   JSON path, for its dead letter.
//! - [`Masker`]: per-field masking — drop, keyed hash, truncate an IP
//!   address to its network, mask an e-mail's local part.
//!
//! # Example
//!
//! ```
//! use serde_json::json;
//! use shardline_validate::{IotLimits, MaskRule, Masker, Validator};
//!
//! let iot = Validator::iot_reading(IotLimits::default())?;
//! let reading = json!({"device_id": "sensor-7", "temperature": 21.5, "humidity": 140,
//!                      "timestamp": "2024-01-15T10:30:45Z"});
//! let violations = iot.validate(&reading).unwrap_err();
//! assert_eq!(violations[0].path, "/humidity");
//! assert_eq!(violations[0].rule, "maximum");
//!
//! let masker = Masker::new(b"secret".to_vec())
//!     .rule("ip_address", MaskRule::TruncateIp)
//!     .rule("email", MaskRule::MaskEmail);
//! let mut record = json!({"ip_address": "203.0.113.77", "email": "alice@example.com"});
//! masker.apply(&mut record);
//! assert_eq!(record, json!({"ip_address": "203.0.113.0", "email": "***@example.com"}));
//! # Ok::<(), shardline_validate::SchemaError>(())
//! ```

#![warn(missing_docs)]

mod mask;
mod schemas;

pub use mask::{MaskRule, Masker};
pub use schemas::{IotLimits, MAX_FUTURE_SKEW};

use std::path::Path;

use serde_json::Value;

/// One way a record breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The rule that failed: a JSON Schema keyword (`required`, `type`,
    /// `maximum`, `pattern`, …) or a check's name (`not_in_future`).
    pub rule: String,
    /// Where: a JSON Pointer into the record (`/humidity`, empty for the
    /// record itself).
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

/// A schema that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The schema file could not be read.
    #[error("reading schema {path}: {source}")]
    Read {
        /// The file.
        path: String,
        #[source]
        /// What failed underneath.
        source: std::io::Error,
    },
    /// The schema is not JSON.
    #[error("schema {name} is not JSON: {source}")]
    Json {
        /// The schema's name.
        name: String,
        #[source]
        /// What failed underneath.
        source: serde_json::Error,
    },
    /// The schema is not a valid JSON Schema.
    #[error("schema {name} is not a valid JSON Schema: {message}")]
    Invalid {
        /// The schema's name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A check a JSON Schema cannot express.
type Check = Box<dyn Fn(&Value) -> Option<Violation> + Send + Sync>;

/// The built-in schemas, for a caller that holds a typed record and can
/// check the same rules without building its JSON (the web log's rules on
/// a parsed access line): [`Validator::builtin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Builtin {
    /// Access-log records.
    WebLog,
    /// Application-log records.
    ApplicationLog,
    /// Application-log records, strictly: time, level and message required
    /// and the usual fields typed (`"schema": "strict"`).
    ApplicationLogStrict,
    /// Sensor readings.
    IotReading,
    /// Change events.
    CdcEvent,
}

/// Validates records of one source.
pub struct Validator {
    name: String,
    schema: jsonschema::Validator,
    checks: Vec<Check>,
    builtin: Option<Builtin>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("name", &self.name)
            .field("checks", &self.checks.len())
            .finish()
    }
}

impl Validator {
    /// A validator for a JSON Schema document.
    pub fn from_schema(name: &str, schema: &Value) -> Result<Self, SchemaError> {
        let schema = jsonschema::validator_for(schema).map_err(|e| SchemaError::Invalid {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Validator {
            name: name.to_owned(),
            schema,
            checks: Vec::new(),
            builtin: None,
        })
    }

    /// A validator for a JSON Schema file a user edits.
    pub fn from_file(path: &Path) -> Result<Self, SchemaError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: name.clone(),
            source,
        })?;
        let schema: Value = serde_json::from_str(&text).map_err(|source| SchemaError::Json {
            name: name.clone(),
            source,
        })?;
        Self::from_schema(&name, &schema)
    }

    /// Adds a check the schema cannot express; it returns a violation or
    /// `None`.
    pub fn with_check(
        mut self,
        check: impl Fn(&Value) -> Option<Violation> + Send + Sync + 'static,
    ) -> Self {
        self.checks.push(Box::new(check));
        self
    }

    /// The schema's name (a built-in name or the file's path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which built-in schema this is, if it is one.
    pub fn builtin(&self) -> Option<Builtin> {
        self.builtin
    }

    pub(crate) fn builtin_as(mut self, builtin: Builtin) -> Self {
        self.builtin = Some(builtin);
        self
    }

    /// A dead letter's reason for `violations` of this schema:
    /// `schema iot_reading: maximum at "/humidity": 140 is greater than
    /// the maximum of 100; ...`.
    pub fn explain(&self, violations: &[Violation]) -> String {
        let reasons: Vec<String> = violations
            .iter()
            .map(|v| format!("{} at {:?}: {}", v.rule, v.path, v.message))
            .collect();
        format!("schema {}: {}", self.name, reasons.join("; "))
    }

    /// `Ok` for a valid record; otherwise every violation found.
    pub fn validate(&self, record: &Value) -> Result<(), Vec<Violation>> {
        // Most records are valid: ask yes or no first, and collect the
        // errors only for those that are not.
        let mut violations: Vec<Violation> = if self.schema.is_valid(record) {
            Vec::new()
        } else {
            self.schema
                .iter_errors(record)
                .map(|error| Violation {
                    rule: error.kind().keyword().to_owned(),
                    path: error.instance_path().as_str().to_owned(),
                    message: error.to_string(),
                })
                .collect()
        };
        violations.extend(self.checks.iter().filter_map(|check| check(record)));
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}
