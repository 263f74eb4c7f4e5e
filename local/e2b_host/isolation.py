"""Per-sandbox namespaces built with bubblewrap and entered with setns: the containment of
the local E2B host.

Each sandbox gets one long-lived ``bwrap`` "init" whose namespaces (user, mount, PID, IPC,
UTS, cgroup, network) hold every process the sandbox starts. It runs as a host uid of its own
(``host_uid``, mapped to uid/gid 1000 `user` inside) with no capabilities, ``no_new_privs``,
a seccomp filter and no further user namespaces. Inside, the root is read-only: ``/usr``,
``/etc`` (with our own passwd/group/hosts), the ``/bin``-style links and the sandbox runtime
(``/opt/sandbox-runtime``) are bound read-only; ``/home/user``, ``/workspace``, ``/root`` (one size- and
inode-limited tmpfs), ``/tmp`` and ``/dev/shm`` (one each, ``noexec``) are the only writable
paths; ``/proc`` and ``/dev`` (read-only) are fresh. Nothing else of the host is there: no
``/run``, ``/var``, ``/sys``, Docker socket or home directory. A sandbox with internet access
gets a NATed link from slirp4netns (without the host's loopback); without slirp4netns it
gets no network at all (fail closed: never the host's network namespace).

Processes are started by the host after it has joined the sandbox's cgroups, set its rlimits
and dropped to ``host_uid``: they enter the namespaces (``setns``), drop what entering a user
namespace granted, and ``unshare --fork`` puts them in the PID namespace. Killing the init
(PID 1 of the namespace) makes the kernel SIGKILL every process in the namespace, whatever it
did to detach itself; a process's whole tree (``setsid`` children included) is killed through
a pids cgroup of its own where cgroups (v1) can be created.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SANDBOX_UID = 1000
SANDBOX_GID = 1000
SANDBOX_USER = "user"
# Sandbox path -> directory (relative to the sandbox's fs root) bound onto it read-write.
# "data" and "tmp" are separate tmpfs mounts (when the host may mount): "tmp" is noexec.
SANDBOX_MOUNTS: dict[str, str] = {
    "/home/user": "data/home/user",
    "/workspace": "data/workspace",
    "/root": "data/root",
    "/tmp": "tmp",
}
# The sandbox's /dev/shm (relative to its fs root): a third tmpfs, noexec, never in the files
# API; the Python kernel's Unix sockets live there too.
SHM_DIR = "shm"
SHM_MOUNT = "/dev/shm"
# Where the host's per-sandbox state dir (connection files, runner scripts) is visible inside,
# read-only.
STATE_MOUNT = "/.e2b"
# Where the sandbox runtime (local/sandbox_runtime, whose RUNTIME_MOUNT it must equal) is bound,
# read-only; its bin comes first on every process's PATH; the Python kernel runs its python.
RUNTIME_MOUNT = "/opt/sandbox-runtime"
RUNTIME_PYTHON = f"{RUNTIME_MOUNT}/bin/python"
SANDBOX_PATH = f"{RUNTIME_MOUNT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_READ_ONLY_SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
_REQUIRED_TOOLS = ("bwrap", "unshare", "env", "setsid")
_MNT_DETACH = 2
_SLIRP_DNS = "10.0.2.3"
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_NS_GET_PARENT = 0xB702
_TIOCGPTPEER = 0x5441
_TIOCSPTLCK = 0x40045431
_CLONE_NEWUSER = 0x10000000
_NS_TYPES = {
    "mnt": 0x00020000,
    "cgroup": 0x02000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "pid": 0x20000000,
    "net": 0x40000000,
}


class IsolationUnavailable(RuntimeError):
    """The machine cannot build the per-sandbox namespaces."""


@dataclass(frozen=True)
class Limits:
    """Per-sandbox resource limits (see ``python -m local.e2b_host --help``)."""

    memory_bytes: int = 1024 * 1024 * 1024
    pids: int = 512
    nofile: int = 4096
    disk_bytes: int = 1024 * 1024 * 1024
    tmp_bytes: int = 256 * 1024 * 1024
    inodes: int = 65536
    cpus: float = 1.0


# --- host-side helpers ----------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def mount_tmpfs(target: Path, *, size: int, inodes: int, uid: int, gid: int, noexec: bool) -> bool:
    """Mount a size- and inode-limited tmpfs owned by ``uid`` on ``target``; False if not allowed."""
    flags = 0x2 | 0x4  # MS_NOSUID | MS_NODEV
    if noexec:
        flags |= 0x8  # MS_NOEXEC
    opts = f"size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={gid}".encode()
    if _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", flags, opts) != 0:
        err = ctypes.get_errno()
        logger.debug("mount tmpfs on %s failed: %s", target, os.strerror(err))
        return False
    return True


def unmount(target: Path) -> None:
    if _libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            logger.warning("umount %s failed: %s", target, os.strerror(err))


def _own_cgroup_v1(controller: str) -> Path | None:
    base = Path("/sys/fs/cgroup") / controller
    if not (base / "cgroup.procs").exists():
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return base / path.lstrip("/")
    except (OSError, ValueError):
        return None
    return None


class Cgroups:
    """cgroup v1 ``pids``, ``memory`` and ``cpu`` groups for one sandbox, under the host's own.

    Every process the sandbox starts joins them before it execs; each started process also
    gets a pids group of its own (``child``) so that its whole tree can be killed."""

    def __init__(
        self, pids: Path, memory: Path | None, cpu: Path | None = None, cpuacct: Path | None = None
    ) -> None:
        self.pids = pids
        self.memory = memory
        self.cpu = cpu
        # Where the sandbox's CPU time is counted (metrics): the cpu group itself when the
        # two controllers share a hierarchy, else a cpuacct group of its own.
        self.cpuacct = cpuacct
        self._children = 0

    @classmethod
    def create(cls, name: str, limits: Limits) -> Cgroups | None:
        pids_parent = _own_cgroup_v1("pids")
        if pids_parent is None:
            return None
        try:
            pids = pids_parent / name
            pids.mkdir()
            (pids / "pids.max").write_text(str(limits.pids))
        except OSError as exc:
            logger.warning("cannot create a pids cgroup (%s); relying on RLIMIT_NPROC", exc)
            return None
        memory = None
        mem_parent = _own_cgroup_v1("memory")
        if mem_parent is not None:
            try:
                memory = mem_parent / name
                memory.mkdir()
                (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
                with contextlib.suppress(OSError):  # only with swap accounting
                    (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
            except OSError as exc:
                logger.warning("cannot create a memory cgroup (%s); relying on RLIMIT_DATA", exc)
                with contextlib.suppress(OSError):
                    memory.rmdir()
                memory = None
        cpu = None
        cpu_parent = _own_cgroup_v1("cpu")
        if cpu_parent is not None and limits.cpus > 0:
            try:
                cpu = cpu_parent / name
                cpu.mkdir()
                period = 100_000
                (cpu / "cpu.cfs_period_us").write_text(str(period))
                (cpu / "cpu.cfs_quota_us").write_text(str(max(int(period * limits.cpus), 1000)))
            except OSError as exc:
                logger.warning("cannot create a cpu cgroup (%s); CPU is not limited", exc)
                with contextlib.suppress(OSError):
                    cpu.rmdir()
                cpu = None
        return cls(pids, memory, cpu, _cpuacct_group(name, cpu))

    def child(self) -> Path:
        self._children += 1
        path = self.pids / f"p{self._children}"
        path.mkdir()
        return path

    @staticmethod
    def kill_all(group: Path, rounds: int = 50) -> None:
        """SIGKILL every process in ``group`` until it is empty (forks included)."""
        for _ in range(rounds):
            try:
                pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                return
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    @staticmethod
    def remove(group: Path) -> None:
        for _ in range(100):
            try:
                for sub in [p for p in group.iterdir() if p.is_dir()]:
                    Cgroups.kill_all(sub)
                    sub.rmdir()
                group.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                Cgroups.kill_all(group)
                time.sleep(0.02)
        logger.warning("cgroup %s could not be removed", group)

    def destroy(self) -> None:
        Cgroups.kill_all(self.pids)
        Cgroups.remove(self.pids)
        if self.memory is not None:
            Cgroups.remove(self.memory)
        if self.cpu is not None:
            Cgroups.remove(self.cpu)
        if self.cpuacct is not None and self.cpuacct != self.cpu:
            Cgroups.remove(self.cpuacct)

    def separate_groups(self) -> list[Path]:
        """The sandbox-wide groups every process joins besides a pids group."""
        groups = [g for g in (self.memory, self.cpu) if g is not None]
        if self.cpuacct is not None and self.cpuacct not in groups:
            groups.append(self.cpuacct)
        return groups

    def cpu_time_ns(self) -> int | None:
        """CPU time the sandbox's processes have used so far (cpuacct.usage)."""
        return _read_int(self.cpuacct / "cpuacct.usage") if self.cpuacct is not None else None

    def memory_stats(self) -> dict[str, int]:
        """memory.stat of the sandbox's group plus its usage and limit (empty without one)."""
        if self.memory is None:
            return {}
        stats: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / "memory.stat").read_text().splitlines():
                key, value = line.split()
                stats[key] = int(value)
        for name in ("usage_in_bytes", "limit_in_bytes"):
            value = _read_int(self.memory / f"memory.{name}")
            if value is not None:
                stats[name] = value
        return stats


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpuacct_group(name: str, cpu: Path | None) -> Path | None:
    parent = _own_cgroup_v1("cpuacct")
    if parent is None:
        return None
    group = parent / name
    if cpu is not None and os.path.realpath(group) == os.path.realpath(cpu):
        return cpu  # "cpu,cpuacct" mounted together: the cpu group counts already
    try:
        group.mkdir()
    except OSError as exc:
        logger.warning("cannot create a cpuacct cgroup (%s); CPU usage is not measured", exc)
        return None
    return group


