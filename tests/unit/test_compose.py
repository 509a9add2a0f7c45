"""docker-compose.yml and envoy/compose/: current, valid, and consistent, without running Docker.

The compose file is checked against the Compose Specification's JSON schema (vendored in
tests/schemas/), every Envoy config under envoy/compose/ passes ``envoy --mode validate`` with a
freshly minted certificate set, and the file holds together: build contexts and mounted files
exist, every sidecar joins an app that exists, healthchecks run commands their images have, and
only the shop, Jaeger and Locust are published, on 127.0.0.1 alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from containers import images
from mesh import mint, topology
from mesh.local import envoy_binary
from mesh.render import compose

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "schemas" / "compose-spec.json"
COMPOSE_FILE = REPO / "docker-compose.yml"
OFFLINE_FILE = REPO / "containers" / "offline.yml"
# The commands each image is known to have. Ours: the venv's python3 (both bases) and envoy; the
# offline base: Debian's redis-server package (redis-cli); the official Redis image: redis-cli;
# Jaeger all-in-one (Alpine based): busybox's wget; the Collector (no shell): /otelcol itself.
IMAGE_COMMANDS = {
    compose.IMAGE: {"python3", "envoy", "boutique"},
    images.BASE_IMAGE: {"redis-cli", "redis-server", "python3"},
    compose.REDIS_IMAGE: {"redis-cli", "redis-server"},
    compose.JAEGER_IMAGE: {"wget"},
    compose.COLLECTOR_IMAGE: {"/otelcol"},
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def offline(stack: dict[str, Any]) -> dict[str, Any]:
    """The compose file with containers/offline.yml merged over it, service by service."""
    merged = json.loads(json.dumps(stack))
    for name, over in load(OFFLINE_FILE)["services"].items():
        merged["services"][name].update(over)
    return merged


def test_the_checked_in_files_are_current() -> None:
    for path, text in compose.files(topology.load()).items():
        assert (REPO / path).read_text() == text, f"{path} is stale: run `boutique render`"


def test_the_compose_file_is_valid_against_the_compose_specification(
    stack: dict[str, Any],
) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(stack)
    jsonschema.Draft7Validator(schema).validate(load(OFFLINE_FILE))
    assert "version" not in stack  # the Compose Specification: works with v1.29 and v2


def test_a_broken_compose_file_fails_the_schema(stack: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(stack))
    broken["services"]["ingress"]["ports"] = [{"published": "8080", "bogus": True}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(broken)


def test_every_pod_is_an_app_with_its_sidecar_in_its_network_namespace(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    topo = topology.load()
    for service, pod in compose.instance_names(topo):
        assert services[pod]["command"] == ["boutique", "serve", service]
        assert services[f"{pod}-sidecar"]["network_mode"] == f"service:{pod}"
    sidecars = {n: s for n, s in services.items() if "network_mode" in s}
    assert len(sidecars) == sum(s.replicas for s in topo.services.values())
    for spec in sidecars.values():
        app = spec["network_mode"].removeprefix("service:")
        assert app in services and "network_mode" not in services[app]


def test_build_contexts_and_mounted_files_exist(stack: dict[str, Any]) -> None:
    for document in (stack, load(OFFLINE_FILE)):
        for name, spec in document["services"].items():
            if "build" in spec:
                assert (REPO / spec["build"]["context"] / "Dockerfile").exists(), name
            for volume in spec.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./"):
                    assert (REPO / source).is_file(), f"{name} mounts a missing {source}"
                else:
                    assert source in stack["volumes"], f"{name} uses an undeclared {source}"


def test_only_the_shop_jaeger_and_locust_are_published_and_only_on_loopback(
    stack: dict[str, Any], offline: dict[str, Any]
) -> None:
    for document in (stack, offline):
        published = {n: s["ports"] for n, s in document["services"].items() if "ports" in s}
        assert published == {
            "ingress": ["127.0.0.1:${BOUTIQUE_PORT:-8080}:8080"],
            "jaeger": ["127.0.0.1:${BOUTIQUE_JAEGER_PORT:-16686}:16686"],
            "locust": ["127.0.0.1:${BOUTIQUE_LOCUST_PORT:-8089}:8089"],
        }
        assert not any("expose" in s for s in document["services"].values())


def test_every_healthcheck_runs_a_command_its_image_has(
    stack: dict[str, Any], offline: dict[str, Any]
) -> None:
    for document in (stack, offline):
        for name, spec in document["services"].items():
            if name == "mint":
                assert spec["restart"] == "no"  # one-shot: others wait for it to complete
                continue
            test = spec["healthcheck"]["test"]
            assert test[0] == "CMD", name
            assert test[1] in IMAGE_COMMANDS[spec["image"]], f"{name}: {test[1]} in {spec['image']}"
            if test[1:4] == ["python3", "-m", "mesh.probe"]:
                assert (REPO / "mesh" / "probe.py").exists()


def test_dependencies_wait_for_health_or_completion(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name, spec in services.items():
        for dependency, how in spec.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on a missing {dependency}"
            wanted = "service_completed_successfully" if dependency == "mint" else None
            if dependency in ("otel-collector", "jaeger"):
                wanted = "service_started"  # spans are sent later and retried: nobody waits
            if spec.get("network_mode") == f"service:{dependency}":
                wanted = "service_started"  # a sidecar needs its pod's namespace, not its app
            assert how["condition"] == (wanted or "service_healthy"), f"{name} -> {dependency}"
    routed = {r.service for r in topology.load().ingress_routes}
    ingress_waits = set(services["ingress"]["depends_on"])
    assert {f"{s}-0-sidecar" for s in routed} | {f"{s}-0" for s in routed} <= ingress_waits


def test_each_sidecar_mounts_only_its_own_identity(stack: dict[str, Any]) -> None:
    for service, pod in compose.instance_names(topology.load()):
        mounts = stack["services"][f"{pod}-sidecar"]["volumes"]
        assert [m for m in mounts if m.startswith("mesh-")] == [f"mesh-{service}:/etc/mesh:ro"]
        assert not any(m.startswith("mesh-") for m in stack["services"][pod].get("volumes", []))


def test_the_offline_override_only_replaces_what_cannot_be_pulled() -> None:
    assert set(load(OFFLINE_FILE)["services"]) == {"redis", "jaeger", "otel-collector"}


@pytest.fixture(scope="module")
def minted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mesh")
    assert mint.mint(topology.load(), out)
    return out


def _validate(config: Path, identity: Path, tmp: Path) -> tuple[str, int, str]:
    """``envoy --mode validate`` on a copy whose /etc/mesh paths point at real minted files."""
    text = config.read_text().replace(compose.MESH_DIR + "/", f"{identity}/")
    copy = tmp / config.name
    copy.write_text(text)
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(copy), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return config.name, done.returncode, done.stdout + done.stderr


def test_every_compose_envoy_config_passes_envoy_validate(minted: Path, tmp_path: Path) -> None:
    configs = sorted((REPO / compose.CONFIG_DIR).glob("*.yaml"))
    configs.remove(REPO / compose.CONFIG_DIR / "otel-collector.yaml")
    jobs = []
    for config in configs:
        pod = config.stem
        workload = "ingress" if pod == "ingress" else re.sub(r"-\d+$", "", pod)
        jobs.append((config, minted / workload, tmp_path))
    jobs.append((REPO / "containers" / "otlp-forwarder.yaml", minted / "ingress", tmp_path))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda job: _validate(*job), jobs))
    assert len(results) == sum(s.replicas for s in topology.load().services.values()) + 2
    for name, code, output in results:
        assert code == 0, f"{name}: {output}"


def test_every_sidecar_checks_user_tokens_with_the_minted_jwks() -> None:
    from mesh.placement import compose_placement

    jwks = compose_placement(topology.load()).jwks
    assert jwks is not None and jwks.name == mint.JWKS
    assert str(jwks.parent) == compose.MESH_DIR  # in each sidecar's own identity volume
    for config in (REPO / compose.CONFIG_DIR).glob("*-[0-9].yaml"):
        assert f"filename: {jwks}" in config.read_text(), config.name


def test_the_collector_sends_otlp_batches_to_jaeger() -> None:
    config = load(REPO / compose.CONFIG_DIR / "otel-collector.yaml")
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline == {
        "receivers": ["otlp"],
        "processors": ["batch"],
        "exporters": ["otlp/jaeger"],
    }
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"


def test_mint_keeps_a_current_set_and_gives_each_workload_its_own_identity(
    minted: Path,
) -> None:
    from cryptography import x509

    topo = topology.load()
    before = (minted / "cart" / "cert.pem").read_bytes()
    assert not mint.mint(topo, minted)  # current: a restarted stack keeps its identities
    assert (minted / "cart" / "cert.pem").read_bytes() == before
    cert = x509.load_pem_x509_certificate(before)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [topo.spiffe_id("cart")]
    assert oct((minted / "cart" / "key.pem").stat().st_mode & 0o777) == "0o400"
    (minted / "orders" / "cert.pem").unlink()
    assert mint.mint(topo, minted)  # an incomplete set is minted afresh, every workload
    assert (minted / "cart" / "cert.pem").read_bytes() != before


def test_mint_gives_each_app_only_its_own_secrets(minted: Path) -> None:
    topo = topology.load()
    redis_users = {s.name for s in topo.services.values() if s.redis_keys}
    assert redis_users and set(mint.app_secrets(topo)) == redis_users | {topo.user_token.signer}
    acl = (minted / "redis" / mint.REDIS_ACL).read_text().splitlines()
    assert acl[0].startswith("user default off")
    assert mint.HEALTHCHECK_USER in acl and acl[-1].endswith("-@all +ping")
    for name in redis_users:
        url = (minted / f"app-{name}" / mint.REDIS_URL).read_text()
        password = url.split("//")[1].split("@")[0].split(":")[1]
        assert url.startswith(f"redis://{name}:") and password not in "\n".join(acl)
        assert oct((minted / f"app-{name}" / mint.REDIS_URL).stat().st_mode & 0o777) == "0o400"
    assert (minted / f"app-{topo.user_token.signer}" / mint.TOKEN_KEY).exists()
    assert [p.name for p in minted.glob("app-*/" + mint.TOKEN_KEY)] == [mint.TOKEN_KEY]


def test_each_app_mounts_only_its_own_secrets_and_redis_only_the_acl(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    for service, pod in compose.instance_names(topology.load()):
        secrets = [v for v in services[pod].get("volumes", []) if v.startswith("secrets-")]
        expected = [f"secrets-{service}:{compose.APP_SECRETS}:ro"]
        assert secrets == (expected if service in mint.app_secrets(topology.load()) else [])
    redis = services["redis"]
    assert [v for v in redis["volumes"] if v.startswith("secrets-")] == [
        f"secrets-redis:{compose.REDIS_ACL_DIR}:ro"
    ]
    assert "--aclfile" in redis["command"]
