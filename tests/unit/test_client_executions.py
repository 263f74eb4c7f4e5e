"""The Python client's async executions against httpx.MockTransport: what submit sends and how a
202 parses, waiting on a fake clock, large results fetched without the API key, idempotency keys
on run and file writes, session listings, callback secrets, error codes, and the `sgw` commands."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sandbox_gateway_client import ExecutionRecord, Gateway, GatewayError, cli
from sandbox_gateway_client.cli import EXIT_API_ERROR, EXIT_CODE_RAISED, EXIT_PENDING, EXIT_TIMEOUT, app
from sandbox_gateway_client.errors import (
    AsyncUnavailable,
    ExecutionNotFound,
    IdempotencyKeyInUse,
    InvalidCallbackUrl,
)
from typer.testing import CliRunner

SID = "ses_0123456789abcdef"
EID = "exe_0194f0a1b2c3d4e5f6a7b8c9d0e1f2"
HREF = f"/api/executions/{EID}"
KEY = "sk-secret-key"
RESULT: dict[str, Any] = {
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
    "execution_id": EID,
}
RECORD = {
    "execution_id": EID,
    "status": "queued",
    "mode": "async",
    "source": "api",
    "session_id": SID,
    "environment": None,
    "language": "python",
    "created_at": "2026-11-26T10:18:12Z",
    "started_at": None,
    "finished_at": None,
    "failure": None,
    "result": None,
    "result_url": None,
    "result_url_expires_at": None,
    "result_bytes": None,
    "callback": None,
}
RUNNING = RECORD | {"status": "running", "started_at": "2026-11-26T10:18:13Z"}
SUCCEEDED = RUNNING | {"status": "succeeded", "finished_at": "2026-11-26T10:18:14Z", "result": RESULT}
PRESIGNED = "http://bucket.storage.test/results/acme/exe.json?X-Amz-Signature=abc&X-Amz-Expires=900"
LARGE = SUCCEEDED | {"result": None, "result_url": PRESIGNED, "result_bytes": 12_000_000}
QUEUED = {"execution_id": EID, "status": "queued", "session_id": SID, "environment": None, "href": HREF}


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "request_id": "req-1"}}
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


class FakeClock:
    """Time that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def gateway(handler: Recorder, clock: FakeClock | None = None, **options: Any) -> Gateway:
    clock = clock or FakeClock()
    return Gateway(
        "http://gateway.test",
        api_key=KEY,
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        clock=clock,
        **options,
    )


def queued(headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(202, json=QUEUED, headers={"Location": HREF} | (headers or {}))


# --- submit ----------------------------------------------------------------------------------------


def test_session_submit_sends_an_async_execute_and_parses_the_202() -> None:
    handler = Recorder(queued())

    submitted = (
        gateway(handler)
        .session(SID)
        .submit("print(42)", timeout_seconds=600, callback_url="https://hooks.example.com/x")
    )

    request = handler.requests[0]
    assert request.method == "POST" and request.url.path == "/api/e2b/execute"
    assert json.loads(request.content) == {
        "session_id": SID,
        "code": "print(42)",
        "mode": "async",
        "timeout_seconds": 600,
        "callback_url": "https://hooks.example.com/x",
    }
    assert submitted.execution_id == EID and submitted.status == "queued"
    assert submitted.href == HREF and submitted.session_id == SID and submitted.environment is None


def test_gateway_submit_names_an_environment_instead_of_a_session() -> None:
    handler = Recorder(httpx.Response(202, json=QUEUED | {"session_id": None, "environment": "e2b-python"}))

    submitted = gateway(handler).submit("print(1)", environment="e2b-python", envs={"A": "1"})

    body = json.loads(handler.requests[0].content)
    assert body == {"environment": "e2b-python", "code": "print(1)", "mode": "async", "envs": {"A": "1"}}
    assert submitted.environment == "e2b-python" and submitted.session_id is None


def test_submit_sends_one_idempotency_key_on_every_attempt() -> None:
    # A dropped answer is retried: the key makes the second attempt find the queued execution.
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    handler = Recorder(drop, queued())

    assert gateway(handler).session(SID).submit("x += 1").execution_id == EID

    keys = [request.headers.get("Idempotency-Key") for request in handler.requests]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]


