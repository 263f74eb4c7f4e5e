"""The local stack's moto computes once what it recomputed per request, with the same answers."""

from __future__ import annotations

import json
from typing import Any

import boto3
import jsonpath_ng.ext
import moto.backends
import moto.core.responses
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from local import moto_speedups

PATCHED = (
    (moto.backends, "list_of_moto_modules"),
    (moto.core.responses, "method_names_from_class"),
    (jsonpath_ng.ext, "parse"),
    (Table, "query"),
)


@pytest.fixture
def originals(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """moto's own functions; each is put back after the test."""
    found = {}
    for module, name in PATCHED:
        found[name] = getattr(module, name)
        monkeypatch.setattr(module, name, found[name])
    return found


def completion_messages() -> list[dict[str, Any]]:
    """Two events through a rule to an SQS target with EventBridge's default input template (the
    stack's completions queue is such a target): the bodies the queue received."""
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="completions")["QueueUrl"]
        events.create_event_bus(Name="bus")
        events.put_rule(
            Name="done", EventBusName="bus", EventPattern=json.dumps({"source": ["sandbox-gateway"]})
        )
        events.put_targets(
            Rule="done",
            EventBusName="bus",
            Targets=[{"Id": "q", "Arn": "arn:aws:sqs:us-east-1:123456789012:completions"}],
        )
        for n in range(2):
            events.put_events(
                Entries=[
                    {
                        "Source": "sandbox-gateway",
                        "DetailType": "ExecutionCompleted",
                        "Detail": json.dumps({"execution_id": f"exe_{n}", "ok": True}),
                        "EventBusName": "bus",
                    }
                ]
            )
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(message["Body"]) for message in received]
    for body in bodies:  # per event, not per code path
        body.pop("id"), body.pop("time")
    return sorted(bodies, key=lambda body: body["detail"]["execution_id"])


def test_answers_are_moto_own_and_install_is_idempotent(originals: dict[str, Any]) -> None:
    moto_speedups.install()
    listing = moto.backends.list_of_moto_modules
    moto_speedups.install()

    assert moto.backends.list_of_moto_modules is listing  # not wrapped twice
    assert list(listing()) == list(originals["list_of_moto_modules"]())
    assert "dynamodb" in listing()
    cls = moto.core.responses.BaseResponse
    assert moto.core.responses.method_names_from_class(cls) == originals["method_names_from_class"](cls)


def test_events_reach_their_targets_as_without_the_caches(originals: dict[str, Any]) -> None:
    expected = completion_messages()
    assert [body["detail"]["execution_id"] for body in expected] == ["exe_0", "exe_1"]

    moto_speedups.install()
    assert completion_messages() == expected
    # The second event's input template reused the first one's compiled expressions.
    assert jsonpath_ng.ext.parse.cache_info().hits > 0


def test_dynamodb_answers_through_the_cached_dispatch(originals: dict[str, Any]) -> None:
    moto_speedups.install()
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        item = dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]

    assert item == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert moto.core.responses.method_names_from_class.cache_info().hits > 0


def query_pages(dynamodb: Any, **query: Any) -> list[list[tuple[str, str]]]:
    """Every page of a query, two items a page, as (pk, sk) pairs."""
    pages, start = [], None
    while True:
        page = dynamodb.query(
            TableName="t", Limit=2, **query, **({"ExclusiveStartKey": start} if start else {})
        )
        pages.append([(item["pk"]["S"], item["sk"]["S"]) for item in page["Items"]])
        start = page.get("LastEvaluatedKey")
        if not start:
            return pages


def queried_in_both_directions() -> list[list[list[tuple[str, str]]]]:
    """Base-table and index queries, forward and backward, over items written out of key order
    and with ties on the index's sort key (the table's keys must break them)."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "owner", "at")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_owner",
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in (7, 3, 9, 1, 5, 8, 2, 6, 4, 0):
            dynamodb.put_item(
                TableName="t",
                Item={
                    "pk": {"S": f"P{n % 3}"},
                    "sk": {"S": f"s{n}"},
                    "owner": {"S": f"o{n % 2}"},
                    "at": {"S": f"t{n // 4}"},  # ties within an owner
                },
            )
        results = []
        for forward in (True, False):
            results.append(
                query_pages(
                    dynamodb,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": "P1"}},
                    ScanIndexForward=forward,
                )
            )
            results.append(
                query_pages(
                    dynamodb,
                    IndexName="by_owner",
                    KeyConditionExpression="#o = :o",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={":o": {"S": "o0"}},
                    ScanIndexForward=forward,
                )
            )
    return results


def test_queries_answer_the_same_pages_without_the_table_wide_sort(
    originals: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = queried_in_both_directions()
    assert expected[0] == [[("P1", "s1"), ("P1", "s4")], [("P1", "s7")]]
    assert sum(len(page) for page in expected[1]) == 5  # o0: 0, 2, 4, 6, 8

    moto_speedups.install()
    presorts = 0
    sorted_listing = Table.all_items

    def counted(table: Table) -> Any:
        nonlocal presorts
        presorts += 1
        return sorted_listing(table)

    monkeypatch.setattr(Table, "all_items", counted)
    assert queried_in_both_directions() == expected
    assert presorts == 0  # no query went through moto's sorted listing
