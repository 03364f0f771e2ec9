# The audit trail: a multi-region CloudTrail trail into an S3 bucket and a
# CloudWatch Logs log group, both encrypted with a KMS key of their own (the
# audit key), which also encrypts the alarm topic. The custody key stays
# for the custody service alone.

# --- The audit key -----------------------------------------------------------------

data "aws_iam_policy_document" "audit_key" {
  # A key policy's "Resource" can only be "*", which means this key; the
  # checks below read it as any resource.
  #checkov:skip=CKV_AWS_109:Key policy: "*" is this key; the account statement is AWS's default and the service statements carry conditions
  #checkov:skip=CKV_AWS_111:Key policy: "*" is this key; the account statement is AWS's default and the service statements carry conditions
  #checkov:skip=CKV_AWS_356:Key policy: "Resource" can only be "*" (this key)
  # The account's IAM policies decide who reads the logs and who manages the
  # key (the AWS default for a key policy); this key protects audit records,
  # not credentials, so it has no narrower key policy of its own.
  statement {
    sid       = "AccountIamPoliciesDecide"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudTrailEncryptsThisTrailsLogs"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:cloudtrail:arn"
      values   = ["arn:${local.partition}:cloudtrail:*:${local.account_id}:trail/*"]
    }
  }

  statement {
    sid       = "CloudTrailDescribesTheKey"
    effect    = "Allow"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "CloudWatchLogsForTheTrailLogGroupOnly"
    effect    = "Allow"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.${data.aws_partition.current.dns_suffix}"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = [local.log_group_arn]
    }
  }

  # CloudWatch publishes the alarm to the encrypted topic itself; AWS's
  # documented statement for that carries no condition.
  statement {
    sid       = "CloudWatchAlarmsPublishToTheTopic"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "audit" {
  description              = "breakglass audit trail: CloudTrail log files, their log group and the alarm topic"
  key_usage                = "ENCRYPT_DECRYPT"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  enable_key_rotation      = true
  deletion_window_in_days  = var.key_deletion_window_in_days
  policy                   = data.aws_iam_policy_document.audit_key.json
  tags                     = var.tags
}

resource "aws_kms_alias" "audit" {
  name          = "${var.key_alias}-audit"
  target_key_id = aws_kms_key.audit.key_id
}

# --- The trail's bucket ---------------------------------------------------------

# S3 forms: provider 3.x configures versioning, default encryption, access
# logging and lifecycle rules only as blocks inside aws_s3_bucket; the
# separate aws_s3_bucket_versioning / _server_side_encryption_configuration /
# _logging / _lifecycle_configuration resources arrived in 4.0. Provider 5.x
# still accepts these inline blocks (deprecated, with a warning), so they
# are the one form valid in both (4.0 to 4.8 made them read-only; 4.9 gave
# them back). aws_s3_bucket_public_access_block,
# aws_s3_bucket_policy and aws_s3_bucket_ownership_controls exist in both.
# The bucket's `acl` is left out (3.x defaults to private; 5.x deprecates it).
resource "aws_s3_bucket" "trail" {
  #checkov:skip=CKV_AWS_144:Replicating the audit files to another region is the organisation's log archive's job (an organization trail or an archive account), not this module's
  #checkov:skip=CKV2_AWS_62:No consumer of object events: the trail's log group carries the events, and log file validation guards the files
  bucket        = local.trail_bucket_name
  force_destroy = var.trail_bucket_force_destroy
  tags          = var.tags

  versioning {
    enabled = true
  }

  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        sse_algorithm     = "aws:kms"
        kms_master_key_id = aws_kms_key.audit.arn
      }
      # One data key per bucket instead of per object: fewer KMS calls.
      bucket_key_enabled = true
    }
  }

  # Off unless a log bucket is given (checkov's CKV_AWS_18 passes on the
  # block alone).
  dynamic "logging" {
    for_each = var.trail_bucket_access_log_bucket == null ? [] : [var.trail_bucket_access_log_bucket]
    content {
      target_bucket = logging.value
      target_prefix = "s3-access/${local.trail_bucket_name}/"
    }
  }

  lifecycle_rule {
    id                                     = "abort-incomplete-uploads"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 7
  }

  dynamic "lifecycle_rule" {
    for_each = var.trail_log_expiration_days == null ? [] : [var.trail_log_expiration_days]
    content {
      id      = "expire-log-files"
      enabled = true

      expiration {
        days = lifecycle_rule.value
      }

      # A deleted or overwritten file stays as long as a current one would.
      noncurrent_version_expiration {
        days = lifecycle_rule.value
      }
    }
  }
}

