"""DockerSandboxProvider: one hardened container per session, for local development only.

Untrusted code runs on the developer's own machine, so containment is the point (see
shared/SECURITY.md): non-root, no capabilities, no new privileges, read-only root, no network,
bounded memory/CPU/pids/files, an init, an allowlisted environment, no Docker socket inside.
Files move only through the Engine's archive API with tars built and parsed in memory; nothing
here opens a sandbox path on the host. docker-py is imported lazily: it is not in the Lambda layer.
Code reaches the in-container agent through a relay exec that this process keeps open per
container (an exec per call cost ~75 ms of process start and teardown, every time).
"""

from __future__ import annotations

import io
import json
import secrets
import select
import socket
import struct
import tarfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, NoReturn

from aws_lambda_powertools import Logger

from sandbox_gateway.adapters.code_interpreter import execution_from_ndjson, outcome_from_execution, timed_out
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import Environment
from sandbox_gateway.models.errors import (
    DomainError,
    FileNotFound,
    InvalidFileOperation,
    PayloadTooLarge,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    SandboxDiskFull,
    SandboxGone,
)
from sandbox_gateway.models.execution import CodeRun, ExecutionOutcome, ExecutionStatus
from sandbox_gateway.models.files import FileEntry, FileType
from sandbox_gateway.ports import CreatedSandbox, PooledSandbox, SandboxRef, SandboxSpec

logger = Logger(child=True)

