#!/usr/bin/env python3
"""Write schemas/*.schema.json (message contracts) from their models; `--check` fails when one has drifted.

python3 scripts/generate_schemas.py           # rewrite the schemas (make schemas)
python3 scripts/generate_schemas.py --check   # exit 1 with a diff when one is out of date (make lint)
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
sys.path.insert(0, str(ROOT / "layers" / "shared"))

from sandbox_gateway.models.messages import execution_requested_schema  # noqa: E402 - needs the layer

GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    "execution-requested.schema.json": execution_requested_schema,
}


def schema_text(name: str) -> str:
    """A schema file's content, byte for byte as committed."""
    return json.dumps(GENERATORS[name](), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if a schema differs from its model")
    args = parser.parse_args(argv)
    stale = 0
    for name in GENERATORS:
        path = SCHEMAS / name
        expected = schema_text(name)
        if not args.check:
            path.parent.mkdir(exist_ok=True)
            path.write_text(expected, encoding="utf-8")
            print(f"wrote {os.path.relpath(path, ROOT)}")
            continue
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == expected:
            continue
        stale += 1
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), expected.splitlines(keepends=True), name, "from the model"
        )
        sys.stdout.writelines(list(diff)[:200])
        print(
            f"schemas/{name} is out of date with its model: run `make schemas` and commit it", file=sys.stderr
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
