"""Render the top-level ``docker-compose.yml`` from the topology (the Compose Specification).

Per service and replica a pod: the app container, and its Envoy sidecar container in the app's
network namespace (``network_mode: service:<app>``), so the app, its egress listener and the
sidecar's admin share a loopback no other container reaches; only the sidecar's inbound (mTLS)
listens on the network. Around them: a one-shot ``mint`` (the CA and each workload's SPIFFE
certificate, one volume per workload), Redis, the ingress Envoy, the OpenTelemetry Collector,
Jaeger and Locust. Only the shop (8080), Jaeger's UI (16686) and Locust's UI (8089) are
published, on 127.0.0.1; ``BOUTIQUE_PORT``, ``BOUTIQUE_JAEGER_PORT`` and
``BOUTIQUE_LOCUST_PORT`` move them.
"""

from __future__ import annotations

from typing import Any

import yaml

from mesh import mint
from mesh.mint import SIDECAR_UID
from mesh.placement import (
    COMPOSE_MESH_DIR,
    COMPOSE_OTLP,
    POD_ADMIN_PORT,
    POD_EGRESS_PORT,
    compose_placement,
)
from mesh.topology import Topology

from . import envoy

IMAGE = "mesh-boutique:latest"  # the one image (the top-level Dockerfile), as on Kubernetes
REDIS_IMAGE = "redis:7.4-alpine"
COLLECTOR_IMAGE = "otel/opentelemetry-collector:0.115.1"
JAEGER_IMAGE = "jaegertracing/all-in-one:1.64.0"
ADMIN_PORT, EGRESS_PORT, OTLP_HTTP = POD_ADMIN_PORT, POD_EGRESS_PORT, COMPOSE_OTLP
PUBLISHED = {  # service: (variable, port)
    "ingress": ("BOUTIQUE_PORT", 8080),
    "jaeger": ("BOUTIQUE_JAEGER_PORT", 16686),
    "locust": ("BOUTIQUE_LOCUST_PORT", 8089),
}
MESH_DIR = str(COMPOSE_MESH_DIR)  # a workload's root-cert.pem, cert.pem and key.pem
ENVOY_CONFIG = "/etc/envoy/envoy.yaml"
CONFIG_DIR = "envoy/compose"  # the rendered sidecar, ingress and Collector configs
CONFIG_HEADER = """\
# Rendered from mesh/topology.yaml by `boutique render` (mesh/render/): do not edit.
# {what}
"""
DATA_DIR = "/var/lib/boutique"
APP_SECRETS = "/run/secrets/boutique"  # an app's own secrets volume (boutique mint)
REDIS_ACL_DIR = "/etc/redis/acl"

HEADER = """\
# Rendered from mesh/topology.yaml by `boutique render` (mesh/render/compose.py): do not edit.
# With a registry: `docker compose up -d --build`. Offline, here: `make compose-up`.
# Published on 127.0.0.1 only: the shop on 8080, Jaeger on 16686, Locust on 8089.
"""


def instance_names(topology: Topology) -> list[tuple[str, str]]:
    """(service, pod name) for every replica: ``("products", "products-1")``."""
    return [
        (s.name, f"{s.name}-{r}") for s in topology.services.values() for r in range(s.replicas)
    ]


def probe(url: str) -> dict[str, Any]:
    """A healthcheck by one HTTP request from inside the container (mesh/probe.py)."""
    return {
        "test": ["CMD", "python3", "-m", "mesh.probe", url],
        "interval": "3s",
        "timeout": "10s",  # a probe on a loaded machine may be slow; it is not a failure
        "retries": 40,
    }


def _published(service: str) -> list[str]:
    variable, port = PUBLISHED[service]
    return [f"127.0.0.1:${{{variable}:-{port}}}:{port}"]


def _ours(**rest: Any) -> dict[str, Any]:
    return {"image": IMAGE, "build": {"context": "."}, **rest}


def _healthy(*names: str) -> dict[str, dict[str, str]]:
    return {n: {"condition": "service_healthy"} for n in names}


