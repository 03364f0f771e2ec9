"""Read back what the Terraform module created, each resource through its
own API (boto3 against moto), and compare with what the module says.

    terraform_assert.py ENDPOINT OUTPUTS.json POLICIES_DIR
    terraform_assert.py --destroyed ENDPOINT OUTPUTS.json
"""

import json
import sys

import boto3

ACCOUNT = "123456789012"


def client(name, endpoint):
    return boto3.client(name, endpoint_url=endpoint, region_name="us-east-1")


def check(what, cond, detail=""):
    if not cond:
        print(f"FAIL {what} {detail}")
        sys.exit(1)
    print(f"ok   {what}")


def applied(endpoint, out, policies):
    kms = client("kms", endpoint)
    key_id = out["kms_key_id"]
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    check("KMS key enabled, symmetric", meta["KeyState"] == "Enabled" and meta["KeySpec"] == "SYMMETRIC_DEFAULT", meta)
    check("KMS key rotation on", kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"])
    want = open(f"{policies}/kms-key-policy.json").read()
    want = want.replace("ACCOUNT_ID", ACCOUNT).replace("KEY_ADMIN_ROLE", "security-key-admin").replace("SERVICE_ROLE", "breakglass-service")
    got = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    check("KMS key policy is policies/iam/kms-key-policy.json, rendered", got == json.loads(want), json.dumps(got)[:300])
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    check("alias/breakglass names the key", aliases.get("alias/breakglass") == key_id, aliases)

    iam = client("iam", endpoint)
    role = iam.get_role(RoleName="breakglass-service")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    st = trust["Statement"][0]
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
    check(
        "service role trusts only the chart's service account, through IRSA",
        st["Action"] == "sts:AssumeRoleWithWebIdentity"
        and st["Principal"]["Federated"].endswith(f"oidc-provider/{issuer}")
        and st["Condition"]["StringEquals"] == {f"{issuer}:sub": "system:serviceaccount:breakglass:bg-breakglass", f"{issuer}:aud": "sts.amazonaws.com"},
        st,
    )
    doc = iam.get_role_policy(RoleName="breakglass-service", PolicyName="breakglass-service")["PolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(doc)
    want = open(f"{policies}/service-role-policy.json").read()
    want = want.replace("REGION", "us-east-1").replace("ACCOUNT_ID", ACCOUNT).replace("KEY_ID", key_id)
    check("service role policy is policies/iam/service-role-policy.json, rendered", doc == json.loads(want), json.dumps(doc)[:300])
    check("output service_role_arn", out["service_role_arn"] == role["Arn"])

    ct = client("cloudtrail", endpoint)
    trail = ct.get_trail(Name=out["trail_arn"])["Trail"]
    check("trail: multi-region", trail["IsMultiRegionTrail"], trail)
    check("trail: log file validation", trail["LogFileValidationEnabled"], trail)
    check("trail: global service events", trail["IncludeGlobalServiceEvents"], trail)
    check("trail: into the bucket, KMS-encrypted", trail["S3BucketName"] == out["trail_bucket"] and trail.get("KmsKeyId"), trail)
    check("trail: to CloudWatch Logs", out["trail_log_group"] in trail.get("CloudWatchLogsLogGroupArn", ""), trail)
    check("trail: logging", ct.get_trail_status(Name=out["trail_arn"])["IsLogging"])

    s3 = client("s3", endpoint)
    bucket = out["trail_bucket"]
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    check("bucket: SSE-KMS", sse["SSEAlgorithm"] == "aws:kms" and sse.get("KMSMasterKeyID"), sse)
    check("bucket: versioning", s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled")
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    check("bucket: public access blocked", all(pab.values()) and len(pab) == 4, pab)
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    check("bucket: CloudTrail may write, TLS only", {s["Sid"] for s in policy["Statement"]} >= {"CloudTrailWrites", "TlsOnly"}, policy)

    logs = client("logs", endpoint)
    group = [g for g in logs.describe_log_groups(logGroupNamePrefix=out["trail_log_group"])["logGroups"] if g["logGroupName"] == out["trail_log_group"]][0]
    check("log group: retention and KMS", group.get("retentionInDays") == 365 and group.get("kmsKeyId"), group)
    filters = logs.describe_metric_filters(logGroupName=out["trail_log_group"])["metricFilters"]
    check(
        "CIS root-usage metric filter",
        any('$.userIdentity.type = "Root"' in f["filterPattern"] and "invokedBy NOT EXISTS" in f["filterPattern"] for f in filters),
        filters,
    )
    cw = client("cloudwatch", endpoint)
    alarms = cw.describe_alarms(AlarmNames=["breakglass-root-usage"])["MetricAlarms"]
    check(
        "root-usage alarm notifies the topic",
        len(alarms) == 1 and alarms[0]["Threshold"] == 1 and alarms[0]["Period"] == 300 and alarms[0]["AlarmActions"] == [out["alarm_topic_arn"]],
        alarms,
    )
    sns = client("sns", endpoint)
    attrs = sns.get_topic_attributes(TopicArn=out["alarm_topic_arn"])["Attributes"]
    check("alarm topic: KMS-encrypted", attrs.get("KmsMasterKeyId"), attrs)

    cfg = client("config", endpoint)
    rules = {r["ConfigRuleName"]: r["Source"] for r in cfg.describe_config_rules()["ConfigRules"]}
    for ident in ("ROOT_ACCOUNT_MFA_ENABLED", "ROOT_ACCOUNT_HARDWARE_MFA_ENABLED", "IAM_ROOT_ACCESS_KEY_CHECK"):
        check(f"Config rule {ident}", any(s["Owner"] == "AWS" and s["SourceIdentifier"] == ident for s in rules.values()), rules)
    status = cfg.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]
    check("Config recorder recording", any(s.get("recording") for s in status), status)
    check("output breakglass_config names the alias", 'kms_key_id = "alias/breakglass"' in out["breakglass_config"])


def destroyed(endpoint, out):
    kms = client("kms", endpoint)
    state = kms.describe_key(KeyId=out["kms_key_id"])["KeyMetadata"]["KeyState"]
    check("KMS key pending deletion", state == "PendingDeletion", state)
    iam = client("iam", endpoint)
    check("service role gone", "breakglass-service" not in [r["RoleName"] for r in iam.list_roles()["Roles"]])
    ct = client("cloudtrail", endpoint)
    check("trail gone", not ct.describe_trails()["trailList"])
    cfg = client("config", endpoint)
    check("Config rules gone", not cfg.describe_config_rules()["ConfigRules"])


def main():
    args = sys.argv[1:]
    if args[0] == "--destroyed":
        endpoint, outputs = args[1:3]
        out = json.load(open(outputs))["module"]["value"]
        destroyed(endpoint, out)
    else:
        endpoint, outputs, policies = args
        out = json.load(open(outputs))["module"]["value"]
        applied(endpoint, out, policies)


if __name__ == "__main__":
    main()
