#!/usr/bin/env python3
"""Verify a breakglass audit export offline (audit format v1, export v1).

Usage: verify_audit.py [--public-key KEY.json] EXPORT.jsonl

EXPORT.jsonl is the output of `breakglass audit export --format jsonl` (or
GET /v1/audit/export). KEY.json is the audit public key as published at
/.well-known/breakglass-audit-key, saved earlier; without it the key named
in the export's header is used (and its id printed, to compare).

Every approval or denial made with a security key is verified too: its
signature, by the public key in the key's registration event earlier in the
export (and not removed since), over the challenge that its request, its
decision and its custodian give (see docs/audit-format.md), with the user
verified and a counter that moves forward.

Written from docs/audit-format.md with the standard library's hashlib, the
`cryptography` package's Ed25519 and the `fido2` package's WebAuthn
parsers. Exit status: 0 intact, 1 broken, 2 usage or input error.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from urllib.parse import urlparse

COVERED = ("seq", "ts_ms", "actor", "action", "target", "outcome", "code", "details", "prev_hash")


# Every record has exactly these fields: one the hash or signature does not
# cover could say anything to whoever reads the file.
FIELDS = {
    "event": {"record", "seq", "ts_ms", "actor", "action", "target", "outcome", "code", "details",
              "prev_hash", "hash"},
    "checkpoint": {"record", "seq", "hash", "ts_ms", "kid", "signature"},
    "head": {"record", "seq", "hash"},
}

def canonical(v):
    """Canonical JSON: sorted keys, no whitespace, integers only."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        raise ValueError("floating-point numbers are not allowed")
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-8"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(v[k]) for k in keys) + "}"
    raise ValueError("unexpected JSON value %r" % (v,))


def event_hash(e):
    covered = {k: e[k] for k in COVERED}
    covered["v"] = 1
    return hashlib.sha256(canonical(covered).encode("utf-8")).hexdigest()


def kid_of(raw):
    return hashlib.sha256(raw).hexdigest()[:16]


