# The break-glass custody service's AWS side: the custody key and the
# service role (custody.tf), the audit trail (trail.tf), AWS Config's root
# rules (config.tf) and the root-usage alarm (alarm.tf).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  # `name` is the attribute both provider lines have.
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  service_role_name = coalesce(var.service_role_name, var.name)
  trail_name        = coalesce(var.trail_name, var.name)
  trail_bucket_name = coalesce(var.trail_bucket_name, "${var.name}-trail-${local.account_id}-${local.region}")
  log_group_name    = "/aws/cloudtrail/${local.trail_name}"

  # Known before the resources exist, for the policies that must name them
  # (the bucket policy and the audit key policy come before the trail and
  # the log group).
  trail_arn     = "arn:${local.partition}:cloudtrail:${local.region}:${local.account_id}:trail/${local.trail_name}"
  log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"

  # The issuer as IAM names it in condition keys: the provider ARN's part
  # after "oidc-provider/" (oidc.eks.REGION.amazonaws.com/id/ID).
  oidc_issuer = element(split(":oidc-provider/", var.oidc_provider_arn), 1)

  # The policy files of the repository, rendered. They are the one source of
  # truth: statements or context keys added there reach the key and the
  # role at the next apply. Their placeholders are plain words, so replace()
  # and not templatefile(); jsondecode() fails the plan on a malformed file.
  policy_dir = "${path.module}/../../policies/iam"

  kms_key_policy = jsonencode(jsondecode(
    replace(replace(replace(
      file("${local.policy_dir}/kms-key-policy.json"),
      "ACCOUNT_ID", local.account_id),
      "KEY_ADMIN_ROLE", var.key_admin_role_name),
    "SERVICE_ROLE", aws_iam_role.service.name)
  ))

  # The prefix first (the file scopes secrets to secret:breakglass/*), then
  # the placeholders.
  service_role_policy = jsonencode(jsondecode(
    replace(replace(replace(replace(
      file("${local.policy_dir}/service-role-policy.json"),
      ":secret:breakglass/", ":secret:${var.secret_name_prefix}"),
      "REGION", local.region),
      "ACCOUNT_ID", local.account_id),
    "KEY_ID", aws_kms_key.service.key_id)
  ))
}
