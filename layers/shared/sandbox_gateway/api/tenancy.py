"""Who is calling: the tenant comes from the authorizer's context only, never from the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox_gateway.models.tenant import QUOTAS_CONTEXT_KEY, quota_overrides_from_context


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    scopes: frozenset[str]
    key_id: str | None = None
    # The tenant's quota overrides as the authorizer read them (None: it sent none; read them).
    quota_overrides: dict[str, int] | None = None


def caller_of(event: Any) -> Caller | None:
    """The caller API Gateway's authorizer vouched for, or None when no authorizer ran.

    The Lambda authorizer sets `context.tenant_id` (and `scopes`, comma-separated); a JWT
    authorizer's claims may carry `tenant_id` (or Cognito's `custom:tenant_id`) and `scope`."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    context = authorizer.get("lambda") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    tenant = context.get("tenant_id") or claims.get("tenant_id") or claims.get("custom:tenant_id")
    if not tenant:
        return None
    scopes = context.get("scopes") if "scopes" in context else claims.get("scope", "")
    if isinstance(scopes, str):
        scopes = scopes.replace(" ", ",").split(",")
    return Caller(
        str(tenant),
        frozenset(s for s in scopes or () if s),
        context.get("key_id"),
        quota_overrides_from_context(context.get(QUOTAS_CONTEXT_KEY)),
    )
