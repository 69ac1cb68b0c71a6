#!/usr/bin/env python3
"""Checks the deployment files in deploy/ without a cluster or a Docker engine.

- The Helm chart lints (strict) and renders under the value sets operators use, and refuses
  the configurations that would run unsafely (no API keys, no Redis, TLS without a Secret).
- The rendered workloads keep their security settings (non-root, read-only root filesystem,
  no capabilities, seccomp) and bind to 0.0.0.0.
- deploy/kubernetes.yaml is exactly the chart's render for the plain-manifest values
  (`--write` regenerates it).
- Every YAML file parses; the Grafana dashboard is valid JSON; deploy/metrics-used.txt lists
  exactly the metric names the dashboard and the alerts use.

Helm comes from the `helm-python-sdk` package (Helm's Go SDK behind ctypes), so no helm
binary is needed: `pip install helm-python-sdk==0.2.2 pyyaml`.
"""

import json
import pathlib
import re
import sys

import yaml

try:
    import helm_python as helm
except ImportError:  # pragma: no cover - reported, not raised
    sys.exit("deploy/check.py needs helm-python-sdk: pip install helm-python-sdk==0.2.2")

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "sentinel"
PLAIN = DEPLOY / "kubernetes.yaml"
RELEASE = "sentinel"

# What deploy/kubernetes.yaml is rendered with: secrets from a Secret the operator creates,
# and the built-in policy pack as an editable ConfigMap.
PLAIN_SETS = [
    "--set secrets.existingSecret=sentinel-secrets",
    "--set-file policy.pack=src/policy/builtin.toml",
]


def plain_values():
    return {
        "secrets": {"existingSecret": "sentinel-secrets"},
        "policy": {"pack": (ROOT / "src" / "policy" / "builtin.toml").read_text()},
    }


# Helm's install order for the kinds this chart renders (helm template prints in this order).
KIND_ORDER = [
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Service",
    "Deployment",
    "StatefulSet",
    "PodDisruptionBudget",
    "Ingress",
    "ServiceMonitor",
]

failures = []


def fail(message):
    failures.append(message)


def render(values):
    """The chart's manifests as (template path, document) pairs, in install order."""
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=RELEASE, namespace="default", is_install=True)
    docs = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((path, doc))
    docs.sort(
        key=lambda item: (
            KIND_ORDER.index(item[1]["kind"]) if item[1]["kind"] in KIND_ORDER else 99,
            item[0],
            item[1]["metadata"]["name"],
        )
    )
    return docs


def lint(label, values):
    report = helm.lint(str(CHART), values=values, strict=True)
    for message in report.get("messages", []):
        if message["severity"] >= 2:
            fail(f"helm lint ({label}): {message['path']}: {message['error']}")
    for error in report.get("errors") or []:
        fail(f"helm lint ({label}): {error}")


def refused(label, values, expected):
    """The render must fail, naming what to set."""
    try:
        render(values)
    except Exception as e:  # helm_python raises its own HelmRenderError
        if expected not in str(e):
            fail(f"{label}: refused, but the message does not name {expected!r}: {e}")
        return
    fail(f"{label}: rendered, but must be refused")


