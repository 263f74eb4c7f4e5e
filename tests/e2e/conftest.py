"""End-to-end tier: the local stack (gateway from template.yaml, moto server, local E2B host) over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from local.stack import TABLE_NAME, Stack, running_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack(port=0, concurrency=4) as running:
        yield running


class Client:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base_url + path, timeout=60, **kwargs)

    def create_session(self, **body: Any) -> str:
        payload = {"agent": "code_executor", "environment": "e2b-python", "provider": "e2b"} | body
        response = self.request("POST", "/api/sessions", json=payload)
        assert response.status_code == 201, response.text
        return str(response.json()["session_id"])

    def execute(
        self, session_id: str, code: str, language: str = "python", **extra: Any
    ) -> requests.Response:
        body = {"session_id": session_id, "code": code, "language": language} | extra
        return self.request("POST", "/api/e2b/execute", json=body)


@pytest.fixture(scope="session")
def client(stack: Stack) -> Client:
    return Client(stack.url)


@pytest.fixture(scope="session")
def sessions_table(stack: Stack) -> Any:
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=stack.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return dynamodb.Table(TABLE_NAME)
