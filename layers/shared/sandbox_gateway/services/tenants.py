"""Per-tenant quotas and usage, as the services see them: limits to check, counters to add."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import DomainError, QuotaExceeded
from sandbox_gateway.models.tenant import Quotas, TenantState, utc_day
from sandbox_gateway.observability import logger


class TenantRecords(Protocol):
    def tenant(self, tenant_id: str) -> TenantState: ...

    def add_usage(self, tenant_id: str, day: str, counters: dict[str, int]) -> None: ...


def default_quotas(settings: Settings) -> Quotas:
    """A tenant without overrides may use what the deployment allows anyone."""
    return Quotas(
        max_active_sessions=settings.quota_max_active_sessions,
        max_session_seconds=settings.session_timeout_max_seconds,
        max_execution_seconds=settings.execution_timeout_max_seconds,
        max_code_bytes=settings.max_code_bytes,
        max_file_bytes=settings.max_file_bytes,
    )


# The quota overrides someone already read for a tenant (the authorizer, for the request in
# progress), or None: then the ledger reads them.
VouchedOverrides = Callable[[str], dict[str, int] | None]


class TenantLedger:
    def __init__(
        self,
        records: TenantRecords,
        defaults: Quotas,
        clock: Callable[[], float] = time.time,
        vouched: VouchedOverrides | None = None,
    ) -> None:
        self._records = records
        self._defaults = defaults
        self._clock = clock
        self._vouched = vouched or (lambda tenant_id: None)

    def quotas(self, tenant_id: str) -> Quotas:
        """The tenant's quotas in force: from the authorizer's answer when it carried them (no
        read), else read from the tenant item. Never "no limits" for lack of an answer."""
        overrides = self._vouched(tenant_id)
        if overrides is not None:
            return self._defaults.with_overrides(overrides)
        return self.standing(tenant_id)[0]

    def standing(self, tenant_id: str) -> tuple[Quotas, int]:
        """The tenant's quotas in force and its live sessions now (one read of the tenant item)."""
        state = self._records.tenant(tenant_id)
        return self._defaults.with_overrides(state.quota_overrides), max(0, state.active_sessions)

    def record(self, tenant_id: str, **counters: int) -> None:
        """Add to today's usage. Never fails the request it counts: the work is already done."""
        try:
            self._records.add_usage(tenant_id, utc_day(self._clock()), counters)
        except DomainError:
            logger.warning("usage not recorded", extra={"counters": sorted(counters)})


def within(quota: str, value: int, limit: int, unit: str = "") -> None:
    """429 quota_exceeded naming the limit when `value` is over it (waiting would not help)."""
    if value > limit:
        raise QuotaExceeded(f"{value}{unit} is over this tenant's {quota} quota of {limit}{unit}")
