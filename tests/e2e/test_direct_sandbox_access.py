"""Over HTTP: after create, executes and file calls reach the sandbox without E2B's control plane,
though each function runs in its own worker process that never saw the sandbox (as a new Lambda
container would not); the session item holds the access sealed, never the token itself."""

from __future__ import annotations

import base64
from typing import Any

import requests

from local.stack import Stack
from tests.e2e.conftest import Client


def control_plane_requests(stack: Stack) -> int:
    return int(requests.get(f"{stack.e2b_url}/health", timeout=5).json()["requests"])


def test_executes_and_file_calls_make_no_control_plane_request(client: Client, stack: Stack) -> None:
    session_id = client.create_session()
    before = control_plane_requests(stack)
    for code in ("x = 1", "x += 1", "print(x)"):
        assert client.execute(session_id, code).status_code == 200
    content = base64.b64encode(b"direct").decode()
    body = {"session_id": session_id, "file_path": "/workspace/d.txt", "content": content}
    assert client.request("POST", "/api/e2b/files", json=body).status_code in (200, 201)
    assert client.request("GET", f"/api/e2b/files/{session_id}/d.txt").status_code == 200
    assert client.request("GET", f"/api/e2b/files/{session_id}?directory=/workspace").status_code == 200
    assert control_plane_requests(stack) == before


def test_the_session_item_holds_the_access_sealed(client: Client, stack: Stack, sessions_table: Any) -> None:
    session_id = client.create_session()
    (item,) = [
        item
        for item in sessions_table.scan()["Items"]
        if item.get("session_id") == session_id and "status" in item
    ]
    sandbox = requests.get(
        f"{stack.e2b_url}/sandboxes/{item['sandbox_id']}", headers={"X-API-Key": "local"}, timeout=5
    ).json()
    assert item["sandbox_access"] and sandbox["envdAccessToken"] not in item["sandbox_access"]
    assert client.request("DELETE", f"/api/sessions/{session_id}").status_code == 200
    (ended,) = [
        i for i in sessions_table.scan()["Items"] if i.get("session_id") == session_id and "status" in i
    ]
    assert "sandbox_access" not in ended