def _join_and_drop(
    host_uid: int, limits: Limits, groups: Sequence[Path], data_limit: bool
) -> Callable[[], None]:
    """preexec_fn: join the cgroups, set the rlimits, drop every host privilege."""
    procs = [str(g / "cgroup.procs").encode() for g in groups]

    def run() -> None:
        for path in procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.disk_bytes, limits.disk_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if data_limit:
            resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
        os.setgroups([])
        os.setresgid(host_uid, host_uid, host_uid)
        os.setresuid(host_uid, host_uid, host_uid)

    return run


# --- seccomp: syscalls no sandbox needs and that widen the kernel's attack surface ----------

# x86_64 numbers. EPERM, except io_uring (ENOSYS: libuv and others then fall back quietly).
_BLOCKED_SYSCALLS = {
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "acct": 163,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "finit_module": 313,
    "syslog": 103,
    "vhangup": 153,
}
_ENOSYS_SYSCALLS = {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427}
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp_filter() -> tuple[_SockFprog, ctypes.Array[ctypes.c_char]] | None:
    """A classic BPF seccomp program: other ABIs (i386, x32) are refused outright, the
    syscalls above fail, everything else is allowed. None off x86_64 (not filtered)."""
    if os.uname().machine != "x86_64":
        return None
    import struct  # noqa: PLC0415 - only here

    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, errno_ret, kill = 0x7FFF0000, 0x00050000, 0x80000000
    prog: list[tuple[int, int, int, int]] = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, 0xC000003E),  # AUDIT_ARCH_X86_64
        (ret, 0, 0, kill),
        (ld_abs, 0, 0, 0),  # seccomp_data.nr
        (jge, 0, 1, 0x40000000),  # the x32 ABI's numbers
        (ret, 0, 0, kill),
    ]
    for nr in _BLOCKED_SYSCALLS.values():
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, errno_ret | errno.EPERM)]
    for nr in _ENOSYS_SYSCALLS.values():
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, errno_ret | errno.ENOSYS)]
    prog.append((ret, 0, 0, allow))
    raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    return _SockFprog(len(prog), ctypes.cast(buffer, ctypes.c_void_p)), buffer


