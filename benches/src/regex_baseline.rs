//! The straightforward parser: one `regex` per format, owned strings, and a
//! `serde` struct — what Kinesis Agent's COMBINEDAPACHELOG, Fluent Bit's
//! regex parsers and Vector's `parse_apache_log` amount to. It writes the
//! same JSON as `shardline-log-parser` for the benchmark corpora (the bench
//! checks that before measuring).

use regex::Regex;
use serde::Serialize;

/// An access record with owned fields, in the schema's key order.
#[derive(Debug, Serialize)]
pub struct Access {
    pub timestamp: String,
    pub ip_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_user: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub protocol: Option<String>,
    pub status_code: u16,
    pub response_size: Option<u64>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// Outer `None`: the format has no such field; inner: `-` or a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_x_forwarded_for: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_time: Option<f64>,
    pub log_type: &'static str,
}

/// A regex parser for one access format.
#[derive(Debug)]
pub struct RegexParser {
    regex: Regex,
    log_type: &'static str,
    unescape: fn(&str) -> String,
    iso_time: bool,
}

const QUOTED: &str = r#""((?:[^"\\]|\\.)*)""#;

impl RegexParser {
    /// Apache combined.
    pub fn apache_combined() -> Result<Self, regex::Error> {
        Ok(RegexParser {
            regex: Regex::new(&format!(
                r#"^(\S+) \S+ (\S+) \[([^\]]+)\] {QUOTED} (\d{{3}}) (\S+) {QUOTED} {QUOTED}$"#
            ))?,
            log_type: "apache_access",
            unescape: apache_unescape,
            iso_time: false,
        })
    }

    /// Nginx main (combined + X-Forwarded-For).
    pub fn nginx_main() -> Result<Self, regex::Error> {
        Ok(RegexParser {
            regex: Regex::new(&format!(
                r#"^(\S+) - (\S+) \[([^\]]+)\] {QUOTED} (\d{{3}}) (\S+) {QUOTED} {QUOTED} {QUOTED}$"#
            ))?,
            log_type: "nginx_access",
            unescape: nginx_unescape,
            iso_time: false,
        })
    }

    /// The corpus's custom Nginx format (ISO time, request time).
    pub fn nginx_custom() -> Result<Self, regex::Error> {
        Ok(RegexParser {
            regex: Regex::new(&format!(
                r#"^(\S+) - (\S+) \[([^\]]+)\] {QUOTED} (\d{{3}}) (\S+) (\S+) {QUOTED} {QUOTED}$"#
            ))?,
            log_type: "nginx_access",
            unescape: nginx_unescape,
            iso_time: true,
        })
    }

    /// Parses a line into an owned record.
    pub fn parse(&self, line: &str) -> Option<Access> {
        let caps = self.regex.captures(line)?;
        let get = |i: usize| caps.get(i).map_or("", |m| m.as_str());
        let dash = |s: &str| (s != "-").then(|| (self.unescape)(s));
        let request = (self.unescape)(get(4));
        let mut parts = request.splitn(3, ' ');
        let (method, path, protocol) = (parts.next(), parts.next(), parts.next());
        let timestamp = if self.iso_time {
            get(3).to_owned()
        } else {
            clf_to_rfc3339(get(3))?
        };
        let mut access = Access {
            timestamp,
            ip_address: get(1).to_owned(),
            remote_user: dash(get(2)),
            method: method.map(str::to_owned),
            path: path.map(str::to_owned),
            protocol: protocol.map(str::to_owned),
            status_code: get(5).parse().ok()?,
            response_size: get(6).parse().ok(),
            referer: None,
            user_agent: None,
            http_x_forwarded_for: None,
            request_time: None,
            log_type: self.log_type,
        };
        if self.iso_time {
            access.request_time = get(7).parse().ok();
            access.referer = dash(get(8));
            access.user_agent = dash(get(9));
        } else {
            access.referer = dash(get(7));
            access.user_agent = dash(get(8));
            if caps.len() > 9 {
                access.http_x_forwarded_for = Some(dash(get(9)));
            }
        }
        Some(access)
    }

    /// Parses a line and appends its JSON to `buf`.
    pub fn parse_to_json(&self, line: &str, buf: &mut Vec<u8>) -> bool {
        match self.parse(line) {
            Some(access) => serde_json::to_writer(buf, &access).is_ok(),
            None => false,
        }
    }
}

/// `15/Jan/2024:10:30:45 +0000` → `2024-01-15T10:30:45+00:00`.
fn clf_to_rfc3339(clf: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = clf.get(0..2)?;
    let month = MONTHS.iter().position(|m| Some(*m) == clf.get(3..6))? + 1;
    let year = clf.get(7..11)?;
    let time = clf.get(12..20)?;
    let offset = clf.get(21..26)?;
    Some(format!(
        "{year}-{month:02}-{day}T{time}{}:{}",
        offset.get(0..3)?,
        offset.get(3..5)?
    ))
}

fn apache_unescape(s: &str) -> String {
    s.replace("\\\"", "\"").replace("\\\\", "\\")
}

fn nginx_unescape(s: &str) -> String {
    s.replace("\\x22", "\"").replace("\\x5C", "\\")
}

/// JSON application logs the straightforward way: a `serde_json::Value`
/// object, recognised keys written first, `log_type` added.
pub fn application_to_json(line: &str, buf: &mut Vec<u8>) -> bool {
    const RECOGNISED: [&str; 6] = [
        "timestamp",
        "level",
        "logger",
        "message",
        "user_id",
        "request_id",
    ];
    let Ok(serde_json::Value::Object(mut input)) = serde_json::from_str(line) else {
        return false;
    };
    let mut out = Vec::with_capacity(input.len() + 7);
    for key in RECOGNISED {
        let value = input.remove(key).unwrap_or(serde_json::Value::Null);
        out.push((key.to_owned(), value));
    }
    out.extend(input);
    out.push((
        "log_type".to_owned(),
        serde_json::Value::from("application"),
    ));
    let ordered = Ordered(out);
    serde_json::to_writer(buf, &ordered).is_ok()
}

/// Key-value pairs serialized as a JSON object in their order.
struct Ordered(Vec<(String, serde_json::Value)>);

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
