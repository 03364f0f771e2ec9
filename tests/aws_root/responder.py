"""A stand-alone responder for the AWS calls no emulator here has:
`sts:AssumeRoot`, the IAM organisation features (`ListOrganizationsFeatures`,
`EnableOrganizationsRootCredentialsManagement`, `EnableOrganizationsRootSessions`),
IAM's trusted access in Organizations, and the IAM calls made inside a root
session (no `UserName`: they act on the member account's root user).

Everything else is forwarded, byte for byte, to the moto server behind it
(Organizations, STS AssumeRole, KMS, S3, ...), so a client needs one
endpoint. It speaks the real wire protocols: the query protocol for STS
(2011-06-15) and IAM (2010-05-08), with their XML answers and error XML;
the JSON 1.1 protocol for Organizations. Requests are validated against
botocore's own service model (required members, types, lengths, ranges,
patterns); `check_responder.py` drives it with botocore's serializers and
parsers.

What it cannot show is what only AWS enforces: the task policies
themselves. It approximates them by letting each root session call only
the actions its task policy names (AccessDenied otherwise).

    responder.py --port PORT --upstream http://127.0.0.1:MOTO_PORT

Control, for tests (not AWS): `GET /_responder/state`, and `POST
/_responder/state` with any of
  {"root": {"ACCOUNT": {"password": true, "access_keys": ["AKIA..."],
            "mfa_devices": ["arn:aws:iam::ACCOUNT:mfa/root"],
            "signing_certificates": ["ID"]}},
   "features": ["RootCredentialsManagement", "RootSessions"],
   "trusted_access": true,
   "fail": {"service": "sts" | "iam" | "organizations",
            "mode": "throttle" | "unavailable", "count": N, "after": M},
   "latency_ms": N}
and `POST /_responder/as_account` with {"account": ID, "service": "s3" | "sqs",
"operation": boto3's method name, "params": {...}}: that call made in moto as
the member account (how tests plant and read buckets and queues there).

S3 and SQS calls signed by a root session's key are checked against its task
policy (AccessDenied otherwise) and forwarded to moto as the session's
member account (moto's `x-moto-account-id`).
"""

import argparse
import datetime
import http.server
import json
import re
import secrets
import threading
import time
import urllib.parse
import urllib.request
import uuid
from xml.sax.saxutils import escape

import boto3
import botocore.session

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
TASK_PREFIX = "arn:aws:iam::aws:policy/root-task/"
# What each task policy lets a root session do (AWS's managed policies,
# reduced to the calls this service makes).
TASKS = {
    "IAMAuditRootUserCredentials": {
        "iam:GetLoginProfile", "iam:ListAccessKeys", "iam:ListMFADevices",
        "iam:ListSigningCertificates", "iam:GetAccessKeyLastUsed", "iam:GetUser",
    },
    "IAMCreateRootUserPassword": {"iam:CreateLoginProfile", "iam:GetLoginProfile"},
    "IAMDeleteRootUserCredentials": {
        "iam:DeleteLoginProfile", "iam:DeleteAccessKey", "iam:DeactivateMFADevice",
        "iam:DeleteVirtualMFADevice", "iam:DeleteSigningCertificate",
        "iam:GetLoginProfile", "iam:ListAccessKeys", "iam:ListMFADevices",
        "iam:ListSigningCertificates", "iam:GetUser",
    },
    "S3UnlockBucketPolicy": {"s3:DeleteBucketPolicy", "s3:GetBucketPolicy"},
    "SQSUnlockQueuePolicy": {"sqs:SetQueueAttributes", "sqs:GetQueueAttributes"},
}
ROOT_SESSION_IAM = {
    "GetLoginProfile", "ListAccessKeys", "ListMFADevices", "ListSigningCertificates",
    "DeleteLoginProfile", "DeleteAccessKey", "DeactivateMFADevice",
    "DeleteSigningCertificate", "CreateLoginProfile",
}
FEATURES = ("RootCredentialsManagement", "RootSessions")

MODELS = botocore.session.get_session()
STS = MODELS.get_service_model("sts")
IAM = MODELS.get_service_model("iam")


