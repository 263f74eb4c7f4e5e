"""The Python client and `sgw usage` with tenant keys against the local stack: usage counters after
a known flow, and the typed errors for a missing, unknown or under-scoped key and an exceeded quota."""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway_client import Gateway, Usage
from sandbox_gateway_client.cli import EXIT_API_ERROR, EXIT_OK, app
from sandbox_gateway_client.errors import Forbidden, QuotaExceeded, Unauthorized
from typer.testing import CliRunner

from local.stack import Stack

COUNTERS = ("sessions_created", "executions", "sandbox_seconds", "bytes_uploaded", "bytes_downloaded")


@pytest.fixture(scope="module")
def store(sessions_table: Any) -> DynamoDBTenantStore:
    return DynamoDBTenantStore(sessions_table)


def new_key(store: DynamoDBTenantStore, *scopes: str) -> tuple[str, str]:
    """(tenant, key): a fresh tenant, so its counters start at zero."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    _, key = store.create_key(
        tenant, "test", scopes or ("sessions", "execute", "files", "usage"), int(time.time())
    )
    return tenant, key


@pytest.fixture
def tenant_gateway(stack: Stack, store: DynamoDBTenantStore) -> Iterator[tuple[str, Gateway]]:
    tenant, key = new_key(store)
    with Gateway(stack.url, api_key=key) as gw:
        yield tenant, gw


def totals(usage: Usage) -> dict[str, int]:
    # Summed over the days: a flow that crosses midnight UTC still adds up.
    return {name: sum(getattr(day, name) for day in usage.days) for name in COUNTERS}


def test_usage_counts_a_known_flow(tenant_gateway: tuple[str, Gateway]) -> None:
    tenant, gw = tenant_gateway
    assert gw.usage().days == []

    with gw.create_session("e2b-python") as session:
        session.files.write("data.bin", b"x" * 1000)
        assert session.files.read("data.bin") == b"x" * 1000
        assert session.run("print(1)").ok and session.run("print(2)").ok
        during = gw.usage()
        time.sleep(1.1)  # a lifetime of at least one whole second

    after = gw.usage()
    assert during.tenant_id == tenant and during.active_sessions == 1
    assert after.active_sessions == 0
    counted = totals(after)
    assert counted["sessions_created"] == 1 and counted["executions"] == 2
    assert counted["bytes_uploaded"] == 1000 and counted["bytes_downloaded"] == 1000
    assert counted["sandbox_seconds"] >= 1  # the session ended: its lifetime is counted
    assert totals(during)["sandbox_seconds"] == 0  # not while it was live
    assert after.days[-1].day == datetime.now(UTC).strftime("%Y-%m-%d") or len(after.days) == 2


def test_usage_since_and_until_select_days(tenant_gateway: tuple[str, Gateway]) -> None:
    _, gw = tenant_gateway
    with gw.create_session("e2b-python"):
        pass
    today = datetime.now(UTC).date()

    assert gw.usage(since=today - timedelta(days=1)).days
    assert gw.usage(since=today - timedelta(days=10), until=today - timedelta(days=5)).days == []


def test_a_request_without_a_key_raises_unauthorized(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGW_API_KEY", raising=False)
    with Gateway(stack.url) as gw, pytest.raises(Unauthorized) as raised:
        gw.usage()

    assert raised.value.status == 401


def test_an_unknown_key_raises_unauthorized(stack: Stack) -> None:
    forged = "sgw_0123456789ab_" + "A" * 43
    with Gateway(stack.url, api_key=forged) as gw, pytest.raises(Unauthorized) as raised:
        gw.usage()

    assert raised.value.status == 403 and "refused" in raised.value.message


def test_a_key_without_the_usage_scope_raises_forbidden(stack: Stack, store: DynamoDBTenantStore) -> None:
    _, key = new_key(store, "sessions")
    with Gateway(stack.url, api_key=key) as gw, pytest.raises(Forbidden) as raised:
        gw.usage()

    assert raised.value.status == 403 and raised.value.code == "forbidden"


def test_a_quota_waiting_cannot_fix_raises_at_once(stack: Stack, store: DynamoDBTenantStore) -> None:
    tenant, key = new_key(store)
    store.set_quota_overrides(tenant, {"max_execution_seconds": 5})
    slept: list[float] = []
    with (
        Gateway(stack.url, api_key=key, sleep=slept.append) as gw,
        gw.create_session("e2b-python") as session,
        pytest.raises(QuotaExceeded) as raised,
    ):
        session.run("1", timeout_seconds=10)

    assert raised.value.status == 429 and "max_execution_seconds" in raised.value.message
    assert raised.value.retry_after is None and slept == []


def test_the_live_session_quota_is_retried_then_raised(stack: Stack, store: DynamoDBTenantStore) -> None:
    tenant, key = new_key(store)
    store.set_quota_overrides(tenant, {"max_active_sessions": 1})
    slept: list[float] = []
    with (
        Gateway(stack.url, api_key=key, sleep=slept.append, max_retries=2) as gw,
        gw.create_session("e2b-python"),
        pytest.raises(QuotaExceeded) as raised,
    ):
        gw.create_session("e2b-python")

    assert raised.value.retry_after is not None and raised.value.retry_after > 0
    assert slept == [raised.value.retry_after] * 2  # the client waited as told, twice
    assert "max_active_sessions" in raised.value.message


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()


def test_sgw_usage_prints_a_table_and_json(
    runner: CliRunner, stack: Stack, store: DynamoDBTenantStore
) -> None:
    tenant, key = new_key(store)
    store.set_quota_overrides(tenant, {"max_active_sessions": 4})
    with Gateway(stack.url, api_key=key) as gw, gw.create_session("e2b-python") as session:
        session.run("1")
    env = {"SGW_URL": stack.url, "SGW_API_KEY": key}

    table = runner.invoke(app, ["usage"], env=env)
    document = runner.invoke(
        app, ["--json", "usage", "--since", "2001-01-01", "--until", "2001-01-31"], env=env
    )

    assert table.exit_code == EXIT_OK, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["tenant", tenant]
    assert lines[1].split() == ["active", "sessions", "0", "of", "4"]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    row = next(line.split() for line in lines if line.startswith(today))
    assert row[1:3] == ["1", "1"]  # sessions, executions
    assert document.exit_code == EXIT_OK, document.stderr
    parsed = json.loads(document.stdout)
    assert parsed["tenant_id"] == tenant and parsed["days"] == []
    assert parsed["quotas"]["max_active_sessions"] == 4


def test_sgw_usage_with_a_refused_key_exits_3(runner: CliRunner, stack: Stack) -> None:
    result = runner.invoke(
        app, ["usage"], env={"SGW_URL": stack.url, "SGW_API_KEY": "sgw_0123456789ab_" + "B" * 43}
    )

    assert result.exit_code == EXIT_API_ERROR
    assert "API key was refused" in result.stderr and result.stdout == ""
