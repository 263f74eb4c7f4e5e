"""The callback guard refuses every address a callback must never reach, literal or resolved, without
ever opening a connection: addresses are handed to it by an injected resolver."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_gateway.adapters.callbacks import CallbackGuard, CallbackHostUnresolved, HttpCallbackSender
from sandbox_gateway.models.errors import InvalidCallbackUrl

PUBLIC_V4 = "93.184.216.34"  # never connected to: only handed to the guard
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

# Every class of address a callback must not reach, with a representative or two.
REFUSED_ADDRESSES = [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "fc00::1",
    "fd12:3456:789a::1",
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "169.254.1.1",
    "169.254.169.254",  # the EC2 / ECS / Lambda metadata service
    "fe80::1",
    "fd00:ec2::254",  # the EC2 metadata service over IPv6
    "100.64.0.1",  # shared / carrier-grade NAT
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "224.0.0.1",  # multicast: Python 3.11 calls it global
    "239.255.255.250",
    "ff02::1",
    "ff0e::1",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.51.100.7",
    "203.0.113.9",
    "2001:db8::1",
    "198.18.0.1",  # benchmarking
    "198.19.255.254",
    "192.0.0.9",  # IETF protocol assignments (3.13 counts this one global)
    "2001:2::1",  # benchmarking IPv6
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::",  # 6to4 embedding 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 embedding 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 embedding 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "fec0::1",  # site-local (deprecated): Python 3.11 calls it global
    "100::1",  # discard-only
    "4000::1",  # unallocated, outside 2000::/3: only is_reserved / is_global catch it
]
# Loopback is the one class the local stack allows (allow_loopback); everything else stays refused.
LOOPBACK = {"127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any connection or real lookup fails the test (and is recorded, in case a broad except eats it)."""
    calls: list[Any] = []
    # Only this thread's calls: a thread left by another test (a pool, a poller) may still
    # connect to its loopback server while this one runs, and must not fail it.
    test_thread = threading.get_ident()

    def forbidden(name: str) -> Callable[..., Any]:
        real = getattr(socket.socket if name == "socket.connect" else socket, name.removeprefix("socket."))

        def refuse(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != test_thread:
                return real(*args, **kwargs)
            calls.append((name, args))
            raise AssertionError(f"{name} called during a guard test: {args}")

        return refuse

    monkeypatch.setattr(socket, "create_connection", forbidden("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", forbidden("getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", forbidden("socket.connect"))
    return calls


def resolver(*answers: str) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        return list(answers)

    return resolve


def url_for(address: str) -> str:
    return f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_guard_refuses_literal_address(address: str) -> None:
    guard = CallbackGuard(allow_loopback=False)
    with pytest.raises(InvalidCallbackUrl):
        guard.check_syntax(url_for(address))  # without DNS, at the API
    with pytest.raises(InvalidCallbackUrl):
        guard.resolve_checked(url_for(address))


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_guard_refuses_name_resolving_to_address(address: str) -> None:
    guard = CallbackGuard(allow_loopback=False, resolve=resolver(address))
    guard.check_syntax("https://hooks.example.com/x")  # the name alone is fine
    with pytest.raises(InvalidCallbackUrl, match=r"hooks\.example\.com resolves to"):
        guard.resolve_checked("https://hooks.example.com/x")


@pytest.mark.parametrize("address", sorted(set(REFUSED_ADDRESSES) - LOOPBACK))
def test_guard_refuses_non_loopback_addresses_even_when_loopback_is_allowed(address: str) -> None:
    guard = CallbackGuard(allow_loopback=True, resolve=resolver(address))
    with pytest.raises(InvalidCallbackUrl):
        guard.resolve_checked(url_for(address))
    with pytest.raises(InvalidCallbackUrl):
        guard.resolve_checked("https://hooks.example.com/x")


@pytest.mark.parametrize("bad", ["10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::ffff:127.0.0.1"])
@pytest.mark.parametrize("order", ["good_first", "bad_first"])
def test_guard_refuses_name_when_any_address_is_refused(bad: str, order: str) -> None:
    answers = (PUBLIC_V4, bad) if order == "good_first" else (bad, PUBLIC_V4)
    guard = CallbackGuard(allow_loopback=False, resolve=resolver(*answers))
    with pytest.raises(InvalidCallbackUrl, match="resolves to") as refused:
        guard.resolve_checked("https://hooks.example.com/x")
    assert str(ipaddress.ip_address(bad)) not in refused.value.message  # no DNS oracle for tenants


def test_guard_passes_public_addresses_and_returns_them_to_connect_to() -> None:
    seen: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        seen.append((host, port))
        return [PUBLIC_V4, PUBLIC_V6, PUBLIC_V4]

    guard = CallbackGuard(allow_loopback=False, resolve=resolve)
    assert guard.resolve_checked("https://Hooks.Example.com:8443/cb?x=1") == (
        "hooks.example.com",
        8443,
        [PUBLIC_V4, PUBLIC_V6],
    )
    assert seen == [("hooks.example.com", 8443)]  # resolved exactly once


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2001:4860:4860::8888", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"]
)
def test_guard_passes_public_literals_including_translations_of_public_ipv4(address: str) -> None:
    _, port, addresses = CallbackGuard(allow_loopback=False).resolve_checked(url_for(address))
    assert port == 443
    # A mapped address is connected to as the IPv4 address that was checked.
    assert addresses == (["8.8.8.8"] if address == "::ffff:8.8.8.8" else [address])


def test_guard_connects_to_the_ipv4_a_mapped_answer_stands_for() -> None:
    guard = CallbackGuard(allow_loopback=False, resolve=resolver("::ffff:93.184.216.34"))
    assert guard.resolve_checked("https://hooks.example.com/")[2] == [PUBLIC_V4]


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "http://93.184.216.34/x",
        "http://127.0.0.1:8080/x",
        "http://localhost:8080/x",
        "http://[::1]:8080/x",
    ],
)
def test_guard_refuses_http_when_loopback_is_not_allowed(url: str) -> None:
    guard = CallbackGuard(allow_loopback=False, resolve=resolver(PUBLIC_V4))
    with pytest.raises(InvalidCallbackUrl):
        guard.check_syntax(url)
    with pytest.raises(InvalidCallbackUrl):
        guard.resolve_checked(url)


