"""Round trips per request on the local stack, counted exactly where they are made: in the local
gateway's own worker process of the function, on its warm module state.

A botocore hook in the benchmark's process cannot see the functions' calls (they run in the
gateway's worker processes), so each counted request is sent to its function's worker pool with
`probe` as the handler: the probe turns on two counters, calls the route's real handler (the module
instance that worker serves every request with), and turns them off again:
  - AWS: every botocore API call, by operation name; DynamoDB's apart (as
    tests/integration/test_round_trips.py counts them), any other service's (KMS, Secrets
    Manager, S3, SQS, EventBridge) as "service.Operation";
  - E2B: every HTTP request the E2B SDK sends, from the access log of its transport (pyqwest logs
    each request on `pyqwest.access` at DEBUG); control plane (/sandboxes...) and sandbox plane
    (envd, Jupyter) told apart by path.
The event is the one the gateway would build for the request, with the authorizer's context, so
nothing but the counting differs from a request over HTTP. Not a test: the counts that must hold
are asserted in tests; this reports them beside the issue's targets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import botocore.client

TARGET_KEY = "x-bench-target"  # where the probe finds the route it stands in for
# Paths of E2B's control plane (api.e2b.app): everything else the SDK sends goes to a sandbox.
CONTROL_PLANE = re.compile(r"^/(?:v\d+/)?(?:sandboxes|templates|teams|snapshots|volumes)(?:/|$)")
ACCESS_LINE = re.compile(r"HTTP Request: (\w+) (\S+)")
# Issue 11's target: a warm execute (and files routes likewise) makes at most two DynamoDB calls
# and no call to the control plane.
TARGETS = {"execute": 2, "execute (warm)": 2, "file write": 2, "file read": 2}


class _AccessLog(logging.Handler):
    def __init__(self, requests: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.requests = requests

    def emit(self, record: logging.LogRecord) -> None:
        found = ACCESS_LINE.search(record.getMessage())
        if found:
            path = re.sub(r"^\w+://[^/]+", "", found.group(2)).split("?", 1)[0]
            self.requests.append(f"{found.group(1)} {path}")


@contextlib.contextmanager
def counting() -> Iterator[tuple[list[str], list[str]]]:
    """(AWS calls: DynamoDB's as "Operation", other services' as "service.Operation"; E2B requests
    as "METHOD /path") made inside the block."""
    aws: list[str] = []
    requests: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counted(self: Any, name: str, params: dict[str, Any]) -> Any:
        service = self.meta.service_model.service_name
        aws.append(name if service == "dynamodb" else f"{service}.{name}")
        return original(self, name, params)

    access = logging.getLogger("pyqwest.access")
    level, propagate = access.level, access.propagate
    handler = _AccessLog(requests)
    access.setLevel(logging.DEBUG)
    access.propagate = False  # counted, not written to the function's log
    access.addHandler(handler)
    botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield aws, requests
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
        access.removeHandler(handler)
        access.setLevel(level)
        access.propagate = propagate


def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The handler the worker runs in place of the route's own: the route's answer and its calls."""
    # The gateway's worker keeps each function's handler module loaded (its warm state); the probe
    # calls it through the same loader so that it is that very instance, not a second import.
    from local.gateway import _invoke  # noqa: PLC0415 - the worker has it loaded already

    target = event.pop(TARGET_KEY)
    with counting() as (aws, requests):
        answer = _invoke(target["code_dir"], target["handler"], target["function"], event, target["timeout"])
    return {"answer": answer, "aws": aws, "requests": requests}


def summary(aws: list[str], requests: list[str], target: int | None = None) -> dict[str, Any]:
    control = [r for r in requests if CONTROL_PLANE.match(r.split(" ", 1)[1])]
    dynamodb = [call for call in aws if "." not in call]
    return {
        "dynamodb": len(dynamodb),
        "dynamodb_calls": dynamodb,
        "other_aws_calls": [call for call in aws if "." in call],
        "control_plane": len(control),
        "sandbox_plane": len(requests) - len(control),
        "e2b_requests": requests,
        "target_dynamodb": target,
    }


