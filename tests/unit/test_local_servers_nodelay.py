"""The local servers answer a kept-alive connection without Nagle's wait.

They write a response's headers and body in separate sends. With Nagle on, the body waits for the
client's ACK of the headers, which a kept-alive client delays by 40 ms: every call of the local
host and the local gateway paid that. Asserted here on the server's side of the connection, while
it is kept alive, rather than timed (the timing is benchmarks/local_host_floor.py's).
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from local.e2b_host.__main__ import http_server, listening_socket
from local.gateway import Gateway


def nodelay(sock: Any) -> bool:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            if (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def host_server() -> Iterator[tuple[Any, int]]:
    """The local E2B host's own listening socket and server settings, serving a trivial app."""
    sock = listening_socket("127.0.0.1", 0)
    server = http_server(_hello)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield server, sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_local_e2b_host_sets_tcp_nodelay_on_every_accepted_connection(host_server: tuple[Any, int]) -> None:
    server, port = host_server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(2):
            connection.request("GET", "/health")
            assert connection.getresponse().read() == b"ok"
        # Still open: the server's side of this kept-alive connection.
        (protocol,) = server.server_state.connections
        accepted = protocol.transport.get_extra_info("socket")
        assert nodelay(accepted)
    finally:
        connection.close()


class RecordingGateway(Gateway):
    """Keeps each accepted socket so the test can read its options while it is open."""

    accepted: list[socket.socket]

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.accepted.append(request)
        super().finish_request(request, client_address)


def test_local_gateway_sets_tcp_nodelay_on_every_accepted_connection() -> None:
    server = RecordingGateway(("127.0.0.1", 0), [], None)  # type: ignore[arg-type] - no route runs
    server.accepted = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        for _ in range(2):
            connection.request("GET", "/nope")
            response = connection.getresponse()
            assert (response.status, response.read()) == (404, b'{"message":"Not Found"}')
        (accepted,) = server.accepted
        assert nodelay(accepted)
    finally:
        connection.close()
        server.shutdown()
        server.server_close()
