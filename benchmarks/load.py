"""`make bench-load`: a bounded load run on the local stack; is the store (DynamoDB) the bottleneck?

Not a test: it prints a table and writes benchmarks/results/load.json. Loopback only, and bounded:
at most --max-requests requests and --seconds of load after the sessions are created.

N clients spread over T tenants (each its own API key), each with its own session, loop for the
run's length: an execute every round, and every fourth round a file write and a file read. The
local store is one moto server that runs one request at a time (local/moto_server.py), so its own
accounting is exact: per API, the seconds requests held its lock (served) and waited for it, read
from its `/_local/stats` before and after the run. It is the bottleneck when requests spend most of
their time in it, or when it is busy nearly all the time (1.0: saturated). The deployed table's
limits are per partition (docs/decisions/0008-capacity.md); the run also counts the partitions
its items were written to.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import requests
from sandbox_gateway.models.tenant import SCOPES

from benchmarks.report import machine, percentiles, write_json
from local.aws import FAKE_AWS
from local.stack import TABLE_NAME, Stack, running_stack, tenant_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DYNAMODB = "DynamoDB_20120810."
FILE_EVERY = 4  # rounds: a file write and a read every fourth round, an execute every round
CREATE_ATTEMPTS = 3
# Creates run this many at a time: every client's first request starts a cold worker of the
# authorizer and of the sessions function, and a dozen cold imports at once on two cores outlast
# the authorizer's timeout. The load itself runs at full concurrency, on warm workers.
CREATE_CONCURRENCY = 4
# The store is what limits the run when requests spend at least half their time in it (waiting
# or served), or when the one store process is busy nearly all the time (saturated).
BOTTLENECK_SHARE = 0.5
SATURATED = 0.9


class Client:
    """One caller: its tenant's key, its own session, its samples."""

    def __init__(self, stack: Stack, tenant: str, key: str) -> None:
        self.stack, self.tenant = stack, tenant
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"
        self.session_id = ""
        self.samples: dict[str, list[float]] = {"execute": [], "file write": [], "file read": []}
        self.errors: Counter[str] = Counter()

    def create(self) -> float:
        body = {"agent": "load", "environment": "e2b-python", "provider": "e2b"}
        for attempt in range(CREATE_ATTEMPTS):
            started = time.perf_counter()
            response = self.http.post(f"{self.stack.url}/api/sessions", json=body, timeout=120)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 201:
                self.session_id = response.json()["session_id"]
                return elapsed
            # A cold function (the authorizer's timeout is short) on a busy machine: once more.
            if response.status_code < 500 or attempt == CREATE_ATTEMPTS - 1:
                raise RuntimeError(f"create answered {response.status_code}: {response.text[:300]}")
            time.sleep(1)
        raise AssertionError("unreachable")

    # Each step answers None when right, else why not (the status and the API's error code).
    def execute(self, count: int) -> str | None:
        body = {"session_id": self.session_id, "code": f"n = {count}\nn * 2", "language": "python"}
        response = self.http.post(f"{self.stack.url}/api/e2b/execute", json=body, timeout=60)
        if response.status_code != 200:
            return _refusal(response)
        results = response.json().get("results") or [{}]
        return None if results[0].get("text") == str(count * 2) else "wrong result"

    def write(self, count: int) -> str | None:
        content = base64.b64encode(f"round {count}".encode()).decode()
        body = {"session_id": self.session_id, "file_path": "load.txt", "content": content}
        response = self.http.post(f"{self.stack.url}/api/e2b/files", json=body, timeout=60)
        return None if response.status_code == 201 else _refusal(response)

    def read(self, count: int) -> str | None:
        response = self.http.get(f"{self.stack.url}/api/e2b/files/{self.session_id}/load.txt", timeout=60)
        if response.status_code != 200:
            return _refusal(response)
        right = base64.b64decode(response.json()["content"]) == f"round {count}".encode()
        return None if right else "wrong content"

    def close(self) -> None:
        self.http.delete(f"{self.stack.url}/api/sessions/{self.session_id}", timeout=60)


def _refusal(response: requests.Response) -> str:
    try:
        code = response.json().get("error", {}).get("code")
    except ValueError:
        code = None
    return f"{response.status_code} {code or ''}".strip()


def store_stats(stack: Stack) -> dict[str, dict[str, float]]:
    """Per API: requests, seconds served, seconds waited; `_process`: the server's CPU seconds."""
    with urllib.request.urlopen(f"{stack.dynamodb_url}/_local/stats", timeout=10) as response:
        stats: dict[str, dict[str, float]] = json.loads(response.read())
    return stats