def test_submit_uses_the_callers_idempotency_key() -> None:
    handler = Recorder(queued())

    gateway(handler).submit("1", idempotency_key="order-17")

    assert handler.requests[0].headers["Idempotency-Key"] == "order-17"


def test_submit_while_the_same_key_is_in_flight_retries_after_retry_after() -> None:
    handler = Recorder(error(409, "idempotency_key_in_use", {"Retry-After": "2"}), queued())
    clock = FakeClock()

    gateway(handler, clock).session(SID).submit("1", idempotency_key="k")

    assert clock.sleeps == [2.0] and len(handler.requests) == 2


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (error(400, "invalid_callback_url"), InvalidCallbackUrl),
        (error(503, "async_unavailable"), AsyncUnavailable),
    ],
    ids=["invalid_callback_url", "async_unavailable"],
)
def test_submit_errors_raise_their_classes(answer: httpx.Response, raised: type[GatewayError]) -> None:
    handler = Recorder(answer)

    with pytest.raises(raised) as caught:
        gateway(handler, max_retries=1).session(SID).submit("1", callback_url="http://10.0.0.1/")

    assert caught.value.code == answer.json()["error"]["code"]


# --- idempotency keys on run and file writes ------------------------------------------------------


def test_run_sends_no_idempotency_key_unless_given_and_is_then_retried() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    handler = Recorder(httpx.Response(200, json=RESULT), drop, httpx.Response(200, json=RESULT))
    session = gateway(handler).session(SID)

    first = session.run("print(42)")
    second = session.run("print(42)", idempotency_key="step-3")

    assert first.execution_id == EID and second.stdout == "42\n"
    assert "Idempotency-Key" not in handler.requests[0].headers
    # With a key a repeat is a replay, so a request that may have arrived is sent again.
    assert [r.headers.get("Idempotency-Key") for r in handler.requests[1:]] == ["step-3", "step-3"]


@pytest.mark.parametrize("with_progress", [False, True], ids=["plain", "progress"])
def test_file_write_sends_the_idempotency_key(with_progress: bool) -> None:
    handler = Recorder(httpx.Response(201, json={"session_id": SID, "path": "/workspace/a", "size": 1}))
    progress = (lambda done, total: None) if with_progress else None

    gateway(handler).session(SID).files.write("a", b"a", progress=progress, idempotency_key="upload-1")

    assert handler.requests[0].headers["Idempotency-Key"] == "upload-1"
    assert json.loads(handler.requests[0].content)["file_path"] == "a"


# --- reading and waiting ----------------------------------------------------------------------------


def test_get_execution_parses_the_record_and_its_result() -> None:
    handler = Recorder(httpx.Response(200, json=SUCCEEDED))

    record = gateway(handler).get_execution(EID)

    assert handler.requests[0].url.path == HREF
    assert record.finished and record.status == "succeeded"
    assert record.execution is not None and record.execution.stdout == "42\n" and record.execution.ok


def test_get_execution_of_an_unknown_id_raises_execution_not_found() -> None:
    handler = Recorder(error(404, "execution_not_found"))

    with pytest.raises(ExecutionNotFound) as raised:
        gateway(handler).get_execution("exe_nope")

    assert raised.value.status == 404 and len(handler.requests) == 1


def test_a_record_whose_result_is_not_an_execution_is_an_invalid_response() -> None:
    handler = Recorder(httpx.Response(200, json=SUCCEEDED | {"result": {"stdout": "x"}}))

    with pytest.raises(GatewayError) as raised:
        gateway(handler).get_execution(EID)

    assert raised.value.code == "invalid_response"


def test_execution_ids_are_one_path_segment() -> None:
    handler = Recorder(error(404, "execution_not_found"))

    with pytest.raises(ExecutionNotFound):
        gateway(handler).get_execution("../sessions/x")

    assert handler.requests[0].url.raw_path.decode() == "/api/executions/..%2Fsessions%2Fx"


