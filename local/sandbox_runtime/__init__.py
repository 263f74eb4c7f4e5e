"""The sandboxes' own Python: Debian's python3 with ipykernel and the data stack, apart from the
project's venv, for the local E2B host and the Docker image alike.

``ensure_runtime()`` returns a venv made from ``/usr/bin/python3`` (the interpreter the Docker
image has, under ``/usr``, which sandboxes already see) with requirements.txt installed, the
IPython display extension (``e2b_display``), a ``sudo`` that explains why there is none, and a
prebuilt matplotlib font cache. Sandboxes see it read-only at ``RUNTIME_MOUNT``; its scripts
and compiled files already name that path. ``ensure_wheelhouse()`` returns the wheels it was
installed from, which the Docker build installs with ``--no-index`` (no network there).

Both live in a cache (``$SANDBOX_RUNTIME_CACHE``, default ``~/.cache/sandbox-gateway``) under a
content hash of everything that goes in, are built in a temporary directory renamed when
complete (an interrupted build is never used), under a file lock (parallel test processes).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
# Our own files copied into the runtime: a change to any of them is a new runtime.
OWN_FILES = ("requirements.txt", "finish.py", "e2b_display.py", "sudo", "__init__.py")
SYSTEM_PYTHON = "/usr/bin/python3"
# Where sandboxes see the runtime (local host: a read-only bind; Docker image: built there).
RUNTIME_MOUNT = "/opt/sandbox-runtime"
COMPLETE_MARK = ".complete"
PIP_TIMEOUT_S = 1800


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot be built here (no /usr/bin/python3, no registry...)."""


def cache_dir() -> Path:
    configured = os.environ.get("SANDBOX_RUNTIME_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "sandbox-gateway"


@functools.cache
def interpreter_version() -> str:
    """The system interpreter's exact version and machine: part of every key."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise RuntimeUnavailable(f"{SYSTEM_PYTHON} is missing (Debian package: python3)")
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys, platform; print(sys.version, platform.machine())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def _digest(*parts: bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()[:16]


def wheelhouse_key(python_version: str) -> str:
    return _digest(REQUIREMENTS.read_bytes(), python_version.encode(), platform.machine().encode())


def runtime_key() -> str:
    own = [(HERE / name).read_bytes() for name in OWN_FILES]
    return _digest(*own, RUNTIME_MOUNT.encode(), interpreter_version().encode())


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _complete(path: Path) -> bool:
    return (path / COMPLETE_MARK).is_file()


def _fresh_temp(cache: Path, name: str) -> Path:
    temp = cache / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    return temp


def _pip(*args: str) -> None:
    """The project venv's pip (the system python3 may have none)."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeUnavailable(f"pip {args[0]} failed ({done.returncode}):\n{done.stderr[-4000:]}")


def system_python_version() -> str:
    """e.g. "3.11": the system interpreter's, for which the runtime's wheels are fetched."""
    return ".".join(interpreter_version().split()[0].split(".")[:2])


def _manylinux_tags(machine: str) -> list[str]:
    """Every manylinux tag bookworm's glibc (2.36) runs: pip does not widen a given one."""
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 4, -1)]
    return [*tags, f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]


def ensure_wheelhouse(cache: Path | None = None, python_version: str | None = None) -> Path:
    """The wheels of requirements.txt for CPython ``python_version`` (default: the system
    interpreter's; the Docker build asks for its image's) on glibc 2.36 (bookworm's) or older."""
    cache = cache or cache_dir()
    version = python_version or system_python_version()
    final = cache / f"wheels-{wheelhouse_key(version)}"
    if _complete(final):
        return final
    with _locked(cache):
        return _build_wheelhouse(cache, final, version)


def _build_wheelhouse(cache: Path, final: Path, version: str) -> Path:
    if _complete(final):
        return final
    machine = platform.machine()
    temp = _fresh_temp(cache, final.name)
    logger.info("downloading the sandbox runtime's wheels into %s", final)
    abi = "cp" + version.replace(".", "")
    _pip(
        "download",
        "--quiet",
        "--only-binary=:all:",
        "--no-deps",
        *(f"--platform={tag}" for tag in _manylinux_tags(machine)),
        f"--python-version={version}",
        "--implementation=cp",
        f"--abi={abi}",
        "--dest",
        str(temp),
        "-r",
        str(REQUIREMENTS),
    )
    (temp / COMPLETE_MARK).write_text(f"{version} {machine}\n")
    shutil.rmtree(final, ignore_errors=True)
    temp.rename(final)
    return final


def ensure_runtime(cache: Path | None = None) -> Path:
    """The runtime's directory, built first if this content hash has none yet."""
    cache = cache or cache_dir()
    final = cache / f"runtime-{runtime_key()}"
    if _complete(final):
        return final
    with _locked(cache):
        if _complete(final):
            return final
        version = system_python_version()
        wheels = _build_wheelhouse(cache, cache / f"wheels-{wheelhouse_key(version)}", version)
        temp = _fresh_temp(cache, final.name)
        # A warning: shown without any logging set up (make dev, tests), this once takes a while.
        logger.warning("building the sandbox runtime in %s (once per content hash; about a minute)", final)
        try:
            _build_runtime(temp, wheels)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)  # not complete: never a build of ours, never used
        temp.rename(final)
        return final


def _build_runtime(temp: Path, wheels: Path) -> None:
    # --system-site-packages: pip inside a sandbox may then install with --user (the runtime
    # itself is read-only), as on E2B; Debian's own packages come after ours on sys.path.
    venv = [SYSTEM_PYTHON, "-m", "venv", "--without-pip", "--system-site-packages", str(temp)]
    done = subprocess.run(venv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeUnavailable(f"{' '.join(venv)} failed: {done.stderr.strip()}")
    python = str(temp / "bin" / "python")
    _pip(
        "--python",
        python,
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(wheels),
        "--no-compile",
        "-r",
        str(REQUIREMENTS),
    )
    finish = [python, str(HERE / "finish.py"), "--mount", RUNTIME_MOUNT, "--own-files", str(HERE)]
    done = subprocess.run(finish, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeUnavailable(f"finishing the runtime failed:\n{done.stderr[-4000:]}")
    (temp / COMPLETE_MARK).write_text(f"{runtime_key()}\n{platform.platform()}\n")


def font_cache(runtime: Path) -> list[Path]:
    """The prebuilt matplotlib font list(s), to seed each sandbox's ~/.cache/matplotlib."""
    return sorted((runtime / "share" / "matplotlib").glob("fontlist-*.json"))


__all__ = [
    "RUNTIME_MOUNT",
    "RuntimeUnavailable",
    "cache_dir",
    "ensure_runtime",
    "ensure_wheelhouse",
    "font_cache",
]
