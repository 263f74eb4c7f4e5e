"""The local stack's moto rolls a cancelled transaction back item by item, not from table copies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import moto.dynamodb.models as dynamodb_models
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from local.moto_transactions import TablesUncopied, with_undo_log

TABLE = "t"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(dynamodb_models, "copy", TablesUncopied)
    monkeypatch.setattr(
        DynamoDBBackend, "transact_write_items", with_undo_log(DynamoDBBackend.transact_write_items)
    )
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(20):
            dynamodb.put_item(
                TableName=TABLE, Item={"pk": {"S": f"p{n}"}, "sk": {"S": "s"}, "n": {"N": str(n)}}
            )
        yield dynamodb


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "s"}}


def items(client: Any) -> dict[str, str]:
    return {i["pk"]["S"]: i["n"]["N"] for i in client.scan(TableName=TABLE)["Items"]}


def transaction(fail_last: bool) -> list[dict[str, Any]]:
    return [
        {
            "Update": {
                "TableName": TABLE,
                "Key": key("p1"),
                "UpdateExpression": "SET n = :v",
                "ExpressionAttributeValues": {":v": {"N": "100"}},
            }
        },
        {"Put": {"TableName": TABLE, "Item": {**key("new"), "n": {"N": "7"}}}},
        {"Delete": {"TableName": TABLE, "Key": key("p2")}},
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": key("p3"),
                "ConditionExpression": "n = :three",
                "ExpressionAttributeValues": {":three": {"N": "4" if fail_last else "3"}},
            }
        },
    ]


def live_table() -> Any:
    return dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]


def test_a_cancelled_transaction_leaves_every_item_as_it_was(client: Any) -> None:
    before, table = items(client), live_table()
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=transaction(fail_last=True))
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert items(client) == before  # p1 not updated, "new" not created, p2 not deleted
    assert live_table() is table  # put back item by item: the table was never copied


def test_a_transaction_that_passes_applies_every_item(client: Any) -> None:
    client.transact_write_items(TransactItems=transaction(fail_last=False))
    after = items(client)
    assert after["p1"] == "100" and after["new"] == "7" and "p2" not in after and after["p3"] == "3"
    assert len(after) == 20
