"""The Helm chart deploy/helm/otelbridge: lint, render over every tests/deploy/values/*.yaml,
validate the manifests against Kubernetes' schemas offline, and check what they wire together.

No cluster can run here; what a cluster would reject (schema), and what would make the pod
misbehave (token, state, probes, security context, config), is checked on the rendered output.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from otelbridge.config import load
from tests.deploy.conftest import ROOT, run_build_script

CHART = ROOT / "deploy" / "helm" / "otelbridge"
VALUES_DIR = ROOT / "tests" / "deploy" / "values"
VALUES = sorted(p.name for p in VALUES_DIR.glob("*.yaml"))
OPERATOR_API = "monitoring.coreos.com/v1"

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> str:
    return run_build_script("build-helm.sh", "OTELBRIDGE_HELM")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


@cache
def _render(helm: str, values: str) -> tuple[Manifest, ...]:
    result = run_helm(
        helm, "template", "obs", str(CHART), "--namespace", "monitoring", "-f", str(VALUES_DIR / values)
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def values_of(name: str) -> dict[str, Any]:
    data = yaml.safe_load((VALUES_DIR / name).read_text()) or {}
    assert isinstance(data, dict)
    return data


def kinds(docs: tuple[Manifest, ...]) -> dict[str, Manifest]:
    found: dict[str, Manifest] = {}
    for doc in docs:
        assert doc["kind"] not in found, f"two {doc['kind']}s"
        found[doc["kind"]] = doc
    return found


@pytest.fixture(params=VALUES)
def rendered(request: pytest.FixtureRequest, helm: str) -> tuple[str, dict[str, Manifest]]:
    return request.param, kinds(_render(helm, request.param))


def pod_spec(docs: dict[str, Manifest]) -> Manifest:
    spec: Manifest = docs["StatefulSet"]["spec"]["template"]["spec"]
    return spec


def container(docs: dict[str, Manifest]) -> Manifest:
    (only,) = pod_spec(docs)["containers"]
    return dict(only)


def env_of(docs: dict[str, Manifest]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(docs)["env"]}


def mount_for(docs: dict[str, Manifest], path: str) -> tuple[Manifest, Manifest | None]:
    """The volumeMount holding `path`, and the pod volume it mounts (None for a claim template)."""
    mounts = [
        m
        for m in container(docs)["volumeMounts"]
        if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")
    ]
    assert len(mounts) == 1, f"{path} is under {len(mounts)} mounts"
    volumes = {v["name"]: v for v in pod_spec(docs).get("volumes", [])}
    return mounts[0], volumes.get(mounts[0]["name"])


def test_values_files_cover_the_documented_cases() -> None:
    assert {
        "default.yaml",
        "monitors.yaml",
        "networkpolicy.yaml",
        "existing-secret.yaml",
        "otlp.yaml",
    } <= set(VALUES)


@pytest.mark.parametrize("values", VALUES)
def test_helm_lint_strict(helm: str, values: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(VALUES_DIR / values))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_without_a_token_source_fails_naming_the_values(helm: str) -> None:
    result = run_helm(helm, "template", "obs", str(CHART))
    assert result.returncode != 0
    assert "cloudflare.existingSecret" in result.stderr and "cloudflare.apiToken" in result.stderr


def test_manifests_validate_against_kubernetes_schemas(rendered: tuple[str, dict[str, Manifest]]) -> None:
    _, docs = rendered
    version = kubernetes_validate.latest_version()
    for kind, doc in docs.items():
        if doc["apiVersion"] == OPERATOR_API:
            continue  # a CRD: no bundled schema; checked structurally below
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{kind} is not a valid Kubernetes {version} manifest: {exc.message} at {list(exc.path)}"
            )


def test_operator_monitors_select_the_service_and_pod_port(rendered: tuple[str, dict[str, Manifest]]) -> None:
    _, docs = rendered
    pod_labels = docs["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    service = docs["Service"]
    port_names = {p["name"] for p in container(docs)["ports"]}
    for kind, endpoints_key, target_labels, ports in (
        (
            "ServiceMonitor",
            "endpoints",
            service["metadata"]["labels"],
            {p["name"] for p in service["spec"]["ports"]},
        ),
        ("PodMonitor", "podMetricsEndpoints", pod_labels, port_names),
    ):
        if kind not in docs:
            continue
        monitor = docs[kind]
        assert monitor["apiVersion"] == OPERATOR_API
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector and selector.items() <= target_labels.items(), f"{kind} selects nothing of ours"
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["monitoring"]
        (endpoint,) = monitor["spec"][endpoints_key]
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}


def test_monitors_and_network_policy_only_when_enabled(rendered: tuple[str, dict[str, Manifest]]) -> None:
    name, docs = rendered
    values = values_of(name)
    for kind, key in (
        ("ServiceMonitor", "serviceMonitor"),
        ("PodMonitor", "podMonitor"),
        ("NetworkPolicy", "networkPolicy"),
    ):
        enabled = bool(values.get(key, {}).get("enabled"))
        assert (kind in docs) == enabled, f"{kind} with {key}.enabled={enabled}"


def test_pod_meets_the_restricted_security_standard(rendered: tuple[str, dict[str, Manifest]]) -> None:
    _, docs = rendered
    pod = pod_spec(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(docs)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert not pod.get("hostNetwork") and not pod.get("hostPID")


def test_token_is_a_mounted_secret_file_never_an_env_value(rendered: tuple[str, dict[str, Manifest]]) -> None:
    name, docs = rendered
    cloudflare = values_of(name)["cloudflare"]
    env = env_of(docs)
    assert "CLOUDFLARE_API_TOKEN" not in env
    token_path = env["CLOUDFLARE_API_TOKEN_FILE"]
    mount, volume = mount_for(docs, token_path)
    assert volume is not None and mount["readOnly"] is True
    key = token_path.removeprefix(mount["mountPath"] + "/")
    secret = volume["secret"]
    assert {"key": key, "path": key} in secret["items"]
    if cloudflare.get("existingSecret"):
        assert secret["secretName"] == cloudflare["existingSecret"]
        assert key == cloudflare["existingSecretKey"]
        assert "Secret" not in docs, "no chart-made Secret next to an existing one"
    else:
        made = docs["Secret"]
        assert secret["secretName"] == made["metadata"]["name"]
        assert key in made["data"]
        assert cloudflare["apiToken"] not in yaml.safe_dump(docs["StatefulSet"])


def test_state_lives_on_a_claim_from_the_volume_claim_templates(
    rendered: tuple[str, dict[str, Manifest]],
) -> None:
    _, docs = rendered
    statefulset = docs["StatefulSet"]["spec"]
    assert statefulset["replicas"] == 1, "a second replica would poll the API twice"
    state_dir = env_of(docs)["OTELBRIDGE_STATE_DIR"]
    mount, volume = mount_for(docs, state_dir)
    assert volume is None, "the state directory must not be a pod volume (emptyDir loses it)"
    claims = {c["metadata"]["name"]: c for c in statefulset["volumeClaimTemplates"]}
    assert mount["name"] in claims
    assert claims[mount["name"]]["spec"]["resources"]["requests"]["storage"]


def test_probes_hit_healthy_on_the_metrics_port(rendered: tuple[str, dict[str, Manifest]]) -> None:
    _, docs = rendered
    spec = container(docs)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    env = env_of(docs)
    assert ports["http"] == int(env["OTEL_EXPORTER_PROMETHEUS_PORT"])
    assert env["OTEL_EXPORTER_PROMETHEUS_HOST"] == "0.0.0.0"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert spec[probe]["httpGet"] == {"path": "/-/healthy", "port": "http"}, probe
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_config_map_is_mounted_passed_and_accepted_by_otelbridge(
    rendered: tuple[str, dict[str, Manifest]], tmp_path: Path
) -> None:
    name, docs = rendered
    spec = container(docs)
    config_path = spec["args"][spec["args"].index("--config") + 1]
    mount, volume = mount_for(docs, config_path)
    assert volume is not None and volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    text = docs["ConfigMap"]["data"][mount["subPath"]]
    assert (yaml.safe_load(text) or {}) == values_of(name).get("config", {})
    written = tmp_path / "config.yaml"
    written.write_text(text)
    load(written, {})  # raises ConfigError on anything otelbridge would reject


def test_otlp_and_extra_env_come_from_values(rendered: tuple[str, dict[str, Manifest]]) -> None:
    name, docs = rendered
    values = values_of(name)
    env = env_of(docs)
    endpoint = values.get("otlp", {}).get("endpoint")
    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == endpoint
    if endpoint:
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == values["otlp"].get("protocol", "http/protobuf")
    for extra in values.get("extraEnv", []):
        assert env[extra["name"]] == extra["value"]
    image = values.get("image", {})
    repository, _, tag = container(docs)["image"].rpartition(":")
    assert repository == image.get("repository", "otelbridge")
    assert (
        tag == image.get("tag")
        or tag == docs["StatefulSet"]["metadata"]["labels"]["app.kubernetes.io/version"]
    )


def test_network_policy_admits_scrapes_and_allows_api_dns_and_otlp(helm: str) -> None:
    values = values_of("networkpolicy.yaml")
    docs = kinds(_render(helm, "networkpolicy.yaml"))
    policy = docs["NetworkPolicy"]["spec"]
    assert (
        policy["podSelector"]["matchLabels"].items()
        <= docs["StatefulSet"]["spec"]["template"]["metadata"]["labels"].items()
    )
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"] == values["networkPolicy"]["metricsFrom"]
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    otlp_port = urlsplit(values["otlp"]["endpoint"]).port
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (otlp_port, "TCP")} <= egress_ports


def test_chart_matches_the_image_user_volume_and_port(helm: str) -> None:
    """The chart runs the image as its USER, mounts the state on its VOLUME, probes its EXPOSEd port."""
    containerfile = (ROOT / "deploy" / "container" / "Containerfile").read_text()
    instructions = dict(
        line.split(maxsplit=1) for line in containerfile.splitlines() if line[:1].isupper() and " " in line
    )
    uid, _, gid = instructions["USER"].partition(":")
    (volume,) = yaml.safe_load(instructions["VOLUME"])
    docs = kinds(_render(helm, "default.yaml"))
    pod = pod_spec(docs)["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (int(uid), int(gid), int(gid))
    assert env_of(docs)["OTELBRIDGE_STATE_DIR"] == volume
    assert mount_for(docs, volume)[0]["mountPath"] == volume
    assert {p["containerPort"] for p in container(docs)["ports"]} == {int(instructions["EXPOSE"])}
