"""Quotas from the authorizer's answer (docs/decisions/0011-round-trips.md): parsed strictly, used
without a read when present, and read when absent or unusable: never "no limits"."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_gateway.api.context import request_scope, vouched_quota_overrides
from sandbox_gateway.api.tenancy import caller_of
from sandbox_gateway.config import Settings
from sandbox_gateway.models.tenant import TenantState, quota_overrides_from_context
from sandbox_gateway.services.tenants import TenantLedger, default_quotas


class CountingRecords:
    def __init__(self, overrides: dict[str, int]) -> None:
        self.overrides = overrides
        self.reads = 0

    def tenant(self, tenant_id: str) -> TenantState:
        self.reads += 1
        return TenantState(dict(self.overrides), 0)

    def add_usage(self, tenant_id: str, day: str, counters: dict[str, int]) -> None:
        raise AssertionError("not counted here")


def event(context: dict[str, Any]) -> dict[str, Any]:
    return {"requestContext": {"requestId": "r", "authorizer": {"lambda": context}}}


@pytest.mark.parametrize(
    "value",
    [
        None,
        5,
        "",
        "not json",
        "[1]",
        '"{}"',
        '{"max_code_bytes": "10"}',
        '{"max_code_bytes": true}',
        '{"a": 1.5}',
    ],
)
def test_an_unusable_value_is_no_quotas(value: object) -> None:
    assert quota_overrides_from_context(value) is None


def test_a_usable_value_is_the_overrides() -> None:
    assert quota_overrides_from_context("{}") == {}
    assert quota_overrides_from_context('{"max_code_bytes": 10}') == {"max_code_bytes": 10}


def test_the_caller_carries_what_the_authorizer_sent() -> None:
    with_quotas = caller_of(event({"tenant_id": "t", "scopes": "execute", "quotas": '{"max_code_bytes": 1}'}))
    without = caller_of(event({"tenant_id": "t", "scopes": "execute"}))

    assert with_quotas is not None and with_quotas.quota_overrides == {"max_code_bytes": 1}
    assert without is not None and without.quota_overrides is None


def test_the_ledger_uses_the_answers_quotas_without_a_read_and_reads_without_them() -> None:
    records = CountingRecords({"max_code_bytes": 99})
    ledger = TenantLedger(records, default_quotas(Settings()), vouched=vouched_quota_overrides)

    with request_scope(event({"tenant_id": "t", "scopes": "execute", "quotas": '{"max_code_bytes": 5}'})):
        assert ledger.quotas("t").max_code_bytes == 5
        assert records.reads == 0
        # Another tenant's quotas are never taken from this request's answer.
        assert ledger.quotas("other").max_code_bytes == 99
        assert records.reads == 1
    with request_scope(event({"tenant_id": "t", "scopes": "execute"})):
        assert ledger.quotas("t").max_code_bytes == 99  # the stored override, not "no limits"
    assert ledger.quotas("t").max_code_bytes == 99  # no request: the worker reads
    assert records.reads == 3