def load_keys(keys):
    out = {}
    for k in keys:
        raw = base64.b64decode(k["public_key"])
        if k.get("alg") != "Ed25519" or len(raw) != 32 or kid_of(raw) != k["kid"]:
            raise ValueError("audit key %r does not match its kid" % k.get("kid"))
        out[k["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
    return out


def checkpoint_valid(c, keys):
    key = keys.get(c["kid"])
    if key is None:
        return False
    signed = canonical({"v": 1, "type": "breakglass-audit-checkpoint", "seq": c["seq"],
                        "hash": c["hash"], "ts_ms": c["ts_ms"], "kid": c["kid"]})
    try:
        key.verify(base64.b64decode(c["signature"]), signed.encode("utf-8"))
        return True
    except (InvalidSignature, ValueError):
        return False


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Keys:
    """Security keys as their registration and removal events describe them."""

    def __init__(self):
        self.registered = {}  # credential id -> (custodian, public key)
        self.removed = set()
        self.counters = {}

    def see(self, e):
        if e["outcome"] != "success" or not e["target"].startswith("custodian:"):
            return
        d, custodian = e["details"], e["target"][len("custodian:"):]
        if e["action"] == "webauthn.register":
            from fido2.webauthn import AttestationObject
            att = AttestationObject(b64url(d["attestation_object"]))
            self.registered[d["credential_id"]] = (custodian, att.auth_data.credential_data.public_key)
        elif e["action"] == "webauthn.remove":
            self.removed.add(d["credential_id"])

    def check(self, e):
        """Why the key decision in event `e` does not verify, or None."""
        from fido2.webauthn import AuthenticatorData, CollectedClientData
        d = e["details"]
        a = d.get("webauthn")
        if not isinstance(a, dict):
            return "it records no assertion"
        cid = a.get("credential_id")
        if cid not in self.registered:
            return "its key is not registered earlier in the export"
        custodian, public_key = self.registered[cid]
        if custodian != e["actor"]:
            return "its key is registered to %s, not to %s" % (custodian, e["actor"])
        if cid in self.removed:
            return "its key was removed before it"
        client = CollectedClientData(b64url(a["client_data_json"]))
        auth = AuthenticatorData(b64url(a["authenticator_data"]))
        decision = {"request.approve": "approve", "request.deny": "deny"}[e["action"]]
        purpose = {"type": "breakglass-decision", "v": 1, "request": e["target"][len("request:"):],
                   "decision": decision, "custodian": e["actor"], "nonce": a["nonce"]}
        if client.type != "webauthn.get":
            return "its clientDataJSON is not an assertion's"
        if client.challenge != hashlib.sha256(canonical(purpose).encode("utf-8")).digest():
            return "its signed challenge is not the one of this request, decision and custodian"
        host = urlparse(client.origin).hostname or ""
        if auth.rp_id_hash != hashlib.sha256(host.encode("utf-8")).digest():
            return "its authenticator data names another relying party than %s" % host
        if not (auth.is_user_present() and auth.is_user_verified()):
            return "its authenticator did not verify the user"
        if auth.counter != a["counter"]:
            return "its recorded counter is not the one signed"
        last = self.counters.get(cid, 0)
        if (auth.counter or last) and auth.counter <= last:
            return "its signature counter did not move forward (%d after %d)" % (auth.counter, last)
        try:
            public_key.verify(bytes(auth) + hashlib.sha256(bytes(client)).digest(), b64url(a["signature"]))
        except Exception:  # cryptography's InvalidSignature, or a malformed signature
            return "its signature does not verify against its key"
        self.counters[cid] = auth.counter
        return None


def verify(lines, trusted=None):
    """Return (None, summary) if intact, else ((seq, reason), None)."""
    header = json.loads(lines[0])
    if header.get("record") != "header" or header.get("format") != "breakglass-audit-export-v1":
        raise ValueError("line 1 is not a breakglass audit export header")
    keys = load_keys(trusted if trusted is not None else header["audit_keys"])
    expected, prev = header["after_seq"] + 1, header["prev_hash"]
    last_seq, signed_through, head, checked = expected - 1, None, None, 0
    security_keys, key_decisions = Keys(), 0
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if head is not None:
            return (expected, "line %d follows the head record" % n), None
        r = json.loads(line)
        kind = r.get("record")
        if kind in FIELDS and set(r) != FIELDS[kind]:
            return (expected, "line %d does not have exactly the fields of its record" % n), None
        if kind == "event":
            seq = r["seq"]
            if seq != expected:
                if seq > expected:
                    return (expected, "event %d is missing (next event found is %d)" % (expected, seq)), None
                return (seq, "event %d appears out of order or twice" % seq), None
            if r["outcome"] == "success" and r["action"] in ("request.approve", "request.deny") \
                    and isinstance(r["details"], dict) and r["details"].get("presence") == "webauthn":
                why = security_keys.check(r)
                if why:
                    return (seq, "the security-key %s by %s in event %d does not verify: %s"
                            % (r["action"][len("request."):], r["actor"], seq, why)), None
                key_decisions += 1
            if event_hash(r) != r["hash"]:
                return (seq, "event %d was altered: its content does not match its hash" % seq), None
            security_keys.see(r)
            if r["prev_hash"] != prev:
                return (seq, "event %d does not link to event %d" % (seq, seq - 1)), None
            prev, last_seq, expected, checked = r["hash"], seq, expected + 1, checked + 1
        elif kind == "checkpoint":
            if not checkpoint_valid(r, keys):
                return (r["seq"], "the checkpoint at event %d has a bad signature or an untrusted key" % r["seq"]), None
            if r["seq"] > last_seq:
                return (last_seq + 1, "the export ends at event %d but a signed checkpoint covers event %d: "
                                      "the tail was truncated" % (last_seq, r["seq"])), None
            if r["seq"] != last_seq:
                return (r["seq"], "the checkpoint of event %d is out of place" % r["seq"]), None
            if r["hash"] != prev:
                return (r["seq"], "event %d does not have the hash its signed checkpoint records" % r["seq"]), None
            signed_through = r["seq"]
        elif kind == "head":
            head = (r["seq"], r["hash"])
        else:
            return (expected, "line %d is not an event, checkpoint or head record" % n), None
    if head is None:
        return (last_seq + 1, "the export ends at event %d without its head record: it was cut short" % last_seq), None
    if head[0] > last_seq:
        return (last_seq + 1, "the export ends at event %d but its head is event %d: the tail was truncated"
                % (last_seq, head[0])), None
    if head[0] == last_seq and head[1] != prev:
        return (last_seq, "the head's hash does not match event %d" % last_seq), None
    kids = ", ".join(sorted(keys))
    return None, "%d events, last event %d, signed through event %s (keys %s); %d security-key decisions verified" % (
        checked, last_seq, signed_through if signed_through is not None else "none", kids, key_decisions)


def main(argv):
    trusted, files, args = None, [], iter(argv)
    for a in args:
        if a == "--public-key":
            try:
                with open(next(args), encoding="utf-8") as f:
                    trusted = [json.load(f)]
            except (StopIteration, OSError, ValueError) as why:
                print("--public-key needs the saved JSON of /.well-known/breakglass-audit-key: %s" % why,
                      file=sys.stderr)
                return 2
        else:
            files.append(a)
    if len(files) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(files[0], encoding="utf-8") as f:
            lines = f.read().split("\n")
        broken, summary = verify(lines, trusted)
    except (OSError, ValueError, KeyError, TypeError) as why:
        print("%s: %s" % (files[0], why), file=sys.stderr)
        return 2
    if broken:
        print("audit chain BROKEN at event %d: %s" % broken)
        return 1
    print("audit chain OK: " + summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
