"""Waiting for something to become true, with a deadline: never a fixed sleep before an assert.

``wait_for(probe)`` calls ``probe`` until ``until(value)`` holds and returns that value; past the
deadline it fails the test with the last value seen. ``eventually`` is the same for a coroutine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def _truthy(value: object) -> bool:
    return bool(value)


def wait_for(
    probe: Callable[[], T],
    until: Callable[[T], bool] = _truthy,
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not hold within {within:g} s (last seen: {value!r:.500})")
        time.sleep(interval)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool] = _truthy,
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not hold within {within:g} s (last seen: {value!r:.500})")
        await asyncio.sleep(interval)
