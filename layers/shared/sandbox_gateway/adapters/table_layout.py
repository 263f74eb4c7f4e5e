"""The sessions table's keys, and retrying writes that meet a transaction.

Each session and each execution record is its own partition (`SESSION#<id>`, `EXECUTION#<id>`),
so load spreads over partitions however few tenants there are (docs/decisions/0008-capacity.md);
the item's `tenant_id` attribute, checked on every read and write, keeps tenants apart. A
tenant's own partition `TENANT#<tenant>` holds only its tenant item (quota overrides,
live-session counter) and its daily usage items; the session repository and the tenant store
both write those, so both build their keys here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")
TENANT_SK = "TENANT"
USAGE_SK_PREFIX = "USAGE#"
CONFLICT_BACKOFF_SECONDS = 0.05


SESSION_PK_PREFIX = "SESSION#"
SESSION_SK = "SESSION"
EXECUTION_PK_PREFIX = "EXECUTION#"
EXECUTION_SK = "EXECUTION"


def session_key(session_id: str) -> dict[str, str]:
    """A session's item. Session ids are the service's own random ids, unique across tenants."""
    return {"pk": f"{SESSION_PK_PREFIX}{session_id}", "sk": SESSION_SK}


def execution_key(execution_id: str) -> dict[str, str]:
    """An execution record's item (ids are random, or a hash that includes the tenant)."""
    return {"pk": f"{EXECUTION_PK_PREFIX}{execution_id}", "sk": EXECUTION_SK}


def tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def tenant_key(tenant_id: str) -> dict[str, str]:
    """The tenant item: quota overrides and the live-session counter."""
    return {"pk": tenant_pk(tenant_id), "sk": TENANT_SK}


def usage_key(tenant_id: str, day: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": f"{USAGE_SK_PREFIX}{day}"}


def condition_failed(error: ClientError) -> bool:
    """The write's condition did not hold: the item moved on (or was never there). Not an outage."""
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def with_conflict_retries(
    call: Callable[[], T], is_conflict: Callable[[ClientError], bool], retries: int
) -> T:
    """`call()`, again after a jittered, growing pause while DynamoDB refuses it for meeting another
    transaction on the same item (botocore does not retry that; nothing was written, so it is safe)."""
    for attempt in range(retries):
        try:
            return call()
        except ClientError as exc:
            if not is_conflict(exc):
                raise
            ceiling = CONFLICT_BACKOFF_SECONDS * 2**attempt
            time.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret
    return call()
