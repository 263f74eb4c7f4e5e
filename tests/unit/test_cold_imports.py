"""What each function imports at cold start, counted exactly in a fresh interpreter (no timing).

docker-py is local-only and never imported at module level; the E2B SDK is imported during init
by the functions that reach sandboxes (so the SnapStart snapshot holds it) and by no other.
Each function's init registers the SnapStart hooks once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").is_file())
REACH_SANDBOXES = {"sessions", "execute", "files", "worker", "reaper", "pool"}
E2B_SDK = ("e2b", "e2b_code_interpreter")
DOCKER = ("docker", "sandbox_gateway.adapters.docker")

# Run in functions/<name>/ as Lambda does (the handler is `app.lambda_handler`), with a stand-in
# for the runtime's snapshot_restore_py that counts the hooks registered.
_PROBE = """
import json, sys, types
hooks = {"before": 0, "after": 0}
fake = types.ModuleType("snapshot_restore_py")
fake.register_before_snapshot = lambda f, *a, **k: hooks.__setitem__("before", hooks["before"] + 1)
fake.register_after_restore = lambda f, *a, **k: hooks.__setitem__("after", hooks["after"] + 1)
sys.modules["snapshot_restore_py"] = fake
import app
print(json.dumps({"modules": sorted(sys.modules), "hooks": hooks}))
"""


@pytest.fixture(scope="module")
def cold_imports() -> dict[str, dict[str, Any]]:
    """Every function's app.py imported in its own fresh interpreter, all at once."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared")}
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", _PROBE],
            cwd=ROOT / "functions" / name,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in FUNCTIONS
    }
    found = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: {err}"
        found[name] = json.loads(out.splitlines()[-1])
    return found


def test_every_function_is_probed() -> None:
    assert set(FUNCTIONS) == {"authorizer", "meta", *REACH_SANDBOXES}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_imports_docker_py_at_cold_start(
    cold_imports: dict[str, dict[str, Any]], function: str
) -> None:
    assert [m for m in DOCKER if m in cold_imports[function]["modules"]] == []


@pytest.mark.parametrize("function", sorted(set(FUNCTIONS) - REACH_SANDBOXES))
def test_functions_that_reach_no_sandbox_never_import_the_e2b_sdk(
    cold_imports: dict[str, dict[str, Any]], function: str
) -> None:
    modules = cold_imports[function]["modules"]
    assert [m for m in E2B_SDK if m in modules] == []
    assert "sandbox_gateway.adapters.e2b" not in modules


@pytest.mark.parametrize("function", sorted(REACH_SANDBOXES))
def test_functions_that_reach_sandboxes_import_the_e2b_sdk_during_init(
    cold_imports: dict[str, dict[str, Any]], function: str
) -> None:
    assert all(m in cold_imports[function]["modules"] for m in E2B_SDK)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_registers_its_snapstart_hooks_once_at_init(
    cold_imports: dict[str, dict[str, Any]], function: str
) -> None:
    assert cold_imports[function]["hooks"] == {"before": 1, "after": 1}
