#!/usr/bin/env python3
"""Check the security promises of the Helm chart's rendered manifests.

Usage: helm_assert.py --profile default|production --manifests FILE
                      --values FILE [--values FILE ...]
                      [--settings src/config/schema.rs] [--policies DIR]

FILE of --manifests is the output of `helm template`; the --values files
are the ones it was rendered with, the chart's values.yaml first, merged
as Helm merges them. --settings is the server's list of settings: every key
of the rendered breakglass.toml must be one, with a value of its kind.
--policies is the repository's policy directory: the default profile's
policy files must be its files, unchanged.

Prints one line per check and a summary; exit status 0 when every check
passes, 1 otherwise, 2 on a usage or input error.
"""
import argparse
import copy
import posixpath
import re
import sys
import tomllib
from pathlib import Path

import yaml

POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
REPLICAS = {"default": 2, "production": 3}
SECRETS_DIR = "/run/secrets/breakglass"
DATA_MOUNT = "/var/lib/breakglass"
CONFIG_MOUNT = "/etc/breakglass"
# The only environment: the configuration file's path and the log filter.
ALLOWED_ENV = {"BREAKGLASS_CONFIG", "BREAKGLASS_LOG"}
IRSA = "eks.amazonaws.com/role-arn"


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


# --- inputs ---------------------------------------------------------------


def merge(base, over):
    """Helm's merge of values files: maps merge, anything else replaces,
    null deletes."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_settings(path):
    """The server's settings: dotted path (`[]` a list of tables, `*` a
    map's key) → kind."""
    text = Path(path).read_text()
    found = dict(re.findall(r'\bs\("([^"]+)",\s*(\w+)\)', text))
    if not found:
        raise SystemExit(f"{path}: no setting found")
    return found


class Manifests:
    def __init__(self, path):
        self.docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def hooks(self, kind):
        return [d for d in self.all(kind) if hook_of(d)]

    def plain(self, kind):
        return [d for d in self.all(kind) if not hook_of(d)]

    def one(self, kind, hook=False):
        found = self.hooks(kind) if hook else self.plain(kind)
        check(len(found) == 1, f"expected one {'hook ' if hook else ''}{kind}, found {len(found)}")
        return found[0]

    def named(self, kind, name):
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        check(len(found) == 1, f"expected one {kind} {name}, found {len(found)}")
        return found[0]


def hook_of(doc):
    return (doc["metadata"].get("annotations") or {}).get("helm.sh/hook")


def hook_weight(doc):
    return int((doc["metadata"].get("annotations") or {}).get("helm.sh/hook-weight", "0"))


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def containers(spec):
    return list(spec.get("initContainers") or []) + list(spec["containers"])


