"""DynamoDB round trips per request, counted exactly: a change that adds one shows up here.

With tenants (issue 9): the quota read before a create, execute or upload, the live-session counter
and usage moved in the session's own transactions, and the usage counters of executes and file
moves. Reducing these is the performance issue's work; this pins where they stand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.client
import pytest

from tests.integration.conftest import Api, body_of
from tests.support.fakes import FakeSandboxProvider


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, name: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(name)
        return original(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    yield calls


def test_round_trips_of_each_route(
    api: Api, provider: FakeSandboxProvider, dynamodb_calls: list[str]
) -> None:
    def counted(function: str, event: str, session_id: str | None = None) -> tuple[list[str], dict]:
        dynamodb_calls.clear()
        response = api.call(function, event, session_id)
        assert response["statusCode"] < 300, response["body"]
        return list(dynamodb_calls), body_of(response) if response.get("body") else {}

    calls, created = counted("sessions", "sessions_create")
    assert calls == ["GetItem", "TransactWriteItems", "UpdateItem"]  # quotas; session + counter; activate
    session_id = created["session_id"]
    assert counted("sessions", "sessions_get", session_id)[0] == ["GetItem"]
    assert counted("execute", "execute_python", session_id)[0] == [
        "GetItem",  # quotas
        "UpdateItem",  # lease, returning the session (no read of it first)
        "UpdateItem",  # release
        "UpdateItem",  # usage
        "PutItem",  # the execution's record (GET /api/executions/{id}, Idempotency-Key replays)
    ]
    assert counted("files", "files_write", session_id)[0] == ["GetItem", "GetItem", "UpdateItem"]
    assert counted("files", "files_read", session_id)[0] == ["GetItem", "UpdateItem"]
    assert counted("sessions", "sessions_delete", session_id)[0] == [
        "GetItem",
        "TransactWriteItems",
        "GetItem",
    ]
