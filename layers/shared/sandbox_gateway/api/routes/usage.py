"""/api/usage: what the caller's tenant used, day by day, with its quotas."""

# No `from __future__ import annotations`: Powertools reads the real annotations to validate.

import time
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from sandbox_gateway import wiring
from sandbox_gateway.api.context import current_request
from sandbox_gateway.api.openapi import responses
from sandbox_gateway.models import errors
from sandbox_gateway.models.api import QuotasResponse, UsageDayResponse, UsageResponse

router = Router()
SCOPE = "usage"  # what a key needs for these routes
DEFAULT_DAYS = 30
MAX_DAYS = 366
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, UTC")]


@router.get(
    "/api/usage",
    summary="The caller's tenant: usage per day, live sessions and quotas",
    tags=["usage"],
    responses=responses(HTTPStatus.OK, "Usage, newest day last", errors.InvalidRequest),
)
def get_usage(since: Day = None, until: Day = None) -> UsageResponse:
    tenant = current_request().tenant_for(SCOPE)
    last = _day(until) if until else datetime.fromtimestamp(time.time(), UTC).date()
    first = _day(since) if since else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last or (last - first).days >= MAX_DAYS:
        raise errors.InvalidRequest(f"since must not be after until, and at most {MAX_DAYS} days before it")
    days = wiring.tenant_store().usage(tenant, first.isoformat(), last.isoformat())
    quotas, active_sessions = wiring.tenant_ledger().standing(tenant)
    return UsageResponse(
        tenant_id=tenant,
        active_sessions=active_sessions,
        quotas=QuotasResponse(**vars(quotas)),
        days=[UsageDayResponse(day=d.day, **d.counters) for d in days],
    )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise errors.InvalidRequest(f"'{text}' is not a date (YYYY-MM-DD)") from exc
