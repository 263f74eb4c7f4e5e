"""The interfaces the services depend on. Adapters implement them; fakes in tests do too."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Protocol

from sandbox_gateway.models.environment import Environment
from sandbox_gateway.models.execution import CodeRun, ExecutionOutcome
from sandbox_gateway.models.files import FileEntry
from sandbox_gateway.models.session import Session


@dataclass(frozen=True)
class SandboxSpec:
    """What a provider needs to start a sandbox for one session."""

    session_id: str
    tenant_id: str
    environment: Environment
    timeout_seconds: int
    envs: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxRef:
    """How a provider finds a session's sandbox again in a later, stateless invocation."""

    sandbox_id: str
    session_id: str
    environment: Environment
    expires_at: int


class SandboxProvider(Protocol):
    """A sandbox backend (E2B, Docker). Raises only domain errors (models/errors.py)."""

    def create(self, spec: SandboxSpec) -> str:
        """Start a sandbox whose working directory is the workspace; return its id."""
        ...

    def execute(self, ref: SandboxRef, run: CodeRun) -> ExecutionOutcome: ...

    def list_files(self, ref: SandboxRef, directory: str) -> list[FileEntry]: ...

    def read_file(self, ref: SandboxRef, path: str, max_bytes: int) -> bytes: ...

    def write_file(self, ref: SandboxRef, path: str, data: bytes) -> FileEntry: ...

    def delete_file(self, ref: SandboxRef, path: str) -> None: ...

    def extend(self, ref: SandboxRef, timeout_seconds: int) -> None: ...

    def kill(self, sandbox_id: str) -> None:
        """Stop the sandbox and free everything it holds. Killing a gone sandbox is not an error."""
        ...


@dataclass(frozen=True)
class SessionPage:
    sessions: list[Session]
    next_token: str | None


class SessionRepository(Protocol):
    """Session metadata. Every state change is conditional; a failed condition returns None/False."""

    def put_new(self, session: Session, max_active_sessions: int | None = None) -> None:
        """Write a new session, counted against its tenant's live sessions (QuotaExceeded over the limit)."""

    def get(self, tenant_id: str, session_id: str) -> Session | None: ...

    def list(self, tenant_id: str, limit: int, page_token: str | None) -> SessionPage: ...

    def activate(self, session: Session, sandbox_id: str, now: int) -> Session | None:
        """creating → active, only while unexpired."""
        ...

    def mark_failed(self, session: Session, reason: str, now: int) -> Session | None:
        """creating|active → failed."""
        ...

    def close(self, session: Session, now: int) -> Session | None:
        """creating|active → closed while unexpired, → expired once past expiry."""
        ...

    def extend(self, session: Session, expires_at: int, now: int) -> Session | None:
        """Move expires_at forward, only while active and unexpired."""
        ...

    def expire(self, session: Session, now: int) -> Session | None:
        """creating|active → expired, only once past expiry."""
        ...

    def list_expired(self, now: int, limit: int) -> builtins.list[Session]:
        """Live (creating|active) sessions of every tenant whose expiry has passed, at most `limit`."""
        ...

    def acquire_lease(self, session: Session, lease_id: str, until: int, now: int) -> bool: ...

    def release_lease(self, session: Session, lease_id: str) -> None: ...
