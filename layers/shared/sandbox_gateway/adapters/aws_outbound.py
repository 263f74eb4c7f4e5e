"""The executions' other AWS services (decision 0007): large bodies in S3, the worker's queue in
SQS, completion events on EventBridge. Each SDK error becomes a domain error here; publishing a
completion event never fails an execution."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.models.execution_record import ExecutionRecord, ExecutionState, iso8601
from sandbox_gateway.observability import logger

# Presigned URLs must be SigV4 (SigV2 is refused in newer regions and for KMS-encrypted objects).
S3_CLIENT_CONFIG = Config(signature_version="s3v4")
EVENT_SOURCE = "sandbox-gateway"
COMPLETED = "ExecutionCompleted"
FAILED = "ExecutionFailed"


def s3_client(endpoint_url: str | None = None) -> Any:
    """An S3 client for S3ResultStore: SigV4 presigning; path-style on a local endpoint
    (127.0.0.1:4566 has no bucket subdomains), AWS's default addressing otherwise."""
    config = S3_CLIENT_CONFIG
    if endpoint_url:
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


class S3ResultStore:
    """Results (and large async requests' code) in the results bucket, encrypted at rest."""

    def __init__(self, client: Any, bucket: str, url_seconds: int) -> None:
        """`client` is a boto3 S3 client built with S3_CLIENT_CONFIG (see `s3_client`)."""
        self._client = client
        self._bucket = bucket
        self._url_seconds = url_seconds

    def put(self, key: str, body: bytes) -> None:
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ServerSideEncryption="AES256",
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable("result storage is unavailable; retry shortly") from exc

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
            return bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise StorageUnavailable("result is no longer stored") from exc
            raise StorageUnavailable("result storage is unavailable; retry shortly") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable("result storage is unavailable; retry shortly") from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable("result storage is unavailable; retry shortly") from exc

    def url(self, key: str) -> tuple[str, int]:
        """A presigned GET URL and when it expires. Signing is local: no request is made."""
        expires_at = int(time.time()) + self._url_seconds
        try:
            url = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": key},
                ExpiresIn=self._url_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable("result storage is unavailable; retry shortly") from exc
        return str(url), expires_at


class SqsExecutionQueue:
    """The worker's queue. A message names only the execution: its record holds the rest, tenant
    included, so a message sent through the API carries nothing the worker must trust."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def enqueue(self, execution_id: str, tenant_id: str) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=json.dumps(
                    {"execution_id": execution_id, "tenant_id": tenant_id}, separators=(",", ":")
                ),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable("the execution queue is unavailable; retry shortly") from exc


class EventBridgeExecutionEvents:
    """Completion events on the bus: ExecutionCompleted (succeeded) or ExecutionFailed."""

    def __init__(self, client: Any, bus_name: str, source: str = EVENT_SOURCE) -> None:
        self._client = client
        self._bus_name = bus_name
        self._source = source

    def finished(self, record: ExecutionRecord) -> None:
        # Publishing never fails an execution: the record is already final and readable, and an
        # error here would make the worker retry (and the API answer 5xx for) work that is done.
        # A lost event is logged; the execution's GET stays the source of truth.
        entry = {
            "Source": self._source,
            "DetailType": detail_type(record),
            "Detail": json.dumps(completion_detail(record), separators=(",", ":")),
            "EventBusName": self._bus_name,
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "completion event not published",
                extra={"execution_id": record.execution_id, "error": type(exc).__name__},
            )
            return
        if response.get("FailedEntryCount"):
            failed = (response.get("Entries") or [{}])[0]
            logger.warning(
                "completion event not published",
                extra={
                    "execution_id": record.execution_id,
                    "error": failed.get("ErrorCode"),
                    "error_message": failed.get("ErrorMessage"),
                },
            )


def detail_type(record: ExecutionRecord) -> str:
    return COMPLETED if record.state == ExecutionState.SUCCEEDED else FAILED


def completion_detail(record: ExecutionRecord) -> dict[str, Any]:
    """The `detail` of a completion event: who, what, how long, and where the result is."""
    result = record.result or {}
    outcome = result.get("status")
    duration_ms = result.get("duration_ms")
    if duration_ms is None and record.started_at is not None and record.finished_at is not None:
        # An S3-stored result is not in the record: the gateway's own clock instead.
        duration_ms = round((record.finished_at - record.started_at) * 1000, 2)
    stored = "s3" if record.result_key else ("inline" if record.result is not None else None)
    return {
        "execution_id": record.execution_id,
        "session_id": record.session_id,
        "tenant_id": record.tenant_id,
        "status": record.state.value,
        "outcome": outcome if isinstance(outcome, str) else None,
        "mode": record.mode.value,
        "source": record.source.value,
        "environment": record.environment,
        "created_at": iso8601(record.created_at),
        "started_at": iso8601(record.started_at),
        "finished_at": iso8601(record.finished_at),
        "duration_ms": duration_ms,
        "sandbox_duration_ms": result.get("sandbox_duration_ms"),
        "failure": (
            {"code": record.failure.code, "message": record.failure.message} if record.failure else None
        ),
        "result": {
            "href": f"/api/executions/{record.execution_id}",
            "bytes": record.result_bytes,
            "stored": stored,
        },
    }
