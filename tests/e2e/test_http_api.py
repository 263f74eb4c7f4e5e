"""Every route over real HTTP: gateway → lambda_handler → DynamoDB (moto server) → E2B SDK → local host."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import e2b
import pytest
import requests
from sandbox_gateway.adapters.table_layout import session_key

from local.stack import Stack
from tests.e2e.conftest import Client
from tests.support.docker_engine import require_docker_image

PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_the_seed_requests_work_exactly_as_written(client: Client) -> None:
    created = client.request(
        "POST",
        "/api/sessions",
        json={"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"},
    )
    assert created.status_code == 201
    session_id = created.json()["session_id"]

    executed = client.request(
        "POST",
        "/api/e2b/execute",
        json={"session_id": session_id, "code": "print('hello')", "language": "python"},
    )
    assert executed.status_code == 200 and executed.json()["stdout"] == "hello\n"

    content = base64.b64encode(b"seed file\n").decode()
    written = client.request(
        "POST",
        "/api/e2b/files",
        json={"session_id": session_id, "file_path": "output.txt", "content": content},
    )
    assert written.status_code == 201 and written.json()["path"] == "/workspace/output.txt"

    listed = client.request("GET", f"/api/e2b/files/{session_id}", params={"directory": "/workspace"})
    assert [e["name"] for e in listed.json()["entries"]] == ["output.txt"]

    read = client.request("GET", f"/api/e2b/files/{session_id}/output.txt")
    assert base64.b64decode(read.json()["content"]) == b"seed file\n"


def test_a_stateful_notebook_session(client: Client) -> None:
    session_id = client.create_session()

    assert client.execute(session_id, "data = [3, 1, 2]").json()["status"] == "ok"
    assert (
        client.execute(session_id, "import statistics\nstatistics.mean(data)").json()["results"][0]["text"]
        == "2"
    )
    failed = client.execute(session_id, "data.missing()").json()
    assert failed["status"] == "error" and failed["error"]["name"] == "AttributeError"
    recovered = client.execute(session_id, "print(sorted(data))").json()
    assert recovered["stdout"] == "[1, 2, 3]\n"
    assert recovered["execution_count"] == failed["execution_count"] + 1


@pytest.mark.parametrize(
    ("environment", "language", "setup", "check", "expected"),
    [
        ("e2b-node", "javascript", "const base = 40;", "console.log(base + 2)", "42\n"),
        (
            "e2b-node",
            "ts",
            "enum Base { Value = 40 }\nconst base: number = Base.Value;",
            "const answer: number = base + 2; console.log(answer)",
            "42\n",
        ),
        ("e2b-bash", "bash", "BASE=40", "echo $((BASE + 2))", "42\n"),
        ("e2b-python", "python", "base = 40", "print(base + 2)", "42\n"),
    ],
)
def test_each_language_keeps_its_state(
    client: Client, environment: str, language: str, setup: str, check: str, expected: str
) -> None:
    session_id = client.create_session(environment=environment)
    client.execute(session_id, setup, language)
    assert client.execute(session_id, check, language).json()["stdout"] == expected


def test_rich_results_carry_a_png(client: Client) -> None:
    session_id = client.create_session()
    code = f"from IPython.display import Image\nimport base64\nImage(data=base64.b64decode('{PNG_1X1}'))"
    results = client.execute(session_id, code).json()["results"]
    assert any(r.get("png") == PNG_1X1 and "png" in r["formats"] for r in results)


def test_binary_file_round_trip(client: Client) -> None:
    session_id = client.create_session()
    data = bytes(range(256)) * 8
    body = {
        "session_id": session_id,
        "file_path": "/tmp/nested/blob.bin",
        "content": base64.b64encode(data).decode(),
    }
    assert client.request("POST", "/api/e2b/files", json=body).status_code == 201

    entries = client.request(
        "GET", f"/api/e2b/files/{session_id}", params={"directory": "/tmp/nested"}
    ).json()
    assert [(e["name"], e["size"]) for e in entries["entries"]] == [("blob.bin", len(data))]
    as_json = client.request("GET", f"/api/e2b/files/{session_id}/%2Ftmp/nested/blob.bin")
    assert base64.b64decode(as_json.json()["content"]) == data
    raw = client.request(
        "GET",
        f"/api/e2b/files/{session_id}/%2Ftmp/nested/blob.bin",
        headers={"Accept": "application/octet-stream"},
    )
    assert raw.headers["content-type"] == "application/octet-stream" and raw.content == data
    # The code sees the same bytes.
    assert (
        client.execute(session_id, "print(len(open('/tmp/nested/blob.bin','rb').read()))").json()["stdout"]
        == "2048\n"
    )
    assert client.request("DELETE", f"/api/e2b/files/{session_id}/%2Ftmp/nested/blob.bin").status_code == 204


def test_unknown_closed_and_expired_sessions(client: Client, stack: Stack, sessions_table: Any) -> None:
    assert_error(client.execute("ses_nosuchsession", "1"), 404, "session_not_found")

    closed = client.create_session()
    assert client.request("DELETE", f"/api/sessions/{closed}").json()["status"] == "closed"
    assert client.request("DELETE", f"/api/sessions/{closed}").status_code == 200
    assert_error(client.execute(closed, "1"), 410, "session_closed")

    expired = client.create_session()
    sessions_table.update_item(
        Key=session_key(expired),
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": 1},
    )
    assert_error(client.execute(expired, "1"), 410, "session_expired")
    assert client.request("GET", f"/api/sessions/{expired}").json()["status"] == "expired"


def test_sandbox_killed_behind_the_services_back(client: Client, stack: Stack) -> None:
    session_id = client.create_session()
    assert client.execute(session_id, "x = 1").status_code == 200
    listed = e2b.Sandbox.list(api_key="any", api_url=stack.e2b_url).next_items()
    (sandbox,) = [s for s in listed if s.metadata.get("session_id") == session_id]
    e2b.Sandbox.kill(sandbox.sandbox_id, api_key="any", api_url=stack.e2b_url)

    assert_error(client.execute(session_id, "x"), 410, "sandbox_gone")
    assert client.request("GET", f"/api/sessions/{session_id}").json()["status"] == "failed"
    assert client.execute(client.create_session(), "print('fresh')").json()["stdout"] == "fresh\n"


def test_concurrent_executions_in_one_session_are_refused_not_interleaved(client: Client) -> None:
    session_id = client.create_session()
    started = threading.Event()
    slow: dict[str, Any] = {}

    def run_slow() -> None:
        # It may itself meet one of the fast calls below: then it waits its turn, as callers should.
        code = "import time\ntime.sleep(3)\nprint('slow')"
        while (response := client.execute(session_id, code)).status_code == 409:
            time.sleep(float(response.headers["retry-after"]) / 10)
        slow["response"] = response

    runner = threading.Thread(target=lambda: (started.set(), run_slow()))
    runner.start()
    started.wait()
    busy = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and runner.is_alive():
        response = client.execute(session_id, "print('fast')")
        if response.status_code == 409:
            busy = response
            break
    runner.join()
    assert busy is not None, "no execution was ever refused while another one ran"
    assert_error(busy, 409, "session_busy")
    assert busy.headers["retry-after"] == "1"
    assert slow["response"].json()["stdout"] == "slow\n"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/api/sessions", b'{"agent": ', 400, "invalid_json"),
        ("POST", "/api/sessions", b'{"environment": "e2b-fortran"}', 400, "unknown_environment"),
        ("POST", "/api/e2b/execute", b'{"session_id": "x"}', 422, "validation_error"),
        (
            "POST",
            "/api/e2b/files",
            b'{"session_id": "x", "file_path": "a", "content": "%%%"}',
            400,
            "invalid_content",
        ),
        (
            "POST",
            "/api/e2b/files",
            b'{"session_id": "x", "file_path": "../../etc/passwd", "content": ""}',
            400,
            "invalid_file_path",
        ),
        ("GET", "/api/e2b/files/x/..%2F..%2Fetc%2Fshadow", b"", 400, "invalid_file_path"),
        ("GET", "/api/e2b/files/x?directory=/etc", b"", 400, "invalid_file_path"),
    ],
)
def test_hostile_requests_get_clear_errors(
    client: Client, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(client.request(method, path, data=body, headers=headers), status, code)


def test_unknown_routes_answer_in_the_common_error_shape(client: Client) -> None:
    response = client.request("GET", "/nope")
    assert_error(response, 404, "route_not_found")
    assert response.json()["error"]["request_id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/sessions"),
        ("GET", "/api/e2b/execute"),
        ("POST", "/api/sessions/x"),
        ("PATCH", "/api/e2b/files/x/a.txt"),
        ("OPTIONS", "/api/sessions"),
    ],
)
def test_a_known_path_with_another_method_is_404_route_not_found_as_deployed(
    client: Client, method: str, path: str
) -> None:
    # API Gateway has no 405: the request goes to the $default route, whose function answers 404.
    response = client.request(method, path)
    assert_error(response, 404, "route_not_found")
    assert "allow" not in response.headers


@pytest.mark.parametrize("path", ["/api/sessions", "/api/e2b/files/x/a.txt", "/nope"])
def test_a_cors_preflight_is_answered_by_the_gateway_as_deployed(client: Client, path: str) -> None:
    # API Gateway answers preflights itself when the API has a CorsConfiguration (any path).
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"}
    response = client.request("OPTIONS", path, headers=headers)

    assert response.status_code == 204 and response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET,POST,DELETE,OPTIONS"
    assert "Idempotency-Key" in response.headers["access-control-allow-headers"].split(",")
    assert response.headers["access-control-max-age"] == "600"


def test_a_cross_origin_answer_carries_the_cors_headers(client: Client) -> None:
    response = client.request("GET", "/api/environments", headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "Retry-After,Server-Timing"

    error = client.request("GET", "/nope", headers={"Origin": "https://app.example"})
    assert_error(error, 404, "route_not_found")
    assert error.headers["access-control-allow-origin"] == "*"


def test_a_docker_session_behaves_like_an_e2b_one(client: Client) -> None:
    require_docker_image()
    session_id = client.create_session(environment="docker-python", provider="docker")
    client.execute(session_id, "total = 40")
    assert client.execute(session_id, "print(total + 2)").json()["stdout"] == "42\n"
    assert client.execute(session_id, "echo $((40 + 2))", "bash").json()["stdout"] == "42\n"
    failed = client.execute(session_id, "1/0").json()
    assert failed["status"] == "error" and failed["error"]["name"] == "ZeroDivisionError"

    data = bytes(range(256))
    body = {"session_id": session_id, "file_path": "bytes.bin", "content": base64.b64encode(data).decode()}
    assert client.request("POST", "/api/e2b/files", json=body).status_code == 201
    raw = client.request(
        "GET", f"/api/e2b/files/{session_id}/bytes.bin", headers={"Accept": "application/octet-stream"}
    )
    assert raw.content == data
    assert_error(
        client.request("POST", "/api/e2b/files", json=body | {"file_path": "/etc/x"}),
        400,
        "invalid_file_path",
    )

    assert client.request("DELETE", f"/api/sessions/{session_id}").json()["status"] == "closed"
    assert_error(client.execute(session_id, "1"), 410, "session_closed")


def test_a_create_retried_with_its_idempotency_key_returns_the_same_session(client: Client) -> None:
    body = {"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"}
    headers = {"Idempotency-Key": f"e2e-{time.time_ns()}"}
    first = client.request("POST", "/api/sessions", json=body, headers=headers)
    again = client.request("POST", "/api/sessions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["session_id"] == again.json()["session_id"]
    assert_error(
        client.request("POST", "/api/sessions", json=body | {"agent": "other"}, headers=headers),
        422,
        "idempotency_key_reused",
    )


def test_directory_listing_pages_over_http(client: Client) -> None:
    session_id = client.create_session()
    for name in ("c.txt", "a.txt", "b.txt"):
        body = {"session_id": session_id, "file_path": f"paged/{name}", "content": "eA=="}
        assert client.request("POST", "/api/e2b/files", json=body).status_code == 201

    names, token = [], None
    for _ in range(5):
        query = {"directory": "/workspace/paged", "limit": "2"} | ({"next_token": token} if token else {})
        page = client.request("GET", f"/api/e2b/files/{session_id}", params=query).json()
        names += [entry["name"] for entry in page["entries"]]
        token = page["next_token"]
        if token is None:
            break
    assert names == ["a.txt", "b.txt", "c.txt"]
    bad = client.request("GET", f"/api/e2b/files/{session_id}", params={"next_token": "forged"})
    assert_error(bad, 400, "invalid_page_token")
