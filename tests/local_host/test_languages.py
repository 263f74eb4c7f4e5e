"""Code contexts and languages of the local E2B host, as E2B's code interpreter has them: default
Python and JavaScript contexts listed at start, ES-module imports and top-level await in
JavaScript, TypeScript through its real compiler, and R / Java refused with the supported list.
Each through the unmodified SDK, sync ``Sandbox`` and async ``AsyncSandbox``."""

from __future__ import annotations

import asyncio
import json

import pytest
from e2b import SandboxException
from e2b_code_interpreter import AsyncSandbox, Sandbox

pytestmark = pytest.mark.local_host

HOME = "/home/user"

# Static imports of a built-in module in the three forms; the bindings are used a cell later.
ESM_IMPORTS = 'import fs from "fs"\nimport { readFileSync } from "node:fs"\nimport * as path from "path"\n'
ESM_USE = "[typeof fs.statSync, typeof readFileSync, path.join('a', 'b')].join(' ')"
ESM_EXPECTED = "function function a/b"

TS_CELL = """interface Point { x: number; y: number }
enum Color { Red, Green, Blue }
const origin: Point = { x: 3, y: 4 };
function norm(p: Point): number { return Math.sqrt(p.x ** 2 + p.y ** 2); }
`${norm(origin)} ${Color.Blue} ${Color[1]}`"""


@pytest.fixture(scope="module")
def sbx(e2b_host):
    sandbox = Sandbox.create(timeout=300)
    yield sandbox
    sandbox.kill()


def _by_language(contexts) -> dict[str, list]:
    found: dict[str, list] = {}
    for context in contexts:
        found.setdefault(context.language, []).append(context)
    return found


def test_a_fresh_sandbox_lists_default_python_and_javascript_contexts(sandbox: Sandbox):
    first = sandbox.list_code_contexts()
    defaults = _by_language(first)
    assert sorted(defaults) == ["javascript", "python"]
    assert all(len(found) == 1 and found[0].cwd == HOME for found in defaults.values())
    assert [c.id for c in sandbox.list_code_contexts()] == [c.id for c in first]  # stable ids

    # run_code(language=...) runs in the listed default JavaScript context.
    sandbox.run_code("var marker = 'default js'", language="javascript")
    js = defaults["javascript"][0]
    assert sandbox.run_code("marker", context=js).text == "default js"
    assert [c.id for c in sandbox.list_code_contexts()] == [c.id for c in first]


def test_javascript_static_imports_persist_to_later_cells(sbx: Sandbox):
    imported = sbx.run_code(ESM_IMPORTS + ESM_USE, language="javascript")
    assert imported.error is None and imported.text == ESM_EXPECTED
    assert sbx.run_code(ESM_USE, language="javascript").text == ESM_EXPECTED
    # Importing again (re-running the cell) is not a redeclaration.
    assert sbx.run_code(ESM_IMPORTS + "path.sep", language="javascript").text == "/"
    # A cell has no exports: `export` is dropped and the declaration kept.
    assert sbx.run_code("export const shared = path.sep + 'x'\nshared", language="javascript").text == "/x"


def test_javascript_imports_packages_from_the_working_directory(sbx: Sandbox):
    # An ES-module-only package (require() cannot load it) in the context's node_modules.
    package = f"{HOME}/node_modules/greeter"
    exports = {".": {"import": "./index.js"}, "./loud": {"import": "./loud.js"}}
    sbx.files.write(f"{package}/package.json", json.dumps({"type": "module", "exports": exports}))
    sbx.files.write(f"{package}/index.js", "export default 'hi'; export const twice = (s) => s + s;")
    sbx.files.write(f"{package}/loud.js", "export const loud = (s) => s.toUpperCase();")
    cell = "import hi, { twice } from 'greeter'\nimport { loud } from 'greeter/loud'\nloud(twice(hi))"
    assert sbx.run_code(cell, language="javascript").text == "HIHI"
    missing = sbx.run_code("import nothing from 'no-such-package'", language="javascript").error
    assert missing is not None and "no-such-package" in missing.value


def test_javascript_dynamic_import(sbx: Sandbox):
    execution = sbx.run_code("const os = await import('node:os'); typeof os.cpus", language="javascript")
    assert execution.error is None and execution.text == "function"
    assert sbx.run_code("(await import('path')).basename('/a/b.txt')", language="javascript").text == "b.txt"


