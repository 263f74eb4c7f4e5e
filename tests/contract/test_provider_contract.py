"""What every sandbox provider promises the services (tests/contract/conftest.py picks the providers)."""

from __future__ import annotations

import base64
import re
import time

import e2b
import pytest
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.errors import (
    FileNotFound,
    InvalidFileOperation,
    PayloadTooLarge,
    ProviderError,
    SandboxGone,
)
from sandbox_gateway.models.execution import CodeRun, ExecutionStatus
from sandbox_gateway.models.files import FileType
from sandbox_gateway.ports import SandboxProvider, SandboxRef, SandboxSpec

from tests.contract.conftest import SandboxFactory, environment, raises_exactly

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def run(provider: SandboxProvider, ref: SandboxRef, code: str, language: Language = Language.PYTHON, **kw):
    return provider.execute(
        ref, CodeRun(code=code, language=language, timeout_seconds=kw.pop("timeout", 20), **kw)
    )


@pytest.mark.usefixtures("runs_code")
def test_code_runs_in_the_workspace(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox()
    outcome = run(provider, ref, "import os\nprint(os.getcwd())")
    assert outcome.status == ExecutionStatus.OK
    assert outcome.stdout == "/workspace\n"


@pytest.mark.usefixtures("runs_code")
def test_state_persists_between_executions(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox()
    first = run(provider, ref, "x = 21\nimport math")
    second = run(provider, ref, "print(x * 2, math.sqrt(16))")
    assert second.stdout == "42 4.0\n"
    assert second.execution_count is not None and first.execution_count is not None
    assert second.execution_count == first.execution_count + 1


@pytest.mark.usefixtures("runs_code")
def test_last_expression_is_the_main_result(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    outcome = run(provider, new_sandbox(), "6 * 7")
    (result,) = outcome.results
    assert result.is_main_result and result.formats["text"] == "42"


@pytest.mark.usefixtures("runs_code")
def test_user_errors_come_back_with_name_value_and_traceback(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox()
    outcome = run(provider, ref, "def f():\n    raise ValueError('bad input')\nf()")
    assert outcome.status == ExecutionStatus.ERROR
    assert outcome.error is not None
    assert (outcome.error.name, outcome.error.value) == ("ValueError", "bad input")
    assert "f()" in ANSI_ESCAPE.sub("", outcome.error.traceback)  # kernels colour tracebacks
    assert run(provider, ref, "print('recovered')").stdout == "recovered\n"


@pytest.mark.usefixtures("runs_code")
def test_stdout_and_stderr_are_separate(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    outcome = run(provider, new_sandbox(), "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert outcome.stdout == "out\n" and outcome.stderr == "err\n"


@pytest.mark.usefixtures("runs_code")
def test_display_data_carries_a_png(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    png = base64.b64encode(PNG_1X1).decode()
    code = (
        "from IPython.display import Image, display\nimport base64\n"
        f"display(Image(data=base64.b64decode('{png}')))"
    )
    outcome = run(provider, new_sandbox(), code)
    pngs = [r.formats["png"] for r in outcome.results if "png" in r.formats]
    assert [base64.b64decode(p) for p in pngs] == [PNG_1X1]


@pytest.mark.usefixtures("runs_code")
def test_javascript_keeps_state(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox("node")
    run(provider, ref, "let total = 40;", Language.JAVASCRIPT)
    outcome = run(provider, ref, "console.log(total + 2)", Language.JAVASCRIPT)
    assert outcome.stdout == "42\n"


@pytest.mark.usefixtures("runs_code")
def test_bash_keeps_state_and_runs_in_the_workspace(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox("bash")
    run(provider, ref, "export GREETING=hi; cd /workspace", Language.BASH)
    outcome = run(provider, ref, 'echo "$GREETING from $(pwd)"', Language.BASH)
    assert outcome.stdout == "hi from /workspace\n"


@pytest.mark.usefixtures("runs_code")
def test_one_sandbox_runs_every_language_of_its_environment(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox()
    run(provider, ref, "open('shared.txt', 'w').write('from python')")
    assert run(provider, ref, "cat shared.txt", Language.BASH).stdout == "from python"


@pytest.mark.usefixtures("runs_code")
def test_envs_reach_the_code(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox(envs={"SESSION_LEVEL": "s"})
    outcome = run(
        provider,
        ref,
        "import os\nprint(os.environ['CALL_LEVEL'], os.environ.get('SESSION_LEVEL'))",
        envs={"CALL_LEVEL": "c"},
    )
    assert outcome.stdout == "c s\n"


@pytest.mark.usefixtures("runs_code")
def test_timeout_stops_the_code_and_the_session_survives(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox()
    run(provider, ref, "kept = 'yes'")
    started = time.monotonic()
    outcome = run(provider, ref, "import time\ntime.sleep(60)", timeout=2)
    assert outcome.status == ExecutionStatus.TIMEOUT
    assert time.monotonic() - started < 2 + 3  # the limit, plus stopping the code
    after = run(provider, ref, "print(kept)")
    assert after.stdout == "yes\n"


@pytest.mark.usefixtures("runs_code")
def test_timeout_returns_what_was_printed_so_far(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    code = "import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.5)"
    started = time.monotonic()
    outcome = run(provider, new_sandbox(), code, timeout=3)
    assert outcome.status == ExecutionStatus.TIMEOUT
    assert time.monotonic() - started < 3 + 3
    assert outcome.stdout.startswith("0\n1\n2\n")


def test_binary_file_round_trip(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox()
    data = bytes(range(256)) * 4

    written = provider.write_file(ref, "/workspace/data/blob.bin", data)

    assert written.path == "/workspace/data/blob.bin" and written.size == len(data)
    assert provider.read_file(ref, "/workspace/data/blob.bin", 1_000_000) == data
    entries = {e.name: e for e in provider.list_files(ref, "/workspace/data")}
    assert entries["blob.bin"].type == FileType.FILE and entries["blob.bin"].size == len(data)


@pytest.mark.usefixtures("runs_code")
def test_code_and_files_api_see_the_same_workspace(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox()
    run(provider, ref, "open('made_by_code.txt', 'w').write('hello')")
    assert provider.read_file(ref, "/workspace/made_by_code.txt", 1000) == b"hello"
    provider.write_file(ref, "/workspace/made_by_api.txt", b"world")
    assert run(provider, ref, "print(open('made_by_api.txt').read())").stdout == "world\n"


def test_listing_shows_directories(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox()
    provider.write_file(ref, "/workspace/sub/dir/leaf.txt", b"x")
    entries = {e.name: e.type for e in provider.list_files(ref, "/workspace")}
    assert entries["sub"] == FileType.DIRECTORY
    assert {e.name: e.type for e in provider.list_files(ref, "/workspace/sub")} == {"dir": FileType.DIRECTORY}


def test_delete_then_read_is_file_not_found(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox()
    provider.write_file(ref, "/workspace/gone.txt", b"x")
    provider.delete_file(ref, "/workspace/gone.txt")
    with raises_exactly(FileNotFound, "file_not_found"):
        provider.read_file(ref, "/workspace/gone.txt", 1000)
    with raises_exactly(FileNotFound, "file_not_found"):
        provider.list_files(ref, "/workspace/no-such-dir")


def test_reading_a_directory_or_an_oversized_file_is_refused(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox()
    provider.write_file(ref, "/workspace/big.bin", b"\0" * 5000)
    with raises_exactly(InvalidFileOperation, "invalid_file_operation"):
        provider.read_file(ref, "/workspace", 1000)
    with raises_exactly(PayloadTooLarge, "payload_too_large"):
        provider.read_file(ref, "/workspace/big.bin", 4999)


def test_extend_keeps_the_sandbox_alive(provider: SandboxProvider, new_sandbox: SandboxFactory) -> None:
    ref = new_sandbox(lifetime=60)
    provider.extend(ref, 600)
    assert run(provider, ref, "print('alive')").status == ExecutionStatus.OK
    provider.write_file(ref, "/workspace/alive.txt", b"yes")
    assert provider.read_file(ref, "/workspace/alive.txt", 100) == b"yes"


def test_killed_sandbox_is_gone_and_killing_again_is_harmless(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox()
    provider.kill(ref.sandbox_id)
    provider.kill(ref.sandbox_id)
    with raises_exactly(SandboxGone, "sandbox_gone"):
        run(provider, ref, "1")
    with raises_exactly(SandboxGone, "sandbox_gone"):
        provider.list_files(ref, "/workspace")


def test_unknown_template_fails_cleanly(provider: SandboxProvider, provider_kind: str) -> None:
    env = environment(provider_kind).model_copy(update={"template": "no-such-template"})
    # An operator's misconfigured environment: our side's error (502), never the caller's.
    with raises_exactly(ProviderError, "provider_error"):
        provider.create(SandboxSpec("ses_bad", "tenant-contract", env, 60))


def test_e2b_sandbox_killed_behind_our_back_is_gone(
    provider: SandboxProvider, provider_kind: str, new_sandbox: SandboxFactory, e2b_host
) -> None:
    if provider_kind != "e2b":
        pytest.skip("E2B-specific: kills through the SDK directly")
    ref = new_sandbox()
    run(provider, ref, "1")  # connected and cached in this warm "container"
    e2b.Sandbox.kill(ref.sandbox_id, api_key=e2b_host.env["E2B_API_KEY"], api_url=e2b_host.url)
    with raises_exactly(SandboxGone, "sandbox_gone"):
        run(provider, ref, "1")
    with raises_exactly(SandboxGone, "sandbox_gone"):
        provider.list_files(ref, "/workspace")


def test_writes_never_replace_a_directory_or_a_file_on_the_way(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    ref = new_sandbox()
    provider.write_file(ref, "/workspace/project/src/main.py", b"precious")
    provider.write_file(ref, "/workspace/notes", b"kept")

    with raises_exactly(InvalidFileOperation, "invalid_file_operation"):
        provider.write_file(ref, "/workspace/project", b"overwrite")
    with raises_exactly(InvalidFileOperation, "invalid_file_operation"):
        provider.write_file(ref, "/workspace/notes/x", b"overwrite")

    assert provider.read_file(ref, "/workspace/project/src/main.py", 100) == b"precious"
    assert provider.read_file(ref, "/workspace/notes", 100) == b"kept"


def test_code_past_its_limit_is_a_timeout_outcome_not_an_error(
    provider: SandboxProvider, new_sandbox: SandboxFactory
) -> None:
    started = time.monotonic()
    outcome = run(provider, new_sandbox(), "import time\ntime.sleep(30)", timeout=2)
    assert outcome.status == ExecutionStatus.TIMEOUT
    assert outcome.error is not None and outcome.error.name == "TimeoutError"
    assert time.monotonic() - started < 2 + 10
