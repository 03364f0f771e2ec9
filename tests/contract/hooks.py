"""Schemathesis hooks for breakglass's contract test.

Adds one check to schemathesis's own: a request answered with a client
error (4xx) changed no state. State is every table of the database (SQLite
file or PostgreSQL) that holds custody state, except what a refusal changes
by design: the audit log (refusals are audited), the alert and shipping
outboxes that follow it, and the TOTP failure count and lockout that a
wrong code feeds.
"""

import hashlib
import os
import sqlite3

import schemathesis

DB = os.environ["BREAKGLASS_CONTRACT_DB"]
POSTGRES = DB.startswith("postgres")

TABLES = [
    "custodians",
    "credentials",
    "credential_versions",
    "secret_envelopes",
    "requests",
    "decisions",
    "revoked_tokens",
    "recovery_sets",
    "recovery_shares",
    "recovery_sessions",
    "recovery_submissions",
    "policy_versions",
    "policy_changes",
    "policy_change_decisions",
    "key_rotations",
    "webauthn_keys",
    "key_resets",
    "key_reset_decisions",
    "service_keys",
    "org_state",
    "org_accounts",
    "root_requests",
    "brokered_sessions",
    "trail_cursors",
    "trail_files",
    "root_activity",
    "root_findings",
]

# Columns a refusal may change by design.
BY_DESIGN = {"custodians": {"locked_until"}}


_pg = None


def _rows(sql: str):
    """The rows of a query, on the database the server uses."""
    global _pg
    if POSTGRES:
        import psycopg

        if _pg is None:
            _pg = psycopg.connect(DB, autocommit=True)
        with _pg.cursor() as cur:
            cur.execute(sql)
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur.fetchall()]
    con = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _columns(table: str):
    if POSTGRES:
        rows = _rows(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
        )
        return [r[0] for r in rows]
    return [r[1] for r in _rows(f"PRAGMA table_info({table})")]


def fingerprint() -> str:
    h = hashlib.sha256()
    for table in TABLES:
        cols = [c for c in _columns(table) if c not in BY_DESIGN.get(table, set())]
        select = ", ".join(cols)
        for row in _rows(f"SELECT {select} FROM {table} ORDER BY {select}"):
            h.update(repr((table, row)).encode())
    return h.hexdigest()


_before: dict = {}


@schemathesis.hook
def before_call(ctx, case, kwargs):
    _before["state"] = fingerprint()


@schemathesis.check
def no_state_change_on_client_error(ctx, response, case):
    """A refused request (4xx) leaves every custody table as it was."""
    before = _before.pop("state", None)
    if before is None or not 400 <= response.status_code < 500:
        return None
    if fingerprint() != before:
        raise AssertionError(
            f"{case.method} {case.path} answered {response.status_code} and changed state"
        )
    return None
