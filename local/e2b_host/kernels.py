"""Stateful code runners behind ``/execute``: a real ipykernel (driven with jupyter_client),
and persistent node / bash processes for JavaScript, TypeScript and Bash.

Every runner is started inside the sandbox's namespaces, in its own session, so an
interrupt (SIGINT to its process group) or a kill reaches the code it runs.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import queue
import re
import secrets
import shutil
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import write_connection_file

from .isolation import STATE_MOUNT, SandboxNamespace, SandboxProcess

logger = logging.getLogger(__name__)

LANGUAGE_ALIASES = {
    "python": "python",
    "python3": "python",
    "py": "python",
    "javascript": "javascript",
    "js": "javascript",
    "node": "javascript",
    "nodejs": "javascript",
    # Like E2B: its own context, run by the JavaScript runner after the TypeScript compiler.
    "typescript": "typescript",
    "ts": "typescript",
    "bash": "bash",
    "sh": "bash",
    "shell": "bash",
}

# Jupyter mimetype -> key of an E2B result line (as the code-interpreter server maps them).
_MIME_KEYS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}


class KernelDied(Exception):
    """The runner process exited (or never became ready)."""


def wire_size(text: str) -> int:
    """Bytes ``text`` costs in an NDJSON line (JSON-escaped: control and non-ASCII characters
    take 2 to 12 bytes each), so the cap counts what is actually sent."""
    return len(json.dumps(text)) - 2


def wire_head(text: str, room: int) -> str:
    """The longest prefix of ``text`` whose JSON-escaped size fits in ``room`` bytes."""
    low, high = 0, min(len(text), max(room, 0))
    while low < high:
        middle = (low + high + 1) // 2
        if wire_size(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def result_event(data: dict[str, Any], is_main: bool) -> dict[str, Any]:
    """A kernel's display data as the code interpreter's `result` line: known MIME types under
    their E2B keys, the rest in `extra`."""
    data = dict(data)
    event: dict[str, Any] = {"type": "result"}
    for mime, key in _MIME_KEYS.items():
        if mime in data:
            event[key] = data.pop(mime)
    text = event.get("text")
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] == "'":
        event["text"] = text[1:-1]
    event["extra"] = data
    event["is_main_result"] = is_main
    return event


class OutputSink:
    """The NDJSON events of one execution, with runaway output capped (not fatal).

    Sizes are counted as the JSON-escaped bytes sent, not the text's UTF-8 length.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.limit = limit_bytes
        self.used = 0
        self.truncated = False

    def emit(self, event: dict[str, Any]) -> None:
        self.queue.put_nowait(event)

    def _charge(self, size: int) -> bool:
        if self.truncated:
            return False
        if self.used + size > self.limit:
            self.truncated = True
            self.emit(
                {
                    "type": "stderr",
                    "text": f"\n[e2b_host: output truncated after {self.limit} bytes]\n",
                    "timestamp": time.time_ns(),
                }
            )
            return False
        self.used += size
        return True

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        if self.truncated:
            return
        size = wire_size(text)
        if self.used + size > self.limit:
            head = wire_head(text, self.limit - self.used)
            if head:
                self.used += wire_size(head)
                self.emit({"type": name, "text": head, "timestamp": time.time_ns()})
            self._charge(size)
            return
        self.used += size
        self.emit({"type": name, "text": text, "timestamp": time.time_ns()})

    def result(self, data: dict[str, Any], is_main: bool) -> None:
        if not self._charge(len(json.dumps(data, default=str))):
            return
        self.emit(result_event(data, is_main))

    def error(self, name: str, value: str, traceback: str) -> None:
        self.emit({"type": "error", "name": name, "value": value, "traceback": traceback})

    def execution_count(self, count: int) -> None:
        self.emit({"type": "number_of_executions", "execution_count": count})


