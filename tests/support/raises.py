"""`pytest.raises` for an exact class: `pytest.raises(SandboxException)` also passes when the
SDK raises a TimeoutException or a connection error of the same family (an unreachable or
timed-out host), so a refusal test would pass for the wrong reason."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def raises_exactly(error: type[BaseException], match: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    with pytest.raises(error, match=match) as caught:
        yield caught
    assert type(caught.value) is error, (
        f"{type(caught.value).__name__} is not {error.__name__}: {caught.value}"
    )
