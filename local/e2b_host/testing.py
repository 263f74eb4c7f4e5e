"""Start the local E2B host from tests or ``make dev`` and point the SDK at it.

from local.e2b_host.testing import running_host, sdk_environment

with running_host() as host, sdk_environment(host):
    sbx = Sandbox.create()          # the unmodified SDK talks to the local host
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..sandbox_runtime import ensure_runtime

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "e2b_host listening on "
TEST_API_KEY = "e2b_local_host_key"


@dataclass(frozen=True)
class HostInfo:
    url: str
    port: int
    pid: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace")


def host_env(url: str, api_key: str = TEST_API_KEY) -> dict[str, str]:
    """The environment variables that point the E2B SDK (e2b<3) at a local host."""
    return {"E2B_API_URL": url, "E2B_SANDBOX_URL": url, "E2B_API_KEY": api_key}


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started the host dies (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes  # noqa: PLC0415 - only in the forked child

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _stop(proc: subprocess.Popen[str], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


@contextlib.contextmanager
def running_host(
    port: int = 0,
    *,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 30.0,
    shutdown_timeout: float = 15.0,
    log_path: Path | None = None,
) -> Iterator[HostInfo]:
    """Run ``python -m local.e2b_host`` on 127.0.0.1 as a subprocess until the block exits.

    On exit the host is terminated (SIGTERM, then SIGKILL of its process group); it kills its
    sandboxes on shutdown, and their namespaces die with it even if it is SIGKILLed.
    """
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="e2b-host-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if "--runtime" not in extra_args:
        # Built (once per content hash, minutes the first time) before the start-up clock runs.
        extra_args = [*extra_args, "--runtime", str(ensure_runtime())]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "local.e2b_host", "--host", "127.0.0.1", "--port", str(port), *extra_args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
            # Even if the test run is killed outright, the host (and so its sandboxes) goes too.
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,  # noqa: PLW1509
        )
    try:
        url = _wait_ready(proc, startup_timeout, log_path)
        yield HostInfo(
            url=url, port=int(url.rsplit(":", 1)[1]), pid=proc.pid, log_path=log_path, env=host_env(url)
        )
    finally:
        _stop(proc, shutdown_timeout)


def _wait_ready(proc: subprocess.Popen[str], timeout: float, log_path: Path) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    url = None
    while url is None:
        if proc.poll() is not None:
            raise RuntimeError(
                f"local E2B host exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"local E2B host did not start in {timeout}s; log: {log_path}")
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.2))
        if ready:
            line = proc.stdout.readline()
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX) :].strip()
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:  # noqa: S310 - http://127.0.0.1
                if resp.status == 200:
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise TimeoutError(f"local E2B host at {url} is not answering; log: {log_path}")
        time.sleep(0.05)


@contextlib.contextmanager
def sdk_environment(host: HostInfo | str, api_key: str = TEST_API_KEY) -> Iterator[dict[str, str]]:
    """Set E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY for the block; restore them after."""
    url = host.url if isinstance(host, HostInfo) else host
    values = host_env(url, api_key)
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


__all__ = ["TEST_API_KEY", "HostInfo", "host_env", "running_host", "sdk_environment"]
