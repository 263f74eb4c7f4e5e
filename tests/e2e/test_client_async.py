"""Async executions through the installed Python client and `sgw`, against the local stack: the
API queues, the local poller feeds the worker, the client waits on the record (and fetches a
large result from the moto bucket's presigned URL, without the API key)."""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sandbox_gateway_client import Gateway, Session
from sandbox_gateway_client.cli import EXIT_API_ERROR, EXIT_CODE_RAISED, app
from sandbox_gateway_client.errors import ExecutionNotFound, InvalidRequest, SessionNotFound
from typer.testing import CliRunner

from local.stack import Stack
from tests.e2e.conftest import create_key

WAIT_SECONDS = 60.0  # the worker picks a message up within a poll; a cold sandbox takes a few seconds
POLL_SECONDS = 0.2


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[Gateway]:
    with Gateway(stack.url, api_key=stack.api_key) as gw:
        yield gw


@pytest.fixture(scope="module")
def session(gateway: Gateway) -> Iterator[Session]:
    with gateway.create_session("e2b-python", metadata={"suite": "client-async"}) as opened:
        yield opened


def test_submit_then_wait_gives_the_result_in_the_sessions_state(gateway: Gateway, session: Session) -> None:
    session.run("x = 21")

    queued = session.submit("print(x * 2)")
    record = gateway.wait(queued.execution_id, timeout=WAIT_SECONDS, poll_interval=POLL_SECONDS)

    assert queued.status == "queued" and queued.href == f"/api/executions/{queued.execution_id}"
    assert record.status == "succeeded" and record.mode == "async" and record.session_id == session.id
    assert record.execution is not None and record.execution.stdout == "42\n"
    assert record.execution.execution_id == queued.execution_id


def test_a_synchronous_run_is_recorded_and_can_be_read_again(gateway: Gateway, session: Session) -> None:
    execution = session.run("print('again')")

    assert execution.execution_id is not None
    record = gateway.get_execution(execution.execution_id)
    assert record.mode == "sync" and record.status == "succeeded"
    assert record.execution is not None and record.execution.stdout == "again\n"


def test_code_that_raises_is_a_failed_execution_with_its_error(gateway: Gateway, session: Session) -> None:
    queued = session.submit("raise ValueError('boom')")

    record = gateway.wait(queued.execution_id, timeout=WAIT_SECONDS, poll_interval=POLL_SECONDS)

    assert record.status == "failed" and record.failure is None
    assert record.execution is not None and record.execution.error is not None
    assert record.execution.error.name == "ValueError" and record.execution.error.value == "boom"


def test_one_off_submit_runs_in_a_session_that_is_closed_afterwards(gateway: Gateway) -> None:
    queued = gateway.submit("import os; print(os.environ['GREETING'])", envs={"GREETING": "hello"})

    record = gateway.wait(queued.execution_id, timeout=WAIT_SECONDS, poll_interval=POLL_SECONDS)

    assert queued.environment == "e2b-python" and queued.session_id is None
    assert record.status == "succeeded" and record.environment == "e2b-python"
    assert record.execution is not None and record.execution.stdout == "hello\n"
    assert record.session_id is not None
    assert gateway.get_session(record.session_id).info.status == "closed"  # type: ignore[union-attr]


def test_a_large_result_is_fetched_from_its_presigned_url(gateway: Gateway, session: Session) -> None:
    size = 600_000  # over the 256 KiB kept inline in the record
    queued = session.submit(f"print('x' * {size})")

    stored = gateway.wait(queued.execution_id, timeout=WAIT_SECONDS, poll_interval=POLL_SECONDS)
    fetched = gateway.fetch_result(stored)

    assert stored.result is None and stored.result_url and (stored.result_bytes or 0) > size
    assert fetched.execution is not None and fetched.execution.stdout == "x" * size + "\n"