class Refusal(Exception):
    def __init__(self, status, code, message, kind="Sender"):
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


# --- validation against the service model ---------------------------------

def parse_query(shape, params, prefix=""):
    """The query protocol's flattened parameters, read into `shape`."""
    if shape is None:
        return {}
    out = {}
    for name, member in shape.members.items():
        key = prefix + member.serialization.get("name", name)
        if member.type_name == "structure":
            if any(k.startswith(key + ".") for k in params):
                out[name] = parse_query(member, params, key + ".")
        elif member.type_name == "list":
            items, i = [], 1
            while f"{key}.member.{i}" in params:
                items.append(params[f"{key}.member.{i}"])
                i += 1
            if items or f"{key}" in params:
                out[name] = items
        elif key in params:
            raw = params[key]
            if member.type_name in ("integer", "long"):
                try:
                    out[name] = int(raw)
                except ValueError:
                    raise Refusal(400, "ValidationError", f"1 validation error detected: Value '{raw}' at '{name}' failed to satisfy constraint: Member must be a number")
            elif member.type_name == "boolean":
                if raw not in ("true", "false"):
                    raise Refusal(400, "ValidationError", f"Value '{raw}' at '{name}' is not a boolean")
                out[name] = raw == "true"
            else:
                out[name] = raw
    return out


def validate(shape, value, path=""):
    """Constraints of the model: required, lengths, ranges, patterns."""
    if shape is None:
        return
    for name in shape.required_members:
        if name not in value:
            raise Refusal(400, "ValidationError", f"1 validation error detected: Value null at '{path}{name}' failed to satisfy constraint: Member must not be null")
    for name, v in value.items():
        member = shape.members[name]
        m = member.metadata
        where = f"{path}{name}"
        if member.type_name == "structure":
            validate(member, v, where + ".")
            continue
        if member.type_name in ("integer", "long"):
            if "min" in m and v < m["min"]:
                raise Refusal(400, "ValidationError", f"1 validation error detected: Value '{v}' at '{where}' failed to satisfy constraint: Member must have value greater than or equal to {m['min']}")
            if "max" in m and v > m["max"]:
                raise Refusal(400, "ValidationError", f"1 validation error detected: Value '{v}' at '{where}' failed to satisfy constraint: Member must have value less than or equal to {m['max']}")
        if member.type_name == "string":
            if "min" in m and len(v) < m["min"]:
                raise Refusal(400, "ValidationError", f"1 validation error detected: Value at '{where}' failed to satisfy constraint: Member must have length greater than or equal to {m['min']}")
            if "max" in m and len(v) > m["max"]:
                raise Refusal(400, "ValidationError", f"1 validation error detected: Value at '{where}' failed to satisfy constraint: Member must have length less than or equal to {m['max']}")
            if "pattern" in m and not re.fullmatch(m["pattern"], v):
                raise Refusal(400, "ValidationError", f"1 validation error detected: Value at '{where}' failed to satisfy constraint: Member must satisfy regular expression pattern: {m['pattern']}")


# --- state ------------------------------------------------------------------

class State:
    def __init__(self, upstream):
        self.lock = threading.Lock()
        self.upstream = upstream
        self.root = {}           # account -> posture
        self.features = set()
        self.trusted_access = False
        self.fail = None         # {"service", "mode", "count"}
        self.latency_ms = 0
        self.sessions = {}       # access key id -> {"account", "task", "expires", "source_identity"}
        self.source_identity = {}  # access key id of an AssumeRole session -> SourceIdentity
        self.calls = []          # (service, action, account or None)
        self.org_cache = None    # (management account, member ids, when read)

    def posture(self, account):
        return self.root.setdefault(account, {
            "password": False, "access_keys": [], "mfa_devices": [], "signing_certificates": [],
        })

    def snapshot(self):
        return {
            "root": self.root, "features": sorted(self.features),
            "trusted_access": self.trusted_access, "fail": self.fail,
            "sessions": len(self.sessions), "calls": self.calls[-5000:],
            # Each root session without its secrets: who it was for.
            "session_log": [{"access_key_id": k, "account": v["account"], "task": v["task"],
                             "source_identity": v["source_identity"]} for k, v in list(self.sessions.items())],
            "call_count": len(self.calls),
        }

    def apply(self, body):
        for account, p in body.get("root", {}).items():
            cur = self.posture(account)
            for k in ("password", "access_keys", "mfa_devices", "signing_certificates"):
                if k in p:
                    cur[k] = p[k]
        if "features" in body:
            self.features = set(body["features"])
        if "trusted_access" in body:
            self.trusted_access = bool(body["trusted_access"])
        if "fail" in body:
            self.fail = body["fail"]
        if "latency_ms" in body:
            self.latency_ms = int(body["latency_ms"])

    def failing(self, service):
        """The failure to answer with, spending one of its count."""
        with self.lock:
            f = self.fail
            if not f or f.get("service") != service:
                return None
            if f.get("after", 0) > 0:
                f["after"] -= 1
                return None
            if "count" in f:
                if f["count"] <= 0:
                    self.fail = None
                    return None
                f["count"] -= 1
            return f["mode"]


