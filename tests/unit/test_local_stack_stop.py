"""The local stack's servers are stopped even when one ignores its SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from local.stack import stop_process

IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_server_sitting_past_its_sigterm_is_killed() -> None:
    process = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    stop_process(process, grace_seconds=0.5)
    assert process.returncode == -signal.SIGKILL


def test_a_server_that_exits_on_sigterm_is_not_killed() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    stop_process(process)
    assert process.returncode == -signal.SIGTERM
