"""The envd side of a sandbox (port 49983): ``/health``, ``/files`` and the Connect RPC
services ``filesystem.Filesystem`` and ``process.Process`` (served by ``connectrpc``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import gzip
import hashlib
import hmac
import logging
import os
import posixpath
import re
import signal
import stat
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.filesystem import filesystem_pb
from e2b.envd.filesystem.filesystem_connect import Filesystem, FilesystemASGIApplication
from e2b.envd.process import process_pb
from e2b.envd.process.process_connect import Process, ProcessASGIApplication
from protobuf import Oneof
from protobuf.wkt import Timestamp

from .asgi import BodyTooLarge, ClientGone, Request, Send, send_bytes, send_empty, send_error, send_json
from .paths import Entry, PathInvalid, PathRefused, validate_metadata
from .processes import CommandRecord, Event, Exit, open_terminal
from .sandbox import HostError, Sandbox, SandboxRegistry
from .watch import CHMOD, CREATE, REMOVE, RENAME, WRITE, WatchLimit, WatchManager

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


# --- users ---------------------------------------------------------------------------------


def username_from(headers: Any, query_user: str | None = None) -> str:
    """``Authorization: Basic base64("root:")`` -> "root"; default "user"."""
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip()).decode()
            name = decoded.split(":", 1)[0]
            if name:
                return name
        except (ValueError, UnicodeDecodeError):
            pass
    return query_user or "user"


def home_of(user: str) -> str:
    return "/root" if user == "root" else "/home/user"


# --- entries -------------------------------------------------------------------------------


def _owner(sandbox: Sandbox, uid: int) -> str:
    if uid == sandbox.fs.uid:
        return "user"
    return "root" if uid == 0 else str(uid)


def entry_info(sandbox: Sandbox, entry: Entry) -> filesystem_pb.EntryInfo:
    ftype = {
        "dir": filesystem_pb.FileType.DIRECTORY,
        "file": filesystem_pb.FileType.FILE,
        "symlink": filesystem_pb.FileType.SYMLINK,
    }[entry.kind]
    info = filesystem_pb.EntryInfo(
        name=entry.name,
        type=ftype,
        path=entry.path,
        size=entry.size,
        mode=entry.mode & 0o777,  # envd reports Go's FileMode.Perm()
        permissions=entry.permissions or stat.filemode(entry.mode),
        owner=_owner(sandbox, entry.uid),
        group=_owner(sandbox, entry.gid),
        modified_time=Timestamp.from_datetime(datetime.fromtimestamp(entry.mtime, tz=UTC)),
        is_symlink=entry.is_symlink,
        metadata=dict(entry.metadata),
    )
    if entry.symlink_target is not None:
        info.symlink_target = entry.symlink_target
    return info


# Every file operation runs in a thread with a budget: nothing of a sandbox's can block the
# event loop that serves every other sandbox.
FS_BUDGET_S = 15.0
_T = TypeVar("_T")


async def _fs(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    try:
        return await asyncio.wait_for(asyncio.to_thread(func, *args, **kwargs), FS_BUDGET_S)
    except TimeoutError:
        raise HostError(504, "the file operation did not finish in time") from None


def _http_error(exc: BaseException) -> tuple[int, str]:
    """(status, message) of a file-operation failure; messages name sandbox paths only."""
    if isinstance(exc, HostError):
        return exc.status, exc.message
    if isinstance(exc, PathRefused):
        return 403, str(exc)
    if isinstance(exc, PathInvalid):
        return 400, str(exc)
    if isinstance(exc, FileNotFoundError):
        return 404, f"path {_named(exc)}does not exist"
    if isinstance(exc, IsADirectoryError):
        return 400, f"path {_named(exc)}is a directory"
    if isinstance(exc, NotADirectoryError):
        return 400, "a parent of the path is not a directory"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return 400, "no space left on the sandbox's disk"
    if isinstance(exc, OSError):
        return 400, f"file operation failed: {exc.strerror or 'error'}"
    raise exc


def _named(exc: OSError) -> str:
    """The sandbox path of an error we raised ourselves (never a host path from the OS)."""
    if exc.errno is None and exc.args and isinstance(exc.args[0], str):
        return f"'{exc.args[0]}' "
    return ""


_CONNECT_CODES = {
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    409: Code.ALREADY_EXISTS,
    504: Code.DEADLINE_EXCEEDED,
}


def _connect_error(exc: BaseException) -> ConnectError:
    status, message = _http_error(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ConnectError(Code.RESOURCE_EXHAUSTED, message)
    return ConnectError(_CONNECT_CODES.get(status, Code.INVALID_ARGUMENT), message)


_FS_ERRORS = (HostError, PathRefused, PathInvalid, OSError)


# --- HTTP: /files --------------------------------------------------------------------------


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str | None, bytes]]:
    match = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type)
    if not match:
        raise HostError(400, "multipart body without boundary")
    delimiter = b"--" + (match.group(1) or match.group(2)).encode()
    parts: list[tuple[str, str | None, bytes]] = []
    for raw in body.split(b"\r\n" + delimiter):
        part = raw.removeprefix(delimiter)
        if part.startswith(b"--"):
            break
        head, sep, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = head.decode("utf-8", "replace")
        disposition = next(
            (line for line in headers.split("\r\n") if line.lower().startswith("content-disposition")), ""
        )
        name = re.search(r'\bname="((?:[^"\\]|\\.)*)"', disposition)
        filename = re.search(r'\bfilename="((?:[^"\\]|\\.)*)"', disposition) or re.search(
            r"\bfilename=([^;]+)", disposition
        )
        fname = None
        if filename:
            fname = filename.group(1).replace('\\"', '"').replace("%22", '"').replace("\\\\", "\\")
        parts.append((name.group(1) if name else "", fname, data))
    return parts


async def _write_file(
    sandbox: Sandbox, path: str, data: bytes, user: str, metadata: dict[str, str]
) -> dict[str, Any]:
    vpath = await _fs(sandbox.fs.write_file, posixpath.join(home_of(user), path), data, metadata)
    written: dict[str, Any] = {"name": posixpath.basename(vpath), "type": "file", "path": vpath}
    if metadata:
        written["metadata"] = metadata
    return written


def metadata_from(headers: dict[str, str]) -> dict[str, str]:
    """``X-Metadata-<key>: value`` headers -> {key: value}; keys arrive lowercased, as envd
    stores them."""
    metadata = {
        k.removeprefix(_METADATA_HEADER): v for k, v in headers.items() if k.startswith(_METADATA_HEADER)
    }
    validate_metadata(metadata)
    return metadata


_METADATA_HEADER = "x-metadata-"


# --- access: X-Access-Token and signed URLs ------------------------------------------------


def file_signature(path: str, operation: str, user: str, token: str, expiration: str | None) -> str:
    """envd's v1 signature of a /files URL: sha256 over path:operation:user:token[:expiry]."""
    parts = [path, operation, user, token] + ([expiration] if expiration is not None else [])
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return "v1_" + base64.b64encode(digest).decode().rstrip("=")


