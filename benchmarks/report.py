"""`make bench`'s report: one table of figures beside their baselines, the JSON, the chart.

Pure functions over the report dict that benchmarks/run.py measures, so that they can be tested on
made-up samples (tests/unit/test_bench_report.py) without a stack. matplotlib is imported only to
draw the chart: it is the `bench` extra, never a dependency of the service.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """n, p50 and p95 by nearest rank; samples are milliseconds."""
    if not samples_ms:
        raise ValueError("no samples")
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(pick(0.5), 2), "p95_ms": round(pick(0.95), 2)}


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, None when either is missing or the baseline is zero."""
    if value is None or not baseline:
        return None
    return round(value / baseline, 2)


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its baseline from the same run, and their ratio. `value`
    and `baseline_value` carry their unit ("80.1 ms", "5 calls"); a figure that could not be
    measured has no value and says why in `note` (n/a: ...)."""

    measurement: str
    value: str
    p95: str
    baseline: str
    baseline_value: str
    ratio: float | None
    note: str = ""


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} ms"


def _missing(measurement: str, baseline: str, why: str) -> Row:
    return Row(measurement, "", "", baseline, "", None, f"n/a: {why}")


def _latency_row(
    measurement: str,
    figures: dict[str, Any] | None,
    baseline: str,
    base: dict[str, Any] | None,
    note: str = "",
) -> Row:
    if not figures or "p50_ms" not in figures:
        return _missing(measurement, baseline, (figures or {}).get("error", "not measured"))
    if not base or "p50_ms" not in base:
        why = (base or {}).get("error", "baseline not measured")
        return Row(measurement, _ms(figures["p50_ms"]), _ms(figures["p95_ms"]), baseline, "", None, why)
    return Row(
        measurement,
        _ms(figures["p50_ms"]),
        _ms(figures["p95_ms"]),
        baseline,
        _ms(base["p50_ms"]),
        ratio(figures["p50_ms"], base["p50_ms"]),
        note or f"{figures['p50_ms'] - base['p50_ms']:+.1f} ms p50, n={figures['n']}",
    )


def rows(report: dict[str, Any]) -> list[Row]:
    """The table, from the report benchmarks/run.py measured. Every case may be missing or carry an
    "error" (it could not run: no Docker, no warm pool, a create refused): its row says n/a and why."""
    table: list[Row] = []
    execute = report.get("execute", {})
    table.append(
        _latency_row(
            "execute 1+1, API (e2b-python)",
            execute.get("api"),
            "SDK run_code, same sandbox",
            execute.get("sdk_direct"),
        )
    )
    table.append(
        _latency_row(
            "SDK run_code 1+1, local host",
            execute.get("sdk_direct"),
            "ipykernel alone (no host)",
            execute.get("kernel_alone"),
        )
    )
    docker = report.get("docker", {})
    if "error" in docker:
        table.append(_missing("execute 1+1, API (docker-python)", "API execute e2b-python", docker["error"]))
    else:
        table.append(
            _latency_row(
                "execute 1+1, API (docker-python)",
                docker.get("execute_api"),
                "API execute e2b-python",
                execute.get("api"),
            )
        )
    create = report.get("create", {})
    table.append(
        _latency_row(
            "create session, API (e2b-python)",
            create.get("api"),
            "bare Sandbox.create (SDK)",
            create.get("sandbox_create_alone"),
        )
    )
    pooled = report.get("create_pooled", {})
    for environment, figures in (pooled.get("environments") or {"e2b-python": pooled}).items():
        table.append(
            _latency_row(
                f"create session, API, pooled ({environment})",
                figures,
                "bare Sandbox.create (SDK)",
                create.get("sandbox_create_alone"),
            )
        )
    if "error" in docker:
        table.append(
            _missing("create session, API (docker-python)", "bare container run+rm", docker["error"])
        )
    else:
        table.append(
            _latency_row(
                "create session, API (docker-python)",
                docker.get("create_api"),
                "bare container run+rm",
                docker.get("bare_container_run"),
            )
        )
    for key, environment in (("concurrency", "e2b-python"), ("docker_concurrency", "docker-python")):
        if key in report:
            table.append(_concurrency_row(report[key], environment))
    table += _round_trip_rows(report.get("round_trips", {}))
    table += _cold_import_rows(report.get("cold_import", {}))
    return table


def _concurrency_row(figures: dict[str, Any], environment: str) -> Row:
    name = f"{figures.get('sessions', '?')} sessions x {figures.get('seconds', '?')} s, p95 ({environment})"
    if "p95_ms" not in figures:
        return _missing(name, "p50, same run", figures.get("error", "not measured"))
    errors = figures.get("errors") or {}
    return Row(
        name,
        _ms(figures["p95_ms"]),
        "",
        "p50, same run",
        _ms(figures["p50_ms"]),
        ratio(figures["p95_ms"], figures["p50_ms"]),
        f"{figures['throughput_per_s']} exec/s, {figures['executions']} ok, "
        f"{sum(errors.values())} errors{' ' + str(errors) if errors else ''}; target p95/p50 <= 3",
    )


def _round_trip_rows(round_trips: dict[str, Any]) -> list[Row]:
    if "error" in round_trips:
        return [_missing("round trips per request", "", round_trips["error"])]
    table = []
    for operation, counts in round_trips.get("operations", {}).items():
        target = counts.get("target_dynamodb")
        control = counts["control_plane"]
        target_text = "" if target is None else f"target <= {target} DynamoDB, 0 control-plane"
        others = counts.get("other_aws_calls") or []
        note = f"{control} control-plane, {counts['sandbox_plane']} sandbox requests: " + " ".join(
            counts["dynamodb_calls"]
        )
        if others:
            note += f"; other AWS: {' '.join(others)}"
        if target is not None and control:
            note = "over target (control plane); " + note
        table.append(
            Row(
                f"round trips: {operation}",
                f"{counts['dynamodb']} DynamoDB",
                "",
                target_text,
                "" if target is None else f"{target} DynamoDB",
                ratio(counts["dynamodb"], target),
                note,
            )
        )
    return table


def _cold_import_rows(cold_import: dict[str, Any]) -> list[Row]:
    if "error" in cold_import:
        return [_missing("cold import", "", cold_import["error"])]
    baseline = cold_import.get("baseline")
    label = f"same function at {baseline}" if baseline else ""
    missing = cold_import.get("baseline_error")
    table = []
    for function, row in cold_import.get("functions", {}).items():
        before = row.get("before_ms")
        note = f"median of {cold_import.get('repeat')}, CPU {row['after_cpu_ms']:.0f} ms"
        if missing:
            note = f"{note}; no baseline: {missing}"
        table.append(
            Row(
                f"cold import functions/{function}",
                _ms(row["after_ms"]),
                f"max {_ms(row['after_max_ms'])}" if "after_max_ms" in row else "",
                label,
                _ms(before),
                ratio(row["after_ms"], before),
                note,
            )
        )
    return table


HEADERS = ("measurement", "value", "p95", "baseline (same run)", "baseline", "ratio", "notes")


def format_table(table: Iterable[Row]) -> str:
    lines = [
        (
            r.measurement,
            r.value,
            r.p95,
            r.baseline,
            r.baseline_value,
            "" if r.ratio is None else f"x{r.ratio}",
            r.note,
        )
        for r in table
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(HEADERS[:-1])]
    right = {1, 2, 4, 5}  # numbers line up on the right

    def render(cells: tuple[str, ...]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ]
        return "  ".join([*out, cells[-1]]).rstrip()

    return "\n".join([render(HEADERS), render((*("-" * w for w in widths), "-----")), *map(render, lines)])


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "measured_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """HEAD, with "+dirty" when tracked files differ from it (others' work in progress included)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT, check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_json(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def latency_series(report: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(operation, p50 ms, p95 ms) of every latency the report holds, for the chart."""
    execute, create, docker = report.get("execute", {}), report.get("create", {}), report.get("docker", {})
    candidates = [
        ("execute, SDK direct", execute.get("sdk_direct")),
        ("execute, API e2b", execute.get("api")),
        ("execute, API docker", docker.get("execute_api")),
        ("create, bare sandbox", create.get("sandbox_create_alone")),
        ("create, API e2b", create.get("api")),
        *(
            (f"create, API pooled {env.split('-')[0]}", figures)
            for env, figures in (report.get("create_pooled", {}).get("environments") or {}).items()
        ),
        ("create, bare container", docker.get("bare_container_run")),
        ("create, API docker", docker.get("create_api")),
    ]
    for key, label in (("concurrency", "e2b"), ("docker_concurrency", "docker")):
        figures = report.get(key, {})
        candidates.append((f"execute, {figures.get('sessions', '?')} concurrent {label}", figures))
    return [(name, f["p50_ms"], f["p95_ms"]) for name, f in candidates if f and "p50_ms" in f]


def write_chart(report: dict[str, Any], path: Path) -> Path:
    """A PNG of p50 and p95 per operation (log scale: executes are milliseconds, creates are not)."""
    import matplotlib  # noqa: PLC0415 - the bench extra, only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import matplotlib.ticker  # noqa: PLC0415

    series = latency_series(report)
    if not series:
        raise ValueError("no latency figures to chart")
    names = [name for name, _, _ in series]
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(series) + 1.6), dpi=110)
    positions = range(len(series))
    height = 0.38
    axes.barh([p - height / 2 for p in positions], [p50 for _, p50, _ in series], height, label="p50")
    axes.barh([p + height / 2 for p in positions], [p95 for _, _, p95 in series], height, label="p95")
    for position, (_, p50, p95) in zip(positions, series, strict=True):
        axes.annotate(
            f"{p50:.0f}",
            (p50, position - height / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
        axes.annotate(
            f"{p95:.0f}",
            (p95, position + height / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    axes.set_yticks(list(positions), names)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("milliseconds (log scale)")
    info = report.get("machine", {})
    axes.set_title(
        f"Sandbox Gateway, local stack: latency per operation\n"
        f"{info.get('cores', '?')} cores, {info.get('cpu_model', '?')}, Python {info.get('python', '?')}, "
        f"{str(info.get('git_commit', '?'))[:12]}, {info.get('measured_at', '')}",
        fontsize=9,
    )
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())  # 10, 100, 1000 ms
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes.grid(axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
