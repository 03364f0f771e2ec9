data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  role_name  = "${var.name}-service"
  policies   = "${path.module}/../../policies/iam"
}

# --- the service's KMS key -----------------------------------------------

# The key policy is the repository's policies/iam/kms-key-policy.json,
# rendered: only the service's role uses the key, only with the service's
# encryption contexts; the key administrators cannot use it.
resource "aws_kms_key" "service" {
  description             = "breakglass: wraps the data keys of credentials, TOTP seeds and the service's signing keys"
  enable_key_rotation     = true
  deletion_window_in_days = var.key_deletion_window_days
  policy = replace(replace(replace(
    file("${local.policies}/kms-key-policy.json"),
    "ACCOUNT_ID", local.account_id),
    "KEY_ADMIN_ROLE", var.key_admin_role_name),
  "SERVICE_ROLE", local.role_name)
  tags = var.tags
  # The role must exist before a key policy can name it.
  depends_on = [aws_iam_role.service]
}

resource "aws_kms_alias" "service" {
  name          = var.kms_alias
  target_key_id = aws_kms_key.service.key_id
}

# --- the service role (IRSA) ---------------------------------------------

resource "aws_iam_role" "service" {
  name                 = local.role_name
  description          = "breakglass pods, through IRSA"
  max_session_duration = 3600
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = var.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${var.oidc_provider_url}:sub" = "system:serviceaccount:${var.namespace}:${var.service_account}"
          "${var.oidc_provider_url}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
  tags = var.tags
}

# policies/iam/service-role-policy.json, rendered: data keys from the
# service's key only with its contexts, and Secrets Manager only under the
# prefix (the service creates its secrets itself, tagged managed-by).
resource "aws_iam_role_policy" "service" {
  name = "${var.name}-service"
  role = aws_iam_role.service.id
  policy = replace(replace(replace(replace(
    file("${local.policies}/service-role-policy.json"),
    "secret:breakglass/", "secret:${var.secret_name_prefix}"),
    "REGION", local.region),
    "ACCOUNT_ID", local.account_id),
  "KEY_ID", aws_kms_key.service.key_id)
}
