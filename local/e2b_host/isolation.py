"""Per-sandbox mount + PID namespaces built with bubblewrap, entered with nsenter.

Each sandbox gets one long-lived ``bwrap`` "init" whose namespaces hold every process the
sandbox starts (kernels, commands, their daemonized grandchildren). Inside, the root is a
tmpfs with the host's top-level directories bound READ-ONLY, and the sandbox's own
directories bound read-write onto ``/home/user``, ``/workspace``, ``/tmp`` and ``/root``.
Processes are started with ``nsenter`` into that mount and PID namespace, so they all see
the same paths as the files API. Killing the init (PID 1 of the namespace) makes the kernel
SIGKILL every process in the namespace, whatever it did to detach itself.

This is isolation of *paths and process lifetimes* for a development tool, not a security
boundary: the network, the user (root) and the host's /dev are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# Sandbox path -> directory (relative to the sandbox's fs root) bound onto it read-write.
SANDBOX_MOUNTS: dict[str, str] = {
    "/home/user": "home/user",
    "/workspace": "workspace",
    "/tmp": "tmp",
    "/root": "root",
}
# Where the host's per-sandbox state dir (connection files, runner scripts) is visible inside.
STATE_MOUNT = "/.e2b"
# Host top-level entries that are NOT bound into the sandbox (replaced or recreated).
_SKIPPED_TOP_LEVEL = {"proc", "dev", "sys", "tmp", "home", "workspace", "root"}
_REQUIRED_TOOLS = ("bwrap", "nsenter", "env", "setsid")


class IsolationUnavailable(RuntimeError):
    """The machine cannot build the per-sandbox namespaces."""


def _masked(path: str) -> bool:
    return any(path == m or path.startswith(m + "/") for m in (*SANDBOX_MOUNTS, "/home"))


def _extra_read_only_binds() -> list[str]:
    """The host Python must stay reachable inside even if it lives under a masked dir."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    binds: list[str] = []
    for path in sorted(paths):
        if path and _masked(path) and os.path.isdir(path):
            binds += ["--ro-bind", path, path]
    return binds


def bwrap_args(fs_root: Path, state_dir: Path, hostname: str) -> list[str]:
    args = [
        "bwrap",
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        hostname,
        "--tmpfs",
        "/",
    ]
    for entry in sorted(os.listdir("/")):
        if entry in _SKIPPED_TOP_LEVEL:
            continue
        path = "/" + entry
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev", "--ro-bind-try", "/sys", "/sys", "--dir", "/home"]
    for inside, rel in SANDBOX_MOUNTS.items():
        args += ["--bind", str(fs_root / rel), inside]
    args += ["--ro-bind", str(state_dir), STATE_MOUNT]
    args += _extra_read_only_binds()
    return args


