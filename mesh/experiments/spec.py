"""An experiment file (``mesh/experiments/<name>.yaml``), loaded and checked against the topology.

The ``fault`` and ``match`` blocks are Istio's ``HTTPFaultInjection`` and ``HTTPMatchRequest``
(the parts that mean the same locally, in compose and on Istio); the rest says how to run and
judge it. Every mistake is a :class:`SpecError` naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh.topology import Topology, TopologyError, _duration

from . import hypotheses
from .hypotheses import Hypothesis, HypothesisError
from .yamlcheck import MarkedDict, SpecError, Where, load_marked

DIR = Path(__file__).parent
EXPECTED = ("held", "broken")
TOP = {
    "description",
    "teaches",
    "destination",
    "match",
    "fault",
    "load",
    "phases",
    "expected",
    "hypotheses",
    "notes",
}


@dataclass(frozen=True)
class Delay:
    percent: float  # of requests, 0 < percent <= 100 (Istio's percentage.value)
    fixed_delay_ms: int


@dataclass(frozen=True)
class Abort:
    percent: float
    http_status: int


@dataclass(frozen=True)
class Load:
    users: int
    spawn_rate: float
    think_min_s: float
    think_max_s: float
    page_probers: int  # shoppers who only open the shop's pages (the ``pages`` group)


@dataclass(frozen=True)
class Phase:
    name: str
    duration_s: float


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    description: str
    teaches: str
    destination: str  # the service whose sidecars inject the fault (Istio: the VirtualService)
    source: str | None  # only requests from this caller (Istio: match.sourceLabels.app)
    delay: Delay | None
    abort: Abort | None
    load: Load
    phases: tuple[Phase, ...]
    expected: str  # "held" or "broken": the verdict the author expects
    hypotheses: tuple[Hypothesis, ...]
    notes: str = ""

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def fault_text(self) -> str:
        parts = []
        if self.delay:
            parts.append(f"delay {self.delay.fixed_delay_ms} ms on {self.delay.percent:g}%")
        if self.abort:
            parts.append(f"abort {self.abort.http_status} on {self.abort.percent:g}%")
        who = f"from {self.source} " if self.source else ""
        return f"{' and '.join(parts)} of the requests {who}to {self.destination}"


def names(directory: Path = DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def path_of(name: str, directory: Path = DIR) -> Path:
    """A shipped experiment by name, or a file path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    path = directory / f"{name}.yaml"
    if not path.exists():
        raise SpecError(f"no experiment {name!r}; known: {', '.join(names(directory)) or 'none'}")
    return path


def load(name_or_path: str | Path, topology: Topology) -> Experiment:
    path = path_of(str(name_or_path))
    doc = load_marked(path)
    return parse(doc, path, topology)


def load_all(topology: Topology, directory: Path = DIR) -> list[Experiment]:
    return [load(directory / f"{n}.yaml", topology) for n in names(directory)]


def parse(doc: Any, path: Path, topology: Topology) -> Experiment:
    top = Where(path)
    _mapping(doc, top, "the file")
    _known(doc, TOP, top)
    for key in ("description", "teaches", "destination", "fault", "phases", "hypotheses"):
        if key not in doc:
            raise top.error(f"{key} is missing")
    destination = _text(doc, "destination", top)
    if destination not in topology.services:
        raise top.at("destination", doc).error(
            f"unknown service {destination!r}; known: {', '.join(topology.services)}"
        )
    source = _match(doc, top, topology, destination)
    delay, abort = _fault(doc, top)
    expected = doc.get("expected", "held")
    if expected not in EXPECTED:
        raise top.at("expected", doc).error(f"expected is held or broken, not {expected!r}")
    return Experiment(
        name=path.stem,
        path=path,
        description=_text(doc, "description", top),
        teaches=_text(doc, "teaches", top),
        destination=destination,
        source=source,
        delay=delay,
        abort=abort,
        load=_load(doc.get("load", MarkedDict()), top.at("load", doc)),
        phases=_phases(doc, top),
        expected=expected,
        hypotheses=_hypotheses(doc, top),
        notes=_text(doc, "notes", top) if "notes" in doc else "",
    )


# -- the parts ------------------------------------------------------------------------------------


def _match(doc: MarkedDict, top: Where, topology: Topology, destination: str) -> str | None:
    if "match" not in doc:
        return None
    where = top.at("match", doc)
    match = _mapping(doc["match"], where)
    _known(match, {"sourceLabels"}, where, "(the other HTTPMatchRequest fields are not supported)")
    where = where.at("sourceLabels", match)
    labels = _mapping(match.get("sourceLabels"), where)
    _known(labels, {"app"}, where, "(a caller is named by its app label)")
    source = labels.get("app")
    callers = topology.callers(destination)
    if source not in callers:
        raise where.at("app", labels).error(
            f"{source!r} does not call {destination}; its callers are {', '.join(callers) or '-'}"
        )
    return source