def test_javascript_top_level_await_returns_and_keeps_declarations(sbx: Sandbox):
    assert sbx.run_code("await Promise.resolve(42)", language="javascript").text == "42"
    cell = (
        "const answer = await Promise.resolve(6 * 7)\n"
        "let { a, b: [c] } = await Promise.resolve({ a: 1, b: [2] })\n"
        "class Box { get v() { return 'box' } }\n"
        "function shout(s) { return s.toUpperCase() }\n"
        "console.log('awaited', answer)"
    )
    execution = sbx.run_code(cell, language="javascript")
    assert execution.error is None and execution.logs.stdout == ["awaited 42\n"]
    later = sbx.run_code("[answer, a, c, new Box().v, shout('hi')].join(',')", language="javascript")
    assert later.text == "42,1,2,box,HI"


def test_javascript_rejected_await_is_an_error(sbx: Sandbox):
    error = sbx.run_code("await Promise.reject(new RangeError('nope'))", language="javascript").error
    assert error is not None and error.name == "RangeError" and error.value == "nope"


def test_typescript_runs_in_its_own_context(sbx: Sandbox):
    execution = sbx.run_code(TS_CELL, language="typescript")
    assert execution.error is None and execution.text == "5 2 Green"
    assert sbx.run_code("norm({ x: 6, y: 8 } as Point)", language="ts").text == "10"
    contexts = _by_language(sbx.list_code_contexts())
    assert len(contexts["typescript"]) == 1 and contexts["typescript"][0].cwd == HOME
    # Its own context: the JavaScript one does not see the TypeScript declarations.
    assert sbx.run_code("typeof norm", language="javascript").text == "undefined"


def test_typescript_imports_await_and_created_context(sbx: Sandbox):
    context = sbx.create_code_context(language="typescript", cwd="/tmp")
    assert context.language == "typescript" and context.cwd == "/tmp"
    cell = "import { basename } from 'path'\nconst n: number = await Promise.resolve(7)\nprocess.cwd() + n"
    assert sbx.run_code(cell, context=context).text == "/tmp7"
    assert sbx.run_code("basename('/x/y.ts') + n", context=context).text == "y.ts7"


def test_typescript_syntax_error_is_an_error_result_and_types_are_unchecked(sbx: Sandbox):
    error = sbx.run_code("const broken: number = ;", language="typescript").error
    assert error is not None and error.name == "SyntaxError" and "Expression expected" in error.value
    # Like E2B's kernel: transpiled, not type-checked.
    assert sbx.run_code("const s: string = 42; s + 1", language="typescript").text == "43"


def test_javascript_context_cwd_is_honoured(sbx: Sandbox):
    context = sbx.create_code_context(language="javascript", cwd="/tmp")
    assert context.cwd == "/tmp" and context.language == "javascript"
    assert sbx.run_code("process.cwd()", context=context).text == "/tmp"


@pytest.mark.parametrize("language", ["r", "java"])
def test_r_and_java_are_refused_naming_the_supported_languages(sbx: Sandbox, language: str):
    with pytest.raises(SandboxException) as raised:
        sbx.run_code("1", language=language)
    message = str(raised.value)
    assert "400" in message and f"'{language}' is not supported" in message
    assert all(name in message for name in ("python", "javascript", "typescript", "bash"))
    with pytest.raises(SandboxException, match="typescript"):
        sbx.create_code_context(language=language)


async def _async_languages() -> None:
    sandbox = await AsyncSandbox.create(timeout=300)
    try:
        assert sorted(c.language for c in await sandbox.list_code_contexts()) == ["javascript", "python"]
        imported = await sandbox.run_code(ESM_IMPORTS + ESM_USE, language="javascript")
        assert imported.error is None and imported.text == ESM_EXPECTED
        assert (await sandbox.run_code("await Promise.resolve(42)", language="js")).text == "42"
        await sandbox.run_code("const later = await Promise.resolve('kept')", language="javascript")
        assert (await sandbox.run_code("later + ' ' + path.sep", language="javascript")).text == "kept /"
        assert (await sandbox.run_code(TS_CELL, language="typescript")).text == "5 2 Green"
        error = (await sandbox.run_code("let x: = 1", language="ts")).error
        assert error is not None and error.name == "SyntaxError"
        js = await sandbox.create_code_context(language="javascript", cwd="/tmp")
        assert (await sandbox.run_code("process.cwd()", context=js)).text == "/tmp"
        with pytest.raises(SandboxException, match="typescript"):
            await sandbox.run_code("1", language="r")
    finally:
        await sandbox.kill()


def test_async_sdk_contexts_modules_await_and_typescript(e2b_host):
    asyncio.run(_async_languages())
