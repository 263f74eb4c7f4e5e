"""Running code in a session: one execution at a time per session, bounded in time and size."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sandbox_gateway.catalogue import resolve_language
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.errors import InvalidRequest, PayloadTooLarge, ProviderError, SessionBusy
from sandbox_gateway.models.execution import CodeRun, ExecutionOutcome
from sandbox_gateway.models.execution_record import ExecutionRecord
from sandbox_gateway.models.session import Session
from sandbox_gateway.ports import ExecutionFinisher, FinishedExecution, SessionRepository
from sandbox_gateway.services.output_budget import fit_outcome
from sandbox_gateway.services.sessions import SessionService
from sandbox_gateway.services.tenants import TenantLedger, within


@dataclass(frozen=True)
class ExecutionBudget:
    """How long an execution may run and how much output it may return: a synchronous one must
    answer inside API Gateway's 30 s and Lambda's 6 MB; the async worker has minutes and S3."""

    max_timeout_seconds: int
    max_output_bytes: int
    mode: str = "sync"


@dataclass(frozen=True)
class ExecutionReport:
    session: Session
    language: Language
    outcome: ExecutionOutcome
    duration_ms: float
    # The run's record, when `execute` wrote it (with its `record_as` and a finisher).
    record: ExecutionRecord | None = None


# Builds the record of a run that has finished (a synchronous execute keeps one).
RecordOf = Callable[[ExecutionReport], ExecutionRecord]


class ExecutionService:
    def __init__(
        self,
        sessions: SessionService,
        repository: SessionRepository,
        settings: Settings,
        ledger: TenantLedger | None = None,
        finisher: ExecutionFinisher | None = None,
    ) -> None:
        self._ledger = ledger
        self._finisher = finisher
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
        budget: ExecutionBudget | None = None,
        record_as: RecordOf | None = None,
    ) -> ExecutionReport:
        """Run code under the session's lease. With `record_as`, the run's record is written with
        the lease's release and the usage, in one write where the store can
        (docs/decisions/0011-round-trips.md)."""
        started = time.perf_counter()
        budget = budget or self.sync_budget()
        default_timeout = self.check_request(tenant_id, code, timeout_seconds, budget)
        timeout = timeout_seconds or default_timeout
        lease_id = secrets.token_hex(8)
        now = self._sessions.now()
        # Two executions interleaving in one kernel would corrupt each other's state. The write
        # that takes the lease also returns the session: a warm execute reads nothing first.
        lease_until = now + timeout + self._settings.execution_lease_seconds
        session = self._leases.lease(tenant_id, session_id, lease_id, lease_until, now)
        if session is None:
            self._sessions.require_usable(tenant_id, session_id)  # 404, 410 or 409 not ready: why
            raise SessionBusy(
                f"session '{session_id}' is running another execution; retry when it finishes",
                retry_after_seconds=1,
            )
        try:
            usable = self._sessions.usable(session)
            run = CodeRun(
                code=code,
                language=resolve_language(language, usable.environment),
                timeout_seconds=timeout,
                envs=dict(envs),
            )
            try:
                outcome = usable.provider.execute(usable.ref, run)
            except ProviderError as failure:
                # A DELETE that cut the run short is a 410 session_closed, not the provider's error.
                self._sessions.provider_failed(usable, failure)
            outcome = fit_outcome(outcome, budget.max_output_bytes)
            duration_ms = (time.perf_counter() - started) * 1000
            report = ExecutionReport(session, run.language, outcome, duration_ms)
            record = record_as(report) if record_as is not None and self._finisher is not None else None
        except BaseException:
            self._leases.release_lease(session, lease_id)  # nothing to count or record: it did not run
            raise
        return self._finish(report, lease_id, now, record)

    def _finish(
        self, report: ExecutionReport, lease_id: str, now: int, record: ExecutionRecord | None
    ) -> ExecutionReport:
        """Give the lease back and count the run; with its record, all in one finisher's write."""
        session = report.session
        if record is None or self._finisher is None:
            self._leases.release_lease(session, lease_id)
            if self._ledger is not None:
                self._ledger.record(session.tenant_id, executions=1)
            return report
        finished = FinishedExecution(session, lease_id, now, {"executions": 1}, record)
        if not self._finisher.finish(finished):
            raise InvalidRequest("execution id collision; retry")  # 2^64 random ids: never in practice
        return replace(report, record=record)

    def sync_budget(self) -> ExecutionBudget:
        return ExecutionBudget(
            self._settings.execution_timeout_max_seconds, self._settings.max_response_bytes, "sync"
        )

    def async_budget(self) -> ExecutionBudget:
        return ExecutionBudget(
            self._settings.async_execution_timeout_max_seconds, self._settings.async_result_max_bytes, "async"
        )

    def check_timeout(self, timeout_seconds: int | None, budget: ExecutionBudget) -> None:
        longest = budget.max_timeout_seconds
        if timeout_seconds is None or timeout_seconds <= longest:
            return
        if budget.mode == "sync":
            # The answer must reach the caller before API Gateway cuts the request at 30 s.
            raise InvalidRequest(
                f"timeout_seconds must be at most {longest} for a synchronous execute; "
                f'send "mode": "async" to run for up to '
                f"{self._settings.async_execution_timeout_max_seconds} s"
            )
        raise InvalidRequest(f"timeout_seconds must be at most {longest} for an async execute")

    def check_request(
        self, tenant_id: str, code: str, timeout_seconds: int | None, budget: ExecutionBudget
    ) -> int:
        """Refuse code or a timeout over the deployment's or the tenant's limits (before anything
        runs or is queued); returns the timeout a caller naming none gets."""
        size = len(code.encode("utf-8", errors="surrogatepass"))
        if size > self._settings.max_code_bytes:
            raise PayloadTooLarge(f"code is larger than {self._settings.max_code_bytes} bytes")
        self.check_timeout(timeout_seconds, budget)
        default_timeout = self._settings.execution_timeout_default_seconds
        if self._ledger is None:
            return default_timeout
        quotas = self._ledger.quotas(tenant_id)
        within("max_code_bytes", size, quotas.max_code_bytes, " B")
        if budget.mode == "sync":
            # The tenant's execution-time quota bounds synchronous runs; async ones are bounded by
            # the worker's timeout (docs/decisions/0007-async-executions.md).
            default_timeout = min(default_timeout, quotas.max_execution_seconds)
            if timeout_seconds is not None:
                within("max_execution_seconds", timeout_seconds, quotas.max_execution_seconds, " s")
        return default_timeout
