"""Sessions in one DynamoDB table, each its own partition (`pk = SESSION#<id>`, decision 0008) so
load spreads however few tenants there are. Every read checks the item's `tenant_id` and every
write makes it a condition, so one tenant cannot address another's session even by its id; a
tenant's sessions are listed through the sparse index SessionsByTenant."""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sandbox_gateway.adapters.pool_store import claim_action
from sandbox_gateway.adapters.table_layout import (
    condition_failed,
    session_key,
    tenant_key,
    usage_key,
    with_conflict_retries,
)
from sandbox_gateway.models.environment import Provider
from sandbox_gateway.models.errors import InvalidPageToken, QuotaExceeded, StorageUnavailable
from sandbox_gateway.models.session import Session, SessionStatus
from sandbox_gateway.models.tenant import utc_day
from sandbox_gateway.ports import CreatedSandbox, PooledSandbox, SessionPage

# Ended sessions stay readable (410 with their final status) this long after they expire;
# then DynamoDB's TTL removes them (TTL itself may run a day or two late).
RETENTION_SECONDS = 7 * 24 * 3600
_LIVE = (SessionStatus.CREATING.value, SessionStatus.ACTIVE.value)
# A sparse index of the sessions that are still live (creating, active), by expiry: the reaper
# finds every tenant's expired sessions with a few queries instead of a scan. The attribute
# exists only while a session is live (every write that ends one removes it), so ended
# sessions and idempotency records never enter the index. Spread over a few partitions so no
# single one takes every session's writes.
LIVE_INDEX = "LiveByExpiry"
LIVE_SHARD_ATTRIBUTE = "live_shard"
LIVE_SHARDS = 8
TRANSACTION_CONFLICT_RETRIES = 5  # at most ~1.5 s of jittered backoff in all
QUOTA_RETRY_AFTER_SECONDS = 30  # a tenant at its live-session limit: one may end soon
# A tenant's sessions, newest first: only session items carry `tenant_sessions` (their tenant),
# and session ids are k-sortable. It projects what a listing shows, not the lease, so an
# execute's lease writes do not write the index.
TENANT_INDEX = "SessionsByTenant"
TENANT_SESSIONS_ATTRIBUTE = "tenant_sessions"
# Giving a lease back: only the lease this execute took (a lapsed one may be another's by now).
_RELEASE = "REMOVE lease_id, lease_until"
_RELEASE_CONDITION = "lease_id = :lease"


def live_shard(session_id: str) -> str:
    return str(int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:4], "big") % LIVE_SHARDS)


