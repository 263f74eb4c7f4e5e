"""Session lifecycle: create, read, list, keep alive, close, and the checks every other route needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NoReturn

from aws_lambda_powertools import Logger

from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import Settings
from sandbox_gateway.deadlines import commit_deadline_passed
from sandbox_gateway.models.environment import Environment, Provider
from sandbox_gateway.models.errors import (
    DomainError,
    InvalidRequest,
    ProviderError,
    ProviderTimeout,
    SandboxGone,
    SessionClosed,
    SessionExpired,
    SessionFailed,
    SessionNotFound,
    SessionNotReady,
)
from sandbox_gateway.models.session import TERMINAL_STATUSES, Session, SessionStatus, new_session_id
from sandbox_gateway.models.tenant import Quotas
from sandbox_gateway.ports import SandboxProvider, SandboxRef, SandboxSpec, SessionPage, SessionRepository
from sandbox_gateway.services.pool import WarmPool
from sandbox_gateway.services.tenants import TenantLedger, within

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
        *,
        ledger: TenantLedger | None = None,
        pool: WarmPool | None = None,
    ) -> None:
        self._ledger = ledger  # None: no per-tenant quotas (the deployment's limits still hold)
        self._pool = pool  # None: every create boots its sandbox
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
        quotas = self._ledger.quotas(tenant_id) if self._ledger else None
        lifetime = self._lifetime(timeout_seconds, env, quotas)
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
        spec = SandboxSpec(
            session_id=session.session_id,
            tenant_id=tenant_id,
            environment=env,
            timeout_seconds=lifetime,
            envs=dict(envs),
            metadata=dict(metadata),
            expires_at=session.expires_at,
        )
        max_active = quotas.max_active_sessions if quotas else None
        pooled = self._start_pooled(session, spec, max_active)
        if pooled is not None:
            return pooled
        # The item exists before the sandbox does, so a crash in between leaves a trace
        # (a `creating` session that the reaper can find) rather than an orphan sandbox.
        self._repository.put_new(session, max_active)
        self._abandon_if_too_late(session, None, None)
        sandbox_provider = self._providers(env.provider)
        try:
            created = sandbox_provider.create(spec)
        except DomainError as exc:
            self._mark_failed_quietly(session, exc.code)
            raise
        sandbox_id = created.sandbox_id
        self._abandon_if_too_late(session, sandbox_provider, sandbox_id)
        try:
            activated = self._repository.activate(session, sandbox_id, self.now(), created.access)
        except Exception:
            self._kill_quietly(sandbox_provider, sandbox_id)
            raise
        if activated is None:
            self._ended_while_starting(session, sandbox_provider, sandbox_id)
        return activated

    def _start_pooled(self, session: Session, spec: SandboxSpec, max_active: int | None) -> Session | None:
        """With a pooled sandbox: one write makes the session, already active with that sandbox,
        counts it, and takes the sandbox out of the pool (the pool's entry was its trace until
        then); then the sandbox is bound. None: no pooled sandbox, the caller boots one."""
        offer = self._pool.offer(spec) if self._pool is not None else None
        if offer is None:
            return None
        provider, entries = offer
        for entry in entries:
            bound = provider.bound_as(entry, spec)
            active = replace(
                session,
                status=SessionStatus.ACTIVE,
                sandbox_id=bound.sandbox_id,
                sandbox_access=bound.access,
            )
            if not self._repository.put_new(active, max_active, claiming=entry):
                continue  # another create took this one
            # Until bound, the sandbox answers to its pooled id.
            self._abandon_if_too_late(active, provider, entry.sandbox_id)
            try:
                provider.bind(entry, spec)
            except DomainError as exc:
                logger.warning("a pooled sandbox could not be bound", extra={"error": exc.code})
                self._kill_quietly(provider, entry.sandbox_id)
                return self._with_another_sandbox(active, spec)
            return active
        return None

    def _with_another_sandbox(self, active: Session, spec: SandboxSpec) -> Session:
        """The session's pooled sandbox could not be bound (it died in the pool): the next pooled
        one, else a new one, replaces it."""
        provider = self._providers(active.provider)
        created = self._pool.claim(spec) if self._pool is not None else None
        if created is None:
            try:
                created = provider.create(spec)
            except DomainError as exc:
                self._mark_failed_quietly(active, exc.code)
                raise
        try:
            replaced = self._repository.replace_sandbox(active, created, self.now())
        except Exception:
            self._kill_quietly(provider, created.sandbox_id)
            raise
        if replaced is None:
            self._ended_while_starting(active, provider, created.sandbox_id)
        return replaced

    def _ended_while_starting(self, session: Session, provider: SandboxProvider, sandbox_id: str) -> NoReturn:
        """The session ended while its sandbox was starting (a DELETE, or its expiry)."""
        self._kill_quietly(provider, sandbox_id)
        current = self._repository.get(session.tenant_id, session.session_id)
        if current is not None and current.status in TERMINAL_STATUSES:
            raise _gone_error(current)
        self._mark_failed_quietly(session, "expired_during_create")
        raise SessionExpired("the session expired while its sandbox was starting")

    def _abandon_if_too_late(
        self, session: Session, provider: SandboxProvider | None, sandbox_id: str | None
    ) -> None:
        """Past the commit deadline a retry may own the Idempotency-Key: undo, never commit."""
        if not commit_deadline_passed(self._clock()):
            return
        if provider is not None and sandbox_id is not None:
            self._kill_quietly(provider, sandbox_id)
        self._mark_failed_quietly(session, "create_deadline_passed")
        raise ProviderTimeout("the sandbox took too long to start; retry with the same Idempotency-Key")

    def _lifetime(self, requested: int | None, env: Environment, quotas: Quotas | None = None) -> int:
        """The lifetime to give: the deployment's and environment's ceiling is a 400, the tenant's
        quota a 429; a caller naming none gets the default held to the tenant's ceiling."""
        ceiling = min(self._settings.session_timeout_max_seconds, env.max_session_seconds or 10**9)
        lifetime = requested if requested is not None else self._settings.session_timeout_default_seconds
        if requested is None and quotas is not None:
            lifetime = min(lifetime, quotas.max_session_seconds)
        if lifetime > ceiling:
            raise InvalidRequest(f"timeout_seconds must be at most {ceiling} for environment {env.name}")
        if quotas is not None:
            within("max_session_seconds", lifetime, quotas.max_session_seconds, " s")
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
        return self.usable(stored)

    def usable(self, stored: Session) -> UsableSession:
        """The means to reach an active session's sandbox (no read: the caller has the session)."""
        assert stored.sandbox_id is not None  # active sessions always have one
        env = self._catalogue.get(stored.environment)
        ref = SandboxRef(
            sandbox_id=stored.sandbox_id,
            session_id=stored.session_id,
            environment=env,
            expires_at=stored.expires_at,
            access=stored.sandbox_access,
        )
        return UsableSession(stored, env, self._providers(stored.provider), ref)

    # --- change ------------------------------------------------------------------------
    def keep_alive(self, tenant_id: str, session_id: str, timeout_seconds: int | None) -> Session:
        usable = self.require_usable(tenant_id, session_id)
        quotas = self._ledger.quotas(tenant_id) if self._ledger else None
        extension = self._lifetime(timeout_seconds, usable.environment, quotas)
        now = self.now()
        # The sandbox first: if its provider refuses, the stored expiry still tells the truth.
        try:
            usable.provider.extend(usable.ref, extension)
        except ProviderError as failure:
            self.provider_failed(usable, failure)
        extended = self._repository.extend(usable.session, now + extension, now)
        if extended is None:
            raise _gone_error(self.get(tenant_id, session_id))
        return extended

    def close(self, tenant_id: str, session_id: str) -> Session:
        """End the session, then kill its sandbox. Closing an ended session changes nothing.

        DELETE wins every race: the stored status says `closed` before the sandbox goes, so a
        keep-alive or execute that finds the sandbox gone (or its provider call cut short) reads
        why and answers 410 `session_closed` instead of failing the session.
        """
        stored = self._repository.get(tenant_id, session_id)
        if stored is None:
            raise SessionNotFound(f"session '{session_id}' not found")
        ended: Session | None = None
        if stored.status in (SessionStatus.CREATING, SessionStatus.ACTIVE):
            ended = self._repository.close(stored, self.now())
        if stored.sandbox_id is not None:
            # Killing is idempotent, so a repeated DELETE also sweeps a sandbox left by a crash.
            self._providers(stored.provider).kill(stored.sandbox_id)
        return ended if ended is not None else self.get(tenant_id, session_id)

    def provider_failed(self, usable: UsableSession, error: ProviderError) -> NoReturn:
        """A provider call for a usable session failed: say why, in the caller's terms.

        If the session ended meanwhile (DELETE, expiry), that is the answer (410 with its final
        status), whatever the provider said about the sandbox that vanished under the call. If it
        is still live and the sandbox is gone, the provider lost it behind our back: the session
        fails. Any other provider error goes to the caller as it is.
        """
        session = usable.session
        current = self._repository.get(session.tenant_id, session.session_id)
        now = self.now()
        if current is not None and current.effective_status(now) in TERMINAL_STATUSES:
            raise _gone_error(current.as_seen_at(now)) from error
        if isinstance(error, SandboxGone):
            logger.warning("sandbox gone", extra={"sandbox_id": usable.ref.sandbox_id, "reason": error.code})
            if self._repository.mark_failed(session, error.code, now) is None:
                # It ended between our read and our write: the ending wins.
                latest = self._repository.get(session.tenant_id, session.session_id)
                if latest is not None and latest.status in TERMINAL_STATUSES:
                    raise _gone_error(latest) from error
        raise error

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
