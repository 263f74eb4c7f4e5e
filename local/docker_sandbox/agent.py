"""The agent inside each Docker sandbox (never runs on the host).

`serve` is the container's long-lived process: it keeps one kernel per language (the same
runners as the local E2B-compatible host) and answers on a Unix socket. Lambda invocations are
stateless, so the provider reaches it through `docker exec`: code through relay.py, which it
starts once per gateway process and container and keeps open; create's first request through
`agent.py call`, which relays one JSON request from stdin and the code interpreter's NDJSON
events back to stdout. Both are callers on the socket like any other (one connection each).
`list`, `remove` and `write` are one-shot helpers for the files API (they never follow symlinks).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# `call`, `sweep` and the files helpers start a fresh interpreter per request (docker exec): they
# skip asyncio (and the subprocess it imports): ~55 ms of a ~165 ms warm execute.
if TYPE_CHECKING or __name__ != "__main__" or sys.argv[1:2] in ([], ["serve"]):
    import asyncio

sys.path.insert(0, "/opt/sandbox")

STATE = Path("/.e2b")  # tmpfs; also the kernels' STATE_MOUNT
FONT_CACHE = Path("/opt/sandbox-runtime/share/matplotlib")  # see local/sandbox_runtime/finish.py
SOCKET = STATE / "agent.sock"
# The container's working directory is the configured workspace (WORKSPACE_ROOT).
WORKSPACE = os.getcwd()
# A cell that ignores SIGINT this long has its kernel restarted: the caller hears within ~1 s.
# A normal cell stops on SIGINT in milliseconds, but on a loaded machine 0.25 s was seen to
# restart (and so wipe) a kernel whose cell was only sleeping.
INTERRUPT_GRACE_SECONDS = 1.0
FIRST_INTERRUPT_WAIT_SECONDS = 0.25
FORK_BOMB_PROCESSES = 32  # a cell's group this large at its limit is a fork bomb: no interrupt
KERNEL_NICENESS = 10
SWEEP_PASSES = 20  # a fork bomb refills /proc while it is swept: sweep until a pass finds nothing
EVENT_RESERVE_BYTES = 256 * 1024  # beyond the output budget: the error, the notice, the end line
MAX_ERROR_FIELD_CHARS = 64 * 1024
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
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
        stdin: int | None = -3,  # subprocess.DEVNULL: the one-shot commands do not import subprocess
    ) -> _Process:
        from e2b_host.isolation import spawn_in_own_session  # noqa: PLC0415 - only inside the container

        # Kernels (and all the code they start) run niced: a CPU flood or a fork bomb in the
        # container must not starve the agent that is to stop it on time. Code cannot undo it
        # (lowering a nice value needs CAP_SYS_NICE).
        niced = ["nice", "-n", str(KERNEL_NICENESS), *argv]
        proc = await spawn_in_own_session(niced, cwd=cwd, env=env, pass_fds=pass_fds, stdin=stdin)
        return _Process(proc)


class BudgetSink:
    """The events of one execution (what the kernels call an OutputSink), counted as the bytes
    the agent sends for them: a line of JSON each, escapes included (a control character costs
    6 bytes, `\\n` 2, not 1). When the budget is spent, what fits of the last chunk is kept,
    `truncated` is set and `full` tells the agent to stop the cell instead of letting it flood."""

    def __init__(self, limit_bytes: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.limit = limit_bytes
        self.used = 0
        self.truncated = False
        self.full = asyncio.Event()
        self.muted = False  # after a stop for output: the interrupt's own error is not the cell's

    def emit(self, event: dict[str, Any], *, always: bool = False) -> bool:
        size = len(json.dumps(event)) + 1
        if not always and (self.truncated or self.used + size > self.limit):
            self._overflow()
            return False
        self.used += size
        self.queue.put_nowait(event)
        return True

    def _overflow(self) -> None:
        if not self.truncated:
            self.truncated = True
            notice = f"\n[output truncated after {self.limit} bytes; the cell was stopped]\n"
            self.emit({"type": "stderr", "text": notice, "timestamp": time.time_ns()}, always=True)
        self.full.set()

    def stream(self, name: str, text: str) -> None:
        if not text or self.truncated:
            return
        event = {"type": name, "text": text, "timestamp": time.time_ns()}
        if self.emit(event, always=self.used + len(json.dumps(event)) + 1 <= self.limit):
            return
        from e2b_host.kernels import wire_head  # noqa: PLC0415 - only inside the container

        # Keep the longest head that fits (each character costs 1 to 12 bytes once escaped).
        head = wire_head(text, self.limit - self.used - len(json.dumps({**event, "text": ""})) - 1)
        if head:
            self.emit({**event, "text": head}, always=True)
        self._overflow()

    def result(self, data: dict[str, Any], is_main: bool) -> None:
        from e2b_host.kernels import result_event  # noqa: PLC0415 - only inside the container

        self.emit(result_event(data, is_main))

    def error(self, name: str, value: str, traceback: str) -> None:
        if self.muted:
            return
        fields = (name, value, traceback)
        name, value, traceback = (f[:MAX_ERROR_FIELD_CHARS] for f in fields)
        # Counted, but always sent: EVENT_RESERVE_BYTES keeps room for it beyond the budget.
        self.emit({"type": "error", "name": name, "value": value, "traceback": traceback}, always=True)

    def execution_count(self, count: int) -> None:
        self.emit({"type": "number_of_executions", "execution_count": count}, always=True)


class Agent:
    def __init__(self) -> None:
        from e2b_host.kernels import KERNEL_CLASSES  # noqa: PLC0415 - only inside the container

        self._classes = dict(KERNEL_CLASSES)
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
        from e2b_host.kernels import KernelDied  # noqa: PLC0415

        language = request["language"]
        sink = BudgetSink(int(request.get("output_limit", 1 << 20)))
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
            flooded = asyncio.create_task(sink.full.wait())
            await asyncio.wait(
                {task, flooded},
                timeout=float(request.get("timeout", 20)),
                return_when=asyncio.FIRST_COMPLETED,
            )
            flooded.cancel()
            if not task.done():
                # Out of time, or out of output budget: either way the cell is stopped now, so
                # the caller hears at once and the next call finds the kernel free.
                spare = {caller} if caller else set()
                if sink.full.is_set():
                    sink.muted = True
                    await self.stop_runaway(kernel, task, spare=spare)
                    sink.muted = False
                    limit = sink.limit
                    sink.error(
                        "OutputLimitExceeded", f"the cell wrote more than {limit} bytes and was stopped", ""
                    )
                else:
                    status = "timeout"
                    await self.stop_runaway(kernel, task, spare=spare)
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
        # Freeze the kernel's process group first: a fork bomb cannot refill /proc while it is
        # swept, and its children cannot keep the CPU from the kernel's interrupt handler.
        group = kernel.proc.pid if kernel.proc else None
        kernels = {k.proc.pid for k in self._kernels.values() if k.alive() and k.proc}
        swept = 0
        if group:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGSTOP)
            swept = sweep(keep={os.getpid(), *kernels, *spare})  # one pass: nothing frozen can fork
            if swept < FORK_BOMB_PROCESSES:
                with contextlib.suppress(OSError):
                    os.killpg(group, signal.SIGCONT)
        # A fork bomb's kernel forks again the moment it resumes and does not stop on SIGINT
        # (measured: 3 s past the limit), so it is restarted at once, still frozen.
        done: set[asyncio.Task[None]] = set()
        if swept < FORK_BOMB_PROCESSES:
            await kernel.interrupt()
            done, _ = await asyncio.wait({task}, timeout=FIRST_INTERRUPT_WAIT_SECONDS)
        if not done and swept < FORK_BOMB_PROCESSES:  # the first SIGINT after a freeze is often lost
            await kernel.interrupt()
            rest = INTERRUPT_GRACE_SECONDS - FIRST_INTERRUPT_WAIT_SECONDS
            done, _ = await asyncio.wait({task}, timeout=rest)
        if not done:
            await kernel.stop()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        # Daemonized grandchildren (setsid, double fork) left the kernel's process group.
        kernels = {k.proc.pid for k in self._kernels.values() if k.alive() and k.proc}
        sweep_all(keep={os.getpid(), *kernels, *spare})


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


def sweep_all(keep: set[int]) -> int:
    """Sweep until a pass finds nothing left to kill: a fork bomb forks while it is swept."""
    killed = 0
    for _ in range(SWEEP_PASSES):
        found = sweep(keep)
        killed += found
        if not found:
            break
        time.sleep(0.01)
    return killed


def sweep(keep: set[int]) -> int:
    """SIGKILL every process of the container but PID 1 (init) and `keep`."""
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == 1 or pid in keep or _zombie(pid):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            return stat_file.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # gone already


# ipykernel sends a cell's output every 0.2 s: a cell writing faster than the agent can be told
# grows that buffer until the kernel runs out of memory, and nothing shows. Flushing every
# 256 KiB makes the writer wait for the output to leave, so a flood is counted, cut and stopped.
IPYTHON_STARTUP = "00-sandbox-gateway-bounded-output.py"
BOUNDED_OUTPUT = """\
import sys


