"""The files API's view of one sandbox's directory tree, done without ever following a link
on the host.

Only the sandbox's own mounts (``/home/user``, ``/workspace``, ``/root``, ``/tmp``) are
reachable. Symlinks are resolved the way the sandbox's processes see them: an absolute link
target is a *sandbox* path, so ``ln -s /workspace/x link`` works from both sides, and a
link or ``..`` that leads outside the mounts is refused.

The host process runs as root and the tree is the sandbox's to change at any moment, so
nothing here opens a host *path*: every lookup walks one component at a time from a
descriptor of the mount's root, with ``O_NOFOLLOW`` directory descriptors (``openat``), reads
links with ``readlinkat`` and resolves them itself. A directory swapped for a link between two
steps makes the next ``openat`` fail (``ELOOP``/``ENOTDIR``) instead of leaving the tree.
Files are opened ``O_NONBLOCK`` and refused unless regular (a FIFO, socket or device never
blocks the host), and what the host creates is handed to the sandbox's uid.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .isolation import SANDBOX_MOUNTS

DEFAULT_CWD = "/home/user"
MOUNT_POINTS = tuple(SANDBOX_MOUNTS)
_MAX_SYMLINKS = 40
_MAX_PATH = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# User metadata lives in xattrs under this prefix, as envd keeps it (``files.write(metadata=)``).
METADATA_XATTR_PREFIX = "user.e2b."
MAX_METADATA_BYTES = 4096  # names (with the prefix) and values together, envd's budget
_METADATA_KEY = re.compile(r"\A[A-Za-z0-9!#$%&'*+\-.^_`|~]+\Z")
_METADATA_VALUE = re.compile(r"\A[\x20-\x7e]*\Z")


class PathRefused(Exception):
    """A path that resolves outside the sandbox's filesystem (or is malformed)."""


class PathInvalid(Exception):
    """A path the operation cannot apply to: not a directory, not a regular file, a mount
    point, changed while being walked. The caller's error (400)."""


