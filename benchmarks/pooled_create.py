"""Session create through the API with and without a pooled sandbox, for one environment, on the
local stack (loopback only): the pool is filled with --repeat sandboxes before the run, the pooled
creates drain it, then as many creates boot their own (nothing refills it). Prints p50/p95 as JSON.

  python -m benchmarks.pooled_create docker-python --repeat 10
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.run import (
    api_session,
    bench_create_pooled,
    create_session,
    delete_sessions,
    percentiles,
    timed,
)
from local.stack import running_stack, tenant_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("environment", help="e.g. docker-python or e2b-python")
    parser.add_argument("--repeat", type=int, default=10, help="creates per figure (and the pool's size)")
    args = parser.parse_args(argv)
    env, repeat = args.environment, args.repeat
    with running_stack(
        port=0, aws_port=0, concurrency=2, warm_pool=f"{env}={repeat}", reaper_interval_seconds=0
    ) as stack:
        tenant_store(stack.dynamodb_url).set_quota_overrides(
            stack.tenant_id, {"max_active_sessions": repeat + 2}
        )
        pooled = bench_create_pooled(stack, repeat, {env})["environments"][env]
        http = api_session(stack)
        created: list[str] = []
        try:
            booted = percentiles(timed(lambda: created.append(create_session(http, stack.url, env)), repeat))
        finally:
            delete_sessions(stack, created)
    print(json.dumps({"environment": env, "pooled": pooled, "not_pooled": booted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
