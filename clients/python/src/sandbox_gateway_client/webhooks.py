"""Verify the gateway's completion callbacks on the receiving side (standard library only).

    from sandbox_gateway_client import verify_signature

    if not verify_signature(secret, request.headers.get("Sandbox-Gateway-Signature"), raw_body):
        return 401

The header is `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`, with one v1 value
per signing secret. Verify the raw body bytes as received, before parsing the JSON: a parsed and
re-serialized body is not the body that was signed. This module and the gateway's signer
(sandbox_gateway.adapters.callbacks) must stay byte-for-byte compatible; a test checks both ways.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

SIGNATURE_HEADER = "Sandbox-Gateway-Signature"
EXECUTION_ID_HEADER = "Sandbox-Gateway-Execution-Id"
DELIVERY_HEADER = "Sandbox-Gateway-Delivery"  # the same for every retry of one delivery: dedupe on it
SIGNATURE_TOLERANCE_SECONDS = 300
_MAX_HEADER_LENGTH = 4096
_MAX_SIGNATURES = 8
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,12}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header the gateway sends for `body` at `timestamp`: for testing a receiver."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    now: float | None = None,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """True when `header` carries a v1 signature of `body` by `secret`, made within
    `tolerance_seconds` of `now` (default: the current time), so a captured request cannot be
    replayed later. Several v1 values are accepted (one per secret while a secret rotates);
    unknown schemes are ignored; anything malformed is False, never an exception."""
    parsed = _parse_signature(header)
    if not secret or parsed is None:
        return False
    timestamp, candidates = parsed
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = _mac(secret, timestamp, body)
    # Every candidate is compared, without stopping at a match: constant time per value.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def _parse_signature(header: str | None) -> tuple[int, list[str]] | None:
    """(timestamp, v1 values) of a well-formed header, else None."""
    if not isinstance(header, str) or len(header) > _MAX_HEADER_LENGTH:
        return None
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or (key == "t" and (timestamp is not None or not _DIGITS.fullmatch(value))):
            return None
        if key == "t":
            timestamp = int(value)
        elif key == "v1":
            if not _HEX_SHA256.fullmatch(value):
                return None
            candidates.append(value)
    if timestamp is None or not candidates or len(candidates) > _MAX_SIGNATURES:
        return None
    return timestamp, candidates
