"""Sandboxes, their code contexts, and the registry that creates, expires and kills them."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..sandbox_runtime import font_cache
from .isolation import (
    SANDBOX_PATH,
    SHM_DIR,
    Cgroups,
    Limits,
    RuntimeBinds,
    SandboxNamespace,
    mount_tmpfs,
    unmount,
)
from .kernels import KERNEL_CLASSES, Kernel, KernelDied, OutputSink
from .metrics import SAMPLE_INTERVAL_S, MetricsHistory
from .paths import DEFAULT_CWD, PathRefused, SandboxFS
from .processes import CommandRecord

logger = logging.getLogger(__name__)

ENVD_VERSION = "0.6.4"
DEFAULT_TEMPLATES = ("code-interpreter-v1", "code-interpreter", "base")
MAX_TIMEOUT_S = 24 * 3600
# The sandbox's tmpfs mounts: "data" (home, workspace, root), "tmp" and /dev/shm (noexec).
_TMPFS = ("data", "tmp", SHM_DIR)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


class HostError(Exception):
    """An error with the HTTP status and message the SDK expects."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class HostSettings:
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    base_dir: Path | None = None
    output_limit_bytes: int = 16 * 1024 * 1024
    max_execution_s: float = 3600.0
    interrupt_grace_s: float = 5.0
    max_sandboxes: int = 200
    limits: Limits = field(default_factory=Limits)
    # The sandbox runtime's directory on the host (local/sandbox_runtime); required to start.
    runtime: Path | None = None


class CodeContext:
    def __init__(self, sandbox: Sandbox, context_id: str, language: str, cwd: str) -> None:
        self.sandbox = sandbox
        self.id = context_id
        self.language = language
        self.cwd = cwd
        self.kernel: Kernel | None = None
        self.lock = asyncio.Lock()
        self._starting: asyncio.Task[Kernel] | None = None

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    async def ensure_kernel(self) -> Kernel:
        """The running kernel, (re)starting it if it is missing or dead."""
        if self.kernel is not None and self.kernel.alive():
            return self.kernel
        task = self._starting
        if task is None or task.done():
            old, self.kernel = self.kernel, None
            task = self._starting = asyncio.create_task(self._start_kernel(old))
        try:
            kernel = await asyncio.shield(task)
        finally:
            if self._starting is task and task.done():
                self._starting = None
        self.kernel = kernel
        return kernel

    async def _start_kernel(self, old: Kernel | None) -> Kernel:
        if old is not None:
            await old.stop()
        cls = KERNEL_CLASSES[self.language]
        kernel = cls(self.sandbox.namespace, cwd=self.cwd, env=self.sandbox.process_env(), kernel_id=self.id)
        try:
            await kernel.start()
        except BaseException:
            await kernel.stop()
            raise
        return kernel

    async def restart(self) -> None:
        async with self.lock:
            if self.kernel is not None:
                await self.kernel.stop()
                self.kernel = None
            await self.ensure_kernel()

    async def close(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self.kernel is not None:
            await self.kernel.stop()
            self.kernel = None


@dataclass
class Sandbox:
    sandbox_id: str
    template_id: str
    client_id: str
    envd_access_token: str
    started_at: float
    end_at: float
    metadata: dict[str, str]
    env_vars: dict[str, str]
    allow_internet_access: bool
    root: Path
    namespace: SandboxNamespace
    fs: SandboxFS
    contexts: dict[str, CodeContext] = field(default_factory=dict)
    default_contexts: dict[str, CodeContext] = field(default_factory=dict)
    processes: dict[int, CommandRecord] = field(default_factory=dict)
    metrics: MetricsHistory | None = None
    closed: bool = False

    def gone(self) -> bool:
        """Killed, expired, or its namespace's init died (then nothing in it can run)."""
        return self.closed or self.end_at <= time.time() or not self.namespace.alive()

    def process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            # The runtime first: `python`, `python3`, `pip` (and our `sudo`) are its own.
            "PATH": SANDBOX_PATH,
            "HOME": DEFAULT_CWD,
            "USER": "user",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "TERM": "xterm",
            "E2B_SANDBOX": "true",
            "E2B_SANDBOX_ID": self.sandbox_id,
            "E2B_TEMPLATE_ID": self.template_id,
        }
        env.update(self.env_vars)
        if extra:
            env.update(extra)
        return env

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "templateID": self.template_id,
            "alias": self.template_id,
            "sandboxID": self.sandbox_id,
            "clientID": self.client_id,
            "startedAt": _iso(self.started_at),
            "endAt": _iso(self.end_at),
            "cpuCount": os.cpu_count() or 1,
            "memoryMB": 512,
            "diskSizeMB": 1024,
            "state": "running",
            "envdVersion": ENVD_VERSION,
            "metadata": dict(self.metadata),
        }
        if detail:
            data["envdAccessToken"] = self.envd_access_token
            data["allowInternetAccess"] = self.allow_internet_access
            data["domain"] = None
        return data

    def created_json(self) -> dict[str, Any]:
        return {
            "templateID": self.template_id,
            "sandboxID": self.sandbox_id,
            "clientID": self.client_id,
            "alias": self.template_id,
            "envdVersion": ENVD_VERSION,
            "envdAccessToken": self.envd_access_token,
            "domain": None,
        }

    # --- code contexts -------------------------------------------------------------------

    def _new_context(self, language: str, cwd: str) -> CodeContext:
        context = CodeContext(self, str(uuid.uuid4()), language, cwd)
        self.contexts[context.id] = context
        return context

    def default_context(self, language: str) -> CodeContext:
        context = self.default_contexts.get(language)
        if context is None:
            context = self._new_context(language, DEFAULT_CWD)
            self.default_contexts[language] = context
        return context

    def create_context(self, language: str, cwd: str) -> CodeContext:
        try:
            vpath = self.fs.make_dirs(cwd)
        except PathRefused as exc:
            raise HostError(400, str(exc)) from None
        return self._new_context(language, vpath)

    async def remove_context(self, context_id: str) -> None:
        context = self.contexts.pop(context_id, None)
        if context is None:
            raise HostError(404, f"Context {context_id} not found")
        for lang, ctx in list(self.default_contexts.items()):
            if ctx is context:
                del self.default_contexts[lang]
        await context.close()


