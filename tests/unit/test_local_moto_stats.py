"""local/moto_server.py counts what each API costs the store under its lock (benchmarks/load.py)."""

from __future__ import annotations

import io
import json
from typing import Any

from local.moto_server import STATS_PATH, OneRequestAtATime


def _environ(path: str = "/", method: str = "POST", target: str | None = None) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "wsgi.input": io.BytesIO(b"{}"),
        "CONTENT_LENGTH": "2",
    }
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    return environ


def test_requests_are_counted_per_api_and_stats_answer_outside_the_lock() -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"{}"]

    server = OneRequestAtATime(app)
    start = lambda *_: None  # noqa: E731
    server(_environ(target="DynamoDB_20120810.UpdateItem"), start)
    server(_environ(target="DynamoDB_20120810.UpdateItem"), start)
    server(_environ(path="/bucket/key", method="PUT"), start)

    answer: dict[str, Any] = {}
    body = server(_environ(STATS_PATH, "GET"), lambda status, headers: answer.update(status=status))
    stats = json.loads(b"".join(body))
    assert answer["status"] == "200 OK" and STATS_PATH not in seen  # moto never sees it
    assert stats["DynamoDB_20120810.UpdateItem"]["requests"] == 2
    assert stats["PUT /bucket"]["requests"] == 1
    assert stats.pop("_process")["cpu_seconds"] > 0
    assert all(entry["seconds"] >= 0 and entry["waited_seconds"] >= 0 for entry in stats.values())
