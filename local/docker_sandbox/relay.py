"""The provider's way in to the agent of a Docker sandbox (never runs on the host).

The provider starts this once per gateway process and container with `docker exec` and keeps the
exec open: each request then costs no Engine request and no process start (an exec per call was
~75 ms). It relays requests for as long as its stdin stays open, one at a time:
  in:  a 4-byte big-endian length, then that many bytes of JSON request (one line, no newline);
  out: first TAKEN, as soon as the request is read and before it goes anywhere (a relay that ends
       before saying it provably ran nothing: the provider may send the request again), then the
       agent's NDJSON events as chunks, each a 4-byte length then the bytes, then a zero length.
The agent sees an ordinary caller on its socket (one connection per request, as `agent.py call`),
spares it when it sweeps the container after a timeout, and knows no other protocol.
Standard library only, and as little of it as can be: the process lives inside the sandbox's
memory limit (about half of what importing agent.py costs).
"""

from __future__ import annotations

import os
import socket
import struct
import time

SOCKET = "/.e2b/agent.sock"  # agent.py's SOCKET
CONNECT_WAIT_SECONDS = 30  # the agent may still be starting
NOT_RUNNING = b'{"type": "agent_error", "message": "the agent is not running"}\n'
LENGTH = struct.Struct(">I")
TAKEN = b"\xff\xff\xff\xff"  # never a chunk's length (at most 64 KiB)


def main() -> int:
    while (header := read_exactly(0, LENGTH.size)) is not None:
        request = read_exactly(0, LENGTH.unpack(header)[0])
        if request is None:
            break  # the provider went away mid-request: nothing reached the agent
        write_all(1, TAKEN)
        conn = connect()
        if conn is None:
            write_all(1, LENGTH.pack(len(NOT_RUNNING)) + NOT_RUNNING)
        else:
            with conn:
                conn.sendall(request + b"\n")
                while chunk := conn.recv(1 << 16):
                    write_all(1, LENGTH.pack(len(chunk)) + chunk)
        write_all(1, LENGTH.pack(0))
    return 0


def connect() -> socket.socket | None:
    deadline = time.monotonic() + CONNECT_WAIT_SECONDS
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(SOCKET)
            return conn
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from `fd`; None if it ends first."""
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    raise SystemExit(main())
