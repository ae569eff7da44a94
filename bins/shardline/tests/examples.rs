//! The Terraform and CloudFormation examples in `docs/examples/` say what
//! the code does: the producer's IAM actions are the ones
//! `docs/deployment.md` lists, the alarms use the metrics layer's default
//! thresholds and namespace, and the stream's shard-level metrics are the
//! ones `create-stream --enhanced-monitoring` turns on.

use std::path::Path;

use shardline_metrics::AlarmConfig;
use shardline_metrics::cloudwatch::DEFAULT_NAMESPACE;
use shardline_streams::SHARD_LEVEL_METRICS;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn read(relative: &str) -> Result<String, Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Ok(std::fs::read_to_string(root.join(relative))?)
}

/// The producer's Kinesis actions, in the order `docs/deployment.md` lists
/// them.
const PRODUCER_ACTIONS: [&str; 3] = [
    "kinesis:PutRecords",
    "kinesis:DescribeStreamSummary",
    "kinesis:ListShards",
];

/// Every `kinesis:` action a text names, in order.
fn kinesis_actions(text: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = text
        .match_indices("\"kinesis:")
        .map(|(at, _)| at + 1)
        .chain(text.match_indices("- kinesis:").map(|(at, _)| at + 2))
        .collect();
    starts.sort_unstable();
    starts
        .into_iter()
        .filter_map(|at| {
            let rest = text.get(at..)?;
            let end = rest.find(|c: char| c == '"' || c.is_whitespace())?;
            rest.get(..end)
        })
        .collect()
}

#[test]
fn the_examples_grant_the_producer_what_the_deployment_guide_lists() -> TestResult {
    let guide = read("docs/deployment.md")?;
    let terraform = read("docs/examples/terraform/main.tf")?;
    let cloudformation = read("docs/examples/cloudformation/stream.yaml")?;
    assert_eq!(
        kinesis_actions(&guide).get(..3),
        Some(&PRODUCER_ACTIONS[..])
    );
    assert_eq!(kinesis_actions(&terraform), PRODUCER_ACTIONS);
    assert_eq!(kinesis_actions(&cloudformation), PRODUCER_ACTIONS);
    Ok(())
}

#[test]
fn the_alarms_use_the_metrics_layer_thresholds_and_namespace() -> TestResult {
    let defaults = AlarmConfig::default();
    let terraform = read("docs/examples/terraform/main.tf")?;
    let variables = read("docs/examples/terraform/variables.tf")?;
    let cloudformation = read("docs/examples/cloudformation/stream.yaml")?;
    for threshold in [defaults.warning_below, defaults.critical_below] {
        let hcl = format!("threshold           = {threshold}");
        assert_eq!(terraform.matches(&hcl).count(), 1, "{hcl}");
        let yaml = format!("Threshold: {threshold}");
        assert_eq!(cloudformation.matches(&yaml).count(), 1, "{yaml}");
    }
    assert!(variables.contains(&format!("default     = \"{DEFAULT_NAMESPACE}\"")));
    assert!(cloudformation.contains(&format!("Default: {DEFAULT_NAMESPACE}")));
    Ok(())
}

#[test]
fn the_terraform_stream_turns_on_the_tool_s_shard_level_metrics() -> TestResult {
    let terraform = read("docs/examples/terraform/main.tf")?;
    let start = terraform
        .find("shard_level_metrics = [")
        .ok_or("no shard_level_metrics")?;
    let block = terraform.get(start..).unwrap_or_default();
    let block = block
        .get(..block.find(']').unwrap_or(0))
        .unwrap_or_default();
    let listed: Vec<&str> = block.split('"').skip(1).step_by(2).collect();
    assert_eq!(listed, SHARD_LEVEL_METRICS);
    Ok(())
}
