"""Commands and PTYs running in a sandbox, as envd keeps them: each one's output goes to
whoever listens at the moment (the ``Start`` stream and any number of ``Connect`` streams);
output produced while nobody listens is drained and dropped, never replayed."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass, field

from .isolation import SandboxNamespace, SandboxProcess

logger = logging.getLogger(__name__)

_READ_SIZE = 65536
# Chunks a listener may have pending before the command's output waits for it (as on envd,
# a listener that does not read slows its command down rather than losing output).
_LISTENER_BACKLOG = 64


@dataclass(frozen=True)
class Exit:
    """How a command ended, as envd's ``EndEvent`` says it."""

    exit_code: int
    exited: bool
    status: str

    @classmethod
    def from_returncode(cls, rc: int) -> Exit:
        if rc >= 0:
            return cls(rc, True, f"exit status {rc}")
        name = signal.Signals(-rc).name.removeprefix("SIG").lower()
        return cls(-1, False, f"signal: {name}")


# ("stdout" | "stderr" | "pty", chunk), or the command's Exit (always last).
Event = tuple[str, bytes] | Exit


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a terminal's master: the kernel tells its foreground group (SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def open_terminal(namespace: SandboxNamespace, rows: int, cols: int) -> tuple[int, int]:
    """A pseudo-terminal (master, slave) of that size from the sandbox's own ``/dev/pts``
    (the host's, if that cannot be had); the master stays with the host."""
    try:
        master, slave = namespace.open_terminal()
    except OSError as exc:
        logger.warning("no terminal from the sandbox's /dev/pts (%s); using the host's", exc)
        master, slave = os.openpty()
    os.set_blocking(master, False)
    set_window_size(master, rows or 24, cols or 80)
    return master, slave


@dataclass
class CommandRecord:
    pid: int
    process: SandboxProcess
    cmd: str
    args: list[str]
    envs: dict[str, str]
    cwd: str
    tag: str | None
    output_limit: int
    terminal: int | None = None  # the PTY's master descriptor (host side)
    exit: Exit | None = None
    listeners: set[asyncio.Queue[Event]] = field(default_factory=set)
    _pump: asyncio.Task[None] | None = None
    _deadline: asyncio.TimerHandle | None = None
    _used: int = 0
    _killed: bool = False

    # --- listeners ---------------------------------------------------------------------

    def listen(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=_LISTENER_BACKLOG)
        self.listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[Event]) -> None:
        self.listeners.discard(queue)
        while not queue.empty():  # frees a publisher blocked on this queue
            queue.get_nowait()

    async def _publish(self, event: Event) -> None:
        for queue in list(self.listeners):
            await queue.put(event)

    # --- life ----------------------------------------------------------------------------

    def start(self, kill_after_s: float | None, on_done: Callable[[], None]) -> None:
        """Pump its output to the listeners; SIGKILL its tree ``kill_after_s`` from now
        (envd's process deadline: the ``Start`` call's ``Connect-Timeout-Ms``); call
        ``on_done`` once it has ended and its end has been told."""
        self._pump = asyncio.create_task(self._run(on_done))
        if kill_after_s is not None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(kill_after_s, self._kill_soon)

    def _kill_soon(self) -> None:
        if self.exit is None:
            logger.info("command %s reached its deadline; killing it", self.pid)
            task = asyncio.ensure_future(self.kill())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def kill(self) -> None:
        """SIGKILL its whole tree. Its end then reads "signal: killed" whichever process of the
        tree died first (a wrapper that outlives its child by a moment would exit 1)."""
        self._killed = True
        await self.process.kill()

    async def finished(self) -> None:
        if self._pump is not None:
            await asyncio.shield(self._pump)

    async def _run(self, on_done: Callable[[], None]) -> None:
        try:
            if self.terminal is not None:
                await self._pump_terminal(self.terminal)
            else:
                await asyncio.gather(
                    self._pump_pipe(self.process.proc.stdout, "stdout"),
                    self._pump_pipe(self.process.proc.stderr, "stderr"),
                )
            rc = await self.process.proc.wait()
            self.exit = Exit.from_returncode(-signal.SIGKILL if self._killed and rc else rc)
            await self._publish(self.exit)
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            if self.terminal is not None:
                with contextlib.suppress(OSError):
                    os.close(self.terminal)
                self.terminal = None
            self.process.release()
            on_done()

    async def _output(self, name: str, chunk: bytes) -> None:
        if name != "pty":  # a terminal is interactive: no total cap, only back-pressure
            if self._used >= self.output_limit:
                return
            chunk = chunk[: self.output_limit - self._used]
            self._used += len(chunk)
        await self._publish((name, chunk))
        if name != "pty" and self._used >= self.output_limit:
            note = f"\n[e2b_host: output truncated after {self._used} bytes]\n".encode()
            await self._publish(("stderr", note))

    async def _pump_pipe(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_READ_SIZE):
            await self._output(name, chunk)

    async def _pump_terminal(self, master: int) -> None:
        """Read the master until the terminal closes (EIO) or, once the process has exited,
        nothing more is pending (a background job may keep the terminal open)."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        exited = asyncio.ensure_future(self.process.proc.wait())
        try:
            while True:
                readable.clear()  # before reading: a wake-up in between is not lost
                try:
                    chunk = os.read(master, _READ_SIZE)
                except BlockingIOError:
                    chunk = b""
                except OSError as exc:
                    if exc.errno == errno.EIO:  # every slave descriptor is closed
                        return
                    raise
                if chunk:
                    await self._output("pty", chunk)
                    continue
                if exited.done():
                    return
                woken = asyncio.ensure_future(readable.wait())
                await asyncio.wait({exited, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            loop.remove_reader(master)
            if not exited.done():
                exited.cancel()

    # --- input ---------------------------------------------------------------------------

    async def write_terminal(self, data: bytes) -> None:
        """Type ``data`` into the PTY (waiting while its input buffer is full)."""
        view = memoryview(data)
        while view:
            if self.terminal is None:
                raise ProcessLookupError("the terminal is closed")
            try:
                written = os.write(self.terminal, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            view = view[written:]

    def resize(self, rows: int, cols: int) -> None:
        if self.terminal is None:
            raise ProcessLookupError("the terminal is closed")
        set_window_size(self.terminal, rows, cols)
