variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "breakglass"
}

variable "tags" {
  description = "Tags on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "key_admin_role_name" {
  description = "Name of the existing IAM role that administers the KMS key (rotation, policy, deletion) but cannot use it."
  type        = string
}

variable "key_deletion_window_days" {
  description = "Days a scheduled deletion of the KMS keys waits (7 to 30)."
  type        = number
  default     = 30
}

variable "kms_alias" {
  description = "Alias of the service's KMS key."
  type        = string
  default     = "alias/breakglass"
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
}

variable "oidc_provider_url" {
  description = "The cluster's OIDC issuer without https://, e.g. oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the service account."
  type        = string
  default     = "breakglass"
}

variable "service_account" {
  description = "Kubernetes service account the pods run as (the Helm chart's, e.g. RELEASE-breakglass)."
  type        = string
  default     = "breakglass"
}

variable "secret_name_prefix" {
  description = "Secrets Manager name prefix the service writes under (its [secrets] name_prefix)."
  type        = string
  default     = "breakglass/"
}

variable "log_retention_days" {
  description = "Retention of the CloudTrail log group in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "create_config_recorder" {
  description = "Create the AWS Config recorder and delivery channel the rules need (false when the account already has one)."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "An address subscribed to the root-usage alarm's topic (empty: none; subscribe your paging tool instead)."
  type        = string
  default     = ""
}
