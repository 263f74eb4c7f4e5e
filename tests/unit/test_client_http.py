"""The Python client's HTTP behaviour against httpx.MockTransport: retries, errors, headers, paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from sandbox_gateway_client import Gateway, GatewayError
from sandbox_gateway_client.client import MAX_RETRY_AFTER_SECONDS
from sandbox_gateway_client.errors import (
    ConnectionFailed,
    Forbidden,
    ProviderUnavailable,
    QuotaExceeded,
    SessionBusy,
    SessionClosed,
    SessionGone,
    SessionNotFound,
    Unauthorized,
    ValidationError,
    error_for_code,
)

SID = "ses_0123456789abcdef"
SESSION = {
    "session_id": SID,
    "status": "active",
    "agent": "code_executor",
    "environment": "e2b-python",
    "provider": "e2b",
    "created_at": "2026-11-26T10:18:12Z",
    "expires_at": "2026-11-26T10:33:12Z",
    "updated_at": "2026-11-26T10:18:13Z",
    "closed_at": None,
    "failure_reason": None,
    "metadata": {},
}
EXECUTION = {
    "session_id": SID,
    "language": "python",
    "status": "ok",
    "stdout": "42\n",
    "stderr": "",
    "results": [],
    "error": None,
    "execution_count": 1,
    "truncated": False,
    "duration_ms": 68.0,
    "sandbox_duration_ms": 45.0,
}

QUOTAS = {
    "max_active_sessions": 5,
    "max_session_seconds": 3600,
    "max_execution_seconds": 25,
    "max_code_bytes": 1_000_000,
    "max_file_bytes": 4_194_304,
}
DAY = {
    "day": "2026-11-26",
    "sessions_created": 3,
    "executions": 7,
    "sandbox_seconds": 1200,
    "bytes_uploaded": 10,
    "bytes_downloaded": 20,
}
USAGE = {"tenant_id": "acme", "active_sessions": 2, "quotas": QUOTAS, "days": [DAY]}


def error(status: int, code: str, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "request_id": "req-1"} | extra}
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    """A MockTransport handler answering from a script, keeping every request it saw."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer


def gateway(handler: Recorder, sleeps: list[float] | None = None, **options: Any) -> Gateway:
    record = sleeps if sleeps is not None else []
    return Gateway(
        "http://gateway.test", transport=httpx.MockTransport(handler), sleep=record.append, **options
    )


def test_client_retries_503_after_the_servers_retry_after() -> None:
    handler = Recorder(
        error(503, "provider_unavailable", {"Retry-After": "5"}), httpx.Response(200, json=SESSION)
    )
    sleeps: list[float] = []

    info = gateway(handler, sleeps).session(SID).refresh()

    assert info.session_id == SID
    assert sleeps == [5.0]
    assert len(handler.requests) == 2


def test_client_retries_409_busy_execute_with_the_servers_retry_after() -> None:
    handler = Recorder(
        error(409, "session_busy", {"Retry-After": "1"}),
        error(409, "session_busy", {"Retry-After": "1"}),
        httpx.Response(200, json=EXECUTION),
    )
    sleeps: list[float] = []

    execution = gateway(handler, sleeps).session(SID).run("print(42)")

    assert execution.ok and execution.stdout == "42\n"
    assert sleeps == [1.0, 1.0]


def test_client_caps_a_long_retry_after() -> None:
    handler = Recorder(
        error(503, "storage_unavailable", {"Retry-After": "3600"}), httpx.Response(200, json=SESSION)
    )
    sleeps: list[float] = []

    gateway(handler, sleeps).session(SID).refresh()

    assert sleeps == [MAX_RETRY_AFTER_SECONDS]


def test_client_backs_off_when_no_retry_after_is_given() -> None:
    handler = Recorder(
        error(503, "provider_unavailable"),
        error(503, "provider_unavailable"),
        httpx.Response(200, json=SESSION),
    )
    sleeps: list[float] = []

    gateway(handler, sleeps).session(SID).refresh()

    assert len(sleeps) == 2
    assert 0 < sleeps[0] < sleeps[1] <= MAX_RETRY_AFTER_SECONDS


def test_client_never_retries_a_400() -> None:
    handler = Recorder(error(400, "unknown_environment"), httpx.Response(201, json=SESSION))
    sleeps: list[float] = []

    with pytest.raises(GatewayError) as raised:
        gateway(handler, sleeps).create_session("no-such-env")

    assert raised.value.status == 400 and raised.value.code == "unknown_environment"
    assert len(handler.requests) == 1 and sleeps == []


