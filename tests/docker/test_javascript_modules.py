"""The Docker provider's JavaScript kernel is the local E2B host's (shared kernels.py and
js_runner.js): ES-module imports and top-level await work there too, with the TypeScript
compiler from the base image's node-typescript parsing the cells."""

from __future__ import annotations

from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.models.environment import Language
from sandbox_gateway.models.execution import CodeRun, ExecutionStatus
from sandbox_gateway.ports import SandboxRef


def run_js(provider: DockerSandboxProvider, sandbox: SandboxRef, code: str):
    return provider.execute(sandbox, CodeRun(code=code, language=Language.JAVASCRIPT, timeout_seconds=20))


def test_javascript_imports_and_top_level_await_persist_across_cells(
    provider: DockerSandboxProvider, sandbox: SandboxRef
) -> None:
    cell = (
        'import { join } from "node:path"\n'
        "const n = await Promise.resolve(41)\n"
        'console.log(join("a", "b"), n + 1)'
    )
    first = run_js(provider, sandbox, cell)
    assert first.status == ExecutionStatus.OK, first.error
    assert first.stdout == "a/b 42\n"
    later = run_js(provider, sandbox, 'console.log(join("c", "d"), n)')
    assert later.stdout == "c/d 41\n"
