"""`make bench-async`: what an async or event-triggered execution costs next to a synchronous one.

Not a test: it prints a table and writes benchmarks/results/async-executions.json. One local stack
(gateway, worker fed by the queue poller, moto's SQS/EventBridge/S3 on loopback, the local E2B
host); every case runs `print(1)` REPEAT times, one at a time, in one session, after one untimed
warm-up, and is quoted as the ratio of its median to the synchronous baseline of the same run.

  sync              POST /api/e2b/execute, answered with the result (the baseline)
  async submit      the same with "mode": "async": how long the caller waits for its 202
  async end to end  submit, then GET /api/executions/{id} every --poll-ms until it is terminal
  queue message     an ExecutionRequested message sent to the queue with boto3, until terminal
  bus event         the same message as an EventBridge event's detail (the rule forwards it)
  sync + key        a sync execute with a new Idempotency-Key, then its replay (same key, body)

For the async cases `wait` is the median time from sending to the record's `started_at` (the
queue, the poller, the worker's start) and `run` from `started_at` to `finished_at`, read from the
records. The local poller's pause on an empty queue (local/aws.py, QueuePoller idle_seconds, 0.2 s)
is most of `wait`; runs start after a random untimed pause so they meet it at any point. Polling
GETs share the one-request-at-a-time moto server with the worker.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from sandbox_gateway.models.execution_record import execution_id_for_message

from benchmarks.run import RESULTS, ROOT, api_session, create_session
from local.aws import QueuePoller, aws_client
from local.stack import Stack, running_stack

CODE = "print(1)"
TERMINAL = {"succeeded", "failed", "timed_out"}
# The local stack's pollers keep QueuePoller's default pause on an empty queue.
POLLER_IDLE_SECONDS = inspect.signature(QueuePoller).parameters["idle_seconds"].default
WAIT_LIMIT_SECONDS = 60.0  # one execution that never finishes ends the run instead of hanging it


class Sample:
    """One timed execution: the caller's wall time and, for async ones, the record's timestamps."""

    def __init__(self, elapsed_ms: float, record: dict[str, Any] | None = None, sent: float = 0.0) -> None:
        self.elapsed_ms = elapsed_ms
        self.wait_ms: float | None = None
        self.run_ms: float | None = None
        if record is not None:
            started, finished = epoch(record["started_at"]), epoch(record["finished_at"])
            # Same machine, same clock: the client's send time against the worker's start.
            self.wait_ms = (started - sent) * 1000
            self.run_ms = (finished - started) * 1000


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def summary(samples: list[Sample]) -> dict[str, Any]:
    ordered = sorted(s.elapsed_ms for s in samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    figures: dict[str, Any] = {
        "n": len(ordered),
        "min_ms": round(ordered[0], 2),
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(p95, 2),
    }
    waits = [s.wait_ms for s in samples if s.wait_ms is not None]
    runs = [s.run_ms for s in samples if s.run_ms is not None]
    if waits and runs:
        figures["wait_median_ms"] = round(statistics.median(waits), 2)
        figures["run_median_ms"] = round(statistics.median(runs), 2)
    return figures


class Bench:
    def __init__(self, stack: Stack, poll_seconds: float) -> None:
        self.stack = stack
        self.http = api_session(stack)
        self.poll = poll_seconds
        self.session_id = create_session(self.http, stack.url)
        assert stack.aws_url is not None
        self.sqs = aws_client("sqs", stack.aws_url)
        self.events = aws_client("events", stack.aws_url)
        self.random = random.Random(10)  # the same pauses in every run

    def execute(self, headers: dict[str, str] | None = None, **extra: Any) -> requests.Response:
        body = {"session_id": self.session_id, "code": CODE, "language": "python", **extra}
        return self.http.post(f"{self.stack.url}/api/e2b/execute", json=body, headers=headers, timeout=60)

    def until_terminal(self, execution_id: str) -> dict[str, Any]:
        """Polls the record; a 404 means a queued message's record is not written yet."""
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while time.monotonic() < deadline:
            response = self.http.get(f"{self.stack.url}/api/executions/{execution_id}", timeout=60)
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                record = dict(response.json())
                assert record["status"] == "succeeded" and record["result"]["stdout"] == "1\n", record
                return record
            assert response.status_code in (200, 404), response.text
            time.sleep(self.poll)
        raise RuntimeError(f"execution {execution_id} did not finish in {WAIT_LIMIT_SECONDS} s")

    def sync(self) -> Sample:
        started = time.perf_counter()
        response = self.execute()
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200 and response.json()["stdout"] == "1\n", response.text
        return Sample(elapsed)

    def dephase(self) -> None:
        """An untimed pause of a random part of the poller's idle cycle: one-at-a-time runs would
        otherwise meet the poller at the same point of its pause every time and measure that point."""
        time.sleep(self.random.uniform(0, POLLER_IDLE_SECONDS))

    def async_run(self) -> tuple[Sample, Sample]:
        """(submit, end to end) of one async execution."""
        self.dephase()
        sent, started = time.time(), time.perf_counter()
        response = self.execute(mode="async")
        submitted = (time.perf_counter() - started) * 1000
        assert response.status_code == 202, response.text
        record = self.until_terminal(response.json()["execution_id"])
        done = (time.perf_counter() - started) * 1000
        return Sample(submitted), Sample(done, record, sent)

    def queue_message(self) -> Sample:
        key = f"bench-{uuid.uuid4()}"
        message = {"tenant_id": self.stack.tenant_id, "session_id": self.session_id, "code": CODE}
        self.dephase()
        sent, started = time.time(), time.perf_counter()
        self.sqs.send_message(
            QueueUrl=self.stack.queue_url, MessageBody=json.dumps(message | {"idempotency_key": key})
        )
        record = self.until_terminal(execution_id_for_message(self.stack.tenant_id, key))
        return Sample((time.perf_counter() - started) * 1000, record, sent)

    def bus_event(self) -> Sample:
        key = f"bench-{uuid.uuid4()}"
        detail = {
            "tenant_id": self.stack.tenant_id,
            "session_id": self.session_id,
            "code": CODE,
            "idempotency_key": key,
        }
        entry = {
            "EventBusName": self.stack.event_bus_name,
            "Source": "bench.producer",
            "DetailType": "ExecutionRequested",
            "Detail": json.dumps(detail),
        }
        self.dephase()
        sent, started = time.time(), time.perf_counter()
        assert self.events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        record = self.until_terminal(execution_id_for_message(self.stack.tenant_id, key))
        return Sample((time.perf_counter() - started) * 1000, record, sent)

    def keyed(self) -> tuple[Sample, Sample]:
        """(first, replay) of a sync execute with a new Idempotency-Key."""
        headers = {"Idempotency-Key": f"bench-{uuid.uuid4()}"}
        answers, samples = [], []
        for _ in range(2):
            started = time.perf_counter()
            response = self.execute(headers=headers)
            samples.append(Sample((time.perf_counter() - started) * 1000))
            assert response.status_code == 200 and response.json()["stdout"] == "1\n", response.text
            answers.append(response.json()["execution_id"])
        assert answers[0] == answers[1], answers  # the replay is the first execution, not a second run
        return samples[0], samples[1]


