"""Kubernetes workloads for ``istio/base/``: the namespace, each service's ServiceAccount,
Deployment and Service, Redis, the OpenTelemetry Collector and Jaeger, and Locust.

Every container runs locked down: non-root, read-only root filesystem (writable emptyDirs where
a process writes), no privilege escalation, all capabilities dropped, RuntimeDefault seccomp,
requests and limits. SQLite lives on a PersistentVolumeClaim; replicas of a SQLite service are
kept on one node (as the local mode's replicas share one machine), so they share one database.
"""

from __future__ import annotations

from typing import Any

from mesh.topology import Service, Topology

from .istio_meta import (
    APP_UID,
    COLLECTOR,
    IMAGE,
    INGRESS_NAMESPACE,
    JAEGER,
    JAEGER_UI,
    LOCUST,
    LOCUST_UI,
    OTLP_GRPC,
    OTLP_HTTP,
    REDIS,
    REDIS_PORT,
    SERVICE_PORT,
    VERSION,
    meta,
    obj,
)

REDIS_IMAGE = "redis:7.4-alpine"
REDIS_UID = 999  # the image's redis user
COLLECTOR_IMAGE = "otel/opentelemetry-collector:0.115.1"
JAEGER_IMAGE = "jaegertracing/all-in-one:1.64.0"
DATA_DIR = "/var/lib/boutique"
# Secrets minted per install by `make k8s-secrets` (mesh/k8s_secrets.py), never rendered here.
SIGNER_SECRET, REDIS_ACL_SECRET = "user-token-key", "redis-acl"
SIGNER_DIR, REDIS_ACL_DIR = "/var/run/secrets/boutique/user-token", "/etc/redis"
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(values: dict[str, Any]) -> list[dict[str, Any]]:
    """A value, or a ``(secret, key)`` pair read from a Secret."""
    return [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": v[0], "key": v[1]}}}
        if isinstance(v, tuple)
        else {"name": k, "value": v}
        for k, v in values.items()
    ]


def redis_secret(service: str) -> str:
    return f"redis-{service}"


def minted_secrets(
    topology: Topology, key_pem: str, acl: str, passwords: dict[str, str]
) -> list[dict[str, Any]]:
    """The Secrets `make k8s-secrets` applies: what the workloads below read, and no more."""
    ns = topology.namespace

    def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
        return obj("v1", "Secret", meta(name, ns), type="Opaque", stringData=data)

    out = [
        secret(SIGNER_SECRET, {"key.pem": key_pem}),
        secret(REDIS_ACL_SECRET, {"users.acl": acl}),
    ]
    for svc, password in passwords.items():
        url = f"redis://{svc}:{password}@{REDIS}:{REDIS_PORT}/0"
        out.append(secret(redis_secret(svc), {"url": url}))
    return out


def _deployment(
    topology: Topology,
    name: str,
    pod: dict[str, Any],
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    template_meta: dict[str, Any] = {"labels": {"app": name, "version": VERSION}}
    if annotations:
        template_meta["annotations"] = annotations
    return obj(
        "apps/v1",
        "Deployment",
        meta(name, topology.namespace, app=name, version=VERSION),
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": template_meta, "spec": pod},
        },
    )


def _service(
    topology: Topology, name: str, ports: list[tuple[str, int, int]], **spec: Any
) -> dict[str, Any]:
    return obj(
        "v1",
        "Service",
        meta(name, topology.namespace, app=name),
        spec={
            "selector": {"app": name},
            "ports": [
                {"name": pname, "port": port, "targetPort": target, "protocol": "TCP"}
                for pname, port, target in ports
            ],
            **spec,
        },
    )


