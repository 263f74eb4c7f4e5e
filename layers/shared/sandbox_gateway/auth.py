"""The Lambda authorizer's decision: `Authorization: Bearer <key>` → the key's tenant and scopes.

API Gateway caches each answer by the Authorization header for the authorizer's TTL, so a revoked
key stops working within that TTL (template.yaml: AuthorizerCacheSeconds)."""

from __future__ import annotations

from typing import Any, Protocol

from sandbox_gateway.models.tenant import ApiKey

DENY: dict[str, Any] = {"isAuthorized": False}


class KeyLookup(Protocol):
    def find_key(self, key: str) -> ApiKey | None: ...

    def touch_key(self, key: ApiKey, now: int) -> None: ...


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
    return {
        "isAuthorized": True,
        # Context values must be strings, numbers or booleans: scopes travel comma-separated.
        "context": {"tenant_id": key.tenant_id, "key_id": key.key_id, "scopes": ",".join(key.scopes)},
    }
