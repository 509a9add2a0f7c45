"""Every rendering checked into the repository, as a registry of targets.

``boutique render`` writes every target; ``boutique render --check`` renders them again in memory
and fails, naming each file, when one on disk is stale (differs), missing (rendered, not on disk)
or left over (on disk, owned by a target, no longer rendered). A test runs the check, so a
topology change that is not rendered again fails the suite.

A target is a name, the folder it writes under (relative to the repository), a pure function
from the topology to ``{path relative to that folder: text}``, and the glob patterns (relative to
the folder) of the files it owns, so that a left-over file is noticed. Adding a target is one
line in :data:`TARGETS`, for example::

    Target("compose", ".", compose.render, owns=("docker-compose.yml", "envoy/compose/*.yaml")),
    Target("istio", "istio", istio.render, owns=("*.yaml", "base/*.yaml", "mesh/*.yaml")),

Files a target does not own (``istio/experiments/`` for example) are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mesh.local import LocalOptions
from mesh.placement import local_placement
from mesh.topology import Topology

from . import compose, envoy, istio, istio_experiments

ROOT = Path(__file__).resolve().parents[2]  # the repository


@dataclass(frozen=True)
class Target:
    name: str
    folder: str  # relative to the repository
    render: Callable[[Topology], dict[str, str]]  # path relative to the folder -> text
    owns: tuple[str, ...]  # glob patterns relative to the folder


@dataclass
class Drift:
    """What differs between the renderings and the files on disk (paths from the repository)."""

    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    left_over: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.stale or self.missing or self.left_over)

    def lines(self) -> list[str]:
        return [
            *(f"stale:     {p}" for p in self.stale),
            *(f"missing:   {p}" for p in self.missing),
            *(f"left over: {p}" for p in self.left_over),
        ]


def envoy_local(topology: Topology) -> dict[str, str]:
    """The local sidecars and the ingress exactly as a default ``boutique up`` runs them, but
    with the run directory's relative path (``.run``) where a run has its absolute one."""
    o = LocalOptions()
    placement = local_placement(
        topology, o.run_dir, o.public_port, o.base_port, o.host, otlp_port=o.otlp_port
    )
    return {
        f"{name}.yaml": _header(name) + envoy.dump(config)
        for name, config in envoy.render_all(topology, placement, o.envoy).items()
    }


def _header(name: str) -> str:
    what = "the ingress" if name == "ingress" else f"the sidecar of {name}"
    return (
        f"# Envoy bootstrap of {what}, as `boutique up` runs it (paths under its run dir, .run).\n"
        "# Rendered from mesh/topology.yaml by `boutique render`; do not edit: change the\n"
        "# topology and render again (`boutique render --check` fails while this is stale).\n"
    )


TARGETS: list[Target] = [
    Target("envoy-local", "envoy/local", envoy_local, owns=("*.yaml",)),
    Target("istio", "istio", istio.render, owns=("*.yaml", "base/*.yaml", "mesh/*.yaml")),
    Target("compose", ".", compose.files, owns=("docker-compose.yml", "envoy/compose/*.yaml")),
    Target(
        "istio-experiments",
        "istio/experiments",
        istio_experiments.render,
        owns=("*/kustomization.yaml",),
    ),
]


def _on_disk(target: Target, root: Path) -> set[str]:
    folder = root / target.folder
    found = {p for pattern in target.owns for p in folder.glob(pattern) if p.is_file()}
    return {str(p.relative_to(folder)) for p in found}


def check(topology: Topology, root: Path = ROOT, targets: list[Target] | None = None) -> Drift:
    drift = Drift()
    for target in TARGETS if targets is None else targets:
        files = target.render(topology)
        folder = root / target.folder
        for rel, text in files.items():
            path = folder / rel
            where = str(path.relative_to(root))
            if not path.exists():
                drift.missing.append(where)
            elif path.read_text() != text:
                drift.stale.append(where)
        for rel in sorted(_on_disk(target, root) - set(files)):
            drift.left_over.append(str((folder / rel).relative_to(root)))
    return drift


def write(topology: Topology, root: Path = ROOT, targets: list[Target] | None = None) -> list[str]:
    """Write every target (only files whose text changed) and remove its left-over files;
    answers the paths written or removed, from the repository."""
    changed = []
    for target in TARGETS if targets is None else targets:
        files = target.render(topology)
        folder = root / target.folder
        for rel in sorted(_on_disk(target, root) - set(files)):
            (folder / rel).unlink()
            changed.append(f"removed {(folder / rel).relative_to(root)}")
        for rel, text in files.items():
            path = folder / rel
            if path.exists() and path.read_text() == text:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(f"wrote   {path.relative_to(root)}")
    return changed
