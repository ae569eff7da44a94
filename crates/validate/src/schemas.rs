//! The built-in schemas: web log, application log, IoT reading and CDC
//! event.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Builtin, SchemaError, Validator, Violation};

/// How far in the future a reading's timestamp may be (clock skew between
/// a device and us) before it is rejected.
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);

/// An RFC 3339 date-time, as the schemas check it.
const RFC3339_PATTERN: &str = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$";

/// Ranges an IoT reading must stay in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IotLimits {
    /// The lowest temperature allowed, °C.
    pub temperature_min: f64,
    /// The highest temperature allowed, °C.
    pub temperature_max: f64,
    /// Longest device id, in characters.
    pub device_id_max_chars: u64,
}

impl Default for IotLimits {
    fn default() -> Self {
        IotLimits {
            temperature_min: -50.0,
            temperature_max: 100.0,
            device_id_max_chars: 128,
        }
    }
}

/// A check that a date-time field is RFC 3339 and not more than
/// [`MAX_FUTURE_SKEW`] ahead of now.
fn not_in_future(field: &'static str) -> impl Fn(&Value) -> Option<Violation> + Send + Sync {
    move |record: &Value| {
        let text = record.get(field)?.as_str()?;
        let path = format!("/{field}");
        match OffsetDateTime::parse(text, &Rfc3339) {
            Ok(at) => {
                let limit = OffsetDateTime::now_utc() + MAX_FUTURE_SKEW;
                (at > limit).then(|| Violation {
                    rule: "not_in_future".into(),
                    path,
                    message: format!(
                        "{text} is more than {} s in the future",
                        MAX_FUTURE_SKEW.as_secs()
                    ),
                })
            }
            Err(e) => Some(Violation {
                rule: "format".into(),
                path,
                message: format!("{text:?} is not an RFC 3339 date-time: {e}"),
            }),
        }
    }
}

impl Validator {
    /// Access-log records as `shardline-log-parser` writes them
    /// (`docs/log-schema.md`).
    pub fn web_log() -> Result<Validator, SchemaError> {
        let nullable_string = json!({"type": ["string", "null"]});
        Validator::from_schema(
            "web_log",
            &json!({
                "type": "object",
                "required": ["timestamp", "ip_address", "status_code", "log_type"],
                "properties": {
                    "timestamp": {"type": "string", "pattern": RFC3339_PATTERN},
                    "ip_address": {"type": "string", "minLength": 1},
                    "method": nullable_string,
                    "path": nullable_string,
                    "protocol": nullable_string,
                    "status_code": {"type": "integer", "minimum": 100, "maximum": 999},
                    "response_size": {"type": ["integer", "null"], "minimum": 0},
                    "referer": nullable_string,
                    "user_agent": nullable_string,
                    "log_type": {"enum": ["apache_access", "nginx_access"]}
                }
            }),
        )
        .map(|validator| validator.builtin_as(Builtin::WebLog))
    }

    /// JSON application-log records, as log-streamer makes them of any
    /// JSON object: the parser keeps every key and writes `log_type`, so
    /// this only holds the record to that shape. `level`, `message` and
    /// `timestamp` may be missing or of any type (see
    /// [`Validator::application_log_strict`] to require them).
    pub fn application_log() -> Result<Validator, SchemaError> {
        Validator::from_schema(
            "application_log",
            &json!({
                "type": "object",
                "required": ["log_type"],
                "properties": {
                    "log_type": {"const": "application"}
                }
            }),
        )
        .map(|validator| validator.builtin_as(Builtin::ApplicationLog))
    }

    /// JSON application-log records with a time, a level and a message,
    /// each a string, and the usual fields typed (`"schema": "strict"`).
    pub fn application_log_strict() -> Result<Validator, SchemaError> {
        Validator::from_schema(
            "application_log_strict",
            &json!({
                "type": "object",
                "required": ["timestamp", "level", "message", "log_type"],
                "properties": {
                    "timestamp": {"type": "string", "minLength": 1},
                    "level": {"type": "string", "minLength": 1},
                    "message": {"type": "string"},
                    "logger": {"type": ["string", "null"]},
                    "user_id": {"type": ["string", "integer", "null"]},
                    "request_id": {"type": ["string", "null"]},
                    "log_type": {"const": "application"}
                }
            }),
        )
        .map(|validator| validator.builtin_as(Builtin::ApplicationLogStrict))
    }

