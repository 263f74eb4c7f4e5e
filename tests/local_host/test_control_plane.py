"""Lifecycle through the control plane: create, info, connect, timeouts, list, kill, expiry."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from e2b import (
    SandboxException,
    SandboxNotFoundException,
    SandboxNotRunningException,
    SandboxQuery,
    TimeoutException,
)
from e2b_code_interpreter import Sandbox

from tests.support.raises import raises_exactly


def test_create_info_and_kill(e2b_host):
    sbx = Sandbox.create(timeout=120, metadata={"owner": "t1"}, envs={"FROM_CREATE": "yes"})
    try:
        info = sbx.get_info()
        assert info.sandbox_id == sbx.sandbox_id
        assert info.metadata == {"owner": "t1"}
        assert info.state.value == "running"
        assert 100 <= (info.end_at - info.started_at).total_seconds() <= 121
        assert sbx.is_running()
        assert sbx.commands.run("echo $FROM_CREATE").stdout.strip() == "yes"
    finally:
        assert sbx.kill() is True
    assert Sandbox.kill(sbx.sandbox_id) is False
    assert not sbx.is_running()
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sbx.sandbox_id)


def test_set_timeout_and_connect_extend_the_deadline(sandbox):
    before = sandbox.get_info().end_at
    sandbox.set_timeout(1000)
    after = sandbox.get_info().end_at
    assert (after - before).total_seconds() > 600
    again = Sandbox.connect(sandbox.sandbox_id, timeout=2000)
    assert (again.get_info().end_at - after).total_seconds() > 900
    assert again.run_code("6 * 7").text == "42"


def test_list_filters_by_metadata_and_pages(e2b_host):
    tag = uuid.uuid4().hex
    mine = [Sandbox.create(timeout=120, metadata={"run": tag, "odd": "a b&c=d"}) for _ in range(3)]
    other = Sandbox.create(timeout=120, metadata={"run": "someone-else"})
    try:
        query = SandboxQuery(metadata={"run": tag, "odd": "a b&c=d"})
        paginator = Sandbox.list(query=query, limit=2)
        seen = []
        pages = 0
        while paginator.has_next:
            seen += [s.sandbox_id for s in paginator.next_items()]
            pages += 1
        assert sorted(seen) == sorted(s.sandbox_id for s in mine)
        assert pages == 2
        everything = [s.sandbox_id for s in Sandbox.list(limit=100).next_items()]
        assert other.sandbox_id in everything
    finally:
        for sbx in [*mine, other]:
            sbx.kill()


def test_unknown_template_is_a_sandbox_exception(e2b_host):
    with raises_exactly(SandboxException, match=r"^404: template 'no-such-template' not found") as info:
        Sandbox.create(template="no-such-template")
    assert "no-such-template" in str(info.value)


def test_error_bodies_always_carry_code_and_message(e2b_host):
    url = e2b_host.url
    cases = [
        httpx.post(f"{url}/v2/sandboxes", json={"templateID": "code-interpreter-v1"}),  # no API key
        httpx.post(f"{url}/v2/sandboxes", content=b"{not json", headers={"X-API-KEY": "k"}),
        httpx.post(f"{url}/v2/sandboxes", json={"timeout": 5}, headers={"X-API-KEY": "k"}),
        httpx.get(f"{url}/sandboxes/nope", headers={"X-API-KEY": "k"}),
        httpx.post(f"{url}/sandboxes/nope/timeout", json={"timeout": 5}, headers={"X-API-KEY": "k"}),
    ]
    assert [r.status_code for r in cases] == [401, 400, 400, 404, 404]
    for response in cases:
        body = response.json()
        assert isinstance(body["code"], int) and body["code"] == response.status_code
        assert isinstance(body["message"], str) and body["message"]
    gone = httpx.get(f"{url}/health", headers={"E2b-Sandbox-Id": "nope", "E2b-Sandbox-Port": "49983"})
    assert gone.status_code == 502
    assert gone.json() == {"sandboxId": "nope", "message": "The sandbox was not found", "code": 502}


def test_expired_sandbox_is_killed_and_reported_gone(e2b_host):
    sbx = Sandbox.create(timeout=2)
    assert sbx.run_code("1 + 1").text == "2"
    deadline = time.monotonic() + 15
    while sbx.is_running() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not sbx.is_running()
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sbx.sandbox_id)
    with pytest.raises(SandboxNotFoundException):
        sbx.set_timeout(60)
    with pytest.raises(TimeoutException):
        sbx.run_code("1")
    with raises_exactly(SandboxNotRunningException, match=r"not found|not running"):
        sbx.files.read("/home/user/anything")
    assert sbx.sandbox_id not in [s.sandbox_id for s in Sandbox.list().next_items()]
