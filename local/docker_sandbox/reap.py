"""`make reap`: remove Docker sandboxes whose sessions have ended — the backstop for a crash
between a session's end and its container's removal.

The session store is the truth (a keep-alive moves a session's expiry; a container's label
cannot move): a container whose label says it expired is kept while its session is still
active. With --labels-only (no session store reachable) the labels alone decide.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from sandbox_gateway import wiring
from sandbox_gateway.models.errors import DomainError
from sandbox_gateway.models.session import SessionStatus


def session_still_live(tenant_id: str, session_id: str) -> bool:
    try:
        session = wiring.session_repository().get(tenant_id, session_id)
    except DomainError:
        return True  # the store cannot say: keep the container rather than kill a live session
    return session is not None and session.effective_status(int(time.time())) == SessionStatus.ACTIVE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.docker_sandbox.reap", description=__doc__)
    parser.add_argument("--labels-only", action="store_true", help="decide by the expiry labels alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    removed = wiring.docker_provider().reap(None if args.labels_only else session_still_live)
    logging.info(
        "removed %d expired sandbox container(s)%s",
        len(removed),
        f": {', '.join(removed)}" if removed else "",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
