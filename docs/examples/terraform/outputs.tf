output "stream_name" {
  description = "The stream's name: --stream-name for shardline's binaries"
  value       = aws_kinesis_stream.this.name
}

output "stream_arn" {
  description = "The stream's ARN"
  value       = aws_kinesis_stream.this.arn
}

output "producer_policy_arn" {
  description = "Attach to the role shardline runs as"
  value       = aws_iam_policy.producer.arn
}
