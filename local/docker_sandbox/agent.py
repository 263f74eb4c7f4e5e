"""The agent inside each Docker sandbox (never runs on the host).

`serve` is the container's long-lived process: it keeps one kernel per language (the same
runners as the local E2B-compatible host) and answers on a Unix socket. Lambda invocations are
stateless, so the provider reaches it per call with `docker exec ... agent.py call`, which relays
one JSON request from stdin and the code interpreter's NDJSON events back to stdout.
`list` and `remove` are one-shot helpers for the files API (they never follow symlinks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, "/opt/sandbox")

STATE = Path("/.e2b")  # tmpfs; also the kernels' STATE_MOUNT
SOCKET = STATE / "agent.sock"
WORKSPACE = "/workspace"
INTERRUPT_GRACE_SECONDS = 2.0
OOM_CONTROL = Path("/sys/fs/cgroup/memory/memory.oom_control")  # cgroup v1
OOM_EVENTS = Path("/sys/fs/cgroup/memory.events")  # cgroup v2


# --- serve -------------------------------------------------------------------------------------
class _Process:
    """The interface the shared kernels expect from a started process (see e2b_host.isolation)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def inner_pid(self, wait: float = 0.0) -> int | None:
        return self.proc.pid

    async def signal_group(self, signum: int) -> bool:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)
            return True
        return False

    async def kill(self) -> None:
        await self.signal_group(signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
            await asyncio.wait_for(self.proc.wait(), 5)


class _Container:
    """The container is the namespace: processes start directly, each in its own session."""

    state_dir = STATE

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
    ) -> _Process:
        from e2b_host.isolation import spawn_in_own_session  # noqa: PLC0415 - only inside the container

        proc = await spawn_in_own_session(argv, cwd=cwd, env=env, pass_fds=pass_fds, stdin=stdin)
        return _Process(proc)


class Agent:
    def __init__(self) -> None:
        from e2b_host.kernels import KERNEL_CLASSES  # noqa: PLC0415 - only inside the container

        self._classes = KERNEL_CLASSES
        self._kernels: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._container = _Container()
        self._env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}

    async def kernel(self, language: str) -> Any:
        kernel = self._kernels.get(language)
        if kernel is None or not kernel.alive():
            if kernel is not None:
                await kernel.stop()
            kernel = self._classes[language](
                self._container, cwd=WORKSPACE, env=self._env, kernel_id=language
            )
            await kernel.start()
            self._kernels[language] = kernel
        return kernel

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            if request.get("op") == "ready":
                await self.kernel(request["language"])
                await _send(writer, {"type": "ready"})
            else:
                lock = self._locks.setdefault(request["language"], asyncio.Lock())
                async with lock:
                    await self.execute(request, writer, caller=_peer_pid(writer))
        except Exception as exc:  # reported to the caller, never fatal to the agent
            with contextlib.suppress(Exception):
                await _send(writer, {"type": "agent_error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def execute(
        self, request: dict[str, Any], writer: asyncio.StreamWriter, caller: int | None
    ) -> None:
        from e2b_host.kernels import KernelDied, OutputSink  # noqa: PLC0415

        language = request["language"]
        sink = OutputSink(int(request.get("output_limit", 1 << 20)))
        oom_before = _oom_kills()
        status = "ok"
        try:
            kernel = await self.kernel(language)
        except KernelDied as exc:
            sink.error("KernelStartError", str(exc), "")
            kernel, status = None, "error"

        async def run() -> None:
            try:
                await kernel.execute(request["code"], request.get("env_vars") or {}, sink)
            except (KernelDied, BrokenPipeError, ConnectionResetError) as exc:
                sink.error("DeadKernelError", f"the {language} kernel died ({exc}); its state is lost", "")
                await kernel.stop()

        if kernel is not None:
            task = asyncio.create_task(run())
            done, _ = await asyncio.wait({task}, timeout=float(request.get("timeout", 20)))
            if not done:
                status = "timeout"
                await self.stop_runaway(kernel, task, spare={caller} if caller else set())
        while not sink.queue.empty():
            event = sink.queue.get_nowait()
            if event is not None:
                if event.get("type") == "error" and status == "ok":
                    status = "error"
                await _send(writer, event)
        if _oom_kills() > oom_before:
            status = "oom"
        await _send(writer, {"type": "end_of_execution", "status": status, "truncated": sink.truncated})

    async def stop_runaway(self, kernel: Any, task: asyncio.Task[None], spare: set[int]) -> None:
        """Interrupt; if the cell does not stop, restart its kernel. Then end every other process."""
        await kernel.interrupt()
        done, _ = await asyncio.wait({task}, timeout=INTERRUPT_GRACE_SECONDS)
        if not done:
            await kernel.stop()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        # Daemonized grandchildren (setsid, double fork) left the kernel's process group.
        kernels = {k.proc.pid for k in self._kernels.values() if k.alive() and k.proc}
        sweep(keep={os.getpid(), *kernels, *spare})


async def _send(writer: asyncio.StreamWriter, event: dict[str, Any]) -> None:
    writer.write((json.dumps(event) + "\n").encode())
    await writer.drain()


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    """The `call` process on the other end: it must outlive a sweep to report the timeout."""
    conn = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[0])
    return None