def _sandbox_gateway_bound(stream, limit=256 * 1024):
    write, pending = stream.write, [0]

    def bounded_write(text):
        written = write(text)
        pending[0] += len(text)
        if pending[0] > limit:
            pending[0] = 0
            stream.flush()
        return written

    stream.write = bounded_write


for _stream in (sys.stdout, sys.stderr):
    _sandbox_gateway_bound(_stream)
del _stream, _sandbox_gateway_bound
"""


def _install_ipython_startup() -> None:
    startup = Path(os.environ.get("HOME", "/home/user")) / ".ipython/profile_default/startup"
    with contextlib.suppress(OSError):
        startup.mkdir(parents=True, exist_ok=True)
        (startup / IPYTHON_STARTUP).write_text(BOUNDED_OUTPUT)


def _seed_font_cache() -> None:
    """matplotlib's font list, prebuilt in the image's runtime, into ~/.cache/matplotlib (a fresh
    tmpfs per container): otherwise each sandbox's first import rebuilt it."""
    target = Path(os.environ.get("HOME", "/home/user")) / ".cache/matplotlib"
    with contextlib.suppress(OSError):
        target.mkdir(parents=True, exist_ok=True)
        for font_list in FONT_CACHE.glob("fontlist-*.json"):
            if not (target / font_list.name).exists():
                shutil.copyfile(font_list, target / font_list.name)


