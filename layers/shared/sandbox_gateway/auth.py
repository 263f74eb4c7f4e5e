"""The Lambda authorizer's decision: `Authorization: Bearer <key>` → the key's tenant, its scopes and
the tenant's quota overrides.

API Gateway caches each answer by the Authorization header for the authorizer's TTL, so a revoked
key stops working, and a quota change takes effect, within that TTL (template.yaml:
AuthorizerCacheSeconds). The quotas travel in the answer so that an execute, create or upload
reads none itself (docs/decisions/0011-round-trips.md)."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.models.tenant import QUOTAS_CONTEXT_KEY, ApiKey, quota_overrides_to_context

DENY: dict[str, Any] = {"isAuthorized": False}


class KeyLookup(Protocol):
    def find_key(self, key: str) -> ApiKey | None: ...

    def touch_key(self, key: ApiKey, now: int) -> None: ...

    def quota_overrides(self, tenant_id: str) -> dict[str, int]: ...


def authorize(event: dict[str, Any], keys: KeyLookup, now: int) -> dict[str, Any]:
    """A simple (payload 2.0) authorizer response: allowed with the tenant in its context, or denied."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    scheme, _, token = str(headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return DENY
    key = keys.find_key(token.strip())
    if key is None:
        return DENY
    keys.touch_key(key, now)
    # Context values must be strings, numbers or booleans: scopes travel comma-separated.
    context: dict[str, Any] = {
        "tenant_id": key.tenant_id,
        "key_id": key.key_id,
        "scopes": ",".join(key.scopes),
    }
    # No quotas in the answer when they cannot be read: each route reads them itself (never "no limits").
    with contextlib.suppress(StorageUnavailable):
        context[QUOTAS_CONTEXT_KEY] = quota_overrides_to_context(keys.quota_overrides(key.tenant_id))
    return {"isAuthorized": True, "context": context}
