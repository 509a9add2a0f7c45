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


class _Deadline:
    def __init__(self, within: float, what: str) -> None:
        self.within, self.what = within, what
        self.at = time.monotonic() + within

    def check(self, value: object) -> None:
        """Fail the test once the deadline has passed, naming the last value seen."""
        if time.monotonic() > self.at:
            pytest.fail(f"{self.what} did not hold within {self.within:g} s (last: {value!r:.500})")


def wait_for(
    probe: Callable[[], T],
    until: Callable[[T], bool] = _truthy,
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    deadline = _Deadline(within, what)
    while not until(value := probe()):
        deadline.check(value)
        time.sleep(interval)
    return value


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool] = _truthy,
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    deadline = _Deadline(within, what)
    while not until(value := await probe()):
        deadline.check(value)
        await asyncio.sleep(interval)
    return value