# -I -S: the one-shot commands need only the standard library (site costs each exec a few ms);
# -u: `call` relays events as they come, as before.
AGENT = ["python3", "-I", "-S", "-u", "/opt/sandbox/agent.py"]
# Kept open per container by this process and fed request after request (see _Relay).
RELAY = ["python3", "-I", "-S", "/opt/sandbox/relay.py"]
SANDBOX_USER = "1000:1000"
UID = GID = 1000
LABEL = "sandbox-gateway"
LABEL_MANAGED = f"{LABEL}.managed"
LABEL_SESSION = f"{LABEL}.session"
LABEL_TENANT = f"{LABEL}.tenant"
LABEL_EXPIRES = f"{LABEL}.expires-at"
LABEL_OWNER = f"{LABEL}.owner"
LABEL_POOL = f"{LABEL}.pool"  # a warm-pool container: the environment it was booted for
POOL_PREFIX = "sgw-pool-"
READY_TIMEOUT_SECONDS = 60
AGENT_GRACE_SECONDS = 15  # beyond the code's own timeout: interrupt, kernel restart, sweep
FILE_OP_TIMEOUT_SECONDS = 20
# Beyond the agent's output budget: its error, truncation notice and end line (EVENT_RESERVE_BYTES
# in the agent). More than that is a misbehaving agent: the answer is cut there, never a 5xx.
AGENT_RESERVE_BYTES = 512 * 1024
GONE_CHECK_SECONDS = 3.0
HELPER_OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024  # a full workspace's listing fits (20,000 inodes)
ORPHAN_GRACE_SECONDS = 300  # a volume without a container is reaped only after this long
# Relay execs kept open, one per container, least recently used closed first: each is a small
# process inside its sandbox (its pids and memory limits) and a connection to the Engine.
MAX_RELAYS = 64
# Only these reach the container: nothing of the host's environment leaks in.
BASE_ENVIRONMENT = {
    "HOME": "/home/user",
    "USER": "user",
    "LANG": "C.UTF-8",
    # The image's sandbox runtime first (local/sandbox_runtime): python, pip, the data stack.
    "PATH": "/opt/sandbox-runtime/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Mount:
    """A size- and inode-limited tmpfs, as a named volume: the archive API can reach volumes
    but not HostConfig tmpfs mounts, and refuses everything else on a read-only root."""

    suffix: str
    target: str
    options: str


def _mounts(settings: Settings) -> tuple[Mount, ...]:
    owned = f"uid={UID},gid={GID},mode=0755"
    return (
        Mount("workspace", "/workspace", f"size={settings.docker_workspace_mb}m,nr_inodes=20000,{owned}"),
        Mount("home", "/home/user", f"size=64m,nr_inodes=5000,{owned}"),
        Mount("tmp", "/tmp", "size=64m,nr_inodes=5000,mode=1777,noexec,nosuid,nodev"),  # noqa: S108
    )


class DockerSandboxProvider:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._client: Any = None
        self._lock = threading.Lock()
        self._relays: OrderedDict[str, _Relay] = OrderedDict()

    # --- lifecycle -------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> CreatedSandbox:
        labels = {
            LABEL_SESSION: spec.session_id,
            LABEL_TENANT: spec.tenant_id,
            LABEL_EXPIRES: str(int(self._clock()) + spec.timeout_seconds),
        }
        name = f"sgw-{spec.session_id}"
        self._started(name, spec.environment, labels, spec.envs)
        return CreatedSandbox(name)  # reached by its name: no access to keep

    def boot(self, environment: Environment, timeout_seconds: int) -> CreatedSandbox:
        """For the warm pool: started and prepared as `create` does, with no session and no envs;
        its label ends it `timeout_seconds` from now unless a session binds it first."""
        labels = {LABEL_POOL: environment.name, LABEL_EXPIRES: str(int(self._clock()) + timeout_seconds)}
        name = f"{POOL_PREFIX}{secrets.token_hex(8)}"
        self._started(name, environment, labels, {})
        return CreatedSandbox(name)

    def bound_as(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        expires_at = spec.expires_at or int(self._clock()) + spec.timeout_seconds
        return CreatedSandbox(_bound_name(spec.session_id, expires_at, spec.tenant_id))

    def bind(self, pooled: PooledSandbox, spec: SandboxSpec) -> CreatedSandbox:
        """Makes a pooled container the session's by renaming it: labels cannot change after a
        start, a name can, and only the Engine can change it (not the code inside). The new name
        carries what a created container's labels do (session, tenant, first expiry), so the
        reaper and `make reap` treat it as one (see `_binding`). One Engine call, and one look."""
        bound = self.bound_as(pooled, spec)
        with self._engine("bind the sandbox") as client:
            container = client.containers.get(pooled.sandbox_id)
            if container.status != "running":
                raise SandboxGone(f"the pooled sandbox stopped ({container.status})")
            container.rename(bound.sandbox_id)
        return bound

    def _started(self, name: str, env: Environment, labels: dict[str, str], envs: dict[str, str]) -> None:
        """A container with its volumes, started, its agent answering with the kernel warm in the
        workspace; on any failure, nothing of it is left."""
        labels = {LABEL_MANAGED: "true", LABEL_OWNER: self._settings.docker_owner, **labels}
        with self._engine("create the sandbox") as client:
            try:
                volumes = {}
                for mount in _mounts(self._settings):
                    volume = client.volumes.create(
                        name=f"{name}-{mount.suffix}",
                        driver="local",
                        driver_opts={"type": "tmpfs", "device": "tmpfs", "o": mount.options},
                        labels=labels,
                    )
                    volumes[volume.name] = {"bind": mount.target, "mode": "rw"}
                container = client.containers.create(
                    env.template,
                    name=name,
                    labels=labels,
                    volumes=volumes,
                    environment={**BASE_ENVIRONMENT, **envs},
                    use_config_proxy=False,  # the host's proxy settings are not the sandbox's
                    hostname="sandbox",
                    # The agent starts its kernels here: where code runs, relative paths resolve.
                    working_dir=self._settings.workspace_root,
                    user=SANDBOX_USER,
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges:true"],
                    read_only=True,
                    # The agent's socket and the kernels' state; not reachable by the files API.
                    tmpfs={"/.e2b": f"rw,nosuid,nodev,noexec,size=16m,uid={UID},gid={GID},mode=0700"},
                    network_mode="bridge" if env.allow_internet_access else "none",
                    mem_limit=f"{env.memory_mb or self._settings.docker_memory_mb}m",
                    memswap_limit=f"{env.memory_mb or self._settings.docker_memory_mb}m",  # no swap
                    nano_cpus=int((env.cpu_count or self._settings.docker_cpus) * 1e9),
                    pids_limit=self._settings.docker_pids_limit,
                    ulimits=_ulimits(self._settings),
                    init=True,
                )
                container.start()
                request = {"op": "ready", "language": env.default_language.value}
                lines, _ = self._agent(container, request, READY_TIMEOUT_SECONDS, 64 * 1024)
                if not lines or _json_line(lines[-1]).get("type") != "ready":
                    raise ProviderError("the sandbox agent did not start")
            except BaseException:
                # Nothing leaks: no container, no volume survives a failed create.
                self._remove(client, name)
                raise

    def extend(self, ref: SandboxRef, timeout_seconds: int) -> None:
        # The container has no clock of its own: the session's stored expiry is the truth, and
        # the reaper consults it before removing a container whose label says it has expired.
        with self._sandbox(ref, "extend the sandbox"):
            pass

    def kill(self, sandbox_id: str) -> None:
        self._drop_relay(sandbox_id)
        with self._engine("remove the sandbox") as client:
            self._remove(client, sandbox_id)

    def reap(
        self, still_live: Callable[[str, str], bool] | None = None, *, everything: bool = False
    ) -> list[str]:
        """Remove this owner's containers past their expiry, unless `still_live(tenant, session)`
        says a keep-alive extended them (labels cannot change; the session store can); with
        `everything`, all of this owner's containers. A bound pooled container's session and
        first expiry are in its name, an unbound one's end in its label (`_binding`). Then volumes
        no container mounts. Cheap enough to run every ~30 s: one listing by label (no
        per-container inspect), the store consulted only for containers past their expiry."""
        now = int(self._clock())
        removed = []
        owned = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={self._settings.docker_owner}"]}
        with self._engine("reap expired sandboxes") as client:
            for summary in client.api.containers(all=True, filters=owned):
                name = (summary.get("Names") or ["/"])[0].lstrip("/")
                if not name:
                    continue
                tenant, session, expires_at = _binding(name, summary.get("Labels") or {})
                if not everything and expires_at > now:
                    continue
                if not everything and session and still_live is not None and still_live(tenant, session):
                    continue
                self._remove(client, name)
                removed.append(name)
            mounted = {
                mount.get("Name")
                for container in client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
                for mount in container.get("Mounts") or []
            }
            for volume in client.volumes.list(filters=owned):
                # A create makes its volumes just before its container: leave young ones alone.
                young = _age_seconds(volume.attrs.get("CreatedAt"), now) <= ORPHAN_GRACE_SECONDS
                if volume.name not in mounted and (everything or not young):
                    _ignore_missing(volume.remove, force=True)
        return removed

    # --- code --------------------------------------------------------------------------------
    def execute(self, ref: SandboxRef, run: CodeRun) -> ExecutionOutcome:
        request = {
            "language": run.language.value,
            "code": run.code,
            "env_vars": run.envs,
            "timeout": run.timeout_seconds,
            "output_limit": self._settings.docker_output_limit_bytes,
        }
        limit = self._settings.docker_output_limit_bytes + AGENT_RESERVE_BYTES
        started = time.perf_counter()
        output, cut, container = self._relayed(ref, request, run.timeout_seconds + AGENT_GRACE_SECONDS, limit)
        lines = self._agent_lines(output, cut)
        elapsed_ms = (time.perf_counter() - started) * 1000
        end = _json_line(lines[-1]) if lines else {}
        if end.get("type") != "end_of_execution" and not cut:
            if self._gone(container):  # removed under the exec: a DELETE won the race
                raise SandboxGone("the session's sandbox was removed while the code ran")
            raise ProviderError("the sandbox agent gave no result")
        if cut:  # the agent overran its own budget: keep what came, say it was cut
            lines, end = [line for line in lines if _json_line(line)], {"truncated": True}
        elif end.get("status") not in set(ExecutionStatus):
            raise ProviderError("the sandbox agent gave an unknown status")
        try:
            execution = execution_from_ndjson(lines if cut else lines[:-1])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # the SDK's parser on odd lines
            raise ProviderError("the sandbox agent gave an unreadable result") from exc
        outcome = outcome_from_execution(
            execution,
            elapsed_ms,
            status=ExecutionStatus(end.get("status", "ok")),
            truncated=bool(end.get("truncated")),
        )
        if outcome.status == ExecutionStatus.TIMEOUT:
            # The kernel reports the interrupt (KeyboardInterrupt); callers see one timeout shape.
            return timed_out(run.timeout_seconds, elapsed_ms, partial=outcome)
        return outcome

    # --- files -------------------------------------------------------------------------------
    def list_files(self, ref: SandboxRef, directory: str) -> list[FileEntry]:
        with self._sandbox(ref, "list files") as container:
            answer = self._helper(container, ["list", directory], directory)
        return [
            FileEntry(
                name=entry["name"],
                path=entry["path"],
                type=FileType(entry["type"]),
                size=entry["size"],
                modified_at=datetime.fromtimestamp(entry["mtime"], tz=UTC).isoformat(),
            )
            for entry in answer["entries"]
        ]

    def read_file(self, ref: SandboxRef, path: str, max_bytes: int) -> bytes:
        with self._sandbox(ref, "read the file") as container:
            stream, info = self._call(lambda: container.client.api.get_archive(container.id, path), path)
            size, mode = int(info.get("size", 0)), int(info.get("mode", 0))
            if mode & _GO_MODE_DIR:
                raise InvalidFileOperation(f"{path} is a directory; list it instead")
            if mode & _GO_MODE_SYMLINK:
                raise InvalidFileOperation(f"{path} is a symbolic link; links are not followed")
            if size > max_bytes:
                raise PayloadTooLarge(f"{path} is {size} bytes; the limit is {max_bytes}")
            try:
                archive = _read_bounded(stream, max_bytes + 64 * 1024)
            except (OSError, _docker_errors().DockerException, *_stream_errors()) as exc:
                # The Engine ends the stream early when the path changes under it (a swap race).
                raise InvalidFileOperation(f"{path} changed while it was read; read it again") from exc
        return _single_regular_file(archive, path, max_bytes)

    def write_file(self, ref: SandboxRef, path: str, data: bytes) -> FileEntry:
        """Written by the agent inside the container (never on the host, never through a link):
        an existing directory, link or special file, or a parent that is not a directory, is
        refused rather than replaced; a regular file is replaced atomically (temp + rename)."""
        root, relative = self._split_root(path)
        with self._sandbox(ref, "write the file") as container:
            self._helper(container, ["write", root, relative], path, stdin=data)
        return FileEntry(name=PurePosixPath(path).name, path=path, type=FileType.FILE, size=len(data))

    def delete_file(self, ref: SandboxRef, path: str) -> None:
        with self._sandbox(ref, "delete the file") as container:
            self._helper(container, ["remove", path], path)

    def _split_root(self, path: str) -> tuple[str, str]:
        """The volume a path lives on (puts must land on one) and the path inside it."""
        target = PurePosixPath(path)
        for mount in _mounts(self._settings):
            if target.is_relative_to(mount.target) and target != PurePosixPath(mount.target):
                return mount.target, str(target.relative_to(mount.target))
        raise InvalidFileOperation(f"{path} is not on a writable sandbox volume")

    # --- talking to the container ----------------------------------------------------------
    def _agent(
        self, container: Any, request: dict[str, Any], timeout: float, limit: int
    ) -> tuple[list[str], bool]:
        """One request to the in-container agent through `docker exec`, bounded in time and
        size; says whether the answer was cut at `limit` (the runaway is swept then)."""
        payload = (json.dumps(request) + "\n").encode()
        output, cut = self._exec(container, [*AGENT, "call"], payload, timeout, limit)
        return self._agent_lines(output, cut), cut

    @staticmethod
    def _agent_lines(output: bytes, cut: bool) -> list[str]:
        lines = output.decode("utf-8", "replace").splitlines()
        if cut:
            lines = lines[:-1]  # the last line is incomplete
        elif lines and _json_line(lines[-1]).get("type") == "agent_error":
            # Its text is the agent's (exception text, paths): logged, not passed on.
            logger.warning("sandbox agent failed", extra={"detail": lines[-1][:2000]})
            raise ProviderError("the sandbox agent failed")
        return lines

    def _relayed(
        self, ref: SandboxRef, request: dict[str, Any], timeout: float, limit: int
    ) -> tuple[bytes, bool, Any]:
        """One request to the agent through this process's relay in the container: no Engine
        request at all once the relay is open. The answer is bounded in time and size as an
        exec's is (`_exec`); also returned: whether it was cut at `limit`, and the container.
        A kept relay can have died since (the agent's sweep after another process's timeout ends
        it too): it is replaced, once, only when it provably never took the request (its stream
        ended before it said so, or the request was not even sent whole). Code runs at most once.
        A new relay that ends before taking the request (a container from an image without
        relay.py) leaves this request to a `docker exec` of its own, as before relays."""
        payload = json.dumps(request).encode()
        frame = _LENGTH.pack(len(payload)) + payload
        relay = self._take_relay(ref)
        while True:
            kept = relay is not None
            if relay is None:
                with self._sandbox(ref, "run code") as container:
                    relay = self._open_relay(container)
            deadline = time.monotonic() + timeout
            try:
                relay.send(frame)
            except OSError as exc:
                relay.close()
                if kept and not isinstance(exc, TimeoutError):  # not sent whole: never run
                    relay = None
                    continue
                self._stream_failed(relay.container, exc)
            try:
                said = relay.said(deadline)
            except OSError as exc:  # the socket's timeout (TimeoutError) included
                relay.close()
                self._stream_failed(relay.container, exc)
            if len(said) == _LENGTH.size:
                break
            relay.close()  # its stream ended before it said it took the request: nothing ran
            if not kept:
                logger.warning("the sandbox's relay did not start", extra={"stderr": relay.stderr()})
                output, cut = self._exec(relay.container, [*AGENT, "call"], payload, timeout, limit)
                return output, cut, relay.container
            relay = None
        taken = said == _TAKEN  # anything else: a relay not to be trusted with the answer
        try:
            output, cut, ended = relay.answer(deadline, limit) if taken else (b"", False, True)
        except OSError as exc:
            relay.close()
            self._stream_failed(relay.container, exc)
        if cut or ended:  # cut: the rest of this answer is unread; ended: the relay is gone
            relay.close()
            if cut:
                self._exec_sweep(relay.container)
        else:
            self._keep_relay(ref.sandbox_id, relay)
        return output, cut, relay.container

    def _stream_failed(self, container: Any, exc: OSError) -> NoReturn:
        """As an exec's stream failing: the sandbox was removed, or the agent is stuck (swept)."""
        if self._gone(container):
            raise SandboxGone("the session's sandbox was removed while it was in use") from exc
        self._exec_sweep(container)
        raise ProviderTimeout("the sandbox did not answer in time") from exc

    def _open_relay(self, container: Any) -> _Relay:
        api = container.client.api
        try:
            exec_id = api.exec_create(
                container.id,
                RELAY,
                stdin=True,
                user=SANDBOX_USER,
                workdir=self._settings.workspace_root,
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except _docker_errors().APIError as exc:
            if self._gone(container):
                raise SandboxGone("the session's sandbox no longer exists") from exc
            raise
        return _Relay(container, sock)

    def _take_relay(self, ref: SandboxRef) -> _Relay | None:
        """This process's open relay to the sandbox, if it is still alive and idle. None when the
        session has expired: the slow path then removes the container, as on every access."""
        with self._lock:
            relay = self._relays.pop(ref.sandbox_id, None)
        if relay is None:
            return None
        if ref.expires_at <= int(self._clock()) or not relay.idle():
            relay.close()
            return None
        return relay

    def _keep_relay(self, sandbox_id: str, relay: _Relay) -> None:
        with self._lock:
            extra = self._relays.pop(sandbox_id, None)  # two calls at once opened two: keep one
            self._relays[sandbox_id] = relay
            evicted = [extra] if extra is not None else []
            while len(self._relays) > MAX_RELAYS:
                evicted.append(self._relays.popitem(last=False)[1])
        for old in evicted:
            old.close()

    def _drop_relay(self, sandbox_id: str) -> None:
        with self._lock:
            relay = self._relays.pop(sandbox_id, None)
        if relay is not None:
            relay.close()

    def _helper(self, container: Any, command: list[str], path: str, stdin: bytes = b"") -> dict[str, Any]:
        """A one-shot files helper of the agent. Messages are ours, about the caller's path:
        the answer comes from inside the sandbox, where code can tamper with it."""
        output, cut = self._exec(
            container, [*AGENT, *command], stdin, FILE_OP_TIMEOUT_SECONDS, HELPER_OUTPUT_LIMIT_BYTES
        )
        answer = _json_line(output.decode("utf-8", "replace")) if not cut else {}
        if not answer:
            if self._gone(container):
                raise SandboxGone("the session's sandbox was removed during the file operation")
            raise ProviderError("the sandbox gave no answer to a file operation")
        error = answer.get("error")
        if error is None:
            return answer
        detail = str(answer.get("message") or "")
        if error == "not_found":
            raise FileNotFound(f"{path} does not exist")
        if error == "conflict":
            kind = next((k for k in _CONFLICTS if f"is {k}" in detail), None)
            why = f"it is {kind}" if kind else "one of its parents is a file or a link, not a directory"
            raise InvalidFileOperation(f"{path} cannot be written: {why}; nothing was changed")
        if error == "disk_full":
            raise SandboxDiskFull(f"the sandbox has no space left to write {path}")
        if error == "too_large":
            raise PayloadTooLarge(f"{path} would exceed the sandbox's file size limit")
        if error == "not_a_directory":
            raise InvalidFileOperation(f"{path} is not a directory")
        raise InvalidFileOperation(f"{path} cannot be used for this operation")

    def _exec(
        self, container: Any, command: list[str], stdin: bytes, timeout: float, limit: int
    ) -> tuple[bytes, bool]:
        """stdout of one exec, and whether it was cut at `limit` bytes. exec_run has no timeout
        and an exec cannot be killed through the API: the socket is bounded here, and a runaway
        is ended from a second exec (the agent's sweep). A container removed under the exec
        (a DELETE racing it) is SandboxGone, not a provider failure."""
        from docker.utils.socket import frames_iter  # noqa: PLC0415 - docker-py is local-only

        api = container.client.api
        errors = _docker_errors()
        try:
            exec_id = api.exec_create(
                container.id, command, stdin=True, user=SANDBOX_USER, workdir=self._settings.workspace_root
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except errors.APIError as exc:
            if self._gone(container):
                raise SandboxGone("the session's sandbox no longer exists") from exc
            raise
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(timeout)
        chunks: list[bytes] = []
        received = 0
        cut = False
        try:
            if stdin:
                raw.sendall(stdin)
            raw.shutdown(socket.SHUT_WR)
            for stream, data in frames_iter(sock, tty=False):
                if stream == 1:
                    chunks.append(data[: max(limit - received, 0)])
                    received += len(data)
                    if received > limit:
                        cut = True
                        break
        except (TimeoutError, OSError) as exc:
            if self._gone(container):
                raise SandboxGone("the session's sandbox was removed while it was in use") from exc
            self._exec_sweep(container)
            raise ProviderTimeout("the sandbox did not answer in time") from exc
        finally:
            sock.close()
        if cut:
            self._exec_sweep(container)
        return b"".join(chunks), cut

    def _gone(self, container: Any) -> bool:
        """Whether the container was removed or stopped, checked after an exec went wrong. A
        removal kills the exec before the container leaves `running`: watch it for a moment."""
        errors = _docker_errors()
        deadline = time.monotonic() + GONE_CHECK_SECONDS
        while True:
            try:
                container.reload()
            except errors.NotFound:
                return True
            except (errors.DockerException, OSError):
                return False
            if container.status != "running":
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def _exec_sweep(self, container: Any) -> None:
        try:
            container.exec_run([*AGENT, "sweep"], user=SANDBOX_USER)
        except Exception:
            logger.exception("sweep after a runaway exec failed")

    # --- engine plumbing -------------------------------------------------------------------
    @contextmanager
    def _sandbox(self, ref: SandboxRef, action: str) -> Iterator[Any]:
        with self._engine(action) as client:
            try:
                container = client.containers.get(ref.sandbox_id)
            except _docker_errors().NotFound as exc:
                raise SandboxGone(
                    "the session's sandbox no longer exists (it expired or was removed)"
                ) from exc
            if ref.expires_at <= int(self._clock()):
                self._remove(client, ref.sandbox_id)  # reaped on access
                raise SandboxGone("the session's sandbox has expired")
            if container.status != "running":
                self._remove(client, ref.sandbox_id)
                raise SandboxGone(f"the session's sandbox stopped ({container.status})")
            yield container

    @contextmanager
    def _engine(self, action: str) -> Iterator[Any]:
        errors = _docker_errors()
        try:
            yield self._docker()
        except DomainError:
            raise
        except errors.ImageNotFound as exc:
            raise ProviderError(
                "the Docker sandbox image is missing: build it with local/docker_sandbox/build.sh"
            ) from exc
        except errors.NotFound as exc:
            raise SandboxGone("the session's sandbox no longer exists") from exc
        except errors.APIError as exc:
            logger.warning("Docker call failed", extra={"action": action, "status": exc.status_code})
            raise ProviderError(f"Docker failed to {action}") from exc
        except (errors.DockerException, ConnectionError, OSError) as exc:
            self._client = None
            raise ProviderUnavailable(f"the Docker engine is not reachable (could not {action})") from exc

    def _docker(self) -> Any:
        with self._lock:
            if self._client is None:
                import docker  # noqa: PLC0415 - local development only, not in the Lambda layer

                if self._settings.docker_host:
                    self._client = docker.DockerClient(base_url=self._settings.docker_host, timeout=60)
                else:
                    self._client = docker.from_env(timeout=60)
            return self._client

    @staticmethod
    def _call(call: Callable[[], Any], path: str) -> Any:
        errors = _docker_errors()
        try:
            return call()
        except errors.NotFound as exc:
            raise FileNotFound(f"{path} does not exist") from exc
        except errors.APIError as exc:
            raise InvalidFileOperation(f"{path} cannot be written or read there") from exc

    @staticmethod
    def _remove(client: Any, name: str) -> None:
        """The container and its volumes: named after it, or (a bound pooled container, renamed
        since) after the name it booted with, as its mounts say."""
        volumes = {f"{name}-{mount}" for mount in ("workspace", "home", "tmp")}
        try:
            container = client.containers.get(name)
        except _docker_errors().NotFound:
            container = None
        if container is not None:
            volumes |= {m["Name"] for m in container.attrs.get("Mounts") or [] if m.get("Type") == "volume"}
            _ignore_missing(container.remove, force=True)
        for volume in sorted(volumes):
            _remove_volume(client, volume)


class _Relay:
    """A relay.py exec in one container, its hijacked Engine socket kept open. The
    Engine multiplexes the exec's stdout and stderr in frames of an 8-byte header (stream, size)
    and the data; inside stdout the relay frames each answer as length-prefixed chunks ended by a
    zero length (see local/docker_sandbox/relay.py). The Engine's framing is trusted;
    the relay's is not (code in the sandbox can write to its stdout): sizes are only counted."""

    def __init__(self, container: Any, sock: Any) -> None:
        self.container = container
        self._sock = sock  # docker-py's object keeps the HTTP response (and so the socket) alive
        self._raw: socket.socket = getattr(sock, "_sock", sock)
        self._inbox = bytearray()  # bytes from the Engine, not yet taken apart
        self._stdout = bytearray()  # the relay's stdout, not yet read
        self._stderr = bytearray()  # the end of its stderr, for the log when it fails

    def idle(self) -> bool:
        """Open, and nothing waiting to be read: a relay that ended (killed by a sweep, its
        container removed) has an Engine stream at its end, which polls as readable."""
        if self._inbox or self._stdout:
            return False
        poller = select.poll()  # not select(): descriptors may exceed FD_SETSIZE
        poller.register(self._raw, select.POLLIN | select.POLLPRI)
        try:
            return not poller.poll(0)
        except OSError:
            return False

    def send(self, frame: bytes) -> None:
        self._raw.settimeout(FILE_OP_TIMEOUT_SECONDS)
        self._raw.sendall(frame)

    def said(self, deadline: float) -> bytes:
        """The relay's first word on a request: _TAKEN, or fewer bytes if its stream ended first
        (the relay writes _TAKEN in one piece before passing the request on)."""
        return self._read(_LENGTH.size, deadline)

    def answer(self, deadline: float, limit: int) -> tuple[bytes, bool, bool]:
        """One answer's bytes (at most `limit`), whether there were more (cut), and whether the
        stream ended before the answer did. TimeoutError past `deadline`."""
        data = bytearray()
        received = 0
        while True:
            header = self._read(_LENGTH.size, deadline)
            if len(header) < _LENGTH.size:
                return bytes(data), False, True
            size = _LENGTH.unpack(header)[0]
            if size == 0:
                return bytes(data), False, False
            while size:
                chunk = self._read(min(size, 1 << 16), deadline, exact=False)
                if not chunk:
                    return bytes(data), False, True
                size -= len(chunk)
                data += chunk[: max(limit - received, 0)]
                received += len(chunk)
                if received > limit:
                    return bytes(data), True, False

    def _read(self, size: int, deadline: float, *, exact: bool = True) -> bytes:
        """`size` bytes of the relay's stdout (or what there is, unless `exact`); fewer at its end."""
        while len(self._stdout) < (size if exact else 1):
            if not self._frame(deadline):
                break
        taken = bytes(self._stdout[:size])
        del self._stdout[:size]
        return taken

    def _frame(self, deadline: float) -> bool:
        """Takes the Engine's next frame in; False at the end of the stream."""
        while True:
            if len(self._inbox) >= 8:
                stream, size = struct.unpack(">BxxxL", self._inbox[:8])
                if len(self._inbox) >= 8 + size:
                    if stream == 1:
                        self._stdout += self._inbox[8 : 8 + size]
                    else:
                        self._stderr = (self._stderr + self._inbox[8 : 8 + size])[-_STDERR_KEPT:]
                    del self._inbox[: 8 + size]
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the relay did not answer in time")
            self._raw.settimeout(remaining)
            chunk = self._raw.recv(1 << 16)
            if not chunk:
                return False
            self._inbox += chunk

    def stderr(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def close(self) -> None:
        """Ends the exec's stdin, so the relay exits (the Engine closes it with the connection)."""
        with suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            self._sock.close()
            self._raw.close()


# relay.py's framing: a big-endian length before each request and each chunk of an answer; a
# request taken is said at once with _TAKEN (never a chunk's length), an answer ends with 0.
_LENGTH = struct.Struct(">I")
_TAKEN = b"\xff\xff\xff\xff"
_STDERR_KEPT = 2048

# What the agent names in a conflict, as said to the caller.
_CONFLICTS = ("a directory", "a symbolic link", "a special file")

# Go's os.FileMode bits, as the Engine reports them in the archive's stat header.
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27


def _docker_errors() -> Any:
    import docker.errors  # noqa: PLC0415

    return docker.errors


def _stream_errors() -> tuple[type[BaseException], ...]:
    import requests  # noqa: PLC0415 - docker-py's transport
    import urllib3.exceptions  # noqa: PLC0415

    return (requests.RequestException, urllib3.exceptions.HTTPError)


def _age_seconds(created_at: object, now: int) -> float:
    """Age of an Engine timestamp (RFC 3339, maybe with nanoseconds); 0 when unreadable."""
    if not isinstance(created_at, str):
        return 0.0
    text = created_at.replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:  # Python wants at most microseconds
        digits = "".join(ch for ch in tail if ch.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        return now - datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def _bound_name(session_id: str, expires_at: int, tenant_id: str) -> str:
    """A bound pooled container's name: its session, first expiry and tenant, as a created one's
    labels say them. Session ids and expiries have no dot; tenant ids may (so they come last)."""
    return f"sgw-{session_id}.{expires_at}.{tenant_id}"


def _binding(name: str, labels: dict[str, str]) -> tuple[str, str, int]:
    """(tenant, session, expiry) of a container: a bound pooled one's from its name, others' from
    their labels. An unbound pooled one has no session: its label's expiry alone ends it."""
    if LABEL_POOL in labels and "." in name:
        session, expires, tenant = ([*name.removeprefix("sgw-").split(".", 2), "", ""])[:3]
    else:
        session, expires, tenant = (
            labels.get(key, "") for key in (LABEL_SESSION, LABEL_EXPIRES, LABEL_TENANT)
        )
    try:
        return tenant, session, int(expires)
    except ValueError:
        return tenant, session, 0  # unreadable: expired, and the session store decides


def _json_line(line: str) -> dict[str, Any]:
    """One JSON object line from the agent; {} for anything else (it may be tampered with)."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ignore_missing(call: Callable[..., Any], **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except _docker_errors().NotFound:
        pass


def _remove_volume(client: Any, name: str) -> None:
    """Gone already is fine; so is in use: a container (not this one) still mounts it, e.g. a
    pooled container bound (renamed) after a sweep listed it. The orphan sweep takes it later."""
    try:
        client.volumes.get(name).remove(force=True)
    except _docker_errors().NotFound:
        pass
    except _docker_errors().APIError as exc:
        if exc.status_code != 409:
            raise


def _ulimits(settings: Settings) -> list[Any]:
    from docker.types import Ulimit  # noqa: PLC0415

    file_size = settings.docker_workspace_mb * 1024 * 1024
    return [
        Ulimit(name="nofile", soft=1024, hard=1024),
        Ulimit(name="fsize", soft=file_size, hard=file_size),
        Ulimit(name="core", soft=0, hard=0),
    ]


def _read_bounded(stream: Iterator[bytes], limit: int) -> bytes:
    buffer = bytearray()
    for chunk in stream:
        buffer += chunk
        if len(buffer) > limit:
            raise PayloadTooLarge("the file grew beyond the limit while it was read")
    return bytes(buffer)


def _single_regular_file(archive: bytes, path: str, max_bytes: int) -> bytes:
    """The one regular file in a tar from the Engine; anything else (a link, a device, several
    members) is refused. Parsed in memory: nothing is ever extracted on the host."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            members = tar.getmembers()
            if len(members) != 1 or not members[0].isreg():
                raise InvalidFileOperation(f"{path} is not a regular file")
            if members[0].size > max_bytes:
                raise PayloadTooLarge(f"{path} is larger than the limit of {max_bytes} bytes")
            extracted = tar.extractfile(members[0])
            assert extracted is not None  # a regular member always has content
            data = extracted.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        # A tar cut short: the path was swapped (file, directory, link) while the Engine read it.
        raise InvalidFileOperation(f"{path} changed while it was read; read it again") from exc
    if len(data) != members[0].size:
        raise InvalidFileOperation(f"{path} changed while it was read; read it again")
    return data
