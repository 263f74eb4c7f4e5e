"""The image's sandbox runtime through the Docker provider: a DataFrame's html and data, a
matplotlib chart's PNG and structured chart, and files owned by `user` (files API and code)."""

from __future__ import annotations

import base64

import docker
from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.execution import CodeRun, ExecutionStatus
from sandbox_gateway.ports import SandboxRef


def run(provider: DockerSandboxProvider, ref: SandboxRef, code: str):
    outcome = provider.execute(ref, CodeRun(code=code, language=Language.PYTHON, timeout_seconds=60))
    assert outcome.status == ExecutionStatus.OK, outcome.error
    return outcome


def test_docker_data_stack_dataframe_and_chart(provider: DockerSandboxProvider, sandbox: SandboxRef) -> None:
    frame = run(provider, sandbox, "import pandas as pd\npd.DataFrame({'x': [1, 2], 'y': ['a', 'b']})")
    (table,) = frame.results
    assert "<table" in str(table.formats["html"])
    assert table.formats["data"] == {"x": [1, 2], "y": ["a", "b"]}

    chart = run(
        provider,
        sandbox,
        "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.title('votes')\nplt.show()",
    )
    (figure,) = chart.results
    assert base64.b64decode(str(figure.formats["png"])).startswith(b"\x89PNG\r\n\x1a\n")
    structured = figure.formats["chart"]
    assert isinstance(structured, dict)
    assert structured["type"] == "bar" and structured["title"] == "votes"
    assert [(bar["label"], bar["value"]) for bar in structured["elements"]] == [("a", 3.0), ("b", 5.0)]


def test_docker_data_stack_python_and_files_belong_to_user(
    provider: DockerSandboxProvider, sandbox: SandboxRef, engine: docker.DockerClient
) -> None:
    provider.write_file(sandbox, "/workspace/api.txt", b"from the files API")
    run(provider, sandbox, "open('/workspace/code.txt', 'w').write('from code')")
    container = engine.containers.get(sandbox.sandbox_id)
    listing = container.exec_run(["stat", "-c", "%U:%G", "/workspace/api.txt", "/workspace/code.txt"])
    assert listing.output.decode().split() == ["user:user", "user:user"]
    who = container.exec_run(["sh", "-c", "whoami; echo $HOME; python --version; sudo true 2>&1; echo rc=$?"])
    lines = who.output.decode().splitlines()
    assert lines[:2] == ["user", "/home/user"]
    assert lines[2].startswith("Python 3.")
    assert "no privilege escalation" in who.output.decode() and lines[-1] == "rc=1"
