//! Partition-key strategies: how a record's fields become its key.
//!
//! One per kind of source: web logs use the session id, else a hash of the client address plus the hour; IoT readings
//! use the device id plus a hash of the location; database changes use the
//! table and the row's primary key (shardline's default, which keeps each
//! row's changes in order) or the table and the transaction id (opt-in). Plus a field path, a fixed key, a random key and an
//! explicit hash key taken from a field.

use std::borrow::Cow;
use std::fmt;

use md5::{Digest, Md5};

use crate::{ExplicitHashKey, KeyError, PartitionKey};

/// Where a strategy reads fields from: a JSON value, or any record type
/// through a closure.
pub trait Fields {
    /// The field at a dotted path (`a.b.c`) as text — strings as they are,
    /// numbers and booleans in JSON form — or `None` if absent or null.
    fn text(&self, path: &str) -> Option<Cow<'_, str>>;

    /// Writes the field's text to `out`; `false` if it is absent or null.
    /// The default goes through [`Fields::text`]; a record that formats a
    /// field (a time) overrides it to write without allocating.
    fn write_text(&self, path: &str, out: &mut dyn fmt::Write) -> bool {
        match self.text(path) {
            Some(text) => out.write_str(&text).is_ok(),
            None => false,
        }
    }
}

/// Bytes a key is assembled in on the stack: a web key is 8 hex digits, a
/// colon and a 13-character hour.
const KEY_BUFFER: usize = 64;

/// A short text written on the stack; what does not fit is cut (the
/// writer reports an error, which [`Fields::write_text`] ignores).
struct StackText {
    buf: [u8; KEY_BUFFER],
    len: usize,
}

impl StackText {
    fn new() -> Self {
        StackText {
            buf: [0; KEY_BUFFER],
            len: 0,
        }
    }

    /// The text written (what was cut off ends at a character boundary).
    fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or_default())
                .unwrap_or_default(),
        }
    }

    /// Its first `chars` characters.
    fn first_chars(&self, chars: usize) -> &str {
        let text = self.as_str();
        match text.char_indices().nth(chars) {
            Some((end, _)) => text.get(..end).unwrap_or(text),
            None => text,
        }
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = KEY_BUFFER - self.len;
        let take = text.len().min(room);
        if let (Some(to), Some(from)) = (
            self.buf.get_mut(self.len..self.len + take),
            text.as_bytes().get(..take),
        ) {
            to.copy_from_slice(from);
        }
        self.len += take;
        if take < text.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl Fields for serde_json::Value {
    fn text(&self, path: &str) -> Option<Cow<'_, str>> {
        let mut value = self;
        for part in path.split('.') {
            value = value.get(part)?;
        }
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some(Cow::Borrowed(text)),
            other => Some(Cow::Owned(other.to_string())),
        }
    }
}

impl<F> Fields for F
where
    F: for<'p> Fn(&'p str) -> Option<String>,
{
    fn text(&self, path: &str) -> Option<Cow<'_, str>> {
        self(path).map(Cow::Owned)
    }
}

/// A record's key, and the explicit hash key if the strategy sets one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChoice {
    /// The partition key.
    pub partition_key: PartitionKey,
    /// The explicit hash key, which picks the shard instead of the key's
    /// hash.
    pub explicit_hash_key: Option<ExplicitHashKey>,
}

impl KeyChoice {
    fn key(key: PartitionKey) -> Self {
        KeyChoice {
            partition_key: key,
            explicit_hash_key: None,
        }
    }
}

/// A strategy could not key a record (a required field is missing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// The record lacks a field the strategy needs.
    #[error("the {strategy} strategy needs the field `{field}`, which the record lacks")]
    MissingField {
        /// The strategy's name.
        strategy: &'static str,
        /// The field it needs.
        field: String,
    },
    /// The key made is not a valid partition key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Turns a record into its partition key.
pub trait PartitionKeyStrategy: Send + Sync {
    /// A short name for reports and logs.
    fn name(&self) -> &'static str;

    /// The key for `record`.
    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError>;
}

/// The first 8 hex digits of MD5: enough to spread values, short enough to
/// keep keys readable.
fn short_hash(text: &str) -> [u8; 8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(text.as_bytes());
    let mut out = [b'0'; 8];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.iter()) {
        if let ([high, low], Some(&h), Some(&l)) = (
            pair,
            HEX.get(usize::from(byte >> 4)),
            HEX.get(usize::from(byte & 0x0f)),
        ) {
            *high = h;
            *low = l;
        }
    }
    out
}

/// [`short_hash`] as text.
fn short_hash_text(hash: &[u8; 8]) -> &str {
    std::str::from_utf8(hash).unwrap_or_default()
}

