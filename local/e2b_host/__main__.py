"""``python -m local.e2b_host``: start the local E2B-compatible host."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from ..sandbox_runtime import RuntimeUnavailable, ensure_runtime
from .app import HostApp
from .isolation import IsolationUnavailable, Limits, check_isolation, private_mount_namespace
from .sandbox import DEFAULT_TEMPLATES, HostSettings
from .testing import READY_PREFIX

logger = logging.getLogger("local.e2b_host")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.e2b_host", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (loopback only; default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=49982, help="port for the control and sandbox planes (0 = any)"
    )
    parser.add_argument(
        "--template",
        action="append",
        dest="templates",
        help=f"template id to accept (repeatable; default: {', '.join(DEFAULT_TEMPLATES)})",
    )
    parser.add_argument(
        "--base-dir", type=Path, default=None, help="where sandbox trees are created (default: TMPDIR)"
    )
    parser.add_argument(
        "--output-limit-mb", type=float, default=16.0, help="output cap per execution/command"
    )
    parser.add_argument(
        "--max-execution-seconds", type=float, default=3600.0, help="server-side cap on one cell"
    )
    parser.add_argument("--max-sandboxes", type=int, default=200)
    defaults = Limits()
    mib = 1024 * 1024
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=defaults.memory_bytes // mib,
        help="memory per sandbox (memory cgroup; RLIMIT_DATA per process without one)",
    )
    parser.add_argument(
        "--pids", type=int, default=defaults.pids, help="tasks per sandbox (pids cgroup, RLIMIT_NPROC)"
    )
    parser.add_argument(
        "--disk-mb",
        type=int,
        default=defaults.disk_bytes // mib,
        help="size of the tmpfs holding /home/user, /workspace and /root (also RLIMIT_FSIZE)",
    )
    parser.add_argument("--tmp-mb", type=int, default=defaults.tmp_bytes // mib, help="size of /tmp (noexec)")
    parser.add_argument("--inodes", type=int, default=defaults.inodes, help="inodes per tmpfs")
    parser.add_argument("--nofile", type=int, default=defaults.nofile, help="RLIMIT_NOFILE")
    parser.add_argument(
        "--cpus", type=float, default=defaults.cpus, help="CPUs per sandbox (cpu cgroup quota; 0 = none)"
    )
    parser.add_argument(
        "--runtime",
        type=Path,
        default=None,
        help="the sandboxes' Python runtime (default: python -m local.sandbox_runtime's, built if missing)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def listening_socket(host: str, port: int) -> socket.socket:
    """The host's listening socket, made with IPPROTO_TCP: asyncio sets TCP_NODELAY only on
    accepted sockets whose proto says TCP, and accepted sockets inherit the listener's. With
    proto 0 Nagle stayed on, and uvicorn's separate writes of headers and body met the client's
    delayed ACK: a 40 ms wait on every response of a kept-alive connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def http_server(app: Callable[..., Any]) -> uvicorn.Server:
    """The host's HTTP server (h11, idle connections kept 330 s) for an ASGI `app`.

    Longer than the SDK's transports keep an idle connection (``E2B_KEEPALIVE_EXPIRY``, 300 s),
    so the client always closes first: a server closing an idle connection as the client reuses
    it loses that request (`RemoteProtocolError`; a file write 32 s after the last call did).
    """
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=330,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not ipaddress.ip_address(args.host).is_loopback:
        logger.error("refusing to bind %s: the local E2B host only listens on loopback addresses", args.host)
        return 2
    logger.warning(
        "The local E2B host is a development tool; its sandboxes are contained (own user, no "
        "capabilities, no network unless asked, read-only system, limits) but share this "
        "machine's kernel: a kernel exploit escapes them. See local/e2b_host/README.md."
    )
    try:
        check_isolation()
        # Before any thread starts: the sandboxes' mounts then die with this process.
        if not private_mount_namespace():
            logger.warning("no private mount namespace: a killed host leaves its tmpfs mounts behind")
    except IsolationUnavailable as exc:
        logger.error("cannot start: per-sandbox namespaces are unavailable: %s", exc)
        logger.error(
            "install bubblewrap (apt-get install bubblewrap) and run as root on a kernel that "
            "allows unprivileged user namespaces"
        )
        return 3

    try:
        runtime = args.runtime or ensure_runtime()
    except RuntimeUnavailable as exc:
        logger.error("cannot start: no sandbox runtime: %s", exc)
        return 3
    mib = 1024 * 1024
    settings = HostSettings(
        runtime=runtime,
        templates=tuple(args.templates) if args.templates else DEFAULT_TEMPLATES,
        base_dir=args.base_dir,
        output_limit_bytes=int(args.output_limit_mb * 1024 * 1024),
        max_execution_s=args.max_execution_seconds,
        max_sandboxes=args.max_sandboxes,
        limits=Limits(
            memory_bytes=args.memory_mb * mib,
            pids=args.pids,
            nofile=args.nofile,
            disk_bytes=args.disk_mb * mib,
            tmp_bytes=args.tmp_mb * mib,
            inodes=args.inodes,
            cpus=args.cpus,
        ),
    )
    app = HostApp(settings)
    atexit.register(app.registry.kill_all_now)

    sock = listening_socket(args.host, args.port)
    port = sock.getsockname()[1]
    server = http_server(app)
    logger.info("sandbox trees under %s; sandbox runtime %s", app.registry.base_dir, runtime)
    print(f"{READY_PREFIX}http://{args.host}:{port}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