def walk(node, path=""):
    """Every (path, key, value) below node."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def duration_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    check(m, f"cannot read the duration {text!r}")
    n, unit = int(m[1]), m[2]
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


# --- checks -----------------------------------------------------------------


class Chart:
    def __init__(self, args):
        self.profile = args.profile
        self.m = Manifests(args.manifests)
        self.values = {}
        for f in args.values:
            self.values = merge(self.values, yaml.safe_load(Path(f).read_text()))
        self.settings = load_settings(args.settings)
        self.policies_dir = Path(args.policies) if args.policies else None
        self.tls = bool(self.values["tls"]["enabled"])
        self.deploy = self.m.one("Deployment")
        self.job = self.m.one("Job", hook=True)

    def config_map_of(self, workload):
        vol = volume(pod_spec(workload), "config")
        return self.m.named("ConfigMap", vol["configMap"]["name"])

    def toml_of(self, workload):
        cm = self.config_map_of(workload)
        try:
            return tomllib.loads(cm["data"]["breakglass.toml"])
        except tomllib.TOMLDecodeError as e:
            raise Failed(f"breakglass.toml of {cm['metadata']['name']} is not TOML: {e}")

    # Each check below raises Failed with the reason.

    def check_replicas(self):
        want = REPLICAS[self.profile]
        got = self.deploy["spec"]["replicas"]
        check(got == want, f"replicas {got}, want {want}")

    def check_security_contexts(self):
        for w in (self.deploy, self.job):
            name = f"{w['kind']} {w['metadata']['name']}"
            spec = pod_spec(w)
            check(spec.get("securityContext") == POD_SECURITY,
                  f"{name}: pod securityContext {spec.get('securityContext')}")
            for c in containers(spec):
                check(c.get("securityContext") == CONTAINER_SECURITY,
                      f"{name}/{c['name']}: securityContext {c.get('securityContext')}")

    def check_nothing_of_the_host(self):
        for d in self.m.docs:
            name = f"{d['kind']} {d['metadata']['name']}"
            for path, k, v in walk(d):
                check(k != "hostPath", f"{name}: hostPath at {path}")
                check(k != "hostPort", f"{name}: hostPort at {path}")
                if k in ("hostNetwork", "hostPID", "hostIPC", "privileged"):
                    check(v is False, f"{name}: {k}: {v} at {path}")
                if k == "add" and path.endswith(".capabilities"):
                    raise Failed(f"{name}: capabilities added at {path}")

    def check_probes(self):
        scheme = "HTTPS" if self.tls else "HTTP"
        c = container(self.deploy)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                            ("startupProbe", "/healthz")):
            got = (c.get(probe) or {}).get("httpGet")
            check(got, f"no {probe}")
            check(got["path"] == path, f"{probe} path {got['path']}, want {path}")
            check(got.get("scheme") == scheme, f"{probe} scheme {got.get('scheme')}, want {scheme}")
            check(got["port"] in ("http", 8200), f"{probe} port {got['port']}")
        ports = c["ports"]
        check(ports == [{"name": "http", "containerPort": 8200, "protocol": "TCP"}], f"ports {ports}")

    def check_resources(self):
        for w in (self.deploy, self.job):
            for c in containers(pod_spec(w)):
                r = c.get("resources") or {}
                for part in ("requests", "limits"):
                    for what in ("cpu", "memory"):
                        check((r.get(part) or {}).get(what),
                              f"{w['kind']}/{c['name']}: no {part}.{what}")

    def check_service_account(self):
        sa = self.m.one("ServiceAccount")
        name = pod_spec(self.deploy)["serviceAccountName"]
        check(sa["metadata"]["name"] == name, f"the Deployment runs as {name}, not {sa['metadata']['name']}")
        annotations = sa["metadata"].get("annotations") or {}
        if self.profile == "production":
            want = self.values["serviceAccount"]["roleArn"]
            check(want, "production values give no serviceAccount.roleArn")
            check(annotations.get(IRSA) == want, f"{IRSA}: {annotations.get(IRSA)!r}, want {want!r}")
        else:
            check(IRSA not in annotations, f"{IRSA} set without serviceAccount.roleArn")
        # No Kubernetes API token anywhere: nothing here calls the API, and
        # IRSA's token is projected by the EKS webhook on its own.
        for d in self.m.all("ServiceAccount"):
            check(d.get("automountServiceAccountToken") is False,
                  f"ServiceAccount {d['metadata']['name']} mounts the API token")
        for w in (self.deploy, self.job):
            check(pod_spec(w).get("automountServiceAccountToken") is False,
                  f"{w['kind']} mounts the API token")

    def check_service_links_off(self):
        # Service links would put BREAKGLASS_*_SERVICE_HOST into the
        # environment, which the server refuses.
        for w in (self.deploy, self.job):
            check(pod_spec(w).get("enableServiceLinks") is False, f"{w['kind']}: enableServiceLinks not false")

    def check_network_policy(self):
        np = self.m.one("NetworkPolicy")
        spec = np["spec"]
        check(set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}, f"policyTypes {spec.get('policyTypes')}")
        pod_labels = self.deploy["spec"]["template"]["metadata"]["labels"]
        check(selects(spec["podSelector"], pod_labels), "the NetworkPolicy does not select the server pods")
        check(not selects(spec["podSelector"], self.job["spec"]["template"]["metadata"]["labels"]),
              "the server's NetworkPolicy selects the migration pods")
        v = self.values["networkPolicy"]
        ingress = spec.get("ingress") or []
        if v["ingress"]["from"]:
            check(len(ingress) == 1, f"{len(ingress)} ingress rules, want 1")
            check(ingress[0]["ports"] == [{"protocol": "TCP", "port": 8200}], f"ingress ports {ingress[0]['ports']}")
            check(ingress[0]["from"] == v["ingress"]["from"], "ingress peers differ from the values")
        else:
            check(ingress == [], f"ingress {ingress} with no peers given")
        e = v["egress"]
        want = egress_pairs_dns(e) | egress_pairs(e["database"]["cidrs"], e["database"]["port"])
        for what in ("aws", "oidc", "alerts", "auditSink"):
            want |= egress_pairs(e[what]["cidrs"], 443)
        check(rule_pairs(spec.get("egress") or [], np) == want, "egress differs from the values' list")
        if self.profile == "production":
            for _, _, val in walk(spec):
                check(val not in ("0.0.0.0/0", "::/0"), "production egress opens every address")

    def check_migration_network_policy(self):
        np = self.m.one("NetworkPolicy", hook=True)
        spec = np["spec"]
        check(selects(spec["podSelector"], self.job["spec"]["template"]["metadata"]["labels"]),
              "the hook NetworkPolicy does not select the migration pods")
        check(set(spec["policyTypes"]) == {"Ingress", "Egress"}, f"policyTypes {spec['policyTypes']}")
        check(not spec.get("ingress"), "the migration pod accepts traffic")
        e = self.values["networkPolicy"]["egress"]
        want = egress_pairs_dns(e) | egress_pairs(e["database"]["cidrs"], e["database"]["port"])
        check(rule_pairs(spec.get("egress") or [], np) == want, "the migration pod reaches more than DNS and the database")
        check(hook_weight(np) < hook_weight(self.job), "the hook NetworkPolicy comes after the Job")

    def check_pdb(self):
        pdb = self.m.one("PodDisruptionBudget")
        want = self.values["podDisruptionBudget"]["minAvailable"]
        check(pdb["spec"]["minAvailable"] == want, f"minAvailable {pdb['spec']['minAvailable']}, want {want}")
        check(selects(pdb["spec"]["selector"], self.deploy["spec"]["template"]["metadata"]["labels"]),
              "the PodDisruptionBudget does not select the server pods")
        check(want < REPLICAS[self.profile], "minAvailable leaves no pod to evict")

    def check_migration_job(self):
        job = self.job
        hooks = set(hook_of(job).split(","))
        check(hooks == {"pre-install", "pre-upgrade"}, f"hook {hooks}")
        policy = set(job["metadata"]["annotations"].get("helm.sh/hook-delete-policy", "").split(","))
        check({"before-hook-creation", "hook-succeeded"} <= policy, f"hook-delete-policy {policy}")
        jc, dc = container(job), container(self.deploy)
        check(jc["args"] == ["migrate"], f"Job args {jc['args']}")
        check(dc["args"] == ["serve"], f"Deployment args {dc['args']}")
        check(jc["image"] == dc["image"], "the Job runs another image")
        check(jc["env"] == dc["env"], "the Job's environment differs")
        check(jc["volumeMounts"] == dc["volumeMounts"], "the Job's mounts differ")
        jv = {v["name"]: v for v in pod_spec(job)["volumes"]}
        dv = {v["name"]: v for v in pod_spec(self.deploy)["volumes"]}
        check(jv.keys() == dv.keys(), "the Job's volumes differ")
        for k in jv:
            if k != "config":
                check(jv[k] == dv[k], f"the Job's volume {k} differs")
        check(pod_spec(job)["restartPolicy"] == "Never", "the Job's pods restart")
        # What the Job reads must exist before it: hooks of lower weight.
        cm = self.config_map_of(job)
        check(hook_of(cm), "the Job reads a ConfigMap that is not a hook (absent at install)")
        check(hook_weight(cm) < hook_weight(job), "the Job's ConfigMap is created after the Job")
        check(cm["data"] == self.config_map_of(self.deploy)["data"], "the Job reads other settings than the pods")
        sa = self.m.named("ServiceAccount", pod_spec(job)["serviceAccountName"])
        check(hook_of(sa) and hook_weight(sa) < hook_weight(job), "the Job's ServiceAccount is not an earlier hook")
        check(IRSA not in (sa["metadata"].get("annotations") or {}), "the Job has an AWS role it does not need")

    def check_secrets_are_read_only_files(self):
        for w in (self.deploy, self.job):
            spec = pod_spec(w)
            secret_vols = {v["name"]: v for v in spec["volumes"] if "secret" in v}
            check(not any("projected" in v for v in spec["volumes"]), "a projected volume")
            for v in secret_vols.values():
                mode = v["secret"].get("defaultMode")
                check(mode == 0o440, f"{v['name']}: defaultMode {mode!r}, want 0440")
                for item in v["secret"].get("items") or []:
                    check("mode" not in item, f"{v['name']}: item {item['key']} has its own mode")
            for c in containers(spec):
                for m in c.get("volumeMounts") or []:
                    if m["name"] in secret_vols:
                        check(m.get("readOnly") is True, f"{m['name']} is mounted writable")
                        check(m["mountPath"].startswith(SECRETS_DIR + "/"), f"{m['name']} at {m['mountPath']}")
                        check("subPath" not in m, f"{m['name']} uses subPath (never updated)")
                check("envFrom" not in c, f"{c['name']}: envFrom")
                for e in c.get("env") or []:
                    check("valueFrom" not in e, f"{c['name']}: {e['name']} comes from valueFrom")
                    check(e["name"] in ALLOWED_ENV or e["name"].upper().endswith("_FILE"),
                          f"{c['name']}: environment variable {e['name']} is neither a path nor the log filter")
                    if e["name"] != "BREAKGLASS_LOG":
                        check(e.get("value", "").startswith("/"), f"{c['name']}: {e['name']} is not a path")
        # Every secret of the values is mounted.
        names = {v["secret"]["secretName"] for v in pod_spec(self.deploy)["volumes"] if "secret" in v}
        wanted = {s["secretName"] for s in self.values["extraSecrets"]}
        if self.values["database"]["urlSecret"]["name"]:
            wanted.add(self.values["database"]["urlSecret"]["name"])
        if self.tls:
            wanted.add(self.values["tls"]["secretName"])
        if self.values["localKey"]["secretName"]:
            wanted.add(self.values["localKey"]["secretName"])
        check(names == wanted, f"mounted Secrets {sorted(names)}, want {sorted(wanted)}")

    def check_files_named_by_settings_are_mounted(self):
        toml = self.toml_of(self.deploy)
        spec = pod_spec(self.deploy)
        vols = {v["name"]: v for v in spec["volumes"]}
        files = set()
        for m in container(self.deploy)["volumeMounts"]:
            v = vols[m["name"]]
            if "secret" in v:
                keys = [i["path"] for i in v["secret"].get("items") or []]
                files |= {posixpath.join(m["mountPath"], k) for k in keys} or {m["mountPath"] + "/*"}
        named = [(p, k, val) for p, k, val in walk(toml) if k.endswith("_file")]
        check(named, "no *_file setting: the secrets cannot be read")
        for p, k, val in named:
            whole = posixpath.dirname(val) + "/*"
            check(val in files or whole in files, f"{p}.{k} = {val} is no mounted Secret's file")
        if self.values["database"]["urlSecret"]["name"]:
            check("database_url" not in toml, "database_url beside database_url_file")

    def check_volumes(self):
        c = container(self.deploy)
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod_spec(self.deploy)["volumes"]}
        data = vols[mounts[DATA_MOUNT]["name"]]
        check("emptyDir" in data, f"{DATA_MOUNT} is not an emptyDir")
        tmp = vols[mounts["/tmp"]["name"]]
        check(tmp.get("emptyDir", {}).get("medium") == "Memory", "/tmp is not in memory")
        check(tmp["emptyDir"].get("sizeLimit"), "/tmp has no size limit")
        cfg = mounts[CONFIG_MOUNT]
        check(cfg.get("readOnly") is True, f"{CONFIG_MOUNT} is writable")
        check("configMap" in vols[cfg["name"]], f"{CONFIG_MOUNT} is not the ConfigMap")
        toml = self.toml_of(self.deploy)
        # The server refuses a data directory others can reach, and an
        # emptyDir's root is 0777: the data directory is created inside it.
        dd = toml["data_dir"]
        check(posixpath.dirname(dd.rstrip("/")) == DATA_MOUNT, f"data_dir {dd} is not a directory inside {DATA_MOUNT}")
        check(toml["policies_dir"] == CONFIG_MOUNT + "/policies", f"policies_dir {toml['policies_dir']}")
        items = {i["path"] for i in vols[cfg["name"]]["configMap"]["items"]}
        want = {"breakglass.toml"} | {f"policies/{n}" for n in self.values["policies"]}
        check(items == want, f"the ConfigMap's files {sorted(items)}, want {sorted(want)}")

    def check_config(self):
        toml = self.toml_of(self.deploy)
        check(toml.get("migrate_on_start") is False, "the Deployment's config migrates on start")
        check(toml.get("keys", {}).get("signing_keys") == "database", "keys.signing_keys is not database")
        check(toml.get("listen") == "0.0.0.0:8200", f"listen {toml.get('listen')}")
        if self.tls:
            check(toml.get("tls", {}).get("cert_file") and toml["tls"].get("key_file"), "TLS on without its files")
            check("allow_plain_http" not in toml, "allow_plain_http with TLS on")
        else:
            check("cert_file" not in toml.get("tls", {}), "TLS files with TLS off")
            check(toml.get("allow_plain_http") is True, "TLS off, and plain HTTP not allowed: the server will not start")
        for path, want in leaves(self.values["config"]):
            got = lookup(toml, path)
            check(got == want and type(got) is type(want), f"{'.'.join(map(str, path))}: {got!r}, want {want!r}")
        grace = pod_spec(self.deploy)["terminationGracePeriodSeconds"]
        check(grace == 15, f"terminationGracePeriodSeconds {grace}")
        shutdown = duration_seconds(toml.get("shutdown_timeout", "8s"))
        check(shutdown < grace, f"shutdown_timeout {shutdown}s is not under the grace period {grace}s")
        checksum = self.deploy["spec"]["template"]["metadata"]["annotations"].get("checksum/config", "")
        check(re.fullmatch(r"[0-9a-f]{64}", checksum), "no checksum/config annotation")

    def check_every_setting_is_known(self):
        for workload in (self.deploy, self.job):
            for problem in unknown_settings(self.toml_of(workload), self.settings):
                raise Failed(problem)

    def check_policies(self):
        cm = self.config_map_of(self.deploy)
        for name, text in self.values["policies"].items():
            got = cm["data"].get(f"policy.{name}")
            check(got == text, f"policy {name} differs from the values")
            try:
                tomllib.loads(got)
            except tomllib.TOMLDecodeError as e:
                raise Failed(f"policy {name} is not TOML: {e}")
        if self.profile == "default" and self.policies_dir:
            for f in sorted(self.policies_dir.glob("*.toml")):
                check(self.values["policies"].get(f.name) == f.read_text(),
                      f"the chart's {f.name} differs from the repository's {f}")

    def check_image(self):
        image = container(self.deploy)["image"]
        v = self.values["image"]
        want = f"{v['repository']}:{v['tag'] or '0.1.0'}"
        if v["digest"]:
            want += "@" + v["digest"]
        check(image == want, f"image {image}, want {want}")
        if self.profile == "production":
            check(re.search(r"@sha256:[0-9a-f]{64}$", image), "production image not pinned by digest")

    def check_service(self):
        svc = self.m.one("Service")
        check(svc["spec"]["type"] == "ClusterIP", f"Service type {svc['spec']['type']}")
        ports = svc["spec"]["ports"]
        check(len(ports) == 1 and ports[0]["targetPort"] == "http", f"Service ports {ports}")
        check(ports[0]["port"] == self.values["service"]["port"], f"Service port {ports[0]['port']}")
        check(selects({"matchLabels": svc["spec"]["selector"]}, self.deploy["spec"]["template"]["metadata"]["labels"]),
              "the Service does not select the server pods")
        check(not selects({"matchLabels": svc["spec"]["selector"]}, self.job["spec"]["template"]["metadata"]["labels"]),
              "the Service selects the migration pods")

    def check_spread(self):
        spec = pod_spec(self.deploy)
        spread = spec.get("topologySpreadConstraints") or []
        check(any(t["topologyKey"] == "kubernetes.io/hostname" for t in spread), "no spread over nodes")
        check(all(t["whenUnsatisfiable"] == "ScheduleAnyway" for t in spread), "a hard spread constraint")
        anti = spec.get("affinity", {}).get("podAntiAffinity", {})
        check("requiredDuringSchedulingIgnoredDuringExecution" not in anti, "a hard anti-affinity")


def container(workload):
    cs = pod_spec(workload)["containers"]
    check(len(cs) == 1 and cs[0]["name"] == "breakglass", f"containers {[c['name'] for c in cs]}")
    return cs[0]


def volume(spec, name):
    for v in spec["volumes"]:
        if v["name"] == name:
            return v
    raise Failed(f"no volume {name}")


def selects(selector, labels):
    return bool(selector.get("matchLabels")) and all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def egress_pairs(cidrs, port):
    return {(("ipBlock", c), "TCP", port) for c in cidrs}


def egress_pairs_dns(egress):
    peers = {("peer", yaml.safe_dump(p, sort_keys=True)) for p in egress["dns"]["to"]}
    return {(p, proto, 53) for p in peers for proto in ("UDP", "TCP")}


def rule_pairs(rules, np):
    """Each rule's (peer, protocol, port); a rule open to every address or
    port fails."""
    out = set()
    for r in rules:
        check(r.get("to"), f"{np['metadata']['name']}: an egress rule without `to` allows every address")
        check(r.get("ports"), f"{np['metadata']['name']}: an egress rule without ports allows every port")
        for peer in r["to"]:
            if set(peer) == {"ipBlock"}:
                check(not peer["ipBlock"].get("except"), "an ipBlock with exceptions")
                key = ("ipBlock", peer["ipBlock"]["cidr"])
            else:
                key = ("peer", yaml.safe_dump(peer, sort_keys=True))
            for p in r["ports"]:
                check("endPort" not in p, "a port range")
                out.add((key, p.get("protocol", "TCP"), p["port"]))
    return out


def leaves(node, path=()):
    """(path, value) of every leaf of the values' config; a list of tables
    is walked entry by entry, other lists are leaves."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, path + (k,))
    elif isinstance(node, list) and node and all(isinstance(i, dict) for i in node):
        for i, v in enumerate(node):
            yield from leaves(v, path + (i,))
    else:
        yield path, node


