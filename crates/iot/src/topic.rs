//! Topic segments as fields: an IoT Core rule's `topic(2) AS location`,
//! written as a template such as `sensors/<location>/<metric>`.

use std::fmt;

/// The template of a temperature rule (`FROM 'sensors/+/temperature'`,
/// `topic(2) AS location`), with the metric named too.
pub const DEFAULT_TOPIC_TEMPLATE: &str = "sensors/<location>/<metric>";

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A level of the template is empty (the template).
    #[error("topic template {0:?}: a level is empty")]
    EmptyLevel(String),
    /// A level is neither a word, `<name>`, `+` nor a final `#`.
    #[error("topic template {template:?}: {level:?} is neither a word, <name>, + nor a final #")]
    BadLevel {
        /// The template as written.
        template: String,
        /// The level that is wrong.
        level: String,
    },
    /// Two levels name the same field.
    #[error("topic template {template:?}: the field {name:?} is named twice")]
    Repeated {
        /// The template as written.
        template: String,
        /// The field named twice.
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Must be this text.
    Exact(String),
    /// Any one level, taken as the named field.
    Field(String),
    /// Any one level (`+`).
    Any,
    /// Any number of levels, at the end (`#`).
    Rest,
}

/// Maps the levels of a topic to fields: `sensors/<location>/<metric>`
/// on `sensors/factory-a/temperature` gives `location = factory-a` and
/// `metric = temperature`. A topic the template does not fit gives no
/// field.
///
/// ```
/// use shardline_iot::TopicTemplate;
///
/// let template = TopicTemplate::parse("sensors/<location>/+")?;
/// assert_eq!(
///     template.fields("sensors/factory-a/temperature"),
///     Some(vec![("location", "factory-a")])
/// );
/// assert_eq!(template.fields("other/factory-a/temperature"), None);
/// # Ok::<(), shardline_iot::TemplateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    levels: Vec<Level>,
}

impl Default for TopicTemplate {
    fn default() -> Self {
        TopicTemplate {
            text: DEFAULT_TOPIC_TEMPLATE.to_owned(),
            levels: vec![
                Level::Exact("sensors".into()),
                Level::Field("location".into()),
                Level::Field("metric".into()),
            ],
        }
    }
}

impl TopicTemplate {
    /// Parses a template: levels separated by `/`, each a word that must
    /// match, `<name>` (a field), `+` (any level) or, last, `#` (any rest).
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut levels = Vec::new();
        let parts: Vec<&str> = template.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let bad = || TemplateError::BadLevel {
                template: template.to_owned(),
                level: (*part).to_owned(),
            };
            let level = match *part {
                "" => return Err(TemplateError::EmptyLevel(template.to_owned())),
                "+" => Level::Any,
                "#" if i + 1 == parts.len() => Level::Rest,
                level if level.starts_with('<') => {
                    let name = level
                        .strip_prefix('<')
                        .and_then(|n| n.strip_suffix('>'))
                        .filter(|n| !n.is_empty())
                        .ok_or_else(bad)?;
                    if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        return Err(bad());
                    }
                    if levels.contains(&Level::Field(name.to_owned())) {
                        return Err(TemplateError::Repeated {
                            template: template.to_owned(),
                            name: name.to_owned(),
                        });
                    }
                    Level::Field(name.to_owned())
                }
                word if !word.contains(['+', '#', '<', '>']) => Level::Exact(word.to_owned()),
                _ => return Err(bad()),
            };
            levels.push(level);
        }
        Ok(TopicTemplate {
            text: template.to_owned(),
            levels,
        })
    }

    /// The fields of `topic`, in template order, or `None` when the
    /// template does not fit it.
    pub fn fields<'t>(&self, topic: &'t str) -> Option<Vec<(&str, &'t str)>> {
        let mut fields = Vec::new();
        let mut parts = topic.split('/');
        for level in &self.levels {
            match level {
                Level::Rest => return Some(fields),
                Level::Any => {
                    parts.next()?;
                }
                Level::Exact(word) => {
                    if parts.next()? != word {
                        return None;
                    }
                }
                Level::Field(name) => fields.push((name.as_str(), parts.next()?)),
            }
        }
        parts.next().is_none().then_some(fields)
    }

    /// The names of the fields, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.levels.iter().filter_map(|level| match level {
            Level::Field(name) => Some(name.as_str()),
            _ => None,
        })
    }
}

impl fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_temperature_rules() {
        let template = TopicTemplate::default();
        assert_eq!(
            template,
            TopicTemplate::parse(DEFAULT_TOPIC_TEMPLATE).unwrap()
        );
        assert_eq!(
            template.fields("sensors/factory-a/temperature"),
            Some(vec![("location", "factory-a"), ("metric", "temperature")])
        );
        assert_eq!(template.fields("sensors/factory-a"), None);
        assert_eq!(template.fields("sensors/a/b/c"), None);
        assert_eq!(template.fields("devices/a/b"), None);
        assert_eq!(template.names().collect::<Vec<_>>(), ["location", "metric"]);
    }

    #[test]
    fn wildcards_and_empty_levels() {
        let template = TopicTemplate::parse("+/<site>/#").unwrap();
        assert_eq!(template.fields("x/s1"), Some(vec![("site", "s1")]));
        assert_eq!(template.fields("x/s1/a/b"), Some(vec![("site", "s1")]));
        // MQTT topics may have empty levels; they are values like others.
        assert_eq!(template.fields("x//a"), Some(vec![("site", "")]));
    }

    #[test]
    fn bad_templates() {
        for bad in ["", "a//b", "a/#/b", "a/<>/b", "a/<x y>", "a/b+", "<a>/<a>"] {
            assert!(TopicTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