class DynamoDBSessionRepository:
    def __init__(self, table: Any) -> None:
        """`table` is a boto3 `Table` resource."""
        self._table = table

    # --- reads ---------------------------------------------------------------------------
    def get(self, tenant_id: str, session_id: str) -> Session | None:
        response = self._call(self._table.get_item, Key=session_key(session_id), ConsistentRead=True)
        item = response.get("Item")
        # Another tenant's session is not found (404), exactly as a session that never existed.
        return _to_session(item) if item and item.get("tenant_id") == tenant_id else None

    def list(self, tenant_id: str, limit: int, page_token: str | None) -> SessionPage:
        query: dict[str, Any] = {
            "IndexName": TENANT_INDEX,
            "KeyConditionExpression": "#tenant = :tenant",
            "ExpressionAttributeNames": {"#tenant": TENANT_SESSIONS_ATTRIBUTE},
            "ExpressionAttributeValues": {":tenant": tenant_id},
            # Session ids start with their creation time, so descending sort keys are newest first.
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if page_token:
            query["ExclusiveStartKey"] = _decode_token(page_token, tenant_id)
        response = self._call(self._table.query, **query)
        last_key = response.get("LastEvaluatedKey")
        return SessionPage(
            # The index is eventually consistent: a session created a moment ago may be missing.
            sessions=[_to_session(item) for item in response.get("Items", [])],
            next_token=_encode_token(last_key) if last_key else None,
        )

    # --- writes: every one conditional --------------------------------------------------------
    def put_new(
        self,
        session: Session,
        max_active_sessions: int | None = None,
        claiming: PooledSandbox | None = None,
    ) -> bool:
        """Write a new session and count it against its tenant's live sessions, in one transaction:
        two creates at the limit cannot both pass. The day's `sessions_created` counts it too.
        With `claiming`, the same transaction takes that entry out of the warm pool (the session
        is written already bound to its sandbox): False, and nothing written, when it was gone."""
        counter: dict[str, Any] = {
            "Key": tenant_key(session.tenant_id),
            "UpdateExpression": "ADD active_sessions :one",
            "ExpressionAttributeValues": {":one": 1},
        }
        if max_active_sessions is not None:
            counter["ConditionExpression"] = (
                "attribute_not_exists(active_sessions) OR active_sessions < :limit"
            )
            counter["ExpressionAttributeValues"][":limit"] = max_active_sessions
        cancelled = self._transact(
            {"Put": {"Item": _to_item(session), "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": counter},
            {"Update": _usage_update(session.tenant_id, session.created_at, "sessions_created", 1)},
            *([claim_action(claiming)] if claiming is not None else []),
        )
        if cancelled and cancelled[1]:
            raise QuotaExceeded(
                f"the tenant already has {max_active_sessions} live sessions (max_active_sessions); "
                "close one or wait for one to end",
                retry_after_seconds=QUOTA_RETRY_AFTER_SECONDS,
            )
        if cancelled and claiming is not None and cancelled[3]:
            return False  # another create claimed the pooled sandbox first
        if cancelled:
            raise StorageUnavailable("session storage refused the new session; retry")
        return True

    def activate(
        self, session: Session, sandbox_id: str, now: int, sandbox_access: str | None = None
    ) -> Session | None:
        values: dict[str, Any] = {
            ":active": SessionStatus.ACTIVE.value,
            ":creating": SessionStatus.CREATING.value,
            ":sandbox": sandbox_id,
            ":now": now,
        }
        update = "SET #status = :active, sandbox_id = :sandbox, updated_at = :now"
        if sandbox_access is not None:
            update += ", sandbox_access = :access"
            values[":access"] = sandbox_access
        return self._update(session, update, "#status = :creating AND expires_at > :now", values)

    def replace_sandbox(self, session: Session, sandbox: CreatedSandbox, now: int) -> Session | None:
        values: dict[str, Any] = {
            ":active": SessionStatus.ACTIVE.value,
            ":old": session.sandbox_id,
            ":sandbox": sandbox.sandbox_id,
            ":now": now,
        }
        update = "SET sandbox_id = :sandbox, updated_at = :now"
        if sandbox.access is not None:
            update += ", sandbox_access = :access"
            values[":access"] = sandbox.access
        else:
            update += " REMOVE sandbox_access"
        return self._update(session, update, "#status = :active AND sandbox_id = :old", values)

    def mark_failed(self, session: Session, reason: str, now: int) -> Session | None:
        return self._end(
            session,
            now,
            "SET #status = :failed, failure_reason = :reason, updated_at = :now "
            "REMOVE lease_id, lease_until, live_shard, sandbox_access",
            "#status IN (:creating, :active)",
            {
                ":failed": SessionStatus.FAILED.value,
                ":reason": reason,
                ":now": now,
                ":creating": _LIVE[0],
                ":active": _LIVE[1],
            },
        )

    def close(self, session: Session, now: int) -> Session | None:
        for final, clock_condition in (
            (SessionStatus.CLOSED, "expires_at > :now"),
            (SessionStatus.EXPIRED, "expires_at <= :now"),
        ):
            updated = self._end(
                session,
                now,
                "SET #status = :final, closed_at = :now, updated_at = :now "
                "REMOVE lease_id, lease_until, live_shard, sandbox_access",
                f"#status IN (:creating, :active) AND {clock_condition}",
                {":final": final.value, ":now": now, ":creating": _LIVE[0], ":active": _LIVE[1]},
            )
            if updated is not None:
                return updated
        return None

    def expire(self, session: Session, now: int) -> Session | None:
        """creating|active → expired, only once past expiry (a keep-alive may have moved it)."""
        return self._end(
            session,
            now,
            "SET #status = :expired, closed_at = :now, updated_at = :now "
            "REMOVE lease_id, lease_until, live_shard, sandbox_access",
            "#status IN (:creating, :active) AND expires_at <= :now",
            {
                ":expired": SessionStatus.EXPIRED.value,
                ":now": now,
                ":creating": _LIVE[0],
                ":active": _LIVE[1],
            },
        )

    def list_expired(self, now: int, limit: int) -> builtins.list[Session]:
        """Up to `limit` live sessions of any tenant whose expiry has passed, oldest first."""
        found: builtins.list[Session] = []
        for shard in range(LIVE_SHARDS):
            if len(found) >= limit:
                break
            response = self._call(
                self._table.query,
                IndexName=LIVE_INDEX,
                KeyConditionExpression="live_shard = :shard AND expires_at <= :now",
                ExpressionAttributeValues={":shard": str(shard), ":now": now},
                Limit=limit - len(found),
            )
            # The index is eventually consistent: the reaper's writes re-check everything.
            found.extend(_to_session(item) for item in response.get("Items", []))
        return sorted(found, key=lambda s: s.expires_at)

    def extend(self, session: Session, expires_at: int, now: int) -> Session | None:
        return self._update(
            session,
            "SET expires_at = :expires, purge_at = :purge, updated_at = :now",
            "#status = :active AND expires_at > :now",
            {
                ":expires": expires_at,
                ":purge": expires_at + RETENTION_SECONDS,
                ":now": now,
                ":active": SessionStatus.ACTIVE.value,
            },
        )

    def acquire_lease(self, session: Session, lease_id: str, until: int, now: int) -> Session | None:
        return self.lease(session.tenant_id, session.session_id, lease_id, until, now)

    def lease(self, tenant_id: str, session_id: str, lease_id: str, until: int, now: int) -> Session | None:
        """One write takes the lease of an active, unexpired, free session and returns it: an
        execute needs no read first (None: missing, ended, expired, starting or busy)."""
        return self._update_key(
            tenant_id,
            session_id,
            "SET lease_id = :lease, lease_until = :until",
            "#status = :active AND expires_at > :now "
            "AND (attribute_not_exists(lease_until) OR lease_until < :now)",
            {":lease": lease_id, ":until": until, ":now": now, ":active": SessionStatus.ACTIVE.value},
        )

    def release_lease(self, session: Session, lease_id: str) -> None:
        self._update(
            session,
            _RELEASE,
            _RELEASE_CONDITION,
            {":lease": lease_id},
            with_status_name=False,
        )

    def release_action(self, session: Session, lease_id: str) -> dict[str, Any]:
        """`release_lease` as one action of a transaction (adapters/execution_finish.py)."""
        return {
            "Update": {
                "Key": session_key(session.session_id),
                "UpdateExpression": _RELEASE,
                "ConditionExpression": f"attribute_exists(pk) AND #owner = :owner AND ({_RELEASE_CONDITION})",
                "ExpressionAttributeNames": {"#owner": "tenant_id"},
                "ExpressionAttributeValues": {":lease": lease_id, ":owner": session.tenant_id},
            }
        }

    # --- plumbing ----------------------------------------------------------------------------
    def _end(
        self, session: Session, now: int, update: str, condition: str, values: dict[str, Any]
    ) -> Session | None:
        """A live session ends: in the same transaction its tenant's live count goes down and
        the day's `sandbox_seconds` go up by its lifetime, so each happens exactly once."""
        cancelled = self._transact(
            {
                "Update": {
                    "Key": session_key(session.session_id),
                    "UpdateExpression": update,
                    "ConditionExpression": f"attribute_exists(pk) AND #owner = :owner AND ({condition})",
                    "ExpressionAttributeNames": {"#status": "status", "#owner": "tenant_id"},
                    "ExpressionAttributeValues": {**values, ":owner": session.tenant_id},
                }
            },
            {
                "Update": {
                    "Key": tenant_key(session.tenant_id),
                    "UpdateExpression": "ADD active_sessions :minus_one",
                    "ExpressionAttributeValues": {":minus_one": -1},
                }
            },
            # Its lifetime ends at its expiry at the latest: the provider's own timeout has ended
            # the sandbox by then, however late the reaper comes to record it.
            {
                "Update": _usage_update(
                    session.tenant_id,
                    now,
                    "sandbox_seconds",
                    max(0, min(now, session.expires_at) - session.created_at),
                )
            },
        )
        if cancelled:
            return None  # the condition failed: the session had already moved on
        return self.get(session.tenant_id, session.session_id)

    def _transact(self, *actions: dict[str, Any]) -> builtins.list[bool] | None:
        """Run write actions (Python values) as one transaction. None when it committed;
        else, per action, whether its condition is what failed."""
        # The Table resource's client converts Python values to DynamoDB's typed form itself.
        items = [
            {kind: {"TableName": self._table.name, **body}}
            for action in actions
            for kind, body in action.items()
        ]
        try:
            # Simultaneous creates and ends of one tenant all write its counter item: DynamoDB
            # cancels all but one with TransactionConflict. The conditions are checked afresh.
            with_conflict_retries(
                lambda: self._table.meta.client.transact_write_items(TransactItems=items),
                _only_conflicts,
                TRANSACTION_CONFLICT_RETRIES,
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            failed = [r.get("Code") == "ConditionalCheckFailed" for r in reasons]
            if any(failed):
                return failed + [False] * (len(actions) - len(failed))
            raise StorageUnavailable("session storage is unavailable or busy; retry shortly") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable("session storage is unavailable; retry shortly") from exc
        return None

    def _update(
        self,
        session: Session,
        update: str,
        condition: str,
        values: dict[str, Any],
        *,
        with_status_name: bool = True,
    ) -> Session | None:
        """Run a conditional update; None when the condition failed (the item moved on)."""
        return self._update_key(
            session.tenant_id,
            session.session_id,
            update,
            condition,
            values,
            with_status_name=with_status_name,
        )

    def _update_key(
        self,
        tenant_id: str,
        session_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        *,
        with_status_name: bool = True,
    ) -> Session | None:
        names = {"#owner": "tenant_id"}
        if with_status_name:
            names["#status"] = "status"
        request: dict[str, Any] = {
            "Key": session_key(session_id),
            "UpdateExpression": update,
            # attribute_exists(pk): an update must never create an item; the owner: a caller
            # naming another tenant's session id changes nothing (and learns only "not found").
            "ConditionExpression": f"attribute_exists(pk) AND #owner = :owner AND ({condition})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {**values, ":owner": tenant_id},
            "ReturnValues": "ALL_NEW",
        }
        try:
            response = self._table.update_item(**request)
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise StorageUnavailable("session storage is unavailable; retry shortly") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable("session storage is unavailable; retry shortly") from exc
        return _to_session(response["Attributes"])

    @staticmethod
    def _call(method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable("session storage is unavailable; retry shortly") from exc


def _only_conflicts(error: ClientError) -> bool:
    """A transaction cancelled for meeting another one, with no condition failing."""
    reasons = error.response.get("CancellationReasons") or []
    codes = {reason.get("Code") for reason in reasons}
    return "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes


def _usage_update(tenant_id: str, epoch_seconds: int, counter: str, amount: int) -> dict[str, Any]:
    return {
        "Key": usage_key(tenant_id, utc_day(epoch_seconds)),
        "UpdateExpression": f"ADD {counter} :amount",
        "ExpressionAttributeValues": {":amount": amount},
    }


def _to_item(session: Session) -> dict[str, Any]:
    item: dict[str, Any] = {
        **session_key(session.session_id),
        "session_id": session.session_id,
        "tenant_id": session.tenant_id,
        TENANT_SESSIONS_ATTRIBUTE: session.tenant_id,
        "agent": session.agent,
        "environment": session.environment,
        "provider": session.provider.value,
        "status": session.status.value,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "expires_at": session.expires_at,
        "purge_at": session.expires_at + RETENTION_SECONDS,
        "metadata": dict(session.metadata),
    }
    for optional in ("sandbox_id", "failure_reason", "closed_at", "sandbox_access"):
        value = getattr(session, optional)
        if value is not None:
            item[optional] = value
    if session.status.value in _LIVE:
        item[LIVE_SHARD_ATTRIBUTE] = live_shard(session.session_id)
    return item


def _to_session(item: dict[str, Any]) -> Session:
    return Session(
        session_id=item["session_id"],
        tenant_id=item["tenant_id"],
        agent=item["agent"],
        environment=item["environment"],
        provider=Provider(item["provider"]),
        status=SessionStatus(item["status"]),
        created_at=int(item["created_at"]),
        updated_at=int(item["updated_at"]),
        expires_at=int(item["expires_at"]),
        sandbox_id=item.get("sandbox_id"),
        metadata={str(k): str(v) for k, v in (item.get("metadata") or {}).items()},
        failure_reason=item.get("failure_reason"),
        closed_at=int(item["closed_at"]) if item.get("closed_at") is not None else None,
        sandbox_access=item.get("sandbox_access"),
    )


def _encode_token(key: dict[str, Any]) -> str:
    """The index's last key, named by tenant and session: the rest follows from those two."""
    fields = {"t": key[TENANT_SESSIONS_ATTRIBUTE], "s": key["session_id"]}
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, tenant_id: str) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPageToken("next_token is not a token this API issued") from exc
    if (
        not isinstance(key, dict)
        or key.get("t") != tenant_id  # a token never pages through another tenant
        or not isinstance(key.get("s"), str)
        or not key["s"]
    ):
        raise InvalidPageToken("next_token is not a token this API issued")
    return {
        **session_key(key["s"]),
        TENANT_SESSIONS_ATTRIBUTE: tenant_id,
        "session_id": key["s"],
    }