_SECCOMP = _seccomp_filter()


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


def _etc_files(state_dir: Path, hostname: str, *, slirp: bool) -> dict[str, Path]:
    files = {
        "passwd": f"root:x:0:0:root:/root:/bin/bash\n{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}:"
        f"{SANDBOX_USER}:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\nnogroup:x:65534:\n",
        "hosts": f"127.0.0.1 localhost {hostname}\n::1 localhost ip6-localhost ip6-loopback\n",
        "hostname": hostname + "\n",
        # The SDK runs commands in a login shell: the host's /etc/profile would reset PATH
        # without the runtime (E2B's image has its python in /usr/local/bin, on that PATH).
        "profile": f'PATH="{SANDBOX_PATH}"\nexport PATH\n'
        'for i in /etc/profile.d/*.sh; do [ -r "$i" ] && . "$i"; done\nunset i\n',
    }
    if slirp:  # slirp4netns answers DNS on its virtual network, forwarding to the host's resolver
        files["resolv.conf"] = f"nameserver {_SLIRP_DNS}\n"
    out = {}
    for name, text in files.items():
        path = state_dir / f"etc-{name}"
        path.write_text(text)
        path.chmod(0o644)
        out[name] = path
    return out


def bind_read_only(source: str, target: Path) -> bool:
    """A read-only bind mount of ``source`` on ``target`` (host side); False if not allowed."""
    ms_rdonly, ms_nosuid, ms_nodev, ms_remount, ms_bind, ms_rec = 0x1, 0x2, 0x4, 0x20, 0x1000, 0x4000
    if _libc.mount(source.encode(), str(target).encode(), None, ms_bind | ms_rec, None) != 0:
        logger.debug("bind %s failed: %s", source, os.strerror(ctypes.get_errno()))
        return False
    flags = ms_remount | ms_bind | ms_rdonly | ms_nosuid | ms_nodev
    if _libc.mount(None, str(target).encode(), None, flags, None) != 0:
        unmount(target)
        return False
    return True