def signature_matches(sandbox: Sandbox, request: Request) -> bool:
    """Whether the request's ``signature`` was made with this sandbox's access token."""
    signature = request.query_one("signature")
    if not signature:
        return False
    operation = "read" if request.method == "GET" else "write"
    expected = file_signature(
        request.query_one("path") or "",
        operation,
        request.query_one("username") or "",
        sandbox.envd_access_token,
        request.query_one("signature_expiration"),
    )
    return hmac.compare_digest(expected, signature)


def check_files_access(sandbox: Sandbox, request: Request) -> None:
    """envd's rule for /files: the access token in ``X-Access-Token``, or else a valid,
    unexpired signature (401 otherwise)."""
    token = request.headers.get("x-access-token")
    if token:
        if not hmac.compare_digest(token, sandbox.envd_access_token):
            raise HostError(401, "access token present in header but does not match")
        return
    if not request.query_one("signature"):
        raise HostError(401, "missing signature query parameter")
    if not signature_matches(sandbox, request):
        raise HostError(401, "invalid signature")
    expiration = request.query_one("signature_expiration")
    if expiration is not None:
        try:
            expired = int(expiration) < time.time()
        except ValueError:
            raise HostError(401, "invalid signature expiration") from None
        if expired:
            raise HostError(401, "signature is already expired")