fn required<'r>(
    record: &'r dyn Fields,
    strategy: &'static str,
    field: &str,
) -> Result<Cow<'r, str>, StrategyError> {
    record
        .text(field)
        .ok_or_else(|| StrategyError::MissingField {
            strategy,
            field: field.to_owned(),
        })
}

/// Web logs: the session id when the record has one, else
/// `<md5(ip) prefix>:<hour>` — one client's requests within an hour stay
/// together, and clients spread over shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebLogKey {
    /// The field with the session id (`session_id`).
    pub session_field: String,
    /// The field with the client's IP address (`ip_address`).
    pub ip_field: String,
    /// The field with the RFC 3339 time (`timestamp`); its hour is used.
    pub timestamp_field: String,
}

impl Default for WebLogKey {
    fn default() -> Self {
        WebLogKey {
            session_field: "session_id".into(),
            ip_field: "ip_address".into(),
            timestamp_field: "timestamp".into(),
        }
    }
}

impl PartitionKeyStrategy for WebLogKey {
    fn name(&self) -> &'static str {
        "web"
    }

    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        if let Some(session) = record.text(&self.session_field).filter(|s| !s.is_empty()) {
            return Ok(KeyChoice::key(PartitionKey::new_or_hashed(&session)));
        }
        let hash = short_hash(&required(record, "web", &self.ip_field)?);
        // RFC 3339: `2024-01-15T10` is the hour. Assembled on the stack:
        // the key's one allocation is the key itself.
        let mut time = StackText::new();
        record.write_text(&self.timestamp_field, &mut time);
        let mut key = StackText::new();
        let _ = fmt::Write::write_str(&mut key, short_hash_text(&hash));
        let _ = fmt::Write::write_str(&mut key, ":");
        let _ = fmt::Write::write_str(&mut key, time.first_chars(13));
        Ok(KeyChoice::key(PartitionKey::new_or_hashed(key.as_str())))
    }
}

/// IoT readings: `<device id>:<md5(location) prefix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotKey {
    /// The field with the device id (`device_id`).
    pub device_field: String,
    /// The field with the location (`location`).
    pub location_field: String,
}

impl Default for IotKey {
    fn default() -> Self {
        IotKey {
            device_field: "device_id".into(),
            location_field: "location".into(),
        }
    }
}

impl PartitionKeyStrategy for IotKey {
    fn name(&self) -> &'static str {
        "iot"
    }

    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        let device = required(record, "iot", &self.device_field)?;
        let location = record.text(&self.location_field).unwrap_or_default();
        let key = format!("{device}:{}", short_hash_text(&short_hash(&location)));
        Ok(KeyChoice::key(PartitionKey::new_or_hashed(&key)))
    }
}

/// Database changes by row: `<table>:<primary key values>` — every change
/// of one row goes to one shard, in order. shardline's default for CDC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// The field with the table's name.
    pub table_field: String,
    /// Fields holding the primary key values, in key order.
    pub key_fields: Vec<String>,
}

impl PartitionKeyStrategy for RowKey {
    fn name(&self) -> &'static str {
        "table+pk"
    }

    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        let table = required(record, "table+pk", &self.table_field)?;
        let mut key = table.into_owned();
        for field in &self.key_fields {
            key.push(':');
            key.push_str(&required(record, "table+pk", field)?);
        }
        Ok(KeyChoice::key(PartitionKey::new_or_hashed(&key)))
    }
}

/// Database changes by transaction (opt-in):
/// `<table>:<transaction id>`. Caveats: one row's changes from different
/// transactions can land in different shards and be read out of order, and
/// a large transaction's changes all go to one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionKey {
    /// The field with the table's name.
    pub table_field: String,
    /// The field with the transaction id.
    pub transaction_field: String,
}

impl PartitionKeyStrategy for TransactionKey {
    fn name(&self) -> &'static str {
        "table+txid"
    }

    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        let table = required(record, "table+txid", &self.table_field)?;
        let txid = required(record, "table+txid", &self.transaction_field)?;
        Ok(KeyChoice::key(PartitionKey::new_or_hashed(&format!(
            "{table}:{txid}"
        ))))
    }
}

/// The value of one field, e.g. `user.id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldKey(pub String);

impl PartitionKeyStrategy for FieldKey {
    fn name(&self) -> &'static str {
        "field"
    }

    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        let value = required(record, "field", &self.0)?;
        Ok(KeyChoice::key(PartitionKey::new_or_hashed(&value)))
    }
}

/// The same key for every record (one shard; total order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedKey(pub PartitionKey);

impl PartitionKeyStrategy for FixedKey {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn key(&self, _record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        Ok(KeyChoice::key(self.0.clone()))
    }
}

/// A random key per record: the most even spread, no ordering at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RandomKey;