def private_mount_namespace() -> bool:
    """Give this (still single-threaded) process a mount namespace of its own, a slave of the
    host's, so the sandboxes' tmpfs and staging mounts vanish with it even if it is SIGKILLed."""
    clone_newns, ms_rec, ms_slave = 0x20000, 0x4000, 0x80000
    if _libc.unshare(clone_newns) != 0:
        return False
    return _libc.mount(None, b"/", None, ms_rec | ms_slave, None) == 0


def _traversable(path: str) -> bool:
    """Whether any uid may reach ``path`` (every directory on the way has o+x)."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        try:
            if not os.stat(current).st_mode & 0o001:
                return False
        except OSError:
            return False
        current = os.path.join(current, part)
    return True


class RuntimeBinds:
    """The sandbox runtime (local/sandbox_runtime: its own venv of Debian's python3 with the
    data stack) bound read-only at ``RUNTIME_MOUNT``, as (source, destination) pairs for
    bwrap. bwrap runs as the sandbox's uid and must reach the source: one that only root may
    reach (``~/.cache`` of root) is first bound read-only under ``staging`` (a root-owned, o+x
    directory). The project's own venv is not bound: nothing in a sandbox runs it."""

    def __init__(self, staging: Path, runtime: Path) -> None:
        self.staging = staging
        self.runtime = runtime
        self.pairs: list[tuple[str, str]] = []
        self._mounted: list[Path] = []
        source = str(runtime.resolve())
        if not os.access(os.path.join(source, "bin", "python"), os.X_OK):
            raise IsolationUnavailable(f"{runtime} is not a sandbox runtime (no bin/python)")
        if not _traversable(source):
            staging.mkdir(mode=0o711, exist_ok=True)
            target = staging / "0"
            target.mkdir(mode=0o755)
            if not bind_read_only(source, target):
                raise IsolationUnavailable(f"cannot make {runtime} reachable to the sandboxes")
            self._mounted.append(target)
            source = str(target)
        self.pairs.append((source, RUNTIME_MOUNT))

    def close(self) -> None:
        for target in self._mounted:
            unmount(target)
        self._mounted.clear()


def runtime_dirs() -> list[str]:
    """Where sandboxes see the runtime, besides the system's directories."""
    return [RUNTIME_MOUNT]


