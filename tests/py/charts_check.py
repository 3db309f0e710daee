#!/usr/bin/env python3
"""Checks the Helm charts in charts/ and the Dockerfiles in docker/, offline.

    .venv/bin/python tests/py/charts_check.py [--root DIR] [--envoy PATH]

Run by `cargo test -p infergate-e2e --test charts` (tests/tests/charts.rs). It:

- renders every chart with Helm 4's engine as a library (helm-python-sdk) for its default values and
  its CI values files (charts/*/ci/*.yaml), and lints each (strict, for a recent Kubernetes);
- validates every rendered object against the Kubernetes JSON schemas (kubernetes-validate, strict)
  for the oldest and newest Kubernetes versions we support; the CRDs as apiextensions.k8s.io/v1;
- asserts what the charts promise: replicas, a PodDisruptionBudget exactly when replicas > 1, the
  Redis URL handed to the rate limit service, non-root read-only containers with no capabilities,
  probes and resource requests everywhere, least-privilege RBAC, Services that select real pods and
  name real container ports, flags that the binaries really have (read from their clap `cli.rs`),
  and values that must fail to render;
- fails when a chart's copy of a generated artifact drifts from its source (CRDs, Envoy bootstrap),
  and runs `envoy --mode validate` on the bootstrap the chart really renders;
- checks the Dockerfiles (multi-stage, distroless non-root base, only the binary) and that
  docker/build.sh skips cleanly without a Docker engine.

Prints one line per check and exits 1 if any failed, naming what to fix.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import helm_python as helm
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

# The oldest Kubernetes the charts declare (kubeVersion, as the seeds need), and the newest
# schema kubernetes-validate ships.
KUBE_VERSIONS = ["1.32.0", kv_utils.latest_version()]
LINT_KUBE_VERSION = "v1.34.0"
RELEASE = "gw"
NAMESPACE = "infergate"

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate"}

# Kinds the xds-server reads (DESIGN.md §2 plus what pools and credentials need), as (group, plural).
XDS_READS = {
    ("gateway.networking.k8s.io", "gatewayclasses"),
    ("gateway.networking.k8s.io", "gateways"),
    ("gateway.networking.k8s.io", "httproutes"),
    ("gateway.networking.k8s.io", "referencegrants"),
    ("", "services"),
    ("", "pods"),
    ("", "secrets"),
    ("discovery.k8s.io", "endpointslices"),
}
# Kinds it writes status conditions to.
XDS_STATUS = {
    ("gateway.networking.k8s.io", "gateways/status"),
    ("gateway.networking.k8s.io", "httproutes/status"),
    ("aigateway.envoyproxy.io", "aigatewayroutes/status"),
    ("aigateway.envoyproxy.io", "aiservicebackends/status"),
    ("aigateway.envoyproxy.io", "backendsecuritypolicies/status"),
    ("inference.networking.k8s.io", "inferencepools/status"),
}

# Container name → the clap Args file of its binary.
CLI_FILES = {
    "xds-server": "xds-server/src/cli.rs",
    "extproc": "extproc/src/cli.rs",
    "epp": "epp/src/cli.rs",
    "ratelimit": "ratelimit/src/cli.rs",
}
# Binaries that ship as images: crate folder → binary.
IMAGES = {"xds-server": "xds-server", "extproc": "extproc", "epp": "epp", "ratelimit": "ratelimit"}


class Checks:
    """Collects results; a failing check does not stop the others."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0
        self.notes: list[str] = []

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{name}: {detail}" if detail else name)
            print(f"FAIL {name}: {detail}")
        return ok

    def run(self, name: str, body: Callable[[], None]) -> None:
        """Runs a group of checks; an unexpected exception fails the group with its message."""
        before = len(self.failures)
        try:
            body()
        except Exception as err:  # noqa: BLE001 - report, keep going
            self.check(name, False, f"{type(err).__name__}: {err}")
        status = "ok  " if len(self.failures) == before else "FAIL"
        print(f"{status} {name}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"note {text}")


# ---------------------------------------------------------------------------------------- helpers


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(chart_dir: Path, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """All objects the chart renders (NOTES.txt and empty documents dropped)."""
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in load_yaml_docs(text):
            doc.setdefault("metadata", {})
            doc["metadata"].setdefault("annotations", {})
            doc["_template"] = path
            objects.append(doc)
    return objects


def render_error(chart_dir: Path, values: dict[str, Any]) -> str | None:
    """The render error message, or None when the chart rendered."""
    try:
        render(chart_dir, values)
    except helm.HelmError as err:
        return str(err)
    return None


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as Kubernetes would receive it (without our bookkeeping, empty annotations)."""
    out = {k: v for k, v in obj.items() if not k.startswith("_")}
    meta = dict(out.get("metadata", {}))
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def kinds(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in kinds(objects, kind)}


def component(obj: dict[str, Any]) -> str:
    labels = obj["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component", obj["metadata"]["name"])


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def arg_flags(args: list[str]) -> dict[str, str | None]:
    """`--flag=value` / `--flag value` / `--flag` → {flag: value}."""
    flags: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        token = str(args[i])
        if token.startswith("--"):
            if "=" in token:
                name, value = token[2:].split("=", 1)
                flags[name] = value
            elif i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
                flags[token[2:]] = str(args[i + 1])
                i += 1
            else:
                flags[token[2:]] = None
        i += 1
    return flags


ARG_RE = re.compile(
    r"#\[arg\((?P<attr>.*?)\)\]\s*(?:(?:///[^\n]*|#\[[^\n]*\])\s*)*pub (?P<name>\w+):\s*(?P<ty>[^,\n]+),",
    re.DOTALL,
)


def clap_flags(cli_rs: str) -> dict[str, dict[str, Any]]:
    """The long flags a clap derive file declares: {flag: {required, env}}."""
    flags = {}
    for m in ARG_RE.finditer(cli_rs):
        attr, name, ty = m["attr"], m["name"], m["ty"].strip()
        explicit = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
        if explicit:
            flag = explicit[1]
        elif re.search(r"\blong\b", attr):
            flag = name.replace("_", "-")
        else:
            continue
        env = re.search(r'\benv\s*=\s*"([^"]+)"', attr)
        optional = ty.startswith(("Option<", "Vec<", "bool")) or "default_value" in attr
        flags[flag] = {"required": not optional, "env": env[1] if env else None}
    return flags


def envoy_flags(envoy: Path) -> set[str]:
    out = subprocess.run([str(envoy), "--help"], capture_output=True, text=True, timeout=60)
    return set(re.findall(r"--([a-z][a-z0-9-]+)", out.stdout + out.stderr))


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec, container) for every container of every Deployment."""
    for dep in kinds(objects, "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            yield dep, pod, c


def service_hosts(objects: list[dict[str, Any]]) -> dict[str, set[int]]:
    """`name.namespace.svc` (and the short forms) → the Service's ports."""
    hosts: dict[str, set[int]] = {}
    for svc in kinds(objects, "Service"):
        name, ns = svc["metadata"]["name"], svc["metadata"].get("namespace", NAMESPACE)
        ports = {p["port"] for p in svc["spec"]["ports"]}
        for host in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
            hosts[host] = ports
    return hosts


# ------------------------------------------------------------------------------------ the checks


class ChartsCheck:
    def __init__(self, root: Path, envoy: Path | None, checks: Checks) -> None:
        self.root = root
        self.charts = root / "charts"
        self.envoy = envoy
        self.c = checks
        self.cli = {
            name: clap_flags((root / path).read_text())
            for name, path in CLI_FILES.items()
            if (root / path).is_file()
        }
        self._envoy_flags: set[str] | None = None

    # -- drift ------------------------------------------------------------------------------------

    def drift(self) -> None:
        source = {p.name: p.read_bytes() for p in sorted((self.root / "crds/manifests").glob("*.yaml"))}
        copy_dir = self.charts / "infergate-crds/files"
        copied = {p.name: p.read_bytes() for p in sorted(copy_dir.glob("*.yaml"))}
        self.c.check("crds/manifests has CRDs", bool(source))
        missing = sorted(set(source) - set(copied))
        extra = sorted(set(copied) - set(source))
        changed = sorted(n for n in set(source) & set(copied) if source[n] != copied[n])
        self.c.check(
            "charts/infergate-crds/files is an exact copy of crds/manifests",
            not (missing or extra or changed),
            f"missing {missing}, extra {extra}, differing {changed}: run charts/sync.sh",
        )
        bootstrap = (self.root / "envoy-bootstrap/bootstrap.yaml").read_bytes()
        chart_copy = (self.charts / "infergate/files/bootstrap.yaml").read_bytes()
        self.c.check(
            "charts/infergate/files/bootstrap.yaml is an exact copy of envoy-bootstrap/bootstrap.yaml",
            bootstrap == chart_copy,
            "the copies differ: run charts/sync.sh",
        )

    # -- generic: lint, schemas, pod hygiene, wiring -------------------------------------------------

    def lint(self, chart: str, values: dict[str, Any] | None, case: str) -> None:
        report = helm.lint(
            self.charts / chart, values, strict=True, namespace=NAMESPACE, kube_version=LINT_KUBE_VERSION
        )
        problems = [m for m in report["messages"] if m["severity"] >= 2] + [
            {"error": e} for e in report.get("errors", [])
        ]
        self.c.check(f"{chart} [{case}]: helm lint --strict", not problems, str(problems))

    def schemas(self, objects: list[dict[str, Any]], label: str) -> None:
        for obj in objects:
            data = strip(obj)
            what = f"{label}: {obj['kind']}/{obj['metadata']['name']}"
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(data, version, strict=True)
                except kubernetes_validate.ValidationError as err:
                    path = ".".join(str(p) for p in err.path)
                    self.c.check(f"{what} validates (Kubernetes {version}, strict)", False, f"{path}: {err.message}")
                except kubernetes_validate.SchemaNotFoundError:
                    # Only built-in kinds (and the CRDs themselves) are rendered; a custom resource
                    # here would have no schema to check.
                    self.c.check(f"{what} has a Kubernetes schema", False, f"no schema for {obj['apiVersion']}")
                else:
                    self.c.passed += 1

    def pod_hygiene(self, objects: list[dict[str, Any]], label: str) -> None:
        for dep, pod, c in containers(objects):
            what = f"{label}: {dep['metadata']['name']}/{c['name']}"
            psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
            non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
            uid = csc.get("runAsUser", psc.get("runAsUser"))
            self.c.check(f"{what} runs as non-root", non_root and uid != 0, f"runAsNonRoot/runAsUser: {csc} {psc}")
            self.c.check(f"{what} has a read-only root filesystem", csc.get("readOnlyRootFilesystem") is True)
            self.c.check(f"{what} cannot escalate privileges", csc.get("allowPrivilegeEscalation") is False)
            self.c.check(
                f"{what} drops ALL capabilities and adds none",
                csc.get("capabilities", {}).get("drop") == ["ALL"] and not csc.get("capabilities", {}).get("add"),
                str(csc.get("capabilities")),
            )
            self.c.check(f"{what} is not privileged", not csc.get("privileged"))
            requests = c.get("resources", {}).get("requests", {})
            self.c.check(f"{what} requests cpu and memory", {"cpu", "memory"} <= set(requests), str(requests))
            for probe in ("livenessProbe", "readinessProbe"):
                self.c.check(f"{what} has a {probe}", bool(c.get(probe)))
            self.c.check(f"{what} image has a tag", ":" in c["image"].rsplit("/", 1)[-1], c["image"])
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe"):
                for action in ("httpGet", "tcpSocket", "grpc"):
                    port = c.get(probe, {}).get(action, {}).get("port")
                    if isinstance(port, str):
                        self.c.check(f"{what} {probe} names a container port", port in ports, f"{port} not in {ports}")
                    elif port is not None:
                        self.c.check(f"{what} {probe} port is a container port", port in ports.values(), str(port))

    def wiring(self, objects: list[dict[str, Any]], label: str) -> None:
        """References between rendered objects resolve: Services → pods and ports, volumes →
        ConfigMaps, pods → ServiceAccounts, bindings → roles and accounts."""
        deployments = kinds(objects, "Deployment")
        for svc in kinds(objects, "Service"):
            selector = svc["spec"].get("selector", {})
            pods = [
                d for d in deployments
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            what = f"{label}: Service {svc['metadata']['name']}"
            if not self.c.check(f"{what} selects a rendered Deployment's pods", bool(pods) and bool(selector)):
                continue
            names = {p.get("name"): p["containerPort"] for d in pods for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                ok = target in names if isinstance(target, str) else target in names.values()
                self.c.check(f"{what} port {port['port']} targets a container port", ok, f"{target} not in {names}")
        for dep in deployments:
            sel = dep["spec"]["selector"]["matchLabels"]
            self.c.check(
                f"{label}: Deployment {dep['metadata']['name']} selector matches its pod labels",
                sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
            )
        configmaps = set(by_name(objects, "ConfigMap"))
        accounts = set(by_name(objects, "ServiceAccount"))
        for dep in deployments:
            pod = dep["spec"]["template"]["spec"]
            for vol in pod.get("volumes", []):
                if "configMap" in vol:
                    self.c.check(
                        f"{label}: {dep['metadata']['name']} volume {vol['name']} mounts a rendered ConfigMap",
                        vol["configMap"]["name"] in configmaps,
                        vol["configMap"]["name"],
                    )
            mounts = {m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"] for v in pod.get("volumes", [])}
            self.c.check(f"{label}: {dep['metadata']['name']} mounts only declared volumes", mounts <= volumes, str(mounts - volumes))
            sa = pod.get("serviceAccountName")
            if sa:
                self.c.check(f"{label}: {dep['metadata']['name']} runs as a rendered ServiceAccount", sa in accounts, sa)
            else:
                self.c.check(
                    f"{label}: {dep['metadata']['name']} without an account mounts no API token",
                    pod.get("automountServiceAccountToken") is False,
                )
        roles = {(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] in ("Role", "ClusterRole")}
        for binding in kinds(objects, "RoleBinding") + kinds(objects, "ClusterRoleBinding"):
            ref = binding["roleRef"]
            self.c.check(f"{label}: {binding['kind']} {binding['metadata']['name']} binds a rendered role", (ref["kind"], ref["name"]) in roles, str(ref))
            for subject in binding["subjects"]:
                self.c.check(f"{label}: {binding['metadata']['name']} binds a rendered ServiceAccount", subject["name"] in accounts, subject["name"])

    def flags(self, objects: list[dict[str, Any]], label: str) -> None:
        """Every flag a container passes exists on its binary; required flags are passed; host:port
        flags name a rendered Service and one of its ports."""
        hosts = service_hosts(objects)
        for dep, _pod, c in containers(objects):
            what = f"{label}: {dep['metadata']['name']}/{c['name']}"
            passed = arg_flags(c.get("args", []))
            if c["name"] == "envoy":
                if self.envoy is None:
                    continue
                if self._envoy_flags is None:
                    self._envoy_flags = envoy_flags(self.envoy)
                unknown = sorted(set(passed) - self._envoy_flags)
                self.c.check(f"{what} passes only flags `envoy --help` lists", not unknown, str(unknown))
                continue
            if c["name"] not in CLI_FILES:
                continue
            known = self.cli.get(c["name"])
            if known is None:
                self.c.note(f"{what}: {CLI_FILES[c['name']]} does not exist yet; its flags are not checked")
                continue
            unknown = sorted(set(passed) - set(known))
            self.c.check(f"{what} passes only flags {CLI_FILES[c['name']]} declares", not unknown, str(unknown))
            env = {e["name"] for e in c.get("env", [])}
            missing = sorted(f for f, spec in known.items() if spec["required"] and f not in passed and spec["env"] not in env)
            self.c.check(f"{what} passes every required flag", not missing, str(missing))
            for flag, value in passed.items():
                if not value or flag not in ("extproc", "ratelimit", "xds-addr", "redis-url"):
                    continue
                for target in value.split(","):
                    target = re.sub(r"^[a-z]+://", "", target.strip())
                    host, _, port = target.rpartition(":")
                    if flag == "redis-url" and host not in hosts:
                        continue  # an external Redis
                    self.c.check(
                        f"{what} --{flag} names a rendered Service port",
                        host in hosts and int(port) in hosts[host],
                        f"{target} (services: {sorted(h for h in hosts if h.endswith('.svc'))})",
                    )

    def generic(self, chart: str, objects: list[dict[str, Any]], label: str) -> None:
        self.schemas(objects, label)
        self.pod_hygiene(objects, label)
        self.wiring(objects, label)
        self.flags(objects, label)

    # -- infergate ----------------------------------------------------------------------------------

    def rbac(self, objects: list[dict[str, Any]], label: str, namespaced: list[str]) -> None:
        grants: dict[tuple[str, str], set[str]] = {}
        role_namespaces: dict[tuple[str, str], set[str]] = {}
        for role in kinds(objects, "ClusterRole") + kinds(objects, "Role"):
            for rule in role["rules"]:
                for field in ("verbs", "resources", "apiGroups"):
                    self.c.check(f"{label}: {role['kind']} {role['metadata']['name']} has no '*' in {field}", "*" not in rule.get(field, []))
                self.c.check(f"{label}: {role['metadata']['name']} grants no nonResourceURLs", not rule.get("nonResourceURLs"))
                for group in rule.get("apiGroups", []):
                    for res in rule.get("resources", []):
                        key = (group, res)
                        grants.setdefault(key, set()).update(rule["verbs"])
                        where = role["metadata"].get("namespace", "*") if role["kind"] == "Role" else "*"
                        role_namespaces.setdefault(key, set()).add(where)
                        writes = set(rule["verbs"]) & WRITE_VERBS
                        if writes:
                            allowed = res.endswith("/status") and writes <= {"patch", "update"}
                            lease = (group, res) == ("coordination.k8s.io", "leases") and role["kind"] == "Role" and role["metadata"]["namespace"] == NAMESPACE
                            self.c.check(
                                f"{label}: write verbs only on /status subresources and the release namespace's Leases",
                                allowed or lease,
                                f"{role['kind']} {role['metadata']['name']} grants {sorted(writes)} on {group}/{res}",
                            )
        crd_kinds = set()
        for path in (self.root / "crds/manifests").glob("*.yaml"):
            crd = yaml.safe_load(path.read_text())
            crd_kinds.add((crd["spec"]["group"], crd["spec"]["names"]["plural"]))
        for key in sorted(XDS_READS | crd_kinds):
            self.c.check(f"{label}: xds-server may get/list/watch {key[0] or 'core'}/{key[1]}", {"get", "list", "watch"} <= grants.get(key, set()), str(grants.get(key)))
            if namespaced and key[1] != "gatewayclasses":
                self.c.check(
                    f"{label}: {key[1]} readable only in the watched namespaces",
                    role_namespaces.get(key, set()) == set(namespaced),
                    str(role_namespaces.get(key)),
                )
        for key in sorted(XDS_STATUS):
            self.c.check(f"{label}: xds-server may patch {key[1]}", "patch" in grants.get(key, set()), str(grants.get(key)))
        self.c.check(f"{label}: xds-server may take the leader Lease", {"get", "create", "update"} <= grants.get(("coordination.k8s.io", "leases"), set()))

    def replicas(self, objects: list[dict[str, Any]], values: dict[str, Any], label: str) -> None:
        expected = {"xds-server": values["xdsServer"]["replicas"], "envoy": values["envoy"]["replicas"]}
        if values["extproc"]["enabled"]:
            expected["extproc"] = values["extproc"]["replicas"]
        if values["ratelimit"]["enabled"]:
            expected["ratelimit"] = values["ratelimit"]["replicas"]
        if values["redis"]["enabled"]:
            expected["redis"] = 1
        deployments = {component(d): d for d in kinds(objects, "Deployment")}
        self.c.check(f"{label}: exactly the enabled components are deployed", set(deployments) == set(expected), f"{sorted(deployments)} != {sorted(expected)}")
        for name, n in expected.items():
            if name in deployments:
                self.c.check(f"{label}: {name} has {n} replicas", deployments[name]["spec"]["replicas"] == n, str(deployments[name]["spec"]["replicas"]))
        pdbs = {component(p): p for p in kinds(objects, "PodDisruptionBudget")}
        want = {name for name, n in expected.items() if n > 1}
        self.c.check(f"{label}: a PodDisruptionBudget exactly for components with replicas > 1", set(pdbs) == want, f"{sorted(pdbs)} != {sorted(want)}")
        for name, pdb in pdbs.items():
            if name in deployments:
                self.c.check(
                    f"{label}: PDB {name} selects its Deployment's pods",
                    pdb["spec"]["selector"]["matchLabels"].items() <= deployments[name]["spec"]["template"]["metadata"]["labels"].items(),
                )

    def admin_probes(self, objects: list[dict[str, Any]], label: str) -> None:
        for dep, _pod, c in containers(objects):
            if c["name"] not in ("xds-server", "extproc", "ratelimit"):
                continue
            admin = {p["name"]: p["containerPort"] for p in c["ports"]}.get("admin")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = c[probe].get("httpGet", {})
                self.c.check(f"{label}: {c['name']} {probe} is GET {path} on the admin port", get.get("path") == path and get.get("port") == "admin" and admin, str(get))
            addr = arg_flags(c["args"]).get("admin-addr", "")
            self.c.check(f"{label}: {c['name']} admin listens on the pod IP at the probed port", addr == f"0.0.0.0:{admin}", str(addr))

    def redis(self, objects: list[dict[str, Any]], values: dict[str, Any], label: str) -> None:
        rl = [c for _d, _p, c in containers(objects) if c["name"] == "ratelimit"]
        if not values["ratelimit"]["enabled"]:
            self.c.check(f"{label}: no ratelimit when disabled", not rl)
            return
        url = arg_flags(rl[0]["args"]).get("redis-url")
        if values["redis"]["enabled"]:
            svc = f"{RELEASE}-infergate-redis"
            expected = f"redis://{svc}.{NAMESPACE}.svc:{values['redis']['port']}"
            self.c.check(f"{label}: ratelimit gets the in-chart Redis URL", url == expected, f"{url} != {expected}")
            self.c.check(f"{label}: the Redis Service exists", svc in by_name(objects, "Service"))
        elif values["redis"]["url"]:
            self.c.check(f"{label}: ratelimit gets the external Redis URL", url == values["redis"]["url"], str(url))
            self.c.check(f"{label}: no in-chart Redis with an external URL", not [d for d in kinds(objects, "Deployment") if component(d) == "redis"])
        else:
            self.c.check(f"{label}: no --redis-url without Redis", url is None, str(url))

    def envoy_bootstrap(self, objects: list[dict[str, Any]], values: dict[str, Any], label: str) -> None:
        cm = by_name(objects, "ConfigMap").get(f"{RELEASE}-infergate-envoy-bootstrap")
        if not self.c.check(f"{label}: Envoy bootstrap ConfigMap rendered", cm is not None):
            return
        text = cm["data"]["bootstrap.yaml"]
        rendered = yaml.safe_load(text)
        source = yaml.safe_load((self.root / "envoy-bootstrap/bootstrap.yaml").read_text())
        # What the chart changes, and nothing else.
        expected = copy.deepcopy(source)
        xds = next(c for c in expected["static_resources"]["clusters"] if c["name"] == "xds_cluster")
        xds["type"] = "STRICT_DNS"
        sock = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sock["address"] = f"{RELEASE}-infergate-xds-server.{NAMESPACE}.svc"
        sock["port_value"] = values["xdsServer"]["adsPort"]
        added_listeners = [l for l in rendered["static_resources"].get("listeners", []) if l["name"] == "infergate-readiness"]
        added_clusters = [c for c in rendered["static_resources"]["clusters"] if c["name"] == "infergate_admin"]
        expected["static_resources"].setdefault("listeners", [])
        expected["static_resources"]["listeners"] += added_listeners
        expected["static_resources"]["clusters"] += added_clusters
        self.c.check(
            f"{label}: the chart's bootstrap is envoy-bootstrap/bootstrap.yaml with only the xDS address and the readiness listener changed",
            rendered == expected and len(added_listeners) == 1 and len(added_clusters) == 1,
            "rendered bootstrap differs from the source beyond the expected overrides",
        )
        self.c.check(f"{label}: the admin stays on loopback", rendered["admin"]["address"]["socket_address"]["address"] == "127.0.0.1")
        if added_clusters:
            admin_port = added_clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"]
            self.c.check(f"{label}: the readiness listener forwards to the admin port", admin_port == rendered["admin"]["address"]["socket_address"]["port_value"])
        envoy = [c for _d, _p, c in containers(objects) if c["name"] == "envoy"][0]
        ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
        if added_listeners:
            self.c.check(
                f"{label}: Envoy's readiness probe is GET /ready on the readiness listener",
                envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "readiness"}
                and ports["readiness"] == added_listeners[0]["address"]["socket_address"]["port_value"],
            )
        flags = arg_flags(envoy["args"])
        self.c.check(f"{label}: Envoy reads the mounted bootstrap", flags.get("config-path") == "/etc/envoy/bootstrap.yaml")
        self.c.check(f"{label}: Envoy's node cluster is envoy.nodeCluster", flags.get("service-cluster") == values["envoy"]["nodeCluster"])
        if self.envoy is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bootstrap.yaml"
                path.write_text(text)
                out = subprocess.run(
                    [str(self.envoy), "--mode", "validate", "--log-level", "warn", "-c", str(path)],
                    capture_output=True, text=True, timeout=120,
                )
            self.c.check(f"{label}: envoy --mode validate accepts the chart's bootstrap", out.returncode == 0, out.stdout + out.stderr)

    def infergate(self) -> None:
        chart = self.charts / "infergate"
        with helm.Chart.load(chart) as loaded:
            defaults = loaded.values
        cases: list[tuple[str, dict[str, Any] | None]] = [("defaults", None)]
        for path in sorted((chart / "ci").glob("*.yaml")):
            cases.append((f"ci/{path.name}", yaml.safe_load(path.read_text())))
        cases.append(("watchNamespaces", {"xdsServer": {"source": "directory", "watchNamespaces": ["team-a", "team-b"]}}))
        cases.append(("kube, one namespace", {"xdsServer": {"watchNamespaces": ["team-a"]}}))
        cases.append(("external Redis", {"ratelimit": {"enabled": True, "replicas": 2}, "redis": {"url": "redis://redis.cache.svc:6379"}}))
        cases.append(("no extproc", {"extproc": {"enabled": False}}))
        self.c.check("infergate has a CI values file with Redis and 3 replicas", any(n == "ci/redis-ha-values.yaml" for n, _ in cases))
        for case, overrides in cases:
            label = f"infergate [{case}]"
            values = deep_merge(defaults, overrides or {})

            def one(case: str = case, overrides: dict[str, Any] | None = overrides, values: dict[str, Any] = values, label: str = label) -> None:
                self.lint("infergate", overrides, case)
                objects = render(chart, overrides)
                self.generic("infergate", objects, label)
                self.rbac(objects, label, values["xdsServer"]["watchNamespaces"])
                self.replicas(objects, values, label)
                self.admin_probes(objects, label)
                self.redis(objects, values, label)
                self.envoy_bootstrap(objects, values, label)
                extproc = [c for _d, _p, c in containers(objects) if c["name"] == "xds-server"][0]
                has_flag = "extproc" in arg_flags(extproc["args"])
                self.c.check(f"{label}: xds-server gets --extproc exactly when the extproc runs", has_flag == values["extproc"]["enabled"])
                has_flag = "ratelimit" in arg_flags(extproc["args"])
                self.c.check(f"{label}: xds-server gets --ratelimit exactly when the ratelimit runs", has_flag == values["ratelimit"]["enabled"])
                flags = arg_flags(extproc["args"])
                kube = values["xdsServer"]["source"] == "kube"
                self.c.check(f"{label}: xds-server reads the cluster (--kube, --leader-elect) exactly with source kube", ("kube" in flags and "leader-elect" in flags) == kube and ("config-dir" in flags) != kube, str(extproc["args"]))
                namespaces = values["xdsServer"]["watchNamespaces"]
                if kube:
                    self.c.check(f"{label}: --namespace follows watchNamespaces", flags.get("namespace") == (namespaces[0] if namespaces else None), str(extproc["args"]))

            self.c.run(label, one)

        if "ci/redis-ha-values.yaml" in dict(cases):
            ha = deep_merge(defaults, dict(cases)["ci/redis-ha-values.yaml"])
            self.c.check(
                "ci/redis-ha-values.yaml runs 3 replicas of everything with the in-chart Redis",
                ha["redis"]["enabled"] and ha["ratelimit"]["enabled"]
                and all(ha[k]["replicas"] == 3 for k in ("xdsServer", "extproc", "ratelimit", "envoy")),
            )

        def refusals() -> None:
            err = render_error(chart, {"xdsServer": {"watchNamespaces": ["a", "b"]}})
            self.c.check("infergate refuses two watched namespaces with the kube source", err is not None and "one namespace" in err, str(err))
            err = render_error(chart, {"ratelimit": {"enabled": True, "replicas": 3}})
            self.c.check("infergate refuses ratelimit replicas > 1 without Redis", err is not None and "needs Redis" in err, str(err))
            err = render_error(chart, {"ratelimit": {"enabled": True}, "redis": {"enabled": True, "url": "redis://x:6379"}})
            self.c.check("infergate refuses both redis.enabled and redis.url", err is not None and "exclusive" in err, str(err))

        self.c.run("infergate refuses inconsistent values", refusals)
        self.c.run("infergate README documents every value", lambda: self.readme("infergate", defaults))

    def readme(self, chart: str, values: dict[str, Any]) -> None:
        text = (self.charts / chart / "README.md").read_text()
        opaque = {"resources", "podSecurityContext", "nodeSelector", "tolerations", "affinity", "annotations", "commonLabels", "config", "ports", "pluginsConfig"}

        def paths(node: Any, prefix: str) -> Iterator[str]:
            for key, value in node.items():
                path = f"{prefix}{key}"
                if isinstance(value, dict) and value and key not in opaque:
                    yield from paths(value, path + ".")
                else:
                    yield path

        missing = [p for p in paths(values, "") if f"`{p}`" not in text]
        self.c.check(f"charts/{chart}/README.md documents every value", not missing, f"undocumented: {missing}")

    # -- infergate-crds -------------------------------------------------------------------------------

    def crds(self) -> None:
        chart = self.charts / "infergate-crds"
        source = {}
        for path in (self.root / "crds/manifests").glob("*.yaml"):
            crd = yaml.safe_load(path.read_text())
            source[crd["metadata"]["name"]] = crd
        for case, values, keep in (("defaults", None, True), ("keep=false", {"keep": False}, False)):
            label = f"infergate-crds [{case}]"

            def one(label: str = label, values: dict[str, Any] | None = values, keep: bool = keep, case: str = case) -> None:
                self.lint("infergate-crds", values, case)
                objects = render(chart, values)
                self.c.check(f"{label}: renders only CRDs", all(o["kind"] == "CustomResourceDefinition" and o["apiVersion"] == "apiextensions.k8s.io/v1" for o in objects))
                rendered = {o["metadata"]["name"]: o for o in objects}
                self.c.check(f"{label}: renders every CRD of crds/manifests", set(rendered) == set(source), f"{sorted(rendered)} != {sorted(source)}")
                for name, crd in rendered.items():
                    annotations = crd["metadata"].get("annotations", {})
                    self.c.check(f"{label}: {name} keep annotation", (annotations.get("helm.sh/resource-policy") == "keep") == keep, str(annotations))
                    if name in source:
                        unannotated = {**crd, "metadata": {k: v for k, v in crd["metadata"].items() if k != "annotations"}}
                        self.c.check(f"{label}: {name} is crds/manifests' CRD unchanged", strip(unannotated) == strip(source[name]))
                self.schemas(objects, label)

            self.c.run(label, one)
        self.c.run("infergate-crds README documents every value", lambda: self.readme("infergate-crds", {"keep": True}))

    # -- infergate-epp --------------------------------------------------------------------------------

    def epp(self) -> None:
        chart = self.charts / "infergate-epp"
        with helm.Chart.load(chart) as loaded:
            defaults = loaded.values
        seed_docs = load_yaml_docs((self.root / "crds/testdata/seeds/000-mistral-pool.yaml").read_text())
        seed_dep = next(d for d in seed_docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mistral-epp")
        seed_pool = next(d for d in seed_docs if d["kind"] == "InferencePool")
        seed_cm = next(d for d in seed_docs if d["kind"] == "ConfigMap")
        seed_role = next(d for d in seed_docs if d["kind"] == "Role")
        cases = [(f"ci/{p.name}", yaml.safe_load(p.read_text())) for p in sorted((chart / "ci").glob("*.yaml"))]
        cases.append(("one replica, pool in the release namespace", {"pool": {"name": "llama"}}))
        for case, overrides in cases:
            label = f"infergate-epp [{case}]"
            values = deep_merge(defaults, overrides)

            def one(label: str = label, overrides: dict[str, Any] = overrides, values: dict[str, Any] = values, case: str = case) -> None:
                self.lint("infergate-epp", overrides, case)
                objects = render(chart, overrides)
                self.generic("infergate-epp", objects, label)
                pool, ns = values["pool"]["name"], values["pool"]["namespace"] or NAMESPACE
                name = f"{pool}-epp"
                dep = by_name(objects, "Deployment").get(name)
                if not self.c.check(f"{label}: Deployment {name}", dep is not None):
                    return
                self.c.check(f"{label}: every object in the pool namespace", all(o["metadata"].get("namespace") == ns for o in objects))
                self.c.check(f"{label}: {values['replicas']} replicas", dep["spec"]["replicas"] == values["replicas"])
                self.c.check(f"{label}: PDB exactly when replicas > 1", bool(kinds(objects, "PodDisruptionBudget")) == (values["replicas"] > 1))
                c = dep["spec"]["template"]["spec"]["containers"][0]
                flags = arg_flags(c["args"])
                want = {"pool-name": pool, "pool-namespace": ns, "grpc-port": "9002", "grpc-health-port": "9003", "config-file": "/config/default-plugins.yaml"}
                self.c.check(f"{label}: the seed Deployment's flags", all(flags.get(k) == v for k, v in want.items()), str(flags))
                self.c.check(f"{label}: --target-ports is the pool's", flags.get("target-ports") == ",".join(str(p) for p in values["pool"]["targetPorts"]))
                for probe in ("livenessProbe", "readinessProbe"):
                    self.c.check(f"{label}: {probe} is gRPC health on 9003", c[probe].get("grpc", {}).get("port") == 9003)
                mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
                vol = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts.get("/config"))
                cm = by_name(objects, "ConfigMap")[vol["configMap"]["name"]]
                self.c.check(
                    f"{label}: plugins config mounted at /config/default-plugins.yaml is the seeds' plugins-config",
                    yaml.safe_load(cm["data"]["default-plugins.yaml"]) == yaml.safe_load(seed_cm["data"]["default-plugins.yaml"]),
                )
                svc = by_name(objects, "Service").get(name)
                self.c.check(f"{label}: Service {name} serves gRPC on 9002", svc is not None and any(p["port"] == 9002 for p in svc["spec"]["ports"]))
                rules = {(g, r): set(rule["verbs"]) for role in kinds(objects, "Role") for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
                for key in (("", "pods"), ("inference.networking.k8s.io", "inferencepools"), ("inference.networking.x-k8s.io", "inferenceobjectives")):
                    self.c.check(f"{label}: epp may watch {key[1]}", rules.get(key) == {"get", "list", "watch"}, str(rules.get(key)))
                self.c.check(f"{label}: epp RBAC is read-only and namespaced", not kinds(objects, "ClusterRole") and all(v <= {"get", "list", "watch"} for v in rules.values()))
                seed_rules = {(g, r) for rule in seed_role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
                self.c.check(f"{label}: epp RBAC grants no more than the seed's Role", set(rules) <= seed_rules, str(set(rules) - seed_rules))

            self.c.run(label, one)

        def seed_match() -> None:
            objects = render(chart, {"pool": {"name": seed_pool["metadata"]["name"], "namespace": seed_pool["metadata"]["namespace"], "targetPorts": [p["number"] for p in seed_pool["spec"]["targetPorts"]]}})
            ref = seed_pool["spec"]["endpointPickerRef"]
            svc = by_name(objects, "Service").get(ref["name"])
            self.c.check("infergate-epp: the seed pool's endpointPickerRef names the chart's Service and port", svc is not None and any(p["port"] == ref["port"]["number"] for p in svc["spec"]["ports"]), str(ref))
            seed_flags = arg_flags(seed_dep["spec"]["template"]["spec"]["containers"][0]["args"])
            dep = by_name(objects, "Deployment")[ref["name"]]
            flags = arg_flags(dep["spec"]["template"]["spec"]["containers"][0]["args"])
            shared = ("pool-name", "pool-namespace", "grpc-port", "grpc-health-port", "config-file")
            self.c.check("infergate-epp: the same flag values as the seeds' epp Deployment", all(flags.get(k) == seed_flags.get(k) for k in shared), f"{flags} vs {seed_flags}")
            err = render_error(chart, {})
            self.c.check("infergate-epp refuses to render without pool.name", err is not None and "pool.name is required" in err, str(err))

        self.c.run("infergate-epp matches the seeds' mistral picker", seed_match)
        self.c.run("infergate-epp README documents every value", lambda: self.readme("infergate-epp", defaults))

    # -- images ---------------------------------------------------------------------------------------

    def images(self) -> None:
        docker = self.root / "docker"
        with helm.Chart.load(self.charts / "infergate") as loaded:
            values = loaded.values
        with helm.Chart.load(self.charts / "infergate-epp") as loaded:
            epp_values = loaded.values
        repos = {
            "xds-server": values["xdsServer"]["image"]["repository"],
            "extproc": values["extproc"]["image"]["repository"],
            "ratelimit": values["ratelimit"]["image"]["repository"],
            "epp": epp_values["image"]["repository"],
        }
        build_sh = (docker / "build.sh").read_text()
        for crate, binary in IMAGES.items():
            path = docker / f"{binary}.Dockerfile"
            if not self.c.check(f"docker/{binary}.Dockerfile exists", path.is_file()):
                continue
            text = path.read_text()
            stages = re.split(r"(?m)^FROM\s+", text)[1:]
            self.c.check(f"{path.name} is multi-stage", len(stages) >= 2, f"{len(stages)} stage(s)")
            final = stages[-1]
            base = final.split()[0]
            self.c.check(f"{path.name} final image is distroless non-root", base.startswith("gcr.io/distroless/") and base.endswith(":nonroot"), base)
            user = re.findall(r"(?m)^USER\s+(\S+)", final)
            self.c.check(f"{path.name} runs as a non-root USER", bool(user) and user[-1].split(":")[0] not in ("root", "0"), str(user))
            copies = re.findall(r"(?m)^COPY\s+(.*)$", final)
            self.c.check(f"{path.name} final image holds only the binary", len(copies) == 1 and "--from=" in copies[0] and copies[0].split()[-1].endswith(f"/{binary}"), str(copies))
            self.c.check(f"{path.name} entrypoint is the binary", re.search(rf'(?m)^ENTRYPOINT \["/usr/local/bin/{re.escape(binary)}"\]', final) is not None)
            self.c.check(f"{path.name} builds -p {crate} --bin {binary} --locked", re.search(rf"cargo build --release --locked -p {re.escape(crate)} --bin {re.escape(binary)}\b", text) is not None)
            ignore = docker / f"{binary}.Dockerfile.dockerignore"
            self.c.check(f"{ignore.name} keeps target/ and .venv/ out of the build context", ignore.is_file() and {"target", ".venv"} <= {l.strip().strip("/") for l in ignore.read_text().splitlines()})
            self.c.check(f"chart image {repos[binary]} is what docker/build.sh tags", repos[binary] == f"infergate/{binary}" and "${REGISTRY:-infergate}" in build_sh and "/${name}:" in build_sh, repos[binary])
        env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock")
        out = subprocess.run(["bash", str(docker / "build.sh")], capture_output=True, text=True, timeout=60, env=env, cwd=self.root)
        self.c.check(
            "docker/build.sh without a Docker engine says so and exits 0",
            out.returncode == 0 and "no Docker engine: skipping image builds" in out.stdout + out.stderr,
            f"exit {out.returncode}: {out.stdout}{out.stderr}",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2], help="workspace root")
    parser.add_argument("--envoy", type=Path, help="Envoy binary for `--mode validate` and its flags")
    args = parser.parse_args()
    checks = Checks()
    run = ChartsCheck(args.root.resolve(), args.envoy, checks)
    print(f"helm {helm.helm_sdk_version()}, Kubernetes schemas {', '.join(KUBE_VERSIONS)}")
    checks.run("generated copies match their sources", run.drift)
    run.infergate()
    run.crds()
    run.epp()
    checks.run("images", run.images)
    print(f"{checks.passed} checks passed, {len(checks.failures)} failed")
    if checks.failures:
        print("\nfailures:\n  " + "\n  ".join(checks.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
