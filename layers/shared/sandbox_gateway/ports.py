"""The interfaces the services depend on. Adapters implement them; fakes in tests do too."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Protocol

from sandbox_gateway.models.environment import Environment
from sandbox_gateway.models.execution import CodeRun, ExecutionOutcome
from sandbox_gateway.models.execution_record import ExecutionRecord
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
    # When the session ends (epoch seconds), if the caller knows: a bound pooled sandbox is named
    # after it, and must be named the same before and after binding.
    expires_at: int | None = None


@dataclass(frozen=True)
class CreatedSandbox:
    """A started sandbox: its id, and what reaches it again without the provider's control plane."""

    sandbox_id: str
    # Sealed by the provider (an access token is inside): opaque to everyone else, stored with
    # the session. None when the provider needs nothing but the id.
    access: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SandboxRef:
    """How a provider finds a session's sandbox again in a later, stateless invocation."""

    sandbox_id: str
    session_id: str
    environment: Environment
    expires_at: int
    access: str | None = field(default=None, repr=False)  # CreatedSandbox.access, as stored


class SandboxProvider(Protocol):
    """A sandbox backend (E2B, Docker). Raises only domain errors (models/errors.py)."""

    def create(self, spec: SandboxSpec) -> CreatedSandbox:
        """Start a sandbox whose working directory is the workspace."""
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


