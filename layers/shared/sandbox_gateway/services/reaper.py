"""The reaper: ends expired sessions and frees their sandboxes on time, for every tenant.

Expiry is decided by the clock on every read, but a session nobody touches again would keep
its sandbox (and its bill) until the provider's own timer — or, for Docker, forever. The
reaper runs on a schedule (a scheduled Lambda function in the deployed stack; a thread in the
local stack) and, for each live session past its expiry:

1. re-reads it with a consistent read (the index it was found by is eventually consistent,
   and a keep-alive may have moved its expiry);
2. kills its sandbox (idempotent; a provider that cannot be reached leaves the session for
   the next run);
3. records `expired` with a conditional write (only a live session past its expiry).

An expired session can never come back (every write that extends one requires
`expires_at > now`), so killing after the re-read cannot hurt a live one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from sandbox_gateway.models.errors import DomainError, ProviderTimeout, ProviderUnavailable
from sandbox_gateway.models.session import TERMINAL_STATUSES, Session, SessionStatus
from sandbox_gateway.ports import SessionRepository
from sandbox_gateway.services.sessions import ProviderLookup

logger = Logger(child=True)

StillLive = Callable[[str, str], bool]
# A provider-specific sweep for sandboxes no session knows of (e.g. Docker containers by label):
# given "is this (tenant, session) still live?", removes the rest and returns how many.
OrphanSweep = Callable[[StillLive], int]


@dataclass(frozen=True)
class SweepReport:
    expired: int = 0  # sessions recorded as expired
    sandboxes_killed: int = 0
    retry_later: int = 0  # provider unreachable: left for the next run
    orphans_removed: int = 0
    batch_full: bool = False  # more may be waiting: the next run continues


class ReaperService:
    def __init__(
        self,
        repository: SessionRepository,
        providers: ProviderLookup,
        *,
        batch_size: int = 200,
        orphan_sweeps: Sequence[OrphanSweep] = (),
        orphan_budget_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._providers = providers
        self._batch_size = batch_size
        self._orphan_sweeps = tuple(orphan_sweeps)
        self._orphan_budget = orphan_budget_seconds
        self._clock = clock
        self._orphan_runner: ThreadPoolExecutor | None = None
        self._orphan_run: Future[int] | None = None

    def now(self) -> float:
        return self._clock()

    def sweep(self, deadline: float | None = None) -> SweepReport:
        """One run: at most `batch_size` sessions, stopping early at `deadline` (epoch seconds)."""
        now = int(self._clock())
        found = self._repository.list_expired(now, self._batch_size)
        expired = killed = retry_later = 0
        for candidate in found:
            if deadline is not None and self._clock() >= deadline:
                break
            outcome = self._reap(candidate, now)
            expired += outcome == "expired"
            killed += outcome == "expired" and candidate.sandbox_id is not None
            retry_later += outcome == "retry"
        orphans = self._sweep_orphans(deadline)
        report = SweepReport(expired, killed, retry_later, orphans, len(found) >= self._batch_size)
        if report.expired or report.retry_later or report.orphans_removed:
            logger.info("reaper sweep", extra=report.__dict__)
        return report

    def _sweep_orphans(self, deadline: float | None) -> int:
        """The provider sweeps, bounded in time: a wedged engine must not hold up the next run's
        sessions (a Docker engine can take a minute to answer for one stuck container)."""
        if not self._orphan_sweeps:
            return 0
        if self._orphan_run is not None and not self._orphan_run.done():
            logger.warning("the previous orphan sweep is still running; skipped")
            return 0
        budget = self._orphan_budget
        if deadline is not None:
            budget = min(budget, deadline - self._clock())
        if budget <= 0:
            return 0
        if self._orphan_runner is None:
            self._orphan_runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orphan-sweep")
        self._orphan_run = self._orphan_runner.submit(self._run_orphan_sweeps)
        try:
            return self._orphan_run.result(timeout=budget)
        except FutureTimeout:
            logger.warning("orphan sweep still running after its budget; left to finish in the background")
            return 0

    def _run_orphan_sweeps(self) -> int:
        removed = 0
        for orphan_sweep in self._orphan_sweeps:
            try:
                removed += orphan_sweep(self.session_still_live)
            except DomainError as exc:
                logger.warning("orphan sweep failed", extra={"error": exc.code})
        return removed

    def session_still_live(self, tenant_id: str, session_id: str) -> bool:
        """The session store is the truth for sandboxes whose labels cannot change."""
        try:
            session = self._repository.get(tenant_id, session_id)
        except DomainError:
            return True  # the store cannot say: keep the sandbox rather than kill a live session
        if session is None:
            return False
        return session.effective_status(int(self._clock())) in (SessionStatus.CREATING, SessionStatus.ACTIVE)

    def _reap(self, candidate: Session, now: int) -> str:
        current = self._repository.get(candidate.tenant_id, candidate.session_id)
        if current is None or current.status in TERMINAL_STATUSES or current.expires_at > now:
            return "skipped"  # ended, or kept alive, since the index saw it
        if current.sandbox_id is not None:
            try:
                self._providers(current.provider).kill(current.sandbox_id)
            except (ProviderUnavailable, ProviderTimeout) as exc:
                logger.warning("could not kill an expired session's sandbox", extra={"error": exc.code})
                return "retry"
            except DomainError as exc:
                # Nothing we can reach (e.g. a provider no longer enabled): the provider's own
                # timeout ends the sandbox; the session is recorded as expired all the same.
                logger.warning("expired session's sandbox not killed", extra={"error": exc.code})
        return "expired" if self._repository.expire(current, now) is not None else "skipped"
