//! Creating, describing and scaling a stream.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::{MetricsName, ScalingType, StreamMode, StreamModeDetails};
use serde::Serialize;
use shardline_partition_key::ShardMap;

use crate::StreamError;

/// How long a create or a reshard may take to finish: Kinesis says a
/// stream is usually ACTIVE within seconds, a reshard within minutes
/// (<https://docs.aws.amazon.com/streams/latest/dev/kinesis-using-sdk-java-resharding.html>).
pub const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);
/// The first pause between two looks at a stream's status; it doubles up
/// to [`STATUS_POLL_MAX`].
const STATUS_POLL_MIN: Duration = Duration::from_millis(50);
/// The longest pause between two looks: `DescribeStreamSummary` allows 20
/// calls a second per account
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html>),
/// shared with every other tool of the account.
const STATUS_POLL_MAX: Duration = Duration::from_secs(1);
/// Data retention when none is asked for, and the least allowed
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_IncreaseStreamRetentionPeriod.html>).
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// The longest retention Kinesis allows: 365 days (same page).
pub const MAX_RETENTION_HOURS: u32 = 8_760;
/// The shard-level metrics `--enhanced-monitoring` turns on: the four the
/// course lab's Terraform lists, and that
/// `docs/examples/terraform/` alarms on.
pub const SHARD_LEVEL_METRICS: [&str; 4] = [
    "IncomingRecords",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
];

/// The shape of a stream to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Provisioned shards, or on-demand capacity.
    pub capacity: Capacity,
    /// Hours the stream keeps records (24 to 8,760).
    pub retention_hours: u32,
    /// Turn on the shard-level metrics in [`SHARD_LEVEL_METRICS`].
    pub enhanced_monitoring: bool,
}

/// How a stream is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// A fixed number of shards.
    Provisioned(u32),
    /// Kinesis adds and removes shards itself.
    OnDemand,
}

impl StreamSpec {
    /// `shards` provisioned shards, 24 hours of retention, no shard-level
    /// metrics.
    pub fn provisioned(shards: u32) -> Self {
        StreamSpec {
            capacity: Capacity::Provisioned(shards),
            retention_hours: DEFAULT_RETENTION_HOURS,
            enhanced_monitoring: false,
        }
    }

    fn check(&self) -> Result<(), StreamError> {
        if let Capacity::Provisioned(0) = self.capacity {
            return Err(StreamError::Invalid(
                "a stream needs at least one shard".into(),
            ));
        }
        if !(DEFAULT_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&self.retention_hours) {
            return Err(StreamError::Invalid(format!(
                "retention is {DEFAULT_RETENTION_HOURS} to {MAX_RETENTION_HOURS} hours, not {}",
                self.retention_hours
            )));
        }
        Ok(())
    }
}

/// What waiting for a stream looks like, for a progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The stream's status at this look (`CREATING`, `UPDATING`, ...).
    pub status: String,
    /// Its open shards, when the wait is for a shard count.
    pub open_shards: Option<usize>,
    /// Since the wait began.
    pub elapsed: Duration,
}

/// What [`create_stream`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `false`: the stream was there already, with the shape asked for.
    pub new: bool,
    /// What could not be done as asked and why (an endpoint without
    /// `EnableEnhancedMonitoring`), for the user to read.
    pub notes: Vec<String>,
}

