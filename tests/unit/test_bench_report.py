"""`make bench`'s report on made-up figures: the table's ratios and n/a rows, the JSON, the chart,
and the round-trip counters. No stack, no timing: the benchmark itself is never run in tests."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from benchmarks.report import Row, format_table, latency_series, machine, percentiles, ratio, rows, write_json
from benchmarks.round_trips import counting, summary


def figures(p50: float, p95: float, n: int = 20) -> dict[str, float]:
    return {"n": n, "p50_ms": p50, "p95_ms": p95}


def report() -> dict[str, Any]:
    return {
        "machine": {
            "cores": 2,
            "cpu_model": "test CPU",
            "python": "3.11.7",
            "git_commit": "abc",
            "measured_at": "now",
        },
        "execute": {"api": figures(80, 90), "sdk_direct": figures(40, 44), "kernel_alone": figures(32, 36)},
        "create": {"api": figures(500, 600, 10), "sandbox_create_alone": figures(50, 70, 10)},
        "create_pooled": {"error": "no warm pool configured"},
        "concurrency": {
            "sessions": 20,
            "seconds": 10.0,
            "executions": 200,
            "throughput_per_s": 20.0,
            "errors": {},
            **figures(400, 600, 200),
        },
        "docker": {"error": "no Docker engine (DockerException); `make docker` starts one"},
        "round_trips": {
            "operations": {
                "execute (warm)": summary(["UpdateItem", "UpdateItem"], ["POST /execute"], 2),
                "create": summary(
                    ["GetItem", "TransactWriteItems", "kms.GenerateDataKey", "UpdateItem"],
                    ["POST /v2/sandboxes", "POST /process.Process/Start", "POST /execute"],
                ),
            }
        },
        "cold_import": {
            "repeat": 5,
            "baseline": "4180450",
            "functions": {
                "execute": {
                    "before_ms": 800.0,
                    "after_ms": 400.0,
                    "after_max_ms": 450.0,
                    "after_cpu_ms": 390.0,
                }
            },
        },
    }


def by_name(table: list[Row]) -> dict[str, Row]:
    return {row.measurement: row for row in table}


def test_bench_report_each_figure_beside_its_baseline_as_a_ratio() -> None:
    table = by_name(rows(report()))

    execute = table["execute 1+1, API (e2b-python)"]
    assert (execute.value, execute.baseline_value, execute.ratio) == ("80.0 ms", "40.0 ms", 2.0)
    run_code = table["SDK run_code 1+1, local host"]
    assert (run_code.value, run_code.baseline_value, run_code.ratio) == ("40.0 ms", "32.0 ms", 1.25)
    assert table["create session, API (e2b-python)"].ratio == 10.0
    concurrency = table["20 sessions x 10.0 s, p95 (e2b-python)"]
    assert (concurrency.value, concurrency.baseline_value, concurrency.ratio) == ("600.0 ms", "400.0 ms", 1.5)
    warm = table["round trips: execute (warm)"]
    assert (warm.value, warm.ratio) == ("2 DynamoDB", 1.0)
    assert "0 control-plane, 1 sandbox" in warm.note
    create = table["round trips: create"]
    assert create.ratio is None and "1 control-plane, 2 sandbox" in create.note  # no target for create
    assert (create.value, create.note.split("; ")[-1]) == ("3 DynamoDB", "other AWS: kms.GenerateDataKey")
    cold = table["cold import functions/execute"]
    assert (cold.value, cold.baseline_value, cold.ratio) == ("400.0 ms", "800.0 ms", 0.5)


def test_bench_report_what_could_not_run_says_so_instead_of_a_figure() -> None:
    table = by_name(rows(report()))

    pooled = table["create session, API, pooled (e2b-python)"]
    assert (pooled.value, pooled.ratio, pooled.note) == ("", None, "n/a: no warm pool configured")
    for name in ("execute 1+1, API (docker-python)", "create session, API (docker-python)"):
        assert table[name].note.startswith("n/a: no Docker engine")
    assert not any("docker" in name for name, _, _ in latency_series(report()))


def test_bench_report_pooled_rows_appear_per_environment_when_a_pool_is_measured() -> None:
    data = report() | {
        "create_pooled": {"environments": {"e2b-python": figures(25, 30, 3) | {"pool_size": 3}}}
    }

    pooled = by_name(rows(data))["create session, API, pooled (e2b-python)"]
    assert (pooled.value, pooled.baseline_value, pooled.ratio) == ("25.0 ms", "50.0 ms", 0.5)
    assert ("create, API pooled e2b", 25, 30) in latency_series(data)


def test_bench_report_a_failed_case_and_a_missing_baseline() -> None:
    data = report() | {
        "execute": {"api": figures(80, 90), "sdk_direct": None},
        "concurrency": {"error": "Refused: 503"},
    }
    table = by_name(rows(data))

    assert table["execute 1+1, API (e2b-python)"].ratio is None
    assert table["execute 1+1, API (docker-python)"].note.startswith("n/a")
    assert table["? sessions x ? s, p95 (e2b-python)"].note == "n/a: Refused: 503"
    assert ratio(1.0, 0) is None and ratio(None, 2.0) is None and ratio(3.0, 2.0) == 1.5


def test_bench_report_table_lines_up_and_has_every_row() -> None:
    table = rows(report())
    text = format_table(table).splitlines()

    assert text[0].startswith("measurement") and "ratio" in text[0]
    assert len(text) == len(table) + 2
    assert any("x2.0" in line and "execute 1+1, API (e2b-python)" in line for line in text)


def test_bench_report_percentiles_by_nearest_rank() -> None:
    assert percentiles([float(n) for n in range(1, 101)]) == {"n": 100, "p50_ms": 51.0, "p95_ms": 95.0}
    with pytest.raises(ValueError):
        percentiles([])


def test_bench_report_json_holds_the_machine(tmp_path: Path) -> None:
    data = report() | {"machine": machine()}
    path = write_json(data, tmp_path / "deeper" / "local-stack.json")

    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(data))
    assert {"platform", "cpu_model", "cores", "python", "git_commit", "load_average"} <= set(
        written["machine"]
    )


def test_bench_report_chart_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # the bench extra
    from benchmarks.report import write_chart  # noqa: PLC0415

    path = write_chart(report(), tmp_path / "local-stack.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_bench_round_trips_count_dynamodb_calls_and_e2b_requests_only_inside_the_block() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    access = logging.getLogger("pyqwest.access")
    with Stubber(client) as stub:
        stub.add_response("get_item", {})
        stub.add_response("get_item", {})
        with counting() as (dynamodb, requests):
            client.get_item(TableName="t", Key={"pk": {"S": "a"}})
            access.debug('HTTP Request: POST http://127.0.0.1:1/v2/sandboxes/i1/connect "HTTP/1.1 200 OK"')
            access.debug('HTTP Request: GET http://127.0.0.1:1/files?path=%2Fx "HTTP/1.1 200 OK"')
        client.get_item(TableName="t", Key={"pk": {"S": "b"}})
        access.debug('HTTP Request: POST http://127.0.0.1:1/execute "HTTP/1.1 200 OK"')

    assert dynamodb == ["GetItem"]
    assert requests == ["POST /v2/sandboxes/i1/connect", "GET /files"]
    counted = summary([*dynamodb, "kms.Decrypt"], requests, 2)
    assert (counted["dynamodb"], counted["control_plane"], counted["sandbox_plane"]) == (1, 1, 1)
    assert counted["other_aws_calls"] == ["kms.Decrypt"]
    assert access.level == logging.NOTSET and access.propagate
