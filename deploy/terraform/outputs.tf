output "key_arn" {
  description = "ARN of the custody key."
  value       = aws_kms_key.service.arn
}

output "key_id" {
  description = "Id of the custody key."
  value       = aws_kms_key.service.key_id
}

output "key_alias" {
  description = "Alias of the custody key."
  value       = aws_kms_alias.service.name
}

output "service_role_arn" {
  description = "ARN of the service's IAM role (IRSA)."
  value       = aws_iam_role.service.arn
}

output "helm_service_account_role_arn" {
  description = "The Helm chart's serviceAccount.roleArn value."
  value       = aws_iam_role.service.arn
}

output "audit_key_arn" {
  description = "ARN of the audit key (trail files, log group, alarm topic): grant kms:Decrypt on it to whoever reads the trail's files."
  value       = aws_kms_key.audit.arn
}

output "trail_arn" {
  description = "ARN of the CloudTrail trail."
  value       = aws_cloudtrail.this.arn
}

output "trail_bucket_name" {
  description = "Name of the S3 bucket holding the trail's log files (and Config's, under config/)."
  value       = aws_s3_bucket.trail.id
}

output "log_group_name" {
  description = "Name of the trail's CloudWatch Logs log group."
  value       = aws_cloudwatch_log_group.trail.name
}

output "sns_topic_arn" {
  description = "ARN of the SNS topic the root-usage alarm notifies; subscribe the on-call channel to it."
  value       = aws_sns_topic.alarms.arn
}

output "breakglass_config" {
  description = "The AWS part of breakglass.toml, ready to paste."
  # The key's ARN, not the alias: GetKeyRotationStatus (the server's
  # hygiene check) takes only a key id or ARN, and envelopes record the ARN
  # anyway. jsonencode() quotes each value as a valid TOML basic string.
  value = <<-EOT
    [keys]
    service = "aws-kms"
    kms_key_id = ${jsonencode(aws_kms_key.service.arn)}

    [secrets]
    store = "aws-secretsmanager"
    name_prefix = ${jsonencode(var.secret_name_prefix)}

    [aws]
    region = ${jsonencode(local.region)}
  EOT
}
