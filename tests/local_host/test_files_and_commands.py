"""Files API, Connect filesystem RPCs, commands, and the paths code and files share."""

from __future__ import annotations

import glob
import os
import tempfile
import time
import uuid

import pytest
from e2b import CommandExitException, FileNotFoundException, SandboxException
from e2b.sandbox.filesystem.filesystem import FileType
from e2b_code_interpreter import Sandbox

from tests.support.processes import host_pids_with
from tests.support.raises import raises_exactly

ALL_BYTES = bytes(range(256)) * 4


@pytest.mark.parametrize("octet_stream", [False, True])
def test_write_and_read_are_binary_exact(shared_sandbox: Sandbox, octet_stream: bool):
    path = f"/home/user/bin-{octet_stream}.dat"
    info = shared_sandbox.files.write(path, ALL_BYTES, use_octet_stream=octet_stream)
    assert info.path == path and info.name == os.path.basename(path)
    assert shared_sandbox.files.read(path, format="bytes") == ALL_BYTES
    assert shared_sandbox.run_code(f"open({path!r}, 'rb').read() == bytes(range(256)) * 4").text == "True"


def test_list_make_dir_exists_rename_remove(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    assert files.make_dir("/workspace/tree/sub") is True
    assert files.make_dir("/workspace/tree/sub") is False
    files.write("/workspace/tree/a.txt", "alpha")
    files.write("/workspace/tree/sub/b.txt", "beta")
    shallow = {(e.name, e.type) for e in files.list("/workspace/tree")}
    assert shallow == {("a.txt", FileType.FILE), ("sub", FileType.DIR)}
    deep = {e.path for e in files.list("/workspace/tree", depth=2)}
    assert "/workspace/tree/sub/b.txt" in deep
    assert files.get_info("/workspace/tree/a.txt").size == 5
    assert files.exists("/workspace/tree/a.txt") and not files.exists("/workspace/tree/nope")
    moved = files.rename("/workspace/tree/a.txt", "/workspace/tree/sub/c.txt")
    assert moved.path == "/workspace/tree/sub/c.txt"
    assert files.read("/workspace/tree/sub/c.txt") == "alpha"
    assert not files.exists("/workspace/tree/a.txt")
    files.remove("/workspace/tree")
    assert not files.exists("/workspace/tree")
    with pytest.raises(FileNotFoundException):
        files.read("/workspace/tree/sub/c.txt")
    with pytest.raises(FileNotFoundException):
        files.list("/workspace/tree")


def test_code_commands_and_files_see_the_same_paths(shared_sandbox: Sandbox):
    shared_sandbox.run_code("open('/workspace/from_code.txt', 'w').write('written by python')")
    assert shared_sandbox.files.read("/workspace/from_code.txt") == "written by python"
    shared_sandbox.files.write("/tmp/from_api.txt", "written by the files API")
    assert shared_sandbox.run_code("open('/tmp/from_api.txt').read()").text == "written by the files API"
    assert shared_sandbox.commands.run("cat /tmp/from_api.txt").stdout == "written by the files API"
    shared_sandbox.run_code("echo from bash > ~/from_bash.txt", language="bash")
    assert shared_sandbox.files.read("/home/user/from_bash.txt") == "from bash\n"
    shared_sandbox.run_code(
        "require('fs').writeFileSync('/workspace/from_js.txt', 'js')", language="javascript"
    )
    assert shared_sandbox.files.read("/workspace/from_js.txt") == "js"
    shared_sandbox.run_code("import os; os.symlink('/workspace/from_code.txt', '/home/user/link.txt')")
    assert shared_sandbox.files.read("/home/user/link.txt") == "written by python"


def test_paths_cannot_escape_the_sandbox(shared_sandbox: Sandbox):
    files = shared_sandbox.files
    for escape in ("/home/user/../../etc/passwd", "/etc/passwd", "../../etc/hostname"):
        with raises_exactly(SandboxException, match=r"outside the sandbox filesystem"):
            files.read(escape)
        with raises_exactly(SandboxException, match=r"outside the sandbox filesystem"):
            files.write(escape, "nope")
    shared_sandbox.run_code("import os; os.symlink('/etc', '/workspace/etc-link')")
    with raises_exactly(SandboxException, match=r"outside the sandbox filesystem"):
        files.read("/workspace/etc-link/passwd")
    with raises_exactly(SandboxException, match=r"outside the sandbox filesystem"):
        files.list("/workspace/etc-link")
    # The host's filesystem is read-only from inside the sandbox.
    denied = shared_sandbox.run_code("open('/usr/e2b-host-probe', 'w')")
    assert denied.error is not None and denied.error.name == "OSError"


def test_sandboxes_do_not_share_files(e2b_host, shared_sandbox: Sandbox):
    shared_sandbox.files.write("/tmp/private.txt", "mine")
    other = Sandbox.create(timeout=60)
    try:
        assert not other.files.exists("/tmp/private.txt")
        assert other.run_code("import os; os.path.exists('/tmp/private.txt')").text == "False"
    finally:
        other.kill()


def test_commands_exit_codes_envs_cwd_and_root(shared_sandbox: Sandbox):
    result = shared_sandbox.commands.run(
        "echo $GREETING; pwd; echo err >&2", envs={"GREETING": "hi"}, cwd="/workspace"
    )
    assert result.exit_code == 0
    assert result.stdout == "hi\n/workspace\n" and result.stderr == "err\n"
    with pytest.raises(CommandExitException) as info:
        shared_sandbox.commands.run("echo failing >&2; exit 3")
    assert info.value.exit_code == 3 and "failing" in info.value.stderr
    # Nothing runs as root in a local sandbox: user="root" only picks root's HOME and cwd.
    root = shared_sandbox.commands.run("whoami; id -u; echo $HOME; pwd", user="root")
    assert root.stdout.split() == ["user", "1000", "/root", "/root"]
    handle = shared_sandbox.commands.run("sleep 30", background=True)
    assert handle.pid in [p.pid for p in shared_sandbox.commands.list()]
    assert shared_sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()


def test_kill_frees_every_process_and_removes_files(e2b_host):
    sbx = Sandbox.create(timeout=120)
    a, b = f"1000.{uuid.uuid4().int % 10**8}", f"1001.{uuid.uuid4().int % 10**8}"
    sbx.run_code(f"import subprocess; subprocess.run('setsid sleep {a} >/dev/null 2>&1 &', shell=True)")
    sbx.commands.run(f"setsid nohup sleep {b} >/dev/null 2>&1 &")
    sbx.files.write("/workspace/keep.txt", "data")
    # The sandbox's tmpfs is mounted in the host's own mount namespace: look through its root.
    host_root = f"/proc/{e2b_host.pid}/root"
    trees = glob.glob(os.path.join(host_root + tempfile.gettempdir(), "e2b-host-*", sbx.sandbox_id))
    deadline = time.monotonic() + 5
    while not (host_pids_with(a) and host_pids_with(b)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host_pids_with(a) and host_pids_with(b), "the daemonized sleeps should be running"
    assert len(trees) == 1 and os.path.exists(os.path.join(trees[0], "fs", "data", "workspace", "keep.txt"))
    assert sbx.kill() is True
    deadline = time.monotonic() + 5
    while (host_pids_with(a) or host_pids_with(b)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not host_pids_with(a) and not host_pids_with(b)
    assert not os.path.exists(trees[0])
