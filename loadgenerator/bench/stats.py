"""Pure numbers: percentiles, latency summaries, rate ladders and the verdict of a step."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import LoadResult, Step

# The percentiles every latency summary carries (p0 is the minimum, p100 the maximum).
SPECTRUM = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linearly interpolated between
    the closest ranks (numpy's default method). ``nan`` for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {q}")
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(latencies_ms: Iterable[float]) -> dict[str, float]:
    """count, min, mean, the spectrum's percentiles and max of exact latencies (ms)."""
    ordered = sorted(latencies_ms)
    out: dict[str, float] = {"count": len(ordered)}
    if not ordered:
        return out
    out["min"] = ordered[0]
    out["mean"] = sum(ordered) / len(ordered)
    for q in SPECTRUM:
        out[pkey(q)] = percentile(ordered, q)
    out["max"] = ordered[-1]
    return out


def pkey(q: float) -> str:
    """The summary key of a percentile: ``p50``, ``p99``, ``p99.9``."""
    return f"p{q:g}"


def nice(rate: float) -> float:
    """A rate rounded to two significant figures (so ladders read 25, 35, 50, 71, 100...)."""
    if rate <= 0:
        raise ValueError("a rate is positive")
    digits = 1 - math.floor(math.log10(rate))
    return float(round(rate, digits))


def ladder(start: float, stop: float, factor: float) -> list[float]:
    """A geometric ladder of rates from ``start`` up to ``stop`` (inclusive when reached)."""
    if start <= 0 or stop < start:
        raise ValueError("a ladder runs from a positive start up to a stop no lower")
    if factor <= 1:
        raise ValueError("a ladder's factor is above 1")
    rates: list[float] = []
    k = 0
    while True:
        rate = nice(start * factor**k)
        if rate > stop * (1 + 1e-9):
            break
        if not rates or rate > rates[-1]:
            rates.append(rate)
        k += 1
    return rates


def parse_rates(text: str) -> list[float]:
    """``"50,100,200"`` (or ``"25:800:2"``, a ladder from 25 to 800 by factors of 2)."""
    text = text.strip()
    if text.count(":") == 2:
        start, stop, factor = (float(part) for part in text.split(":"))
        return ladder(start, stop, factor)
    rates = sorted({float(part) for part in text.replace(" ", "").split(",") if part})
    if not rates or rates[0] <= 0:
        raise ValueError(f"{text!r} is not a list of positive rates")
    return rates


def verdict(result: LoadResult, p99_bound_ms: float, min_ratio: float = 0.95) -> str | None:
    """Why a fixed-rate step was not sustained, or ``None`` when it was: p99 within the bound,
    at least ``min_ratio`` of the target rate achieved, and no errors, drops or timeouts."""
    target = result.rate
    achieved = result.achieved_rps
    failures = result.errors_total + result.dropped
    p99 = result.latency_ms.get("p99", math.inf)
    if failures:
        return f"{failures} failed or dropped"
    if achieved < min_ratio * target:
        return f"achieved {achieved:.1f}/s < {min_ratio:.0%} of {target:g}/s"
    if p99 > p99_bound_ms:
        return f"p99 {p99:.0f} ms > {p99_bound_ms:g} ms"
    return None


@dataclass(kw_only=True)
class MaxSustained:
    """The highest sustained rate of one ladder (None: even the lowest failed); ``bounded`` is
    false when no step failed (the real maximum is higher than anything tried)."""

    rate: float | None
    bounded: bool
    first_failure: float | None


def max_sustained(steps: Iterable[Step]) -> MaxSustained:
    """The highest sustained rate of one ladder, read in rate order: the last rate that passed
    before the first that failed."""
    best: float | None = None
    for step in sorted(steps, key=lambda s: s.rate):
        if step.failed_because:
            return MaxSustained(rate=best, bounded=True, first_failure=step.rate)
        best = step.rate
    return MaxSustained(rate=best, bounded=False, first_failure=None)


def added(mesh: dict[str, float], direct: dict[str, float], hops: float) -> dict[str, float]:
    """What the mesh adds to each percentile, in total and per hop (ms)."""
    out: dict[str, float] = {}
    for key in ("p50", "p90", "p99"):
        if key in mesh and key in direct:
            out[key] = mesh[key] - direct[key]
            out[f"{key}_per_hop"] = out[key] / hops if hops else math.nan
    return out


def median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 50)
