#!/usr/bin/env python3
"""Known-answer vectors for the envelope format and the audit chain encoding,
computed independently of the Rust code (Python's `cryptography` AES-GCM and
`hashlib`/`json`). Run it to regenerate tests/vectors/*.json; the Rust tests
compare their output against these files."""
import base64, hashlib, json, pathlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

here = pathlib.Path(__file__).parent

def b64(b):
    return base64.b64encode(b).decode()

# Envelope: a data key wrapped by the local key file, then the payload.
kek = bytes(range(0x40, 0x60))
data_key = bytes(range(32))
wrap_nonce = bytes.fromhex("0102030405060708090a0b0c")
payload_nonce = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
credential_id = "5b1c7a2e-9a53-4a8e-8f0e-3d2f6c1b9e10"
version = 3
context = {"purpose": "credential", "credential_id": credential_id, "credential_version": str(version)}
context_bytes = json.dumps(dict(sorted(context.items())), separators=(",", ":")).encode()
aad = f"breakglass/credential/v1\0{credential_id}\0{version}".encode()
plaintext = json.dumps({"fields": {"mfa_seed": "JBSWY3DPEHPK3PXP", "password": "hunter2"}}, separators=(",", ":"), sort_keys=True).encode()
wrapped = wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, data_key, context_bytes)
ct = AESGCM(data_key).encrypt(payload_nonce, plaintext, aad)
key_id = "local:" + hashlib.sha256(b"breakglass-local-key-id\0" + kek).hexdigest()[:16]
envelope = {"v": 1, "alg": "A256GCM", "kid": key_id, "wk": b64(wrapped), "n": b64(payload_nonce), "ct": b64(ct)}
(here / "envelope.json").write_text(json.dumps({
    "kek_hex": kek.hex(),
    "data_key_hex": data_key.hex(),
    "credential_id": credential_id,
    "version": version,
    "context_canonical": context_bytes.decode(),
    "aad_hex": aad.hex(),
    "plaintext": plaintext.decode(),
    "payload_nonce_hex": payload_nonce.hex(),
    "ciphertext_hex": ct.hex(),
    "key_id": key_id,
    "envelope": envelope,
}, indent=2) + "\n")

# Audit chain: three events, canonical JSON (sorted keys, no whitespace,
# non-ASCII kept as UTF-8), SHA-256 over it, each linked to the last.
events, prev = [], "0" * 64
raw = [
    ("root-admin", "credential.deposit", "credential:aws-prod-root", "success", None, {"fields": ["mfa_seed", "password"], "version": 1}),
    ("oncall", "request.create", "request:5b1c7a2e", "success", None, {"reason": "prod is down — \"urgent\"\n", "ticket": "INC-42"}),
    ("ann", "request.approve", "request:5b1c7a2e", "refused", "totp_replayed", {"message": "ß\u0001"}),
]
for i, (actor, action, target, outcome, code, details) in enumerate(raw, start=1):
    e = {"v": 1, "seq": i, "ts_ms": 1767225600000 + i, "actor": actor, "action": action, "target": target,
         "outcome": outcome, "code": code, "details": details, "prev_hash": prev}
    canonical = json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = hashlib.sha256(canonical.encode()).hexdigest()
    stored = {k: v for k, v in e.items() if k != "v"}
    stored["hash"] = h
    events.append({"event": stored, "canonical": canonical})
    prev = h
(here / "audit_chain.json").write_text(json.dumps(events, indent=2, ensure_ascii=False) + "\n")
