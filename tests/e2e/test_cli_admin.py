"""`sgw admin` against the local stack's table (its moto server), and the keys it makes against the
local gateway: a created key works, a listing never shows secret material, a revoked key is
refused, quota overrides reach the gateway, and `sgw admin usage` sees a tenant's activity."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway_client import Gateway
from sandbox_gateway_client.cli import EXIT_API_ERROR, EXIT_OK, app
from typer.testing import CliRunner

from local.stack import TABLE_NAME, Stack

KEY = re.compile(r"^sgw_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
# Variables from the developer's shell must not decide which table or gateway the tests reach.
CLEAN_ENV: dict[str, str | None] = {
    "SGW_URL": None,
    "SGW_API_KEY": None,
    "TABLE_NAME": None,
    "DYNAMODB_ENDPOINT_URL": None,
}


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()


@pytest.fixture(scope="module")
def admin(runner: CliRunner, stack: Stack) -> Callable[..., Any]:
    def invoke(*args: str, json_output: bool = False) -> Any:
        where = ["admin", "--table", TABLE_NAME, "--endpoint-url", stack.dynamodb_url]
        return runner.invoke(app, [*(["--json"] if json_output else []), *where, *args], env=CLEAN_ENV)

    return invoke


@pytest.fixture(scope="module")
def store(sessions_table: Any) -> DynamoDBTenantStore:
    return DynamoDBTenantStore(sessions_table)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def create_key(admin: Callable[..., Any], tenant: str, *extra: str) -> dict[str, Any]:
    result = admin("keys", "create", "--tenant", tenant, *extra, json_output=True)
    assert result.exit_code == EXIT_OK, result.stderr
    return dict(json.loads(result.stdout))


def test_keys_create_prints_the_key_once_on_stdout_and_it_works(
    admin: Callable[..., Any], stack: Stack, store: DynamoDBTenantStore, tenant: str
) -> None:
    result = admin("keys", "create", "--tenant", tenant, "--name", "ci")

    assert result.exit_code == EXIT_OK, result.stderr
    key = result.stdout.strip()
    found = KEY.fullmatch(key)
    assert found and result.stdout == key + "\n"  # nothing else on stdout: `KEY=$(sgw admin …)` works
    assert "cannot be shown again" in result.stderr and key not in result.stderr
    record = store.find_key(key)
    assert record is not None and record.key_id == found.group(1)
    assert record.tenant_id == tenant and record.name == "ci"
    assert set(record.scopes) == {"sessions", "execute", "files", "usage"}
    with Gateway(stack.url, api_key=key) as gw:
        assert gw.usage().tenant_id == tenant


def test_keys_create_json_gives_the_key_with_its_record(
    admin: Callable[..., Any], store: DynamoDBTenantStore, tenant: str
) -> None:
    created = create_key(admin, tenant, "--name", "reports", "--scope", "usage", "--scope", "sessions")

    assert set(created) == {"key", "key_id", "tenant_id", "name", "scopes"}
    assert KEY.fullmatch(created["key"]) and created["key"].startswith(f"sgw_{created['key_id']}_")
    assert created["tenant_id"] == tenant and created["name"] == "reports"
    assert created["scopes"] == ["usage", "sessions"]
    record = store.find_key(created["key"])
    assert record is not None and record.scopes == ("usage", "sessions")


def test_keys_list_never_shows_a_key_or_its_hash(
    admin: Callable[..., Any], sessions_table: Any, tenant: str
) -> None:
    created = [create_key(admin, tenant, "--name", f"k{i}") for i in range(2)]
    hashes = [
        sessions_table.get_item(Key={"pk": f"APIKEY#{c['key_id']}", "sk": "APIKEY"})["Item"]["key_hash"]
        for c in created
    ]
    assert hashes == [hashlib.sha256(c["key"].encode()).hexdigest() for c in created]

    table = admin("keys", "list", "--tenant", tenant)
    listed = admin("keys", "list", "--tenant", tenant, json_output=True)
    everything = admin("keys", "list")

    for result in (table, listed, everything):
        assert result.exit_code == EXIT_OK, result.stderr
        shown = result.stdout + result.stderr
        for c, key_hash in zip(created, hashes, strict=True):
            # sgw_<12 hex>_<43 base64url>: the secret may itself hold "_", so split from the left
            secret = c["key"].split("_", 2)[2]
            assert secret not in shown and key_hash not in shown and c["key_id"] in shown
    rows = json.loads(listed.stdout)
    assert {row["key_id"] for row in rows} == {c["key_id"] for c in created}
    assert all(row["tenant_id"] == tenant and row["status"] == "active" for row in rows)
    assert set(rows[0]) == {"key_id", "tenant_id", "name", "scopes", "status", "created_at", "last_used_at"}
    header = table.stdout.splitlines()[0].split()
    assert header[:2] == ["KEY", "ID"] and "STATUS" in header and "LAST" in header


def test_keys_revoke_marks_it_revoked_and_says_when_it_takes_effect(
    admin: Callable[..., Any], stack: Stack, store: DynamoDBTenantStore, tenant: str
) -> None:
    created = create_key(admin, tenant)

    result = admin("keys", "revoke", created["key_id"])

    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout.split() == [created["key_id"], "revoked"]
    assert "AuthorizerCacheSeconds" in result.stderr and "300 s" in result.stderr
    assert store.find_key(created["key"]) is None
    rows = json.loads(admin("keys", "list", "--tenant", tenant, json_output=True).stdout)
    assert [row["status"] for row in rows] == ["revoked"]


def test_keys_revoke_of_an_unknown_id_fails_with_exit_3(admin: Callable[..., Any]) -> None:
    result = admin("keys", "revoke", "0123456789ab")

    assert result.exit_code == EXIT_API_ERROR
    assert "key_not_found" in result.stderr and result.stdout == ""


def test_quotas_set_show_and_reset(admin: Callable[..., Any], tenant: str) -> None:
    def shown() -> dict[str, Any]:
        result = admin("quotas", "show", tenant, json_output=True)
        assert result.exit_code == EXIT_OK, result.stderr
        return dict(json.loads(result.stdout))

    assert shown() == {"tenant_id": tenant, "active_sessions": 0, "overrides": {}}

    first = admin("quotas", "set", tenant, "--max-active-sessions", "3", "--max-file-bytes", "1000")
    admin("quotas", "set", tenant, "--max-execution-seconds", "5")  # keeps the others

    assert first.exit_code == EXIT_OK, first.stderr
    assert re.search(r"^max_active_sessions\s+3$", first.stdout, re.M)
    assert re.search(r"^max_session_seconds\s+default$", first.stdout, re.M)
    assert shown()["overrides"] == {
        "max_active_sessions": 3,
        "max_file_bytes": 1000,
        "max_execution_seconds": 5,
    }

    reset = admin("quotas", "set", tenant, "--reset", "--max-code-bytes", "100")
    assert reset.exit_code == EXIT_OK, reset.stderr
    assert shown()["overrides"] == {"max_code_bytes": 100}

    assert admin("quotas", "set", tenant, "--reset").exit_code == EXIT_OK
    assert shown()["overrides"] == {}


def test_quota_overrides_reach_the_gateway(admin: Callable[..., Any], stack: Stack, tenant: str) -> None:
    key = create_key(admin, tenant)["key"]
    admin("quotas", "set", tenant, "--max-active-sessions", "2", "--max-execution-seconds", "7")

    with Gateway(stack.url, api_key=key) as gw:
        quotas = gw.usage().quotas

    assert quotas.max_active_sessions == 2 and quotas.max_execution_seconds == 7


def test_admin_usage_lists_a_tenant_after_its_activity(
    admin: Callable[..., Any], stack: Stack, tenant: str
) -> None:
    key = create_key(admin, tenant)["key"]
    with Gateway(stack.url, api_key=key) as gw, gw.create_session("e2b-python") as session:
        assert session.run("print(1)").ok

    rows = json.loads(admin("usage", json_output=True).stdout)
    table = admin("usage")

    mine = [row for row in rows if row["tenant_id"] == tenant]
    assert len(mine) == 1
    assert mine[0]["sessions_created"] == 1 and mine[0]["executions"] == 1
    assert table.exit_code == EXIT_OK
    assert table.stdout.splitlines()[0].split()[:3] == ["TENANT", "SESSIONS", "EXECUTIONS"]
    line = next(line for line in table.stdout.splitlines() if line.startswith(tenant + " "))
    assert line.split()[1:3] == ["1", "1"]
    assert json.loads(admin("usage", "--day", "2001-01-01", json_output=True).stdout) == []


def test_admin_against_a_missing_table_fails_with_exit_3(runner: CliRunner, stack: Stack) -> None:
    result = runner.invoke(
        app,
        ["admin", "--table", "no-such-table", "--endpoint-url", stack.dynamodb_url, "keys", "list"],
        env=CLEAN_ENV,
    )

    assert result.exit_code == EXIT_API_ERROR
    assert "ResourceNotFound" in result.stderr and "no-such-table" in result.stderr


def test_admin_reads_table_and_endpoint_from_the_environment(
    runner: CliRunner, stack: Stack, tenant: str
) -> None:
    env = CLEAN_ENV | {"TABLE_NAME": TABLE_NAME, "DYNAMODB_ENDPOINT_URL": stack.dynamodb_url}

    created = runner.invoke(app, ["admin", "keys", "create", "--tenant", tenant], env=env)
    listed = runner.invoke(app, ["--json", "admin", "keys", "list", "--tenant", tenant], env=env)

    assert created.exit_code == EXIT_OK, created.stderr
    assert [row["tenant_id"] for row in json.loads(listed.stdout)] == [tenant]
