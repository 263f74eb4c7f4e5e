"""The Docker provider against a real engine: containment, limits, files that never follow links,
cleanup. Every case here is something that has gone wrong in other code runners."""

from __future__ import annotations

import os
import time
from typing import Any

import docker
import pytest
from sandbox_gateway.adapters.docker import LABEL_SESSION, DockerSandboxProvider
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Language
from sandbox_gateway.models.errors import (
    InvalidFileOperation,
    ProviderError,
    ProviderUnavailable,
    SandboxGone,
)
from sandbox_gateway.models.execution import CodeRun, ExecutionStatus
from sandbox_gateway.models.files import FileType
from sandbox_gateway.ports import SandboxRef, SandboxSpec

from tests.support import docker_engine

ENVIRONMENT = next(e for e in BUILT_IN_ENVIRONMENTS if e.name == "docker-python")


def run(provider: DockerSandboxProvider, ref: SandboxRef, code: str, timeout: int = 20, **kw: Any):
    return provider.execute(
        ref, CodeRun(code=code, language=kw.pop("language", Language.PYTHON), timeout_seconds=timeout, **kw)
    )


def processes(engine: docker.DockerClient, ref: SandboxRef) -> list[str]:
    return docker_engine.processes(engine, ref.sandbox_id)


def test_container_is_created_with_the_hardening_that_holds(
    engine: docker.DockerClient, sandbox: SandboxRef
) -> None:
    config = engine.containers.get(sandbox.sandbox_id).attrs
    host = config["HostConfig"]
    assert config["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert host["Memory"] == host["MemorySwap"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 1_000_000_000 and host["PidsLimit"] == 64
    assert {u["Name"] for u in host["Ulimits"]} == {"nofile", "fsize", "core"}
    assert host["Init"] is True
    # Named tmpfs volumes only: nothing of the host filesystem is mounted in.
    assert [m["Type"] for m in config["Mounts"]] == ["volume"] * 3
    assert all(m["Driver"] == "local" for m in config["Mounts"])
    assert config["Config"]["Labels"][LABEL_SESSION] == sandbox.session_id


def test_code_runs_unprivileged_without_host_secrets_or_docker_socket(
    provider: DockerSandboxProvider, sandbox: SandboxRef
) -> None:
    os.environ["HOST_ONLY_SECRET"] = "must-not-leak"
    try:
        outcome = run(
            provider,
            sandbox,
            (
                "import os\n"
                "env = os.environ\n"
                "print(os.getuid(), env.get('HOST_ONLY_SECRET'), env.get('AWS_SECRET_ACCESS_KEY'),\n"
                "      os.path.exists('/var/run/docker.sock'), sorted(os.listdir('/sys/class/net')))"
            ),
        )
    finally:
        del os.environ["HOST_ONLY_SECRET"]
    assert outcome.stdout == "1000 None None False ['lo']\n"


def test_no_network(provider: DockerSandboxProvider, sandbox: SandboxRef) -> None:
    # Only the loopback interface exists, so nothing can leave the container.
    outcome = run(provider, sandbox, "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=2)")
    assert outcome.status == ExecutionStatus.ERROR and outcome.error is not None
    assert outcome.error.name == "OSError" and "unreachable" in outcome.error.value


def test_writes_outside_the_workspace_are_refused(
    provider: DockerSandboxProvider, sandbox: SandboxRef
) -> None:
    for path in ("/etc/evil", "/opt/sandbox/agent.py", "/usr/bin/evil"):
        with pytest.raises(InvalidFileOperation) as refused:
            provider.write_file(sandbox, path, b"x")
        assert type(refused.value) is InvalidFileOperation and refused.value.code == "invalid_file_operation"
    outcome = run(provider, sandbox, "open('/etc/evil', 'w')")
    assert outcome.error is not None and outcome.error.name in ("OSError", "PermissionError")
    # /tmp is writable but not executable.
    outcome = run(
        provider,
        sandbox,
        "import shutil, subprocess\nshutil.copy('/bin/true', '/tmp/t')\nsubprocess.run(['/tmp/t'])",
    )
    assert outcome.error is not None and outcome.error.name == "PermissionError"


def test_a_planted_symlink_is_never_followed(
    provider: DockerSandboxProvider, sandbox: SandboxRef, engine: docker.DockerClient
) -> None:
    run(provider, sandbox, "import os\nos.symlink('/etc/passwd', 'link')\nos.symlink('/etc', 'etcdir')")

    with pytest.raises(InvalidFileOperation) as refused:
        provider.read_file(sandbox, "/workspace/link", 1_000_000)
    assert type(refused.value) is InvalidFileOperation
    entries = {e.name: e.type for e in provider.list_files(sandbox, "/workspace")}
    assert entries == {"link": FileType.SYMLINK, "etcdir": FileType.SYMLINK}
    # Writing through a directory link, or onto a link, is refused: nothing reaches /etc, and
    # the links stay as they were (a write never replaces a path of another type).
    for path in ("/workspace/etcdir/evil", "/workspace/link"):
        with pytest.raises(InvalidFileOperation) as refused:
            provider.write_file(sandbox, path, b"x")
        assert type(refused.value) is InvalidFileOperation and "nothing was changed" in refused.value.message
    container = engine.containers.get(sandbox.sandbox_id)
    assert container.exec_run(["test", "-e", "/etc/evil"]).exit_code == 1
    assert {e.name: e.type for e in provider.list_files(sandbox, "/workspace")} == entries
    passwd = engine.containers.get(sandbox.sandbox_id).exec_run(["head", "-1", "/etc/passwd"]).output
    assert passwd.startswith(b"root:x:0:0")


def test_runaway_code_is_stopped_with_its_daemonized_grandchildren(
    provider: DockerSandboxProvider, sandbox: SandboxRef, engine: docker.DockerClient
) -> None:
    run(provider, sandbox, "kept = 'state'")
    started = time.monotonic()
    outcome = run(
        provider,
        sandbox,
        ("import subprocess\nsubprocess.Popen(['sh', '-c', 'setsid sleep 4242 &'])\nwhile True:\n    pass"),
        timeout=2,
    )

    assert outcome.status == ExecutionStatus.TIMEOUT
    assert outcome.error is not None and outcome.error.name == "TimeoutError"
    assert time.monotonic() - started < 15
    assert not [p for p in processes(engine, sandbox) if "sleep 4242" in p]
    assert run(provider, sandbox, "print(kept)").stdout == "state\n"


def test_a_fork_bomb_is_held_by_the_pids_limit(
    provider: DockerSandboxProvider, sandbox: SandboxRef, engine: docker.DockerClient
) -> None:
    outcome = run(
        provider, sandbox, "bomb() { bomb | bomb & }; bomb; sleep 30", timeout=5, language=Language.BASH
    )
    assert outcome.status == ExecutionStatus.TIMEOUT  # and the timeout's sweep ends the bomb
    assert len(processes(engine, sandbox)) <= 64
    # The host and the session both survive it.
    assert run(provider, sandbox, "print('alive')", timeout=20).stdout == "alive\n"


def test_a_memory_hog_is_reported_as_oom_and_the_session_survives(
    provider: DockerSandboxProvider, sandbox: SandboxRef
) -> None:
    outcome = run(provider, sandbox, "hog = b'x' * (1024 ** 3)", timeout=20)
    assert outcome.status == ExecutionStatus.OOM
    assert run(provider, sandbox, "print('after oom')").stdout == "after oom\n"


def test_output_beyond_the_cap_is_cut_and_marked(sandbox: SandboxRef, engine: docker.DockerClient) -> None:
    small = DockerSandboxProvider(Settings(docker_output_limit_bytes=10_000))
    outcome = small.execute(sandbox, CodeRun("print('y' * 1_000_000)", Language.PYTHON, 20))
    assert outcome.truncated is True
    assert len(outcome.stdout) <= 10_000


def test_delete_removes_the_container_and_its_volumes(
    provider: DockerSandboxProvider, engine: docker.DockerClient
) -> None:
    sandbox_id = provider.create(
        SandboxSpec("ses_docker_delete", "tenant-docker", ENVIRONMENT, 300)
    ).sandbox_id
    provider.kill(sandbox_id)
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(sandbox_id)
    assert not [v for v in engine.volumes.list() if v.name.startswith(sandbox_id)]


def test_expired_containers_are_reaped_on_access_and_by_the_reaper(
    provider: DockerSandboxProvider, engine: docker.DockerClient
) -> None:
    first = provider.create(SandboxSpec("ses_docker_expired_a", "tenant-docker", ENVIRONMENT, 1)).sandbox_id
    second = provider.create(SandboxSpec("ses_docker_expired_b", "tenant-docker", ENVIRONMENT, 1)).sandbox_id
    kept = provider.create(SandboxSpec("ses_docker_extended", "tenant-docker", ENVIRONMENT, 1)).sandbox_id
    time.sleep(1.1)

    with pytest.raises(SandboxGone) as gone:
        provider.execute(
            SandboxRef(first, "ses_docker_expired_a", ENVIRONMENT, int(time.time()) - 1),
            CodeRun("1", Language.PYTHON, 5),
        )
    assert type(gone.value) is SandboxGone and gone.value.code == "sandbox_gone"
    removed = provider.reap(still_live=lambda tenant, session: session == "ses_docker_extended")

    assert second in removed and kept not in removed
    names = {c.name for c in engine.containers.list(all=True)}
    assert first not in names and second not in names and kept in names
    provider.kill(kept)


def test_a_failed_create_leaves_nothing_behind(
    provider: DockerSandboxProvider, engine: docker.DockerClient
) -> None:
    missing_image = ENVIRONMENT.model_copy(update={"template": "sandbox-gateway/no-such-image:1"})
    with pytest.raises(ProviderError) as failed:
        provider.create(SandboxSpec("ses_docker_failed", "tenant-docker", missing_image, 60))
    assert type(failed.value) is ProviderError and failed.value.code == "provider_error"
    assert "build.sh" in failed.value.message
    assert not [c for c in engine.containers.list(all=True) if c.name == "sgw-ses_docker_failed"]
    assert not [v for v in engine.volumes.list() if v.name.startswith("sgw-ses_docker_failed")]


def test_engine_down_is_provider_unavailable() -> None:
    down = DockerSandboxProvider(Settings(docker_host="unix:///nonexistent/docker.sock"))
    with pytest.raises(ProviderUnavailable) as down_error:
        down.create(SandboxSpec("ses_docker_down", "tenant-docker", ENVIRONMENT, 60))
    assert type(down_error.value) is ProviderUnavailable and down_error.value.code == "provider_unavailable"