/// Creates a stream and waits until it is ACTIVE, then sets its retention
/// and shard-level metrics. A stream that exists already with the same
/// capacity is left as it is (its retention and metrics are set as asked);
/// one with another capacity is an error.
pub async fn create_stream(
    client: &Client,
    name: &str,
    spec: &StreamSpec,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Created, StreamError> {
    spec.check()?;
    let mut request = client.create_stream().stream_name(name);
    request = match spec.capacity {
        // Provisioned is the default mode; saying nothing of it keeps the
        // request valid for endpoints that predate on-demand streams.
        Capacity::Provisioned(shards) => {
            request.shard_count(i32::try_from(shards).unwrap_or(i32::MAX))
        }
        Capacity::OnDemand => request.stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .map_err(|e| StreamError::Invalid(e.to_string()))?,
        ),
    };
    let new = match request.send().await {
        Ok(_) => true,
        Err(e) => {
            let error = StreamError::call("CreateStream", name, e);
            if error.code() != Some("ResourceInUseException") {
                return Err(error);
            }
            false
        }
    };
    let info = wait_until_active(client, name, ACTIVE_TIMEOUT, progress).await?;
    if !new {
        let found = match info.mode.as_str() {
            "ON_DEMAND" => Capacity::OnDemand,
            _ => Capacity::Provisioned(u32::try_from(info.open_shards).unwrap_or(u32::MAX)),
        };
        if found != spec.capacity {
            return Err(StreamError::ShapeDiffers {
                stream: name.to_owned(),
                found: describe_capacity(found),
                wanted: describe_capacity(spec.capacity),
            });
        }
    }
    let mut notes = Vec::new();
    if spec.retention_hours != info.retention_hours {
        set_retention(client, name, info.retention_hours, spec.retention_hours).await?;
        wait_until_active(client, name, ACTIVE_TIMEOUT, progress).await?;
    }
    if spec.enhanced_monitoring {
        let metrics = SHARD_LEVEL_METRICS.iter().map(|m| MetricsName::from(*m));
        match client
            .enable_enhanced_monitoring()
            .stream_name(name)
            .set_shard_level_metrics(Some(metrics.collect()))
            .send()
            .await
        {
            Ok(_) => {
                wait_until_active(client, name, ACTIVE_TIMEOUT, progress).await?;
            }
            Err(e) => {
                let error = StreamError::call("EnableEnhancedMonitoring", name, e);
                if !error.is_unsupported_operation() {
                    return Err(error);
                }
                notes.push(
                    "this endpoint has no EnableEnhancedMonitoring: shard-level metrics stay off"
                        .to_owned(),
                );
            }
        }
    }
    Ok(Created { new, notes })
}

fn describe_capacity(capacity: Capacity) -> String {
    match capacity {
        Capacity::Provisioned(1) => "1 open shard".to_owned(),
        Capacity::Provisioned(n) => format!("{n} open shards"),
        Capacity::OnDemand => "on-demand capacity".to_owned(),
    }
}

async fn set_retention(client: &Client, name: &str, from: u32, to: u32) -> Result<(), StreamError> {
    let hours = i32::try_from(to).unwrap_or(i32::MAX);
    if to > from {
        client
            .increase_stream_retention_period()
            .stream_name(name)
            .retention_period_hours(hours)
            .send()
            .await
            .map_err(|e| StreamError::call("IncreaseStreamRetentionPeriod", name, e))?;
    } else {
        client
            .decrease_stream_retention_period()
            .stream_name(name)
            .retention_period_hours(hours)
            .send()
            .await
            .map_err(|e| StreamError::call("DecreaseStreamRetentionPeriod", name, e))?;
    }
    Ok(())
}

/// Deletes a stream (and, with it, every record it holds).
pub async fn delete_stream(client: &Client, name: &str) -> Result<(), StreamError> {
    client
        .delete_stream()
        .stream_name(name)
        .send()
        .await
        .map_err(|e| StreamError::call("DeleteStream", name, e))?;
    Ok(())
}

/// A stream as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamInfo {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING` or `DELETING`.
    pub status: String,
    /// `PROVISIONED` or `ON_DEMAND`.
    pub mode: String,
    /// Hours it keeps records.
    pub retention_hours: u32,
    /// Shards taking new records.
    pub open_shards: usize,
    /// The shard-level metrics turned on.
    pub enhanced_monitoring: Vec<String>,
    /// `KMS` or `NONE`.
    pub encryption: String,
    /// Consumers registered for enhanced fan-out.
    pub consumers: usize,
    /// Every shard the stream lists, open and closed, in id order.
    pub shards: Vec<ShardInfo>,
}

/// One shard of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardInfo {
    /// `shardId-000000000001`.
    pub id: String,
    /// The shard it was split from or merged from.
    pub parent: Option<String>,
    /// The other shard it was merged from.
    pub adjacent_parent: Option<String>,
    /// The lowest hash key it holds, in decimal as the API gives it.
    pub starting_hash_key: String,
    /// The highest hash key it holds.
    pub ending_hash_key: String,
    /// The sequence number of its first record.
    pub starting_sequence_number: String,
    /// Set once it is closed (split or merged): its last sequence number.
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    /// Whether it takes new records (not split or merged away).
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    /// Its hash-key range as numbers; `None` if the service sent text that
    /// is not a 128-bit number.
    pub fn range(&self) -> Option<(u128, u128)> {
        Some((
            self.starting_hash_key.parse().ok()?,
            self.ending_hash_key.parse().ok()?,
        ))
    }
}

