"""envd's process API beyond Start, as E2B's SDK uses it: reconnecting to a running command,
PTYs, the server's stream deadline, a sandbox killed under a running request, and metrics.
The async client's runs go in a child process of their own that ends with ``os._exit``:
``AsyncSandbox`` sometimes aborts the interpreter at exit (E2B-PROTOCOL.md §2.6)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2b import CommandExitException, SandboxException, SandboxNotRunningException, TimeoutException
from e2b.sandbox.commands.command_handle import PtySize
from e2b_code_interpreter import Sandbox

from local.e2b_host.testing import HostInfo
from tests.support.raises import raises_exactly

# Waits for a file so that the test, not the clock, decides when the command goes on.
WAIT_FOR = "while [ ! -e {path} ]; do sleep 0.02; done"


def _gate() -> str:
    return f"/tmp/gate-{uuid.uuid4().hex[:8]}"


def _pty_until(handle: Any, text: str, seen: bytearray) -> None:
    """Read a PTY handle's output into ``seen`` until ``text`` has appeared."""
    for _stdout, _stderr, pty in handle:
        if pty is not None:
            seen += pty
        if text.encode() in seen:
            return
    raise AssertionError(f"the terminal ended before printing {text!r}: {bytes(seen)!r}")


# --- commands.connect -------------------------------------------------------------------------


def test_connect_gets_later_output_and_the_exit_code_while_the_starter_still_listens(shared_sandbox: Sandbox):
    gate = _gate()
    started = shared_sandbox.commands.run(
        f"echo early; {WAIT_FOR.format(path=gate)}; echo late; exit 3", background=True
    )
    assert next(iter(started))[0] == "early\n"  # produced before anyone connected
    joined = shared_sandbox.commands.connect(started.pid)
    assert joined.pid == started.pid
    shared_sandbox.files.write(gate, "")
    with pytest.raises(CommandExitException) as late:
        joined.wait()
    assert late.value.exit_code == 3 and late.value.stdout == "late\n"  # "early" is not replayed
    with pytest.raises(CommandExitException) as first:
        started.wait()
    assert first.value.exit_code == 3 and "late\n" in first.value.stdout


def test_a_disconnected_background_command_runs_on_and_can_be_reconnected(shared_sandbox: Sandbox):
    gate = _gate()
    handle = shared_sandbox.commands.run(f"{WAIT_FOR.format(path=gate)}; echo done", background=True)
    handle.disconnect()
    assert handle.pid in [p.pid for p in shared_sandbox.commands.list()]
    again = shared_sandbox.commands.connect(handle.pid)
    shared_sandbox.files.write(gate, "")
    result = again.wait()
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert handle.pid not in [p.pid for p in shared_sandbox.commands.list()]


def test_stream_input_feeds_stdin_in_order(shared_sandbox: Sandbox):
    handle = shared_sandbox.commands.run("cat", background=True, stdin=True)
    shared_sandbox.commands.stream_input(handle.pid, ["one\n", b"two\n", "three"])
    shared_sandbox.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "one\ntwo\nthree"


def test_connect_to_an_unknown_pid_is_not_found(shared_sandbox: Sandbox):
    with pytest.raises(SandboxException, match="not found"):
        shared_sandbox.commands.connect(999_999)


# --- PTYs -------------------------------------------------------------------------------------


def test_pty_runs_an_interactive_shell_that_echoes_and_resizes(shared_sandbox: Sandbox):
    terminal = shared_sandbox.pty.create(PtySize(rows=30, cols=100), cwd="/", envs={"GREETING": "hello"})
    seen = bytearray()
    shared_sandbox.pty.send_stdin(terminal.pid, b"echo $GREETING-$((6*7)) in $(pwd); stty size; tty\n")
    _pty_until(terminal, "30 100", seen)
    assert b"echo $GREETING" in seen  # the terminal echoes what is typed
    assert b"hello-42 in /" in seen
    shared_sandbox.pty.resize(terminal.pid, PtySize(rows=40, cols=120))
    shared_sandbox.pty.send_stdin(terminal.pid, b"stty size; exit 5\n")
    with pytest.raises(CommandExitException) as ended:
        terminal.wait(on_pty=seen.extend)
    assert ended.value.exit_code == 5
    assert b"40 120" in seen and b"/dev/pts/" in seen


def test_pty_kill_ends_it(shared_sandbox: Sandbox):
    terminal = shared_sandbox.pty.create(PtySize(rows=24, cols=80))
    assert terminal.pid in [p.pid for p in shared_sandbox.commands.list()]
    assert shared_sandbox.pty.kill(terminal.pid) is True
    with pytest.raises(CommandExitException) as ended:
        terminal.wait()
    assert ended.value.exit_code == -1
    assert terminal.pid not in [p.pid for p in shared_sandbox.commands.list()]


