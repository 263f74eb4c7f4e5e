"""Tenants: their API keys, their quotas and what they used."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from enum import StrEnum

KEY_PREFIX = "sgw_"
# What a key may be allowed to do; each route group needs its own scope.
SCOPES = ("sessions", "execute", "files", "usage")


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ApiKey:
    """A key as stored: never the secret itself, only its hash."""

    key_id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    status: KeyStatus
    created_at: int
    last_used_at: int | None = None


@dataclass(frozen=True)
class Quotas:
    """What one tenant may use at once or per request; defaults from settings, overrides per tenant."""

    max_active_sessions: int
    max_session_seconds: int
    max_execution_seconds: int
    max_code_bytes: int
    max_file_bytes: int

    def with_overrides(self, overrides: dict[str, int]) -> Quotas:
        known = {f.name for f in fields(self)}
        return Quotas(**{**vars(self), **{k: int(v) for k, v in overrides.items() if k in known}})


# The authorizer's context key for a tenant's quota overrides (a JSON object in a string: context
# values must be strings, numbers or booleans). Present, even as "{}", only when the authorizer read
# them; absent, a route reads them itself (docs/decisions/0011-round-trips.md).
QUOTAS_CONTEXT_KEY = "quotas"


def quota_overrides_to_context(overrides: dict[str, int]) -> str:
    return json.dumps({name: int(value) for name, value in overrides.items()}, sort_keys=True)


def quota_overrides_from_context(value: object) -> dict[str, int] | None:
    """The overrides an authorizer vouched for, or None when it sent none (or nothing usable):
    the caller then reads them, never assumes "no overrides"."""
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    overrides: dict[str, int] = {}
    for name, number in decoded.items():
        if not isinstance(number, int) or isinstance(number, bool):
            return None
        overrides[str(name)] = number
    return overrides


@dataclass(frozen=True)
class TenantState:
    quota_overrides: dict[str, int]
    active_sessions: int


USAGE_COUNTERS = ("sessions_created", "executions", "sandbox_seconds", "bytes_uploaded", "bytes_downloaded")


def utc_day(epoch_seconds: float) -> str:
    """The day usage is counted on: YYYY-MM-DD, UTC."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_seconds))


@dataclass(frozen=True)
class DailyUsage:
    tenant_id: str
    day: str  # YYYY-MM-DD, UTC
    counters: dict[str, int] = field(default_factory=dict)
