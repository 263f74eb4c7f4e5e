"""Directory watchers (envd's ``watch_dir``) on one inotify instance for the whole host.

The host never opens a sandbox path: a watch is added on ``/proc/self/fd/N`` for a
directory descriptor obtained by the files API's own walk (``O_NOFOLLOW`` all the way), and a
recursive watcher reaches new subdirectories one component at a time from its root
descriptor, never through a link. Events become envd's: create, write, remove, rename,
chmod, each named relative to the watched directory.

A sandbox is hostile: every watcher, every watched directory and every queued event is
bounded (per sandbox and per host), and watchers whose sandbox is gone are closed within a
second (their descriptors would otherwise keep its tmpfs alive after the kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import posixpath
import secrets
import stat
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# Bounds: a sandbox must not exhaust the host's inotify watches (shared by every root
# process), its memory or its descriptors.
MAX_WATCHERS_PER_SANDBOX = 16
MAX_WATCHERS = 256
MAX_DIRS_PER_SANDBOX = 2048
MAX_DIRS = 8192
MAX_QUEUED_EVENTS = 4096
MAX_DEPTH = 64  # directories deeper than this under a recursive watch are not watched
SWEEP_INTERVAL_S = 1.0
# The files API writes through a temporary name and renames it over the target; a watcher
# sees that as envd's in-place write would look: create + write of the target.
_HIDDEN_PREFIXES = (".e2b-upload-", ".e2b-move-")

CREATE, WRITE, REMOVE, RENAME, CHMOD = "create", "write", "remove", "rename", "chmod"


class WatchLimit(Exception):
    """Too many watchers or watched directories."""


@dataclass
class Watcher:
    watcher_id: str
    sandbox_id: str
    root: str  # the watched directory's sandbox path
    root_fd: int
    recursive: bool
    include_entry: bool
    events: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED_EVENTS))
    wds: dict[int, str] = field(default_factory=dict)  # wd -> path relative to root ("" = root)
    closed: bool = False
    dropped: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, name: str, kind: str) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1  # the oldest goes; a flood must not grow the host's memory
        self.events.append((name, kind))
        self.wakeup.set()

    def take(self) -> list[tuple[str, str]]:
        taken = list(self.events)
        self.events.clear()
        self.wakeup.clear()
        return taken


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.init1 = libc.inotify_init1
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self.rm_watch = libc.inotify_rm_watch
        self.rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)


class WatchManager:
    """Every watcher of the host, on one inotify descriptor read by the event loop."""

    def __init__(self, is_alive: Callable[[str], bool]) -> None:
        self.is_alive = is_alive  # sandbox id -> still running
        self.watchers: dict[str, Watcher] = {}
        self._libc: _Libc | None = None
        self._fd = -1
        self._by_wd: dict[int, set[str]] = {}  # wd -> watcher ids (one inode, one wd)
        self._moved_hidden: deque[int] = deque(maxlen=64)  # cookies of hidden renames
        self._lock = threading.Lock()  # the initial walk runs in a thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # --- set-up --------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._fd >= 0:
            return
        self._libc = _Libc()
        fd = self._libc.init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._on_readable)
        self._sweeper = asyncio.create_task(self._sweep_loop())

    def count_for(self, sandbox_id: str) -> int:
        return sum(1 for w in self.watchers.values() if w.sandbox_id == sandbox_id)

    def _dirs_for(self, sandbox_id: str) -> int:
        return sum(len(w.wds) for w in self.watchers.values() if w.sandbox_id == sandbox_id)

    def _dirs(self) -> int:
        return sum(len(w.wds) for w in self.watchers.values())

    def create(
        self, sandbox_id: str, root: str, dir_fd: int, *, recursive: bool, include_entry: bool
    ) -> Watcher:
        """Watch the directory ``dir_fd`` (ours from now on). Blocking: call it in a thread,
        after ``sweep()`` on the loop."""
        if self.count_for(sandbox_id) >= MAX_WATCHERS_PER_SANDBOX or len(self.watchers) >= MAX_WATCHERS:
            os.close(dir_fd)
            raise WatchLimit("too many directory watchers")
        watcher = Watcher(
            watcher_id="w" + secrets.token_hex(8),
            sandbox_id=sandbox_id,
            root=root,
            root_fd=dir_fd,
            recursive=recursive,
            include_entry=include_entry,
        )
        with self._lock:
            self.watchers[watcher.watcher_id] = watcher
        try:
            self._watch_dir(watcher, dir_fd, "")
            if recursive:
                self._watch_tree(watcher, dir_fd, "")
        except BaseException:
            self.close(watcher.watcher_id)
            raise
        return watcher

    def _watch_dir(self, watcher: Watcher, dir_fd: int, rel: str) -> bool:
        """Add one directory; False when a bound stops it (the rest of the tree is skipped)."""
        if self._dirs_for(watcher.sandbox_id) >= MAX_DIRS_PER_SANDBOX or self._dirs() >= MAX_DIRS:
            if not rel:
                raise WatchLimit("too many watched directories")
            return False
        assert self._libc is not None
        wd = self._libc.add_watch(self._fd, f"/proc/self/fd/{dir_fd}".encode(), _MASK | IN_ONLYDIR)
        if wd < 0:
            err = ctypes.get_errno()
            if not rel or err not in (errno.ENOSPC, errno.ENOENT, errno.ENOTDIR):
                raise OSError(err, os.strerror(err))
            return False
        with self._lock:
            watcher.wds[wd] = rel
            self._by_wd.setdefault(wd, set()).add(watcher.watcher_id)
        return True

    def _watch_tree(self, watcher: Watcher, dir_fd: int, rel: str) -> None:
        if rel.count("/") + 1 >= MAX_DEPTH:
            return
        for name in os.listdir(dir_fd):
            try:
                if not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    continue
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue  # gone or swapped for something else meanwhile
            try:
                child_rel = posixpath.join(rel, name)
                if self._watch_dir(watcher, child, child_rel):
                    self._watch_tree(watcher, child, child_rel)
            finally:
                os.close(child)

    def _watch_new_dir(self, watcher: Watcher, rel: str) -> None:
        """A directory appeared under a recursive watcher: walk to it from the root. On the
        event loop, so the bounds are checked before any walk and the depth is capped."""
        full = self._dirs_for(watcher.sandbox_id) >= MAX_DIRS_PER_SANDBOX or self._dirs() >= MAX_DIRS
        if full or rel.count("/") >= MAX_DEPTH:
            return
        fds: list[int] = []
        try:
            fd = watcher.root_fd
            for part in rel.split("/"):
                fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                fds.append(fd)
            if self._watch_dir(watcher, fd, rel):
                self._watch_tree(watcher, fd, rel)
        except OSError:
            logger.debug("could not watch a new directory", exc_info=True)
        finally:
            for opened in fds:
                os.close(opened)

    # --- tear-down -----------------------------------------------------------------------

    def close(self, watcher_id: str) -> bool:
        with self._lock:
            watcher = self.watchers.pop(watcher_id, None)
            if watcher is None:
                return False
            watcher.closed = True
            for wd in watcher.wds:
                owners = self._by_wd.get(wd)
                if owners is None:
                    continue
                owners.discard(watcher_id)
                if not owners:
                    del self._by_wd[wd]
                    if self._libc is not None:
                        self._libc.rm_watch(self._fd, wd)
            watcher.wds.clear()
        with contextlib.suppress(OSError):
            os.close(watcher.root_fd)
        watcher.wakeup.set()
        return True

    def sweep(self) -> None:
        """Close the watchers of sandboxes that are gone (on the event loop's thread)."""
        for watcher in list(self.watchers.values()):
            if not self.is_alive(watcher.sandbox_id):
                self.close(watcher.watcher_id)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                self.sweep()
            except Exception:
                logger.exception("sweeping directory watchers failed")

    def shutdown(self) -> None:
        for watcher_id in list(self.watchers):
            self.close(watcher_id)
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._fd >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    # --- events --------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
            raw = data[offset + _HEADER.size : offset + _HEADER.size + length]
            offset += _HEADER.size + length
            name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            try:
                self._dispatch(wd, mask, cookie, name)
            except Exception:
                logger.exception("dispatching an inotify event failed")

    def _dispatch(self, wd: int, mask: int, cookie: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            return
        if mask & IN_IGNORED:  # the directory (or its whole tmpfs) is gone
            self._forget(wd)
            return
        hidden = name.startswith(_HIDDEN_PREFIXES)
        if hidden:
            if mask & IN_MOVED_FROM:
                self._moved_hidden.append(cookie)
            return
        for watcher_id in list(self._by_wd.get(wd, ())):
            watcher = self.watchers.get(watcher_id)
            rel = watcher.wds.get(wd) if watcher is not None else None
            if watcher is None or rel is None:
                continue
            self._deliver(watcher, rel, mask, cookie, name)

    def _deliver(self, watcher: Watcher, rel: str, mask: int, cookie: int, name: str) -> None:
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            if rel:  # a subdirectory: its parent's watch already told us
                return
            event_name = "."
        else:
            event_name = posixpath.join(rel, name) if rel else name
        if mask & IN_MOVED_TO and cookie in self._moved_hidden:
            watcher.push(event_name, CREATE)
            watcher.push(event_name, WRITE)
            return
        if mask & (IN_CREATE | IN_MOVED_TO):
            watcher.push(event_name, CREATE)
            if watcher.recursive and mask & IN_ISDIR:
                self._watch_new_dir(watcher, event_name)
        if mask & (IN_MOVED_FROM | IN_MOVE_SELF):
            watcher.push(event_name, RENAME)
            if watcher.recursive and mask & IN_ISDIR:
                self._unwatch_subtree(watcher, event_name)  # its events would carry the old name
        if mask & IN_ATTRIB:
            watcher.push(event_name, CHMOD)
        if mask & IN_MODIFY:
            watcher.push(event_name, WRITE)
        if mask & (IN_DELETE | IN_DELETE_SELF):
            watcher.push(event_name, REMOVE)

    def _unwatch_subtree(self, watcher: Watcher, rel: str) -> None:
        with self._lock:
            for wd, sub in list(watcher.wds.items()):
                if sub == rel or sub.startswith(rel + "/"):
                    del watcher.wds[wd]
                    owners = self._by_wd.get(wd, set())
                    owners.discard(watcher.watcher_id)
                    if not owners:
                        self._by_wd.pop(wd, None)
                        if self._libc is not None:
                            self._libc.rm_watch(self._fd, wd)

    def _forget(self, wd: int) -> None:
        with self._lock:
            owners = self._by_wd.pop(wd, set())
            for watcher_id in owners:
                watcher = self.watchers.get(watcher_id)
                if watcher is not None:
                    rel = watcher.wds.pop(wd, None)
                    if rel == "":  # its root is gone: nothing more will come
                        watcher.wakeup.set()

    def start(self) -> None:
        """Open the inotify descriptor (on the event loop's thread, before the first watcher)."""
        self._ensure_started()
