"""Signed completion callbacks: the signer, the guard that decides where a callback may go, and
the sender that POSTs it there.

Traps this module exists for (decision 0007):
- SSRF. A callback URL is chosen by the caller, so a careless sender is a proxy into our network:
  the instance metadata service, private VPC ranges, loopback. The guard refuses every address
  that is not globally routable, and refuses a name when ANY of its addresses is refused.
- DNS rebinding. A name can resolve to a public address when checked and to 169.254.169.254 when
  connected. The host is resolved once, and the sender connects to that checked address; the
  name only goes into the Host header, TLS SNI and the certificate check.
- Other spellings of one address: `::ffff:127.0.0.1`, NAT64 and 6to4 addresses embed an IPv4
  address; `2130706433` or `0x7f.1` are 127.0.0.1 to the resolver. Embedded addresses are
  checked as IPv4, and numeric hosts that are not dotted-decimal are refused.
- Redirects are never followed: a 3xx would point the worker somewhere the guard never saw.
- A slow receiver must not hold the worker: each attempt has one deadline, however the server
  trickles its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import random
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from sandbox_gateway.models.errors import InvalidCallbackUrl
from sandbox_gateway.ports import CallbackReport

SIGNATURE_HEADER = "Sandbox-Gateway-Signature"
EXECUTION_ID_HEADER = "Sandbox-Gateway-Execution-Id"
DELIVERY_HEADER = "Sandbox-Gateway-Delivery"
USER_AGENT = "sandbox-gateway-callbacks/1"
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_URL_LENGTH = 2048
_MAX_HEADER_LENGTH = 4096  # a signature header is ~80 characters per secret
_MAX_SIGNATURES = 8
_HTTPS_ONLY = "callback_url must be https:// (http:// only to loopback, in the local stack)"
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,12}")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


# --- signatures -------------------------------------------------------------------------------
def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`: the timestamp is signed with the
    body, so a captured request cannot be replayed later with a fresh timestamp."""
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
    `tolerance_seconds` of `now` (default: the current time). Several v1 values are accepted
    (one per secret while a secret rotates); unknown schemes are ignored; anything malformed is
    False, never an exception. Kept identical to sandbox_gateway_client.webhooks.verify_signature."""
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


# --- where a callback may go ------------------------------------------------------------------
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
# Names that only mean something inside a network (or its metadata service): refused unresolved.
_INTERNAL_NAMES = ("metadata", "instance-data", "metadata.google.internal", "kubernetes.default")
_INTERNAL_SUFFIXES = (".internal", ".local", ".localdomain", ".intranet", ".lan", ".home.arpa", ".corp")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# Explicit tables, not `is_global` alone: Python 3.11 counts multicast (224.0.0.0/4, ff00::/8)
# and site-local fec0::/10 as global, and 3.12.4/3.13 redefined is_global/is_private from the
# IANA registries; this table gives one answer on every version. `is_global` stays as a last net.
_REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared (carrier-grade NAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local (the instance metadata service lives there)"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "in the IETF protocol assignments block"),
    (_V4("192.0.2.0/24"), "a documentation address"),
    (_V4("192.88.99.0/24"), "the 6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("198.51.100.0/24"), "a documentation address"),
    (_V4("203.0.113.0/24"), "a documentation address"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # and the broadcast 255.255.255.255
)
_REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "IPv4-compatible (deprecated)"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001::/32"), "a Teredo address"),
    (_V6("2001::/23"), "in the IETF protocol assignments block"),
    (_V6("2001:db8::/32"), "a documentation address"),
    (_V6("3fff::/20"), "a documentation address"),
    (_V6("5f00::/16"), "a segment routing (SRv6) address"),
    (_V6("fc00::/7"), "unique local (private; the IPv6 metadata service lives there)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)
_NAT64 = _V6("64:ff9b::/96")


def address_refusal(address: IPAddress, allow_loopback: bool) -> str | None:  # noqa: PLR0911 - a table
    """Why a callback may not connect to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "an IPv6 address with a zone"
        if address.ipv4_mapped is not None:
            return address_refusal(address.ipv4_mapped, allow_loopback)
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # A translated address reaches its IPv4 address, so it is as good as that one; it
            # never counts as loopback (the loopback is ours, not the translator's).
            reason = address_refusal(embedded, allow_loopback=False)
            return f"{reason}, embedded in an IPv6 address" if reason else None
        if address == ipaddress.IPv6Address("::1"):
            return None if allow_loopback else "loopback"
        for network6, reason in _REFUSED_V6:
            if address in network6:
                return reason
    else:
        if address in _V4("127.0.0.0/8"):
            return None if allow_loopback else "loopback"
        for network4, reason in _REFUSED_V4:
            if address in network4:
                return reason
    if address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address reaches."""
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _connectable(address: IPAddress) -> str:
    """The address to connect to: a mapped IPv6 address's IPv4 address, which is what was checked."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _default_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CallbackHostUnresolved(Exception):
    """The callback host has no address right now (DNS failed): a delivery failure, not a refusal."""


