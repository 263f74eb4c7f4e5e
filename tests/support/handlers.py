"""Import functions/<name>/app.py by path: all three modules are called `app`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
_loaded: dict[str, ModuleType] = {}


def load_handler_module(name: str) -> ModuleType:
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(f"functions_{name}_app", FUNCTIONS / name / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


@dataclass
class FakeLambdaContext:
    function_name: str = "sandbox-gateway-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:sandbox-gateway-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
    return load_handler_module(name).lambda_handler(event, FakeLambdaContext())
