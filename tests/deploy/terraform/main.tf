# A root configuration that applies deploy/terraform against the moto AWS
# emulator (scripts/deploy/terraform-check). It is for provider 3.39, the one
# that runs here: skip_get_ec2_platforms and s3_force_path_style are 3.x
# arguments (5.x has neither; it has s3_use_path_style). The module itself
# sets no provider configuration and stays valid for 3.x and 5.x.
terraform {
  required_version = ">= 1.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "3.39.0"
    }
  }
}

variable "endpoint" {
  description = "The moto server's URL, for every service."
  type        = string
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

# In moto's account, 123456789012.
variable "oidc_provider_arn" {
  type    = string
  default = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
}

variable "key_admin_role_name" {
  type    = string
  default = "breakglass-key-admin"
}

variable "kubernetes_service_account" {
  type    = string
  default = "bg-breakglass"
}

variable "secret_name_prefix" {
  type    = string
  default = "custody/prod/"
}

variable "alarm_email" {
  type    = string
  default = "security@example.com"
}

provider "aws" {
  region     = var.region
  access_key = "testing"
  secret_key = "testing"

  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_get_ec2_platforms      = true
  s3_force_path_style         = true

  endpoints {
    cloudtrail     = var.endpoint
    cloudwatch     = var.endpoint
    cloudwatchlogs = var.endpoint
    configservice  = var.endpoint
    iam            = var.endpoint
    kms            = var.endpoint
    s3             = var.endpoint
    sns            = var.endpoint
    sts            = var.endpoint
  }
}

# The module expects the key administrator role to exist (on real AWS a key
# policy may name existing principals only); here the test makes it.
data "aws_iam_policy_document" "key_admin_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::123456789012:root"]
    }
  }
}

resource "aws_iam_role" "key_admin" {
  name               = var.key_admin_role_name
  assume_role_policy = data.aws_iam_policy_document.key_admin_trust.json
}

# What the module is given, also an output: the check compares what moto
# holds with these, not with what the module says it made.
locals {
  inputs = {
    region                      = var.region
    key_admin_role_name         = aws_iam_role.key_admin.name
    oidc_provider_arn           = var.oidc_provider_arn
    kubernetes_namespace        = "breakglass"
    kubernetes_service_account  = var.kubernetes_service_account
    secret_name_prefix          = var.secret_name_prefix
    key_deletion_window_in_days = 7
    log_retention_in_days       = 400
    trail_log_expiration_days   = 2557
    alarm_email                 = var.alarm_email
    tags = {
      project = "breakglass"
      purpose = "terraform-check"
    }
  }
}

module "breakglass" {
  source = "../../../deploy/terraform"

  key_admin_role_name         = local.inputs.key_admin_role_name
  oidc_provider_arn           = local.inputs.oidc_provider_arn
  kubernetes_namespace        = local.inputs.kubernetes_namespace
  kubernetes_service_account  = local.inputs.kubernetes_service_account
  secret_name_prefix          = local.inputs.secret_name_prefix
  key_deletion_window_in_days = local.inputs.key_deletion_window_in_days
  log_retention_in_days       = local.inputs.log_retention_in_days
  trail_log_expiration_days   = local.inputs.trail_log_expiration_days
  alarm_email                 = local.inputs.alarm_email
  tags                        = local.inputs.tags
}

output "inputs" { value = local.inputs }
output "key_arn" { value = module.breakglass.key_arn }
output "key_id" { value = module.breakglass.key_id }
output "key_alias" { value = module.breakglass.key_alias }
output "service_role_arn" { value = module.breakglass.service_role_arn }
output "helm_service_account_role_arn" { value = module.breakglass.helm_service_account_role_arn }
output "audit_key_arn" { value = module.breakglass.audit_key_arn }
output "trail_arn" { value = module.breakglass.trail_arn }
output "trail_bucket_name" { value = module.breakglass.trail_bucket_name }
output "log_group_name" { value = module.breakglass.log_group_name }
output "sns_topic_arn" { value = module.breakglass.sns_topic_arn }
output "breakglass_config" { value = module.breakglass.breakglass_config }