def check_isolation() -> None:
    """Fail loudly unless bubblewrap and nsenter can build and enter a namespace here."""
    missing = [tool for tool in _REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise IsolationUnavailable(
            f"missing tools: {', '.join(missing)} (Debian packages: bubblewrap, util-linux, coreutils)"
        )
    probe = subprocess.run(
        ["bwrap", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        raise IsolationUnavailable(
            "bubblewrap cannot create mount/PID namespaces on this machine "
            f"(exit {probe.returncode}): {probe.stderr.strip()}"
        )


class SandboxNamespace:
    """The namespaces of one sandbox, alive while its bwrap init runs."""

    def __init__(self, fs_root: Path, state_dir: Path, hostname: str) -> None:
        self.fs_root = fs_root
        self.state_dir = state_dir
        self.hostname = hostname
        self._bwrap: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None
        self.enter_pid: int | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start the init. Call from a long-lived thread (PR_SET_PDEATHSIG follows the thread)."""
        read_fd, write_fd = os.pipe()
        try:
            self._bwrap = subprocess.Popen(
                [
                    *bwrap_args(self.fs_root, self.state_dir, self.hostname),
                    "--info-fd",
                    str(write_fd),
                    "--",
                    "sleep",
                    "infinity",
                ],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            os.close(write_fd)
            write_fd = -1
            info = b""
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IsolationUnavailable("bubblewrap did not report its child pid in time")
                ready, _, _ = select.select([read_fd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(read_fd, 4096)
                if not chunk:
                    break
                info += chunk
                try:
                    self.init_pid = int(json.loads(info)["child-pid"])
                    break
                except (ValueError, KeyError):
                    continue
            if self.init_pid is None:
                err = self._bwrap.stderr.read().decode(errors="replace") if self._bwrap.stderr else ""
                raise IsolationUnavailable(f"bubblewrap failed to start: {err.strip()}")
            # bwrap reports its pid before the mounts are done: enter through the command it
            # finally execs (``sleep``), whose root is the finished one.
            while self.enter_pid is None:
                for child in _child_pids(self.init_pid):
                    try:
                        with open(f"/proc/{child}/comm") as fh:
                            if fh.read().strip() == "sleep":
                                self.enter_pid = child
                    except OSError:
                        pass
                if self.enter_pid is None:
                    if time.monotonic() > deadline or self._bwrap.poll() is not None:
                        raise IsolationUnavailable("the sandbox namespace did not finish setting up")
                    time.sleep(0.002)
        except BaseException:
            self.kill()
            raise
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)

    def alive(self) -> bool:
        return self._bwrap is not None and self._bwrap.poll() is None

    def command(self, argv: Sequence[str], cwd: str, *, new_session: bool = True) -> list[str]:
        """The host command line that runs ``argv`` inside the namespace, in ``cwd``."""
        if self.enter_pid is None:
            raise RuntimeError("namespace not started")
        prefix = ["nsenter", "-t", str(self.enter_pid), "-m", "-p", "-r", "-w", "--", "env", "-C", cwd]
        if new_session:
            prefix.append("setsid")
        return [*prefix, *argv]

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
    ) -> SandboxProcess:
        """Start ``argv`` inside the namespace in its own session, with stdout/stderr pipes."""
        proc = await spawn_in_own_session(
            self.command(argv, cwd), cwd=str(self.state_dir), env=env, pass_fds=pass_fds, stdin=stdin
        )
        return SandboxProcess(proc)

    def kill(self) -> None:
        """SIGKILL the init; the kernel then kills every process in the PID namespace."""
        if self.init_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        if self._bwrap is not None:
            if self._bwrap.poll() is None:
                self._bwrap.kill()
            try:
                self._bwrap.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("bwrap %s did not exit after SIGKILL", self._bwrap.pid)
            if self._bwrap.stderr:
                self._bwrap.stderr.close()


async def spawn_in_own_session(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    stdin: int | None = subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """A process in a session of its own (so a signal to its group reaches all it starts),
    with stdout/stderr pipes. Also used by the Docker sandbox's agent, where no nsenter is needed."""
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
        limit=1 << 20,
    )


def _child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return []


class SandboxProcess:
    """A process started through nsenter; its ``inner_pid`` is a host pid and its own pgid."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._inner_pid: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def inner_pid(self, wait: float = 2.0) -> int | None:
        """Host pid of the process nsenter forked into the namespace."""
        deadline = time.monotonic() + wait
        while self._inner_pid is None:
            children = _child_pids(self.proc.pid)
            if children:
                self._inner_pid = children[0]
                break
            if self.proc.returncode is not None or time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.005)
        return self._inner_pid

    async def signal_group(self, signum: int) -> bool:
        pid = await self.inner_pid(wait=0.5)
        if pid is None:
            return False
        try:
            os.killpg(pid, signum)
            return True
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signum)
                return True
            except ProcessLookupError:
                return False

    async def kill(self) -> None:
        await self.signal_group(signal.SIGKILL)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            logger.warning("process %s did not exit after SIGKILL", self.proc.pid)
