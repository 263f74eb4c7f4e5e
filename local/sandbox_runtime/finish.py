"""Finish a freshly installed sandbox runtime; run by the runtime's own python, on the host
(local/sandbox_runtime) and in the Docker build alike, so both get the same layout:

* ``e2b_display`` (the IPython display extension) in site-packages, ``sudo`` in bin;
* text files in bin (pip's shebangs, activate scripts) naming the final path (``--mount``),
  where sandboxes see the runtime, instead of the build directory;
* matplotlib's font list built once into ``share/matplotlib`` (seeded into each sandbox's
  ``~/.cache/matplotlib``: without it every new sandbox's first import rebuilt it);
* every module compiled, with the final path as its file name (tracebacks, no writes needed in
  a read-only runtime).

Usage: <runtime>/bin/python finish.py --mount /opt/sandbox-runtime --own-files DIR
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path


def install_own_files(prefix: Path, own: Path) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    shutil.copyfile(own / "e2b_display.py", site / "e2b_display.py")
    sudo = prefix / "bin" / "sudo"
    shutil.copyfile(own / "sudo", sudo)
    sudo.chmod(0o755)


def point_scripts_at(prefix: Path, mount: str) -> None:
    """Rewrite the build directory's path to the final one in bin's text files."""
    old, new = str(prefix).encode(), mount.encode()
    for path in [*(prefix / "bin").iterdir(), prefix / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:1024] and old in data:
            path.write_bytes(data.replace(old, new))


def build_font_cache(prefix: Path) -> None:
    """matplotlib writes its font list where MPLCONFIGDIR says: a child, so nothing leaks."""
    target = prefix / "share" / "matplotlib"
    target.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLCONFIGDIR=str(target), MPLBACKEND="Agg")
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, check=True, timeout=600)
    if not list(target.glob("fontlist-*.json")):
        raise SystemExit(f"matplotlib wrote no font list into {target}")


def compile_all(prefix: Path, mount: str) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    ok = compileall.compile_dir(
        site, quiet=1, stripdir=str(prefix), prependdir=mount, workers=0, legacy=False
    )
    if not ok:
        # A few packages ship test data that is not Python 3.11 syntax; the rest compiled.
        print("compileall reported files it could not compile", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mount", required=True)
    parser.add_argument("--own-files", type=Path, required=True)
    args = parser.parse_args()
    prefix = Path(sys.prefix)
    install_own_files(prefix, args.own_files)
    point_scripts_at(prefix, args.mount)
    build_font_cache(prefix)
    compile_all(prefix, args.mount)


if __name__ == "__main__":
    main()
