"""Tenants: their API keys, their quotas and what they used."""

from __future__ import annotations

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
