#!/usr/bin/env python3
"""Generate layers/shared/requirements.txt from pyproject.toml [project].dependencies.

The layer's requirements file is derived, never edited by hand: pyproject.toml is the single
source of dependencies. `make requirements` runs this script; `--check` (used by the unit test
and CI) exits 1 with a diff when the file has drifted. Dependencies named in
[tool.sandbox-gateway].not-in-layer (the client package and its `sgw` command) are left out.

    python3 scripts/generate_layer_requirements.py           # rewrite the file
    python3 scripts/generate_layer_requirements.py --check   # fail if it is out of date
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
REQUIREMENTS = ROOT / "layers" / "shared" / "requirements.txt"
HEADER = (
    "# generated from pyproject.toml by `make requirements`; do not edit\n"
    "# ([project].dependencies; the Lambda layer is built from this file by layers/shared/Makefile)\n"
)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where} must be a list of strings")
    return [item.strip() for item in value]


def normalize(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return normalize(match.group(1))


def read_dependencies(pyproject: Path = PYPROJECT) -> list[str]:
    """Return [project].dependencies from a pyproject.toml, in declared order."""
    with pyproject.open("rb") as fh:
        data = tomllib.load(fh)
    return _strings(data.get("project", {}).get("dependencies", []), f"{pyproject}: [project].dependencies")


def layer_dependencies(pyproject: Path = PYPROJECT) -> list[str]:
    """[project].dependencies without [tool.sandbox-gateway].not-in-layer, in declared order."""
    with pyproject.open("rb") as fh:
        data = tomllib.load(fh)
    excluded = {
        normalize(name)
        for name in _strings(
            data.get("tool", {}).get("sandbox-gateway", {}).get("not-in-layer", []),
            f"{pyproject}: [tool.sandbox-gateway].not-in-layer",
        )
    }
    deps = read_dependencies(pyproject)
    # A name left behind after its dependency went would hide a typo in the next one added.
    stale = excluded - {requirement_name(dep) for dep in deps}
    if stale:
        raise ValueError(f"{pyproject}: not-in-layer names no dependency: {', '.join(sorted(stale))}")
    return [dep for dep in deps if requirement_name(dep) not in excluded]


def render(pyproject: Path = PYPROJECT) -> str:
    """The requirements file's full, expected text."""
    return HEADER + "".join(f"{dep}\n" for dep in layer_dependencies(pyproject))


def diff(pyproject: Path = PYPROJECT, requirements: Path = REQUIREMENTS) -> str:
    """A unified diff from the file on disk to the expected text; empty when it is current."""
    expected = render(pyproject)
    current = requirements.read_text(encoding="utf-8") if requirements.exists() else ""
    if current == expected:
        return ""
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{requirements} (on disk)",
            tofile=f"{requirements} (from {pyproject.name})",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    parser.add_argument("--output", type=Path, default=REQUIREMENTS)
    args = parser.parse_args(argv)

    if args.check:
        delta = diff(args.pyproject, args.output)
        if delta:
            print(f"{args.output} is out of date with {args.pyproject}; run `make requirements`.")
            print(delta, end="")
            return 1
        print(f"{args.output} is up to date.")
        return 0

    args.output.write_text(render(args.pyproject), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
