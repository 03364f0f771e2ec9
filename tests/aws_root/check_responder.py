"""The responder, checked with botocore's own serializers and parsers: every
call it answers is made through a boto3 client (botocore builds the request
from the service model and parses the answer, errors included), against a
moto server behind the responder.

    check_responder.py   (starts moto and the responder on free ports)
"""

import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = "arn:aws:iam::aws:policy/root-task/"
CREDS = dict(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
# Out-of-range input must reach the server: botocore checks some
# constraints itself, and the responder's own validation is what is tested.
RAW = Config(parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait(url):
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"FAIL {url} did not answer")


def control(endpoint, body):
    req = urllib.request.Request(endpoint + "/_responder/state", data=json.dumps(body).encode(), method="POST")
    return json.load(urllib.request.urlopen(req))


def as_account(endpoint, account, service, operation, params):
    req = urllib.request.Request(endpoint + "/_responder/as_account", method="POST", data=json.dumps(
        {"account": account, "service": service, "operation": operation, "params": params}).encode())
    try:
        return json.load(urllib.request.urlopen(req))
    except urllib.error.HTTPError as e:
        return json.load(e)


def refused(call, code):
    try:
        call()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


def main():
    moto_port, port = free_port(), free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    responder = subprocess.Popen([sys.executable, os.path.join(HERE, "responder.py"), "--port", str(port),
                                  "--upstream", f"http://127.0.0.1:{moto_port}"], stdout=subprocess.DEVNULL)
    try:
        wait(f"http://127.0.0.1:{moto_port}/moto-api/")
        endpoint = f"http://127.0.0.1:{port}"
        wait(endpoint + "/_responder/state")
        checks(endpoint)
    finally:
        responder.kill()
        moto.kill()
    print("responder: every check passed against botocore")


def checks(endpoint):
    client = lambda svc, **kw: boto3.client(svc, endpoint_url=endpoint, **{**CREDS, **kw})
    org = client("organizations")
    org.create_organization(FeatureSet="ALL")
    members = [org.create_account(Email=f"m{i}@example.com", AccountName=f"member-{i}")["CreateAccountStatus"]["AccountId"]
               for i in range(3)]
    master = org.describe_organization()["Organization"]["MasterAccountId"]
    print(f"ok   Organizations forwarded to moto: management {master}, {len(members)} members")

    iam = client("iam")
    refused(iam.list_organizations_features, "ServiceAccessNotEnabledException")
    org.enable_aws_service_access(ServicePrincipal="iam.amazonaws.com")
    enabled = [s["ServicePrincipal"] for s in org.list_aws_service_access_for_organization()["EnabledServicePrincipals"]]
    assert enabled == ["iam.amazonaws.com"], enabled
    assert iam.list_organizations_features()["EnabledFeatures"] == []
    iam.enable_organizations_root_credentials_management()
    out = iam.enable_organizations_root_sessions()
    assert out["EnabledFeatures"] == ["RootCredentialsManagement", "RootSessions"], out
    assert out["OrganizationId"].startswith("o-"), out
    print("ok   trusted access and both features: enabled and listed")

    sts = client("sts")
    raw_sts = client("sts", config=RAW)
    s = sts.assume_root(TargetPrincipal=members[0], TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}, DurationSeconds=900)
    c = s["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and isinstance(c["Expiration"], datetime.datetime), c
    assert 890 <= (c["Expiration"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds() <= 900, c
    print("ok   AssumeRoot: credentials parsed, 900 s")

    for bad, code in [
        (dict(TargetPrincipal=members[0], TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}, DurationSeconds=901), "ValidationError"),
        (dict(TargetPrincipal=members[0], TaskPolicyArn={"arn": TASK + "AdministratorAccess"}), "ValidationError"),
        (dict(TargetPrincipal="1234", TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}), "ValidationError"),
        (dict(TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}), "ValidationError"),
        (dict(TargetPrincipal=master, TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}), "AccessDenied"),
        (dict(TargetPrincipal="999999999999", TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}), "AccessDenied"),
    ]:
        e = refused(lambda: raw_sts.assume_root(**bad), code)
        assert e.response["Error"]["Message"], e.response
    print("ok   AssumeRoot refusals: duration over 900, unknown task, short or missing principal, the management account, an outsider")

    def session_iam(s):
        c = s["Credentials"]
        return client("iam", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"])

    audit = session_iam(s)
    refused(audit.get_login_profile, "NoSuchEntity")
    assert audit.list_access_keys()["AccessKeyMetadata"] == []
    control(endpoint, {"root": {members[0]: {
        "password": True, "access_keys": ["AKIAROOTKEY000000001"],
        "mfa_devices": [f"arn:aws:iam::{members[0]}:mfa/root-account-mfa-device"],
        "signing_certificates": ["CERTID0000000000000000001"]}}})
    assert audit.get_login_profile()["LoginProfile"]["CreateDate"]
    keys = audit.list_access_keys()["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == ["AKIAROOTKEY000000001"] and keys[0]["Status"] == "Active", keys
    assert len(audit.list_mfa_devices()["MFADevices"]) == 1
    assert len(audit.list_signing_certificates()["Certificates"]) == 1
    refused(lambda: audit.delete_login_profile(), "AccessDenied")
    refused(lambda: client("iam", config=RAW, aws_access_key_id=s["Credentials"]["AccessKeyId"],
                           aws_secret_access_key="x", aws_session_token="y").get_login_profile(UserName="alice"), "AccessDenied")
    print("ok   an audit session lists the root user's credentials and may not delete them")

    d = session_iam(sts.assume_root(TargetPrincipal=members[0], TaskPolicyArn={"arn": TASK + "IAMDeleteRootUserCredentials"}))
    d.delete_login_profile()
    d.delete_access_key(AccessKeyId="AKIAROOTKEY000000001")
    d.deactivate_mfa_device(SerialNumber=f"arn:aws:iam::{members[0]}:mfa/root-account-mfa-device")
    d.delete_signing_certificate(CertificateId="CERTID0000000000000000001")
    refused(lambda: d.delete_access_key(AccessKeyId="AKIAROOTKEY000000001"), "NoSuchEntity")
    refused(audit.get_login_profile, "NoSuchEntity")
    assert audit.list_access_keys()["AccessKeyMetadata"] == []
    print("ok   a delete session removes password, key, MFA device and certificate; the audit shows them gone")

    p = session_iam(sts.assume_root(TargetPrincipal=members[1], TaskPolicyArn={"arn": TASK + "IAMCreateRootUserPassword"}))
    assert p.create_login_profile()["LoginProfile"]["PasswordResetRequired"] is True
    refused(p.create_login_profile, "EntityAlreadyExists")
    refused(lambda: client("iam", config=RAW, aws_access_key_id=p._request_signer._credentials.access_key,
                           aws_secret_access_key="x", aws_session_token="y").create_login_profile(Password="Secret-pass-1"), "ValidationError")
    print("ok   password recovery: a login profile without a password, once")

    # The broker's own session, with its SourceIdentity, flows into the root session.
    role = client("iam").create_role(RoleName="breakglass-broker", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"]}]}))["Role"]["Arn"]
    b = sts.assume_role(RoleArn=role, RoleSessionName="breakglass-req-1", SourceIdentity="req-1")["Credentials"]
    broker = client("sts", aws_access_key_id=b["AccessKeyId"], aws_secret_access_key=b["SecretAccessKey"], aws_session_token=b["SessionToken"])
    s = broker.assume_root(TargetPrincipal=members[2], TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}, DurationSeconds=60)
    assert s["SourceIdentity"] == "req-1", s
    print("ok   SourceIdentity of the broker's session flows into the root session")

    # S3 and SQS in a root session: checked against the task, forwarded to
    # moto as the member account; botocore parses the answers and errors.
    def session_client(service, s, **kw):
        c = s["Credentials"]
        return client(service, aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"], **kw)

    owner = members[2]
    deny = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}]})
    for op, params in [("create_bucket", {"Bucket": "locked-bucket"}),
                       ("put_bucket_policy", {"Bucket": "locked-bucket", "Policy": deny})]:
        made = as_account(endpoint, owner, "s3", op, params)
        assert "error" not in made, made
    path_style = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1, "mode": "standard"})
    unlock = session_client("s3", sts.assume_root(TargetPrincipal=owner, TaskPolicyArn={"arn": TASK + "S3UnlockBucketPolicy"}),
                            config=path_style)
    assert json.loads(unlock.get_bucket_policy(Bucket="locked-bucket")["Policy"])["Statement"][0]["Effect"] == "Deny"
    unlock.delete_bucket_policy(Bucket="locked-bucket")
    refused(lambda: unlock.get_bucket_policy(Bucket="locked-bucket"), "NoSuchBucketPolicy")
    refused(unlock.list_buckets, "AccessDenied")
    refused(lambda: session_client("s3", s, config=path_style).get_bucket_policy(Bucket="locked-bucket"), "AccessDenied")
    gone = as_account(endpoint, owner, "s3", "get_bucket_policy", {"Bucket": "locked-bucket"})
    assert gone.get("error") == "NoSuchBucketPolicy", gone
    print("ok   an S3 unlock session reads and deletes the bucket policy in its account, and nothing else")

    q = as_account(endpoint, owner, "sqs", "create_queue", {"QueueName": "locked", "Attributes": {"Policy": deny}})["QueueUrl"]
    assert f"/{owner}/locked" in q, q
    queue = session_client("sqs", sts.assume_root(TargetPrincipal=owner, TaskPolicyArn={"arn": TASK + "SQSUnlockQueuePolicy"}),
                           config=RAW)
    assert queue.get_queue_attributes(QueueUrl=q, AttributeNames=["Policy"])["Attributes"]["Policy"]
    queue.set_queue_attributes(QueueUrl=q, Attributes={"Policy": ""})
    left = queue.get_queue_attributes(QueueUrl=q, AttributeNames=["Policy"]).get("Attributes", {})
    assert not left.get("Policy"), left
    refused(lambda: queue.delete_queue(QueueUrl=q), "AccessDenied")
    print("ok   an SQS unlock session reads and removes the queue policy (JSON protocol), and may not delete the queue")

    control(endpoint, {"fail": {"service": "sts", "mode": "throttle", "count": 1}})
    refused(lambda: raw_sts.assume_root(TargetPrincipal=members[0], TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}), "Throttling")
    s = sts.assume_root(TargetPrincipal=members[0], TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"})
    control(endpoint, {"fail": {"service": "sts", "mode": "unavailable"}})
    refused(lambda: raw_sts.assume_root(TargetPrincipal=members[0], TaskPolicyArn={"arn": TASK + "IAMAuditRootUserCredentials"}), "ServiceUnavailable")
    control(endpoint, {"fail": {"service": "organizations", "mode": "throttle", "count": 1}})
    refused(lambda: client("organizations", config=RAW).list_accounts(), "TooManyRequestsException")
    control(endpoint, {"fail": {"service": "organizations", "mode": "unavailable", "count": 1}})
    refused(lambda: client("organizations", config=RAW).list_accounts(), "ServiceException")
    control(endpoint, {"fail": None})
    print("ok   throttling and an outage answer in the error shapes botocore reads")

    # The shipped IAM documents: valid policies as moto's validator reads
    # them, and the two SCPs accepted by Organizations.
    policies = os.path.join(HERE, "..", "..", "policies", "iam")
    doc = open(os.path.join(policies, "service-role-policy.json")).read()
    client("iam").create_policy(PolicyName="service-role-policy", PolicyDocument=doc)
    # moto's validator predates AssumeRoot's resource (the member account's
    # root, arn:aws:iam::ACCOUNT:root): the broker's policy is checked for
    # what it must say instead.
    broker = json.load(open(os.path.join(policies, "root-broker-policy.json")))
    assume = [s for s in broker["Statement"] if s["Action"] == "sts:AssumeRoot"]
    assert len(assume) == 1 and assume[0]["Effect"] == "Allow", assume
    assert assume[0]["Resource"] == "arn:aws:iam::*:root", assume
    tasks = assume[0]["Condition"]["StringEquals"]["sts:TaskPolicyArn"]
    assert sorted(t.rsplit("/", 1)[1] for t in tasks) == sorted([
        "IAMAuditRootUserCredentials", "IAMCreateRootUserPassword", "IAMDeleteRootUserCredentials",
        "S3UnlockBucketPolicy", "SQSUnlockQueuePolicy"]), tasks
    assert all(t.startswith(TASK) for t in tasks), tasks
    other = [a for s in broker["Statement"] if s is not assume[0] for a in s["Action"]]
    assert all(a.split(":")[1].startswith(("Describe", "List")) for a in other), other
    trust = open(os.path.join(policies, "root-broker-trust-policy.json")).read()
    client("iam").create_role(RoleName="breakglass-root-broker", AssumeRolePolicyDocument=trust)
    for name in ("scp-deny-assume-root.json", "scp-member-root-deny.json"):
        doc = open(os.path.join(policies, name)).read()
        org.create_policy(Name=name.split(".")[0], Description="breakglass", Type="SERVICE_CONTROL_POLICY", Content=doc)
    print("ok   policies/iam: the broker's policy and trust policy, and both SCPs, accepted")


if __name__ == "__main__":
    main()
