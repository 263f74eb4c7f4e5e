"""Who is calling: the tenant comes from the authorizer's context, never from the request body."""

from __future__ import annotations

from typing import Any


def tenant_of(event: Any, default_tenant: str) -> str:
    """Tenant id set by a Lambda authorizer (`context.tenant_id`) or a JWT claim; else the default."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    lambda_context = authorizer.get("lambda") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    tenant = lambda_context.get("tenant_id") or claims.get("tenant_id") or claims.get("custom:tenant_id")
    return str(tenant) if tenant else default_tenant
