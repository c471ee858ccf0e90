#!/usr/bin/env bash
# Validate the Kubernetes manifests in deploy/:
#   1. each base resource file against the Kubernetes 1.30 schemas, strictly (unknown fields fail);
#      the ServiceMonitor is a CRD with no bundled schema: kubernetes-validate only warns on it;
#   2. if kubectl (or kustomize) is installed: render the base and the prod overlay, and validate
#      the rendered output the same way;
#   3. cross-checks the schemas cannot see (with PyYAML): probe/Service/ServiceMonitor port names,
#      label selectors, BATON_SHUTDOWN_GRACE_S < terminationGracePeriodSeconds (workers), the API's
#      preStop sleep + BATON_API_DRAIN_S fitting its grace period, BATON_* names.
# Needs kubernetes-validate and pyyaml: both are in the dev extra (./dev up or ./dev test installs them).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
DEPLOY=$PWD
ROOT=$(dirname "$DEPLOY")
K8S_VERSION=${K8S_VERSION:-1.30.0}

KV=${KUBERNETES_VALIDATE:-}
if [[ -z $KV ]]; then
    if command -v kubernetes-validate >/dev/null 2>&1; then
        KV=$(command -v kubernetes-validate)
    elif [[ -x $ROOT/.venv/bin/kubernetes-validate ]]; then
        KV=$ROOT/.venv/bin/kubernetes-validate
    else
        echo "check.sh: kubernetes-validate not found: run ./dev test once (installs '.[dev]'), or pip install kubernetes-validate pyyaml" >&2
        exit 1
    fi
fi
# the Python that has PyYAML: the one kubernetes-validate runs on
PY=$(dirname "$KV")/python
[[ -x $PY ]] || PY=${PYTHON:-python3}

validate() {
    "$KV" --strict -k "$K8S_VERSION" "$@"
}

echo "== kubernetes-validate --strict -k $K8S_VERSION: base files"
base_files=()
for f in base/*.yaml; do
    [[ $(basename "$f") == kustomization.yaml ]] && continue
    base_files+=("$f")
done
validate "${base_files[@]}"

render() {
    if command -v kubectl >/dev/null 2>&1; then
        kubectl kustomize "$1"
    else
        kustomize build "$1"
    fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rendered=()
if command -v kubectl >/dev/null 2>&1 || command -v kustomize >/dev/null 2>&1; then
    for dir in base overlays/*/; do
        dir=${dir%/}
        out=$tmp/$(echo "$dir" | tr / _).yaml
        echo "== render $dir"
        render "$dir" >"$out"
        echo "   $(grep -c '^kind:' "$out") resources: $(grep '^kind:' "$out" | awk '{print $2}' | paste -sd, -)"
        echo "== kubernetes-validate --strict -k $K8S_VERSION: rendered $dir"
        validate "$out"
        rendered+=("$out")
    done
else
    echo "== kubectl/kustomize not installed: overlays not rendered"
fi

echo "== cross-checks"
"$PY" - "$ROOT" "${base_files[@]}" -- "${rendered[@]}" <<'EOF'
import re
import sys
from pathlib import Path

import yaml

root = Path(sys.argv[1])
args = sys.argv[2:]
split = args.index("--")
base_files, rendered = args[:split], args[split + 1:]

# BATON_* names must be Settings fields (parsed from the source: no need to import the package)
settings_src = (root / "runtime" / "settings.py").read_text()
body = settings_src.split("class Settings", 1)[1].split("def __post_init__", 1)[0]
fields = set(re.findall(r"^    ([a-z_][a-z0-9_]*): ", body, re.M))
known = {"BATON_" + f.upper() for f in fields}

errors: list[str] = []