class Kernel:
    language = ""

    def __init__(self, namespace: SandboxNamespace, *, cwd: str, env: dict[str, str], kernel_id: str) -> None:
        self.namespace = namespace
        self.cwd = cwd
        self.env = env
        self.kernel_id = kernel_id
        self.proc: SandboxProcess | None = None
        self._drains: list[asyncio.Task[None]] = []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    async def start(self) -> None:
        raise NotImplementedError

    async def execute(self, code: str, env_vars: dict[str, str], sink: OutputSink) -> None:
        raise NotImplementedError

    async def interrupt(self) -> None:
        if self.proc is not None:
            await self.proc.signal_group(signal.SIGINT)

    async def stop(self) -> None:
        if self.proc is not None:
            await self.proc.kill()
        for task in self._drains:
            task.cancel()
        self._drains.clear()

    def exit_description(self) -> str:
        code = self.proc.proc.returncode if self.proc else None
        if code is not None and code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exit code {code}"


async def _drain(stream: asyncio.StreamReader | None, label: str) -> None:
    """Keep a pipe we do not care about from filling up."""
    if stream is None:
        return
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        logger.debug("%s: %s", label, chunk[:2000].decode(errors="replace").rstrip())


_IPC_PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}


class _KernelClient(AsyncKernelClient):
    """jupyter_client's client, connecting to fixed ZMQ URLs when given (``e2b_urls``)."""

    e2b_urls: dict[str, str] | None = None

    def _make_url(self, channel: str) -> str:
        if self.e2b_urls is not None:
            return self.e2b_urls[channel]
        return super()._make_url(channel)


