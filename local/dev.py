"""`make dev`: the whole service offline on http://127.0.0.1:3000, stopped with Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading

from local.stack import running_stack

BANNER = """
Sandbox Gateway is running at {url}  (sandboxes: {backend})

  curl -s -X POST {url}/api/sessions -H 'Content-Type: application/json' \\
       -d '{{"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"}}'
  curl -s -X POST {url}/api/e2b/execute -H 'Content-Type: application/json' \\
       -d '{{"session_id": "<session_id>", "code": "x = 21\\nprint(x * 2)", "language": "python"}}'

Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.dev", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--provider",
        choices=["local", "e2b"],
        default="local",
        help="local: the local E2B-compatible host (default, offline); e2b: real E2B (needs E2B_API_KEY)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="worker processes per function")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every call

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_stack(
        host=args.host, port=args.port, provider=args.provider, concurrency=args.concurrency
    ) as stack:
        backend = f"local E2B-compatible host at {stack.e2b_url}" if stack.e2b_url else "E2B cloud"
        print(BANNER.format(url=stack.url, backend=backend), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