def has_access_token(sandbox: Sandbox, headers: dict[str, str]) -> bool:
    return hmac.compare_digest(headers.get("x-access-token", ""), sandbox.envd_access_token)


async def _send_file(sandbox: Sandbox, path: str, user: str, send: Send) -> None:
    _vpath, fd, size = await _fs(sandbox.fs.open_regular, posixpath.join(home_of(user), path))
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(size).encode()),
                ],
            }
        )
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(os.read, fd, min(_CHUNK, left))
            if not chunk:
                raise ClientGone  # the file shrank under us: end the response short
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        if size == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        os.close(fd)


async def handle_files(sandbox: Sandbox, request: Request, send: Send) -> None:
    user = username_from(request.headers, request.query_one("username"))
    path = request.query_one("path")
    try:
        check_files_access(sandbox, request)
        if request.method == "GET":
            if not path:
                raise HostError(400, "'path' query parameter is required")
            await _send_file(sandbox, path, user, send)
            return
        if request.method != "POST":
            raise HostError(405, f"method {request.method} not allowed")
        metadata = metadata_from(request.headers)
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        written: list[dict[str, Any]] = []
        if ctype.lower().startswith("multipart/form-data"):
            parts = [p for p in parse_multipart(body, ctype) if p[0] == "file"]
            if not parts:
                raise HostError(400, "multipart body has no 'file' part")
            for _name, filename, data in parts:
                target = path or filename
                if not target:
                    raise HostError(400, "no 'path' parameter and no filename in the multipart part")
                written.append(await _write_file(sandbox, target, data, user, metadata))
                if path:
                    break
        else:
            if not path:
                raise HostError(400, "'path' query parameter is required")
            if request.headers.get("content-encoding", "").lower() == "gzip":
                try:
                    body = gzip.decompress(body)
                except (OSError, EOFError) as exc:
                    raise HostError(400, f"invalid gzip body: {exc}") from None
            written.append(await _write_file(sandbox, path, body, user, metadata))
        await send_json(send, 200, written)
    except BodyTooLarge:
        await send_error(send, 413, "upload too large")
    except _FS_ERRORS as exc:
        status, message = _http_error(exc)
        await send_error(send, status, message)


# --- Connect: filesystem.Filesystem --------------------------------------------------------


def _sandbox_for(registry: SandboxRegistry, ctx: Any) -> Sandbox:
    headers = ctx.request_headers
    sandbox_id = headers.get("e2b-sandbox-id") or ""
    try:
        return registry.get(sandbox_id)
    except HostError:
        raise ConnectError(Code.UNAVAILABLE, f"sandbox {sandbox_id} was not found") from None


def _path(path: str, ctx: Any) -> str:
    return posixpath.join(home_of(username_from(ctx.request_headers)), path)


_EVENT_TYPES = {
    CREATE: filesystem_pb.EventType.CREATE,
    WRITE: filesystem_pb.EventType.WRITE,
    REMOVE: filesystem_pb.EventType.REMOVE,
    RENAME: filesystem_pb.EventType.RENAME,
    CHMOD: filesystem_pb.EventType.CHMOD,
}
# A silent stream sends a keepalive this often unless the client asks otherwise
# (``Keepalive-Ping-Interval``, seconds, as envd reads it).
KEEPALIVE_S = 20.0


def _keepalive_s(ctx: Any) -> float:
    try:
        return min(max(float(ctx.request_headers.get("keepalive-ping-interval") or KEEPALIVE_S), 1.0), 3600.0)
    except ValueError:
        return KEEPALIVE_S


def _watch_event(
    sandbox: Sandbox, root: str, name: str, kind: str, with_entry: bool
) -> filesystem_pb.FilesystemEvent:
    """Blocking (stats the entry when asked): call it in a thread."""
    event = filesystem_pb.FilesystemEvent(name=name, type=_EVENT_TYPES[kind])
    if with_entry:
        with contextlib.suppress(*_FS_ERRORS):  # removed or renamed away: no entry, as envd
            event.entry = entry_info(sandbox, sandbox.fs.stat(posixpath.normpath(posixpath.join(root, name))))
    return event


