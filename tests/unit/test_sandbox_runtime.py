"""The sandbox runtime's cache: a complete build is reused, an interrupted one is never used, the
key follows what goes in. The builds themselves are stubbed (tests/local_host builds the real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import sandbox_runtime


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """A cache in tmp_path, a fixed interpreter, wheels that need no download; returns the
    directories the stubbed runtime build was asked to fill."""
    monkeypatch.setenv("SANDBOX_RUNTIME_CACHE", str(tmp_path))
    monkeypatch.setattr(sandbox_runtime, "interpreter_version", lambda: "3.11.2 (main) [GCC 12.2.0] x86_64")
    monkeypatch.setattr(sandbox_runtime, "_build_wheelhouse", lambda cache, final, version: final)
    built: list[Path] = []

    def build(temp: Path, wheels: Path) -> None:
        built.append(temp)
        (temp / "bin").mkdir(parents=True)
        (temp / sandbox_runtime.COMPLETE_MARK).write_text("done\n")

    monkeypatch.setattr(sandbox_runtime, "_build_runtime", build)
    return built


def test_runtime_is_built_once_then_reused(stubbed: list[Path], tmp_path: Path) -> None:
    first = sandbox_runtime.ensure_runtime()
    assert first.parent == tmp_path and first.name.startswith("runtime-")
    assert (first / "bin").is_dir()
    assert sandbox_runtime.ensure_runtime() == first
    assert len(stubbed) == 1
    assert stubbed[0] != first  # built elsewhere, then renamed into place


def test_an_interrupted_build_is_never_used(
    stubbed: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / f"runtime-{sandbox_runtime.runtime_key()}"
    (final / "half").mkdir(parents=True)  # not ours (ours are renamed into place when done)
    assert sandbox_runtime.ensure_runtime() == final
    assert len(stubbed) == 1 and not (final / "half").exists()

    def failing(temp: Path, wheels: Path) -> None:
        (temp / "bin").mkdir(parents=True)
        raise sandbox_runtime.RuntimeUnavailable("no registry")

    monkeypatch.setattr(sandbox_runtime, "_build_runtime", failing)
    monkeypatch.setattr(sandbox_runtime, "runtime_key", lambda: "another")
    final = tmp_path / "runtime-another"
    with pytest.raises(sandbox_runtime.RuntimeUnavailable):
        sandbox_runtime.ensure_runtime()
    assert not final.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".runtime")] == []


def test_the_key_follows_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_runtime, "interpreter_version", lambda: "3.11.2 x86_64")
    before = sandbox_runtime.runtime_key()
    monkeypatch.setattr(sandbox_runtime, "interpreter_version", lambda: "3.11.4 x86_64")
    assert sandbox_runtime.runtime_key() != before


def test_wheels_cover_every_manylinux_tag_bookworm_runs() -> None:
    tags = sandbox_runtime._manylinux_tags("x86_64")
    assert {"manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags
