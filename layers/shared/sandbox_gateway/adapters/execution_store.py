"""Execution records in the sessions table (decision 0007), each its own partition (decision 0008).

- `pk = EXECUTION#<execution_id>, sk = EXECUTION`: records spread over partitions. The record's
  `tenant_id` is checked on every read (another tenant's record is not found) and is a condition of
  every write, so one tenant cannot address another's record even by its id.
- `session_executions = <tenant>#<session>` only while a record has a session: the sparse index
  ExecutionsBySession lists a session's executions, newest first (ids are k-sortable).
- `purge_at`: DynamoDB's TTL removes a record `retention_seconds` after it was created.

Traps this module handles:
- boto3 refuses Python floats and DynamoDB refuses empty strings in some places, and a result is
  arbitrary JSON (floats, "", deep nesting): the result and the pending run are stored as JSON
  strings (`result_json`, `pending_json`), never as DynamoDB maps.
- `state`, `source`, `result`, `mode` … are (or may become) DynamoDB reserved words: every update
  names attributes through ExpressionAttributeNames.
- A tenant id may contain `#`, so `<tenant>#<session>` alone could be another tenant's session:
  listing drops any item whose `tenant_id` is not the caller's, and page tokens name the partition.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sandbox_gateway.adapters.table_layout import (
    EXECUTION_PK_PREFIX,
    EXECUTION_SK,
    condition_failed,
    execution_key,
)
from sandbox_gateway.models.errors import InvalidPageToken, StorageUnavailable
from sandbox_gateway.models.execution_record import (
    ExecutionMode,
    ExecutionRecord,
    ExecutionSource,
    ExecutionState,
    Failure,
    PendingRun,
)
from sandbox_gateway.ports import ExecutionPage

EXECUTIONS_INDEX = "ExecutionsBySession"
SESSION_EXECUTIONS_ATTRIBUTE = "session_executions"
# The index's sort key: creation time, then id. Ids of queued messages are hashes (the same on
# every delivery), so the id alone does not order a session's executions.
ORDER_ATTRIBUTE = "execution_order"
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
_UNAVAILABLE = "execution storage is unavailable; retry shortly"
# Optional scalar fields stored as plain attributes under their own names.
_FLOATS = ("started_at", "finished_at")
_STRINGS = ("session_id", "environment", "language", "callback_url", "result_key", "pending_key")


def execution_order(record: ExecutionRecord) -> str:
    return f"{int(record.created_at * 1000):013d}#{record.execution_id}"


def session_executions(tenant_id: str, session_id: str) -> str:
    return f"{tenant_id}#{session_id}"


class DynamoDBExecutionStore:
    def __init__(self, table: Any, retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> None:
        """`table` is the sessions table's boto3 `Table` resource."""
        self._table = table
        self._retention_seconds = retention_seconds

    # --- reads ---------------------------------------------------------------------------
    def get(self, tenant_id: str, execution_id: str) -> ExecutionRecord | None:
        response = self._call(self._table.get_item, Key=execution_key(execution_id), ConsistentRead=True)
        item = response.get("Item")
        # Another tenant's record is not found: its id says nothing to this tenant.
        return _to_record(item) if item and item.get("tenant_id") == tenant_id else None

    def list_for_session(
        self, tenant_id: str, session_id: str, limit: int, page_token: str | None
    ) -> ExecutionPage:
        partition = session_executions(tenant_id, session_id)
        query: dict[str, Any] = {
            "IndexName": EXECUTIONS_INDEX,
            "KeyConditionExpression": "#se = :se",
            "ExpressionAttributeNames": {"#se": SESSION_EXECUTIONS_ATTRIBUTE},
            "ExpressionAttributeValues": {":se": partition},
            "ScanIndexForward": False,  # newest first
            "Limit": limit,
        }
        if page_token:
            query["ExclusiveStartKey"] = _decode_token(page_token, tenant_id, partition)
        response = self._call(self._table.query, **query)
        last_key = response.get("LastEvaluatedKey")
        return ExecutionPage(
            # A tenant named "a#b" shares index partitions with tenant "a"'s sessions "b#…".
            executions=[
                _to_record(item) for item in response.get("Items", []) if item.get("tenant_id") == tenant_id
            ],
            next_token=_encode_token(last_key) if last_key else None,
        )

    # --- writes: every one conditional ----------------------------------------------------------
    def put_new(self, record: ExecutionRecord) -> bool:
        try:
            self._table.put_item(**self.put_action(record)["Put"])
        except ClientError as exc:
            if condition_failed(exc):
                return False  # a redelivery: the first delivery's record stands
            raise _storage_error(exc) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc
        return True

    def put_action(self, record: ExecutionRecord) -> dict[str, Any]:
        """`put_new` as one action of a transaction (adapters/execution_finish.py)."""
        return {"Put": {"Item": self._to_item(record), "ConditionExpression": "attribute_not_exists(pk)"}}

    def start(
        self, record: ExecutionRecord, now: float, session_id: str | None = None
    ) -> ExecutionRecord | None:
        sets = {"#state": ExecutionState.RUNNING.value, "#started_at": _number(now)}
        if session_id is not None:
            sets["#session_id"] = session_id
            sets["#session_executions"] = session_executions(record.tenant_id, session_id)
            sets["#execution_order"] = execution_order(record)
        return self._update(record, sets, (), "#state = :queued", {":queued": ExecutionState.QUEUED.value})

    def finish(self, record: ExecutionRecord, finished: ExecutionRecord) -> ExecutionRecord | None:
        if not finished.finished:
            raise ValueError(f"finish needs a terminal state, not {finished.state.value}")
        sets: dict[str, Any] = {"#state": finished.state.value}
        if finished.finished_at is not None:
            sets["#finished_at"] = _number(finished.finished_at)
        if finished.started_at is not None:
            sets["#started_at"] = _number(finished.started_at)
        if finished.session_id is not None:
            sets["#session_id"] = finished.session_id
            sets["#session_executions"] = session_executions(record.tenant_id, finished.session_id)
            sets["#execution_order"] = execution_order(record)
        if finished.result is not None:
            sets["#result_json"] = _dump(finished.result)
            outcome = finished.result.get("status")
            if isinstance(outcome, str):
                sets["#outcome"] = outcome  # not read back: for people reading the table
        if finished.result_key is not None:
            sets["#result_key"] = finished.result_key
        if finished.result_bytes is not None:
            sets["#result_bytes"] = finished.result_bytes
        if finished.failure is not None:
            sets["#failure"] = {"code": finished.failure.code, "message": finished.failure.message}
        return self._update(
            record,
            sets,
            ("pending_json", "pending_key"),  # the code has run (or never will): drop it
            "#state IN (:queued, :running)",
            {":queued": ExecutionState.QUEUED.value, ":running": ExecutionState.RUNNING.value},
        )

    def record_callback(self, record: ExecutionRecord, report: dict[str, object]) -> None:
        # A record purged meanwhile has nobody left to read the report: not an error.
        self._update(record, {"#callback": _to_dynamo(dict(report))}, (), None, {})

    # --- plumbing ----------------------------------------------------------------------------
    def _update(
        self,
        record: ExecutionRecord,
        sets: dict[str, Any],
        removes: tuple[str, ...],
        condition: str | None,
        values: dict[str, Any],
    ) -> ExecutionRecord | None:
        """A conditional update of `record`'s item (never creating one); None when the condition
        failed, i.e. the record had moved on (or is gone)."""
        names = {name: name[1:] for name in sets}
        names.update({f"#{name}": name for name in removes})
        all_values = dict(values)
        assignments = []
        for index, (name, value) in enumerate(sets.items()):
            all_values[f":v{index}"] = value
            assignments.append(f"{name} = :v{index}")
        expression = "SET " + ", ".join(assignments)
        if removes:
            expression += " REMOVE " + ", ".join(f"#{name}" for name in removes)
        # attribute_exists: an update never creates an item; the tenant: never another tenant's.
        full_condition = "attribute_exists(pk) AND #owner = :owner"
        names["#owner"] = "tenant_id"
        all_values[":owner"] = record.tenant_id
        if condition:
            names["#state"] = "state"
            full_condition += f" AND ({condition})"
        try:
            response = self._table.update_item(
                Key=execution_key(record.execution_id),
                UpdateExpression=expression,
                ConditionExpression=full_condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=all_values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise _storage_error(exc) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc
        return _to_record(response["Attributes"])

    def _to_item(self, record: ExecutionRecord) -> dict[str, Any]:
        item: dict[str, Any] = {
            **execution_key(record.execution_id),
            "execution_id": record.execution_id,
            "tenant_id": record.tenant_id,
            "mode": record.mode.value,
            "source": record.source.value,
            "state": record.state.value,
            "created_at": _number(record.created_at),
            "purge_at": int(record.created_at) + self._retention_seconds,
        }
        for name in _FLOATS:
            value = getattr(record, name)
            if value is not None:
                item[name] = _number(value)
        for name in _STRINGS:
            value = getattr(record, name)
            if value is not None:
                item[name] = value
        if record.session_id is not None:
            item[SESSION_EXECUTIONS_ATTRIBUTE] = session_executions(record.tenant_id, record.session_id)
            item[ORDER_ATTRIBUTE] = execution_order(record)
        if record.result is not None:
            item["result_json"] = _dump(record.result)
            if isinstance(record.result.get("status"), str):
                item["outcome"] = record.result["status"]
        if record.result_bytes is not None:
            item["result_bytes"] = record.result_bytes
        if record.failure is not None:
            item["failure"] = {"code": record.failure.code, "message": record.failure.message}
        if record.pending is not None:
            item["pending_json"] = _dump(
                {
                    "code": record.pending.code,
                    "language": record.pending.language,
                    "timeout_seconds": record.pending.timeout_seconds,
                    "envs": record.pending.envs,
                }
            )
        if record.callback is not None:
            item["callback"] = _to_dynamo(record.callback)
        return item

    @staticmethod
    def _call(method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as exc:
            raise _storage_error(exc) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _storage_error(error: ClientError) -> StorageUnavailable:
    message = str(error.response.get("Error", {}).get("Message", ""))
    if _code(error) == "ValidationException" and "size" in message.lower():
        # The service keeps inline results small enough (INLINE_RESULT_MAX_BYTES); this is a bug.
        return StorageUnavailable("the execution record is larger than a table item may be (400 KB)")
    return StorageUnavailable(_UNAVAILABLE)


def _number(value: float) -> Decimal:
    return Decimal(str(value))  # via str: Decimal(0.1) would carry the float's binary noise


def _dump(value: Any) -> str:
    """Compact JSON, non-ASCII kept as UTF-8 (half the size of \\u escapes, for the item limit),
    unless the value holds a lone surrogate, which UTF-8 cannot carry: then escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


def _to_dynamo(value: Any) -> Any:
    """Python values boto3 accepts: floats as Decimal, nested maps and lists too."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict):
        return {str(k): _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def _optional_float(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value) if value is not None else None


def _to_record(item: dict[str, Any]) -> ExecutionRecord:
    pending = None
    if item.get("pending_json"):
        raw = json.loads(item["pending_json"])
        pending = PendingRun(
            code=raw["code"],
            language=raw.get("language"),
            timeout_seconds=raw.get("timeout_seconds"),
            envs={str(k): str(v) for k, v in (raw.get("envs") or {}).items()},
        )
    failure = None
    if item.get("failure"):
        failure = Failure(code=str(item["failure"]["code"]), message=str(item["failure"]["message"]))
    return ExecutionRecord(
        execution_id=str(item["execution_id"]),
        tenant_id=str(item["tenant_id"]),
        mode=ExecutionMode(item["mode"]),
        source=ExecutionSource(item["source"]),
        state=ExecutionState(item["state"]),
        created_at=float(item["created_at"]),
        session_id=item.get("session_id"),
        environment=item.get("environment"),
        language=item.get("language"),
        started_at=_optional_float(item, "started_at"),
        finished_at=_optional_float(item, "finished_at"),
        callback_url=item.get("callback_url"),
        result=json.loads(item["result_json"]) if item.get("result_json") else None,
        result_key=item.get("result_key"),
        result_bytes=int(item["result_bytes"]) if item.get("result_bytes") is not None else None,
        failure=failure,
        pending=pending,
        pending_key=item.get("pending_key"),
        callback=_from_dynamo(item["callback"]) if item.get("callback") is not None else None,
    )


def _encode_token(key: dict[str, Any]) -> str:
    fields = {
        "pk": key["pk"],
        "sk": key["sk"],
        "se": key[SESSION_EXECUTIONS_ATTRIBUTE],
        "eo": key[ORDER_ATTRIBUTE],
    }
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, tenant_id: str, partition: str) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPageToken("next_token is not a token this API issued") from exc
    if (
        not isinstance(key, dict)
        # A token pages only through the tenant's and session's own executions.
        or key.get("se") != partition
        or not isinstance(key.get("pk"), str)
        or not key["pk"].startswith(EXECUTION_PK_PREFIX)
        or key.get("sk") != EXECUTION_SK
        or not isinstance(key.get("eo"), str)
    ):
        raise InvalidPageToken("next_token is not a token this API issued")
    return {
        "pk": key["pk"],
        "sk": key["sk"],
        SESSION_EXECUTIONS_ATTRIBUTE: key["se"],
        ORDER_ATTRIBUTE: key["eo"],
    }