class FilesystemService(Filesystem):
    def __init__(self, registry: SandboxRegistry) -> None:
        self.registry = registry
        self.watches = WatchManager(self._sandbox_alive)

    def _sandbox_alive(self, sandbox_id: str) -> bool:
        sandbox = self.registry.sandboxes.get(sandbox_id)
        return sandbox is not None and not sandbox.gone()

    async def stat(self, request: filesystem_pb.StatRequest, ctx: Any) -> filesystem_pb.StatResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        try:
            entry = await _fs(sandbox.fs.stat, _path(request.path, ctx))
        except _FS_ERRORS as exc:
            raise _connect_error(exc) from None
        return filesystem_pb.StatResponse(entry=entry_info(sandbox, entry))

    async def list_dir(
        self, request: filesystem_pb.ListDirRequest, ctx: Any
    ) -> filesystem_pb.ListDirResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        depth = max(int(request.depth or 1), 1)
        try:
            _vpath, entries = await _fs(sandbox.fs.list_dir, _path(request.path, ctx), depth)
        except NotADirectoryError:
            raise ConnectError(Code.INVALID_ARGUMENT, "the path is not a directory") from None
        except _FS_ERRORS as exc:
            raise _connect_error(exc) from None
        return filesystem_pb.ListDirResponse(entries=[entry_info(sandbox, e) for e in entries])

    async def make_dir(
        self, request: filesystem_pb.MakeDirRequest, ctx: Any
    ) -> filesystem_pb.MakeDirResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        try:
            vpath, _created = await _fs(sandbox.fs.make_dir, _path(request.path, ctx))
            entry = await _fs(sandbox.fs.stat, vpath)
        except FileExistsError as exc:
            raise ConnectError(Code.ALREADY_EXISTS, f"directory '{exc.args[0]}' already exists") from None
        except _FS_ERRORS as exc:
            raise _connect_error(exc) from None
        return filesystem_pb.MakeDirResponse(entry=entry_info(sandbox, entry))

    # --- watchers: unary for the sync SDK, a server stream (WatchDir) for the async one ---

    async def _new_watcher(self, sandbox: Sandbox, request: Any, ctx: Any) -> Any:
        self.watches.start()
        self.watches.sweep()
        try:
            root, dir_fd = await _fs(sandbox.fs.open_dir, _path(request.path, ctx))
            return await _fs(
                self.watches.create,
                sandbox.sandbox_id,
                root,
                dir_fd,
                recursive=bool(request.recursive),
                include_entry=bool(request.include_entry),
            )
        except NotADirectoryError:
            raise ConnectError(Code.INVALID_ARGUMENT, "the path is not a directory") from None
        except WatchLimit as exc:
            raise ConnectError(Code.RESOURCE_EXHAUSTED, str(exc)) from None
        except _FS_ERRORS as exc:
            raise _connect_error(exc) from None

    def _watcher_of(self, sandbox: Sandbox, watcher_id: str) -> Any:
        watcher = self.watches.watchers.get(watcher_id)
        if watcher is None or watcher.sandbox_id != sandbox.sandbox_id:
            raise ConnectError(Code.NOT_FOUND, f"watcher with id {watcher_id} not found")
        return watcher

    async def create_watcher(
        self, request: filesystem_pb.CreateWatcherRequest, ctx: Any
    ) -> filesystem_pb.CreateWatcherResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        watcher = await self._new_watcher(sandbox, request, ctx)
        return filesystem_pb.CreateWatcherResponse(watcher_id=watcher.watcher_id)

    async def get_watcher_events(
        self, request: filesystem_pb.GetWatcherEventsRequest, ctx: Any
    ) -> filesystem_pb.GetWatcherEventsResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        watcher = self._watcher_of(sandbox, request.watcher_id)
        taken = watcher.take()

        def build() -> list[filesystem_pb.FilesystemEvent]:
            return [_watch_event(sandbox, watcher.root, n, k, watcher.include_entry) for n, k in taken]

        events = await _fs(build) if watcher.include_entry else build()
        return filesystem_pb.GetWatcherEventsResponse(events=events)

    async def remove_watcher(
        self, request: filesystem_pb.RemoveWatcherRequest, ctx: Any
    ) -> filesystem_pb.RemoveWatcherResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        self._watcher_of(sandbox, request.watcher_id)
        self.watches.close(request.watcher_id)
        return filesystem_pb.RemoveWatcherResponse()

    async def watch_dir(
        self, request: filesystem_pb.WatchDirRequest, ctx: Any
    ) -> AsyncIterator[filesystem_pb.WatchDirResponse]:
        sandbox = _sandbox_for(self.registry, ctx)
        watcher = await self._new_watcher(sandbox, request, ctx)
        try:
            yield filesystem_pb.WatchDirResponse(
                event=Oneof("start", filesystem_pb.WatchDirResponse.StartEvent())
            )
            while not watcher.closed:
                try:
                    await asyncio.wait_for(watcher.wakeup.wait(), timeout=_keepalive_s(ctx))
                except TimeoutError:
                    keepalive: Any = Oneof("keepalive", filesystem_pb.WatchDirResponse.KeepAlive())
                    yield filesystem_pb.WatchDirResponse(event=keepalive)
                    continue
                taken = watcher.take()
                for name, kind in taken:
                    if watcher.include_entry:
                        event = await _fs(_watch_event, sandbox, watcher.root, name, kind, True)
                    else:
                        event = _watch_event(sandbox, watcher.root, name, kind, False)
                    yield filesystem_pb.WatchDirResponse(event=Oneof("filesystem", event))
                if not taken and not watcher.wds:
                    break  # the watched directory is gone
            if sandbox.gone():
                raise ConnectError(Code.UNAVAILABLE, f"sandbox {sandbox.sandbox_id} was not found")
        finally:
            self.watches.close(watcher.watcher_id)

    async def remove(self, request: filesystem_pb.RemoveRequest, ctx: Any) -> filesystem_pb.RemoveResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        try:
            await _fs(sandbox.fs.remove, _path(request.path, ctx))
        except _FS_ERRORS as exc:
            raise _connect_error(exc) from None
        return filesystem_pb.RemoveResponse()

    async def move(self, request: filesystem_pb.MoveRequest, ctx: Any) -> filesystem_pb.MoveResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        try:
            dst = await _fs(sandbox.fs.move, _path(request.source, ctx), _path(request.destination, ctx))
            entry = await _fs(sandbox.fs.stat, dst)
        except _FS_ERRORS as exc:
            raise _connect_error(exc) from None
        return filesystem_pb.MoveResponse(entry=entry_info(sandbox, entry))


