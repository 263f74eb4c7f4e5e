"""The local stack's AWS (DynamoDB, SQS, EventBridge, S3): moto's server, one request at a time.

moto's backends hold no lock: a conditional write is a read, a check and a write in Python, and
two of them on the server's threads can interleave, so two `attribute_not_exists` puts for one
key both succeed (seen: two sessions, two sandboxes for one Idempotency-Key; the session
leases rely on the same atomicity). DynamoDB makes every conditional write atomic; this server
does too, by running one request at a time. Connections are still served on threads, so a slow
client does not hold the others up while it sends its request.

An SQS long poll (ReceiveMessage with WaitTimeSeconds) would hold that lock, and every other
request of the stack, for its whole wait: this server runs it as short polls under the lock with
pauses outside it, until a message comes or the wait is over. Clients see a long poll.

`GET /_local/stats` answers, outside the lock, how many requests of each API the server has run,
the seconds they held the lock and the seconds they waited for it, and the server's CPU seconds
(`_process`; held time beyond them was spent waiting for a core) (`benchmarks/load.py`: is the
local store the bottleneck?).
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from local import moto_speedups, moto_transactions

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
LONG_POLL_INTERVAL_SECONDS = 0.1
MAX_WAIT_SECONDS = 20  # SQS's longest WaitTimeSeconds
STATS_PATH = "/_local/stats"  # not a path of any AWS API moto serves


class RequestStats:
    """Per API (the X-Amz-Target header, e.g. DynamoDB_20120810.UpdateItem, else the HTTP method
    and the first path segment: S3, the query protocol): requests run, seconds under the lock and
    seconds waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, list[float]] = {}

    def add(self, environ: dict[str, Any], seconds: float, waited: float) -> None:
        target = environ.get("HTTP_X_AMZ_TARGET") or (
            f"{environ.get('REQUEST_METHOD', '')} /{environ.get('PATH_INFO', '').lstrip('/').split('/')[0]}"
        )
        with self._lock:
            entry = self._calls.setdefault(target, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += seconds
            entry[2] += waited

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                name: {"requests": n, "seconds": round(held, 6), "waited_seconds": round(waited, 6)}
                for name, (n, held, waited) in self._calls.items()
            }


class OneRequestAtATime:
    """WSGI middleware: the wrapped app (and its response body) runs under one lock."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.stats = RequestStats()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") == STATS_PATH and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "application/json")])
            snapshot: dict[str, Any] = self.stats.snapshot()
            snapshot["_process"] = {"cpu_seconds": time.process_time()}
            return [json.dumps(snapshot).encode()]
        # The request body is read before the lock, so a slow sender holds nobody up.
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        long_poll = sqs_long_poll(environ, body)
        if long_poll is None:
            return self._locked(environ, body, start_response)
        wait_seconds, short_poll = long_poll
        deadline = time.monotonic() + wait_seconds
        while True:
            answer = _Answer()
            returned = self._locked(dict(environ), short_poll, answer.start_response)
            chunks = [*answer.written, *returned]
            done = not answer.status.startswith("200") or _has_messages(b"".join(chunks))
            left = deadline - time.monotonic()
            if done or left <= 0:
                start_response(answer.status, answer.headers, answer.exc_info)
                return chunks
            time.sleep(min(left, LONG_POLL_INTERVAL_SECONDS))  # outside the lock: other requests run

    def _locked(
        self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]
    ) -> list[bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        asked = time.perf_counter()
        with self._lock:
            started = time.perf_counter()
            try:
                return list(self._app(environ, start_response))
            finally:
                self.stats.add(environ, time.perf_counter() - started, started - asked)


class _Answer:
    """Holds a WSGI app's status, headers and written body until the server decides to send them."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.exc_info: Any = None
        self.written: list[bytes] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self.written.append


def sqs_long_poll(environ: dict[str, Any], body: bytes) -> tuple[int, bytes] | None:
    """For an SQS ReceiveMessage, its wait in seconds and the same request as a short poll (the
    body with WaitTimeSeconds 0); None for any other request.

    A request that gives no WaitTimeSeconds becomes a short poll too: the queue's own
    ReceiveMessageWaitTimeSeconds would otherwise make moto wait under the lock (the stack's
    queues have none; a queue created with one is polled without its wait)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target == "AmazonSQS.ReceiveMessage":  # SQS's JSON protocol (current SDKs, AWS CLI)
        try:
            request = json.loads(body or b"{}")
            wait = int(request.get("WaitTimeSeconds") or 0)
        except (ValueError, TypeError, AttributeError):
            return None  # moto answers the malformed request itself
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            return None  # moto refuses it, as SQS does
        return wait, json.dumps({**request, "WaitTimeSeconds": 0}).encode()
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded") and not target:
        fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)  # the query protocol
        if ("Action", "ReceiveMessage") not in fields:
            return None
        values = dict(fields)
        try:
            wait = int(values.get("WaitTimeSeconds") or 0)
        except ValueError:
            return None
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            return None
        fields = [(name, value) for name, value in fields if name != "WaitTimeSeconds"]
        return wait, urlencode([*fields, ("WaitTimeSeconds", "0")]).encode()
    return None


def _has_messages(answer: bytes) -> bool:
    if answer.startswith(b"{"):
        try:
            return bool(json.loads(answer).get("Messages"))
        except ValueError:
            return True  # not ours to judge: hand it to the client
    return b"<Message>" in answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.moto_server", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    moto_transactions.install()  # transactions copy the items they touch, not whole tables
    moto_speedups.install()  # what moto recomputes per request, computed once
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        OneRequestAtATime(app),  # type: ignore[arg-type]
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
