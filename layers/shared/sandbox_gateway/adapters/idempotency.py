"""Idempotency-Key on the routes that change something (create session, execute, write file): a
retry with the same key gets the first answer back instead of a second side effect (Powertools
idempotency, stored in the sessions table)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from sandbox_gateway.deadlines import commit_deadline
from sandbox_gateway.models.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidRequest,
    StorageUnavailable,
)

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
KEY_LIFETIME_SECONDS = 24 * 3600
# The in-flight record outlives the invocation by this much, and the create must commit before
# the invocation ends: the margin covers the last write (activate) after the final check.
LOCK_MARGIN_SECONDS = 10
IDEMPOTENCY_PK_PREFIX = "IDEMPOTENCY#"
IDEMPOTENCY_SK = "IDEMPOTENCY"


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class _LockContext:
    """What Powertools reads to set the in-flight record's expiry: the invocation plus a margin."""

    def __init__(self, context: LambdaContextLike, margin_seconds: float) -> None:
        self._context = context
        self._margin_ms = int(margin_seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self._context.get_remaining_time_in_millis() + self._margin_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _SpreadPersistenceLayer(DynamoDBPersistenceLayer):
    """Powertools' DynamoDB layer with each key its own partition (`pk = IDEMPOTENCY#<hashed key>`,
    `sk = IDEMPOTENCY`), instead of one static partition that every keyed request of every tenant
    would write (docs/decisions/0008-capacity.md). The key is the hash Powertools computes."""

    def _get_key(self, idempotency_key: str) -> dict[str, Any]:
        return {"pk": {"S": f"{IDEMPOTENCY_PK_PREFIX}{idempotency_key}"}, "sk": {"S": IDEMPOTENCY_SK}}


class IdempotentRequests:
    """Runs one operation (a route) at most once per (tenant, Idempotency-Key) within a day.

    The in-flight record expires (so a crashed create does not block its key for a day), and
    once it has, a retry may run the create again. So the create is fenced: it must commit before
    the invocation's end (`deadlines.commit_deadline`, checked by the session service before it
    starts the sandbox and before it activates the session), while the in-flight record lasts
    LOCK_MARGIN_SECONDS longer. A create still running after its deadline kills its own sandbox
    instead of leaving a second live session next to the retry's.
    """

    def __init__(self, table_name: str, client: Any, operation: str = "create-session") -> None:
        self._operation = operation  # keys of different routes never meet
        self._persistence = _SpreadPersistenceLayer(
            table_name=table_name,
            boto3_client=client,
            key_attr="pk",
            sort_key_attr="sk",
            expiry_attr="purge_at",  # the table's TTL attribute removes old keys
            status_attr="idempotency_status",
        )
        self._config = IdempotencyConfig(
            # The tenant is part of the key: one tenant's key never answers another's request.
            event_key_jmespath="[tenant, key]",
            payload_validation_jmespath="body",
            expires_after_seconds=KEY_LIFETIME_SECONDS,
        )

    def run(
        self,
        tenant_id: str,
        key: str,
        body: dict[str, Any],
        create: Callable[[], dict[str, Any]],
        lambda_context: LambdaContextLike | None = None,
    ) -> dict[str, Any]:
        if not KEY_PATTERN.fullmatch(key):
            raise InvalidRequest("Idempotency-Key must be 1 to 128 printable ASCII characters without spaces")
        deadline: float | None = None
        if lambda_context is not None:
            # An in-flight record then expires soon after the invocation, so a crash frees the key.
            deadline = time.time() + lambda_context.get_remaining_time_in_millis() / 1000
            lock_context: Any = _LockContext(lambda_context, LOCK_MARGIN_SECONDS)  # duck-typed
            self._config.register_lambda_context(lock_context)

        @idempotent_function(
            data_keyword_argument="request",
            persistence_store=self._persistence,
            config=self._config,
            key_prefix=self._operation,
        )
        def create_once(request: dict[str, Any]) -> dict[str, Any]:
            if deadline is None:
                return create()
            with commit_deadline(deadline):
                return create()

        try:
            result: dict[str, Any] = create_once(request={"tenant": tenant_id, "key": key, "body": body})
        except IdempotencyAlreadyInProgressError as exc:
            raise IdempotencyKeyInUse(
                "a request with this Idempotency-Key is still in progress", retry_after_seconds=1
            ) from exc
        except IdempotencyValidationError as exc:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body") from exc
        except IdempotencyPersistenceLayerError as exc:
            raise StorageUnavailable("session storage is unavailable; retry shortly") from exc
        return result
