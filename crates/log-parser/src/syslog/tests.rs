use super::*;

fn json(line: &str) -> serde_json::Value {
    let record = SyslogRecord::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    serde_json::to_value(&record).unwrap()
}

#[test]
fn rfc5424_examples_of_the_rfc() {
    let value = json(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
    );
    assert_eq!(
        value,
        serde_json::json!({
            "timestamp": "2003-10-11T22:14:15.003+00:00",
            "hostname": "mymachine.example.com", "app_name": "su", "procid": null,
            "msgid": "ID47", "facility": "auth", "severity": "crit",
            "structured_data": null,
            "message": "'su root' failed for lonvick on /dev/pts/8",
            "syslog_format": "rfc5424", "log_type": "syslog"
        })
    );
    let value = json(
        r#"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."#,
    );
    assert_eq!(value["timestamp"], "2003-08-24T05:14:15.000003-07:00");
    assert_eq!(value["facility"], "local4");
    assert_eq!(value["severity"], "notice");
    assert_eq!(value["procid"], "8710");
    assert_eq!(value["msgid"], serde_json::Value::Null);
    assert_eq!(value["message"], "%% It's time to make the do-nuts.");
    // Two structured-data elements, an escaped quote and bracket, no message.
    let value = json(
        r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high" note="say \"hi\" \]"]"#,
    );
    assert_eq!(
        value["structured_data"],
        serde_json::json!({
            "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
            "examplePriority@32473": {"class": "high", "note": r#"say "hi" ]"#}
        })
    );
    assert_eq!(value["message"], "");
    // Nothing but nil values.
    let value = json("<14>1 - - - - - -");
    assert_eq!(value["timestamp"], serde_json::Value::Null);
    assert_eq!(value["hostname"], serde_json::Value::Null);
    assert_eq!(value["severity"], "info");
}

#[test]
fn rfc3164_lines_as_daemons_and_files_write_them() {
    let value =
        json("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
    assert_eq!(value["syslog_format"], "rfc3164");
    assert_eq!(value["hostname"], "mymachine");
    assert_eq!(value["app_name"], "su");
    assert_eq!(value["procid"], serde_json::Value::Null);
    assert_eq!(value["facility"], "auth");
    assert_eq!(
        value["message"],
        "'su root' failed for lonvick on /dev/pts/8"
    );
    assert!(
        value["timestamp"]
            .as_str()
            .unwrap()
            .ends_with("-10-11T22:14:15+00:00")
    );
    // /var/log/auth.log: no PRI, a process id, a space-padded day.
    let value = json(
        "Jan  5 03:04:05 web-1 sshd[1234]: Accepted publickey for deploy from 10.0.0.5 port 52144 ssh2",
    );
    assert_eq!(value["app_name"], "sshd");
    assert_eq!(value["procid"], "1234");
    assert_eq!(value["facility"], serde_json::Value::Null);
    assert_eq!(
        value["message"],
        "Accepted publickey for deploy from 10.0.0.5 port 52144 ssh2"
    );
    assert!(
        value["timestamp"]
            .as_str()
            .unwrap()
            .ends_with("-01-05T03:04:05+00:00")
    );
    // rsyslog's file format: an RFC 3339 time.
    let value = json(
        "2024-01-15T10:30:45.123456+09:00 db-2 postgres[88]: [3-1] LOG:  checkpoint starting: time",
    );
    assert_eq!(value["timestamp"], "2024-01-15T10:30:45.123456+09:00");
    assert_eq!(value["app_name"], "postgres");
    assert_eq!(value["message"], "[3-1] LOG:  checkpoint starting: time");
    // A kernel line: the tag is `kernel`; a message without a tag is all message.
    let value = json("Jan 15 10:30:45 host kernel: [12345.678] eth0: link up");
    assert_eq!(value["app_name"], "kernel");
    let value = json("Jan 15 10:30:45 host -- MARK --");
    assert_eq!(value["app_name"], serde_json::Value::Null);
    assert_eq!(value["message"], "-- MARK --");
}

#[test]
fn a_month_ahead_of_this_one_is_from_last_year() {
    let today = now();
    let time = |line: &str| SyslogRecord::parse(line).unwrap().timestamp().unwrap();
    let this_month = format!(
        "{} 1 00:00:00 h a: b",
        [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
        ][usize::from(today.month) - 1]
    );
    assert_eq!(time(&this_month).year, today.year);
    if today.month < 12 {
        assert_eq!(time("Dec 31 23:59:59 h a: b").year, today.year - 1);
    }
}

#[test]
fn what_is_not_syslog_says_where() {
    let cases = [
        ("<999>1 - - - - - -", 1, "a priority (0-191)"),
        ("<34>1 2003-10-11 22:14:15Z h a - - - m", 16, "`T`"),
        ("<34>1 - h a p m [id x=\"1] msg", 23, "a closing `\"`"),
        ("<34>1 - h a p m [id x=1] msg", 22, "`\"`"),
        (
            "<34>1 - h a p m oops",
            16,
            "structured data (`[id …]` or `-`)",
        ),
        ("Foo 15 10:30:45 host a: b", 0, "a month name (Jan..Dec)"),
        ("Jan 45 10:30:45 host a: b", 4, "a day of the month (1-31)"),
        ("hello world", 0, "a month name (Jan..Dec)"),
    ];
    for (line, offset, expected) in cases {
        let e = SyslogRecord::parse(line).unwrap_err();
        assert_eq!(
            (e.offset, e.expected.as_ref()),
            (offset, expected),
            "{line}"
        );
    }
}
