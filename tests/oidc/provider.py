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

The authorization code flow with PKCE (RFC 6749, RFC 7636), as a provider
answers it:
POST /clients   {"client_id", "client_secret"?, "redirect_uris": [...]}
                (a redirect URI on 127.0.0.1 matches any port: RFC 8252)
POST /login-as  {"sub", "groups", "now"?}: who signs in next
GET  /authorize ?response_type=code&client_id&redirect_uri&state&nonce
                 &code_challenge&code_challenge_method=S256 -> 302 back
POST /oauth/token  grant_type=authorization_code&code&redirect_uri
                   &client_id&code_verifier[&client_secret]
                   -> {"id_token", "access_token", "token_type"}
"""
import base64
import hashlib
import hmac
import json
import secrets
import urllib.parse
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
CLIENTS = {}
LOGIN = {}
CODES = {}


def redirect_allowed(client, uri):
    u = urllib.parse.urlsplit(uri)
    for allowed in client["redirect_uris"]:
        a = urllib.parse.urlsplit(allowed)
        if uri == allowed:
            return True
        if a.hostname == "127.0.0.1" and u.hostname == "127.0.0.1" and a.path == u.path and u.scheme == "http":
            return True
    return False


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
                                    "authorization_endpoint": ISSUER + "/authorize",
                                    "token_endpoint": ISSUER + "/oauth/token",
                                    "response_types_supported": ["code"],
                                    "code_challenge_methods_supported": ["S256"],
                                    "id_token_signing_alg_values_supported": list(KEYS)})
        if self.path.startswith("/authorize?"):
            return self.authorize(dict(urllib.parse.parse_qsl(self.path.split("?", 1)[1])))
        if self.path == "/jwks":
            return self.reply(200, {"keys": [k["jwk"] for k in KEYS.values()]})
        if self.path.startswith("/public-pem?alg="):
            k = KEYS[self.path.split("=", 1)[1]]
            pem = k["priv"].public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
            return self.reply(200, pem, "application/x-pem-file")
        return self.reply(404, {"error": "not found"})

    def authorize(self, q):
        client = CLIENTS.get(q.get("client_id"))
        if client is None or not redirect_allowed(client, q.get("redirect_uri", "")):
            # Never redirect to an address that is not registered.
            return self.reply(400, {"error": "invalid_client or redirect_uri"})
        back = q["redirect_uri"]
        sep = "&" if "?" in back else "?"
        def bounce(params):
            self.send_response(302)
            self.send_header("Location", back + sep + urllib.parse.urlencode(params))
            self.send_header("Content-Length", "0")
            self.end_headers()
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return bounce({"error": "invalid_request", "state": q.get("state", "")})
        if not LOGIN:
            return bounce({"error": "access_denied", "error_description": "nobody signed in", "state": q.get("state", "")})
        code = secrets.token_urlsafe(24)
        CODES[code] = {"client_id": q["client_id"], "redirect_uri": back, "challenge": q["code_challenge"],
                       "nonce": q.get("nonce"), **LOGIN}
        return bounce({"code": code, "state": q.get("state", "")})

    def redeem(self, form):
        c = CODES.pop(form.get("code", ""), None)  # a code is redeemed once
        client = CLIENTS.get(form.get("client_id"))
        if c is None or client is None or c["client_id"] != form.get("client_id"):
            return self.reply(400, {"error": "invalid_grant"})
        if form.get("grant_type") != "authorization_code" or c["redirect_uri"] != form.get("redirect_uri"):
            return self.reply(400, {"error": "invalid_grant"})
        if client.get("client_secret") and not hmac.compare_digest(client["client_secret"], form.get("client_secret", "")):
            return self.reply(401, {"error": "invalid_client"})
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or not hmac.compare_digest(challenge, c["challenge"]):
            return self.reply(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
        k = KEYS["RS256"]
        now = int(c.get("now") or time.time())
        claims = {"iss": ISSUER, "aud": c["client_id"], "sub": c["sub"], "groups": c.get("groups", []),
                  "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())}
        if c.get("nonce"):
            claims["nonce"] = c["nonce"]
        token = jwt.encode(claims, k["priv"], algorithm="RS256", headers={"kid": k["kid"]})
        return self.reply(200, {"id_token": token, "access_token": secrets.token_urlsafe(16),
                                "token_type": "Bearer", "expires_in": 600})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/oauth/token":
            return self.redeem(dict(urllib.parse.parse_qsl(raw.decode())))
        body = json.loads(raw or b"{}")
        if self.path == "/clients":
            CLIENTS[body["client_id"]] = body
            return self.reply(200, {"ok": True})
        if self.path == "/login-as":
            LOGIN.clear()
            LOGIN.update(body)
            return self.reply(200, {"ok": True})
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
