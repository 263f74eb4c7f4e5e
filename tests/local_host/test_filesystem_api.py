"""envd's filesystem API as E2B's SDK sees it, sync ``Sandbox`` and async ``AsyncSandbox``:
directory watchers, entry metadata, idempotent remove, symlink stat, signed file URLs and
the ``startedAfter`` list filter."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from e2b import (
    FileNotFoundException,
    InvalidArgumentException,
    RateLimitException,
    SandboxException,
    SandboxQuery,
)
from e2b.sandbox.filesystem.filesystem import FileType
from e2b.sandbox.filesystem.watch_handle import FilesystemEventType
from e2b_code_interpreter import AsyncSandbox, Sandbox

from local.e2b_host.asgi import Request
from local.e2b_host.control import ControlPlane
from local.e2b_host.watch import MAX_WATCHERS_PER_SANDBOX
from tests.support.raises import raises_exactly

CREATE, WRITE, REMOVE = FilesystemEventType.CREATE, FilesystemEventType.WRITE, FilesystemEventType.REMOVE
RENAME, CHMOD = FilesystemEventType.RENAME, FilesystemEventType.CHMOD


def _dir(name: str) -> str:
    return f"/home/user/{name}-{uuid.uuid4().hex[:8]}"


def _wait_for(get_events, wanted: set, timeout: float = 10.0) -> list:
    """Poll a sync watcher until every (name, type) in ``wanted`` has been seen."""
    seen: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += [(e.name, e.type) for e in get_events()]
        if wanted <= set(seen):
            return seen
        time.sleep(0.1)
    return seen


# --- entry metadata and EntryInfo ------------------------------------------------------------


def test_write_metadata_is_returned_and_kept_by_stat_list_and_rename(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    base = _dir("meta")
    written = files.write(f"{base}/a.txt", "data", metadata={"Owner": "ada", "kind": "report v1"})
    assert written.metadata == {"owner": "ada", "kind": "report v1"}  # keys lowercased, as envd
    assert files.get_info(f"{base}/a.txt").metadata == {"owner": "ada", "kind": "report v1"}
    assert [e.metadata for e in files.list(base)] == [{"owner": "ada", "kind": "report v1"}]
    moved = files.rename(f"{base}/a.txt", f"{base}/b.txt")
    assert moved.metadata == {"owner": "ada", "kind": "report v1"}
    files.write(f"{base}/b.txt", "new content")  # a new upload replaces the metadata
    assert files.get_info(f"{base}/b.txt").metadata is None
    many = files.write_files(
        [{"path": f"{base}/c.txt", "data": "c"}, {"path": f"{base}/d.txt", "data": "d"}],
        metadata={"batch": "7"},
    )
    assert [w.metadata for w in many] == [{"batch": "7"}, {"batch": "7"}]
    with raises_exactly(InvalidArgumentException, match="exceeds 4096"):
        files.write(f"{base}/big.txt", "x", metadata={"k": "v" * 5000})


def test_entry_info_has_every_field_envd_returns(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    base = _dir("info")
    files.write(f"{base}/f.txt", "12345")
    shared_sandbox.commands.run(f"chmod 640 {base}/f.txt")
    info = files.get_info(f"{base}/f.txt")
    assert (info.name, info.type, info.path, info.size) == ("f.txt", FileType.FILE, f"{base}/f.txt", 5)
    assert (info.mode, info.permissions) == (0o640, "-rw-r-----")
    assert (info.owner, info.group, info.symlink_target) == ("user", "user", None)
    assert abs(info.modified_time.timestamp() - time.time()) < 120
    listed = {e.name: e for e in files.list(base)}
    assert listed["f.txt"] == info
    directory = files.get_info(base)
    assert (directory.type, directory.mode, directory.permissions) == (FileType.DIR, 0o755, "drwxr-xr-x")
    tmp = files.get_info("/tmp")  # envd's mode is the permission bits; the sticky bit is a letter
    assert (tmp.mode, tmp.permissions) == (0o777, "dtrwxrwxrwx")


def test_entry_metadata_and_fields_async(shared_sandbox: Sandbox):
    async def scenario() -> None:
        sbx = await AsyncSandbox.connect(shared_sandbox.sandbox_id)
        base = _dir("ameta")
        written = await sbx.files.write(f"{base}/a.txt", "abc", metadata={"team": "blue"})
        assert written.metadata == {"team": "blue"}
        info = await sbx.files.get_info(f"{base}/a.txt")
        assert (info.size, info.owner, info.mode, info.metadata) == (3, "user", 0o644, {"team": "blue"})
        assert [e.metadata for e in await sbx.files.list(base)] == [{"team": "blue"}]
        assert (await sbx.files.rename(f"{base}/a.txt", f"{base}/b.txt")).metadata == {"team": "blue"}

    asyncio.run(scenario())


# --- remove ----------------------------------------------------------------------------------


def test_removing_a_missing_path_is_done(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    files.remove("/home/user/never-existed.txt")
    files.remove("/workspace/no/such/parent/file")
    files.write("/tmp/once.txt", "x")
    files.remove("/tmp/once.txt")
    files.remove("/tmp/once.txt")
    assert not files.exists("/tmp/once.txt")
    with raises_exactly(SandboxException, match="outside the sandbox filesystem"):
        files.remove("/etc/never-existed")

    async def scenario() -> None:
        sbx = await AsyncSandbox.connect(shared_sandbox.sandbox_id)
        await sbx.files.remove("/home/user/never-existed-either")
        with raises_exactly(SandboxException, match="outside the sandbox filesystem"):
            await sbx.files.remove("/usr/never-existed")

    asyncio.run(scenario())


# --- symlinks --------------------------------------------------------------------------------


def test_stat_of_a_symlink_follows_it_and_names_its_target(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    base = _dir("links")
    files.write(f"{base}/target.txt", "hello")
    files.make_dir(f"{base}/dir")
    shared_sandbox.commands.run(
        f"cd {base} && chmod 600 target.txt && ln -s target.txt rel && ln -s {base}/dir abs "
        "&& ln -s /etc out && ln -s nowhere dangling"
    )
    rel = files.get_info(f"{base}/rel")
    assert (rel.type, rel.symlink_target, rel.path) == (FileType.SYMLINK, f"{base}/target.txt", f"{base}/rel")
    assert rel.mode == 0o600  # the target's permission bits, as envd reports
    assert rel.permissions.startswith("L") and rel.size == len("target.txt")  # the link's own
    assert files.get_info(f"{base}/abs").symlink_target == f"{base}/dir"
    assert files.read(f"{base}/rel") == "hello"
    assert files.get_info(f"{base}/dangling").symlink_target == f"{base}/nowhere"
    # A link out of the mounts is named, never followed: nothing of the host is described.
    out = files.get_info(f"{base}/out")
    assert (out.type, out.symlink_target, out.mode) == (FileType.SYMLINK, "/etc", 0o777)
    with raises_exactly(SandboxException, match="outside the sandbox filesystem"):
        files.read(f"{base}/out/passwd")
    assert {e.name: e.symlink_target for e in files.list(base)}["rel"] == f"{base}/target.txt"

    async def scenario() -> None:
        sbx = await AsyncSandbox.connect(shared_sandbox.sandbox_id)
        info = await sbx.files.get_info(f"{base}/rel")
        assert (info.type, info.symlink_target, info.mode) == (FileType.SYMLINK, f"{base}/target.txt", 0o600)

    asyncio.run(scenario())


# --- watch_dir -------------------------------------------------------------------------------


def test_sync_watch_reports_envd_events_relative_to_the_directory(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    base = _dir("watch")
    files.make_dir(f"{base}/sub")
    flat = files.watch_dir(base)
    deep = files.watch_dir(base, recursive=True)
    try:
        files.write(f"{base}/a.txt", "one")
        shared_sandbox.commands.run(
            f"cd {base} && echo more >> a.txt && chmod 600 a.txt && mv a.txt b.txt && rm b.txt "
            "&& echo x > sub/inner"
        )
        wanted = {
            ("a.txt", CREATE),
            ("a.txt", WRITE),
            ("a.txt", CHMOD),
            ("a.txt", RENAME),
            ("b.txt", CREATE),
            ("b.txt", REMOVE),
        }
        seen_flat = _wait_for(flat.get_new_events, wanted)
        assert wanted <= set(seen_flat)
        assert not any(name.startswith((".e2b", "sub/")) for name, _ in seen_flat)
        seen_deep = _wait_for(deep.get_new_events, wanted | {("sub/inner", CREATE), ("sub/inner", WRITE)})
        assert ("sub/inner", CREATE) in seen_deep
        # A directory made after the watch began is watched too.
        files.make_dir(f"{base}/later")
        assert ("later", CREATE) in _wait_for(deep.get_new_events, {("later", CREATE)})
        files.write(f"{base}/later/deeper.txt", "y")
        assert ("later/deeper.txt", WRITE) in _wait_for(deep.get_new_events, {("later/deeper.txt", WRITE)})
    finally:
        flat.stop()
        deep.stop()
    with raises_exactly(SandboxException, match="already stopped"):
        flat.get_new_events()


def test_sync_watch_with_entries_and_its_errors(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    base = _dir("watch-entry")
    files.make_dir(base)
    handle = files.watch_dir(base, include_entry=True)
    try:
        files.write(f"{base}/e.txt", "entry")
        events = _wait_for(handle.get_new_events, {("e.txt", WRITE)})
        assert ("e.txt", WRITE) in events
    finally:
        handle.stop()
    handle = files.watch_dir(base, include_entry=True)
    try:
        files.write(f"{base}/f.txt", "entry")
        deadline = time.monotonic() + 10
        entries = []
        while not entries and time.monotonic() < deadline:
            entries = [e.entry for e in handle.get_new_events() if e.entry is not None]
            time.sleep(0.1)
        assert entries and entries[0].path == f"{base}/f.txt" and entries[0].type == FileType.FILE
    finally:
        handle.stop()
    with raises_exactly(FileNotFoundException):
        files.watch_dir(f"{base}/missing")
    with raises_exactly(InvalidArgumentException):
        files.watch_dir(f"{base}/f.txt")
    with raises_exactly(SandboxException, match="outside the sandbox filesystem"):
        files.watch_dir("/etc")


def test_async_watch_streams_events(e2b_host, shared_sandbox: Sandbox):
    base = _dir("awatch")
    shared_sandbox.files.make_dir(f"{base}/sub")

    async def scenario() -> list:
        sbx = await AsyncSandbox.connect(shared_sandbox.sandbox_id)
        seen: list = []
        exits: list = []
        handle = await sbx.files.watch_dir(
            base, on_event=lambda e: seen.append((e.name, e.type)), on_exit=exits.append, recursive=True
        )
        await sbx.files.write(f"{base}/sub/x.txt", "x")
        await sbx.files.remove(f"{base}/sub/x.txt")
        deadline = time.monotonic() + 10
        while ("sub/x.txt", REMOVE) not in seen and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await handle.stop()
        return seen

    seen = asyncio.run(scenario())
    # Stopping closes the stream, and the host then closes the watcher (its directory's fd).
    name = os.path.basename(base)
    deadline = time.monotonic() + 10
    while any(link.endswith(name) for link in _host_fds(e2b_host.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(link.endswith(name) for link in _host_fds(e2b_host.pid))
    assert [e for e in seen if e[0] == "sub/x.txt"] == [
        ("sub/x.txt", CREATE),
        ("sub/x.txt", WRITE),
        ("sub/x.txt", REMOVE),
    ]


def test_watchers_are_bounded_per_sandbox(shared_sandbox: Sandbox):
    base = _dir("bounded")
    shared_sandbox.files.make_dir(base)
    handles = []
    try:
        with raises_exactly(RateLimitException, match="too many directory watchers"):
            for _ in range(MAX_WATCHERS_PER_SANDBOX + 1):
                handles.append(shared_sandbox.files.watch_dir(base))
        # Exactly the bound: the watchers of the earlier tests (sync stopped, async streams
        # closed) are gone from the host.
        assert len(handles) == MAX_WATCHERS_PER_SANDBOX
    finally:
        for handle in handles:
            handle.stop()
    shared_sandbox.files.watch_dir(base).stop()  # stopped ones free their place


def _host_fds(pid: int) -> list[str]:
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return links


def test_watchers_die_with_their_sandbox(e2b_host):
    sbx = Sandbox.create(timeout=60)
    base = _dir("dies")
    sbx.files.make_dir(f"{base}/a/b")
    sync_handle = sbx.files.watch_dir(base, recursive=True)
    assert any(sbx.sandbox_id in link for link in _host_fds(e2b_host.pid))

    async def watch_then_kill() -> list:
        asbx = await AsyncSandbox.connect(sbx.sandbox_id)
        exits: list = []
        await asbx.files.watch_dir(base, on_event=lambda e: None, on_exit=exits.append)
        await asbx.kill()
        deadline = time.monotonic() + 10
        while not exits and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return exits

    exits = asyncio.run(watch_then_kill())
    assert exits, "the async watch did not end with its sandbox"
    deadline = time.monotonic() + 10
    while any(sbx.sandbox_id in link for link in _host_fds(e2b_host.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(sbx.sandbox_id in link for link in _host_fds(e2b_host.pid))
    with pytest.raises(SandboxException):
        sync_handle.get_new_events()


# --- signed URLs and the access token ---------------------------------------------------------


def test_signed_urls_find_their_sandbox_and_expire(shared_sandbox: Sandbox):
    shared_sandbox.files.write("/home/user/signed.txt", "signed content")
    url = shared_sandbox.download_url("/home/user/signed.txt", use_signature_expiration=120)
    assert "signature=v1_" in url
    assert httpx.get(url).content == b"signed content"  # no sandbox header, no token
    upload = shared_sandbox.upload_url("/home/user/uploaded.txt")
    response = httpx.post(upload, files={"file": ("uploaded.txt", b"via signed url")})
    assert response.status_code == 200 and response.json()[0]["path"] == "/home/user/uploaded.txt"
    assert shared_sandbox.files.read("/home/user/uploaded.txt") == "via signed url"

    other_path = url.replace("signed.txt", "uploaded.txt")  # the signature binds the path
    tampered = url.replace("signature=v1_", "signature=v1_A")
    read_as_write = httpx.post(url, files={"file": ("x", b"x")})  # and the operation
    for refused in (httpx.get(other_path), httpx.get(tampered), read_as_write):
        assert refused.status_code == 401
        assert refused.json() == {"code": 401, "message": "invalid signature"}
    expired = httpx.get(shared_sandbox.download_url("/home/user/signed.txt", use_signature_expiration=-10))
    assert expired.status_code == 401 and expired.json()["message"] == "signature is already expired"

    async def scenario() -> None:
        sbx = await AsyncSandbox.connect(shared_sandbox.sandbox_id)
        async with httpx.AsyncClient() as client:
            got = await client.get(sbx.download_url("/home/user/signed.txt"))
        assert got.content == b"signed content"

    asyncio.run(scenario())


def test_envd_wants_the_access_token_or_a_signature(e2b_host, shared_sandbox: Sandbox):
    headers = {"E2b-Sandbox-Id": shared_sandbox.sandbox_id, "E2b-Sandbox-Port": "49983"}
    bare = httpx.get(f"{e2b_host.url}/files", params={"path": "/home/user/signed.txt"}, headers=headers)
    assert bare.status_code == 401 and bare.json()["message"] == "missing signature query parameter"
    wrong = httpx.get(
        f"{e2b_host.url}/files",
        params={"path": "/home/user/signed.txt"},
        headers={**headers, "X-Access-Token": "not-the-token"},
    )
    assert wrong.status_code == 401
    rpc = httpx.post(
        f"{e2b_host.url}/filesystem.Filesystem/Stat",
        json={"path": "/home/user"},
        headers={**headers, "Content-Type": "application/json"},
    )
    assert rpc.status_code == 401
    assert httpx.get(f"{e2b_host.url}/health", headers=headers).status_code == 204
    assert shared_sandbox.files.exists("/home/user")  # the SDK sends its token


# --- startedAfter ----------------------------------------------------------------------------


def test_started_after_keeps_a_sandbox_started_exactly_at_the_bound(shared_sandbox: Sandbox):
    started = shared_sandbox.get_info().started_at

    def ids(bound) -> set[str]:
        return {
            s.sandbox_id
            for s in Sandbox.list(query=SandboxQuery(started_after=bound), limit=100).next_items()
        }

    assert shared_sandbox.sandbox_id in ids(started)
    assert shared_sandbox.sandbox_id not in ids(started + timedelta(microseconds=1))

    async def scenario() -> tuple[set[str], set[str]]:
        async def aids(bound) -> set[str]:
            items = await AsyncSandbox.list(query=SandboxQuery(started_after=bound), limit=100).next_items()
            return {s.sandbox_id for s in items}

        return await aids(started), await aids(started + timedelta(microseconds=1))

    at, after = asyncio.run(scenario())
    assert shared_sandbox.sandbox_id in at and shared_sandbox.sandbox_id not in after


def test_started_after_compares_whole_microseconds():
    """Deterministic: a start whose float seconds round *up* to the reported microsecond."""
    started = 1_700_000_000.1234567  # reported as ...:20.123457Z
    registry = _FakeRegistry(started)
    assert registry.sandbox.to_json()["startedAt"].endswith(".123457Z")
    listed = asyncio.run(_list(registry, "2023-11-14T22:13:20.123457Z"))
    assert [s["sandboxID"] for s in listed] == ["i-at-the-bound"]
    assert asyncio.run(_list(registry, "2023-11-14T22:13:20.123458+00:00")) == []


class _FakeSandbox:
    sandbox_id = "i-at-the-bound"
    template_id = "base"
    metadata: dict[str, str] = {}

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at

    def gone(self) -> bool:
        return False

    def to_json(self) -> dict[str, str]:
        iso = datetime.fromtimestamp(self.started_at, tz=UTC).isoformat().replace("+00:00", "Z")
        return {"sandboxID": self.sandbox_id, "startedAt": iso}


class _FakeRegistry:
    def __init__(self, started_at: float) -> None:
        self.sandbox = _FakeSandbox(started_at)
        self.sandboxes = {self.sandbox.sandbox_id: self.sandbox}


async def _list(registry: _FakeRegistry, bound: str) -> list[dict[str, str]]:
    scope = {
        "method": "GET",
        "path": "/v2/sandboxes",
        "headers": [(b"x-api-key", b"k")],
        "query_string": urlencode({"startedAfter": bound}).encode(),
    }
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    await ControlPlane(registry).handle(Request(scope, receive), send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 200
    return json.loads(sent[1]["body"])
