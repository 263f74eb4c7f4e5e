"""Sandbox path rules: every path a caller sends is canonicalised here before any provider sees it.

The traps (see shared/SECURITY.md): joining an absolute path discards the base, a string prefix
check lets `/workspace2` pass for `/workspace`, NUL and over-long names raise deep inside
libraries, and NFKC folds fullwidth dots and slashes (U+FF0E, U+FF0F) into `../`. So: reject
rather than repair, check the final string, and compare with `is_relative_to`, never `startswith`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

from sandbox_gateway.models.errors import InvalidFilePath

MAX_PATH_BYTES = 1024
MAX_NAME_BYTES = 255
MAX_DEPTH = 32

# Cc: control characters (NUL, newline, escape…); Cf: format characters, which include the
# bidi overrides that make a name display differently from what it is; Cs: lone surrogates.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def resolve_sandbox_path(
    raw: str,
    *,
    allowed_roots: Iterable[str],
    workspace_root: str,
    allow_root: bool = False,
) -> str:
    """Return the absolute, canonical sandbox path for `raw` or raise InvalidFilePath.

    A relative path is taken relative to the workspace (`output.txt` → `/workspace/output.txt`).
    `allow_root` admits an allowed root itself (listing `/workspace`), never anything above it.
    """
    if not raw:
        raise InvalidFilePath("path must not be empty")
    if len(raw.encode("utf-8", errors="surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidFilePath(f"path is longer than {MAX_PATH_BYTES} bytes")
    for char in raw:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise InvalidFilePath(f"path contains a control or format character (U+{ord(char):04X})")
    if "\\" in raw:
        raise InvalidFilePath("path must use '/' as separator, not '\\'")

    folded = unicodedata.normalize("NFKC", raw)
    resolved = _canonical(raw, workspace_root)
    if folded != raw and _canonical(folded, workspace_root) != resolved:
        # A compatibility form that means another path once normalised (fullwidth dots…).
        raise InvalidFilePath("path contains characters that normalise to a different path")

    if len(resolved.encode("utf-8", errors="surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidFilePath(f"path is longer than {MAX_PATH_BYTES} bytes")
    roots = [PurePosixPath(root) for root in allowed_roots]
    candidate = PurePosixPath(resolved)
    if candidate in roots and not allow_root:
        raise InvalidFilePath(f"{resolved} is a sandbox root directory, not a file")
    if not any(candidate.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise InvalidFilePath(f"{resolved} is outside the allowed directories ({allowed})")
    return resolved


def _canonical(raw: str, workspace_root: str) -> str:
    path = raw if raw.startswith("/") else f"{workspace_root}/{raw}"
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise InvalidFilePath("path must not contain '..' segments")
        if len(segment.encode("utf-8", errors="surrogatepass")) > MAX_NAME_BYTES:
            raise InvalidFilePath(f"a path segment is longer than {MAX_NAME_BYTES} bytes")
        parts.append(segment)
    if len(parts) > MAX_DEPTH:
        raise InvalidFilePath(f"path is deeper than {MAX_DEPTH} levels")
    return "/" + "/".join(parts)
