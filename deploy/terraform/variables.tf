# --- Names and tags -----------------------------------------------------------

variable "name" {
  description = "Base name of the resources (service role, trail, log group, topic, Config recorder)."
  type        = string
  default     = "breakglass"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "The name must be 3 to 40 characters: lowercase letters, digits and hyphens, not at either end (it is part of an S3 bucket name)."
  }
}

variable "tags" {
  description = "Tags put on every resource that takes tags."
  type        = map(string)
  default     = {}
}

# --- The custody key (KMS) ----------------------------------------------------

variable "key_admin_role_name" {
  description = "Name of the existing IAM role that administers the custody key (KEY_ADMIN_ROLE in policies/iam/kms-key-policy.json); include its path if it has one (\"admins/kms-admin\"). It manages the key and cannot use it."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_/-]{1,512}$", var.key_admin_role_name)) && !can(regex("^/|/$", var.key_admin_role_name))
    error_message = "The key administrator role is an IAM role name, optionally after its path without the leading and trailing slash."
  }
}

variable "key_alias" {
  description = "Alias of the custody key; the audit key gets the same alias with -audit."
  type        = string
  default     = "alias/breakglass"

  validation {
    condition     = can(regex("^alias/[A-Za-z0-9/_-]{1,240}$", var.key_alias)) && !can(regex("^alias/aws/", var.key_alias))
    error_message = "The alias starts with alias/, holds letters, digits, /, _ and -, and is not under alias/aws/ (reserved for AWS)."
  }
}

variable "key_deletion_window_in_days" {
  description = "Waiting period before a destroyed KMS key (the custody key and the audit key) is deleted, 7 to 30 days; the deletion can be cancelled until then."
  type        = number
  default     = 30

  validation {
    condition     = var.key_deletion_window_in_days >= 7 && var.key_deletion_window_in_days <= 30 && floor(var.key_deletion_window_in_days) == var.key_deletion_window_in_days
    error_message = "The deletion window is a whole number of days from 7 to 30."
  }
}

# --- The service role (IRSA) --------------------------------------------------

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:oidc-provider/[^/].+$", var.oidc_provider_arn))
    error_message = "The OIDC provider is given by its IAM ARN: arn:aws:iam::ACCOUNT:oidc-provider/ISSUER_HOST_AND_PATH."
  }
}

variable "kubernetes_namespace" {
  description = "Namespace of the service's Kubernetes ServiceAccount."
  type        = string
  default     = "breakglass"
}

variable "kubernetes_service_account" {
  description = "Name of the service's Kubernetes ServiceAccount (the Helm chart names it after the release: breakglass for a release named breakglass, else RELEASE-breakglass)."
  type        = string
  default     = "breakglass"
}

variable "service_role_name" {
  description = "Name of the service's IAM role (SERVICE_ROLE in the policies); null means var.name."
  type        = string
  default     = null
}

variable "service_role_permissions_boundary" {
  description = "ARN of a permissions boundary for the service role, when the account requires one."
  type        = string
  default     = null
}

variable "secret_name_prefix" {
  description = "Prefix of the service's Secrets Manager secret names ([secrets] name_prefix); the role may touch secrets under it only."
  type        = string
  default     = "breakglass/"

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,256}$", var.secret_name_prefix))
    error_message = "The prefix holds the characters of a secret name only (letters, digits, / _ + = . @ -); no wildcard."
  }
}

# --- The trail and its bucket -------------------------------------------------

variable "trail_name" {
  description = "Name of the CloudTrail trail; null means var.name."
  type        = string
  default     = null
}

variable "trail_bucket_name" {
  description = "Name of the trail's S3 bucket; null means NAME-trail-ACCOUNT-REGION."
  type        = string
  default     = null
}

variable "trail_bucket_force_destroy" {
  description = "Let a destroy delete the trail bucket with its log files. Keep false outside tests: the files are the audit record."
  type        = bool
  default     = false
}

variable "trail_bucket_object_ownership" {
  description = "Object ownership of the trail bucket: BucketOwnerPreferred (the one provider 3.x accepts besides ObjectWriter) or, with provider 4.x/5.x, BucketOwnerEnforced (ACLs off)."
  type        = string
  default     = "BucketOwnerPreferred"

  validation {
    condition     = contains(["BucketOwnerPreferred", "BucketOwnerEnforced"], var.trail_bucket_object_ownership)
    error_message = "The object ownership is BucketOwnerPreferred or BucketOwnerEnforced."
  }
}

variable "trail_bucket_access_log_bucket" {
  description = "An existing bucket that receives the trail bucket's S3 access logs (prefix s3-access/BUCKET/); null for none."
  type        = string
  default     = null
}

variable "trail_log_expiration_days" {
  description = "Delete trail and Config files this many days after delivery (a deleted or overwritten file as long after); null keeps them for ever."
  type        = number
  default     = null

  validation {
    # try(): HCL evaluates both sides of ||, and null >= 1 is an error.
    condition     = var.trail_log_expiration_days == null || try(var.trail_log_expiration_days >= 1 && floor(var.trail_log_expiration_days) == var.trail_log_expiration_days, false)
    error_message = "The expiration is a whole number of days, at least 1, or null."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the trail's CloudWatch Logs log group, in days (a value CloudWatch Logs accepts; 0 keeps the events for ever)."
  type        = number
  default     = 365

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "The retention is one of 0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 days."
  }
}

# --- AWS Config ---------------------------------------------------------------

variable "create_config_recorder" {
  description = "Create the region's AWS Config recorder, its role and its delivery channel (into the trail bucket, under config/). False when the account already records in this region: a region has one recorder."
  type        = bool
  default     = true
}

variable "config_include_global_resources" {
  description = "Record global resources (IAM) with the recorder. Keep it true in one region of the account only, or the IAM items are recorded once per region."
  type        = bool
  default     = true
}

# --- Root-usage alarm ---------------------------------------------------------

variable "metric_namespace" {
  description = "CloudWatch namespace of the root-usage metric."
  type        = string
  default     = "CISBenchmark"
}

variable "alarm_email" {
  description = "An email address subscribed to the alarm topic (AWS sends a confirmation mail first); null for none."
  type        = string
  default     = null
}
