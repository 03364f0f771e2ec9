# --- AWS Config rules for the root user ------------------------------------

resource "aws_iam_role" "config" {
  count = var.create_config_recorder ? 1 : 0
  name  = "${var.name}-config"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "config.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "config" {
  count      = var.create_config_recorder ? 1 : 0
  role       = aws_iam_role.config[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWS_ConfigRole"
}

resource "aws_config_configuration_recorder" "main" {
  count    = var.create_config_recorder ? 1 : 0
  name     = var.name
  role_arn = aws_iam_role.config[0].arn
  recording_group {
    all_supported                 = true
    include_global_resource_types = true
  }
}

resource "aws_config_delivery_channel" "main" {
  count          = var.create_config_recorder ? 1 : 0
  name           = var.name
  s3_bucket_name = aws_s3_bucket.trail.id
  s3_key_prefix  = "config"
  depends_on     = [aws_config_configuration_recorder.main, aws_s3_bucket_policy.trail]
}

resource "aws_config_configuration_recorder_status" "main" {
  count      = var.create_config_recorder ? 1 : 0
  name       = aws_config_configuration_recorder.main[0].name
  is_enabled = true
  depends_on = [aws_config_delivery_channel.main]
}

locals {
  root_rules = {
    "root-account-mfa-enabled"          = "ROOT_ACCOUNT_MFA_ENABLED"
    "root-account-hardware-mfa-enabled" = "ROOT_ACCOUNT_HARDWARE_MFA_ENABLED"
    "iam-root-access-key-check"         = "IAM_ROOT_ACCESS_KEY_CHECK"
  }
}

resource "aws_config_config_rule" "root" {
  for_each                    = local.root_rules
  name                        = "${var.name}-${each.key}"
  maximum_execution_frequency = "TwentyFour_Hours"
  source {
    owner             = "AWS"
    source_identifier = each.value
  }
  tags       = var.tags
  depends_on = [aws_config_configuration_recorder_status.main]
}
