# The custody key and the service's role.
#
# Order matters on real AWS: a key policy may only name principals that
# exist, and the role's policy names the key. So the role (with its trust
# policy only) comes first, then the key with the rendered key policy, then
# the role's policy with the key's id. No cycle, no second apply.

# --- The service role, assumed through IRSA ------------------------------------

data "aws_iam_policy_document" "service_trust" {
  statement {
    sid     = "TheServiceAccountOnly"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "service" {
  name                 = local.service_role_name
  description          = "breakglass custody service (IRSA: ${var.kubernetes_namespace}/${var.kubernetes_service_account})"
  assume_role_policy   = data.aws_iam_policy_document.service_trust.json
  permissions_boundary = var.service_role_permissions_boundary
  # One hour, the IRSA default; the SDK refreshes the web identity session.
  max_session_duration = 3600
  tags                 = var.tags
}

# An inline policy: it lives and dies with the role and cannot be attached
# to anything else. Rendered from policies/iam/service-role-policy.json.
resource "aws_iam_role_policy" "service" {
  name   = "breakglass-service"
  role   = aws_iam_role.service.id
  policy = local.service_role_policy
}

# --- The custody key ---------------------------------------------------------------

# Apply as the key administrator role: the rendered key policy gives the
# account (and so IAM) only the read and policy actions, so enabling
# rotation, the alias and the scheduled deletion are the administrator's.
resource "aws_kms_key" "service" {
  description              = "breakglass custody key: data keys for credential envelopes, TOTP seeds and the service's signing keys"
  key_usage                = "ENCRYPT_DECRYPT"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  enable_key_rotation      = true
  deletion_window_in_days  = var.key_deletion_window_in_days
  policy                   = local.kms_key_policy
  tags                     = var.tags
}

resource "aws_kms_alias" "service" {
  name          = var.key_alias
  target_key_id = aws_kms_key.service.key_id
}

# Secrets Manager needs nothing here: the service creates one secret per
# credential under var.secret_name_prefix, tagged managed-by=breakglass, and
# the role's policy is what confines it to that prefix.
