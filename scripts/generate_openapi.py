#!/usr/bin/env python3
"""Write openapi.json (the API's contract) from the routes; `--check` fails when it has drifted.

python3 scripts/generate_openapi.py           # rewrite openapi.json (make openapi)
python3 scripts/generate_openapi.py --check   # exit 1 with a diff when it is out of date (make lint)
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi.json"
sys.path.insert(0, str(ROOT / "layers" / "shared"))

from sandbox_gateway.api.app import openapi_text  # noqa: E402 - needs the layer on the path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if openapi.json differs from the code")
    args = parser.parse_args(argv)
    expected = openapi_text()
    if not args.check:
        SPEC.write_text(expected, encoding="utf-8")
        print(f"wrote {SPEC.relative_to(ROOT)}")
        return 0
    current = SPEC.read_text(encoding="utf-8") if SPEC.exists() else ""
    if current == expected:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True), expected.splitlines(keepends=True), "openapi.json", "from the code"
    )
    sys.stdout.writelines(list(diff)[:200])
    print("openapi.json is out of date with the routes: run `make openapi` and commit it", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
