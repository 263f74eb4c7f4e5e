"""Where a request's time went: named durations, summed per request, sent as `Server-Timing`.

The request scope (api/context.py) starts a `Timings`; the store and sandbox adapters are wrapped
(wiring.py) so every DynamoDB call and provider call adds to it. Outside a request (the reaper,
tests calling services directly) measuring is a no-op.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

STORE = "store"  # DynamoDB
SANDBOX = "sandbox"  # the sandbox provider (E2B, Docker)
TOTAL = "total"
REPORTED = (TOTAL, STORE, SANDBOX)

_current: ContextVar[Timings | None] = ContextVar("sandbox_gateway_timings", default=None)
T = TypeVar("T")


class Timings:
    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._spent: dict[str, float] = {}
        self._lock = threading.Lock()  # a service may fan work out to threads

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._spent[name] = self._spent.get(name, 0.0) + seconds

    def milliseconds(self, name: str) -> float:
        if name == TOTAL:
            return (time.perf_counter() - self._started) * 1000
        return self._spent.get(name, 0.0) * 1000

    def header(self) -> str:
        """`total;dur=12.3, store;dur=4.1, sandbox;dur=0.0`: every name always present."""
        return ", ".join(f"{name};dur={self.milliseconds(name):.1f}" for name in REPORTED)


@contextmanager
def request_timings() -> Iterator[Timings]:
    timings = Timings()
    token = _current.set(timings)
    try:
        yield timings
    finally:
        _current.reset(token)


def current_timings() -> Timings | None:
    return _current.get()


@contextmanager
def measure(name: str) -> Iterator[None]:
    timings = _current.get()
    if timings is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        timings.add(name, time.perf_counter() - started)


class Timed:
    """Wraps an object so each of its method calls is measured under `name`."""

    def __init__(self, target: object, name: str) -> None:
        self._target = target
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._target, attribute)
        if not callable(value):
            return value
        return _measured(value, self._name)


def _measured(function: Callable[..., T], name: str) -> Callable[..., T]:
    def call(*args: Any, **kwargs: Any) -> T:
        with measure(name):
            return function(*args, **kwargs)

    return call


def time_dynamodb_calls(client: Any) -> None:
    """Count every DynamoDB API call of a boto3 client (retries included) as store time."""
    events = client.meta.events

    def started(context: dict[str, Any], **_: Any) -> None:
        context["sgw_started"] = time.perf_counter()

    def finished(context: dict[str, Any], **_: Any) -> None:
        began = context.pop("sgw_started", None)
        timings = _current.get()
        if began is not None and timings is not None:
            timings.add(STORE, time.perf_counter() - began)

    events.register("before-call.dynamodb", started, unique_id="sgw-store-started")
    events.register("after-call.dynamodb", finished, unique_id="sgw-store-finished")
    events.register("after-call-error.dynamodb", finished, unique_id="sgw-store-failed")
