"""The request context: who is calling, which request this is, and where its time goes.

Built once per request, around route resolution (api/resolver.py), so routes, error answers and
not-found answers all see the same context and every response carries its `Server-Timing`.
It fails closed: a route asking for the tenant of a request no authorizer vouched for gets 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sandbox_gateway.api.tenancy import Caller, caller_of
from sandbox_gateway.models.errors import Forbidden, Unauthorized
from sandbox_gateway.timing import Timings, request_timings


@dataclass(frozen=True)
class RequestContext:
    caller: Caller | None
    request_id: str | None
    timings: Timings

    def tenant_for(self, scope: str) -> str:
        """The caller's tenant, once its key is known to hold `scope` (each route group has one)."""
        if self.caller is None:
            raise Unauthorized("this route needs an API key: Authorization: Bearer <key>")
        if scope not in self.caller.scopes:
            raise Forbidden(f"this API key lacks the '{scope}' scope")
        return self.caller.tenant_id


_current: ContextVar[RequestContext | None] = ContextVar("sandbox_gateway_request", default=None)


@contextmanager
def request_scope(event: dict[str, Any]) -> Iterator[RequestContext]:
    request_context = event.get("requestContext") or {}
    with request_timings() as timings:
        context = RequestContext(caller_of(event), request_context.get("requestId"), timings)
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


def vouched_quota_overrides(tenant_id: str) -> dict[str, int] | None:
    """The quota overrides the authorizer sent with the request in progress, if it is `tenant_id`'s;
    None outside a request (the worker), or when the authorizer's answer carried none."""
    context = _current.get()
    if context is None or context.caller is None or context.caller.tenant_id != tenant_id:
        return None
    return context.caller.quota_overrides
