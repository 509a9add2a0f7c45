"""The Kubernetes + Istio tree ``istio/``, checked statically (no cluster runs here): it is
current, kustomize builds it, Kubernetes' and Istio's schemas accept it, every workload is locked
down, and every call carries on Istio the policy the local sidecars carry."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from boutique import cli
from mesh import k8s_secrets
from mesh import topology as topo
from mesh.placement import local_placement
from mesh.render import envoy, istio, targets
from mesh.render.istio_meta import IstioRenderError
from tests import istio_checks as checks

ROOT = Path(__file__).resolve().parents[2]
ISTIO = ROOT / "istio"
KUBERNETES_VERSION = "1.32"
RAW = yaml.safe_load(topo.DEFAULT_PATH.read_text())


def _topology(change: Any = None) -> topo.Topology:
    raw = copy.deepcopy(RAW)
    if change:
        change(raw)
    return topo.parse(raw)


def _key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    m = obj["metadata"]
    return obj["apiVersion"], obj["kind"], m.get("namespace", ""), m["name"]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return istio.objects(topo.load())


def _applied(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """What ``kubectl apply -k istio/`` sends: every object but the kustomizations and operator."""
    skip = {"Kustomization", "IstioOperator"}
    return [o for objs in rendered.values() for o in objs if o["kind"] not in skip]


def test_the_checked_in_tree_is_current() -> None:
    (target,) = (t for t in targets.TARGETS if t.name == "istio")
    drift = targets.check(topo.load(), targets=[target])
    assert not drift, "\n".join([*drift.lines(), "run `boutique render` (make k8s-render)"])


def test_kustomize_builds_exactly_the_rendered_objects(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on this machine (Debian's kubernetes-client has one)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ISTIO)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    built = {_key(o): o for o in yaml.safe_load_all(out) if o}
    expected = {_key(o): o for o in _applied(rendered)}
    assert sorted(built) == sorted(expected)
    assert built == expected


def test_core_objects_validate_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    core = [o for o in _applied(rendered) if "istio.io" not in o["apiVersion"]]
    assert {o["kind"] for o in core} >= {"Namespace", "Deployment", "Service", "ServiceAccount"}
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_validation_refuses_an_unknown_field(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployment = copy.deepcopy(rendered["base/cart.yaml"][1])
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="securityContxt"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_istio_objects_use_v1_and_validate_against_istios_crds(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    mesh = [o for o in _applied(rendered) if "istio.io" in o["apiVersion"]]
    versions = {o["apiVersion"] for o in mesh if o["kind"] != "EnvoyFilter"}
    assert versions == {"networking.istio.io/v1", "security.istio.io/v1", "telemetry.istio.io/v1"}
    # the edge's rate limit has no v1 resource: the one EnvoyFilter, for the ingress gateway
    (envoy_filter,) = (o for o in mesh if o["kind"] == "EnvoyFilter")
    assert envoy_filter["apiVersion"] == "networking.istio.io/v1alpha3"
    assert envoy_filter["metadata"]["namespace"] == "istio-system"
    errors = [e for obj in mesh for e in checks.istio_errors(obj)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "spoil, expected",
    [
        (lambda s: s["http"][0].update(timout="3s"), "'timout' was unexpected"),
        (
            lambda s: s["http"][0].update(timeout="3 s"),
            "spec.http[0].timeout: must be a valid duration",
        ),
        (lambda s: s["http"][0]["retries"].update(attempts="two"), "is not of type 'integer'"),
    ],
)
def test_the_istio_validation_refuses_a_wrong_virtual_service(
    rendered: dict[str, list[dict[str, Any]]], spoil: Any, expected: str
) -> None:
    vs = copy.deepcopy(rendered["mesh/products.yaml"][0])
    spoil(vs["spec"])
    assert any(expected in e for e in checks.istio_errors(vs)), checks.istio_errors(vs)


# -- workloads ----------------------------------------------------------------------------------


def _deployments(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [o for o in _applied(rendered) if o["kind"] == "Deployment"]


def lockdown_problems(deployment: dict[str, Any]) -> list[str]:
    """What a workload lacks of the lock-down every pod must have."""
    pod = deployment["spec"]["template"]["spec"]
    name = deployment["metadata"]["name"]
    problems = []
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        problems.append(f"{name}: the pod may run as root")
    if pod.get("securityContext", {}).get("seccompProfile") != {"type": "RuntimeDefault"}:
        problems.append(f"{name}: the pod has no RuntimeDefault seccomp profile")
    writable = {m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        where = f"{name}/{c['name']}"
        checks_ = {
            "runs as non-root": sc.get("runAsNonRoot") is True,
            "has a read-only root filesystem": sc.get("readOnlyRootFilesystem") is True,
            "cannot escalate privileges": sc.get("allowPrivilegeEscalation") is False,
            "drops all capabilities": sc.get("capabilities", {}).get("drop") == ["ALL"],
            "uses RuntimeDefault seccomp": sc.get("seccompProfile") == {"type": "RuntimeDefault"},
            "has requests and limits": {"requests", "limits"} <= set(c.get("resources", {})),
            "has a writable /tmp": "/tmp" in writable or "/data" in writable,
        }
        problems += [f"{where}: it never {what}" for what, ok in checks_.items() if not ok]
    return problems


def test_every_workload_is_locked_down(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployments = _deployments(rendered)
    assert len(deployments) == len(topo.load().services) + 4  # redis, collector, jaeger, locust
    problems = [p for d in deployments for p in lockdown_problems(d)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "path",
    [
        ("securityContext", "runAsNonRoot"),
        ("securityContext", "seccompProfile"),
        ("containers", 0, "securityContext", "runAsNonRoot"),
        ("containers", 0, "securityContext", "readOnlyRootFilesystem"),
        ("containers", 0, "securityContext", "allowPrivilegeEscalation"),
        ("containers", 0, "securityContext", "capabilities"),
        ("containers", 0, "securityContext", "seccompProfile"),
        ("containers", 0, "resources", "limits"),
    ],
)
def test_the_lockdown_check_fails_when_a_setting_is_removed(
    rendered: dict[str, list[dict[str, Any]]], path: tuple[Any, ...]
) -> None:
    for deployment in _deployments(rendered):
        spoiled = copy.deepcopy(deployment)
        node = spoiled["spec"]["template"]["spec"]
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]
        assert lockdown_problems(spoiled), f"{deployment['metadata']['name']} without {path}"


def test_each_service_runs_the_image_with_probes_labels_and_its_identity(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    topology = topo.load()
    for svc in topology.services.values():
        account, *_, deployment, service = (
            o for o in rendered[f"base/{svc.name}.yaml"] if o["kind"] != "PersistentVolumeClaim"
        )
        assert account["kind"] == "ServiceAccount" and account["metadata"]["name"] == svc.name
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["replicas"] == svc.replicas
        assert pod["metadata"]["labels"] == {"app": svc.name, "version": "v1"}
        assert pod["spec"]["serviceAccountName"] == svc.name  # spiffe://.../sa/<name>
        (container,) = pod["spec"]["containers"]
        assert container["image"] == "mesh-boutique:latest"
        assert container["command"] == ["boutique", "serve", svc.name]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PORT"] == str(svc.port) and "PEER_PROXY" not in env  # Istio captures
        (port,) = service["spec"]["ports"]
        assert (port["name"], port["port"], port["targetPort"]) == (
            f"http-{svc.name}",
            80,
            svc.port,
        )


def test_replicas_of_a_sqlite_service_share_one_database_on_one_node(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    claim, deployment = rendered["base/products.yaml"][1:3]
    assert claim["kind"] == "PersistentVolumeClaim"
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"


# -- what Istio cannot carry --------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda r: r["services"]["cart"].update(port=15006), "services.cart.port"),
        (lambda r: r["services"]["orders"].update(port=443), "services.orders.port"),
        (lambda r: r["services"].update(redis={"port": 8200}), "services.redis"),
        (
            lambda r: r["mesh"]["readiness"].update(
                interval="500ms", timeout="200ms", recheck="500ms"
            ),
            r"mesh\.readiness\.interval",
        ),
        (
            lambda r: r["mesh"]["ingress"]["admission"].update(max_pending=0),
            r"mesh\.ingress\.admission\.max_pending",
        ),
    ],
)
def test_a_topology_istio_cannot_carry_stops_the_render_naming_the_place(
    change: Any, where: str
) -> None:
    with pytest.raises(IstioRenderError, match=rf"^{where}"):
        istio.render(_topology(change))


# -- equivalence with the local sidecars ----------------------------------------------------------


def _envoy_configs(topology: topo.Topology, tmp: Path) -> dict[str, dict[str, Any]]:
    placement = local_placement(topology, tmp, public_port=8080, base_port=15000, otlp_port=4318)
    configs = {
        name: envoy.sidecar(topology, placement, insts[0])
        for name, insts in placement.instances.items()
    }
    return {**configs, "ingress": envoy.ingress(topology, placement)}


def _by_kind(objs: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for os_ in objs.values() for o in os_ if o["kind"] == kind}


def _readiness(sidecar: dict[str, Any]) -> tuple[Any, ...]:
    """The local sidecar's check of its app: path, interval, timeout, thresholds."""
    app = next(c for c in sidecar["static_resources"]["clusters"] if c["name"] == "app")
    (hc,) = app["health_checks"]
    return (
        hc["http_health_check"]["path"],
        checks.to_ms(hc["interval"]),
        checks.to_ms(hc["timeout"]),
        hc["unhealthy_threshold"],
        hc["healthy_threshold"],
    )


