"""Callback signatures: the gateway's signer and the client's verifier (what receivers run) agree, and
a verifier accepts only the exact body, by the right secret, recently."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import pytest
from sandbox_gateway.adapters import callbacks
from sandbox_gateway_client import verify_signature as exported_verify
from sandbox_gateway_client import webhooks

SECRET = "whsec_test_7f3a9c"
BODY = b'{"execution_id":"exe_0192f3a4b5c6d7e8f9a0b1c2","status":"succeeded","stdout":"42\\n"}'
NOW = 1_764_000_000

Verify = Callable[..., bool]
VERIFIERS = [
    pytest.param(callbacks.verify_signature, id="gateway"),
    pytest.param(webhooks.verify_signature, id="client"),
]
SIGNERS = [pytest.param(callbacks.sign, id="gateway"), pytest.param(webhooks.sign, id="client")]


def test_signature_format_is_the_documented_one() -> None:
    header = callbacks.sign(SECRET, NOW, BODY)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert callbacks.SIGNATURE_HEADER == webhooks.SIGNATURE_HEADER == "Sandbox-Gateway-Signature"
    assert callbacks.DELIVERY_HEADER == webhooks.DELIVERY_HEADER
    assert callbacks.EXECUTION_ID_HEADER == webhooks.EXECUTION_ID_HEADER


@pytest.mark.parametrize("sign", SIGNERS)
@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_roundtrip_across_gateway_and_client(sign: Callable[..., str], verify: Verify) -> None:
    assert verify(SECRET, sign(SECRET, NOW, BODY), BODY, now=NOW)
    assert verify(SECRET, sign(SECRET, NOW, BODY), BODY, now=NOW + 299)
    assert verify(SECRET, sign(SECRET, NOW, BODY), BODY, now=NOW - 299)  # a receiver's clock behind


def test_signature_signers_agree_byte_for_byte() -> None:
    for body in (b"", b"{}", BODY, bytes(range(256)), "é✓".encode()):
        for secret in ("s", SECRET, "sécret ✓"):
            assert callbacks.sign(secret, NOW, body) == webhooks.sign(secret, NOW, body)


def test_signature_client_exports_verify() -> None:
    assert exported_verify is webhooks.verify_signature


def test_signature_verify_defaults_to_the_current_time() -> None:
    fresh = callbacks.sign(SECRET, int(time.time()), BODY)
    stale = callbacks.sign(SECRET, int(time.time()) - 3600, BODY)
    for verify in (callbacks.verify_signature, webhooks.verify_signature):
        assert verify(SECRET, fresh, BODY)
        assert not verify(SECRET, stale, BODY)


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize(
    "tampered",
    [
        BODY.replace(b"succeeded", b"failedxxx"),
        BODY + b" ",
        BODY[:-1],
        b"",
        BODY.replace(b"42", b"43"),
    ],
)
def test_signature_refuses_a_tampered_body(verify: Verify, tampered: bytes) -> None:
    assert not verify(SECRET, callbacks.sign(SECRET, NOW, BODY), tampered, now=NOW)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_refuses_the_wrong_secret(verify: Verify) -> None:
    header = callbacks.sign(SECRET, NOW, BODY)
    assert not verify("another-secret", header, BODY, now=NOW)
    assert not verify(SECRET + " ", header, BODY, now=NOW)
    assert not verify("", callbacks.sign("", NOW, BODY), BODY, now=NOW)  # no secret, no trust


@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_refuses_a_stale_or_future_timestamp(verify: Verify) -> None:
    header = callbacks.sign(SECRET, NOW, BODY)
    assert not verify(SECRET, header, BODY, now=NOW + 301)
    assert not verify(SECRET, header, BODY, now=NOW - 301)
    assert verify(SECRET, header, BODY, now=NOW + 1000, tolerance_seconds=1000)
    assert not verify(SECRET, header, BODY, now=NOW + 61, tolerance_seconds=60)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_refuses_a_replayed_body_under_a_new_timestamp(verify: Verify) -> None:
    old = callbacks.sign(SECRET, NOW, BODY)
    replayed = f"t={NOW + 3600},{old.split(',')[1]}"
    assert not verify(SECRET, replayed, BODY, now=NOW + 3600)


def _mac(timestamp: int = NOW, secret: str = SECRET) -> str:
    return callbacks.sign(secret, timestamp, BODY).split("v1=")[1]


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        " ",
        ",",
        f"v1={_mac()}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t={NOW},v1=",
        f"t={NOW},v1={_mac()[:-1]}",  # short
        f"t={NOW},v1={_mac()}0",  # long
        f"t={NOW},v1={_mac().upper()}",  # the format is lowercase hex
        f"t={NOW},v1={'z' * 64}",
        f"t=,v1={_mac()}",
        f"t=abc,v1={_mac()}",
        f"t=-{NOW},v1={_mac()}",
        f"t=+{NOW},v1={_mac()}",
        f"t={NOW}.0,v1={_mac()}",
        f"t=1e9,v1={_mac()}",
        f"t={NOW},t={NOW},v1={_mac()}",  # two timestamps: which one was signed?
        f"t={NOW};v1={_mac()}",
        f"t={NOW},v1 {_mac()}",
        f"t={NOW}, garbage ,v1={_mac()}",
        f"t={'9' * 40},v1={_mac()}",
        f"t={NOW},v1={_mac()}," + "v1=" + "0" * 64 + "," + "x" * 5000,  # oversized
        "t={},{}".format(NOW, ",".join(["v1=" + "0" * 64] * 8 + [f"v1={_mac()}"])),  # too many values
    ],
)
def test_signature_refuses_malformed_headers(verify: Verify, header: str | None) -> None:
    assert verify(SECRET, header, BODY, now=NOW) is False


@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_accepts_several_v1_values_while_a_secret_rotates(verify: Verify) -> None:
    old, new = "whsec_old", "whsec_new"
    header = f"t={NOW},v1={_mac(secret=old)},v1={_mac(secret=new)}"
    assert verify(old, header, BODY, now=NOW)
    assert verify(new, header, BODY, now=NOW)
    assert verify(new, f"t={NOW},v1={_mac(secret=new)},v1={_mac(secret=old)}", BODY, now=NOW)
    assert not verify("whsec_other", header, BODY, now=NOW)
    assert not verify(new, f"t={NOW},v1={_mac(secret=old)}", BODY, now=NOW)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_ignores_unknown_schemes_and_spaces(verify: Verify) -> None:
    assert verify(SECRET, f"t={NOW}, v0=abc, v1={_mac()}, v2=future", BODY, now=NOW)
    assert verify(SECRET, f" v1={_mac()} , t={NOW} ", BODY, now=NOW)  # order does not matter


@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_verifiers_never_raise(verify: Verify) -> None:
    for header in ("t=\x00,v1=\x00", "=" * 100, "t==1,v1==", "\udcff", 42, b"t=1,v1=00"):
        assert verify(SECRET, header, BODY, now=NOW) is False
