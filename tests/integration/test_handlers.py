"""The events/ files through each function's lambda_handler, with DynamoDB under moto."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from sandbox_gateway.adapters.table_layout import session_key
from sandbox_gateway.models.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from sandbox_gateway.models.execution import ExecutionOutcome, ExecutionStatus, RichResult

from tests.integration.conftest import Api, body_of
from tests.support.events import load_event, with_tenant
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke
from tests.support.readme import documented_error_codes


def assert_error(response: dict, status: int, code: str) -> dict:
    assert response["statusCode"] == status, response["body"]
    assert response["headers"]["Content-Type"] == "application/json"
    error = body_of(response)["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response["body"]
    return error


# --- sessions -------------------------------------------------------------------------------
def test_create_session_with_the_seed_body_returns_201(api: Api, provider: FakeSandboxProvider) -> None:
    response = api.call("sessions", "sessions_create")

    assert response["statusCode"] == 201
    session = body_of(response)
    assert session["status"] == "active"
    assert (session["agent"], session["environment"], session["provider"]) == (
        "code_executor",
        "e2b-python",
        "e2b",
    )
    assert session["created_at"].endswith("Z") and session["expires_at"] > session["created_at"]
    (sandbox,) = provider.sandboxes.values()
    assert sandbox.spec.session_id == session["session_id"]
    assert sandbox.spec.environment.name == "e2b-python"


def test_create_session_passes_options_to_the_sandbox(api: Api, provider: FakeSandboxProvider) -> None:
    session = body_of(api.call("sessions", "sessions_create_with_options"))

    (sandbox,) = provider.sandboxes.values()
    assert sandbox.spec.timeout_seconds == 600
    assert sandbox.spec.envs == {"GREETING": "hello"}
    assert session["metadata"] == {"user": "u-42"}
    assert "GREETING" not in json.dumps(session)  # envs may hold secrets: never echoed


@pytest.mark.parametrize(
    ("event_name", "status", "code"),
    [
        ("sessions_create_invalid_json", 400, "invalid_json"),
        ("sessions_create_unknown_environment", 400, "unknown_environment"),
        ("sessions_create_unknown_field", 422, "validation_error"),
        ("sessions_create_docker", 400, "provider_not_allowed"),
    ],
)
def test_create_session_rejects_bad_requests_without_creating_anything(
    api: Api, provider: FakeSandboxProvider, event_name: str, status: int, code: str
) -> None:
    error = assert_error(api.call("sessions", event_name), status, code)

    assert provider.sandboxes == {}
    assert error["request_id"] == "JKJaXmPLvHcESHA="


def test_unknown_environment_error_lists_what_is_available(api: Api) -> None:
    error = assert_error(
        api.call("sessions", "sessions_create_unknown_environment"), 400, "unknown_environment"
    )
    assert "e2b-python" in error["message"] and "e2b-bash" in error["message"]


def test_validation_error_names_the_field(api: Api) -> None:
    error = assert_error(api.call("sessions", "sessions_create_unknown_field"), 422, "validation_error")
    assert error["details"] == [{"field": "timout_seconds", "message": "Extra inputs are not permitted"}]


def test_create_session_above_the_maximum_lifetime_is_a_400(api: Api, provider: FakeSandboxProvider) -> None:
    assert_error(api.call("sessions", "sessions_create", timeout_seconds=86_400), 400, "invalid_request")
    assert provider.sandboxes == {}


def test_provider_mismatch_is_a_400(api: Api) -> None:
    error = assert_error(api.call("sessions", "sessions_create", provider="docker"), 400, "provider_mismatch")
    assert "e2b-python" in error["message"]


def test_provider_failure_during_create_is_reported_and_leaves_a_failed_session(
    api: Api, provider: FakeSandboxProvider
) -> None:
    provider.fail_create = ProviderUnavailable("E2B could not be reached")

    assert_error(api.call("sessions", "sessions_create"), 503, "provider_unavailable")

    sessions = body_of(api.call("sessions", "sessions_list"))["sessions"]
    assert [s["status"] for s in sessions] == ["failed"]
    assert sessions[0]["failure_reason"] == "provider_unavailable"


def test_get_session_returns_it_and_unknown_is_404(api: Api) -> None:
    session_id = api.create_session()

    assert body_of(api.call("sessions", "sessions_get", session_id))["session_id"] == session_id
    assert_error(api.call("sessions", "sessions_get", "ses_doesnotexist"), 404, "session_not_found")


def test_another_tenants_session_answers_like_a_missing_one(api: Api) -> None:
    session_id = api.create_session()
    for name, function in [
        ("sessions_get", "sessions"),
        ("execute_python", "execute"),
        ("files_list", "files"),
    ]:
        event = with_tenant(load_event(name, session_id), "tenant-b")
        assert_error(invoke(function, event), 404, "session_not_found")


def test_list_sessions_is_newest_first_and_paginated(api: Api) -> None:
    created = [api.create_session() for _ in range(3)]
    event = load_event("sessions_list")
    event["queryStringParameters"] = {"limit": "2"}

    first = body_of(invoke("sessions", event))
    assert [s["session_id"] for s in first["sessions"]] == created[::-1][:2]
    event["queryStringParameters"] = {"limit": "2", "next_token": first["next_token"]}
    second = body_of(invoke("sessions", event))
    assert [s["session_id"] for s in second["sessions"]] == [created[0]]
    assert second["next_token"] is None


@pytest.mark.parametrize(
    ("query", "status"),
    [({"limit": "0"}, 422), ({"limit": "1000"}, 422), ({"next_token": "not-a-token"}, 400)],
)
def test_list_sessions_rejects_bad_paging(api: Api, query: dict[str, str], status: int) -> None:
    event = load_event("sessions_list")
    event["queryStringParameters"] = query
    assert invoke("sessions", event)["statusCode"] == status


def test_page_token_of_one_tenant_is_refused_for_another(api: Api) -> None:
    for _ in range(2):
        api.create_session()
    event = load_event("sessions_list")
    event["queryStringParameters"] = {"limit": "1"}
    token = body_of(invoke("sessions", event))["next_token"]

    other = with_tenant(load_event("sessions_list"), "tenant-b")
    other["queryStringParameters"] = {"next_token": token}
    assert_error(invoke("sessions", other), 400, "invalid_page_token")


def test_delete_kills_the_sandbox_and_repeating_it_is_harmless(
    api: Api, provider: FakeSandboxProvider
) -> None:
    session_id = api.create_session()
    (sandbox_id,) = provider.live_ids

    first = api.call("sessions", "sessions_delete", session_id)
    second = api.call("sessions", "sessions_delete", session_id)

    assert first["statusCode"] == second["statusCode"] == 200
    assert body_of(first)["status"] == body_of(second)["status"] == "closed"
    assert provider.live_ids == set() and sandbox_id in provider.killed
    assert_error(api.call("execute", "execute_python", session_id), 410, "session_closed")
    assert_error(api.call("files", "files_list", session_id), 410, "session_closed")


def test_keepalive_extends_the_session_and_its_sandbox(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session(timeout_seconds=120)
    before = body_of(api.call("sessions", "sessions_get", session_id))

    after = body_of(api.call("sessions", "sessions_keepalive", session_id, timeout_seconds=1800))

    assert after["expires_at"] > before["expires_at"]
    (sandbox,) = provider.sandboxes.values()
    assert sandbox.timeout_seconds == 1800


def test_environments_lists_the_e2b_catalogue(api: Api) -> None:
    names = [env["name"] for env in body_of(api.call("meta", "environments_list"))["environments"]]
    assert names == ["e2b-python", "e2b-node", "e2b-bash"]


# --- execute --------------------------------------------------------------------------------
def test_execute_with_the_seed_body_runs_in_the_session(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session()

    response = api.call("execute", "execute_python", session_id)

    assert response["statusCode"] == 200
    result = body_of(response)
    assert result["status"] == "ok" and result["language"] == "python"
    assert result["stdout"] == "ran python: x = 21\nprint(x * 2)\n"
    assert result["execution_count"] == 1
    assert result["duration_ms"] >= result["sandbox_duration_ms"] >= 0
    (sandbox,) = provider.sandboxes.values()
    assert [run.code for run in sandbox.runs] == ["x = 21\nprint(x * 2)"]


def test_execute_reports_user_errors_as_200(api: Api) -> None:
    session_id = api.create_session()

    result = body_of(api.call("execute", "execute_python", session_id, code="raise ValueError('bad')"))

    assert result["status"] == "error"
    assert result["error"]["name"] == "ValueError" and "Traceback" in result["error"]["traceback"]


def test_execute_returns_rich_results(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    provider.next_outcome = ExecutionOutcome(
        status=ExecutionStatus.OK,
        results=(RichResult({"text": "<Figure>", "png": png}, is_main_result=False),),
    )

    result = body_of(api.call("execute", "execute_python", session_id))

    assert result["results"] == [
        {"is_main_result": False, "formats": ["png", "text"], "text": "<Figure>", "png": png}
    ]


def test_execute_output_over_the_budget_is_cut_and_marked(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session()
    provider.next_outcome = ExecutionOutcome(status=ExecutionStatus.OK, stdout="x" * 12_000_000)

    response = api.call("execute", "execute_python", session_id)

    assert response["statusCode"] == 200
    assert len(response["body"]) < 6_000_000
    assert body_of(response)["truncated"] is True


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"language": "ruby"}, 400, "unsupported_language"),
        ({"timeout_seconds": 0}, 422, "validation_error"),
        ({"timeout_seconds": 26}, 400, "invalid_request"),
        ({"envs": {"1BAD": "x"}}, 422, "validation_error"),
        ({"code": "x" * 1_100_000}, 413, "payload_too_large"),
    ],
)
def test_execute_rejects_bad_input(
    api: Api, provider: FakeSandboxProvider, overrides: dict[str, Any], status: int, code: str
) -> None:
    session_id = api.create_session()
    assert_error(api.call("execute", "execute_python", session_id, **overrides), status, code)
    (sandbox,) = provider.sandboxes.values()
    assert sandbox.runs == []


def test_execute_without_code_names_the_field(api: Api) -> None:
    error = assert_error(api.call("execute", "execute_missing_code"), 422, "validation_error")
    assert error["details"][0]["field"] == "code"


def test_execute_unknown_session_is_404(api: Api) -> None:
    assert_error(api.call("execute", "execute_python", "ses_unknown"), 404, "session_not_found")


def test_execute_in_an_expired_session_is_410_and_frees_the_sandbox(
    api: Api, provider: FakeSandboxProvider, table: Any
) -> None:
    session_id = api.create_session()
    expire_now(table, session_id)

    assert_error(api.call("execute", "execute_python", session_id), 410, "session_expired")
    assert provider.live_ids == set()
    assert body_of(api.call("sessions", "sessions_get", session_id))["status"] == "expired"
    # No write brings it back: keep-alive is refused too.
    assert_error(api.call("sessions", "sessions_keepalive", session_id), 410, "session_expired")


def test_sandbox_lost_behind_our_back_is_410_and_a_new_session_works(
    api: Api, provider: FakeSandboxProvider
) -> None:
    session_id = api.create_session()
    (sandbox_id,) = provider.live_ids
    provider.lose(sandbox_id)

    assert_error(api.call("execute", "execute_python", session_id), 410, "sandbox_gone")
    assert body_of(api.call("sessions", "sessions_get", session_id))["status"] == "failed"
    assert_error(api.call("execute", "execute_python", session_id), 410, "session_failed")
    assert api.call("execute", "execute_python", api.create_session())["statusCode"] == 200


def test_keepalive_of_a_lost_sandbox_is_410_and_fails_the_session(
    api: Api, provider: FakeSandboxProvider
) -> None:
    session_id = api.create_session()
    provider.lose(next(iter(provider.live_ids)))

    assert_error(api.call("sessions", "sessions_keepalive", session_id), 410, "sandbox_gone")
    assert body_of(api.call("sessions", "sessions_get", session_id))["status"] == "failed"


def test_provider_timeout_is_504_and_the_session_stays_usable(
    api: Api, provider: FakeSandboxProvider
) -> None:
    session_id = api.create_session()
    provider.fail_next_call = ProviderTimeout("E2B did not answer in time")

    assert_error(api.call("execute", "execute_python", session_id), 504, "provider_timeout")
    assert api.call("execute", "execute_python", session_id)["statusCode"] == 200  # lease released


def test_unexpected_error_is_an_opaque_500(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session()
    provider.fail_next_call = RuntimeError("secret internals /opt/python/x.py")  # type: ignore[assignment]

    error = assert_error(api.call("execute", "execute_python", session_id), 500, "internal_error")
    assert "secret" not in error["message"]


# --- files ----------------------------------------------------------------------------------
def test_file_write_list_read_delete_round_trip(api: Api) -> None:
    session_id = api.create_session()
    data = bytes(range(256))

    written = api.call("files", "files_write", session_id, content=base64.b64encode(data).decode())
    assert written["statusCode"] == 201
    assert body_of(written) == {"session_id": session_id, "path": "/workspace/output.txt", "size": 256}

    listing = body_of(api.call("files", "files_list", session_id))
    assert listing["directory"] == "/workspace"
    assert [(e["name"], e["type"], e["size"]) for e in listing["entries"]] == [("output.txt", "file", 256)]

    read = body_of(api.call("files", "files_read", session_id))
    assert base64.b64decode(read["content"]) == data and read["size"] == 256

    raw = api.call("files", "files_read_raw", session_id)
    assert raw["isBase64Encoded"] is True and raw["headers"]["Content-Type"] == "application/octet-stream"
    assert base64.b64decode(raw["body"]) == data

    assert api.call("files", "files_delete", session_id)["statusCode"] == 204
    assert_error(api.call("files", "files_read", session_id), 404, "file_not_found")


def test_file_path_with_slashes_reaches_the_provider(api: Api, provider: FakeSandboxProvider) -> None:
    session_id = api.create_session()
    api.call("files", "files_write", session_id, file_path="/tmp/a/b/c.txt", content="aGk=")
    event = load_event("files_read", session_id)
    event["pathParameters"]["file_path"] = "/tmp/a/b/c.txt"
    event["rawPath"] = event["requestContext"]["http"]["path"] = (
        f"/api/e2b/files/{session_id}/%2Ftmp/a/b/c.txt"
    )

    assert body_of(invoke("files", event))["path"] == "/tmp/a/b/c.txt"


@pytest.mark.parametrize(
    ("event_name", "status", "code"),
    [
        ("files_write_bad_base64", 400, "invalid_content"),
        ("files_write_outside_roots", 400, "invalid_file_path"),
        ("files_read_traversal", 400, "invalid_file_path"),
    ],
)
def test_hostile_file_requests_are_refused(
    api: Api, provider: FakeSandboxProvider, event_name: str, status: int, code: str
) -> None:
    session_id = api.create_session()
    assert_error(api.call("files", event_name, session_id), status, code)
    (sandbox,) = provider.sandboxes.values()
    assert sandbox.files == {}


@pytest.mark.parametrize(
    "file_path",
    ["../etc/passwd", "/workspace/../etc/shadow", "a\x00b", "/workspace2/x", "\uff0e\uff0e/x", "x" * 300],
)
def test_hostile_write_paths_are_400(api: Api, provider: FakeSandboxProvider, file_path: str) -> None:
    session_id = api.create_session()
    assert_error(api.call("files", "files_write", session_id, file_path=file_path), 400, "invalid_file_path")


def test_file_content_over_the_limit_is_413(api: Api) -> None:
    session_id = api.create_session()
    content = base64.b64encode(b"\0" * (4 * 1024 * 1024 + 1)).decode()
    assert_error(api.call("files", "files_write", session_id, content=content), 413, "payload_too_large")


def test_list_directory_outside_roots_is_400(api: Api) -> None:
    session_id = api.create_session()
    event = load_event("files_list", session_id)
    event["queryStringParameters"] = {"directory": "/etc"}
    assert_error(invoke("files", event), 400, "invalid_file_path")


def expire_now(table: Any, session_id: str) -> None:
    """Move the stored expiry into the past, as the clock would; TTL has not removed the item."""
    table.update_item(
        Key=session_key(session_id),
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": 1},
    )


# --- every documented error code, produced through lambda_handler ----------------------------
def set_item(table: Any, session_id: str, expression: str, values: dict[str, Any]) -> None:
    """Change the stored session as a concurrent request (or a crash mid-create) would have."""
    extra = {"ExpressionAttributeNames": {"#status": "status"}} if "#status" in expression else {}
    table.update_item(
        Key=session_key(session_id),
        UpdateExpression=expression,
        ExpressionAttributeValues=values,
        **extra,
    )


def _create_keyed(key: str, **body: Any) -> dict:
    event = load_event("sessions_create_idempotent", **body)
    event["headers"]["idempotency-key"] = key
    return invoke("sessions", event)


def _with_provider_failure(error: Exception) -> Any:
    def scenario(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
        session_id = api.create_session()
        provider.fail_next_call = error  # type: ignore[assignment]
        return api.call("execute", "execute_python", session_id)

    return scenario


def _key_in_use(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    inner: dict[str, dict] = {}
    provider.during_create = lambda: inner.update(response=_create_keyed("in-flight"))
    _create_keyed("in-flight")
    return inner["response"]


def _key_reused(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    _create_keyed("reused")
    return _create_keyed("reused", metadata={"other": "body"})


def _busy(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    session_id = api.create_session()
    until = int(time.time()) + 60
    set_item(
        table, session_id, "SET lease_id = :lease, lease_until = :until", {":lease": "x", ":until": until}
    )
    return api.call("execute", "execute_python", session_id)


def _not_ready(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    session_id = api.create_session()
    set_item(table, session_id, "SET #status = :creating", {":creating": "creating"})
    return api.call("execute", "execute_python", session_id)


def _closed(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    session_id = api.create_session()
    api.call("sessions", "sessions_delete", session_id)
    return api.call("execute", "execute_python", session_id)


def _expired(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    session_id = api.create_session()
    expire_now(table, session_id)
    return api.call("execute", "execute_python", session_id)


def _sandbox_gone(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    session_id = api.create_session()
    provider.lose(next(iter(provider.live_ids)))
    return api.call("execute", "execute_python", session_id)


def _failed(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    session_id = api.create_session()
    provider.lose(next(iter(provider.live_ids)))
    api.call("execute", "execute_python", session_id)
    return api.call("execute", "execute_python", session_id)


def _unknown_route(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    event = load_event("sessions_list")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/nope"
    # API Gateway's $default route sends what no route matches, with this route key.
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    return invoke("sessions", event)


def _forged_page_token(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    event = load_event("files_list", api.create_session())
    event["queryStringParameters"]["next_token"] = "not-a-token"
    event["rawQueryString"] += "&next_token=not-a-token"
    return invoke("files", event)


def _text_plain(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    event = load_event("sessions_create")
    event["headers"]["content-type"] = "text/plain"
    return invoke("sessions", event)


def _without_key(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    # A route reached without an authorizer's context (left open by mistake) serves no tenant.
    event = load_event("sessions_list")
    del event["requestContext"]["authorizer"]
    return invoke("sessions", event)


def _without_scope(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    event = load_event("execute_python", api.create_session())
    event["requestContext"]["authorizer"]["lambda"]["scopes"] = "sessions,files"
    return invoke("execute", event)


def _over_quota(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    table.put_item(Item={"pk": "TENANT#tenant-example", "sk": "TENANT", "quotas": {"max_active_sessions": 1}})
    api.create_session()
    return api.call("sessions", "sessions_create")


def _unknown_execution(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
    event = load_event("sessions_get")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/executions/exe_" + "0" * 28
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /api/executions/{execution_id}"
    return invoke("execute", event)


def _event(function: str, name: str, with_session: bool = False, **body: Any) -> Any:
    def scenario(api: Api, provider: FakeSandboxProvider, table: Any) -> dict:
        return api.call(function, name, api.create_session() if with_session else None, **body)

    return scenario


ERROR_SCENARIOS: dict[str, tuple[int, Any]] = {
    "invalid_json": (400, _event("sessions", "sessions_create_invalid_json")),
    "unauthorized": (401, _without_key),
    "forbidden": (403, _without_scope),
    "quota_exceeded": (429, _over_quota),
    "invalid_file_path": (400, _event("files", "files_read_traversal", with_session=True)),
    "invalid_content": (400, _event("files", "files_write_bad_base64", with_session=True)),
    "invalid_page_token": (400, _forged_page_token),
    "unknown_environment": (400, _event("sessions", "sessions_create_unknown_environment")),
    "provider_not_allowed": (400, _event("sessions", "sessions_create_docker")),
    "validation_error": (422, _event("sessions", "sessions_create_unknown_field")),
    "idempotency_key_reused": (422, _key_reused),
    "session_not_found": (404, _event("sessions", "sessions_get")),
    "file_not_found": (404, _event("files", "files_read", with_session=True)),
    "route_not_found": (404, _unknown_route),
    "session_busy": (409, _busy),
    "session_not_ready": (409, _not_ready),
    "idempotency_key_in_use": (409, _key_in_use),
    "session_closed": (410, _closed),
    "session_expired": (410, _expired),
    "session_failed": (410, _failed),
    "sandbox_gone": (410, _sandbox_gone),
    "invalid_callback_url": (
        400,
        _event(
            "execute", "execute_python", with_session=True, mode="async", callback_url="https://10.0.0.1/h"
        ),
    ),
    "execution_not_found": (404, _unknown_execution),
    # This handler test configures no queue, bus or bucket: async is off.
    "async_unavailable": (503, _event("execute", "execute_python", with_session=True, mode="async")),
    "payload_too_large": (413, _event("execute", "execute_python", with_session=True, code="x" * 1_100_000)),
    "unsupported_media_type": (415, _text_plain),
    "provider_error": (502, _with_provider_failure(ProviderError("E2B failed to run code"))),
    "provider_unavailable": (503, _with_provider_failure(ProviderUnavailable("E2B could not be reached"))),
    "provider_timeout": (504, _with_provider_failure(ProviderTimeout("E2B did not answer in time"))),
}


@pytest.mark.parametrize(("code", "status", "scenario"), [(c, *v) for c, v in ERROR_SCENARIOS.items()])
def test_each_documented_error_code_is_produced_through_the_handler(
    api: Api, provider: FakeSandboxProvider, table: Any, code: str, status: int, scenario: Any
) -> None:
    error = assert_error(scenario(api, provider, table), status, code)
    assert error["request_id"]


def test_every_error_code_in_the_readme_table_has_a_scenario() -> None:
    documented = documented_error_codes()
    assert len(documented) >= 20
    assert documented <= set(ERROR_SCENARIOS), documented - set(ERROR_SCENARIOS)
