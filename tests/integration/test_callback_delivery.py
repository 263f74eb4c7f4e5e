"""HttpCallbackSender against real HTTP(S) servers on 127.0.0.1: signatures that verify on the
receiving side, retries that keep one delivery id, redirects never followed, slow receivers cut
off, and the connection made to the checked address (the name only in Host, SNI and the
certificate check). Nothing here connects anywhere but loopback."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sandbox_gateway.adapters.callbacks import (
    DELIVERY_HEADER,
    EXECUTION_ID_HEADER,
    SIGNATURE_HEADER,
    USER_AGENT,
    CallbackGuard,
    HttpCallbackSender,
)
from sandbox_gateway_client import verify_signature

SECRET = "whsec_delivery_test"
BODY = b'{"execution_id":"exe_0192f3a4b5c6d7e8f9a0b1c2","status":"succeeded"}'
EXECUTION_ID = "exe_0192f3a4b5c6d7e8f9a0b1c2"


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Receiver:
    """A scripted receiver: each POST to a path takes the next action of that path's script (the
    last one repeats). An action is a status code, ("sleep", seconds, status), ("redirect", status,
    location) or ("trickle", seconds between bytes)."""

    scripts: dict[str, list[Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return int(self.httpd.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def hits(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def next_action(self, path: str) -> Any:
        script = self.scripts.get(path, [200])
        return script.pop(0) if len(script) > 1 else script[0]


def _start(receiver: Receiver, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            action = receiver.next_action(self.path)
            if isinstance(action, tuple) and action[0] == "sleep":
                time.sleep(action[1])
                action = action[2]
            if isinstance(action, tuple) and action[0] == "trickle":
                # A status line one byte at a time: each read is quick, the whole is not.
                with_pause = action[1]
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(with_pause)
                return
            if isinstance(action, tuple) and action[0] == "redirect":
                self.send_response(action[1])
                self.send_header("Location", action[2])
            else:
                self.send_response(action)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client the sender cut off at its deadline: expected, not worth a traceback

    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.httpd = _start(found)
    yield found
    found.httpd.shutdown()
    found.httpd.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def sender(
    sleeps: list[float], resolve: Callable[[str, int], list[str]] | None = None, **options: Any
) -> HttpCallbackSender:
    return HttpCallbackSender(
        CallbackGuard(allow_loopback=True, resolve=resolve), sleep=sleeps.append, **options
    )


@pytest.fixture
def no_lookups_of_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """getaddrinfo of anything but an address literal fails the test: the sender must connect to
    the address the guard checked, never look the name up again (DNS rebinding)."""
    real = socket.getaddrinfo
    names: list[str] = []

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.append(str(host))
            raise AssertionError(f"getaddrinfo({host!r}) during delivery") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return names


def test_delivery_is_signed_and_verifies_on_the_receiving_side(
    receiver: Receiver, sleeps: list[float]
) -> None:
    report = sender(sleeps).deliver(receiver.url("/hook?tenant=t1"), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("delivered", 1, 200)
    [got] = receiver.received
    assert got.path == "/hook?tenant=t1"
    assert got.body == BODY
    assert verify_signature(SECRET, got.headers[SIGNATURE_HEADER.lower()], got.body)
    assert not verify_signature("another-secret", got.headers[SIGNATURE_HEADER.lower()], got.body)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers[EXECUTION_ID_HEADER.lower()] == EXECUTION_ID
    assert got.headers[DELIVERY_HEADER.lower()]
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert sleeps == []


def test_delivery_connects_to_the_checked_address_with_the_name_in_host(
    receiver: Receiver, sleeps: list[float], no_lookups_of_names: list[str]
) -> None:
    resolved: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    receiver.scripts["/hook"] = [503, 200]
    report = sender(sleeps, resolve).deliver(receiver.url(host="localhost"), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts) == ("delivered", 2)
    assert resolved == ["localhost"]  # once, for every attempt
    assert no_lookups_of_names == []
    assert [r.headers["host"] for r in receiver.received] == [f"localhost:{receiver.port}"] * 2


def test_delivery_retries_500_then_delivers_with_one_delivery_id(
    receiver: Receiver, sleeps: list[float]
) -> None:
    receiver.scripts["/hook"] = [500, 200]

    report = sender(sleeps, backoff_seconds=0.5).deliver(receiver.url(), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("delivered", 2, 200)
    first, second = receiver.received
    assert first.headers[DELIVERY_HEADER.lower()] == second.headers[DELIVERY_HEADER.lower()]
    for got in (first, second):
        assert verify_signature(SECRET, got.headers[SIGNATURE_HEADER.lower()], got.body)
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5


def test_delivery_ids_differ_between_deliveries(receiver: Receiver, sleeps: list[float]) -> None:
    send = sender(sleeps)
    send.deliver(receiver.url(), BODY, SECRET, EXECUTION_ID)
    send.deliver(receiver.url(), BODY, SECRET, EXECUTION_ID)
    first, second = receiver.received
    assert first.headers[DELIVERY_HEADER.lower()] != second.headers[DELIVERY_HEADER.lower()]


def test_delivery_fails_after_every_attempt_answers_500(receiver: Receiver, sleeps: list[float]) -> None:
    receiver.scripts["/hook"] = [500]

    report = sender(sleeps, attempts=3, backoff_seconds=0.5).deliver(
        receiver.url(), BODY, SECRET, EXECUTION_ID
    )

    assert (report.status, report.attempts, report.last_status_code) == ("failed", 3, 500)
    assert report.detail and "3 attempts" in report.detail and "500" in report.detail
    assert len(receiver.received) == 3
    assert len({r.headers[DELIVERY_HEADER.lower()] for r in receiver.received}) == 1
    # Exponential with jitter: 0.5 * 2**n, times a factor in [0.5, 1].
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
def test_delivery_retries_transient_statuses(receiver: Receiver, sleeps: list[float], status: int) -> None:
    receiver.scripts["/hook"] = [status, 204]

    report = sender(sleeps).deliver(receiver.url(), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("delivered", 2, 204)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_delivery_fails_at_once_on_a_client_error(
    receiver: Receiver, sleeps: list[float], status: int
) -> None:
    receiver.scripts["/hook"] = [status, 200]

    report = sender(sleeps).deliver(receiver.url(), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("failed", 1, status)
    assert len(receiver.received) == 1
    assert sleeps == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_delivery_never_follows_a_redirect(receiver: Receiver, sleeps: list[float], status: int) -> None:
    receiver.scripts["/hook"] = [("redirect", status, receiver.url("/elsewhere"))]

    report = sender(sleeps).deliver(receiver.url(), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("failed", 1, status)
    assert report.detail and "redirect" in report.detail
    assert receiver.hits("/elsewhere") == []
    assert len(receiver.received) == 1


def test_delivery_to_a_slow_receiver_is_retried_then_fails(receiver: Receiver, sleeps: list[float]) -> None:
    receiver.scripts["/hook"] = [("sleep", 1.5, 200)]

    started = time.monotonic()
    report = sender(sleeps, attempts=2, timeout_seconds=0.3).deliver(
        receiver.url(), BODY, SECRET, EXECUTION_ID
    )
    elapsed = time.monotonic() - started

    assert (report.status, report.attempts, report.last_status_code) == ("failed", 2, None)
    assert report.detail and "no answer within 0.3 s" in report.detail
    assert len(receiver.received) == 2
    assert elapsed < 1.5  # cut at the timeout, not when the receiver answers


def test_delivery_to_a_trickling_receiver_ends_at_the_deadline(
    receiver: Receiver, sleeps: list[float]
) -> None:
    # Each byte comes within the socket timeout; only the attempt's deadline ends it.
    receiver.scripts["/hook"] = [("trickle", 0.1)]

    started = time.monotonic()
    report = sender(sleeps, attempts=1, timeout_seconds=0.8).deliver(
        receiver.url(), BODY, SECRET, EXECUTION_ID
    )
    elapsed = time.monotonic() - started

    assert (report.status, report.attempts) == ("failed", 1)
    assert elapsed < 2.5  # the whole status line would take 3.8 s


def test_delivery_to_a_closed_port_is_retried_then_fails(sleeps: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there

    report = sender(sleeps, attempts=3).deliver(f"http://127.0.0.1:{port}/hook", BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("failed", 3, None)
    assert report.detail and "Connection" in report.detail
    assert len(sleeps) == 2


def test_delivery_tries_the_next_checked_address_when_one_refuses_the_connection(
    receiver: Receiver, sleeps: list[float]
) -> None:
    # The receiver listens on 127.0.0.1 only: 127.0.0.2 refuses, as ::1 does for many local servers.
    send = sender(sleeps, lambda host, port: ["127.0.0.2", "127.0.0.1"])

    report = send.deliver(receiver.url(host="localhost"), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("delivered", 1, 200)
    assert len(receiver.received) == 1
    assert sleeps == []


def test_delivery_to_localhost_is_refused_without_connecting_when_loopback_is_not_allowed(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Any] = []

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError("connected")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    refusing = HttpCallbackSender(CallbackGuard(allow_loopback=False), sleep=forbidden)

    for url in (receiver.url(host="localhost"), receiver.url(), f"https://localhost:{receiver.port}/hook"):
        report = refusing.deliver(url, BODY, SECRET, EXECUTION_ID)
        assert (report.status, report.attempts, report.last_status_code) == ("refused", 0, None)
        assert report.detail
    assert attempts == []
    assert receiver.received == []


# --- TLS: the connection goes to 127.0.0.1, SNI and the certificate check use the name --------
@dataclass
class Pki:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


def _pki(tmp_path: Path, name: str) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callback test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Pki(ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file)


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Pki]]:
    pki = _pki(tmp_path, "receiver.test")
    found = Receiver()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.cert_file, pki.key_file)
    server_context.sni_callback = lambda sock, name, ctx: found.sni.append(name)  # type: ignore[assignment,func-returns-value]
    found.httpd = _start(found, tls=server_context)
    yield found, pki
    found.httpd.shutdown()
    found.httpd.server_close()


def _trusting(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=pki.ca_pem.decode())


def test_delivery_over_tls_uses_the_name_for_sni_and_the_certificate(
    tls_receiver: tuple[Receiver, Pki], sleeps: list[float], no_lookups_of_names: list[str]
) -> None:
    receiver, pki = tls_receiver
    resolved: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    send = sender(sleeps, resolve, ssl_context=_trusting(pki))
    report = send.deliver(receiver.url(host="receiver.test", scheme="https"), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts, report.last_status_code) == ("delivered", 1, 200)
    assert resolved == ["receiver.test"]
    assert no_lookups_of_names == []
    assert receiver.sni == ["receiver.test"]
    [got] = receiver.received
    assert got.headers["host"] == f"receiver.test:{receiver.port}"
    assert verify_signature(SECRET, got.headers[SIGNATURE_HEADER.lower()], got.body)


def test_delivery_over_tls_refuses_a_certificate_for_another_name(
    tls_receiver: tuple[Receiver, Pki], sleeps: list[float]
) -> None:
    receiver, pki = tls_receiver
    send = sender(sleeps, lambda host, port: ["127.0.0.1"], ssl_context=_trusting(pki))

    report = send.deliver(receiver.url(host="impostor.test", scheme="https"), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts) == ("failed", 1)  # not transient: no retry
    assert report.detail and "certificate" in report.detail
    assert receiver.received == []
    assert sleeps == []


def test_delivery_over_tls_refuses_an_untrusted_certificate(
    tls_receiver: tuple[Receiver, Pki], sleeps: list[float]
) -> None:
    receiver, _ = tls_receiver
    send = sender(sleeps, lambda host, port: ["127.0.0.1"])  # the system's trust store

    report = send.deliver(receiver.url(host="receiver.test", scheme="https"), BODY, SECRET, EXECUTION_ID)

    assert (report.status, report.attempts) == ("failed", 1)
    assert report.detail and "certificate" in report.detail
    assert receiver.received == []