def test_client_gives_up_after_max_retries_with_the_typed_error() -> None:
    handler = Recorder(error(409, "session_busy", {"Retry-After": "1"}))
    sleeps: list[float] = []

    with pytest.raises(SessionBusy) as raised:
        gateway(handler, sleeps, max_retries=2).session(SID).run("1")

    assert len(handler.requests) == 3  # the first try and two retries
    assert sleeps == [1.0, 1.0]
    assert raised.value.status == 409 and raised.value.retry_after == 1.0
    assert raised.value.request_id == "req-1"


def test_client_sends_the_api_key_as_a_bearer_token() -> None:
    handler = Recorder(httpx.Response(200, json={"environments": []}))

    gateway(handler, api_key="sk-test").environments()

    assert handler.requests[0].headers["Authorization"] == "Bearer sk-test"


def test_client_reads_url_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGW_URL", "http://from-env.test/prod/")
    monkeypatch.setenv("SGW_API_KEY", "sk-env")
    handler = Recorder(httpx.Response(200, json={"environments": []}))

    Gateway(transport=httpx.MockTransport(handler)).environments()

    assert str(handler.requests[0].url) == "http://from-env.test/prod/api/environments"
    assert handler.requests[0].headers["Authorization"] == "Bearer sk-env"


def test_client_without_an_api_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGW_API_KEY", raising=False)
    handler = Recorder(httpx.Response(200, json={"environments": []}))

    gateway(handler).environments()

    assert "Authorization" not in handler.requests[0].headers


def test_client_without_a_url_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGW_URL", raising=False)

    with pytest.raises(ValueError, match="SGW_URL"):
        Gateway()


def test_create_sends_one_idempotency_key_on_every_attempt() -> None:
    handler = Recorder(
        error(503, "provider_unavailable", {"Retry-After": "0"}), httpx.Response(201, json=SESSION)
    )

    session = gateway(handler).create_session("e2b-python", metadata={"k": "v"})

    keys = [request.headers.get("Idempotency-Key") for request in handler.requests]
    assert keys[0] and keys[0] == keys[1]
    assert json.loads(handler.requests[0].content) == {"environment": "e2b-python", "metadata": {"k": "v"}}
    assert session.id == SID and session.info is not None and session.info.status == "active"


def test_create_uses_the_callers_idempotency_key() -> None:
    handler = Recorder(httpx.Response(201, json=SESSION))

    gateway(handler).create_session(idempotency_key="order-17")

    assert handler.requests[0].headers["Idempotency-Key"] == "order-17"


def test_create_retries_a_dropped_connection_with_the_same_key() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    handler = Recorder(drop, httpx.Response(201, json=SESSION))

    gateway(handler).create_session()

    assert len(handler.requests) == 2
    assert handler.requests[0].headers["Idempotency-Key"] == handler.requests[1].headers["Idempotency-Key"]


def test_execute_is_not_repeated_after_its_request_may_have_arrived() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    handler = Recorder(drop, httpx.Response(200, json=EXECUTION))

    with pytest.raises(ConnectionFailed) as raised:
        gateway(handler).session(SID).run("counter += 1")

    assert len(handler.requests) == 1
    assert raised.value.status == 0 and raised.value.code == "connection_failed"


def test_execute_is_repeated_when_the_connection_never_opened() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    handler = Recorder(refuse, httpx.Response(200, json=EXECUTION))

    assert gateway(handler).session(SID).run("1").ok
    assert len(handler.requests) == 2


def test_execute_is_not_repeated_after_api_gateways_own_503() -> None:
    # API Gateway's 503 means the function did not answer in time: the code may have run.
    handler = Recorder(
        httpx.Response(503, json={"message": "Service Unavailable"}), httpx.Response(200, json=EXECUTION)
    )

    with pytest.raises(GatewayError) as raised:
        gateway(handler).session(SID).run("counter += 1")

    assert len(handler.requests) == 1
    assert raised.value.code == "http_503" and raised.value.message == "Service Unavailable"


def test_an_unknown_error_code_raises_gateway_error_itself() -> None:
    handler = Recorder(error(418, "brand_new_code"))

    with pytest.raises(GatewayError) as raised:
        gateway(handler).environments()

    assert type(raised.value) is GatewayError
    assert raised.value.code == "brand_new_code" and raised.value.status == 418


def test_a_non_json_error_body_raises_gateway_error_with_the_status_code() -> None:
    handler = Recorder(httpx.Response(502, text="<html>Bad Gateway</html>"))

    with pytest.raises(GatewayError) as raised:
        gateway(handler).environments()

    assert type(raised.value) is GatewayError
    assert raised.value.code == "http_502" and raised.value.status == 502