def organization_accounts(state, target=None):
    """The organisation's accounts and its management account, from moto
    (read again unless `target` is among those read in the last 30 s)."""
    cached = state.org_cache
    if cached and target in cached[1] and time.time() - cached[2] < 30:
        return cached[0], cached[1]
    org = boto3.client("organizations", endpoint_url=state.upstream, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        master = org.describe_organization()["Organization"]["MasterAccountId"]
    except org.exceptions.AWSOrganizationsNotInUseException:
        return None, set()
    accounts = set()
    for page in org.get_paginator("list_accounts").paginate():
        accounts.update(a["Id"] for a in page["Accounts"] if a["Status"] == "ACTIVE")
    state.org_cache = (master, accounts, time.time())
    return master, accounts


# --- answers ----------------------------------------------------------------

def xml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return escape(str(v))


def xml_of(value, indent=""):
    parts = []
    for k, v in value.items():
        if isinstance(v, list):
            items = "".join(f"<member>{xml_of(i) if isinstance(i, dict) else xml_value(i)}</member>" for i in v)
            parts.append(f"<{k}>{items}</{k}>")
        elif isinstance(v, dict):
            parts.append(f"<{k}>{xml_of(v)}</{k}>")
        elif v is not None:
            parts.append(f"<{k}>{xml_value(v)}</{k}>")
    return "".join(parts)


def query_answer(action, ns, result):
    rid = str(uuid.uuid4())
    inner = f"<{action}Result>{xml_of(result)}</{action}Result>" if result is not None else ""
    return (f'<{action}Response xmlns="{ns}">{inner}'
            f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></{action}Response>")


def query_error(ns, r):
    rid = str(uuid.uuid4())
    return (f'<ErrorResponse xmlns="{ns}"><Error><Type>{r.kind}</Type><Code>{r.code}</Code>'
            f"<Message>{escape(r.message)}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>")


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def assume_root(state, caller_key, p):
    validate(STS.operation_model("AssumeRoot").input_shape, p)
    arn = p["TaskPolicyArn"].get("arn", "")
    task = arn[len(TASK_PREFIX):] if arn.startswith(TASK_PREFIX) else None
    if task not in TASKS:
        raise Refusal(400, "ValidationError", f"The task policy {arn} is not a root task policy")
    if "RootSessions" not in state.features:
        raise Refusal(403, "AccessDenied", "Centralized root sessions are not enabled for this organization")
    target = p["TargetPrincipal"]
    master, accounts = organization_accounts(state, target)
    if master is None:
        raise Refusal(403, "AccessDenied", "The caller is not in an organization")
    if target == master or target not in accounts:
        raise Refusal(403, "AccessDenied", f"TargetPrincipal {target} is not a member account of the caller's organization")
    duration = p.get("DurationSeconds", 900)
    key = "ASIA" + secrets.token_hex(8).upper()
    expires = time.time() + (duration or 900)
    source = state.source_identity.get(caller_key)
    with state.lock:
        state.sessions[key] = {"account": target, "task": task, "expires": expires, "source_identity": source}
    result = {"Credentials": {
        "AccessKeyId": key, "SecretAccessKey": secrets.token_urlsafe(30),
        "SessionToken": secrets.token_urlsafe(60), "Expiration": iso(expires),
    }}
    if source:
        result["SourceIdentity"] = source
    return result


def organizations_feature(state, action):
    if not state.trusted_access:
        raise Refusal(400, "ServiceAccessNotEnabledException", "Trusted access for IAM is not enabled in AWS Organizations")
    master, _ = organization_accounts(state)
    if master is None:
        raise Refusal(400, "OrganizationNotFoundException", "The caller is not in an organization")
    with state.lock:
        if action == "EnableOrganizationsRootCredentialsManagement":
            state.features.add("RootCredentialsManagement")
        elif action == "EnableOrganizationsRootSessions":
            state.features.add("RootSessions")
        features = [f for f in FEATURES if f in state.features]
    org = boto3.client("organizations", endpoint_url=state.upstream, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return {"OrganizationId": org.describe_organization()["Organization"]["Id"], "EnabledFeatures": features}


def root_session_call(state, session, action, p):
    validate(IAM.operation_model(action).input_shape, p)
    if session["expires"] < time.time():
        raise Refusal(403, "ExpiredToken", "The security token included in the request is expired")
    if f"iam:{action}" not in TASKS[session["task"]]:
        raise Refusal(403, "AccessDenied", f"User: arn:aws:iam::{session['account']}:root is not authorized to perform: iam:{action} (the {session['task']} task policy)")
    if "UserName" in p:
        # The task policies grant the root user only, never another user.
        raise Refusal(403, "AccessDenied", f"User: arn:aws:iam::{session['account']}:root is not authorized to perform: iam:{action} on resource: user {p['UserName']}")
    account = session["account"]
    now = iso(time.time() - 86400 * 400)
    with state.lock:
        root = state.posture(account)
        if action == "GetLoginProfile":
            if not root["password"]:
                raise Refusal(404, "NoSuchEntity", f"Login Profile for the root user of {account} cannot be found.")
            return {"LoginProfile": {"UserName": "", "CreateDate": now, "PasswordResetRequired": False}}
        if action == "ListAccessKeys":
            return {"AccessKeyMetadata": [{"AccessKeyId": k, "Status": "Active", "CreateDate": now} for k in root["access_keys"]], "IsTruncated": False}
        if action == "ListMFADevices":
            return {"MFADevices": [{"UserName": "", "SerialNumber": s, "EnableDate": now} for s in root["mfa_devices"]], "IsTruncated": False}
        if action == "ListSigningCertificates":
            return {"Certificates": [{"UserName": "", "CertificateId": c, "CertificateBody": "-----BEGIN CERTIFICATE-----", "Status": "Active", "UploadDate": now} for c in root["signing_certificates"]], "IsTruncated": False}
        if action == "DeleteLoginProfile":
            if not root["password"]:
                raise Refusal(404, "NoSuchEntity", "Login Profile for the root user cannot be found.")
            root["password"] = False
            return None
        if action == "DeleteAccessKey":
            if p["AccessKeyId"] not in root["access_keys"]:
                raise Refusal(404, "NoSuchEntity", f"The Access Key with id {p['AccessKeyId']} cannot be found.")
            root["access_keys"].remove(p["AccessKeyId"])
            return None
        if action == "DeactivateMFADevice":
            if p["SerialNumber"] not in root["mfa_devices"]:
                raise Refusal(404, "NoSuchEntity", "MFA Device cannot be found.")
            root["mfa_devices"].remove(p["SerialNumber"])
            return None
        if action == "DeleteSigningCertificate":
            if p["CertificateId"] not in root["signing_certificates"]:
                raise Refusal(404, "NoSuchEntity", "The Certificate cannot be found.")
            root["signing_certificates"].remove(p["CertificateId"])
            return None
        if action == "CreateLoginProfile":
            if "Password" in p:
                raise Refusal(400, "ValidationError", "A root session creates the login profile without a password: the root user recovers it by email")
            if root["password"]:
                raise Refusal(409, "EntityAlreadyExists", "Login Profile for the root user already exists.")
            root["password"] = True
            return {"LoginProfile": {"UserName": "", "CreateDate": iso(time.time()), "PasswordResetRequired": True}}
    raise Refusal(400, "InvalidAction", f"{action} is not valid in a root session")


def signer(headers):
    """(access key id, service) of a SigV4-signed request."""
    auth = headers.get("Authorization", "")
    m = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", auth)
    if not m:
        return None, None
    return m.group(1), m.group(3)


def moto_as(state, account, service):
    """A boto3 client of moto acting as `account`."""
    c = boto3.client(service, endpoint_url=state.upstream, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing")
    c.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))
    return c


def s3_action(method, path, query):
    """The S3 action of a REST request, as IAM names it (those a root task
    can grant; None for any other)."""
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    bucket_only = path.strip("/") and "/" not in path.strip("/")
    if "policy" in q and bucket_only:
        return {"GET": "s3:GetBucketPolicy", "DELETE": "s3:DeleteBucketPolicy", "PUT": "s3:PutBucketPolicy"}.get(method)
    return None


def s3_error(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{uuid.uuid4()}</RequestId></Error>")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without TCP_NODELAY each
    # answer waits for the client's delayed ACK (40 ms), which is the
    # responder's cost, not the service's.
    disable_nagle_algorithm = True
    state: State = None

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="text/xml"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path.startswith("/_responder/state"):
            return self.send(200, json.dumps(self.state.snapshot()), "application/json")
        self.forward_checked(b"")

    def do_PUT(self):
        self.forward_checked(self.body())

    def do_DELETE(self):
        self.forward_checked(self.body())

    def root_session_of(self):
        """The root session that signed this request, if one did."""
        key, service = signer(self.headers)
        return self.state.sessions.get(key), service

    def forward_checked(self, raw):
        """Forward to moto; an S3 or SQS call of a root session only as its
        task policy allows, and as its member account."""
        session, service = self.root_session_of()
        if session is None or service not in ("s3", "sqs"):
            return self.forward(raw)
        if session["expires"] < time.time():
            return self.refuse_in(service, 403, "ExpiredToken", "The provided token has expired.")
        if service == "s3":
            path, _, query = self.path.partition("?")
            action = s3_action(self.command, path, query)
        else:
            target = self.headers.get("X-Amz-Target", "")
            action = "sqs:" + target.split(".", 1)[1] if target.startswith("AmazonSQS.") else None
        self.state.calls.append((service, action, session["account"]))
        if action is None or action not in TASKS[session["task"]]:
            return self.refuse_in(service, 403, "AccessDenied", f"User: arn:aws:iam::{session['account']}:root is not authorized to perform: {action or self.command + ' ' + self.path} (the {session['task']} task policy)")
        self.forward(raw, account=session["account"])

    def refuse_in(self, service, status, code, message):
        if service == "s3":
            return self.send(status, s3_error(code, message), "application/xml")
        body = json.dumps({"__type": f"com.amazon.coral.service#{code}", "message": message})
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-query-error", f"{code};Sender")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def as_account(self, raw):
        """A test's call in moto as a member account."""
        b = json.loads(raw or b"{}")
        try:
            c = moto_as(self.state, b["account"], b["service"])
            result = getattr(c, b["operation"])(**b.get("params", {}))
            result.pop("ResponseMetadata", None)
            return self.send(200, json.dumps(result, default=str), "application/json")
        except Exception as e:  # noqa: BLE001 - the test reads the error
            code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
            return self.send(400, json.dumps({"error": code, "message": str(e)}), "application/json")

    def do_HEAD(self):
        self.forward(b"")

    def do_POST(self):
        raw = self.body()
        if self.path.startswith("/_responder/state"):
            with self.state.lock:
                self.state.apply(json.loads(raw or b"{}"))
            return self.send(200, json.dumps(self.state.snapshot()), "application/json")
        if self.path.startswith("/_responder/as_account"):
            return self.as_account(raw)
        key, service = signer(self.headers)
        if self.state.latency_ms:
            time.sleep(self.state.latency_ms / 1000)
        target = self.headers.get("X-Amz-Target", "")
        if service == "organizations":
            mode = self.state.failing("organizations")
            if mode == "throttle":
                return self.send(400, json.dumps({"__type": "TooManyRequestsException", "Message": "AWS Organizations can't complete your request because another request is already in progress. Try again later."}), "application/x-amz-json-1.1")
            if mode == "unavailable":
                return self.send(500, json.dumps({"__type": "ServiceException", "Message": "AWS Organizations can't complete your request because it encountered an internal error. Try again later."}), "application/x-amz-json-1.1")
        if service == "organizations" and target.endswith(".ListAWSServiceAccessForOrganization"):
            return self.organizations_service_access(raw)
        if service == "organizations" and target.endswith(".EnableAWSServiceAccess"):
            principal = json.loads(raw or b"{}").get("ServicePrincipal")
            if principal == "iam.amazonaws.com":
                self.state.trusted_access = True
                return self.send(200, b"{}", "application/x-amz-json-1.1")
        if service in ("sts", "iam") and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            params = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
            action = params.get("Action", "")
            ns = STS_NS if service == "sts" else IAM_NS
            session = self.state.sessions.get(key)
            mine = (
                (service == "sts" and action == "AssumeRoot")
                or (service == "iam" and action in ("ListOrganizationsFeatures", "EnableOrganizationsRootCredentialsManagement", "EnableOrganizationsRootSessions"))
                or (service == "iam" and session is not None)
            )
            if mine:
                self.state.calls.append((service, action, session["account"] if session else params.get("TargetPrincipal")))
                mode = self.state.failing(service)
                if mode == "throttle":
                    return self.send(400, query_error(ns, Refusal(400, "Throttling", "Rate exceeded")))
                if mode == "unavailable":
                    return self.send(503, query_error(ns, Refusal(503, "ServiceUnavailable", "Service is unavailable", "Receiver")))
                try:
                    model = STS if service == "sts" else IAM
                    if action not in model.operation_names:
                        raise Refusal(400, "InvalidAction", f"Could not find operation {action} for version {params.get('Version')}")
                    p = parse_query(model.operation_model(action).input_shape, params)
                    if service == "sts":
                        result = assume_root(self.state, key, p)
                    elif session is not None:
                        if action not in ROOT_SESSION_IAM:
                            raise Refusal(403, "AccessDenied", f"iam:{action} is not allowed in a root session of the {session['task']} task")
                        result = root_session_call(self.state, session, action, p)
                    else:
                        validate(model.operation_model(action).input_shape, p)
                        result = organizations_feature(self.state, action)
                    return self.send(200, query_answer(action, ns, result))
                except Refusal as r:
                    return self.send(r.status, query_error(ns, r))
            if service == "sts" and action == "AssumeRole":
                return self.forward(raw, params)
        self.forward_checked(raw)

    def organizations_service_access(self, raw):
        status, headers, body = self.upstream(raw)
        if status != 200:
            return self.send(status, body, headers.get("Content-Type", "application/x-amz-json-1.1"))
        doc = json.loads(body or b"{}")
        services = [s for s in doc.get("EnabledServicePrincipals", []) if s.get("ServicePrincipal") != "iam.amazonaws.com"]
        if self.state.trusted_access:
            services.append({"ServicePrincipal": "iam.amazonaws.com", "DateEnabled": time.time()})
        doc["EnabledServicePrincipals"] = services
        self.send(200, json.dumps(doc), "application/x-amz-json-1.1")

    def upstream(self, raw, account=None):
        req = urllib.request.Request(self.state.upstream + self.path, data=raw if self.command not in ("GET", "HEAD") else None, method=self.command)
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length", "connection"):
                req.add_header(k, v)
        if account:
            req.add_header("x-moto-account-id", account)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def forward(self, raw, assume_role_params=None, account=None):
        status, headers, body = self.upstream(raw, account)
        if assume_role_params is not None and status == 200 and "SourceIdentity" in assume_role_params:
            m = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", body)
            if m:
                self.state.source_identity[m.group(1).decode()] = assume_role_params["SourceIdentity"]
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--upstream", required=True)
    a = ap.parse_args()
    Handler.state = State(a.upstream.rstrip("/"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
