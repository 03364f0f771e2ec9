#!/usr/bin/env python3
"""Checks what deploy/terraform made, each resource through its own API.

Run by scripts/deploy/terraform-check against the moto server the module
was applied to. `--phase applied` reads every resource back and compares
it with the test root's inputs and with the repository's policy files,
rendered here independently of the module; `--phase preflight` checks the emulator
first; `--phase destroyed` checks that
a destroy left the keys pending deletion and nothing else behind.

The expected values come from the test root's `inputs` output (what the
module was given), never from the module's own outputs alone: a module that
ignored an input would still say it made what it made.
"""

import argparse
import datetime
import json
import sys
import tomllib
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"  # moto's account
ROOT_USAGE_PATTERN = (
    '{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS'
    ' && $.eventType != "AwsServiceEvent" }'
)
ROOT_RULES = {
    "ROOT_ACCOUNT_MFA_ENABLED",
    "ROOT_ACCOUNT_HARDWARE_MFA_ENABLED",
    "IAM_ROOT_ACCESS_KEY_CHECK",
}
PLACEHOLDERS = ["ACCOUNT_ID", "KEY_ADMIN_ROLE", "SERVICE_ROLE", "REGION", "KEY_ID"]

checked = 0


def check(condition, what, detail=None):
    """One assertion; stops at the first failure with what was found."""
    global checked
    checked += 1
    if not condition:
        message = f"FAIL {what}"
        if detail is not None:
            message += f"\n     found: {detail!r}"
        sys.exit(message)


def as_list(value):
    return value if isinstance(value, list) else [value]


def normalised(policy):
    """A policy with every single value as a one-element list, so that
    "Action": "x" and "Action": ["x"] compare equal (IAM treats them alike)."""
    if isinstance(policy, dict):
        return {k: normalised(v) for k, v in policy.items()}
    if isinstance(policy, list):
        return [normalised(v) for v in policy]
    return policy


def render(path, replacements):
    text = Path(path).read_text()
    for old, new in replacements:
        text = text.replace(old, new)
    for word in PLACEHOLDERS:
        check(word not in text, f"{Path(path).name}: no {word} left after rendering")
    return json.loads(text)


def error_code(call, *args, **kwargs):
    """The error code a call fails with, or None when it succeeds."""
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def tags_of(pairs, key="Key", value="Value"):
    return {p[key]: p[value] for p in pairs}


def has_tags(found, wanted, what):
    missing = {k: v for k, v in wanted.items() if found.get(k) != v}
    check(not missing, f"{what} carries the tags", found)


