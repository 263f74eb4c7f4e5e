"""Tenants' API keys, quota overrides and daily usage: item types in the sessions table.

- `pk = APIKEY#<key_id>, sk = APIKEY`: one key (its SHA-256, never the key), found by the id the
  key carries, so the authorizer reads one item, strongly consistent: a revoke is seen at once.
- `pk = TENANT#<tenant>, sk = TENANT`: quota overrides, the live-session counter (the session
  repository moves the counter in the same transactions that start and end sessions), the
  callback signing secret, and `created_at` (written with the tenant's first key): the item's
  presence is what makes a tenant known to the worker.
- `pk = TENANT#<tenant>, sk = USAGE#<YYYY-MM-DD>`: atomic counters for one tenant and day.
A key has 256 bits of entropy, so a fast hash is enough: no one can guess their way to a match.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import BotoCoreError, ClientError

from sandbox_gateway.adapters.table_layout import (
    USAGE_SK_PREFIX,
    condition_failed,
    tenant_key,
    tenant_pk,
    usage_key,
    with_conflict_retries,
)
from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.models.tenant import (
    KEY_PREFIX,
    USAGE_COUNTERS,
    ApiKey,
    DailyUsage,
    KeyStatus,
    TenantState,
)

# sgw_<12 hex: key id>_<43 base64url characters: 32 random bytes>
_KEY = re.compile(rf"^{KEY_PREFIX}([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
TOUCH_EVERY_SECONDS = 3600  # last_used_at is coarse: one write per key and hour at most
USAGE_CONFLICT_RETRIES = 4  # a usage write meeting a session's transaction on the same day's item
CALLBACK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def _key_pk(key_id: str) -> str:
    return f"APIKEY#{key_id}"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, the whole key): shown once, stored only as a hash."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


class DynamoDBTenantStore:
    def __init__(self, table: Any) -> None:
        """`table` is the sessions table's boto3 `Table` resource."""
        self._table = table

    # --- keys ------------------------------------------------------------------------------
    def create_key(
        self, tenant_id: str, name: str, scopes: Iterable[str], now: int, key: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key, or `key` itself when given (a well-formed one: the local stack's dev key, known
        in advance). The put is conditional: a key id already stored is refused, never overwritten."""
        if key is None:
            key_id, key = new_key()
        else:
            found = _KEY.fullmatch(key)
            if found is None:
                raise ValueError("a key is sgw_<12 hex characters>_<43 base64url characters>")
            key_id = found.group(1)
        record = ApiKey(key_id, tenant_id, name, tuple(scopes), KeyStatus.ACTIVE, now)
        item = {
            "pk": _key_pk(key_id),
            "sk": "APIKEY",
            "key_hash": _hash(key),
            "tenant_id": tenant_id,
            "name": name,
            "scopes": list(record.scopes),
            "status": record.status.value,
            "created_at": now,
        }
        # One transaction: a key never exists without its tenant item, which tells `tenant_exists`
        # in one read. The tenant item is only ever updated, never put: a put would wipe its quotas
        # and live-session counter.
        actions = [
            {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": _register_tenant(tenant_id, now)},
        ]
        transact = [
            {kind: {"TableName": self._table.name, **body}} for a in actions for kind, body in a.items()
        ]
        _call(
            with_conflict_retries,
            call=lambda: self._table.meta.client.transact_write_items(TransactItems=transact),
            is_conflict=_is_transaction_conflict,
            retries=USAGE_CONFLICT_RETRIES,
        )
        return record, key

    def find_key(self, key: str) -> ApiKey | None:
        """The active key this secret is, or None (malformed, unknown, revoked or not matching)."""
        found = _KEY.fullmatch(key)
        if found is None:
            return None
        item = _call(
            self._table.get_item, Key={"pk": _key_pk(found.group(1)), "sk": "APIKEY"}, ConsistentRead=True
        ).get("Item")
        if item is None or not hmac.compare_digest(str(item.get("key_hash", "")), _hash(key)):
            return None
        record = _to_key(item)
        return record if record.status == KeyStatus.ACTIVE else None

    def touch_key(self, key: ApiKey, now: int) -> None:
        if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY_SECONDS:
            return
        with contextlib.suppress(ClientError, BotoCoreError):  # bookkeeping: never fails a request
            self._table.update_item(
                Key={"pk": _key_pk(key.key_id), "sk": "APIKEY"},
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": now},
            )

    def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        """Every key (an admin listing: a scan of key items), newest first."""
        condition = Attr("sk").eq("APIKEY")
        if tenant_id is not None:
            condition = condition & Attr("tenant_id").eq(tenant_id)
        items = _scan(self._table, condition)
        return sorted((_to_key(item) for item in items), key=lambda k: k.created_at, reverse=True)

    def revoke_key(self, key_id: str) -> ApiKey | None:
        try:
            response = self._table.update_item(
                Key={"pk": _key_pk(key_id), "sk": "APIKEY"},
                UpdateExpression="SET #status = :revoked",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":revoked": KeyStatus.REVOKED.value},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise StorageUnavailable("the key store is unavailable; retry shortly") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable("the key store is unavailable; retry shortly") from exc
        return _to_key(response["Attributes"])

    # --- quotas ----------------------------------------------------------------------------
    def tenant(self, tenant_id: str) -> TenantState:
        """The tenant item: its quota overrides and live sessions, in one consistent read."""
        item = _call(self._table.get_item, Key=tenant_key(tenant_id), ConsistentRead=True).get("Item") or {}
        overrides = {k: int(v) for k, v in (item.get("quotas") or {}).items()}
        return TenantState(overrides, int(item.get("active_sessions", 0)))

    def quota_overrides(self, tenant_id: str) -> dict[str, int]:
        return self.tenant(tenant_id).quota_overrides

    def set_quota_overrides(self, tenant_id: str, overrides: dict[str, int]) -> None:
        _call(
            self._table.update_item,
            Key=tenant_key(tenant_id),
            UpdateExpression="SET quotas = :quotas",
            ExpressionAttributeValues={":quotas": {k: int(v) for k, v in overrides.items()}},
        )

    def active_sessions(self, tenant_id: str) -> int:
        return self.tenant(tenant_id).active_sessions

    # --- tenant existence and callback secrets (decision 0007) -------------------------------
    def tenant_exists(self, tenant_id: str) -> bool:
        """Whether the tenant is known: its tenant item exists (written with its first key, its
        first session or its quota overrides). One consistent read.

        A tenant whose keys were all created before keys registered their tenant, and that never
        had a session or quota overrides, has no item: `register_tenant` adds it."""
        item = _call(
            self._table.get_item,
            Key=tenant_key(tenant_id),
            ConsistentRead=True,
            ProjectionExpression="pk",
        ).get("Item")
        return item is not None

    def register_tenant(self, tenant_id: str, now: int) -> None:
        """Make the tenant known (idempotent; keeps everything its item holds)."""
        _call(
            with_conflict_retries,
            call=lambda: self._table.update_item(**_register_tenant(tenant_id, now)),
            is_conflict=_is_conflict,
            retries=USAGE_CONFLICT_RETRIES,
        )

    def callback_secret(self, tenant_id: str) -> str:
        """The tenant's callback signing secret, created on first use and stable after that."""
        # A read first: every callback needs the secret, and a read neither costs a write nor
        # meets the session transactions that write this item.
        item = _call(
            self._table.get_item,
            Key=tenant_key(tenant_id),
            ConsistentRead=True,
            ProjectionExpression="callback_secret",
        ).get("Item")
        if item and item.get("callback_secret"):
            return str(item["callback_secret"])
        # if_not_exists: of two first uses at once, both get the secret the first one stored.
        return self._set_callback_secret(
            tenant_id, "SET callback_secret = if_not_exists(callback_secret, :new)"
        )

    def rotate_callback_secret(self, tenant_id: str) -> str:
        """A new secret; the old one stops verifying at once."""
        return self._set_callback_secret(tenant_id, "SET callback_secret = :new")

    def _set_callback_secret(self, tenant_id: str, update: str) -> str:
        response = _call(
            with_conflict_retries,
            call=lambda: self._table.update_item(
                Key=tenant_key(tenant_id),
                UpdateExpression=update,
                ExpressionAttributeValues={":new": new_callback_secret()},
                # ALL_NEW, not UPDATED_NEW: an if_not_exists that keeps the stored value may count
                # as no update and return nothing (moto does so).
                ReturnValues="ALL_NEW",
            ),
            is_conflict=_is_conflict,
            retries=USAGE_CONFLICT_RETRIES,
        )
        return str(response["Attributes"]["callback_secret"])

    # --- usage -----------------------------------------------------------------------------
    def add_usage(self, tenant_id: str, day: str, counters: dict[str, int]) -> None:
        request = usage_update(tenant_id, day, counters)
        if request is None:
            return
        # The day's item is also written by the transactions that start and end sessions.
        _call(
            with_conflict_retries,
            call=lambda: self._table.update_item(**request),
            is_conflict=_is_conflict,
            retries=USAGE_CONFLICT_RETRIES,
        )

    def usage(self, tenant_id: str, first_day: str, last_day: str) -> list[DailyUsage]:
        response = _call(
            self._table.query,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":pk": tenant_pk(tenant_id),
                ":first": f"{USAGE_SK_PREFIX}{first_day}",
                ":last": f"{USAGE_SK_PREFIX}{last_day}",
            },
        )
        return [_to_usage(item) for item in response.get("Items", [])]

    def usage_of_every_tenant(self, day: str) -> list[DailyUsage]:
        """An admin report: a scan of one day's usage items."""
        return sorted(
            (_to_usage(i) for i in _scan(self._table, Attr("sk").eq(f"{USAGE_SK_PREFIX}{day}"))), key=str
        )


