"""The local stack's queues, event bus, rules, buckets and KMS keys on moto's server, and the poller that
feeds a function its SQS messages the way Lambda's event source mapping does.

Everything is created from template.yaml (local/template.py reads it), so the local resources
cannot drift from what `sam deploy` creates. Names are `sandbox-gateway-<kebab logical id>-local`,
the bus is the template's name with Stage=local.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import Any

import boto3

from local.template import (
    BucketDefinition,
    bucket_definitions,
    event_bus_and_rules,
    load_template,
    queue_definitions,
)

logger = logging.getLogger("local.aws")

# What the local stack and its functions sign with; moto accepts any credentials.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
LOCAL_STAGE = "local"
# Completion events, as adapters/aws_outbound.py publishes them (a unit test holds the two
# together), are copied to this queue, local only, so developers and tests can read them.
# Not imported from there: `make dev`'s function processes are spawned and import local.dev (so
# this module) before their environment is set, and aws_outbound would build Powertools' logger
# and metrics then, without their service name and namespace (every metric flush then raises).
COMPLETIONS_QUEUE = "sandbox-gateway-completions-local"
COMPLETIONS_PATTERN = {
    "source": ["sandbox-gateway"],
    "detail-type": ["ExecutionCompleted", "ExecutionFailed"],
}


def aws_client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
    )


def local_name(logical_id: str) -> str:
    """ExecutionDeadLetterQueue -> sandbox-gateway-execution-dead-letter-queue-local."""
    return f"sandbox-gateway-{re.sub(r'(?<!^)(?=[A-Z])', '-', logical_id).lower()}-{LOCAL_STAGE}"


@dataclass(frozen=True)
class LocalAwsResources:
    endpoint_url: str
    queue_urls: Mapping[str, str]  # by logical id
    queue_arns: Mapping[str, str]
    dead_letter_queues: Mapping[str, str]  # a queue's logical id -> its dead-letter queue's
    event_bus_names: Mapping[str, str]
    bucket_names: Mapping[str, str]
    completions_queue_url: str
    kms_key_ids: Mapping[str, str] = field(default_factory=dict)

    @property
    def event_bus_name(self) -> str:
        (name,) = self.event_bus_names.values()  # the template has one bus
        return name

    def dead_letter_queue_url(self, queue: str) -> str | None:
        dead_letter_queue = self.dead_letter_queues.get(queue)
        return None if dead_letter_queue is None else self.queue_urls[dead_letter_queue]

    def references(self) -> dict[str, str]:
        """What `!Ref <logical id>` gives deployed: a queue's URL, a bus's or a bucket's name, a key's id."""
        return {**self.queue_urls, **self.event_bus_names, **self.bucket_names, **self.kms_key_ids}


def create_resources(endpoint_url: str, template: dict[str, Any] | None = None) -> LocalAwsResources:
    """The template's queues (dead-letter queues first), buses, rules and buckets, and the local
    completions queue with its rule, on the moto server at `endpoint_url`."""
    template = template or load_template()
    sqs = aws_client("sqs", endpoint_url)
    events = aws_client("events", endpoint_url)
    s3 = aws_client("s3", endpoint_url)

    queue_urls: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    dead_letter_queues: dict[str, str] = {}
    for queue in queue_definitions(template):
        attributes: dict[str, str] = {}
        if queue.visibility_timeout_seconds is not None:
            attributes["VisibilityTimeout"] = str(queue.visibility_timeout_seconds)
        if queue.message_retention_seconds is not None:
            attributes["MessageRetentionPeriod"] = str(queue.message_retention_seconds)
        if queue.managed_sse:
            attributes["SqsManagedSseEnabled"] = "true"
        if queue.redrive is not None:
            dead_letter_queues[queue.logical_id] = queue.redrive.dead_letter_queue
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": queue_arns[queue.redrive.dead_letter_queue],
                    "maxReceiveCount": queue.redrive.max_receive_count,
                }
            )
        queue_urls[queue.logical_id], queue_arns[queue.logical_id] = _create_queue(
            sqs, local_name(queue.logical_id), attributes
        )

    buses, rules = event_bus_and_rules(template, {"Stage": LOCAL_STAGE})
    bus_names = {bus.logical_id: bus.name for bus in buses}
    for bus in buses:
        events.create_event_bus(Name=bus.name)
    for rule in rules:
        targets = []
        for target_id, target in rule.targets:
            if target not in queue_arns:
                raise ValueError(f"rule {rule.logical_id}: only queue targets run locally, not {target}")
            targets.append({"Id": target_id, "Arn": queue_arns[target]})
        bus_name = bus_names[rule.event_bus] if rule.event_bus else "default"
        _put_rule(events, local_name(rule.logical_id), bus_name, rule.event_pattern, targets)

    bucket_names = {}
    for bucket in bucket_definitions(template):
        name = bucket_names[bucket.logical_id] = local_name(bucket.logical_id)
        s3.create_bucket(Bucket=name)
        for operation, arguments in bucket_requests(bucket, name):
            getattr(s3, operation)(**arguments)

    kms = aws_client("kms", endpoint_url)
    kms_key_ids = {
        logical_id: str(kms.create_key(Description=local_name(logical_id))["KeyMetadata"]["KeyId"])
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::KMS::Key"
    }

    (bus_name,) = bus_names.values()
    completions_url, completions_arn = _create_queue(sqs, COMPLETIONS_QUEUE, {})
    _put_rule(
        events,
        COMPLETIONS_QUEUE,
        bus_name,
        COMPLETIONS_PATTERN,
        [{"Id": "Completions", "Arn": completions_arn}],
    )
    return LocalAwsResources(
        endpoint_url,
        queue_urls,
        queue_arns,
        dead_letter_queues,
        bus_names,
        bucket_names,
        completions_url,
        kms_key_ids,
    )


def _create_queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, str(arn)


def _put_rule(
    events: Any, name: str, bus_name: str, pattern: Mapping[str, Any], targets: list[dict[str, str]]
) -> None:
    events.put_rule(Name=name, EventBusName=bus_name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=name, EventBusName=bus_name, Targets=targets)


# CloudFormation's bucket properties that have no local effect: moto enforces no bucket policy
# (and the local endpoint is http, which the template's TLS-only policy would refuse anyway).
_IGNORED_BUCKET_PROPERTIES = frozenset({"BucketName", "Tags"})


def bucket_requests(bucket: BucketDefinition, name: str) -> list[tuple[str, dict[str, Any]]]:
    """The S3 calls (boto3 method, arguments) that give bucket `name` the template's configuration.

    A property this does not know is an error, not skipped: the local bucket would silently differ
    from the deployed one (tests/unit/test_local_template_aws.py runs it on the real template)."""
    requests: list[tuple[str, dict[str, Any]]] = []
    for key, value in bucket.properties.items():
        if key in _IGNORED_BUCKET_PROPERTIES:
            continue
        if key == "BucketEncryption":
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": dict(rule["ServerSideEncryptionByDefault"]),
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in value["ServerSideEncryptionConfiguration"]
            ]
            configuration = {"ServerSideEncryptionConfiguration": {"Rules": rules}}
            requests.append(("put_bucket_encryption", {"Bucket": name, **configuration}))
        elif key == "PublicAccessBlockConfiguration":
            requests.append(("put_public_access_block", {"Bucket": name, key: dict(value)}))
        elif key == "OwnershipControls":
            requests.append(("put_bucket_ownership_controls", {"Bucket": name, key: dict(value)}))
        elif key == "LifecycleConfiguration":
            rules = [_lifecycle_rule(bucket.logical_id, rule) for rule in value["Rules"]]
            requests.append(("put_bucket_lifecycle_configuration", {"Bucket": name, key: {"Rules": rules}}))
        else:
            raise ValueError(f"bucket {bucket.logical_id}: local/aws.py does not create {key} yet")
    return requests


def _lifecycle_rule(bucket: str, rule: Mapping[str, Any]) -> dict[str, Any]:
    translated: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    for key, value in rule.items():
        if key == "Id":
            translated["ID"] = value
        elif key == "ExpirationInDays":
            translated["Expiration"] = {"Days": int(value)}
        elif key == "AbortIncompleteMultipartUpload":
            translated[key] = {"DaysAfterInitiation": int(value["DaysAfterInitiation"])}
        elif key not in ("Status", "Prefix"):
            raise ValueError(f"bucket {bucket}: local/aws.py does not translate lifecycle {key} yet")
    return translated


# --- the event source mapping ------------------------------------------------------------------
Invoke = Callable[[dict[str, Any]], Any]


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message (ReceiveMessage's shape) as Lambda puts it in an SQS event's Records."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # Lambda spells them in camelCase, binary values base64-encoded.
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues") or []],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def failed_message_ids(response: Any, message_ids: list[str]) -> set[str] | None:
    """The messages a ReportBatchItemFailures answer leaves on the queue, as Lambda reads it; None
    for an invalid answer, which fails the whole batch.

    No answer, an empty one, or an empty or null batchItemFailures: every message succeeded. An
    answer that is not an object, or an item that is not {"itemIdentifier": <a message id of this
    batch>}: invalid."""
    if response is None or response == "":
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        failed.add(identifier)
    return failed


class QueuePoller:
    """Lambda's SQS event source mapping, on one local queue: receives up to `batch_size`
    messages, calls `invoke(event)` with them as an SQS event, deletes the messages the function
    handled and leaves the others on the queue, where SQS redelivers them and, after the queue's
    maxReceiveCount receives, moves them to its dead-letter queue.

    A function that raises (or answers an invalid ReportBatchItemFailures response) fails its
    whole batch, as on Lambda. Up to `concurrency` batches run at once, on threads.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Invoke,
        batch_size: int = 10,
        retry_delay_seconds: int = 1,
        *,
        report_batch_item_failures: bool = True,
        concurrency: int = 1,
        idle_seconds: float = 0.2,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._invoke = invoke
        self._batch_size = batch_size
        # A failed message is visible again after this long. Deployed, SQS waits the queue's
        # VisibilityTimeout (the worker's timeout, minutes); locally the wait is cut so a failing
        # message reaches the dead-letter queue in seconds. SQS counts whole seconds.
        self._retry_delay = int(retry_delay_seconds)
        self._report = report_batch_item_failures
        self._idle = idle_seconds
        self._slots = threading.Semaphore(concurrency)
        self._batches = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sqs-batch")
        self._in_flight: set[Future[None]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)
        self._lock = threading.Lock()
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._queue_arn = str(attributes["QueueArn"])
        self._region = str(sqs.meta.region_name)
        self.batches = 0  # invocations
        self.deleted = 0  # messages done
        self.failed_items = 0  # messages left on the queue by a failure (item or whole batch)
        self.failed_batches = 0  # invocations that raised or answered an invalid response

    def start(self) -> QueuePoller:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stops receiving and waits up to `timeout` for the batches in flight (their messages
        stay on the queue if they do not finish)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._lock:
            in_flight = set(self._in_flight)
        wait_for(in_flight, timeout=timeout)
        self._batches.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=self._idle):  # every batch slot is busy
                continue
            try:
                # Short polls, with a pause when the queue is empty: moto's own long poll waits
                # inside the request, and the stack's server runs one request at a time. (It cuts
                # clients' long polls into short ones too, but this does not rely on that.)
                messages = self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=self._batch_size,
                    WaitTimeSeconds=0,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                self._slots.release()
                if not self._stop.is_set():
                    logger.exception("receiving from %s failed", self._queue_url)
                self._stop.wait(self._idle)
                continue
            if not messages:
                self._slots.release()
                self._stop.wait(self._idle)
                continue
            future = self._batches.submit(self._handle, messages)
            with self._lock:
                self._in_flight.add(future)
            future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)
        self._slots.release()

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        ids = [message["MessageId"] for message in messages]
        event = {"Records": [sqs_record(message, self._queue_arn, self._region) for message in messages]}
        failed: set[str] | None
        try:
            response = self._invoke(event)
        except Exception:
            logger.exception("the function failed its batch of %d message(s)", len(messages))
            failed = None
        else:
            failed = failed_message_ids(response, ids) if self._report else set()
            if failed is None:
                logger.error("the function answered an invalid batch response: %.200r", response)
        whole_batch = failed is None
        failed = set(ids) if failed is None else failed
        done = [m for m in messages if m["MessageId"] not in failed]
        again = [m for m in messages if m["MessageId"] in failed]
        # A message not settled here is received again after the queue's VisibilityTimeout.
        deleted = self._settle("delete_message_batch", done, {})
        self._settle("change_message_visibility_batch", again, {"VisibilityTimeout": self._retry_delay})
        with self._lock:
            self.batches += 1
            self.deleted += deleted
            self.failed_items += len(again)
            self.failed_batches += int(whole_batch)

    def _settle(self, operation: str, messages: list[dict[str, Any]], extra: dict[str, Any]) -> int:
        """Deletes the messages or changes their visibility; returns how many succeeded."""
        if not messages:
            return 0
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **extra} for i, m in enumerate(messages)
        ]
        call = getattr(self._sqs, operation)
        try:
            failed = call(QueueUrl=self._queue_url, Entries=entries).get("Failed", [])
        except Exception:
            if not self._stop.is_set():
                logger.exception("%s on %s failed", operation, self._queue_url)
            return 0
        if failed:
            logger.warning("%s on %s: %d entries failed: %s", operation, self._queue_url, len(failed), failed)
        return len(messages) - len(failed)
