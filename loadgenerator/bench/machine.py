"""What machine the numbers come from: cores, memory, CPU model, kernel and versions."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from . import procstat
from .model import Machine

REPO = Path(__file__).resolve().parents[2]


def _first(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1).strip() if found else None


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def envoy_version(binary: str | None) -> str | None:
    """``1.40.0`` from ``envoy --version`` (``... version: <sha>/1.40.0/Clean/RELEASE/...``)."""
    if not binary:
        return None
    return _first(r"version: [0-9a-f]+/([^/\s]+)/", _run([binary, "--version"]))


def redis_version() -> str | None:
    binary = shutil.which("redis-server")
    return _first(r"v=(\S+)", _run([binary, "--version"])) if binary else None


def git_commit(repo: Path = REPO) -> str | None:
    """The checked-out commit, read from ``.git`` (no git process is run)."""
    git = repo / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head or None
    ref = head[5:]
    try:
        return (git / ref).read_text().strip()
    except OSError:
        pass
    try:
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        pass
    return None


def memory_total_bytes(meminfo: str) -> int | None:
    kb = procstat.parse_status_kb(meminfo, "MemTotal")
    return kb * 1024 if kb is not None else None


def load_average() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(envoy_binary: str | None) -> Machine:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        meminfo = ""
    return Machine(
        cores=os.cpu_count(),
        memory_bytes=memory_total_bytes(meminfo),
        cpu_model=_first(r"^model name\s*:\s*(.+)$", cpuinfo),
        kernel=platform.release(),
        os=platform.platform(),
        python=platform.python_version(),
        python_implementation=platform.python_implementation(),
        envoy=envoy_version(envoy_binary),
        redis=redis_version(),
        aiohttp=_version("aiohttp"),
        opentelemetry_sdk=_version("opentelemetry-sdk"),
        git_commit=git_commit(),
        load_average_at_start=load_average(),
        executable=sys.executable,
    )


def one_line(machine: Machine) -> str:
    """``2 cores (Intel Xeon ...), 23.5 GiB, Linux 6.1, Python 3.11.2, Envoy 1.40.0, Redis 7.0``"""
    mem = machine.memory_bytes
    parts = [
        f"{machine.cores} cores ({machine.cpu_model or 'unknown CPU'})",
        f"{mem / 2**30:.1f} GiB" if mem else "unknown memory",
        f"Linux {machine.kernel}",
        f"Python {machine.python}",
        f"Envoy {machine.envoy or '?'}",
        f"Redis {machine.redis or '?'}",
    ]
    return ", ".join(parts)