def _fault(doc: MarkedDict, top: Where) -> tuple[Delay | None, Abort | None]:
    where = top.at("fault", doc)
    fault = _mapping(doc["fault"], where)
    _known(fault, {"delay", "abort"}, where, "(grpcStatus and http2Error are not supported)")
    if not fault:
        raise where.error("a fault needs a delay, an abort, or both")
    delay = abort = None
    if "delay" in fault:
        w = where.at("delay", fault)
        spec = _mapping(fault["delay"], w)
        _known(spec, {"percentage", "fixedDelay"}, w, "(exponentialDelay is not supported)")
        if "fixedDelay" not in spec:
            raise w.error("fixedDelay is missing (e.g. fixedDelay: 2s)")
        try:
            ms = _duration(spec["fixedDelay"], "fixedDelay")
        except TopologyError:
            got = spec["fixedDelay"]
            raise w.at("fixedDelay", spec).error(
                f"a duration like 500ms or 2s, not {got!r}"
            ) from None
        delay = Delay(_percentage(spec, w), ms)
    if "abort" in fault:
        w = where.at("abort", fault)
        spec = _mapping(fault["abort"], w)
        _known(spec, {"percentage", "httpStatus"}, w, "(grpcStatus is not supported)")
        status = spec.get("httpStatus")
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            raise w.at("httpStatus", spec).error(f"an HTTP status 200-599, not {status!r}")
        abort = Abort(_percentage(spec, w), status)
    return delay, abort


def _percentage(spec: MarkedDict, where: Where) -> float:
    if "percentage" not in spec:
        raise where.error("percentage is missing (e.g. percentage: {value: 50})")
    w = where.at("percentage", spec)
    pct = _mapping(spec["percentage"], w)
    _known(pct, {"value"}, w)
    value = pct.get("value")
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if not whole or isinstance(value, bool) or not 1 <= value <= 100:
        raise w.at("value", pct).error(
            f"a whole percentage from 1 to 100, not {value!r} (the sidecars count whole percents)"
        )
    return float(value)


def _load(load: Any, where: Where) -> Load:
    load = _mapping(load, where)
    _known(load, {"users", "spawn_rate", "think_time", "page_probers"}, where)
    users = _number(load, "users", where, 10, whole=True, low=1, high=200)
    think = _mapping(load.get("think_time", MarkedDict({"min": "1s", "max": "3s"})), where)
    tw = where.at("think_time", load)
    _known(think, {"min", "max"}, tw)
    low, high = (_seconds(think, k, tw, "1s" if k == "min" else "3s") for k in ("min", "max"))
    if low > high:
        raise tw.error(f"min ({low:g}s) is longer than max ({high:g}s)")
    return Load(
        users=int(users),
        spawn_rate=_number(load, "spawn_rate", where, max(1, users / 5), low=0.1, high=100),
        think_min_s=low,
        think_max_s=high,
        page_probers=int(_number(load, "page_probers", where, 0, whole=True, low=0, high=20)),
    )


def _phases(doc: MarkedDict, top: Where) -> tuple[Phase, ...]:
    where = top.at("phases", doc)
    spec = _mapping(doc["phases"], where)
    _known(spec, set(hypotheses.PHASES), where)
    if list(spec) != list(hypotheses.PHASES):
        raise where.error(f"write every phase, in order: {', '.join(hypotheses.PHASES)}")
    return tuple(Phase(name, _seconds(spec, name, where, None)) for name in spec)


def _hypotheses(doc: MarkedDict, top: Where) -> tuple[Hypothesis, ...]:
    where = top.at("hypotheses", doc)
    items = doc["hypotheses"]
    if not isinstance(items, list) or not items:
        raise where.error("a list of hypotheses is needed, e.g. - checkout p95 < 2s during fault")
    out = []
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise where.at(i, items).error("a hypothesis is one line of text")
        try:
            out.append(hypotheses.parse(text))
        except HypothesisError as exc:
            raise where.at(i, items).error(str(exc)) from None
    return tuple(out)


# -- small checked readers ------------------------------------------------------------------------


def _mapping(value: Any, where: Where, what: str = "") -> MarkedDict:
    if value is None:
        raise where.error(f"{what or 'a mapping'} is missing")
    if not isinstance(value, dict):
        raise where.error(f"expected a mapping, got {type(value).__name__}")
    return value if isinstance(value, MarkedDict) else MarkedDict(value)


def _known(spec: dict[str, Any], allowed: set[str], where: Where, hint: str = "") -> None:
    unknown = [k for k in spec if k not in allowed]
    if unknown:
        first = where.at(unknown[0], spec) if isinstance(spec, MarkedDict) else where
        raise first.error(
            f"unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed))} {hint}".rstrip()
        )


def _text(doc: MarkedDict, key: str, where: Where) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise where.at(key, doc).error("expected some text")
    return " ".join(value.split())


def _number(
    spec: MarkedDict,
    key: str,
    where: Where,
    default: float,
    *,
    whole: bool = False,
    low: float,
    high: float,
) -> float:
    value = spec.get(key, default)
    kind = int if whole else int | float
    if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
        what = "a whole number" if whole else "a number"
        raise where.at(key, spec).error(f"{what} from {low:g} to {high:g}, not {value!r}")
    return float(value)


def _seconds(spec: MarkedDict, key: str, where: Where, default: str | None) -> float:
    value = spec.get(key, default)
    if value is None:
        raise where.error(f"{key} is missing")
    try:
        return _duration(value, key) / 1000
    except TopologyError:
        raise where.at(key, spec).error(
            f"a duration like 500ms, 20s or 1m, not {value!r}"
        ) from None