@pytest.mark.parametrize("url", ["http://hooks.example.com/x", "http://93.184.216.34/x"])
def test_guard_refuses_http_to_public_hosts_even_when_loopback_is_allowed(url: str) -> None:
    guard = CallbackGuard(allow_loopback=True, resolve=resolver(PUBLIC_V4))
    with pytest.raises(InvalidCallbackUrl, match="https"):
        guard.resolve_checked(url)


def test_guard_refuses_http_to_a_name_that_is_not_all_loopback() -> None:
    guard = CallbackGuard(allow_loopback=True, resolve=resolver("127.0.0.1", PUBLIC_V4))
    with pytest.raises(InvalidCallbackUrl, match="https"):
        guard.resolve_checked("http://localhost:9000/x")


@pytest.mark.parametrize(
    ("url", "answers"),
    [
        ("http://127.0.0.1:9000/x", ()),
        ("http://127.0.0.2:9000/x", ()),
        ("http://[::1]:9000/x", ()),
        ("http://localhost:9000/x", ("127.0.0.1", "::1")),
        ("http://localhost./x", ("127.0.0.1",)),
        ("https://localhost:9443/x", ("127.0.0.1",)),
        ("https://receiver.localhost/x", ("127.0.0.1",)),
    ],
)
def test_guard_allows_loopback_only_when_allowed(url: str, answers: tuple[str, ...]) -> None:
    allowed = CallbackGuard(allow_loopback=True, resolve=resolver(*answers))
    allowed.check_syntax(url)
    host, _, addresses = allowed.resolve_checked(url)
    assert addresses == (list(answers) or [host])
    refused = CallbackGuard(allow_loopback=False, resolve=resolver(*answers))
    with pytest.raises(InvalidCallbackUrl):
        refused.check_syntax(url)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "api.localhost",
        "ip6-localhost",
        "metadata.google.internal",
        "metadata.google.internal.",
        "metadata",
        "instance-data",
        "ip-10-0-0-1.ec2.internal",
        "printer.local",
        "router.lan",
        "intranet",  # one label: completed from the resolver's search domains
    ],
)
def test_guard_refuses_internal_names_without_resolving(host: str) -> None:
    looked_up: list[str] = []

    def resolve(name: str, port: int) -> list[str]:
        looked_up.append(name)
        return [PUBLIC_V4]

    guard = CallbackGuard(allow_loopback=False, resolve=resolve)
    with pytest.raises(InvalidCallbackUrl):
        guard.check_syntax(f"https://{host}/x")
    with pytest.raises(InvalidCallbackUrl):
        guard.resolve_checked(f"https://{host}/x")
    assert looked_up == []


@pytest.mark.parametrize("host", ["metadata.google.internal", "ip-10-0-0-1.ec2.internal", "printer.local"])
def test_guard_refuses_internal_names_even_when_loopback_is_allowed(host: str) -> None:
    with pytest.raises(InvalidCallbackUrl, match="internal"):
        CallbackGuard(allow_loopback=True, resolve=resolver("127.0.0.1")).check_syntax(f"https://{host}/")


