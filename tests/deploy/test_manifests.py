"""The Kubernetes manifests: every overlay renders and passes the Kubernetes schemas strictly, custom resources
pass their CRD schemas, the generated monitoring objects match grafana/, and the examples' Redis URLs parse."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from runtime.connection import redis_url_problem
from runtime.stop_signals import STOP_AFTER_GRACE_S
from tests.observability.support import load_script

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"
OVERLAYS = ["base", *sorted(f"overlays/{p.name}" for p in (DEPLOY / "overlays").iterdir())]
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
        ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
        ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json"}


def tool(name: str) -> str:
    """A command-line tool: skipped when missing on a developer machine, a failure under CI."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    reason = f"{name} not found (kubectl ships kustomize; kubernetes-validate is in the dev extra)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@cache
def rendered(overlay: str) -> str:
    """``kubectl kustomize`` output of a kustomization directory."""
    out = subprocess.run([tool("kubectl"), "kustomize", str(DEPLOY / overlay)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def docs(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered(overlay)) if d]


def strict(schema: Any) -> Any:
    """A CRD schema where an object with properties accepts no others (what pruning would drop silently)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> Draft202012Validator:
    vendored = json.loads((DEPLOY / "schemas" / CRDS[(api_version, kind)]).read_text())
    assert vendored["kind"] == kind and f"{vendored['group']}/{vendored['version']}" == api_version
    return Draft202012Validator(strict(vendored["openAPIV3Schema"]))


def crd_errors(doc: dict[str, Any]) -> list[str]:
    validator = crd_validator(doc["apiVersion"], doc["kind"])
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_passes_kubernetes_validate_strictly(overlay: str) -> None:
    # Given an overlay rendered by kustomize
    text = rendered(overlay)
    # When kubernetes-validate checks it strictly (unknown fields fail)
    out = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, "-"], input=text,
                         capture_output=True, text=True, timeout=300)
    # Then every built-in resource passes, and only the custom resources (checked below) lack a schema
    assert out.returncode == 0, out.stdout + out.stderr
    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", out.stdout + out.stderr))
    assert unknown <= {kind for _, kind in CRDS}, unknown
    passed = len(re.findall(r" passed for resource ", out.stdout + out.stderr))
    assert passed == len([d for d in docs(overlay) if (d["apiVersion"], d["kind"]) not in CRDS])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_pass_their_vendored_crd_schemas(overlay: str) -> None:
    # Given the custom resources of an overlay
    custom = [d for d in docs(overlay) if (d["apiVersion"], d["kind"]) in CRDS]
    assert {d["kind"] for d in custom} >= {"ServiceMonitor", "PrometheusRule"}
    # Then each one passes its CRD's schema, strictly
    for doc in custom:
        assert crd_errors(doc) == [], (doc["kind"], doc["metadata"]["name"])


def test_the_strict_crd_check_rejects_a_misspelt_field() -> None:
    # Given a valid ServiceMonitor and ScaledObject from the base and the sentinel example
    monitor = next(d for d in docs("base") if d["kind"] == "ServiceMonitor")
    scaled = next(d for d in docs("overlays/sentinel") if d["kind"] == "ScaledObject")
    # When a field is misspelt or mistyped, then the check fails on it
    bad = copy.deepcopy(monitor)
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    assert any("intervall" in e for e in crd_errors(bad))
    bad = copy.deepcopy(scaled)
    bad["spec"]["maxReplicaCount"] = "twenty"
    assert any("maxReplicaCount" in e for e in crd_errors(bad))


def test_autoscaling_is_in_the_examples_and_drains_before_scaling_down() -> None:
    # Given the KEDA and HPA examples, rendered
    scaled = next(d for d in docs("overlays/sentinel") if d["kind"] == "ScaledObject")
    hpa = next(d for d in docs("overlays/cluster") if d["kind"] == "HorizontalPodAutoscaler")
    worker = next(d for d in docs("base") if d["kind"] == "Deployment" and d["metadata"]["name"] == "baton-worker")
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # Then both target the worker Deployment, and scale down one pod per period longer than a drain
    for target, behavior in ((scaled["spec"]["scaleTargetRef"],
                              scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]),
                             (hpa["spec"]["scaleTargetRef"], hpa["spec"]["behavior"])):
        assert target["name"] == "baton-worker"
        (policy,) = behavior["scaleDown"]["policies"]
        assert policy == {"type": "Pods", "value": 1, "periodSeconds": policy["periodSeconds"]}
        assert policy["periodSeconds"] > grace
    # and the KEDA queries select this deployment's series by namespace and scrape job
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "prometheus"
        for selector in re.findall(r"baton_\w+\{([^}]*)\}", trigger["metadata"]["query"]):
            assert 'namespace="baton"' in selector and 'job="baton-metrics"' in selector


def test_prometheusrule_and_dashboards_configmap_are_generated_from_grafana() -> None:
    # Given the generated manifests, then they are exactly what the script makes of grafana/ now
    for path, text in load_script(DEPLOY / "build_monitoring.py").render().items():
        assert path.read_text() == text, f"{path.name} is stale: run python deploy/build_monitoring.py"
    # and the PrometheusRule holds the alert rules file's groups unchanged
    rule = yaml.safe_load((DEPLOY / "base" / "prometheusrule.yaml").read_text())
    alerts = yaml.safe_load((ROOT / "grafana" / "alerts" / "baton.rules.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    # and the ConfigMap carries every dashboard, labelled for the Grafana sidecar
    cm = yaml.safe_load((DEPLOY / "base" / "grafana-dashboards.yaml").read_text())
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {k: json.loads(v) for k, v in cm["data"].items()} == {
        p.name: json.loads(p.read_text()) for p in (ROOT / "grafana" / "dashboards").glob("*.json")}


def test_every_alert_links_its_runbook_section() -> None:
    # Given the alert rules and the runbook's section anchors (GitHub's: lower case)
    alerts = yaml.safe_load((ROOT / "grafana" / "alerts" / "baton.rules.yml").read_text())
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbook, re.M)}
    rules = [r for g in alerts["groups"] for r in g["rules"] if "alert" in r]
    # Then every alert has a runbook_url to its own section, and the runbook has no section for no alert
    for rule in rules:
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}", rule["alert"]
    assert anchors == {r["alert"].lower() for r in rules}


def test_example_redis_urls_are_accepted_by_baton() -> None:
    # Given the example Secrets of the Sentinel and Cluster overlays, and the cluster flag its ConfigMap sets
    for overlay, cluster in (("sentinel", False), ("cluster", True)):
        secret = yaml.safe_load((DEPLOY / "overlays" / overlay / "redis-secret.example.yaml").read_text())
        # Then each URL passes Baton's own URL check (the one a node runs at start)
        for key in ("url", "api-url"):
            assert redis_url_problem(secret["stringData"][key], cluster=cluster) == "", (overlay, key)
    config = next(d for d in docs("overlays/cluster") if d["kind"] == "ConfigMap" and d["metadata"]["name"]
                  == "baton-config")
    assert config["data"]["BATON_REDIS_CLUSTER"] == "true"
    # and the CA path the cluster example names is where the base mounts the CA Secret
    worker = next(d for d in docs("base") if d["kind"] == "Deployment" and d["metadata"]["name"] == "baton-worker")
    (mount,) = [m for m in worker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                if m["name"] == "redis-ca"]
    assert "ssl_ca_certs=" + mount["mountPath"] + "/ca.crt" in secret["stringData"]["url"]


def test_check_script_cross_checks_pass() -> None:
    # Given deploy/check.sh (ports, selectors, grace periods, BATON_* names across every manifest set)
    env = {**os.environ, "KUBERNETES_VALIDATE": tool("kubernetes-validate")}
    out = subprocess.run([str(DEPLOY / "check.sh")], capture_output=True, text=True, timeout=600, env=env)
    # Then it passes
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "all checks passed" in out.stdout


def test_a_worker_pod_ends_before_the_kubelet_kills_it() -> None:
    # Given the worker Deployment's drain grace and the pod's termination grace
    worker = next(d for d in docs("base") if d["kind"] == "Deployment" and d["metadata"]["name"] == "baton-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "baton"]
    grace = float(next(e["value"] for e in container["env"] if e["name"] == "BATON_SHUTDOWN_GRACE_S"))
    # Then the process is gone (its deadline after the grace, runtime/stop_signals.py) before the SIGKILL
    assert grace + STOP_AFTER_GRACE_S < pod["terminationGracePeriodSeconds"]
    # and the README gives that deadline as the code has it
    readme = (ROOT / "README.md").read_text()
    assert f"the process ends within it + {STOP_AFTER_GRACE_S:g} s" in readme
    assert f"the process is gone {STOP_AFTER_GRACE_S:g} s after" in " ".join(readme.split())


def test_a_deployments_copy_links_each_alert_to_its_runbook_by_a_full_address(tmp_path: Path) -> None:
    # When the monitoring objects are written for a deployment whose runbook lives at an address of its own
    script = DEPLOY / "build_monitoring.py"
    done = subprocess.run([sys.executable, str(script), "--runbook-base", "https://git.example/acme/baton/blob/main",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Then every alert's runbook_url is that address's section (a notification can open it), the rest unchanged
    copy_rules = yaml.safe_load((tmp_path / "prometheusrule.yaml").read_text())["spec"]["groups"]
    source = yaml.safe_load((ROOT / "grafana" / "alerts" / "baton.rules.yml").read_text())["groups"]
    for made, rule in zip((r for g in copy_rules for r in g["rules"]), (r for g in source for r in g["rules"]),
                          strict=True):
        if "alert" in rule:
            assert made["annotations"].pop("runbook_url") == \
                "https://git.example/acme/baton/blob/main/" + rule["annotations"].pop("runbook_url")
        assert made == rule
    base_dashboards = (DEPLOY / "base" / "grafana-dashboards.yaml").read_text()
    assert (tmp_path / "grafana-dashboards.yaml").read_text() == base_dashboards
    # And base/ is never written with a deployment's address (it follows the source)
    refused = subprocess.run([sys.executable, str(script), "--runbook-base", "https://x/"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "--out" in refused.stderr