impl PartitionKeyStrategy for RandomKey {
    fn name(&self) -> &'static str {
        "random"
    }

    fn key(&self, _record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        let value: u64 = rand::random();
        Ok(KeyChoice::key(PartitionKey::new_or_hashed(&format!(
            "{value:016x}"
        ))))
    }
}

/// An explicit hash key from a field (a decimal 128-bit integer), with a
/// fixed partition key: the record goes to the shard whose range holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplicitKey {
    /// The field with the explicit hash key.
    pub hash_key_field: String,
    /// The partition key every record gets (Kinesis still requires one).
    pub partition_key: PartitionKey,
}

impl PartitionKeyStrategy for ExplicitKey {
    fn name(&self) -> &'static str {
        "explicit"
    }

    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        let text = required(record, "explicit", &self.hash_key_field)?;
        Ok(KeyChoice {
            partition_key: self.partition_key.clone(),
            explicit_hash_key: Some(ExplicitHashKey::parse(&text)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn web_strategy_prefers_the_session() {
        let web = WebLogKey::default();
        let with_session = json!({"session_id": "s-42", "ip_address": "10.0.0.1"});
        assert_eq!(
            web.key(&with_session).unwrap().partition_key.as_str(),
            "s-42"
        );
        let without = json!({"ip_address": "10.0.0.1", "timestamp": "2024-01-15T10:30:45+00:00"});
        let key = web.key(&without).unwrap().partition_key;
        // md5("10.0.0.1") starts 190dafab.
        assert_eq!(key.as_str(), "190dafab:2024-01-15T10");
        let later_same_hour =
            json!({"ip_address": "10.0.0.1", "timestamp": "2024-01-15T10:59:00+00:00"});
        assert_eq!(web.key(&later_same_hour).unwrap().partition_key, key);
        assert!(matches!(
            web.key(&json!({})),
            Err(StrategyError::MissingField { .. })
        ));
    }

    #[test]
    fn the_web_keys_hour_is_the_times_first_13_characters_whatever_they_are() {
        let web = WebLogKey::default();
        let key = |time: &str| {
            web.key(&json!({"ip_address": "2001:db8::1", "timestamp": time}))
                .unwrap()
                .partition_key
        };
        // md5("2001:db8::1") starts 1d64d10f.
        assert_eq!(key("2024-01-15").as_str(), "1d64d10f:2024-01-15");
        assert_eq!(
            key("15 janvier à 10:30:45 CET").as_str(),
            "1d64d10f:15 janvier à "
        );
        let long = "x".repeat(200);
        assert_eq!(key(&long).as_str(), "1d64d10f:xxxxxxxxxxxxx");
        assert_eq!(
            web.key(&json!({"ip_address": "2001:db8::1"}))
                .unwrap()
                .partition_key
                .as_str(),
            "1d64d10f:",
            "no time: the hour is empty"
        );
    }

    #[test]
    fn iot_db_field_fixed_explicit() {
        let iot = IotKey::default();
        let reading = json!({"device_id": "sensor-7", "location": "seoul"});
        assert_eq!(
            iot.key(&reading).unwrap().partition_key.as_str(),
            "sensor-7:d793880d"
        );
        let row = RowKey {
            table_field: "table".into(),
            key_fields: vec!["pk.id".into(), "pk.region".into()],
        };
        let change = json!({"table": "public.users", "pk": {"id": 5, "region": "eu"}, "txid": 900});
        assert_eq!(
            row.key(&change).unwrap().partition_key.as_str(),
            "public.users:5:eu"
        );
        let txn = TransactionKey {
            table_field: "table".into(),
            transaction_field: "txid".into(),
        };
        assert_eq!(
            txn.key(&change).unwrap().partition_key.as_str(),
            "public.users:900"
        );
        assert_eq!(
            FieldKey("pk.region".into())
                .key(&change)
                .unwrap()
                .partition_key
                .as_str(),
            "eu"
        );
        let fixed = FixedKey(PartitionKey::new("all").unwrap());
        assert_eq!(fixed.key(&change).unwrap().partition_key.as_str(), "all");
        let explicit = ExplicitKey {
            hash_key_field: "h".into(),
            partition_key: PartitionKey::new("x").unwrap(),
        };
        assert_eq!(
            explicit.key(&json!({"h": "42"})).unwrap().explicit_hash_key,
            Some(ExplicitHashKey(42))
        );
        assert!(explicit.key(&json!({"h": "-1"})).is_err());
    }

    #[test]
    fn closures_are_field_sources() {
        let lookup = |path: &str| (path == "device_id").then(|| "d1".to_owned());
        let key = IotKey::default().key(&lookup).unwrap();
        assert!(key.partition_key.as_str().starts_with("d1:"));
    }
}