@pytest.mark.parametrize(
    "url",
    [
        "https://user@hooks.example.com/x",
        "https://user:secret@hooks.example.com/x",
        "https://hooks.example.com@169.254.169.254/x",
        "https://:@hooks.example.com/x",
    ],
)
def test_guard_refuses_userinfo(url: str) -> None:
    with pytest.raises(InvalidCallbackUrl, match="credentials"):
        CallbackGuard(allow_loopback=True, resolve=resolver(PUBLIC_V4)).check_syntax(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com:0/x",
        "https://hooks.example.com:65536/x",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com:-1/x",
        "https://hooks.example.com:http/x",
        "https://hooks.example.com:+443/x",
        "https://hooks.example.com:4 43/x",
    ],
)
def test_guard_refuses_bad_ports(url: str) -> None:
    with pytest.raises(InvalidCallbackUrl):
        CallbackGuard(allow_loopback=False, resolve=resolver(PUBLIC_V4)).check_syntax(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "hooks.example.com/x",  # no scheme
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
        "https:///x",  # no host
        "https://",
        "https://hooks.example.com/" + "a" * 2048,
        " https://hooks.example.com/x",  # urlsplit would strip the space
        "https://hooks.example.com/x\n",
        "https://hooks.exa\tmple.com/x",  # urlsplit would drop the tab: hooks.example.com
        "https://hooks.example.com/\x00",
        "https://hooks.example.com/\x7f",
        "https://hooks.example.com/a b",
        "https://hööks.example.com/x",
        "https://hooks..example.com/x",
        "https://-hooks.example.com/x",
        "https://hooks.example.com\\@169.254.169.254/",
        "https://[::1/x",
        "https://[1.2.3.4]/x",
        "https://[fe80::1%25eth0]/x",
        "https://%31%32%37.0.0.1/x",
        "https://2130706433/x",  # 127.0.0.1 to the resolver
        "https://0x7f.0.0.1/x",
        "https://0177.0.0.1/x",
        "https://127.1/x",
        "https://0x7f000001/x",
    ],
)
def test_guard_refuses_malformed_urls(url: str) -> None:
    guard = CallbackGuard(allow_loopback=True, resolve=resolver(PUBLIC_V4))
    with pytest.raises(InvalidCallbackUrl):
        guard.check_syntax(url)
    with pytest.raises(InvalidCallbackUrl):
        guard.resolve_checked(url)


def test_guard_accepts_a_url_of_exactly_the_maximum_length() -> None:
    prefix = "https://hooks.example.com/"
    guard = CallbackGuard(allow_loopback=False, resolve=resolver(PUBLIC_V4))
    guard.check_syntax(prefix + "a" * (2048 - len(prefix)))
    with pytest.raises(InvalidCallbackUrl, match="2048"):
        guard.check_syntax(prefix + "a" * (2049 - len(prefix)))


def test_guard_error_messages_say_why() -> None:
    guard = CallbackGuard(allow_loopback=False, resolve=resolver("169.254.169.254"))
    with pytest.raises(InvalidCallbackUrl, match="link-local") as refused:
        guard.resolve_checked("https://hooks.example.com/x")
    assert refused.value.code == "invalid_callback_url"
    with pytest.raises(InvalidCallbackUrl, match="https://"):
        guard.check_syntax("http://hooks.example.com/x")


def test_guard_refuses_a_resolver_answer_that_is_not_an_address() -> None:
    guard = CallbackGuard(allow_loopback=False, resolve=resolver("not-an-ip"))
    with pytest.raises(InvalidCallbackUrl, match="not an address"):
        guard.resolve_checked("https://hooks.example.com/x")


@pytest.mark.parametrize("failure", [socket.gaierror(-2, "Name or service not known"), []])
def test_guard_reports_an_unresolvable_host_apart_from_a_refusal(failure: Any) -> None:
    def resolve(host: str, port: int) -> list[str]:
        if isinstance(failure, Exception):
            raise failure
        return list(failure)

    with pytest.raises(CallbackHostUnresolved):
        CallbackGuard(allow_loopback=False, resolve=resolve).resolve_checked("https://hooks.example.com/")


def test_guard_default_resolver_asks_getaddrinfo_once_and_dedupes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append((host, port))
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (PUBLIC_V6, port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert CallbackGuard(allow_loopback=False).resolve_checked("https://hooks.example.com/") == (
        "hooks.example.com",
        443,
        [PUBLIC_V4, PUBLIC_V6],
    )
    assert calls == [("hooks.example.com", 443)]


def test_guard_default_resolver_refuses_a_rebinding_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ],
    )
    with pytest.raises(InvalidCallbackUrl, match="link-local"):
        CallbackGuard(allow_loopback=False).resolve_checked("https://rebind.example.com/")


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "fd00:ec2::254", "127.0.0.1"])
def test_sender_refuses_without_connecting(address: str, no_network: list[Any]) -> None:
    sender = HttpCallbackSender(CallbackGuard(allow_loopback=False, resolve=resolver(address)))
    report = sender.deliver("https://hooks.example.com/x", b"{}", "s3cret", "exe_1")
    assert (report.status, report.attempts, report.last_status_code) == ("refused", 0, None)
    assert report.detail and "hooks.example.com resolves to" in report.detail
    assert address not in report.detail  # the tenant sees the report: no answers of our resolver
    assert no_network == []


def test_sender_reports_an_unresolvable_host_as_failed() -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    report = HttpCallbackSender(CallbackGuard(allow_loopback=False, resolve=resolve)).deliver(
        "https://hooks.example.com/x", b"{}", "s3cret", "exe_1"
    )
    assert (report.status, report.attempts) == ("failed", 0)
    assert report.detail and "resolve" in report.detail