def test_wait_polls_until_the_execution_is_finished() -> None:
    handler = Recorder(
        httpx.Response(200, json=RECORD),
        httpx.Response(200, json=RUNNING),
        httpx.Response(200, json=RUNNING),
        httpx.Response(200, json=SUCCEEDED),
    )
    clock = FakeClock()

    record = gateway(handler, clock).wait(EID, poll_interval=0.5)

    assert record.status == "succeeded" and record.execution is not None
    assert len(handler.requests) == 4 and clock.sleeps == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("status", ["failed", "timed_out"])
def test_wait_returns_failed_and_timed_out_executions_too(status: str) -> None:
    failure = {"code": "session_not_found", "message": "no session"} if status == "failed" else None
    handler = Recorder(httpx.Response(200, json=RUNNING | {"status": status, "failure": failure}))

    record = gateway(handler).wait(EID)

    assert record.finished and record.status == status
    assert (record.failure.code if record.failure else None) == (failure or {}).get("code")


def test_wait_raises_timeout_error_when_the_execution_is_still_running_at_the_deadline() -> None:
    handler = Recorder(httpx.Response(200, json=RUNNING))
    clock = FakeClock()

    with pytest.raises(TimeoutError, match=r"still running after 2\.5 s"):
        gateway(handler, clock).wait(EID, timeout=2.5, poll_interval=1.0)

    # It sleeps no longer than the time left, and asks once more at the deadline.
    assert clock.sleeps == [1.0, 1.0, 0.5]
    assert len(handler.requests) == 4


def test_wait_refuses_a_poll_interval_that_would_spin() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        gateway(Recorder(httpx.Response(200, json=RUNNING))).wait(EID, poll_interval=0)


# --- large results through a presigned URL ----------------------------------------------------------


def test_wait_fetch_downloads_a_large_result_without_the_api_key() -> None:
    def storage(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "bucket.storage.test"
        return httpx.Response(200, json=RESULT | {"stdout": "x" * 1000})

    handler = Recorder(httpx.Response(200, json=RUNNING), httpx.Response(200, json=LARGE), storage)

    record = gateway(handler).wait(EID, fetch=True)

    download = handler.requests[-1]
    assert str(download.url) == PRESIGNED  # the signed query string is sent as it was given
    assert "Authorization" not in download.headers
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in handler.requests[:-1])
    assert record.result_url == PRESIGNED and record.execution is not None
    assert record.execution.stdout == "x" * 1000


def test_wait_without_fetch_leaves_a_large_result_at_its_url() -> None:
    handler = Recorder(httpx.Response(200, json=LARGE))

    record = gateway(handler).wait(EID)

    assert record.execution is None and record.result_url == PRESIGNED
    assert len(handler.requests) == 1


def test_fetch_result_replaces_an_expired_url_once() -> None:
    fresh = PRESIGNED.replace("abc", "def")
    handler = Recorder(
        httpx.Response(403, text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"),
        httpx.Response(200, json=LARGE | {"result_url": fresh}),
        httpx.Response(200, json=RESULT),
    )

    record = gateway(handler).fetch_result(ExecutionRecord.model_validate(LARGE))

    assert [str(r.url) for r in handler.requests] == [PRESIGNED, f"http://gateway.test{HREF}", fresh]
    assert [("Authorization" in r.headers) for r in handler.requests] == [False, True, False]
    assert record.execution is not None and record.result_url == fresh


def test_fetch_result_of_a_stored_object_that_is_not_an_execution_is_an_invalid_response() -> None:
    handler = Recorder(httpx.Response(200, json={"nothing": "here"}))

    with pytest.raises(GatewayError) as raised:
        gateway(handler).fetch_result(ExecutionRecord.model_validate(LARGE))

    assert raised.value.code == "invalid_response"


def test_fetch_result_of_a_record_without_url_sends_nothing() -> None:
    handler = Recorder(httpx.Response(500))
    record = ExecutionRecord.model_validate(SUCCEEDED)

    assert gateway(handler).fetch_result(record) is record
    assert handler.requests == []


# --- listing and callback secrets -------------------------------------------------------------------


def test_session_executions_follow_pages_up_to_the_limit() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("next_token") or 0)
        executions = [
            RECORD | {"execution_id": f"exe_{number}_{i}"} for i in range(int(request.url.params["limit"]))
        ]
        return httpx.Response(200, json={"executions": executions, "next_token": str(number + 1)})

    handler = Recorder(page)

    found = gateway(handler).session(SID).executions(limit=120)

    assert len(found) == 120 and found[0].execution_id == "exe_0_0"
    assert {r.url.path for r in handler.requests} == {f"/api/sessions/{SID}/executions"}
    assert [r.url.params["limit"] for r in handler.requests] == ["100", "20"]
    assert handler.requests[1].url.params["next_token"] == "1"