def by_kind(docs, kind):
    return [doc for _, doc in docs if doc["kind"] == kind]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_workloads(label, docs):
    for workload in by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet"):
        name = f"{label}: {workload['kind']} {workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True:
            fail(f"{name}: pod securityContext.runAsNonRoot must be true")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{name}: seccompProfile must be RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            fail(f"{name}: automountServiceAccountToken must be false")
        for container in pod["containers"]:
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                fail(f"{name}: {container['name']} needs readOnlyRootFilesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                fail(f"{name}: {container['name']} must not allow privilege escalation")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                fail(f"{name}: {container['name']} must drop ALL capabilities")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in container:
                    fail(f"{name}: {container['name']} has no {probe}")
            if "limits" not in container.get("resources", {}):
                fail(f"{name}: {container['name']} has no resource limits")

    for deployment in by_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = env_of(container)
        for var, value in (
            ("SENTINEL_GRPC_ADDR", "0.0.0.0:50051"),
            ("SENTINEL_HTTP_ADDR", "0.0.0.0:8080"),
        ):
            if env.get(var, {}).get("value") != value:
                fail(f"{label}: {var} must be {value}")
        if container["livenessProbe"]["httpGet"]["path"] != "/healthz":
            fail(f"{label}: liveness must probe /healthz")
        if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
            fail(f"{label}: readiness must probe /readyz")
        if deployment["spec"]["replicas"] < 2:
            fail(f"{label}: the default fleet must have at least 2 replicas")
        if not pod.get("topologySpreadConstraints"):
            fail(f"{label}: replicas must be spread (topologySpreadConstraints)")
        if "SENTINEL_REDIS_URL" not in env:
            fail(f"{label}: SENTINEL_REDIS_URL is not set")
        # Secrets never appear as plain values in the pod spec.
        for var in (
            "SENTINEL_API_KEYS",
            "GROQ_API_KEY",
            "TELNYX_API_KEY",
            "TELNYX_PUBLIC_KEY",
            "SENTINEL_RECEIPT_KEY",
        ):
            if "secretKeyRef" not in env.get(var, {}).get("valueFrom", {}):
                fail(f"{label}: {var} must come from a Secret")


def check_chart():
    keys = {"secrets": {"values": {"SENTINEL_API_KEYS": "operator:ops=not-a-real-key"}}}
    variants = {
        "defaults with API keys": keys,
        "plain manifest": plain_values(),
        "external Redis": {
            **keys,
            "redis": {"bundled": False, "external": {"url": "redis://redis.example:6379"}},
        },
        "everything on": {
            **keys,
            "policy": {"pack": "# a pack\n"},
            "tls": {"enabled": True, "secretName": "sentinel-tls", "clientCA": True},
            "ingress": {"enabled": True, "tlsSecretName": "webhook-tls"},
            "metrics": {"serviceMonitor": {"enabled": True}},
            "otel": {"endpoint": "http://collector:4317", "resourceAttributes": "env=prod"},
            "config": {"llm": {"timeoutMs": 2500}, "agentRateLimit": "50"},
        },
    }
    for label, values in variants.items():
        lint(label, values)
        try:
            docs = render(values)
        except Exception as e:
            fail(f"{label}: render failed: {e}")
            continue
        check_workloads(label, docs)

    docs = render(variants["everything on"])
    env = env_of(by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
    expected = {
        "SENTINEL_POLICY": "/etc/sentinel/policy/pack.toml",
        "SENTINEL_TLS_CERT": "/etc/sentinel/tls/tls.crt",
        "SENTINEL_TLS_KEY": "/etc/sentinel/tls/tls.key",
        "SENTINEL_TLS_CLIENT_CA": "/etc/sentinel/tls/ca.crt",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "SENTINEL_LLM_TIMEOUT_MS": "2500",
        "SENTINEL_AGENT_RATE_LIMIT": "50",
    }
    for var, value in expected.items():
        if env.get(var, {}).get("value") != value:
            fail(f"everything on: {var} should be {value!r}, is {env.get(var)}")
    attributes = env.get("OTEL_RESOURCE_ATTRIBUTES", {}).get("value", "")
    if not attributes.endswith(",env=prod") or "k8s.pod.name=$(POD_NAME)" not in attributes:
        fail(f"everything on: OTEL_RESOURCE_ATTRIBUTES is {attributes!r}")
    ingress = by_kind(docs, "Ingress")[0]
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    if paths != ["/telnyx/webhook"]:
        fail(f"everything on: the Ingress must expose only /telnyx/webhook, exposes {paths}")

    defaults = render(variants["defaults with API keys"])
    unset = [
        var
        for var in env_of(
            by_kind(defaults, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        )
        if var.startswith("SENTINEL_LLM") or var in ("SENTINEL_POLICY", "SENTINEL_TLS_CERT")
    ]
    if unset:
        fail(f"defaults: {unset} are set although their values are empty")
    statefulset = by_kind(defaults, "StatefulSet")
    args = statefulset[0]["spec"]["template"]["spec"]["containers"][0]["args"] if statefulset else []
    if "--appendonly" not in args or args[args.index("--appendonly") + 1] != "yes":
        fail("defaults: the bundled Redis must run with --appendonly yes")

    refused("no API keys", {}, "SENTINEL_API_KEYS")
    refused(
        "no Redis",
        {**keys, "redis": {"bundled": False}},
        "redis.external.url",
    )
    refused(
        "TLS without a Secret",
        {**keys, "tls": {"enabled": True}},
        "tls.secretName",
    )


def plain_manifest():
    header = [
        "# Sentinel on Kubernetes without Helm: a fleet of 2 replicas on a bundled Redis (AOF).",
        "# Rendered from deploy/helm/sentinel by `python3 deploy/check.py --write`; with helm:",
        f"#   helm template {RELEASE} deploy/helm/sentinel {' '.join(PLAIN_SETS)}",
        "# Do not edit by hand: change the chart and render again (scripts/test.sh checks it).",
        "#",
        "# Before applying, create the Secret the pods read (only SENTINEL_API_KEYS is required):",
        "#   kubectl create secret generic sentinel-secrets \\",
        "#     --from-literal=SENTINEL_API_KEYS='agent:billing-bot=KEY;operator:alice=KEY' \\",
        "#     --from-literal=GROQ_API_KEY=... --from-literal=TELNYX_API_KEY=...",
        "#   kubectl apply -f deploy/kubernetes.yaml",
        "# The image `sentinel:0.1.0` is built from deploy/Dockerfile; push it where your",
        "# cluster pulls from and change `image:` below.",
    ]
    body = []
    for path, doc in render(plain_values()):
        body.append(f"---\n# Source: sentinel/{path.split('/', 1)[1]}\n")
        body.append(yaml.safe_dump(doc, sort_keys=False, width=100))
    return "\n".join(header) + "\n" + "".join(body)


def check_plain(write):
    text = plain_manifest()
    if write:
        PLAIN.write_text(text)
        print(f"wrote {PLAIN.relative_to(ROOT)}")
    elif not PLAIN.exists() or PLAIN.read_text() != text:
        fail(
            "deploy/kubernetes.yaml is not the chart's current render: "
            "run `python3 deploy/check.py --write` and commit it"
        )


METRIC = re.compile(r"\b(sentinel_[a-z0-9_]+)")
# Histogram series names used in queries map back to the histogram's name.
SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(text):
    names = set()
    for name in METRIC.findall(text):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and name.endswith("_seconds" + suffix):
                name = name[: -len(suffix)]
        names.add(name)
    return names


def check_files():
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        if CHART in path.parents:
            continue  # templates are not YAML until rendered
        try:
            list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as e:
            fail(f"{path.relative_to(ROOT)}: not valid YAML: {e}")

    dashboard_path = DEPLOY / "grafana" / "sentinel.json"
    dashboard = json.loads(dashboard_path.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    if not exprs:
        fail("deploy/grafana/sentinel.json: no panel queries anything")
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    alert_exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]

    used = set()
    for expr in exprs + alert_exprs:
        used |= metric_names(expr)
    listed = {
        line.strip()
        for line in (DEPLOY / "metrics-used.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    if used - listed:
        fail(f"deploy/metrics-used.txt misses {sorted(used - listed)}")
    if listed - used:
        fail(f"deploy/metrics-used.txt lists unused {sorted(listed - used)}")


def main():
    write = "--write" in sys.argv[1:]
    check_chart()
    check_plain(write)
    check_files()
    if failures:
        for message in failures:
            print(f"deploy/check.py: {message}", file=sys.stderr)
        sys.exit(1)
    print("deploy/check.py: chart, plain manifest, dashboards and alerts are consistent")


if __name__ == "__main__":
    main()
