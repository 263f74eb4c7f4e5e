"""What README.md promises, read by the tests that hold the code to it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_error_codes() -> set[str]:
    """The `code` column of the error table in README.md's "## API" section."""
    api_section = README.read_text().split("## API", 1)[1].split("\n### ", 1)[0]
    code_column = [line.rsplit("|", 2)[-2] for line in api_section.splitlines() if line.startswith("| ")]
    return set(re.findall(r"`([a-z_]+)`", "\n".join(code_column[1:])))