def test_session_executions_without_a_limit_read_every_page() -> None:
    handler = Recorder(
        httpx.Response(200, json={"executions": [RECORD], "next_token": "t"}),
        httpx.Response(200, json={"executions": [RUNNING], "next_token": None}),
    )

    found = gateway(handler).session(SID).executions()

    assert [record.status for record in found] == ["queued", "running"]


def test_callback_secret_reads_and_rotates() -> None:
    handler = Recorder(httpx.Response(200, json={"secret": "s1"}), httpx.Response(200, json={"secret": "s2"}))
    gw = gateway(handler)

    assert gw.callback_secret() == "s1"
    assert gw.rotate_callback_secret() == "s2"
    assert [(r.method, r.url.path) for r in handler.requests] == [
        ("GET", "/api/callbacks/secret"),
        ("POST", "/api/callbacks/secret"),
    ]


def test_a_rotation_whose_answer_was_lost_is_not_repeated() -> None:
    # A second rotation would replace the key the first one made, and neither answer was seen.
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    handler = Recorder(drop, httpx.Response(200, json={"secret": "s2"}))

    with pytest.raises(GatewayError):
        gateway(handler).rotate_callback_secret()

    assert len(handler.requests) == 1


def test_the_idempotency_key_in_use_error_keeps_its_class() -> None:
    handler = Recorder(error(409, "idempotency_key_in_use", {"Retry-After": "1"}))

    with pytest.raises(IdempotencyKeyInUse):
        gateway(handler, max_retries=0).session(SID).submit("1")


# --- sgw -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str
    handler: Recorder


@pytest.fixture
def runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()


@pytest.fixture
def sgw(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Runs `sgw` against a script of answers; the Recorder is the result's `.handler`."""

    def invoke(*args: str, answers: list[Any]) -> Ran:
        handler = Recorder(*answers)
        clock = FakeClock()
        fake = functools.partial(
            Gateway, transport=httpx.MockTransport(handler), sleep=clock.sleep, clock=clock
        )
        monkeypatch.setattr(cli, "Gateway", fake)
        result = runner.invoke(
            app, ["--url", "http://gateway.test", *args], env={"SGW_API_KEY": None, "SGW_URL": None}
        )
        return Ran(result.exit_code, result.stdout, result.stderr, handler)

    return invoke


def test_sgw_run_async_prints_the_execution_id(sgw: Callable[..., Any], tmp_path: Any) -> None:
    source = tmp_path / "job.py"
    source.write_text("print(42)")

    result = sgw(
        "run", str(source), "--async", "--callback-url", "https://hooks.example.com/x",
        "--idempotency-key", "job-1", answers=[queued()],
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.stdout == EID + "\n"
    request = result.handler.requests[0]
    assert json.loads(request.content) == {
        "environment": "e2b-python",
        "code": "print(42)",
        "mode": "async",
        "language": "python",
        "callback_url": "https://hooks.example.com/x",
    }
    assert request.headers["Idempotency-Key"] == "job-1"
    assert f"sgw execution wait {EID}" in result.stderr


def test_sgw_run_async_in_a_session_opens_no_session_of_its_own(sgw: Callable[..., Any]) -> None:
    result = sgw("--json", "run", "-", "--async", "--session", SID, answers=[queued()])

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == QUEUED
    assert [r.url.path for r in result.handler.requests] == ["/api/e2b/execute"]
    assert json.loads(result.handler.requests[0].content)["session_id"] == SID


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["run", "-", "--callback-url", "https://h.example.com/"], "--callback-url"),
        (["run", "-", "--idempotency-key", "k"], "--idempotency-key"),
        (["run", "-", "--async", "--provider", "e2b"], "--provider"),
    ],
    ids=["callback-without-async", "key-without-session", "provider-with-async"],
)
def test_sgw_run_refuses_options_that_do_not_apply(
    sgw: Callable[..., Any], args: list[str], complaint: str
) -> None:
    result = sgw(*args, answers=[httpx.Response(500)])

    assert result.exit_code == 2 and complaint in result.stderr
    assert result.handler.requests == []


