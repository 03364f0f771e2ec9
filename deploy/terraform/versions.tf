# Valid for the hashicorp/aws provider 3.x (3.39 is what the test command
# applies against the moto emulator) and 5.x. Only resources and arguments
# both accept are used: S3 encryption and versioning are the bucket's own
# blocks, which 3.x requires and 5.x still accepts (deprecated there in
# favour of separate resources that 3.x lacks).
terraform {
  required_version = ">= 1.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 3.39, < 6.0"
    }
  }
}
