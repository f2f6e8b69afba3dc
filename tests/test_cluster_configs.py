"""The deployment files in cluster/ parse, validate where a schema installs, and keep secrets out.

- The Ray cluster launcher config validates against the JSON schema shipped inside `ray`
  (ray/autoscaler/ray-schema.json), the schema `ray up` itself applies.
- Built-in Kubernetes kinds validate against the Kubernetes OpenAPI schemas of the
  `kubernetes-validate` package. KubeRay's RayCluster/RayJob CRD schemas ship in no package on
  the registries, so those are checked structurally (apiVersion, kind, the fields we rely on),
  and their `rayStartParams` against the options of `ray start`.
- `mlflow server` flags in Compose and Kubernetes are checked against the installed CLI.
- No password-like literal anywhere in cluster/, and no public Service exposes Ray's ports.
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
RAY_PORTS = {6379, 8265, 10001}  # GCS, dashboard / job API, Ray Client
PUBLIC_SERVICE_TYPES = {"LoadBalancer", "NodePort"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> dict[Path, list[dict[str, Any]]]:
    return {
        p: _documents(p)
        for p in [*sorted((CLUSTER / "kuberay").glob("*.yaml")), CLUSTER / "mlflow/kubernetes.yaml"]
    }


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for docs in _manifests().values() for d in docs if d["kind"] == kind]


def _flag_names(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


# --- Ray cluster launcher ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def launcher() -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / "aws/ray-cluster.yaml").read_text())


def test_launcher_config_validates_against_rays_schema(launcher: dict[str, Any]) -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler/ray-schema.json").read_text())
    jsonschema.validate(launcher, schema)
    with pytest.raises(jsonschema.ValidationError):  # the schema does reject a broken config
        jsonschema.validate({**launcher, "max_workers": "eight"}, schema)


def test_launcher_has_cpu_head_gpu_workers_scaling_to_zero(launcher: dict[str, Any]) -> None:
    types = launcher["available_node_types"]
    assert types[launcher["head_node_type"]]["resources"]["CPU"] == 0
    gpu = [t for t in types.values() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in gpu)
    assert launcher["idle_timeout_minutes"] > 0
    head_start = " ".join(launcher["head_start_ray_commands"])
    assert "--num-cpus=0" in head_start and "--dashboard-host=127.0.0.1" in head_start
    assert all("RAY_AUTH_MODE=token" in c for c in launcher["head_start_ray_commands"][1:])


def test_launcher_installs_the_project_and_mounts_shared_storage(launcher: dict[str, Any]) -> None:
    mounts = launcher["file_mounts"]
    project = next(remote for remote, local in mounts.items() if local == ".")
    setup = launcher["setup_commands"]
    assert any(f"pip install -q -e {project.replace('/home/ubuntu', '~')}" in c for c in setup)
    assert any("mount -t nfs4" in c and "/mnt/shared" in c for c in setup)


# --- Kubernetes and KubeRay -------------------------------------------------------------------


def test_builtin_kinds_validate_against_the_kubernetes_schema() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    checked = 0
    for docs in _manifests().values():
        for doc in docs:
            if doc["apiVersion"].startswith("ray.io/"):
                continue
            kubernetes_validate.validate(doc, version, strict=True)  # raises with the path on error
            checked += 1
    assert checked >= 6
    broken = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": "5000"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_raycluster_structure() -> None:
    [cluster] = _by_kind("RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["metadata"]["name"]
    spec = cluster["spec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    [gpu] = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
    assert gpu["minReplicas"] == 0 and gpu["replicas"] == 0 and gpu["maxReplicas"] >= 1
    [container] = gpu["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for group in [head, *spec["workerGroupSpecs"]]:
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert "secretKeyRef" in env[name]["valueFrom"], name
        mounts = {m["mountPath"] for m in group["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert "/mnt/shared" in mounts


def test_ray_start_params_are_options_of_ray_start() -> None:
    from ray.scripts.scripts import start

    options = {o.removeprefix("--") for p in start.params for o in p.opts if o.startswith("--")}
    [cluster] = _by_kind("RayCluster")
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        assert set(group["rayStartParams"]) <= options


def test_rayjob_runs_a_sweep_on_the_cluster() -> None:
    [job] = _by_kind("RayJob")
    [cluster] = _by_kind("RayCluster")
    assert job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    entrypoint = job["spec"]["entrypoint"].split()
    assert entrypoint[:2] == ["rnnprune", "sweep"] and entrypoint[2].startswith("/mnt/shared/")
    assert isinstance(yaml.safe_load(job["spec"]["runtimeEnvYAML"]), dict)


# --- MLflow server ----------------------------------------------------------------------------


def _server_flags() -> set[str]:
    from mlflow.cli import server

    return {o for p in server.params for o in p.opts}


def _mlflow_args() -> dict[str, list[str]]:
    compose = yaml.safe_load((CLUSTER / "mlflow/docker-compose.yaml").read_text())
    [deployment] = [d for d in _by_kind("Deployment") if d["metadata"]["name"] == "mlflow"]
    return {
        "compose": compose["services"]["mlflow"]["command"],
        "kubernetes": deployment["spec"]["template"]["spec"]["containers"][0]["args"],
    }


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_mlflow_server_command(where: str) -> None:
    args = _mlflow_args()[where]
    assert args[:2] == ["mlflow", "server"]
    assert _flag_names(args) <= _server_flags()
    values = dict(a.removeprefix("--").split("=", 1) for a in args if "=" in a)
    assert values["backend-store-uri"].startswith("postgresql+psycopg2://mlflow@")  # no password in it
    assert values["app-name"] == "basic-auth"
    assert values["allowed-hosts"]
    assert "--serve-artifacts" in args and values["artifacts-destination"]


def test_compose_takes_every_secret_from_the_environment() -> None:
    compose = yaml.safe_load((CLUSTER / "mlflow/docker-compose.yaml").read_text())
    services = compose["services"]
    secret_names = {
        "POSTGRES_PASSWORD",
        "PGPASSWORD",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    }
    for service in services.values():
        for name, value in service.get("environment", {}).items():
            if name in secret_names:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (name, value)
    assert "ports" not in services["postgres"]
    assert all(p.startswith("${MLFLOW_BIND:-127.0.0.1}:") for p in services["mlflow"]["ports"])


@pytest.mark.parametrize("source", ["file", "configmap"])
def test_auth_config_refuses_anonymous_users(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.server.auth.config import read_auth_config

    if source == "file":
        ini = CLUSTER / "mlflow/basic_auth.ini"
    else:
        [config_map] = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "mlflow-auth"]
        ini = tmp_path / "basic_auth.ini"
        ini.write_text(config_map["data"]["basic_auth.ini"])
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(ini))
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    config = read_auth_config()
    assert config.default_permission == "NO_PERMISSIONS"
    assert config.admin_password is None  # it comes from MLFLOW_AUTH_ADMIN_PASSWORD at run time
    assert "@" in config.database_uri and ":" not in config.database_uri.split("//", 1)[1].split("@")[0]
    parser = configparser.ConfigParser()
    parser.read(ini)
    assert "admin_password" not in parser["mlflow"]


def test_submit_script_is_valid_bash_and_refuses_missing_settings() -> None:
    script = CLUSTER / "submit-sweep.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(
        ["bash", str(script), "specs", "spec.yaml"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "RAY_ADDRESS" in result.stderr


# --- secret hygiene and exposure --------------------------------------------------------------

SECRET_KEY = re.compile(
    r"(?i)\b[\w-]*(password|passwd|secret|token|access[_-]?key|api[_-]?key)[\w-]*\b[\"']?\s*[:=]\s*(?P<value>[^\s#,}]+)"
)
CREDENTIAL_URI = re.compile(r"://[^/\s:@]+:(?P<value>[^@\s/]+)@")
# ${VAR}, ${VAR:?message} (matched after the colon), secret references, paths to token files.
NOT_A_LITERAL = re.compile(
    r"""^["']?(\$\{?[A-Za-z_]|\?|\{?secretKeyRef|\{?valueFrom|~/|\$HOME|\.\.\.|["']?$)"""
)


