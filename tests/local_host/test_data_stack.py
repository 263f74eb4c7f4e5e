"""The sandbox runtime through the unmodified SDK (sync and async): the data stack, E2B's chart
and data representations, `python` on PATH agreeing with the kernel, our `sudo`, and files
owned by `user` whoever wrote them."""

from __future__ import annotations

import asyncio
import base64

from e2b_code_interpreter import AsyncSandbox, Sandbox

from local import sandbox_runtime
from local.e2b_host import isolation
from local.e2b_host.testing import HostInfo

DATAFRAME = "import pandas as pd\npd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [4.5, 19.0]})"
LINE_CHART = (
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [10, 20, 15])\nplt.title('visits')\nplt.show()"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_dataframe(results: list) -> None:
    (result,) = results
    assert "<table" in result.html and "Oslo" in result.html
    assert result.data == {"city": ["Oslo", "Lima"], "temp": [4.5, 19.0]}


def _assert_line_chart(results: list) -> None:
    (result,) = results
    assert base64.b64decode(result.png).startswith(PNG_MAGIC)
    chart = result.chart.to_dict()
    assert chart["type"] == "line"
    assert chart["title"] == "visits"
    (line,) = chart["elements"]
    assert line["points"] == [[1.0, 10.0], [2.0, 20.0], [3.0, 15.0]]


def test_data_stack_dataframe_and_chart_sync(shared_sandbox: Sandbox):
    frame = shared_sandbox.run_code(DATAFRAME)
    assert frame.error is None, frame.error
    _assert_dataframe(frame.results)
    figure = shared_sandbox.run_code(LINE_CHART)
    assert figure.error is None, figure.error
    _assert_line_chart(figure.results)


def test_data_stack_numpy_and_json_of_numpy_values(shared_sandbox: Sandbox):
    execution = shared_sandbox.run_code("import numpy as np\n{'total': np.arange(5).sum()}")
    assert execution.error is None, execution.error
    assert execution.results[0].json == {"total": 10}


def test_data_stack_extension_leaves_no_names(shared_sandbox: Sandbox):
    names = shared_sandbox.run_code("sorted(n for n in globals() if 'Formatter' in n or 'e2b' in n)")
    assert names.text == "[]"


def test_data_stack_python_commands_are_the_kernels(shared_sandbox: Sandbox):
    kernel = shared_sandbox.run_code("import sys; print(sys.version, sys.executable)").logs.stdout
    version, executable = "".join(kernel).strip().rsplit(" ", 1)
    assert executable == isolation.RUNTIME_PYTHON
    assert shared_sandbox.commands.run("python --version").stdout.strip() == f"Python {version.split()[0]}"
    python3 = shared_sandbox.commands.run("python3 -c 'import sys; print(sys.version)'").stdout.strip()
    assert python3 == version
    which = shared_sandbox.commands.run("command -v python python3 pip").stdout.split()
    assert which == [f"{isolation.RUNTIME_MOUNT}/bin/{name}" for name in ("python", "python3", "pip")]
    numpy = shared_sandbox.commands.run("python -c 'import numpy; print(numpy.linalg.det([[2, 0], [0, 3]]))'")
    assert numpy.stdout.strip() == "6.0"


def test_kernel_is_configured_as_e2bs(shared_sandbox: Sandbox):
    failed = shared_sandbox.run_code("def broken():\n    return 1 / 0\nbroken()")
    assert failed.error is not None and failed.error.name == "ZeroDivisionError"
    assert "broken()" in failed.error.traceback
    assert "\x1b[" not in failed.error.traceback  # no ANSI colour codes, as on E2B
    long = shared_sandbox.run_code("list(range(1500))")
    assert long.text is not None and "..." not in long.text and long.text.endswith("1499]")


def test_data_stack_sudo_says_why_there_is_none(shared_sandbox: Sandbox):
    result = shared_sandbox.commands.run("sudo id; echo rc=$?")
    assert result.stdout.strip() == "rc=1"
    assert "no privilege escalation" in result.stderr
    assert "local/e2b_host/README.md" in result.stderr


def test_data_stack_files_belong_to_user(shared_sandbox: Sandbox):
    written = shared_sandbox.files.write("/home/user/api.txt", "from the files API")
    shared_sandbox.run_code("open('/home/user/code.txt', 'w').write('from code')")
    shared_sandbox.commands.run("echo from a command > /home/user/cmd.txt")
    entries = {entry.name: entry for entry in shared_sandbox.files.list("/home/user")}
    for name in ("api.txt", "code.txt", "cmd.txt"):
        assert (entries[name].owner, entries[name].group) == ("user", "user"), name
    assert written.path == "/home/user/api.txt"
    listing = shared_sandbox.commands.run("stat -c '%U:%G %n' api.txt code.txt cmd.txt").stdout.split("\n")
    assert [line.split()[0] for line in listing if line] == ["user:user"] * 3
    identity = shared_sandbox.commands.run("whoami; echo $HOME").stdout.split()
    assert identity == ["user", "/home/user"]


def test_data_stack_font_list_is_seeded(shared_sandbox: Sandbox):
    # Without it every new sandbox's first `import matplotlib.pyplot` rebuilt the font list.
    listing = shared_sandbox.commands.run("ls ~/.cache/matplotlib").stdout.split()
    assert listing and all(name.startswith("fontlist-") for name in listing)


def test_data_stack_async_dataframe_and_chart(e2b_host: HostInfo):
    async def run() -> None:
        sbx = await AsyncSandbox.create(timeout=120)
        try:
            frame = await sbx.run_code(DATAFRAME)
            _assert_dataframe(frame.results)
            figure = await sbx.run_code(LINE_CHART)
            _assert_line_chart(figure.results)
            version = await sbx.commands.run("python --version")
            assert version.stdout.startswith("Python 3.")
        finally:
            await sbx.kill()

    asyncio.run(run())


def test_data_stack_runtime_mount_is_the_builders():
    assert sandbox_runtime.RUNTIME_MOUNT == isolation.RUNTIME_MOUNT