async def serve() -> None:
    STATE.mkdir(exist_ok=True)
    _install_ipython_startup()
    _seed_font_cache()
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


def write(root: str, relative: str) -> int:
    """Write stdin to `root`/`relative` without ever losing what is there: missing parent
    directories are created, but a parent that is a file or a link, or a target that is not a
    regular file, is a conflict (nothing removed or replaced). Links are never followed (each
    component is opened with O_NOFOLLOW from a directory fd). A regular file is replaced
    atomically: the data goes to a temporary name in the same directory, then rename(2) —
    which itself refuses to replace a directory swapped in meanwhile (EISDIR)."""
    data = sys.stdin.buffer.read()
    *parents, name = Path(relative).parts
    walked = root
    directory = os.open(root, DIRECTORY_FLAGS)
    temporary = None
    try:
        for part in parents:
            walked = f"{walked}/{part}"
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=directory)
            try:
                child = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory
                )
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    return _fail("conflict", f"{walked} exists and is not a directory")
                raise
            os.close(directory)
            directory = child
        target = f"{walked}/{name}"
        existing = _lstat_at(name, directory)
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            return _fail("conflict", f"{target} exists and is {_kind(existing.st_mode)}, not a file")
        temporary = f".sgw-write-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o644, dir_fd=directory)
        with os.fdopen(fd, "wb") as out:
            if existing is not None:
                os.fchmod(out.fileno(), stat.S_IMODE(existing.st_mode))
            out.write(data)
        existing = _lstat_at(name, directory)
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            return _fail("conflict", f"{target} exists and is {_kind(existing.st_mode)}, not a file")
        try:
            os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        except IsADirectoryError:
            return _fail("conflict", f"{target} exists and is a directory, not a file")
        temporary = None
    except FileNotFoundError:
        return _fail("not_found", f"{walked} does not exist")
    except OSError as exc:
        codes = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EFBIG: "too_large"}
        return _fail(codes.get(exc.errno or 0, "invalid"), f"{relative} cannot be written ({exc.strerror})")
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
        os.close(directory)
    print(json.dumps({"written": f"{root}/{relative}", "size": len(data)}))
    return 0


def _lstat_at(name: str, directory: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a special file"


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
    if command == "write":
        return write(argv[2], argv[3])
    if command == "sweep":
        print(json.dumps({"killed": sweep_all(keep={os.getpid(), *map(int, argv[2:])})}))
        return 0
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