@dataclass
class Entry:
    """What ``stat``/``list`` report of one path (already in sandbox terms)."""

    name: str
    path: str
    kind: str  # "file", "dir" or "symlink" (a link whose target cannot be resolved)
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float
    is_symlink: bool
    symlink_target: str | None
    permissions: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class Location:
    """A resolved sandbox path: ``name`` inside the directory ``dir_fd`` (``"."`` for a mount's
    root). ``st`` is its lstat, None if it does not exist. Close it (``with``)."""

    def __init__(self, vpath: str, dir_fd: int, name: str, st: os.stat_result | None) -> None:
        self.vpath = vpath
        self.dir_fd = dir_fd
        self.name = name
        self.st = st

    @property
    def exists(self) -> bool:
        return self.st is not None

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)

    @property
    def is_link(self) -> bool:
        return self.st is not None and stat.S_ISLNK(self.st.st_mode)

    @property
    def is_mount_point(self) -> bool:
        return self.name == "."

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> Location:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SandboxFS:
    def __init__(self, root: Path, *, uid: int | None = None) -> None:
        self.root = root
        self.uid = os.getuid() if uid is None else uid
        self._mount_fds: dict[str, int] = {}

    def create_tree(self) -> None:
        """Create the mount directories (owned by the sandbox's uid) and keep descriptors."""
        for mount, rel in SANDBOX_MOUNTS.items():
            path = self.root / rel
            path.mkdir(parents=True, exist_ok=True)
            for parent in [path, *path.relative_to(self.root).parents][:-1]:
                os.chown(self.root / parent, self.uid, self.uid)
            if mount == "/tmp":
                os.chmod(path, 0o1777)  # noqa: S103 - /tmp is world-writable + sticky, as usual
            self._mount_fds[mount] = os.open(path, _DIR_FLAGS)

    def close(self) -> None:
        for fd in self._mount_fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._mount_fds.clear()

    @staticmethod
    def normalize(path: str, cwd: str = DEFAULT_CWD) -> str:
        if not isinstance(path, str) or not path or "\x00" in path or len(path) > _MAX_PATH:
            raise PathRefused("invalid path")
        if path == "~" or path.startswith("~/"):
            path = DEFAULT_CWD + path[1:]
        return posixpath.normpath(posixpath.join(cwd, path))

    # --- lookup ---------------------------------------------------------------------------

    def lookup(self, path: str, *, follow_last: bool = True, create_parents: bool = False) -> Location:
        """Walk ``path`` in sandbox semantics; the last component need not exist.

        Raises PathRefused (outside the mounts), PathInvalid (a parent is not a directory,
        the tree changed under the walk) or FileNotFoundError (a parent is missing)."""
        for _attempt in range(3):
            try:
                return self._lookup(path, follow_last=follow_last, create_parents=create_parents)
            except _Raced:
                continue
        raise PathInvalid(f"path '{path}' kept changing while it was resolved")

    def _lookup(self, path: str, *, follow_last: bool, create_parents: bool) -> Location:
        vpath = self.normalize(path)
        pending = [p for p in vpath.split("/") if p]
        stack: list[tuple[str, int]] = []  # (sandbox path, dir fd) from a mount root down
        above = "/"  # the sandbox path while above the mounts (stack empty)
        links = 0
        try:
            while pending:
                comp = pending.pop(0)
                if comp == ".":
                    continue
                if comp == "..":
                    if stack:
                        vdir, fd = stack.pop()
                        os.close(fd)
                        if not stack:
                            above = posixpath.dirname(vdir)
                    else:
                        above = posixpath.dirname(above)
                    continue
                if not stack:
                    candidate = posixpath.join(above, comp)
                    if candidate in self._mount_fds:
                        stack.append((candidate, os.dup(self._mount_fds[candidate])))
                        if not pending:
                            vdir, fd = stack.pop()
                            return Location(vdir, fd, ".", os.fstat(fd))
                        continue
                    if any(m.startswith(candidate + "/") for m in self._mount_fds):
                        above = candidate
                        continue
                    raise PathRefused(f"path '{path}' is outside the sandbox filesystem")
                vdir, fd = stack[-1]
                candidate = posixpath.join(vdir, comp)
                last = not pending
                try:
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        stack.pop()
                        return Location(candidate, fd, comp, None)
                    if not create_parents:
                        raise
                    try:
                        os.mkdir(comp, 0o755, dir_fd=fd)
                    except FileExistsError:
                        raise _Raced from None
                    os.chown(comp, self.uid, self.uid, dir_fd=fd, follow_symlinks=False)
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                except NotADirectoryError:
                    raise _Raced from None
                if stat.S_ISLNK(st.st_mode) and (pending or follow_last):
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise PathInvalid(f"too many levels of symbolic links in '{path}'")
                    target = os.readlink(comp, dir_fd=fd)
                    if target.startswith("/"):
                        for _v, sfd in stack:
                            os.close(sfd)
                        stack.clear()
                        above = "/"
                    pending = [p for p in target.split("/") if p] + pending
                    continue
                if last:
                    stack.pop()
                    return Location(candidate, fd, comp, st)
                if not stat.S_ISDIR(st.st_mode):
                    raise PathInvalid(f"a parent of '{path}' is not a directory")
                try:
                    child = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except (NotADirectoryError, OSError) as exc:
                    if isinstance(exc, NotADirectoryError) or exc.errno in (errno.ELOOP, errno.ENOENT):
                        raise _Raced from None
                    raise
                stack.append((candidate, child))
            if stack:  # a link's ".." ended the walk on a directory already open
                vdir, fd = stack.pop()
                return Location(vdir, fd, ".", os.fstat(fd))
            # The path ended above the mounts ("/", "/home"): not the sandbox's to touch.
            raise PathRefused(f"path '{path}' is outside the sandbox filesystem")
        finally:
            for _v, sfd in stack:
                os.close(sfd)

    # --- operations (blocking: call them in a thread) ---------------------------------------

    def open_regular(self, path: str) -> tuple[str, int, int]:
        """(sandbox path, fd, size) of a regular file opened for reading; never blocks."""
        with self.lookup(path) as loc:
            if not loc.exists:
                raise FileNotFoundError(loc.vpath)
            if loc.is_dir:
                raise IsADirectoryError(loc.vpath)
            try:
                fd = os.open(loc.name, _READ_FLAGS, dir_fd=loc.dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP, errno.EISDIR):
                    raise PathInvalid(f"path '{loc.vpath}' is not a regular file") from None
                raise
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                if stat.S_ISDIR(st.st_mode):
                    raise IsADirectoryError(loc.vpath)
                raise PathInvalid(f"path '{loc.vpath}' is not a regular file")
            return loc.vpath, fd, st.st_size

    def write_file(self, path: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        """Replace (atomically) or create a regular file; parents are created as needed.
        ``metadata`` becomes the new file's ``user.e2b.*`` xattrs (the old file's go with it)."""
        with self.lookup(path, create_parents=True) as loc:
            if loc.is_dir:
                raise IsADirectoryError(loc.vpath)
            if loc.exists and not (stat.S_ISREG(loc.st.st_mode) or loc.is_link):  # type: ignore[union-attr]
                raise PathInvalid(f"path '{loc.vpath}' exists and is not a regular file")
            tmp = f".e2b-upload-{secrets.token_hex(6)}"
            fd = os.open(
                tmp,
                _CREATE_FLAGS,
                0o644,
                dir_fd=loc.dir_fd,
            )
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchown(fd, self.uid, self.uid)
                _write_metadata(fd, metadata or {})
                if loc.exists and not loc.is_link:
                    os.fchmod(fd, stat.S_IMODE(loc.st.st_mode))  # type: ignore[union-attr]
            except BaseException:
                os.close(fd)
                os.unlink(tmp, dir_fd=loc.dir_fd)
                raise
            os.close(fd)
            try:
                os.rename(tmp, loc.name, src_dir_fd=loc.dir_fd, dst_dir_fd=loc.dir_fd)
            except OSError as exc:
                os.unlink(tmp, dir_fd=loc.dir_fd)
                if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise PathInvalid(f"path '{loc.vpath}' changed while it was written") from None
                raise
            return loc.vpath

    def make_dirs(self, path: str) -> str:
        """``mkdir -p``; returns the sandbox path. PathInvalid if it exists and is not a dir."""
        vpath, _created = self.make_dir(path, exist_ok=True)
        return vpath

    def make_dir(self, path: str, *, exist_ok: bool = False) -> tuple[str, bool]:
        with self.lookup(path, create_parents=True) as loc:
            if loc.exists:
                if loc.is_dir:
                    if exist_ok:
                        return loc.vpath, False
                    raise FileExistsError(loc.vpath)
                raise PathInvalid(f"path '{loc.vpath}' already exists and is not a directory")
            try:
                os.mkdir(loc.name, 0o755, dir_fd=loc.dir_fd)
            except FileExistsError:
                raise PathInvalid(f"path '{loc.vpath}' changed while it was created") from None
            os.chown(loc.name, self.uid, self.uid, dir_fd=loc.dir_fd, follow_symlinks=False)
            return loc.vpath, True

    def open_dir(self, path: str) -> tuple[str, int]:
        """(sandbox path, O_NOFOLLOW descriptor) of an existing directory; the caller closes it."""
        with self.lookup(path) as loc:
            if not loc.exists:
                raise FileNotFoundError(loc.vpath)
            if not loc.is_dir:
                raise NotADirectoryError(loc.vpath)
            if loc.is_mount_point:
                return loc.vpath, os.dup(loc.dir_fd)
            try:
                return loc.vpath, os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise PathInvalid(f"path '{loc.vpath}' changed while it was resolved") from None
                raise

    def is_dir(self, path: str) -> tuple[str, bool]:
        with self.lookup(path) as loc:
            return loc.vpath, loc.is_dir

    def stat(self, path: str, *, follow_last: bool = False) -> Entry:
        with self.lookup(path, follow_last=follow_last) as loc:
            if not loc.exists:
                raise FileNotFoundError(loc.vpath)
            return self._entry(loc.vpath, loc.st, loc.dir_fd, loc.name)  # type: ignore[arg-type]

    def _entry(self, vpath: str, st: os.stat_result, dir_fd: int, name: str) -> Entry:
        """envd's EntryInfo: a link reports its target's type and permission bits and its
        resolved ``symlink_target``, and its own size, owner, time and mode string."""
        target_st, target = st, None
        metadata = read_metadata(dir_fd, name) if not stat.S_ISLNK(st.st_mode) else {}
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        if stat.S_ISLNK(st.st_mode):
            kind = "symlink"
            try:
                with self.lookup(vpath) as loc:
                    target = loc.vpath
                    if loc.st is not None:
                        target_st = loc.st
                        kind = "dir" if loc.is_dir else "file"
                        metadata = read_metadata(loc.dir_fd, loc.name)
            except (PathRefused, PathInvalid, OSError):
                # Never followed out of the mounts: name the target, say nothing of it.
                target = self._link_text(vpath, dir_fd, name)
        return Entry(
            name=posixpath.basename(vpath) or "/",
            path=vpath,
            kind=kind,
            size=st.st_size,
            mode=target_st.st_mode,
            uid=st.st_uid,
            gid=st.st_gid,
            mtime=st.st_mtime,
            is_symlink=stat.S_ISLNK(st.st_mode),
            symlink_target=target,
            permissions=go_file_mode(st.st_mode),
            metadata=metadata,
        )

    @staticmethod
    def _link_text(vpath: str, dir_fd: int, name: str) -> str | None:
        """A link's target as an absolute sandbox path, read but not followed."""
        try:
            text = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return None
        return posixpath.normpath(posixpath.join(posixpath.dirname(vpath), text))

    def list_dir(self, path: str, depth: int = 1, limit: int = 100_000) -> tuple[str, list[Entry]]:
        with self.lookup(path) as loc:
            if not loc.exists:
                raise FileNotFoundError(loc.vpath)
            if not loc.is_dir:
                raise NotADirectoryError(loc.vpath)
            fd = os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd)
            entries: list[Entry] = []
            try:
                self._walk(loc.vpath, fd, 1, max(depth, 1), entries, limit)
            finally:
                os.close(fd)
            return loc.vpath, entries

    def _walk(self, vdir: str, fd: int, level: int, depth: int, out: list[Entry], limit: int) -> None:
        for name in sorted(os.listdir(fd)):
            if len(out) >= limit:
                return
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            child = posixpath.join(vdir, name)
            out.append(self._entry(child, st, fd, name))
            if level < depth and stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    self._walk(child, sub, level + 1, depth, out, limit)
                finally:
                    os.close(sub)

    def remove(self, path: str) -> str:
        """``rm -rf`` as envd does it: a path that is not there (or whose parent is not) is
        already removed."""
        try:
            loc = self.lookup(path, follow_last=False)
        except FileNotFoundError:
            return self.normalize(path)
        with loc:
            if loc.is_mount_point:
                raise PathInvalid(f"cannot remove '{loc.vpath}'")
            if not loc.exists:
                return loc.vpath
            if loc.is_dir:
                shutil.rmtree(loc.name, dir_fd=loc.dir_fd)
            else:
                os.unlink(loc.name, dir_fd=loc.dir_fd)
            return loc.vpath

    def move(self, source: str, destination: str) -> str:
        with self.lookup(source, follow_last=False) as src:
            if not src.exists:
                raise FileNotFoundError(src.vpath)
            if src.is_mount_point:
                raise PathInvalid(f"cannot move '{src.vpath}'")
            with self.lookup(destination, follow_last=False, create_parents=True) as dst:
                if dst.is_mount_point:
                    raise PathInvalid(f"cannot replace '{dst.vpath}'")
                try:
                    os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    self._copy_across(src, dst)
                return dst.vpath

    def _copy_across(self, src: Location, dst: Location) -> None:
        """rename across the two tmpfs mounts: regular files only."""
        if src.st is None or not stat.S_ISREG(src.st.st_mode):
            raise PathInvalid("only regular files can be moved between /tmp and the other mounts")
        fd = os.open(src.name, _READ_FLAGS, dir_fd=src.dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PathInvalid("only regular files can be moved between /tmp and the other mounts")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        with _reopen(dst) as loc:
            self._replace_at(loc, b"".join(chunks), stat.S_IMODE(src.st.st_mode))
        os.unlink(src.name, dir_fd=src.dir_fd)

    def _replace_at(self, loc: Location, data: bytes, mode: int) -> None:
        tmp = f".e2b-move-{secrets.token_hex(6)}"
        fd = os.open(tmp, _CREATE_FLAGS, mode, dir_fd=loc.dir_fd)
        try:
            os.write(fd, data)
            os.fchown(fd, self.uid, self.uid)
        finally:
            os.close(fd)
        os.rename(tmp, loc.name, src_dir_fd=loc.dir_fd, dst_dir_fd=loc.dir_fd)


def go_file_mode(mode: int) -> str:
    """The mode string envd reports (Go's ``FileMode.String``): a letter per type bit set
    (``d`` dir, ``L`` link, ``D`` device, ``p`` FIFO, ``S`` socket, ``u``/``g`` setuid/setgid,
    ``c`` char device, ``t`` sticky) or ``-``, then the nine permission bits."""
    fmt = stat.S_IFMT(mode)
    letters = [
        ("d", fmt == stat.S_IFDIR),
        ("L", fmt == stat.S_IFLNK),
        ("D", fmt in (stat.S_IFBLK, stat.S_IFCHR)),
        ("p", fmt == stat.S_IFIFO),
        ("S", fmt == stat.S_IFSOCK),
        ("u", bool(mode & stat.S_ISUID)),
        ("g", bool(mode & stat.S_ISGID)),
        ("c", fmt == stat.S_IFCHR),
        ("t", bool(mode & stat.S_ISVTX)),
    ]
    kind = "".join(letter for letter, is_set in letters if is_set) or "-"
    bits = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return kind + bits


def validate_metadata(metadata: dict[str, str]) -> None:
    """envd's rules: printable-ASCII keys and values, 4 KiB in all (names with the prefix)."""
    total = 0
    for key, value in metadata.items():
        if not _METADATA_KEY.match(key) or len(METADATA_XATTR_PREFIX + key) > 255:
            raise PathInvalid(f"invalid metadata key {key!r}")
        if not _METADATA_VALUE.match(value):
            raise PathInvalid(f"metadata value for key {key!r} is not printable ASCII")
        total += len(METADATA_XATTR_PREFIX) + len(key) + len(value)
    if total > MAX_METADATA_BYTES:
        raise PathInvalid(f"total metadata size {total} exceeds {MAX_METADATA_BYTES} bytes")


def _write_metadata(fd: int, metadata: dict[str, str]) -> None:
    """Best effort, as envd: a file system without user xattrs keeps no metadata."""
    for key, value in metadata.items():
        try:
            os.setxattr(fd, METADATA_XATTR_PREFIX + key, value.encode())
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return
            raise


def read_metadata(dir_fd: int, name: str) -> dict[str, str]:
    """The ``user.e2b.*`` xattrs of ``name`` in ``dir_fd``, without following a link there:
    ``/proc/self/fd/N`` is the directory we already hold, and only ``name`` is looked up in
    it. Values that are not UTF-8 (set by hand in the sandbox) are skipped, like envd does."""
    where = f"/proc/self/fd/{dir_fd}" if name == "." else f"/proc/self/fd/{dir_fd}/{name}"
    try:
        names = os.listxattr(where, follow_symlinks=False)
    except OSError:
        return {}
    metadata: dict[str, str] = {}
    budget = MAX_METADATA_BYTES * 4  # a sandbox may set more by hand; we read a bounded amount
    for xname in names:
        if not xname.startswith(METADATA_XATTR_PREFIX):
            continue
        try:
            raw = os.getxattr(where, xname, follow_symlinks=False)
            value = raw.decode()
        except (OSError, UnicodeDecodeError):
            continue
        budget -= len(xname) + len(raw)
        if budget < 0:
            break
        metadata[xname.removeprefix(METADATA_XATTR_PREFIX)] = value
    return metadata


class _Raced(Exception):
    """The tree changed under a walk; walk again."""


@contextlib.contextmanager
def _reopen(loc: Location) -> Iterator[Location]:
    yield Location(loc.vpath, os.dup(loc.dir_fd), loc.name, loc.st)
