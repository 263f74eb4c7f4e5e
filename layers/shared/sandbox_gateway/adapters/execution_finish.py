"""The end of a synchronous execute in one round trip (docs/decisions/0011-round-trips.md): give the
session's lease back, add the execution to its tenant's usage of the day and put its record, as
one TransactWriteItems. Each write is built by the adapter that owns its item (the session
repository, the tenant store, the execution store); this one only composes them.

A transaction is all or nothing, so when the lease's condition fails (the lease was lost: a DELETE
ended the session during the run, or the lease lapsed and another execute took it) nothing was
written, and the usage and the record are written on their own: the code has run, so it counts
once, and only once. A ClientRequestToken makes botocore's own retry of a transaction whose answer
was lost a no-op instead of a second attempt that would fail the lease condition and count twice.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sandbox_gateway.adapters.dynamodb import DynamoDBSessionRepository
from sandbox_gateway.adapters.execution_store import DynamoDBExecutionStore
from sandbox_gateway.adapters.table_layout import with_conflict_retries
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore, usage_update
from sandbox_gateway.models.errors import DomainError, StorageUnavailable
from sandbox_gateway.models.tenant import utc_day
from sandbox_gateway.observability import logger
from sandbox_gateway.ports import FinishedExecution

# A finish meets a session transaction of the same tenant on the day's usage item now and then.
CONFLICT_RETRIES = 4


class DynamoDBExecutionFinisher:
    def __init__(
        self,
        table: Any,
        sessions: DynamoDBSessionRepository,
        tenants: DynamoDBTenantStore,
        records: DynamoDBExecutionStore,
    ) -> None:
        """`table` is the sessions table's boto3 `Table` resource (its client takes Python values)."""
        self._table = table
        self._sessions = sessions
        self._tenants = tenants
        self._records = records

    def finish(self, finished: FinishedExecution) -> bool:
        actions = [
            self._sessions.release_action(finished.session, finished.lease_id),
            self._records.put_action(finished.record),
        ]
        usage = usage_update(finished.record.tenant_id, utc_day(finished.now), finished.usage)
        if usage is not None:
            actions.append({"Update": usage})
        items = [{kind: {"TableName": self._table.name, **body}} for a in actions for kind, body in a.items()]
        try:
            with_conflict_retries(lambda: self._transact(items), _only_conflicts, CONFLICT_RETRIES)
        except ClientError as exc:
            if not _a_condition_failed(exc):
                raise StorageUnavailable("execution storage is unavailable; retry shortly") from exc
            return self._one_by_one(finished)
        except BotoCoreError as exc:
            raise StorageUnavailable("execution storage is unavailable; retry shortly") from exc
        return True

    def _transact(self, items: list[dict[str, Any]]) -> None:
        # A new token per attempt: an attempt cancelled for a conflict wrote nothing, and one whose
        # answer was lost is then answered by DynamoDB from the token, not applied again.
        self._table.meta.client.transact_write_items(
            TransactItems=items, ClientRequestToken=secrets.token_hex(16)
        )

    def _one_by_one(self, finished: FinishedExecution) -> bool:
        """The rare path: a condition failed, so the transaction wrote nothing; each write alone."""
        logger.info(
            "execute finished with its lease lost; writing usage and record alone",
            extra={"session_id": finished.session.session_id},
        )
        self._sessions.release_lease(finished.session, finished.lease_id)  # a lost lease: no change
        with contextlib.suppress(DomainError):  # counting never fails a request whose code has run
            self._tenants.add_usage(finished.record.tenant_id, utc_day(finished.now), finished.usage)
        return self._records.put_new(finished.record)


def _cancellation_codes(error: ClientError) -> set[str]:
    return {str(reason.get("Code")) for reason in error.response.get("CancellationReasons") or []}


def _a_condition_failed(error: ClientError) -> bool:
    return "ConditionalCheckFailed" in _cancellation_codes(error)


def _only_conflicts(error: ClientError) -> bool:
    """Cancelled for meeting another transaction, no condition failing: safe to try again."""
    codes = _cancellation_codes(error)
    return "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes
