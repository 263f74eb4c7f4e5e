"""Running code in a session: one execution at a time per session, bounded in time and size."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sandbox_gateway.catalogue import resolve_language
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.errors import InvalidRequest, PayloadTooLarge, ProviderError, SessionBusy
from sandbox_gateway.models.execution import CodeRun, ExecutionOutcome
from sandbox_gateway.models.session import Session
from sandbox_gateway.ports import SessionRepository
from sandbox_gateway.services.output_budget import fit_outcome
from sandbox_gateway.services.sessions import SessionService
from sandbox_gateway.services.tenants import TenantLedger, within


@dataclass(frozen=True)
class ExecutionReport:
    session: Session
    language: Language
    outcome: ExecutionOutcome
    duration_ms: float


class ExecutionService:
    def __init__(
        self,
        sessions: SessionService,
        repository: SessionRepository,
        settings: Settings,
        ledger: TenantLedger | None = None,
    ) -> None:
        self._ledger = ledger
        self._sessions = sessions
        self._leases = repository
        self._settings = settings

    def execute(
        self,
        tenant_id: str,
        session_id: str,
        *,
        code: str,
        language: str | None,
        timeout_seconds: int | None,
        envs: dict[str, str],
    ) -> ExecutionReport:
        started = time.perf_counter()
        if len(code.encode("utf-8", errors="surrogatepass")) > self._settings.max_code_bytes:
            raise PayloadTooLarge(f"code is larger than {self._settings.max_code_bytes} bytes")
        longest = self._settings.execution_timeout_max_seconds
        if timeout_seconds is not None and timeout_seconds > longest:
            # The answer must reach the caller before API Gateway cuts the request at 30 s.
            raise InvalidRequest(f"timeout_seconds must be at most {longest}")
        default_timeout = self._settings.execution_timeout_default_seconds
        if self._ledger is not None:
            quotas = self._ledger.quotas(tenant_id)
            # A caller naming no timeout gets the default held to its tenant's ceiling.
            default_timeout = min(default_timeout, quotas.max_execution_seconds)
            within(
                "max_code_bytes",
                len(code.encode("utf-8", errors="surrogatepass")),
                quotas.max_code_bytes,
                " B",
            )
            if timeout_seconds is not None:
                within("max_execution_seconds", timeout_seconds, quotas.max_execution_seconds, " s")
        usable = self._sessions.require_usable(tenant_id, session_id)
        run = CodeRun(
            code=code,
            language=resolve_language(language, usable.environment),
            timeout_seconds=timeout_seconds or default_timeout,
            envs=dict(envs),
        )
        lease_id = secrets.token_hex(8)
        now = self._sessions.now()
        # Two executions interleaving in one kernel would corrupt each other's state.
        lease_until = now + run.timeout_seconds + self._settings.execution_lease_seconds
        if not self._leases.acquire_lease(usable.session, lease_id, lease_until, now):
            self._sessions.require_usable(tenant_id, session_id)  # raises if it ended meanwhile
            raise SessionBusy(
                f"session '{session_id}' is running another execution; retry when it finishes",
                retry_after_seconds=1,
            )
        try:
            outcome = usable.provider.execute(usable.ref, run)
        except ProviderError as failure:
            # A DELETE that cut the run short is a 410 session_closed, not the provider's error.
            self._sessions.provider_failed(usable, failure)
        finally:
            self._leases.release_lease(usable.session, lease_id)
        outcome = fit_outcome(outcome, self._settings.max_response_bytes)
        if self._ledger is not None:
            self._ledger.record(tenant_id, executions=1)
        duration_ms = (time.perf_counter() - started) * 1000
        return ExecutionReport(usable.session, run.language, outcome, duration_ms)