def usage_update(tenant_id: str, day: str, counters: dict[str, int]) -> dict[str, Any] | None:
    """The update that adds `counters` to the tenant's day (an UpdateItem's arguments, or one
    action of a transaction); None when there is nothing to add."""
    counted = {name: int(value) for name, value in counters.items() if value and name in USAGE_COUNTERS}
    if not counted:
        return None
    return {
        "Key": usage_key(tenant_id, day),
        "UpdateExpression": "ADD " + ", ".join(f"{name} :{name}" for name in counted),
        "ExpressionAttributeValues": {f":{name}": value for name, value in counted.items()},
    }


class TenantCallbackSecrets:
    """The CallbackSecrets port over the tenant store."""

    def __init__(self, store: DynamoDBTenantStore) -> None:
        self._store = store

    def secret(self, tenant_id: str) -> str:
        return self._store.callback_secret(tenant_id)

    def rotate(self, tenant_id: str) -> str:
        return self._store.rotate_callback_secret(tenant_id)


def new_callback_secret() -> str:
    return f"{CALLBACK_SECRET_PREFIX}{secrets.token_urlsafe(32)}"


def _register_tenant(tenant_id: str, now: int) -> dict[str, Any]:
    """An update that creates the tenant item if missing and changes nothing else."""
    return {
        "Key": tenant_key(tenant_id),
        "UpdateExpression": "SET created_at = if_not_exists(created_at, :now)",
        "ExpressionAttributeValues": {":now": now},
    }


