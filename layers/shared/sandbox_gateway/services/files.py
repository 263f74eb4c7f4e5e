"""Moving files in and out of a session's sandbox."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import InvalidContent, InvalidPageToken, PayloadTooLarge, ProviderError
from sandbox_gateway.models.files import FileEntry
from sandbox_gateway.paths import resolve_sandbox_path
from sandbox_gateway.services.output_budget import ENVELOPE_RESERVE_BYTES, wire_size
from sandbox_gateway.services.sessions import SessionService, UsableSession
from sandbox_gateway.services.tenants import TenantLedger, within

T = TypeVar("T")
DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 5000


@dataclass(frozen=True)
class FilePage:
    """One page of a directory listing, sorted by name; `next_token` resumes after its last entry."""

    directory: str
    entries: list[FileEntry]
    next_token: str | None = None


class FileService:
    def __init__(
        self, sessions: SessionService, settings: Settings, ledger: TenantLedger | None = None
    ) -> None:
        self._ledger = ledger
        self._sessions = sessions
        self._settings = settings

    def list(
        self,
        tenant_id: str,
        session_id: str,
        directory: str,
        limit: int = DEFAULT_LIST_LIMIT,
        page_token: str | None = None,
    ) -> FilePage:
        """At most `limit` entries and never more than the response budget (Lambda's 6 MB cliff)."""
        path = self._path(directory, allow_root=True)
        after = _decode_page_token(page_token, session_id, path) if page_token else None
        usable = self._sessions.require_usable(tenant_id, session_id)
        listed = self._guard(usable, lambda: usable.provider.list_files(usable.ref, path))
        remaining = sorted((e for e in listed if after is None or e.name > after), key=lambda e: e.name)
        budget = self._settings.max_response_bytes - ENVELOPE_RESERVE_BYTES
        page: list[FileEntry] = []
        for entry in remaining[: max(1, min(limit, MAX_LIST_LIMIT))]:
            budget -= _entry_wire_size(entry)
            if budget < 0 and page:
                break
            page.append(entry)
        more = len(page) < len(remaining)
        token = _encode_page_token(session_id, path, page[-1].name) if more else None
        return FilePage(path, page, token)

    def read(self, tenant_id: str, session_id: str, file_path: str) -> tuple[str, bytes]:
        path = self._path(file_path)
        usable = self._sessions.require_usable(tenant_id, session_id)
        limit = self._settings.max_file_bytes
        data = self._guard(usable, lambda: usable.provider.read_file(usable.ref, path, limit))
        if self._ledger is not None:
            self._ledger.record(tenant_id, bytes_downloaded=len(data))
        return path, data

    def write(self, tenant_id: str, session_id: str, file_path: str, content_base64: str) -> FileEntry:
        path = self._path(file_path)
        data = decode_base64_strict(content_base64, self._settings.max_file_bytes)
        if self._ledger is not None:
            within("max_file_bytes", len(data), self._ledger.quotas(tenant_id).max_file_bytes, " B")
        usable = self._sessions.require_usable(tenant_id, session_id)
        written = self._guard(usable, lambda: usable.provider.write_file(usable.ref, path, data))
        if self._ledger is not None:
            self._ledger.record(tenant_id, bytes_uploaded=len(data))
        return written

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
        """DELETE wins: a provider failure re-reads the session, so a file call cut short by its
        session's end answers 410 with the final status (as execute and keep-alive do); a lost
        sandbox fails the session; any other provider error goes to the caller as it is."""
        try:
            return call()
        except ProviderError as failure:
            self._sessions.provider_failed(usable, failure)


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


def _entry_wire_size(entry: FileEntry) -> int:
    # The entry as the response carries it, plus the separator before it (an overestimate).
    fields = {
        "name": entry.name,
        "path": entry.path,
        "type": entry.type.value,
        "size": entry.size,
        "modified_at": entry.modified_at,
    }
    return wire_size(fields) + 2


def _encode_page_token(session_id: str, directory: str, last_name: str) -> str:
    raw = json.dumps({"s": session_id, "d": directory, "a": last_name}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str, session_id: str, directory: str) -> str:
    """The name the page resumes after; a token of another session or directory is refused."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fields = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" forged
        raise InvalidPageToken("next_token is not a token this API issued") from exc
    if (
        not isinstance(fields, dict)
        or fields.get("s") != session_id
        or fields.get("d") != directory
        or not isinstance(fields.get("a"), str)
    ):
        raise InvalidPageToken("next_token is not a token this API issued for this directory")
    return str(fields["a"])
