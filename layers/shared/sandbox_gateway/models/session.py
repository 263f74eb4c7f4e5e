"""The session entity and its state machine."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sandbox_gateway.models.environment import Provider


class SessionStatus(StrEnum):
    CREATING = "creating"
    ACTIVE = "active"
    CLOSED = "closed"
    EXPIRED = "expired"
    FAILED = "failed"


TERMINAL_STATUSES = frozenset({SessionStatus.CLOSED, SessionStatus.EXPIRED, SessionStatus.FAILED})


def new_session_id(now: float | None = None) -> str:
    """A k-sortable id: 12 hex digits of milliseconds, then 16 random hex digits.

    Sorting the DynamoDB sort key by it lists a tenant's sessions newest first without an index.
    """
    millis = int((time.time() if now is None else now) * 1000)
    return f"ses_{millis:012x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Session:
    session_id: str
    tenant_id: str
    agent: str
    environment: str
    provider: Provider
    status: SessionStatus
    created_at: int  # epoch seconds
    expires_at: int  # epoch seconds; also the DynamoDB TTL attribute
    updated_at: int
    sandbox_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    failure_reason: str | None = None
    closed_at: int | None = None
    # The provider's sealed means to reach the sandbox without its control plane (ports.CreatedSandbox).
    sandbox_access: str | None = field(default=None, repr=False)

    def effective_status(self, now: int) -> SessionStatus:
        """Expiry is decided by the clock, not by DynamoDB's TTL sweep, which runs late."""
        if self.status not in TERMINAL_STATUSES and self.expires_at <= now:
            return SessionStatus.EXPIRED
        return self.status

    def as_seen_at(self, now: int) -> Session:
        status = self.effective_status(now)
        return self if status == self.status else replace(self, status=status)