def lookup(node, path):
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node


KINDS = {
    "Str": lambda v: isinstance(v, str),
    "Path": lambda v: isinstance(v, str) and v.startswith("/"),
    "Duration": lambda v: isinstance(v, str),
    "Bool": lambda v: isinstance(v, bool),
    "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "List": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "MapOfLists": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
}


def unknown_settings(table, settings, prefix=""):
    """Every key of the file that is no setting, or holds a value of
    another kind (a float for an integer: Helm's numbers)."""
    tables = {p.rsplit(".", 1)[0] for p in settings if "." in p}
    tables |= {t.rsplit(".", 1)[0] for t in tables if "." in t}
    for key, value in table.items():
        here = f"{prefix}{key}"
        if here in settings:
            if not KINDS[settings[here]](value):
                yield f"{here} = {value!r} is not a {settings[here]}"
        elif f"{here}[]" in tables and isinstance(value, list):
            for entry in value:
                check(isinstance(entry, dict), f"{here}: an entry that is not a table")
                yield from unknown_settings(entry, settings, f"{here}[].")
        elif f"{here}.*" in settings and isinstance(value, dict):
            for k, v in value.items():
                if not KINDS["MapOfLists"](v):
                    yield f"{here}.{k} = {v!r} is not a list of names"
        elif here in tables and isinstance(value, dict):
            yield from unknown_settings(value, settings, f"{here}.")
        else:
            yield f"{here} is no setting of the server (it would stop the start)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=sorted(REPLICAS), required=True)
    ap.add_argument("--manifests", required=True)
    ap.add_argument("--values", action="append", required=True)
    ap.add_argument("--settings", default="src/config/schema.rs")
    ap.add_argument("--policies")
    args = ap.parse_args()
    try:
        chart = Chart(args)
    except (OSError, yaml.YAMLError, KeyError, Failed) as e:
        print(f"helm_assert: cannot read the input: {e}", file=sys.stderr)
        return 2
    passed = failed = 0
    for name in [n for n in dir(Chart) if n.startswith("check_")]:
        try:
            getattr(chart, name)()
        except Failed as e:
            failed += 1
            print(f"  FAIL {name[6:]}: {e}")
        except (KeyError, TypeError, IndexError) as e:
            failed += 1
            print(f"  FAIL {name[6:]}: missing or malformed field {e!r}")
        else:
            passed += 1
            print(f"  ok   {name[6:]}")
    print(f"{args.profile}: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
