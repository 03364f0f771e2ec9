#!/usr/bin/env python3
"""Validate an OCSF export of breakglass (one record per line) against the
OCSF API Activity class (6003): the ocsf-pydantic model, and the class's
required attributes in OCSF 1.1.0 checked one by one (the model fills some
of them with defaults, so it alone would not notice them missing).

Usage: validate.py EXPORT.ocsf.jsonl   Exit 0 if every record is valid."""
import json
import sys

from ocsf.events.application.api import APIActivity

# OCSF 1.1.0, API Activity: required attributes (base event + class).
REQUIRED = ["activity_id", "actor", "api", "category_uid", "class_uid", "cloud",
            "metadata", "severity_id", "src_endpoint", "time", "type_uid"]
REQUIRED_NESTED = [("metadata", "product"), ("metadata", "version"),
                   ("metadata", "product", "vendor_name"), ("api", "operation"),
                   ("cloud", "provider")]


def main(path):
    n = 0
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            r = json.loads(line)
            missing = [a for a in REQUIRED if a not in r or r[a] in (None, "", {}, [])]
            for chain in REQUIRED_NESTED:
                v = r
                for k in chain:
                    v = v.get(k) if isinstance(v, dict) else None
                if v in (None, ""):
                    missing.append(".".join(chain))
            if missing:
                print("line %d: missing required %s" % (line_no, ", ".join(missing)))
                return 1
            if r["class_uid"] != 6003 or r["category_uid"] != 6:
                print("line %d: not an API Activity record" % line_no)
                return 1
            if r["type_uid"] != r["class_uid"] * 100 + r["activity_id"]:
                print("line %d: type_uid is not class_uid * 100 + activity_id" % line_no)
                return 1
            if not (isinstance(r["actor"], dict) and r["actor"]):
                print("line %d: actor is empty" % line_no)
                return 1
            APIActivity(**r)
            n += 1
    print("ocsf OK: %d API Activity records" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
