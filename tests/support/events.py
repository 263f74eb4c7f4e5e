"""The events/ files, as `sam local invoke -e` uses them, with a real session id patched in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox_gateway.models.tenant import QUOTAS_CONTEXT_KEY, SCOPES, quota_overrides_to_context

EVENTS = Path(__file__).resolve().parents[2] / "events"
PLACEHOLDER_SESSION_ID = "ses_0000000000000000000000000000"


def load_event(name: str, session_id: str | None = None, **body_overrides: Any) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    if session_id is not None:
        text = text.replace(PLACEHOLDER_SESSION_ID, session_id)
    event = json.loads(text)
    if body_overrides:
        body = json.loads(event.get("body") or "{}")
        body.update(body_overrides)
        event["body"] = json.dumps(body)
    return event


def with_tenant(event: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """As a Lambda authorizer would set it."""
    event["requestContext"]["authorizer"] = {
        "lambda": {"tenant_id": tenant_id, "key_id": "0123456789ab", "scopes": ",".join(SCOPES)}
    }
    return event


def with_authorized_quotas(event: dict[str, Any], overrides: dict[str, int]) -> dict[str, Any]:
    """As today's authorizer answers: the tenant's quota overrides travel with it (the events/
    files carry none, like an older cached answer: the routes then read them)."""
    event["requestContext"]["authorizer"]["lambda"][QUOTAS_CONTEXT_KEY] = quota_overrides_to_context(
        overrides
    )
    return event
