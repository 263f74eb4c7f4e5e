"""The local stack's queues, bus, rules, buckets and SQS event sources, read from the real template.yaml,
and the pieces of the local event source mapping and of the moto server's long polls that need no
server (records, batch responses, request rewriting)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sandbox_gateway.adapters.aws_outbound import COMPLETED, EVENT_SOURCE, FAILED
from sandbox_gateway.config import Settings
from sandbox_gateway.models.messages import DETAIL_TYPE

from local.aws import (
    COMPLETIONS_PATTERN,
    LocalAwsResources,
    bucket_requests,
    failed_message_ids,
    local_name,
    sqs_record,
)
from local.moto_server import sqs_long_poll
from local.stack import TABLE_NAME, resource_environment
from local.template import (
    ROOT,
    BucketDefinition,
    RedrivePolicy,
    bucket_definitions,
    environment_references,
    event_bus_and_rules,
    load_template,
    parameter_default,
    queue_definitions,
    sqs_event_sources,
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_queue_definitions_put_the_dead_letter_queue_first_with_the_template_values(
    template: dict[str, Any],
) -> None:
    queues = {queue.logical_id: queue for queue in queue_definitions(template)}
    order = [queue.logical_id for queue in queue_definitions(template)]

    assert order.index("ExecutionDeadLetterQueue") < order.index("ExecutionQueue")
    execution = queues["ExecutionQueue"]
    assert execution.redrive == RedrivePolicy(
        "ExecutionDeadLetterQueue", parameter_default("QueueMaxReceiveCount")
    )
    # A message still being run must not be delivered again: visibility >= the worker's timeout.
    assert execution.visibility_timeout_seconds == parameter_default("WorkerTimeoutSeconds")
    assert execution.managed_sse
    dead_letters = queues["ExecutionDeadLetterQueue"]
    assert dead_letters.redrive is None
    assert dead_letters.message_retention_seconds == 14 * 24 * 3600


def test_queue_definitions_follow_the_parameters_defaults(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Parameters"]["QueueMaxReceiveCount"]["Default"] = 7
    changed["Parameters"]["WorkerTimeoutSeconds"]["Default"] = 300

    (execution,) = [q for q in queue_definitions(changed) if q.logical_id == "ExecutionQueue"]

    assert execution.redrive is not None and execution.redrive.max_receive_count == 7
    assert execution.visibility_timeout_seconds == 300


def test_event_bus_name_takes_the_stage_given_else_the_default(template: dict[str, Any]) -> None:
    (local_bus,), _ = event_bus_and_rules(template, {"Stage": "local"})
    (deployed_bus,), _ = event_bus_and_rules(template)

    assert (local_bus.logical_id, local_bus.name) == ("EventBus", "sandbox-gateway-local")
    assert deployed_bus.name == f"sandbox-gateway-{parameter_default('Stage')}"


def test_execution_requested_rule_sends_its_events_to_the_execution_queue(template: dict[str, Any]) -> None:
    _, rules = event_bus_and_rules(template)

    (rule,) = [r for r in rules if r.logical_id == "ExecutionRequestedRule"]
    assert rule.event_bus == "EventBus"
    assert rule.event_pattern == {"detail-type": [DETAIL_TYPE]}
    assert [target for _, target in rule.targets] == ["ExecutionQueue"]


def test_worker_is_an_sqs_event_source_with_batch_item_failures(template: dict[str, Any]) -> None:
    (source,) = sqs_event_sources(template)

    assert (source.function, source.queue, source.handler) == (
        "WorkerFunction",
        "ExecutionQueue",
        "app.lambda_handler",
    )
    assert source.batch_size == 10
    assert source.reports_batch_item_failures
    assert source.timeout_seconds == parameter_default("WorkerTimeoutSeconds")
    assert source.code_dir.name == "worker"
    route = source.as_route()
    assert (route.function, route.timeout_seconds, route.code_dir) == (
        "WorkerFunction",
        source.timeout_seconds,
        source.code_dir,
    )


def test_results_bucket_is_encrypted_private_and_expires(template: dict[str, Any]) -> None:
    (bucket,) = bucket_definitions(template)
    calls = dict(bucket_requests(bucket, "results-local"))

    assert bucket.logical_id == "ResultsBucket"
    (rule,) = calls["put_bucket_encryption"]["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    block = calls["put_public_access_block"]["PublicAccessBlockConfiguration"]
    assert set(block) == {"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"}
    assert all(block.values())
    lifecycle = calls["put_bucket_lifecycle_configuration"]["LifecycleConfiguration"]["Rules"]
    expire = next(r for r in lifecycle if "Expiration" in r)
    assert expire["Status"] == "Enabled" and expire["Expiration"]["Days"] >= 1
    assert all(call["Bucket"] == "results-local" for call in calls.values())


def test_a_bucket_property_the_local_stack_cannot_create_is_an_error() -> None:
    bucket = BucketDefinition("Other", {"VersioningConfiguration": {"Status": "Enabled"}})

    with pytest.raises(ValueError, match="VersioningConfiguration"):
        bucket_requests(bucket, "other-local")


def test_the_completions_rule_matches_the_events_the_service_publishes() -> None:
    assert COMPLETIONS_PATTERN == {"source": [EVENT_SOURCE], "detail-type": [COMPLETED, FAILED]}


def test_local_names() -> None:
    assert local_name("ExecutionDeadLetterQueue") == "sandbox-gateway-execution-dead-letter-queue-local"
    assert local_name("ResultsBucket") == "sandbox-gateway-results-bucket-local"


def _resources() -> LocalAwsResources:
    url = "http://127.0.0.1:4566"
    return LocalAwsResources(
        endpoint_url=url,
        queue_urls={
            "ExecutionQueue": f"{url}/123456789012/q",
            "ExecutionDeadLetterQueue": f"{url}/123456789012/dlq",
        },
        queue_arns={},
        dead_letter_queues={"ExecutionQueue": "ExecutionDeadLetterQueue"},
        event_bus_names={"EventBus": "sandbox-gateway-local"},
        bucket_names={"ResultsBucket": "results-local"},
        completions_queue_url=f"{url}/123456789012/completions",
        kms_key_ids={"SandboxAccessKey": "key-local"},
    )


def test_every_resource_the_functions_name_has_a_local_value() -> None:
    environment = resource_environment(_resources())

    assert set(environment_references()) <= set(environment)
    settings = Settings.from_environ(environment)
    assert settings.execution_queue_url == "http://127.0.0.1:4566/123456789012/q"
    assert settings.event_bus_name == "sandbox-gateway-local"
    assert settings.results_bucket == "results-local"
    assert settings.sandbox_access_key_id == "key-local"
    assert settings.table_name == TABLE_NAME
    assert settings.aws_endpoint_url == settings.dynamodb_endpoint_url == "http://127.0.0.1:4566"
    assert settings.callback_allow_loopback
    assert settings.worker_timeout_seconds == parameter_default("WorkerTimeoutSeconds")


def test_dead_letter_queue_url_of_a_queue() -> None:
    resources = _resources()

    assert resources.dead_letter_queue_url("ExecutionQueue") == "http://127.0.0.1:4566/123456789012/dlq"
    assert resources.dead_letter_queue_url("ExecutionDeadLetterQueue") is None


# --- the event source mapping's record and response handling ----------------------------------
LAMBDA_SQS_RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def test_sqs_record_has_lambdas_keys_and_spelling() -> None:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "handle",
        "MD5OfBody": "abc",
        "Body": json.dumps({"execution_id": "exe_1"}),
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "MessageAttributes": {
            "trace": {"StringValue": "t-1", "DataType": "String"},
            "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }

    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")

    assert set(record) == LAMBDA_SQS_RECORD_KEYS
    assert (record["messageId"], record["receiptHandle"], record["body"]) == (
        "m-1",
        "handle",
        message["Body"],
    )
    assert record["attributes"] == {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"}
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert record["messageAttributes"]["trace"] == {
        "stringValue": "t-1",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="


IDS = ["a", "b", "c"]


@pytest.mark.parametrize(
    "response",
    [None, "", {}, {"batchItemFailures": []}, {"batchItemFailures": None}],
)
def test_an_empty_batch_response_means_every_message_succeeded(response: Any) -> None:
    assert failed_message_ids(response, IDS) == set()


def test_listed_items_are_the_only_failures() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}

    assert failed_message_ids(response, IDS) == {"b", "c"}


@pytest.mark.parametrize(
    "response",
    [
        ["a"],
        "failed",
        {"batchItemFailures": "a"},
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "a"}]},
        {"batchItemFailures": ["a"]},
    ],
)
def test_an_invalid_batch_response_fails_the_whole_batch(response: Any) -> None:
    assert failed_message_ids(response, IDS) is None


# --- the moto server's long polls --------------------------------------------------------------
def test_an_sqs_json_receive_becomes_a_short_poll_with_its_wait() -> None:
    environ = {"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage", "CONTENT_TYPE": "application/x-amz-json-1.0"}
    body = json.dumps({"QueueUrl": "http://q", "WaitTimeSeconds": 20, "MaxNumberOfMessages": 10}).encode()

    found = sqs_long_poll(environ, body)

    assert found is not None
    wait, short_poll = found
    assert wait == 20
    assert json.loads(short_poll) == {"QueueUrl": "http://q", "WaitTimeSeconds": 0, "MaxNumberOfMessages": 10}


def test_an_sqs_query_receive_becomes_a_short_poll_with_its_wait() -> None:
    environ = {"CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8"}
    body = b"Action=ReceiveMessage&QueueUrl=http%3A%2F%2Fq&WaitTimeSeconds=5&Version=2012-11-05"

    found = sqs_long_poll(environ, body)

    assert found is not None
    wait, short_poll = found
    assert wait == 5
    fields = dict(parse_qsl(short_poll.decode()))
    assert fields == {
        "Action": "ReceiveMessage",
        "QueueUrl": "http://q",
        "WaitTimeSeconds": "0",
        "Version": "2012-11-05",
    }


def test_a_receive_without_a_wait_is_a_short_poll_even_on_a_queue_with_a_default_wait() -> None:
    environ = {"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}

    assert sqs_long_poll(environ, b'{"QueueUrl": "http://q"}') == (
        0,
        b'{"QueueUrl": "http://q", "WaitTimeSeconds": 0}',
    )


@pytest.mark.parametrize(
    ("environ", "body"),
    [
        ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem"}, b'{"TableName": "t"}'),
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"}, b'{"QueueUrl": "http://q"}'),
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b'{"WaitTimeSeconds": 21}'),  # SQS refuses it
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b"not json"),
        ({"CONTENT_TYPE": "application/x-www-form-urlencoded"}, b"Action=SendMessage&WaitTimeSeconds=5"),
        ({"CONTENT_TYPE": "application/xml"}, b"<CreateBucketConfiguration/>"),
    ],
)
def test_other_requests_pass_through_unchanged(environ: dict[str, str], body: bytes) -> None:
    assert sqs_long_poll(environ, body) is None


def test_make_dev_builds_no_powertools_objects_before_a_function_sets_its_environment() -> None:
    # The function processes are spawned and import local.dev first (multiprocessing's __mp_main__);
    # a logger or metrics object built then has no service name or namespace, and every metric
    # flush of that process raises.
    check = "import sys, local.dev; print('sandbox_gateway.observability' in sys.modules)"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])}

    imported = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )

    assert imported.stdout.strip() == "False"
