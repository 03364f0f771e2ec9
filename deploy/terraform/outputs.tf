output "kms_key_arn" {
  description = "ARN of the service's KMS key."
  value       = aws_kms_key.service.arn
}

output "kms_key_id" {
  description = "Id of the service's KMS key."
  value       = aws_kms_key.service.key_id
}

output "kms_alias" {
  description = "Alias of the service's KMS key ([keys] kms_key_id)."
  value       = aws_kms_alias.service.name
}

output "service_role_arn" {
  description = "The IRSA role: the Helm chart's serviceAccount.roleArn."
  value       = aws_iam_role.service.arn
}

output "trail_arn" {
  description = "ARN of the multi-region trail."
  value       = aws_cloudtrail.main.arn
}

output "trail_bucket" {
  description = "The trail's bucket."
  value       = aws_s3_bucket.trail.id
}

output "trail_log_group" {
  description = "The trail's CloudWatch Logs group."
  value       = aws_cloudwatch_log_group.trail.name
}

output "alarm_topic_arn" {
  description = "SNS topic of the root-usage alarm: subscribe your paging tool."
  value       = aws_sns_topic.alarms.arn
}

output "breakglass_config" {
  description = "The server's settings for this account, to paste into breakglass.toml (or the chart's config)."
  value       = <<-EOT
    [keys]
    service = "aws-kms"
    kms_key_id = "${aws_kms_alias.service.name}"
    signing_keys = "database"

    [secrets]
    store = "aws-secretsmanager"
    name_prefix = "${var.secret_name_prefix}"

    [aws]
    region = "${local.region}"
  EOT
}
