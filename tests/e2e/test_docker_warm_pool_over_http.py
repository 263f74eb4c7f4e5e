"""Over HTTP, a stack with a Docker warm pool (`WARM_POOL=docker-python=1`): the pool is full before
the stack is ready, a create binds the pooled container (renamed for its session, used once), and
once the pool is empty a create boots its own as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest
from boto3.dynamodb.conditions import Key
from sandbox_gateway.adapters.docker import LABEL_POOL, LABEL_SESSION
from sandbox_gateway.adapters.pool_store import pool_pk
from sandbox_gateway.adapters.table_layout import session_key

from local.stack import Stack, running_stack
from tests.e2e.conftest import Client, table_of
from tests.support.docker_engine import require_docker_image

ENVIRONMENT = "docker-python"


@pytest.fixture(scope="module")
def pooled_stack() -> Iterator[Stack]:
    require_docker_image()
    # The scheduler (reaper and refill) stays off: the test decides when the pool refills.
    with running_stack(
        port=0, concurrency=2, aws_port=0, reaper_interval_seconds=0, warm_pool=f"{ENVIRONMENT}=1"
    ) as stack:
        yield stack


def pooled_ids(table: Any) -> list[str]:
    items = table.query(KeyConditionExpression=Key("pk").eq(pool_pk(ENVIRONMENT)))["Items"]
    return [str(item["sandbox_id"]) for item in items]


def test_a_create_binds_the_pooled_container_once(pooled_stack: Stack) -> None:
    engine = docker.from_env()
    table = table_of(pooled_stack)
    client = Client(pooled_stack.url, pooled_stack.api_key)
    (pooled,) = pooled_ids(table)
    container = engine.containers.get(pooled)
    assert container.labels[LABEL_POOL] == ENVIRONMENT and LABEL_SESSION not in container.labels

    first = client.create_session(environment=ENVIRONMENT, provider="docker")
    bound = str(table.get_item(Key=session_key(first))["Item"]["sandbox_id"])
    assert engine.containers.get(bound).id == container.id  # the pooled container, renamed
    assert bound.startswith(f"sgw-{first}.") and pooled_ids(table) == []
    ran = client.execute(first, "import os; x = 1; print(os.getcwd(), os.listdir('.'))").json()
    assert ran["stdout"] == "/workspace []\n"

    second = client.create_session(environment=ENVIRONMENT, provider="docker")  # empty: booted
    booted = str(table.get_item(Key=session_key(second))["Item"]["sandbox_id"])
    assert booted == f"sgw-{second}"
    assert engine.containers.get(booted).labels[LABEL_SESSION] == second
    fresh = client.execute(second, "print('x' in dir())").json()
    assert fresh["stdout"] == "False\n"  # nothing of the other session's

    for session in (first, second):
        assert client.request("DELETE", f"/api/sessions/{session}").status_code in (200, 204)
    names = {c.name for c in engine.containers.list(all=True)}
    assert bound not in names and booted not in names
