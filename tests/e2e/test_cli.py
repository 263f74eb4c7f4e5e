"""The `sgw` command line against the local stack, through Typer's CliRunner (and, for signals, a
real process): what reaches stdout and stderr, the exit codes, and that a session `sgw run`
starts for itself is always closed."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_gateway_client import Gateway, Session
from sandbox_gateway_client.cli import EXIT_API_ERROR, EXIT_INTERRUPTED, EXIT_TIMEOUT, EXIT_USAGE, app
from typer.testing import CliRunner

from local.stack import Stack

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Builds a small valid PNG in the sandbox without matplotlib (the local host's kernel has
# IPython but no plotting library) and displays it, then prints the bytes it made, as hex.
DISPLAY_A_PNG = """
import struct, zlib
from IPython.display import Image, display

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

rows = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * 4 for _ in range(4))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
display(Image(data=png))
print(png.hex())
6 * 7
"""


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    # Click < 8.2 mixes stderr into stdout unless told not to; 8.2 removed the switch (always separate).
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()


@pytest.fixture(scope="module")
def sgw(runner: CliRunner, stack: Stack) -> Callable[..., Any]:
    def invoke(*args: str, input: str | bytes | None = None, env: dict[str, str | None] | None = None) -> Any:
        # SGW_URL from the developer's shell must not decide where the tests go.
        environment = {"SGW_URL": None, "SGW_API_KEY": None} | (env or {})
        return runner.invoke(
            app, ["--url", stack.url, "--api-key", stack.api_key, *args], input=input, env=environment
        )

    return invoke


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[Gateway]:
    with Gateway(stack.url, api_key=stack.api_key) as gw:
        yield gw


@pytest.fixture
def session(gateway: Gateway) -> Iterator[Session]:
    with gateway.create_session("e2b-python") as opened:
        yield opened


def session_ids(gateway: Gateway) -> set[str]:
    return {info.session_id for info in gateway.list_sessions()}


def statuses_of_new_sessions(gateway: Gateway, before: set[str]) -> list[str]:
    return [info.status for info in gateway.list_sessions() if info.session_id not in before]


def test_environments_are_listed_as_a_table_and_as_json(sgw: Callable[..., Any]) -> None:
    human = sgw("environments")
    assert human.exit_code == 0, human.stderr
    assert re.search(r"^e2b-python\s+e2b\s+python\s", human.stdout, re.MULTILINE)

    scripted = sgw("--json", "environments")
    assert scripted.exit_code == 0, scripted.stderr
    by_name = {env["name"]: env for env in json.loads(scripted.stdout)}
    assert by_name["e2b-node"]["default_language"] == "javascript"
    assert by_name["e2b-python"]["provider"] == "e2b"


def test_a_session_is_created_shown_listed_and_closed(sgw: Callable[..., Any]) -> None:
    created = sgw("session", "create", "--environment", "e2b-python", "--provider", "e2b", "--timeout", "600")
    assert created.exit_code == 0, created.stderr
    session_id = created.stdout.strip()
    assert re.fullmatch(r"ses_[0-9a-f]+", session_id), created.stdout  # the id alone, for $(...)

    shown = sgw("--json", "session", "show", session_id)
    assert shown.exit_code == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["session_id"], info["status"], info["environment"]) == (session_id, "active", "e2b-python")

    human_show = sgw("session", "show", session_id)
    assert re.search(r"^status\s+active\s*$", human_show.stdout, re.MULTILINE), human_show.stdout

    listed = sgw("--json", "session", "list")
    assert listed.exit_code == 0, listed.stderr
    assert session_id in [s["session_id"] for s in json.loads(listed.stdout)]
    newest = json.loads(sgw("--json", "session", "list", "-n", "1").stdout)
    assert [s["session_id"] for s in newest] == [session_id]
    human_list = sgw("session", "list")
    assert re.search(rf"^{session_id}\s+active\s+e2b-python\s+e2b\s", human_list.stdout, re.MULTILINE)

    closed = sgw("session", "close", session_id)
    assert closed.exit_code == 0, closed.stderr
    assert closed.stdout.strip() == f"{session_id} closed"
    assert json.loads(sgw("--json", "session", "show", session_id).stdout)["status"] == "closed"


def test_create_with_metadata_and_json_prints_the_whole_session(
    sgw: Callable[..., Any], gateway: Gateway
) -> None:
    created = sgw("--json", "session", "create", "-m", "team=data", "-m", "ticket=42")
    assert created.exit_code == 0, created.stderr
    info = json.loads(created.stdout)
    try:
        assert info["metadata"] == {"team": "data", "ticket": "42"}
        assert info["status"] == "active"
    finally:
        gateway.session(info["session_id"]).close()


def test_run_a_file_prints_its_output_as_is_and_closes_its_session(
    sgw: Callable[..., Any], gateway: Gateway, tmp_path: Path
) -> None:
    script = tmp_path / "hello.py"
    script.write_text(
        "import sys\n"
        "print('[bold red]not markup[/bold red]', 'x' * 300)\n"
        "print('to stderr', file=sys.stderr)\n"
        "_ = sys.stdout.write('no newline at the end')\n"
    )
    before = session_ids(gateway)

    result = sgw("run", str(script))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "[bold red]not markup[/bold red] " + "x" * 300 + "\nno newline at the end"
    assert "to stderr\n" in result.stderr
    assert statuses_of_new_sessions(gateway, before) == ["closed"]


def test_run_reads_stdin_and_json_carries_the_execution(sgw: Callable[..., Any], gateway: Gateway) -> None:
    result = sgw("--json", "run", "-", input="x = 6\nprint(x * 7)\nx + 1\n")

    assert result.exit_code == 0, result.stderr
    execution = json.loads(result.stdout)
    assert (execution["status"], execution["stdout"], execution["language"]) == ("ok", "42\n", "python")
    assert [r["text"] for r in execution["results"]] == ["7"]
    assert execution["saved_files"] == []
    assert gateway.get_session(execution["session_id"]).info.status == "closed"


@pytest.mark.parametrize(
    ("name", "code", "language"),
    [
        ("probe.js", "console.log(typeof process.versions.node)", "javascript"),
        ("probe.sh", "echo $((6 * 7))", "bash"),
    ],
)
def test_the_language_comes_from_the_file_extension(
    sgw: Callable[..., Any], session: Session, tmp_path: Path, name: str, code: str, language: str
) -> None:
    script = tmp_path / name
    script.write_text(code + "\n")

    result = sgw("--json", "run", "--session", session.id, str(script))

    assert result.exit_code == 0, result.stderr
    execution = json.loads(result.stdout)
    assert execution["language"] == language
    assert execution["stdout"] == ("string\n" if language == "javascript" else "42\n")


def test_runs_in_an_existing_session_keep_its_state_and_leave_it_open(
    sgw: Callable[..., Any], session: Session
) -> None:
    first = sgw("run", "--session", session.id, "-", input="total = 41\n")
    second = sgw("run", "--session", session.id, "--language", "python", "-", input="print(total + 1)\n")

    assert (first.exit_code, first.stdout) == (0, "")
    assert (second.exit_code, second.stdout) == (0, "42\n")
    assert session.refresh().status == "active"


def test_code_that_raises_exits_1_with_its_traceback_on_stderr(
    sgw: Callable[..., Any], session: Session
) -> None:
    code = "print('before')\ndef divide():\n    return 1 / 0\ndivide()\n"

    result = sgw("run", "--session", session.id, "-", input=code)

    assert result.exit_code == 1
    assert result.stdout == "before\n"
    assert "Traceback" in result.stderr
    assert "divide()" in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "\x1b[" not in result.stderr  # not a terminal: the kernel's colours are taken out


def test_an_error_in_an_ephemeral_session_still_closes_it(sgw: Callable[..., Any], gateway: Gateway) -> None:
    before = session_ids(gateway)

    result = sgw("run", "-", input="raise KeyError('missing')\n")

    assert result.exit_code == 1
    assert "KeyError" in result.stderr
    assert statuses_of_new_sessions(gateway, before) == ["closed"]


def test_code_that_times_out_exits_124(sgw: Callable[..., Any], session: Session) -> None:
    started = time.monotonic()

    result = sgw("run", "--session", session.id, "--timeout", "1", "-", input="import time\ntime.sleep(30)\n")

    assert result.exit_code == EXIT_TIMEOUT == 124
    assert "TimeoutError" in result.stderr
    assert time.monotonic() - started < 15
    # The session is still usable after a timeout.
    assert sgw("run", "--session", session.id, "-", input="print('alive')").stdout == "alive\n"


def test_image_results_are_saved_to_files_and_their_paths_printed(
    sgw: Callable[..., Any], session: Session, tmp_path: Path
) -> None:
    out = tmp_path / "results"

    result = sgw("run", "--session", session.id, "--save-results", str(out), "-", input=DISPLAY_A_PNG)

    assert result.exit_code == 0, result.stderr
    printed_hex, main_result = result.stdout.splitlines()
    assert main_result == "42"  # a text result is printed, like a notebook's Out
    saved = sorted(out.iterdir())
    assert [p.suffix for p in saved] == [".png"]
    assert saved[0].read_bytes() == bytes.fromhex(printed_hex)
    assert saved[0].read_bytes().startswith(PNG_SIGNATURE)
    assert f"saved png result: {saved[0]}" in result.stderr

    again = sgw("--json", "run", "--session", session.id, "-o", str(out), "-", input=DISPLAY_A_PNG)
    files = json.loads(again.stdout)["saved_files"]
    assert [f["format"] for f in files] == ["png"]
    assert Path(files[0]["path"]).parent == out and Path(files[0]["path"]) != saved[0]  # never overwritten


def test_image_results_go_to_a_new_temporary_directory_by_default(
    sgw: Callable[..., Any], session: Session
) -> None:
    result = sgw("--json", "run", "--session", session.id, "-", input=DISPLAY_A_PNG)

    assert result.exit_code == 0, result.stderr
    (saved,) = json.loads(result.stdout)["saved_files"]
    path = Path(saved["path"])
    try:
        assert path.parent.name.startswith("sgw-results-")
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    finally:
        path.unlink()
        path.parent.rmdir()


def test_files_put_ls_get_rm_roundtrip_a_2_mib_binary_file(
    sgw: Callable[..., Any], session: Session, tmp_path: Path
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    local = tmp_path / "blob.bin"
    local.write_bytes(data)

    put = sgw("files", "put", session.id, str(local), "data/blob.bin")
    assert put.exit_code == 0, put.stderr
    assert put.stdout.strip() == f"/workspace/data/blob.bin {len(data)} bytes"

    listed = sgw("--json", "files", "ls", session.id, "/workspace/data")
    assert listed.exit_code == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [(e["name"], e["type"], e["size"]) for e in entries] == [("blob.bin", "file", len(data))]
    human_ls = sgw("files", "ls", session.id)
    assert re.search(r"^data/\s+directory\s", human_ls.stdout, re.MULTILINE), human_ls.stdout

    copy = tmp_path / "copy.bin"
    got = sgw("files", "get", session.id, "data/blob.bin", str(copy))
    assert got.exit_code == 0, got.stderr
    assert copy.read_bytes() == data

    into_dir = sgw("--json", "files", "get", session.id, "/workspace/data/blob.bin", str(tmp_path))
    assert json.loads(into_dir.stdout)["local"] == str(tmp_path / "blob.bin")
    assert (tmp_path / "blob.bin").read_bytes() == data

    into_new_dir = sgw("files", "get", session.id, "data/blob.bin", f"{tmp_path}/new/")
    assert into_new_dir.exit_code == 0, into_new_dir.stderr
    assert (tmp_path / "new" / "blob.bin").read_bytes() == data

    piped = sgw("files", "get", session.id, "data/blob.bin", "-")
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout_bytes == data

    removed = sgw("files", "rm", session.id, "data/blob.bin")
    assert (removed.exit_code, removed.stdout) == (0, "")
    assert json.loads(sgw("--json", "files", "ls", session.id, "data").stdout) == []
    gone = sgw("files", "get", session.id, "data/blob.bin", str(tmp_path / "never.bin"))
    assert gone.exit_code == EXIT_API_ERROR
    assert gone.stderr.startswith("error: file_not_found: ")
    assert not (tmp_path / "never.bin").exists()


def test_files_put_reads_stdin(sgw: Callable[..., Any], session: Session) -> None:
    put = sgw("--json", "files", "put", session.id, "-", "note.txt", input=b"from stdin\n")

    assert put.exit_code == 0, put.stderr
    assert json.loads(put.stdout) == {"session_id": session.id, "path": "/workspace/note.txt", "size": 11}
    assert session.files.read("note.txt") == b"from stdin\n"


def test_transfers_over_1_mib_show_a_progress_bar_on_stderr_and_small_ones_do_not(
    sgw: Callable[..., Any], session: Session, tmp_path: Path
) -> None:
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(os.urandom(1024 * 1024 + 1))
    small.write_bytes(b"tiny")
    as_terminal = {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "120"}  # Rich draws as on a terminal

    big_put = sgw("files", "put", session.id, str(big), "big.bin", env=as_terminal)
    small_put = sgw("files", "put", session.id, str(small), "small.bin", env=as_terminal)
    big_get = sgw("files", "get", session.id, "big.bin", str(tmp_path / "back.bin"), env=as_terminal)

    assert big_put.exit_code == small_put.exit_code == big_get.exit_code == 0
    assert "put big.bin" in big_put.stderr and "MB" in big_put.stderr
    assert "get big.bin" in big_get.stderr and "MB" in big_get.stderr
    assert "put small.bin" not in small_put.stderr
    assert big_put.stdout.strip() == f"/workspace/big.bin {1024 * 1024 + 1} bytes"  # the bar stays off stdout


def test_a_bad_session_id_exits_3_with_the_error_code(sgw: Callable[..., Any]) -> None:
    shown = sgw("session", "show", "ses_00000000000000000000000000")
    assert shown.exit_code == EXIT_API_ERROR == 3
    assert shown.stderr.startswith("error: session_not_found: ")
    assert shown.stdout == ""

    scripted = sgw("--json", "run", "--session", "ses_00000000000000000000000000", "-", input="1")
    assert scripted.exit_code == EXIT_API_ERROR
    error = json.loads(scripted.stdout)["error"]
    assert (error["status"], error["code"]) == (404, "session_not_found")

    for args in (("files", "ls", "nope"), ("session", "close", "nope")):
        result = sgw(*args)
        assert result.exit_code == EXIT_API_ERROR, args
        assert result.stderr.startswith("error: session_not_found: "), args


def test_no_url_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["session", "list"], env={"SGW_URL": None})

    assert result.exit_code == EXIT_USAGE == 2
    assert "SGW_URL" in result.stderr


@pytest.mark.parametrize("url", ["127.0.0.1:3000", "http://[::1"])
def test_a_malformed_url_is_a_usage_error(runner: CliRunner, url: str) -> None:
    result = runner.invoke(app, ["--url", url, "environments"])

    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith("error: ") and url in result.stderr


def test_the_url_and_key_can_come_from_sgw_url_and_sgw_api_key(runner: CliRunner, stack: Stack) -> None:
    result = runner.invoke(
        app, ["--json", "environments"], env={"SGW_URL": stack.url, "SGW_API_KEY": stack.api_key}
    )

    assert result.exit_code == 0, result.stderr
    assert "e2b-python" in [env["name"] for env in json.loads(result.stdout)]


@pytest.mark.parametrize(
    ("key", "status", "hint"),
    [(None, 401, "SGW_API_KEY"), ("sgw_000000000000_" + "x" * 43, 403, "refused")],
    ids=["no-key", "unknown-key"],
)
def test_without_a_valid_key_the_gateway_refuses_and_sgw_says_why(
    runner: CliRunner, stack: Stack, key: str | None, status: int, hint: str
) -> None:
    result = runner.invoke(app, ["--json", "session", "list"], env={"SGW_URL": stack.url, "SGW_API_KEY": key})

    assert result.exit_code == EXIT_API_ERROR
    error = json.loads(result.stdout)["error"]
    assert (error["status"], error["code"]) == (status, f"http_{status}")
    assert hint in error["message"]
    output = result.stdout + result.stderr
    assert stack.api_key not in output and (key is None or key not in output)  # keys are never echoed


def test_an_unreachable_gateway_exits_3(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--url", "http://127.0.0.1:9", "session", "list"])

    assert result.exit_code == EXIT_API_ERROR
    # After the retries (each announced on stderr), the last line is the error.
    assert result.stderr.splitlines()[-1].startswith("error: connection_failed: ")


def test_ctrl_c_during_a_run_closes_the_ephemeral_session(
    sgw: Callable[..., Any], gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Session, *args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "run", interrupted)
    before = session_ids(gateway)

    result = sgw("run", "-", input="print(1)")

    assert result.exit_code == EXIT_INTERRUPTED == 130
    assert statuses_of_new_sessions(gateway, before) == ["closed"]


def test_ctrl_c_while_the_session_starts_still_closes_it(
    sgw: Callable[..., Any], gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server made the session but the answer never arrived: the interrupt hit in between.
    real_create = Gateway.create_session
    calls: list[str | None] = []

    def created_then_interrupted(self: Gateway, *args: Any, **kwargs: Any) -> Session:
        calls.append(kwargs.get("idempotency_key"))
        made = real_create(self, *args, **kwargs)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return made

    monkeypatch.setattr(Gateway, "create_session", created_then_interrupted)
    before = session_ids(gateway)

    result = sgw("run", "-", input="print(1)")

    assert result.exit_code == EXIT_INTERRUPTED
    assert len(calls) == 2 and calls[0] == calls[1] is not None  # the same Idempotency-Key: no second sandbox
    assert statuses_of_new_sessions(gateway, before) == ["closed"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_real_signal_mid_run_closes_the_ephemeral_session(
    stack: Stack, gateway: Gateway, signum: signal.Signals, tmp_path: Path
) -> None:
    script = tmp_path / "sleepy.py"
    script.write_text("import time\ntime.sleep(20)\n")
    before = session_ids(gateway)
    environment = os.environ | {"SGW_URL": stack.url, "SGW_API_KEY": stack.api_key}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox_gateway_client.cli", "run", str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    try:
        deadline = time.monotonic() + 30
        while statuses_of_new_sessions(gateway, before) != ["active"]:
            assert time.monotonic() < deadline, "the run's session never became active"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
        time.sleep(0.5)  # the execute request is on its way

        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert b"interrupted" in stderr
    assert statuses_of_new_sessions(gateway, before) == ["closed"]