def test_root_is_a_valid_cwd_and_a_missing_one_is_refused(shared_sandbox: Sandbox):
    assert (
        shared_sandbox.commands.run("pwd; touch x 2>/dev/null || echo read-only", cwd="/").stdout
        == "/\nread-only\n"
    )
    with pytest.raises(SandboxException, match="does not exist"):
        shared_sandbox.commands.run("pwd", cwd="/no/such/dir")


# --- deadlines --------------------------------------------------------------------------------


def test_command_timeout_raises_and_kills_the_command(shared_sandbox: Sandbox):
    marker = f"sleep {20 + uuid.uuid4().int % 1000}"
    with raises_exactly(TimeoutException):
        shared_sandbox.commands.run(marker, timeout=1)
    # The client's own deadline may fire a moment before the server's: the kill follows.
    deadline = time.monotonic() + 5
    while marker in _running(shared_sandbox) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker not in _running(shared_sandbox)


def _running(sbx: Sandbox) -> str:
    return " ".join(" ".join(p.args) for p in sbx.commands.list())


def _envelopes(body: bytes) -> list[tuple[int, dict[str, Any]]]:
    out = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        out.append((flags, json.loads(body[5 : 5 + size])))
        body = body[5 + size :]
    return out


def test_the_server_ends_a_stream_at_its_deadline_for_a_client_that_keeps_reading(
    e2b_host: HostInfo, shared_sandbox: Sandbox
):
    request = json.dumps({"process": {"cmd": "/bin/bash", "args": ["-c", "echo hi; sleep 30"]}}).encode()
    response = httpx.post(
        f"{e2b_host.url}/process.Process/Start",
        content=struct.pack(">BI", 0, len(request)) + request,
        headers={
            "content-type": "application/connect+json",
            "connect-protocol-version": "1",
            "connect-timeout-ms": "1000",
            "e2b-sandbox-id": shared_sandbox.sandbox_id,
            "e2b-sandbox-port": "49983",
            "x-access-token": shared_sandbox._envd_access_token or "",  # envd wants it, as the SDK sends
        },
        timeout=20,  # the client would wait far longer than the call's deadline
    )
    events = _envelopes(response.content)
    assert "start" in events[0][1]["event"]
    flags, trailer = events[-1]
    assert flags == 2 and trailer["error"]["code"] == "deadline_exceeded"
    assert not any("end" in body.get("event", {}) for _flags, body in events)


def test_a_connect_deadline_ends_only_that_stream(shared_sandbox: Sandbox):
    handle = shared_sandbox.commands.run("sleep 30", background=True, timeout=0)
    with raises_exactly(TimeoutException):
        shared_sandbox.commands.connect(handle.pid, timeout=1).wait()
    assert handle.pid in [p.pid for p in shared_sandbox.commands.list()]
    assert shared_sandbox.commands.kill(handle.pid) is True


# --- a sandbox killed under a running request ---------------------------------------------------


def _kill_when(sbx: Sandbox, path: str) -> threading.Thread:
    """Kill ``sbx`` from another client once ``path`` exists in it."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while not sbx.files.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        Sandbox.kill(sbx.sandbox_id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def doomed(e2b_host: HostInfo) -> Iterator[Sandbox]:
    sbx = Sandbox.create(timeout=120)
    yield sbx
    sbx.kill()


def test_a_sandbox_killed_under_a_command_raises_not_running(doomed: Sandbox):
    killer = _kill_when(doomed, "/tmp/started")
    with raises_exactly(SandboxNotRunningException):
        doomed.commands.run("touch /tmp/started; sleep 30")
    killer.join()


def test_a_sandbox_killed_under_run_code_raises_the_sdks_killed_error(doomed: Sandbox):
    killer = _kill_when(doomed, "/tmp/started")
    with raises_exactly(TimeoutException, match="sandbox was killed"):
        doomed.run_code("import time; open('/tmp/started', 'w').close(); time.sleep(30)")
    killer.join()


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_report_cgroup_and_disk_use_and_honour_start_and_end(shared_sandbox: Sandbox):
    shared_sandbox.commands.run("head -c 8000000 /dev/zero > /home/user/ballast")
    deadline = time.monotonic() + 15
    while True:  # a new sample comes every few seconds
        metrics = shared_sandbox.get_metrics()
        if (metrics and metrics[-1].disk_used >= 8_000_000) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    latest = metrics[-1]
    assert latest.disk_used >= 8_000_000 and latest.disk_total > latest.disk_used
    assert 0 < latest.mem_used < latest.mem_total and latest.cpu_count >= 1
    assert 0.0 <= latest.cpu_used_pct <= 100.0
    assert [m.timestamp for m in metrics] == sorted(m.timestamp for m in metrics)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert shared_sandbox.get_metrics(start=later) == []
    assert shared_sandbox.get_metrics(end=later - timedelta(days=1)) == []
    shared_sandbox.files.remove("/home/user/ballast")


# --- the async client ---------------------------------------------------------------------------

ASYNC_SCENARIOS = r"""
import asyncio, json, os, sys, uuid
from e2b import CommandExitException
from e2b.sandbox.commands.command_handle import PtySize
from e2b_code_interpreter import AsyncSandbox