/// The stream's summary and every shard it lists.
pub async fn describe(client: &Client, name: &str) -> Result<StreamInfo, StreamError> {
    let summary = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .map_err(|e| StreamError::call("DescribeStreamSummary", name, e))?;
    let Some(summary) = summary.stream_description_summary() else {
        return Err(StreamError::Invalid(format!(
            "DescribeStreamSummary {name}: the answer has no description"
        )));
    };
    let shards = list_shards(client, name).await?;
    Ok(StreamInfo {
        name: summary.stream_name().to_owned(),
        arn: summary.stream_arn().to_owned(),
        status: summary.stream_status().as_str().to_owned(),
        mode: summary
            .stream_mode_details()
            .map_or("PROVISIONED", |m| m.stream_mode().as_str())
            .to_owned(),
        retention_hours: u32::try_from(summary.retention_period_hours()).unwrap_or(0),
        open_shards: shards.iter().filter(|s| s.is_open()).count(),
        enhanced_monitoring: summary
            .enhanced_monitoring()
            .iter()
            .flat_map(|m| m.shard_level_metrics())
            .map(|m| m.as_str().to_owned())
            .collect(),
        encryption: summary
            .encryption_type()
            .map_or("NONE", |e| e.as_str())
            .to_owned(),
        consumers: summary
            .consumer_count()
            .and_then(|c| usize::try_from(c).ok())
            .unwrap_or(0),
        shards,
    })
}

/// Every shard the stream lists (`ListShards`, all pages), in id order.
pub async fn list_shards(client: &Client, name: &str) -> Result<Vec<ShardInfo>, StreamError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(name),
        };
        let page = request
            .send()
            .await
            .map_err(|e| StreamError::call("ListShards", name, e))?;
        for shard in page.shards() {
            let range = shard.hash_key_range();
            let sequence = shard.sequence_number_range();
            shards.push(ShardInfo {
                id: shard.shard_id().to_owned(),
                parent: shard.parent_shard_id().map(str::to_owned),
                adjacent_parent: shard.adjacent_parent_shard_id().map(str::to_owned),
                starting_hash_key: range.map_or("", |r| r.starting_hash_key()).to_owned(),
                ending_hash_key: range.map_or("", |r| r.ending_hash_key()).to_owned(),
                starting_sequence_number: sequence
                    .map_or("", |s| s.starting_sequence_number())
                    .to_owned(),
                ending_sequence_number: sequence
                    .and_then(|s| s.ending_sequence_number())
                    .map(str::to_owned),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            shards.sort_by(|a, b| a.id.cmp(&b.id));
            return Ok(shards);
        }
    }
}