def _mounts(volumes: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": n, "mountPath": path} for n, path in volumes.items()]


def _probe(path: str, seconds: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": seconds,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def readiness_probe(topology: Topology) -> dict[str, Any]:
    """``mesh.readiness``, as each local sidecar checks its app (whole seconds: check())."""
    r = topology.readiness
    probe = _probe(r.path, r.interval_ms // 1000, r.unhealthy_threshold, r.timeout_ms // 1000)
    return {**probe, "successThreshold": r.healthy_threshold}


def service_env(topology: Topology, svc: Service) -> dict[str, Any]:
    env: dict[str, Any] = {
        "SERVICE_NAME": svc.name,
        "HOST": "0.0.0.0",
        "PORT": str(svc.port),
        "BOUTIQUE_DATA_DIR": DATA_DIR,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{COLLECTOR}:{OTLP_HTTP}",
        "TRACES_URL": f"http://localhost:{JAEGER_UI}",  # what `kubectl port-forward` gives
        "PYTHONUNBUFFERED": "1",
    }
    if "redis" in svc.stores:
        env["REDIS_URL"] = (redis_secret(svc.name), "url")  # its own Redis user
    token = topology.user_token
    if svc.name == token.signer:
        env |= {
            "USER_TOKEN_KEY_FILE": f"{SIGNER_DIR}/key.pem",
            "USER_TOKEN_ISSUER": token.issuer,
            "USER_TOKEN_AUDIENCE": token.audience,
            "USER_TOKEN_TTL_SECONDS": str(token.ttl_s),
        }
    return env


def service_workload(topology: Topology, svc: Service) -> list[dict[str, Any]]:
    """ServiceAccount (its SPIFFE id), Deployment, Service (and the SQLite claim) of a service."""
    volumes = {"tmp": "/tmp"}
    pod_volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    claim: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if svc.name == topology.user_token.signer:
        mounts.append({"name": "user-token", "mountPath": SIGNER_DIR, "readOnly": True})
        pod_volumes.append(
            {"name": "user-token", "secret": {"secretName": SIGNER_SECRET, "defaultMode": 0o400}}
        )
    if "sqlite" in svc.stores:
        volumes["data"] = DATA_DIR
        pod_volumes.append(
            {"name": "data", "persistentVolumeClaim": {"claimName": f"{svc.name}-data"}}
        )
        claim = [
            obj(
                "v1",
                "PersistentVolumeClaim",
                meta(f"{svc.name}-data", topology.namespace, app=svc.name),
                spec={
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            )
        ]
    container = {
        "name": svc.name,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["boutique", "serve", svc.name],
        "env": _env(service_env(topology, svc)),
        "ports": [{"name": "http", "containerPort": svc.port, "protocol": "TCP"}],
        "readinessProbe": readiness_probe(topology),
        "livenessProbe": _probe("/healthz", 10, 3),
        "resources": resources("50m", "96Mi", "500m", "256Mi"),
        "securityContext": container_security(),
        "volumeMounts": _mounts(volumes) + mounts,
    }
    pod: dict[str, Any] = {
        "serviceAccountName": svc.name,
        "automountServiceAccountToken": True,  # istio-proxy's identity comes from this token
        "securityContext": pod_security(APP_UID),
        "terminationGracePeriodSeconds": 20,
        "containers": [container],
        "volumes": pod_volumes,
    }
    if claim and svc.replicas > 1:
        pod["affinity"] = {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"app": svc.name}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }
    return [
        obj("v1", "ServiceAccount", meta(svc.name, topology.namespace, app=svc.name)),
        *claim,
        _deployment(topology, svc.name, pod, svc.replicas),
        _service(topology, svc.name, [(f"http-{svc.name}", SERVICE_PORT, svc.port)]),
    ]


def namespace(topology: Topology) -> dict[str, Any]:
    return obj("v1", "Namespace", meta(topology.namespace, None, **{"istio-injection": "enabled"}))


def _simple_pod(
    name: str, image: str, uid: int, args: list[str], ports: dict[str, int], **extra: Any
) -> dict[str, Any]:
    mounts = extra.pop("mounts", {"tmp": "/tmp"})
    container = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports.items()],
        "resources": extra.pop("resources", resources("50m", "64Mi", "500m", "256Mi")),
        "securityContext": container_security(),
        "volumeMounts": _mounts(mounts),
        **extra,
    }
    return {
        "serviceAccountName": name,
        "securityContext": pod_security(uid),
        "containers": [container],
        "volumes": [{"name": n, "emptyDir": {}} for n in mounts],
    }


def redis(topology: Topology) -> list[dict[str, Any]]:
    """One Redis for the sessions and carts: only its owners reach it (mesh), each as its own
    ACL user (the ACL file minted by `make k8s-secrets`)."""
    args = ["redis-server", "--save", "", "--appendonly", "no", "--dir", "/data"]
    args += ["--aclfile", f"{REDIS_ACL_DIR}/users.acl"]
    pod = _simple_pod(
        REDIS,
        REDIS_IMAGE,
        REDIS_UID,
        args,
        {"redis": REDIS_PORT},
        mounts={"data": "/data"},
        readinessProbe={"tcpSocket": {"port": "redis"}, "periodSeconds": 5},
    )
    pod["containers"][0]["command"] = pod["containers"][0].pop("args")
    pod["containers"][0]["volumeMounts"].append(
        {"name": "acl", "mountPath": REDIS_ACL_DIR, "readOnly": True}
    )
    pod["volumes"].append(
        {"name": "acl", "secret": {"secretName": REDIS_ACL_SECRET, "defaultMode": 0o400}}
    )
    return [
        obj("v1", "ServiceAccount", meta(REDIS, topology.namespace, app=REDIS)),
        _deployment(topology, REDIS, pod),
        _service(topology, REDIS, [("tcp-redis", REDIS_PORT, REDIS_PORT)]),
    ]


COLLECTOR_CONFIG = f"""\
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "0.0.0.0:{OTLP_GRPC}"}}
      http: {{endpoint: "0.0.0.0:{OTLP_HTTP}"}}
processors:
  batch: {{}}
exporters:
  otlp/jaeger:
    endpoint: "{JAEGER}:{OTLP_GRPC}"
    tls: {{insecure: true}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp/jaeger]}}
"""


def tracing(topology: Topology) -> list[dict[str, Any]]:
    """The Collector (OTLP from apps and sidecars) and Jaeger (its UI on 16686).

    Neither gets a sidecar: Istio's proxies send their spans from outside the mesh's capture,
    in plain text, which a STRICT-mTLS sidecar in front of the Collector would refuse.
    """
    ns = topology.namespace
    config = obj("v1", "ConfigMap", meta(COLLECTOR, ns), data={"config.yaml": COLLECTOR_CONFIG})
    collector = _simple_pod(
        COLLECTOR,
        COLLECTOR_IMAGE,
        10001,
        ["--config=/etc/otelcol/config.yaml"],
        {"otlp-grpc": OTLP_GRPC, "otlp-http": OTLP_HTTP},
    )
    collector["containers"][0]["volumeMounts"].append(
        {"name": "config", "mountPath": "/etc/otelcol", "readOnly": True}
    )
    collector["volumes"].append({"name": "config", "configMap": {"name": COLLECTOR}})
    jaeger = _simple_pod(
        JAEGER,
        JAEGER_IMAGE,
        10001,
        ["--memory.max-traces=20000"],
        {"otlp-grpc": OTLP_GRPC, "ui": JAEGER_UI},
        env=_env({"COLLECTOR_OTLP_ENABLED": "true"}),
        resources=resources("50m", "128Mi", "500m", "512Mi"),
        readinessProbe={"httpGet": {"path": "/", "port": "ui"}, "periodSeconds": 5},
    )
    grpc, http = ("grpc-otlp", OTLP_GRPC, OTLP_GRPC), ("http-otlp", OTLP_HTTP, OTLP_HTTP)
    return [
        config,
        obj("v1", "ServiceAccount", meta(COLLECTOR, ns, app=COLLECTOR)),
        _deployment(topology, COLLECTOR, collector, annotations=NO_SIDECAR),
        _service(topology, COLLECTOR, [grpc, http]),
        obj("v1", "ServiceAccount", meta(JAEGER, ns, app=JAEGER)),
        _deployment(topology, JAEGER, jaeger, annotations=NO_SIDECAR),
        _service(topology, JAEGER, [grpc, ("http-ui", JAEGER_UI, JAEGER_UI)]),
    ]


def locust(topology: Topology) -> list[dict[str, Any]]:
    """Locust's web UI (port-forward 8089), shopping through the ingress gateway."""
    host = f"http://istio-ingressgateway.{INGRESS_NAMESPACE}"
    pod = _simple_pod(
        LOCUST,
        IMAGE,
        APP_UID,
        ["boutique", "load", "--web", "--host", host, "--web-port", str(LOCUST_UI)],
        {"http-ui": LOCUST_UI},
        env=_env({"HOME": "/tmp", "PYTHONUNBUFFERED": "1"}),
        resources=resources("100m", "128Mi", "1", "512Mi"),
    )
    pod["containers"][0]["command"] = pod["containers"][0].pop("args")
    return [
        obj("v1", "ServiceAccount", meta(LOCUST, topology.namespace, app=LOCUST)),
        _deployment(topology, LOCUST, pod),
    ]
