//! The examples, run as a user runs them: the log and CDC ones on the
//! fixtures, the Kinesis ones against kinesalite on 127.0.0.1.
//!
//! `cargo test -p shardline` builds the examples before it runs this.

use std::collections::BTreeSet;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shardline_harness::{
    DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, Kinesalite, REGION, streams, unique_name,
};

type TestResult = Result<(), Box<dyn Error>>;

/// `target/debug/examples/NAME`, beside this test's own `deps` directory.
fn example(name: &str) -> Result<PathBuf, Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("no target directory")?;
    let path = dir.join("examples").join(name);
    if !path.exists() {
        return Err(format!(
            "{} is not built: run `cargo test -p shardline`, which builds the examples",
            path.display()
        )
        .into());
    }
    Ok(path)
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// An example's command with the AWS settings of a program pointed at
/// kinesalite, and nothing from the machine's own AWS configuration.
fn aws_example(name: &str, endpoint: &str) -> Result<Command, Box<dyn Error>> {
    let mut command = Command::new(example(name)?);
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", DUMMY_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(command)
}

/// Kills the child if a test fails before it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn parse_logs_prints_each_line_as_the_documented_json() -> TestResult {
    let output = Command::new(example("parse_logs")?)
        .arg("apache")
        .arg(fixtures().join("logs/apache_access.log"))
        .output()?;
    assert!(output.status.success(), "{output:?}");
    let expected = std::fs::read_to_string(fixtures().join("logs/apache_access.expected.ndjson"))?;
    assert_eq!(String::from_utf8(output.stdout)?, expected);
    Ok(())
}

#[test]
fn parse_logs_reports_a_bad_line_and_goes_on() -> TestResult {
    let dir = tempfile_dir()?;
    let log = dir.join("mixed.log");
    std::fs::write(
        &log,
        "10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl\"\n\
         not an access log line\n\
         10.0.0.2 - - [15/Jan/2024:10:30:46 +0000] \"GET /a HTTP/1.1\" 404 0 \"-\" \"curl\"\n",
    )?;
    let output = Command::new(example("parse_logs")?)
        .arg("apache")
        .arg(&log)
        .output()?;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout)?;
    let ips: Vec<_> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).map(|v| v["ip_address"].clone()))
        .collect::<Result<_, _>>()?;
    assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("mixed.log:2: "), "{stderr}");
    assert!(stderr.contains("1 line(s) did not parse"), "{stderr}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, Box<dyn Error>> {
    let dir = std::env::temp_dir().join(unique_name("shardline_examples"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[test]
fn decode_cdc_prints_each_change_with_its_key_and_kind() -> TestResult {
    let output = Command::new(example("decode_cdc")?)
        .arg("debezium")
        .arg(fixtures().join("cdc/debezium.ndjson"))
        .arg("inventory.customers=id")
        .output()?;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout)?;
    let first: Vec<_> = stdout.lines().take(3).collect();
    // The fixture's first three lines: Sally inserted, her email changed,
    // her row deleted.
    assert_eq!(
        first,
        [
            "INSERT inventory.customers id=1001 (new_record)",
            "UPDATE inventory.customers id=1001 (general_update)",
            "DELETE inventory.customers id=1001 (record_deleted)",
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_answers_each_order_and_stores_it_once_through_a_graceful_stop() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name("example_service");
    let client = kinesalite.kinesis_client();
    streams::create_stream(&client, &stream, 2).await?;

    let mut child = Running(
        aws_example("service", &kinesalite.endpoint())?
            .env("STREAM", &stream)
            .env("LISTEN", "127.0.0.1:0")
            .spawn()?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut stdout = BufReader::new(stdout).lines();
    let first = stdout.next().ok_or("the service printed nothing")??;
    let address = first
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("not the listening line: {first}"))?
        .to_owned();

    const ORDERS: usize = 50;
    let (answers, stored) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let mut socket = std::net::TcpStream::connect(&address).map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut orders = String::new();
        for n in 0..ORDERS {
            orders.push_str(&format!("{{\"customer\":\"c-{}\",\"order\":{n}}}\n", n % 5));
        }
        orders.push_str("not json\n");
        socket
            .write_all(orders.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut answers = Vec::new();
        let mut reader = BufReader::new(socket.try_clone().map_err(|e| e.to_string())?);
        for _ in 0..=ORDERS {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            answers.push(line.trim_end().to_owned());
        }
        // The connection stays open: the stop must not wait for the client.
        Ok((answers, socket))
    })
    .await??;
    for answer in answers.iter().take(ORDERS) {
        assert!(answer.starts_with("stored shardId-"), "{answer}");
    }
    let last = answers.last().ok_or("no answers")?;
    assert!(last.starts_with("rejected not JSON"), "{last}");

    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status()?;
    assert!(killed.success());
    let status = child.0.wait()?;
    assert!(status.success(), "{status}");
    let rest: Vec<String> = stdout.collect::<Result<_, _>>()?;
    assert_eq!(
        rest,
        [format!("stopped: {ORDERS} orders stored, 0 not stored")]
    );
    drop(stored);

    let records = streams::read_at_least(&client, &stream, ORDERS, Duration::from_secs(20)).await?;
    let orders: BTreeSet<_> = records
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.data).map(|v| v["order"].as_u64()))
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), ORDERS, "each order stored once");
    assert_eq!(orders.len(), ORDERS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_keeps_what_a_missing_stream_refused_until_it_exists() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name("example_outbox");
    let client = kinesalite.kinesis_client();

    let mut child = Running(
        aws_example("outbox", &kinesalite.endpoint())?
            .env("STREAM", &stream)
            .spawn()?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut stdout = BufReader::new(stdout).lines();
    let first = stdout.next().ok_or("the outbox printed nothing")??;
    assert!(
        first.starts_with("20 orders in the outbox: PutRecords: ResourceNotFoundException: "),
        "{first}"
    );

    // The stream appears; the next round delivers the outbox.
    streams::create_stream(&client, &stream, 1).await?;
    let status = child.0.wait()?;
    assert!(status.success(), "{status}");
    let last = stdout.next().ok_or("no last line")??;
    assert!(last.starts_with("all 20 orders delivered after "), "{last}");

    let records = streams::read_at_least(&client, &stream, 20, Duration::from_secs(20)).await?;
    let mut data: Vec<_> = records.iter().map(|r| r.data.clone()).collect();
    data.sort();
    data.dedup();
    assert_eq!((records.len(), data.len()), (20, 20), "each order once");
    Ok(())
}