def bwrap_args(
    fs_root: Path,
    state_dir: Path,
    hostname: str,
    *,
    runtime: Sequence[tuple[str, str]],
    fds: list[int],
    slirp: bool = False,
) -> list[str]:
    """bwrap's command line. The sandbox's own directories are passed as O_PATH descriptors
    (appended to ``fds``): bwrap binds what the host opened, whatever the paths become."""

    def fd_of(path: Path | str) -> str:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        fds.append(fd)
        return str(fd)

    args = [
        "bwrap",
        "--unshare-all",  # user and cgroup only "-try": insist on them
        "--unshare-user",
        "--unshare-cgroup",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--hostname",
        hostname,
        "--cap-drop",
        "ALL",
        "--new-session",
        "--die-with-parent",
    ]
    for entry in _READ_ONLY_SYSTEM:
        path = "/" + entry
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    etc = _etc_files(state_dir, hostname, slirp=slirp)
    for name, path in etc.items():
        args += ["--ro-bind-fd", _file_fd(path, fds), f"/etc/{name}"]
    # bwrap's /dev is a writable, exec-able tmpfs without a size: /dev is made read-only and
    # /dev/shm (POSIX shared memory, semaphores) is our own limited, noexec tmpfs.
    args += ["--proc", "/proc", "--dev", "/dev", "--bind-fd", fd_of(fs_root / SHM_DIR), SHM_MOUNT]
    args += ["--remount-ro", "/dev", "--dir", "/home"]
    for inside, rel in SANDBOX_MOUNTS.items():
        args += ["--bind-fd", fd_of(fs_root / rel), inside]
    args += ["--ro-bind-fd", fd_of(state_dir), STATE_MOUNT]
    for source, dest in runtime:
        args += ["--ro-bind", source, dest]
    args += ["--remount-ro", "/", "--chdir", "/home/user"]
    return args


def _file_fd(path: Path, fds: list[int]) -> str:
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    fds.append(fd)
    return str(fd)


def check_isolation() -> None:
    """Fail loudly unless bubblewrap and nsenter can build and enter a namespace here."""
    missing = [tool for tool in _REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise IsolationUnavailable(
            f"missing tools: {', '.join(missing)} (Debian packages: bubblewrap, util-linux, coreutils)"
        )
    if os.geteuid() != 0:
        raise IsolationUnavailable(
            "the host must run as root: it mounts each sandbox's limited tmpfs, creates its "
            "cgroups and runs it as a host uid of its own"
        )
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        preexec_fn=_drop_only(65533),
    )
    if probe.returncode != 0:
        raise IsolationUnavailable(
            "bubblewrap cannot create user/mount/PID/network namespaces for an unprivileged uid "
            f"on this machine (exit {probe.returncode}): {probe.stderr.strip()}"
        )


def _tun_then_drop(uid: int) -> Callable[[], None]:
    """preexec of slirp4netns: in a mount namespace of its own, a /dev/net/tun it may open
    (the host's may be root-only), then drop to the sandbox's uid."""
    clone_newns, ms_rec, ms_slave, ms_nosuid = 0x20000, 0x4000, 0x80000, 0x2
    tun_dev = os.makedev(10, 200)
    drop = _drop_only(uid)

    def run() -> None:
        if _libc.unshare(clone_newns) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        if _libc.mount(None, b"/", None, ms_rec | ms_slave, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rslave /")
        if _libc.mount(b"tmpfs", b"/dev/net", b"tmpfs", ms_nosuid, b"mode=0755,size=4k") != 0:
            raise OSError(ctypes.get_errno(), "mount tmpfs /dev/net")
        os.mknod("/dev/net/tun", 0o666 | 0o020000, tun_dev)
        os.chmod("/dev/net/tun", 0o666)  # noqa: S103 - a private node, in its own mount ns
        drop()

    return run


def _drop_only(uid: int) -> Callable[[], None]:
    def run() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)

    return run