class CallbackGuard:
    """Decides whether a callback URL may be called: `check_syntax` without DNS (the API, when an
    execute names a callback_url), `resolve_checked` at delivery (resolves once, checks every
    address, and returns the addresses the sender must connect to)."""

    def __init__(self, allow_loopback: bool, resolve: Resolver | None = None) -> None:
        self.allow_loopback = allow_loopback
        self._resolve = resolve or _default_resolve

    def check_syntax(self, url: str) -> None:
        self._parse(url)

    def resolve_checked(self, url: str) -> tuple[str, int, list[str]]:
        """(host, port, addresses). Raises InvalidCallbackUrl when the URL or any address the host
        resolves to is refused, CallbackHostUnresolved when it resolves to nothing."""
        parts, host, port, literal = self._parse(url)
        if literal is not None:
            return host, port, [_connectable(literal)]
        try:
            answers = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise CallbackHostUnresolved(f"could not resolve {host}: {exc}") from exc
        if not answers:
            raise CallbackHostUnresolved(f"{host} has no address")
        addresses: list[str] = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer)
            except ValueError:
                raise InvalidCallbackUrl(
                    f"callback_url: {host} resolved to {answer!r}, not an address"
                ) from None
            # The message names the class, not the address: the report is shown to the tenant, and
            # the address would tell them what our resolver answers for names they do not own.
            self._check_address(address, parts.scheme, f"{host} resolves to an address that is")
            addresses.append(_connectable(address))
        return host, port, list(dict.fromkeys(addresses))

    def _parse(self, url: str) -> tuple[SplitResult, str, int, IPAddress | None]:
        """Checks everything that needs no DNS; returns the parts, the host (lowercase, without
        brackets or a final dot), the port and, for a literal address, that address."""
        if not isinstance(url, str) or not url:
            raise InvalidCallbackUrl("callback_url must be a non-empty string")
        if len(url) > MAX_URL_LENGTH:
            raise InvalidCallbackUrl(f"callback_url is longer than {MAX_URL_LENGTH} characters")
        # urlsplit silently drops tabs and newlines and strips leading spaces: check the raw text.
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
            raise InvalidCallbackUrl("callback_url contains whitespace or control characters")
        if not url.isascii():
            raise InvalidCallbackUrl(
                "callback_url must be ASCII (punycode the host, percent-encode the path)"
            )
        try:
            parts = urlsplit(url)
        except ValueError:  # unbalanced or invalid [brackets]
            raise InvalidCallbackUrl("callback_url is not a valid URL") from None
        if parts.scheme not in ("https", "http"):
            raise InvalidCallbackUrl("callback_url must be an https:// URL")
        if "@" in parts.netloc:
            raise InvalidCallbackUrl("callback_url must not carry credentials (user@ or user:password@)")
        try:
            port = parts.port
        except ValueError:
            raise InvalidCallbackUrl("callback_url has an invalid port") from None
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        elif not 1 <= port <= 65535:
            raise InvalidCallbackUrl("callback_url port must be between 1 and 65535")
        host = parts.hostname or ""
        host = host[:-1] if host.endswith(".") else host  # "localhost." is localhost
        if not host:
            raise InvalidCallbackUrl("callback_url has no host")
        literal = self._literal(host, parts.netloc)
        if literal is not None:
            self._check_address(literal, parts.scheme, f"{literal} is")
            return parts, host, port, literal
        self._check_name(host, parts.scheme)
        return parts, host, port, None

    @staticmethod
    def _literal(host: str, netloc: str) -> IPAddress | None:
        if "%" in host:
            raise InvalidCallbackUrl("callback_url host must not contain % (no IPv6 zones, no escapes)")
        bracketed = "[" in netloc
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if bracketed:
                raise InvalidCallbackUrl("callback_url has an invalid IPv6 address") from None
            if _reads_as_ipv4(host):
                # 2130706433, 0x7f.1, 127.1: the resolver reads these as 127.0.0.1.
                raise InvalidCallbackUrl(
                    "callback_url IPv4 hosts must be written as dotted decimals"
                ) from None
            return None
        if isinstance(address, ipaddress.IPv6Address) and not bracketed:
            raise InvalidCallbackUrl("callback_url IPv6 hosts must be in brackets")
        return address

    def _check_name(self, host: str, scheme: str) -> None:
        labels = host.split(".")
        if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise InvalidCallbackUrl(f"callback_url host {host!r} is not a valid host name")
        loopback_name = host in _LOOPBACK_NAMES or host.endswith(".localhost")
        if loopback_name:
            if not self.allow_loopback:
                raise InvalidCallbackUrl(f"callback_url host {host} is a loopback name")
            return
        if host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES):
            raise InvalidCallbackUrl(f"callback_url host {host} is an internal name")
        if scheme == "http":
            raise InvalidCallbackUrl(_HTTPS_ONLY)
        if len(labels) < 2 and not self.allow_loopback:
            # A single label is completed from the resolver's search domains: an internal name.
            raise InvalidCallbackUrl(f"callback_url host {host} is not a fully qualified name")

    def _check_address(self, address: IPAddress, scheme: str, subject: str) -> None:
        reason = address_refusal(address, self.allow_loopback)
        if reason is not None:
            raise InvalidCallbackUrl(
                f"callback_url: {subject} {reason}; callbacks only go to public addresses"
            )
        if scheme == "http" and not (self.allow_loopback and _is_loopback(address)):
            raise InvalidCallbackUrl(_HTTPS_ONLY)


