"""The code-interpreter server of a sandbox (port 49999): ``/execute`` and ``/contexts``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from .asgi import ClientGone, Receive, Request, Send, send_bytes, send_empty, send_json
from .kernels import KernelDied, OutputSink, normalize_language, unsupported_language_message
from .paths import DEFAULT_CWD
from .sandbox import CodeContext, HostError, HostSettings, Sandbox, run_in_context

logger = logging.getLogger(__name__)

# Like E2B's code-interpreter server: a line every few seconds while a cell is silent, so a
# client that went away is noticed (a write to a closed connection fails) and its cell stopped.
KEEPALIVE_INTERVAL_S = 5.0


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event) + "\n").encode()


def _language(value: Any) -> str:
    lang = normalize_language(value)
    if lang is None:  # R and Java: no kernel for them in the registries this host installs from
        raise HostError(400, unsupported_language_message(value))
    return lang


async def _plain(send: Send, status: int, message: str) -> None:
    """The real server answers these with plain text; the SDK puts the body in the exception."""
    await send_bytes(send, status, message.encode(), "text/plain; charset=utf-8")


class JupyterServer:
    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings

    async def handle(self, sandbox: Sandbox, request: Request, receive: Receive, send: Send) -> None:
        path, method = request.path.rstrip("/"), request.method
        try:
            if path == "/execute" and method == "POST":
                await self.execute(sandbox, request, receive, send)
            elif path == "/contexts" and method == "POST":
                body = await request.json()
                if not isinstance(body, dict):
                    raise HostError(400, "body must be a JSON object")
                context = sandbox.create_context(
                    _language(body.get("language")), body.get("cwd") or DEFAULT_CWD
                )
                try:
                    await context.ensure_kernel()
                except Exception as exc:
                    await sandbox.remove_context(context.id)
                    raise HostError(500, f"failed to start the {context.language} kernel: {exc}") from None
                await send_json(send, 200, context.to_json())
            elif path == "/contexts" and method == "GET":
                await send_json(send, 200, [c.to_json() for c in sandbox.contexts.values()])
            elif path.startswith("/contexts/") and path.endswith("/restart") and method == "POST":
                context = self._context(sandbox, path.split("/")[2])
                # A cell that ignores interrupts holds the context's lock: stopping the kernel
                # first ends that cell, so the restart does not wait behind it.
                if context.kernel is not None:
                    await context.kernel.stop()
                await context.restart()
                await send_empty(send, 204)
            elif path.startswith("/contexts/") and path.count("/") == 2 and method == "DELETE":
                await sandbox.remove_context(path.split("/")[2])
                await send_empty(send, 204)
            elif path == "/health":
                await send_json(send, 200, "OK")
            else:
                await _plain(send, 404, f"Not Found: {method} {path}")
        except HostError as exc:
            await _plain(send, exc.status, exc.message)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            await _plain(send, 400, f"invalid JSON body: {exc}")

    @staticmethod
    def _context(sandbox: Sandbox, context_id: str) -> CodeContext:
        context = sandbox.contexts.get(context_id)
        if context is None:
            raise HostError(404, f"Context {context_id} not found")
        return context

    async def execute(self, sandbox: Sandbox, request: Request, receive: Receive, send: Send) -> None:
        body = await request.json()
        if not isinstance(body, dict):
            raise HostError(400, "body must be a JSON object")
        code = body.get("code")
        if not isinstance(code, str):
            raise HostError(400, "'code' must be a string")
        env_vars = body.get("env_vars") or {}
        if not isinstance(env_vars, dict):
            raise HostError(400, "'env_vars' must be an object")
        env_vars = {str(k): str(v) for k, v in env_vars.items()}
        context_id, language = body.get("context_id"), body.get("language")
        if context_id and language:
            raise HostError(400, "Only one of context_id or language can be provided")
        if context_id:
            context = self._context(sandbox, str(context_id))
        else:
            context = sandbox.default_context(_language(language))

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson"), (b"cache-control", b"no-store")],
            }
        )
        disconnected = asyncio.Event()

        sink = OutputSink(self.settings.output_limit_bytes)

        async def watch_disconnect() -> None:
            with contextlib.suppress(Exception):
                while (await receive())["type"] != "http.disconnect":
                    pass
            disconnected.set()
            sink.queue.put_nowait(None)  # wake the writer at once

        starting, started = asyncio.Event(), asyncio.Event()

        async def run() -> None:
            try:
                async with context.lock:
                    # The kernel first: an interrupt sent while it starts would be lost and
                    # the abandoned cell would run to its end.
                    starting.set()
                    try:
                        await context.ensure_kernel()
                    except KernelDied as exc:
                        sink.error("KernelStartError", str(exc), "")
                        return
                    started.set()
                    await run_in_context(context, code, env_vars, sink)
            except Exception as exc:
                logger.exception("execution failed")
                sink.error("HostError", f"the local E2B host failed to run the cell: {exc}", "")
            finally:
                sink.queue.put_nowait(None)

        watcher = asyncio.create_task(watch_disconnect())
        runner = asyncio.create_task(run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_execution_s
        timed_out = False
        last_write = loop.time()
        try:
            while True:
                try:
                    event = await asyncio.wait_for(sink.queue.get(), timeout=0.5)
                except TimeoutError:
                    if disconnected.is_set() or sandbox.gone():
                        break
                    if loop.time() - last_write >= KEEPALIVE_INTERVAL_S:
                        last_write = loop.time()
                        await send(
                            {
                                "type": "http.response.body",
                                "body": _line({"type": "keepalive"}),
                                "more_body": True,
                            }
                        )
                    if not timed_out and loop.time() > deadline:
                        timed_out = True
                        sink.error("TimeoutError", f"execution exceeded {self.settings.max_execution_s}s", "")
                        await self._stop_run(context, runner, starting, started)
                    continue
                if event is None or disconnected.is_set() or sandbox.gone():
                    break
                await send({"type": "http.response.body", "body": _line(event), "more_body": True})
                last_write = loop.time()
            # A sandbox killed meanwhile drops the connection instead (the response is left
            # unfinished), as E2B's does: the SDK then probes it, finds it gone and says so.
            if not disconnected.is_set() and not sandbox.gone():
                await send({"type": "http.response.body", "body": _line({"type": "end_of_execution"})})
        except (OSError, ClientGone):
            disconnected.set()
        finally:
            watcher.cancel()
            if not runner.done() and sandbox.gone():
                runner.cancel()
            elif not runner.done():
                logger.info("client left during execution in sandbox %s; interrupting", sandbox.sandbox_id)
                await self._stop_run(context, runner, starting, started)

    async def _stop_run(
        self,
        context: CodeContext,
        runner: asyncio.Task[None],
        starting: asyncio.Event,
        started: asyncio.Event,
    ) -> None:
        """Interrupt the cell; restart the kernel if it does not stop within the grace period."""
        if starting.is_set() and not started.is_set():
            # Cancelling now would lose the kernel being started: let it come up, then interrupt.
            ready = asyncio.create_task(started.wait())
            await asyncio.wait({runner, ready}, timeout=90, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if runner.done():
                return
        if not started.is_set():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            return
        kernel = context.kernel
        done: set[asyncio.Task[None]] = set()
        if kernel is not None:
            # Twice: a kernel still receiving the cell ignores an interrupt (it is idle).
            await kernel.interrupt()
            done, _ = await asyncio.wait({runner}, timeout=0.5)
            if not done:
                await kernel.interrupt()
        if not done:
            done, _ = await asyncio.wait({runner}, timeout=self.settings.interrupt_grace_s)
        # Only the kernel that ran this cell: a client may have restarted the context meanwhile.
        if not done and kernel is not None and context.kernel is kernel:
            logger.warning("kernel of context %s ignored the interrupt; stopping it", context.id)
            await kernel.stop()
            await asyncio.wait({runner}, timeout=self.settings.interrupt_grace_s)