class SandboxNamespace:
    """The namespaces of one sandbox, alive while its bwrap init runs."""

    # The interpreter of the sandbox's Python kernel (the runtime's, as every process sees it).
    python = RUNTIME_PYTHON

    def __init__(
        self,
        fs_root: Path,
        state_dir: Path,
        hostname: str,
        *,
        host_uid: int,
        network: bool = False,
        limits: Limits | None = None,
        cgroups: Cgroups | None = None,
        runtime: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.fs_root = fs_root
        self.state_dir = state_dir
        # Where the kernel's Unix sockets go: the root of the /dev/shm tmpfs, which the sandbox
        # cannot replace (a mount point), only fill.
        self.ipc_dir = fs_root / SHM_DIR
        self.ipc_mount = SHM_MOUNT
        self.hostname = hostname
        self.host_uid = host_uid
        self.network = network
        # With internet access: a network namespace of its own all the same, given a NATed
        # link by slirp4netns with the host's loopback cut off. Without slirp4netns it stays
        # offline: sharing the host's namespace would hand it the host's loopback services.
        self.slirp = network and shutil.which("slirp4netns") is not None
        if network and not self.slirp:
            logger.warning("slirp4netns is not installed: sandboxes with internet access get no network")
        self._slirp: subprocess.Popen[bytes] | None = None
        self._slirp_exit_fd = -1
        self.limits = limits or Limits()
        self.cgroups = cgroups
        self.runtime = list(runtime)
        self._bwrap: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None
        self.enter_pid: int | None = None
        self._ns_fds: list[int] = []
        self._enter: tuple[list[tuple[int, int]], int] | None = None
        self._owner_fd = -1
        self._net_fd = -1

    def start(self, timeout: float = 15.0) -> None:
        """Start the init. Call from a long-lived thread (PR_SET_PDEATHSIG follows the thread)."""
        read_fd, write_fd = os.pipe()
        fds: list[int] = []
        try:
            argv = bwrap_args(
                self.fs_root,
                self.state_dir,
                self.hostname,
                runtime=self.runtime,
                fds=fds,
                slirp=self.slirp,
            )
            self._bwrap = subprocess.Popen(
                [*argv, "--info-fd", str(write_fd), "--", "sleep", "infinity"],
                pass_fds=(write_fd, *fds),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=self._preexec(),  # noqa: PLW1509 - syscalls only, no locks taken
            )
            os.close(write_fd)
            write_fd = -1
            for fd in fds:
                os.close(fd)
            fds.clear()
            info = b""
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IsolationUnavailable("bubblewrap did not report its child pid in time")
                if not _readable(read_fd, left):
                    continue
                chunk = os.read(read_fd, 4096)
                if not chunk:
                    break
                info += chunk
                try:
                    self.init_pid = int(json.loads(info)["child-pid"])
                    break
                except (ValueError, KeyError):
                    continue
            if self.init_pid is None:
                err = self._bwrap.stderr.read().decode(errors="replace") if self._bwrap.stderr else ""
                raise IsolationUnavailable(f"bubblewrap failed to start: {err.strip()}")
            # bwrap reports its pid before the mounts are done: enter through the command it
            # finally execs (``sleep``), whose root is the finished one.
            while self.enter_pid is None:
                for child in _child_pids(self.init_pid):
                    try:
                        with open(f"/proc/{child}/comm") as fh:
                            if fh.read().strip() == "sleep":
                                self.enter_pid = child
                    except OSError:
                        pass
                if self.enter_pid is None:
                    if time.monotonic() > deadline or self._bwrap.poll() is not None:
                        err = ""
                        if self._bwrap.poll() is not None and self._bwrap.stderr:
                            err = self._bwrap.stderr.read().decode(errors="replace").strip()
                        raise IsolationUnavailable(f"the sandbox namespace did not finish setting up: {err}")
                    time.sleep(0.002)
            self._open_namespaces()
            if self.slirp:
                self._start_slirp(deadline)
        except BaseException:
            self.kill()
            raise
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
            for fd in fds:
                os.close(fd)

    def alive(self) -> bool:
        """The init and the process we enter through both still run."""
        if self._bwrap is None or self._bwrap.poll() is not None:
            return False
        if self.enter_pid is None:
            return False
        try:
            with open(f"/proc/{self.enter_pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X")
        except (OSError, IndexError):
            return False

    def _open_namespaces(self) -> None:
        """Descriptors of the namespaces to enter, opened once by the (root) host.

        bwrap sets up in a user namespace where the sandbox's uid is 0 (``owner``), which owns
        every other namespace, and runs the command in a nested one where it is 1000
        (``user``): a process enters ``owner`` (the sandbox's uid owns it, so it may), then
        the others, then ``user``, and chroots to the command's root."""
        pid = self.enter_pid
        user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        self._ns_fds.append(user)
        owner = fcntl.ioctl(user, _NS_GET_PARENT)
        self._ns_fds.append(owner)
        kinds = ["mnt", "ipc", "uts", "cgroup", "pid", "net"]
        order = [(owner, _CLONE_NEWUSER)]
        for kind in kinds:
            fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            self._ns_fds.append(fd)
            order.append((fd, _NS_TYPES[kind]))
        order.append((user, _CLONE_NEWUSER))
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._ns_fds.append(root)
        self._enter = (order, root)
        self._owner_fd = owner
        self._net_fd = next((fd for fd, kind in order if kind == _NS_TYPES["net"]), -1)

    def _start_slirp(self, deadline: float) -> None:
        """slirp4netns, as the sandbox's uid (it owns the namespaces), gives the namespace a
        ``tap0`` NATed to the internet, with the host's loopback (10.0.2.2) cut off. It exits
        when the host closes ``exit-fd`` (or dies)."""
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            self._slirp = subprocess.Popen(
                [
                    "slirp4netns",
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    f"--userns-path=/proc/self/fd/{self._owner_fd}",
                    "--netns-type=path",
                    f"--ready-fd={ready_w}",
                    f"--exit-fd={exit_r}",
                    f"/proc/self/fd/{self._net_fd}",
                    "tap0",
                ],
                pass_fds=(self._owner_fd, self._net_fd, ready_w, exit_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_tun_then_drop(self.host_uid),  # noqa: PLW1509 - syscalls only
            )
            os.close(ready_w)
            ready_w = -1
            os.close(exit_r)
            exit_r = -1
            self._slirp_exit_fd = exit_w
            exit_w = -1
            ready = _readable(ready_r, max(deadline - time.monotonic(), 1.0))
            if not ready or os.read(ready_r, 1) != b"1":
                raise IsolationUnavailable("slirp4netns did not set up the sandbox's network")
        finally:
            for fd in (ready_r, ready_w, exit_r, exit_w):
                if fd >= 0:
                    os.close(fd)

    def _preexec(self, groups: Sequence[Path] = (), *, enter: bool = False) -> Callable[[], None]:
        joined = list(groups)
        if self.cgroups is not None:
            joined += self.cgroups.separate_groups()
            if not groups:
                joined.append(self.cgroups.pids)
        data_limit = self.cgroups is None or self.cgroups.memory is None
        drop = _join_and_drop(self.host_uid, self.limits, joined, data_limit)
        if not enter:
            return drop
        order, root = self._enter
        last_cap = _last_cap()

        def run() -> None:
            drop()
            for fd, kind in order:
                if _libc.setns(fd, kind) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns: {os.strerror(err)}")
            os.fchdir(root)
            os.chroot(".")
            os.chdir("/")
            # Entering the user namespace granted every capability in it: drop the bounding
            # set while we may (exec then clears the rest: the uid is not 0 there), and
            # no_new_privs so that no setuid or file-capability binary gives any back.
            for cap in range(last_cap + 1):
                _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
            if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
            if _SECCOMP is not None:
                fprog = ctypes.byref(_SECCOMP[0])
                if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")

        return run

    def command(self, argv: Sequence[str], cwd: str, *, terminal: bool = False) -> list[str]:
        """What the entered process execs: ``unshare --fork`` forks the command into the PID
        namespace (entering one applies to children only) and exits as it does (a signal
        included); setsid gives the command a session of its own, and with ``terminal`` makes
        its stdin (a PTY's slave) the session's controlling terminal."""
        session = ["setsid", "--ctty"] if terminal else ["setsid"]
        return ["unshare", "--fork", "--", "env", "-C", cwd, *session, *argv]

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
        terminal: int | None = None,
    ) -> SandboxProcess:
        """Start ``argv`` inside the namespaces, as the sandbox's user, in its own session
        (and, where cgroups are available, its own pids cgroup), with stdout/stderr pipes;
        or, given a PTY's slave as ``terminal``, with that as its stdio and controlling tty."""
        if self._enter is None:
            raise RuntimeError("namespace not started")
        group = self.cgroups.child() if self.cgroups is not None else None
        order, root = self._enter
        output: int | None = subprocess.PIPE if terminal is None else terminal
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(argv, cwd, terminal=terminal is not None),
                cwd="/",
                env=dict(env),
                stdin=stdin if terminal is None else terminal,
                stdout=output,
                stderr=output,
                pass_fds=(*pass_fds, *(fd for fd, _ in order), root),
                start_new_session=True,
                limit=1 << 20,
                preexec_fn=self._preexec([group] if group else [], enter=True),
            )
        except BaseException:
            if group is not None:
                Cgroups.remove(group)
            raise
        return SandboxProcess(proc, group)

    def open_terminal(self) -> tuple[int, int]:
        """A pseudo-terminal of the sandbox's own ``/dev/pts`` (so ``tty`` names it inside):
        (master, slave). The host opens the master from that devpts instance (bwrap's
        read-only ``/dev``, which nothing in the sandbox can remount) and the slave through
        the master (TIOCGPTPEER), without looking up any path the sandbox could change."""
        if self.enter_pid is None:
            raise RuntimeError("namespace not started")
        ptmx = f"/proc/{self.enter_pid}/root/dev/pts/ptmx"
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
            slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
            os.fchown(slave, self.host_uid, self.host_uid)  # `user` owns its terminal inside
            return master, slave
        except BaseException:
            os.close(master)
            raise

    def kill(self) -> None:
        """SIGKILL the init; the kernel then kills every process in the PID namespace."""
        if self.init_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        if self._bwrap is not None:
            if self._bwrap.poll() is None:
                self._bwrap.kill()
            try:
                self._bwrap.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("bwrap %s did not exit after SIGKILL", self._bwrap.pid)
            if self._bwrap.stderr:
                self._bwrap.stderr.close()
        if self._slirp_exit_fd >= 0:
            os.close(self._slirp_exit_fd)
            self._slirp_exit_fd = -1
        if self._slirp is not None:
            if self._slirp.poll() is None:
                self._slirp.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._slirp.wait(timeout=5)
        if self.cgroups is not None:
            self.cgroups.destroy()
        for fd in self._ns_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._ns_fds.clear()
        self._enter = None