def measure(action: Callable[[], Any], repeat: int) -> list[Any]:
    action()  # untimed: the function's worker process and the connection are warm
    return [action() for _ in range(repeat)]


NOTES = {
    "async submit": "caller waits only for the 202",
    "async end to end": "submit + polling GET",
    "queue message": "SQS send_message to terminal",
    "bus event": "EventBridge put_events to terminal",
    "sync + Idempotency-Key": "first call with a new key",
    "replay (same key)": "stored execution rendered again",
}


def run(stack: Stack, repeat: int, poll_seconds: float) -> dict[str, Any]:
    bench = Bench(stack, poll_seconds)
    cases: dict[str, list[Sample]] = {"sync (baseline)": measure(bench.sync, repeat)}
    pairs = measure(bench.async_run, repeat)
    cases["async submit"] = [submit for submit, _ in pairs]
    cases["async end to end"] = [done for _, done in pairs]
    cases["queue message"] = measure(bench.queue_message, repeat)
    cases["bus event"] = measure(bench.bus_event, repeat)
    keyed = measure(bench.keyed, repeat)
    cases["sync + Idempotency-Key"] = [first for first, _ in keyed]
    cases["replay (same key)"] = [replay for _, replay in keyed]
    bench.http.delete(f"{stack.url}/api/sessions/{bench.session_id}", timeout=60)

    figures = {name: summary(samples) for name, samples in cases.items()}
    baseline = figures["sync (baseline)"]["median_ms"]
    for name, row in figures.items():
        row["ratio_median"] = round(row["median_ms"] / baseline, 2)
        row["note"] = NOTES.get(name, "answered with the result")
    return figures


def print_table(figures: dict[str, Any], poll_ms: float) -> None:
    header = ("case", "n", "min", "median", "p95", "ratio", "wait", "run")
    print("\n{:24} {:>4} {:>8} {:>8} {:>8} {:>6} {:>8} {:>6}  notes".format(*header))
    for name, row in figures.items():
        wait, run_ms = row.get("wait_median_ms", "-"), row.get("run_median_ms", "-")
        print(
            f"{name:24} {row['n']:>4} {row['min_ms']:>8} {row['median_ms']:>8} {row['p95_ms']:>8}"
            f" {row['ratio_median']:>5}x {wait:>8} {run_ms:>6}  {row['note']}"
        )
    print(
        "\nms; ratio = median / sync median; wait = send -> record started_at, run = started_at ->"
        f" finished_at (medians).\nPolling every {poll_ms:g} ms. Locally the queue poller pauses"
        f" {POLLER_IDLE_SECONDS:g} s on an empty queue (local/aws.py QueuePoller idle_seconds):"
        "\nthat pause (0.1 s on average) is most of `wait`, a cost of the local stack: Lambda's event"
        " source mapping long-polls."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=30, help="timed executions per case")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="pause between GETs of a record")
    parser.add_argument("--concurrency", type=int, default=4, help="the stack's function processes")
    parser.add_argument("--output", type=Path, default=RESULTS / "async-executions.json")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with running_stack(port=0, aws_port=0, concurrency=args.concurrency) as stack:
        figures = run(stack, args.repeat, args.poll_ms / 1000)
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {
            "repeat": args.repeat,
            "poll_ms": args.poll_ms,
            "concurrency": args.concurrency,
            "code": CODE,
            "poller_idle_seconds": POLLER_IDLE_SECONDS,
        },
        "cases": figures,
        "seconds": round(time.monotonic() - started, 1),
    }
    print_table(figures, args.poll_ms)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwritten to {shown} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
