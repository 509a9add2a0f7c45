"""Render ``istio/experiments/<name>/kustomization.yaml``: each experiment as a kustomize overlay.

The overlay is the whole tree (``istio/base`` and ``istio/mesh``, as ``istio/`` itself) with
the experiment's ``fault`` added to the destination's VirtualService (named after the service;
see ``istio.py``): to the routes of the ``sourceLabels`` caller only, or to every caller's
routes and the edge's route to it.
``kubectl apply -k istio/experiments/<name>`` switches it on; ``kubectl apply -k istio`` off.

On Istio the fault is injected by the caller's sidecar before the call is routed, so the
caller's retries and outlier detection never see it; locally and in compose the callee's
sidecar injects it, as a failing server would (docs/experiments.md).
"""

from __future__ import annotations

from typing import Any

import yaml

from mesh.experiments import spec
from mesh.experiments.spec import Experiment
from mesh.topology import Topology

from . import istio_traffic as traffic
from .istio import _Dumper

HEADER = (
    "# Rendered from mesh/experiments/{name}.yaml by `boutique render`. Do not edit: change the\n"
    "# experiment and render again. Apply: kubectl apply -k istio/experiments/{name}\n"
    "# (and kubectl apply -k istio to switch the fault off again).\n"
)


def duration(ms: int) -> str:
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def istio_fault(exp: Experiment) -> dict[str, Any]:
    """The experiment's fault block in Istio's own words (HTTPFaultInjection)."""
    fault: dict[str, Any] = {}
    if exp.delay:
        fault["delay"] = {
            "percentage": {"value": _number(exp.delay.percent)},
            "fixedDelay": duration(exp.delay.fixed_delay_ms),
        }
    if exp.abort:
        fault["abort"] = {
            "percentage": {"value": _number(exp.abort.percent)},
            "httpStatus": exp.abort.http_status,
        }
    return fault


def _patch(kind_name: str, topology: Topology, indices: list[int], fault: dict[str, Any]) -> dict:
    ops = [{"op": "add", "path": f"/spec/http/{i}/fault", "value": fault} for i in indices]
    return {
        "target": {
            "group": "networking.istio.io",
            "version": "v1",
            "kind": "VirtualService",
            "name": kind_name,
            "namespace": topology.namespace,
        },
        "patch": yaml.dump(ops, Dumper=_Dumper, sort_keys=False, width=100),
    }


def overlay(topology: Topology, exp: Experiment) -> dict[str, Any]:
    fault = istio_fault(exp)
    patches = []
    if topology.callers(exp.destination):
        routes = traffic.virtual_service(topology, exp.destination)["spec"]["http"]
        mine = [
            i
            for i, r in enumerate(routes)
            if exp.source is None or r["name"].startswith(f"{exp.source}-")
        ]
        patches.append(_patch(exp.destination, topology, mine, fault))
    if exp.source is None and topology.exposed(exp.destination):
        edge = traffic.gateway(topology)[1]
        routes = edge["spec"]["http"]
        mine = [i for i, r in enumerate(routes) if r["name"] == f"to-{exp.destination}"]
        patches.append(_patch(edge["metadata"]["name"], topology, mine, fault))
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base", "../../mesh"],
        "patches": patches,
    }


def render(topology: Topology) -> dict[str, str]:
    """``<name>/kustomization.yaml`` for every experiment in ``mesh/experiments/``."""
    return {
        f"{exp.name}/kustomization.yaml": HEADER.format(name=exp.name)
        + yaml.dump(overlay(topology, exp), Dumper=_Dumper, sort_keys=False, width=100)
        for exp in spec.load_all(topology)
    }