def _probe(deployment: dict[str, Any]) -> tuple[Any, ...]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    p = container["readinessProbe"]
    return (
        p["httpGet"]["path"],
        p["periodSeconds"] * 1000,
        p["timeoutSeconds"] * 1000,
        p["failureThreshold"],
        p["successThreshold"],
    )


def assert_equivalent(
    topology: topo.Topology,
    local: dict[str, dict[str, Any]],
    rendered: dict[str, list[dict[str, Any]]],
) -> int:
    """Every call's policy on Istio equals the local sidecars' (``local``: a bootstrap per
    service, and the ingress's); returns the calls compared."""
    vss = _by_kind(rendered, "VirtualService")
    drs = _by_kind(rendered, "DestinationRule")
    aps = _by_kind(rendered, "AuthorizationPolicy")
    ingress_id = topology.spiffe_id("ingress")
    gateway_id = f"spiffe://{topology.trust_domain}/ns/istio-system/sa/"
    gateway_id += "istio-ingressgateway-service-account"
    calls = 0
    for callee in topology.services:
        callers = topology.callers(callee)
        clusters = [checks.envoy_cluster(local[c], callee) for c in callers]
        if topology.exposed(callee):  # the ingress gateway's pods have a rule of their own
            edge = checks.envoy_cluster(local["ingress"], callee)
            assert checks.istio_cluster(drs[f"ingress-{callee}"]) == edge, callee
        if clusters:
            assert checks.istio_cluster(drs[callee]) == checks.strictest(clusters), callee
        for caller in callers:
            assert checks.istio_routes(vss[callee], caller) == checks.envoy_routes(
                local[caller], callee
            ), f"{caller} -> {callee}"
            calls += 1
        # callers, their operations, and whether a verified user is needed
        allowed = {
            gateway_id if p == ingress_id else p: ops
            for p, ops in checks.envoy_access(local[callee]).items()
        }
        assert checks.istio_access(aps[callee]) == allowed, callee
    deployments = _by_kind(rendered, "Deployment")
    for name in topology.services:
        assert _probe(deployments[name]) == _readiness(local[name]), name
    sidecars = _by_kind(rendered, "Sidecar")
    infrastructure = {"otel-collector", "redis"}
    for name in topology.services:
        (egress,) = sidecars[name]["spec"]["egress"]
        reachable = {h.split("/")[1].split(".")[0] for h in egress["hosts"]} - infrastructure
        assert reachable == checks.envoy_peers(local[name]), name
    edge = _istio_edge(vss["ingress"], _istio_buckets(rendered))
    assert edge == _envoy_edge(local["ingress"])
    (telemetry,) = _by_kind(rendered, "Telemetry").values()
    (tracing,) = telemetry["spec"]["tracing"]
    for name, config in local.items():
        manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        sampling = manager["typed_config"]["tracing"]["random_sampling"]["value"]
        assert tracing["randomSamplingPercentage"] == sampling, name
    return calls


