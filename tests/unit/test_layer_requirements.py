"""The layer's requirements file is generated from pyproject.toml and must not drift from it."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "generate_layer_requirements.py"
    spec = importlib.util.spec_from_file_location("generate_layer_requirements", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layer_requirements_is_current() -> None:
    gen = _generator()
    delta = gen.diff()
    assert delta == "", f"layers/shared/requirements.txt is stale; run `make requirements`:\n{delta}"


def test_layer_requirements_lists_every_project_dependency() -> None:
    gen = _generator()
    lines = (ROOT / "layers" / "shared" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# generated from pyproject.toml by `make requirements`; do not edit")
    assert [line for line in lines if line and not line.startswith("#")] == gen.layer_dependencies()


def test_layer_carries_no_client_or_cli_dependency() -> None:
    gen = _generator()
    assert "sandbox-gateway-client" in {gen.requirement_name(dep) for dep in gen.read_dependencies()}
    layer = {gen.requirement_name(dep) for dep in gen.layer_dependencies()}
    assert not layer & {"sandbox-gateway-client", "httpx", "typer", "rich"}


def test_not_in_layer_leaves_out_by_normalized_name_and_rejects_stale_names(tmp_path: Path) -> None:
    gen = _generator()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["pydantic>=2", "My_Client[cli]>=1", "boto3"]\n'
        '[tool.sandbox-gateway]\nnot-in-layer = ["my.client"]\n',
        encoding="utf-8",
    )
    assert gen.layer_dependencies(pyproject) == ["pydantic>=2", "boto3"]

    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["pydantic>=2"]\n'
        '[tool.sandbox-gateway]\nnot-in-layer = ["my-client"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="my-client"):
        gen.layer_dependencies(pyproject)


def test_layer_requirements_check_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = _generator()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["pydantic>=2", "boto3"]\n', encoding="utf-8")
    output = tmp_path / "requirements.txt"

    assert gen.main(["--pyproject", str(pyproject), "--output", str(output)]) == 0
    assert gen.main(["--check", "--pyproject", str(pyproject), "--output", str(output)]) == 0

    pyproject.write_text('[project]\nname = "x"\ndependencies = ["pydantic>=2"]\n', encoding="utf-8")
    capsys.readouterr()
    assert gen.main(["--check", "--pyproject", str(pyproject), "--output", str(output)]) == 1
    out = capsys.readouterr().out
    assert "out of date" in out
    assert "-boto3" in out


def test_installing_the_project_installs_the_client_and_its_sgw_command() -> None:
    """`uv pip install -e .` gets the client from the path in [tool.uv.sources]; `make install`
    names the same path for pip. Both must point at the package that provides `sgw`."""
    gen = _generator()
    with (ROOT / "pyproject.toml").open("rb") as fh:
        root = tomllib.load(fh)
    source = root["tool"]["uv"]["sources"]["sandbox-gateway-client"]
    with (ROOT / source["path"] / "pyproject.toml").open("rb") as fh:
        client = tomllib.load(fh)["project"]
    assert client["name"] == "sandbox-gateway-client"
    assert client["scripts"]["sgw"] == "sandbox_gateway_client.cli:main"
    assert "sandbox-gateway-client" in {gen.requirement_name(dep) for dep in gen.read_dependencies()}
    assert f"-e ./{source['path']}" in (ROOT / "Makefile").read_text(encoding="utf-8")
