//! Key strategies by name, as flags and config files give them.

use std::fmt;
use std::str::FromStr;

use crate::strategy::{FieldKey, FixedKey, IotKey, PartitionKeyStrategy, RandomKey, WebLogKey};
use crate::{KeyError, PartitionKey};

/// A key strategy named in a flag or a config file:
///
/// | spec | strategy |
/// |---|---|
/// | `web` | [`WebLogKey`]: the client address's hash prefix and the hour |
/// | `iot` | [`IotKey`]: device and location |
/// | `device` | the `device_id` field |
/// | `field:<path>` | a field of the record, by dotted path |
/// | `fixed:<key>` | one key for every record |
/// | `random` | a fresh random key per record |
///
/// ```
/// use shardline_partition_key::KeySpec;
///
/// let spec: KeySpec = "field:request_id".parse()?;
/// assert_eq!(spec, KeySpec::Field("request_id".to_owned()));
/// assert_eq!(spec.to_string(), "field:request_id");
/// assert_eq!(spec.strategy().name(), "field");
/// assert!("fixed:".parse::<KeySpec>().is_err());
/// assert!("hash".parse::<KeySpec>().is_err());
/// # Ok::<(), shardline_partition_key::KeySpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    /// Web logs: session, else client IP with the hour ([`crate::WebLogKey`]).
    Web,
    /// Sensor readings: device and location ([`crate::IotKey`]).
    Iot,
    /// The record's `device_id`.
    Device,
    /// A field of the record, by path (`field:user.id`).
    Field(String),
    /// One key for every record (`fixed:<key>`).
    Fixed(PartitionKey),
    /// A random key per record: the most even spread, no order.
    Random,
}

/// A key spec that names no strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySpecError {
    #[error(
        "unknown key strategy {0:?}: use web, iot, device, field:<path>, fixed:<key> or random"
    )]
    /// The spec names no strategy.
    Unknown(String),
    /// A `fixed:` key that is not a valid partition key.
    #[error("key strategy {spec:?}: {source}")]
    Key {
        /// The spec as written.
        spec: String,
        #[source]
        /// Why the key is not valid.
        source: KeyError,
    },
}

/// The field [`KeySpec::Device`] reads.
const DEVICE_FIELD: &str = "device_id";

impl KeySpec {
    /// The strategy the spec names.
    pub fn strategy(&self) -> Box<dyn PartitionKeyStrategy> {
        match self {
            KeySpec::Web => Box::new(WebLogKey::default()),
            KeySpec::Iot => Box::new(IotKey::default()),
            KeySpec::Device => Box::new(FieldKey(DEVICE_FIELD.to_owned())),
            KeySpec::Field(path) => Box::new(FieldKey(path.clone())),
            KeySpec::Fixed(key) => Box::new(FixedKey(key.clone())),
            KeySpec::Random => Box::new(RandomKey),
        }
    }
}

impl FromStr for KeySpec {
    type Err = KeySpecError;

    fn from_str(spec: &str) -> Result<Self, KeySpecError> {
        Ok(match spec.split_once(':') {
            None if spec == "web" => KeySpec::Web,
            None if spec == "iot" => KeySpec::Iot,
            None if spec == "device" => KeySpec::Device,
            None if spec == "random" => KeySpec::Random,
            Some(("field", path)) if !path.is_empty() => KeySpec::Field(path.to_owned()),
            Some(("fixed", key)) => {
                KeySpec::Fixed(PartitionKey::new(key).map_err(|source| KeySpecError::Key {
                    spec: spec.to_owned(),
                    source,
                })?)
            }
            _ => return Err(KeySpecError::Unknown(spec.to_owned())),
        })
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Web => f.write_str("web"),
            KeySpec::Iot => f.write_str("iot"),
            KeySpec::Device => f.write_str("device"),
            KeySpec::Field(path) => write!(f, "field:{path}"),
            KeySpec::Fixed(key) => write!(f, "fixed:{key}"),
            KeySpec::Random => f.write_str("random"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_round_trips_and_bad_ones_say_what_is_accepted() {
        for text in [
            "web",
            "iot",
            "device",
            "random",
            "field:a.b",
            "fixed:orders",
        ] {
            let spec: KeySpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        let unknown = "hash".parse::<KeySpec>().unwrap_err().to_string();
        assert!(unknown.contains("field:<path>"), "{unknown}");
        assert!(matches!(
            "field:".parse::<KeySpec>(),
            Err(KeySpecError::Unknown(_))
        ));
        assert!(matches!(
            "fixed:".parse::<KeySpec>(),
            Err(KeySpecError::Key { .. })
        ));
        assert_eq!(
            KeySpec::Device.strategy().name(),
            KeySpec::Field("device_id".into()).strategy().name()
        );
    }
}