resource "aws_s3_bucket_public_access_block" "trail" {
  bucket                  = aws_s3_bucket.trail.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# BucketOwnerEnforced (ACLs off) is unknown to provider 3.39's validation,
# so the default is BucketOwnerPreferred: the bucket owner owns every file
# written with bucket-owner-full-control, which the bucket policy demands
# of CloudTrail and Config. With provider 4.x or 5.x choose
# BucketOwnerEnforced.
resource "aws_s3_bucket_ownership_controls" "trail" {
  #checkov:skip=CKV2_AWS_65:Provider 3.x knows no BucketOwnerEnforced; var.trail_bucket_object_ownership sets it on 4.x/5.x, and the bucket policy makes the owner own every delivered file
  bucket = aws_s3_bucket.trail.id

  rule {
    object_ownership = var.trail_bucket_object_ownership
  }

  depends_on = [aws_s3_bucket_public_access_block.trail]
}

data "aws_iam_policy_document" "trail_bucket" {
  statement {
    sid       = "DenyPlainHttp"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.trail.arn, "${aws_s3_bucket.trail.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "CloudTrailChecksTheAcl"
    effect    = "Allow"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.trail.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "CloudTrailWritesThisAccountsLogs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.trail.arn}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-acl"
      values   = ["bucket-owner-full-control"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  # AWS Config's delivery channel writes under config/ (AWS's documented
  # bucket policy for Config, confined to this account).
  dynamic "statement" {
    for_each = var.create_config_recorder ? [
      { sid = "ConfigChecksTheAcl", actions = ["s3:GetBucketAcl"], resources = [aws_s3_bucket.trail.arn], acl = false },
      { sid = "ConfigChecksTheBucket", actions = ["s3:ListBucket"], resources = [aws_s3_bucket.trail.arn], acl = false },
      { sid = "ConfigWritesThisAccountsItems", actions = ["s3:PutObject"], resources = ["${aws_s3_bucket.trail.arn}/config/AWSLogs/${local.account_id}/Config/*"], acl = true },
    ] : []
    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = statement.value.resources

      principals {
        type        = "Service"
        identifiers = ["config.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }

      dynamic "condition" {
        for_each = statement.value.acl ? [1] : []
        content {
          test     = "StringEquals"
          variable = "s3:x-amz-acl"
          values   = ["bucket-owner-full-control"]
        }
      }
    }
  }
}

resource "aws_s3_bucket_policy" "trail" {
  bucket = aws_s3_bucket.trail.id
  policy = data.aws_iam_policy_document.trail_bucket.json

  # One change to the bucket's access settings at a time: S3 answers a
  # policy write that overlaps a public access block write with a conflict.
  depends_on = [aws_s3_bucket_public_access_block.trail]
}

# --- The trail's log group and CloudTrail's role to write to it ------------------

resource "aws_cloudwatch_log_group" "trail" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  kms_key_id        = aws_kms_key.audit.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "trail_logs_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "trail_logs" {
  statement {
    sid       = "WriteTheTrailsLogStreams"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.trail.arn}:log-stream:*"]
  }
}

resource "aws_iam_role" "trail_logs" {
  name               = "${local.trail_name}-cloudtrail-logs"
  description        = "CloudTrail delivers the ${local.trail_name} trail to its log group"
  assume_role_policy = data.aws_iam_policy_document.trail_logs_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "trail_logs" {
  name   = "cloudtrail-logs"
  role   = aws_iam_role.trail_logs.id
  policy = data.aws_iam_policy_document.trail_logs.json
}

# --- The trail ---------------------------------------------------------------------

resource "aws_cloudtrail" "this" {
  #checkov:skip=CKV_AWS_252:A notification per delivered log file is noise; what matters (root use) is alarmed from the log group
  name                          = local.trail_name
  s3_bucket_name                = aws_s3_bucket.trail.id
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true
  enable_logging                = true
  kms_key_id                    = aws_kms_key.audit.arn
  # CloudTrail wants the log group's ARN with its ":*" stream suffix; both
  # provider lines give the `arn` attribute without it.
  cloud_watch_logs_group_arn = "${aws_cloudwatch_log_group.trail.arn}:*"
  cloud_watch_logs_role_arn  = aws_iam_role.trail_logs.arn
  tags                       = var.tags

  depends_on = [aws_s3_bucket_policy.trail, aws_iam_role_policy.trail_logs]
}
