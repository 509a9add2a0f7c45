"""The table ``boutique up`` prints once the local mesh is up: each process or instance, where
it listens, and whether it is ready."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .processes import Child

if TYPE_CHECKING:
    from .local import LocalRun


def table(run: LocalRun) -> str:
    """What is running, where, and whether it is ready: the table ``boutique up`` prints."""
    if run.placement is None:
        rows = [("process", "address", "ready")]
        special = {"redis": run.redis_url, "tracestore": run.traces_url}
        for child in run.supervisor.children:
            address = special.get(child.name) or run.app_url(child.name)
            rows.append((child.name, address, _ready(child)))
        return _format(rows)
    by_name = {c.name: c for c in run.supervisor.children}
    rows = [("instance", "private folder (app, egress, admin)", "mTLS in", "ready")]
    for inst in run.placement.all_instances():
        both = (_ready(by_name.get(inst.name)), _ready(by_name.get(f"envoy:{inst.name}")))
        folder = inst.pod_dir.relative_to(run.run_dir) if inst.pod_dir else "-"
        rows.append(
            (
                inst.name,
                f"{folder}/{{app,egress,admin}}.sock",
                str(inst.inbound_port),
                "yes" if both == ("yes", "yes") else "NO",
            )
        )
    ing = run.placement.ingress
    rows.append(
        (
            "ingress",
            str(run.admin_socket("ingress").relative_to(run.run_dir)),
            f"{ing.port} (public)",
            _ready(by_name.get("envoy:ingress")),
        )
    )
    redis = str(run.redis_socket.relative_to(run.run_dir))
    rows.append(("redis", redis, "-", _ready(by_name.get("redis"))))
    if run.options.tracing:
        rows.append(
            (
                "tracestore",
                f"OTLP :{run.options.otlp_port}, {run.traces_url}",
                "-",
                _ready(by_name.get("tracestore")),
            )
        )
    return _format(rows)


def _ready(child: Child | None) -> str:
    if child is None:
        return "-"
    return "yes" if child.alive and (child.ready() if child.ready else True) else "NO"


def _format(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