def _reads_as_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


# --- delivery ---------------------------------------------------------------------------------
class _PinnedConnection(http.client.HTTPConnection):
    """Connects to an address the guard checked; the name goes only into SNI and the certificate
    check (the caller sets the Host header). No DNS lookup happens here."""

    def __init__(
        self, address: str, port: int, server_name: str, timeout: float, context: ssl.SSLContext | None
    ) -> None:
        super().__init__(address, port, timeout=timeout)
        self._address = address
        self._server_name = server_name
        self._context = context

    def connect(self) -> None:
        try:
            sock = socket.create_connection((self._address, self.port), self.timeout)
        except OSError as exc:
            raise _Unreachable(f"{self._address}: {exc}") from exc
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._context is not None:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self._server_name)
            except BaseException:
                sock.close()
                raise
        self.sock = sock


class _Unreachable(OSError):
    """The address did not take the connection: nothing was sent, another address may be tried."""


class _Deadline:
    """Ends one attempt after `seconds` however the receiver trickles its bytes (a socket timeout
    only bounds each read): shuts the socket, so a blocked read returns at once."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self._connection = connection
        self.passed = threading.Event()
        self._lock = threading.Lock()  # the socket is not closed while the timer shuts it
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            pass

    def _cut(self) -> None:
        with self._lock:
            self.passed.set()
            sock = self._connection.sock
            if sock is not None:
                # The base class's shutdown: SSLSocket's would drop its TLS state under the reader.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


@dataclass(frozen=True)
class _Attempt:
    outcome: str  # "delivered" | "retry" (408, 429, 5xx, network, timeout) | "final" (no retry)
    status_code: int | None = None
    detail: str | None = None
    unreachable: bool = False  # the connection was not made: nothing was sent


@dataclass(frozen=True)
class _Target:
    host: str  # the name: Host header, SNI and the certificate check
    port: int
    addresses: list[str]  # checked; the only addresses connected to
    path: str
    context: ssl.SSLContext | None  # None: plain http (loopback, local stack only)


class HttpCallbackSender:
    """CallbackSender over HTTPS: one resolution, checked; signed POSTs to the checked address with
    retries and jittered exponential backoff; every outcome is a CallbackReport, nothing raised."""

    def __init__(
        self,
        guard: CallbackGuard,
        *,
        attempts: int = 3,
        timeout_seconds: float = 5.0,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._guard = guard
        self._attempts = max(1, attempts)
        self._timeout = timeout_seconds
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._ssl_context = ssl_context  # None: the system's trust store, loaded on first https use

    def deliver(self, url: str, body: bytes, secret: str, execution_id: str) -> CallbackReport:
        try:
            target = self._target(url)
        except InvalidCallbackUrl as exc:
            return CallbackReport("refused", 0, detail=exc.message)
        except CallbackHostUnresolved as exc:
            return CallbackReport("failed", 0, detail=str(exc))
        except Exception as exc:  # a report is the only outcome a caller sees
            return CallbackReport("failed", 0, detail=f"the callback URL could not be checked: {exc!r}")
        https = target.context is not None
        name = f"[{target.host}]" if ":" in target.host else target.host
        headers = {
            "Host": name if target.port == (443 if https else 80) else f"{name}:{target.port}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EXECUTION_ID_HEADER: execution_id,
            DELIVERY_HEADER: str(uuid.uuid4()),  # one id for every attempt: receivers dedupe on it
            "Connection": "close",
        }
        last = _Attempt("retry")
        for attempt in range(self._attempts):
            if attempt:
                # Exponential backoff with jitter: receivers recovering together are not hit at once.
                self._sleep(self._backoff * 2 ** (attempt - 1) * (0.5 + random.random() / 2))  # noqa: S311
            headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), body)  # fresh for each attempt
            last = self._attempt(target, attempt, headers, body)
            if last.outcome == "delivered":
                return CallbackReport("delivered", attempt + 1, last.status_code)
            if last.outcome == "final":
                return CallbackReport("failed", attempt + 1, last.status_code, last.detail)
        detail = f"gave up after {self._attempts} attempts; the last: {last.detail}"
        return CallbackReport("failed", self._attempts, last.status_code, detail)

    def _target(self, url: str) -> _Target:
        host, port, addresses = self._guard.resolve_checked(url)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return _Target(host, port, addresses, path, self._context() if parts.scheme == "https" else None)

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()  # verifies the chain and the host name
        return self._ssl_context

    def _attempt(self, target: _Target, attempt: int, headers: dict[str, str], body: bytes) -> _Attempt:
        """The checked addresses in turn, from a different one each attempt, until one takes the
        connection: "localhost" is often ::1 first, and a receiver may listen on 127.0.0.1 only."""
        count = len(target.addresses)
        result = _Attempt("retry")
        for offset in range(count):
            result = self._post(target, target.addresses[(attempt + offset) % count], headers, body)
            if not result.unreachable:
                break
        return result

    def _post(self, target: _Target, address: str, headers: dict[str, str], body: bytes) -> _Attempt:
        connection = _PinnedConnection(address, target.port, target.host, self._timeout, target.context)
        deadline = _Deadline(connection, self._timeout)
        try:
            with deadline:
                connection.request("POST", target.path, body=body, headers=headers)
                # Only the status line and headers are read: the answer's body is never needed.
                status = connection.getresponse().status
        except ssl.SSLCertVerificationError as exc:
            return _Attempt(
                "final", None, f"the receiver's TLS certificate was refused: {exc.verify_message}"
            )
        except _Unreachable as exc:
            return _Attempt("retry", None, f"could not connect to {exc}", unreachable=True)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) or deadline.passed.is_set():
                return _Attempt("retry", None, f"no answer within {self._timeout:g} s")
            return _Attempt("retry", None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except Exception as exc:
            return _Attempt("final", None, f"the callback could not be sent: {exc!r}")
        finally:
            connection.close()
        return _classify(status)


def _classify(status: int) -> _Attempt:
    if 200 <= status < 300:
        return _Attempt("delivered", status)
    if 300 <= status < 400:
        return _Attempt(
            "final", status, f"the receiver answered {status}, a redirect: callbacks do not follow them"
        )
    if status in (408, 429) or 500 <= status < 600:
        return _Attempt("retry", status, f"the receiver answered {status}")
    return _Attempt("final", status, f"the receiver answered {status}")
