# A Kinesis data stream for shardline, the producer's least-privilege IAM
# policy, and CloudWatch alarms on the stream and on shardline's own
# metrics (published with --cloudwatch-namespace). See docs/streams.md.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

resource "aws_kinesis_stream" "this" {
  name             = var.stream_name
  shard_count      = var.shard_count
  retention_period = var.retention_hours

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }

  # What `shardline create-stream --enhanced-monitoring` turns on.
  shard_level_metrics = [
    "IncomingRecords",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
  ]

  encryption_type = "KMS"
  kms_key_id      = "alias/aws/kinesis"

  tags = var.tags
}

# What a shardline producer (log-streamer, cdc-forwarder, sensor-forwarder,
# multi-source, or the library) needs, and nothing more:
# - PutRecords sends;
# - DescribeStreamSummary is the start-up check;
# - ListShards gives the shards' hash-key ranges (aggregation per shard,
#   pacing per shard);
# - PutMetricData only with --cloudwatch-namespace (it takes no resource),
#   limited to shardline's namespace by a condition.
# The stream uses the AWS-managed key alias/aws/kinesis, which needs no
# kms: permission; a customer-managed key needs kms:GenerateDataKey on it.
data "aws_iam_policy_document" "producer" {
  statement {
    sid = "SendToTheStream"
    actions = [
      "kinesis:PutRecords",
      "kinesis:DescribeStreamSummary",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.this.arn]
  }

  statement {
    sid       = "PublishShardlineMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.metrics_namespace]
    }
  }
}

resource "aws_iam_policy" "producer" {
  name        = "${var.stream_name}-shardline-producer"
  description = "Lets shardline send to ${var.stream_name} and publish its metrics"
  policy      = data.aws_iam_policy_document.producer.json
}

# --- Alarms -----------------------------------------------------------------

# Writes refused for lack of capacity. shardline paces throttled shards and
# retries, so a few are harmless; a steady stream of them means the stream
# needs more shards (`shardline scale`).
resource "aws_cloudwatch_metric_alarm" "write_throttled" {
  alarm_name          = "${var.stream_name}-write-throttled"
  alarm_description   = "Writes to ${var.stream_name} refused for lack of shard capacity, 5 minutes in a row"
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  dimensions          = { StreamName = aws_kinesis_stream.this.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

# Consumers falling behind: records wait longer than this to be read.
resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.stream_name}-consumers-behind"
  alarm_description   = "Consumers of ${var.stream_name} read records more than ${var.iterator_age_alarm_ms} ms old"
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.this.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

# shardline's success rate, as its own alarms judge it (docs/metrics.md):
# WARNING below 95 %, CRITICAL below 90 %.
resource "aws_cloudwatch_metric_alarm" "success_rate_warning" {
  alarm_name          = "${var.stream_name}-shardline-success-rate-warning"
  alarm_description   = "shardline delivered under 95 % of the records it settled"
  namespace           = var.metrics_namespace
  metric_name         = "SuccessRate"
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 1
  threshold           = 95
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "success_rate_critical" {
  alarm_name          = "${var.stream_name}-shardline-success-rate-critical"
  alarm_description   = "shardline delivered under 90 % of the records it settled"
  namespace           = var.metrics_namespace
  metric_name         = "SuccessRate"
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 1
  threshold           = 90
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

# Any record written to the dead-letter file: bad input, or a record the
# service refused for good. `replay` sends them again once fixed.
resource "aws_cloudwatch_metric_alarm" "dead_lettered" {
  alarm_name          = "${var.stream_name}-shardline-dead-letters"
  alarm_description   = "shardline wrote records to its dead-letter file"
  namespace           = var.metrics_namespace
  metric_name         = "DeadLettered"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}