def check(docs: list[dict], where: str) -> None:
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deps = by_kind.get("Deployment", [])
    svcs = by_kind.get("Service", [])
    sms = by_kind.get("ServiceMonitor", [])
    pdbs = by_kind.get("PodDisruptionBudget", [])
    cms = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}

    def err(msg: str) -> None:
        errors.append(f"{where}: {msg}")

    for dep in deps:
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        if any(pod_labels.get(k) != v for k, v in spec["selector"]["matchLabels"].items()):
            err("Deployment selector does not match its pod labels")
        grace_pod = pod.get("terminationGracePeriodSeconds", 30)
        for c in pod["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            names = set(env)
            for ref in c.get("envFrom", []):
                name = ref.get("configMapRef", {}).get("name")
                if name in cms:
                    names |= set(cms[name].get("data", {}))
                elif name and not ref["configMapRef"].get("optional"):
                    err(f"envFrom ConfigMap {name!r} is not in the manifests")
            for n in sorted(x for x in names if x.startswith("BATON_") and x not in known):
                err(f"{n} is not a Settings field (typo?)")
            if "BATON_REDIS_URL" not in env or "secretKeyRef" not in env["BATON_REDIS_URL"].get("valueFrom", {}):
                err("BATON_REDIS_URL must come from a Secret")
            grace = float(env.get("BATON_SHUTDOWN_GRACE_S", {}).get("value", 25))
            # only a worker drains handlers; the API role has nothing to drain
            if "api" not in c.get("command", []) and not grace < grace_pod:
                err(f"BATON_SHUTDOWN_GRACE_S={grace} must be less than terminationGracePeriodSeconds={grace_pod}")
            if "api" in c.get("command", []):
                # preStop sleep, then SIGTERM: the API keeps answering BATON_API_DRAIN_S, then closes (2 s)
                pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
                sleep_s = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0.0
                drain = float(env.get("BATON_API_DRAIN_S", {}).get("value", 1))
                if not sleep_s + drain + 2 < grace_pod:
                    err(f"API preStop sleep {sleep_s} + BATON_API_DRAIN_S {drain} + 2 s to close must be less "
                        f"than terminationGracePeriodSeconds={grace_pod}")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            mport = env.get("BATON_METRICS_PORT", {}).get("value", "9464")
            if ports.get("metrics") != int(mport):
                err(f"container port 'metrics' {ports.get('metrics')} != BATON_METRICS_PORT {mport}")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports and port not in ports.values():
                    err(f"{probe} port {port!r} is not a container port")
    def pods_of(selector: dict) -> list[dict]:
        """Deployments whose pods a selector matches."""
        return [d for d in deps
                if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())]

    for svc in svcs:
        selected = pods_of(svc["spec"].get("selector", {}))
        if not selected:
            err(f"Service {svc['metadata']['name']} selects no Deployment's pods")
        for dep in selected:
            ports = {p.get("name"): p["containerPort"]
                     for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                if tp not in ports and tp not in ports.values():
                    err(f"Service {svc['metadata']['name']} targetPort {tp!r} is not a container port")
    for pdb in pdbs:
        if not pods_of(pdb["spec"]["selector"]["matchLabels"]):
            err("PodDisruptionBudget selects no Deployment's pods")
    for sm in sms:
        ml = sm["spec"]["selector"]["matchLabels"]
        matched = [s for s in svcs if all(s["metadata"].get("labels", {}).get(k) == v for k, v in ml.items())]
        if not matched:
            err("ServiceMonitor selects no Service")
        svc_ports = {p.get("name") for s in matched for p in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in svc_ports:
                err(f"ServiceMonitor endpoint port {ep.get('port')!r} is not a named Service port")


base_docs = [d for f in base_files for d in yaml.safe_load_all(Path(f).read_text()) if d]
check(base_docs, "base files")
for out in rendered:
    check([d for d in yaml.safe_load_all(Path(out).read_text()) if d], Path(out).stem)

for e in errors:
    print(f"ERROR {e}")
if errors:
    sys.exit(1)
print(f"OK: {1 + len(rendered)} manifest set(s) consistent ({len(known)} Settings fields known)")
EOF
echo "deploy/check.sh: all checks passed"
