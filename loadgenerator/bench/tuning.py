"""The knobs the benchmark turns, and a local run that applies them.

Some knobs are plain ``LocalOptions`` (Envoy worker threads, tracing, the services' ``OTEL_BSP_*``
environment); the others change the rendered Envoy configs (HTTP/2 between sidecars, no
connection reuse between sidecars, no access logs) or Envoy's runtime once it is up (how many
spans the OpenTelemetry tracer batches). Defaults are what ``boutique up`` runs, so a run with
default knobs measures exactly the shipped mesh.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh.local import LocalOptions, LocalRun
from mesh.render import envoy as envoy_config
from mesh.topology import Topology

HTTP_OPTIONS_KEY = envoy_config.HTTP_OPTIONS.rsplit("/", 1)[1]


@dataclass
class Knobs:
    envoy_concurrency: int = 2  # Envoy worker threads (`--concurrency`)
    keepalive: bool = True  # the load client reuses its connections
    sidecar_http2: bool = False  # sidecars (and the ingress) talk HTTP/2 to each other
    sidecar_pool: bool = True  # False: one request per connection between sidecars (new mTLS)
    access_log: bool = True  # every Envoy writes an access-log line per request
    envoy_min_flush_spans: int | None = None  # Envoy's OTel tracer: spans per export (default 5)
    env: dict[str, str] = field(default_factory=dict)  # extra service env (OTEL_BSP_*, ...)

    def changes(self) -> dict[str, Any]:
        """The knobs that differ from the shipped defaults."""
        default = asdict(Knobs())
        return {k: v for k, v in asdict(self).items() if v != default[k]}

    def config_changes(self) -> bool:
        return self.sidecar_http2 or not self.sidecar_pool or not self.access_log


def _is_upstream_tls(cluster: dict[str, Any]) -> bool:
    sock = cluster.get("transport_socket", {}).get("typed_config", {})
    return sock.get("@type") == envoy_config.UPSTREAM_TLS


def tweak_config(config: dict[str, Any], knobs: Knobs) -> dict[str, Any]:
    """A copy of one rendered Envoy bootstrap with the config knobs applied."""
    out = copy.deepcopy(config)
    resources = out.get("static_resources", {})
    for listener in resources.get("listeners", []):
        for chain in listener.get("filter_chains", []):
            if not knobs.access_log:
                for flt in chain.get("filters", []):
                    flt.get("typed_config", {}).pop("access_log", None)
            tls = chain.get("transport_socket", {}).get("typed_config", {})
            if knobs.sidecar_http2 and tls.get("@type") == envoy_config.DOWNSTREAM_TLS:
                tls["common_tls_context"]["alpn_protocols"] = ["h2", "http/1.1"]
    for cluster in resources.get("clusters", []):
        if not _is_upstream_tls(cluster):  # the app's socket and the trace collector stay as is
            continue
        options: dict[str, Any] = {"@type": envoy_config.HTTP_OPTIONS}
        if knobs.sidecar_http2:
            options["explicit_http_config"] = {"http2_protocol_options": {}}
            tls = cluster["transport_socket"]["typed_config"]
            tls["common_tls_context"]["alpn_protocols"] = ["h2"]
        else:
            options["explicit_http_config"] = {"http_protocol_options": {}}
        if not knobs.sidecar_pool:
            options["common_http_protocol_options"] = {"max_requests_per_connection": 1}
        if knobs.sidecar_http2 or not knobs.sidecar_pool:
            cluster["typed_extension_protocol_options"] = {HTTP_OPTIONS_KEY: options}
    return out


class TunedRun(LocalRun):
    """A ``LocalRun`` whose rendered Envoy configs carry the config knobs."""

    def __init__(
        self, topology: Topology, options: LocalOptions | None = None, knobs: Knobs | None = None
    ) -> None:
        super().__init__(topology, options)
        self.knobs = knobs or Knobs()

    def render(self) -> dict[str, Path]:
        paths = super().render()
        if self.knobs.config_changes():
            for path in paths.values():
                config = yaml.safe_load(path.read_text())
                path.write_text(yaml.safe_dump(tweak_config(config, self.knobs), sort_keys=False))
        return paths

    def apply_runtime(self) -> None:
        """Envoy runtime knobs, switched live through each admin's ``/runtime_modify``."""
        values = {}
        if self.knobs.envoy_min_flush_spans is not None:
            values["tracing.opentelemetry.min_flush_spans"] = str(self.knobs.envoy_min_flush_spans)
        if not values:
            return
        for url in admin_urls(self).values():
            query = urllib.parse.urlencode(values)
            req = urllib.request.Request(f"{url}/runtime_modify?{query}", method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()


def admin_urls(run: LocalRun) -> dict[str, str]:
    """Every Envoy's admin page by process name (``envoy:ingress``, ``envoy:cart-0``)."""
    if run.placement is None:
        return {}
    names = ["ingress", *(i.name for i in run.placement.all_instances())]
    return {f"envoy:{n}": run.admin_url(n) for n in names}


def describe(knobs: Knobs) -> str:
    changes = knobs.changes()
    return json.dumps(changes, sort_keys=True) if changes else "defaults"
