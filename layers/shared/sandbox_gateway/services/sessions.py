"""Session lifecycle: create, read, list, keep alive, close, and the checks every other route needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger

from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import Environment, Provider
from sandbox_gateway.models.errors import (
    DomainError,
    InvalidRequest,
    SandboxGone,
    SessionClosed,
    SessionExpired,
    SessionFailed,
    SessionNotFound,
    SessionNotReady,
)
from sandbox_gateway.models.session import Session, SessionStatus, new_session_id
from sandbox_gateway.ports import SandboxProvider, SandboxRef, SandboxSpec, SessionPage, SessionRepository

logger = Logger(child=True)

ProviderLookup = Callable[[Provider], SandboxProvider]


@dataclass(frozen=True)
class UsableSession:
    """A session that may be used right now, with the means to reach its sandbox."""

    session: Session
    environment: Environment
    provider: SandboxProvider
    ref: SandboxRef


class SessionService:
    def __init__(
        self,
        repository: SessionRepository,
        providers: ProviderLookup,
        catalogue: EnvironmentCatalogue,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._providers = providers
        self._catalogue = catalogue
        self._settings = settings
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    # --- create ------------------------------------------------------------------------
    def create(
        self,
        tenant_id: str,
        *,
        agent: str,
        environment: str,
        provider: str | None,
        timeout_seconds: int | None,
        metadata: dict[str, str],
        envs: dict[str, str],
    ) -> Session:
        env = self._catalogue.resolve(environment, provider)
        lifetime = self._lifetime(timeout_seconds, env)
        now = self.now()
        session = Session(
            session_id=new_session_id(self._clock()),
            tenant_id=tenant_id,
            agent=agent,
            environment=env.name,
            provider=env.provider,
            status=SessionStatus.CREATING,
            created_at=now,
            updated_at=now,
            expires_at=now + lifetime,
            metadata=dict(metadata),
        )
        # The item exists before the sandbox does, so a crash in between leaves a trace
        # (a `creating` session that the reaper can find) rather than an orphan sandbox.
        self._repository.put_new(session)
        sandbox_provider = self._providers(env.provider)
        spec = SandboxSpec(
            session_id=session.session_id,
            tenant_id=tenant_id,
            environment=env,
            timeout_seconds=lifetime,
            envs=dict(envs),
            metadata=dict(metadata),
        )
        try:
            sandbox_id = sandbox_provider.create(spec)
        except DomainError as exc:
            self._mark_failed_quietly(session, exc.code)
            raise
        try:
            activated = self._repository.activate(session, sandbox_id, self.now())
        except Exception:
            self._kill_quietly(sandbox_provider, sandbox_id)
            raise
        if activated is None:
            # Only possible if the session expired while its sandbox was starting.
            self._kill_quietly(sandbox_provider, sandbox_id)
            self._mark_failed_quietly(session, "expired_during_create")
            raise SessionExpired("the session expired while its sandbox was starting")
        return activated

    def _lifetime(self, requested: int | None, env: Environment) -> int:
        ceiling = min(self._settings.session_timeout_max_seconds, env.max_session_seconds or 10**9)
        lifetime = requested if requested is not None else self._settings.session_timeout_default_seconds
        if lifetime > ceiling:
            raise InvalidRequest(f"timeout_seconds must be at most {ceiling} for environment {env.name}")
        return lifetime

    # --- read --------------------------------------------------------------------------
    def get(self, tenant_id: str, session_id: str) -> Session:
        session = self._repository.get(tenant_id, session_id)
        if session is None:
            # Another tenant's session answers exactly like a missing one.
            raise SessionNotFound(f"session '{session_id}' not found")
        return session.as_seen_at(self.now())

    def list(self, tenant_id: str, limit: int, page_token: str | None) -> SessionPage:
        page = self._repository.list(tenant_id, limit, page_token)
        now = self.now()
        return SessionPage([s.as_seen_at(now) for s in page.sessions], page.next_token)

    def require_usable(self, tenant_id: str, session_id: str) -> UsableSession:
        """The session if it can run code or move files now; else the error that says why not."""
        stored = self._repository.get(tenant_id, session_id)
        if stored is None:
            raise SessionNotFound(f"session '{session_id}' not found")
        status = stored.effective_status(self.now())
        if status == SessionStatus.EXPIRED and stored.status != SessionStatus.EXPIRED:
            self._retire_expired(stored)
        _raise_unless_active(stored, status)
        assert stored.sandbox_id is not None  # active sessions always have one
        env = self._catalogue.get(stored.environment)
        ref = SandboxRef(
            sandbox_id=stored.sandbox_id,
            session_id=stored.session_id,
            environment=env,
            expires_at=stored.expires_at,
        )
        return UsableSession(stored, env, self._providers(stored.provider), ref)

    # --- change ------------------------------------------------------------------------
    def keep_alive(self, tenant_id: str, session_id: str, timeout_seconds: int | None) -> Session:
        usable = self.require_usable(tenant_id, session_id)
        extension = self._lifetime(timeout_seconds, usable.environment)
        now = self.now()
        # The sandbox first: if its provider refuses, the stored expiry still tells the truth.
        try:
            usable.provider.extend(usable.ref, extension)
        except SandboxGone as gone:
            self.report_sandbox_gone(usable, gone)
            raise
        extended = self._repository.extend(usable.session, now + extension, now)
        if extended is None:
            raise _gone_error(self.get(tenant_id, session_id))
        return extended

    def close(self, tenant_id: str, session_id: str) -> Session:
        """Kill the sandbox and end the session. Closing an ended session changes nothing."""
        stored = self._repository.get(tenant_id, session_id)
        if stored is None:
            raise SessionNotFound(f"session '{session_id}' not found")
        if stored.sandbox_id is not None:
            # Killing is idempotent, so a repeated DELETE also sweeps a sandbox left by a crash.
            self._providers(stored.provider).kill(stored.sandbox_id)
        if stored.status in (SessionStatus.CREATING, SessionStatus.ACTIVE):
            closed = self._repository.close(stored, self.now())
            if closed is not None:
                return closed
        return self.get(tenant_id, session_id)

    def report_sandbox_gone(self, usable: UsableSession, error: SandboxGone) -> None:
        """The provider lost the sandbox behind our back: the session cannot come back."""
        logger.warning("sandbox gone", extra={"sandbox_id": usable.ref.sandbox_id, "reason": error.code})
        self._repository.mark_failed(usable.session, error.code, self.now())

    def _retire_expired(self, session: Session) -> None:
        """Record the expiry and free the sandbox now rather than waiting for the provider's clock."""
        self._repository.close(session, self.now())
        if session.sandbox_id is not None:
            self._kill_quietly(self._providers(session.provider), session.sandbox_id)

    def _mark_failed_quietly(self, session: Session, reason: str) -> None:
        # Called while another error is on its way to the caller: that error must win.
        try:
            self._repository.mark_failed(session, reason, self.now())
        except Exception:
            logger.exception("could not mark session failed", extra={"reason": reason})

    @staticmethod
    def _kill_quietly(provider: SandboxProvider, sandbox_id: str) -> None:
        try:
            provider.kill(sandbox_id)
        except DomainError:
            # The provider's own timeout (the session lifetime) still ends the sandbox.
            logger.exception("could not kill sandbox", extra={"sandbox_id": sandbox_id})


def _raise_unless_active(session: Session, status: SessionStatus) -> None:
    if status == SessionStatus.ACTIVE:
        return
    if status == SessionStatus.CREATING:
        raise SessionNotReady(f"session '{session.session_id}' is still being created", retry_after_seconds=1)
    raise _gone_error(replace(session, status=status))


def _gone_error(session: Session) -> DomainError:
    sid = session.session_id
    if session.status == SessionStatus.ACTIVE:
        return SessionNotReady(f"session '{sid}' changed while the request ran; retry", retry_after_seconds=1)
    if session.status == SessionStatus.EXPIRED:
        return SessionExpired(f"session '{sid}' has expired")
    if session.status == SessionStatus.CLOSED:
        return SessionClosed(f"session '{sid}' is closed")
    reason = f" ({session.failure_reason})" if session.failure_reason else ""
    return SessionFailed(f"session '{sid}' failed{reason}; create a new session")
