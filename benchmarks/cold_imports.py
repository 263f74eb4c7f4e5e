"""Cold import of each Lambda function: `python -X importtime -c "import app"`, median of N runs.

Not a test (what each function imports is asserted exactly in tests/unit/test_cold_imports.py):
it prints a table and writes benchmarks/results/cold-imports.json. Each run is a fresh interpreter
in functions/<name>/ with PYTHONPATH=layers/shared, as Lambda imports the handler, after one
unmeasured run that writes the bytecode caches. With --baseline REV the same is measured on that
commit's functions/ and layers/shared (exported with `git archive`, the work tree is not touched),
runs alternating between the two trees, and the table gives both and their ratio.

    .venv/bin/python -m benchmarks.cold_imports --baseline 4180450 --repeat 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def functions(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "functions").iterdir() if (p / "app.py").is_file())


def import_ms(root: Path, function: str) -> tuple[float, float]:
    """One fresh interpreter importing functions/<function>/app.py: the `app` line's cumulative time,
    and the whole process's CPU time (user + system), which a busy machine inflates far less."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import app"],
        cwd=root / "functions" / function,
        env={**os.environ, "PYTHONPATH": str(root / "layers" / "shared")},
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_ms = (after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime) * 1000
    for line in run.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[2].strip() == "app":
            return int(fields[1]) / 1000, cpu_ms
    raise RuntimeError(f"{function}: no import time for app in {run.stderr[-500:]!r}")


def export(revision: str, into: Path) -> Path:
    """functions/ and layers/shared/ of `revision`, without touching the work tree."""
    archive = subprocess.run(
        ["git", "archive", revision, "functions", "layers/shared"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(trees: dict[str, Path], repeat: int) -> dict[str, dict[str, float]]:
    """Per function and tree: median and max import ms, median process CPU ms. The trees' runs
    alternate so that drift in the machine's load hits both alike."""
    names = functions(next(iter(trees.values())))
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {n: {t: [] for t in trees} for n in names}
    for name in names:
        for root in trees.values():
            import_ms(root, name)  # bytecode caches written, files in the page cache
        for _ in range(repeat):
            for tree, root in trees.items():
                samples[name][tree].append(import_ms(root, name))
    rows: dict[str, dict[str, float]] = {}
    for name, by_tree in samples.items():
        row = rows.setdefault(name, {})
        for tree, runs in by_tree.items():
            row[f"{tree}_ms"] = round(statistics.median(wall for wall, _ in runs), 1)
            row[f"{tree}_max_ms"] = round(max(wall for wall, _ in runs), 1)
            row[f"{tree}_cpu_ms"] = round(statistics.median(cpu for _, cpu in runs), 1)
    return rows


def print_table(rows: dict[str, dict[str, float]], baseline: bool) -> None:
    if baseline:
        print(f"{'function':<12}{'before ms':>11}{'after ms':>10}{'ratio':>8}{'CPU before':>12}{'after':>8}")
        for name, row in rows.items():
            print(
                f"{name:<12}{row['before_ms']:>11.1f}{row['after_ms']:>10.1f}{row['ratio']:>8.2f}"
                f"{row['before_cpu_ms']:>12.1f}{row['after_cpu_ms']:>8.1f}"
            )
    else:
        print(f"{'function':<12}{'ms':>9}{'CPU ms':>9}")
        for name, row in rows.items():
            print(f"{name:<12}{row['after_ms']:>9.1f}{row['after_cpu_ms']:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per function and tree (median)")
    parser.add_argument("--baseline", metavar="REV", help="also measure this commit, as `before`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-imports-") as scratch:
        trees = {"after": ROOT}
        if args.baseline:
            trees = {"before": export(args.baseline, Path(scratch)), "after": ROOT}
        rows = measure(trees, args.repeat)
    for row in rows.values():
        if args.baseline:
            row["ratio"] = round(row["before_ms"] / row["after_ms"], 2)
    print_table(rows, bool(args.baseline))
    report: dict[str, Any] = {
        "method": 'python -X importtime -c "import app" in functions/<name>, PYTHONPATH=layers/shared; '
        "ms: the app line's cumulative import time (median), cpu_ms: the process's user+system time",
        "repeat": args.repeat,
        "baseline": args.baseline,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "functions": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold-imports.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