def _is_conflict(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "TransactionConflictException"


def _is_transaction_conflict(error: ClientError) -> bool:
    """A transaction cancelled for meeting another one (a session's, on the tenant item), with no
    condition failing: nothing was written, so trying again is safe."""
    codes = {reason.get("Code") for reason in error.response.get("CancellationReasons") or []}
    return "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes


def _to_key(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=str(item["pk"]).removeprefix("APIKEY#"),
        tenant_id=str(item["tenant_id"]),
        name=str(item.get("name", "")),
        scopes=tuple(str(s) for s in item.get("scopes") or ()),
        status=KeyStatus(item.get("status", KeyStatus.ACTIVE.value)),
        created_at=int(item["created_at"]),
        last_used_at=int(item["last_used_at"]) if "last_used_at" in item else None,
    )


def _to_usage(item: dict[str, Any]) -> DailyUsage:
    return DailyUsage(
        tenant_id=str(item["pk"]).removeprefix("TENANT#"),
        day=str(item["sk"]).removeprefix(USAGE_SK_PREFIX),
        counters={name: int(item.get(name, 0)) for name in USAGE_COUNTERS},
    )


def _scan(table: Any, condition: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"FilterExpression": condition}
    while True:
        response = _call(table.scan, **request)
        items.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _call(method: Any, **kwargs: Any) -> Any:
    try:
        return method(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("tenant storage is unavailable; retry shortly") from exc
