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
import threading
import time

from sandbox_gateway import wiring
from sandbox_gateway.models.errors import DomainError
from sandbox_gateway.models.session import SessionStatus

logger = logging.getLogger(__name__)


def session_still_live(tenant_id: str, session_id: str) -> bool:
    try:
        session = wiring.session_repository().get(tenant_id, session_id)
    except DomainError:
        return True  # the store cannot say: keep the container rather than kill a live session
    return session is not None and session.effective_status(int(time.time())) == SessionStatus.ACTIVE


def reap_once(*, labels_only: bool = False) -> list[str]:
    """One sweep of this stack's expired Docker sandboxes (owner = DOCKER_OWNER): the names of
    the containers removed. Never raises: an unreachable engine or store is logged and the
    sweep is tried again next time. Cheap (one listing by label): call it every ~30 s."""
    try:
        return wiring.docker_provider().reap(None if labels_only else session_still_live)
    except Exception:  # a periodic backstop must not die with one failed sweep
        logger.warning("reaping expired Docker sandboxes failed", exc_info=True)
        return []


def start_periodic_reaper(interval_seconds: float = 30.0) -> threading.Event:
    """Run reap_once() every `interval_seconds` on a daemon thread; set the returned event to
    stop it. For the local stack, so nothing outlives its session by more than ~a minute."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_seconds):
            removed = reap_once()
            if removed:
                logger.info("removed %d expired sandbox container(s): %s", len(removed), ", ".join(removed))

    threading.Thread(target=loop, name="docker-sandbox-reaper", daemon=True).start()
    return stop


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
