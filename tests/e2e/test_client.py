"""The installed Python client (clients/python) against the local stack over real HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sandbox_gateway_client import Gateway, Session
from sandbox_gateway_client.errors import FileNotFound, SessionClosed, SessionNotFound

from local.stack import Stack

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[Gateway]:
    with Gateway(stack.url, api_key=stack.api_key) as gw:
        yield gw


@pytest.fixture(scope="module")
def session(gateway: Gateway) -> Iterator[Session]:
    with gateway.create_session("e2b-python", metadata={"suite": "client"}) as opened:
        yield opened


def test_client_lists_the_environments(gateway: Gateway) -> None:
    environments = {env.name: env for env in gateway.environments()}

    assert "python" in environments["e2b-python"].languages
    assert environments["e2b-python"].default_language == "python"


def test_client_session_context_runs_code_keeping_state_and_closes(gateway: Gateway) -> None:
    with gateway.create_session("e2b-python", timeout_seconds=300) as session:
        assert session.info is not None and session.info.status == "active"
        first = session.run("x = 21")
        second = session.run("print(x * 2)", language="python")
        assert first.ok and second.ok
        assert second.stdout == "42\n"
        assert second.execution_count == (first.execution_count or 0) + 1

    assert session.info is not None and session.info.status == "closed"
    assert gateway.get_session(session.id).info.status == "closed"  # type: ignore[union-attr]
    with pytest.raises(SessionClosed) as raised:
        session.run("print(1)")
    assert raised.value.status == 410


def test_client_context_closes_the_session_when_the_block_raises(gateway: Gateway) -> None:
    with pytest.raises(KeyError), gateway.create_session() as session:
        raise KeyError("the caller's own failure")

    assert session.refresh().status == "closed"


def test_client_error_execution_is_an_answer_not_an_exception(session: Session) -> None:
    execution = session.run("print('before')\nraise ValueError('boom')")

    assert not execution.ok
    assert execution.status == "error"
    assert execution.stdout == "before\n"
    assert execution.error is not None
    assert execution.error.name == "ValueError" and execution.error.value == "boom"
    assert "ValueError" in execution.error.traceback


def test_client_moves_binary_files_over_a_mebibyte_with_progress(session: Session) -> None:
    data = os.urandom(MIB + MIB // 2)
    sent: list[tuple[int, int]] = []
    received: list[tuple[int, int]] = []

    written = session.files.write("client/blob.bin", data, progress=lambda *p: sent.append(p))
    read = session.files.read("/workspace/client/blob.bin", progress=lambda *p: received.append(p))

    assert written.path == "/workspace/client/blob.bin" and written.size == len(data)
    assert read == data
    assert len(sent) > 2 and sent[-1] == (len(data), len(data))
    assert len(received) > 1 and received[-1] == (len(data), len(data))


def test_client_writes_lists_reads_and_deletes_files(session: Session) -> None:
    session.files.write("listing/b.txt", "bee")
    session.files.write("listing/a name #1.txt", b"\x00\x01\x02")

    entries = session.files.list("/workspace/listing")

    assert [(e.name, e.type, e.size) for e in entries] == [("a name #1.txt", "file", 3), ("b.txt", "file", 3)]
    assert session.files.read("listing/a name #1.txt") == b"\x00\x01\x02"
    assert session.run("print(open('listing/b.txt').read())").stdout == "bee\n"

    session.files.delete("listing/a name #1.txt")

    assert [e.name for e in session.files.list("/workspace/listing")] == ["b.txt"]
    with pytest.raises(FileNotFound) as raised:
        session.files.read("listing/a name #1.txt")
    assert raised.value.status == 404


def test_client_writes_outside_the_workspace_by_absolute_path(session: Session) -> None:
    session.files.write("/tmp/client-abs.txt", "abs")

    assert session.files.read("/tmp/client-abs.txt") == b"abs"
    assert "client-abs.txt" in {entry.name for entry in session.files.list("/tmp")}


def test_client_keep_alive_extends_the_lifetime(session: Session) -> None:
    before = session.refresh().expires_at

    info = session.keep_alive(3600)

    assert info.status == "active"
    assert info.expires_at > before
    assert session.info == info


def test_client_close_twice_is_harmless(gateway: Gateway) -> None:
    session = gateway.create_session()

    first = session.close()
    second = session.close()

    assert first.status == second.status == "closed"
    assert first.closed_at == second.closed_at


def test_client_unknown_session_raises_session_not_found(gateway: Gateway) -> None:
    missing = gateway.session("ses_" + "0" * 28)

    with pytest.raises(SessionNotFound) as raised:
        missing.refresh()

    assert raised.value.status == 404
    assert raised.value.code == "session_not_found"
    assert raised.value.request_id


def test_client_same_idempotency_key_returns_the_same_session(gateway: Gateway) -> None:
    key = f"client-test-{uuid.uuid4()}"

    first = gateway.create_session(idempotency_key=key)
    try:
        again = gateway.create_session(idempotency_key=key)
        other = gateway.create_session()
        other.close()
    finally:
        first.close()

    assert again.id == first.id
    assert other.id != first.id


def test_client_lists_sessions_and_honours_the_limit(gateway: Gateway, session: Session) -> None:
    listed = gateway.list_sessions()
    one_page = gateway.list_sessions(limit=1)

    assert session.id in {info.session_id for info in listed}
    assert len(one_page) == 1
    assert len({info.session_id for info in listed}) == len(listed)