def _envoy_edge(config: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The ingress's routes: match, service, timeout, retries, rate-limit bucket."""
    (listener,) = config["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    out = []
    for r in vhost["routes"]:
        if "route" not in r:
            continue
        match = r["match"]
        if "prefix" in match:
            what: tuple[Any, ...] = ("prefix", match["prefix"])
        else:
            (method,) = match["headers"]
            what = ("exact", match["path"], method["string_match"]["exact"])
        bucket = r.get("typed_per_filter_config", {}).get("envoy.filters.http.local_ratelimit")
        route = r["route"]
        out.append(
            (what, route["cluster"], checks.to_ms(route["timeout"]))
            + (checks.envoy_retries(route), bucket)
        )
    return out


def _istio_edge(vs: dict[str, Any], limits: dict[str, Any]) -> list[tuple[Any, ...]]:
    out = []
    for r in vs["spec"]["http"]:
        (match,) = r["match"]
        uri = match["uri"]
        what: tuple[Any, ...] = (
            ("prefix", uri["prefix"])
            if "prefix" in uri
            else ("exact", uri["exact"], match["method"]["exact"])
        )
        host = r["route"][0]["destination"]["host"].split(".")[0]
        out.append(
            (what, host, checks.to_ms(r["timeout"]))
            + (checks.istio_retries(r), limits.get(r["name"]))
        )
    return out


def _istio_buckets(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Route name -> the token bucket the ingress gateway's EnvoyFilter puts on it."""
    out = {}
    for f in _by_kind(rendered, "EnvoyFilter").values():
        for patch in f["spec"]["configPatches"]:
            if patch["applyTo"] == "HTTP_ROUTE":
                name = patch["match"]["routeConfiguration"]["vhost"]["route"]["name"]
                per_filter = patch["patch"]["value"]["typed_per_filter_config"]
                out[name] = per_filter["envoy.filters.http.local_ratelimit"]
    return out


def test_every_call_carries_on_istio_the_policy_the_local_sidecars_carry() -> None:
    """Reads both checked-in renderings: envoy/local/ and istio/ (both current: render --check)."""
    topology = topo.load()
    local_dir = targets.ROOT / "envoy" / "local"
    local = {
        name: yaml.safe_load(
            (local_dir / f"{name}{'' if name == 'ingress' else '-0'}.yaml").read_text()
        )
        for name in [*topology.services, "ingress"]
    }
    rendered = {
        str(p.relative_to(ISTIO)): [o for o in yaml.safe_load_all(p.read_text()) if o]
        for p in ISTIO.rglob("*.yaml")
        if p.relative_to(ISTIO).parts[0] != "experiments"
    }
    calls = assert_equivalent(topology, local, rendered)
    assert calls == sum(len(s.calls) for s in topology.services.values()) >= 12


def test_each_caller_may_use_on_istio_only_the_operations_the_topology_allows() -> None:
    topology = topo.load()
    policies = _by_kind(istio.objects(topology), "AuthorizationPolicy")
    health = {("GET", "^/healthz$", False), ("GET", "^/readyz$", False)}
    for callee, svc in topology.services.items():
        access = checks.istio_access(policies[callee])
        for caller in topology.callers(callee):
            ops = topology.allowed(caller, callee)
            assert ops, f"{caller} -> {callee}: the shop's topology lists every call's operations"
            expected = {(op.method, op.regex, svc.user_scoped) for op in ops} | health
            assert access[topology.spiffe_id(caller)] == expected, f"{caller} -> {callee}"
    # a path parameter is one whole segment: Istio's {*} template
    orders = checks.istio_access(policies["orders"])[topology.spiffe_id("payment")]
    assert ("POST", "^/orders/[^/]+/pay$", True) in orders


def test_where_callers_disagree_the_destination_rule_takes_the_strictest(tmp_path: Path) -> None:
    def disagree(raw: dict[str, Any]) -> None:
        raw["services"]["cart"]["calls"]["products"].update(
            circuit_breaker={"max_requests": 10, "max_connections": 999},
            outlier_detection={"consecutive_5xx": 2, "base_ejection_time": "40s"},
            retries={"attempts": 0},
            connect_timeout="250ms",
        )
        raw["mesh"]["tracing"] = {"sampling": 12.5}
        raw["mesh"]["ingress"]["retries"] = {"attempts": 3, "per_try_timeout": "2s"}

    topology = _topology(disagree)
    assert_equivalent(topology, _envoy_configs(topology, tmp_path), istio.objects(topology))
    (dr,) = (
        o for o in istio.objects(topology)["mesh/products.yaml"] if o["kind"] == "DestinationRule"
    )
    policy = dr["spec"]["trafficPolicy"]
    assert policy["connectionPool"]["http"]["http2MaxRequests"] == 10  # cart's, the smallest
    assert policy["connectionPool"]["tcp"]["maxConnections"] == 256  # the others', smaller
    assert policy["outlierDetection"]["consecutive5xxErrors"] == 2
    assert policy["outlierDetection"]["baseEjectionTime"] == "40s"
    assert policy["connectionPool"]["tcp"]["connectTimeout"] == "250ms"


# -- the secrets of one install -----------------------------------------------------------------


def _reads(deployment: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, name, key) of every Secret and ConfigMap a workload reads ("" for all keys)."""
    pod = deployment["spec"]["template"]["spec"]
    out = set()
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            out.add(("Secret", volume["secret"]["secretName"], ""))
        if "configMap" in volume:
            out.add(("ConfigMap", volume["configMap"]["name"], ""))
    for c in pod["containers"]:
        for e in c.get("env", []):
            if "valueFrom" in e:
                ref = e["valueFrom"]["secretKeyRef"]
                out.add(("Secret", ref["name"], ref["key"]))
    return out


@pytest.fixture(scope="module")
def minted(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return k8s_secrets.objects(topo.load(), tmp_path_factory.mktemp("mint"))


def test_every_secret_a_workload_reads_is_rendered_or_minted(
    rendered: dict[str, list[dict[str, Any]]], minted: list[dict[str, Any]]
) -> None:
    available = {
        (o["kind"], o["metadata"]["name"], key)
        for o in [*_applied(rendered), *minted]
        if o["kind"] in {"Secret", "ConfigMap"}
        for key in ["", *o.get("data", {}), *o.get("stringData", {})]
    }
    reads = {r for d in _deployments(rendered) for r in _reads(d)}
    assert ("Secret", "user-token-key", "") in reads and ("Secret", "redis-cart", "url") in reads
    assert reads <= available, reads - available
    # the signing key reaches the signer alone
    signer = topo.load().user_token.signer
    for deployment in _deployments(rendered):
        has_key = ("Secret", "user-token-key", "") in _reads(deployment)
        assert has_key == (deployment["metadata"]["name"] == signer)


def test_minted_objects_validate_and_verify_the_local_token(minted: list[dict[str, Any]]) -> None:
    topology = topo.load()
    secrets = [o for o in minted if o["kind"] == "Secret"]
    for secret in secrets:
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    redis_users = {s["metadata"]["name"] for s in secrets} - {"user-token-key", "redis-acl"}
    owners = {s.name for s in topology.services.values() if "redis" in s.stores}
    assert redis_users == {f"redis-{name}" for name in owners}
    (auth,) = (o for o in minted if o["kind"] == "RequestAuthentication")
    assert not checks.istio_errors(auth), checks.istio_errors(auth)
    (rule,) = auth["spec"]["jwtRules"]
    token = topology.user_token
    assert (rule["issuer"], rule["audiences"], rule["fromHeaders"]) == (
        token.issuer,
        [token.audience],
        [{"name": token.header}],
    )
    assert rule["outputClaimToHeaders"] == [{"header": token.user_header, "claim": "sub"}]
    assert yaml.safe_load(rule["jwks"])["keys"][0]["alg"] == "ES256"


def test_k8s_secrets_go_to_kubectl_on_stdin_only_and_once(tmp_path: Path) -> None:
    """A stand-in kubectl records what it is given; an install with secrets keeps them."""
    log = tmp_path / "calls"
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(
        "#!/bin/sh\n"
        f'echo "ARGS $*" >> {log}\n'
        f'if [ "$1" = apply ]; then cat >> {log}; touch {tmp_path}/applied; fi\n'
        f'if [ "$3" = get ] && [ -e {tmp_path}/applied ]; then echo secret/user-token-key; fi\n'
    )
    kubectl.chmod(0o755)
    topology = topo.load()
    assert "minted" in k8s_secrets.apply(topology, str(kubectl))
    calls = log.read_text()
    args = [line for line in calls.splitlines() if line.startswith("ARGS")]
    assert args[-1] == "ARGS apply -f -"
    assert "PRIVATE KEY" in calls and not any("PRIVATE" in a or "redis://" in a for a in args)
    assert "nothing minted" in k8s_secrets.apply(topology, str(kubectl))
    assert log.read_text().count("ARGS apply") == 1


# -- consistency ---------------------------------------------------------------------------------


def test_every_service_selects_pods_that_listen_on_its_target_port(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    pods = {d["metadata"]["name"]: d["spec"]["template"] for d in _deployments(rendered)}
    for svc in (o for o in _applied(rendered) if o["kind"] == "Service"):
        name, spec = svc["metadata"]["name"], svc["spec"]
        pod = pods[spec["selector"]["app"]]
        assert spec["selector"].items() <= pod["metadata"]["labels"].items(), name
        listening = {p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in spec["ports"]} <= listening, name
        # Istio picks the protocol from the port's name
        assert all(p["name"].split("-")[0] in {"http", "grpc", "tcp"} for p in spec["ports"])


def test_the_istio_operator_sends_traces_to_the_rendered_collector(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    topology = topo.load()
    (operator,) = rendered["istio-operator.yaml"]
    assert operator["apiVersion"] == "install.istio.io/v1alpha1"
    assert set(operator["spec"]) == {"profile", "meshConfig"}
    mesh_config = operator["spec"]["meshConfig"]
    assert mesh_config["trustDomain"] == topology.trust_domain  # the SPIFFE ids of local mode
    (provider,) = mesh_config["extensionProviders"]
    (telemetry,) = _by_kind(rendered, "Telemetry").values()
    assert telemetry["spec"]["tracing"][0]["providers"] == [{"name": provider["name"]}]
    host, port = provider["opentelemetry"]["service"], provider["opentelemetry"]["port"]
    services = {
        f"{o['metadata']['name']}.{o['metadata']['namespace']}.svc.cluster.local": o
        for o in _applied(rendered)
        if o["kind"] == "Service"
    }
    assert port in {p["port"] for p in services[host]["spec"]["ports"]}


def test_boutique_render_stops_naming_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text(topo.DEFAULT_PATH.read_text().replace("port: 8103", "port: 15006"))
    assert cli.main(["render", "--check", "--topology", str(bad)]) == 2
    assert "services.cart.port: 15006 is one of the ports Istio's sidecar takes" in (
        capsys.readouterr().err
    )
