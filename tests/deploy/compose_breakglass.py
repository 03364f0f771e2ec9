"""A whole break-glass through the composed service: tokens minted by a
host command in the container, custodians enrolled with codes from
oathtool, a credential deposited, a request approved by the quorum of the
default policy, released once, and the audit chain verified.

    compose_breakglass.py CONTAINER
"""

import json
import subprocess
import sys
import time
import urllib.parse

CONTAINER = sys.argv[1]


def bg(*args, token=None, stdin=None, ok=True):
    cmd = ["podman", "exec", "-i"]
    if token:
        cmd += ["-e", f"BREAKGLASS_TOKEN={token}"]
    cmd += [CONTAINER, "breakglass", *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if ok and r.returncode != 0:
        print(f"FAIL breakglass {' '.join(args)}: {r.stderr.strip()}")
        sys.exit(1)
    return r


def js(*args, token, stdin=None):
    return json.loads(bg("--json", *args, token=token, stdin=stdin).stdout)


def code(secret):
    return subprocess.run(["oathtool", "--totp", "-b", secret], capture_output=True, text=True, check=True).stdout.strip()


def token(subject, role):
    return bg("token", "issue", "--subject", subject, "--role", role).stdout.strip()


def main():
    alice = token("alice", "admin")
    erin = token("erin", "requester")
    frank = token("frank", "auditor")
    custodians = {"bob": "sre", "carol": "sre", "dave": "security"}
    tokens = {name: token(name, "custodian") for name in custodians}
    for name, group in custodians.items():
        bg("custodian", "add", name, "--group", group, token=alice)
    secrets = {}
    for name in custodians:
        uri = js("custodian", "enroll", name, token=tokens[name])["otpauth_uri"]
        secrets[name] = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
        bg("custodian", "confirm", name, "--code", code(secrets[name]), token=tokens[name])
    print("ok   three custodians enrolled with codes from oathtool")
    bg(
        "credential", "deposit", "aws-prod-root", "--account", "123456789012", "--policy", "default",
        "--field", "password=-", token=alice, stdin="correct horse battery staple\n",
    )
    request = js(
        "request", "create", "aws-prod-root", "--reason", "compose check: root MFA device lost", "--ticket", "INC-1",
        token=erin,
    )["id"]
    # Each custodian's confirmation code is spent: approve in the next step.
    time.sleep(30 - time.time() % 30 + 1)
    for name in custodians:
        bg("approve", request, "--code", code(secrets[name]), token=tokens[name])
    print(f"ok   request {request} approved by 2 of sre and 1 of security")
    released = bg("--json", "release", request, token=erin).stdout
    assert "correct horse battery staple" in released, released
    again = bg("release", request, token=erin, ok=False)
    assert again.returncode != 0, "a second release was allowed"
    print("ok   released once; a second release is refused")
    verdict = js("audit", "verify", token=frank)
    assert verdict.get("ok") is True, verdict
    print(f"ok   audit chain verified: {verdict.get('events_checked', '?')} events")


if __name__ == "__main__":
    main()
