"""An execution as the service remembers it: every execute (sync or async, from HTTP, SQS or
EventBridge) gets one, so it can be fetched again, listed, replayed and reported."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def iso8601(epoch_seconds: float | None) -> str | None:
    """`2026-11-26T21:31:58.123Z` (UTC, milliseconds), or None: the API's and the events' times."""
    if epoch_seconds is None:
        return None
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ExecutionState(StrEnum):
    QUEUED = "queued"  # accepted, waiting for the worker
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # the code ran to the end without raising
    FAILED = "failed"  # the code raised or ran out of memory, or the gateway could not run it
    TIMED_OUT = "timed_out"  # the code was still running when its time ran out


TERMINAL_STATES = frozenset({ExecutionState.SUCCEEDED, ExecutionState.FAILED, ExecutionState.TIMED_OUT})


class ExecutionMode(StrEnum):
    SYNC = "sync"
    ASYNC = "async"


class ExecutionSource(StrEnum):
    API = "api"  # POST /api/e2b/execute
    SQS = "sqs"  # a message a producer sent to the queue itself
    EVENTS = "events"  # an ExecutionRequested event on the bus


def new_execution_id(now: float | None = None) -> str:
    """k-sortable like session ids: a session's executions list newest first by their sort key."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"exe_{millis:012x}{secrets.token_hex(8)}"


def execution_id_for_message(tenant_id: str, dedupe_key: str) -> str:
    """The id of a queued message's execution: the same for every delivery of that message.

    Keyed by tenant and dedupe key (the message's idempotency_key, else the event or message id),
    so a redelivery finds the execution the first delivery created instead of running it again.
    Not time-ordered like API ids: listings order by the record's `created_at` instead.
    """
    digest = hashlib.sha256(f"{tenant_id}\n{dedupe_key}".encode()).hexdigest()[:28]
    return f"exe_{digest}"


@dataclass(frozen=True)
class PendingRun:
    """What an async execution will run: kept with the record until the worker has run it."""

    code: str
    language: str | None
    timeout_seconds: int | None
    envs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """Why the gateway could not run an execution (an API error code and its message)."""

    code: str
    message: str


@dataclass(frozen=True)
class ExecutionRecord:
    execution_id: str
    tenant_id: str
    mode: ExecutionMode
    source: ExecutionSource
    state: ExecutionState
    created_at: float  # epoch seconds
    session_id: str | None = None  # None until a one-off session exists
    environment: str | None = None  # a one-off execution's environment
    language: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    callback_url: str | None = None
    # Once finished: the synchronous execute's response body, inline when it is small enough for
    # the table, else in the results store under `result_key`.
    result: dict[str, Any] | None = None
    result_key: str | None = None
    result_bytes: int | None = None
    failure: Failure | None = None
    pending: PendingRun | None = None  # the code to run, until the worker has run it
    pending_key: str | None = None  # ... or where it is in the results store when too large
    callback: dict[str, Any] | None = None  # delivery report: status, attempts, last_status_code

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def one_off(self) -> bool:
        return self.environment is not None
