"""``python -m local.sandbox_runtime``: print the sandbox runtime's path, building it first if
this content hash has none yet (``--wheelhouse [--python-version 3.11]``: the directory of
the wheels instead, which the Docker build installs from)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from . import RuntimeUnavailable, ensure_runtime, ensure_wheelhouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.sandbox_runtime", description=__doc__)
    parser.add_argument("--wheelhouse", action="store_true", help="print the wheelhouse's path instead")
    parser.add_argument(
        "--python-version",
        default=None,
        help="the wheels' CPython, e.g. 3.11 (default: /usr/bin/python3's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    started = time.monotonic()
    try:
        path = ensure_wheelhouse(python_version=args.python_version) if args.wheelhouse else ensure_runtime()
    except RuntimeUnavailable as exc:
        print(f"cannot build the sandbox runtime: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    if elapsed > 1:
        print(f"built in {elapsed:.0f} s", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
