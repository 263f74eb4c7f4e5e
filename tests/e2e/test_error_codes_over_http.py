"""Every code of README.md's "## API" error table, produced over real HTTP against the local stack.

tests/integration/test_handlers.py produces each code through lambda_handler with fakes; here each
one goes through the gateway, the functions' worker processes, DynamoDB on moto's server and a
sandbox provider reached over the network. The provider failures (502, 503, 504) come from a
second stack whose E2B is a small fault server on 127.0.0.1, started by this module; that stack
runs without LOCAL_MODE, as deployed, which is also where `provider_not_allowed` is answered.
`unauthorized` needs a request that reaches a function with no authorizer in front of it: a second
gateway, on the same functions, from a template whose routes have no authorizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import e2b
import pytest
import requests
from sandbox_gateway.adapters.table_layout import session_key
from sandbox_gateway.api.errors import PROVIDER_MESSAGES

from local.gateway import Gateway
from local.stack import Stack, running_stack, tenant_store
from tests.e2e.conftest import Client, bearer, create_key
from tests.support.readme import documented_error_codes

HANG_SECONDS = 2  # E2B_REQUEST_TIMEOUT_SECONDS of the faulty stack
# Text the fault server puts in its answers: it must never reach a caller.
FAULT_MARKER = "fault-server-internal-detail /var/lib/e2b/secret"


# --- a faulty E2B on loopback -------------------------------------------------------------------
@dataclass
class FaultServer:
    """Answers the E2B API's sandbox create by the `FAULT` variable the caller passed in `envs`
    (the only part of the create request a caller controls): `error` (500 with a JSON message),
    `hang` (reads the request, never answers) or `drop` (reads the request, closes the connection
    without an answer). Every other request gets a 500."""

    httpd: ThreadingHTTPServer
    arrived: list[str] = field(default_factory=list)  # the `TAG` of each create, in order
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def wait_for(self, tag: str, timeout: float = 20.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: tag in self.arrived, timeout), f"{tag!r} never reached E2B"


def start_fault_server() -> FaultServer:
    server: FaultServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer_500(self) -> None:
            body = json.dumps({"code": 500, "message": FAULT_MARKER}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                envs = json.loads(raw).get("envVars") or {}
            except (ValueError, AttributeError):
                envs = {}
            with server.changed:
                server.arrived.append(str(envs.get("TAG", "")))
                server.changed.notify_all()
            fault = envs.get("FAULT", "error")
            if fault == "hang":
                # Hold the connection until the client gives up (its request timeout) or 30 s.
                self.connection.settimeout(30)
                with contextlib.suppress(OSError):
                    self.rfile.read(1)
                self.close_connection = True
            elif fault == "drop":
                self.close_connection = True
            else:
                self._answer_500()

        def do_GET(self) -> None:
            self._answer_500()

        do_DELETE = do_GET

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server = FaultServer(httpd)
    threading.Thread(target=httpd.serve_forever, name="fault-e2b", daemon=True).start()
    return server


@dataclass(frozen=True)
class FaultyStack:
    client: Client
    fault: FaultServer


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyStack]:
    fault = start_fault_server()
    environment = {
        "E2B_API_URL": fault.url,
        "E2B_SANDBOX_URL": fault.url,
        "E2B_REQUEST_TIMEOUT_SECONDS": str(HANG_SECONDS),
        "LOCAL_MODE": "false",  # as deployed: E2B only
        "EXECUTION_QUEUE_URL": "",  # a deployment without async executions
    }
    try:
        with running_stack(port=0, aws_port=0, concurrency=3, extra_environment=environment) as stack:
            yield FaultyStack(Client(stack.url, stack.api_key), fault)
    finally:
        fault.httpd.shutdown()
        fault.httpd.server_close()


@pytest.fixture(scope="module")
def without_authorizer(stack: Stack) -> Iterator[Client]:
    """The stack's functions behind a gateway whose routes have no authorizer (a template that
    forgot its DefaultAuthorizer): the key is sent, but no one checks it or passes its tenant on."""
    routes = [dataclasses.replace(route, authorizer=None) for route in stack.gateway.routes]
    gateway = Gateway(("127.0.0.1", 0), routes, stack.gateway.pools, stack.gateway.cors)
    threading.Thread(target=gateway.serve_forever, name="gateway-without-authorizer", daemon=True).start()
    try:
        yield Client(gateway.url, stack.api_key)
    finally:
        gateway.shutdown()
        gateway.server_close()


# --- scenarios: one per documented code ---------------------------------------------------------
@dataclass
class World:
    client: Client
    stack: Stack
    table: Any
    request: pytest.FixtureRequest

    def faulty(self) -> FaultyStack:
        return self.request.getfixturevalue("faulty")  # type: ignore[no-any-return]

    def set_item(self, session_id: str, expression: str, values: dict[str, Any]) -> None:
        """Change the stored session as a concurrent request (or a crash mid-create) would have."""
        names = {"ExpressionAttributeNames": {"#status": "status"}} if "#status" in expression else {}
        self.table.update_item(
            Key=session_key(session_id),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            **names,
        )


Scenario = Callable[[World], requests.Response]
JSON = {"Content-Type": "application/json"}
CREATE = {"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"}


def _post_raw(path: str, body: bytes, content_type: str = "application/json") -> Scenario:
    return lambda w: w.client.request("POST", path, data=body, headers={"Content-Type": content_type})


def _forged_page_token(w: World) -> requests.Response:
    return w.client.request("GET", "/api/sessions", params={"next_token": "not-a-token"})


def _traversal(w: World) -> requests.Response:
    session_id = w.client.create_session()
    return w.client.request("GET", f"/api/e2b/files/{session_id}/..%2F..%2Fetc%2Fshadow")


def _bad_base64(w: World) -> requests.Response:
    session_id = w.client.create_session()
    body = {"session_id": session_id, "file_path": "a.txt", "content": "%%% not base64"}
    return w.client.request("POST", "/api/e2b/files", json=body)


def _missing_file(w: World) -> requests.Response:
    return w.client.request("GET", f"/api/e2b/files/{w.client.create_session()}/missing.txt")


def _code_too_large(w: World) -> requests.Response:
    return w.client.execute(w.client.create_session(), "x" * 1_100_000)


def _key_reused(w: World) -> requests.Response:
    key = {"Idempotency-Key": f"reused-{time.monotonic_ns()}"}
    first = w.client.request("POST", "/api/sessions", json=CREATE, headers=key)
    assert first.status_code == 201, first.text
    return w.client.request(
        "POST", "/api/sessions", json=CREATE | {"metadata": {"other": "body"}}, headers=key
    )


def _busy(w: World) -> requests.Response:
    session_id = w.client.create_session()
    until = int(time.time()) + 60
    w.set_item(session_id, "SET lease_id = :lease, lease_until = :until", {":lease": "held", ":until": until})
    return w.client.execute(session_id, "print(1)")


def _not_ready(w: World) -> requests.Response:
    session_id = w.client.create_session()
    w.set_item(session_id, "SET #status = :creating", {":creating": "creating"})
    return w.client.execute(session_id, "print(1)")


def _closed(w: World) -> requests.Response:
    session_id = w.client.create_session()
    assert w.client.request("DELETE", f"/api/sessions/{session_id}").status_code == 200
    return w.client.execute(session_id, "print(1)")


def _expired(w: World) -> requests.Response:
    session_id = w.client.create_session()
    w.set_item(session_id, "SET expires_at = :past", {":past": 1})
    return w.client.execute(session_id, "print(1)")


def _kill_sandbox_behind_the_services_back(w: World, session_id: str) -> None:
    # The local host's control plane, through the unmodified E2B SDK.
    listed = e2b.Sandbox.list(api_key="any", api_url=w.stack.e2b_url).next_items()
    (sandbox,) = [s for s in listed if s.metadata.get("session_id") == session_id]
    assert e2b.Sandbox.kill(sandbox.sandbox_id, api_key="any", api_url=w.stack.e2b_url)


def _sandbox_gone(w: World) -> requests.Response:
    session_id = w.client.create_session()
    _kill_sandbox_behind_the_services_back(w, session_id)
    return w.client.execute(session_id, "print(1)")


def _failed(w: World) -> requests.Response:
    session_id = w.client.create_session()
    _kill_sandbox_behind_the_services_back(w, session_id)
    gone = w.client.execute(session_id, "print(1)")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "sandbox_gone", gone.text
    return w.client.execute(session_id, "print(1)")


def _create_on_faulty_e2b(fault: str, tag: str = "") -> Scenario:
    def scenario(w: World) -> requests.Response:
        body = CREATE | {"envs": {"FAULT": fault, "TAG": tag or fault}}
        return w.faulty().client.request("POST", "/api/sessions", json=body)

    return scenario


def _docker_as_deployed(w: World) -> requests.Response:
    body = {"agent": "code_executor", "environment": "docker-python", "provider": "docker"}
    return w.faulty().client.request("POST", "/api/sessions", json=body)


def _key_in_use(w: World) -> requests.Response:
    """A create held in flight by an E2B that does not answer; its retry with the same key is 409."""
    faulty = w.faulty()
    tag = f"in-flight-{time.monotonic_ns()}"
    key = {"Idempotency-Key": tag}
    body = CREATE | {"envs": {"FAULT": "hang", "TAG": tag}}
    first: dict[str, requests.Response] = {}
    holder = threading.Thread(
        target=lambda: first.update(
            response=faulty.client.request("POST", "/api/sessions", json=body, headers=key)
        )
    )
    holder.start()
    try:
        faulty.fault.wait_for(tag)  # the key's in-flight record is written before E2B is called
        retry = faulty.client.request("POST", "/api/sessions", json=body, headers=key)
    finally:
        holder.join(timeout=30)
    # The first then fails as E2B never answered (which code: see the provider_timeout scenario).
    assert first["response"].status_code in (503, 504), first["response"].text
    assert first["response"].json()["error"]["code"] in ("provider_unavailable", "provider_timeout")
    return retry


def _no_authorizer_context(w: World) -> requests.Response:
    unchecked: Client = w.request.getfixturevalue("without_authorizer")
    return unchecked.request("GET", "/api/sessions")


def _lacks_scope(w: World) -> requests.Response:
    _, _, key = create_key(w.stack, scopes=["sessions"])
    body = {"session_id": "ses_00000000000000000000000000", "code": "print(1)", "language": "python"}
    return w.client.request("POST", "/api/e2b/execute", json=body, headers=bearer(key))


def _over_live_session_quota(w: World) -> requests.Response:
    tenant, _, key = create_key(w.stack)
    tenant_store(w.stack.dynamodb_url).set_quota_overrides(tenant, {"max_active_sessions": 1})
    first = w.client.request("POST", "/api/sessions", json=CREATE, headers=bearer(key))
    assert first.status_code == 201, first.text
    try:
        return w.client.request("POST", "/api/sessions", json=CREATE, headers=bearer(key))
    finally:
        path = f"/api/sessions/{first.json()['session_id']}"
        closed = w.client.request("DELETE", path, headers=bearer(key))
        assert closed.status_code == 200, closed.text


def _async_without_a_queue(w: World) -> requests.Response:
    body = {"mode": "async", "environment": "e2b-python", "code": "print(1)"}
    return w.faulty().client.request("POST", "/api/e2b/execute", json=body)


def _private_callback(w: World) -> requests.Response:
    body = {
        "mode": "async",
        "environment": "e2b-python",
        "code": "1",
        "callback_url": "https://169.254.169.254/",
    }
    return w.client.request("POST", "/api/e2b/execute", json=body)


SCENARIOS: dict[str, tuple[int, Scenario]] = {
    "invalid_callback_url": (400, _private_callback),
    "execution_not_found": (404, lambda w: w.client.request("GET", "/api/executions/exe_" + "0" * 28)),
    "async_unavailable": (503, _async_without_a_queue),
    "invalid_json": (400, _post_raw("/api/sessions", b'{"agent": ')),
    "invalid_file_path": (400, _traversal),
    "invalid_content": (400, _bad_base64),
    "invalid_page_token": (400, _forged_page_token),
    "unknown_environment": (400, _post_raw("/api/sessions", b'{"environment": "e2b-fortran"}')),
    "provider_not_allowed": (400, _docker_as_deployed),
    "validation_error": (422, _post_raw("/api/sessions", json.dumps(CREATE | {"colour": "red"}).encode())),
    "idempotency_key_reused": (422, _key_reused),
    "session_not_found": (404, lambda w: w.client.execute("ses_nosuchsession", "print(1)")),
    "file_not_found": (404, _missing_file),
    "unauthorized": (401, _no_authorizer_context),
    "forbidden": (403, _lacks_scope),
    "route_not_found": (404, lambda w: w.client.request("GET", "/api/nope")),
    "session_busy": (409, _busy),
    "session_not_ready": (409, _not_ready),
    "idempotency_key_in_use": (409, _key_in_use),
    "session_closed": (410, _closed),
    "session_expired": (410, _expired),
    "session_failed": (410, _failed),
    "sandbox_gone": (410, _sandbox_gone),
    "payload_too_large": (413, _code_too_large),
    "unsupported_media_type": (415, _post_raw("/api/sessions", json.dumps(CREATE).encode(), "text/plain")),
    "quota_exceeded": (429, _over_live_session_quota),
    "provider_error": (502, _create_on_faulty_e2b("error")),
    "provider_unavailable": (503, _create_on_faulty_e2b("drop")),
    "provider_timeout": (504, _create_on_faulty_e2b("hang")),
}
# Documented codes answered with Retry-After, and its value.
RETRY_AFTER = {"session_busy": "1", "idempotency_key_in_use": "1", "quota_exceeded": "30"}


def test_every_code_in_the_readme_table_has_an_http_scenario() -> None:
    documented = documented_error_codes()
    assert len(documented) >= 20
    assert documented == set(SCENARIOS), {
        "documented without an HTTP scenario": documented - set(SCENARIOS),
        "a scenario for an undocumented code": set(SCENARIOS) - documented,
    }


def _params() -> list[Any]:
    return [pytest.param(code, status, scenario, id=code) for code, (status, scenario) in SCENARIOS.items()]


@pytest.mark.parametrize(("code", "status", "scenario"), _params())
def test_each_documented_error_code_is_produced_over_http(
    client: Client,
    stack: Stack,
    sessions_table: Any,
    request: pytest.FixtureRequest,
    code: str,
    status: int,
    scenario: Scenario,
) -> None:
    response = scenario(World(client, stack, sessions_table, request))

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) - {"details"} == {"code", "message", "request_id"}, error
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["request_id"], str) and error["request_id"]
    assert "Traceback" not in response.text
    if code in RETRY_AFTER:
        assert response.headers["Retry-After"] == RETRY_AFTER[code]
    if code in PROVIDER_MESSAGES and status >= 500:
        # 5xx: fixed words per code; the provider's own text never reaches the caller.
        assert error["message"].startswith(PROVIDER_MESSAGES[code]), error["message"]
        assert FAULT_MARKER not in response.text and "/var/lib" not in response.text