def _minted() -> dict[str, dict[str, str]]:
    return {"mint": {"condition": "service_completed_successfully"}}


def _envoy(node: str, cluster: str, config: str) -> dict[str, Any]:
    command = ["envoy", "-c", ENVOY_CONFIG, "--disable-hot-restart", "--concurrency", "1"]
    command += ["--log-level", "warning", "--service-cluster", cluster, "--service-node", node]
    return _ours(
        user=str(SIDECAR_UID),
        command=command,
        volumes=[f"./{CONFIG_DIR}/{config}:{ENVOY_CONFIG}:ro", f"mesh-{cluster}:{MESH_DIR}:ro"],
        healthcheck=probe(f"http://127.0.0.1:{ADMIN_PORT}/ready"),
    )


def app(topology: Topology, service: str) -> dict[str, Any]:
    svc = topology.service(service)
    host, port = OTLP_HTTP
    env = {
        "SERVICE_NAME": service,
        "HOST": "127.0.0.1",  # the pod's loopback: only its sidecar reaches the app
        "PORT": str(svc.port),
        "PEER_PROXY": f"http://127.0.0.1:{EGRESS_PORT}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "1000",
        "TRACES_URL": "http://127.0.0.1:${BOUTIQUE_JAEGER_PORT:-16686}",
    }
    depends: dict[str, Any] = {**_minted(), "otel-collector": {"condition": "service_started"}}
    if "redis" in svc.stores:
        env["REDIS_URL_FILE"] = f"{APP_SECRETS}/{mint.REDIS_URL}"  # its own user and password
        depends.update(_healthy("redis"))
    token = topology.user_token
    if service == token.signer:  # it alone holds the key that signs user tokens
        env["USER_TOKEN_KEY_FILE"] = f"{APP_SECRETS}/{mint.TOKEN_KEY}"
        env["USER_TOKEN_ISSUER"] = token.issuer
        env["USER_TOKEN_AUDIENCE"] = token.audience
        env["USER_TOKEN_TTL_SECONDS"] = str(token.ttl_s)
    spec = _ours(
        command=["boutique", "serve", service],
        environment=env,
        depends_on=depends,
        healthcheck=probe(f"http://127.0.0.1:{svc.port}/readyz"),
    )
    volumes = []
    if "sqlite" in svc.stores:
        volumes.append(f"data-{service}:{DATA_DIR}")  # replicas share their service's data
    if service in mint.app_secrets(topology):
        volumes.append(f"secrets-{service}:{APP_SECRETS}:ro")
    if volumes:
        spec["volumes"] = volumes
    return spec


def sidecar(service: str, pod: str) -> dict[str, Any]:
    spec = _envoy(pod, service, f"{pod}.yaml")
    spec["network_mode"] = f"service:{pod}"
    # its app's network namespace must exist; both then start side by side
    spec["depends_on"] = {**_minted(), pod: {"condition": "service_started"}}
    return spec


