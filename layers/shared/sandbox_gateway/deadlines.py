"""The time by which work started for a request must have committed, or be abandoned.

An idempotent create holds its Idempotency-Key only for a while (Powertools' in-flight record
expires with the invocation, so a crash does not block the key for a day). Work that goes on
past that — the local gateway's worker keeps running after its 30 s cut; a provider call does
not always stop when asked — must not commit afterwards: by then a retry may have taken the key
over and started a sandbox of its own. The adapter that holds the key sets the deadline; the
service checks it before each step that cannot be undone cheaply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_commit_deadline: ContextVar[float | None] = ContextVar("commit_deadline", default=None)


@contextlib.contextmanager
def commit_deadline(epoch_seconds: float) -> Iterator[None]:
    """Work inside this block must commit before `epoch_seconds` or not at all."""
    token = _commit_deadline.set(epoch_seconds)
    try:
        yield
    finally:
        _commit_deadline.reset(token)


def commit_deadline_passed(now: float) -> bool:
    deadline = _commit_deadline.get()
    return deadline is not None and now >= deadline
