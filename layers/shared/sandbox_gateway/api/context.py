"""The request context: who is calling, which request this is, and where its time goes.

Built once per request, around route resolution (api/resolver.py), so routes, error answers and
not-found answers all see the same context and every response carries its `Server-Timing`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sandbox_gateway.api.tenancy import tenant_of
from sandbox_gateway.timing import Timings, request_timings


@dataclass(frozen=True)
class RequestContext:
    tenant_id: str
    request_id: str | None
    timings: Timings


_current: ContextVar[RequestContext | None] = ContextVar("sandbox_gateway_request", default=None)


@contextmanager
def request_scope(event: dict[str, Any], default_tenant: str) -> Iterator[RequestContext]:
    request_context = event.get("requestContext") or {}
    with request_timings() as timings:
        context = RequestContext(
            tenant_id=tenant_of(event, default_tenant),
            request_id=request_context.get("requestId"),
            timings=timings,
        )
        token = _current.set(context)
        try:
            yield context
        finally:
            _current.reset(token)


def current_request() -> RequestContext:
    context = _current.get()
    if context is None:
        raise RuntimeError("no request in progress: routes run inside request_scope()")
    return context
