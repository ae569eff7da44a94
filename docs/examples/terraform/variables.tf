variable "region" {
  description = "AWS region"
  type        = string
  default     = "us-east-1"
}

variable "stream_name" {
  description = "Kinesis data stream name"
  type        = string
  default     = "lab-data-stream"
}

variable "shard_count" {
  description = "Provisioned shards (each takes 1,000 records or 1 MiB a second)"
  type        = number
  default     = 2
}

variable "retention_hours" {
  description = "Hours the stream keeps records (24 to 8760)"
  type        = number
  default     = 168
}

variable "metrics_namespace" {
  description = "The CloudWatch namespace shardline publishes to (--cloudwatch-namespace)"
  type        = string
  default     = "Shardline"
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when consumers read records older than this (milliseconds)"
  type        = number
  default     = 60000
}

variable "alarm_actions" {
  description = "ARNs (SNS topics) to notify when an alarm fires"
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on the stream"
  type        = map(string)
  default     = {}
}
