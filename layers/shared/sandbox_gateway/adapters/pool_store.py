"""The warm pool's entries in the sessions table: one partition per environment (`POOL#<name>`),
sorted by boot time, so a claim takes the oldest. A claim is a conditional delete: of two
claimers of one entry exactly one deletes it, the other moves on to the next entry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from sandbox_gateway.adapters.table_layout import condition_failed
from sandbox_gateway.models.errors import StorageUnavailable
from sandbox_gateway.ports import PooledSandbox

POOL_PK_PREFIX = "POOL#"
CLAIM_CANDIDATES = 8  # entries read per claim attempt; losing races to all of them is rare
CLAIM_ROUNDS = 3
# A claim skips an entry whose sandbox ends within this: binding it would race its provider's timer.
CLAIM_MARGIN_SECONDS = 60


def pool_pk(environment: str) -> str:
    return f"{POOL_PK_PREFIX}{environment}"


class DynamoDBSandboxPool:
    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def add(self, entry: PooledSandbox) -> None:
        item: dict[str, Any] = {
            "pk": pool_pk(entry.environment),
            "sk": _sk(entry),
            "environment": entry.environment,
            "sandbox_id": entry.sandbox_id,
            "booted_at": Decimal(_millis(entry)) / 1000,
            "expires_at": entry.expires_at,
            "purge_at": entry.expires_at,  # TTL: a forgotten entry's sandbox is gone by then anyway
        }
        if entry.access is not None:
            item["access"] = entry.access
        with _store("add to the warm pool"):
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")

    def entries(self, environment: str) -> list[PooledSandbox]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pool_pk(environment))}
        with _store("read the warm pool"):
            while True:
                page = self._table.query(**query)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [_entry(item) for item in items]

    def candidates(self, environment: str) -> list[PooledSandbox]:
        usable_after = int(self._clock()) + CLAIM_MARGIN_SECONDS
        with _store("read the warm pool"):
            page = self._table.query(
                KeyConditionExpression=Key("pk").eq(pool_pk(environment)),
                Limit=CLAIM_CANDIDATES,
                ConsistentRead=True,  # an entry added a moment ago is claimable at once
            )
        # Stale entries are left for the refill to retire (and kill).
        return [entry for entry in map(_entry, page.get("Items", [])) if entry.expires_at > usable_after]

    def claim(self, environment: str) -> PooledSandbox | None:
        for _ in range(CLAIM_ROUNDS):
            candidates = self.candidates(environment)
            for entry in candidates:
                if self.remove(entry):
                    return entry
            if not candidates:
                return None
        return None

    def remove(self, entry: PooledSandbox) -> bool:
        with _store("take from the warm pool"):
            try:
                self._table.delete_item(**claim_action(entry)["Delete"])
            except ClientError as exc:
                if condition_failed(exc):
                    return False  # a claim (or a retire) took it first
                raise
        return True


def claim_action(entry: PooledSandbox) -> dict[str, Any]:
    """Taking `entry` out of the pool, as a transaction's action: of two takers, one succeeds."""
    return {
        "Delete": {
            "Key": {"pk": pool_pk(entry.environment), "sk": _sk(entry)},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }


def _sk(entry: PooledSandbox) -> str:
    return f"{_millis(entry):013d}#{entry.sandbox_id}"


def _millis(entry: PooledSandbox) -> int:
    # round, not int: booted_at comes back from the table as a float (….736 -> ….7359999).
    return round(entry.booted_at * 1000)


def _entry(item: dict[str, Any]) -> PooledSandbox:
    return PooledSandbox(
        environment=str(item["environment"]),
        sandbox_id=str(item["sandbox_id"]),
        booted_at=float(item["booted_at"]),
        expires_at=int(item["expires_at"]),
        access=item.get("access"),
    )


@contextmanager
def _store(action: str) -> Iterator[None]:
    """Store failures as the domain's StorageUnavailable."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable(f"could not {action}") from exc
