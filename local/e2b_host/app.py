"""The ASGI application: one port for the control plane and every sandbox's envd/Jupyter.

Sandbox-plane requests are recognised, as in production, by the ``E2b-Sandbox-Id`` and
``E2b-Sandbox-Port`` headers, and signed ``/files`` URLs by their signature; everything else
is the control plane.
"""

from __future__ import annotations

import contextlib
import logging

from .asgi import ClientGone, Receive, Request, Scope, Send, send_error, send_json
from .control import ControlPlane
from .envd import Envd, handle_files, signature_matches
from .jupyter_api import JupyterServer
from .sandbox import HostError, HostSettings, SandboxRegistry

logger = logging.getLogger(__name__)

ENVD_PORT = "49983"
JUPYTER_PORT = "49999"


class HostApp:
    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.registry = SandboxRegistry(settings)
        self.control = ControlPlane(self.registry)
        self.envd = Envd(self.registry, settings.output_limit_bytes)
        self.jupyter = JupyterServer(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            sandbox_id = request.headers.get("e2b-sandbox-id")
            if sandbox_id is None and request.path == "/files" and request.query_one("signature"):
                await self._signed_files(request, send)
                return
            if sandbox_id is None:
                await self.control.handle(request, send)
                return
            try:
                sandbox = self.registry.get(sandbox_id)
            except HostError:
                # What the edge proxy answers for a sandbox that is gone.
                await send_json(
                    send,
                    502,
                    {"sandboxId": sandbox_id, "message": "The sandbox was not found", "code": 502},
                )
                return
            port = request.headers.get("e2b-sandbox-port", ENVD_PORT)
            if port == JUPYTER_PORT:
                await self.jupyter.handle(sandbox, request, receive, send)
            elif port == ENVD_PORT:
                await self.envd.handle(sandbox, request, scope, receive, send)
            else:
                await send_json(
                    send,
                    502,
                    {
                        "sandboxId": sandbox_id,
                        "message": f"The sandbox is running but port is not open: {port}",
                        "port": int(port) if port.isdigit() else 0,
                        "code": 502,
                    },
                )
        except ClientGone:
            return
        except Exception:
            logger.exception("unhandled error for %s %s", request.method, request.path)
            with contextlib.suppress(Exception):  # the response may already have started
                await send_error(send, 500, "internal error in the local E2B host")

    async def _signed_files(self, request: Request, send: Send) -> None:
        """A signed download/upload URL (``download_url``/``upload_url``) names no sandbox when
        ``E2B_SANDBOX_URL`` points at this host: the sandbox is the one whose access token
        made the signature. Expiry and the rest are envd's checks (``handle_files``)."""
        for sandbox in list(self.registry.sandboxes.values()):
            if not sandbox.gone() and signature_matches(sandbox, request):
                await handle_files(sandbox, request, send)
                return
        await send_error(send, 401, "invalid signature")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.registry.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.envd.shutdown()
                await self.registry.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
