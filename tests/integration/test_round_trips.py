"""DynamoDB round trips per request, counted exactly: a change that adds one shows up here.

Issue 11 (docs/decisions/0011-round-trips.md): the tenant's quotas travel with the authorizer's
answer, so an execute, create or upload reads none; a synchronous execute takes its lease in one
write and gives it back, with its usage and its record, in one transaction. An answer without
quotas (an older cached one, `sam local invoke` with the events/ files) makes the route read them:
never "no limits". A lease lost during the run still counts the execution once and keeps its record."""

from __future__ import annotations

from typing import Any

from sandbox_gateway.adapters.table_layout import session_key
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore

from tests.integration.conftest import Api, body_of, usage_of
from tests.support.events import load_event, with_authorized_quotas
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke

TENANT = "tenant-example"  # the events/ files' tenant


def call(
    function: str,
    event_name: str,
    session_id: str | None = None,
    quotas: dict[str, int] | None = None,
    **body: Any,
) -> dict[str, Any]:
    """A route called as API Gateway does, after today's authorizer: with the tenant's quota
    overrides in its answer (`quotas`; None: an answer without them)."""
    event = load_event(event_name, session_id, **body)
    if quotas is not None:
        with_authorized_quotas(event, quotas)
    return invoke(function, event)


def test_round_trips_of_each_route(
    api: Api, provider: FakeSandboxProvider, dynamodb_calls: list[str]
) -> None:
    def counted(function: str, event: str, session_id: str | None = None) -> tuple[list[str], dict]:
        dynamodb_calls.clear()
        response = call(function, event, session_id, quotas={})
        assert response["statusCode"] < 300, response["body"]
        return list(dynamodb_calls), body_of(response) if response.get("body") else {}

    calls, created = counted("sessions", "sessions_create")
    assert calls == ["TransactWriteItems", "UpdateItem"]  # session + counter + usage; activate
    session_id = created["session_id"]
    assert counted("sessions", "sessions_get", session_id)[0] == ["GetItem"]
    assert counted("execute", "execute_python", session_id)[0] == [
        "UpdateItem",  # lease, returning the session (no read of it first)
        "TransactWriteItems",  # release + usage + the execution's record, in one round trip
    ]
    assert counted("files", "files_write", session_id)[0] == ["GetItem", "UpdateItem"]  # session; usage
    assert counted("files", "files_read", session_id)[0] == ["GetItem", "UpdateItem"]
    assert counted("sessions", "sessions_delete", session_id)[0] == [
        "GetItem",
        "TransactWriteItems",
        "GetItem",
    ]


def test_an_answer_without_quotas_makes_each_route_read_them(
    api: Api, provider: FakeSandboxProvider, dynamodb_calls: list[str]
) -> None:
    def counted(function: str, event: str, session_id: str | None = None) -> tuple[list[str], dict]:
        dynamodb_calls.clear()
        response = call(function, event, session_id)
        assert response["statusCode"] < 300, response["body"]
        return list(dynamodb_calls), body_of(response) if response.get("body") else {}

    calls, created = counted("sessions", "sessions_create")
    assert calls == ["GetItem", "TransactWriteItems", "UpdateItem"]
    session_id = created["session_id"]
    assert counted("execute", "execute_python", session_id)[0] == [
        "GetItem",
        "UpdateItem",
        "TransactWriteItems",
    ]
    assert counted("files", "files_write", session_id)[0] == ["GetItem", "GetItem", "UpdateItem"]


def test_quotas_from_the_authorizer_are_enforced_without_a_read(
    api: Api, provider: FakeSandboxProvider, dynamodb_calls: list[str]
) -> None:
    session_id = api.create_session()
    dynamodb_calls.clear()

    refused = call("execute", "execute_python", session_id, quotas={"max_code_bytes": 10}, code="x" * 11)

    assert refused["statusCode"] == 429, refused["body"]
    assert "max_code_bytes" in body_of(refused)["error"]["message"]
    assert dynamodb_calls == []  # refused before the lease, from the answer alone
    assert provider.sandboxes and all(not s.runs for s in provider.sandboxes.values())
    # The same code within the answer's quota runs.
    assert (
        call("execute", "execute_python", session_id, quotas={"max_code_bytes": 11}, code="x" * 11)[
            "statusCode"
        ]
        == 200
    )