def services(topology: Topology) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mint": _ours(
            user="0",  # writes into fresh volumes, and hands each file to the sidecars' user
            command=["boutique", "mint", "--out", "/mesh"],
            volumes=[f"{v}:/mesh/{f}" for v, f in mint.folders(topology).items()],
            restart="no",
        ),
        "redis": {
            "image": REDIS_IMAGE,
            "command": [
                "redis-server",
                *("--dir", "/data", "--appendonly", "yes", "--save", ""),
                # one user per service, the default user off (boutique mint)
                *("--aclfile", f"{REDIS_ACL_DIR}/{mint.REDIS_ACL}", "--protected-mode", "no"),
            ],
            "volumes": ["redis-data:/data", f"secrets-redis:{REDIS_ACL_DIR}:ro"],
            "depends_on": _minted(),
            "healthcheck": {
                **probe(""),
                "test": [
                    *("CMD", "redis-cli", "--no-auth-warning"),
                    *("--user", "healthcheck", "--pass", "-", "ping"),
                ],
            },
        },
        "jaeger": {
            "image": JAEGER_IMAGE,
            "environment": {"COLLECTOR_OTLP_ENABLED": "true"},
            "ports": _published("jaeger"),
            "healthcheck": {
                **probe(""),
                "test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:14269/"],
            },
        },
        "otel-collector": {
            "image": COLLECTOR_IMAGE,
            "command": ["--config=/etc/otelcol/config.yaml"],
            "volumes": [f"./{CONFIG_DIR}/otel-collector.yaml:/etc/otelcol/config.yaml:ro"],
            "depends_on": {
                "jaeger": {"condition": "service_started"}
            },  # spans wait, shoppers don't
            # the image has no shell and no HTTP client: healthy means its config loads
            "healthcheck": {
                **probe(""),
                "test": ["CMD", "/otelcol", "validate", "--config=/etc/otelcol/config.yaml"],
            },
        },
    }
    for service, pod in instance_names(topology):
        out[pod] = app(topology, service)
        out[f"{pod}-sidecar"] = sidecar(service, pod)
    routed = dict.fromkeys(r.service for r in topology.ingress_routes)
    ingress = _envoy("ingress", "ingress", "ingress.yaml")
    ingress["ports"] = _published("ingress")
    pods = [pod for s, pod in instance_names(topology) if s in routed]
    ingress["depends_on"] = {
        **_minted(),
        **_healthy(*pods, *(f"{pod}-sidecar" for pod in pods)),
    }
    out["ingress"] = ingress
    out["locust"] = _ours(
        command=["boutique", "load", "--web", "--web-host", "0.0.0.0", "--host", _ingress_url()],
        ports=_published("locust"),
        depends_on=_healthy("ingress"),
        healthcheck=probe(f"http://127.0.0.1:{PUBLISHED['locust'][1]}/"),
    )
    return out


def _ingress_url() -> str:
    return f"http://ingress:{PUBLISHED['ingress'][1]}"


def render(topology: Topology) -> dict[str, Any]:
    volumes = list(mint.folders(topology))
    volumes += [f"data-{s.name}" for s in topology.services.values() if "sqlite" in s.stores]
    volumes.append("redis-data")
    return {"services": services(topology), "volumes": {v: {} for v in volumes}}


def collector_config() -> dict[str, Any]:
    """The Collector: OTLP in (gRPC and HTTP), batched, to Jaeger's OTLP gRPC receiver."""
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "0.0.0.0:4317"},
                    "http": {"endpoint": "0.0.0.0:4318"},
                }
            }
        },
        "processors": {"batch": {"timeout": "1s"}},
        "exporters": {"otlp/jaeger": {"endpoint": "jaeger:4317", "tls": {"insecure": True}}},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["otlp/jaeger"],
                }
            }
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style, except short lists of plain values (a command, a healthcheck) on one line."""

    def represent_list(self, data: list[Any]) -> yaml.Node:  # type: ignore[override]
        short = all(isinstance(v, str | int) for v in data) and len(str(data)) < 90
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=short)


_Dumper.add_representer(list, _Dumper.represent_list)


def dump(document: dict[str, Any], header: str = HEADER) -> str:
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)


def files(topology: Topology) -> dict[str, str]:
    """Every file compose needs, by path from the repository's root, as rendered now."""
    placement = compose_placement(topology)
    out = {"docker-compose.yml": dump(render(topology))}
    for inst in placement.all_instances():
        what = f"{inst.name}'s Envoy sidecar in compose (peers by container name, mTLS inbound)."
        config = envoy.sidecar(topology, placement, inst)
        out[f"{CONFIG_DIR}/{inst.name}.yaml"] = dump(config, CONFIG_HEADER.format(what=what))
    what = "The ingress Envoy in compose: the shop and the API on 8080."
    config = envoy.ingress(topology, placement)
    out[f"{CONFIG_DIR}/ingress.yaml"] = dump(config, CONFIG_HEADER.format(what=what))
    what = "The OpenTelemetry Collector in compose: OTLP in, batched, to Jaeger."
    out[f"{CONFIG_DIR}/otel-collector.yaml"] = dump(
        collector_config(), CONFIG_HEADER.format(what=what)
    )
    return out
