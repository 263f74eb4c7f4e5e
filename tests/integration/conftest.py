"""Integration tier: handlers, services and the DynamoDB adapter over moto; sandboxes are fakes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.client
import pytest
from moto import mock_aws
from sandbox_gateway import wiring
from sandbox_gateway.adapters.dynamodb import DynamoDBSessionRepository
from sandbox_gateway.models.environment import Provider

from tests.support.aws import create_sessions_table
from tests.support.events import load_event, with_tenant
from tests.support.fakes import FakeSandboxProvider
from tests.support.handlers import invoke


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        yield create_sessions_table(boto3.resource("dynamodb"), os.environ["TABLE_NAME"])


@pytest.fixture
def repository(table: Any) -> DynamoDBSessionRepository:
    return DynamoDBSessionRepository(table)


@pytest.fixture
def provider(table: Any) -> Iterator[FakeSandboxProvider]:
    """The fake stands in for E2B behind the real handlers, services and DynamoDB adapter."""
    fake = FakeSandboxProvider()
    wiring.reset()
    wiring.override(Provider.E2B, fake)
    yield fake
    wiring.reset()


class Api:
    """Calls lambda_handler with the events/ files, as API Gateway would."""

    def call(self, function: str, event_name: str, session_id: str | None = None, **body: Any) -> dict:
        response = invoke(function, load_event(event_name, session_id, **body))
        return response

    def create_session(self, **body: Any) -> str:
        response = self.call("sessions", "sessions_create", **body)
        assert response["statusCode"] == 201, response["body"]
        return json.loads(response["body"])["session_id"]


@pytest.fixture
def api(provider: FakeSandboxProvider) -> Api:
    return Api()


def body_of(response: dict) -> Any:
    return json.loads(response["body"])


def usage_of(tenant: str) -> dict[str, Any]:
    """GET /api/usage as `tenant`, through the sessions function (no events/ file has that route)."""
    event = load_event("sessions_list")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/usage"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /api/usage"
    event.pop("queryStringParameters", None)
    event["rawQueryString"] = ""
    response = invoke("sessions", with_tenant(event, tenant))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the DynamoDB API calls made while the test runs, in order."""
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, name: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(name)
        return original(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    yield calls