class PythonKernel(Kernel):
    """A real ipykernel process, spoken to over ZMQ with jupyter_client."""

    language = "python"

    def __init__(self, namespace: SandboxNamespace, *, cwd: str, env: dict[str, str], kernel_id: str) -> None:
        super().__init__(namespace, cwd=cwd, env=env, kernel_id=kernel_id)
        self.client: AsyncKernelClient | None = None
        self.conn_file = namespace.state_dir / f"kernel-{kernel_id}.json"
        self._socket_fds: list[int] = []
        self._ipc_prefix = ""

    def alive(self) -> bool:
        # stop() drops the client before the process is reaped: a kernel being stopped is dead.
        return self.client is not None and super().alive()

    def _live_client(self) -> AsyncKernelClient:
        if self.client is None:
            raise KernelDied("python kernel was stopped")
        return self.client

    async def start(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        # A sandbox with its own network namespace has its own loopback: the kernel listens
        # on Unix sockets in a directory both sides see (the namespace's ``ipc_dir``); the
        # Docker agent's container has no such directory and keeps TCP on its loopback.
        ipc_dir: Path | None = getattr(self.namespace, "ipc_dir", None)
        self._ipc_prefix = "k" + secrets.token_hex(8)  # fresh per start: a restart's old sockets linger
        # Fresh per start too: a kernel being stopped (same context) unlinks its own file.
        self.conn_file = self.namespace.state_dir / f"kernel-{self.kernel_id}-{self._ipc_prefix}.json"
        key = secrets.token_hex(16).encode()
        if ipc_dir is None:
            write_connection_file(
                str(self.conn_file), ip="127.0.0.1", transport="tcp", key=key, kernel_name="python3"
            )
        else:
            write_connection_file(
                str(self.conn_file),
                ip=f"{self.namespace.ipc_mount}/{self._ipc_prefix}",
                transport="ipc",
                key=key,
                kernel_name="python3",
                **{f"{channel}_port": port for channel, port in _IPC_PORTS.items()},
            )
            owner = getattr(self.namespace, "host_uid", None)
            if owner is not None:  # the kernel runs as the sandbox's uid and must read it
                os.chown(self.conn_file, owner, owner)
        argv = [
            # The sandbox runtime's python (local host); in the Docker image the agent's own,
            # which is the image's runtime.
            getattr(self.namespace, "python", sys.executable),
            "-m",
            "ipykernel_launcher",
            "-f",
            f"{STATE_MOUNT}/{self.conn_file.name}",
            # E2B's chart, data and JSON representations (local/sandbox_runtime/e2b_display.py).
            "--IPKernelApp.extensions=e2b_display",
            # As E2B's template configures its kernel: tracebacks without ANSI colour codes, and
            # long sequences printed whole rather than elided with "...".
            "--InteractiveShell.colors=NoColor",
            "--PlainTextFormatter.max_seq_length=0",
            # History in memory: a kernel restarted within the same second as the last one found
            # its session number taken in the shared sqlite file and printed an ERROR into the
            # next cell's stdout.
            "--HistoryManager.hist_file=:memory:",
        ]
        self.proc = await self.namespace.spawn(argv, cwd=self.cwd, env=self.env)
        self._drains = [
            asyncio.create_task(_drain(self.proc.proc.stdout, f"kernel {self.kernel_id} stdout")),
            asyncio.create_task(_drain(self.proc.proc.stderr, f"kernel {self.kernel_id} stderr")),
        ]
        client = _KernelClient()
        client.load_connection_file(str(self.conn_file))
        if ipc_dir is not None:
            client.e2b_urls = await self._ipc_urls(ipc_dir, deadline)
        client.start_channels(hb=False)
        self.client = client
        while True:
            # Ready = a kernel_info reply on shell AND its status on iopub: a ZMQ SUB socket
            # misses what is published before it has joined, including a cell's final "idle".
            if not self.alive():
                raise KernelDied(f"python kernel exited during start-up ({self.exit_description()})")
            if time.monotonic() > deadline:
                raise KernelDied("python kernel did not become ready in time")
            msg_id = client.kernel_info()
            try:
                await self._shell_reply(msg_id, timeout=1.0)
            except TimeoutError:
                continue
            if await self._iopub_saw(msg_id, timeout=0.5):
                break
        await self._drain_iopub()

    async def _iopub_saw(self, msg_id: str, timeout: float) -> bool:
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = await self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    async def _drain_iopub(self) -> None:
        assert self.client is not None
        while True:
            try:
                await self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                return

    async def _shell_reply(self, msg_id: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                msg = await self._live_client().get_shell_msg(timeout=min(left, 0.5))
            except queue.Empty:
                if not self.alive():
                    raise KernelDied(f"python kernel died ({self.exit_description()})") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    async def _silent(self, code: str) -> None:
        msg_id = self._live_client().execute(code, silent=True, store_history=False, allow_stdin=False)
        await self._shell_reply(msg_id, timeout=30.0)

    async def execute(self, code: str, env_vars: dict[str, str], sink: OutputSink) -> None:
        self._live_client()
        if env_vars:
            keys = list(env_vars)
            await self._silent(
                "import os as _e2b_os\n"
                f"_e2b_saved_env = {{k: _e2b_os.environ.get(k) for k in {keys!r}}}\n"
                f"_e2b_os.environ.update({dict(env_vars)!r})\n"
            )
        try:
            msg_id = self._live_client().execute(code, silent=False, store_history=True, allow_stdin=False)
            await self._collect(msg_id, sink)
        finally:
            if env_vars and self.alive():
                await self._silent(
                    "for _k, _v in _e2b_saved_env.items():\n"
                    "    if _v is None:\n"
                    "        _e2b_os.environ.pop(_k, None)\n"
                    "    else:\n"
                    "        _e2b_os.environ[_k] = _v\n"
                    "del _e2b_saved_env, _k, _v\n"
                )

    async def _collect(self, msg_id: str, sink: OutputSink) -> None:
        replied_at: float | None = None
        while True:
            try:
                msg = await self._live_client().get_iopub_msg(timeout=0.5)
            except queue.Empty:
                if not self.alive():
                    raise KernelDied(f"python kernel died ({self.exit_description()})") from None
                # Safety net: the reply arrived on shell but "idle" never reached iopub.
                if replied_at is None and await self._has_reply(msg_id):
                    replied_at = time.monotonic()
                if replied_at is not None and time.monotonic() - replied_at > 2.0:
                    logger.warning(
                        "kernel %s: no idle status after the reply; ending the cell", self.kernel_id
                    )
                    return
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                sink.stream(
                    "stderr" if content.get("name") == "stderr" else "stdout", content.get("text", "")
                )
            elif kind == "execute_input":
                sink.execution_count(content.get("execution_count", 0))
            elif kind == "execute_result":
                sink.result(content.get("data", {}), True)
            elif kind == "display_data":
                sink.result(content.get("data", {}), False)
            elif kind == "error":
                sink.error(
                    content.get("ename", ""),
                    content.get("evalue", ""),
                    "\n".join(content.get("traceback", [])),
                )
            elif kind == "status" and content.get("execution_state") == "idle":
                return

    async def _has_reply(self, msg_id: str) -> bool:
        while True:
            try:
                msg = await self._live_client().get_shell_msg(timeout=0)
            except queue.Empty:
                return False
            if msg["parent_header"].get("msg_id") == msg_id:
                return True

    async def stop(self) -> None:
        if self.client is not None:
            try:
                self.client.stop_channels()
            except Exception:
                logger.debug("stop_channels failed", exc_info=True)
            self.client = None
        await super().stop()
        self.conn_file.unlink(missing_ok=True)
        for fd in self._socket_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._socket_fds.clear()
        ipc_dir: Path | None = getattr(self.namespace, "ipc_dir", None)
        if ipc_dir is not None and self._ipc_prefix:
            with contextlib.suppress(OSError):
                dir_fd = os.open(ipc_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    for port in _IPC_PORTS.values():
                        with contextlib.suppress(OSError):  # unlink never follows a link
                            os.unlink(f"{self._ipc_prefix}-{port}", dir_fd=dir_fd)
                finally:
                    os.close(dir_fd)

    async def _ipc_urls(self, ipc_dir: Path, deadline: float) -> dict[str, str]:
        """Wait for the kernel's sockets and connect to them through descriptors.

        The directory is the sandbox's to write: a socket could be swapped for a link to one
        of the host's (the Docker socket...). So each one is opened ``O_PATH|O_NOFOLLOW``,
        checked to be a socket of the sandbox's uid, and connected to as
        ``/proc/self/fd/N``, which names that very inode, also on ZMQ's reconnects."""
        dir_fd = os.open(ipc_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            urls: dict[str, str] = {}
            for channel, port in _IPC_PORTS.items():
                name = f"{self._ipc_prefix}-{port}"
                while True:
                    if self.proc is None or not self.proc.alive():
                        raise KernelDied(f"python kernel exited during start-up ({self.exit_description()})")
                    if time.monotonic() > deadline:
                        raise KernelDied("python kernel did not become ready in time")
                    try:
                        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                    except FileNotFoundError:
                        await asyncio.sleep(0.02)
                        continue
                    self._socket_fds.append(fd)
                    st = os.fstat(fd)
                    owner = getattr(self.namespace, "host_uid", st.st_uid)
                    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != owner:
                        raise KernelDied(f"the kernel's {channel} socket was replaced")
                    urls[channel] = f"ipc:///proc/self/fd/{fd}"
                    break
            return urls
        finally:
            os.close(dir_fd)


class MarkerKernel(Kernel):
    """A persistent subprocess whose cells end with a marker on stdout and stderr plus a
    JSON ``done`` line on a control pipe, so all of a cell's output is known to have arrived."""

    start_timeout = 30.0

    def __init__(self, namespace: SandboxNamespace, *, cwd: str, env: dict[str, str], kernel_id: str) -> None:
        super().__init__(namespace, cwd=cwd, env=env, kernel_id=kernel_id)
        self.nonce = secrets.token_hex(8)
        self.mark_prefix = b"\x1e\x1f" + self.nonce.encode() + b":"
        self.count = 0
        self.seq = 0
        self._sink: OutputSink | None = None
        self._seen: dict[str, int] = {"stdout": 0, "stderr": 0, "done": 0}
        self._done: dict[str, Any] = {}
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._dead = asyncio.Event()

    def argv(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> None:
        read_fd, write_fd = os.pipe()
        env = dict(self.env, E2B_CTRL_FD=str(write_fd), E2B_MARK=self.nonce)
        try:
            self.proc = await self.namespace.spawn(
                self.argv(), cwd=self.cwd, env=env, pass_fds=(write_fd,), stdin=asyncio.subprocess.PIPE
            )
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        ctrl = asyncio.StreamReader(limit=1 << 26)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(ctrl), os.fdopen(read_fd, "rb", 0))
        self._drains = [
            asyncio.create_task(self._pump(self.proc.proc.stdout, "stdout")),
            asyncio.create_task(self._pump(self.proc.proc.stderr, "stderr")),
            asyncio.create_task(self._pump_ctrl(ctrl)),
            asyncio.create_task(self._watch_exit()),
        ]
        await self._after_start()
        try:
            await asyncio.wait_for(self._wait(self._ready.is_set), self.start_timeout)
        except TimeoutError:
            raise KernelDied(f"{self.language} runner did not become ready in time") from None

    async def _after_start(self) -> None:
        pass

    async def _watch_exit(self) -> None:
        assert self.proc is not None
        await self.proc.proc.wait()
        self._dead.set()
        self._changed.set()

    async def _wait(self, predicate: Any) -> None:
        while not predicate():
            if self._dead.is_set():
                raise KernelDied(f"{self.language} runner exited ({self.exit_description()})")
            self._changed.clear()
            await self._changed.wait()

    def _emit(self, name: str, text: str) -> None:
        if text and self._sink is not None:
            self._sink.stream(name, text)

    async def _pump(self, stream: asyncio.StreamReader | None, name: str) -> None:
        assert stream is not None
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        prefix = self.mark_prefix
        buf = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                self._emit(name, decoder.decode(buf, final=True))
                return
            buf += chunk
            while True:
                i = buf.find(prefix)
                if i < 0:
                    keep = 0
                    for k in range(min(len(prefix) - 1, len(buf)), 0, -1):
                        if prefix.startswith(buf[-k:]):
                            keep = k
                            break
                    self._emit(name, decoder.decode(buf[: len(buf) - keep]))
                    buf = buf[len(buf) - keep :]
                    break
                end = buf.find(b"\x1e", i + len(prefix))
                if end < 0:
                    self._emit(name, decoder.decode(buf[:i]))
                    buf = buf[i:]
                    break
                self._emit(name, decoder.decode(buf[:i]))
                with contextlib.suppress(ValueError):
                    self._seen[name] = int(buf[i + len(prefix) : end])
                buf = buf[end + 1 :]
                self._changed.set()

    async def _pump_ctrl(self, ctrl: asyncio.StreamReader) -> None:
        while True:
            line = await ctrl.readline()
            if not line:
                return
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.get("type")
            if kind == "ready":
                self._ready.set()
            elif msg.get("seq") != self.seq or self._sink is None:
                continue
            elif kind == "result":
                self._sink.result({"text/plain": msg.get("text", "")}, True)
            elif kind == "error":
                self._sink.error(
                    str(msg.get("name", "")), str(msg.get("value", "")), str(msg.get("traceback", ""))
                )
            elif kind == "done":
                self._done = msg
                self._seen["done"] = msg["seq"]
            self._changed.set()

    async def _send(self, seq: int, code: str, env_vars: dict[str, str]) -> None:
        raise NotImplementedError

    async def execute(self, code: str, env_vars: dict[str, str], sink: OutputSink) -> None:
        self.seq += 1
        seq = self.seq
        self.count += 1
        self._sink = sink
        self._done = {}
        sink.execution_count(self.count)
        try:
            await self._send(seq, code, env_vars)
            await self._wait(lambda: all(v >= seq for v in self._seen.values()))
            self._on_done(self._done, sink)
        finally:
            self._sink = None

    def _on_done(self, done: dict[str, Any], sink: OutputSink) -> None:
        pass

    def _write(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.proc.stdin is not None
        if not self.alive():
            raise KernelDied(f"{self.language} runner exited ({self.exit_description()})")
        self.proc.proc.stdin.write(data)


class NodeKernel(MarkerKernel):
    """One long-lived node process; every cell runs in the same ``vm`` context (ES-module
    imports and top-level await rewritten for it, see js_runner.js)."""

    language = "javascript"

    def argv(self) -> list[str]:
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            raise KernelDied("node is not installed on the host (Debian package: nodejs)")
        for script in ("sync_stdio.js", "js_runner.js"):
            copy = self.namespace.state_dir / script
            if not copy.exists():
                shutil.copyfile(Path(__file__).with_name(script), copy)
        # sync_stdio.js: node queues pipe writes in memory while a cell never yields, so a flood
        # would be killed unseen; written synchronously, it is counted and capped like any other.
        script = f"{STATE_MOUNT}/js_runner.js"
        return [node, "--require", f"{STATE_MOUNT}/sync_stdio.js", script, self.language]

    async def _send(self, seq: int, code: str, env_vars: dict[str, str]) -> None:
        self._write((json.dumps({"seq": seq, "code": code, "env": env_vars}) + "\n").encode())


class TypeScriptKernel(NodeKernel):
    """The node runner with each cell transpiled by TypeScript's compiler (types unchecked, as
    in E2B's kernel); needs Debian's node-typescript."""

    language = "typescript"


_BASH_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


class BashKernel(MarkerKernel):
    """One long-lived non-interactive bash; each cell is ``source``d so variables, functions
    and the working directory persist. Like bash_kernel, a non-zero exit status of the cell is
    reported as an error with an empty name and the status as its value."""

    language = "bash"

    def argv(self) -> list[str]:
        return ["/bin/bash", "--noprofile", "--norc"]

    async def _after_start(self) -> None:
        # SIGINT returns from the sourced cell instead of killing the shell.
        self._write(b'trap \'return 130 2>/dev/null\' INT\nprintf \'{"type":"ready"}\\n\' >&"$E2B_CTRL_FD"\n')

    async def _send(self, seq: int, code: str, env_vars: dict[str, str]) -> None:
        cell = self.namespace.state_dir / f"cell-{self.kernel_id}.sh"
        cell.write_text(code + "\n")
        apply, restore = [], []
        for key, value in env_vars.items():
            if not _BASH_NAME.match(key):
                continue
            saved = f'__e2b_had_{key}="${{{key}+1}}"; __e2b_old_{key}="${{{key}-}}";'
            apply.append(f"{saved} export {key}={_sh_quote(value)};")
            restore.append(
                f'if [ -n "$__e2b_had_{key}" ]; then export {key}="$__e2b_old_{key}"; else unset {key}; fi; '
                f"unset __e2b_had_{key} __e2b_old_{key};"
            )
        marker = f"\\036\\037{self.nonce}:{seq}\\036"
        line = (
            " ".join(apply)
            + f" source {STATE_MOUNT}/{cell.name} </dev/null; __e2b_rc=$?; "
            + " ".join(restore)
            + f" printf '{marker}'; printf '{marker}' >&2;"
            + f' printf \'{{"type":"done","seq":{seq},"rc":%d}}\\n\' "$__e2b_rc" >&"$E2B_CTRL_FD"\n'
        )
        self._write(line.encode())

    def _on_done(self, done: dict[str, Any], sink: OutputSink) -> None:
        rc = int(done.get("rc", 0))
        if rc:
            sink.error("", str(rc), "")


KERNEL_CLASSES: dict[str, type[Kernel]] = {
    "python": PythonKernel,
    "javascript": NodeKernel,
    "typescript": TypeScriptKernel,
    "bash": BashKernel,
}


def normalize_language(value: object) -> str | None:
    """The kernel language a request names (None: not one we run), like E2B's
    normalize_language: case and surrounding blanks ignored, no language meaning Python."""
    if value is None or value == "":
        return "python"
    return LANGUAGE_ALIASES.get(str(value).strip().lower())


def unsupported_language_message(value: object) -> str:
    return f"language '{value}' is not supported (supported: {', '.join(KERNEL_CLASSES)})"
