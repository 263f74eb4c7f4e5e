""".env for `make dev`: .env.example documents every setting with its true default, and the loader
never overrides what the shell already set."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from sandbox_gateway.config import Settings

from local import dev

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
# A documented variable is a commented assignment: `# NAME=default`.
ASSIGNMENT = re.compile(r"^#\s?([A-Z][A-Z0-9_]*)=(.*)$")
# Read by `make dev` itself or by the sgw CLI, not by Settings.
NOT_SETTINGS = {
    "E2B_API_KEY",
    "POWERTOOLS_LOG_LEVEL",
    "DOCKER_HOST",
    "SGW_URL",
    "SGW_API_KEY",
    "SGW_DEV_API_KEY",
    "LOCAL_AUTHORIZER_CACHE_SECONDS",
}


def documented() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is documented twice"
            found[match.group(1)] = match.group(2)
    return found


def test_every_setting_is_documented_in_env_example() -> None:
    names = set(documented())
    missing = sorted(field.upper() for field in Settings.model_fields if field.upper() not in names)
    assert not missing, f".env.example does not document: {', '.join(missing)}"
    assert not NOT_SETTINGS - names, f".env.example does not document: {sorted(NOT_SETTINGS - names)}"


def test_env_example_names_only_real_variables() -> None:
    known = {field.upper() for field in Settings.model_fields} | NOT_SETTINGS
    assert set(documented()) <= known, f"not read by anything: {sorted(set(documented()) - known)}"


def test_env_example_defaults_are_the_real_defaults() -> None:
    values = {name: value for name, value in documented().items() if name not in NOT_SETTINGS}
    assert Settings.from_environ(values) == Settings.from_environ({})


def test_env_example_copied_as_is_sets_nothing() -> None:
    assert dotenv_values(EXAMPLE) == {}


def test_dotenv_fills_in_but_never_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# a comment\nSGW_TEST_FROM_FILE=from-file\nSGW_TEST_FROM_SHELL=from-file\nSGW_TEST_BARE\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("SGW_TEST_FROM_FILE", raising=False)
    monkeypatch.delenv("SGW_TEST_BARE", raising=False)
    monkeypatch.setenv("SGW_TEST_FROM_SHELL", "from-shell")

    loaded, skipped = dev.load_dotenv(env_file)

    assert loaded == ["SGW_TEST_FROM_FILE"]
    assert skipped == ["SGW_TEST_FROM_SHELL"]
    assert dev.os.environ["SGW_TEST_FROM_FILE"] == "from-file"
    assert dev.os.environ["SGW_TEST_FROM_SHELL"] == "from-shell"
    assert "SGW_TEST_BARE" not in dev.os.environ
    assert "kept: SGW_TEST_FROM_SHELL" in dev.describe_dotenv(env_file, loaded, skipped)


def test_no_dotenv_file_is_fine(tmp_path: Path) -> None:
    assert dev.load_dotenv(tmp_path / ".env") == ([], [])
    assert "no .env" in dev.describe_dotenv(tmp_path / ".env", [], [])


def test_make_dev_rejects_a_bad_setting_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "DOTENV", Path("/nonexistent/.env"))
    monkeypatch.setenv("SESSION_TIMEOUT_MAX_SECONDS", "not-a-number")

    def no_stack(**_: object) -> None:
        raise AssertionError("the stack started despite a bad setting")

    monkeypatch.setattr(dev, "running_stack", no_stack)
    with pytest.raises(SystemExit) as exited:
        dev.main(["--provider", "local"])
    assert exited.value.code == 2


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dotenv_is_git_ignored_and_the_example_is_not() -> None:
    def ignored(name: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False).returncode == 0

    assert ignored(".env")
    assert ignored(".env.local")
    assert not ignored(".env.example")
