#!/usr/bin/env python3
"""A small, independent OpenID Connect provider for the tests (PyJWT and
`cryptography`): discovery, JWKS, and a test-only endpoint that signs
tokens, with keys that can be rotated while it runs.

Usage: provider.py PORT        (prints "listening on http://127.0.0.1:PORT")

GET  /.well-known/openid-configuration
GET  /jwks
POST /token   {"sub", "groups", "alg": "RS256|ES256|EdDSA", "aud"?, "iss"?,
               "exp_in"?, "nbf_in"?, "kid"?, "extra"?}  -> {"token": "..."}
POST /rotate  {"alg"}  -> new key for alg; the old one leaves the JWKS
GET  /public-pem?alg=RS256  -> the current public key as PEM (for attacks)
"""
import base64
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PORT = int(sys.argv[1])
ISSUER = "http://127.0.0.1:%d" % PORT


def b64(n):
    return base64.urlsafe_b64encode(n).rstrip(b"=").decode()


def int_b64(i):
    return b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))


def new_key(alg):
    kid = "%s-%s" % (alg.lower(), uuid.uuid4().hex[:8])
    if alg == "RS256":
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = priv.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": int_b64(pub.n), "e": int_b64(pub.e)}
    elif alg == "ES256":
        priv = ec.generate_private_key(ec.SECP256R1())
        pub = priv.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": b64(pub.x.to_bytes(32, "big")), "y": b64(pub.y.to_bytes(32, "big"))}
    elif alg == "EdDSA":
        priv = ed25519.Ed25519PrivateKey.generate()
        raw = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    else:
        raise ValueError(alg)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return {"kid": kid, "priv": priv, "jwk": jwk}


KEYS = {alg: new_key(alg) for alg in ("RS256", "ES256", "EdDSA")}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/.well-known/openid-configuration":
            return self.reply(200, {"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks",
                                    "id_token_signing_alg_values_supported": list(KEYS)})
        if self.path == "/jwks":
            return self.reply(200, {"keys": [k["jwk"] for k in KEYS.values()]})
        if self.path.startswith("/public-pem?alg="):
            k = KEYS[self.path.split("=", 1)[1]]
            pem = k["priv"].public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
            return self.reply(200, pem, "application/x-pem-file")
        return self.reply(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/token":
            alg = body.get("alg", "RS256")
            k = KEYS[alg]
            now = int(body.get("now", time.time()))
            claims = {"iss": body.get("iss", ISSUER), "aud": body.get("aud", "breakglass"),
                      "sub": body["sub"], "groups": body.get("groups", []),
                      "iat": now, "exp": now + int(body.get("exp_in", 600)),
                      "jti": str(uuid.uuid4())}
            if "nbf_in" in body:
                claims["nbf"] = now + int(body["nbf_in"])
            claims.update(body.get("extra", {}))
            token = jwt.encode(claims, k["priv"], algorithm=alg, headers={"kid": body.get("kid", k["kid"])})
            return self.reply(200, {"token": token, "kid": k["kid"]})
        if self.path == "/rotate":
            alg = body.get("alg", "RS256")
            KEYS[alg] = new_key(alg)
            return self.reply(200, {"kid": KEYS[alg]["kid"]})
        return self.reply(404, {"error": "not found"})


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("listening on " + ISSUER, flush=True)
server.serve_forever()
