# The module as an account would use it, with the provider pointed at the
# moto emulator (scripts/deploy/terraform-check). Only this root configures
# the provider; the module never does.
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "3.39.0"
    }
  }
}

variable "endpoint" {
  type = string
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = false
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

resource "aws_iam_role" "key_admin" {
  name = "security-key-admin"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { AWS = "arn:aws:iam::123456789012:root" }, Action = "sts:AssumeRole" }]
  })
}

module "breakglass" {
  source              = "../../../deploy/terraform"
  key_admin_role_name = aws_iam_role.key_admin.name
  oidc_provider_arn   = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
  oidc_provider_url   = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
  namespace           = "breakglass"
  service_account     = "bg-breakglass"
  alarm_email         = "security@example.com"
  tags                = { team = "security" }
}

output "module" {
  value = module.breakglass
}