class Counter:
    """Sends counted requests to a running stack's functions, as its gateway would."""

    def __init__(self, stack: Any) -> None:
        from local.template import http_api_authorizers, http_api_routes  # noqa: PLC0415

        self.stack = stack
        self.routes = http_api_routes()
        self.authorizers = http_api_authorizers()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """The route's JSON answer and its summary()."""
        from local.gateway import RequestData, build_event, find_route  # noqa: PLC0415

        found = find_route(self.routes, method, path)
        assert found is not None, f"no route for {method} {path}"
        route, params = found
        headers = [("authorization", f"Bearer {self.stack.api_key}"), ("host", "127.0.0.1")]
        raw = json.dumps(body).encode() if body is not None else b""
        if body is not None:
            headers.append(("content-type", "application/json"))
        event = build_event(route, params, RequestData(method, path, "", headers, raw, "127.0.0.1"))
        decision = self.stack.gateway.authorization.check(route, event)  # cached, as over HTTP
        assert decision.status is None, f"the authorizer refused the benchmark's key: {decision.status}"
        if route.authorizer is not None:
            event["requestContext"]["authorizer"] = {"lambda": decision.context}
        result = self._invoke(route, event)
        answer = result["answer"]
        assert answer["statusCode"] < 300, answer
        return json.loads(answer.get("body") or "{}"), result

    def authorizer(self) -> dict[str, Any]:
        """One authorizer invocation for the benchmark's key (API Gateway caches its answer)."""
        from local.gateway import RequestData, build_authorizer_event, build_event, find_route  # noqa: PLC0415

        found = find_route(self.routes, "GET", "/api/environments")
        assert found is not None and found[0].authorizer is not None
        route = found[0]
        authorizer = self.authorizers[route.authorizer]  # type: ignore[index]
        headers = [("authorization", f"Bearer {self.stack.api_key}"), ("host", "127.0.0.1")]
        event = build_event(route, {}, RequestData("GET", "/api/environments", "", headers, b"", "127.0.0.1"))
        identity = [str(event["headers"].get(name) or "") for name in authorizer.identity_headers]
        return self._invoke(authorizer.as_route(), build_authorizer_event(event, identity))

    def _invoke(self, route: Any, event: dict[str, Any]) -> dict[str, Any]:
        from local.template import ROOT  # noqa: PLC0415

        event[TARGET_KEY] = {
            "code_dir": str(route.code_dir),
            "handler": route.handler,
            "function": route.function,
            "timeout": route.timeout_seconds,
        }
        # Same function, so the same worker pool and environment; only the handler is the probe.
        stand_in = dataclasses.replace(route, code_dir=ROOT / "benchmarks", handler="round_trips.probe")
        result: dict[str, Any] = self.stack.gateway.pools.invoke(stand_in, event)
        return result


def count_round_trips(stack: Any, environment: str = "e2b-python") -> dict[str, Any]:
    """Each operation once on one new session, in the order a caller makes them."""
    counter = Counter(stack)
    operations: dict[str, dict[str, Any]] = {}

    def record(name: str, result: dict[str, Any]) -> None:
        operations[name] = summary(result["aws"], result["requests"], TARGETS.get(name))

    auth = counter.authorizer()
    record("authorizer (per key, then cached)", auth)
    body = {
        "agent": "code_executor",
        "environment": environment,
        "provider": environment.split("-", maxsplit=1)[0],
    }
    created, result = counter.request("POST", "/api/sessions", body)
    record("create", result)
    session_id = created["session_id"]
    try:
        code = {"session_id": session_id, "code": "1 + 1", "language": "python"}
        record("execute", counter.request("POST", "/api/e2b/execute", code)[1])
        record("execute (warm)", counter.request("POST", "/api/e2b/execute", code)[1])
        content = {"session_id": session_id, "file_path": "bench.txt", "content": "aGVsbG8K"}
        record("file write", counter.request("POST", "/api/e2b/files", content)[1])
        record("file read", counter.request("GET", f"/api/e2b/files/{session_id}/bench.txt")[1])
        record("session get", counter.request("GET", f"/api/sessions/{session_id}")[1])
    finally:
        _, result = counter.request("DELETE", f"/api/sessions/{session_id}")
    record("session delete", result)
    if not any(op["e2b_requests"] for op in operations.values()):
        # The SDK's transport logged nothing: its E2B counts would read 0 without meaning it.
        raise RuntimeError("the E2B SDK's access log (pyqwest.access) recorded no request: cannot count")
    return {"environment": environment, "operations": operations}