class Aws:
    def __init__(self, endpoint, region):
        self.region = region
        kwargs = dict(
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for name in ["kms", "iam", "cloudtrail", "s3", "logs", "cloudwatch", "sns", "config", "sts"]:
            setattr(self, name, boto3.client(name, **kwargs))


def applied(aws, out, policies):
    inputs = out["inputs"]
    region = inputs["region"]
    tags = inputs["tags"]
    prefix = inputs["secret_name_prefix"]
    check(aws.sts.get_caller_identity()["Account"] == ACCOUNT, "moto's account")

    # --- the custody key, its policy and alias --------------------------------
    key_arn, key_id = out["key_arn"], out["key_id"]
    meta = aws.kms.describe_key(KeyId=key_arn)["KeyMetadata"]
    check(meta["KeyId"] == key_id and meta["Arn"] == key_arn, "custody key: id and ARN", meta)
    check(meta["KeyState"] == "Enabled", "custody key: enabled", meta["KeyState"])
    check(meta.get("KeySpec", meta.get("CustomerMasterKeySpec")) == "SYMMETRIC_DEFAULT", "custody key: symmetric", meta)
    check(meta["KeyUsage"] == "ENCRYPT_DECRYPT", "custody key: encrypt/decrypt", meta)
    check(aws.kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], "custody key: rotation enabled")
    service_role_arn = out["service_role_arn"]
    service_role = service_role_arn.split(":role/", 1)[1]
    want_key_policy = render(
        policies / "kms-key-policy.json",
        [
            ("ACCOUNT_ID", ACCOUNT),
            ("KEY_ADMIN_ROLE", inputs["key_admin_role_name"]),
            ("SERVICE_ROLE", service_role),
        ],
    )
    got_key_policy = json.loads(aws.kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    check(got_key_policy == want_key_policy, "custody key: policy is policies/iam/kms-key-policy.json rendered", got_key_policy)
    has_tags(tags_of(aws.kms.list_resource_tags(KeyId=key_id)["Tags"], "TagKey", "TagValue"), tags, "custody key")
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in aws.kms.list_aliases()["Aliases"]}
    check(aliases.get(out["key_alias"]) == key_id, f"alias {out['key_alias']} points at the custody key", aliases)
    check(out["key_alias"] == "alias/breakglass", "the alias is alias/breakglass by default", out["key_alias"])

    # --- the service role: IRSA trust, rendered inline policy ------------------
    role = aws.iam.get_role(RoleName=service_role)["Role"]
    check(role["Arn"] == service_role_arn, "service role: ARN", role["Arn"])
    check(role.get("MaxSessionDuration") == 3600, "service role: one-hour sessions", role.get("MaxSessionDuration"))
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    statements = trust["Statement"]
    check(len(statements) == 1, "service role: one trust statement", statements)
    st = statements[0]
    issuer = inputs["oidc_provider_arn"].split(":oidc-provider/", 1)[1]
    check(st["Effect"] == "Allow", "trust: Allow", st)
    check(as_list(st["Action"]) == ["sts:AssumeRoleWithWebIdentity"], "trust: sts:AssumeRoleWithWebIdentity only", st)
    check(st["Principal"] == {"Federated": inputs["oidc_provider_arn"]}, "trust: the cluster's OIDC provider only", st)
    want_condition = {
        "StringEquals": {
            f"{issuer}:sub": [
                f"system:serviceaccount:{inputs['kubernetes_namespace']}:{inputs['kubernetes_service_account']}"
            ],
            f"{issuer}:aud": ["sts.amazonaws.com"],
        }
    }
    check(normalised_condition(st.get("Condition")) == want_condition, "trust: sub and aud conditions", st.get("Condition"))
    has_tags(tags_of(role.get("Tags", [])), tags, "service role")
    names = aws.iam.list_role_policies(RoleName=service_role)["PolicyNames"]
    check(names == ["breakglass-service"], "service role: one inline policy", names)
    check(
        aws.iam.list_attached_role_policies(RoleName=service_role)["AttachedPolicies"] == [],
        "service role: no managed policy",
    )
    want_role_policy = render(
        policies / "service-role-policy.json",
        [
            (":secret:breakglass/", f":secret:{prefix}"),
            ("REGION", region),
            ("ACCOUNT_ID", ACCOUNT),
            ("KEY_ID", key_id),
        ],
    )
    got_role_policy = aws.iam.get_role_policy(RoleName=service_role, PolicyName="breakglass-service")["PolicyDocument"]
    if isinstance(got_role_policy, str):
        got_role_policy = json.loads(got_role_policy)
    check(got_role_policy == want_role_policy, "service role: policy is policies/iam/service-role-policy.json rendered", got_role_policy)
    secret_resources = {
        r
        for s in got_role_policy["Statement"]
        if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
        for r in as_list(s["Resource"])
    }
    check(
        secret_resources == {f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{prefix}*"},
        "service role: Secrets Manager only under the prefix",
        secret_resources,
    )

    # --- the audit key -----------------------------------------------------------------
    audit_arn = out["audit_key_arn"]
    check(audit_arn != key_arn, "the audit key is not the custody key")
    audit = aws.kms.describe_key(KeyId=audit_arn)["KeyMetadata"]
    check(audit["KeyState"] == "Enabled", "audit key: enabled", audit["KeyState"])
    check(aws.kms.get_key_rotation_status(KeyId=audit_arn)["KeyRotationEnabled"], "audit key: rotation enabled")
    audit_policy = json.loads(aws.kms.get_key_policy(KeyId=audit_arn, PolicyName="default")["Policy"])
    by_sid = {s.get("Sid"): s for s in audit_policy["Statement"]}
    trail_arn = out["trail_arn"]
    ct = by_sid.get("CloudTrailEncryptsThisTrailsLogs")
    check(
        ct is not None
        and ct["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        and as_list(ct["Action"]) == ["kms:GenerateDataKey*"]
        and as_list(ct["Condition"]["StringEquals"]["aws:SourceArn"]) == [trail_arn],
        "audit key: CloudTrail may encrypt this trail's files",
        ct,
    )
    log_group = out["log_group_name"]
    log_group_arn = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{log_group}"
    lg = by_sid.get("CloudWatchLogsForTheTrailLogGroupOnly")
    check(
        lg is not None
        and lg["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
        and as_list(lg["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]) == [log_group_arn],
        "audit key: CloudWatch Logs may use it for the trail's log group only",
        lg,
    )
    cw = by_sid.get("CloudWatchAlarmsPublishToTheTopic")
    check(cw is not None and cw["Principal"] == {"Service": "cloudwatch.amazonaws.com"}, "audit key: alarms may publish", cw)
    wildcard = [s for s in audit_policy["Statement"] if s["Principal"] in ("*", {"AWS": "*"})]
    check(not wildcard, "audit key: no wildcard principal", wildcard)
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in aws.kms.list_aliases()["Aliases"]}
    check(aliases.get(f"{out['key_alias']}-audit") == audit["KeyId"], "audit key: alias", aliases)

    # --- the trail -----------------------------------------------------------------
    trails = aws.cloudtrail.describe_trails(trailNameList=[trail_arn], includeShadowTrails=False)["trailList"]
    check(len(trails) == 1, "trail: exists", trails)
    t = trails[0]
    bucket = out["trail_bucket_name"]
    check(t["TrailARN"] == trail_arn, "trail: ARN", t)
    check(t["IsMultiRegionTrail"] is True, "trail: multi-region", t)
    check(t["LogFileValidationEnabled"] is True, "trail: log file validation", t)
    check(t["IncludeGlobalServiceEvents"] is True, "trail: global service events", t)
    check(t["S3BucketName"] == bucket, "trail: delivers to the bucket", t)
    check(t.get("KmsKeyId") == audit_arn, "trail: encrypted with the audit key", t)
    check(t.get("CloudWatchLogsLogGroupArn") == f"{log_group_arn}:*", "trail: delivers to the log group", t)
    logs_role_arn = t.get("CloudWatchLogsRoleArn", "")
    check(logs_role_arn.endswith(":role/breakglass-cloudtrail-logs"), "trail: through its role", t)
    check(aws.cloudtrail.get_trail_status(Name=trail_arn)["IsLogging"] is True, "trail: logging")
    tag_list = aws.cloudtrail.list_tags(ResourceIdList=[trail_arn])["ResourceTagList"]
    has_tags(tags_of(tag_list[0].get("TagsList", [])) if tag_list else {}, tags, "trail")
    logs_role = logs_role_arn.split(":role/", 1)[1]
    logs_trust = aws.iam.get_role(RoleName=logs_role)["Role"]["AssumeRolePolicyDocument"]
    check(
        [s["Principal"] for s in logs_trust["Statement"]] == [{"Service": "cloudtrail.amazonaws.com"}],
        "trail role: CloudTrail assumes it",
        logs_trust,
    )
    logs_policy = aws.iam.get_role_policy(RoleName=logs_role, PolicyName="cloudtrail-logs")["PolicyDocument"]
    check(
        [(sorted(as_list(s["Action"])), as_list(s["Resource"])) for s in logs_policy["Statement"]]
        == [(["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group_arn}:log-stream:*"])],
        "trail role: writes the trail's log streams only",
        logs_policy,
    )

    # --- the bucket -----------------------------------------------------------------
    enc = aws.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    check(len(enc) == 1, "bucket: one encryption rule", enc)
    default = enc[0]["ApplyServerSideEncryptionByDefault"]
    check(default["SSEAlgorithm"] == "aws:kms", "bucket: SSE-KMS", enc)
    check(default.get("KMSMasterKeyID") == audit_arn, "bucket: with the audit key", enc)
    check(enc[0].get("BucketKeyEnabled") is True, "bucket: bucket key", enc)
    check(aws.s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled", "bucket: versioning on")
    pab = aws.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    check(
        all(pab.get(k) is True for k in ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]),
        "bucket: public access blocked",
        pab,
    )
    own = aws.s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    check(own == [{"ObjectOwnership": "BucketOwnerPreferred"}], "bucket: owner owns delivered files", own)
    policy = json.loads(aws.s3.get_bucket_policy(Bucket=bucket)["Policy"])
    by_sid = {s.get("Sid"): s for s in policy["Statement"]}
    acl = by_sid.get("CloudTrailChecksTheAcl")
    check(
        acl is not None
        and acl["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        and as_list(acl["Action"]) == ["s3:GetBucketAcl"]
        and as_list(acl["Condition"]["StringEquals"]["aws:SourceArn"]) == [trail_arn],
        "bucket policy: CloudTrail checks the ACL, for this trail",
        acl,
    )
    put = by_sid.get("CloudTrailWritesThisAccountsLogs")
    check(
        put is not None
        and as_list(put["Action"]) == ["s3:PutObject"]
        and as_list(put["Resource"]) == [f"arn:aws:s3:::{bucket}/AWSLogs/{ACCOUNT}/*"]
        and as_list(put["Condition"]["StringEquals"]["s3:x-amz-acl"]) == ["bucket-owner-full-control"]
        and as_list(put["Condition"]["StringEquals"]["aws:SourceArn"]) == [trail_arn],
        "bucket policy: CloudTrail writes this account's files, owner-controlled",
        put,
    )
    tls = by_sid.get("DenyPlainHttp")
    check(
        tls is not None and tls["Effect"] == "Deny" and as_list(tls["Condition"]["Bool"]["aws:SecureTransport"]) == ["false"],
        "bucket policy: TLS only",
        tls,
    )
    check(
        {"ConfigChecksTheAcl", "ConfigChecksTheBucket", "ConfigWritesThisAccountsItems"} <= set(by_sid),
        "bucket policy: Config may deliver",
        sorted(by_sid),
    )
    rules = {r["ID"]: r for r in aws.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    abort = rules.get("abort-incomplete-uploads", {})
    check(
        abort.get("Status") == "Enabled"
        and abort.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 7,
        "bucket: incomplete uploads aborted",
        rules,
    )
    expire = rules.get("expire-log-files", {})
    days = inputs["trail_log_expiration_days"]
    check(
        expire.get("Status") == "Enabled"
        and expire.get("Expiration", {}).get("Days") == days
        and expire.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == days,
        "bucket: files expire after trail_log_expiration_days",
        rules,
    )
    has_tags(tags_of(aws.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]), tags, "bucket")

    # --- the log group, metric filter, alarm and topic --------------------------------
    groups = [g for g in aws.logs.describe_log_groups(logGroupNamePrefix=log_group)["logGroups"] if g["logGroupName"] == log_group]
    check(len(groups) == 1, "log group: exists", groups)
    check(groups[0].get("retentionInDays") == inputs["log_retention_in_days"], "log group: retention", groups[0])
    check(groups[0].get("kmsKeyId") == audit_arn, "log group: encrypted with the audit key", groups[0])
    has_tags(aws.logs.list_tags_log_group(logGroupName=log_group).get("tags", {}), tags, "log group")
    filters = aws.logs.describe_metric_filters(logGroupName=log_group)["metricFilters"]
    check(len(filters) == 1, "metric filter: one on the log group", filters)
    f = filters[0]
    check(f["filterPattern"] == ROOT_USAGE_PATTERN, "metric filter: the CIS root-usage pattern", f["filterPattern"])
    mt = f["metricTransformations"]
    check(
        len(mt) == 1 and mt[0]["metricName"] == "RootAccountUsage" and mt[0]["metricValue"] == "1",
        "metric filter: counts RootAccountUsage",
        mt,
    )
    namespace = mt[0]["metricNamespace"]
    alarms = [
        a
        for a in aws.cloudwatch.describe_alarms()["MetricAlarms"]
        if a.get("MetricName") == "RootAccountUsage" and a.get("Namespace") == namespace
    ]
    check(len(alarms) == 1, "alarm: one on the metric", alarms)
    a = alarms[0]
    topic = out["sns_topic_arn"]
    check(a["Statistic"] == "Sum" and a["Period"] == 300 and a["EvaluationPeriods"] == 1, "alarm: sum over 300 s", a)
    check(a["Threshold"] == 1.0 and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", "alarm: threshold 1", a)
    check(a["ActionsEnabled"] is True and a["AlarmActions"] == [topic], "alarm: notifies the topic", a)
    check(a.get("TreatMissingData") == "notBreaching", "alarm: no data is no root use", a)
    has_tags(tags_of(aws.cloudwatch.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"]), tags, "alarm")
    attrs = aws.sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    check(attrs.get("KmsMasterKeyId") == audit_arn, "topic: encrypted with the audit key", attrs)
    subs = aws.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    check(
        [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", inputs["alarm_email"])],
        "topic: the email subscription",
        subs,
    )
    has_tags(tags_of(aws.sns.list_tags_for_resource(ResourceArn=topic)["Tags"]), tags, "topic")

    # --- AWS Config -----------------------------------------------------------------
    recorders = aws.config.describe_configuration_recorders()["ConfigurationRecorders"]
    check(len(recorders) == 1, "config: one recorder", recorders)
    rec = recorders[0]
    group = rec["recordingGroup"]
    check(group.get("allSupported") is True and group.get("includeGlobalResourceTypes") is True, "config: records everything", rec)
    config_role = rec["roleARN"].split(":role/", 1)[1]
    attached = [p["PolicyArn"] for p in aws.iam.list_attached_role_policies(RoleName=config_role)["AttachedPolicies"]]
    check(attached == ["arn:aws:iam::aws:policy/service-role/AWS_ConfigRole"], "config: the recorder role has AWS_ConfigRole", attached)
    status = aws.config.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]
    check([s.get("recording") for s in status] == [True], "config: recording", status)
    channels = aws.config.describe_delivery_channels()["DeliveryChannels"]
    check(
        [(c["s3BucketName"], c.get("s3KeyPrefix")) for c in channels] == [(bucket, "config")],
        "config: delivers into the bucket under config/",
        channels,
    )
    config_rules = aws.config.describe_config_rules()["ConfigRules"]
    sources = {(r["Source"]["Owner"], r["Source"]["SourceIdentifier"]) for r in config_rules}
    check(sources == {("AWS", s) for s in ROOT_RULES}, "config: the three root rules, AWS-managed", sources)
    for r in config_rules:
        has_tags(tags_of(aws.config.list_tags_for_resource(ResourceArn=r["ConfigRuleArn"])["Tags"]), tags, f"config rule {r['ConfigRuleName']}")

    # --- the outputs meant for people -------------------------------------------------
    conf = tomllib.loads(out["breakglass_config"])
    check(conf["keys"] == {"service": "aws-kms", "kms_key_id": key_arn}, "breakglass_config: [keys]", conf)
    check(conf["secrets"] == {"store": "aws-secretsmanager", "name_prefix": prefix}, "breakglass_config: [secrets]", conf)
    check(conf["aws"] == {"region": region}, "breakglass_config: [aws]", conf)
    check(out["helm_service_account_role_arn"] == service_role_arn, "helm serviceAccount.roleArn: the service role")


def normalised_condition(condition):
    if condition is None:
        return None
    return {op: {k: as_list(v) for k, v in keys.items()} for op, keys in condition.items()}


def preflight(aws):
    """What the emulator must offer before an apply means anything."""
    check(aws.sts.get_caller_identity()["Account"] == ACCOUNT, "moto's account")
    code = error_code(aws.iam.get_policy, PolicyArn="arn:aws:iam::aws:policy/service-role/AWS_ConfigRole")
    check(
        code is None,
        "moto knows the AWS managed policy AWS_ConfigRole (start it with MOTO_IAM_LOAD_MANAGED_POLICIES=true)",
        code,
    )
    leftovers = {
        "roles": [r["RoleName"] for r in aws.iam.list_roles()["Roles"]],
        "keys": aws.kms.list_keys()["Keys"],
        "trails": aws.cloudtrail.describe_trails()["trailList"],
        "recorders": aws.config.describe_configuration_recorders()["ConfigurationRecorders"],
    }
    check(not any(leftovers.values()), "moto starts empty (after its reset)", leftovers)


def destroyed(aws, out):
    inputs = out["inputs"]
    window = datetime.timedelta(days=inputs["key_deletion_window_in_days"])
    now = datetime.datetime.now(datetime.timezone.utc)
    for what, arn in [("custody key", out["key_arn"]), ("audit key", out["audit_key_arn"])]:
        meta = aws.kms.describe_key(KeyId=arn)["KeyMetadata"]
        check(meta["KeyState"] == "PendingDeletion", f"{what}: pending deletion", meta["KeyState"])
        when = meta.get("DeletionDate")
        check(
            when is not None and abs(when - (now + window)) < datetime.timedelta(hours=1),
            f"{what}: deleted after the {window.days}-day window",
            when,
        )
    aliases = {a["AliasName"] for a in aws.kms.list_aliases()["Aliases"]}
    check(not {out["key_alias"], f"{out['key_alias']}-audit"} & aliases, "aliases: gone", aliases)
    roles = {r["RoleName"] for r in aws.iam.list_roles()["Roles"]}
    check(not roles, "roles: gone", roles)
    check(aws.cloudtrail.describe_trails()["trailList"] == [], "trail: gone")
    check(error_code(aws.s3.head_bucket, Bucket=out["trail_bucket_name"]) in ("404", "NoSuchBucket"), "bucket: gone")
    check(aws.logs.describe_log_groups()["logGroups"] == [], "log group: gone")
    check(aws.cloudwatch.describe_alarms()["MetricAlarms"] == [], "alarm: gone")
    check(aws.sns.list_topics()["Topics"] == [], "topic: gone")
    check(aws.sns.list_subscriptions()["Subscriptions"] == [], "subscription: gone")
    check(aws.config.describe_config_rules()["ConfigRules"] == [], "config rules: gone")
    check(aws.config.describe_configuration_recorders()["ConfigurationRecorders"] == [], "config recorder: gone")
    check(aws.config.describe_delivery_channels()["DeliveryChannels"] == [], "config delivery channel: gone")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True, help="the moto server's URL")
    p.add_argument("--outputs", type=Path, help="`terraform output -json` of the test root (not for preflight)")
    p.add_argument("--policies", required=True, type=Path, help="the repository's policies/iam")
    p.add_argument("--region", default="eu-west-1", help="the region, for preflight")
    p.add_argument("--phase", required=True, choices=["preflight", "applied", "destroyed"])
    args = p.parse_args()
    if args.phase == "preflight":
        preflight(Aws(args.endpoint, args.region))
        print(f"{checked} checks passed")
        return
    if args.outputs is None:
        p.error("--outputs is needed after an apply")
    out = {k: v["value"] for k, v in json.loads(args.outputs.read_text()).items()}
    aws = Aws(args.endpoint, out["inputs"]["region"])
    if args.phase == "applied":
        applied(aws, out, args.policies)
    else:
        destroyed(aws, out)
    print(f"{checked} checks passed")


if __name__ == "__main__":
    main()