def test_an_answer_without_quotas_enforces_the_stored_ones(
    api: Api, provider: FakeSandboxProvider, table: Any
) -> None:
    """The fallback read: never "no limits" because the answer carried none."""
    session_id = api.create_session()
    DynamoDBTenantStore(table).set_quota_overrides(TENANT, {"max_code_bytes": 10})

    refused = call("execute", "execute_python", session_id, code="x" * 11)
    upload = call("files", "files_write", session_id, content="c3Rvcnk=")  # fine: 5 bytes
    DynamoDBTenantStore(table).set_quota_overrides(TENANT, {"max_file_bytes": 4})
    too_big = call("files", "files_write", session_id, content="c3Rvcnk=")

    assert refused["statusCode"] == 429 and "max_code_bytes" in body_of(refused)["error"]["message"]
    assert upload["statusCode"] == 201, upload["body"]
    assert too_big["statusCode"] == 429 and "max_file_bytes" in body_of(too_big)["error"]["message"]


def test_a_lease_lost_during_the_run_still_counts_once_and_keeps_the_record(
    api: Api, provider: FakeSandboxProvider, table: Any, dynamodb_calls: list[str]
) -> None:
    """The lease lapsed mid-run and another execute took it: the transaction's release condition
    fails and writes nothing; the usage and the record are then written alone, once; the other
    execute's lease is left alone."""
    session_id = api.create_session()
    executions_before = sum(day["executions"] for day in usage_of(TENANT)["days"])

    def another_execute_takes_the_lease() -> None:
        table.update_item(
            Key=session_key(session_id),
            UpdateExpression="SET lease_id = :other",
            ExpressionAttributeValues={":other": "someone-else"},
        )

    provider.during_next_call = another_execute_takes_the_lease
    dynamodb_calls.clear()
    response = call("execute", "execute_python", session_id, quotas={}, code="print(1)")
    calls = list(dynamodb_calls)

    assert response["statusCode"] == 200, response["body"]
    assert calls == ["UpdateItem", "UpdateItem", "TransactWriteItems", "UpdateItem", "UpdateItem", "PutItem"]
    #               lease         (the test's)  cancelled             release: no-op usage        record
    executions = sum(day["executions"] for day in usage_of(TENANT)["days"])
    assert executions == executions_before + 1
    execution_id = body_of(response)["execution_id"]
    record = table.get_item(Key={"pk": f"EXECUTION#{execution_id}", "sk": "EXECUTION"})["Item"]
    assert record["tenant_id"] == TENANT and record["state"] == "succeeded"
    assert table.get_item(Key=session_key(session_id))["Item"]["lease_id"] == "someone-else"


def test_a_finished_execute_counts_once_records_and_frees_the_session(
    api: Api, provider: FakeSandboxProvider, table: Any
) -> None:
    session_id = api.create_session()
    before = sum(day["executions"] for day in usage_of(TENANT)["days"])

    answers = [call("execute", "execute_python", session_id, quotas={}, code=f"x = {i}") for i in range(3)]

    assert [a["statusCode"] for a in answers] == [200, 200, 200]  # each found the lease free
    assert sum(day["executions"] for day in usage_of(TENANT)["days"]) == before + 3
    for answer in answers:
        execution_id = body_of(answer)["execution_id"]
        record = table.get_item(Key={"pk": f"EXECUTION#{execution_id}", "sk": "EXECUTION"})["Item"]
        assert record["session_id"] == session_id and record["state"] == "succeeded"
    assert "lease_id" not in table.get_item(Key=session_key(session_id))["Item"]