def secret_literals(text: str) -> list[str]:
    """Lines that assign a password/secret/token a literal value (placeholders and refs are fine)."""
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("#", "--")) and "://" not in stripped:
            continue
        for pattern in (SECRET_KEY, CREDENTIAL_URI):
            for match in pattern.finditer(line):
                value = match.group("value")
                if not NOT_A_LITERAL.match(value) and not value.startswith(("$", "{name:")):
                    found.append(stripped)
    return found


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD: hunter2hunter2",
        "admin_password = s3cr3t",
        "--backend-store-uri=postgresql://mlflow:pa55word@postgres:5432/mlflow",
        '"RAY_AUTH_TOKEN": "0123456789abcdef"',
        "  aws_secret_access_key=AKIAEXAMPLE",
    ],
)
def test_the_secret_scanner_catches_literals(line: str) -> None:
    assert secret_literals(line) == [line.strip()]


def test_no_secret_literals_in_cluster_files() -> None:
    files = [p for p in CLUSTER.rglob("*") if p.is_file()]
    assert len(files) >= 10
    offenders = {str(p.relative_to(CLUSTER)): secret_literals(p.read_text()) for p in files}
    assert not {p: lines for p, lines in offenders.items() if lines}
    assert not [p for p in files if p.name == ".env"]


def test_ray_ports_are_never_exposed_publicly() -> None:
    for service in _by_kind("Service"):
        if service["spec"].get("type", "ClusterIP") in PUBLIC_SERVICE_TYPES:
            ports = {p["port"] for p in service["spec"]["ports"]} | {
                p.get("targetPort") for p in service["spec"]["ports"]
            }
            assert not ports & RAY_PORTS, service["metadata"]["name"]
    [cluster] = _by_kind("RayCluster")
    assert cluster["spec"]["headGroupSpec"].get("serviceType", "ClusterIP") not in PUBLIC_SERVICE_TYPES
    assert not _by_kind("Ingress")  # nothing routes outside traffic to the head


def test_submit_script_builds_the_job_submission(tmp_path: Path) -> None:
    fake = tmp_path / "ray"  # stands in for the ray CLI and prints what it was given
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "RAY_ADDRESS": "http://127.0.0.1:8265",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "MLFLOW_TRACKING_USERNAME": "sweeper",
        "MLFLOW_TRACKING_PASSWORD": "from-the-environment",
    }
    result = subprocess.run(
        ["bash", str(CLUSTER / "submit-sweep.sh"), "specs", "my.yaml", "--resume"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    args = result.stdout.splitlines()
    assert args[:4] == ["job", "submit", "--address", "http://127.0.0.1:8265"]
    assert args[args.index("--working-dir") + 1] == "specs"
    runtime_env = json.loads(args[args.index("--runtime-env-json") + 1])
    assert runtime_env["env_vars"] == {
        "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1",
        **{k: v for k, v in env.items() if k.startswith("MLFLOW_")},
    }
    assert args[args.index("--") + 1 :] == ["rnnprune", "sweep", "my.yaml", "--resume"]