def test_same_idempotency_key_and_code_queue_one_execution(gateway: Gateway, session: Session) -> None:
    key = f"e2e-{uuid.uuid4()}"

    first = session.submit("print('once')", idempotency_key=key)
    second = session.submit("print('once')", idempotency_key=key)

    assert second.execution_id == first.execution_id
    record = gateway.wait(first.execution_id, timeout=WAIT_SECONDS, poll_interval=POLL_SECONDS)
    assert record.execution is not None and record.execution.stdout == "once\n"


def test_a_sessions_executions_are_listed_newest_first(gateway: Gateway) -> None:
    with gateway.create_session("e2b-python") as fresh:
        ran = fresh.run("1 + 1")
        queued = fresh.submit("2 + 2")
        gateway.wait(queued.execution_id, timeout=WAIT_SECONDS, poll_interval=POLL_SECONDS)

        listed = fresh.executions()

    assert [record.execution_id for record in listed] == [queued.execution_id, ran.execution_id]
    assert [record.mode for record in listed] == ["async", "sync"]
    assert all(record.result is None for record in listed)  # a listing carries no results


def test_reading_unknown_executions_and_sessions_raises_their_errors(gateway: Gateway) -> None:
    with pytest.raises(ExecutionNotFound):
        gateway.get_execution(f"exe_{'0' * 28}")
    with pytest.raises(SessionNotFound):
        gateway.session("ses_no_such_session").executions()


def test_a_sync_run_longer_than_the_sync_limit_is_refused(session: Session) -> None:
    with pytest.raises(InvalidRequest) as raised:
        session.run("1", timeout_seconds=600)

    assert "async" in raised.value.message


def test_callback_secret_is_per_tenant_and_rotates(stack: Stack) -> None:
    _, _, key = create_key(stack)  # a tenant of its own: other tests' callbacks keep their secret
    with Gateway(stack.url, api_key=key) as gw:
        first = gw.callback_secret()
        rotated = gw.rotate_callback_secret()

        assert first and rotated != first
        assert gw.callback_secret() == rotated


# --- sgw ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sgw(stack: Stack) -> Callable[..., Any]:
    # Click < 8.2 mixes stderr into stdout unless told not to; 8.2 removed the switch.
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    else:
        runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        environment = {"SGW_URL": None, "SGW_API_KEY": None}
        return runner.invoke(
            app, ["--url", stack.url, "--api-key", stack.api_key, *args], input=input, env=environment
        )

    return invoke


def test_sgw_run_async_then_execution_wait_prints_the_output(
    sgw: Callable[..., Any], session: Session
) -> None:
    session.run("y = 6")

    queued = sgw("run", "-", "--async", "--session", session.id, input="print(y * 7)")
    execution_id = queued.stdout.strip()
    waited = sgw("execution", "wait", execution_id, "--timeout", str(WAIT_SECONDS))
    listed = sgw("executions", session.id)
    shown = sgw("--json", "execution", "get", execution_id)

    assert queued.exit_code == 0, queued.stderr
    assert execution_id.startswith("exe_") and f"sgw execution wait {execution_id}" in queued.stderr
    assert waited.exit_code == 0, waited.stderr
    assert waited.stdout == "42\n"
    assert listed.exit_code == 0 and execution_id in listed.stdout
    assert json.loads(shown.stdout)["status"] == "succeeded"


def test_sgw_one_off_async_run_that_raises_exits_as_sgw_run(sgw: Callable[..., Any]) -> None:
    queued = sgw("--json", "run", "-", "--async", input="raise KeyError('k')")
    execution_id = json.loads(queued.stdout)["execution_id"]

    waited = sgw("execution", "wait", execution_id, "--timeout", str(WAIT_SECONDS))

    assert queued.exit_code == 0, queued.stderr
    assert waited.exit_code == EXIT_CODE_RAISED, waited.stderr
    assert "KeyError" in waited.stderr


def test_sgw_async_run_in_an_unknown_session_is_refused_at_once(sgw: Callable[..., Any]) -> None:
    queued = sgw("run", "-", "--async", "--session", "ses_no_such_session", input="1")

    assert queued.exit_code == EXIT_API_ERROR
    assert "session_not_found" in queued.stderr
