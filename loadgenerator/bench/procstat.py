"""CPU and memory of processes, read from ``/proc`` (Linux).

CPU: ``utime + stime`` of ``/proc/<pid>/stat`` (all the process's threads), in clock ticks.
Taken before and after a window, CPU seconds over wall seconds is the vCPU the process used
(1.0 = one core busy all the time). Memory: ``VmRSS`` (resident now) and ``VmHWM`` (its peak)
of ``/proc/<pid>/status``, and ``Pss`` of ``/proc/<pid>/smaps_rollup`` (resident memory with
each shared page divided among the processes that share it, so PSS adds up honestly).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat_ticks(text: str) -> int:
    """``utime + stime`` (clock ticks) of one ``/proc/<pid>/stat`` line.

    The command name (field 2) sits in parentheses and may itself hold spaces or parentheses,
    so fields are counted after the last ``)``: state is field 3, utime 14, stime 15.
    """
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])


def cpu_seconds(pid: int | str, proc: Path = PROC) -> float | None:
    """CPU seconds a process has used so far; ``None`` when it is gone."""
    try:
        return parse_stat_ticks((proc / str(pid) / "stat").read_text()) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def parse_status_kb(text: str, field: str) -> int | None:
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status`` or ``smaps_rollup``."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == field:
            parts = value.split()
            return int(parts[0]) if parts else None
    return None


def memory(pid: int | str, proc: Path = PROC) -> dict[str, int]:
    """``rss``, ``hwm`` (peak RSS) and ``pss`` in bytes; fields that cannot be read are left out."""
    out: dict[str, int] = {}
    base = proc / str(pid)
    try:
        status = (base / "status").read_text()
    except OSError:
        return out
    for key, field in (("rss", "VmRSS"), ("hwm", "VmHWM")):
        kb = parse_status_kb(status, field)
        if kb is not None:
            out[key] = kb * 1024
    try:
        pss = parse_status_kb((base / "smaps_rollup").read_text(), "Pss")
    except OSError:
        pss = None
    if pss is not None:
        out["pss"] = pss * 1024
    return out


def sample_cpu(pids: Mapping[str, int], proc: Path = PROC) -> dict[str, float]:
    """CPU seconds so far of each named process (the gone are left out)."""
    out = {}
    for name, pid in pids.items():
        seconds = cpu_seconds(pid, proc)
        if seconds is not None:
            out[name] = seconds
    return out


def parse_system_ticks(text: str) -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs from ``/proc/stat``'s first line.

    Busy is everything but idle and iowait; steal is counted as busy (the core was not ours).
    """
    first = text.splitlines()[0].split()
    if first[0] != "cpu":
        raise ValueError("not a /proc/stat")
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    # guest time is already counted in user and nice
    total = sum(values[:8])
    return total - idle, total


def system_busy_seconds(proc: Path = PROC) -> float | None:
    """CPU seconds all cores have been busy since boot (every process, ours or not)."""
    try:
        busy, _ = parse_system_ticks((proc / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    return busy / CLK_TCK


def vcpu(
    before: Mapping[str, float], after: Mapping[str, float], wall_s: float
) -> dict[str, float]:
    """vCPU of each process over a window: CPU seconds used divided by wall seconds."""
    if wall_s <= 0:
        raise ValueError("a window lasts more than no time")
    return {
        name: max(0.0, (after[name] - before[name]) / wall_s) for name in before if name in after
    }


def per_1000_rps(vcpu_used: float, rps: float) -> float | None:
    """vCPU per 1000 requests per second (Istio's unit); ``None`` without requests."""
    if rps <= 0:
        return None
    return vcpu_used / (rps / 1000)
