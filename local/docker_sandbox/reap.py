"""`make reap`: remove Docker sandboxes whose sessions have ended — the backstop for a crash
between a session's end and its container's removal.

The session store is the truth (a keep-alive moves a session's expiry; a container's label
cannot move): a container whose label says it expired is kept while its session is still
creating or active, as the reaper service decides (`ReaperService.session_still_live`).
With --labels-only (no session store reachable) the labels alone decide.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sandbox_gateway import wiring


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.docker_sandbox.reap", description=__doc__)
    parser.add_argument("--labels-only", action="store_true", help="decide by the expiry labels alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    removed = wiring.docker_provider().reap(
        None if args.labels_only else wiring.reaper_service().session_still_live
    )
    logging.info(
        "removed %d expired sandbox container(s)%s",
        len(removed),
        f": {', '.join(removed)}" if removed else "",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
