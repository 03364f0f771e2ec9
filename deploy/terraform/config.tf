# AWS Config: the managed rules that say whether the root user is guarded
# (MFA, hardware MFA, no access keys). Rules need a recorder in the region;
# with create_config_recorder = false the account's existing one is used.

data "aws_iam_policy_document" "config_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["config.amazonaws.com"]
    }
  }
}

# Config delivers with the recorder's role: it writes under config/ in the
# trail bucket, whose default encryption is the audit key.
data "aws_iam_policy_document" "config_delivery" {
  statement {
    sid       = "CheckTheBucket"
    effect    = "Allow"
    actions   = ["s3:GetBucketAcl", "s3:ListBucket"]
    resources = [aws_s3_bucket.trail.arn]
  }

  statement {
    sid       = "DeliverUnderConfigPrefix"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.trail.arn}/config/AWSLogs/${local.account_id}/Config/*"]

    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-acl"
      values   = ["bucket-owner-full-control"]
    }
  }

  statement {
    sid       = "EncryptWithTheAuditKey"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.audit.arn]
  }
}

resource "aws_iam_role" "config" {
  count              = var.create_config_recorder ? 1 : 0
  name               = "${var.name}-config-recorder"
  description        = "AWS Config recorder of ${local.region}, delivering into the ${local.trail_name} trail bucket"
  assume_role_policy = data.aws_iam_policy_document.config_trust.json
  tags               = var.tags
}

# AWS's managed policy for a recorder's role: read-only Describe/List/Get
# of the recorded resource types.
resource "aws_iam_role_policy_attachment" "config" {
  count      = var.create_config_recorder ? 1 : 0
  role       = aws_iam_role.config[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWS_ConfigRole"
}

resource "aws_iam_role_policy" "config_delivery" {
  count  = var.create_config_recorder ? 1 : 0
  name   = "config-delivery"
  role   = aws_iam_role.config[0].id
  policy = data.aws_iam_policy_document.config_delivery.json
}

resource "aws_config_configuration_recorder" "this" {
  count    = var.create_config_recorder ? 1 : 0
  name     = var.name
  role_arn = aws_iam_role.config[0].arn

  recording_group {
    all_supported                 = true
    include_global_resource_types = var.config_include_global_resources
  }
}

resource "aws_config_delivery_channel" "this" {
  count          = var.create_config_recorder ? 1 : 0
  name           = var.name
  s3_bucket_name = aws_s3_bucket.trail.id
  s3_key_prefix  = "config"

  snapshot_delivery_properties {
    delivery_frequency = "TwentyFour_Hours"
  }

  depends_on = [aws_config_configuration_recorder.this, aws_s3_bucket_policy.trail, aws_iam_role_policy.config_delivery]
}

resource "aws_config_configuration_recorder_status" "this" {
  count      = var.create_config_recorder ? 1 : 0
  name       = aws_config_configuration_recorder.this[0].name
  is_enabled = true

  depends_on = [aws_config_delivery_channel.this]
}

locals {
  # Periodic rules (root MFA and access keys are account settings, not
  # recorded resources), evaluated once a day.
  root_config_rules = {
    "root-account-mfa-enabled"          = "ROOT_ACCOUNT_MFA_ENABLED"
    "root-account-hardware-mfa-enabled" = "ROOT_ACCOUNT_HARDWARE_MFA_ENABLED"
    "iam-root-access-key-check"         = "IAM_ROOT_ACCESS_KEY_CHECK"
  }
}

resource "aws_config_config_rule" "root" {
  for_each                    = local.root_config_rules
  name                        = "${var.name}-${each.key}"
  description                 = "breakglass: ${each.value} (AWS managed rule)"
  maximum_execution_frequency = "TwentyFour_Hours"
  tags                        = var.tags

  source {
    owner             = "AWS"
    source_identifier = each.value
  }

  # A rule cannot be created before the region has a running recorder.
  depends_on = [aws_config_configuration_recorder_status.this]
}
