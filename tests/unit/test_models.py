"""Request models at their edges, and the domain → response mappings."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError
from sandbox_gateway.models.api import (
    MAX_ENVS,
    MAX_METADATA_ENTRIES,
    CreateSessionRequest,
    ExecuteRequest,
    ExecuteResponse,
    KeepAliveRequest,
    SessionResponse,
    WriteFileRequest,
)
from sandbox_gateway.models.environment import Language, Provider
from sandbox_gateway.models.execution import (
    ExecutionErrorInfo,
    ExecutionOutcome,
    ExecutionStatus,
    RichResult,
)
from sandbox_gateway.models.session import Session, SessionStatus

SEED_BODY = {"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def error_fields(caught: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(part) for part in err["loc"]) for err in caught.value.errors()}


# --- CreateSessionRequest ----------------------------------------------------------------------


def test_create_session_request_accepts_seed_body() -> None:
    request = CreateSessionRequest.model_validate(SEED_BODY)
    assert request.agent == "code_executor"
    assert request.environment == "e2b-python"
    assert request.provider == "e2b"
    assert request.timeout_seconds is None
    assert request.metadata == {}
    assert request.envs == {}


def test_create_session_request_defaults_from_empty_body() -> None:
    request = CreateSessionRequest.model_validate({})
    assert request.agent == "code_executor"
    assert request.environment == "e2b-python"
    assert request.provider is None
    assert request.timeout_seconds is None


def test_create_session_request_defaults_are_not_shared_between_instances() -> None:
    first = CreateSessionRequest()
    first.metadata["k"] = "v"
    assert CreateSessionRequest().metadata == {}


@pytest.mark.parametrize(
    "extra",
    [{"tenant_id": "other-tenant"}, {"enviroment": "e2b-python"}, {"timeout": 60}, {"sandbox_id": "sbx"}],
)
def test_create_session_request_rejects_unknown_fields(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({**SEED_BODY, **extra})
    assert error_fields(caught) == set(extra)
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("timeout", "ok"), [(59, False), (60, True), (86_400, True), (86_401, False), (0, False)]
)
def test_create_session_request_bounds_timeout(timeout: int, ok: bool) -> None:
    body = {**SEED_BODY, "timeout_seconds": timeout}
    if ok:
        assert CreateSessionRequest.model_validate(body).timeout_seconds == timeout
    else:
        with pytest.raises(ValidationError) as caught:
            CreateSessionRequest.model_validate(body)
        assert error_fields(caught) == {"timeout_seconds"}


@pytest.mark.parametrize("timeout", [-1, "forever", 60.5, [60]])
def test_create_session_request_rejects_non_integer_timeout(timeout: object) -> None:
    with pytest.raises(ValidationError):
        CreateSessionRequest.model_validate({"timeout_seconds": timeout})


@pytest.mark.parametrize("agent", ["", "a b", "agent/../x", "a" * 65, "ag\nent"])
def test_create_session_request_rejects_bad_agent(agent: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({"agent": agent})
    assert error_fields(caught) == {"agent"}


@pytest.mark.parametrize("body", [{"environment": ""}, {"environment": "e" * 65}, {"provider": ""}])
def test_create_session_request_rejects_empty_or_long_environment_and_provider(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CreateSessionRequest.model_validate(body)


def test_create_session_request_accepts_metadata_up_to_limit() -> None:
    metadata = {f"key.{i}:a/b-c_d": "v" * 256 for i in range(MAX_METADATA_ENTRIES)}
    assert CreateSessionRequest.model_validate({"metadata": metadata}).metadata == metadata


def test_create_session_request_rejects_too_many_metadata_entries() -> None:
    metadata = {f"k{i}": "v" for i in range(MAX_METADATA_ENTRIES + 1)}
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({"metadata": metadata})
    assert error_fields(caught) == {"metadata"}
    assert f"at most {MAX_METADATA_ENTRIES}" in str(caught.value)


@pytest.mark.parametrize("key", ["", "has space", "k" * 65, "ключ", "a\nb", "a=b", "a\x00"])
def test_create_session_request_rejects_bad_metadata_keys(key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({"metadata": {key: "v"}})
    assert all(field.startswith("metadata") for field in error_fields(caught))


def test_create_session_request_rejects_metadata_values_over_256_chars() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({"metadata": {"k": "v" * 257}})
    assert error_fields(caught) == {"metadata.k"}


@pytest.mark.parametrize("value", [1, None, ["x"], {"nested": "x"}])
def test_create_session_request_rejects_non_string_metadata_values(value: object) -> None:
    with pytest.raises(ValidationError):
        CreateSessionRequest.model_validate({"metadata": {"k": value}})


@pytest.mark.parametrize("name", ["1ABC", "A-B", "", "A B", "A=B", "A.B", "É", "X" * 129])
def test_create_session_request_rejects_invalid_env_names(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({"envs": {name: "v"}})
    assert all(field.startswith("envs") for field in error_fields(caught))


@pytest.mark.parametrize("name", ["A", "_X", "PATH", "my_var_2", "X" * 128])
def test_create_session_request_accepts_valid_env_names(name: str) -> None:
    assert CreateSessionRequest.model_validate({"envs": {name: "v"}}).envs == {name: "v"}


def test_create_session_request_bounds_env_count() -> None:
    ok = {f"V{i}": "x" for i in range(MAX_ENVS)}
    assert len(CreateSessionRequest.model_validate({"envs": ok}).envs) == MAX_ENVS
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({"envs": {**ok, "ONE_MORE": "x"}})
    assert error_fields(caught) == {"envs"}
    assert f"at most {MAX_ENVS}" in str(caught.value)


def test_create_session_request_rejects_env_values_over_4096_chars() -> None:
    with pytest.raises(ValidationError):
        CreateSessionRequest.model_validate({"envs": {"A": "x" * 4097}})


@pytest.mark.parametrize(("timeout", "ok"), [(None, True), (59, False), (60, True), (86_401, False)])
def test_keep_alive_request_bounds_timeout(timeout: int | None, ok: bool) -> None:
    if ok:
        assert KeepAliveRequest.model_validate({"timeout_seconds": timeout}).timeout_seconds == timeout
    else:
        with pytest.raises(ValidationError):
            KeepAliveRequest.model_validate({"timeout_seconds": timeout})


# --- ExecuteRequest ----------------------------------------------------------------------------


def test_execute_request_accepts_minimal_body() -> None:
    request = ExecuteRequest.model_validate({"session_id": "ses_0190a1b2c3d4e5f60718293a4b5c", "code": "1+1"})
    assert request.code == "1+1"
    assert request.language is None
    assert request.timeout_seconds is None
    assert request.envs == {}


def test_execute_request_requires_code() -> None:
    with pytest.raises(ValidationError) as caught:
        ExecuteRequest.model_validate({"session_id": "s"})
    assert error_fields(caught) == {"code"}
    assert caught.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"code": "x"}, "exactly one of session_id and environment"),
        ({"code": "x", "session_id": "s", "environment": "e2b-python", "mode": "async"}, "exactly one"),
        ({"code": "x", "environment": "e2b-python"}, 'needs "mode": "async"'),
        ({"code": "x", "session_id": "s", "callback_url": "https://example.com/h"}, 'needs "mode": "async"'),
    ],
)
def test_execute_request_needs_one_target_and_async_for_one_off_sessions_and_callbacks(
    body: dict[str, str], says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ExecuteRequest.model_validate(body)
    assert says in str(caught.value)


def test_execute_request_async_forms() -> None:
    one_off = ExecuteRequest.model_validate({"environment": "e2b-python", "code": "x", "mode": "async"})
    assert (one_off.session_id, one_off.mode) == (None, "async")
    with pytest.raises(ValidationError):
        ExecuteRequest.model_validate({"session_id": "s", "code": "x", "mode": "later"})


@pytest.mark.parametrize(
    "session_id",
    ["", "../ses_x", "ses x", "ses/x", "ses_x\n", "s" * 65, "ses_%00", "ses_é", "ses.x", "ses_x#", "*"],
)
def test_execute_request_rejects_bad_session_id(session_id: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExecuteRequest.model_validate({"session_id": session_id, "code": "x"})
    assert error_fields(caught) == {"session_id"}


@pytest.mark.parametrize("session_id", ["s", "ses_abc-DEF_123", "s" * 64])
def test_execute_request_accepts_valid_session_id(session_id: str) -> None:
    assert ExecuteRequest.model_validate({"session_id": session_id, "code": ""}).session_id == session_id


# The model holds the widest bound (async); the service holds sync requests to 25 s.
@pytest.mark.parametrize(("timeout", "ok"), [(0, False), (1, True), (900, True), (901, False)])
def test_execute_request_bounds_timeout(timeout: int, ok: bool) -> None:
    body = {"session_id": "s", "code": "x", "timeout_seconds": timeout}
    if ok:
        assert ExecuteRequest.model_validate(body).timeout_seconds == timeout
    else:
        with pytest.raises(ValidationError):
            ExecuteRequest.model_validate(body)


def test_execute_request_rejects_unknown_fields_and_bad_envs() -> None:
    with pytest.raises(ValidationError):
        ExecuteRequest.model_validate({"session_id": "s", "code": "x", "tenant_id": "t"})
    with pytest.raises(ValidationError):
        ExecuteRequest.model_validate({"session_id": "s", "code": "x", "envs": {"1ABC": "v"}})
    with pytest.raises(ValidationError):
        ExecuteRequest.model_validate(
            {"session_id": "s", "code": "x", "envs": {f"V{i}": "v" for i in range(MAX_ENVS + 1)}}
        )
    with pytest.raises(ValidationError):
        ExecuteRequest.model_validate({"session_id": "s", "code": "x", "language": "p" * 33})


# --- WriteFileRequest --------------------------------------------------------------------------


def test_write_file_request_accepts_valid_body() -> None:
    request = WriteFileRequest.model_validate({"session_id": "s1", "file_path": "a.txt", "content": "aGk="})
    assert (request.session_id, request.file_path, request.content) == ("s1", "a.txt", "aGk=")


@pytest.mark.parametrize(
    "body",
    [
        {"file_path": "a.txt", "content": ""},
        {"session_id": "s1", "content": ""},
        {"session_id": "s1", "file_path": "a.txt"},
        {"session_id": "s1", "file_path": "", "content": ""},
        {"session_id": "s1", "file_path": "p" * 4097, "content": ""},
        {"session_id": "../s", "file_path": "a.txt", "content": ""},
        {"session_id": "s1", "file_path": "a.txt", "content": "", "mode": "0777"},
    ],
)
def test_write_file_request_rejects_bad_body(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        WriteFileRequest.model_validate(body)


# --- SessionResponse / ExecuteResponse ---------------------------------------------------------


def make_session(**overrides: Any) -> Session:
    fields: dict[str, Any] = {
        "session_id": "ses_0190a1b2c3d4e5f60718293a4b5c",
        "tenant_id": "tenant-a",
        "agent": "code_executor",
        "environment": "e2b-python",
        "provider": Provider.E2B,
        "status": SessionStatus.ACTIVE,
        "created_at": 1_700_000_000,
        "expires_at": 1_700_000_900,
        "updated_at": 1_700_000_060,
        "sandbox_id": "sbx_secret_internal",
        "metadata": {"run": "42"},
    }
    fields.update(overrides)
    return Session(**fields)


def test_session_response_from_domain_uses_iso_timestamps_ending_in_z() -> None:
    response = SessionResponse.from_domain(make_session())
    assert response.created_at == "2023-11-14T22:13:20Z"
    assert response.expires_at == "2023-11-14T22:28:20Z"
    assert response.updated_at == "2023-11-14T22:14:20Z"
    for stamp in (response.created_at, response.expires_at, response.updated_at):
        assert ISO_Z.match(stamp)
    assert response.closed_at is None


def test_session_response_from_domain_maps_fields_and_hides_internals() -> None:
    session = make_session(
        status=SessionStatus.CLOSED, closed_at=1_700_000_120, failure_reason=None, metadata={"a": "b"}
    )
    dumped = SessionResponse.from_domain(session).model_dump(mode="json")
    assert dumped["status"] == "closed"
    assert dumped["provider"] == "e2b"
    assert dumped["closed_at"] == "2023-11-14T22:15:20Z"
    assert dumped["metadata"] == {"a": "b"}
    assert dumped["session_id"] == session.session_id
    assert "tenant_id" not in dumped
    assert "sandbox_id" not in dumped


def test_session_response_from_domain_carries_failure_reason() -> None:
    response = SessionResponse.from_domain(make_session(status=SessionStatus.FAILED, failure_reason="boom"))
    assert (response.status, response.failure_reason) == ("failed", "boom")


def test_execute_response_from_domain_lists_formats_and_flattens_them() -> None:
    outcome = ExecutionOutcome(
        status=ExecutionStatus.OK,
        stdout="hi\n",
        stderr="warn\n",
        results=(
            RichResult({"text": "2", "html": "<b>2</b>"}, is_main_result=True),
            RichResult({"png": "iVBORw0KGgo=", "text": "<Figure>"}),
        ),
        execution_count=3,
        sandbox_duration_ms=12.3456,
    )
    response = ExecuteResponse.from_domain("ses_1", Language.PYTHON.value, outcome, duration_ms=45.6789)
    assert response.results == [
        {"is_main_result": True, "formats": ["html", "text"], "text": "2", "html": "<b>2</b>"},
        {"is_main_result": False, "formats": ["png", "text"], "png": "iVBORw0KGgo=", "text": "<Figure>"},
    ]
    assert response.status == "ok"
    assert response.language == "python"
    assert (response.stdout, response.stderr) == ("hi\n", "warn\n")
    assert response.error is None
    assert response.execution_count == 3
    assert response.truncated is False
    assert response.duration_ms == 45.68
    assert response.sandbox_duration_ms == 12.35


def test_execute_response_from_domain_maps_error_and_truncation() -> None:
    outcome = ExecutionOutcome(
        status=ExecutionStatus.ERROR,
        error=ExecutionErrorInfo(
            name="ZeroDivisionError", value="division by zero", traceback="Traceback..."
        ),
        truncated=True,
    )
    dumped = ExecuteResponse.from_domain("ses_1", "python", outcome, 1.0).model_dump(mode="json")
    assert dumped["status"] == "error"
    assert dumped["error"] == {
        "name": "ZeroDivisionError",
        "value": "division by zero",
        "traceback": "Traceback...",
    }
    assert dumped["truncated"] is True
    assert dumped["results"] == []


@pytest.mark.parametrize("status", list(ExecutionStatus))
def test_execute_response_from_domain_reports_every_status(status: ExecutionStatus) -> None:
    response = ExecuteResponse.from_domain("s", "bash", ExecutionOutcome(status=status), 0.0)
    assert response.status == status.value


# --- strict types: no coercion (README: a wrong type is a 422) -----------------------------------


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (ExecuteRequest, {"session_id": "ses_1", "code": "1", "timeout_seconds": "10"}),
        (ExecuteRequest, {"session_id": "ses_1", "code": "1", "timeout_seconds": True}),
        (ExecuteRequest, {"session_id": "ses_1", "code": "1", "timeout_seconds": 10.0}),
        (ExecuteRequest, {"session_id": 1, "code": "1"}),
        (CreateSessionRequest, {"timeout_seconds": "900"}),
        (CreateSessionRequest, {"metadata": {"k": 1}}),
        (KeepAliveRequest, {"timeout_seconds": "600"}),
        (KeepAliveRequest, {"timeout_seconds": False}),
        (WriteFileRequest, {"session_id": "ses_1", "file_path": "a", "content": b"aGk="}),
    ],
    ids=repr,
)
def test_request_models_refuse_values_of_another_type(model: type[Any], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)
