"""Map the absolute paths the SDK sends onto one sandbox's directory tree on the host.

Only the sandbox's own mounts (``/home/user``, ``/workspace``, ``/tmp``, ``/root``) are
reachable. Symlinks are resolved the way the sandbox's processes see them: an absolute link
target is a *sandbox* path, so ``ln -s /workspace/x link`` works from both sides, and a
link or ``..`` that leads outside the mounts is refused.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from .isolation import SANDBOX_MOUNTS

DEFAULT_CWD = "/home/user"
_MAX_SYMLINKS = 40


class PathRefused(Exception):
    """A path that resolves outside the sandbox's filesystem (or is malformed)."""


class SandboxFS:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)

    def create_tree(self) -> None:
        for rel in SANDBOX_MOUNTS.values():
            (self.root / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "tmp", 0o1777)  # noqa: S103 - /tmp is world-writable + sticky, as usual

    @staticmethod
    def normalize(path: str, cwd: str = DEFAULT_CWD) -> str:
        if not isinstance(path, str) or not path or "\x00" in path:
            raise PathRefused(f"invalid path {path!r}")
        if path == "~" or path.startswith("~/"):
            path = DEFAULT_CWD + path[1:]
        return posixpath.normpath(posixpath.join(cwd, path))

    def _host_of(self, vpath: str) -> Path | None:
        for mount, rel in SANDBOX_MOUNTS.items():
            if vpath == mount:
                return self.root / rel
            if vpath.startswith(mount + "/"):
                return self.root / rel / vpath[len(mount) + 1 :]
        return None

    def resolve(self, path: str, *, follow_last: bool = True) -> tuple[str, Path]:
        """Return (sandbox path, host path) with symlinks resolved in sandbox semantics."""
        vpath = self.normalize(path)
        pending = [p for p in vpath.split("/") if p]
        resolved = "/"
        links = 0
        while pending:
            comp = pending.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                resolved = posixpath.dirname(resolved)
                continue
            candidate = posixpath.join(resolved, comp)
            host = self._host_of(candidate)
            if host is None:
                # An ancestor of a mount ("/home") is walked through; anything else is outside.
                if any(m.startswith(candidate + "/") for m in SANDBOX_MOUNTS):
                    resolved = candidate
                    continue
                raise PathRefused(f"path {path!r} is outside the sandbox filesystem")
            if (pending or follow_last) and os.path.islink(host):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise PathRefused(f"too many levels of symbolic links in {path!r}")
                target = os.readlink(host)
                if target.startswith("/"):
                    resolved = "/"
                pending = [p for p in target.split("/") if p] + pending
                continue
            resolved = candidate
        host = self._host_of(resolved)
        if host is None:
            raise PathRefused(f"path {path!r} is outside the sandbox filesystem")
        parent_real = os.path.realpath(host.parent)
        if not (parent_real == self._real_root or parent_real.startswith(self._real_root + os.sep)):
            raise PathRefused(f"path {path!r} escapes the sandbox filesystem")
        return resolved, host