def stats_between(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, Any]:
    delta = {
        name: {
            "requests": int(entry["requests"] - before.get(name, {}).get("requests", 0)),
            "seconds": entry["seconds"] - before.get(name, {}).get("seconds", 0.0),
            "waited_seconds": entry["waited_seconds"] - before.get(name, {}).get("waited_seconds", 0.0),
        }
        for name, entry in after.items()
    }
    return {name: entry for name, entry in delta.items() if entry["requests"]}


def run_load(clients: list[Client], seconds: float, max_requests: int) -> tuple[float, int]:
    """Every client loops until the deadline or until the run has sent `max_requests`."""
    deadline = time.monotonic() + seconds
    sent = 0
    lock = threading.Lock()

    def take() -> bool:
        nonlocal sent
        with lock:
            if sent >= max_requests or time.monotonic() >= deadline:
                return False
            sent += 1
            return True

    def loop(client: Client) -> None:
        count = 0
        while True:
            count += 1
            steps = [("execute", client.execute)]
            if count % FILE_EVERY == 0:
                steps += [("file write", client.write), ("file read", client.read)]
            for name, step in steps:
                if not take():
                    return
                started = time.perf_counter()
                try:
                    why = step(count)
                except requests.RequestException as exc:
                    why = type(exc).__name__
                elapsed = (time.perf_counter() - started) * 1000
                if why is None:
                    client.samples[name].append(elapsed)
                else:
                    client.errors[f"{name}: {why}"] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(loop, clients))
    return time.monotonic() - started, sent


def partitions_written(stack: Stack) -> dict[str, int]:
    """Distinct partition keys per item kind: sessions and records spread, tenants keep one each."""
    table = boto3.resource(
        "dynamodb",
        endpoint_url=stack.dynamodb_url,
        region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
    ).Table(TABLE_NAME)
    kinds: dict[str, set[str]] = {}
    request: dict[str, Any] = {"ProjectionExpression": "pk"}
    while True:
        page = table.scan(**request)
        for item in page["Items"]:
            kinds.setdefault(str(item["pk"]).split("#", 1)[0], set()).add(str(item["pk"]))
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {kind: len(keys) for kind, keys in sorted(kinds.items())}


def measure(clients_n: int, tenants_n: int, seconds: float, max_requests: int) -> dict[str, Any]:
    with running_stack(port=0, aws_port=0, concurrency=clients_n) as stack:
        store = tenant_store(stack.dynamodb_url)
        keys = {}
        for index in range(tenants_n):
            tenant = f"load-{index}"
            _, keys[tenant] = store.create_key(tenant, "load", SCOPES, int(time.time()))
            store.set_quota_overrides(tenant, {"max_active_sessions": clients_n + 2})
        clients = [
            Client(stack, tenant, keys[tenant])
            for tenant in (f"load-{i % tenants_n}" for i in range(clients_n))
        ]
        with ThreadPoolExecutor(min(clients_n, CREATE_CONCURRENCY)) as pool:
            creates = list(pool.map(Client.create, clients))
        with ThreadPoolExecutor(clients_n) as pool:
            # Untimed rounds: every worker process is started and warm (cold starts are
            # benchmarks/run.py's (d)), and each session's file exists.
            for _ in range(2):
                list(pool.map(lambda c: (c.execute(0), c.write(0)), clients))

        before = store_stats(stack)
        wall, sent = run_load(clients, seconds, max_requests)
        after = store_stats(stack)
        for client in clients:
            client.close()
        partitions = partitions_written(stack)

    store_cpu = after.pop("_process")["cpu_seconds"] - before.pop("_process")["cpu_seconds"]
    store_calls = stats_between(before, after)
    dynamodb = {k.removeprefix(DYNAMODB): v for k, v in store_calls.items() if k.startswith(DYNAMODB)}
    ddb_requests = sum(v["requests"] for v in dynamodb.values())
    ddb_held = sum(v["seconds"] for v in dynamodb.values())
    ddb_in_store = ddb_held + sum(v["waited_seconds"] for v in dynamodb.values())
    all_held = sum(v["seconds"] for v in store_calls.values())
    all_in_store = all_held + sum(v["waited_seconds"] for v in store_calls.values())
    samples: dict[str, list[float]] = {"execute": [], "file write": [], "file read": []}
    errors: Counter[str] = Counter()
    for client in clients:
        for name, values in client.samples.items():
            samples[name] += values
        errors.update(client.errors)
    answered = sum(len(v) for v in samples.values())
    request_seconds = sum(ms for values in samples.values() for ms in values) / 1000

    def share(part: float, whole: float) -> float | None:
        return round(part / whole, 4) if whole else None

    def per_request_ms(seconds: float) -> float | None:
        return round(seconds * 1000 / answered, 2) if answered else None

    return {
        "clients": clients_n,
        "tenants": tenants_n,
        "seconds": round(wall, 3),
        "requests_sent": sent,
        "requests_ok": answered,
        "requests_per_second": round(answered / wall, 1) if wall else None,
        "errors": dict(errors),
        "create_concurrent": percentiles(creates),
        "latency": {name: percentiles(values) for name, values in samples.items() if values},
        "store": {
            "method": "the local moto server's own accounting (GET /_local/stats): per API, requests, "
            "seconds holding its one-request lock (served) and seconds waiting for it; background calls "
            "during the run (queue polls, the reaper) count too",
            "dynamodb_calls": {
                name: {
                    "requests": v["requests"],
                    "served_ms": round(v["seconds"] * 1000, 1),
                    "waited_ms": round(v["waited_seconds"] * 1000, 1),
                }
                for name, v in sorted(dynamodb.items())
            },
            "other_aws_calls": {
                k: v["requests"] for k, v in sorted(store_calls.items()) if not k.startswith(DYNAMODB)
            },
            "dynamodb_calls_per_api_request": round(ddb_requests / answered, 2) if answered else None,
            "dynamodb_served_ms_per_call": round(ddb_held * 1000 / ddb_requests, 3) if ddb_requests else None,
            "api_request_ms_mean": per_request_ms(request_seconds),
            "dynamodb_ms_per_api_request": per_request_ms(ddb_in_store),
            "all_aws_ms_per_api_request": per_request_ms(all_in_store),
            # How busy the one store process was: 1.0 means every moment served some request.
            "store_utilisation": share(all_held, wall),
            # Of the time it served requests, how much it ran on a core (the rest: waiting for one).
            "store_cpu_share_of_served": share(store_cpu, all_held),
            "dynamodb_utilisation": share(ddb_held, wall),
            # How much of the requests' own time went to the store, waiting or served.
            "share_of_request_time_in_store": share(all_in_store, request_seconds),
            "share_of_request_time_in_dynamodb": share(ddb_in_store, request_seconds),
        },
        "partitions_written": partitions,
    }