results = {}


async def kill_when(sbx, path):
    for _ in range(600):
        if await sbx.files.exists(path):
            break
        await asyncio.sleep(0.05)
    await AsyncSandbox.kill(sbx.sandbox_id)


async def outcome(coro):
    try:
        value = await coro
        return {"ok": getattr(value, "exit_code", None), "stdout": getattr(value, "stdout", None)}
    except CommandExitException as exc:
        return {"raised": "CommandExitException", "exit_code": exc.exit_code, "stdout": exc.stdout}
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str(exc)}


async def main():
    sbx = await AsyncSandbox.create(timeout=120)
    gate = "/tmp/gate-" + uuid.uuid4().hex[:8]
    script = f"echo early; while [ ! -e {gate} ]; do sleep 0.02; done; echo late; exit 3"
    started = await sbx.commands.run(script, background=True)
    for _ in range(200):
        if started.stdout:
            break
        await asyncio.sleep(0.02)
    joined = await sbx.commands.connect(started.pid)
    await sbx.files.write(gate, "")
    results["connect"] = await outcome(joined.wait())
    results["starter"] = await outcome(started.wait())

    seen = bytearray()
    terminal = await sbx.pty.create(PtySize(rows=30, cols=100), on_data=seen.extend, cwd="/")
    await sbx.pty.send_stdin(terminal.pid, b"stty size; pwd\n")
    for _ in range(200):
        if b"30 100" in seen:
            break
        await asyncio.sleep(0.02)
    await sbx.pty.resize(terminal.pid, PtySize(rows=40, cols=120))
    await sbx.pty.send_stdin(terminal.pid, b"stty size; exit 4\n")
    results["pty"] = await outcome(terminal.wait())
    results["pty_output"] = seen.decode(errors="replace")

    results["deadline"] = await outcome(sbx.commands.run("sleep 30", timeout=1))
    metrics = await sbx.get_metrics()
    results["metrics"] = [m.mem_total > 0 and m.disk_total > 0 and m.cpu_count >= 1 for m in metrics]

    killer = asyncio.create_task(kill_when(sbx, "/tmp/started"))
    results["killed_command"] = await outcome(sbx.commands.run("touch /tmp/started; sleep 30"))
    await killer

    other = await AsyncSandbox.create(timeout=120)
    killer = asyncio.create_task(kill_when(other, "/tmp/started"))
    results["killed_code"] = await outcome(
        other.run_code("import time; open('/tmp/started', 'w').close(); time.sleep(30)")
    )
    await killer


asyncio.run(main())
print(json.dumps(results), flush=True)
os._exit(0)
"""


@pytest.fixture(scope="module")
def async_results(e2b_host: HostInfo) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", ASYNC_SCENARIOS],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_async_connect_gets_later_output_and_the_exit_code(async_results: dict[str, Any]):
    assert async_results["connect"] == {"raised": "CommandExitException", "exit_code": 3, "stdout": "late\n"}
    assert (
        async_results["starter"]["exit_code"] == 3 and async_results["starter"]["stdout"] == "early\nlate\n"
    )


def test_async_pty_echoes_runs_and_resizes(async_results: dict[str, Any]):
    assert async_results["pty"]["exit_code"] == 4
    output = async_results["pty_output"]
    assert "stty size; pwd" in output and "30 100" in output and "40 120" in output


def test_async_command_timeout_raises(async_results: dict[str, Any]):
    assert async_results["deadline"]["raised"] == "TimeoutException"


def test_async_metrics_have_e2bs_shape(async_results: dict[str, Any]):
    assert async_results["metrics"] and all(async_results["metrics"])


def test_async_kill_under_a_command_or_code_raises_as_against_e2b(async_results: dict[str, Any]):
    assert async_results["killed_command"]["raised"] == "SandboxNotRunningException"
    assert async_results["killed_code"]["raised"] == "TimeoutException"
    assert "sandbox was killed" in async_results["killed_code"]["message"]
