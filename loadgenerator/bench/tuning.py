"""The knobs the benchmark turns, as options of a local run.

Some knobs are plain ``LocalOptions`` (Envoy worker threads, tracing, the services' ``OTEL_BSP_*``
environment); the others are the Envoy renderer's ``EnvoyOptions`` (HTTP/2 between sidecars, no
connection reuse between sidecars, no access logs, how many spans the OpenTelemetry tracer
batches). Defaults are what ``boutique up`` runs, so a run with default knobs measures exactly the
shipped mesh.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mesh.local import LocalRun
from mesh.render.envoy import EnvoyOptions


@dataclass
class Knobs:
    envoy_concurrency: int = 1  # Envoy worker threads (`--concurrency`)
    keepalive: bool = True  # the load client reuses its connections
    sidecar_http2: bool = False  # sidecars (and the ingress) talk HTTP/2 to each other
    sidecar_pool: bool = True  # False: one request per connection between sidecars (new mTLS)
    access_log: bool = True  # every Envoy writes an access-log line per request
    envoy_min_flush_spans: int | None = None  # Envoy's OTel tracer: spans per export (256)
    env: dict[str, str] = field(default_factory=dict)  # extra service env (OTEL_BSP_*, ...)

    def changes(self) -> dict[str, Any]:
        """The knobs that differ from the shipped defaults."""
        default = asdict(Knobs())
        return {k: v for k, v in asdict(self).items() if v != default[k]}

    def envoy_options(self) -> EnvoyOptions:
        """The knobs the Envoy renderer applies."""
        batch = self.envoy_min_flush_spans
        return EnvoyOptions(
            access_log=self.access_log,
            sidecar_http2=self.sidecar_http2,
            sidecar_pool=self.sidecar_pool,
            span_batch=EnvoyOptions.span_batch if batch is None else batch,
        )


def admin_urls(run: LocalRun) -> dict[str, str]:
    """Every Envoy's admin page by process name (``envoy:ingress``, ``envoy:cart-0``)."""
    if run.placement is None:
        return {}
    names = ["ingress", *(i.name for i in run.placement.all_instances())]
    return {f"envoy:{n}": run.admin_url(n) for n in names}


def describe(knobs: Knobs) -> str:
    changes = knobs.changes()
    return json.dumps(changes, sort_keys=True) if changes else "defaults"
