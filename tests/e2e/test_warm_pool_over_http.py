"""Over HTTP, a stack with a warm pool (`make dev`'s default): the pool is full before the stack is
ready, a create binds the pooled sandbox (the one the pool function booted, used once), and once
the pool is empty a create boots its own as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from boto3.dynamodb.conditions import Key
from sandbox_gateway.adapters.pool_store import pool_pk
from sandbox_gateway.adapters.table_layout import session_key

from local.stack import Stack, running_stack
from tests.e2e.conftest import Client, table_of


@pytest.fixture(scope="module")
def pooled_stack() -> Iterator[Stack]:
    # The scheduler (reaper and refill) stays off: the test decides when the pool refills.
    with running_stack(
        port=0, concurrency=2, aws_port=0, reaper_interval_seconds=0, warm_pool="e2b-python=1"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def table(pooled_stack: Stack) -> Any:
    return table_of(pooled_stack)


def pooled_ids(table: Any) -> list[str]:
    items = table.query(KeyConditionExpression=Key("pk").eq(pool_pk("e2b-python")))["Items"]
    return [str(item["sandbox_id"]) for item in items]


def host_metadata(stack: Stack, sandbox_id: str) -> dict[str, str]:
    info = requests.get(f"{stack.e2b_url}/sandboxes/{sandbox_id}", headers={"X-API-Key": "local"}, timeout=5)
    return dict(info.json()["metadata"])


def test_a_create_binds_the_pooled_sandbox_once(pooled_stack: Stack, table: Any) -> None:
    client = Client(pooled_stack.url, pooled_stack.api_key)
    (pooled,) = pooled_ids(table)
    assert host_metadata(pooled_stack, pooled) == {"pool": "e2b-python"}

    first = client.create_session()
    assert table.get_item(Key=session_key(first))["Item"]["sandbox_id"] == pooled
    assert pooled_ids(table) == []
    ran = client.execute(first, "import os; x = 1; print(os.getcwd())").json()
    assert ran["stdout"] == "/workspace\n"

    second = client.create_session()  # the pool is empty: booted as before
    booted = table.get_item(Key=session_key(second))["Item"]["sandbox_id"]
    assert booted != pooled and host_metadata(pooled_stack, booted)["session_id"] == second
    fresh = client.execute(second, "print('x' in dir())").json()
    assert fresh["stdout"] == "False\n"  # nothing of the other session's
