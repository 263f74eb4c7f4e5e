"""Moving files in and out of a session's sandbox."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import TypeVar

from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import InvalidContent, PayloadTooLarge, SandboxGone
from sandbox_gateway.models.files import FileEntry
from sandbox_gateway.paths import resolve_sandbox_path
from sandbox_gateway.services.sessions import SessionService, UsableSession

T = TypeVar("T")


class FileService:
    def __init__(self, sessions: SessionService, settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    def list(self, tenant_id: str, session_id: str, directory: str) -> tuple[str, list[FileEntry]]:
        path = self._path(directory, allow_root=True)
        usable = self._sessions.require_usable(tenant_id, session_id)
        return path, self._guard(usable, lambda: usable.provider.list_files(usable.ref, path))

    def read(self, tenant_id: str, session_id: str, file_path: str) -> tuple[str, bytes]:
        path = self._path(file_path)
        usable = self._sessions.require_usable(tenant_id, session_id)
        limit = self._settings.max_file_bytes
        return path, self._guard(usable, lambda: usable.provider.read_file(usable.ref, path, limit))

    def write(self, tenant_id: str, session_id: str, file_path: str, content_base64: str) -> FileEntry:
        path = self._path(file_path)
        data = decode_base64_strict(content_base64, self._settings.max_file_bytes)
        usable = self._sessions.require_usable(tenant_id, session_id)
        return self._guard(usable, lambda: usable.provider.write_file(usable.ref, path, data))

    def delete(self, tenant_id: str, session_id: str, file_path: str) -> str:
        path = self._path(file_path)
        usable = self._sessions.require_usable(tenant_id, session_id)
        self._guard(usable, lambda: usable.provider.delete_file(usable.ref, path))
        return path

    def _path(self, raw: str, *, allow_root: bool = False) -> str:
        return resolve_sandbox_path(
            raw,
            allowed_roots=self._settings.allowed_roots,
            workspace_root=self._settings.workspace_root,
            allow_root=allow_root,
        )

    def _guard(self, usable: UsableSession, call: Callable[[], T]) -> T:
        try:
            return call()
        except SandboxGone as gone:
            self._sessions.report_sandbox_gone(usable, gone)
            raise


def decode_base64_strict(text: str, max_bytes: int) -> bytes:
    """Standard base64 with padding, nothing else: a typo must not become silently different bytes."""
    # Checked before decoding so an oversized body costs no memory; 4 characters carry 3 bytes.
    if len(text) > (max_bytes + 2) // 3 * 4:
        raise PayloadTooLarge(f"content is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidContent("content is not valid base64 (standard alphabet, with padding)") from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"content is larger than {max_bytes} bytes")
    return data
