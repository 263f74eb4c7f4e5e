"""decode_base64_strict: standard base64 with padding, nothing else, and never more than max_bytes."""

from __future__ import annotations

import base64

import pytest
from sandbox_gateway.models.errors import InvalidContent, InvalidRequest, PayloadTooLarge
from sandbox_gateway.services.files import decode_base64_strict

LIMIT = 1024


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"a",
        b"ab",
        b"abc",
        b"hello world\n",
        bytes(range(256)),
        bytes(range(256)) * 3,
        b"\x00" * 10,
        b"\xfb\xff\xbf",  # encodes to '+/+/' in the standard alphabet
    ],
    ids=lambda data: f"{len(data)}B",
)
def test_decode_base64_strict_round_trips(data: bytes) -> None:
    assert decode_base64_strict(base64.b64encode(data).decode(), LIMIT) == data


def test_decode_base64_strict_round_trips_every_byte_value() -> None:
    data = bytes(range(256))
    decoded = decode_base64_strict(base64.b64encode(data).decode("ascii"), 256)
    assert decoded == data
    assert set(decoded) == set(range(256))


@pytest.mark.parametrize(
    "text",
    [
        "aGVs bG8=",  # space inside
        "aGVsbG8=\n",  # trailing newline
        "aGVs\nbG8=",  # MIME-style line break
        "aGVs\r\nbG8=",
        "\taGVsbG8=",
        " aGVsbG8=",
        "-_-_",  # urlsafe alphabet
        "+_8=",
        "aGVsbG8",  # missing padding
        "aGVsbA",
        "aGVsbA=",
        "a",
        "abc",
        "aGVsbG8=aGk=",  # padding in the middle
        "====",
        "aGVsbG8*",
        "aGVsbG8=\x00",
        "aGVsbG8\u2261",  # non-ASCII
        "\uff41\uff47\uff56\uff53",  # fullwidth letters
        "aGVsbG8=\u00a0",
    ],
)
def test_decode_base64_strict_rejects_malformed_input(text: str) -> None:
    with pytest.raises(InvalidContent) as caught:
        decode_base64_strict(text, LIMIT)
    assert isinstance(caught.value, InvalidRequest)
    assert "base64" in caught.value.message


@pytest.mark.parametrize("max_bytes", [0, 1, 2, 3, 4, 5, 6, 1023, 1024, 1025])
def test_decode_base64_strict_accepts_exactly_max_bytes(max_bytes: int) -> None:
    data = bytes(i % 256 for i in range(max_bytes))
    assert decode_base64_strict(base64.b64encode(data).decode(), max_bytes) == data


@pytest.mark.parametrize("max_bytes", [0, 1, 2, 3, 4, 5, 6, 1023, 1024, 1025])
def test_decode_base64_strict_rejects_max_bytes_plus_one(max_bytes: int) -> None:
    text = base64.b64encode(b"x" * (max_bytes + 1)).decode()
    with pytest.raises(PayloadTooLarge) as caught:
        decode_base64_strict(text, max_bytes)
    assert str(max_bytes) in caught.value.message


def test_decode_base64_strict_rejects_oversized_text_before_decoding() -> None:
    # Far too long and not even valid base64: the length check answers first, with 413 not 400.
    text = "!" * (LIMIT * 2)
    with pytest.raises(PayloadTooLarge):
        decode_base64_strict(text, LIMIT)


def test_decode_base64_strict_rejects_huge_text_cheaply() -> None:
    text = "QUFB" * 5_000_000  # 20 MB of valid base64 for a 1 KiB limit
    with pytest.raises(PayloadTooLarge):
        decode_base64_strict(text, LIMIT)