/// Waits until the stream is ACTIVE; returns it as it is then.
pub async fn wait_until_active(
    client: &Client,
    name: &str,
    timeout: Duration,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<StreamInfo, StreamError> {
    wait_for(client, name, timeout, None, progress).await
}

/// Waits until the stream is ACTIVE with `open_shards` open shards, if
/// given: after `UpdateShardCount`, which some endpoints answer before the
/// stream shows `UPDATING`.
async fn wait_for(
    client: &Client,
    name: &str,
    timeout: Duration,
    open_shards: Option<usize>,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<StreamInfo, StreamError> {
    let began = Instant::now();
    let mut pause = STATUS_POLL_MIN;
    loop {
        let info = describe(client, name).await?;
        let done = info.status == "ACTIVE" && open_shards.is_none_or(|n| n == info.open_shards);
        progress(&Progress {
            status: info.status.clone(),
            open_shards: open_shards.map(|_| info.open_shards),
            elapsed: began.elapsed(),
        });
        if done {
            return Ok(info);
        }
        if began.elapsed() >= timeout {
            return Err(StreamError::Timeout {
                stream: name.to_owned(),
                status: format!("{} with {} open shards", info.status, info.open_shards),
                goal: match open_shards {
                    Some(n) => format!("ACTIVE with {n} open shards"),
                    None => "ACTIVE".to_owned(),
                },
                waited: timeout,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(STATUS_POLL_MAX);
    }
}

/// How [`scale`] reached the shard count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scaled {
    /// The stream had that many open shards already.
    Already,
    /// `UpdateShardCount` with uniform scaling.
    UpdateShardCount,
    /// The endpoint has no `UpdateShardCount`: shards were split and merged
    /// one at a time until the open shards cover equal hash-key ranges.
    SplitAndMerge {
        /// `SplitShard` calls made.
        splits: usize,
        /// `MergeShards` calls made.
        merges: usize,
    },
}

/// The most open shards `UpdateShardCount` may reach in one call: twice
/// the current count; the fewest, half of it
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html>).
const UPDATE_SHARD_COUNT_FACTOR: usize = 2;

/// Scales a provisioned stream to `target` open shards of equal hash-key
/// ranges and waits until it is ACTIVE with them. Uses `UpdateShardCount`
/// (uniform scaling); where the endpoint lacks it, splits and merges
/// shards itself.
pub async fn scale(
    client: &Client,
    name: &str,
    target: u32,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Scaled, StreamError> {
    if target == 0 {
        return Err(StreamError::Invalid(
            "a stream needs at least one shard".into(),
        ));
    }
    let target_shards = target as usize;
    let info = wait_until_active(client, name, ACTIVE_TIMEOUT, progress).await?;
    if info.mode == "ON_DEMAND" {
        return Err(StreamError::Invalid(format!(
            "stream {name} is on-demand: Kinesis sizes it itself"
        )));
    }
    if info.open_shards == target_shards {
        return Ok(Scaled::Already);
    }
    if target_shards > info.open_shards * UPDATE_SHARD_COUNT_FACTOR
        || target_shards * UPDATE_SHARD_COUNT_FACTOR < info.open_shards
    {
        return Err(StreamError::Invalid(format!(
            "UpdateShardCount changes a stream to at most twice or at least half its open \
             shards in one step: {} to {target} is too far; scale in steps",
            info.open_shards
        )));
    }
    match client
        .update_shard_count()
        .stream_name(name)
        .target_shard_count(i32::try_from(target).unwrap_or(i32::MAX))
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
    {
        Ok(_) => {
            wait_for(client, name, ACTIVE_TIMEOUT, Some(target_shards), progress).await?;
            Ok(Scaled::UpdateShardCount)
        }
        Err(e) => {
            let error = StreamError::call("UpdateShardCount", name, e);
            if !error.is_unsupported_operation() {
                return Err(error);
            }
            split_and_merge(client, name, target_shards, progress).await
        }
    }
}

/// Splits and merges until the open shards are `target` equal ranges.
async fn split_and_merge(
    client: &Client,
    name: &str,
    target: usize,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Scaled, StreamError> {
    // Where `CreateStream` would start each shard of a new stream of
    // `target` shards.
    let boundaries: Vec<u128> = ShardMap::even(target)
        .ranges()
        .iter()
        .skip(1)
        .map(|r| r.starting_hash_key)
        .collect();
    let (mut splits, mut merges) = (0, 0);
    // Split where a boundary falls inside an open shard.
    for &boundary in &boundaries {
        let open = open_ranges(client, name).await?;
        let inside = open
            .iter()
            .find(|(_, start, end)| *start < boundary && boundary <= *end);
        if let Some((shard, _, _)) = inside {
            client
                .split_shard()
                .stream_name(name)
                .shard_to_split(shard)
                .new_starting_hash_key(boundary.to_string())
                .send()
                .await
                .map_err(|e| StreamError::call("SplitShard", name, e))?;
            splits += 1;
            wait_until_active(client, name, ACTIVE_TIMEOUT, progress).await?;
        }
    }
    // Merge neighbours whose shared edge is not a boundary.
    loop {
        let open = open_ranges(client, name).await?;
        let pair = open.windows(2).find_map(|w| match w {
            [low, high] if !boundaries.contains(&high.1) => Some((low.0.clone(), high.0.clone())),
            _ => None,
        });
        let Some((low, high)) = pair else { break };
        client
            .merge_shards()
            .stream_name(name)
            .shard_to_merge(&low)
            .adjacent_shard_to_merge(&high)
            .send()
            .await
            .map_err(|e| StreamError::call("MergeShards", name, e))?;
        merges += 1;
        wait_until_active(client, name, ACTIVE_TIMEOUT, progress).await?;
    }
    wait_for(client, name, ACTIVE_TIMEOUT, Some(target), progress).await?;
    Ok(Scaled::SplitAndMerge { splits, merges })
}

/// The open shards' ids and ranges, by starting hash key.
async fn open_ranges(
    client: &Client,
    name: &str,
) -> Result<Vec<(String, u128, u128)>, StreamError> {
    let mut open: Vec<(String, u128, u128)> = list_shards(client, name)
        .await?
        .into_iter()
        .filter(ShardInfo::is_open)
        .filter_map(|s| {
            let (start, end) = s.range()?;
            Some((s.id, start, end))
        })
        .collect();
    open.sort_by_key(|(_, start, _)| *start);
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_outside_the_service_limits_is_refused_before_any_call() {
        let mut spec = StreamSpec::provisioned(0);
        assert!(spec.check().is_err());
        spec = StreamSpec::provisioned(2);
        spec.retention_hours = 23;
        assert!(spec.check().is_err());
        spec.retention_hours = MAX_RETENTION_HOURS + 1;
        assert!(spec.check().is_err());
        spec.retention_hours = 168;
        assert!(spec.check().is_ok());
    }
}
