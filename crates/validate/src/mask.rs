//! Field masking, opt-in per field, applied before keying and sending (so a
//! masked value never reaches a partition key or the stream).

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What to do with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskRule {
    /// Remove the field.
    Drop,
    /// Replace the value with HMAC-SHA256(key, value), hex, first 128 bits:
    /// the same input gives the same output (joins and counts still work),
    /// and without the key it cannot be reversed or brute-forced from a
    /// dictionary.
    KeyedHash,
    /// Keep an IPv4 address's /24 and an IPv6 address's /48 network, zero
    /// the rest. A value that is not an IP address becomes `null`.
    TruncateIp,
    /// Replace an e-mail address's local part with `***`. A value that is
    /// not an e-mail address becomes `null`.
    MaskEmail,
}

/// Masking rules by field path (dotted, e.g. `user.email`).
#[derive(Clone)]
pub struct Masker {
    key: Vec<u8>,
    rules: Vec<(String, MaskRule)>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Masker")
            .field("rules", &self.rules)
            .finish()
    }
}

impl Masker {
    /// A masker with the secret for [`MaskRule::KeyedHash`].
    pub fn new(key: Vec<u8>) -> Self {
        Masker {
            key,
            rules: Vec::new(),
        }
    }

    /// Adds a rule for the field at `path`.
    pub fn rule(mut self, path: &str, rule: MaskRule) -> Self {
        self.rules.push((path.to_owned(), rule));
        self
    }

    /// Whether it masks nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule to `record`; absent fields are left alone.
    pub fn apply(&self, record: &mut Value) {
        for (path, rule) in &self.rules {
            let (parent_path, field) = match path.rsplit_once('.') {
                Some((parent, field)) => (Some(parent), field),
                None => (None, path.as_str()),
            };
            let parent = match parent_path {
                Some(parent) => parent
                    .split('.')
                    .try_fold(&mut *record, |value, part| value.get_mut(part)),
                None => Some(&mut *record),
            };
            let Some(Value::Object(object)) = parent else {
                continue;
            };
            match rule {
                MaskRule::Drop => {
                    object.remove(field);
                }
                other => {
                    if let Some(value) = object.get_mut(field) {
                        *value = self.masked(*other, value);
                    }
                }
            }
        }
    }

    fn masked(&self, rule: MaskRule, value: &Value) -> Value {
        let text = match value {
            Value::Null => return Value::Null,
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        match rule {
            MaskRule::Drop => Value::Null,
            MaskRule::KeyedHash => Value::String(self.keyed_hash(&text)),
            MaskRule::TruncateIp => truncate_ip(&text).map_or(Value::Null, Value::String),
            MaskRule::MaskEmail => mask_email(&text).map_or(Value::Null, Value::String),
        }
    }

    fn keyed_hash(&self, text: &str) -> String {
        // HMAC takes keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(text.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `203.0.113.77` → `203.0.113.0`; `2001:db8:85a3:8d3:1319:8a2e:370:7348`
/// → `2001:db8:85a3::`.
fn truncate_ip(text: &str) -> Option<String> {
    match text.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(std::net::Ipv4Addr::new(a, b, c, 0).to_string())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 80) - 1);
            Some(std::net::Ipv6Addr::from(bits).to_string())
        }
    }
}

/// `alice@example.com` → `***@example.com`.
fn mask_email(text: &str) -> Option<String> {
    let (local, domain) = text.trim().rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains(char::is_whitespace))
        .then(|| format!("***@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ip_truncation_table() {
        let cases = [
            ("203.0.113.77", Some("203.0.113.0")),
            ("10.0.0.1", Some("10.0.0.0")),
            (
                "2001:db8:85a3:8d3:1319:8a2e:370:7348",
                Some("2001:db8:85a3::"),
            ),
            ("::1", Some("::")),
            ("not an ip", None),
            ("203.0.113", None),
        ];
        for (input, want) in cases {
            assert_eq!(truncate_ip(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn email_masking_table() {
        let cases = [
            ("alice@example.com", Some("***@example.com")),
            ("a.b+c@sub.example.org", Some("***@sub.example.org")),
            ("\"odd@local\"@example.com", Some("***@example.com")),
            ("@example.com", None),
            ("no-at-sign", None),
        ];
        for (input, want) in cases {
            assert_eq!(mask_email(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn rules_apply_to_nested_fields_and_leave_absent_ones() {
        let masker = Masker::new(b"k1".to_vec())
            .rule("user.email", MaskRule::MaskEmail)
            .rule("user.id", MaskRule::KeyedHash)
            .rule("password", MaskRule::Drop)
            .rule("ip_address", MaskRule::TruncateIp)
            .rule("absent.field", MaskRule::Drop);
        let mut record = json!({
            "user": {"email": "alice@example.com", "id": 12345},
            "password": "hunter2",
            "ip_address": "bogus",
            "kept": 1
        });
        masker.apply(&mut record);
        let hashed = record["user"]["id"].as_str().unwrap().to_owned();
        assert_eq!(hashed.len(), 32);
        assert_eq!(
            record,
            json!({"user": {"email": "***@example.com", "id": hashed}, "ip_address": null, "kept": 1})
        );
        // Same key, same input: same hash; another key: another hash.
        let mut again = json!({"user": {"id": 12345}});
        masker.apply(&mut again);
        assert_eq!(again["user"]["id"], json!(hashed));
        let other = Masker::new(b"k2".to_vec()).rule("user.id", MaskRule::KeyedHash);
        let mut third = json!({"user": {"id": 12345}});
        other.apply(&mut third);
        assert_ne!(third["user"]["id"], json!(hashed));
        assert!(!format!("{masker:?}").contains("k1"));
    }
}
