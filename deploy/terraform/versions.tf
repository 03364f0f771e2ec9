# One module for the hashicorp/aws provider 3.x (3.39 and later) and 5.x.
# Every resource and argument used here exists in both; where the two
# differ (S3 above all) the comments next to the resource say which form
# was chosen and why. The module sets no provider configuration: the caller
# chooses the region, the credentials and any endpoints.
terraform {
  required_version = ">= 1.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 3.39, < 6.0"
    }
  }
}