def test_validation_errors_carry_their_details() -> None:
    problems = [{"field": "timeout_seconds", "message": "Input should be greater than or equal to 60"}]
    handler = Recorder(error(422, "validation_error", details=problems))

    with pytest.raises(ValidationError) as raised:
        gateway(handler).create_session(timeout_seconds=1)

    assert raised.value.details == problems


def test_error_classes_follow_the_servers_hierarchy() -> None:
    assert error_for_code("session_not_found") is SessionNotFound
    assert issubclass(error_for_code("session_closed"), SessionGone)
    assert issubclass(error_for_code("provider_not_configured"), ProviderUnavailable)
    assert error_for_code("never_heard_of_it") is GatewayError


def test_a_malformed_success_body_raises_gateway_error() -> None:
    handler = Recorder(httpx.Response(200, json={"session_id": SID}))

    with pytest.raises(GatewayError) as raised:
        gateway(handler).session(SID).refresh()

    assert raised.value.code == "invalid_response"


def test_list_sessions_follows_pages_up_to_the_limit() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("next_token")
        number = int(token) if token else 0
        sessions = [
            SESSION | {"session_id": f"ses_{number}_{i}"} for i in range(int(request.url.params["limit"]))
        ]
        return httpx.Response(200, json={"sessions": sessions, "next_token": str(number + 1)})

    handler = Recorder(page)

    sessions = gateway(handler).list_sessions(limit=150)

    assert len(sessions) == 150
    assert [r.url.params["limit"] for r in handler.requests] == ["100", "50"]
    assert handler.requests[1].url.params["next_token"] == "1"


def test_file_paths_keep_their_slashes_and_mark_absolute_ones() -> None:
    handler = Recorder(httpx.Response(204))
    files = gateway(handler).session(SID).files

    files.delete("dir with space/a#b?.txt")
    files.delete("/tmp/x.txt")

    paths = [request.url.raw_path.decode() for request in handler.requests]
    assert paths == [
        f"/api/e2b/files/{SID}/dir%20with%20space/a%23b%3F.txt",
        f"/api/e2b/files/{SID}/%2Ftmp/x.txt",
    ]


def test_file_write_with_progress_sends_the_same_body_and_reports_to_the_end() -> None:
    data = bytes(range(256)) * 1024  # 256 KiB: several chunks
    handler = Recorder(
        httpx.Response(201, json={"session_id": SID, "path": "/workspace/d.bin", "size": len(data)})
    )
    calls: list[tuple[int, int]] = []

    written = gateway(handler).session(SID).files.write("d.bin", data, progress=lambda *c: calls.append(c))

    body = json.loads(handler.requests[0].content)
    assert base64.b64decode(body["content"]) == data and body["file_path"] == "d.bin"
    assert handler.requests[0].headers["Content-Length"] == str(len(handler.requests[0].content))
    assert written.size == len(data)
    assert len(calls) > 2 and calls[-1] == (len(data), len(data))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_file_read_asks_for_raw_bytes_and_reports_progress() -> None:
    data = b"\x00\xff" * 100_000
    handler = Recorder(
        httpx.Response(200, content=data, headers={"Content-Type": "application/octet-stream"})
    )
    calls: list[tuple[int, int]] = []

    read = gateway(handler).session(SID).files.read("d.bin", progress=lambda *c: calls.append(c))

    assert read == data
    assert handler.requests[0].headers["Accept"] == "application/octet-stream"
    assert calls and calls[-1] == (len(data), len(data))


def test_session_context_closes_on_exit_and_keeps_the_blocks_exception() -> None:
    handler = Recorder(error(410, "session_closed"))

    with pytest.raises(RuntimeError) as raised, gateway(handler).session(SID):
        raise RuntimeError("the block failed")

    assert handler.requests[-1].method == "DELETE"
    assert any("closing session" in note for note in raised.value.__notes__)


def test_session_context_raises_a_failed_close_when_the_block_succeeded() -> None:
    handler = Recorder(error(410, "session_closed"))

    with pytest.raises(SessionClosed), gateway(handler).session(SID):
        pass


def test_usage_sends_the_days_asked_for_and_parses_the_answer() -> None:
    handler = Recorder(httpx.Response(200, json=USAGE))

    usage = gateway(handler).usage(since=date(2026, 11, 1), until="2026-11-26")

    request = handler.requests[0]
    assert request.method == "GET" and request.url.path == "/api/usage"
    assert dict(request.url.params) == {"since": "2026-11-01", "until": "2026-11-26"}
    assert usage.tenant_id == "acme" and usage.active_sessions == 2
    assert usage.quotas.max_active_sessions == 5
    assert usage.days[0].sandbox_seconds == 1200 and usage.days[0].day == "2026-11-26"


