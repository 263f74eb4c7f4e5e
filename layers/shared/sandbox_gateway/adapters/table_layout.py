"""The sessions table's shared items: their keys, and retrying writes that meet a transaction.

A tenant's sessions, its tenant item (quota overrides, live-session counter) and its daily usage
items share the partition `TENANT#<tenant>`; the session repository and the tenant store both
write the tenant and usage items, so both build those keys here.
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


def tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def tenant_key(tenant_id: str) -> dict[str, str]:
    """The tenant item: quota overrides and the live-session counter."""
    return {"pk": tenant_pk(tenant_id), "sk": TENANT_SK}


def usage_key(tenant_id: str, day: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": f"{USAGE_SK_PREFIX}{day}"}


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
