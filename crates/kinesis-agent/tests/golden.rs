//! Every record of `fixtures/kinesis-agent/processing.json` (inputs and
//! outputs from the agent's documentation and test suite) comes out of
//! shardline byte for byte.

use shardline_kinesis_agent::{NoMatch, Processing};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One case: the options as written (their key order kept), a line, and
/// the agent's record.
#[derive(serde::Deserialize)]
struct Case {
    name: String,
    options: Box<serde_json::value::RawValue>,
    input: String,
    expected: String,
}

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[test]
fn every_documented_record_comes_out_byte_for_byte() -> TestResult {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/kinesis-agent/processing.json"
    );
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    assert!(fixture.cases.len() >= 19);
    for case in &fixture.cases {
        let name = &case.name;
        let processing =
            Processing::from_json(case.options.get()).map_err(|e| format!("{name}: {e}"))?;
        let output = processing
            .convert(case.input.as_bytes())
            .map_err(|e| format!("{name}: {e}"))?;
        assert_eq!(String::from_utf8(output)?, case.expected, "{name}");
    }
    Ok(())
}

#[test]
fn a_line_the_agent_would_drop_says_why() -> TestResult {
    let processing =
        Processing::from_json(r#"[{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}]"#)?;
    let cut_short = br#"123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] "GET /java/javaResources.html HTTP/1.0" 200"#;
    assert_eq!(
        processing.convert(cut_short),
        Err(NoMatch {
            format: "COMMONAPACHELOG"
        })
    );
    Ok(())
}

#[test]
fn options_run_in_order() -> TestResult {
    // A multi-line record made one line, then split as CSV.
    let processing = Processing::from_json(
        r#"[{"optionName": "SINGLELINE"},
            {"optionName": "CSVTOJSON", "customFieldNames": ["a", "b"], "jsonFormat": "PRETTYPRINT"}]"#,
    )?;
    let output = processing.convert(b"  x,\n   y \n")?;
    assert_eq!(
        String::from_utf8(output)?,
        "{\n  \"a\" : \"x\",\n  \"b\" : \"y\"\n}\n"
    );
    Ok(())
}

#[test]
fn a_configuration_that_cannot_work_is_refused_with_its_reason() {
    let refused = |options: &str| match Processing::from_json(options) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    assert!(
        refused(r#"[{"optionName": "LOGTOJSON", "logFormat": "SYSLOG", "matchPattern": "(a)"}]"#)
            .contains("matchPattern needs customFieldNames")
    );
    assert!(
        refused(
            r#"[{"optionName": "LOGTOJSON", "logFormat": "SYSLOG", "customFieldNames": ["a"]}]"#
        )
        .contains("SYSLOG has 5 fields")
    );
    assert!(refused(r#"[{"optionName": "LOGTOJSON", "logFormat": "SYSLOG", "matchPattern": "(a)(b)", "customFieldNames": ["a"]}]"#)
        .contains("2 groups"));
    assert!(
        refused(r#"[{"optionName": "CSVTOJSON", "customFieldNames": ["a"], "delimiter": "("}]"#)
            .contains("delimiter `(`")
    );
    assert!(
        refused(r#"[{"optionName": "CSVTOJSON", "customFieldNames": ["a"], "delimeter": ","}]"#)
            .contains("unknown field `delimeter`")
    );
    assert!(
        refused(r#"[{"optionName": "LOGTOJSON", "logFormat": "RFC5424SYSLOG"}]"#)
            .contains("RFC5424SYSLOG")
    );
    assert!(refused(r#"[{"optionName": "UPPERCASE"}]"#).contains("UPPERCASE"));
}

#[test]
fn add_metadata_stamps_the_time_when_asked() -> TestResult {
    let processing = Processing::from_json(
        r#"[{"optionName": "ADDMETADATA", "timestamp": "true", "metadata": {"host": "web-1"}}]"#,
    )?;
    let output = String::from_utf8(processing.convert(b"line\n")?)?;
    let value: serde_json::Value = serde_json::from_str(&output)?;
    let ts = value["ts"].as_str().ok_or("no ts")?;
    assert_eq!(ts.len(), "2026-12-07T10:00:00.123Z".len(), "{ts}");
    assert!(
        output.starts_with("{\"ts\":\"")
            && output.ends_with("\"metadata\":{\"host\":\"web-1\"},\"data\":\"line\"}\n"),
        "{output}"
    );
    Ok(())
}