def test_usage_without_days_leaves_them_to_the_server() -> None:
    handler = Recorder(httpx.Response(200, json=USAGE | {"days": []}))

    assert gateway(handler).usage().days == []
    assert not handler.requests[0].url.params


def test_a_live_session_quota_is_retried_after_its_retry_after() -> None:
    handler = Recorder(error(429, "quota_exceeded", {"Retry-After": "30"}), httpx.Response(201, json=SESSION))
    sleeps: list[float] = []

    session = gateway(handler, sleeps).create_session()

    assert session.id == SID
    assert sleeps == [30.0]
    keys = {request.headers["Idempotency-Key"] for request in handler.requests}
    assert len(handler.requests) == 2 and len(keys) == 1


def test_a_live_session_quota_still_full_after_the_retries_raises_quota_exceeded() -> None:
    handler = Recorder(error(429, "quota_exceeded", {"Retry-After": "30"}))
    sleeps: list[float] = []

    with pytest.raises(QuotaExceeded) as raised:
        gateway(handler, sleeps, max_retries=1).create_session()

    assert len(handler.requests) == 2 and sleeps == [30.0]
    assert raised.value.status == 429 and raised.value.retry_after == 30.0


def test_a_quota_without_retry_after_is_not_retried() -> None:
    # Code or file size, lifetime, execution timeout: waiting changes nothing.
    handler = Recorder(error(429, "quota_exceeded"), httpx.Response(200, json=EXECUTION))
    sleeps: list[float] = []

    with pytest.raises(QuotaExceeded) as raised:
        gateway(handler, sleeps).session(SID).run("1", timeout_seconds=25)

    assert len(handler.requests) == 1 and sleeps == []
    assert raised.value.code == "quota_exceeded" and raised.value.retry_after is None


def test_api_gateways_throttling_is_retried_with_backoff_even_for_an_execute() -> None:
    # API Gateway throttles before the function is invoked: the code has not run.
    handler = Recorder(
        httpx.Response(429, json={"message": "Too Many Requests"}), httpx.Response(200, json=EXECUTION)
    )
    sleeps: list[float] = []

    assert gateway(handler, sleeps).session(SID).run("counter += 1").ok
    assert len(handler.requests) == 2 and len(sleeps) == 1 and sleeps[0] > 0


@pytest.mark.parametrize(
    ("status", "body"),
    [(401, {"message": "Unauthorized"}), (403, {"message": "Forbidden"})],
    ids=["missing-key", "refused-key"],
)
def test_api_gateways_authorizer_answers_raise_unauthorized(status: int, body: dict[str, str]) -> None:
    handler = Recorder(httpx.Response(status, json=body))

    with pytest.raises(Unauthorized) as raised:
        gateway(handler).environments()

    assert raised.value.status == status and raised.value.code == f"http_{status}"
    assert "API key" in raised.value.message and body["message"] in raised.value.message
    assert len(handler.requests) == 1


def test_the_gateways_own_key_errors_raise_their_classes() -> None:
    handler = Recorder(error(401, "unauthorized"), error(403, "forbidden"))
    gw = gateway(handler)

    with pytest.raises(Unauthorized) as missing:
        gw.environments()
    with pytest.raises(Forbidden) as scope:
        gw.usage()

    assert missing.value.code == "unauthorized" and scope.value.code == "forbidden"
    assert len(handler.requests) == 2


def test_a_403_that_is_not_api_gateways_stays_a_plain_gateway_error() -> None:
    handler = Recorder(httpx.Response(403, text="<html>blocked by a proxy</html>"))

    with pytest.raises(GatewayError) as raised:
        gateway(handler).environments()

    assert type(raised.value) is GatewayError and raised.value.code == "http_403"


def test_on_retry_is_told_the_reason_and_the_wait_before_each_retry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    handler = Recorder(
        error(429, "quota_exceeded", {"Retry-After": "30"}), refuse, httpx.Response(201, json=SESSION)
    )
    told: list[tuple[str, float]] = []
    sleeps: list[float] = []

    gateway(
        handler, sleeps, on_retry=lambda reason, delay: told.append((reason.code, delay))
    ).create_session()

    assert [code for code, _ in told] == ["quota_exceeded", "connection_failed"]
    assert [delay for _, delay in told] == sleeps and sleeps[0] == 30.0