# --- Connect: process.Process --------------------------------------------------------------


def _ns_pid(host_pid: int | None) -> int | None:
    """The pid a process has inside the sandbox's PID namespace (last NSpid field)."""
    if host_pid is None:
        return None
    try:
        with open(f"/proc/{host_pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def _process_event(kind: str, value: Any) -> process_pb.ProcessEvent:
    event: Any = Oneof(kind, value)  # one of start/data/end/keepalive
    return process_pb.ProcessEvent(event=event)


def _end_event(exit: Exit) -> process_pb.ProcessEvent:
    end = process_pb.ProcessEvent.EndEvent(exit_code=exit.exit_code, exited=exit.exited, status=exit.status)
    return _process_event("end", end)


def _data_event(name: str, chunk: bytes) -> process_pb.ProcessEvent:
    output: Any = Oneof(name, chunk)  # stdout, stderr or pty
    return _process_event("data", process_pb.ProcessEvent.DataEvent(output=output))


async def _events(
    sandbox: Sandbox, record: CommandRecord, queue: asyncio.Queue[Event], ctx: Any
) -> AsyncIterator[process_pb.ProcessEvent]:
    """What ``Start`` and ``Connect`` stream: the start event, the output from now on, the
    end. Past the call's ``Connect-Timeout-Ms`` the stream ends with ``deadline_exceeded``
    (as envd's); a sandbox killed meanwhile ends it with ``unavailable``, as the connection
    to a vanished sandbox does on E2B (the SDK then probes the sandbox and finds it gone)."""
    loop = asyncio.get_running_loop()
    remaining_ms = ctx.timeout_ms
    deadline = None if remaining_ms is None else loop.time() + remaining_ms / 1000
    keepalive = _keepalive_s(ctx)
    try:
        yield _process_event("start", process_pb.ProcessEvent.StartEvent(pid=record.pid))
        while True:
            wait = keepalive if deadline is None else min(keepalive, deadline - loop.time())
            if wait <= 0:
                message = f"the stream exceeded its deadline of {remaining_ms:.0f} ms"
                raise ConnectError(Code.DEADLINE_EXCEEDED, message)
            try:
                item = await asyncio.wait_for(queue.get(), timeout=wait)
            except TimeoutError:
                if deadline is None or loop.time() < deadline:
                    yield _process_event("keepalive", process_pb.ProcessEvent.KeepAlive())
                continue
            if isinstance(item, Exit):
                if sandbox.gone():
                    raise ConnectError(
                        Code.UNAVAILABLE,
                        f"the connection to sandbox {sandbox.sandbox_id} ended before the stream completed",
                    )
                yield _end_event(item)
                return
            yield _data_event(*item)
    finally:
        record.unlisten(queue)


def _forget(sandbox: Sandbox, record: CommandRecord) -> None:
    if sandbox.processes.get(record.pid) is record:  # not a later process given the same pid
        del sandbox.processes[record.pid]


class ProcessService(Process):
    def __init__(self, registry: SandboxRegistry, output_limit: int) -> None:
        self.registry = registry
        self.output_limit = output_limit

    async def _cwd(self, sandbox: Sandbox, path: str, ctx: Any) -> str:
        """The sandbox path of a valid working directory. Paths in the writable mounts are
        checked by the files API's walk; any other (``/``, ``/usr``: read-only, but valid
        on E2B too) is checked inside the sandbox, never on the host."""
        try:
            vpath, is_dir = await _fs(sandbox.fs.is_dir, path)
        except PathRefused:
            vpath = posixpath.normpath(path)
            probe = await sandbox.namespace.spawn(["test", "-d", vpath], cwd="/", env=sandbox.process_env())
            is_dir = await probe.proc.wait() == 0
            probe.release()
        except _FS_ERRORS as exc:
            raise _connect_error(exc) from None
        if not is_dir:
            raise ConnectError(Code.INVALID_ARGUMENT, f"cwd '{vpath}' does not exist or is not a directory")
        return vpath

    async def _spawn(self, sandbox: Sandbox, request: process_pb.StartRequest, ctx: Any) -> CommandRecord:
        config = request.process
        if config is None or not config.cmd:
            raise ConnectError(Code.INVALID_ARGUMENT, "process.cmd is required")
        user = username_from(ctx.request_headers)
        cwd = await self._cwd(sandbox, _path(config.cwd or home_of(user), ctx), ctx)
        env = sandbox.process_env({"HOME": home_of(user), "USER": user, **dict(config.envs)})
        size = request.pty.size if request.pty is not None else None
        master = slave = None
        if request.pty is not None:
            master, slave = open_terminal(
                sandbox.namespace, size.rows if size else 24, size.cols if size else 80
            )
        use_stdin = request.has_field("stdin") and bool(request.stdin)
        try:
            proc = await sandbox.namespace.spawn(
                [config.cmd, *config.args],
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE if use_stdin else asyncio.subprocess.DEVNULL,
                terminal=slave,
            )
        except BaseException:
            if master is not None:
                os.close(master)
            raise
        finally:
            if slave is not None:
                os.close(slave)  # the sandbox's process holds it now; EIO on the master when it goes
        return CommandRecord(
            pid=_ns_pid(await proc.inner_pid()) or self.registry.next_pid(),
            process=proc,
            cmd=config.cmd,
            args=list(config.args),
            envs=dict(config.envs),
            cwd=cwd,
            tag=request.tag if request.has_field("tag") else None,
            output_limit=self.output_limit,
            terminal=master,
        )

    async def start(
        self, request: process_pb.StartRequest, ctx: Any
    ) -> AsyncIterator[process_pb.StartResponse]:
        sandbox = _sandbox_for(self.registry, ctx)
        record = await self._spawn(sandbox, request, ctx)
        sandbox.processes[record.pid] = record
        queue = record.listen()  # before the output starts flowing: the caller sees all of it
        remaining_ms = ctx.timeout_ms
        record.start(
            kill_after_s=None if remaining_ms is None else max(remaining_ms, 0) / 1000,
            on_done=lambda: _forget(sandbox, record),
        )
        async for event in _events(sandbox, record, queue, ctx):
            yield process_pb.StartResponse(event=event)

    async def connect(
        self, request: process_pb.ConnectRequest, ctx: Any
    ) -> AsyncIterator[process_pb.ConnectResponse]:
        sandbox = _sandbox_for(self.registry, ctx)
        record = self._record(sandbox, request.process)
        queue = record.listen()
        async for event in _events(sandbox, record, queue, ctx):
            yield process_pb.ConnectResponse(event=event)

    async def list(self, request: process_pb.ListRequest, ctx: Any) -> process_pb.ListResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        infos = []
        for record in sandbox.processes.values():
            info = process_pb.ProcessInfo(
                config=process_pb.ProcessConfig(
                    cmd=record.cmd, args=record.args, envs=record.envs, cwd=record.cwd
                ),
                pid=record.pid,
            )
            if record.tag is not None:
                info.tag = record.tag
            infos.append(info)
        return process_pb.ListResponse(processes=infos)

    def _record(self, sandbox: Sandbox, selector: Any) -> CommandRecord:
        chosen = selector.selector if selector is not None else None
        for record in sandbox.processes.values():
            if record.exit is not None:
                continue  # ended: only its last listeners still hear of it
            if chosen is not None and (
                (chosen.field == "pid" and record.pid == chosen.value)
                or (chosen.field == "tag" and record.tag == chosen.value)
            ):
                return record
        what = f"{chosen.field} {chosen.value}" if chosen is not None else "no selector"
        raise ConnectError(Code.NOT_FOUND, f"process with {what} not found")

    async def send_signal(
        self, request: process_pb.SendSignalRequest, ctx: Any
    ) -> process_pb.SendSignalResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        record = self._record(sandbox, request.process)
        if request.signal == process_pb.Signal.SIGTERM:
            await record.process.signal_tree(signal.SIGTERM)
        else:  # SIGKILL: the command and everything it started, setsid children included
            await record.kill()
        return process_pb.SendSignalResponse()

    async def update(self, request: process_pb.UpdateRequest, ctx: Any) -> process_pb.UpdateResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        record = self._record(sandbox, request.process)
        size = request.pty.size if request.pty is not None else None
        if size is None:
            return process_pb.UpdateResponse()
        if record.terminal is None:
            raise ConnectError(Code.FAILED_PRECONDITION, "the process was not started with a PTY")
        try:
            record.resize(size.rows, size.cols)
        except (ProcessLookupError, OSError) as exc:
            raise ConnectError(Code.FAILED_PRECONDITION, f"cannot resize the terminal: {exc}") from None
        return process_pb.UpdateResponse()

    async def send_input(
        self, request: process_pb.SendInputRequest, ctx: Any
    ) -> process_pb.SendInputResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        await _write_input(self._record(sandbox, request.process), request.input)
        return process_pb.SendInputResponse()

    async def stream_input(
        self, request: AsyncIterator[process_pb.StreamInputRequest], ctx: Any
    ) -> process_pb.StreamInputResponse:
        """``commands.stream_input``/``pty.stream_input``: a start event naming the process,
        then its input, chunk by chunk, in order."""
        sandbox = _sandbox_for(self.registry, ctx)
        record: CommandRecord | None = None
        async for message in request:
            event = message.event
            if event is None or event.field == "keepalive":
                continue
            if event.field == "start":
                record = self._record(sandbox, event.value.process)
            elif record is None:
                raise ConnectError(Code.INVALID_ARGUMENT, "the input stream must start with a start event")
            else:
                await _write_input(record, event.value.input)
        return process_pb.StreamInputResponse()

    async def close_stdin(
        self, request: process_pb.CloseStdinRequest, ctx: Any
    ) -> process_pb.CloseStdinResponse:
        sandbox = _sandbox_for(self.registry, ctx)
        record = self._record(sandbox, request.process)
        if record.process.proc.stdin is not None:
            record.process.proc.stdin.close()
        return process_pb.CloseStdinResponse()


async def _write_input(record: CommandRecord, given: process_pb.ProcessInput | None) -> None:
    """Stdin or PTY input (``ProcessInput``) to the process."""
    chosen = given.input if given is not None else None
    data = chosen.value if chosen is not None else b""
    if chosen is not None and chosen.field == "pty":
        if record.terminal is None:
            raise ConnectError(Code.FAILED_PRECONDITION, "the process was not started with a PTY")
        try:
            await record.write_terminal(data)
        except (ProcessLookupError, OSError) as exc:
            raise ConnectError(Code.FAILED_PRECONDITION, f"cannot write to the terminal: {exc}") from None
        return
    stdin = record.process.proc.stdin
    if stdin is None:
        raise ConnectError(Code.FAILED_PRECONDITION, "the process was started without stdin")
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        raise ConnectError(Code.FAILED_PRECONDITION, "the process closed its stdin") from None


async def _cancel_on_disconnect(app: Any, scope: Any, receive: Any, send: Send) -> None:
    """Run a streaming call and cancel it when its client goes away. The command lives on
    (as on envd: a client may ``disconnect()`` and ``connect()`` again); its own deadline,
    the ``Start`` call's ``Connect-Timeout-Ms``, is what kills it."""
    messages: asyncio.Queue[Any] = asyncio.Queue()
    gone = asyncio.Event()

    async def pump() -> None:
        while True:
            message = await receive()
            messages.put_nowait(message)
            if message["type"] == "http.disconnect":
                gone.set()
                return

    call = asyncio.create_task(app(scope, messages.get, send))
    reader = asyncio.create_task(pump())
    watcher = asyncio.create_task(gone.wait())
    try:
        await asyncio.wait({call, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not call.done():
            call.cancel()
            try:
                await call
            except (asyncio.CancelledError, ConnectError):  # nobody is left to tell
                logger.debug("streaming call cancelled: its client went away")
        else:
            call.result()
    finally:
        reader.cancel()
        watcher.cancel()


_STREAMING_CALLS = ("/Start", "/Connect")


class Envd:
    def __init__(self, registry: SandboxRegistry, output_limit: int) -> None:
        self.filesystem_service = FilesystemService(registry)
        self.filesystem = FilesystemASGIApplication(self.filesystem_service)
        self.process = ProcessASGIApplication(ProcessService(registry, output_limit))

    def shutdown(self) -> None:
        self.filesystem_service.watches.shutdown()

    async def handle(self, sandbox: Sandbox, request: Request, scope: Any, receive: Any, send: Send) -> None:
        path = request.path
        # As envd: every route but /health and /files (which also take a signature) needs
        # the sandbox's access token.
        if path not in ("/health", "/files") and not has_access_token(sandbox, request.headers):
            await send_error(
                send,
                401,
                "unauthorized access, please provide a valid access token or method signing if supported",
            )
            return
        if path == self.filesystem.path + "/WatchDir":
            await _cancel_on_disconnect(self.filesystem, scope, receive, send)
        elif path.startswith(self.filesystem.path + "/"):
            await self.filesystem(scope, receive, send)
        elif path.removeprefix(self.process.path) in _STREAMING_CALLS:
            await _cancel_on_disconnect(self.process, scope, receive, send)
        elif path.startswith(self.process.path + "/"):
            await self.process(scope, receive, send)
        elif path == "/health":
            await send_empty(send, 204)
        elif path == "/files":
            await handle_files(sandbox, request, send)
        elif path == "/metrics" and request.method == "GET":
            await send_json(send, 200, {"ts": 0, "cpu_count": os.cpu_count() or 1})
        elif path == "/envs" and request.method == "GET":
            await send_json(send, 200, sandbox.env_vars)
        else:
            await send_bytes(send, 404, b'{"code":404,"message":"not found"}', "application/json")