def test_sgw_execution_wait_prints_the_codes_output_and_exits_0(sgw: Callable[..., Any]) -> None:
    result = sgw(
        "execution",
        "wait",
        EID,
        answers=[httpx.Response(200, json=RUNNING), httpx.Response(200, json=SUCCEEDED)],
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "42\n"


@pytest.mark.parametrize(
    ("record", "exit_code", "said"),
    [
        (
            SUCCEEDED
            | {
                "status": "failed",
                "result": RESULT
                | {"status": "error", "error": {"name": "ValueError", "value": "boom", "traceback": ""}},
            },
            EXIT_CODE_RAISED,
            "ValueError: boom",
        ),
        (SUCCEEDED | {"status": "timed_out", "result": RESULT | {"status": "timeout"}}, EXIT_TIMEOUT, ""),
        (
            RUNNING
            | {"status": "failed", "failure": {"code": "session_not_found", "message": "no such session"}},
            EXIT_API_ERROR,
            "error: session_not_found: no such session",
        ),
    ],
    ids=["raised", "timed_out", "not-run"],
)
def test_sgw_execution_wait_exits_as_sgw_run_would(
    sgw: Callable[..., Any], record: dict[str, Any], exit_code: int, said: str
) -> None:
    result = sgw("execution", "wait", EID, answers=[httpx.Response(200, json=record)])

    assert result.exit_code == exit_code, result.stderr
    assert said in result.stderr


def test_sgw_execution_wait_that_runs_out_of_time_exits_pending(sgw: Callable[..., Any]) -> None:
    result = sgw("execution", "wait", EID, "--timeout", "3", answers=[httpx.Response(200, json=RUNNING)])

    assert result.exit_code == EXIT_PENDING
    assert "still running" in result.stderr and result.stdout == ""


def test_sgw_execution_wait_json_includes_a_fetched_large_result(sgw: Callable[..., Any]) -> None:
    result = sgw(
        "--json",
        "execution",
        "wait",
        EID,
        answers=[httpx.Response(200, json=LARGE), httpx.Response(200, json=RESULT)],
    )

    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["status"] == "succeeded" and shown["result"]["stdout"] == "42\n"
    assert "Authorization" not in result.handler.requests[1].headers


def test_sgw_execution_get_shows_the_record(sgw: Callable[..., Any]) -> None:
    result = sgw("execution", "get", EID, answers=[httpx.Response(200, json=RUNNING)])

    assert result.exit_code == 0, result.stderr
    assert "running" in result.stdout and EID in result.stdout


def test_sgw_execution_get_of_an_unknown_id_exits_3(sgw: Callable[..., Any]) -> None:
    result = sgw("execution", "get", "exe_nope", answers=[error(404, "execution_not_found")])

    assert result.exit_code == EXIT_API_ERROR
    assert "execution_not_found" in result.stderr


def test_sgw_executions_lists_a_sessions_executions(sgw: Callable[..., Any]) -> None:
    answers = [httpx.Response(200, json={"executions": [SUCCEEDED, RECORD], "next_token": None})]

    result = sgw("executions", SID, answers=answers)

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["EXECUTION", "STATUS"]
    assert [line.split()[1] for line in lines[1:]] == ["succeeded", "queued"]


def test_sgw_callbacks_secret_prints_and_rotates(sgw: Callable[..., Any]) -> None:
    shown = sgw("callbacks", "secret", answers=[httpx.Response(200, json={"secret": "whsec_1"})])
    rotated = sgw(
        "--json", "callbacks", "secret", "--rotate", answers=[httpx.Response(200, json={"secret": "s2"})]
    )

    assert shown.stdout == "whsec_1\n" and shown.handler.requests[0].method == "GET"
    assert json.loads(rotated.stdout) == {"secret": "s2"} and rotated.handler.requests[0].method == "POST"