async def spawn_in_own_session(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    stdin: int | None = subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """A process in a session of its own (so a signal to its group reaches all it starts),
    with stdout/stderr pipes. Also used by the Docker sandbox's agent, where no nsenter is needed."""
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
        limit=1 << 20,
    )


def _child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return []


class SandboxProcess:
    """A process started through nsenter; its ``inner_pid`` is a host pid and its own pgid.
    ``group`` is its own pids cgroup (None without cgroups): everything it starts, detached
    or not, stays in it, so ``kill`` ends the whole tree."""

    def __init__(self, proc: asyncio.subprocess.Process, group: Path | None = None) -> None:
        self.proc = proc
        self.group = group
        self._inner_pid: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def inner_pid(self, wait: float = 2.0) -> int | None:
        """Host pid of the process nsenter forked into the namespace."""
        deadline = time.monotonic() + wait
        while self._inner_pid is None:
            children = _child_pids(self.proc.pid)
            if children:
                self._inner_pid = children[0]
                break
            if self.proc.returncode is not None or time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.005)
        return self._inner_pid

    async def signal_group(self, signum: int) -> bool:
        pid = await self.inner_pid(wait=0.5)
        if pid is None:
            return False
        try:
            os.killpg(pid, signum)
            return True
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signum)
                return True
            except ProcessLookupError:
                return False

    def release(self) -> None:
        """Drop the process's cgroup if nothing is left in it (what it daemonized lives on
        until the sandbox dies, as on E2B)."""
        if self.group is not None and self.proc.returncode is not None:
            with contextlib.suppress(OSError):
                self.group.rmdir()  # fails while processes remain in it
                self.group = None

    async def signal_tree(self, signum: int) -> None:
        """``signum`` to the process's group and (with a cgroup) every process it started."""
        await self.signal_group(signum)
        if self.group is not None:
            try:
                pids = [int(p) for p in (self.group / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    async def kill(self) -> None:
        """SIGKILL the process, its group and (with a cgroup) every process it started."""
        await self.signal_group(signal.SIGKILL)
        if self.group is not None:
            await asyncio.to_thread(Cgroups.kill_all, self.group)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            logger.warning("process %s did not exit after SIGKILL", self.proc.pid)
        if self.group is not None:
            group, self.group = self.group, None
            await asyncio.to_thread(Cgroups.remove, group)


def _readable(fd: int, timeout_seconds: float) -> bool:
    """Whether `fd` can be read within the timeout. poll, not select: a host holding many
    sandboxes has descriptors past select's FD_SETSIZE (1024), where select raises ValueError."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout_seconds) * 1000))
