"""File entries as every provider reports them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FileType(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


@dataclass(frozen=True)
class FileEntry:
    name: str
    path: str
    type: FileType
    size: int | None = None
    modified_at: str | None = None  # ISO 8601 when the provider knows it