class PoolingProvider(SandboxProvider, Protocol):
    """A provider whose sandboxes can be booted ahead of time and bound to a session later (the
    warm pool, docs/decisions/0010-warm-pool.md)."""

    def boot(self, environment: Environment, timeout_seconds: int) -> CreatedSandbox:
        """A sandbox as `create` leaves it (workspace ready, kernel warm), bound to no session."""
        ...

    def bound_as(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        """What `bind` will return, without binding: the session's record names its sandbox in
        the same write that claims it from the pool, before the bind."""
        ...

    def bind(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        """Make a booted sandbox the session's: its lifetime from now; its access is kept.
        Returns `bound_as(pooled, spec)`."""
        ...


@dataclass(frozen=True)
class PooledSandbox:
    """A booted sandbox waiting in the warm pool of its environment."""

    environment: str
    sandbox_id: str
    booted_at: float  # epoch seconds
    expires_at: int  # when its provider ends it if nobody claims it
    access: str | None = field(default=None, repr=False)


class SandboxPool(Protocol):
    """The warm pool's entries. A claim is atomic: two claims never get one sandbox."""

    def add(self, entry: PooledSandbox) -> None: ...

    def entries(self, environment: str) -> builtins.list[PooledSandbox]: ...

    def candidates(self, environment: str) -> builtins.list[PooledSandbox]:
        """A few claimable entries, oldest first (none about to end); taking one is the caller's
        conditional write (SessionRepository.put_new's `claiming`)."""
        ...

    def claim(self, environment: str) -> PooledSandbox | None:
        """Take the oldest entry out of the pool, or None when it is empty."""
        ...

    def remove(self, entry: PooledSandbox) -> bool:
        """Take this entry out (to retire it); False when a claim took it first."""
        ...


@dataclass(frozen=True)
class SessionPage:
    sessions: list[Session]
    next_token: str | None


class SessionRepository(Protocol):
    """Session metadata. Every state change is conditional; a failed condition returns None/False."""

    def put_new(
        self,
        session: Session,
        max_active_sessions: int | None = None,
        claiming: PooledSandbox | None = None,
    ) -> bool:
        """Write a new session, counted against its tenant's live sessions (QuotaExceeded over the
        limit). With `claiming`, the session is already bound to that pooled sandbox and the same
        write takes it out of the pool: False (nothing written) when another create took it first."""

    def replace_sandbox(self, session: Session, sandbox: CreatedSandbox, now: int) -> Session | None:
        """An active session's sandbox, still the one it was written with, becomes `sandbox` (its
        pooled one could not be bound); None when the session moved on meanwhile."""

    def get(self, tenant_id: str, session_id: str) -> Session | None: ...

    def list(self, tenant_id: str, limit: int, page_token: str | None) -> SessionPage: ...

    def activate(
        self, session: Session, sandbox_id: str, now: int, sandbox_access: str | None = None
    ) -> Session | None:
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

    def acquire_lease(self, session: Session, lease_id: str, until: int, now: int) -> Session | None: ...

    def lease(self, tenant_id: str, session_id: str, lease_id: str, until: int, now: int) -> Session | None:
        """Take the lease of an active, unexpired, free session in one write; the leased session."""
        ...

    def release_lease(self, session: Session, lease_id: str) -> None: ...


# --- executions (docs/decisions/0007-async-executions.md) -------------------------------------
@dataclass(frozen=True)
class ExecutionPage:
    executions: list[ExecutionRecord]
    next_token: str | None


class Sealer(Protocol):
    """Encrypts a secret to be stored (a sandbox's access token), bound to a context: a sealed value
    opens only with the context it was sealed with, so it cannot be moved to another item."""

    def seal(self, plaintext: bytes, context: dict[str, str]) -> str: ...

    def open(self, sealed: str, context: dict[str, str]) -> bytes: ...


class ExecutionStore(Protocol):
    """Execution records. Every state change is conditional; a failed condition returns None."""

    def put_new(self, record: ExecutionRecord) -> bool:
        """Write a new record; False when one with its id exists already (a redelivered message)."""
        ...

    def get(self, tenant_id: str, execution_id: str) -> ExecutionRecord | None: ...

    def list_for_session(
        self, tenant_id: str, session_id: str, limit: int, page_token: str | None
    ) -> ExecutionPage:
        """Newest first."""
        ...

    def start(
        self, record: ExecutionRecord, now: float, session_id: str | None = None
    ) -> ExecutionRecord | None:
        """queued → running (and the one-off session's id, once it exists)."""
        ...

    def finish(self, record: ExecutionRecord, finished: ExecutionRecord) -> ExecutionRecord | None:
        """queued|running → a terminal state with its result or failure; drops the pending run."""
        ...

    def record_callback(self, record: ExecutionRecord, report: dict[str, object]) -> None: ...


@dataclass(frozen=True)
class FinishedExecution:
    """What a synchronous execute writes once its code has run: the lease it gives back, the
    usage it adds to its tenant's day, and its record."""

    session: Session
    lease_id: str
    now: int  # epoch seconds: the usage is counted on this day (UTC)
    usage: dict[str, int]
    record: ExecutionRecord


class ExecutionFinisher(Protocol):
    def finish(self, finished: FinishedExecution) -> bool:
        """Release the lease, add the usage and put the record (in one round trip where the store
        can). The usage and the record are written even when the lease was lost meanwhile, and
        nothing twice. False: a record with this id exists already (nothing of it was written)."""
        ...


class ResultStore(Protocol):
    """Bodies too large for a table item (results, and the code of large async requests)."""

    def put(self, key: str, body: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def url(self, key: str) -> tuple[str, int]:
        """A presigned GET URL for `key` and when it expires (epoch seconds)."""
        ...


class ExecutionQueue(Protocol):
    def enqueue(self, execution_id: str, tenant_id: str) -> None:
        """Ask the worker to run a queued execution (its record holds everything else; the tenant
        only finds the record, written by the API, so a forged one finds nothing)."""
        ...


class ExecutionEvents(Protocol):
    def finished(self, record: ExecutionRecord) -> None:
        """Publish ExecutionCompleted or ExecutionFailed for a finished execution."""
        ...


@dataclass(frozen=True)
class CallbackReport:
    status: str  # "delivered" | "failed" | "refused" (the URL's address is not allowed)
    attempts: int
    last_status_code: int | None = None
    detail: str | None = None


class CallbackSender(Protocol):
    def deliver(self, url: str, body: bytes, secret: str, execution_id: str) -> CallbackReport: ...


class CallbackSecrets(Protocol):
    def secret(self, tenant_id: str) -> str:
        """The tenant's signing secret, created on first use."""
        ...

    def rotate(self, tenant_id: str) -> str: ...