    /// IoT sensor readings: a device id, a temperature in range, humidity
    /// 0–100 %, and, when the device sends one, an RFC 3339 timestamp not
    /// far in the future (an IoT Core rule's result has none: the rule
    /// stamps `ingestion_time` instead).
    pub fn iot_reading(limits: IotLimits) -> Result<Validator, SchemaError> {
        Validator::from_schema(
            "iot_reading",
            &json!({
                "type": "object",
                "required": ["device_id", "temperature"],
                "properties": {
                    "device_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": limits.device_id_max_chars
                    },
                    "temperature": {
                        "type": "number",
                        "minimum": limits.temperature_min,
                        "maximum": limits.temperature_max
                    },
                    "humidity": {"type": "number", "minimum": 0, "maximum": 100},
                    "location": {"type": "string"},
                    "timestamp": {"type": "string", "pattern": RFC3339_PATTERN}
                }
            }),
        )
        .map(|validator| {
            validator
                .with_check(not_in_future("timestamp"))
                .builtin_as(Builtin::IotReading)
        })
    }

    /// Normalized CDC change events: what changed, where, and the row
    /// images an operation must have.
    pub fn cdc_event() -> Result<Validator, SchemaError> {
        let image = json!({"type": ["object", "null"]});
        Validator::from_schema(
            "cdc_event",
            &json!({
                "type": "object",
                "required": ["table", "operation"],
                "properties": {
                    "timestamp": {"type": "string"},
                    "database": {"type": "string"},
                    "schema": {"type": "string"},
                    "table": {"type": "string", "minLength": 1},
                    "operation": {"enum": ["INSERT", "UPDATE", "DELETE", "TRUNCATE", "READ"]},
                    "before": image,
                    "after": image,
                    "primary_key": {"type": ["object", "null"]},
                    "position": {"type": "string"}
                },
                "allOf": [
                    {
                        "if": {"properties": {"operation": {"enum": ["INSERT", "UPDATE", "READ"]}}},
                        "then": {"required": ["after"], "properties": {"after": {"type": "object"}}}
                    },
                    {
                        "if": {"properties": {"operation": {"const": "DELETE"}}},
                        "then": {"required": ["before"], "properties": {"before": {"type": "object"}}}
                    }
                ]
            }),
        )
        .map(|validator| validator.builtin_as(Builtin::CdcEvent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The violations as (rule, path), sorted: the schema's traversal order
    /// is jsonschema's business.
    fn rules(validator: &Validator, record: &Value) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = match validator.validate(record) {
            Ok(()) => Vec::new(),
            Err(violations) => violations.into_iter().map(|v| (v.rule, v.path)).collect(),
        };
        found.sort();
        found
    }

    fn pair(rule: &str, path: &str) -> (String, String) {
        (rule.to_owned(), path.to_owned())
    }

    #[test]
    fn web_logs() {
        let web = Validator::web_log().unwrap();
        let good = json!({"timestamp": "2024-01-15T10:30:45+00:00", "ip_address": "10.0.0.1",
            "method": "GET", "path": "/", "protocol": "HTTP/1.1", "status_code": 200,
            "response_size": null, "referer": null, "user_agent": null, "log_type": "apache_access"});
        assert_eq!(rules(&web, &good), []);
        let mut bad = good.clone();
        bad["status_code"] = json!(42);
        bad["log_type"] = json!("other");
        assert_eq!(
            rules(&web, &bad),
            [pair("enum", "/log_type"), pair("minimum", "/status_code")]
        );
    }

    #[test]
    fn iot_readings() {
        let iot = Validator::iot_reading(IotLimits::default()).unwrap();
        let good = json!({"device_id": "sensor-1", "temperature": 21.5, "humidity": 40,
                          "timestamp": "2024-01-15T10:30:45Z"});
        assert_eq!(rules(&iot, &good), []);
        let bad = json!({"device_id": "", "temperature": 120, "humidity": -1,
                         "timestamp": "2999-01-01T00:00:00Z"});
        assert_eq!(
            rules(&iot, &bad),
            [
                pair("maximum", "/temperature"),
                pair("minLength", "/device_id"),
                pair("minimum", "/humidity"),
                pair("not_in_future", "/timestamp"),
            ]
        );
        let tight = Validator::iot_reading(IotLimits {
            temperature_min: 0.0,
            temperature_max: 30.0,
            device_id_max_chars: 4,
        })
        .unwrap();
        assert_eq!(rules(&tight, &good), [pair("maxLength", "/device_id")]);
        assert_eq!(
            rules(&iot, &json!({"temperature": "hot"})),
            [pair("required", ""), pair("type", "/temperature")]
        );
        // An IoT rule's result: no device timestamp.
        let rule_result = json!({"device_id": "sensor-001", "temperature": 25.5, "humidity": 60,
                           "location": "factory-a", "ingestion_time": "2024-01-15T10:30:00Z"});
        assert_eq!(rules(&iot, &rule_result), []);
    }

    #[test]
    fn cdc_events_need_their_images() {
        let cdc = Validator::cdc_event().unwrap();
        let insert = json!({"table": "public.users", "operation": "INSERT", "after": {"id": 1}});
        assert_eq!(rules(&cdc, &insert), []);
        let delete_without_before = json!({"table": "t", "operation": "DELETE", "after": null});
        assert_eq!(rules(&cdc, &delete_without_before), [pair("required", "")]);
        let unknown = json!({"table": "t", "operation": "MERGE"});
        assert_eq!(rules(&cdc, &unknown), [pair("enum", "/operation")]);
    }

    #[test]
    fn application_logs() {
        let strict = Validator::application_log_strict().unwrap();
        let good = json!({"timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO",
                          "message": "ok", "user_id": 5, "log_type": "application"});
        assert_eq!(rules(&strict, &good), []);
        let bad =
            json!({"timestamp": null, "level": "INFO", "message": "ok", "log_type": "application"});
        assert_eq!(rules(&strict, &bad), [pair("type", "/timestamp")]);
        // The default takes any object the parser made: no level, no
        // message, a nested body (issue 21: a real JSON log, every line
        // of which the strict schema refused).
        let app = Validator::application_log().unwrap();
        let nested = json!({"timestamp": "2015-10-31T00:40:53.399+00:00", "level": null,
                            "message": null, "payload": {"id": 1}, "log_type": "application"});
        assert_eq!(rules(&app, &nested), []);
        assert_eq!(
            rules(&strict, &nested),
            [pair("type", "/level"), pair("type", "/message")]
        );
        assert_eq!(
            rules(&app, &json!({"log_type": "apache_access"})),
            [pair("const", "/log_type")]
        );
    }
}
