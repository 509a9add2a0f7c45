"""The hypotheses' small, closed vocabulary: ``<metric> <cmp> <threshold> during <phase>``, or
``<metric> <cmp> <threshold> after recovery`` for the books.

Metrics:
- the shoppers, per group (``shoppers`` = every API request; ``products``, ``cart``,
  ``checkout``, ``orders``, ``auth``; ``pages`` = the shop-pages prober): ``p50``, ``p95``,
  ``p99`` (a duration: ``2s``, ``800ms``), ``error rate`` (a share: ``1%``), ``requests`` and
  ``errors`` (counts). Example: ``checkout p95 < 2s during fault``.
- Envoy's counters for the experiment's destination: ``faults injected``, ``aborts injected``,
  ``delays injected`` (its sidecars' fault filters), ``retries``, ``timeouts``, ``ejections``,
  ``overflows`` (its callers' clusters for it). Example: ``retries > 0 during fault``.
- the books, read once the load has stopped: ``held reservations`` (stock reservations of this
  run still held) and ``unmatched charges`` (a charge without its paid order, or a paid order
  without its charge). Example: ``held reservations == 0 after recovery``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

PHASES = ("steady", "fault", "recovery")
AFTER = "after recovery"
GROUPS = ("shoppers", "products", "cart", "checkout", "orders", "auth", "pages")
LATENCY = ("p50", "p95", "p99")
SHOPPER_STATS = (*LATENCY, "error rate", "requests", "errors")
ENVOY = (
    "faults injected",
    "aborts injected",
    "delays injected",
    "retries",
    "timeouts",
    "ejections",
    "overflows",
)
BOOKS = ("held reservations", "unmatched charges")
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_SHAPE = re.compile(
    r"^(?P<metric>[a-z][a-z0-9 ]*?)\s*(?P<cmp><=|>=|==|<|>)\s*(?P<threshold>\S+)\s+"
    r"(?P<when>during\s+\S+|after\s+\S+)$"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


class HypothesisError(ValueError):
    """A hypothesis outside the vocabulary; the message says what is allowed."""


@dataclass(frozen=True)
class Hypothesis:
    text: str
    metric: str  # "checkout p95", "retries", "held reservations"
    cmp: str
    threshold: float  # milliseconds, a share in percent, or a count
    when: str  # a phase name, or "after recovery"

    @property
    def kind(self) -> str:
        """``latency`` (ms), ``share`` (%), or ``count``."""
        last = self.metric.split(" ", 1)[-1]
        if last in LATENCY:
            return "latency"
        return "share" if self.metric.endswith("error rate") else "count"

    @property
    def source(self) -> str:
        """Where it is measured: ``shoppers``, ``envoy`` or ``books``."""
        if self.metric in ENVOY:
            return "envoy"
        return "books" if self.metric in BOOKS else "shoppers"

    def holds(self, value: float | None) -> bool:
        """Judged on a measured value; nothing measured never holds."""
        return value is not None and COMPARE[self.cmp](value, self.threshold)

    def show(self, value: float | None) -> str:
        if value is None:
            return "nothing measured"
        if self.kind == "latency":
            return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
        if self.kind == "share":
            return f"{value:.2f}%"
        return f"{value:g}"


def parse(text: str) -> Hypothesis:
    shape = _SHAPE.match(" ".join(str(text).split()))
    if not shape:
        raise HypothesisError(
            f"{text!r} is not '<metric> <cmp> <threshold> during <phase>' "
            f"(or '... after recovery'); e.g. 'checkout p95 < 2s during fault'"
        )
    metric, cmp, raw, when = shape["metric"], shape["cmp"], shape["threshold"], shape["when"]
    known = _metrics()
    if metric not in known:
        raise HypothesisError(
            f"unknown metric {metric!r}; known: '<group> <stat>' with groups {', '.join(GROUPS)} "
            f"and stats {', '.join(SHOPPER_STATS)}; or {', '.join(ENVOY + BOOKS)}"
        )
    hyp = Hypothesis(text, metric, cmp, 0.0, _when(when, metric))
    return Hypothesis(text, metric, cmp, _threshold(raw, hyp.kind, metric), hyp.when)


def _metrics() -> set[str]:
    return {f"{g} {s}" for g in GROUPS for s in SHOPPER_STATS} | set(ENVOY) | set(BOOKS)


def _when(when: str, metric: str) -> str:
    word, _, phase = when.partition(" ")
    phase = phase.strip()
    if metric in BOOKS:
        if when != AFTER:
            raise HypothesisError(f"the books ({metric}) are read once, so write '{AFTER}'")
        return AFTER
    if word == "after":
        raise HypothesisError(
            f"'{when}': only the books are read after recovery; write 'during <phase>' "
            f"({', '.join(PHASES)})"
        )
    if phase not in PHASES:
        raise HypothesisError(f"unknown phase {phase!r}; the phases are {', '.join(PHASES)}")
    return phase


def _threshold(raw: str, kind: str, metric: str) -> float:
    if kind == "latency":
        m = _DURATION.match(raw)
        if not m:
            raise HypothesisError(f"{metric}: the threshold is a duration like 2s or 800ms")
        return float(m.group(1)) * (1000 if m.group(2) == "s" else 1)
    if kind == "share":
        m = _PERCENT.match(raw)
        if not m or float(m.group(1)) > 100:
            raise HypothesisError(f"{metric}: the threshold is a share like 1% or 0.5%")
        return float(m.group(1))
    if not raw.isdigit():
        raise HypothesisError(f"{metric}: the threshold is a whole number like 0 or 10")
    return float(raw)