def _oom_kills() -> int:
    for path, key in ((OOM_CONTROL, "oom_kill"), (OOM_EVENTS, "oom_kill")):
        with contextlib.suppress(OSError, ValueError):
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    return 0


def sweep(keep: set[int]) -> int:
    """SIGKILL every process of the container but PID 1 (init) and `keep`."""
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == 1 or pid in keep:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


async def serve() -> None:
    STATE.mkdir(exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        SOCKET.unlink()
    agent = Agent()
    server = await asyncio.start_unix_server(agent.handle, path=str(SOCKET), limit=1 << 24)
    async with server:
        await server.serve_forever()


# --- call --------------------------------------------------------------------------------------
def call() -> int:
    """Relay one request (stdin) to the agent and its events (stdout), waiting for it to listen."""
    request = sys.stdin.buffer.read()
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(str(SOCKET))
            break
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                print(json.dumps({"type": "agent_error", "message": "the agent is not running"}), flush=True)
                return 1
            time.sleep(0.02)
    with conn:
        conn.sendall(request.rstrip(b"\n") + b"\n")
        while chunk := conn.recv(1 << 16):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return 0


# --- files -------------------------------------------------------------------------------------
def list_dir(path: str) -> int:
    try:
        with os.scandir(path) as entries:
            listing = [_describe(entry) for entry in entries]
    except FileNotFoundError:
        return _fail("not_found", f"{path} does not exist")
    except NotADirectoryError:
        return _fail("not_a_directory", f"{path} is not a directory")
    except PermissionError:
        return _fail("permission_denied", f"{path} cannot be read")
    print(json.dumps({"entries": sorted(listing, key=lambda e: e["name"])}))
    return 0


def _describe(entry: os.DirEntry[str]) -> dict[str, Any]:
    info = entry.stat(follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    elif stat.S_ISREG(info.st_mode):
        kind = "file"
    else:
        kind = "other"
    return {
        "name": entry.name,
        "path": entry.path,
        "type": kind,
        "size": info.st_size if kind == "file" else None,
        "mtime": info.st_mtime,
    }


def remove(path: str) -> int:
    try:
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)  # removes links inside, never what they point to
        else:
            os.unlink(path)
    except FileNotFoundError:
        return _fail("not_found", f"{path} does not exist")
    except PermissionError:
        return _fail("permission_denied", f"{path} cannot be removed")
    print(json.dumps({"removed": path}))
    return 0


def _fail(code: str, message: str) -> int:
    print(json.dumps({"error": code, "message": message}))
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "serve"
    if command == "serve":
        asyncio.run(serve())
        return 0
    if command == "call":
        return call()
    if command == "list":
        return list_dir(argv[2])
    if command == "remove":
        return remove(argv[2])
    if command == "sweep":
        print(json.dumps({"killed": sweep(keep={os.getpid(), *map(int, argv[2:])})}))
        return 0
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
