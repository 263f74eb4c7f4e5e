"""``run_code`` through real kernels: state, errors, display data, envs, contexts, interrupts."""

from __future__ import annotations

import base64
import struct
import time
import zlib

import pytest
from e2b import TimeoutException
from e2b_code_interpreter import Sandbox


def _png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(range(y, y + width * 3)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_python_state_persists_and_counts_executions(shared_sandbox: Sandbox):
    first = shared_sandbox.run_code("counter = 40\nprint('set')\ncounter + 1")
    assert first.text == "41"
    assert first.logs.stdout == ["set\n"]
    second = shared_sandbox.run_code("counter += 2\ncounter")
    assert second.text == "42"
    assert second.execution_count == first.execution_count + 1
    assert shared_sandbox.run_code("import sys; print('oops', file=sys.stderr)").logs.stderr == ["oops\n"]


def test_python_error_has_name_value_and_traceback(shared_sandbox: Sandbox):
    execution = shared_sandbox.run_code("def boom():\n    raise ValueError('bad value')\nboom()")
    assert execution.error is not None
    assert execution.error.name == "ValueError"
    assert execution.error.value == "bad value"
    assert "boom" in execution.error.traceback and "ValueError" in execution.error.traceback
    assert shared_sandbox.run_code("1 + 1").error is None


def test_display_data_png_and_html(shared_sandbox: Sandbox):
    png = _png()
    code = (
        "import base64\nfrom IPython.display import Image, HTML, display\n"
        f"display(Image(data=base64.b64decode({base64.b64encode(png).decode()!r})))\n"
        "HTML('<b>bold</b>')"
    )
    execution = shared_sandbox.run_code(code)
    assert execution.error is None
    image, html = execution.results
    assert base64.b64decode(image.png) == png
    assert image.is_main_result is False
    assert html.is_main_result is True and html.html == "<b>bold</b>"


def test_envs_apply_to_one_call_and_create_envs_persist(e2b_host):
    sbx = Sandbox.create(timeout=120, envs={"GLOBAL_ONE": "g"})
    try:
        code = "import os; (os.environ.get('PER_CALL'), os.environ.get('GLOBAL_ONE'))"
        assert sbx.run_code(code, envs={"PER_CALL": "p"}).text == "('p', 'g')"
        assert sbx.run_code(code).text == "(None, 'g')"
        js = sbx.run_code("process.env.PER_CALL", language="javascript", envs={"PER_CALL": "js"})
        assert js.text == "js"  # like the real server, quotes around a string result are dropped
        sh = sbx.run_code("echo $PER_CALL-$GLOBAL_ONE", language="bash", envs={"PER_CALL": "sh"})
        assert sh.logs.stdout == ["sh-g\n"]
        assert sbx.run_code("echo [$PER_CALL]", language="bash").logs.stdout == ["[]\n"]
    finally:
        sbx.kill()


def test_javascript_state_and_errors(shared_sandbox: Sandbox):
    first = shared_sandbox.run_code(
        "let total = 40; console.log('js says', total); total + 1", language="javascript"
    )
    assert first.text == "41"
    assert first.logs.stdout == ["js says 40\n"]
    assert shared_sandbox.run_code("total += 2; total", language="js").text == "42"
    awaited = shared_sandbox.run_code(
        "await new Promise(r => setTimeout(r, 10)); console.log('after await', total)", language="javascript"
    )
    assert awaited.logs.stdout == ["after await 42\n"]
    error = shared_sandbox.run_code("notDefined + 1", language="javascript").error
    assert error is not None and error.name == "ReferenceError" and "notDefined" in error.value


def test_bash_state_and_exit_status(shared_sandbox: Sandbox):
    assert shared_sandbox.run_code("GREETING=hello; cd /workspace", language="bash").error is None
    execution = shared_sandbox.run_code("echo $GREETING from $(pwd)", language="bash")
    assert execution.logs.stdout == ["hello from /workspace\n"]
    failed = shared_sandbox.run_code("echo out; echo err >&2; false", language="bash")
    assert failed.logs.stdout == ["out\n"] and failed.logs.stderr == ["err\n"]
    assert failed.error is not None and failed.error.value == "1"


def test_code_contexts(shared_sandbox: Sandbox):
    context = shared_sandbox.create_code_context(cwd="/workspace/ctx", language="python")
    assert context.cwd == "/workspace/ctx" and context.language == "python"
    assert shared_sandbox.run_code("import os; os.getcwd()", context=context).text == "/workspace/ctx"
    assert shared_sandbox.run_code("import os; os.getcwd()").text == "/home/user"
    shared_sandbox.run_code("isolated = 1", context=context)
    assert shared_sandbox.run_code("'isolated' in globals()").text == "False"
    assert context.id in [c.id for c in shared_sandbox.list_code_contexts()]
    shared_sandbox.restart_code_context(context)
    assert shared_sandbox.run_code("'isolated' in globals()", context=context).text == "False"
    shared_sandbox.remove_code_context(context)
    assert context.id not in [c.id for c in shared_sandbox.list_code_contexts()]
    js = shared_sandbox.create_code_context(language="javascript")
    assert shared_sandbox.run_code("process.cwd()", context=js).text == "/home/user"


@pytest.mark.parametrize(
    ("language", "setup", "busy", "check", "expected"),
    [
        ("python", "kept = 'still here'", "import time\nwhile True: time.sleep(0.1)", "kept", "still here"),
        ("javascript", "var kept = 7", "while (true) {}", "kept", "7"),
        ("bash", "KEPT=yes", "sleep 60; echo never", "echo $KEPT", None),
    ],
)
def test_timeout_interrupts_and_the_kernel_stays_usable(
    shared_sandbox, language, setup, busy, check, expected
):
    shared_sandbox.run_code(setup, language=language)
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        shared_sandbox.run_code(busy, language=language, timeout=2)
    after = shared_sandbox.run_code(check, language=language, timeout=30)
    assert time.monotonic() - started < 15
    assert after.error is None
    if expected is None:
        assert after.logs.stdout == ["yes\n"]
    else:
        assert after.text == expected


def test_killed_kernel_is_reported_and_the_next_call_works(shared_sandbox: Sandbox):
    shared_sandbox.run_code("before_crash = 1")
    crashed = shared_sandbox.run_code("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert crashed.error is not None and crashed.error.name == "DeadKernelError"
    after = shared_sandbox.run_code("'before_crash' in globals(), 2 + 2")
    assert after.error is None and after.text == "(False, 4)"
    js_crash = shared_sandbox.run_code("process.kill(process.pid, 'SIGKILL')", language="javascript")
    assert js_crash.error is not None and js_crash.error.name == "DeadKernelError"
    assert shared_sandbox.run_code("1 + 2", language="javascript").text == "3"
    bash_exit = shared_sandbox.run_code("exit 3", language="bash")
    assert bash_exit.error is not None and bash_exit.error.name == "DeadKernelError"
    assert shared_sandbox.run_code("echo back", language="bash").logs.stdout == ["back\n"]


def test_runaway_output_is_capped_not_fatal(shared_sandbox: Sandbox, output_limit_bytes: int):
    execution = shared_sandbox.run_code("for _ in range(40): print('x' * 100_000)\n'done'", timeout=60)
    total = sum(len(chunk) for chunk in execution.logs.stdout)
    assert 0 < total <= output_limit_bytes
    assert any("output truncated" in chunk for chunk in execution.logs.stderr)
    assert shared_sandbox.run_code("'fine'").text == "fine"
    flood = shared_sandbox.run_code("yes | head -c 3000000", language="bash", timeout=60)
    assert sum(len(c) for c in flood.logs.stdout) <= output_limit_bytes
    assert shared_sandbox.run_code("echo ok", language="bash").logs.stdout == ["ok\n"]