class SandboxRegistry:
    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.sandboxes: dict[str, Sandbox] = {}
        base = settings.base_dir
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        self.base_dir = Path(tempfile.mkdtemp(prefix="e2b-host-", dir=base))
        # bwrap runs as each sandbox's uid and must traverse to its tree (whose tmpfs
        # roots are 0700 and the sandbox's); nobody may list the base directory.
        os.chmod(self.base_dir, 0o711)  # noqa: S103 - traverse only, no listing
        if settings.runtime is None:
            raise ValueError("HostSettings.runtime is required (python -m local.sandbox_runtime builds it)")
        self.runtime = RuntimeBinds(self.base_dir / "runtime", settings.runtime)
        self._font_cache = font_cache(settings.runtime)
        self._reaper: asyncio.Task[None] | None = None
        self._next_pid = 1000
        self._uids: set[int] = set()

    def _allocate_uid(self) -> int:
        """A host uid no user and no other sandbox (of any host on this machine, with
        overwhelming likelihood) has: RLIMIT_NPROC and file ownership are per sandbox."""
        while True:
            uid = 2_000_000 + secrets.randbelow(1_000_000_000)
            if uid not in self._uids:
                self._uids.add(uid)
                return uid

    def next_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_loop())

    async def _reap_loop(self) -> None:
        next_sample = 0.0
        while True:
            await asyncio.sleep(0.25)
            now = time.time()
            if now >= next_sample:
                next_sample = now + SAMPLE_INTERVAL_S
                self._sample_metrics()
            for sandbox in [s for s in self.sandboxes.values() if s.end_at <= now or not s.namespace.alive()]:
                if sandbox.end_at <= now:
                    logger.info("sandbox %s timed out; killing it", sandbox.sandbox_id)
                else:
                    logger.warning("sandbox %s lost its init process; removing it", sandbox.sandbox_id)
                try:
                    await self.kill(sandbox.sandbox_id)
                except Exception:
                    logger.exception("failed to kill expired sandbox %s", sandbox.sandbox_id)

    def _sample_metrics(self) -> None:
        for sandbox in self.sandboxes.values():
            if sandbox.metrics is not None and not sandbox.gone():
                try:
                    sandbox.metrics.sample()
                except OSError:
                    logger.debug("sampling the metrics of %s failed", sandbox.sandbox_id, exc_info=True)

    def get(self, sandbox_id: str) -> Sandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.gone():
            raise HostError(404, f"sandbox {sandbox_id} not found")
        return sandbox

    async def create(
        self,
        template: str,
        timeout: int,
        metadata: dict[str, str],
        env_vars: dict[str, str],
        allow_internet_access: bool,
    ) -> Sandbox:
        if template not in self.settings.templates:
            raise HostError(404, f"template '{template}' not found")
        if timeout <= 0 or timeout > MAX_TIMEOUT_S:
            raise HostError(400, f"timeout must be between 1 and {MAX_TIMEOUT_S} seconds")
        if len(self.sandboxes) >= self.settings.max_sandboxes:
            raise HostError(429, f"too many running sandboxes (limit {self.settings.max_sandboxes})")
        sandbox_id = "i" + secrets.token_hex(10)
        root = self.base_dir / sandbox_id
        limits = self.settings.limits
        uid = self._allocate_uid()
        namespace = None
        disk_fds: list[int] = []
        try:
            fs_root = root / "fs"
            for rel in _TMPFS:
                (fs_root / rel).mkdir(parents=True)
                size = limits.disk_bytes if rel == "data" else limits.tmp_bytes
                if not mount_tmpfs(
                    fs_root / rel, size=size, inodes=limits.inodes, uid=uid, gid=uid, noexec=rel != "data"
                ):
                    raise HostError(
                        500, "cannot mount the sandbox's file systems (the host must run as root)"
                    )
            os.chmod(fs_root / SHM_DIR, 0o1777)  # noqa: S103 - as /dev/shm always is
            # Opened now, before any sandbox code runs: statvfs for the metrics goes through them.
            flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
            disk_fds = [os.open(fs_root / rel, flags) for rel in ("data", "tmp")]
            fs = SandboxFS(fs_root, uid=uid)
            fs.create_tree()
            seed_home(fs_root, uid, self._font_cache)
            state = root / "state"
            state.mkdir()
            namespace = SandboxNamespace(
                fs_root,
                state,
                hostname="e2b-" + sandbox_id[:8],
                host_uid=uid,
                network=allow_internet_access,
                limits=limits,
                cgroups=Cgroups.create(f"e2b-{sandbox_id}", limits),
                runtime=self.runtime.pairs,
            )
            # On the event-loop thread on purpose: bwrap dies with the thread that forked it.
            namespace.start()
        except BaseException:
            for fd in disk_fds:
                os.close(fd)
            if namespace is not None:
                namespace.kill()
            self._remove_tree(root)
            self._uids.discard(uid)
            raise
        now = time.time()
        sandbox = Sandbox(
            sandbox_id=sandbox_id,
            template_id=template,
            client_id="local",
            envd_access_token=secrets.token_urlsafe(24),
            started_at=now,
            end_at=now + timeout,
            metadata=metadata,
            env_vars=env_vars,
            allow_internet_access=allow_internet_access,
            root=root,
            namespace=namespace,
            fs=fs,
            metrics=MetricsHistory(namespace.cgroups, limits.cpus, limits.memory_bytes, disk_fds),
        )
        sandbox.metrics.sample()  # E2B has a first sample within seconds; so do we
        self.sandboxes[sandbox_id] = sandbox
        # Warm the default Python kernel like the real template does; errors surface on use.
        context = sandbox.default_context("python")
        task = asyncio.create_task(context.ensure_kernel())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        # E2B's server also creates a JavaScript context at start: listed (and its id kept) from now
        # on; its node process starts on first use, so a sandbox that never runs JS pays nothing.
        sandbox.default_context("javascript")
        logger.info("created sandbox %s (template %s, timeout %ss)", sandbox_id, template, timeout)
        return sandbox

    def set_timeout(self, sandbox_id: str, timeout: int) -> None:
        sandbox = self.get(sandbox_id)
        if timeout <= 0 or timeout > MAX_TIMEOUT_S:
            raise HostError(400, f"timeout must be between 1 and {MAX_TIMEOUT_S} seconds")
        sandbox.end_at = time.time() + timeout

    def extend(self, sandbox_id: str, timeout: int | None) -> Sandbox:
        sandbox = self.get(sandbox_id)
        if timeout:
            if timeout < 0 or timeout > MAX_TIMEOUT_S:
                raise HostError(400, f"timeout must be between 1 and {MAX_TIMEOUT_S} seconds")
            sandbox.end_at = max(sandbox.end_at, time.time() + timeout)
        return sandbox

    async def kill(self, sandbox_id: str) -> bool:
        sandbox = self.sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return False
        sandbox.closed = True
        # Killing PID 1 of the namespace kills every process in it, detached ones included;
        # in a thread: waiting for bwrap and emptying the cgroups must not stall the others.
        await asyncio.to_thread(sandbox.namespace.kill)
        for context in list(sandbox.contexts.values()):
            try:
                await context.close()
            except Exception:
                logger.debug("closing context failed", exc_info=True)
        for record in list(sandbox.processes.values()):
            await record.process.kill()
        sandbox.processes.clear()
        sandbox.fs.close()
        if sandbox.metrics is not None:
            for fd in sandbox.metrics.disk_fds:
                os.close(fd)
            sandbox.metrics.disk_fds = []
        await asyncio.to_thread(self._remove_tree, sandbox.root)
        self._uids.discard(sandbox.namespace.host_uid)
        logger.info("killed sandbox %s", sandbox_id)
        return True

    @staticmethod
    def _remove_tree(root: Path) -> None:
        for rel in _TMPFS:
            unmount(root / "fs" / rel)
        shutil.rmtree(root, ignore_errors=True)

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for sandbox_id in list(self.sandboxes):
            await self.kill(sandbox_id)
        self.runtime.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def kill_all_now(self) -> None:
        """Synchronous last resort (signal handlers, atexit)."""
        for sandbox in list(self.sandboxes.values()):
            sandbox.namespace.kill()
            self._remove_tree(sandbox.root)
        self.runtime.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def seed_home(fs_root: Path, uid: int, fonts: list[Path]) -> None:
    """matplotlib's font list, prebuilt in the runtime, into ~/.cache/matplotlib (user's and
    root's HOME), where matplotlib looks: otherwise each sandbox's first import rebuilt it.
    Before the sandbox starts, so nothing inside can race these writes."""
    for home in ("data/home/user", "data/root"):
        directory = fs_root / home
        for part in (".cache", "matplotlib"):
            directory = directory / part
            directory.mkdir(mode=0o755, exist_ok=True)
            os.chown(directory, uid, uid)
        for font_list in fonts:
            target = directory / font_list.name
            shutil.copyfile(font_list, target)
            os.chown(target, uid, uid)


async def run_in_context(context: CodeContext, code: str, env_vars: dict[str, str], sink: OutputSink) -> None:
    """Run one cell; kernel failures become an ``error`` line, never an exception."""
    try:
        kernel = await context.ensure_kernel()
    except KernelDied as exc:
        sink.error("KernelStartError", str(exc), "")
        return
    try:
        await kernel.execute(code, env_vars, sink)
    except KernelDied as exc:
        sink.error(
            "DeadKernelError",
            f"The {context.language} kernel died while running the cell ({exc}). "
            "Its state is lost; it is restarted on the next call.",
            "",
        )
        await kernel.stop()
    except (BrokenPipeError, ConnectionResetError) as exc:
        sink.error("DeadKernelError", f"lost the {context.language} kernel: {exc}", "")
        await kernel.stop()


__all__ = [
    "CodeContext",
    "CommandRecord",
    "HostError",
    "HostSettings",
    "Sandbox",
    "SandboxRegistry",
    "run_in_context",
]