def print_table(report: dict[str, Any]) -> None:
    load, store = report["load"], report["load"]["store"]
    print(
        f"\n{load['clients']} clients over {load['tenants']} tenants, {load['seconds']} s: "
        f"{load['requests_ok']} requests answered ({load['requests_per_second']}/s), "
        f"errors {load['errors'] or 0}"
    )
    print(f"\n{'operation':<22}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}")
    rows = {f"session create ({CREATE_CONCURRENCY} at once)": load["create_concurrent"], **load["latency"]}
    for name, figures in rows.items():
        print(f"{name:<22}{figures['n']:>6}{figures['p50_ms']:>10}{figures['p95_ms']:>10}")
    print(f"\n{'DynamoDB call':<22}{'n':>6}{'served ms':>11}{'waited ms':>11}")
    for name, figures in store["dynamodb_calls"].items():
        print(f"{name:<22}{figures['requests']:>6}{figures['served_ms']:>11}{figures['waited_ms']:>11}")
    in_store = store["share_of_request_time_in_store"] or 0.0
    bottleneck = (store["store_utilisation"] or 0.0) >= SATURATED or in_store >= BOTTLENECK_SHARE
    ddb_share = store["share_of_request_time_in_dynamodb"] or 0.0
    busy, ddb_busy = store["store_utilisation"] or 0.0, store["dynamodb_utilisation"] or 0.0
    print(
        f"\nPer API request: {store['dynamodb_calls_per_api_request']} DynamoDB calls, "
        f"{store['dynamodb_ms_per_api_request']} ms in DynamoDB and "
        f"{store['all_aws_ms_per_api_request']} ms in the store with every AWS call (waiting or served) "
        f"of {store['api_request_ms_mean']} ms.\n"
        f"Share of request time in the store: {in_store:.1%} (DynamoDB {ddb_share:.1%}); "
        f"store busy {busy:.1%} of the run (DynamoDB {ddb_busy:.1%}), on a core "
        f"{store['store_cpu_share_of_served'] or 0.0:.1%} of that time.\n"
        f"The store is {'the bottleneck' if bottleneck else 'not the bottleneck'} here.\n"
        f"Partition keys written, by kind: {load['partitions_written']}\n"
        f"Machine: {report['machine']['cores']} cores, load average {report['machine']['load_average'][0]}"
        f" before the run."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=12, help="concurrent clients, one session each")
    parser.add_argument("--tenants", type=int, default=3, help="tenants the clients are spread over")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load (at most 120)")
    parser.add_argument("--max-requests", type=int, default=5000, help="requests at most (at most 50000)")
    parser.add_argument("--output", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.tenants <= args.clients):
        parser.error("--clients 1..64 and --tenants 1..clients")
    seconds, max_requests = min(args.seconds, 120.0), min(args.max_requests, 50_000)

    report: dict[str, Any] = {"machine": machine()}
    report["load"] = measure(args.clients, args.tenants, seconds, max_requests)
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(report)
    print(f"\nwrote {write_json(report, args.output)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
